import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_recursive_ae import metrics
from keras_recursive_ae.metrics import (
    PSNR,
    SSIM,
    SharpnessRatio,
    SumSquaredError,
    psnr,
    sharpness_ratio,
    ssim,
    sum_squared_error,
)


def _images(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype("float32")


def _smooth_images(shape, seed=0):
    # Natural-ish images: smooth gradients plus texture, not white noise.
    n, h, w, c = shape
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    base = 0.5 + 0.3 * np.sin(6 * xx + 4 * yy)[None, :, :, None]
    noise = 0.15 * _images(shape, seed)
    return np.clip(base + noise, 0, 1).astype("float32")


def _degrade(x, seed=1):
    rng = np.random.default_rng(seed)
    return np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1).astype("float32")


def _laplacian_variance(x):
    g = x.astype("float64").mean(axis=-1)
    lap = g[:, :-2, 1:-1] + g[:, 2:, 1:-1] + g[:, 1:-1, :-2] + g[:, 1:-1, 2:] - 4 * g[:, 1:-1, 1:-1]
    return lap.reshape(len(x), -1).var(axis=1)


# Hand-computed values.


@pytest.mark.parametrize("d", [0.1, 0.25, 1.0])
def test_constant_difference(d):
    x = np.full((3, 8, 6, 3), 0.0, "float32")
    y = x + d
    np.testing.assert_allclose(sum_squared_error(x, y), [8 * 6 * 3 * d**2] * 3, rtol=1e-6)
    np.testing.assert_allclose(psnr(x, y), [10 * math.log10(1 / d**2)] * 3, rtol=1e-5, atol=1e-5)


def test_psnr_max_val():
    x = np.zeros((2, 4, 4, 1), "float32")
    y = np.full_like(x, 25.5)
    np.testing.assert_allclose(psnr(x, y, max_val=255), [20.0, 20.0], rtol=1e-5)


def test_identical_images():
    x = _images((4, 16, 16, 3))
    np.testing.assert_array_equal(sum_squared_error(x, x), np.zeros(4))
    assert np.all(np.isposinf(psnr(x, x)))
    np.testing.assert_allclose(ssim(x, x), np.ones(4), atol=1e-6)
    np.testing.assert_allclose(sharpness_ratio(x, x), np.ones(4), atol=1e-6)


def test_outputs_are_per_image_numpy():
    x = _images((5, 12, 12, 2))
    y = _degrade(x)
    for fn in (sum_squared_error, psnr, ssim, sharpness_ratio):
        out = fn(x, y)
        assert isinstance(out, np.ndarray)
        assert out.shape == (5,)
        assert out.dtype == np.float32


def test_sum_squared_error_matches_numpy():
    x = _images((3, 10, 7, 3), 0)
    y = _images((3, 10, 7, 3), 1)
    expected = ((x.astype("float64") - y) ** 2).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(sum_squared_error(x, y), expected, rtol=1e-5)


def test_psnr_matches_tf_image():
    x = _smooth_images((4, 20, 20, 3))
    y = _degrade(x)
    np.testing.assert_allclose(psnr(x, y), tf.image.psnr(x, y, 1.0).numpy(), rtol=1e-5)


# SSIM against references.


@pytest.mark.parametrize("shape", [(3, 32, 40, 3), (2, 11, 11, 1), (2, 25, 25, 1), (1, 64, 48, 3)])
def test_ssim_matches_tf_image_ssim(shape):
    x = _smooth_images(shape)
    y = _degrade(x)
    expected = tf.image.ssim(x, y, max_val=1.0).numpy()
    np.testing.assert_allclose(ssim(x, y), expected, atol=2e-5)


@pytest.mark.parametrize("shape", [(3, 32, 40, 3), (2, 25, 25, 1)])
def test_ssim_matches_skimage(shape):
    skimage_metrics = pytest.importorskip("skimage.metrics")
    x = _smooth_images(shape)
    y = _degrade(x)
    expected = [
        skimage_metrics.structural_similarity(
            a.astype("float64"),
            b.astype("float64"),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=-1,
        )
        for a, b in zip(x, y)
    ]
    np.testing.assert_allclose(ssim(x, y), expected, atol=1e-4)


def test_ssim_max_val_scales():
    x = _smooth_images((2, 16, 16, 3))
    y = _degrade(x)
    np.testing.assert_allclose(ssim(255 * x, 255 * y, max_val=255), ssim(x, y), atol=1e-4)


