"""Bad data, diverging stages and failing disks end with clear errors; nothing is lost."""

import errno
import json

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras
from keras_recursive_ae import MirroredConvStack, RecursiveTrainer, checkpoint

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
        def on_train_end(self, logs=None):
            after_stage[self.model.name] = [np.array(w) for w in stack.model.weights]

        def on_train_batch_end(self, batch, logs=None):
            if self.model.name == "stage_2" and batch == 1:
                # What an exploding stage looks like: its weights become NaN.
                for v in stack.encoder_levels[1].trainable_variables:
                    v.assign(v * np.nan)

    with pytest.raises(FloatingPointError, match="Stage 2/3 diverged.*epoch 1"):
        trainer.fit(x, epochs=2, batch_size=4, callbacks=[Blow()], verbose=0)
    stage_1 = after_stage["stage_1"]
    for a, b in zip(stack.model.weights, stage_1):
        np.testing.assert_array_equal(np.array(a), b)  # stage 2 rolled back, stage 1 kept
    assert all(np.isfinite(np.array(w)).all() for w in stack.model.weights)


def test_a_failing_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    x = np.random.rand(8, 8, 8, 1).astype("float32")
    savez, calls = checkpoint.np.savez, []

    def full_after_the_first_save(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return savez(*args, **kwargs)

    monkeypatch.setattr(checkpoint.np, "savez", full_after_the_first_save)
    trainer = _trainer()
    with pytest.raises(OSError, match="Could not write the checkpoint.*No space left.*intact"):
        trainer.fit(x, epochs=[3, 0, 0], batch_size=4, checkpoint_dir=tmp_path, verbose=0)
    state = json.loads((tmp_path / "checkpoint.json").read_text())
    assert state["phase"] == 0 and state["epochs_done"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json", state["weights"]]
    with np.load(tmp_path / state["weights"]) as saved:
        assert len(saved.files) == len(trainer.model.variables) + state["num_optimizer_variables"]

    monkeypatch.setattr(checkpoint.np, "savez", savez)
    history = _trainer().fit(x, epochs=[3, 0, 0], batch_size=4, checkpoint_dir=tmp_path,
                             verbose=0)
    assert history.history["stage"] == [1, 1, 1]  # resumed after the first epoch


def test_a_decoder_level_that_changes_the_dtype_is_refused():
    encoder = [layers.Conv2D(4, 3, padding="same"), layers.Conv2D(4, 3, padding="same")]
    decoder = [layers.Conv2D(4, 3, padding="same", dtype="float64", name="wide"),
               layers.Conv2D(1, 3, padding="same")]
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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    argument=st.sampled_from(
        ["filters", "kernel_sizes", "strides", "activation", "output_activation",
         "normalization", "decoder_statistics", "decoder_style", "encoder_style",
         "kernel_initializer", "input_shape", "latent_dim", "kl_weight"]
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
        "kl_weight": [0, 2.5],
    }.get(argument, [])
    if any(value is v or (type(value) is type(v) and value == v) for v in valid):
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
        build = lambda: RecursiveTrainer([layers.Conv2D(2, 3)], [layers.Conv2D(1, 3)],
                                         input_shape=(8, 8, 1), decoder_order=value)
    else:
        build = lambda: RecursiveTrainer(stack, **{argument: value})
    if argument == "level_weights" and value is None:  # the default: equal weights
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
