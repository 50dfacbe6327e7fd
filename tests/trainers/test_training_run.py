"""The run as callbacks see it, driven by hand: no fit, no data."""

import json

import keras
import numpy as np
import pytest

from keras_recursive_ae.trainers.phase import Phase
from keras_recursive_ae.trainers.training_run import TrainingRun


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append(("begin", self.model.name))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append((epoch, logs["stage"]))

    def on_train_end(self, logs=None):
        self.events.append(("end",))


def _model(name="autoencoder"):
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(3, name=f"{name}_dense")(inputs), name=name)


def _phase_model():
    model = _model("phase")
    model.compile(optimizer="adam", loss="mse")
    return model


PHASES = [Phase(1, 1, "Stage 1/2", 2), Phase(2, 2, "Stage 2/2", 3)]


def _train(run, phase, epochs, phase_model=None, logs=None):
    """What a phase's `fit` does to its callbacks, for `epochs` epochs."""
    phase_model = phase_model or _phase_model()
    with run.phase_callbacks(phase, phase_model, steps=1) as callbacks:
        assert run.model.optimizer is phase_model.optimizer  # for learning-rate callbacks
        callback_list = keras.callbacks.CallbackList(callbacks, model=phase_model)
        for epoch in epochs:
            callback_list.on_epoch_begin(epoch)
            callback_list.on_epoch_end(epoch, dict(logs or {"loss": 1.0}))
    return phase_model


def test_one_run_numbers_epochs_across_phases_and_begins_and_ends_once():
    recorder = Recorder()
    run = TrainingRun(_model(), PHASES, [recorder], verbose=0)
    run.begin()
    for phase in run.phases:
        _train(run, phase, range(run.first_epoch(phase), phase.epochs))
    run.end()
    assert recorder.events == [
        ("begin", "autoencoder"),
        (0, 1), (1, 1), (2, 2), (3, 2), (4, 2),
        ("end",),
    ]  # fmt: skip
    assert run.history.history["stage"] == [1, 1, 2, 2, 2]
    assert run.model.optimizer is None  # given back after each phase


def test_a_diverging_phase_is_named():
    run = TrainingRun(_model(), PHASES, [], verbose=0)
    run.begin()
    with pytest.raises(FloatingPointError, match="Stage 2/2 diverged"):
        _train(run, run.phases[1], [0], logs={"loss": float("nan")})


def test_a_stopped_run_resumes_at_its_last_epoch_with_its_weights_and_seed(tmp_path):
    keras.utils.set_random_seed(1)
    model = _model()
    run = TrainingRun(model, PHASES, [], verbose=0, checkpoint_dir=tmp_path, fingerprint={"a": 1})
    run.begin()
    _train(run, run.phases[0], [0, 1])
    phase_model = _train(run, run.phases[1], [0])  # then killed
    record = json.loads((tmp_path / "checkpoint.json").read_text())
    assert (record["epoch"], record["epoch_count"]) == (3, 3)
    assert set(record["files"]) == {"model", "phase"}  # stage 2 is mid-way
    saved = [np.array(w) for w in model.get_weights()]
    saved_phase = [np.array(w) for w in phase_model.get_weights()]

    keras.utils.set_random_seed(2)  # another seed: the record's wins
    fresh, fresh_phase = _model(), _phase_model()
    resumed = TrainingRun(
        fresh, PHASES, [], verbose=0, checkpoint_dir=tmp_path, fingerprint={"a": 1}
    )
    assert [p.seed for p in resumed.phases] == [p.seed for p in run.phases]
    assert [resumed.first_epoch(p) for p in resumed.phases] == [2, 1]
    for a, b in zip(fresh.get_weights(), saved):
        np.testing.assert_array_equal(a, b)
    resumed.begin()
    assert resumed.history.history["stage"] == [1, 1, 2]
    _train(resumed, resumed.phases[1], [1, 2], phase_model=fresh_phase)
    assert resumed.history.history["stage"] == [1, 1, 2, 2, 2]
    for a, b in zip(fresh_phase.get_weights(), saved_phase):  # stage 2's model, mid-way
        np.testing.assert_array_equal(a, b)
    record = json.loads((tmp_path / "checkpoint.json").read_text())
    assert record["epoch"] == 5 and set(record["files"]) == {"model"}  # the run is done


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    run = TrainingRun(
        _model(), PHASES, [], verbose=0, checkpoint_dir=tmp_path, fingerprint={"a": 1}
    )
    run.begin()
    _train(run, run.phases[0], [0])
    with pytest.raises(ValueError, match="its `a` differs"):
        TrainingRun(_model(), PHASES, [], verbose=0, checkpoint_dir=tmp_path, fingerprint={"a": 2})
