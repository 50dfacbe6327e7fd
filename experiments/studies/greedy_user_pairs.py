"""Why greedy loses on users' own pairs: the denoising conv pair and the ReLU anomaly detector.

Issue 31, point 4: the checks behind the warnings of
`keras_recursive_ae.models.levels.greedy_warnings`. The pairs and their
scores are `benchmarks/bench_user_pairs.py`'s (`denoise`, `anomaly`); each
variant is trained greedily, E epochs per stage, from the same seed.

- `anomaly`: the Dense 32-16-8 detector with each activation of
  `--activations` in every level but the output (and with ReLU at twice
  the epochs per stage: too few steps per stage?). Per variant: the mean
  ROC AUC over the 10 one-digit trainings; for the inner tensors `T_1..T_n`
  of the normal test digits the fraction of zeros and of dead units (zero
  for every test digit); the AUC and the normal digits' MAE of the
  autoencoder cut after level k (`D_1(..D_k(E_k(..E_1(x))))`), k = 1..n:
  how the error grows level by level (compounding through frozen decoders).
- `denoise`: keras-io's conv pair, trained on clean digits: with
  `GaussianNoise(0.2)` in its encoder (as written), with the noise moved to
  `RecursiveTrainer(corruption=GaussianNoise(0.2))`, and each of these with
  SELU instead of ReLU; MSE to the clean test digits from noisy ones, for
  the full model and cut after level 1, and the fraction of zeros of `T_1`.

Usage (from the repository root):

```
python experiments/studies/greedy_user_pairs.py --json greedy_user_pairs.json
```
"""

import argparse
import json
import os
import pathlib
import sys
import time
import warnings

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_common import machine, positive_int  # noqa: E402
from bench_user_pairs import (  # noqa: E402
    NOISE,
    anomaly_pair,
    denoise_pair,
    digits,
    mse,
    predict,
    split,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="anomaly,denoise")
    parser.add_argument("--activations", default="relu,leaky_relu,elu,selu,tanh")
    parser.add_argument("--anomaly-epochs", type=positive_int("--anomaly-epochs"), default=20)
    parser.add_argument("--denoise-epochs", type=positive_int("--denoise-epochs"), default=3)
    parser.add_argument("--digits-per-run", type=positive_int("--digits-per-run"), default=10)
    parser.add_argument("--seed", type=positive_int("--seed", 0), default=0)
    parser.add_argument("--json")
    return parser.parse_args(argv)


def _trainer(encoder, decoder, shape, **kwargs):
    from keras_recursive_ae import RecursiveTrainer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RecursiveTrainer(encoder, decoder, input_shape=shape, **kwargs)


def tensors(autoencoder, x):
    """`[T_0..T_n]` of `x`, and the cut models' outputs `D_1(..D_k(T_k))` for k = 1..n."""
    found = [x]
    for level in autoencoder.encoder_levels:
        found.append(predict(level, found[-1]))
    cut = []
    for k in range(1, autoencoder.depth + 1):
        image = found[k]
        for j in range(k, 0, -1):
            image = predict(autoencoder.decoder_levels[j - 1], image)
        cut.append(image)
    return found, cut


def image_space_greedy(autoencoder, x, loss, epochs, batch_size=32):
    """Greedy stages whose loss is in image space: stage k trains `E_k`, `D_k` inside
    `D_1(..D_k(E_k(..E_1(x))))` against `x`, the other levels frozen (a candidate,
    not the library's greedy). Returns the wall time."""
    import keras

    began = time.perf_counter()
    for k in range(1, autoencoder.depth + 1):
        outer = autoencoder.encoder_levels[: k - 1] + autoencoder.decoder_levels[: k - 1]
        for level in outer:
            level.trainable = False
        inputs = keras.Input(autoencoder.shapes[0])
        tensor = inputs
        for level in autoencoder.encoder_levels[:k]:
            tensor = level(tensor)
        for level in autoencoder.decoder_levels[:k][::-1]:
            tensor = level(tensor)
        model = keras.Model(inputs, tensor)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
        model.fit(x, x, epochs=epochs, batch_size=batch_size, verbose=0)
        for level in outer:
            level.trainable = True
    return time.perf_counter() - began


