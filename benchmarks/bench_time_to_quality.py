"""Time to quality: greedy training against plain Keras, to the same held-out error.

What a user buys is a good autoencoder sooner. One invocation, in one
process, on real LFW faces (all 13,233 by default, 128x128, split by person
with `load_lfw(..., validation_split=0, test_split=0.1, seed=...)`; the
held-out people are its test split, none of whom is trained on):

1. Greedy: `RecursiveTrainer(MirroredConvStack.paper())`, E epochs per stage
   and, for the `greedy_fine_tune` row, F end-to-end epochs after the last
   stage (`fit(..., fine_tune_epochs=F)`). When both greedy rows run, they
   come from that one run: the `greedy` row is its state at the end of the
   last stage (the same phases, seeds and data order as a run without
   fine-tuning), the `greedy_fine_tune` row its end.
2. Plain: the same architecture from the same initial weights (a fresh
   `MirroredConvStack.paper()` given the greedy stack's initial weights),
   trained end to end with Keras' own `Model.fit` of the stack itself (a
   functional `keras.Model`), one `fit` call that a callback stops after the
   first epoch by which every greedy row is settled: plain Keras has reached
   the row's held-out error, or its training wall time exceeds `--budget`
   times that row's greedy wall time.

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

The table gives, per greedy row, its wall time and error, the epochs and
wall time plain Keras needed to reach that error, and the ratio: greedy
time / plain time to the same error (the goal: at most 0.25). When plain
Keras never got there within its budget, the ratio is "below X", X being
greedy time / plain's total training time.

Usage (from the repository root):

```
python benchmarks/bench_time_to_quality.py --json ttq.json --plot ttq.png   # all faces
python benchmarks/bench_time_to_quality.py --images 256 --image-size 32 --epochs 1  # smoke
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
    curve_callback,
    held_out_split,
    held_out_sse,
    machine,
    positive_float,
    positive_int,
    versions_and_device,
)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

ROWS = ("greedy", "greedy_fine_tune", "plain")
GREEDY_ROWS = ("greedy", "greedy_fine_tune")
DTYPE_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
GOAL = 0.25

# `fit`'s `epochs` for the plain run: the scoring callback stops it long before.
_PLAIN_EPOCH_LIMIT = 1_000_000


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_lfw_arguments(parser, images=0, image_size=128)
    parser.add_argument(
        "--epochs", type=positive_int("--epochs"), default=3, help="E: greedy epochs per stage"
    )
    parser.add_argument(
        "--fine-tune-epochs",
        type=positive_int("--fine-tune-epochs"),
        default=1,
        help="F: end-to-end epochs after the stages, for the greedy_fine_tune row",
    )
    add_training_arguments(parser)
    parser.add_argument(
        "--budget",
        type=positive_float("--budget"),
        default=4.0,
        help="plain Keras gives up on a greedy row's error once its training time "
        "exceeds this many times that row's (default: 4)",
    )
    parser.add_argument(
        "--dtype-policy",
        default="float32",
        help=f"Keras' global dtype policy for every model, one of {DTYPE_POLICIES}",
    )
    parser.add_argument(
        "--rows",
        default=",".join(ROWS),
        help=f"comma-separated, from {ROWS}; plain needs a greedy row (its target)",
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

    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if not rows or unknown:
        parser.error(
            f"--rows must be a comma-separated list from {ROWS}. Received: --rows {args.rows!r}"
        )
    if len(set(rows)) != len(rows):
        parser.error(f"--rows lists a row twice. Received: --rows {args.rows!r}")
    if not any(r in GREEDY_ROWS for r in rows):
        parser.error(
            f"--rows must list a greedy row {GREEDY_ROWS}: it gives plain Keras its target "
            f"error and time budget. Received: --rows {args.rows!r}"
        )
    args.rows = [r for r in ROWS if r in rows]
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
    run past its own time limit (`--budget` times that row's greedy time).
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


def summarize_row(row, greedy_wall, greedy_sse, plain_curve, plain_total_wall):
    """One table row: what plain Keras needed to reach a greedy row's error.

    Args:
        row: the row's name.
        greedy_wall: its training seconds.
        greedy_sse: its held-out SSE per image.
        plain_curve: plain Keras' points (`epoch`, `wall_s`, `sse`) after
            every epoch, or `None` when plain Keras did not run.
        plain_total_wall: plain Keras' training seconds in all.

    Returns:
        A dict with the inputs, `plain_epochs` and `plain_wall_s` (`None`
        when plain never reached the error), `ratio` (a number, or the
        "below" bound), `ratio_text`, `reached` and `meets_goal` (`True`
        or `False` when known, `None` when plain did not run or its budget
        ended before it could tell).
    """
    result = {"row": row, "greedy_wall_s": greedy_wall, "greedy_sse": greedy_sse}
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
            "meets_goal": ratio <= GOAL,
        }
    bound = greedy_wall / plain_total_wall
    return {
        **result,
        "plain_epochs": None,
        "plain_wall_s": None,
        "ratio": bound,
        "ratio_text": ratio_text(greedy_wall, None, plain_total_wall),
        "reached": False,
        # The ratio is below the bound: known to meet the goal only if the bound does.
        "meets_goal": True if bound <= GOAL else None,
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


def _print_table(rows, plain):
    print()
    print(
        f"| row | greedy wall s | greedy SSE/image | plain epochs | plain wall s to that SSE "
        f"| ratio (goal <= {GOAL}) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["plain_epochs"] is not None:
            epochs, wall = str(r["plain_epochs"]), f"{r['plain_wall_s']:.1f}"
        elif plain is None:
            epochs, wall = "not run", "n/a"
        else:
            epochs, wall = f"> {len(plain['curve'])}", f"> {plain['wall_s']:.1f}"
        print(
            f"| {r['row']} | {r['greedy_wall_s']:.1f} | {r['greedy_sse']:.2f} | {epochs} "
            f"| {wall} | {r['ratio_text']} |"
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
    for r, color in zip(rows, ("C2", "C3")):
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
        f"{args.batch_size}; E={args.epochs} per stage, F={args.fine_tune_epochs}; "
        f"budget {args.budget}x; dtype policy {args.dtype_policy}; seed {args.seed}; "
        f"rows {args.rows}",
        flush=True,
    )

    keras.utils.set_random_seed(args.seed)
    first = _fresh_stack(shape, None)
    initial_weights = first.get_weights()
    initial_sse = held_out_sse(first, data["x_test"])
    depth = first.depth
    del first
    print(f"# initial weights: held-out SSE/image {initial_sse:.2f}", flush=True)

    fine_tune = args.fine_tune_epochs if "greedy_fine_tune" in args.rows else 0
    curve, wall, depth = run_greedy(args, data, initial_weights, fine_tune)
    label = f"greedy, E={args.epochs} per stage"
    if fine_tune:
        label += f", then F={fine_tune} fine-tuning"
    greedy = {"label": label, "curve": curve, "fit_wall_s": wall}
    # Every row's time is taken at the end of an epoch, as plain Keras' is.
    finals = {}
    if "greedy" in args.rows:
        end = [p for p in curve if p.get("stage", 0) <= depth][-1]  # the last stage's end
        finals["greedy"] = (end["wall_s"], end["sse"])
    if "greedy_fine_tune" in args.rows:
        finals["greedy_fine_tune"] = (curve[-1]["wall_s"], curve[-1]["sse"])
    gc.collect()

    plain = None
    if "plain" in args.rows:
        limits = [(sse, args.budget * wall) for wall, sse in finals.values()]
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
        )
        for row in finals
    ]

    _print_table(rows, plain)
    if plain is not None:
        why = {"reached": "reached every greedy row's error", "budget": "ran out of budget"}
        print(
            f"\nplain Keras: {len(plain['curve'])} epoch(s), {plain['wall_s']:.1f} s of training; "
            f"stopped: {why.get(plain['stopped'], plain['stopped'])} "
            f"(budget {args.budget} x each row's greedy time, at most "
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
            "goal": GOAL,
            "rows": rows,
            "greedy": greedy,
            "plain": plain,
        }
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"# json: {args.json}")


if __name__ == "__main__":
    main()
