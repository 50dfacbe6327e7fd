"""Joint training's level weighting against end to end: held-out error per epoch.

One process, on real LFW faces split by person as
`bench_time_to_quality.py` splits them: the paper's network
(`MirroredConvStack.paper` at `--image-size`, `--normalization`) is trained
with `schedule="end_to_end"` and then with `schedule="joint"` under each
weighting in `--weightings` (`default`: no `level_weights`, the library's
default; `equal`: `[1.0] * depth`; or explicit weights, outermost first,
separated by colons: `7:1:1:1:1:1:1`), every run from the same initial
weights and seed, Adam(`--learning-rate`), MSE, `--epochs` epochs. All runs
read one `load_lfw` pipeline, which reshuffles every time it is read: each
run gets the orders after those read before it (end to end the first ones;
the default weighting reads one batch before training), so the runs differ
in data order too, and a run's numbers depend on the runs and `--epochs`
before it. The held-out faces are scored after every epoch (the mean over
them of each image's sum of squared error, Table 1 of the paper); wall
times count training only. The variance of each inner encoder tensor
`T_1..T_{n-1}` on the first `VARIANCE_IMAGES` held-out faces is reported
before training and after each run: the default weighting's ceiling is
there because they shrink.

Usage (from the repository root; the script imports `benchmarks/bench_common.py`):

```
python experiments/studies/joint_weights.py --image-size 32 --images 4000 --epochs 3
python experiments/studies/joint_weights.py --image-size 128 --images 4000 --epochs 3
python experiments/studies/joint_weights.py --weightings default,5:1:1:1:1   # image weighted up
```
"""

import argparse
import json
import os
import pathlib
import sys

# The module the benchmarks and the studies share: benchmarks/bench_common.py.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_common import (  # noqa: E402
    add_lfw_arguments,
    add_training_arguments,
    curve_callback,
    held_out_split,
    held_out_sse,
    machine,
    positive_int,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_lfw_arguments(parser, images=4000, image_size=32)
    parser.add_argument("--epochs", type=positive_int("--epochs"), default=3)
    parser.add_argument(
        "--normalization",
        choices=["none", "batch", "shared"],
        default="none",
        help="the paper network's normalization (MirroredConvStack's argument; default: none)",
    )
    parser.add_argument(
        "--weightings",
        default="default,equal",
        help="joint runs, comma separated: 'default' (no level_weights), 'equal' (ones) "
        "or explicit level_weights separated by colons, outermost first (e.g. 5:1:1:1:1)",
    )
    add_training_arguments(parser)
    args = parser.parse_args(argv)
    args.weightings = [w.strip() for w in args.weightings.split(",") if w.strip()]
    if not args.weightings or not all(map(_is_weighting, args.weightings)):
        parser.error(
            "--weightings must name 'default', 'equal' or colon-separated "
            "non-negative numbers, comma separated. "
            f"Received: --weightings {','.join(args.weightings)!r}"
        )
    return args


def _is_weighting(name):
    if name in ("default", "equal"):
        return True
    try:
        return all(float(w) >= 0 for w in name.split(":"))
    except ValueError:
        return False


def level_weights(weighting, depth):
    """The `level_weights` argument a `--weightings` entry stands for."""
    if weighting == "default":
        return None
    if weighting == "equal":
        return [1.0] * depth
    return [float(w) for w in weighting.split(":")]


VARIANCE_IMAGES = 256


def level_variances(stack, images):
    """The variance of each inner encoder tensor `T_1 .. T_{n-1}` on `images`."""
    tensors = stack.level_tensors_model().predict(images[:VARIANCE_IMAGES], verbose=0)
    return [float(t.var()) for t in tensors[stack.depth :]]


def paper_network(args, data):
    from keras_recursive_ae import MirroredConvStack

    normalization = None if args.normalization == "none" else args.normalization
    shape = tuple(data["info"]["image_shape"])
    return MirroredConvStack.paper(input_shape=shape, normalization=normalization)


def run(args, data, initial_weights, weighting):
    """Trains one schedule from `initial_weights`; returns its curve."""
    import keras

    from keras_recursive_ae import RecursiveTrainer

    keras.utils.set_random_seed(args.seed)
    stack = paper_network(args, data)
    stack.set_weights(initial_weights)
    if weighting is None:
        trainer = RecursiveTrainer(stack, schedule="end_to_end")
    else:
        weights = level_weights(weighting, stack.depth)
        trainer = RecursiveTrainer(stack, schedule="joint", level_weights=weights)
    trainer.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss="mse")
    label = "end_to_end" if weighting is None else f"joint {weighting}"
    curve = curve_callback(trainer.model, data["x_test"], label)
    curve.start()
    trainer.fit(data["train"], epochs=args.epochs, verbose=0, callbacks=[curve])
    variances = level_variances(stack, data["x_test"])
    return {"run": label, "curve": curve.points, "variances": variances}


def main(argv=None):
    args = parse_args(argv)
    import keras

    splits, x_test, info = held_out_split(args)
    data = {"train": splits.train, "x_test": x_test, "info": info}
    print(f"# {machine()}; data: {json.dumps(data['info'])}", flush=True)
    keras.utils.set_random_seed(args.seed)
    stack = paper_network(args, data)
    initial_weights = stack.get_weights()
    initial_sse = held_out_sse(stack, data["x_test"])
    initial_variances = level_variances(stack, data["x_test"])
    runs = [run(args, data, initial_weights, w) for w in [None, *args.weightings]]

    print(f"\ninitial weights: {initial_sse:.2f} SSE/image")
    print("| run | " + " | ".join(f"epoch {e}" for e in range(1, args.epochs + 1)) + " |")
    print("|---" * (args.epochs + 1) + "|")
    for row in runs:
        print(f"| {row['run']} | " + " | ".join(f"{p['sse']:.2f}" for p in row["curve"]) + " |")
    print("\nvariance of T_1 .. T_{n-1} on the held-out faces")
    for label, variances in [("initial weights", initial_variances)] + [
        (row["run"], row["variances"]) for row in runs
    ]:
        print(f"| {label} | " + " | ".join(f"{v:.3g}" for v in variances) + " |")
    if args.json:
        results = {
            "args": vars(args),
            "initial_sse": initial_sse,
            "initial_variances": initial_variances,
            "runs": runs,
        }
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
