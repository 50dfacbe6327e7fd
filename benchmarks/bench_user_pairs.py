"""Users' own pairs: greedy, greedy + fine-tuning and end to end, at equal epochs and wall time.

Issue 31, point 4. Each pair is what a user writes, scored by the task's
own number; each is trained, for every seed, with three modes interleaved
(so they share the machine's conditions):

- `greedy`: `RecursiveTrainer(encoder, decoder)`, `fit(x, epochs=E)`: E
  epochs per stage, the user's own epoch count.
- `greedy+ft`: the same greedy model, then F end-to-end epochs at a tenth
  of the learning rate, as `fit(..., fine_tune_epochs=F)` runs them (here a
  second `fit` of an end-to-end trainer on the same autoencoder, so that
  greedy is trained once; its wall time is greedy's plus the pass's).
- `end_to_end`: `schedule="end_to_end"` from the same initial weights,
  scored at equal epochs (E x levels, greedy's total) and at equal wall
  time: at the first epoch end at or past the wall time greedy took, and
  the wall time greedy + fine-tuning took.

The pairs (`--pairs`):

- `denoise`: keras-io's "Convolutional autoencoder for image denoising" on
  scikit-learn's digits upsampled to 16x16: encoder `GaussianNoise(0.2)`,
  then twice `Conv2D(32, 3, relu) -> MaxPooling2D`, decoder twice
  `Conv2DTranspose(32, 3, strides=2, relu)` and a `Conv2D(1, 3, sigmoid)`;
  trained on the clean digits (input = target), scored by the MSE to the
  clean test digits of the model's output on noisy test digits (noise 0.2,
  clipped to [0, 1]), beside the noisy input's own MSE.
- `anomaly`: TensorFlow's autoencoder anomaly detector on the flat 64-value
  digits: `Dense` 32-16-8 and back to 64 (ReLU, a sigmoid output), loss
  `"mae"`; trained on the training images of one digit, scored by the ROC
  AUC of the reconstruction error (digit = normal, every other digit =
  anomaly) on the test images; the mean over the 10 digits.
- `vae`: `MirroredConvStack(filters=(16, 32, 64), input_shape=(32, 32, 3),
  variational=True, latent_dim=32)` on LFW faces at 32x32, `loss="mse"`;
  scored by the held-out people's MSE, with the spread of 16 generated
  samples (std over samples, mean over values) beside it.
- `paper64`: `MirroredConvStack.paper(input_shape=(64, 64, 3))` on LFW
  faces at 64x64; scored by the held-out people's sum of squared error per
  image (Table 1's metric).

`--recommended` trains the greedy modes with the fix of
`keras_recursive_ae.models.levels.greedy_warnings` that changes the pair:
the ReLU levels of `denoise` and `anomaly` become SELU (the noise warning's
fixes, end to end and fine-tuning, are rows of the table already); end to
end keeps the user's pair as written.

Usage (from the repository root):

```
python benchmarks/bench_user_pairs.py --json user_pairs.json
python benchmarks/bench_user_pairs.py --recommended --json user_pairs_after.json
python benchmarks/bench_user_pairs.py --pairs denoise,anomaly --seeds 1   # a minute
```
"""

import argparse
import json
import os
import pathlib
import sys
import time
import warnings

from bench_common import (
    DEFAULT_LFW,
    comma_separated_names,
    machine,
    positive_float,
    positive_int,
    versions_and_device,
)

PAIRS = ("denoise", "anomaly", "vae", "paper64")
# Per pair: greedy epochs per stage (the user's count) and what the score means.
EPOCHS = {"denoise": 3, "anomaly": 20, "vae": 3, "paper64": 2}
SCORES = {
    "denoise": ("MSE to clean", "lower"),
    "anomaly": ("mean ROC AUC", "higher"),
    "vae": ("held-out MSE", "lower"),
    "paper64": ("held-out SSE/image", "lower"),
}
NOISE = 0.2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", default=",".join(PAIRS), help=f"from {PAIRS} (default: all)")
    parser.add_argument("--seeds", type=positive_int("--seeds"), default=3)
    parser.add_argument(
        "--epochs",
        type=positive_int("--epochs"),
        help="greedy epochs per stage of every pair (default: the pair's own, "
        + ", ".join(f"{p} {e}" for p, e in EPOCHS.items())
        + ")",
    )
    parser.add_argument(
        "--fine-tune-epochs",
        type=positive_int("--fine-tune-epochs"),
        help="epochs of the greedy+ft pass (default: the pair's epochs per stage)",
    )
    parser.add_argument("--data-dir", default=str(DEFAULT_LFW), help="LFW folder or .tgz")
    parser.add_argument(
        "--faces",
        type=positive_int("--faces", 32),
        default=2000,
        help="LFW faces loaded for vae and paper64, a tenth of the people held out",
    )
    parser.add_argument(
        "--digits",
        type=positive_int("--digits", 20),
        default=0,
        help="scikit-learn digits used (default 0: all 1,797)",
    )
    parser.add_argument("--batch-size", type=positive_int("--batch-size"), default=32)
    parser.add_argument(
        "--learning-rate", type=positive_float("--learning-rate"), default=1e-3, help="Adam's"
    )
    parser.add_argument(
        "--recommended",
        action="store_true",
        help="train the greedy modes with the fixes the library's warnings name",
    )
    parser.add_argument("--json", help="write every number here")
    args = parser.parse_args(argv)
    args.pairs = comma_separated_names(parser, "--pairs", args.pairs, PAIRS)
    return args


