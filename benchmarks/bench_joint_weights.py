"""Joint training's level weighting against end to end: held-out error per epoch.

One process, on real LFW faces split by person as `bench_time_to_quality.py`
splits them: the paper's network (`MirroredConvStack.paper` at
`--image-size`) is trained with `schedule="end_to_end"` and then with
`schedule="joint"` under each weighting in `--weightings` (`default`: no
`level_weights`, the library's default; `equal`: `[1.0] * depth`, the
default before), every run from the same initial weights, seed and data
order, Adam(`--learning-rate`), MSE, `--epochs` epochs. The held-out faces
are scored after every epoch (the mean over them of each image's sum of
squared error, Table 1 of the paper); wall times count training only.

Usage (from the repository root):

```
python benchmarks/bench_joint_weights.py --image-size 32 --images 4000 --epochs 3
python benchmarks/bench_joint_weights.py --image-size 128 --images 4000 --epochs 3
```
"""

import argparse
import json
import os
import pathlib
import sys

import bench_time_to_quality as ttq
from bench_common import (
    add_lfw_arguments,
    add_training_arguments,
    held_out_split,
    machine,
    positive_int,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_lfw_arguments(parser, images=4000, image_size=32)
    parser.add_argument("--epochs", type=positive_int("--epochs"), default=3)
    parser.add_argument(
        "--weightings",
        default="default,equal",
        help="joint runs, comma separated: 'default' (no level_weights) or 'equal' (ones)",
    )
    add_training_arguments(parser)
    args = parser.parse_args(argv)
    args.weightings = [w.strip() for w in args.weightings.split(",") if w.strip()]
    if not args.weightings or set(args.weightings) - {"default", "equal"}:
        parser.error(
            "--weightings must name 'default' or 'equal', comma separated. "
            f"Received: --weightings {','.join(args.weightings)!r}"
        )
    return args


def run(args, data, initial_weights, weighting):
    """Trains one schedule from `initial_weights`; returns its curve."""
    import keras

    from keras_recursive_ae import MirroredConvStack, RecursiveTrainer

    keras.utils.set_random_seed(args.seed)
    stack = MirroredConvStack.paper(input_shape=tuple(data["info"]["image_shape"]))
    stack.set_weights(initial_weights)
    if weighting is None:
        trainer = RecursiveTrainer(stack, schedule="end_to_end")
    else:
        weights = [1.0] * stack.depth if weighting == "equal" else None
        trainer = RecursiveTrainer(stack, schedule="joint", level_weights=weights)
    trainer.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss="mse")
    label = "end_to_end" if weighting is None else f"joint {weighting}"
    curve = ttq.curve_callback(trainer.model, data["x_test"], label)
    curve.start()
    trainer.fit(data["train"], epochs=args.epochs, verbose=0, callbacks=[curve])
    return {"run": label, "curve": curve.points}


def main(argv=None):
    args = parse_args(argv)
    import keras

    from keras_recursive_ae import MirroredConvStack

    splits, x_test, info = held_out_split(args)
    data = {"train": splits.train, "x_test": x_test, "info": info}
    print(f"# {machine()}; data: {json.dumps(data['info'])}", flush=True)
    keras.utils.set_random_seed(args.seed)
    stack = MirroredConvStack.paper(input_shape=tuple(data["info"]["image_shape"]))
    initial_weights = stack.get_weights()
    initial_sse = ttq.held_out_sse(stack.model, data["x_test"])
    runs = [run(args, data, initial_weights, w) for w in [None, *args.weightings]]

    print(f"\ninitial weights: {initial_sse:.2f} SSE/image")
    print("| run | " + " | ".join(f"epoch {e}" for e in range(1, args.epochs + 1)) + " |")
    print("|---" * (args.epochs + 1) + "|")
    for row in runs:
        print(f"| {row['run']} | " + " | ".join(f"{p['sse']:.2f}" for p in row["curve"]) + " |")
    if args.json:
        results = {"args": vars(args), "initial_sse": initial_sse, "runs": runs}
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
