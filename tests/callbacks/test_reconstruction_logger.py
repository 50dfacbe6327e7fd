"""ReconstructionLogger: what it writes to TensorBoard, read back from the event files."""

import importlib.util
import io
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import REPO_ROOT
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

from keras_recursive_ae import MirroredConvStack, RecursiveTrainer, metrics
from keras_recursive_ae.callbacks.reconstruction_logger import ReconstructionLogger

SIZE = 16
METRIC_TAGS = [
    "reconstruction/sum_squared_error",
    "reconstruction/psnr",
    "reconstruction/ssim",
    "reconstruction/sharpness_ratio",
]


def _images(count=32, channels=3):
    return np.random.default_rng(0).random((count, SIZE, SIZE, channels)).astype("float32")


def _stack():
    return MirroredConvStack(filters=(4, 8), input_shape=(SIZE, SIZE, 3))


def _compiled(model):
    model.compile(optimizer="adam", loss="mse")
    return model


def _read(run_dir):
    """`{tag: [(step, value), ...]}` over every event file of `run_dir`.

    Scalars come back as floats, images as `uint8` arrays shaped
    `(height, width, channels)`.
    """
    found = {}
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(path), size_guidance={"tensors": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["tensors"]:
            for event in accumulator.Tensors(tag):
                value = tensor_util.make_ndarray(event.tensor_proto)
                if value.dtype == object:  # [width, height, PNG bytes]
                    width, height, png = value
                    image = np.asarray(Image.open(io.BytesIO(png)))
                    if image.ndim == 2:
                        image = image[..., None]
                    assert image.shape[:2] == (int(height), int(width))
                    value = image
                else:
                    value = float(value)
                found.setdefault(tag, []).append((event.step, value))
    return {tag: sorted(events, key=lambda e: e[0]) for tag, events in found.items()}


def _steps(events):
    return [step for step, _ in events]


def _tile(grid, row, column, size=SIZE, pad=2):
    y, x = pad + row * (size + pad), pad + column * (size + pad)
    return grid[y : y + size, x : x + size]


def test_plain_fit_writes_one_grid_and_the_metrics_per_epoch(tmp_path):
    x = _images()
    model = _compiled(_stack())
    shown = x[:4]
    logger = ReconstructionLogger(shown, tmp_path, max_images=3)
    model.fit(x, x, epochs=3, batch_size=16, verbose=0, callbacks=[logger])

    assert sorted(p.name for p in tmp_path.iterdir()) == ["validation"]
    events = _read(tmp_path / "validation")
    grids = events["reconstructions"]
    assert _steps(grids) == [0, 1, 2]
    for _, grid in grids:
        # Two rows of three 16x16 RGB tiles with 2-pixel gaps.
        assert grid.shape == (2 * SIZE + 3 * 2, 3 * SIZE + 4 * 2, 3)

    # Top row: the images; bottom row: the model's reconstructions at the end.
    last = grids[-1][1]
    reconstructions = keras.ops.convert_to_numpy(model(shown[:3], training=False))
    for i in range(3):
        np.testing.assert_allclose(_tile(last, 0, i), np.round(shown[i] * 255), atol=1)
        np.testing.assert_allclose(_tile(last, 1, i), np.round(reconstructions[i] * 255), atol=1)
    assert not np.array_equal(_tile(last, 0, 0), _tile(last, 1, 0))

    for tag in METRIC_TAGS:
        assert _steps(events[tag]) == [0, 1, 2], tag
        assert all(math.isfinite(value) for _, value in events[tag]), tag
    expected = {
        "reconstruction/sum_squared_error": metrics.sum_squared_error,
        "reconstruction/psnr": metrics.psnr,
        "reconstruction/ssim": metrics.ssim,
        "reconstruction/sharpness_ratio": metrics.sharpness_ratio,
    }
    for tag, metric in expected.items():
        value = float(np.mean(metric(shown[:3], reconstructions)))
        assert events[tag][-1][1] == pytest.approx(value, rel=1e-4), tag
    # A plain fit has no stage.
    assert "stage" not in events


def test_every_and_train_subset(tmp_path):
    x = _images()
    model = _compiled(_stack())
    logger = ReconstructionLogger(x[:2], tmp_path, every=2, subset="train")
    model.fit(x, x, epochs=5, batch_size=16, verbose=0, callbacks=[logger])

    assert logger.run_dir == str(tmp_path / "train")
    events = _read(tmp_path / "train")
    assert _steps(events["reconstructions"]) == [1, 3]
    assert events["reconstructions"][0][1].shape == (2 * SIZE + 6, 2 * SIZE + 6, 3)


def test_grey_images(tmp_path):
    x = _images(channels=1)
    model = _compiled(
        keras.Sequential(
            [
                keras.Input((SIZE, SIZE, 1)),
                keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid"),
            ]
        )
    )
    logger = ReconstructionLogger(x[:2], tmp_path)
    model.fit(x, x, epochs=1, batch_size=16, verbose=0, callbacks=[logger])
    ((step, grid),) = _read(tmp_path / "validation")["reconstructions"]
    assert step == 0 and grid.shape == (2 * SIZE + 6, 2 * SIZE + 6, 1)


def test_stage_from_the_logs_and_the_stage_view(tmp_path):
    # The callback API a RecursiveTrainer drives: one run, the stage in the logs.
    stack = _stack()
    x = _images(count=4)
    logger = ReconstructionLogger(x, tmp_path, autoencoder=stack)
    logger.set_model(stack)
    logger.on_train_begin()
    # Keras' CallbackList hands numbers in the logs over as floats (2.0);
    # a phase over all levels has stage depth + 1 (3).
    for epoch, stage in enumerate([1, 2.0, 2, 3]):
        logger.on_epoch_end(epoch, {"loss": 0.1, "stage": stage})
    logger.on_train_end()

    events = _read(tmp_path / "validation")
    # Levels 1 and 2, then depth + 1 for a phase over all levels.
    assert events["stage"] == [(0, 1.0), (1, 2.0), (2, 2.0), (3, 3.0)]
    assert _steps(events["reconstructions"]) == [0, 1, 2, 3]
    assert _steps(events["stage_1/rebuild_mse"]) == [0]
    assert _steps(events["stage_2/rebuild_mse"]) == [1, 2]
    assert "stage_3/rebuild_mse" not in events

    # Stage 2 rebuilds T_1 (8x8x4) through E_2 and D_2.
    t1 = keras.ops.convert_to_numpy(stack.encoder_levels[0](x, training=False))
    rebuilt = stack.decoder_levels[1](stack.encoder_levels[1](t1, training=False), training=False)
    mse = float(np.mean((keras.ops.convert_to_numpy(rebuilt) - t1) ** 2))
    assert events["stage_2/rebuild_mse"][0][1] == pytest.approx(mse, rel=1e-4)
    ((_, means),) = events["stage_2/rebuild_channel_means"][:1]
    assert means.shape == (2 * 8 + 6, 4 * 8 + 5 * 2, 1)
    # Stage 1 rebuilds the images themselves (16x16).
    ((_, means),) = events["stage_1/rebuild_channel_means"]
    assert means.shape == (2 * SIZE + 6, 4 * SIZE + 5 * 2, 1)


def test_no_stage_view_without_the_autoencoder(tmp_path):
    stack = _stack()
    logger = ReconstructionLogger(_images(count=2), tmp_path)
    logger.set_model(stack)
    logger.on_epoch_end(0, {})
    logger.on_epoch_end(1, {"stage": 2})
    logger.on_train_end()
    events = _read(tmp_path / "validation")
    assert events["stage"] == [(1, 2.0)]
    assert not [tag for tag in events if tag.startswith("stage_")]


def test_a_model_that_does_not_rebuild_the_images_is_named(tmp_path):
    stack = _stack()
    logger = ReconstructionLogger(_images(count=2), tmp_path)
    logger.set_model(stack.encoder)
    with pytest.raises(ValueError, match="autoencoder=trainer.autoencoder"):
        logger.on_epoch_end(0, {})
    logger.on_train_end()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"every": 0}, "Received: every=0"),
        ({"every": 1.5}, "Received: every=1.5"),
        ({"every": True}, "Received: every=True"),
        ({"max_images": 0}, "Received: max_images=0"),
        ({"subset": "test"}, "Received: subset='test'"),
        ({"log_dir": ""}, "Received: log_dir=''"),
        ({"autoencoder": "stack"}, "Received: autoencoder='stack'"),
        ({"images": np.zeros((4, SIZE, SIZE))}, r"Received: images.shape=\(4, 16, 16\)"),
        ({"images": np.zeros((4, SIZE, SIZE, 2))}, r"Received: images.shape=\(4, 16, 16, 2\)"),
        ({"images": np.zeros((0, SIZE, SIZE, 3))}, r"Received: images.shape=\(0, 16, 16, 3\)"),
        ({"images": np.zeros((4, 2, 2, 3))}, r"Received: images.shape=\(4, 2, 2, 3\)"),
    ],
)
def test_invalid_arguments_are_named(tmp_path, kwargs, message):
    arguments = {"images": _images(count=2), "log_dir": str(tmp_path), **kwargs}
    with pytest.raises(ValueError, match=message):
        ReconstructionLogger(**arguments)


