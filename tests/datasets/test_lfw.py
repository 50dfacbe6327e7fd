import io
import os
import re
import shutil
import tarfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import LFW_DIR

from keras_recursive_ae.datasets import lfw as lfw_module
from keras_recursive_ae.datasets.lfw import LFWSplits, load_lfw

# Tests that read the real LFW folder are `slow` and skipped only without it.
needs_lfw = pytest.mark.skipif(
    not LFW_DIR.is_dir(), reason=f"the real LFW folder is absent: {LFW_DIR}"
)


def _pillow_crop(path, size=128):
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB"), dtype="float32")
    top = (image.shape[0] - size) // 2
    left = (image.shape[1] - size) // 2
    return image[top : top + size, left : left + size] / 255.0


def _person(path):
    return Path(path).parent.name


def _synthetic_jpeg(seed, size=250):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.stack(
        [128 + 100 * np.sin(xx / (10 + seed) + c) * np.cos(yy / 17) for c in range(3)],
        axis=-1,
    )
    image = np.clip(image + rng.normal(0, 5, image.shape), 0, 255)
    return tf.io.encode_jpeg(image.astype("uint8"), quality=90).numpy()


def _write_folder(root, people, real=True):
    """Writes `{person: n_images}` in the LFW layout under `root`."""
    sources = []
    if real:
        for name in sorted(os.listdir(LFW_DIR)):
            if (LFW_DIR / name).is_dir():
                sources.extend(sorted((LFW_DIR / name).glob("*.jpg")))
            if len(sources) >= sum(people.values()):
                break
    index = 0
    for person, count in people.items():
        (root / person).mkdir(parents=True)
        for k in range(1, count + 1):
            target = root / person / f"{person}_{k:04d}.jpg"
            if real:
                shutil.copyfile(sources[index], target)
            else:
                target.write_bytes(_synthetic_jpeg(index))
            index += 1
    return root


@pytest.fixture(scope="module")
def real_splits():
    return load_lfw(LFW_DIR, max_images=300, seed=0)


# Real LFW folder.


@pytest.mark.slow
@needs_lfw
def test_real_counts_and_split_by_person(real_splits):
    s = real_splits
    assert isinstance(s, LFWSplits)
    assert sum(s.num_images.values()) == 300
    assert s.num_images == {k: len(v) for k, v in s.paths.items()}
    # Held-out splits hold their fraction of the images exactly here.
    assert s.num_images["test"] == 30
    assert s.num_images["validation"] == 30
    assert s.skipped == ()
    assert s.source == f"LFW folder {LFW_DIR}"
    people = {k: set(v) for k, v in s.people.items()}
    assert not people["train"] & people["validation"]
    assert not people["train"] & people["test"]
    assert not people["validation"] & people["test"]
    for split, paths in s.paths.items():
        assert {_person(p) for p in paths} == people[split]
        assert all(_person(p) + "_" in Path(p).name for p in paths)


@pytest.mark.slow
@needs_lfw
def test_real_shapes_range_and_pixels(real_splits):
    s = real_splits
    assert s.image_shape == (128, 128, 3)
    batch = next(iter(s.train))
    assert batch.shape == (32, 128, 128, 3)
    assert batch.dtype == tf.float32
    x = s.numpy("test")
    assert x.shape == (30, 128, 128, 3)
    assert x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.1
    # The paper's preprocessing: central 128x128 of the 250x250, /255.
    expected = np.stack([_pillow_crop(p) for p in s.paths["test"][:3]])
    np.testing.assert_allclose(x[:3], expected, atol=1e-6)
    assert s.numpy("validation", max_images=5).shape == (5, 128, 128, 3)
    repr(s)  # Small, even for 13k paths.
    assert len(repr(s)) < 300


