"""Time to quality: greedy training against plain Keras, to the same held-out error.

What a user buys is a good autoencoder sooner. One invocation, in one
process, on real LFW faces (all 13,233 by default, 128x128, split by person
with `load_lfw(..., validation_split=0, test_split=0.1, seed=...)`; the
held-out people are its test split, none of whom is trained on):

1. Greedy: `RecursiveTrainer(MirroredConvStack.paper())`, E epochs per stage
   (`--epochs`, default 3), then, for the fine-tuning rows, end-to-end
   epochs after the last stage at the default fine-tuning optimizer (Adam
   at a tenth of `--learning-rate`). `--fine-tune-epochs` lists the counts F
   (default `1,3`); each gives a row `greedy_fine_tune_F`. Every greedy row
   comes from one run that fine-tunes the largest listed F
   (`fit(..., fine_tune_epochs=max(F))`): the `greedy` row is its state and
   wall time at the end of the last stage (the same phases, seeds and data
   order as a run without fine-tuning), the `greedy_fine_tune_F` row its
   state and wall time at the end of fine-tuning epoch F (read from the
   curve, as for the `greedy` row).
2. Plain: the same architecture from the same initial weights (a fresh
   `MirroredConvStack.paper()` given the greedy stack's initial weights),
   trained end to end with Keras' own `Model.fit` of the stack itself (a
   functional `keras.Model`), one `fit` call that a callback stops after the
   first epoch by which every greedy row is settled: plain Keras has reached
   the row's held-out error, or its training wall time exceeds its budget,
   `1 / --goal` times that row's greedy wall time (6.7 times at the default
   goal of 0.15). Whether a row meets the goal is so decided by the run
   itself: plain Keras either reached the error (the ratio is measured) or
   ran past the time at which the ratio would have met the goal.

Every run: Adam(`--learning-rate`), MSE, batch `--batch-size`, Keras'
defaults otherwise (`jit_compile="auto"`), under `--dtype-policy`. Data are
fed to both the same way: `load_lfw`'s `tf.data` pipeline by default (the
plain run maps it to `(x, x)` pairs), NumPy arrays with `--numpy` (decoded
once, before any timing) or from `--data-npz` (written here with
`--save-npz`; that path never imports TensorFlow, for a JAX or PyTorch
machine without it).

Score: the held-out faces' sum of squared error per image (Table 1 of the
paper, `keras_recursive_ae.metrics.sum_squared_error`), averaged over the
held-out images, computed by a callback after every epoch of every run (and
once for the initial weights), giving the curve of held-out error against
training wall time for both.

Wall times count training only: from just before `fit` to the end of an
epoch (a greedy row's last epoch; plain Keras' epochs), with the model's
weights read back first (so that work still queued on an accelerator counts
as training), minus the time spent scoring after earlier epochs. Imports,
data decoding for `--numpy`, model building and scoring are excluded;
tracing, compilation, the stage-input caches and `tf.data` decoding are
included.

The table gives, per greedy row, its wall time and error, plain Keras'
budget for it, the epochs and wall time plain Keras needed to reach that
error, the ratio (greedy time / plain time to the same error) and whether it
meets the goal: a ratio of at most `--goal` (default 0.15, in (0, 1]). When
plain Keras never got there within its budget, the ratio is "below X", X
being greedy time / plain's total training time, and the goal is met. The
JSON (`--json`) holds every row and both curves; the plot (`--plot`) both
curves, with each row's error and time marked.

Usage (from the repository root; the real run is the first line, all faces
at the defaults E = 3, F = 1,3, goal 0.15, in one process on a quiet machine):

```
python benchmarks/bench_time_to_quality.py --json ttq.json --plot ttq.png   # all faces
python benchmarks/bench_time_to_quality.py --images 256 --image-size 32 --epochs 1  # smoke
python benchmarks/bench_time_to_quality.py --fine-tune-epochs 1,2,5 --goal 0.25
python benchmarks/bench_time_to_quality.py --rows greedy_fine_tune_3,plain
python benchmarks/bench_time_to_quality.py --rows greedy --dtype-policy mixed_bfloat16
python benchmarks/bench_time_to_quality.py --save-npz faces.npz     # decode once, here
KERAS_BACKEND=jax python benchmarks/bench_time_to_quality.py --data-npz faces.npz
```
"""