def test_images_must_fit_the_autoencoder(tmp_path):
    images = np.zeros((2, 8, 8, 3), "float32")
    with pytest.raises(ValueError, match=r"\(16, 16, 3\).*images.shape=\(2, 8, 8, 3\)"):
        ReconstructionLogger(images, tmp_path, autoencoder=_stack())


def test_clear_error_without_tensorboard(tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "tensorboard" or name.startswith("tensorboard."):
            monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match="pip install tensorboard"):
        ReconstructionLogger(_images(count=2), tmp_path)
    assert not any(tmp_path.iterdir())


def test_clear_error_without_pillow(tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "PIL" or name.startswith("PIL."):
            monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match="pip install tensorboard pillow"):
        ReconstructionLogger(_images(count=2), tmp_path)
    assert not any(tmp_path.iterdir())


def test_recursive_trainer_fit_is_one_run(tmp_path):
    # Needs the trainer's one-run contract: epochs numbered across stages,
    # logs["stage"] in every epoch, callback.model the full autoencoder.
    x = _images()
    trainer = RecursiveTrainer(_stack())
    trainer.compile(optimizer="adam", loss="mse")
    logger = ReconstructionLogger(x[:4], tmp_path)
    trainer.fit(x, epochs=[2, 2], batch_size=16, verbose=0, callbacks=[logger])

    events = _read(tmp_path / "validation")
    assert events["stage"] == [(0, 1.0), (1, 1.0), (2, 2.0), (3, 2.0)]
    assert _steps(events["reconstructions"]) == [0, 1, 2, 3]
    for _, grid in events["reconstructions"]:
        assert grid.shape == (2 * SIZE + 6, 4 * SIZE + 10, 3)
    for tag in METRIC_TAGS:
        assert _steps(events[tag]) == [0, 1, 2, 3], tag
        assert all(math.isfinite(value) for _, value in events[tag]), tag