@pytest.mark.slow
@needs_lfw
def test_real_determinism_and_seeds(real_splits):
    again = load_lfw(LFW_DIR, max_images=300, seed=0)
    assert again.paths == real_splits.paths
    assert again.people == real_splits.people
    other = load_lfw(LFW_DIR, max_images=300, seed=1)
    assert set(other.people["test"]) != set(real_splits.people["test"])
    assert sum(other.num_images.values()) == 300

    # The train set is reshuffled every epoch, deterministically.
    def two_epochs(splits):
        return [np.concatenate([b.numpy() for b in splits.train.take(2)]) for _ in range(2)]

    first, second = two_epochs(load_lfw(LFW_DIR, max_images=300, seed=0))
    assert not np.array_equal(first, second)
    replay = two_epochs(load_lfw(LFW_DIR, max_images=300, seed=0))
    np.testing.assert_array_equal(replay[0], first)
    np.testing.assert_array_equal(replay[1], second)


@pytest.mark.slow
@needs_lfw
def test_real_whole_set_split_fractions():
    s = load_lfw(LFW_DIR, validation_split=0.2, test_split=0.1)
    assert sum(s.num_images.values()) == 13233
    assert sum(len(v) for v in s.people.values()) == 5749
    assert s.num_images["test"] == round(0.1 * 13233)
    assert s.num_images["validation"] == round(0.2 * 13233)
    assert len(set(s.people["test"]) | set(s.people["train"])) == len(s.people["test"]) + len(
        s.people["train"]
    )


@pytest.mark.slow
@needs_lfw
def test_real_small_sizes_resize_the_face_crop():
    s = load_lfw(LFW_DIR, image_size=32, max_images=20, batch_size=None)
    assert s.image_shape == (32, 32, 3)
    assert next(iter(s.train)).shape == (32, 32, 3)
    x = s.numpy("train", max_images=2)
    crops = np.stack([_pillow_crop(p, 128) for p in s.paths["train"][:2]])
    expected = tf.image.resize(crops, (32, 32), antialias=True).numpy()
    np.testing.assert_allclose(x, expected, atol=1e-5)

    grey = load_lfw(LFW_DIR, image_size=64, crop_size=200, grayscale=True, max_images=20)
    assert grey.image_shape == (64, 64, 1)
    x = grey.numpy("train", max_images=2)
    crops = np.stack([_pillow_crop(p, 200) for p in grey.paths["train"][:2]])
    expected = tf.image.resize(tf.image.rgb_to_grayscale(crops), (64, 64), antialias=True).numpy()
    np.testing.assert_allclose(x, expected, atol=1e-5)

    # Larger than the image: the whole image, resized up.
    big = load_lfw(LFW_DIR, image_size=300, max_images=5, test_split=0.2)
    x = big.numpy("train", max_images=1)
    assert x.shape == (1, 300, 300, 3)
    whole = _pillow_crop(big.paths["train"][0], 250)[None]
    expected = tf.image.resize(whole, (300, 300), antialias=True).numpy()
    np.testing.assert_allclose(x, expected, atol=1e-5)


# Archives, corrupt files, errors (a few real images copied to tmp_path).


