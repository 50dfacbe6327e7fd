"""Checking the user's images, and reading them batch by batch."""

import numpy as np

from keras_recursive_ae.utils.backend import imported_tensorflow
from keras_recursive_ae.utils.messages import describe

RANGE_SLACK = 0.01
"""How far outside [0, 1] images may go before a sigmoid decoder refuses them."""


def is_dataset(data):
    # Only a user who already imported TensorFlow can pass a `tf.data.Dataset`.
    tf = imported_tensorflow()
    return tf is not None and isinstance(data, tf.data.Dataset)


def images_of(element):
    """The images of a dataset element (or its spec): the first of an `(images, _)` pair."""
    return element[0] if isinstance(element, (tuple, list)) else element


def image_batch_shape(data, argument):
    """The shape of `data` as a batch of images, checked to be non-empty."""
    if is_dataset(data):
        tf = imported_tensorflow()
        spec = images_of(data.element_spec)  # the targets of pairs are not used
        if not isinstance(spec, tf.TensorSpec):
            raise TypeError(
                f"Expected `{argument}` to yield batches of images (or "
                f"(images, anything) pairs). Received a dataset of {describe(spec)}"
            )
        cardinality = int(data.cardinality())
        if cardinality == 0 or (
            cardinality == tf.data.UNKNOWN_CARDINALITY and not any(True for _ in data.take(1))
        ):
            raise ValueError(f"The dataset passed as `{argument}` is empty.")
        if cardinality == tf.data.INFINITE_CARDINALITY:
            raise ValueError(
                f"The dataset passed as `{argument}` repeats forever; recursive "
                "training runs one `fit` per level over a finite dataset. "
                "Remove `.repeat()`."
            )
        return tuple(spec.shape)
    shape = getattr(data, "shape", None)
    if shape is None:
        raise TypeError(
            f"Expected `{argument}` to be an array of images (N, height, width, "
            "channels) or a batched `tf.data.Dataset` of them. "
            f"Received: {argument} of type {type(data).__name__}"
        )
    shape = tuple(shape)
    if len(shape) >= 1 and shape[0] == 0:
        raise ValueError(f"`{argument}` is empty. Received: {argument} with shape {shape}")
    return shape


def check_image_batch(shape, argument, *, non_empty=False, min_size=None, channels=None):
    """Raises unless `shape` is that of a batch of images `(batch, height, width, channels)`.

    The one check of an image batch's layout, for the metrics and the
    `ReconstructionLogger`. Unknown (`None`) sizes of a symbolic shape pass.

    Args:
        shape: the shape to check, e.g. `x.shape`.
        argument: the argument's name, for the message.
        non_empty: whether the batch must hold at least one image.
        min_size: the least height and width in pixels, or `None` for any.
        channels: the channel counts allowed, e.g. `(1, 3)`, or `None` for any.

    Raises:
        ValueError: naming `argument` and its shape, and saying what was expected.
    """
    shape = tuple(shape)
    valid = len(shape) == 4
    if valid:
        batch, height, width, depth = shape
        too_small = min_size is not None and any(
            side is not None and side < min_size for side in (height, width)
        )
        valid = not (
            (non_empty and batch == 0)
            or too_small
            or (channels is not None and depth is not None and depth not in channels)
        )
    if not valid:
        expected = "a non-empty rank-4" if non_empty else "a rank-4"
        details = f", at least {min_size}x{min_size} pixels" if min_size is not None else ""
        if channels is not None:
            details += f", with {' or '.join(map(str, channels))} channels"
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected {expected} batch of "
            f"images shaped (batch, height, width, channels){details}. "
            f"Received: {argument}.shape={shape}"
        )


def check_images(data, argument, image_shape):
    """Raises if `data` is not a batch of images of `image_shape`."""
    shape = image_batch_shape(data, argument)
    expected = (None,) + tuple(image_shape)
    batched = is_dataset(data)
    if len(shape) != len(expected) or tuple(shape[1:]) != tuple(image_shape):
        what = "batches of" if batched else "an array of"
        hint = ""
        if batched and tuple(shape) == tuple(image_shape):
            hint = " The dataset yields single images: call `.batch(batch_size)` on it."
        raise ValueError(
            f"Expected `{argument}` to be {what} images of shape "
            f"{tuple(image_shape)} (with a leading batch axis). Received: "
            f"{argument} with {'element ' if batched else ''}shape {shape}.{hint}"
        )


