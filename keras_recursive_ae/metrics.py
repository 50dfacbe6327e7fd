"""Reconstruction metrics for batches of images.

Every metric exists twice:

- a plain function (`sum_squared_error`, `psnr`, `ssim`, `sharpness_ratio`)
  that takes two batches of images and returns one value per image as a
  NumPy array, for scoring reconstructions after training;
- a Keras metric (`SumSquaredError`, `PSNR`, `SSIM`, `SharpnessRatio`) whose
  `result()` is the (sample-weighted) mean of the same per-image value over
  every image seen since the last `reset_state()`, for `compile(metrics=...)`.

Both are computed with `keras.ops`, so they run on every Keras backend.
Images are batches shaped `(batch, height, width, channels)`
("channels_last"), with values in `[0, max_val]`.
"""

import keras
import numpy as np
from keras import ops

from keras_recursive_ae.utils.images import check_image_batch
from keras_recursive_ae.utils.messages import describe

_PACKAGE = "keras_recursive_ae"

# Wang et al. (2004), as used by `tf.image.ssim` and scikit-image.
_SSIM_FILTER_SIZE = 11
_SSIM_FILTER_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03

_LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def _check_images(y_true, y_pred):
    """Raises `ValueError` unless both are rank-4 batches of one shape."""
    check_image_batch(y_true.shape, "y_true")
    check_image_batch(y_pred.shape, "y_pred")
    for a, b in zip(y_true.shape, y_pred.shape):
        # `None` is an unknown (symbolic) dimension: it matches anything.
        if a is not None and b is not None and a != b:
            raise ValueError(
                "Arguments `y_true` and `y_pred` must have the same shape. "
                f"Received: y_true.shape={tuple(y_true.shape)}, "
                f"y_pred.shape={tuple(y_pred.shape)}"
            )


