"""Every part of the library under the `mixed_bfloat16` and `mixed_float16` policies.

Runs on every Keras backend: nothing here needs TensorFlow.
"""

import json
import textwrap

import keras
import numpy as np
import pytest
from conftest import run_in_fresh_process

from keras_recursive_ae import (
    MirroredConvStack,
    RecursiveTrainer,
    SharedBatchNorm,
    VariationalBottleneck,
)
from keras_recursive_ae.trainers.stage_input_cache import StageInputCache

POLICIES = ("mixed_bfloat16", "mixed_float16")


@pytest.fixture(params=POLICIES)
def policy(request):
    """Sets the global policy for one test, and restores float32 whatever happens."""
    try:
        keras.mixed_precision.set_global_policy(request.param)
        yield keras.mixed_precision.global_policy()
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _images(count=32, size=8, channels=1):
    return np.random.default_rng(0).random((count, size, size, channels), dtype="float32")


def _as_float64(x):
    return keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")).astype("float64")


def test_shared_batch_norm_keeps_float32_variables_and_statistics(policy):
    norm = SharedBatchNorm(momentum=0.5)
    x = 3.0 + 2.0 * np.random.default_rng(1).normal(size=(16, 4, 4, 3)).astype("float32")
    out = norm(x, training=True)
    assert keras.backend.standardize_dtype(out.dtype) == policy.compute_dtype
    assert norm.dtype_policy.name == policy.name
    assert {v.dtype for v in norm.weights} == {"float32"}
    # The layer receives x in the compute dtype; its statistics are float32.
    received = _as_float64(keras.ops.cast(x, policy.compute_dtype)).reshape(-1, 3)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(norm.moving_mean), 0.5 * received.mean(axis=0), rtol=1e-5
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(norm.moving_variance),
        0.5 + 0.5 * received.var(axis=0),
        rtol=1e-5,
    )
    # The decoder site reads the encoder's statistics and updates nothing.
    statistics = [keras.ops.convert_to_numpy(v) for v in norm.non_trainable_weights]
    decoded = norm(x, training=True, site="decoder")
    for before, after in zip(statistics, norm.non_trainable_weights):
        np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(after))
    np.testing.assert_array_equal(_as_float64(decoded), _as_float64(norm(x, training=False)))


def test_variational_bottleneck_computes_its_kl_term_in_float32(policy):
    layer = VariationalBottleneck(8, kl_weight=1.0)
    x = np.ones((2, 2, 2, 1), dtype="float32")
    layer.build(x.shape)
    # A mean of 300 on every code: mean**2 overflows float16, and bfloat16
    # cannot hold the sum 360000 exactly.
    layer.mean_head.kernel.assign(np.full(layer.mean_head.kernel.shape, 75.0))
    mean = layer(x, training=False)
    assert keras.backend.standardize_dtype(mean.dtype) == policy.compute_dtype
    assert {v.dtype for v in layer.weights} == {"float32"}
    mean = _as_float64(mean)
    np.testing.assert_array_equal(mean, 300.0)
    (kl,) = layer.losses
    assert keras.backend.standardize_dtype(kl.dtype) == "float32"
    np.testing.assert_allclose(float(kl), 0.5 * np.sum(mean**2, axis=-1).mean(), rtol=1e-6)


@pytest.mark.parametrize("location", ["memory", "disk"])
@pytest.mark.parametrize("cache_dtype", ["float32", "float16"])
def test_stage_caches_store_the_documented_dtype(policy, location, cache_dtype, tmp_path):
    images = _images(size=16, channels=3)
    stack = MirroredConvStack(filters=(4, 8), input_shape=(16, 16, 3), normalization="shared")
    cache = StageInputCache(location, dtype=cache_dtype, directory=tmp_path)
    t_1 = cache.next(stack.encoder_levels[0], images, batch_size=8)
    computed = keras.ops.convert_to_numpy(stack.encoder_levels[0].predict_on_batch(images))
    assert str(computed.dtype) == policy.compute_dtype  # bfloat16: ml_dtypes' NumPy type
    assert t_1.dtype == cache_dtype and isinstance(t_1, np.memmap) == (location == "disk")
    np.testing.assert_array_equal(t_1, computed.astype("float32").astype(cache_dtype))
    cache.free(t_1)

    cache = StageInputCache(location, dtype=cache_dtype, directory=tmp_path)
    trainer = RecursiveTrainer(stack, cache=cache)
    trainer.compile(optimizer="adam", loss="mse")
    history = trainer.fit(images, epochs=1, batch_size=8, validation_data=images[:8], verbose=0)
    # T_1 of the training and of the validation images, for stage 2.
    assert [(p.dtype, p.location) for p in cache.placements] == [(cache_dtype, location)] * 2
    for key in ("loss", "val_loss", "val_image_loss"):
        assert np.all(np.isfinite(history.history[key])), key


