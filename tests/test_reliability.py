"""Bad data, diverging stages and failing disks end with clear errors; nothing is lost."""

import contextlib
import errno
import json
import os
import shutil
import tempfile
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keras_recursive_ae import (
    PSNR,
    SSIM,
    MirroredConvStack,
    RecursiveTrainer,
    SharedBatchNorm,
    SharpnessRatio,
    VariationalBottleneck,
    load_lfw,
    metrics,
)
from keras_recursive_ae.trainers import stage_input_cache

layers = keras.layers


def _trainer(**kwargs):
    trainer = RecursiveTrainer(
        MirroredConvStack(filters=(4, 4, 4), input_shape=(8, 8, 1), normalization="batch"),
        **kwargs,
    )
    trainer.compile()
    return trainer


def test_nan_and_inf_images_are_refused_up_front_with_their_count():
    x = np.random.rand(40, 8, 8, 1).astype("float32")
    x[3, 0, 0, 0], x[17, 2, 2, 0], x[39, 7, 7, 0] = np.nan, np.inf, -np.inf
    trainer = _trainer()
    weights = trainer.model.get_weights()
    with pytest.raises(ValueError, match=r"`x` holds 3 images with NaN or infinite.*3, 17, 39"):
        trainer.fit(x, verbose=0)
    clean = np.random.rand(8, 8, 8, 1)
    with pytest.raises(ValueError, match="`validation_data` holds 1 images"):
        trainer.fit(clean, validation_data=x[:4], verbose=0)
    for a, b in zip(trainer.model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


def test_a_diverging_stage_stops_naming_it_and_completed_stages_keep_their_weights():
    x = np.random.rand(16, 8, 8, 1).astype("float32")
    trainer = _trainer()
    stack = trainer.autoencoder
    after_stage = {}

    class Blow(keras.callbacks.Callback):
        # Epochs are numbered across the run: stage 2 has epochs 2 and 3.
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_epoch_end(self, epoch, logs=None):
            after_stage[epoch] = [np.array(w) for w in stack.weights]

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 2 and batch == 1:
                # What an exploding stage looks like: its weights become NaN.
                for v in stack.encoder_levels[1].trainable_variables:
                    v.assign(v * np.nan)

    with pytest.raises(FloatingPointError, match="Stage 2/3 diverged.*epoch 1"):
        trainer.fit(x, epochs=2, batch_size=4, callbacks=[Blow()], verbose=0)
    stage_1 = after_stage[1]
    for a, b in zip(stack.weights, stage_1):
        np.testing.assert_array_equal(np.array(a), b)  # stage 2 rolled back, stage 1 kept
    assert all(np.isfinite(np.array(w)).all() for w in stack.weights)


def test_a_failing_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    x = np.random.rand(8, 8, 8, 1).astype("float32")
    save_weights, calls = keras.Model.save_weights, []

    def full_after_the_first_checkpoint(model, *args, **kwargs):
        calls.append(1)
        if len(calls) > 2:  # the first checkpoint writes two files
            raise OSError(errno.ENOSPC, "No space left on device")
        return save_weights(model, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", full_after_the_first_checkpoint)
    trainer = _trainer()
    with pytest.raises(OSError, match="Could not write the checkpoint.*No space left.*intact"):
        trainer.fit(x, epochs=[3, 0, 0], batch_size=4, checkpoint_dir=tmp_path, verbose=0)
    state = json.loads((tmp_path / "checkpoint.json").read_text())
    assert state["epoch"] == 1
    files = sorted(state["files"].values())
    assert len(files) == 2
    assert [p.name for p in sorted(tmp_path.iterdir())] == sorted(["checkpoint.json", *files])

    monkeypatch.setattr(keras.Model, "save_weights", save_weights)
    history = _trainer().fit(x, epochs=[3, 0, 0], batch_size=4, checkpoint_dir=tmp_path, verbose=0)
    assert history.history["stage"] == [1, 1, 1]  # resumed after the first epoch


def test_a_full_disk_while_caching_keeps_the_checkpoint_and_the_users_model(tmp_path, monkeypatch):
    # The disk is full when stage 2's cache file takes its room.
    def full_disk(fileno, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    x = np.random.rand(64, 8, 8, 1).astype("float32")
    cache_dir, checkpoints = tmp_path / "cache", tmp_path / "checkpoints"
    cache_dir.mkdir()
    trainer = _trainer(cache="disk", cache_dir=cache_dir)
    layers_ = trainer.model.layers
    trainable = [layer.trainable for layer in layers_]
    level_2 = trainer.autoencoder.encoder_levels[1]
    level_2_weights = [np.array(w) for w in level_2.weights]
    stage_1_weights = {}

    class KeepStage1(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:  # stage 1's only epoch
                stage_1_weights.update({w.path: np.array(w) for w in trainer.model.weights})

    monkeypatch.setattr(stage_input_cache, "_reserve", full_disk)
    with pytest.raises(OSError, match="Could not write the stage input cache.*cache_dir") as error:
        trainer.fit(
            x,
            epochs=1,
            batch_size=8,
            checkpoint_dir=checkpoints,
            callbacks=[KeepStage1()],
            verbose=0,
        )
    assert error.value.errno == errno.ENOSPC
    assert [layer.trainable for layer in layers_] == trainable
    for w in trainer.model.weights:  # stage 1 kept, stage 2 never started
        np.testing.assert_array_equal(np.array(w), stage_1_weights[w.path])
    for w, before in zip(level_2.weights, level_2_weights):
        np.testing.assert_array_equal(np.array(w), before)
    assert list(cache_dir.iterdir()) == []  # no cache folder left behind
    state = json.loads((checkpoints / "checkpoint.json").read_text())
    assert state["epoch"] == 1  # stage 1 done

    monkeypatch.undo()  # space again: the same call resumes at stage 2
    history = _trainer(cache="disk", cache_dir=cache_dir).fit(
        x, epochs=1, batch_size=8, checkpoint_dir=checkpoints, verbose=0
    )
    assert history.history["stage"] == [1, 2, 3]


@contextlib.contextmanager
def _as_nobody():
    """Root reads every folder: under root, drop the effective user for a while."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_unreadable_folders_are_skipped_or_refused_naming_them(lfw_dir):
    root = tempfile.mkdtemp()  # under /tmp, so `nobody` can reach it
    locked = os.path.join(root, "Locked_Out")
    try:
        os.chmod(root, 0o755)
        for person in ("Aaron_Peirsol", "Locked_Out"):
            os.mkdir(os.path.join(root, person), 0o755)
            for image in sorted((lfw_dir / "Aaron_Peirsol").iterdir())[:2]:
                shutil.copyfile(image, os.path.join(root, person, image.name))
                os.chmod(os.path.join(root, person, image.name), 0o644)
        third = sorted((lfw_dir / "Aaron_Peirsol").iterdir())[2]
        unreadable_file = os.path.join(root, "Aaron_Peirsol", third.name)
        shutil.copyfile(third, unreadable_file)
        os.chmod(unreadable_file, 0o000)
        os.chmod(locked, 0o000)
        with _as_nobody():
            with pytest.warns(UserWarning) as caught:
                splits = load_lfw(root, image_size=16, validation_split=0, test_split=0)
            messages = " | ".join(str(w.message) for w in caught)
            assert "Skipped 1 person folders" in messages and "Locked_Out" in messages
            assert "Skipped 1 of 3 image files" in messages and third.name in messages
            with pytest.raises(PermissionError, match="`data_dir`.*Locked_Out.*permission denied"):
                load_lfw(locked, image_size=16)
        assert splits.num_images["train"] == 2
        assert splits.people["train"] == ("Aaron_Peirsol",)
    finally:
        os.chmod(locked, 0o755)
        shutil.rmtree(root)


def test_a_decoder_level_that_changes_the_dtype_is_refused():
    encoder = [layers.Conv2D(4, 3, padding="same"), layers.Conv2D(4, 3, padding="same")]
    decoder = [
        layers.Conv2D(4, 3, padding="same", dtype="float64", name="wide"),
        layers.Conv2D(1, 3, padding="same"),
    ]
    with pytest.raises(ValueError, match=r"Decoder level 2 \('wide'\).*float32.*float64"):
        RecursiveTrainer(encoder, decoder, input_shape=(8, 8, 1))


def test_mixed_precision_models_build_and_train():
    keras.config.set_dtype_policy("mixed_float16")
    trainer = _trainer()
    trainer.fit(np.random.rand(8, 8, 8, 1), epochs=1, batch_size=4, verbose=0)
    assert trainer.model.output.dtype == "float16"


# --- a battery over constructor arguments -------------------------------------

INVALID = st.sampled_from(
    [None, 0, -3, 2.5, "nope", "", [], (), {}, [0], [1, -1], True, object(), float("nan")]
)


def _is_one_of(value, valid):
    return any(value is v or (type(value) is type(v) and value == v) for v in valid)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    argument=st.sampled_from(
        [
            "filters",
            "kernel_sizes",
            "strides",
            "activation",
            "output_activation",
            "normalization",
            "decoder_statistics",
            "decoder_style",
            "encoder_style",
            "kernel_initializer",
            "input_shape",
            "latent_dim",
            "kl_weight",
        ]
    ),
    value=INVALID,
)
def test_mirrored_conv_stack_names_every_invalid_argument(argument, value):
    arguments = {"filters": (2, 2), "input_shape": (8, 8, 1), argument: value}
    if argument in ("latent_dim", "kl_weight"):
        arguments["variational"] = True
        arguments.setdefault("latent_dim", 2)
    valid = {
        "normalization": [None],
        "activation": [None],  # Keras' "no activation"
        "output_activation": [None],
        "kl_weight": [None, 0, 2.5],  # None: the default weight
    }.get(argument, [])
    if _is_one_of(value, valid):
        MirroredConvStack(**arguments)
        return
    with pytest.raises((ValueError, TypeError)) as error:
        MirroredConvStack(**arguments)
    assert f"`{argument}`" in str(error.value) or f"{argument}=" in str(error.value), error.value


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    argument=st.sampled_from(["schedule", "cache", "decoder_order", "level_weights"]),
    value=INVALID,
)
def test_recursive_trainer_names_every_invalid_argument(argument, value):
    stack = MirroredConvStack(filters=(2, 2), input_shape=(8, 8, 1))
    if argument == "decoder_order":
        build = lambda: RecursiveTrainer(
            [layers.Conv2D(2, 3)], [layers.Conv2D(1, 3)], input_shape=(8, 8, 1), decoder_order=value
        )
    else:
        build = lambda: RecursiveTrainer(stack, **{argument: value})
    if argument == "level_weights" and value is None:  # the default: relative errors
        build()
        return
    with pytest.raises((ValueError, TypeError), match=f"{argument}="):
        build()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argument=st.sampled_from(["epochs", "fine_tune_epochs"]), value=INVALID)
def test_fit_names_every_invalid_epoch_count(argument, value):
    trainer = RecursiveTrainer(MirroredConvStack(filters=(2, 2), input_shape=(8, 8, 1)))
    trainer.compile()
    if type(value) is int and value == 0:  # valid: nothing to train
        trainer.fit(np.random.rand(4, 8, 8, 1), verbose=0, **{argument: value})
        return
    with pytest.raises(ValueError, match=f"{argument}="):
        trainer.fit(np.random.rand(4, 8, 8, 1), verbose=0, **{argument: value})


def test_datasets_with_nan_stop_at_the_first_epoch_naming_the_stage():
    x = np.random.rand(8, 8, 8, 1).astype("float32")
    x[5] = np.nan
    trainer = _trainer()
    with pytest.raises(FloatingPointError, match="Stage 1/3 diverged"):
        trainer.fit(tf.data.Dataset.from_tensor_slices(x).batch(4), verbose=0)


# --- a battery over the other public classes and functions ----------------------


def _raises_naming(argument, build):
    with pytest.raises((ValueError, TypeError)) as error:
        build()
    message = str(error.value)
    assert f"`{argument}`" in message or f"{argument}=" in message, message


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    argument=st.sampled_from(["decoder_statistics", "momentum", "epsilon", "axis", "site"]),
    value=INVALID,
)
def test_shared_batch_norm_names_every_invalid_argument(argument, value):
    x = np.random.rand(2, 4, 4, 3).astype("float32")
    if argument == "site":
        build = lambda: SharedBatchNorm()(x, site=value)
    else:
        build = lambda: SharedBatchNorm(**{argument: value})(x)
    if _is_one_of(value, {"momentum": [0], "epsilon": [2.5], "axis": [0, -3]}.get(argument, [])):
        assert build().shape == x.shape
        return
    _raises_naming(argument, build)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argument=st.sampled_from(["latent_dim", "kl_weight", "seed"]), value=INVALID)
def test_variational_bottleneck_names_every_invalid_argument(argument, value):
    arguments = {"latent_dim": 2, argument: value}
    build = lambda: VariationalBottleneck(**arguments)(np.random.rand(2, 3, 3, 4))
    if _is_one_of(value, {"kl_weight": [None, 0, 2.5], "seed": [None, 0]}.get(argument, [])):
        assert keras.ops.shape(build()) == (2, 2)
        return
    _raises_naming(argument, build)


LOAD_LFW_ARGUMENTS = {
    # argument: the values among INVALID that are valid for it
    "data_dir": [None],
    "image_size": [None],
    "crop_size": [None],
    "max_images": [None],
    "batch_size": [None],
    "validation_split": [0],
    "test_split": [0],
    "seed": [None, 0],
    "grayscale": [True],
    "shuffle": [True],
    "download": [],
    "data_options": [None],
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argument=st.sampled_from(sorted(LOAD_LFW_ARGUMENTS)), value=INVALID)
@example(argument="download", value=True)
def test_load_lfw_names_every_invalid_argument(argument, value):
    build = lambda: load_lfw(**{argument: value})  # no folder: scikit-image's faces
    if argument == "download" and value is True:  # valid: it goes on to download
        with mock.patch("keras.utils.get_file", side_effect=ConnectionError("offline")):
            with pytest.raises(ConnectionError, match="offline"):
                build()
        return
    if _is_one_of(value, LOAD_LFW_ARGUMENTS[argument]):
        with pytest.warns(UserWarning, match="fell back"):
            assert sum(build().num_images.values()) == 100
        return
    if argument == "data_dir" and isinstance(value, str):  # a folder that is not there
        with pytest.raises((FileNotFoundError, ValueError), match="`data_dir`"):
            build()
        return
    _raises_naming(argument, build)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    metric=st.sampled_from(["psnr", "ssim", "sharpness_ratio", "PSNR", "SSIM", "SharpnessRatio"]),
    value=INVALID,
)
def test_metrics_name_every_invalid_argument(metric, value):
    argument = "epsilon" if "harpness" in metric else "max_val"
    images = np.random.rand(2, 8, 8, 1).astype("float32")
    if metric[0].isupper():
        build = lambda: {"PSNR": PSNR, "SSIM": SSIM, "SharpnessRatio": SharpnessRatio}[metric](
            **{argument: value}
        )
    else:
        build = lambda: getattr(metrics, metric)(images, images, **{argument: value})
    if _is_one_of(value, [2.5]):
        build()
        return
    _raises_naming(argument, build)


SHAPES = st.lists(st.integers(1, 9), min_size=1, max_size=5).map(tuple)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    metric=st.sampled_from(["sum_squared_error", "psnr", "ssim", "sharpness_ratio"]),
    true_shape=SHAPES,
    pred_shape=SHAPES,
)
def test_metrics_take_any_pair_of_equal_image_batches_and_refuse_the_rest(
    metric, true_shape, pred_shape
):
    y_true = np.random.rand(*true_shape).astype("float32")
    y_pred = np.random.rand(*pred_shape).astype("float32")
    small = metric == "sharpness_ratio" and min(true_shape[1:3] + (3,)) < 3
    if len(true_shape) == 4 and true_shape == pred_shape and not small:
        values = np.asarray(getattr(metrics, metric)(y_true, y_pred))
        assert values.shape == (true_shape[0],)
        assert metric == "psnr" or np.isfinite(values).all()
        return
    with pytest.raises(ValueError) as error:
        getattr(metrics, metric)(y_true, y_pred)
    assert "y_true" in str(error.value) or "y_pred" in str(error.value), error.value


def test_the_first_batch_of_an_empty_dataset_is_none_not_a_slicing_error():
    from keras_recursive_ae.utils import images

    empty = tf.data.Dataset.from_tensor_slices(np.zeros((0, 4, 4, 1), "float32")).batch(2)
    assert images.first_batch(empty, 2) is None
    assert images.dataset_batch_size(empty) is None
    x = np.arange(5 * 16, dtype="float32").reshape(5, 4, 4, 1)
    np.testing.assert_array_equal(images.first_batch(x, 2), x[:2])
    pairs = tf.data.Dataset.from_tensor_slices((x, x)).batch(3)
    np.testing.assert_array_equal(images.first_batch(pairs, None), x[:3])
    assert images.dataset_batch_size(pairs) == 3