def _check_positive(name, value):
    """Returns `value` as a float; raises unless it is finite and > 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.number))
        or not 0 < value < float("inf")
    ):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a finite, "
            f"strictly positive number. Received: {name}={describe(value)}"
        )
    return float(value)


def _sum_squared_error(y_true, y_pred):
    return ops.sum(ops.square(y_true - y_pred), axis=(1, 2, 3))


def _psnr(y_true, y_pred, max_val):
    mse = ops.mean(ops.square(y_true - y_pred), axis=(1, 2, 3))
    # Identical images give mse == 0 and PSNR == +inf, as `tf.image.psnr`.
    return 10.0 * ops.log10(max_val**2 / mse)


def _ssim_filter_size(height, width):
    """The Gaussian window's side: 11, or less for images under 11 pixels.

    Shrinks to the largest odd size that fits the image (odd, so the window
    keeps a centre pixel). Unknown (symbolic) sizes keep 11.
    """
    size = _SSIM_FILTER_SIZE
    for side in (height, width):
        if side is not None and side < size:
            size = side if side % 2 else side - 1
    return max(size, 1)


def _gaussian_window(size, sigma):
    coords = np.arange(size, dtype="float64") - (size - 1) / 2.0
    g = np.exp(-(coords**2) / (2.0 * sigma**2))
    window = np.outer(g, g)
    return window / window.sum()


def _ssim(y_true, y_pred, max_val):
    channels = y_true.shape[-1]
    size = _ssim_filter_size(y_true.shape[1], y_true.shape[2])
    window = _gaussian_window(size, _SSIM_FILTER_SIGMA)
    # One depthwise conv for the five local moments of every channel.
    kernel = np.tile(window[:, :, None, None], (1, 1, 5 * channels, 1))
    kernel = ops.convert_to_tensor(kernel, dtype=y_true.dtype)
    stacked = ops.concatenate(
        [
            y_true,
            y_pred,
            ops.square(y_true),
            ops.square(y_pred),
            y_true * y_pred,
        ],
        axis=-1,
    )
    moments = ops.depthwise_conv(stacked, kernel, padding="valid", data_format="channels_last")
    mu_x, mu_y, e_xx, e_yy, e_xy = ops.split(moments, 5, axis=-1)
    c1 = (_SSIM_K1 * max_val) ** 2
    c2 = (_SSIM_K2 * max_val) ** 2
    mu_xy = mu_x * mu_y
    mu_xx_yy = ops.square(mu_x) + ops.square(mu_y)
    luminance = (2.0 * mu_xy + c1) / (mu_xx_yy + c1)
    # Population (not sample) covariances, as `tf.image.ssim`.
    contrast_structure = (2.0 * (e_xy - mu_xy) + c2) / ((e_xx + e_yy - mu_xx_yy) + c2)
    return ops.mean(luminance * contrast_structure, axis=(1, 2, 3))


def _laplacian_variance(images):
    grey = ops.mean(images, axis=-1, keepdims=True)
    kernel = ops.convert_to_tensor(_LAPLACIAN[:, :, None, None], dtype=images.dtype)
    edges = ops.depthwise_conv(grey, kernel, padding="valid", data_format="channels_last")
    return ops.var(edges, axis=(1, 2, 3))


def _check_sharpness_size(images, argument="y_true", function="sharpness_ratio"):
    for side in images.shape[1:3]:
        if side is not None and side < 3:
            raise ValueError(
                f"Invalid value for argument `{argument}`. `{function}` "
                "needs images of at least 3x3 pixels (its Laplacian kernel "
                f"is 3x3). Received: {argument}.shape={tuple(images.shape)}"
            )


def _sharpness_ratio(y_true, y_pred, epsilon):
    return (_laplacian_variance(y_pred) + epsilon) / (_laplacian_variance(y_true) + epsilon)


def _checked_sharpness_ratio(y_true, y_pred, epsilon):
    _check_sharpness_size(y_true)
    return _sharpness_ratio(y_true, y_pred, epsilon)


def _per_image(fn, y_true, y_pred, **options):
    """`fn` of the two batches as float32 tensors, checked, as a NumPy array."""
    y_true = ops.convert_to_tensor(y_true, dtype="float32")
    y_pred = ops.convert_to_tensor(y_pred, dtype="float32")
    _check_images(y_true, y_pred)
    return ops.convert_to_numpy(fn(y_true, y_pred, **options))


def sum_squared_error(y_true, y_pred):
    """Per-image sum of squared errors.

    The reconstruction error of Table 1 of "Recursively Trained
    Autoencoders" (Ray & Hannon, 2022): for each image, the squared
    differences summed over all `height * width * channels` values. The
    paper reports its mean over 100 test images.

    Args:
        y_true: Original images, an array-like shaped
            `(batch, height, width, channels)`.
        y_pred: Reconstructed images, same shape as `y_true`.

    Returns:
        A float32 NumPy array shaped `(batch,)`.

    Raises:
        ValueError: If `y_true` or `y_pred` is not rank 4, or their shapes
            differ.

    Example:

    >>> import numpy as np
    >>> from keras_recursive_ae.metrics import sum_squared_error
    >>> x = np.zeros((2, 4, 4, 3))
    >>> sum_squared_error(x, x + 0.5)
    array([12., 12.], dtype=float32)
    """
    return _per_image(_sum_squared_error, y_true, y_pred)


def psnr(y_true, y_pred, max_val=1.0):
    """Per-image peak signal-to-noise ratio, in decibels.

    `10 * log10(max_val**2 / mse)`, with the mean squared error taken over
    all values of each image. Identical images give `+inf`, as
    `tf.image.psnr` does.

    Args:
        y_true: Original images, an array-like shaped
            `(batch, height, width, channels)`.
        y_pred: Reconstructed images, same shape as `y_true`.
        max_val: The dynamic range of the images: `1.0` for images in
            `[0, 1]`, `255` for images in `[0, 255]`. Defaults to `1.0`.

    Returns:
        A float32 NumPy array shaped `(batch,)`; higher is better.

    Raises:
        ValueError: If `y_true` or `y_pred` is not rank 4, their shapes
            differ, or `max_val` is not strictly positive.

    Example:

    >>> import numpy as np
    >>> from keras_recursive_ae.metrics import psnr
    >>> x = np.zeros((1, 4, 4, 3))
    >>> psnr(x, x + 0.1)  # 10 * log10(1 / 0.1**2)
    array([20.], dtype=float32)
    """
    max_val = _check_positive("max_val", max_val)
    return _per_image(_psnr, y_true, y_pred, max_val=max_val)


def ssim(y_true, y_pred, max_val=1.0):
    """Per-image structural similarity (SSIM).

    The standard SSIM of Wang et al. (2004): local statistics under an
    11x11 Gaussian window with sigma 1.5, `K1=0.01`, `K2=0.03`, population
    covariances, averaged over the "valid" region (where the window fits
    inside the image) and then over channels. This is what `tf.image.ssim`
    computes, and what `skimage.metrics.structural_similarity` computes with
    `gaussian_weights=True, sigma=1.5, use_sample_covariance=False`.

    Images smaller than 11 pixels on a side are supported: the window
    shrinks to the largest odd size that fits the smaller side (7 for 8x8
    images, 1 for 1-pixel images), keeping sigma 1.5 and renormalizing the
    truncated Gaussian. This equals `tf.image.ssim(..., filter_size=7)` on
    8x8 images; `tf.image.ssim` with its default filter size and
    scikit-image reject such images.

    Args:
        y_true: Original images, an array-like shaped
            `(batch, height, width, channels)`.
        y_pred: Reconstructed images, same shape as `y_true`.
        max_val: The dynamic range of the images: `1.0` for images in
            `[0, 1]`, `255` for images in `[0, 255]`. Defaults to `1.0`.

    Returns:
        A float32 NumPy array shaped `(batch,)`, at most 1 (identical
        images); higher is better.

    Raises:
        ValueError: If `y_true` or `y_pred` is not rank 4, their shapes
            differ, or `max_val` is not strictly positive.

    Example:

    >>> import numpy as np
    >>> from keras_recursive_ae.metrics import ssim
    >>> x = np.random.default_rng(0).random((2, 16, 16, 3))
    >>> ssim(x, x)
    array([1., 1.], dtype=float32)
    """
    max_val = _check_positive("max_val", max_val)
    return _per_image(_ssim, y_true, y_pred, max_val=max_val)


def sharpness_ratio(y_true, y_pred, epsilon=1e-8):
    """Per-image sharpness of the reconstruction relative to the original.

    Sharpness is the variance of the Laplacian: each image is averaged over
    its channels into one grey-level image, filtered with the 3x3 kernel
    `[[0, 1, 0], [1, -4, 1], [0, 1, 0]]` on its "valid" region, and the
    variance of the response is taken over all pixels. The ratio is
    `(sharpness(y_pred) + epsilon) / (sharpness(y_true) + epsilon)`:
    `1.0` means as crisp as the original, below 1 blurrier, above 1
    noisier or over-sharpened. `epsilon` keeps the ratio finite for flat
    originals (two flat images give exactly 1).

    Args:
        y_true: Original images, an array-like shaped
            `(batch, height, width, channels)`, at least 3x3 pixels.
        y_pred: Reconstructed images, same shape as `y_true`.
        epsilon: Small strictly positive number added to both variances.
            Defaults to `1e-8`, negligible against the Laplacian variance of
            natural images in `[0, 1]` (around `1e-3` to `1e-1`).

    Returns:
        A float32 NumPy array shaped `(batch,)`.

    Raises:
        ValueError: If `y_true` or `y_pred` is not rank 4, their shapes
            differ, the images are smaller than 3x3 pixels, or `epsilon` is
            not strictly positive.

    Example:

    >>> import numpy as np
    >>> from keras_recursive_ae.metrics import sharpness_ratio
    >>> x = np.random.default_rng(0).random((1, 16, 16, 1))
    >>> blurred = (x + np.roll(x, 1, axis=1) + np.roll(x, 1, axis=2)) / 3
    >>> bool(sharpness_ratio(x, blurred)[0] < 1.0)
    True
    """
    epsilon = _check_positive("epsilon", epsilon)
    return _per_image(_checked_sharpness_ratio, y_true, y_pred, epsilon=epsilon)


def sharpness(images):
    """Per-image sharpness: the variance of the Laplacian.

    The measure `sharpness_ratio` compares: each image is averaged over its
    channels into one grey-level image, filtered with the 3x3 kernel
    `[[0, 1, 0], [1, -4, 1], [0, 1, 0]]` on its "valid" region, and the
    variance of the response is taken over all pixels. Use it to compare
    images that have no original of their own, such as generated ones.

    Args:
        images: An array-like shaped `(batch, height, width, channels)`, at
            least 3x3 pixels.

    Returns:
        A float32 NumPy array shaped `(batch,)`; 0 for a flat image.

    Raises:
        ValueError: If `images` is not rank 4 or smaller than 3x3 pixels.

    Example:

    >>> import numpy as np
    >>> from keras_recursive_ae.metrics import sharpness
    >>> sharpness(np.full((1, 8, 8, 3), 0.5)).tolist()
    [0.0]
    """
    images = ops.convert_to_tensor(images, dtype="float32")
    check_image_batch(images.shape, "images")
    _check_sharpness_size(images, "images", "sharpness")
    return ops.convert_to_numpy(_laplacian_variance(images))


class _MeanPerImageMetric(keras.metrics.MeanMetricWrapper):
    """Sample-weighted mean of a per-image value over all images seen.

    `keras.metrics.MeanMetricWrapper` keeps the running mean; this class
    casts the images to the metric's dtype, checks their shapes, and gives
    a scalar sample weight to every image (`Mean` alone would weigh the
    batch's mean once).
    The per-image function is fixed by each subclass, so the config holds
    the subclass's own arguments rather than the function.
    """

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Accumulates the per-image values of one batch.

        Args:
            y_true: Original images shaped `(batch, height, width, channels)`.
            y_pred: Reconstructed images, same shape as `y_true`.
            sample_weight: Optional weight: a scalar, or one weight per
                image shaped `(batch,)` or `(batch, 1)`. The result is
                `sum(weight * value) / sum(weight)`.
        """
        y_true = ops.convert_to_tensor(y_true, dtype=self.dtype)
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        _check_images(y_true, y_pred)
        if sample_weight is not None:
            sample_weight = ops.convert_to_tensor(sample_weight, dtype=self.dtype)
            if len(sample_weight.shape) == 0:
                # `Mean` would weigh the batch's mean once; weigh every image.
                sample_weight = sample_weight * ops.ones_like(y_true[:, 0, 0, 0])
        return super().update_state(y_true, y_pred, sample_weight=sample_weight)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SumSquaredError(_MeanPerImageMetric):
    """Mean over images of the per-image sum of squared errors.

    The reconstruction error of Table 1 of "Recursively Trained
    Autoencoders"; see `sum_squared_error`. Lower is better.

    Args:
        name: String name of the metric instance.
        dtype: Data type of the metric's state and computation.

    Example:

    >>> import numpy as np
    >>> from keras_recursive_ae.metrics import SumSquaredError
    >>> m = SumSquaredError()
    >>> m.update_state(np.zeros((2, 4, 4, 3)), np.full((2, 4, 4, 3), 0.5))
    >>> float(m.result())
    12.0

    Usage with `compile()`:

    ```python
    import keras
    from keras_recursive_ae.metrics import PSNR, SSIM, SumSquaredError

    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid"),
    ])
    model.compile(
        optimizer="adam",
        loss="mse",
        metrics=[SumSquaredError(), PSNR(), SSIM()],
    )
    ```
    """

    def __init__(self, name="sum_squared_error", dtype=None):
        super().__init__(_sum_squared_error, name=name, dtype=dtype)


class _RangeMetric(_MeanPerImageMetric):
    """A per-image metric of images whose values span `max_val`."""

    def __init__(self, fn, max_val, name, dtype=None):
        max_val = _check_positive("max_val", max_val)
        super().__init__(fn, name=name, dtype=dtype, max_val=max_val)
        self.max_val = max_val

    def get_config(self):
        return {**super().get_config(), "max_val": self.max_val}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PSNR(_RangeMetric):
    """Mean over images of the per-image PSNR, in decibels.

    See `psnr`. Higher is better. An exactly reconstructed image has an
    infinite PSNR, which makes the mean infinite.

    Args:
        max_val: The dynamic range of the images. Defaults to `1.0`.
        name: String name of the metric instance.
        dtype: Data type of the metric's state and computation.

    Raises:
        ValueError: If `max_val` is not strictly positive.

    Example:

    >>> import numpy as np
    >>> from keras_recursive_ae.metrics import PSNR
    >>> m = PSNR()
    >>> m.update_state(np.zeros((2, 4, 4, 3)), np.full((2, 4, 4, 3), 0.1))
    >>> round(float(m.result()), 4)
    20.0
    """

    def __init__(self, max_val=1.0, name="psnr", dtype=None):
        super().__init__(_psnr, max_val, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SSIM(_RangeMetric):
    """Mean over images of the per-image structural similarity.

    See `ssim` for the definition (11x11 Gaussian window, sigma 1.5, as
    `tf.image.ssim`; smaller windows for images under 11 pixels). Higher is
    better, 1 for identical images. When the image size is unknown while
    tracing (a `None` height or width), the window stays 11x11.

    Args:
        max_val: The dynamic range of the images. Defaults to `1.0`.
        name: String name of the metric instance.
        dtype: Data type of the metric's state and computation.

    Raises:
        ValueError: If `max_val` is not strictly positive.

    Example:

    >>> import numpy as np
    >>> from keras_recursive_ae.metrics import SSIM
    >>> x = np.random.default_rng(0).random((2, 16, 16, 3))
    >>> m = SSIM()
    >>> m.update_state(x, x)
    >>> round(float(m.result()), 4)
    1.0
    """

    def __init__(self, max_val=1.0, name="ssim", dtype=None):
        super().__init__(_ssim, max_val, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SharpnessRatio(_MeanPerImageMetric):
    """Mean over images of the reconstruction-to-original sharpness ratio.

    See `sharpness_ratio`: the variance of the Laplacian of the grey-level
    reconstruction over that of the original. 1 means as crisp as the
    original, below 1 blurrier.

    Args:
        epsilon: Small strictly positive number added to both variances.
            Defaults to `1e-8`.
        name: String name of the metric instance.
        dtype: Data type of the metric's state and computation.

    Raises:
        ValueError: If `epsilon` is not strictly positive.

    Example:

    >>> import numpy as np
    >>> from keras_recursive_ae.metrics import SharpnessRatio
    >>> x = np.random.default_rng(0).random((2, 16, 16, 3))
    >>> m = SharpnessRatio()
    >>> m.update_state(x, x)
    >>> round(float(m.result()), 4)
    1.0
    """

    def __init__(self, epsilon=1e-8, name="sharpness_ratio", dtype=None):
        epsilon = _check_positive("epsilon", epsilon)
        super().__init__(_checked_sharpness_ratio, name=name, dtype=dtype, epsilon=epsilon)
        self.epsilon = epsilon

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