class _LossScaleSeen(keras.callbacks.Callback):
    """Records, at each epoch's end, whether the phase's optimizer scales the loss."""

    def __init__(self):
        super().__init__()
        self.scaled = []

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer  # the phase's, during the run
        self.scaled.append(isinstance(optimizer, keras.optimizers.LossScaleOptimizer))


def test_greedy_and_fine_tuning_train_with_the_loss_scale_of_the_policy(policy):
    images = _images()
    stack = MirroredConvStack(
        filters=(4, 8),
        input_shape=(8, 8, 1),
        normalization="shared",
        variational=True,
        latent_dim=4,
    )
    trainer = RecursiveTrainer(stack)
    trainer.compile(optimizer="adam", loss="mse")
    seen = _LossScaleSeen()
    history = trainer.fit(
        images, epochs=1, batch_size=8, fine_tune_epochs=2, callbacks=[seen], verbose=0
    )
    assert history.history["stage"] == [1, 2, 3, 3]
    # Keras scales the loss under mixed_float16 only (bfloat16 has float32's range).
    assert seen.scaled == [policy.name == "mixed_float16"] * 4
    assert np.all(np.isfinite(history.history["loss"]))
    for weights in trainer.model.get_weights():
        assert np.all(np.isfinite(weights))
    assert {v.dtype for v in trainer.model.weights} == {"float32"}
    generated = trainer.generate(4, seed=0)
    assert generated.shape == (4, 8, 8, 1) and np.all(np.isfinite(_as_float64(generated)))


def test_latent_density_and_generation_from_a_deterministic_model(policy):
    pytest.importorskip("sklearn", reason="fit_latent_density needs the generation extra")
    images = _images()
    trainer = RecursiveTrainer(MirroredConvStack(filters=(4, 8), input_shape=(8, 8, 1)))
    trainer.compile()
    trainer.fit(images, epochs=1, batch_size=8, verbose=0)
    density = trainer.fit_latent_density(images, components=2)
    assert density.code_shape == (2, 2, 8)
    generated = _as_float64(trainer.generate(4, seed=0))
    assert generated.shape == (4, 8, 8, 1) and np.all(np.isfinite(generated))
    np.testing.assert_array_equal(generated, _as_float64(trainer.generate(4, seed=0)))


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"interrupted before epoch {epoch}")


