"""The whole schedule as one training run, the way Keras callbacks see it.

Every phase (greedy stage, fine-tuning) is a `fit` of its own model. The
user's callbacks do not go to those fits: they live in one
`keras.callbacks.CallbackList` for the run, whose model is the full
autoencoder, and `PhaseRelay`, a callback of each phase's fit, forwards
every event to it with the epoch numbered across the run and the phase
(`stage`) and the image loss (`val_image_loss`) added to the epoch's logs.
`on_train_begin` and `on_train_end` reach the user's callbacks once. With a
checkpoint, a callback of the run saves it after every epoch.

Events flow one way: a phase's `fit` -> `PhaseRelay` -> the run's callbacks.
"""

import contextlib
import math

import keras
import numpy as np

from keras_recursive_ae.trainers import phase as phase_lib
from keras_recursive_ae.trainers.checkpoint import TrainingCheckpoint, model_fingerprint

_BATCH_HOOKS = (
    "on_batch_begin",
    "on_batch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
)


class TrainingRun:
    """One `fit` of a schedule, as the user's callbacks see it.

    Owns the run's `keras.callbacks.CallbackList` (whose model is the full
    autoencoder), its `History`, its checkpoint and its phases, each
    chained to start where the previous one ends. A run resumed from a
    checkpoint, or started at `initial_epoch`, skips the epochs already done.

    Args:
        model: the full autoencoder.
        phases: the `Phase`s of the schedule, in order.
        callbacks: the user's callbacks.
        verbose: as in `keras.Model.fit`.
        checkpoint_dir: a folder, or `None`.
        fingerprint: what a checkpoint must match (besides the variables).
        initial_epoch: the run's epoch to start at.
        random_state: variables outside the model that the phases draw from
            (a corruption layer's seed state), kept in the checkpoint's
            record so that a resumed run draws what an uninterrupted one
            would.
    """

    def __init__(
        self,
        model,
        phases,
        callbacks,
        verbose,
        checkpoint_dir=None,
        fingerprint=None,
        initial_epoch=0,
        random_state=(),
    ):
        self.model = model
        self.history = _RunHistory()
        run_callbacks = list(callbacks) + [self.history]
        # Drawn from NumPy's global generator, so `keras.utils.set_random_seed`
        # fixes it; a resumed run reads it back from its checkpoint.
        shuffle_seed = int(np.random.randint(2**31 - 1))
        self.record = self.saver = None
        if checkpoint_dir is not None:
            # Variables are float32 under every policy, but the policy sets
            # the compute dtype and whether the optimizer has a loss scale.
            fingerprint = dict(
                fingerprint or {},
                variables=model_fingerprint(model.variables),
                dtype_policy=keras.config.dtype_policy().name,
            )
            checkpoint = TrainingCheckpoint(checkpoint_dir, fingerprint)
            self.record = checkpoint.load()
            if self.record is not None:
                checkpoint.restore(self.record, model)
                shuffle_seed = self.record["shuffle_seed"]
                for variable, value in zip(random_state, self.record["random_state"]):
                    variable.assign(np.asarray(value, dtype=variable.dtype))
            self.saver = _SaveEveryEpoch(checkpoint, self.history, shuffle_seed, random_state)
            run_callbacks.append(self.saver)  # after History: it saves the history too
        self.phases = phase_lib.chain(phases, shuffle_seed)
        self.start_epoch = initial_epoch if self.record is None else self.record["epoch"]
        self.callbacks = keras.callbacks.CallbackList(
            run_callbacks,
            model=model,
            verbose=verbose,
            epochs=sum(p.epochs for p in phases),
            steps=None,
        )
        self.progress = verbose != 0 and not any(
            isinstance(c, keras.callbacks.ProgbarLogger) for c in callbacks
        )

    def begin(self):
        self.callbacks.on_train_begin()
        if self.record is not None:  # after History forgot its epochs
            self.history.epoch = list(range(self.record["epoch_count"]))
            self.history.history = self.record["history"]

    def end(self):
        logs = {key: values[-1] for key, values in self.history.history.items() if values}
        self.callbacks.on_train_end(logs)

    def first_epoch(self, phase):
        """The phase's epoch to start (or resume) at: `phase.epochs` when it is done."""
        return phase.epochs_done(self.start_epoch)

    @contextlib.contextmanager
    def phase_callbacks(self, phase, phase_model, steps, image_loss=None):
        """The callbacks of `phase`'s own `fit`, while it trains.

        A phase stopped mid-way by a killed process gets its model and
        optimizer state back from the checkpoint. While the phase trains,
        the autoencoder's `optimizer` is the phase model's, so that
        learning-rate callbacks (which act on `callback.model.optimizer`)
        act on the phase.

        Args:
            phase: the running `Phase`.
            phase_model: the model the phase fits.
            steps: its batches per epoch, for the progress bars.
            image_loss: `None`, or a function of no argument returning the
                full autoencoder's loss on the validation images.
        """
        if self.record is not None and 0 < self.first_epoch(phase) < phase.epochs:
            self.saver.checkpoint.restore(self.record, self.model, phase_model)
        self.record = None  # from now on, what is in memory is newer
        # The run's verbose and epochs stay; each phase has its own steps.
        self.callbacks.set_params({**self.callbacks.params, "steps": steps})
        if self.saver is not None:
            self.saver.phase, self.saver.phase_model = phase, phase_model
        callbacks = [PhaseRelay(self.callbacks, phase, image_loss)]
        if self.progress:
            callbacks.append(StageProgbarLogger(phase.label))
        previous = getattr(self.model, "optimizer", None)
        self.model.optimizer = phase_model.optimizer
        try:
            yield callbacks
        finally:
            self.model.optimizer = previous


