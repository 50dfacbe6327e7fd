"""The variational bottleneck and generation."""

import keras
import numpy as np
import pytest
from keras.src import testing

from keras_recursive_ae import MirroredConvStack, RecursiveTrainer, VariationalBottleneck
from keras_recursive_ae.trainers.stage_models import StageModel


class VariationalBottleneckLayerTest(testing.TestCase):
    def test_layer_basics(self):
        self.run_layer_test(
            VariationalBottleneck,
            init_kwargs={"latent_dim": 5, "kl_weight": 0.5, "seed": 3},
            input_shape=(2, 4, 4, 3),
            expected_output_shape=(2, 5),
            expected_num_trainable_weights=4,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=1,
            expected_num_losses=1,
            run_mixed_precision_check=True,
        )


def test_kl_term_is_present_and_weighted():
    x = np.random.default_rng(0).normal(size=(6, 4, 4, 3)).astype("float32")
    losses = {}
    for weight in (0.0, 1.0, 3.0):
        layer = VariationalBottleneck(4, kl_weight=weight)
        layer.build(x.shape)
        layer.mean_head.kernel.assign(np.full(layer.mean_head.kernel.shape, 0.1))
        layer.log_var_head.bias.assign(np.full((4,), 0.5))
        layer(x, training=True)
        losses[weight] = float(layer.losses[0])
    mean = x.reshape(6, -1) @ np.full((48, 4), 0.1)
    kl = -0.5 * np.sum(1 + 0.5 - mean**2 - np.exp(0.5), axis=-1).mean()
    np.testing.assert_allclose(losses[1.0], kl, rtol=1e-5)
    np.testing.assert_allclose(losses[3.0], 3 * kl, rtol=1e-5)
    assert losses[0.0] == 0.0


def test_sampling_in_training_mean_in_inference():
    layer = VariationalBottleneck(8, seed=1)
    x = np.random.default_rng(0).random((4, 6), dtype="float32")
    numpy = keras.ops.convert_to_numpy
    mean = numpy(layer(x, training=False))
    np.testing.assert_array_equal(mean, numpy(layer(x, training=False)))
    sample = numpy(layer(x, training=True))
    assert sample.shape == (4, 8) and not np.allclose(sample, mean)


def test_variational_stack_restores_shapes_and_trains_greedily():
    stack = MirroredConvStack(
        filters=(4, 8),
        input_shape=(15, 13, 3),
        variational=True,
        latent_dim=6,
        normalization="shared",
        kl_weight=0.1,
    )
    assert stack.shapes == [(15, 13, 3), (8, 7, 4), (6,)]
    bottleneck = stack.get_layer("variational_bottleneck")
    assert bottleneck in stack.encoder_level_layers(2)
    trainer = RecursiveTrainer(stack)
    trainer.compile(optimizer="adam")
    x = np.random.default_rng(0).random((16, 15, 13, 3), dtype="float32")
    trainer.fit(x, epochs=1, batch_size=8, verbose=0)
    assert trainer.model.predict(x, verbose=0).shape == x.shape
    config = stack.get_config()
    assert config["variational"] and config["latent_dim"] == 6
    assert MirroredConvStack.from_config(config).shapes == stack.shapes


def test_only_the_innermost_stage_carries_the_kl_loss():
    stack = MirroredConvStack(
        filters=(4, 8), input_shape=(8, 8, 1), variational=True, latent_dim=3, kl_weight=100.0
    )
    losses = {}
    for level in (1, 2):  # the model each greedy stage trains
        model = StageModel(stack.encoder_levels[level - 1], stack.decoder_levels[level - 1])
        x = np.random.default_rng(0).random((4,) + tuple(model.inputs[0].shape[1:]))
        model(x, training=True)
        losses[level] = len(model.losses)
    assert losses == {1: 0, 2: 1}