import argparse
import gc
import json
import logging
import math
import os
import pathlib
import sys
import time

from bench_common import (
    add_lfw_arguments,
    add_training_arguments,
    comma_separated_names,
    curve_callback,
    held_out_split,
    held_out_sse,
    machine,
    positive_float,
    positive_int,
    versions_and_device,
)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

FINE_TUNE_ROW = "greedy_fine_tune_"  # + F
DTYPE_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")

# `fit`'s `epochs` for the plain run: the scoring callback stops it long before.
_PLAIN_EPOCH_LIMIT = 1_000_000


def row_names(fine_tune_epochs):
    """Every row: `greedy`, `greedy_fine_tune_F` for each F, `plain`."""
    return ["greedy", *(f"{FINE_TUNE_ROW}{f}" for f in fine_tune_epochs), "plain"]


def fine_tune_count(row):
    """F of a `greedy_fine_tune_F` row, 0 for `greedy`."""
    return int(row[len(FINE_TUNE_ROW) :]) if row.startswith(FINE_TUNE_ROW) else 0


def epoch_counts(option):
    """An argparse type: distinct integers of at least 1, comma-separated, sorted."""
    one = positive_int(option)

    def check(text):
        message = (
            f"{option} must be a comma-separated list of distinct integers of at least 1, "
            f"e.g. 1,3. Received: {option} {text!r}"
        )
        try:
            counts = [one(part.strip()) for part in text.split(",")]
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(message) from None
        if len(set(counts)) != len(counts):
            raise argparse.ArgumentTypeError(message)
        return sorted(counts)

    return check


def goal_fraction(option):
    """An argparse type: a number in (0, 1], named `option` in errors."""
    number = positive_float(option)

    def check(text):
        try:
            value = number(text)
        except argparse.ArgumentTypeError:
            value = None
        if value is None or value > 1:
            raise argparse.ArgumentTypeError(
                f"{option} must be a number above 0 and at most 1 (greedy time / plain time "
                f"to the same error). Received: {option} {text}"
            )
        return value

    return check


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_lfw_arguments(parser, images=0, image_size=128)
    parser.add_argument(
        "--epochs", type=positive_int("--epochs"), default=3, help="E: greedy epochs per stage"
    )
    parser.add_argument(
        "--fine-tune-epochs",
        type=epoch_counts("--fine-tune-epochs"),
        default=[1, 3],
        help="F: comma-separated counts of end-to-end epochs after the stages, one "
        "greedy_fine_tune_F row each, all read from one greedy run that fine-tunes the "
        "largest (default: 1,3)",
    )
    add_training_arguments(parser)
    parser.add_argument(
        "--goal",
        type=goal_fraction("--goal"),
        default=0.15,
        help="the goal: greedy time / plain time to the same error at most this; plain "
        "Keras gives up on a greedy row once its training time exceeds 1 / goal times that "
        "row's (default: 0.15, a budget of 6.7 times)",
    )
    parser.add_argument(
        "--dtype-policy",
        default="float32",
        help=f"Keras' global dtype policy for every model, one of {DTYPE_POLICIES}",
    )
    parser.add_argument(
        "--rows",
        help="comma-separated, from greedy, greedy_fine_tune_F (F from --fine-tune-epochs) "
        "and plain (default: all of them); plain needs a greedy row (its target)",
    )
    parser.add_argument(
        "--numpy",
        action="store_true",
        help="feed NumPy arrays (decoded once, untimed) instead of load_lfw's tf.data pipeline",
    )
    parser.add_argument(
        "--data-npz",
        help="read x_train and x_test from this .npz (see --save-npz) instead of LFW; "
        "implies NumPy feeding and never imports TensorFlow",
    )
    parser.add_argument(
        "--save-npz",
        help="decode the faces into this .npz (x_train, x_test; uint8 where lossless) and exit",
    )
    parser.add_argument(
        "--plot", help="write a PNG of held-out SSE per image against training wall time"
    )
    args = parser.parse_args(argv)

    choices = row_names(args.fine_tune_epochs)
    if args.rows is None:
        args.rows = choices
    else:
        listed = [r.strip() for r in args.rows.split(",")]
        other = [r for r in listed if r.startswith(FINE_TUNE_ROW) and r not in choices]
        if other:
            parser.error(
                f"--rows names a fine-tuning row that --fine-tune-epochs "
                f"{','.join(map(str, args.fine_tune_epochs))} does not give; the rows are "
                f"{tuple(choices)}. Received: --rows {args.rows!r}"
            )
        text = args.rows
        args.rows = comma_separated_names(parser, "--rows", text, choices)
        if args.rows == ["plain"]:
            parser.error(
                "--rows must list a greedy row: it gives plain Keras its target error and "
                f"time budget. Received: --rows {text!r}"
            )
    if args.dtype_policy not in DTYPE_POLICIES:
        parser.error(
            f"--dtype-policy must be one of {DTYPE_POLICIES}. "
            f"Received: --dtype-policy {args.dtype_policy!r}"
        )
    if args.data_npz and args.save_npz:
        parser.error(
            "--save-npz writes the faces that --data-npz reads; give one of them. "
            f"Received: --data-npz {args.data_npz!r} --save-npz {args.save_npz!r}"
        )
    if args.data_npz and not os.path.isfile(args.data_npz):
        parser.error(f"--data-npz names no file. Received: --data-npz {args.data_npz!r}")
    args.numpy = args.numpy or bool(args.data_npz)
    return args


