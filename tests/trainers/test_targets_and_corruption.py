"""Denoising users' pairs: `fit(x, y)` targets, dataset and validation pairs, corruption."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_recursive_ae import MirroredConvStack, RecursiveTrainer

layers = keras.layers


def _smooth_images(count, seed=0, size=16):
    """Blurry blobs in [0, 1]: images a small autoencoder can learn to denoise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = np.zeros((count, size, size, 1), "float32")
    for image in images:
        for cy, cx, width in rng.random((3, 3)):
            width = 0.1 + 0.2 * width
            image[..., 0] += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))
    return np.clip(images / 2, 0, 1)


def _noisy(images, seed=1, std=0.25):
    noise = np.random.default_rng(seed).normal(0, std, images.shape)
    return np.clip(images + noise, 0, 1).astype("float32")


def _pair():
    encoder = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            layers.Conv2D(16, 3, strides=2, padding="same", activation="selu"),
            layers.Conv2D(16, 3, strides=2, padding="same", activation="selu"),
        ]
    )
    decoder = keras.Sequential(
        [
            layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="selu"),
            layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid"),
        ]
    )
    return encoder, decoder


def _trainer(schedule="greedy", **kwargs):
    trainer = RecursiveTrainer(*_pair(), schedule=schedule, **kwargs)
    trainer.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    return trainer


def _mse(a, b):
    return float(np.mean((np.asarray(a, "float64") - np.asarray(b, "float64")) ** 2))


@pytest.mark.parametrize("schedule", ["greedy", "joint", "end_to_end"])
def test_fit_x_y_learns_to_denoise(schedule):
    clean, test = _smooth_images(512), _smooth_images(64, seed=2)
    noisy, test_noisy = _noisy(clean), _noisy(test, seed=3)
    trainer = _trainer(schedule)
    epochs = [4, 4] if schedule == "greedy" else 8
    trainer.fit(noisy, clean, epochs=epochs, batch_size=32, verbose=0)
    denoised = trainer.model.predict(test_noisy, verbose=0)
    assert _mse(denoised, test) < 0.75 * _mse(test_noisy, test)


def test_a_stage_rebuilds_the_targets_tensor_from_the_inputs_tensor():
    # Greedy stage k: T_{k-1}(x) -> E_k -> D_k, scored against T_{k-1}(y),
    # both through the frozen E_1..E_{k-1}; val_image_loss scores inputs -> targets.
    clean = _smooth_images(64)
    noisy = _noisy(clean)
    trainer = _trainer()
    history = trainer.fit(
        noisy,
        clean,
        epochs=[1, 2],
        batch_size=16,
        validation_data=(noisy[:16], clean[:16]),
        verbose=0,
    )
    encoders, decoders = trainer.autoencoder.encoder_levels, trainer.autoencoder.decoder_levels
    t1_inputs = encoders[0].predict(noisy[:16], verbose=0)
    t1_targets = encoders[0].predict(clean[:16], verbose=0)
    rebuilt = decoders[1].predict(encoders[1].predict(t1_inputs, verbose=0), verbose=0)
    np.testing.assert_allclose(
        history.history["val_loss"][-1], _mse(rebuilt, t1_targets), rtol=1e-4
    )
    image_loss = _mse(trainer.model.predict(noisy[:16], verbose=0), clean[:16])
    np.testing.assert_allclose(history.history["val_image_loss"][-1], image_loss, rtol=1e-4)
    assert _mse(t1_inputs, t1_targets) > 10 * abs(
        history.history["val_loss"][-1] - _mse(rebuilt, t1_targets)
    )


@pytest.mark.parametrize("cache", ["memory", "off"])
def test_a_dataset_of_pairs_trains_as_the_arrays_do(cache):
    clean = _smooth_images(64)
    noisy = _noisy(clean)
    weights = []
    for data in ("arrays", "dataset"):
        keras.utils.set_random_seed(1)
        trainer = _trainer(cache=cache)
        if data == "arrays":
            args = (noisy, clean)
        else:
            args = (tf.data.Dataset.from_tensor_slices((noisy, clean)).batch(16),)
        trainer.fit(
            *args,
            epochs=[1, 1],
            batch_size=16 if data == "arrays" else None,
            shuffle=False,
            fine_tune_epochs=1,
            verbose=0,
        )
        weights.append(trainer.model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_image_image_pairs_train_bit_identically_to_the_images_alone():
    # load_lfw's (image, image) pairs, fit(x, x) and fit(x, copy of x): one
    # target, the input; the caches of the targets are never made twice.
    x = _smooth_images(48)
    weights = []
    for form in ("images", "same", "copy", "pairs"):
        keras.utils.set_random_seed(2)
        trainer = _trainer(cache="memory")
        if form == "pairs":
            args = (tf.data.Dataset.from_tensor_slices((x, x)).batch(16),)
        elif form == "images":
            args = (tf.data.Dataset.from_tensor_slices(x).batch(16),)
        else:
            args = (x, x if form == "same" else x.copy())
        trainer.fit(
            *args,
            epochs=[1, 1],
            batch_size=None if len(args) == 1 else 16,
            shuffle=False,
            fine_tune_epochs=1,
            verbose=0,
        )
        weights.append(trainer.model.get_weights())
        placements = trainer._cache.placements
        if form == "pairs":  # the inputs once, T_1 once: no cache of targets
            assert len(placements) == 2, placements
    for other in weights[1:]:
        for a, b in zip(weights[0], other):
            np.testing.assert_array_equal(a, b)


def test_a_pairs_second_element_of_another_shape_is_refused_by_name():
    x = _smooth_images(16)
    labels = np.arange(16)
    trainer = _trainer()
    with pytest.raises(ValueError, match=r"Expected `x` to yield images, or `\(inputs, targets\)`"):
        trainer.fit(tf.data.Dataset.from_tensor_slices((x, labels)).batch(8), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"Expected `y` to be an array of images of shape"):
        trainer.fit(x, labels, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"`y` must be None when `x` is a dataset"):
        trainer.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), x, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"Received: a tuple of 3 elements"):
        trainer.fit(x, epochs=1, validation_data=(x, x, x), verbose=0)