def test_recursive_trainer_stage_view(tmp_path):
    x = _images()
    trainer = RecursiveTrainer(_stack())
    trainer.compile(optimizer="adam", loss="mse")
    logger = ReconstructionLogger(x[:4], tmp_path, autoencoder=trainer.autoencoder)
    trainer.fit(x, epochs=[2, 2], batch_size=16, verbose=0, callbacks=[logger])

    events = _read(tmp_path / "validation")
    assert _steps(events["stage_1/rebuild_mse"]) == [0, 1]
    assert _steps(events["stage_2/rebuild_mse"]) == [2, 3]
    assert _steps(events["stage_2/rebuild_channel_means"]) == [2, 3]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_backends_write_without_tensorflow(backend, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (CI installs it in its {backend} run)")
    code = f"""
import sys

import keras
import numpy as np

from keras_recursive_ae.callbacks.reconstruction_logger import ReconstructionLogger

images = np.random.default_rng(0).random((8, 8, 8, 3)).astype("float32")
model = keras.Sequential(
    [keras.Input((8, 8, 3)), keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid")]
)
model.compile(optimizer="adam", loss="mse")
logger = ReconstructionLogger(images[:2], {str(tmp_path)!r})
model.fit(images, images, epochs=2, verbose=0, callbacks=[logger])
print(keras.backend.backend(), "tensorflow" in sys.modules)
"""
    env = dict(os.environ, KERAS_BACKEND=backend)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [backend, "False"], result.stdout
    events = _read(tmp_path / "validation")
    assert _steps(events["reconstructions"]) == [0, 1]
    assert events["reconstructions"][0][1].shape == (8 * 2 + 6, 8 * 2 + 6, 3)
