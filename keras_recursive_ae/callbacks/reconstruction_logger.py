"""A Keras callback that shows an autoencoder's reconstructions in TensorBoard."""

import importlib
import io
import itertools
import os
import socket
import time

import keras
import numpy as np

from keras_recursive_ae import metrics
from keras_recursive_ae.models.symmetric_autoencoder import SymmetricAutoencoder
from keras_recursive_ae.utils.arguments import check_choice, check_int
from keras_recursive_ae.utils.images import check_image_batch
from keras_recursive_ae.utils.messages import describe

_SUBSETS = ("train", "validation")
# The four metrics of `keras_recursive_ae.metrics`, averaged over the images.
_METRICS = {
    "sum_squared_error": metrics.sum_squared_error,
    "psnr": metrics.psnr,
    "ssim": metrics.ssim,
    "sharpness_ratio": metrics.sharpness_ratio,
}
# White lines between the tiles of a grid, in pixels.
_PAD = 2
# Tells apart the event files that one process opens in the same second.
_FILE_COUNTER = itertools.count()

_INSTALL_HINT = (
    "ReconstructionLogger writes TensorBoard event files with the `tensorboard` "
    "package and their images with Pillow, and one of them is not installed. "
    "Install them with `pip install tensorboard pillow` "
    '(or `pip install "keras-recursive-ae[tensorboard]"`).'
)


def _import_tensorboard():
    """The `tensorboard` (and Pillow) modules the logger writes with, or a clear ImportError."""
    names = {
        "record_writer": "tensorboard.summary.writer.record_writer",
        "event_pb2": "tensorboard.compat.proto.event_pb2",
        "summary_pb2": "tensorboard.compat.proto.summary_pb2",
        "tensor_util": "tensorboard.util.tensor_util",
        "image_metadata": "tensorboard.plugins.image.metadata",
        "scalar_metadata": "tensorboard.plugins.scalar.metadata",
        "pil_image": "PIL.Image",
    }
    try:
        importlib.import_module("tensorboard")
        return {key: importlib.import_module(name) for key, name in names.items()}
    except ImportError as error:
        raise ImportError(f"{_INSTALL_HINT} ({error})") from error