# ------------------------------------------------------------ pure logic


def first_reaching(curve, target):
    """The first point of `curve` (dicts with `sse`) at or below `target`, or `None`."""
    return next((point for point in curve if point["sse"] <= target), None)


def should_stop(curve, rows):
    """Why the plain run stops after an epoch: `"reached"`, `"budget"`, or `None`.

    `rows` holds one `(target_sse, wall_limit)` per greedy row. A row is
    settled once plain Keras' `curve` (so far) has reached its error, or has
    run past its own time limit (`1 / --goal` times that row's greedy time).
    Plain stops when every row is settled: `"reached"` when it reached every
    error, else `"budget"`.
    """
    wall = curve[-1]["wall_s"]
    reached = [first_reaching(curve, target) is not None for target, _ in rows]
    if all(reached):
        return "reached"
    if all(done or wall > limit for done, (_, limit) in zip(reached, rows)):
        return "budget"
    return None


def _ceil2(value):
    # Rounded up, so that "below X" stays true; round() first drops the
    # float noise of value * 100 (0.07 * 100 is 7.000000000000001).
    return math.ceil(round(value * 100, 6)) / 100


def ratio_text(greedy_wall, plain_wall=None, plain_total_wall=None):
    """`greedy / plain` time to the same error, or `"below X"` when plain never got there.

    Args:
        greedy_wall: the greedy row's training seconds.
        plain_wall: plain Keras' training seconds to reach the greedy row's
            error, or `None` when it never did.
        plain_total_wall: plain Keras' training seconds in all (its time to
            the error is longer than that): used when `plain_wall` is `None`.
    """
    if plain_wall is not None:
        return f"{greedy_wall / plain_wall:.2f}"
    return f"below {_ceil2(greedy_wall / plain_total_wall):.2f}"


def summarize_row(row, greedy_wall, greedy_sse, plain_curve, plain_total_wall, goal):
    """One table row: what plain Keras needed to reach a greedy row's error.

    Args:
        row: the row's name.
        greedy_wall: its training seconds.
        greedy_sse: its held-out SSE per image.
        plain_curve: plain Keras' points (`epoch`, `wall_s`, `sse`) after
            every epoch, or `None` when plain Keras did not run.
        plain_total_wall: plain Keras' training seconds in all.
        goal: the ratio to meet (at most); plain's budget for the row is
            `greedy_wall / goal`.

    Returns:
        A dict with the inputs, `plain_budget_s`, `plain_epochs` and
        `plain_wall_s` (`None` when plain never reached the error), `ratio`
        (a number, or the "below" bound), `ratio_text`, `reached` and
        `meets_goal` (`True` or `False` when known, `None` when plain did
        not run or stopped before it could tell).
    """
    result = {
        "row": row,
        "greedy_wall_s": greedy_wall,
        "greedy_sse": greedy_sse,
        "plain_budget_s": greedy_wall / goal,
    }
    if plain_curve is None:
        return {
            **result,
            "plain_epochs": None,
            "plain_wall_s": None,
            "ratio": None,
            "ratio_text": "n/a (plain not run)",
            "reached": None,
            "meets_goal": None,
        }
    point = first_reaching(plain_curve, greedy_sse)
    if point is not None:
        ratio = greedy_wall / point["wall_s"]
        return {
            **result,
            "plain_epochs": point["epoch"],
            "plain_wall_s": point["wall_s"],
            "ratio": ratio,
            "ratio_text": ratio_text(greedy_wall, point["wall_s"]),
            "reached": True,
            "meets_goal": ratio <= goal,
        }
    bound = greedy_wall / plain_total_wall
    return {
        **result,
        "plain_epochs": None,
        "plain_wall_s": None,
        "ratio": bound,
        "ratio_text": ratio_text(greedy_wall, None, plain_total_wall),
        "reached": False,
        # The ratio is below the bound: known to meet the goal only if the bound
        # does, which it does once plain ran past its budget for the row.
        "meets_goal": True if bound <= goal else None,
    }


