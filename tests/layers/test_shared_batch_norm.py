import keras
import numpy as np
import pytest
from conftest import run_in_fresh_process
from keras.src import testing

from keras_recursive_ae import SharedBatchNorm


class SharedBatchNormLayerTest(testing.TestCase):
    """The checks Keras runs on its own layers."""

    def test_layer_basics(self):
        for decoder_statistics in ("encoder", "batch"):
            self.run_layer_test(
                SharedBatchNorm,
                init_kwargs={"decoder_statistics": decoder_statistics, "momentum": 0.9},
                input_shape=(2, 4, 4, 3),
                expected_output_shape=(2, 4, 4, 3),
                expected_num_trainable_weights=2,
                expected_num_non_trainable_weights=2,
                expected_num_seed_generators=0,
                expected_num_losses=0,
                supports_masking=True,
                run_training_check=True,
                run_mixed_precision_check=True,
            )

    def test_decoder_site_layer_basics(self):
        self.run_layer_test(
            SharedBatchNorm,
            init_kwargs={},
            input_shape=(2, 4, 4, 3),
            call_kwargs={"site": "decoder"},
            expected_output_shape=(2, 4, 4, 3),
            expected_num_trainable_weights=2,
            expected_num_non_trainable_weights=2,
            run_mixed_precision_check=True,
        )


def _built_norm(decoder_statistics="encoder", momentum=0.5):
    norm = SharedBatchNorm(decoder_statistics=decoder_statistics, momentum=momentum)
    norm.build((None, 4, 4, 3))
    norm.moving_mean.assign([0.5, -1.0, 2.0])
    norm.moving_variance.assign([4.0, 0.25, 1.0])
    norm.gamma.assign([2.0, 1.0, 0.5])
    norm.beta.assign([0.1, 0.2, 0.3])
    return norm


def _numpy(tensor):
    # `np.array` fails on a torch tensor that requires grad; this works everywhere.
    return keras.ops.convert_to_numpy(tensor)


def _stats(norm):
    return [np.array(norm.moving_mean), np.array(norm.moving_variance)]


def _images(seed, n=8):
    return np.random.default_rng(seed).normal(3.0, 2.0, size=(n, 4, 4, 3)).astype("float32")


def test_decoder_site_uses_encoder_statistics_in_training_and_never_updates():
    norm = _built_norm()
    before = _stats(norm)
    x = _images(1)
    out = _numpy(norm(x, training=True, site="decoder"))
    expected = (x - before[0]) / np.sqrt(before[1] + norm.epsilon) * [2.0, 1.0, 0.5] + [
        0.1,
        0.2,
        0.3,
    ]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    for now, then in zip(_stats(norm), before):
        np.testing.assert_array_equal(now, then)


def test_encoder_site_is_a_standard_batch_norm():
    norm = _built_norm()
    plain = keras.layers.BatchNormalization(momentum=0.5)
    plain.build((None, 4, 4, 3))
    plain.set_weights(norm.get_weights())
    x = _images(2)
    np.testing.assert_allclose(
        _numpy(norm(x, training=True)), _numpy(plain(x, training=True)), rtol=1e-6
    )
    np.testing.assert_allclose(
        _numpy(norm(x, training=False)), _numpy(plain(x, training=False)), rtol=1e-6
    )
    for a, b in zip(_stats(norm), _stats(plain)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert not np.allclose(_stats(norm)[0], [0.5, -1.0, 2.0])  # training updated them


def test_batch_mode_matches_plain_batch_norm_called_twice():
    norm = _built_norm("batch")
    plain = keras.layers.BatchNormalization(momentum=0.5)
    plain.build((None, 4, 4, 3))
    plain.set_weights(norm.get_weights())
    x1, x2 = _images(3), _images(4) * 0.5
    shared_out = [norm(x1, training=True, site="encoder"), norm(x2, training=True, site="decoder")]
    plain_out = [plain(x1, training=True), plain(x2, training=True)]
    for a, b in zip(shared_out, plain_out):
        np.testing.assert_allclose(_numpy(a), _numpy(b), rtol=1e-5, atol=1e-6)
    for a, b in zip(_stats(norm), _stats(plain)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("decoder_statistics", ["encoder", "batch"])
@pytest.mark.parametrize("site", ["encoder", "decoder"])
def test_frozen_means_inference_at_both_sites(decoder_statistics, site):
    norm = _built_norm(decoder_statistics)
    norm.trainable = False
    before = _stats(norm)
    x = _images(5)
    np.testing.assert_allclose(
        _numpy(norm(x, training=True, site=site)),
        _numpy(norm(x, training=False, site=site)),
        rtol=1e-6,
    )
    for now, then in zip(_stats(norm), before):
        np.testing.assert_array_equal(now, then)


@pytest.mark.parametrize("site", ["encoder", "decoder"])
def test_gamma_and_beta_learn_from_either_site(site):
    norm = SharedBatchNorm()
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, norm(inputs, site=site))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [np.array(norm.gamma), np.array(norm.beta)]
    x = _images(6, 16)
    # A target of ones: with zeros, beta's gradient at the encoder site is
    # exactly 0 (the normalized batch has zero mean), so only float noise moved it.
    model.fit(x, np.ones_like(x), epochs=1, batch_size=16, verbose=0)
    assert not np.allclose(np.array(norm.gamma), before[0])
    assert not np.allclose(np.array(norm.beta), before[1])


def test_invalid_decoder_statistics():
    with pytest.raises(ValueError, match="decoder_statistics='sometimes'"):
        SharedBatchNorm(decoder_statistics="sometimes")


def test_invalid_site():
    norm = SharedBatchNorm(name="level_norm")
    with pytest.raises(ValueError, match="level_norm.*site='middle'"):
        norm(_images(7), site="middle")


def test_config_round_trip():
    norm = SharedBatchNorm(decoder_statistics="batch", momentum=0.8, epsilon=1e-4, name="n")
    clone = SharedBatchNorm.from_config(norm.get_config())
    assert clone.get_config() == norm.get_config()
    assert clone.decoder_statistics == "batch" and clone.name == "n"


def test_sharing_survives_save_and_load_in_a_fresh_process(tmp_path):
    norm = SharedBatchNorm(name="shared")
    inputs = keras.Input((8, 8, 3))
    code = norm(keras.layers.Conv2D(4, 3, strides=2, padding="same")(inputs))
    rebuilt = norm(keras.layers.Conv2DTranspose(4, 3, padding="same")(code), site="decoder")
    model = keras.Model(
        inputs, keras.layers.Conv2DTranspose(3, 3, strides=2, padding="same")(rebuilt)
    )
    model.compile(optimizer="adam", loss="mse")
    x = _images(8).repeat(2, axis=1).repeat(2, axis=2)[:, :8, :8]
    model.fit(x, x, epochs=2, batch_size=4, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", _numpy(model(x, training=False)))
    out = run_in_fresh_process(f"""
import numpy as np, keras
import keras_recursive_ae
model = keras.saving.load_model({str(path)!r})
norms = [l for l in model.layers if isinstance(l, keras_recursive_ae.SharedBatchNorm)]
x = np.load({str(tmp_path / "x.npy")!r})
np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x, training=False)), np.load({str(tmp_path / "y.npy")!r}))
print(len(norms), len(norms[0]._inbound_nodes), len(model.weights))
""")
    assert out.split() == ["1", "2", str(len(model.weights))]