def test_generate_is_deterministic_with_a_seed_and_in_range():
    stack = MirroredConvStack(filters=(4, 8), input_shape=(8, 8, 1), variational=True, latent_dim=3)
    trainer = RecursiveTrainer(stack)
    trainer.compile()
    trainer.fit(np.random.rand(8, 8, 8, 1), epochs=1, batch_size=4, verbose=0)
    images = trainer.generate(5, seed=7)
    assert images.shape == (5, 8, 8, 1)
    assert np.all((images >= 0) & (images <= 1))
    np.testing.assert_array_equal(images, trainer.generate(5, seed=7))
    assert not np.array_equal(images, trainer.generate(5, seed=8))
    with pytest.raises(ValueError, match="num_images=0"):
        trainer.generate(0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"latent_dim": 0}, "latent_dim=0"),
        ({"latent_dim": 4, "kl_weight": -1}, "kl_weight=-1"),
    ],
)
def test_invalid_bottleneck_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VariationalBottleneck(**kwargs)


def test_variational_stack_needs_a_latent_dim():
    with pytest.raises(ValueError, match="latent_dim=None"):
        MirroredConvStack(filters=(4,), input_shape=(8, 8, 1), variational=True)


def _ellipses(count, size=16, seed=0):
    """Smooth, varied images: a coloured ellipse of random place, size and colour."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    images = np.empty((count, size, size, 3), "float32")
    for image in images:
        background, colour = rng.uniform(0.1, 0.6, 3), rng.uniform(0.4, 1.0, 3)
        (cy, cx), (ry, rx) = rng.uniform(0.3, 0.7, 2), rng.uniform(0.15, 0.35, 2)
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        image[...] = np.where(inside[..., None], colour, background)
    return images


def _sample_spread(**kwargs):
    keras.utils.set_random_seed(0)
    stack = MirroredConvStack(
        filters=(8, 16), input_shape=(16, 16, 3), variational=True, latent_dim=8, **kwargs
    )
    trainer = RecursiveTrainer(stack)
    trainer.compile(optimizer=keras.optimizers.Adam(0.005), loss="mse")
    trainer.fit(_ellipses(512), epochs=8, batch_size=32, verbose=0)
    return float(np.mean(np.std(trainer.generate(16, seed=0), axis=0)))


def test_default_kl_weight_does_not_collapse_the_samples():
    # Real images spread 0.18 (std over images, mean over values). With
    # `loss="mse"` and a KL weight of 1.0 (the default before), the KL term
    # outweighs the mean error by the ~512 rebuilt values: every code is the
    # prior's and the samples are one image (spread 0.012-0.014 over 4 seeds).
    # The default, 0.01 over the values of T_{n-1}, gave 0.10-0.12.
    real = float(np.mean(np.std(_ellipses(512), axis=0)))
    default = _sample_spread()
    assert default > real / 4, (default, real)
    assert _sample_spread(kl_weight=1.0) < real / 4  # the test can see a collapse


def test_default_kl_weight_is_a_hundredth_per_rebuilt_value_and_explicit_weights_stay():
    stack = MirroredConvStack(filters=(4, 8), input_shape=(8, 8, 3), variational=True, latent_dim=3)
    bottleneck = stack.get_layer("variational_bottleneck")
    # The innermost stage rebuilds T_1, (4, 4, 4): 64 values.
    assert bottleneck.kl_weight == pytest.approx(0.01 / 64)
    assert stack.get_config()["kl_weight"] is None
    revived = MirroredConvStack.from_config(stack.get_config())
    assert revived.get_layer("variational_bottleneck").kl_weight == pytest.approx(0.01 / 64)
    for weight in (1.0, 0.25, 0):
        given = MirroredConvStack(
            filters=(4, 8), input_shape=(8, 8, 3), variational=True, latent_dim=3, kl_weight=weight
        )
        assert given.get_layer("variational_bottleneck").kl_weight == weight
        assert given.get_config()["kl_weight"] == weight


def test_bottleneck_default_weight_is_a_hundredth_per_input_value():
    x = np.random.default_rng(0).normal(size=(6, 4, 4, 3)).astype("float32")
    default = VariationalBottleneck(4, seed=0)
    unit = VariationalBottleneck(4, kl_weight=1.0, seed=0)
    default.build(x.shape)
    unit.build(x.shape)
    unit.set_weights(default.get_weights())
    default(x, training=True)
    unit(x, training=True)
    np.testing.assert_allclose(
        float(default.losses[0]), float(unit.losses[0]) * 0.01 / 48, rtol=1e-5
    )
    assert default.kl_weight is None
    assert VariationalBottleneck.from_config(default.get_config()).kl_weight is None
