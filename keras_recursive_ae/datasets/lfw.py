"""Labeled Faces in the Wild (LFW), split by person, as `tf.data` datasets.

`load_lfw` reads LFW from a folder, from an official `.tgz` archive, or from
the official site (`download=True`), and falls back to the 100 LFW faces
that scikit-image ships when none of those is given. Images are decoded
lazily through `tf.data`, so the full set (13,233 images) never has to sit
in memory at once.
"""

import dataclasses
import os
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_recursive_ae.datasets import lfw_files
from keras_recursive_ae.utils.arguments import check_choice, check_int
from keras_recursive_ae.utils.messages import describe

LFW_DEEPFUNNELED_URL = "http://vis-www.cs.umass.edu/lfw/lfw-deepfunneled.tgz"
"""Official URL of the deep-funneled LFW archive, used by `download=True`."""

SPLITS = ("train", "validation", "test")

# The paper's preprocessing: a 128x128 centre crop of the 250x250 image.
_PAPER_CROP_SIZE = 128
_NUMPY_BATCH_SIZE = 256


@dataclasses.dataclass(frozen=True, repr=False)
class LFWSplits:
    """The train, validation and test splits returned by `load_lfw`.

    Attributes:
        train: Batched, prefetched `tf.data.Dataset` of float32 images in
            `[0, 1]` shaped `image_shape` (a leading batch dimension unless
            `batch_size=None`), reshuffled every epoch when `shuffle=True`.
            `None` if the split is empty.
        validation: Same, not shuffled; `None` when `validation_split=0`.
        test: Same, not shuffled; `None` when `test_split=0`.
        paths: Dict mapping each split name to the tuple of its image files,
            in dataset order (before the train set's shuffling). Empty
            tuples for the scikit-image fallback, which has no files.
        people: Dict mapping each split name to the sorted tuple of the
            people in it. No person is in two splits. Empty tuples for the
            scikit-image fallback, which has no names.
        num_images: Dict mapping each split name to its number of images.
        image_shape: `(height, width, channels)` of one image.
        source: Where the images came from, in words.
        skipped: Image files skipped because they are not complete JPEGs.

    Example:

    ```python
    from keras_recursive_ae.datasets.lfw import load_lfw

    splits = load_lfw(image_size=32)   # the scikit-image fallback: 100 faces
    splits.num_images                  # {'train': 80, 'validation': 10, 'test': 10}
    splits.image_shape                 # (32, 32, 1)
    images = next(iter(splits.train))  # a batch of 32 float32 images in [0, 1]
    ```
    """

    train: "tf.data.Dataset | None"
    validation: "tf.data.Dataset | None"
    test: "tf.data.Dataset | None"
    paths: dict
    people: dict
    num_images: dict
    image_shape: tuple
    source: str
    skipped: tuple = ()
    _unbatched: dict = dataclasses.field(default_factory=dict, compare=False)

    def numpy(self, split="test", max_images=None):
        """Returns the images of one split as a NumPy array.

        Images come in `paths` order, unshuffled, so the result is the same
        on every call. Meant for small uses (plots, scoring 100 test
        images): the whole result sits in memory.

        Args:
            split: One of `"train"`, `"validation"`, `"test"`. Defaults to
                `"test"`.
            max_images: Optional positive integer: return at most this many
                images, the first ones. Defaults to `None` (all).

        Returns:
            A float32 NumPy array shaped `(num_images, *image_shape)`.

        Raises:
            ValueError: If `split` or `max_images` is invalid.

        Example:

        >>> from keras_recursive_ae.datasets.lfw import load_lfw
        >>> splits = load_lfw()
        >>> splits.numpy("test", max_images=4).shape
        (4, 25, 25, 1)
        """
        split = check_choice(split, "split", SPLITS)
        check_int(max_images, "max_images", minimum=1, allow_none=True)
        dataset = self._unbatched.get(split)
        if dataset is None:
            return np.zeros((0, *self.image_shape), dtype="float32")
        if max_images is not None:
            dataset = dataset.take(max_images)
        batches = list(dataset.batch(_NUMPY_BATCH_SIZE).as_numpy_iterator())
        if not batches:
            return np.zeros((0, *self.image_shape), dtype="float32")
        return np.concatenate(batches, axis=0)

    def __repr__(self):
        counts = ", ".join(f"{s}={self.num_images[s]}" for s in SPLITS)
        return f"LFWSplits({counts}, image_shape={self.image_shape}, source={self.source!r})"