# ------------------------------------------------------------------ data


def _to_float(x):
    import numpy as np

    if x.dtype == np.uint8:
        return x.astype("float32") / np.float32(255)
    return np.asarray(x, dtype="float32")


def _to_stored(x):
    """uint8 when that is lossless (faces cropped, not resized), else float32."""
    import numpy as np

    stored = np.round(x * 255).astype(np.uint8)
    return stored if np.array_equal(stored.astype("float32") / np.float32(255), x) else x


def load_data(args):
    """A dict: `train` (dataset or array), `x_test` (array), `numpy`, `info`."""
    import numpy as np

    if args.data_npz:
        with np.load(args.data_npz) as stored:
            x_train, x_test = _to_float(stored["x_train"]), _to_float(stored["x_test"])
        if args.test_images:
            x_test = x_test[: args.test_images]
        info = {"source": f"{args.data_npz} (NumPy)", "num_train": len(x_train)}
        info.update(num_test=len(x_test), test_people=None, image_shape=list(x_train.shape[1:]))
        return {"train": x_train, "x_test": x_test, "numpy": True, "info": info}

    splits, x_test, info = held_out_split(args)
    train = splits.numpy("train") if args.numpy or args.save_npz else splits.train
    return {"train": train, "x_test": x_test, "numpy": args.numpy, "info": info}


def save_npz(path, data):
    import numpy as np

    x_train, x_test = _to_stored(data["train"]), _to_stored(data["x_test"])
    np.savez_compressed(path, x_train=x_train, x_test=x_test)
    print(
        f"# wrote {path}: x_train {x_train.shape} {x_train.dtype}, "
        f"x_test {x_test.shape} {x_test.dtype} ({os.path.getsize(path) / 2**20:.0f} MiB)"
    )


# ---------------------------------------------------------------- training


def _fresh_stack(image_shape, initial_weights):
    from keras_recursive_ae import MirroredConvStack

    stack = MirroredConvStack.paper(input_shape=tuple(image_shape), base_filters=16)
    if initial_weights is not None:
        stack.set_weights(initial_weights)
    return stack


def run_greedy(args, data, initial_weights, fine_tune_epochs):
    """One greedy run: its curve (epoch, stage, wall_s, sse) and training seconds."""
    import keras

    from keras_recursive_ae import RecursiveTrainer

    keras.utils.set_random_seed(args.seed)
    stack = _fresh_stack(data["info"]["image_shape"], initial_weights)
    trainer = RecursiveTrainer(stack)
    trainer.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss="mse")
    curve = curve_callback(trainer.model, data["x_test"], "greedy")
    options = {"batch_size": args.batch_size} if data["numpy"] else {}
    curve.start()
    trainer.fit(
        data["train"],
        epochs=args.epochs,
        fine_tune_epochs=fine_tune_epochs,
        verbose=0,
        callbacks=[curve],
        **options,
    )
    wall = curve.training_seconds()
    return curve.points, wall, stack.depth


