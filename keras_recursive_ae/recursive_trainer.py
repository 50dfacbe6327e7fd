"""Recursive (greedy, layer-wise) training of a symmetric autoencoder."""

import contextlib
import math

import keras

from keras_recursive_ae import distribution as distribution_lib
from keras_recursive_ae.stage import StageModel, StageProgbarLogger
from keras_recursive_ae.stage_inputs import (
    StageInputCache,
    check_images,
    dataset_batch_size,
    image_batch_shape,
    is_dataset,
)
from keras_recursive_ae.symmetric_autoencoder import SymmetricAutoencoder


class RecursiveTrainer:
    """Trains a symmetric autoencoder one level at a time, outermost first.

    This is the training of Ray & Hannon, "Recursively Trained Autoencoders"
    (2022). Stage `k` builds the small model `T_{k-1} -> E_k -> D_k` and
    trains it to rebuild `T_{k-1}`, with `E_1..E_{k-1}` frozen (their batch
    norms in inference mode) and `D_1..D_{k-1}` and the deeper levels not
    part of the stage at all. Every stage compiles its own model, so freezing
    is real on every backend. After the last stage the levels form the full
    autoencoder, `trainer.model`, with no end-to-end pass.

    The levels come from a `MirroredConvStack` (or any
    `SymmetricAutoencoder`), or from your own encoder and decoder:

    - `encoder`: a `keras.Sequential` (or a list) whose layers are the
      levels, outermost first. A level with several layers is itself a
      `Sequential` or a functional model.
    - `decoder`: the same, written the way the decoder runs: innermost level
      first, the level that produces the image last
      (`decoder_order="innermost_first"`, the default), or the reverse
      (`decoder_order="outermost_first"`).

    Every decoder level must map the shape of `T_k` back to the shape of
    `T_{k-1}`; this is checked before any training.

    Args:
        encoder: a `SymmetricAutoencoder` (e.g. `MirroredConvStack`), or the
            encoder levels as a `keras.Sequential` or a list of blocks.
        decoder: the decoder levels (a `keras.Sequential` or a list), or
            `None` when `encoder` is a `SymmetricAutoencoder`.
        input_shape: shape of one image, e.g. `(128, 128, 3)`. Optional when
            the encoder has an `Input` or the pair is a `SymmetricAutoencoder`;
            otherwise it is taken from the data at the first `fit`.
        decoder_order: `"innermost_first"` (default) or `"outermost_first"`.
        cache: `"memory"` (default): each stage reads `T_{k-1}` computed once
            by the frozen encoder levels and kept in memory as a NumPy array.
            `"off"`: the frozen levels recompute `T_{k-1}` at every step
            (slower, no extra memory).

    Example:

    ```python
    import numpy as np
    from keras_recursive_ae import MirroredConvStack, RecursiveTrainer

    images = np.random.rand(64, 32, 32, 3).astype("float32")
    stack = MirroredConvStack(filters=(8, 16), input_shape=(32, 32, 3))
    trainer = RecursiveTrainer(stack)
    trainer.compile(optimizer="adam", loss="mse")
    history = trainer.fit(images, epochs=2, batch_size=16, verbose=0)
    history.history["stage"]        # [1, 1, 2, 2]
    trainer.model.predict(images[:4], verbose=0).shape   # (4, 32, 32, 3)
    ```
    """

    def __init__(
        self,
        encoder,
        decoder=None,
        *,
        input_shape=None,
        decoder_order="innermost_first",
        cache="memory",
    ):
        # Stages are created long after the model: remember its distribution.
        self._distribution = distribution_lib.capture()
        self._cache = StageInputCache(cache)
        self._compile_args = None
        self._autoencoder = None
        if isinstance(encoder, SymmetricAutoencoder):
            if decoder is not None:
                raise ValueError(
                    "Pass either a SymmetricAutoencoder (e.g. a "
                    "MirroredConvStack) or an encoder and a decoder, not both. "
                    f"Received: encoder={encoder.name!r}, decoder={decoder!r}"
                )
            self._autoencoder = encoder
            return
        self._encoder_blocks = _levels_of(encoder, "encoder")
        self._decoder_blocks = _levels_of(decoder, "decoder")
        self._decoder_order = decoder_order
        self._name = "recursive_autoencoder"
        input_shape = input_shape or _declared_input_shape(encoder)
        if input_shape is not None:
            self._build(input_shape)
        elif len(self._encoder_blocks) != len(self._decoder_blocks):
            self._build(None)  # raises the depth mismatch before any data

    def _build(self, input_shape):
        self._autoencoder = SymmetricAutoencoder(
            self._encoder_blocks,
            self._decoder_blocks,
            input_shape=input_shape,
            decoder_order=self._decoder_order,
            name=self._name,
        )

    @property
    def autoencoder(self):
        """The `SymmetricAutoencoder` being trained: levels, shapes, views."""
        if self._autoencoder is None:
            raise ValueError(
                "The trainer does not know the input shape yet: pass "
                "`input_shape=` to `RecursiveTrainer`, give the encoder a "
                "`keras.Input`, or call `fit` first."
            )
        return self._autoencoder

    @property
    def model(self):
        """The full autoencoder, a plain Keras functional model."""
        return self.autoencoder.model

    @property
    def encoder(self):
        """The encoder, images -> `T_n`, a plain Keras functional model."""
        return self.autoencoder.encoder

    @property
    def decoder(self):
        """The decoder, `T_n` -> images, a plain Keras functional model."""
        return self.autoencoder.decoder

    @property
    def depth(self):
        return len(self.autoencoder.encoder_blocks)

    def compile(self, optimizer="adam", loss="mse", metrics=None, **kwargs):
        """Configures every stage's training, as `keras.Model.compile` does.

        Each stage compiles its own model with a fresh copy of `optimizer`
        (and of the metrics), so no optimizer state leaks from one level to
        the next.

        Args:
            optimizer: name or `keras.optimizers.Optimizer` instance.
            loss: reconstruction loss between a stage's output and its
                target `T_{k-1}`, e.g. `"mse"` (default).
            metrics: list of metrics, computed on the same pair.
            **kwargs: any other `keras.Model.compile` argument
                (`jit_compile`, `steps_per_execution`, ...).
        """
        keras.optimizers.get(optimizer)  # fails now on an unknown optimizer
        self._compile_args = {"optimizer": optimizer, "loss": loss, "metrics": metrics, **kwargs}

    def fit(
        self,
        x,
        epochs=1,
        batch_size=None,
        validation_data=None,
        callbacks=None,
        verbose="auto",
        shuffle=True,
        **kwargs,
    ):
        """Trains the levels one stage at a time, outermost first.

        Args:
            x: images as a NumPy array `(N, height, width, channels)` or a
                batched `tf.data.Dataset` yielding images (or `(images, _)`
                pairs, whose second element is ignored).
            epochs: epochs of every stage, or a list with one count per
                level, outermost first (`0` skips a level).
            batch_size: as in `keras.Model.fit` (not for datasets).
            validation_data: held-out images, in the same forms as `x` (a
                `(images, _)` tuple is accepted too). Each stage reports its
                reconstruction loss on them as `val_loss`.
            callbacks: Keras callbacks, passed to every stage's `fit` (their
                `model` is the stage's model).
            verbose: as in `keras.Model.fit`; progress bars are labelled
                with the stage, e.g. `"Stage 2/7 - Epoch 1/3"`.
            shuffle: as in `keras.Model.fit`.
            **kwargs: any other `keras.Model.fit` argument.

        Returns:
            A `keras.callbacks.History` over all stages: `history.history`
            holds every metric per epoch and `history.history["stage"]` the
            stage (level, 1 = outermost) each epoch belongs to.
        """
        if self._compile_args is None:
            raise RuntimeError("Call `compile()` before `fit()`.")
        # Every stage is built, compiled and trained in the distribution
        # (tf.distribute strategy, keras.distribution) the trainer was created in.
        with distribution_lib.stage_scope(self._distribution):
            return self._fit(
                x, epochs, batch_size, validation_data, callbacks, verbose, shuffle, **kwargs
            )

    def _fit(self, x, epochs, batch_size, validation_data, callbacks, verbose, shuffle, **kwargs):
        if self._autoencoder is None:
            self._build(image_batch_shape(x, "x")[1:])
        autoencoder = self.autoencoder
        distribution_lib.check_weights(self._distribution, autoencoder.model)
        epochs_per_level = _epochs_per_level(epochs, self.depth)
        check_images(x, "x", autoencoder.input_shape)
        if isinstance(validation_data, (tuple, list)):
            validation_data = validation_data[0]
        if validation_data is not None:
            check_images(validation_data, "validation_data", autoencoder.input_shape)
        if batch_size is None and is_dataset(x):
            cache_batch_size = dataset_batch_size(x)
        else:
            cache_batch_size = batch_size
        callbacks = list(callbacks or [])
        progress = verbose != 0 and not any(
            isinstance(c, keras.callbacks.ProgbarLogger) for c in callbacks
        )

        history = keras.callbacks.History()
        history.set_model(autoencoder.model)
        history.epoch, history.history = [], {}
        for level, level_epochs in enumerate(epochs_per_level, start=1):
            if level_epochs == 0:
                continue
            label = f"Stage {level}/{self.depth}"
            if verbose != 0:
                shapes = autoencoder.shapes
                print(
                    f"{label}: encoder and decoder level {level}, rebuilding "
                    f"T_{level - 1} {shapes[level - 1]} from T_{level} {shapes[level]}",
                    flush=True,
                )
            stage_callbacks = callbacks + ([StageProgbarLogger(label)] if progress else [])
            stage_history = self._fit_stage(
                level,
                x,
                validation_data,
                epochs=level_epochs,
                batch_size=batch_size,
                cache_batch_size=cache_batch_size,
                callbacks=stage_callbacks,
                verbose=verbose,
                shuffle=shuffle,
                **kwargs,
            )
            _append_history(history, stage_history, level)
        return history

    def _fit_stage(self, level, x, validation_data, batch_size, cache_batch_size, **fit_args):
        autoencoder = self.autoencoder
        frozen = [
            layer
            for earlier in range(1, level)
            for layer in autoencoder.encoder_level_layers(earlier)
        ]
        prefix = autoencoder.encoder_prefix(level - 1) if level > 1 else None
        validation_inputs = contextlib.nullcontext(None)
        if validation_data is not None:
            validation_inputs = self._cache.inputs(prefix, validation_data, cache_batch_size)
        with (
            _frozen(frozen),
            self._cache.inputs(prefix, x, cache_batch_size) as data,
            validation_inputs as val,
        ):
            stage = StageModel(
                autoencoder.encoder_levels[level - 1],
                autoencoder.decoder_levels[level - 1],
                prefix=prefix if self._cache.recomputes else None,
                name=f"stage_{level}",
            )
            stage.compile(**_fresh_compile_args(self._compile_args))
            if is_dataset(data):
                # Datasets come batched and shuffled by their own pipeline.
                batch_size, fit_args["shuffle"] = None, False
            elif batch_size is None:
                batch_size = cache_batch_size
            return stage.fit(data, validation_data=val, batch_size=batch_size, **fit_args)


