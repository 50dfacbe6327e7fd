"""Error messages a user can act on: short, and pointing to the API that works."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_recursive_ae import (
    LatentDensity,
    ReconstructionLogger,
    RecursiveTrainer,
    SharedBatchNorm,
    VariationalBottleneck,
    load_lfw,
    psnr,
)
from keras_recursive_ae.utils import arguments
from keras_recursive_ae.utils.messages import MAX_CHARACTERS, describe

layers = keras.layers

BIG = np.zeros((64, 16, 16, 1), "float32")
BIG_TEXT = "array of shape (64, 16, 16, 1) and dtype float32"


def test_describe_gives_shape_and_dtype_of_arrays_and_tensors():
    assert describe(BIG) == BIG_TEXT
    assert describe(tf.zeros((2, 3), "int32")).endswith("of shape (2, 3) and dtype int32")
    assert describe(keras.KerasTensor((None, 8))) == (
        "KerasTensor of shape (None, 8) and dtype float32"
    )
    assert describe((BIG, BIG)) == f"({BIG_TEXT}, {BIG_TEXT})"
    assert describe({"x": BIG}) == f"{{'x': {BIG_TEXT}}}"
    many = describe([np.zeros(3)] * 10)
    assert many.endswith("... (10 items)]") and len(many) <= MAX_CHARACTERS


def test_describe_shows_the_values_of_small_arrays_only_when_asked():
    weights = np.array([0.5, 0.25, 0.5])
    assert describe(weights) == "array of shape (3,) and dtype float64"
    assert describe(weights, max_values=3) == (
        "array of shape (3,) and dtype float64: [0.5, 0.25, 0.5]"
    )
    assert describe(BIG, max_values=8) == BIG_TEXT
    assert describe(keras.KerasTensor((2,)), max_values=8).endswith("and dtype float32")


def test_describe_keeps_short_values_as_their_repr_and_caps_long_ones():
    for value in ("mse", -1, 2.5, None, [0], (1, -1), np.float32(2.0)):
        assert describe(value) == repr(value)
    for value in ("x" * 10_000, list(range(100_000)), {i: i for i in range(10_000)}):
        assert len(describe(value)) <= MAX_CHARACTERS
    assert len(describe("x" * 10_000, max_characters=50)) == 50


def test_describe_survives_a_broken_repr():
    class Broken:
        def __repr__(self):
            raise RuntimeError("no repr")

    assert describe(Broken()).startswith("<Broken")


@pytest.mark.parametrize(
    "build, argument",
    [
        (lambda: arguments.check_int(BIG, "epochs"), "epochs"),
        (lambda: arguments.check_choice(BIG, "schedule", ("greedy",)), "schedule"),
        (lambda: arguments.epochs_per_level(BIG, 3), "epochs"),
        (lambda: arguments.standardize_level_weights(BIG, 3), "level_weights"),
        (lambda: VariationalBottleneck(4, kl_weight=BIG), "kl_weight"),
        (lambda: VariationalBottleneck(BIG), "latent_dim"),
        (lambda: SharedBatchNorm(momentum=BIG), "momentum"),
        (lambda: SharedBatchNorm(epsilon=BIG), "epsilon"),
        (lambda: SharedBatchNorm(axis=BIG), "axis"),
        (lambda: load_lfw(grayscale=BIG), "grayscale"),
        (lambda: load_lfw(test_split=BIG), "test_split"),
        (lambda: load_lfw(data_dir=BIG), "data_dir"),
        (lambda: psnr(BIG, BIG, max_val=BIG), "max_val"),
        (lambda: ReconstructionLogger(BIG[:4, :, :, :], log_dir=BIG), "log_dir"),
    ],
)
def test_an_array_passed_by_mistake_is_named_by_shape_and_dtype(build, argument):
    with pytest.raises((ValueError, TypeError)) as error:
        build()
    message = str(error.value)
    assert f"{argument}={BIG_TEXT}" in message, message
    assert len(message) < 500, message


def test_a_subclassed_model_with_encoder_and_decoder_is_told_to_pass_them():
    class Autoencoder(keras.Model):
        def __init__(self):
            super().__init__()
            self.encoder = keras.Sequential([layers.Conv2D(4, 3, strides=2, padding="same")])
            self.decoder = keras.Sequential(
                [layers.Conv2DTranspose(1, 3, strides=2, padding="same")]
            )

        def call(self, x):
            return self.decoder(self.encoder(x))

    model = Autoencoder()
    with pytest.raises(TypeError, match=r"RecursiveTrainer\(model\.encoder, model\.decoder\)"):
        RecursiveTrainer(model)
    # ... the route that works:
    trainer = RecursiveTrainer(model.encoder, model.decoder, input_shape=(8, 8, 1))
    assert trainer.autoencoder.shapes == [(8, 8, 1), (4, 4, 4)]


def test_a_multi_output_encoder_is_pointed_to_the_variational_bottleneck():
    # keras-io's VAE encoder: Model(inputs, [z_mean, z_log_var, z]).
    class Sampling(layers.Layer):  # keras-io's, with its seed generator (as JAX needs)
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(1337)

        def call(self, inputs):
            z_mean, z_log_var = inputs
            noise = keras.random.normal(keras.ops.shape(z_mean), seed=self.seed_generator)
            return z_mean + keras.ops.exp(0.5 * z_log_var) * noise

    inputs = keras.Input((8, 8, 1))
    x = layers.Flatten()(layers.Conv2D(4, 3, strides=2, padding="same")(inputs))
    z_mean, z_log_var = layers.Dense(2)(x), layers.Dense(2)(x)
    encoder = keras.Model(inputs, [z_mean, z_log_var, Sampling()([z_mean, z_log_var])])
    decoder = keras.Sequential([layers.Dense(64), layers.Reshape((8, 8, 1))])
    with pytest.raises(TypeError, match="one input and one output.*VariationalBottleneck"):
        RecursiveTrainer(encoder, decoder)


def test_a_plain_subclassed_model_still_gets_the_list_of_blocks_hint():
    class Plain(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(TypeError, match="pass its blocks as a list") as error:
        RecursiveTrainer(Plain(), [layers.Conv2D(3, 3, padding="same")])
    assert "model.encoder" not in str(error.value)


def test_latent_density_and_dataset_messages_give_shapes_not_values():
    weights = np.full(10_000, 1.0)  # sums to 10,000
    means, covariances = np.zeros((10_000, 1)), np.ones((10_000, 1, 1))
    with pytest.raises(ValueError, match="summing to 1") as error:
        LatentDensity(weights, means, covariances)
    message = str(error.value)
    assert "array of shape (10000,) and dtype float64, summing to 10000" in message
    assert len(message) < 300, message

    dataset = tf.data.Dataset.from_tensor_slices(({"a": BIG, "b": BIG},)).batch(8)
    trainer = RecursiveTrainer(
        [layers.Conv2D(2, 3, strides=2, padding="same")],
        [layers.Conv2DTranspose(1, 3, strides=2, padding="same")],
        input_shape=(16, 16, 1),
    )
    trainer.compile()
    with pytest.raises(TypeError, match="Received a dataset of") as error:
        trainer.fit(dataset, verbose=0)
    assert "TensorSpec of shape (None, 16, 16, 1) and dtype float32" in str(error.value)