def check_values(data, argument, sigmoid_output, chunk=1024):
    """Raises for integer images, NaN or infinite values, or values outside [0, 1].

    Integer images (`uint8` in [0, 255], say) are almost always meant as
    `x / 255`; values outside [0, 1] are refused only when `sigmoid_output`
    (a sigmoid can only rebuild values in [0, 1]). An array is read once, in
    chunks, so the checks need no second copy of the data. Datasets are
    checked by their dtype only: their values are not read ahead (a
    non-finite loss stops training).
    """
    dtype = _dtype(data)
    integer = dtype is not None and not np.issubdtype(dtype, np.floating)
    if is_dataset(data):
        if integer:
            raise _integer_error(argument, dtype, "")
        return
    bad, low, high = [], np.inf, -np.inf
    for start in range(0, len(data), chunk):
        images = np.asarray(data[start : start + chunk])
        low, high = min(low, images.min()), max(high, images.max())
        if not integer:
            finite = np.isfinite(images.reshape(len(images), -1)).all(axis=1)
            bad.extend(int(i) + start for i in np.flatnonzero(~finite))
    if integer:
        raise _integer_error(argument, dtype, f" with values in [{low}, {high}]")
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        raise ValueError(
            f"`{argument}` holds {len(bad)} images with NaN or infinite values "
            f"(at indices {shown}). Remove or repair them before training."
        )
    # A little slack for resampling's overshoot (e.g. 1.0000001).
    if sigmoid_output and (low < -RANGE_SLACK or high > 1 + RANGE_SLACK):
        raise ValueError(
            f"Expected `{argument}` to hold images in [0, 1]: the decoder ends "
            f"in a sigmoid, which cannot rebuild other values. Received: "
            f"{argument} with values in [{low:.4g}, {high:.4g}]. Rescale them "
            f"first, e.g. `{argument} / 255` for 8-bit images, or end the "
            "decoder in another activation."
        )


def _integer_error(argument, dtype, values):
    return ValueError(
        f"Expected `{argument}` to hold float images, e.g. in [0, 1]. "
        f"Received: {argument} of dtype {np.dtype(dtype).name}{values}. Convert "
        f"them first, e.g. `{argument} / 255` for 8-bit images."
    )


def _dtype(data):
    if is_dataset(data):
        return images_of(data.element_spec).dtype.as_numpy_dtype
    return getattr(data, "dtype", None)


def image_batches(data, batch_size, dtype=None):
    """The images of an array or a dataset as NumPy arrays, batch by batch.

    An array (anything with a `shape`: a NumPy array, an `np.memmap` cache,
    a backend tensor) is sliced `batch_size` rows at a time, in order. A
    batched `tf.data.Dataset`, or any other iterable of batches, keeps its
    own batches; of `(images, _)` pairs only the images are yielded.

    Args:
        data: an array of images `(N, ...)`, or an iterable of batches of them.
        batch_size: rows per slice of an array (a dataset's batches are kept).
        dtype: the dtype each batch is converted to, e.g.
            `keras.config.floatx()`; `None` (default) keeps the data's own.

    Yields:
        NumPy arrays `(rows, ...)`; a slice of a NumPy array is not copied
        unless `dtype` converts it.
    """
    if hasattr(data, "shape") and not is_dataset(data):
        for start in range(0, len(data), batch_size):
            yield np.asarray(data[start : start + batch_size], dtype=dtype)
        return
    for batch in data:
        yield np.asarray(images_of(batch), dtype=dtype)


def first_batch(data, batch_size):
    """The first batch of images as an array: an array's first `batch_size`, or a dataset's own.

    `None` for an empty dataset.
    """
    if not is_dataset(data):
        return np.asarray(data[:batch_size])
    for batch in data.take(1):
        return np.asarray(images_of(batch))
    return None


def dataset_batch_size(data):
    """The number of images in the first batch of a dataset; `None` if it is empty."""
    batch = first_batch(data, None)
    return None if batch is None else len(batch)
