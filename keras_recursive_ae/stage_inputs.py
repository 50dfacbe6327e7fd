"""Checking the user's images, and the inputs each stage trains on."""

import contextlib
import sys

import numpy as np

CACHE_MODES = ("memory", "off")


def is_dataset(data):
    # Only a user who already imported TensorFlow can pass a `tf.data.Dataset`.
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(data, tf.data.Dataset)


def image_batch_shape(data, argument):
    """The shape of `data` as a batch of images, checked to be non-empty."""
    if is_dataset(data):
        tf = sys.modules["tensorflow"]
        spec = data.element_spec
        if isinstance(spec, (tuple, list)):
            spec = spec[0]  # (images, targets) pairs: the targets are not used
        if not isinstance(spec, tf.TensorSpec):
            raise TypeError(
                f"Expected `{argument}` to yield batches of images (or "
                f"(images, anything) pairs). Received a dataset of {spec}"
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


def check_finite(data, argument, chunk=1024):
    """Raises if an array of images holds NaN or infinite values.

    Arrays are read in chunks, so the check needs no second copy of the
    data. Datasets are not read ahead: a non-finite loss stops training.
    """
    if is_dataset(data):
        return
    bad = []
    for start in range(0, len(data), chunk):
        images = np.asarray(data[start : start + chunk])
        if not np.issubdtype(images.dtype, np.floating):
            return  # integer images cannot hold NaN
        finite = np.isfinite(images.reshape(len(images), -1)).all(axis=1)
        bad.extend(int(i) + start for i in np.flatnonzero(~finite))
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        raise ValueError(
            f"`{argument}` holds {len(bad)} images with NaN or infinite values "
            f"(at indices {shown}). Remove or repair them before training."
        )


def dataset_batch_size(data):
    for batch in data.take(1):
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return int(images.shape[0])


class StageInputCache:
    """What each stage reads: the images, or `T_{k-1}` computed once.

    Stage `k` trains `E_k` and `D_k` to rebuild `T_{k-1}`, the output of the
    frozen encoder levels `E_1..E_{k-1}`. With `mode="memory"` the frozen
    prefix runs once over the data and the stage trains on the NumPy array
    it returns, instead of recomputing `E_1..E_{k-1}` at every step. With
    `mode="off"` the stage model itself runs the frozen prefix (in inference
    mode) at every step: slower, no extra memory.

    Args:
        mode: `"memory"` or `"off"`.
    """

    def __init__(self, mode="memory"):
        if mode not in CACHE_MODES:
            raise ValueError(
                f"Invalid value for argument `cache`. Expected one of "
                f"{CACHE_MODES}. Received: cache={mode!r}"
            )
        self.mode = mode

    @property
    def recomputes(self):
        """Whether the stage model must run the frozen prefix itself."""
        return self.mode == "off"

    @contextlib.contextmanager
    def inputs(self, prefix, data, batch_size):
        """Yields the data stage `k` trains on; frees it afterwards.

        Args:
            prefix: the frozen model `images -> T_{k-1}`, or `None` at the
                first stage (where `T_0` is the images).
            data: the user's images (array or dataset).
            batch_size: batch size for computing the cache.
        """
        if prefix is None or self.recomputes:
            yield data
            return
        yield np.asarray(prefix.predict(data, batch_size=batch_size, verbose=0))
