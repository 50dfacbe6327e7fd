"""Fine-tuning after greedy training: held-out error per epoch, by learning rate.

One process, on real LFW faces (all 13,233 by default, 128x128, split by
person as `bench_time_to_quality.py` splits them): the paper's network
(`MirroredConvStack.paper`, `--normalization` none or batch) is trained
greedily, E epochs per stage, with Adam(`--learning-rate`). Then, from that
same greedy state each time, the fine-tuning pass of the library
(`trainer.fit(..., epochs=0, fine_tune_epochs=F)`, everything unfrozen) runs
once per learning rate in `--fine-tune-rates`, with
`compile(fine_tune_optimizer=Adam(rate))`; `default` stands for no
`fine_tune_optimizer` (the library's default). After greedy training and
after every fine-tuning epoch the held-out faces are scored: the mean over
them of each image's sum of squared error (Table 1 of the paper). Wall
times count training only (scoring excluded), as in
`bench_time_to_quality.py`.

`--seeds N` repeats all of it with model seeds `--seed` to `--seed + N - 1`
(initial weights and data order) on the split of `--seed`, and summarises
each rate and epoch as mean ± sample std (min-max) over the seeds.
`--split experiment` holds out validation people too, as the LFW experiment
(`python -m experiments.lfw`) does: with `--test-images 100` its test faces
are the experiment's 100 (the paper's), so the numbers compare with its
`recursive_fine_tune` runs.

Usage (from the repository root; the script imports `benchmarks/bench_common.py`):

```
python experiments/studies/fine_tuning.py --json ft.json                       # all faces
python experiments/studies/fine_tuning.py --images 512 --image-size 32 --epochs 1   # smoke
python experiments/studies/fine_tuning.py --normalization batch --fine-tune-rates 1e-4 \\
    --fine-tune-epochs 10 --plot ft.png                                     # a long curve
python experiments/studies/fine_tuning.py --split experiment --test-images 100 --seeds 3 \\
    --fine-tune-rates default,3e-5 --fine-tune-epochs 6 --json ft_seeds.json \\
    --plot ft_seeds.png --goal 150                          # the paper's 100 faces, 3 seeds
```
"""

import argparse
import json
import os
import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
# The module the benchmarks and the studies share, benchmarks/bench_common.py,
# and the LFW experiment's `experiments.lfw.seeds` (imported in `main`).
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "benchmarks")]

from bench_common import (  # noqa: E402
    add_lfw_arguments,
    add_training_arguments,
    curve_callback,
    held_out_split,
    machine,
    positive_int,
)

NORMALIZATIONS = ("none", "batch", "shared")
SPLITS = {"benchmark": 0.0, "experiment": 0.1}
"""`--split`: the share of people held out for validation (never trained on)."""


def parse_rates(text):
    """`"1e-3,default"` -> `[0.001, "default"]`; raises ValueError otherwise."""
    rates = []
    for item in text.split(","):
        item = item.strip()
        if item == "default":
            rates.append(item)
            continue
        try:
            rate = float(item)
        except ValueError:
            rate = -1.0
        if not rate > 0:
            raise ValueError(
                "--fine-tune-rates must be positive numbers or 'default', comma "
                f"separated. Received: --fine-tune-rates {text!r}"
            )
        rates.append(rate)
    return rates


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_lfw_arguments(parser, images=0, image_size=128)
    parser.add_argument("--epochs", type=positive_int("--epochs"), default=3)
    parser.add_argument("--fine-tune-epochs", type=positive_int("--fine-tune-epochs"), default=2)
    parser.add_argument(
        "--fine-tune-rates",
        default="1e-3,3e-4,1e-4,3e-5",
        help="Adam learning rates of the fine-tuning pass, or 'default' (comma separated)",
    )
    parser.add_argument("--normalization", choices=NORMALIZATIONS, default="none")
    parser.add_argument(
        "--split",
        choices=tuple(SPLITS),
        default="benchmark",
        help="benchmark: a tenth of the people held out, the rest trained on (as "
        "bench_time_to_quality.py); experiment: a tenth held out and a tenth for "
        "validation, as python -m experiments.lfw (default: benchmark)",
    )
    parser.add_argument(
        "--seeds",
        type=positive_int("--seeds"),
        default=1,
        help="model seeds --seed to --seed + N - 1 on the split of --seed (default: 1)",
    )
    add_training_arguments(parser)
    parser.add_argument("--plot", help="write a PNG of held-out error against training time")
    parser.add_argument(
        "--goal", type=float, help="with --plot, a dashed line at this held-out SSE per image"
    )
    args = parser.parse_args(argv)
    try:
        args.fine_tune_rates = parse_rates(args.fine_tune_rates)
    except ValueError as error:
        parser.error(str(error))
    return args


