"""The whole schedule as one training run, the way Keras callbacks see it.

Every phase (greedy stage, fine-tuning) is a `fit` of its own model. The
user's callbacks do not go to those fits: they live in one
`keras.callbacks.CallbackList` for the run, whose model is the full
autoencoder, and `PhaseRelay`, a callback of each phase's fit, forwards
every event to it with the epoch numbered across the run and the phase
(`stage`) and the image loss (`val_image_loss`) added to the epoch's logs.
`on_train_begin` and `on_train_end` reach the user's callbacks once, from
the trainer.
"""

import math

import keras
import numpy as np

from keras_recursive_ae.utils.images import images_of

_BATCH_HOOKS = (
    "on_batch_begin",
    "on_batch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
)


class PhaseRelay(keras.callbacks.Callback):
    """Forwards one phase's events to the run's callbacks.

    Args:
        run_callbacks: the run's `keras.callbacks.CallbackList`.
        first_epoch: the run's number of the phase's epoch 0.
        stage: the phase's number, put in every epoch's logs as `stage`.
        label: the phase's name in error messages, e.g. `"Stage 2/7"`.
        image_loss: `None`, or a function of no argument returning the full
            autoencoder's loss on the validation images.
    """

    def __init__(self, run_callbacks, first_epoch, stage, label, image_loss=None):
        super().__init__()
        self.run_callbacks = run_callbacks
        self.first_epoch = first_epoch
        self.stage = stage
        self.label = label
        self.image_loss = image_loss
        # Batch events make Keras wait for every step's logs: forward them
        # only to callbacks that want them.
        wanted = [c for c in run_callbacks.callbacks if _overrides_batch_hooks(c)]
        for hook in _BATCH_HOOKS:
            if wanted:
                setattr(self, hook, _forward(self, wanted, hook))

    def on_epoch_begin(self, epoch, logs=None):
        self.run_callbacks.on_epoch_begin(self.first_epoch + epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise FloatingPointError(
                f"{self.label} diverged: its loss was {float(loss)} in epoch "
                f"{epoch + 1}. Its weights were put back as they were before it "
                "started; the phases before it keep theirs. Lower the learning "
                "rate, or look for NaN or infinite values in the data."
            )
        logs["stage"] = self.stage  # in place: the phase's progress bar shows it too
        if self.image_loss is not None and "val_loss" in logs:
            logs["val_image_loss"] = self.image_loss()
        run_model = self.run_callbacks.model
        self.run_callbacks.on_epoch_end(self.first_epoch + epoch, logs)
        if getattr(run_model, "stop_training", False):  # EarlyStopping and friends end this phase
            run_model.stop_training = False
            self.model.stop_training = True

    def on_test_begin(self, logs=None):
        self.run_callbacks.on_test_begin(logs)

    def on_test_end(self, logs=None):
        self.run_callbacks.on_test_end(logs)


def _overrides_batch_hooks(callback):
    return any(
        getattr(type(callback), hook) is not getattr(keras.callbacks.Callback, hook)
        for hook in _BATCH_HOOKS
    )


def _forward(relay, callbacks, hook):
    def forward(batch, logs=None):
        # On JAX, the phase's weights live in its training state mid-epoch;
        # reading a callback's `model` writes them back into the variables,
        # which the run's callbacks may read (they see the full autoencoder).
        relay.model  # noqa: B018
        for callback in callbacks:
            getattr(callback, hook)(batch, logs)

    return forward


class StageProgbarLogger(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, with every epoch line labelled by its phase.

    Prints `"<label> - Epoch i/n"` where Keras prints `"Epoch i/n"`.
    """

    def __init__(self, label):
        super().__init__()
        self.label = label

    def on_epoch_begin(self, epoch, logs=None):
        # Keras prints its own unlabelled "Epoch i/n" only when epochs > 1.
        epochs, self.epochs = self.epochs, 1
        super().on_epoch_begin(epoch, logs)
        self.epochs = epochs
        if self.verbose:
            print(f"{self.label} - Epoch {epoch + 1}/{self.epochs}", flush=True)


def image_loss(model, images, loss, batch_size):
    """The mean of `loss` between `images` and `model`'s reconstructions of them.

    Args:
        model: the full autoencoder.
        images: an array of images, or a `tf.data.Dataset` of batches.
        loss: a loss as `keras.losses.get` takes it.
        batch_size: rows per batch for an array.
    """
    loss = keras.losses.get(loss)
    total, count = 0.0, 0
    for batch in _image_batches(images, batch_size):
        rebuilt = model.predict_on_batch(batch)
        # In float32 whatever the policy: a 16-bit loss would round the scores.
        rebuilt = keras.ops.cast(rebuilt, "float32")
        values = keras.ops.convert_to_numpy(loss(keras.ops.cast(batch, "float32"), rebuilt))
        # A loss function gives one value per image (or pixel); a `Loss`
        # object, the batch's mean.
        if np.ndim(values) == 0:
            batch_total = float(values) * len(batch)
        else:
            batch_total = float(np.sum(np.reshape(values, (len(batch), -1)).mean(axis=1)))
        total, count = total + batch_total, count + len(batch)
    return total / count


def _image_batches(images, batch_size):
    if isinstance(images, np.ndarray):
        for start in range(0, len(images), batch_size):
            yield np.asarray(images[start : start + batch_size], dtype=keras.config.floatx())
        return
    for batch in images:
        yield np.asarray(images_of(batch), dtype=keras.config.floatx())
