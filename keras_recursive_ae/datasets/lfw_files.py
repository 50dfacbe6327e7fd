"""LFW on disk: finding the people, checking JPEGs, splitting, extracting archives.

Plain Python, no TensorFlow: `keras_recursive_ae.datasets.lfw` builds its `tf.data`
datasets on what these functions find.
"""

import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

JPEG_SUFFIXES = (".jpg", ".jpeg")
_JPEG_START = b"\xff\xd8\xff"
_JPEG_END = b"\xff\xd9"
# EOI is searched in the file's tail, not only its last two bytes, because
# some writers pad after it. Entropy-coded data never contains FF D9.
_JPEG_TAIL_BYTES = 1024


def find_people(root):
    """Maps each person's name to the sorted paths of their JPEG images."""
    unreadable = []
    people = scan_people(root, unreadable)
    if not people:
        subfolders = [
            entry.path
            for entry in entries(root)
            if entry.is_dir() and not entry.name.startswith(".")
        ]
        if len(subfolders) == 1:
            unreadable = []
            people = scan_people(subfolders[0], unreadable)
    if unreadable:
        warnings.warn(
            f"Skipped {len(unreadable)} person folders under {root} that "
            f"cannot be read (permission denied), e.g. {unreadable[0]}.",
            stacklevel=4,
        )
    if not people:
        raise ValueError(
            f"Invalid value for argument `data_dir`. Expected a folder in "
            f"the LFW layout `<Person>/<Person>_NNNN.jpg` (or holding one "
            f"such folder), but found no JPEG images in it. "
            f"Received: data_dir={root}"
        )
    return people


def entries(folder):
    """The entries of `folder`; a clear error naming it if it cannot be read."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except PermissionError as e:
        raise PermissionError(
            f"Invalid value for argument `data_dir`. The folder {folder} "
            f"cannot be read (permission denied). Received: data_dir={folder}"
        ) from e


def scan_people(folder, unreadable):
    """People and their images; appends person folders it cannot read to `unreadable`."""
    people = {}
    for entry in entries(folder):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            with os.scandir(entry.path) as files:
                images = sorted(
                    f.path
                    for f in files
                    if not f.name.startswith(".")
                    and f.name.lower().endswith(JPEG_SUFFIXES)
                    and f.is_file()
                )
        except PermissionError:
            unreadable.append(entry.path)
            continue
        if images:
            people[entry.name] = images
    return people


def is_complete_jpeg(path):
    try:
        with open(path, "rb") as f:
            if f.read(len(_JPEG_START)) != _JPEG_START:
                return False
            size = f.seek(0, os.SEEK_END)
            f.seek(max(size - _JPEG_TAIL_BYTES, len(_JPEG_START)))
            return _JPEG_END in f.read()
    except OSError:
        return False


def check_jpegs(paths):
    # The check is I/O-bound (two small reads per file): threads overlap it.
    workers = min(32, 4 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(is_complete_jpeg, paths))


def split_groups(sizes, validation_split, test_split, where):
    """Assigns each group (person) of `sizes` images to a split.

    In the given (shuffled) order, the test split and then the validation
    split take every group that still fits under their target of
    `round(fraction * total)` images (at least 1), so they hold that
    fraction of the images, or nearly; groups too large to fit stay in
    train. A held-out split that no group fits takes the first group left.
    """
    total = sum(sizes)
    assignment = ["train"] * len(sizes)
    remaining = list(range(len(sizes)))
    for split, fraction in (
        ("test", test_split),
        ("validation", validation_split),
    ):
        if fraction == 0:
            continue
        target = max(1, round(fraction * total))
        chosen = []
        count = 0
        for index in remaining:
            if count + sizes[index] <= target:
                chosen.append(index)
                count += sizes[index]
                if count == target:
                    break
        if not chosen and remaining:
            chosen = remaining[:1]
        for index in chosen:
            assignment[index] = split
        chosen = set(chosen)
        remaining = [i for i in remaining if i not in chosen]
    if not remaining:
        raise ValueError(
            f"Too few people in {where} to fill every split: "
            f"{len(sizes)} people ({total} images) leave none to train on. "
            f"Received: validation_split={validation_split}, "
            f"test_split={test_split}"
        )
    return assignment


def default_cache_root(cache_dir):
    if cache_dir is not None:
        base = Path(os.fspath(cache_dir)).expanduser()
    else:
        base = Path(os.environ.get("KERAS_HOME", os.path.join("~", ".keras"))).expanduser()
        if not os.access(base if base.exists() else base.parent, os.W_OK):
            base = Path(tempfile.gettempdir()) / ".keras"
    return base / "datasets"


def extract_archive(archive, cache_dir, data_dir):
    """Extracts a tar archive's JPEGs into the cache, once; returns the folder.

    `data_dir` is the user's argument, for error messages; `None` for a
    downloaded archive.
    """

    def unreadable(e):
        reason = f"{type(e).__name__}: {e}"
        if data_dir is None:
            return ValueError(
                f"The downloaded LFW archive {archive} could not be read as "
                f"a tar archive ({reason}). Delete it to download it again."
            )
        return ValueError(
            f"Invalid value for argument `data_dir`. Expected an LFW folder "
            f"or a readable .tgz archive ({reason}). "
            f"Received: data_dir={data_dir}"
        )

    try:
        stat = archive.stat()
    except OSError as e:
        raise unreadable(e) from e
    key = f"{archive.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    stem = archive.name
    for suffix in (".tgz", ".tar.gz", ".tar"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    parent = default_cache_root(cache_dir) / "lfw_extracted"
    target = parent / f"{stem}-{digest}"
    if target.is_dir():
        return target
    parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".partial-", dir=parent))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [m for m in tar.getmembers() if wanted(m)]
            if hasattr(tarfile, "data_filter"):
                tar.extractall(scratch, members=members, filter="data")
            else:  # Python < 3.10.12: `wanted` alone keeps it safe.
                tar.extractall(scratch, members=members)
        try:
            # Atomic: a half-extracted archive is never taken for a done one.
            os.replace(scratch, target)
        except OSError:
            if not target.is_dir():  # Not a concurrent extraction: re-raise.
                raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise unreadable(e) from e
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def wanted(member):
    """Directories and JPEG files with safe relative names, nothing else."""
    name = member.name
    parts = Path(name).parts
    if os.path.isabs(name) or ".." in parts:
        return False
    if member.isdir():
        return True
    return member.isfile() and name.lower().endswith(JPEG_SUFFIXES)