class _LossScaleState(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.states = []

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            scale = keras.ops.convert_to_numpy(optimizer.dynamic_scale)
            self.states.append(
                (epoch, float(scale), int(keras.ops.convert_to_numpy(optimizer.step_counter)))
            )


def _checkpointed_fit(checkpoint_dir, optimizer, callbacks):
    keras.utils.set_random_seed(1)
    stack = MirroredConvStack(filters=(4, 8), input_shape=(8, 8, 1), normalization="shared")
    trainer = RecursiveTrainer(stack)
    trainer.compile(optimizer=optimizer, loss="mse")
    trainer.fit(
        _images(),
        epochs=1,
        batch_size=8,
        fine_tune_epochs=3,
        checkpoint_dir=checkpoint_dir,
        callbacks=callbacks,
        verbose=0,
    )
    return trainer.model.get_weights()


@pytest.mark.parametrize("scaled", ["policy", "loss_scale_optimizer"])
def test_a_resumed_run_ends_with_the_weights_and_loss_scale_of_an_uninterrupted_one(
    policy, scaled, tmp_path
):
    def optimizer():
        if scaled == "policy":
            return "adam"  # Keras adds the loss scale under mixed_float16
        # The scale doubles every 3 steps (4 steps an epoch): a scale that
        # was not restored would differ after the resumed epochs.
        return keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(), dynamic_growth_steps=3)

    straight = _LossScaleState()
    expected = _checkpointed_fit(tmp_path / "straight", optimizer(), [straight])
    # Epochs 0 and 1 are the greedy stages, 2 to 4 fine-tuning: stop in the middle of it.
    with pytest.raises(KeyboardInterrupt):
        _checkpointed_fit(tmp_path / "resumed", optimizer(), [_Interrupt(4)])
    resumed = _LossScaleState()
    weights = _checkpointed_fit(tmp_path / "resumed", optimizer(), [resumed])
    if scaled == "loss_scale_optimizer" or policy.name == "mixed_float16":
        assert resumed.states == [s for s in straight.states if s[0] >= 4]
        assert resumed.states
    # Bit-identical on the CPU: the same steps in the same order.
    for a, b in zip(expected, weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_is_not_resumed_under_another_policy(policy, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _checkpointed_fit(tmp_path, "adam", [_Interrupt(4)])
    keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(ValueError, match="dtype_policy"):
        _checkpointed_fit(tmp_path, "adam", [])


@pytest.mark.parametrize("saved", ["functional_view", "mirrored_conv_stack"])
def test_saved_models_reload_with_their_policy_in_a_fresh_process(policy, saved, tmp_path):
    images = _images()
    stack = MirroredConvStack(
        filters=(4, 8),
        input_shape=(8, 8, 1),
        normalization="shared",
        variational=True,
        latent_dim=4,
    )
    trainer = RecursiveTrainer(stack)
    trainer.compile()
    trainer.fit(images, epochs=1, batch_size=8, verbose=0)
    if saved == "functional_view":  # plain functional models: every layer's config
        models = {"model": stack, "encoder": stack.encoder, "decoder": stack.decoder}
    else:  # `trainer.model` is the stack, a keras.Model saved with its own config
        assert trainer.model is stack
        models = {"model": stack, "encoder": stack, "decoder": stack}
    models["model"].save(tmp_path / "model.keras")
    models["encoder"].save(tmp_path / "encoder.keras")
    models["decoder"].save(tmp_path / "decoder.keras")
    np.save(tmp_path / "images.npy", images)
    expected = _as_float64(trainer.model.predict(images, verbose=0))
    generated = _as_float64(trainer.generate(4, seed=0))

    code = textwrap.dedent(
        f"""
        import json, keras, numpy as np
        from keras_recursive_ae import generation
        folder, saved = {str(tmp_path)!r}, {saved!r}
        images = np.load(folder + "/images.npy")
        model, encoder, decoder = (
            keras.saving.load_model(f"{{folder}}/{{name}}.keras")
            for name in ("model", "encoder", "decoder")
        )
        if saved == "mirrored_conv_stack":
            encoder, decoder = model.encoder, model.decoder
        as64 = lambda x: np.asarray(keras.ops.convert_to_numpy(x), dtype="float64")
        np.save(folder + "/model_out.npy", as64(model.predict(images, verbose=0)))
        prior = generation.code_prior(encoder)
        np.save(folder + "/generated.npy", as64(generation.generate(decoder, prior, 4, seed=0)))
        assert isinstance(model.layers[0], keras.layers.InputLayer)  # float32 input
        print(json.dumps({{
            "global": keras.config.dtype_policy().name,
            "layers": sorted({{layer.dtype_policy.name for layer in model.layers[1:]}}),
            "variables": sorted({{v.dtype for v in model.weights}}),
        }}))
        """
    )
    loaded = json.loads(run_in_fresh_process(code).strip().splitlines()[-1])
    assert loaded == {"global": "float32", "layers": [policy.name], "variables": ["float32"]}
    np.testing.assert_array_equal(np.load(tmp_path / "model_out.npy"), expected)
    np.testing.assert_array_equal(np.load(tmp_path / "generated.npy"), generated)