def test_ssim_small_images_shrink_the_window():
    # 8x8: window shrinks to 7x7 (largest odd size that fits).
    x = _smooth_images((3, 8, 8, 3))
    y = _degrade(x)
    expected = tf.image.ssim(x, y, max_val=1.0, filter_size=7).numpy()
    np.testing.assert_allclose(ssim(x, y), expected, atol=2e-5)
    # Non-square: the smaller side decides (10 -> 9).
    x = _smooth_images((2, 10, 30, 1))
    y = _degrade(x)
    expected = tf.image.ssim(x, y, max_val=1.0, filter_size=9).numpy()
    np.testing.assert_allclose(ssim(x, y), expected, atol=2e-5)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_ssim_tiny_images_are_finite(size):
    x = _images((2, size, size, 1))
    y = _degrade(x)
    out = ssim(x, y)
    assert np.all(np.isfinite(out))
    assert np.all(out <= 1 + 1e-6)
    np.testing.assert_allclose(ssim(x, x), [1, 1], atol=1e-6)


def test_ssim_orders_degradations():
    x = _smooth_images((2, 32, 32, 3))
    mild = _degrade(x, seed=1)
    strong = np.clip(x + 0.4 * np.random.default_rng(2).standard_normal(x.shape), 0, 1)
    assert np.all(ssim(x, mild) > ssim(x, strong))


# Sharpness.


def test_sharpness_matches_numpy_reference():
    x = _smooth_images((3, 20, 24, 3))
    y = _degrade(x)
    expected = (_laplacian_variance(y) + 1e-8) / (_laplacian_variance(x) + 1e-8)
    np.testing.assert_allclose(sharpness_ratio(x, y), expected, rtol=1e-4)


def test_sharpness_blur_lowers_and_noise_raises():
    x = _smooth_images((2, 32, 32, 1))
    blurred = tf.nn.avg_pool2d(x, 3, 1, "SAME").numpy()
    assert np.all(sharpness_ratio(x, blurred) < 0.5)
    assert np.all(sharpness_ratio(x, _degrade(x)) > 1.0)


def test_sharpness_uses_grey_level_image():
    # Channels swapped: same grey image, so same sharpness.
    x = _smooth_images((2, 16, 16, 3))
    np.testing.assert_allclose(sharpness_ratio(x, x[..., ::-1]), [1, 1], rtol=1e-5)


def test_sharpness_flat_images_are_guarded():
    flat = np.full((2, 8, 8, 1), 0.5, "float32")
    np.testing.assert_allclose(sharpness_ratio(flat, flat), [1, 1])
    out = sharpness_ratio(flat, _images((2, 8, 8, 1)))
    assert np.all(np.isfinite(out)) and np.all(out > 1e3)


# Input validation.


@pytest.mark.parametrize("fn", [sum_squared_error, psnr, ssim, sharpness_ratio])
def test_rank_errors(fn):
    with pytest.raises(ValueError, match=re.escape("y_true.shape=(4, 4, 3)")):
        fn(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match=re.escape("y_pred.shape=(1, 2, 4, 4, 3)")):
        fn(np.zeros((1, 4, 4, 3)), np.zeros((1, 2, 4, 4, 3)))


@pytest.mark.parametrize("fn", [sum_squared_error, psnr, ssim, sharpness_ratio])
def test_shape_mismatch_errors(fn):
    with pytest.raises(
        ValueError,
        match=re.escape("y_true.shape=(2, 8, 8, 3), y_pred.shape=(2, 8, 8, 1)"),
    ):
        fn(np.zeros((2, 8, 8, 3)), np.zeros((2, 8, 8, 1)))


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "1"])
def test_max_val_errors(bad):
    x = np.zeros((1, 4, 4, 1))
    for fn in (psnr, ssim):
        with pytest.raises(ValueError, match=re.escape(f"max_val={bad!r}")):
            fn(x, x, max_val=bad)
    for cls in (PSNR, SSIM):
        with pytest.raises(ValueError, match=re.escape(f"max_val={bad!r}")):
            cls(max_val=bad)


def test_epsilon_and_size_errors():
    x = np.zeros((1, 4, 4, 1))
    with pytest.raises(ValueError, match=re.escape("epsilon=0")):
        sharpness_ratio(x, x, epsilon=0)
    with pytest.raises(ValueError, match=re.escape("epsilon=-1")):
        SharpnessRatio(epsilon=-1)
    small = np.zeros((1, 2, 5, 1))
    with pytest.raises(ValueError, match=re.escape("y_true.shape=(1, 2, 5, 1)")):
        sharpness_ratio(small, small)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3),
    h=st.integers(1, 14),
    w=st.integers(1, 14),
    c=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_properties_on_any_shape(n, h, w, c, seed):
    x = _images((n, h, w, c), seed)
    y = _images((n, h, w, c), seed + 1)
    sse = sum_squared_error(x, y)
    assert np.all(sse >= 0)
    np.testing.assert_allclose(sse, sum_squared_error(y, x), rtol=1e-6)
    s = ssim(x, y)
    assert s.shape == (n,)
    assert np.all(s <= 1 + 1e-5) and np.all(s >= -1 - 1e-5)
    np.testing.assert_allclose(s, ssim(y, x), atol=1e-5)
    np.testing.assert_allclose(ssim(x, x), np.ones(n), atol=1e-5)
    if h >= 3 and w >= 3:
        assert np.all(sharpness_ratio(x, y) > 0)


