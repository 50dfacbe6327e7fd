"""One phase of a schedule, and what it compiles with."""

import dataclasses

import keras

# The fine-tuning pass's default learning rate, as a fraction of the stages'.
# A fresh optimizer at the stages' rate undoes much of what they learned
# (measured with experiments/studies/fine_tuning.py: docs/schedules.md).
FINE_TUNE_LEARNING_RATE_SCALE = 0.1


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
        fine_tuning: whether it is the fine-tuning pass after greedy stages.
        first_epoch: the run's number of the phase's epoch 0 (epochs are
            numbered across the run).
        seed: the seed of the order in which its array batches are read.
    """

    stage: int
    level: object
    label: str
    epochs: int
    fine_tuning: bool = False
    first_epoch: int = 0
    seed: tuple = ()

    def epochs_done(self, run_epoch):
        """How many of the phase's epochs are done once the run has done `run_epoch`."""
        return min(max(run_epoch - self.first_epoch, 0), self.epochs)


def chain(phases, shuffle_seed):
    """The phases one after another, each with its first epoch and its own seed."""
    chained, first_epoch = [], 0
    for index, phase in enumerate(phases):
        seed = (shuffle_seed, index)
        chained.append(dataclasses.replace(phase, first_epoch=first_epoch, seed=seed))
        first_epoch += phase.epochs
    return chained


def compile_args(trainer_args, phase, fine_tune_optimizer=None):
    """What `phase` compiles with: the trainer's arguments, with fresh optimizer and metrics.

    Each phase gets a new copy of the optimizer and of the metrics, so no
    state leaks from one level to the next.

    Args:
        trainer_args: the arguments given to `RecursiveTrainer.compile`.
        phase: the `Phase`, or `None` for a check before any training.
        fine_tune_optimizer: the optimizer of the fine-tuning pass, or
            `None`: the stages' optimizer at a tenth of its learning rate.

    Raises:
        ValueError: fine-tuning by default from an optimizer whose learning
            rate is a schedule, which cannot be scaled.
    """
    args = dict(trainer_args)
    optimizer = args["optimizer"]
    if phase.fine_tuning and fine_tune_optimizer is not None:
        optimizer = fine_tune_optimizer
    elif phase.fine_tuning:
        optimizer = _scaled_learning_rate(optimizer)
    args["optimizer"] = _fresh(optimizer)
    if args.get("metrics") is not None:
        args["metrics"] = [_fresh(metric) for metric in args["metrics"]]
    return args


def _scaled_learning_rate(optimizer):
    config = keras.optimizers.serialize(keras.optimizers.get(optimizer))
    # A LossScaleOptimizer (mixed precision) keeps the rate in the one it wraps.
    inner = config["config"].get("inner_optimizer", config)
    rate = inner["config"]["learning_rate"]
    if not isinstance(rate, (int, float)):
        raise ValueError(
            "The fine-tuning pass runs at a tenth of the optimizer's learning rate, "
            "which is a schedule here: pass `fine_tune_optimizer=` to `compile`. "
            f"Received: learning_rate={rate!r}"
        )
    inner["config"]["learning_rate"] = rate * FINE_TUNE_LEARNING_RATE_SCALE
    return keras.optimizers.deserialize(config)


def _fresh(obj):
    if isinstance(obj, str) or obj is None or (callable(obj) and not hasattr(obj, "get_config")):
        return obj
    return keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