class ReconstructionLogger(keras.callbacks.Callback):
    """Writes an autoencoder's reconstructions of fixed images to TensorBoard.

    At the end of every `every`-th epoch, the logger reconstructs the same
    images with the full autoencoder and writes, at step `epoch` (the epoch
    index Keras gives `on_epoch_end`; a `RecursiveTrainer.fit` numbers epochs
    across its stages, so the steps are those of the whole run):

    - `reconstructions`: one grid image, the images on the top row and their
      reconstructions below;
    - `reconstruction/sum_squared_error`, `reconstruction/psnr`,
      `reconstruction/ssim` and `reconstruction/sharpness_ratio`: the four
      metrics of `keras_recursive_ae.metrics`, each averaged over the images;
    - `stage`: the stage of the epoch when the epoch's logs carry one
      (`RecursiveTrainer.fit` puts it in `logs["stage"]`): level `k` for the
      greedy stage `k`, and `n + 1` for a phase that trains all `n` levels
      together (fine-tuning, a joint or an end-to-end run). A plain
      `keras.Model.fit` logs no stage;
    - with `autoencoder` given, during greedy stage `k`, the stage's own
      view: `stage_k/rebuild_mse`, the mean squared error with which `D_k`
      rebuilds `T_{k-1} = E_{k-1}(...E_1(images))` from `E_k(T_{k-1})`,
      and `stage_k/rebuild_channel_means`, a grid of the channel mean of
      `T_{k-1}` (top) and of its rebuild (below), both scaled together to
      `[0, 1]` for each image.

    Everything goes to the `validation/` (or `train/`) subfolder of
    `log_dir`, as `keras.callbacks.TensorBoard` lays out its runs, so both
    callbacks can share one `log_dir`.

    The events are written with the `tensorboard` package's own record
    writer and summary protos (the layout `tf.summary.scalar` and
    `tf.summary.image` write), into an event file of its own, the same way
    on the TensorFlow, JAX and PyTorch backends: the logger never imports
    TensorFlow. The `tensorboard` package and Pillow (which encodes the
    images as PNG) are required, both in the `tensorboard` extra: the
    constructor raises an `ImportError` naming the `pip install` command
    when one is missing.

    Reconstructions come from `autoencoder` when it is
    given, otherwise from the callback's `model`: the model being fit on a
    plain `keras.Model.fit`, the full autoencoder on a `RecursiveTrainer.fit`.
    They run in inference mode (`training=False`).

    Args:
        images: the fixed images to reconstruct, an array-like shaped
            `(batch, height, width, channels)` with 1 (grey) or 3 (RGB)
            channels, at least 3x3 pixels, values in `[0, 1]` (values
            outside are clipped in the pictures, not in the metrics). Use
            held-out images, e.g. `faces.numpy("validation", max_images=8)`.
        log_dir: the TensorBoard log directory, as given to
            `keras.callbacks.TensorBoard`.
        every: write every `every` epochs: after epochs `every - 1`,
            `2 * every - 1`, ... (counting from 0). Defaults to `1`.
        autoencoder: optional `keras_recursive_ae.SymmetricAutoencoder` (for
            example `trainer.autoencoder` or a `MirroredConvStack`) whose
            levels give the greedy stages' own view and whose depth numbers
            the phases after the greedy stages. Defaults to `None`.
        max_images: how many of `images` (the first ones) to use. Defaults
            to `8`.
        subset: `"validation"` (default) or `"train"`: the subfolder of
            `log_dir` written to. Pick the one the images come from.

    Raises:
        ImportError: if the `tensorboard` package or Pillow is not installed.
        ValueError: if an argument is invalid; the message names it.

    Example:

    ```python
    import keras
    import numpy as np
    from keras_recursive_ae.callbacks.reconstruction_logger import ReconstructionLogger

    images = np.random.rand(16, 8, 8, 3).astype("float32")
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="mse")
    logger = ReconstructionLogger(images[:4], log_dir="logs", every=1)
    model.fit(images, images, epochs=2, verbose=0, callbacks=[logger])
    # Then: tensorboard --logdir logs
    ```
    """

    def __init__(
        self,
        images,
        log_dir,
        every=1,
        autoencoder=None,
        max_images=8,
        subset="validation",
    ):
        super().__init__()
        self._tb = _import_tensorboard()
        max_images = check_int(max_images, "max_images", minimum=1)
        self.images = _check_images(images)[:max_images]
        if not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(log_dir):
            raise ValueError(
                "Invalid value for argument `log_dir`. Expected a non-empty path "
                f"(a string or os.PathLike). Received: log_dir={describe(log_dir)}"
            )
        self.log_dir = os.fspath(log_dir)
        self.every = check_int(every, "every", minimum=1)
        if autoencoder is not None and not isinstance(autoencoder, SymmetricAutoencoder):
            raise ValueError(
                "Invalid value for argument `autoencoder`. Expected a "
                "keras_recursive_ae.SymmetricAutoencoder (e.g. `trainer.autoencoder` "
                f"or a MirroredConvStack) or None. Received: autoencoder={describe(autoencoder)}"
            )
        if autoencoder is not None and tuple(autoencoder.shapes[0]) != self.images.shape[1:]:
            raise ValueError(
                "Argument `images` must have the autoencoder's input shape "
                f"{tuple(autoencoder.shapes[0])}. Received: images.shape="
                f"{self.images.shape}"
            )
        self.autoencoder = autoencoder
        self.max_images = max_images
        self.subset = check_choice(subset, "subset", _SUBSETS)
        self._writer = None
        self._prefixes = {}

    @property
    def run_dir(self):
        """The folder the event files go to: `log_dir/validation` or `log_dir/train`."""
        return os.path.join(self.log_dir, self.subset)

    def on_train_begin(self, logs=None):
        self._open()

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        logs = logs or {}
        self._open()
        step = int(epoch)
        reconstructions = self._reconstruct()
        self._image("reconstructions", _grid(self.images, reconstructions), step)
        for name, metric in _METRICS.items():
            value = float(np.mean(metric(self.images, reconstructions)))
            self._scalar(f"reconstruction/{name}", value, step)
        stage = _stage_number(logs.get("stage"))
        if stage is not None:
            self._scalar("stage", stage, step)
            if self.autoencoder is not None:
                self._stage_view(stage, step)  # greedy stages only
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _open(self):
        if self._writer is None:
            os.makedirs(self.run_dir, exist_ok=True)
            # The name TensorBoard looks for, with this writer's own suffix.
            name = (
                f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                f"{os.getpid()}.{next(_FILE_COUNTER)}.reconstructions"
            )
            file = open(os.path.join(self.run_dir, name), "wb")  # closed in on_train_end
            self._writer = self._tb["record_writer"].RecordWriter(file)
            first = self._tb["event_pb2"].Event(wall_time=time.time(), file_version="brain.Event:2")
            self._writer.write(first.SerializeToString())

    def _reconstruct(self):
        model = self.autoencoder if self.autoencoder is not None else self.model
        output = model(self.images, training=False)
        shape = None if isinstance(output, (list, tuple, dict)) else tuple(output.shape)
        if shape != self.images.shape:
            received = f"shape {shape[1:]}" if shape else f"a {type(output).__name__}"
            raise ValueError(
                "ReconstructionLogger needs a model that maps the images to one "
                f"tensor of their shape {self.images.shape[1:]}, but the model "
                f"{getattr(model, 'name', model)!r} returned {received}. "
                "With a RecursiveTrainer, pass `autoencoder=trainer.autoencoder`."
            )
        return _to_numpy(output)

    def _stage_view(self, level, step):
        autoencoder = self.autoencoder
        if not 1 <= level <= autoencoder.depth:
            return
        if level == 1:
            target = self.images
        else:
            if level not in self._prefixes:
                self._prefixes[level] = autoencoder.encoder_prefix(level - 1)
            target = _to_numpy(self._prefixes[level](self.images, training=False))
        code = autoencoder.encoder_levels[level - 1](target, training=False)
        rebuilt = _to_numpy(autoencoder.decoder_levels[level - 1](code, training=False))
        mse = float(np.mean(np.square(rebuilt.astype("float64") - target)))
        self._scalar(f"stage_{level}/rebuild_mse", mse, step)
        means = np.stack([target.mean(axis=-1), rebuilt.mean(axis=-1)])
        low = means.min(axis=(0, 2, 3), keepdims=True)
        high = means.max(axis=(0, 2, 3), keepdims=True)
        means = (means - low) / np.maximum(high - low, 1e-12)
        self._image(
            f"stage_{level}/rebuild_channel_means",
            _grid(means[0][..., None], means[1][..., None]),
            step,
        )

    def _scalar(self, tag, value, step):
        summary_pb2 = self._tb["summary_pb2"]
        metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(
                plugin_name=self._tb["scalar_metadata"].PLUGIN_NAME
            ),
            data_class=summary_pb2.DATA_CLASS_SCALAR,
        )
        tensor = self._tb["tensor_util"].make_tensor_proto(np.float32(value))
        self._write(summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=metadata), step)

    def _image(self, tag, image, step):
        # The layout of `tf.summary.image`: [width, height, PNG bytes].
        summary_pb2 = self._tb["summary_pb2"]
        metadata = self._tb["image_metadata"].create_summary_metadata(
            display_name=tag, description=""
        )
        metadata.data_class = summary_pb2.DATA_CLASS_BLOB_SEQUENCE
        height, width = image.shape[:2]
        blobs = np.array(
            [str(width).encode(), str(height).encode(), _png(image, self._tb["pil_image"])],
            dtype=object,
        )
        tensor = self._tb["tensor_util"].make_tensor_proto(blobs)
        self._write(summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=metadata), step)

    def _write(self, value, step):
        event = self._tb["event_pb2"].Event(wall_time=time.time(), step=step)
        event.summary.value.append(value)
        self._writer.write(event.SerializeToString())