# Metric classes.

METRICS = [
    (SumSquaredError, sum_squared_error, {}),
    (PSNR, psnr, {"max_val": 1.0}),
    (SSIM, ssim, {"max_val": 1.0}),
    (SharpnessRatio, sharpness_ratio, {"epsilon": 1e-8}),
]


@pytest.mark.parametrize("cls, fn, kwargs", METRICS)
def test_metric_accumulates_weighted_mean(cls, fn, kwargs):
    x1, x2 = (
        _smooth_images((3, 16, 16, 3), 0),
        _smooth_images((2, 16, 16, 3), 5),
    )
    y1, y2 = _degrade(x1, 1), _degrade(x2, 2)
    w1, w2 = np.array([1.0, 2.0, 0.5]), np.array([[3.0], [0.0]])
    metric = cls(**kwargs)
    metric.update_state(x1, y1, sample_weight=w1)
    metric.update_state(x2, y2, sample_weight=w2)
    values = np.concatenate([fn(x1, y1, **kwargs), fn(x2, y2, **kwargs)])
    weights = np.concatenate([w1, w2.ravel()])
    expected = np.average(values, weights=weights)
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-5)

    metric.reset_state()
    assert float(metric.result()) == 0.0
    metric.update_state(x1, y1)
    metric.update_state(x2, y2, sample_weight=2.0)
    expected = np.average(values, weights=[1, 1, 1, 2, 2])
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-5)


@pytest.mark.parametrize("cls, fn, kwargs", METRICS)
def test_metric_config_round_trip(cls, fn, kwargs):
    other = {k: 2 * v for k, v in kwargs.items()}
    metric = cls(name="custom", dtype="float32", **other)
    config = metric.get_config()
    assert config["name"] == "custom"
    assert config["dtype"] == "float32"
    for k, v in other.items():
        assert config[k] == v
    clone = cls.from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(metric)
    assert serialized["registered_name"] == f"keras_recursive_ae>{cls.__name__}"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is cls
    assert restored.get_config() == config


def test_metrics_in_compiled_model_and_saved_model(tmp_path):
    # An identity-plus-offset model: predictions are x + 0.1, clipped.
    inputs = keras.Input((12, 12, 3))
    outputs = keras.layers.Rescaling(1.0, offset=0.1)(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(
        loss="mse",
        metrics=[SumSquaredError(), PSNR(), SSIM(), SharpnessRatio()],
    )
    x = _smooth_images((10, 12, 12, 3)) * 0.8
    results = model.evaluate(x, x, batch_size=4, verbose=0, return_dict=True)
    y = x + 0.1
    np.testing.assert_allclose(
        results["sum_squared_error"], sum_squared_error(x, y).mean(), rtol=1e-4
    )
    np.testing.assert_allclose(results["psnr"], psnr(x, y).mean(), rtol=1e-4)
    np.testing.assert_allclose(results["ssim"], ssim(x, y).mean(), rtol=1e-4)
    np.testing.assert_allclose(results["sharpness_ratio"], 1.0, rtol=1e-4)

    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    again = restored.evaluate(x, x, batch_size=4, verbose=0, return_dict=True)
    for key, value in results.items():
        np.testing.assert_allclose(again[key], value, rtol=1e-5)


@pytest.mark.parametrize("cls, fn, kwargs", METRICS)
def test_metric_is_a_keras_mean_metric_wrapper(cls, fn, kwargs):
    metric = cls(**kwargs)
    assert isinstance(metric, keras.metrics.MeanMetricWrapper)
    assert sorted(v.name for v in metric.variables) == ["count", "total"]
    x = _smooth_images((2, 16, 16, 3), 3)
    metric.update_state(x, _degrade(x, 1))
    state = {v.name: float(keras.ops.convert_to_numpy(v)) for v in metric.variables}
    assert state["count"] == 2.0  # one per image


def test_sharpness_is_the_measure_sharpness_ratio_compares():
    images = np.random.default_rng(0).random((3, 9, 9, 3)).astype("float32")
    values = metrics.sharpness(images)
    assert values.shape == (3,) and values.dtype == np.float32
    ratio = metrics.sharpness_ratio(images[:1], images[1:2], epsilon=1e-8)[0]
    assert values[1] / values[0] == pytest.approx(ratio, rel=1e-5)
    assert metrics.sharpness(np.full((2, 5, 5, 1), 0.5)).tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((2, 2, 2, 1)), r"`images`.*3x3.*images.shape=\(2, 2, 2, 1\)"),
        (np.zeros((8, 8, 1)), r"`images`.*rank-4.*images.shape=\(8, 8, 1\)"),
    ],
)
def test_sharpness_refuses_what_it_cannot_measure(images, message):
    with pytest.raises(ValueError, match=message):
        metrics.sharpness(images)