def test_noisy_inputs_may_leave_0_1_but_the_targets_of_a_sigmoid_may_not():
    clean = _smooth_images(32)
    noisy = clean + np.random.default_rng(0).normal(0, 0.3, clean.shape).astype("float32")
    trainer = _trainer()
    trainer.fit(noisy, clean, epochs=1, batch_size=16, verbose=0)  # unclipped noisy inputs
    with pytest.raises(ValueError, match=r"Expected `y` to hold images in \[0, 1\]"):
        trainer.fit(clean, noisy, epochs=1, batch_size=16, verbose=0)


class _CountingCorruption(layers.Layer):
    """Counts the batches it corrupts: only those of training steps."""

    def build(self, input_shape):
        self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="count")

    def call(self, inputs, training=None):
        if training:
            self.count.assign(self.count + 1.0)
        return inputs


def test_corruption_runs_at_every_training_step_and_never_in_evaluation():
    x = _smooth_images(64)
    corruption = _CountingCorruption()
    trainer = _trainer(corruption=corruption)
    trainer.fit(x, epochs=[3, 2], batch_size=16, validation_data=x, fine_tune_epochs=1, verbose=0)
    count = lambda: float(keras.ops.convert_to_numpy(corruption.count))
    assert count() == (3 + 2 + 1) * 4  # epochs of training, 4 batches each
    trainer.model.predict(x, verbose=0)
    assert count() == 24
    assert corruption not in trainer.model.layers


def test_corruption_leaves_the_model_clean():
    x = _smooth_images(32)
    # Inference and the saved model see clean inputs: no noise layer, deterministic.
    noisy_trainer = _trainer(corruption=layers.GaussianNoise(0.3, seed=4))
    noisy_trainer.fit(x, epochs=[1, 1], batch_size=16, fine_tune_epochs=1, verbose=0)
    model = noisy_trainer.model
    assert not any(isinstance(layer, layers.GaussianNoise) for layer in model.layers)
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_bad_corruption_is_refused_by_name():
    with pytest.raises(
        ValueError, match=r"argument `corruption`.*Received: corruption of type int"
    ):
        RecursiveTrainer(*_pair(), corruption=3)


def _corrupted_run(checkpoint_dir, stop_at_epoch=None):
    keras.utils.set_random_seed(5)
    stack = MirroredConvStack(filters=(4, 8), input_shape=(16, 16, 1))
    trainer = RecursiveTrainer(stack, corruption=layers.GaussianNoise(0.2, seed=7))
    trainer.compile()

    class Stop(keras.callbacks.Callback):
        epoch = None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == stop_at_epoch and batch == 1:
                raise KeyboardInterrupt  # as if the process were killed here

    x = _smooth_images(48)
    trainer.fit(
        x,
        epochs=[2, 3],
        batch_size=8,
        fine_tune_epochs=1,
        checkpoint_dir=checkpoint_dir,
        callbacks=[Stop()],
        verbose=0,
    )
    return trainer.model.get_weights()


def test_corruption_is_seeded_and_a_resumed_run_ends_bit_identical(tmp_path):
    straight = _corrupted_run(tmp_path / "straight")
    again = _corrupted_run(tmp_path / "again")
    for a, b in zip(straight, again):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(KeyboardInterrupt):
        _corrupted_run(tmp_path / "resumed", stop_at_epoch=3)  # in stage 2
    resumed = _corrupted_run(tmp_path / "resumed")
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)


def test_refusals_show_an_array_by_shape_and_dtype_not_its_values():
    trainer = _trainer()
    x = _smooth_images(256)
    with pytest.raises(ValueError) as error:
        trainer.fit(x, epochs=1, sample_weight=np.ones(256), verbose=0)
    message = str(error.value)
    assert "shape (256,)" in message and len(message) < 300, message


@pytest.mark.parametrize("schedule, cache", [("joint", "auto"), ("greedy", "off")])
def test_validation_targets_alone_are_scored_when_the_model_runs_frozen_levels(schedule, cache):
    # Joint and an uncached greedy stage run the targets through frozen
    # levels inside the model: validation pairs reach it though x has none.
    clean = _smooth_images(32)
    noisy = _noisy(clean)
    trainer = _trainer(schedule, cache=cache)
    history = trainer.fit(
        clean, epochs=1 if schedule == "joint" else [1, 1], batch_size=16,
        validation_data=(noisy, clean), verbose=0,
    )  # fmt: skip
    image_loss = _mse(trainer.model.predict(noisy, verbose=0), clean)
    np.testing.assert_allclose(history.history["val_image_loss"][-1], image_loss, rtol=1e-4)