def run_plain(args, data, initial_weights, rows):
    """Plain Keras `fit`, stopped at the targets or the budget: curve, seconds, reason."""
    import keras

    keras.utils.set_random_seed(args.seed)
    model = _fresh_stack(data["info"]["image_shape"], initial_weights)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss="mse")

    def stop(curve):
        return should_stop(curve, rows)

    curve = curve_callback(model, data["x_test"], "plain", stop)
    curve.start()
    if data["numpy"]:
        x = data["train"]
        model.fit(
            x,
            x,
            batch_size=args.batch_size,
            epochs=_PLAIN_EPOCH_LIMIT,
            shuffle=True,
            verbose=0,
            callbacks=[curve],
        )
    else:
        # The dataset reshuffles itself every epoch, as the trainer's does.
        pairs = data["train"].map(lambda x: (x, x))
        model.fit(pairs, epochs=_PLAIN_EPOCH_LIMIT, shuffle=False, verbose=0, callbacks=[curve])
    wall = curve.training_seconds()
    return curve.points, wall, curve.stop_reason


# ------------------------------------------------------------------ report


_MEETS = {True: "yes", False: "no", None: "n/a"}


def _print_table(rows, plain, goal):
    print()
    print(
        "| row | greedy wall s | greedy SSE/image | plain budget s | plain epochs "
        f"| plain wall s to that SSE | ratio | meets goal (<= {goal}) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if r["plain_epochs"] is not None:
            epochs, wall = str(r["plain_epochs"]), f"{r['plain_wall_s']:.1f}"
        elif plain is None:
            epochs, wall = "not run", "n/a"
        else:
            epochs, wall = f"> {len(plain['curve'])}", f"> {plain['wall_s']:.1f}"
        print(
            f"| {r['row']} | {r['greedy_wall_s']:.1f} | {r['greedy_sse']:.2f} "
            f"| {r['plain_budget_s']:.1f} | {epochs} | {wall} | {r['ratio_text']} "
            f"| {_MEETS[r['meets_goal']]} |"
        )


def _print_curve(title, curve, initial_sse, stages=False):
    print()
    print(title)
    print()
    print("| epoch | stage | wall s | SSE/image |" if stages else "| epoch | wall s | SSE/image |")
    print("|---:|---:|---:|---:|" if stages else "|---:|---:|---:|")
    first = "| 0 | - | 0.0 |" if stages else "| 0 | 0.0 |"
    print(f"{first} {initial_sse:.2f} |")
    for p in curve:
        stage = f" {p.get('stage', '-')} |" if stages else ""
        print(f"| {p['epoch']} |{stage} {p['wall_s']:.1f} | {p['sse']:.2f} |")


def plot(path, title, initial_sse, greedy, plain, rows):
    """Held-out SSE per image against training wall seconds, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    runs = [(greedy["label"], greedy["curve"], "C0")]
    if plain is not None:
        runs.append((plain["label"], plain["curve"], "C1"))
    for label, curve, color in runs:
        walls = [0.0] + [p["wall_s"] for p in curve]
        errors = [initial_sse] + [p["sse"] for p in curve]
        ax.plot(walls, errors, marker="o", markersize=3, color=color, label=label)
    for index, r in enumerate(rows):
        color = f"C{index + 2}"
        ax.axhline(
            r["greedy_sse"],
            linestyle="--",
            linewidth=1,
            color=color,
            label=(
                f"{r['row']}: {r['greedy_sse']:.1f} at {r['greedy_wall_s']:.0f} s "
                f"(ratio {r['ratio_text']})"
            ),
        )
        ax.axvline(r["greedy_wall_s"], linestyle=":", linewidth=1, color=color)
    errors = [initial_sse] + [p["sse"] for _, curve, _ in runs for p in curve]
    if max(errors) > 5 * min(errors):  # early greedy stages sit far above the rest
        ax.set_yscale("log")
    ax.set_xlabel("training wall time, s (scoring excluded)")
    ax.set_ylabel("held-out sum of squared error per image")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Scoring the full autoencoder between greedy stages retraces its predict
    # function (scoring time, excluded); TensorFlow would warn about it.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    print(f"# bench_time_to_quality {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"# machine: {machine()}")
    print(f"# command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    data = load_data(args)
    if args.save_npz:
        return save_npz(args.save_npz, data)
    info = data["info"]
    import keras

    keras.mixed_precision.set_global_policy(args.dtype_policy)
    backend, versions, device = versions_and_device()
    feed = "NumPy arrays" if data["numpy"] else "load_lfw's tf.data pipeline"
    shape = tuple(info["image_shape"])
    people = f" ({info['test_people']} people)" if info["test_people"] else ""
    print(f"# backend {backend} on {device}; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(
        f"# data: {info['source']}; {info['num_train']} faces trained on, {info['num_test']} "
        f"held-out faces scored{people}, {shape}; fed as {feed}"
    )
    print(
        f"# MirroredConvStack.paper(base_filters=16); Adam({args.learning_rate}), MSE, batch "
        f"{args.batch_size}; E={args.epochs} per stage, "
        f"F={','.join(map(str, args.fine_tune_epochs))}; goal {args.goal} (plain's budget "
        f"{1 / args.goal:.3g}x each row's greedy time); dtype policy {args.dtype_policy}; "
        f"seed {args.seed}; rows {args.rows}",
        flush=True,
    )

    keras.utils.set_random_seed(args.seed)
    first = _fresh_stack(shape, None)
    initial_weights = first.get_weights()
    initial_sse = held_out_sse(first, data["x_test"])
    depth = first.depth
    del first
    print(f"# initial weights: held-out SSE/image {initial_sse:.2f}", flush=True)

    greedy_rows = [row for row in args.rows if row != "plain"]
    fine_tune = max(fine_tune_count(row) for row in greedy_rows)
    curve, wall, depth = run_greedy(args, data, initial_weights, fine_tune)
    label = f"greedy, E={args.epochs} per stage"
    if fine_tune:
        label += f", then {fine_tune} fine-tuning epoch(s)"
    greedy = {"label": label, "curve": curve, "fit_wall_s": wall}
    # Every row's time is taken at the end of an epoch, as plain Keras' is:
    # the greedy row's at the last stage's end, greedy_fine_tune_F's at the
    # end of fine-tuning epoch F (the stage after the last).
    stages = [p for p in curve if p.get("stage", 0) <= depth]
    fine_tuning = [p for p in curve if p.get("stage", 0) > depth]
    if len(fine_tuning) != fine_tune:
        raise RuntimeError(
            f"The greedy run scored {len(fine_tuning)} fine-tuning epoch(s), not {fine_tune}."
        )
    finals = {}
    for row in greedy_rows:
        f = fine_tune_count(row)
        end = fine_tuning[f - 1] if f else stages[-1]
        finals[row] = (end["wall_s"], end["sse"])
    gc.collect()

    plain = None
    if "plain" in args.rows:
        limits = [(sse, wall / args.goal) for wall, sse in finals.values()]
        limit = max(wall_limit for _, wall_limit in limits)
        curve, wall, reason = run_plain(args, data, initial_weights, limits)
        plain = {
            "label": "plain Keras fit, end to end",
            "curve": curve,
            "wall_s": curve[-1]["wall_s"],
            "fit_wall_s": wall,
            "stopped": reason,
            "wall_limit_s": limit,
        }
    rows = [
        summarize_row(
            row,
            *finals[row],
            None if plain is None else plain["curve"],
            None if plain is None else plain["wall_s"],
            args.goal,
        )
        for row in finals
    ]

    _print_table(rows, plain, args.goal)
    if plain is not None:
        why = {"reached": "reached every greedy row's error", "budget": "ran out of budget"}
        print(
            f"\nplain Keras: {len(plain['curve'])} epoch(s), {plain['wall_s']:.1f} s of training; "
            f"stopped: {why.get(plain['stopped'], plain['stopped'])} "
            f"(budget 1 / goal = {1 / args.goal:.3g} x each row's greedy time, at most "
            f"{plain['wall_limit_s']:.1f} s)"
        )
        _print_curve("Plain Keras, after every epoch:", plain["curve"], initial_sse)
    _print_curve(f"Greedy ({label}), after every epoch:", greedy["curve"], initial_sse, True)

    title = (
        f"LFW {shape[0]}x{shape[1]}, {info['num_train']} faces trained on, "
        f"{info['num_test']} held out; {backend} on {device}, {args.dtype_policy}"
    )
    if args.plot:
        plot(args.plot, title, initial_sse, greedy, plain, rows)
        print(f"\n# plot: {args.plot}")
    if args.json:
        result = {
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "machine": machine(),
            "command": sys.argv,
            "arguments": vars(args),
            "backend": backend,
            "device": device,
            "versions": versions,
            "data": info,
            "depth": depth,
            "initial_sse": initial_sse,
            "goal": args.goal,
            "budget_factor": 1 / args.goal,
            "rows": rows,
            "greedy": greedy,
            "plain": plain,
        }
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"# json: {args.json}")


if __name__ == "__main__":
    main()