class PhaseRelay(keras.callbacks.Callback):
    """Forwards one phase's events to the run's callbacks.

    Args:
        run_callbacks: the run's `keras.callbacks.CallbackList`.
        phase: the `Phase` whose `fit` this callback belongs to.
        image_loss: `None`, or a function of no argument returning the full
            autoencoder's loss on the validation images.
    """

    def __init__(self, run_callbacks, phase, image_loss=None):
        super().__init__()
        self.run_callbacks = run_callbacks
        self.phase = phase
        self.image_loss = image_loss
        # Batch events make Keras wait for every step's logs: forward them
        # only to callbacks that want them.
        wanted = [c for c in run_callbacks.callbacks if _overrides_batch_hooks(c)]
        for hook in _BATCH_HOOKS:
            if wanted:
                setattr(self, hook, _forward(self, wanted, hook))

    def on_epoch_begin(self, epoch, logs=None):
        self.run_callbacks.on_epoch_begin(self.phase.first_epoch + epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise FloatingPointError(
                f"{self.phase.label} diverged: its loss was {float(loss)} in epoch "
                f"{epoch + 1}. Its weights were put back as they were before it "
                "started; the phases before it keep theirs. Lower the learning "
                "rate, or look for NaN or infinite values in the data."
            )
        logs["stage"] = self.phase.stage  # in place: the phase's progress bar shows it too
        if self.image_loss is not None and "val_loss" in logs:
            logs["val_image_loss"] = self.image_loss()
        run_model = self.run_callbacks.model
        self.run_callbacks.on_epoch_end(self.phase.first_epoch + epoch, logs)
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
        # On JAX, a phase's weights live in its training state mid-epoch;
        # Keras writes them back into the variables when a callback's
        # `model` is read (`Callback.model`, keras-team/keras#18800), and
        # the run's callbacks read those variables through the full
        # autoencoder: so read it first.
        relay.model  # noqa: B018
        for callback in callbacks:
            getattr(callback, hook)(batch, logs)

    return forward


class StageProgbarLogger(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, with every epoch line labelled by its phase.

    Prints `"<label> - Epoch i/n"` where Keras prints `"Epoch i/n"`. Keras'
    `ProgbarLogger` prints its own unlabelled line when `epochs > 1`: it is
    told there is one epoch while it starts each epoch.
    """

    def __init__(self, label):
        super().__init__()
        self.label = label

    def on_epoch_begin(self, epoch, logs=None):
        epochs, self.epochs = self.epochs, 1
        super().on_epoch_begin(epoch, logs)
        self.epochs = epochs
        if self.verbose:
            print(f"{self.label} - Epoch {epoch + 1}/{self.epochs}", flush=True)


class _RunHistory(keras.callbacks.History):
    """Keras' `History`, with each epoch's `stage` kept as the integer it is."""

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if "stage" in logs:
            logs["stage"] = int(logs["stage"])
        super().on_epoch_end(epoch, logs)


class _SaveEveryEpoch(keras.callbacks.Callback):
    """Saves the run after every epoch: the autoencoder, the running phase, a record."""

    def __init__(self, checkpoint, history, shuffle_seed, random_state):
        super().__init__()
        self.checkpoint, self.history, self.shuffle_seed = checkpoint, history, shuffle_seed
        self.random_state = random_state
        self.phase = self.phase_model = None

    def on_epoch_end(self, epoch, logs=None):
        done = self.phase.epochs_done(epoch + 1) == self.phase.epochs
        record = {
            "epoch": epoch + 1,
            "epoch_count": len(self.history.epoch),
            "history": self.history.history,
            "shuffle_seed": self.shuffle_seed,
            "random_state": [keras.ops.convert_to_numpy(v).tolist() for v in self.random_state],
        }
        self.checkpoint.save(record, self.model, None if done else self.phase_model)
