"""Resumable training: Keras weight files and a record of the phase reached."""

import json
import os
from pathlib import Path

_RECORD = "checkpoint.json"
_FORMAT_VERSION = 3


class TrainingCheckpoint:
    """The state of one training run, kept in a folder.

    After every epoch the trainer saves, with Keras' own `save_weights`, the
    autoencoder (weights, batch-norm statistics, random seed states) and the
    running phase's model with its optimizer, then a small JSON record of the
    phase and epoch reached, the history so far and the shuffling seed. The
    weight files are written under new names, then the record that names
    them replaces the old one atomically, and only then are the old files
    deleted: a run killed at any moment (even by SIGKILL) leaves the last
    complete epoch on disk.

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
        """Returns the saved record, or `None` when the folder holds none.

        Raises:
            ValueError: if the checkpoint was written for another run, or is
                unreadable.
        """
        path = self.directory / _RECORD
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"Cannot read the checkpoint {path}: {error}") from error
        if record.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"The checkpoint {path} has format version {record.get('version')!r}; "
                f"this version of keras-recursive-ae reads version {_FORMAT_VERSION}."
            )
        saved = record.get("fingerprint", {})
        for key, value in self.fingerprint.items():
            if saved.get(key) != value:
                raise ValueError(
                    f"The checkpoint in {self.directory} was written for a different "
                    f"run and is not loaded: its `{key}` differs. "
                    f"{_first_difference(saved.get(key), value)} "
                    "Use another `checkpoint_dir`, or delete this one to start over."
                )
        return record

    def save(self, record, model, phase_model):
        """Writes `record` with the current weights of `model` and `phase_model`."""
        previous = self._files_of_current_record()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            files = {}
            for key, saved in (("model", model), ("phase", phase_model)):
                if saved is None:
                    continue
                name = f"{key}-{record['epoch_count']:06d}-{os.getpid()}.weights.h5"
                saved.save_weights(self.directory / name)
                files[key] = name
            record = dict(
                record, version=_FORMAT_VERSION, fingerprint=self.fingerprint, files=files
            )
            temporary = self.directory / f".{_RECORD}.{os.getpid()}"
            with open(temporary, "w") as f:
                json.dump(record, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.directory / _RECORD)  # the new checkpoint
        except OSError as error:
            raise OSError(
                error.errno,
                f"Could not write the checkpoint in {self.directory} "
                f"({error.strerror or error}); the previous checkpoint there is intact.",
            ) from error
        for name in previous - set(files.values()):
            (self.directory / name).unlink(missing_ok=True)

    def restore(self, record, model, phase_model=None):
        """Loads the saved weights into `model` (and `phase_model`, optimizer included)."""
        model.load_weights(self.directory / record["files"]["model"])
        if phase_model is not None and "phase" in record["files"]:
            phase_model.load_weights(self.directory / record["files"]["phase"])

    def _files_of_current_record(self):
        try:
            return set(json.loads((self.directory / _RECORD).read_text())["files"].values())
        except (OSError, ValueError, KeyError):
            return set()


def model_fingerprint(variables):
    """Paths, shapes and dtypes of `variables`: what a checkpoint must match."""
    return [[v.path, list(v.shape), str(v.dtype)] for v in variables]


def _first_difference(saved, expected):
    if isinstance(saved, list) and isinstance(expected, list):
        for i, (a, b) in enumerate(zip(saved, expected)):
            if a != b:
                return f"First difference at item {i}: saved {a}, this run {b}."
        return f"Saved {len(saved)} items, this run has {len(expected)}."
    return f"Saved {saved!r}, this run {expected!r}."