def _stage_number(stage):
    """`logs["stage"]` as an int, or None when the logs carry no stage.

    Keras' `CallbackList` turns every number in the logs into a float, so
    stage 2 arrives as `2.0`.
    """
    if isinstance(stage, bool) or not isinstance(stage, (int, float, np.number)):
        return None
    if not float(stage).is_integer():
        return None
    return int(stage)


def _check_images(images):
    try:
        array = np.asarray(keras.ops.convert_to_numpy(images), dtype="float32")
    except (TypeError, ValueError) as error:
        raise ValueError(
            "Invalid value for argument `images`. Expected an array-like of images "
            f"shaped (batch, height, width, channels). Received: images={describe(images)}"
        ) from error
    check_image_batch(array.shape, "images", non_empty=True, min_size=3, channels=(1, 3))
    return array


def _to_numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype="float32")


def _grid(top, bottom):
    """One image: `top` images in a row, `bottom` images in the row below."""
    count, height, width, channels = top.shape
    grid = np.ones((2 * height + 3 * _PAD, count * width + (count + 1) * _PAD, channels), "float32")
    for row, batch in enumerate((top, bottom)):
        y = _PAD + row * (height + _PAD)
        for i, image in enumerate(batch):
            x = _PAD + i * (width + _PAD)
            grid[y : y + height, x : x + width] = image
    return grid


def _png(image, pil_image):
    """Encodes a `(height, width, 1 or 3)` float image in `[0, 1]` as PNG bytes.

    `pil_image` is Pillow's `PIL.Image` module.
    """
    pixels = np.round(np.clip(np.nan_to_num(image), 0.0, 1.0) * 255).astype("uint8")
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]  # a grey image: Pillow takes it without a channel axis
    buffer = io.BytesIO()
    pil_image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
