"""What each training phase compiles with: its own optimizer and metric states."""

import keras

# The fine-tuning pass's default learning rate, as a fraction of the stages'.
# A fresh optimizer at the stages' rate undoes much of what they learned
# (measured with benchmarks/bench_fine_tuning.py: docs/schedules.md).
FINE_TUNE_LEARNING_RATE_SCALE = 0.1


def phase_compile_args(compile_args, fine_tune_optimizer=None, fine_tuning=False):
    """A copy of the trainer's compile arguments with new optimizer and metric states.

    Args:
        compile_args: the arguments given to `RecursiveTrainer.compile`.
        fine_tune_optimizer: the optimizer of the fine-tuning pass, or
            `None`: the stages' optimizer at a tenth of its learning rate.
        fine_tuning: whether the phase is the fine-tuning pass.

    Raises:
        ValueError: fine-tuning by default from an optimizer whose learning
            rate is a schedule, which cannot be scaled.
    """
    args = dict(compile_args)
    optimizer = args["optimizer"]
    if fine_tuning and fine_tune_optimizer is not None:
        optimizer = fine_tune_optimizer
    elif fine_tuning:
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