def build_trainer(args, image_shape, fine_tune_rate=None):
    import keras

    from keras_recursive_ae import MirroredConvStack, RecursiveTrainer

    normalization = None if args.normalization == "none" else args.normalization
    stack = MirroredConvStack.paper(
        input_shape=tuple(image_shape), base_filters=16, normalization=normalization
    )
    trainer = RecursiveTrainer(stack)
    fine_tune = None
    if fine_tune_rate not in (None, "default"):
        fine_tune = keras.optimizers.Adam(fine_tune_rate)
    trainer.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss="mse",
        fine_tune_optimizer=fine_tune,
    )
    return trainer


def train_seed(args, data, seed):
    """Greedy training with model seed `seed`, then each rate's fine-tuning from it."""
    import keras

    image_shape = data["info"]["image_shape"]
    keras.utils.set_random_seed(seed)
    trainer = build_trainer(args, image_shape)
    curve = curve_callback(trainer.model, data["x_test"], f"seed {seed} greedy")
    curve.start()
    trainer.fit(data["train"], epochs=args.epochs, verbose=0, callbacks=[curve])
    greedy = {"wall_s": curve.training_seconds(), "sse": curve.points[-1]["sse"]}
    greedy_weights = trainer.model.get_weights()
    rates = []
    for rate in args.fine_tune_rates:
        keras.utils.set_random_seed(seed)
        tuned = build_trainer(args, image_shape, rate)
        tuned.model.set_weights(greedy_weights)
        curve = curve_callback(tuned.model, data["x_test"], f"seed {seed} fine-tune {rate}")
        curve.start()
        tuned.fit(
            data["train"],
            epochs=0,
            fine_tune_epochs=args.fine_tune_epochs,
            verbose=0,
            callbacks=[curve],
        )
        rates.append({"rate": rate, "curve": curve.points})
    return {"seed": seed, "greedy": greedy, "rates": rates}


def rate_errors(seeds, index):
    """`errors[s, e]`: seed `s`'s held-out SSE after fine-tuning epoch `e + 1` at rate `index`."""
    import numpy as np

    return np.array([[p["sse"] for p in run["rates"][index]["curve"]] for run in seeds])


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    from experiments.lfw.seeds import format_spread, spread

    splits, x_test, info = held_out_split(args, validation_split=SPLITS[args.split])
    data = {"train": splits.train, "x_test": x_test, "info": info}
    print(f"# {machine()}; data: {json.dumps(data['info'])}", flush=True)
    seeds = [train_seed(args, data, args.seed + s) for s in range(args.seeds)]
    results = {"args": dict(vars(args)), "data": info, "seeds": seeds}

    greedy = [run["greedy"]["sse"] for run in seeds]
    print(
        f"\ngreedy, {args.epochs} epochs per stage, seeds {args.seed}-"
        f"{args.seed + args.seeds - 1}: {format_spread(spread(greedy), 2)} SSE/image"
    )
    print(
        "| fine-tuning Adam rate | "
        + " | ".join(f"epoch {e}" for e in range(1, args.fine_tune_epochs + 1))
        + " | best / greedy |"
    )
    print("|---" * (args.fine_tune_epochs + 2) + "|")
    for index, rate in enumerate(args.fine_tune_rates):
        errors = rate_errors(seeds, index)
        cells = " | ".join(format_spread(spread(epoch), 2) for epoch in errors.T)
        best = errors.mean(axis=0).min() / np.mean(greedy)
        print(f"| {rate} | {cells} | {best:.3f} |")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
    if args.plot:
        plot(args.plot, seeds, args.goal)
    return 0


def plot(path, seeds, goal=None):
    """Held-out error against training time per rate: mean over seeds, min-max shaded."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    greedy = np.array([run["greedy"]["sse"] for run in seeds])
    for index, rate in enumerate(seeds[0]["rates"]):
        # Per seed: greedy's point, then one point per fine-tuning epoch.
        errors = np.column_stack([greedy, rate_errors(seeds, index)])
        walls = []
        for run in seeds:
            start = run["greedy"]["wall_s"]
            walls.append([start] + [start + p["wall_s"] for p in run["rates"][index]["curve"]])
        walls = np.mean(walls, axis=0)
        line = axes.plot(
            walls, errors.mean(axis=0), marker="o", label=f"fine-tuning at {rate['rate']}"
        )
        if len(seeds) > 1:
            axes.fill_between(
                walls, errors.min(axis=0), errors.max(axis=0), color=line[0].get_color(), alpha=0.2
            )
    axes.axhline(greedy.mean(), color="grey", linestyle=":", label="greedy alone")
    if goal is not None:
        axes.axhline(goal, color="black", linestyle="--", label=f"goal: {goal:g}")
    axes.set_xlabel("training wall time (s), greedy then fine-tuning")
    axes.set_ylabel("held-out SSE per image")
    if len(seeds) > 1:
        axes.set_title(f"mean over {len(seeds)} seeds, min-max shaded")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"# wrote {path}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
