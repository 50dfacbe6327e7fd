"""Training one configuration: for the experiment's epochs, or for a wall time.

`--equal-time` gives every end-to-end configuration the wall time its greedy
partner (`stacked` <-> `recursive`, `stacked_bn` <-> `recursive_bn`, ...)
took with the same seed, rather than the same epochs: it trains epoch after
epoch and stops at the end of the first epoch at or past that time
(`WallTimeStop`). `equal_time_order` runs each partner first.
"""

import math
import sys
import time

import keras

from experiments.lfw.configurations import CONFIGURATIONS
from experiments.lfw.tensorboard_logs import tensorboard_callbacks
from keras_recursive_ae import RecursiveTrainer

EQUAL_TIME_MAX_EPOCHS = 10_000
"""The epoch cap of a run limited by wall time: a guard, never meant to be reached."""


class WallTimeStop(keras.callbacks.Callback):
    """Stops training at the end of the first epoch at or past a wall time.

    The time counts from `on_train_begin`. Every epoch started is finished,
    so a run gets at least one epoch, however short the time.

    Args:
        seconds: The wall time, in seconds (at least 0).
        clock: Optional function returning the time in seconds. Defaults to
            `time.perf_counter`.

    Attributes:
        epochs: Epochs finished in the last run.
        elapsed: Seconds from the start of the last run to the end of its
            last epoch, or `None` before any epoch ends.

    Example:

    ```python
    import keras
    from experiments.lfw.training import WallTimeStop

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    stop = WallTimeStop(0.0)  # one epoch, whatever the time
    model.fit(keras.ops.ones((8, 2)), keras.ops.ones((8, 2)), epochs=5, callbacks=[stop], verbose=0)
    stop.epochs  # 1
    ```
    """

    def __init__(self, seconds, clock=time.perf_counter):
        super().__init__()
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            raise ValueError(
                f"Invalid value for argument `seconds`. Expected a finite number "
                f"of at least 0. Received: seconds={seconds!r}"
            )
        self.seconds = float(seconds)
        self.clock = clock
        self.epochs = 0
        self.elapsed = None
        self._start = None

    def on_train_begin(self, logs=None):
        self._start = self.clock()
        self.epochs = 0
        self.elapsed = None

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1
        self.elapsed = self.clock() - self._start
        if self.elapsed >= self.seconds:
            self.model.stop_training = True


def greedy_partner(configuration):
    """The name of an end-to-end configuration's greedy partner, else `None`.

    The partner is the same network trained greedily, from the same paper
    pair: `stacked` -> `recursive`, `stacked_bn` -> `recursive_bn`,
    `stacked_vae` -> `recursive_vae`, ...

    Example:

    >>> from experiments.lfw import CONFIGURATIONS
    >>> from experiments.lfw.training import greedy_partner
    >>> greedy_partner(CONFIGURATIONS["stacked_bn"]), greedy_partner(CONFIGURATIONS["joint"])
    ('recursive_bn', None)
    """
    if configuration.schedule != "end_to_end":
        return None
    partner = CONFIGURATIONS.get(configuration.name.replace("stacked", "recursive", 1))
    return partner.name if partner is not None and partner.schedule == "greedy" else None


def equal_time_order(configurations):
    """The configurations in the order `--equal-time` trains them.

    Each end-to-end configuration moves to just after its greedy partner,
    whose wall time it gets; the others keep their order.

    Args:
        configurations: A list of `Configuration`.

    Returns:
        A list of the same configurations.

    Raises:
        ValueError: If an end-to-end configuration's greedy partner is not
            among them (or it has none).

    Example:

    >>> from experiments.lfw import select_configurations
    >>> from experiments.lfw.training import equal_time_order
    >>> [c.name for c in equal_time_order(select_configurations(["map"]))]
    ['recursive', 'stacked', 'recursive_bn', 'stacked_bn', 'recursive_fine_tune']
    """
    names = [c.name for c in configurations]
    for configuration in configurations:
        partner = greedy_partner(configuration)
        if configuration.schedule == "end_to_end" and partner not in names:
            raise ValueError(
                f"Invalid value for argument `configs` with --equal-time: "
                f"{configuration.name!r} trains until its wall time reaches that of "
                f"its greedy partner {partner!r}, which is not selected; select both "
                f"or drop --equal-time. Received: configs={names}"
            )
    ordered, waiting = [], {}
    for configuration in configurations:
        partner = greedy_partner(configuration)
        if partner is not None and partner not in [c.name for c in ordered]:
            waiting.setdefault(partner, []).append(configuration)
            continue
        ordered.append(configuration)
        ordered += waiting.pop(configuration.name, [])
    return ordered


def budget_words(depth, epochs, fine_tune_epochs=None, equal_time=False):
    """The budget of a run, in words, for `results.json` and `results.md`.

    Example:

    >>> from experiments.lfw.training import budget_words
    >>> budget_words(5, 3).split(":")[0]
    '3 epochs per weight'
    >>> "--equal-time" in budget_words(5, 3), "--equal-time" in budget_words(5, 3, equal_time=True)
    (False, True)
    """
    words = (
        f"{epochs} epochs per weight: greedy schedules train each of the "
        f"{depth} stages for {epochs} epochs, end-to-end and joint "
        f"schedules train the whole model for {epochs} epochs; "
        f"recursive_fine_tune adds "
        f"{epochs if fine_tune_epochs is None else fine_tune_epochs} "
        f"end-to-end epochs after its greedy stages."
    )
    if equal_time:
        words += (
            " With --equal-time, each end-to-end configuration instead trains "
            "epoch after epoch until its wall time reaches that of its greedy "
            "partner with the same seed, and stops at the end of the first "
            "epoch at or past it."
        )
    return words