@pytest.mark.slow
@needs_lfw
def test_tgz_archive_is_extracted_once(tmp_path, monkeypatch):
    people = {"Ann_A": 3, "Bob_B": 2, "Cid_C": 2, "Dee_D": 1, "Eve_E": 2}
    folder = _write_folder(tmp_path / "src" / "lfw-mini", people)
    archive = tmp_path / "lfw-mini.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="lfw-mini")
        # Hostile or useless members, which must not be extracted.
        for name, data in [("../evil.jpg", b"x"), ("notes.txt", b"hi")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cache = tmp_path / "cache"
    s = load_lfw(archive, cache_dir=cache, validation_split=0.2, test_split=0.2)
    assert sum(s.num_images.values()) == 10
    assert s.source.startswith(f"LFW archive {archive}")
    extracted = list((cache / "datasets" / "lfw_extracted").iterdir())
    assert len(extracted) == 1
    assert extracted[0].name.startswith("lfw-mini-")
    assert not (tmp_path / "evil.jpg").exists()
    assert not (cache / "datasets" / "evil.jpg").exists()
    assert not list(extracted[0].rglob("*.txt"))
    original = _pillow_crop(folder / "Ann_A" / "Ann_A_0001.jpg")
    all_images = np.concatenate([s.numpy(k) for k in ("train", "validation")])
    all_images = np.concatenate([all_images, s.numpy("test")])
    assert any(np.allclose(x, original, atol=1e-6) for x in all_images)

    # A second call reuses the extraction and never reopens the archive.
    def fail(*args, **kwargs):
        raise AssertionError("archive extracted twice")

    monkeypatch.setattr(tarfile, "open", fail)
    again = load_lfw(archive, cache_dir=cache, validation_split=0.2)
    assert sum(again.num_images.values()) == 10


@pytest.mark.slow
@needs_lfw
def test_download_reuses_the_archive_path(tmp_path, monkeypatch):
    folder = _write_folder(tmp_path / "src" / "lfw-deepfunneled", {"Ann_A": 2, "Bob_B": 2})
    archive = tmp_path / "lfw-deepfunneled.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="lfw-deepfunneled")
    calls = []

    def fake_get_file(fname=None, origin=None, **kwargs):
        calls.append((fname, origin, kwargs))
        return str(archive)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    s = load_lfw(
        download=True,
        cache_dir=tmp_path / "cache",
        validation_split=0,
        test_split=0.25,
    )
    assert calls[0][:2] == (
        "lfw-deepfunneled.tgz",
        lfw_module.LFW_DEEPFUNNELED_URL,
    )
    assert calls[0][2]["cache_dir"] == str(tmp_path / "cache")
    assert s.source.startswith("LFW download")
    assert s.num_images == {"train": 2, "validation": 0, "test": 2}
    assert s.validation is None
    assert s.numpy("validation").shape == (0, 128, 128, 3)


@pytest.mark.slow
@needs_lfw
def test_corrupt_files_are_skipped_with_one_warning(tmp_path):
    root = _write_folder(tmp_path / "lfw", {"Ann_A": 3, "Bob_B": 2, "Cid_C": 2})
    good = (root / "Ann_A" / "Ann_A_0001.jpg").read_bytes()
    truncated = root / "Bob_B" / "Bob_B_0003.jpg"
    truncated.write_bytes(good[: len(good) // 2])
    garbage = root / "Dan_D" / "Dan_D_0001.jpg"
    garbage.parent.mkdir()
    garbage.write_bytes(b"not a jpeg at all" * 100)
    (root / "Ann_A" / "._Ann_A_0001.jpg").write_bytes(b"AppleDouble")
    # The check is not vacuous: TensorFlow cannot decode the truncated file.
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.io.decode_jpeg(truncated.read_bytes())

    with pytest.warns(UserWarning, match=r"Skipped 2 of 9 image files") as record:
        s = load_lfw(root, validation_split=0, test_split=0.3)
    assert len([w for w in record if "Skipped" in str(w.message)]) == 1
    assert set(s.skipped) == {str(truncated), str(garbage)}
    assert sum(s.num_images.values()) == 7
    assert "Dan_D" not in sum(s.people.values(), ())
    for split in ("train", "test"):
        assert s.numpy(split).shape == (s.num_images[split], 128, 128, 3)


def test_synthetic_folder_without_real_data(tmp_path):
    # Runs everywhere: JPEGs made here, one top-level folder as in archives.
    root = _write_folder(
        tmp_path / "lfw" / "lfw-funneled",
        {"Ann_A": 2, "Bob_B": 1, "Cid_C": 1, "Dee_D": 3},
        real=False,
    )
    s = load_lfw(tmp_path / "lfw", image_size=48, validation_split=0.15, test_split=0.15)
    assert s.source == f"LFW folder {tmp_path / 'lfw'}"
    assert s.image_shape == (48, 48, 3)
    assert sum(s.num_images.values()) == 7
    assert all(str(root) in p for v in s.paths.values() for p in v)
    people = [set(v) for v in s.people.values()]
    assert sum(len(p) for p in people) == len(set().union(*people)) == 4
    x = np.concatenate([s.numpy(k) for k in ("train", "validation", "test")])
    assert x.shape == (7, 48, 48, 3)
    assert 0 <= x.min() and x.max() <= 1


def test_missing_and_empty_folders(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=re.escape(f"data_dir={missing}")):
        load_lfw(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=re.escape(f"data_dir={empty}")):
        load_lfw(empty)
    # Images not in <Person>/ folders, or not JPEGs, are not LFW.
    loose = tmp_path / "loose"
    (loose / "Ann_A").mkdir(parents=True)
    (loose / "top.jpg").write_bytes(_synthetic_jpeg(0, 32))
    (loose / "Ann_A" / "Ann_A_0001.png").write_bytes(b"png")
    with pytest.raises(ValueError, match=re.escape(f"data_dir={loose}")):
        load_lfw(loose)


def test_folder_of_only_corrupt_files(tmp_path):
    root = tmp_path / "lfw"
    (root / "Ann_A").mkdir(parents=True)
    (root / "Ann_A" / "Ann_A_0001.jpg").write_bytes(b"\xff\xd8\xff truncated")
    with pytest.warns(UserWarning, match="Skipped 1 of 1"):
        with pytest.raises(ValueError, match=re.escape(f"data_dir={root}")):
            load_lfw(root)


def test_unreadable_archives(tmp_path):
    garbage = tmp_path / "garbage.tgz"
    garbage.write_bytes(b"this is not a tar archive" * 50)
    with pytest.raises(ValueError, match=re.escape(f"data_dir={garbage}")):
        load_lfw(garbage, cache_dir=tmp_path / "cache")
    # A truncated gzip stream fails part-way through extraction.
    root = _write_folder(tmp_path / "src" / "lfw", {"Ann_A": 3}, real=False)
    archive = tmp_path / "truncated.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="lfw")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ValueError, match=re.escape(f"data_dir={archive}")):
        load_lfw(archive, cache_dir=tmp_path / "cache")
    # Nothing half-extracted is left to be mistaken for a finished one.
    leftovers = list((tmp_path / "cache" / "datasets" / "lfw_extracted").iterdir())
    assert leftovers == []


def test_too_few_people(tmp_path):
    root = _write_folder(tmp_path / "lfw", {"Ann_A": 2, "Bob_B": 2}, real=False)
    with pytest.raises(
        ValueError,
        match=re.escape(f"data_dir={root}")
        + ".*"
        + re.escape("validation_split=0.1, test_split=0.1"),
    ):
        load_lfw(root)
    s = load_lfw(root, validation_split=0, test_split=0.5)
    assert s.people["validation"] == ()
    assert len(s.people["train"]) == len(s.people["test"]) == 1
    assert set(s.people["train"] + s.people["test"]) == {"Ann_A", "Bob_B"}
    pytest.importorskip("skimage.data")
    with pytest.warns(UserWarning, match="fell back"):
        with pytest.raises(ValueError, match=re.escape("max_images=2")):
            load_lfw(max_images=2)


def test_unreadable_download(tmp_path, monkeypatch):
    garbage = tmp_path / "lfw-deepfunneled.tgz"
    garbage.write_bytes(b"<html>not found</html>")
    monkeypatch.setattr(keras.utils, "get_file", lambda *args, **kwargs: str(garbage))
    with pytest.raises(ValueError, match=re.escape(f"downloaded LFW archive {garbage}")):
        load_lfw(download=True, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    "kwargs, received",
    [
        ({"image_size": 0}, "image_size=0"),
        ({"image_size": 32.0}, "image_size=32.0"),
        ({"crop_size": -4}, "crop_size=-4"),
        ({"max_images": 0}, "max_images=0"),
        ({"batch_size": True}, "batch_size=True"),
        ({"validation_split": 1.0}, "validation_split=1.0"),
        ({"test_split": -0.1}, "test_split=-0.1"),
        (
            {"validation_split": 0.5, "test_split": 0.5},
            "validation_split=0.5, test_split=0.5",
        ),
        ({"seed": "zero"}, "seed='zero'"),
    ],
)
def test_invalid_arguments(kwargs, received):
    with pytest.raises(ValueError, match=re.escape(received)):
        load_lfw(**kwargs)


def test_numpy_invalid_split():
    pytest.importorskip("skimage.data")
    with pytest.warns(UserWarning):
        s = load_lfw()
    with pytest.raises(ValueError, match=re.escape("split='training'")):
        s.numpy("training")


# scikit-image fallback.


def test_skimage_fallback():
    skimage_data = pytest.importorskip("skimage.data")
    with pytest.warns(UserWarning, match="fell back.*no `data_dir`"):
        s = load_lfw()
    assert s.image_shape == (25, 25, 1)
    assert s.num_images == {"train": 80, "validation": 10, "test": 10}
    assert s.paths == {"train": (), "validation": (), "test": ()}
    assert s.people == {"train": (), "validation": (), "test": ()}
    assert "lfw_subset" in s.source
    x = np.concatenate([s.numpy(k) for k in ("train", "validation", "test")])
    assert x.shape == (100, 25, 25, 1) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1
    # Exactly the 100 faces (not the 100 non-faces that follow them).
    faces = np.asarray(skimage_data.lfw_subset()[:100], "float32")[..., None]
    if faces.max() > 1:
        faces = faces / 255
    key = lambda a: a.reshape(len(a), -1).sum(axis=1)  # noqa: E731
    np.testing.assert_allclose(np.sort(key(x)), np.sort(key(faces)), rtol=1e-5)
    assert next(iter(s.train)).shape == (32, 25, 25, 1)


def test_skimage_fallback_options():
    pytest.importorskip("skimage.data")
    with pytest.warns(UserWarning, match="resized to 32x32"):
        s = load_lfw(image_size=32, max_images=20, batch_size=4)
    assert s.image_shape == (32, 32, 1)
    assert s.num_images == {"train": 16, "validation": 2, "test": 2}
    assert next(iter(s.train)).shape == (4, 32, 32, 1)
    with pytest.warns(UserWarning):
        same = load_lfw(image_size=32, max_images=20, batch_size=4)
        other = load_lfw(image_size=32, max_images=20, batch_size=4, seed=1)
    np.testing.assert_array_equal(same.numpy("test"), s.numpy("test"))
    assert not np.array_equal(other.numpy("test"), s.numpy("test"))


def test_data_options_default_to_no_autotuning_and_can_be_given():
    with pytest.warns(UserWarning, match="fell back"):
        default = load_lfw(image_size=8, batch_size=4)
    for split in ("train", "validation", "test"):
        assert getattr(default, split).options().autotune.enabled is False
    assert lfw_module.default_data_options().autotune.enabled is False

    options = tf.data.Options()
    options.autotune.enabled = True
    options.threading.private_threadpool_size = 1
    with pytest.warns(UserWarning, match="fell back"):
        tuned = load_lfw(image_size=8, batch_size=4, data_options=options)
    for split in ("train", "validation", "test"):
        dataset = getattr(tuned, split)
        assert dataset.options().autotune.enabled is True
        assert dataset.options().threading.private_threadpool_size == 1
    # Same images either way: options change how, not what, is read.
    np.testing.assert_array_equal(tuned.numpy("test"), default.numpy("test"))


@pytest.mark.parametrize("value", [{"autotune": False}, "off", False])
def test_data_options_must_be_tf_data_options(value):
    with pytest.raises(ValueError, match=re.escape(f"data_options={value!r}")):
        load_lfw(image_size=8, data_options=value)