@contextlib.contextmanager
def _frozen(layers):
    """Freezes `layers` for a stage; their flags are restored even on error."""
    saved = [(layer, layer.trainable) for layer in layers]
    try:
        for layer in layers:
            layer.trainable = False
        yield
    finally:
        # Parents come before their sublayers, so each flag ends as it was.
        for layer, trainable in saved:
            layer.trainable = trainable


def _fresh_compile_args(compile_args):
    """A copy of the compile arguments with new optimizer and metric states."""
    args = dict(compile_args)
    args["optimizer"] = _fresh(args["optimizer"])
    if args.get("metrics") is not None:
        args["metrics"] = [_fresh(metric) for metric in args["metrics"]]
    return args


def _fresh(obj):
    if isinstance(obj, str) or obj is None or (callable(obj) and not hasattr(obj, "get_config")):
        return obj
    return keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))


def _levels_of(model, argument):
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    if isinstance(model, (list, tuple)):
        return list(model)
    raise TypeError(
        f"Expected `{argument}` to be a keras.Sequential or a list of blocks "
        "(one per level), or `encoder` to be a SymmetricAutoencoder such as a "
        f"MirroredConvStack. Received: {argument} of type {type(model).__name__}"
    )


def _declared_input_shape(encoder):
    if isinstance(encoder, keras.Sequential):
        try:
            return tuple(encoder.input_shape[1:])
        except (AttributeError, ValueError):
            return None
    return None


def _epochs_per_level(epochs, depth):
    def valid(value):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if valid(epochs):
        return [epochs] * depth
    if isinstance(epochs, (list, tuple)) and len(epochs) == depth and all(map(valid, epochs)):
        return list(epochs)
    raise ValueError(
        "Invalid value for argument `epochs`. Expected a non-negative integer "
        f"or a list of {depth} of them (one per level, outermost first). "
        f"Received: epochs={epochs!r}"
    )


def _append_history(history, stage_history, level):
    """Appends one stage's epochs to the history of the whole run."""
    done = len(history.epoch)
    added = len(stage_history.epoch)
    metrics = dict(stage_history.history, stage=[level] * added)
    for key in list(history.history) + [k for k in metrics if k not in history.history]:
        values = history.history.setdefault(key, [math.nan] * done)
        values.extend(metrics.get(key, [math.nan] * added))
    history.epoch.extend(range(done, done + added))