def equal_time_lines(entries):
    """`results.md`'s lines on what each `--equal-time` configuration got, seed by seed.

    Args:
        entries: The configurations of `results.json`.

    Returns:
        A list of Markdown lines, empty when no configuration ran for a
        wall time.
    """
    lines = []
    for entry in entries:
        runs = [run for run in entry.get("seeds") or [] if run.get("equal_time")]
        if not runs:
            continue
        partner = runs[0]["equal_time"]["partner"]
        lines.append(
            f"- `{entry['name']}` until `{partner}`'s wall time: "
            + "; ".join(
                f"seed {run['seed']}: {run['epochs_run']} epochs in "
                f"{run['train_seconds']:.1f} s "
                f"(`{partner}`: {run['equal_time']['partner_seconds']:.1f} s)"
                for run in runs
            )
        )
    if not lines:
        return []
    return [
        "",
        "Equal wall time (`--equal-time`): each end-to-end configuration trained epoch "
        "after epoch until its wall time reached that of its greedy partner with the same "
        "seed, stopping at the end of the first epoch at or past it:",
        "",
        *lines,
    ]


def train_configuration(
    configuration,
    autoencoder,
    train,
    validation=None,
    *,
    epochs=3,
    fine_tune_epochs=None,
    batch_size=32,
    learning_rate=1e-3,
    verbose="auto",
    callbacks=None,
    tensorboard_dir=None,
    tensorboard_images=None,
    wall_time=None,
):
    """Trains one configuration with the experiment's budget.

    Args:
        configuration: A `Configuration`.
        autoencoder: Its `MirroredConvStack` (see `build_autoencoder`).
        train: Training images: a NumPy array or a batched `tf.data.Dataset`.
        validation: Optional validation images, in the same forms.
        epochs: The budget `E`: epochs per stage for greedy schedules,
            epochs in all for the others.
        fine_tune_epochs: End-to-end epochs after the greedy stages, for a
            configuration with `fine_tune=True`. Defaults to `None`
            (`epochs`).
        batch_size: Batch size for NumPy inputs. Defaults to `32`.
        learning_rate: Adam's learning rate. Defaults to `1e-3`.
        verbose: As in `keras.Model.fit`. Defaults to `"auto"`.
        callbacks: Optional Keras callbacks for the whole run (see
            `RecursiveTrainer.fit`).
        tensorboard_dir: Optional TensorBoard run folder for this
            configuration: adds `tensorboard_callbacks(tensorboard_dir,
            tensorboard_images, trainer.autoencoder)`. Defaults to `None`.
        tensorboard_images: The fixed held-out images whose reconstructions
            go to TensorBoard; required with `tensorboard_dir`.
        wall_time: Optional budget in seconds instead of `epochs`, for a
            single-phase schedule (`"end_to_end"`, `"joint"`): train epoch
            after epoch (at most `EQUAL_TIME_MAX_EPOCHS`) and stop at the end
            of the first one at or past it (`WallTimeStop`). Defaults to
            `None`.

    Returns:
        A tuple `(trainer, history, seconds)`: the `RecursiveTrainer`, the
        history over all stages, and the wall time of `fit` in seconds.

    Raises:
        ValueError: If `wall_time` is given for a greedy schedule.

    Example:

    ```python
    import numpy as np
    from experiments.lfw import CONFIGURATIONS, build_autoencoder
    from experiments.lfw import train_configuration

    stacked = CONFIGURATIONS["stacked"]
    stack = build_autoencoder(stacked, (8, 8, 1), base_filters=2, depth=2)
    images = np.random.default_rng(0).random((16, 8, 8, 1), dtype="float32")
    trainer, history, seconds = train_configuration(
        stacked, stack, images, epochs=1, verbose=0, wall_time=0.0
    )
    len(history.history["loss"])  # 1: the first epoch ends past 0 s
    ```
    """
    callbacks = list(callbacks or [])
    if wall_time is not None:
        if configuration.schedule == "greedy":
            raise ValueError(
                f"Invalid value for argument `wall_time`. A greedy schedule has one "
                f"phase per stage; a wall time applies to a single-phase schedule. "
                f"Received: wall_time={wall_time!r} for {configuration.name!r}"
            )
        callbacks.append(WallTimeStop(wall_time))
        epochs = EQUAL_TIME_MAX_EPOCHS
    trainer_options = {}
    if configuration.schedule != "greedy":
        trainer_options["schedule"] = configuration.schedule
    trainer = RecursiveTrainer(autoencoder, **trainer_options)
    trainer.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    if tensorboard_dir is not None:
        callbacks += tensorboard_callbacks(tensorboard_dir, tensorboard_images, trainer.autoencoder)
    fit_options = {}
    if configuration.fine_tune:
        fit_options["fine_tune_epochs"] = epochs if fine_tune_epochs is None else fine_tune_epochs
    if not _is_dataset(train):
        fit_options["batch_size"] = batch_size
    start = time.perf_counter()
    history = trainer.fit(
        train,
        epochs=epochs,
        validation_data=validation,
        verbose=verbose,
        callbacks=callbacks,
        **fit_options,
    )
    return trainer, history, time.perf_counter() - start


def _is_dataset(data):
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(data, tf.data.Dataset)