def load_lfw(
    data_dir=None,
    *,
    image_size=None,
    crop_size=None,
    grayscale=False,
    validation_split=0.1,
    test_split=0.1,
    seed=0,
    max_images=None,
    batch_size=32,
    shuffle=True,
    download=False,
    cache_dir=None,
    data_options=None,
):
    """Loads Labeled Faces in the Wild, split by person.

    **Sources**, in order of precedence:

    1. `data_dir` is a folder: an LFW folder in its usual
       `<Person>/<Person>_NNNN.jpg` layout (plain, funneled or
       deep-funneled), or a folder holding one such folder (as the
       archives extract, e.g. `lfw-deepfunneled/`).
    2. `data_dir` is a file: an official LFW `.tgz` archive. Its JPEG files
       are extracted safely (no absolute paths, no `..`, no links) into
       `cache_dir`, once; later calls reuse the extracted folder as long as
       the archive's path, size and modification time are unchanged.
    3. `data_dir=None, download=True`: the deep-funneled archive is fetched
       from `LFW_DEEPFUNNELED_URL` with `keras.utils.get_file` into
       `cache_dir` (once), then read as in 2.
    4. `data_dir=None, download=False`: falls back, with a warning, to the
       100 LFW faces that scikit-image ships (`skimage.data.lfw_subset()`,
       25x25 grey, needs the `lfw` extra). They carry no person names, so
       they are split by image index (the indices shuffled with `seed`), and
       the same person may appear in two splits; `paths` and `people` are
       empty.

    **Preprocessing.** Values are divided by 255 into `[0, 1]`. From each
    image a centred square of `crop_size` pixels is cut (the paper: 128 of
    the 250x250 image), then resized to `image_size` if that differs
    (bilinear, antialiased). If `crop_size` exceeds the image's smaller
    side, the largest centred square is cut instead and resized.
    `image_size=None` means 128 (the paper's size) for real LFW, and the
    native 25x25 for the scikit-image fallback, which is resized only to an
    `image_size` given explicitly (its faces are already cropped, so
    `crop_size` does not apply). `crop_size=None` means
    `max(image_size, 128)`: small images show the paper's 128-pixel face
    crop scaled down (`image_size=32` resizes the central 128x128 to
    32x32), large ones a larger crop. `grayscale=True` converts to one
    luma channel; the fallback always has one channel.

    **Splits.** People, not images, are split: the sorted names are
    shuffled by a `numpy.random.Generator` seeded with `seed`; in that
    order, the test split takes every person whose images still fit under
    `round(test_split * num_images)` (at least 1), the validation split
    then does the same with `validation_split`, and the train split takes
    the rest. The held-out splits thus hold the requested fractions of the
    images, or nearly; a person with more images than fit stays in train.
    No person is in two splits, and the same arguments give the same
    splits. With `max_images`, people are taken in the same shuffled order
    until `max_images` images are reached (the last person possibly in
    part) before splitting.

    **Checks.** Before any dataset is built, the selected files are checked
    cheaply, in parallel threads: a JPEG start marker and an end marker in
    the last kilobyte. Files that fail (corrupt, truncated, unreadable) are
    skipped with one warning that counts them and are listed in
    `LFWSplits.skipped`. Dot files (such as macOS `._*` files) are ignored.

    Args:
        data_dir: Optional path to an LFW folder or `.tgz` archive. Defaults
            to `None` (download or fall back, see above).
        image_size: Optional side, in pixels, of the square output images.
            Defaults to `None` (128, or 25 for the fallback).
        crop_size: Optional side, in pixels, of the centred square cut from
            each image before resizing. Defaults to `None`
            (`max(image_size, 128)`).
        grayscale: Whether to return one grey channel instead of RGB.
            Defaults to `False`.
        validation_split: Fraction of the images, in `[0, 1)`, to hold out
            for validation (whole people). Defaults to `0.1`.
        test_split: Fraction of the images, in `[0, 1)`, to hold out for
            testing (whole people). Defaults to `0.1`.
        seed: Optional non-negative integer seed for the split and for the
            train set's shuffling. `None` gives different splits on every
            call. Defaults to `0`.
        max_images: Optional positive integer: load at most this many images
            in all. Defaults to `None` (all).
        batch_size: Optional positive batch size. `None` gives unbatched
            datasets. Defaults to `32`.
        shuffle: Whether the train dataset reshuffles its images every epoch
            (seeded with `seed`). Defaults to `True`.
        download: Whether to download LFW when `data_dir` is `None`.
            Defaults to `False`.
        cache_dir: Optional folder for downloaded and extracted archives.
            Defaults to `$KERAS_HOME` or `~/.keras`; in both cases the
            files go to its `datasets/` subfolder.
        data_options: Optional `tf.data.Options` given to every dataset.
            Defaults to `None`: `default_data_options()`, tf.data's
            autotuner off. Pass `tf.data.Options()` for tf.data's own
            defaults (autotuning on), which may suit machines with more
            cores.

    Returns:
        An `LFWSplits` with `train`, `validation` and `test` datasets, the
        `paths` and `people` of each split, `num_images`, `image_shape`,
        `source`, `skipped`, and a `numpy(split)` method.

    Raises:
        FileNotFoundError: If `data_dir` does not exist.
        PermissionError: If `data_dir` cannot be read. Person folders inside
            it that cannot be read are skipped with a warning.
        ValueError: If an argument is invalid, `data_dir` holds no LFW
            images, the archive cannot be read, or there are too few people
            to fill every split.
        ImportError: If the fallback is needed and scikit-image is missing.

    Example:

    ```python
    import keras
    from keras_recursive_ae.datasets.lfw import load_lfw

    # Without a folder this falls back, with a warning, to the 100 LFW faces
    # that scikit-image ships; pass your LFW folder or .tgz archive, e.g.
    # load_lfw("path/to/lfw-deepfunneled", image_size=128), for the real set.
    splits = load_lfw(image_size=32)
    model = keras.Sequential([
        keras.Input(splits.image_shape),
        keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="mse")
    pairs = lambda images: (images, images)
    model.fit(splits.train.map(pairs), validation_data=splits.validation.map(pairs),
              epochs=1, verbose=0)
    x_test = splits.numpy("test", max_images=8)   # shape (8, 32, 32, 1)
    ```
    """
    check_int(image_size, "image_size", minimum=1, allow_none=True)
    check_int(crop_size, "crop_size", minimum=1, allow_none=True)
    check_int(max_images, "max_images", minimum=1, allow_none=True)
    check_int(batch_size, "batch_size", minimum=1, allow_none=True)
    for name, value in (("grayscale", grayscale), ("shuffle", shuffle), ("download", download)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(
                f"Invalid value for argument `{name}`. Expected True or "
                f"False. Received: {name}={describe(value)}"
            )
    for name, value in (("validation_split", validation_split), ("test_split", test_split)):
        number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
        if not number or not 0 <= value < 1:
            raise ValueError(
                f"Invalid value for argument `{name}`. Expected a number in "
                f"[0, 1). Received: {name}={describe(value)}"
            )
    if validation_split + test_split >= 1:
        raise ValueError(
            f"Arguments `validation_split` and `test_split` must sum to less "
            f"than 1, leaving images to train on. Received: "
            f"validation_split={validation_split}, test_split={test_split}"
        )
    if check_int(seed, "seed", allow_none=True) is None:
        # One draw, shared by the split and the train set's shuffling.
        seed = int(np.random.default_rng().integers(2**31))
    seed = int(seed)
    if data_options is not None and not isinstance(data_options, tf.data.Options):
        raise ValueError(
            "Invalid value for argument `data_options`. Expected a "
            f"`tf.data.Options` or None. Received: data_options={describe(data_options)}"
        )
    options = dict(
        validation_split=validation_split,
        test_split=test_split,
        seed=seed,
        max_images=max_images,
        batch_size=batch_size,
        shuffle=shuffle,
        data_options=default_data_options() if data_options is None else data_options,
    )

    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise ValueError(
                "Invalid value for argument `data_dir`. Expected a path to an "
                f"LFW folder or .tgz archive, or None. Received: data_dir={describe(data_dir)}"
            )
        path = Path(os.fspath(data_dir)).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"Invalid value for argument `data_dir`. Expected an LFW "
                f"folder or .tgz archive, but the path does not exist. "
                f"Received: data_dir={data_dir}"
            )
        if path.is_dir():
            root, source = path, f"LFW folder {path}"
        else:
            root = lfw_files.extract_archive(path, cache_dir, data_dir)
            source = f"LFW archive {path} (extracted to {root})"
    elif download:
        archive = keras.utils.get_file(
            fname="lfw-deepfunneled.tgz",
            origin=LFW_DEEPFUNNELED_URL,
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
        )
        root = lfw_files.extract_archive(Path(archive), cache_dir, None)
        source = f"LFW download {LFW_DEEPFUNNELED_URL} (extracted to {root})"
    else:
        return _load_skimage_fallback(image_size, options)

    image_size = _PAPER_CROP_SIZE if image_size is None else image_size
    if crop_size is None:
        crop_size = max(image_size, _PAPER_CROP_SIZE)
    return _load_folder(root, source, image_size, crop_size, grayscale, options)


