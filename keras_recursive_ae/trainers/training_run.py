"""One `fit` of a schedule: its phases, its callbacks, history and checkpoint."""

import dataclasses

import keras
import numpy as np

from keras_recursive_ae.trainers.checkpoint import TrainingCheckpoint, model_fingerprint
from keras_recursive_ae.trainers.phase_relay import PhaseRelay, StageProgbarLogger


@dataclasses.dataclass(frozen=True)
class Phase:
    """One `fit` of the schedule: a greedy stage, or a pass over all levels.

    Attributes:
        stage: the phase's number in every epoch's logs: level `k` for greedy
            stage `k`, `n + 1` for a phase that trains all `n` levels
            (fine-tuning, a joint or an end-to-end run).
        level: the level a greedy stage trains, or `None`.
        label: the name in progress bars and messages, e.g. `"Stage 2/7"`.
        epochs: how many epochs it trains.
    """

    stage: int
    level: object
    label: str
    epochs: int


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """The `keras.Model.fit` arguments every phase's `fit` shares."""

    batch_size: int
    shuffle: bool
    verbose: object
    steps_per_epoch: object = None
    validation_steps: object = None
    validation_batch_size: object = None
    validation_freq: int = 1


class TrainingRun:
    """The run as the user's callbacks see it, over all phases.

    Holds one `keras.callbacks.CallbackList` whose model is the full
    autoencoder, the run's `History`, the epoch each phase starts at, and
    the checkpoint, if any. A run resumed from a checkpoint (or started at
    `initial_epoch`) skips the epochs already done.

    Args:
        model: the full autoencoder.
        phases: the `Phase`s of the schedule.
        callbacks: the user's callbacks.
        verbose: as in `keras.Model.fit`.
        checkpoint_dir: a folder, or `None`.
        fingerprint: what a checkpoint must match (besides the variables).
        initial_epoch: the run's epoch to start at.
    """

    def __init__(
        self, model, phases, callbacks, verbose, checkpoint_dir, fingerprint, initial_epoch=0
    ):
        self.model = model
        self.phases = phases
        self.history = _RunHistory()
        self.callbacks = keras.callbacks.CallbackList(
            list(callbacks) + [self.history],
            model=model,
            verbose=verbose,
            epochs=sum(p.epochs for p in phases),
            steps=None,
        )
        self.first_epochs = list(np.cumsum([0] + [p.epochs for p in phases[:-1]]))
        self.progress = verbose != 0 and not any(
            isinstance(c, keras.callbacks.ProgbarLogger) for c in callbacks
        )
        # Drawn from NumPy's global generator, so `keras.utils.set_random_seed`
        # fixes it; a resumed run reads it back from its checkpoint.
        self.shuffle_seed = int(np.random.randint(2**31 - 1))
        self.epoch = initial_epoch
        self.checkpoint = self.record = None
        if checkpoint_dir is not None:
            # Variables are float32 under every policy, but the policy sets
            # the compute dtype and whether the optimizer has a loss scale.
            fingerprint = dict(
                fingerprint,
                variables=model_fingerprint(model.variables),
                dtype_policy=keras.config.dtype_policy().name,
            )
            self.checkpoint = TrainingCheckpoint(checkpoint_dir, fingerprint)
            self.record = self.checkpoint.load()
        if self.record is not None:
            self.checkpoint.restore(self.record, model)
            self.shuffle_seed = self.record["shuffle_seed"]
            self.epoch = self.record["epoch"]

    def begin(self):
        self.callbacks.on_train_begin()
        if self.record is not None:  # after History forgot its epochs
            self.history.epoch = list(range(self.record["epoch"]))
            self.history.history = self.record["history"]

    def end(self):
        logs = {key: values[-1] for key, values in self.history.history.items() if values}
        self.callbacks.on_train_end(logs)

    def start_of(self, index):
        """The epoch (of the phase) at which phase `index` starts or resumes."""
        return min(max(self.epoch - int(self.first_epochs[index]), 0), self.phases[index].epochs)

    def seed(self, index):
        """The shuffling seed of phase `index`."""
        return [self.shuffle_seed, index]

    def restore_phase(self, index, phase_model):
        """Loads a phase stopped mid-way: its model and optimizer state."""
        if self.record is not None and 0 < self.start_of(index) < self.phases[index].epochs:
            self.checkpoint.restore(self.record, self.model, phase_model)

    def phase_callbacks(self, index, phase_model, image_loss):
        """The callbacks of phase `index`'s own `fit`."""
        phase = self.phases[index]
        relay = PhaseRelay(
            self.callbacks, int(self.first_epochs[index]), phase.stage, phase.label, image_loss
        )
        callbacks = [relay, _EpochDone(self, index, phase_model)]
        if self.progress:
            callbacks.append(StageProgbarLogger(phase.label))
        return callbacks

    def epoch_done(self, index, phase_model):
        self.epoch += 1
        if self.checkpoint is not None:
            done = self.start_of(index) == self.phases[index].epochs
            self._save(None if done else phase_model)

    def _save(self, phase_model):
        record = {
            "epoch": self.epoch,
            "epoch_count": len(self.history.epoch),
            "history": self.history.history,
            "shuffle_seed": self.shuffle_seed,
        }
        self.checkpoint.save(record, self.model, phase_model)
        self.record = None  # what is in memory is now newer than any checkpoint


class _RunHistory(keras.callbacks.History):
    """Keras' `History`, with each epoch's `stage` kept as the integer it is."""

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if "stage" in logs:
            logs["stage"] = int(logs["stage"])
        super().on_epoch_end(epoch, logs)


class _EpochDone(keras.callbacks.Callback):
    """Counts the run's epochs and checkpoints the run after each."""

    def __init__(self, run, index, phase_model):
        super().__init__()
        self.run, self.index, self.phase_model = run, index, phase_model

    def on_epoch_end(self, epoch, logs=None):
        self.run.epoch_done(self.index, self.phase_model)
