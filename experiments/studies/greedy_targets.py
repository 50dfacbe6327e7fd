"""What greedy stage k should learn from `fit(x, y)`: three choices, measured against end to end.

Issue 31, point 1. With inputs `x` (noisy digits) and targets `y` (clean
ones), greedy stage 1 maps `x` to `y`; for the inner stages k > 1 there is
a choice, here each made with the public API only (E epochs per stage):

- `A` (the library's): stage k maps `T_{k-1}(x)` to `T_{k-1}(y)`, both
  through the frozen outer encoders: `fit(x, y, epochs=E)`.
- `B`: only stage 1 sees the targets; the inner stages autoencode the
  noisy inputs' tensors: `fit(x, y, epochs=[E, 0])`, then
  `fit(x, epochs=[0, E])` (a second `fit` keeps the trained outer levels;
  a level with 0 epochs is skipped).
- `C`: the inner stages autoencode the clean targets' tensors:
  `fit(x, y, epochs=[E, 0])`, then `fit(y, epochs=[0, E])`.
- `end_to_end`: `schedule="end_to_end"`, greedy's total epochs (E x 2),
  from the same initial weights: the reference.

The pair is keras-io's denoising conv pair (`benchmarks/bench_user_pairs.py`'s
`denoise`) without its `GaussianNoise` layer, since the noise is in the
data: ReLU as written, and SELU in every level but the sigmoid output (the
docs' fix for greedy's ReLU warning). The data are scikit-learn's 1,797
digits at 16x16, a fifth held out by the seed, with keras-io's noise
(`clip(x + 0.4 * N(0, 1), 0, 1)`), drawn once per seed for training and test
images. Adam (1e-3), MSE, batch 32. Score: the MSE between the model's output
on the noisy test digits and the clean test digits (lower is better): mean ±
std over the seeds, and in how many seeds a variant is below A. Beside it:
the noisy input's own MSE, level 1 alone (`D_1(E_1(x))`, the same model in
A, B and C: what the inner stages add to it) and the training's wall time.

Usage (from the repository root):

```
python experiments/studies/greedy_targets.py --json greedy_targets.json
```
"""

import argparse
import json
import os
import pathlib
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_common import machine, positive_int, versions_and_device  # noqa: E402
from bench_user_pairs import denoise_pair, digits, mse, predict, split  # noqa: E402

NOISE_FACTOR = 0.4  # keras-io's "Convolutional autoencoder for image denoising"
VARIANTS = ("A", "B", "C", "end_to_end")
COLUMNS = ("mse", "level_1_mse", "seconds")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=positive_int("--seeds"), default=3, help="seeds 0..N-1")
    parser.add_argument("--epochs", type=positive_int("--epochs"), default=3, help="per stage")
    parser.add_argument("--activations", default="relu,selu", help="of the pair's inner levels")
    parser.add_argument(
        "--digits", type=positive_int("--digits", 20), default=0, help="digits used (0: all 1,797)"
    )
    parser.add_argument("--json", help="write every number here")
    return parser.parse_args(argv)


def noisy(images, rng):
    return np.clip(images + NOISE_FACTOR * rng.normal(0.0, 1.0, images.shape), 0.0, 1.0).astype(
        "float32"
    )


def train(variant, activation, seed, x, y, epochs):
    """Trains one variant from the seed's initial weights; returns `(trainer, seconds)`."""
    import keras

    from keras_recursive_ae import RecursiveTrainer

    keras.utils.set_random_seed(seed)
    encoder, decoder = denoise_pair(activation, noise_in_encoder=False)
    schedule = "end_to_end" if variant == "end_to_end" else "greedy"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # greedy's ReLU and small-input warnings
        trainer = RecursiveTrainer(encoder, decoder, schedule=schedule, input_shape=x.shape[1:])
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    depth = trainer.depth
    inner = [0] + [epochs] * (depth - 1)
    fits = {
        "A": [(x, y, epochs)],
        "B": [(x, y, [epochs] + [0] * (depth - 1)), (x, None, inner)],
        "C": [(x, y, [epochs] + [0] * (depth - 1)), (y, None, inner)],
        "end_to_end": [(x, y, epochs * depth)],
    }[variant]
    began = time.perf_counter()
    for inputs, targets, count in fits:
        trainer.fit(inputs, targets, epochs=count, batch_size=32, verbose=0)
    seconds = time.perf_counter() - began
    budget = f"{epochs * depth} epochs" if variant == "end_to_end" else f"{epochs}/stage"
    return trainer, budget, seconds


def run(args):
    images, _, _ = digits(args.digits)
    records = []
    for seed in range(args.seeds):
        train_idx, test_idx = split(len(images), seed)
        clean_train, clean_test = images[train_idx], images[test_idx]
        rng = np.random.default_rng(seed)
        noisy_train, noisy_test = noisy(clean_train, rng), noisy(clean_test, rng)
        for activation in args.activations.split(","):
            for variant in VARIANTS:
                trainer, budget, seconds = train(
                    variant, activation, seed, noisy_train, clean_train, args.epochs
                )
                autoencoder = trainer.autoencoder
                level_1 = predict(autoencoder.encoder_levels[0], noisy_test)
                record = {
                    "seed": seed,
                    "activation": activation,
                    "variant": variant,
                    "budget": budget,
                    "mse": mse(predict(trainer.model, noisy_test), clean_test),
                    "level_1_mse": mse(predict(autoencoder.decoder_levels[0], level_1), clean_test),
                    "noisy_input_mse": mse(noisy_test, clean_test),
                    "seconds": seconds,
                }
                records.append(record)
                print(f"# {json.dumps(record)}", flush=True)
    return records


def markdown(records):
    """Mean ± std over seeds; "below A": the seeds where a variant's MSE is below A's."""
    lines = [
        "| inner levels | variant | budget | MSE to clean | below A | level 1 alone | seconds |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for activation in dict.fromkeys(r["activation"] for r in records):
        of = {
            v: [r for r in records if (r["activation"], r["variant"]) == (activation, v)]
            for v in VARIANTS
        }
        for variant, found in of.items():
            score, cut, seconds = (np.array([r[k] for r in found]) for k in COLUMNS)
            below = sum(r["mse"] < a["mse"] for r, a in zip(found, of["A"]))
            # End to end's D_1 is not trained to invert E_1: its cut model means nothing.
            cut_text = "-" if variant == "end_to_end" else f"{cut.mean():.4f} ± {cut.std():.4f}"
            lines.append(
                f"| {activation} | {variant} | {found[0]['budget']} "
                f"| {score.mean():.4f} ± {score.std():.4f} "
                f"| {'-' if variant == 'A' else f'{below}/{len(found)}'} "
                f"| {cut_text} | {seconds.mean():.1f} |"
            )
    noisy_mse = np.mean([r["noisy_input_mse"] for r in records])
    lines.append(f"\nThe noisy test input itself: MSE {noisy_mse:.4f} to the clean digits.")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    backend, versions, device = versions_and_device()
    print(f"# {machine()}; {backend} on {device}; {json.dumps(versions)}", flush=True)
    records = run(args)
    print()
    print(markdown(records))
    if args.json:
        payload = {"args": vars(args), "machine": machine(), "versions": versions}
        pathlib.Path(args.json).write_text(json.dumps({**payload, "records": records}, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