def anomaly(args, data):
    import keras
    import numpy as np
    from sklearn.metrics import roc_auc_score

    _, flat, labels = data
    train, test = split(len(flat), args.seed)
    variants = [(a, args.anomaly_epochs, False) for a in args.activations.split(",")]
    variants.append(("relu", 2 * args.anomaly_epochs, False))
    variants.append(("relu", args.anomaly_epochs, True))
    results = []
    for activation, epochs, image_space in variants:
        per_digit = []
        for digit in range(args.digits_per_run):
            keras.utils.set_random_seed(args.seed * 10 + digit)
            trainer = _trainer(*anomaly_pair(activation), (64,))
            trainer.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae")
            x = flat[train][labels[train] == digit]
            if image_space:
                image_space_greedy(trainer.autoencoder, x, "mae", epochs)
            else:
                trainer.fit(x, epochs=epochs, verbose=0)
            anomalous = labels[test] != digit
            found, cut = tensors(trainer.autoencoder, flat[test])
            normal = found[0][~anomalous]
            per_digit.append(
                {
                    "cut_auc": [
                        roc_auc_score(anomalous, np.abs(c - found[0]).mean(axis=1)) for c in cut
                    ],
                    "cut_normal_mae": [float(np.abs(c[~anomalous] - normal).mean()) for c in cut],
                    "zeros": [float(np.mean(t[~anomalous] == 0)) for t in found[1:]],
                    "dead": [float(np.mean(np.all(t == 0, axis=0))) for t in found[1:]],
                    "std": [float(np.std(t[~anomalous])) for t in found],
                }
            )
        summary = {
            key: np.mean([d[key] for d in per_digit], axis=0).round(4).tolist()
            for key in per_digit[0]
        }
        result = {"activation": activation, "epochs": epochs, "image_space": image_space}
        results.append({**result, **summary})
        print(f"# anomaly {json.dumps(result)}: {json.dumps(summary)}", flush=True)
    return results


def denoise(args, data):
    import keras
    import numpy as np

    images, _, _ = data
    train, test = split(len(images), args.seed)
    x_train, x_test = images[train], images[test]
    rng = np.random.default_rng(1000 + args.seed)
    noisy = np.clip(x_test + rng.normal(0, NOISE, x_test.shape), 0, 1).astype("float32")
    results = []
    variants = [
        (a, w, False, args.denoise_epochs)
        for a in ("relu", "selu")
        for w in ("encoder", "corruption")
    ]
    variants += [("relu", "encoder", True, args.denoise_epochs), ("relu", "encoder", False, 10)]
    for activation, where, image_space, epochs in variants:
        keras.utils.set_random_seed(args.seed)
        encoder, decoder = denoise_pair(activation, noise_in_encoder=where == "encoder")
        kwargs = {}
        if where == "corruption":
            kwargs["corruption"] = keras.layers.GaussianNoise(NOISE, seed=args.seed)
        trainer = _trainer(encoder, decoder, x_train.shape[1:], **kwargs)
        trainer.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        began = time.perf_counter()
        if image_space:
            image_space_greedy(trainer.autoencoder, x_train, "mse", epochs)
        else:
            trainer.fit(x_train, epochs=epochs, batch_size=32, verbose=0)
        seconds = time.perf_counter() - began
        found, cut = tensors(trainer.autoencoder, noisy)
        result = {
            "activation": activation,
            "noise": where,
            "image_space": image_space,
            "epochs": epochs,
            "seconds": seconds,
            "cut_mse_to_clean": [mse(c, x_test) for c in cut],
            "zeros": [float(np.mean(t == 0)) for t in found[1:]],
            "noisy_input": mse(noisy, x_test),
        }
        results.append(result)
        print(f"# denoise {json.dumps(result)}", flush=True)
    return results


def main(argv=None):
    args = parse_args(argv)
    print(f"# {machine()}", flush=True)
    data = digits()
    parts = args.parts.split(",")
    payload = {"args": vars(args)}
    if "anomaly" in parts:
        payload["anomaly"] = anomaly(args, data)
    if "denoise" in parts:
        payload["denoise"] = denoise(args, data)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