def default_data_options():
    """The `tf.data.Options` that `load_lfw` gives its datasets by default.

    tf.data's autotuner off (`autotune.enabled = False`): parallel maps
    and prefetching keep a fixed setting instead of a tuned one. Measured
    on 2 CPU cores only: with the autotuner on, training sometimes sat idle
    for about 40 s in a 2-epoch run (TF 2.21; `plain` against
    `plain_autotune_on` in `benchmarks/bench_training.py`, see
    `docs/performance.md`). On more cores, compare with
    `load_lfw(..., data_options=tf.data.Options())`.

    Returns:
        A new `tf.data.Options`.

    Example:

    >>> import tensorflow as tf
    >>> from keras_recursive_ae.datasets.lfw import default_data_options, load_lfw
    >>> default_data_options().autotune.enabled
    False
    >>> options = tf.data.Options()
    >>> options.autotune.enabled = True
    >>> splits = load_lfw(data_options=options)
    >>> splits.train.options().autotune.enabled
    True
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def _load_folder(root, source, image_size, crop_size, grayscale, options):
    """LFW from the folder `root`; `options` holds the other arguments of `load_lfw`."""
    max_images = options["max_images"]
    people = lfw_files.find_people(root)
    names = sorted(people)
    order = np.random.default_rng(options["seed"]).permutation(len(names))
    groups = []
    total = 0
    for index in order:
        files = people[names[index]]
        if max_images is not None:
            files = files[: max_images - total]
        groups.append((names[index], files))
        total += len(files)
        if max_images is not None and total >= max_images:
            break

    candidates = [p for _, files in groups for p in files]
    complete = lfw_files.check_jpegs(candidates)
    bad = tuple(p for p, ok in zip(candidates, complete) if not ok)
    if bad:
        warnings.warn(
            f"Skipped {len(bad)} of {len(candidates)} image files under "
            f"{root} that are not complete JPEG files (corrupt, truncated "
            f"or unreadable), e.g. {bad[0]}.",
            stacklevel=3,
        )
        bad_set = set(bad)
        groups = [(name, [p for p in files if p not in bad_set]) for name, files in groups]
        groups = [(name, files) for name, files in groups if files]
    if not groups:
        raise ValueError(
            f"Invalid value for argument `data_dir`. No readable JPEG image "
            f"found in the LFW layout `<Person>/<Person>_NNNN.jpg`. "
            f"Received: data_dir={root}"
        )

    assignment = lfw_files.split_groups(
        [len(files) for _, files in groups],
        options["validation_split"],
        options["test_split"],
        f"data_dir={root}",
    )
    paths = {split: [] for split in SPLITS}
    split_people = {split: [] for split in SPLITS}
    for (name, files), split in zip(groups, assignment):
        paths[split].extend(files)
        split_people[split].append(name)

    channels = 1 if grayscale else 3

    def load(path):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3, dct_method="INTEGER_ACCURATE")
        return _crop_and_resize(image, crop_size, image_size, grayscale)

    sources = {
        split: tf.data.Dataset.from_tensor_slices(tf.constant(paths[split], dtype=tf.string))
        if paths[split]
        else None
        for split in SPLITS
    }
    return LFWSplits(
        **_datasets(sources, load, options),
        paths={s: tuple(paths[s]) for s in SPLITS},
        people={s: tuple(sorted(split_people[s])) for s in SPLITS},
        num_images={s: len(paths[s]) for s in SPLITS},
        image_shape=(image_size, image_size, channels),
        source=source,
        skipped=bad,
    )


def _datasets(sources, fn, options):
    """Builds the three datasets and their unshuffled, unbatched versions.

    Args:
        sources: Dict mapping each split to a dataset of undecoded elements
            (file names or small arrays), or to `None` for an empty split.
        fn: The per-element decoding function.
        options: The checked arguments of `load_lfw`: `batch_size`,
            `shuffle`, `seed` and `data_options` (the `tf.data.Options` of
            every dataset).

    Returns:
        A dict with `train`, `validation`, `test` and `_unbatched`.
    """
    result = {"_unbatched": {}}
    for split in SPLITS:
        source = sources[split]
        if source is None:
            result[split] = None
            result["_unbatched"][split] = None
            continue
        source = source.with_options(options["data_options"])
        result["_unbatched"][split] = source.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
        if split == "train" and options["shuffle"]:
            # Shuffled before decoding: the buffer holds file names only.
            source = source.shuffle(
                int(source.cardinality()),
                seed=options["seed"],
                reshuffle_each_iteration=True,
            )
        dataset = source.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
        if options["batch_size"] is not None:
            dataset = dataset.batch(options["batch_size"])
        result[split] = dataset.prefetch(tf.data.AUTOTUNE)
    return result


def _crop_and_resize(image, crop_size, image_size, grayscale):
    """Centre crop of `crop_size` (or the largest square), then resize."""
    image = tf.cast(image, tf.float32) / 255.0
    if grayscale:
        image = tf.image.rgb_to_grayscale(image)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    side = tf.minimum(tf.minimum(height, width), crop_size)
    top = (height - side) // 2
    left = (width - side) // 2
    image = image[top : top + side, left : left + side, :]
    image = tf.cond(
        tf.equal(side, image_size),
        lambda: image,
        lambda: tf.image.resize(image, (image_size, image_size), antialias=True),
    )
    channels = 1 if grayscale else 3
    return tf.ensure_shape(image, (image_size, image_size, channels))


def _load_skimage_fallback(image_size, options):
    """The 100 faces of scikit-image; `options` as for `_load_folder`."""
    max_images = options["max_images"]
    try:
        from skimage import data as skimage_data
    except ImportError as e:
        raise ImportError(
            "load_lfw() was given no `data_dir` and `download=False`, so it "
            "falls back to the LFW faces shipped with scikit-image, which is "
            "not installed. Install it with "
            "`pip install keras-recursive-ae[lfw]`, pass `data_dir`, or pass "
            "`download=True`."
        ) from e
    faces = np.asarray(skimage_data.lfw_subset()[:100], dtype="float32")
    if faces.max() > 1.0:  # Documented as uint8; some versions ship floats.
        faces = faces / 255.0
    faces = faces[..., None]
    native = faces.shape[1]
    size = native if image_size is None else image_size
    resize_note = "" if size == native else f", resized to {size}x{size}"
    warnings.warn(
        f"load_lfw() fell back to the 100 LFW faces shipped with "
        f"scikit-image (skimage.data.lfw_subset(): {native}x{native} grey"
        f"{resize_note}), because no `data_dir` was given and "
        f"download=False. They have no person names, so they are split by "
        f"image index and a person may appear in two splits. Pass "
        f"data_dir= an LFW folder or .tgz archive, or download=True, for "
        f"the real LFW.",
        stacklevel=3,
    )

    order = np.random.default_rng(options["seed"]).permutation(len(faces))
    if max_images is not None:
        order = order[:max_images]
    assignment = lfw_files.split_groups(
        [1] * len(order),
        options["validation_split"],
        options["test_split"],
        f"skimage.data.lfw_subset() with max_images={max_images}",
    )
    indices = {
        split: np.array([i for i, s in zip(order, assignment) if s == split], dtype=int)
        for split in SPLITS
    }

    def resize(image):
        if size == native:
            return image
        return tf.image.resize(image, (size, size), antialias=True)

    sources = {
        split: tf.data.Dataset.from_tensor_slices(faces[indices[split]])
        if len(indices[split])
        else None
        for split in SPLITS
    }
    return LFWSplits(
        **_datasets(sources, resize, options),
        paths={s: () for s in SPLITS},
        people={s: () for s in SPLITS},
        num_images={s: len(indices[s]) for s in SPLITS},
        image_shape=(size, size, 1),
        source=(
            f"scikit-image skimage.data.lfw_subset(): 100 LFW faces, "
            f"{native}x{native} grey{resize_note}, split by image index "
            f"(no person names)"
        ),
    )
