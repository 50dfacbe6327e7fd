"""A phase's epochs, seed and compile arguments, without training."""

import keras
import pytest

from keras_recursive_ae.trainers import phase as phase_lib
from keras_recursive_ae.trainers.phase import Phase


def _phases():
    return [
        Phase(1, 1, "Stage 1/2", 2),
        Phase(2, 2, "Stage 2/2", 0),
        Phase(3, None, "Fine", 3, True),
    ]


def test_chained_phases_start_where_the_previous_ends_each_with_its_seed():
    phases = phase_lib.chain(_phases(), shuffle_seed=11)
    assert [p.first_epoch for p in phases] == [0, 2, 2]
    assert [p.seed for p in phases] == [(11, 0), (11, 1), (11, 2)]
    assert [p.label for p in phases] == ["Stage 1/2", "Stage 2/2", "Fine"]


@pytest.mark.parametrize(
    "run_epoch, done",
    [(0, [0, 0, 0]), (1, [1, 0, 0]), (2, [2, 0, 0]), (4, [2, 0, 2]), (9, [2, 0, 3])],
)
def test_epochs_done_is_the_runs_epoch_within_the_phase(run_epoch, done):
    phases = phase_lib.chain(_phases(), shuffle_seed=0)
    assert [p.epochs_done(run_epoch) for p in phases] == done


def test_every_phase_compiles_with_fresh_optimizer_and_metrics():
    optimizer, metric = keras.optimizers.Adam(0.01), keras.metrics.MeanAbsoluteError()
    trainer_args = {"optimizer": optimizer, "loss": "mse", "metrics": [metric]}
    stage, fine = _phases()[0], _phases()[2]
    args = phase_lib.compile_args(trainer_args, stage)
    assert args["optimizer"] is not optimizer and args["metrics"][0] is not metric
    assert float(args["optimizer"].learning_rate) == pytest.approx(0.01)
    tuned = phase_lib.compile_args(trainer_args, fine)
    assert float(tuned["optimizer"].learning_rate) == pytest.approx(0.001)  # a tenth
    given = phase_lib.compile_args(trainer_args, fine, keras.optimizers.SGD(0.5))
    assert isinstance(given["optimizer"], keras.optimizers.SGD)


def test_fine_tuning_by_default_refuses_a_learning_rate_schedule():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9)
    trainer_args = {"optimizer": keras.optimizers.Adam(schedule), "loss": "mse"}
    with pytest.raises(ValueError, match="fine_tune_optimizer"):
        phase_lib.compile_args(trainer_args, _phases()[2])
