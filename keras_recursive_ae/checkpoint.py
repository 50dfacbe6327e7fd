"""Resumable training: a run's whole state, saved atomically after each epoch."""

import json
import math
import os
import tempfile
from pathlib import Path

import keras
import numpy as np

_STATE_FILE = "checkpoint.json"
_FORMAT_VERSION = 1


class TrainingCheckpoint:
    """The state of one training run, kept in a folder.

    After every epoch the trainer saves every variable of the autoencoder
    (weights, batch-norm statistics, random seed states), the state of the
    optimizer of the running phase, the phase and epoch reached, the history
    so far and the shuffling seed. Each save writes a new weights file, then
    atomically replaces `checkpoint.json` that names it, and only then
    deletes the previous file: a run killed at any moment (even by SIGKILL)
    leaves the last complete epoch on disk.

    Args:
        directory: the checkpoint folder (created if needed).
        fingerprint: a JSON-serializable description of the run (model
            variables, schedule, epochs); a checkpoint written with another
            fingerprint is refused before anything is loaded.
    """

    def __init__(self, directory, fingerprint):
        self.directory = Path(directory)
        self.fingerprint = json.loads(json.dumps(fingerprint))

    def load(self):
        """Returns the saved state, or `None` when the folder holds none.

        Raises:
            ValueError: if the checkpoint was written for another model,
                schedule or number of epochs, or is unreadable.
        """
        path = self.directory / _STATE_FILE
        if not path.exists():
            return None
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"Cannot read the checkpoint {path}: {error}") from error
        if state.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"The checkpoint {path} has format version {state.get('version')!r}; "
                f"this version of keras-recursive-ae reads version {_FORMAT_VERSION}."
            )
        saved = state.get("fingerprint", {})
        for key, value in self.fingerprint.items():
            if saved.get(key) != value:
                raise ValueError(
                    f"The checkpoint in {self.directory} was written for a different "
                    f"run and is not loaded: its `{key}` differs. "
                    f"{_first_difference(saved.get(key), value)} "
                    "Use another `checkpoint_dir`, or delete this one to start over."
                )
        return state

    def save(self, state, model_variables, optimizer_variables):
        """Writes `state` with the current values of the variables."""
        self.directory.mkdir(parents=True, exist_ok=True)
        previous = self._current_weights_file()
        weights_file = f"weights-{state['epoch_count']:06d}-{os.getpid()}.npz"
        arrays = {f"model_{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model_variables)}
        arrays.update(
            {f"optimizer_{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(optimizer_variables)}
        )
        _atomic_write(self.directory / weights_file, lambda f: np.savez(f, **arrays))
        record = dict(state, version=_FORMAT_VERSION, fingerprint=self.fingerprint,
                      weights=weights_file, num_optimizer_variables=len(optimizer_variables))
        text = json.dumps(_json_safe(record))
        _atomic_write(self.directory / _STATE_FILE, lambda f: f.write(text.encode()))
        if previous and previous != weights_file:
            (self.directory / previous).unlink(missing_ok=True)

    def restore(self, state, model_variables, optimizer_variables=None):
        """Assigns the saved values; checks every shape before assigning any."""
        path = self.directory / state["weights"]
        with np.load(path) as arrays:
            values = [arrays[f"model_{i}"] for i in range(len(model_variables))]
            optimizer_values = []
            if optimizer_variables is not None:
                if state["num_optimizer_variables"] != len(optimizer_variables):
                    raise ValueError(
                        f"The checkpoint {path} holds {state['num_optimizer_variables']} "
                        f"optimizer variables, but the optimizer has "
                        f"{len(optimizer_variables)}: it was written with another optimizer."
                    )
                optimizer_values = [
                    arrays[f"optimizer_{i}"] for i in range(len(optimizer_variables))
                ]
        pairs = list(zip(model_variables, values)) + list(
            zip(optimizer_variables or [], optimizer_values)
        )
        for variable, value in pairs:
            if tuple(variable.shape) != value.shape:
                raise ValueError(
                    f"The checkpoint {path} does not match variable {variable.path}: "
                    f"saved shape {value.shape}, expected {tuple(variable.shape)}."
                )
        for variable, value in pairs:
            variable.assign(value)

    def _current_weights_file(self):
        path = self.directory / _STATE_FILE
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text()).get("weights")
        except (OSError, ValueError):
            return None


def model_fingerprint(variables):
    """Paths, shapes and dtypes of `variables`: what a checkpoint must match."""
    return [[v.path, list(v.shape), str(v.dtype)] for v in variables]


def _atomic_write(path, write):
    # Write beside the target, flush to disk, then rename over it: readers
    # see the old file or the new one, never a half-written one.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if math.isnan(value) else value
    if isinstance(value, np.integer):
        return int(value)
    return value


def _first_difference(saved, expected):
    if isinstance(saved, list) and isinstance(expected, list):
        for i, (a, b) in enumerate(zip(saved, expected)):
            if a != b:
                return f"First difference at item {i}: saved {a}, this run {b}."
        return f"Saved {len(saved)} items, this run has {len(expected)}."
    return f"Saved {saved!r}, this run {expected!r}."


class SeededBatches(keras.utils.PyDataset):
    """The batches of epochs `first_epoch..epochs-1`, in an order fixed by a seed.

    Keras shuffles arrays with its backend's global random state, which a
    new process does not reproduce. Here epoch `e` visits the images in the
    order `numpy.random.default_rng(seed + [e]).permutation(n)`, so a run
    resumed at epoch `e` sees the same batches as an uninterrupted run.
    Batch `i` of the dataset is a pure function of `i` (all epochs are one
    sequence, read with `steps_per_epoch=batches_per_epoch`), so Keras'
    prefetching across epoch boundaries cannot mix two epochs' orders.

    Args:
        images: an array (or memory map) of images.
        batch_size: images per batch.
        seed: a list of integers.
        shuffle: whether to shuffle at all.
        first_epoch: the first epoch to serve.
        epochs: one past the last epoch to serve.
    """

    def __init__(self, images, batch_size, seed, shuffle, first_epoch, epochs):
        super().__init__()
        self.images = images
        self.batch_size = batch_size
        self.seed = list(seed)
        self.shuffle = shuffle
        self.first_epoch = first_epoch
        self.epochs = epochs
        self.batches_per_epoch = math.ceil(len(images) / batch_size)
        self._orders = {}

    def __len__(self):
        return (self.epochs - self.first_epoch) * self.batches_per_epoch

    def _order(self, epoch):
        if epoch not in self._orders:
            count = len(self.images)
            self._orders = {
                epoch: np.random.default_rng(self.seed + [epoch]).permutation(count)
                if self.shuffle
                else np.arange(count)
            }
        return self._orders[epoch]

    def __getitem__(self, index):
        epoch, batch = divmod(self.first_epoch * self.batches_per_epoch + index,
                              self.batches_per_epoch)
        rows = self._order(epoch)[batch * self.batch_size : (batch + 1) * self.batch_size]
        # Sorted rows read a memory-mapped cache in file order.
        return self.images[np.sort(rows)]