# ------------------------------------------------------------------ data


def digits(limit=0):
    """`(images (N, 16, 16, 1) in [0, 1], flat (N, 64) in [0, 1], labels)`."""
    import numpy as np
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0).astype("float32")
    labels = data.target
    if limit:
        images, labels = images[:limit], labels[:limit]
    big = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)[..., None]
    return big, images.reshape(len(images), -1), labels


def split(n, seed, test=0.2):
    """Train and test indices, a fifth held out, by `seed`."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * (1 - test)))
    return order[:cut], order[cut:]


def faces(args, image_size):
    """`(x_train, x_test)`: LFW faces split by person (the benchmarks' split, seed 0)."""
    from keras_recursive_ae.datasets.lfw import load_lfw

    splits = load_lfw(
        args.data_dir,
        image_size=image_size,
        max_images=args.faces,
        validation_split=0.0,
        test_split=0.1,
        batch_size=args.batch_size,
        seed=0,
    )
    return splits.numpy("train"), splits.numpy("test")


# ---------------------------------------------------------------- pairs


def denoise_pair(activation="relu", noise_in_encoder=True):
    """keras-io's denoising conv pair at 16x16x1 (decoder innermost level first)."""
    import keras

    layers = keras.layers
    encoder = keras.Sequential(
        [layers.GaussianNoise(NOISE)] * noise_in_encoder
        + [
            layers.Conv2D(32, 3, activation=activation, padding="same"),
            layers.MaxPooling2D(2, padding="same"),
            layers.Conv2D(32, 3, activation=activation, padding="same"),
            layers.MaxPooling2D(2, padding="same"),
        ]
    )
    decoder = keras.Sequential(
        [
            layers.Conv2DTranspose(32, 3, strides=2, activation=activation, padding="same"),
            keras.Sequential(
                [
                    layers.Conv2DTranspose(32, 3, strides=2, activation=activation, padding="same"),
                    layers.Conv2D(1, 3, activation="sigmoid", padding="same"),
                ]
            ),
        ]
    )
    return encoder, decoder


def anomaly_pair(activation="relu"):
    """TensorFlow's anomaly-detection autoencoder, Dense 32-16-8 and back to 64."""
    import keras

    layers = keras.layers
    encoder = keras.Sequential([layers.Dense(n, activation=activation) for n in (32, 16, 8)])
    decoder = keras.Sequential(
        [
            layers.Dense(16, activation=activation),
            layers.Dense(32, activation=activation),
            layers.Dense(64, activation="sigmoid"),
        ]
    )
    return encoder, decoder


# ------------------------------------------------------------ training


def _e2e_snapshots(epochs_target, seconds_targets):
    """A callback that keeps end to end's weights at equal epochs and at equal wall times."""
    import keras

    class Snapshots(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.began = time.perf_counter()
            self.kept = {}

        def on_epoch_end(self, epoch, logs=None):
            wall = time.perf_counter() - self.began
            done = epoch + 1
            if done == epochs_target:
                self.kept["epochs"] = (self.model.get_weights(), done, wall)
            for name, seconds in seconds_targets.items():
                if name not in self.kept and wall >= seconds:
                    self.kept[name] = (self.model.get_weights(), done, wall)
            if len(self.kept) == 1 + len(seconds_targets):
                self.model.stop_training = True

    return Snapshots()


def train_modes(build, x, y, compile_kwargs, epochs, fine_tune_epochs, args, seed):
    """Trains greedy, greedy + fine-tuning and end to end of one pair, in turn.

    `build(recommended)` returns `(trainer_kwargs, encoder_or_stack, decoder)`.
    Yields `(mode, budget, model, seconds, warnings)` for each mode and
    budget, the model holding that mode's weights until the next yield:
    score it before asking for the next.
    """
    import keras

    from keras_recursive_ae import RecursiveTrainer

    def trainer(schedule, recommended):
        keras.utils.set_random_seed(seed)
        kwargs, first, second = build(recommended)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            made = RecursiveTrainer(first, second, schedule=schedule, **kwargs)
        # Each warning by its first clause, e.g. "Encoder levels 1, 2 end in a ReLU".
        return made, [str(w.message).split(", so")[0].split(". ")[0] for w in caught]

    def optimizer(rate):
        return keras.optimizers.Adam(rate)

    greedy, said = trainer("greedy", args.recommended)
    greedy.compile(optimizer=optimizer(args.learning_rate), **compile_kwargs)
    began = time.perf_counter()
    greedy.fit(x, y, epochs=epochs, batch_size=args.batch_size, verbose=0)
    greedy_s = time.perf_counter() - began
    depth = greedy.depth
    yield "greedy", f"{epochs}/stage", greedy.model, greedy_s, said
    # Fine-tuning: the pass `fit(..., fine_tune_epochs=F)` adds, on the same model.
    tuner = RecursiveTrainer(greedy.model, schedule="end_to_end", corruption=greedy.corruption)
    tuner.compile(optimizer=optimizer(args.learning_rate / 10), **compile_kwargs)
    began = time.perf_counter()
    tuner.fit(x, y, epochs=fine_tune_epochs, batch_size=args.batch_size, verbose=0)
    tuned_s = greedy_s + time.perf_counter() - began
    yield "greedy+ft", f"{epochs}/stage + {fine_tune_epochs}", greedy.model, tuned_s, said
    # End to end from the same initial weights as greedy (the same seed, the user's pair).
    e2e, said = trainer("end_to_end", False)
    e2e.compile(optimizer=optimizer(args.learning_rate), **compile_kwargs)
    total = epochs * depth
    snapshots = _e2e_snapshots(total, {"time of greedy": greedy_s, "time of greedy+ft": tuned_s})
    e2e.fit(
        x,
        y,
        epochs=max(total, 1000),
        batch_size=args.batch_size,
        verbose=0,
        callbacks=[snapshots],
    )
    for name, budget in (
        ("epochs", f"{total} epochs (greedy's)"),
        ("time of greedy", "greedy's time"),
        ("time of greedy+ft", "greedy+ft's time"),
    ):
        weights, done, wall = snapshots.kept[name]
        e2e.model.set_weights(weights)
        label = budget if name == "epochs" else f"{budget}: {done} epochs"
        yield "end_to_end", label, e2e.model, wall, said


# ------------------------------------------------------------- scoring


def mse(a, b):
    import numpy as np

    return float(np.mean(np.square(np.asarray(a, "float64") - np.asarray(b, "float64"))))


def predict(model, x, batch=256):
    """`model` on `x` in inference mode, eagerly (no traced function per batch shape)."""
    import keras
    import numpy as np

    return np.concatenate(
        [
            keras.ops.convert_to_numpy(model(x[i : i + batch], training=False))
            for i in range(0, len(x), batch)
        ]
    )


def run_denoise(args, seed, data):
    import numpy as np

    images, _, _ = data
    train, test = split(len(images), seed)
    x_train, x_test = images[train], images[test]
    rng = np.random.default_rng(1000 + seed)
    noisy = np.clip(x_test + rng.normal(0, NOISE, x_test.shape), 0, 1).astype("float32")
    baseline = mse(noisy, x_test)

    def build(recommended):

        activation = "selu" if recommended else "relu"
        return {"input_shape": x_train.shape[1:]}, *denoise_pair(activation)

    for mode, budget, model, seconds, said in train_modes(
        build, x_train, None, {"loss": "mse"}, *_epochs(args, "denoise"), args, seed
    ):
        yield (
            mode,
            budget,
            mse(predict(model, noisy), x_test),
            seconds,
            said,
            {"noisy_input": baseline},
        )


def run_anomaly(args, seed, data):
    import numpy as np
    from sklearn.metrics import roc_auc_score

    _, flat, labels = data
    train, test = split(len(flat), seed)
    rows = {}
    for digit in range(10):
        x = flat[train][labels[train] == digit]
        anomalous = labels[test] != digit

        def build(recommended):
            activation = "selu" if recommended else "relu"
            return {"input_shape": (64,)}, *anomaly_pair(activation)

        for mode, budget, model, seconds, said in train_modes(
            build, x, None, {"loss": "mae"}, *_epochs(args, "anomaly"), args, seed * 10 + digit
        ):
            error = np.mean(np.abs(predict(model, flat[test]) - flat[test]), axis=1)
            key = (mode, budget.split(":")[0])
            rows.setdefault(key, []).append((roc_auc_score(anomalous, error), seconds, said))
    for (mode, budget), found in rows.items():
        aucs, seconds, said = zip(*found)
        yield mode, budget, float(np.mean(aucs)), float(np.sum(seconds)), said[0], {}


def run_vae(args, seed, data):
    import numpy as np

    from keras_recursive_ae import MirroredConvStack

    x_train, x_test = data

    def build(recommended):
        stack = MirroredConvStack(
            filters=(16, 32, 64), input_shape=(32, 32, 3), variational=True, latent_dim=32
        )
        return {}, stack, None

    real = float(np.mean(np.std(x_test[:16], axis=0)))
    for mode, budget, model, seconds, said in train_modes(
        build, x_train, None, {"loss": "mse"}, *_epochs(args, "vae"), args, seed
    ):
        from keras_recursive_ae import generation

        samples = generation.generate(model.decoder, generation.code_prior(model.encoder), 16, seed)
        spread = float(np.mean(np.std(samples, axis=0)))
        yield (
            mode,
            budget,
            mse(predict(model, x_test), x_test),
            seconds,
            said,
            {
                "sample_spread": spread,
                "real_spread": real,
            },
        )


def run_paper64(args, seed, data):
    import numpy as np

    from keras_recursive_ae import MirroredConvStack

    x_train, x_test = data

    def build(recommended):
        return {}, MirroredConvStack.paper(input_shape=(64, 64, 3)), None

    for mode, budget, model, seconds, said in train_modes(
        build, x_train, None, {"loss": "mse"}, *_epochs(args, "paper64"), args, seed
    ):
        rebuilt = predict(model, x_test)
        sse = float(np.mean(np.sum(np.square(rebuilt - x_test), axis=(1, 2, 3))))
        yield mode, budget, sse, seconds, said, {}


RUNS = {"denoise": run_denoise, "anomaly": run_anomaly, "vae": run_vae, "paper64": run_paper64}


def _epochs(args, pair):
    epochs = args.epochs or EPOCHS[pair]
    return epochs, args.fine_tune_epochs or epochs


# --------------------------------------------------------------- report


def summarize(records):
    """One row per (pair, mode, budget): mean, std over seeds, mean seconds."""
    import numpy as np

    grouped = {}
    for record in records:
        key = (record["pair"], record["mode"], record["budget"].split(":")[0])
        grouped.setdefault(key, []).append(record)
    rows = []
    for (pair, mode, budget), found in grouped.items():
        scores = [r["score"] for r in found]
        epochs = sorted({r["budget"].split(": ")[1] for r in found if ": " in r["budget"]})
        extra = {}
        for name in found[0]["extra"]:
            extra[name] = float(np.mean([r["extra"][name] for r in found]))
        rows.append(
            {
                "pair": pair,
                "mode": mode,
                "budget": budget + (f" ({', '.join(epochs)})" if epochs else ""),
                "mean": float(np.mean(scores)),
                "std": float(np.std(scores)),
                "seconds": float(np.mean([r["seconds"] for r in found])),
                "seeds": len(found),
                "extra": extra,
                "warnings": found[0]["warnings"],
            }
        )
    return rows


def markdown(rows):
    lines = [
        "| pair | mode | budget | score | mean ± std | seconds | notes |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for row in rows:
        name, better = SCORES[row["pair"]]
        notes = ", ".join(f"{k} {v:.4g}" for k, v in row["extra"].items())
        if row["warnings"]:
            notes = (notes + "; " if notes else "") + "warned: " + " / ".join(row["warnings"])
        lines.append(
            f"| {row['pair']} | {row['mode']} | {row['budget']} | {name} ({better} is better) "
            f"| {row['mean']:.4f} ± {row['std']:.4f} | {row['seconds']:.1f} | {notes} |"
        )
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    backend, versions, device = versions_and_device()
    print(f"# {machine()}; {backend} on {device}; {json.dumps(versions)}", flush=True)
    data = {}
    if {"denoise", "anomaly"} & set(args.pairs):
        data["denoise"] = data["anomaly"] = digits(args.digits)
    if "vae" in args.pairs:
        data["vae"] = faces(args, 32)
    if "paper64" in args.pairs:
        data["paper64"] = faces(args, 64)
    records = []
    for seed in range(args.seeds):
        for pair in args.pairs:
            for mode, budget, score, seconds, said, extra in RUNS[pair](args, seed, data[pair]):
                record = {
                    "pair": pair,
                    "seed": seed,
                    "mode": mode,
                    "budget": budget,
                    "score": score,
                    "seconds": seconds,
                    "warnings": list(said),
                    "extra": extra,
                }
                records.append(record)
                print(
                    f"# seed {seed} {pair} {mode} [{budget}]: {score:.4f} in {seconds:.1f} s",
                    flush=True,
                )
    rows = summarize(records)
    print()
    print(markdown(rows))
    if args.json:
        payload = {
            "args": vars(args),
            "machine": machine(),
            "versions": versions,
            "device": device,
            "rows": rows,
            "records": records,
        }
        pathlib.Path(args.json).write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
