"""Why greedy can lose: where a greedily trained autoencoder's held-out error comes from.

Issue 19, part 4. One process, on real LFW faces split by person as
`bench_time_to_quality.py` splits them (`load_lfw(..., validation_split=0,
test_split=0.1, seed=--seed)`, 4,000 faces at 32x32 by default; the
held-out people are scored, none of whom is trained on).

1. A user's own conv pair (`--filters`, default 32/64/128): every encoder
   level is `Conv2D(f, 3, strides=2, padding="same") -> BatchNormalization
   -> LeakyReLU -> Dropout(--dropout)`; the decoder mirrors it, innermost
   level first, with `Conv2DTranspose(f, 3, strides=2, padding="same") ->
   BatchNormalization -> LeakyReLU -> Dropout`, except level 1, a single
   `Conv2DTranspose(3, 3, strides=2, padding="same", activation="sigmoid")`.
   Variants (`--variants`) drop parts of it: `bn_dropout` (all of it), `bn`
   (no Dropout), `dropout` (no BatchNormalization), `neither`, and
   `bn_encoder_dropout` (BN everywhere, Dropout in the encoder levels only:
   suspect (b) without the decoder's own dropout). Each variant is trained
   greedily, `RecursiveTrainer(encoder, decoder)` with `--greedy-epochs`
   epochs per stage, and end to end (`schedule="end_to_end"`,
   `--end-to-end-epochs`, by default 12: the greedy run's total epochs), both
   from the same initial weights, seed and data order.
2. The library's own network, `MirroredConvStack.paper(input_shape=(32, 32,
   3))` (5 levels, no BN), greedy (`--paper-epochs` per stage) against end to
   end (`--paper-epochs`), from the same initial weights.

Every run: Adam(`--learning-rate`), MSE, batch `--batch-size`, NumPy
arrays. Scores are on the held-out faces, in inference mode: the image MSE
(per value) and the mean over faces of each face's sum of squared error
(SSE/image, Table 1 of the paper), beside the mean training face as a
prediction (the "mean face" baseline).

Diagnostics of every greedy model, with `T_0` the image, `T_k = E_k(T_{k-1})`
(the trained encoder levels, `trainer.autoencoder.encoder_levels`) and
`R_k` the assembled decoder's tensor at level k (`R_n = T_n`,
`R_{k-1} = D_k(R_k)`, `trainer.autoencoder.decoder_levels`):

- truncated at k: the image error of `D_1(...D_k(T_k))`, the autoencoder cut
  after level k, each decoder level fed what it was trained on at its own
  level only at the cut. Truncated at n is the full model.
- per level: `mse(D_k(T_k), T_{k-1})` (exact input, what stage k trained
  on) against `mse(D_k(R_k), T_{k-1})` (the input it gets in the assembled
  model), the mean-tensor error `mse(mean T_{k-1}, T_{k-1})` as the scale of
  level k's space (the held-out images' mean), and the least-squares scale
  `<D_k(T_k), T_{k-1}> / <T_{k-1}, T_{k-1}>` (1 when the level rebuilds its
  target at its size; a decoder level ending in Dropout(p) that regresses
  its target learns about `1 - p`).
- suspect (c), for variants with BN: the full model's error after the
  decoder levels' BatchNormalization moving statistics are re-estimated, one
  layer after the other from the innermost, on the training faces' actual
  inputs to them in the assembled model (`R_k`, not `T_k`).

Usage (from the repository root; the script imports `benchmarks/bench_common.py`):

```
python experiments/studies/greedy_failures.py --json greedy_failures.json
python experiments/studies/greedy_failures.py --images 600 --greedy-epochs 1 \
    --end-to-end-epochs 3 --paper-epochs 1 --variants bn_dropout,neither  # smoke
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
    comma_separated_names,
    held_out_split,
    machine,
    positive_float,
    positive_int,
)

# name: (batch norm, dropout in the encoder levels, dropout in the decoder levels)
VARIANTS = {
    "bn_dropout": (True, True, True),
    "bn": (True, False, False),
    "dropout": (False, True, True),
    "neither": (False, False, False),
    "bn_encoder_dropout": (True, True, False),
}
PARTS = ("user", "paper")
_BATCH = 128


def _filters(parser, text):
    try:
        filters = [int(f) for f in text.split(",")]
    except ValueError:
        filters = []
    if not filters or any(f < 1 for f in filters):
        parser.error(
            "--filters must be comma-separated positive integers, one per level. "
            f"Received: --filters {text!r}"
        )
    return filters


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_lfw_arguments(parser, images=4000, image_size=32)
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"what to run, comma separated, from {PARTS} (default: both)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"the user pair's variants, comma separated, from {tuple(VARIANTS)}",
    )
    parser.add_argument(
        "--filters", default="32,64,128", help="the user pair's filters per level, outermost first"
    )
    parser.add_argument(
        "--dropout", type=positive_float("--dropout"), default=0.2, help="the Dropout rate"
    )
    parser.add_argument(
        "--greedy-epochs",
        type=positive_int("--greedy-epochs"),
        default=4,
        help="the user pair's greedy epochs per stage",
    )
    parser.add_argument(
        "--end-to-end-epochs",
        type=positive_int("--end-to-end-epochs"),
        default=12,
        help="the user pair's end-to-end epochs (default 12: the greedy run's total)",
    )
    parser.add_argument(
        "--paper-epochs",
        type=positive_int("--paper-epochs"),
        default=3,
        help="MirroredConvStack.paper: greedy epochs per stage and end-to-end epochs",
    )
    add_training_arguments(parser, json_help="write every number here")
    args = parser.parse_args(argv)
    args.parts = comma_separated_names(parser, "--parts", args.parts, PARTS)
    args.variants = comma_separated_names(parser, "--variants", args.variants, tuple(VARIANTS))
    args.filters = _filters(parser, args.filters)
    if args.dropout >= 1:
        parser.error(f"--dropout must be below 1. Received: --dropout {args.dropout}")
    return args


# ------------------------------------------------------------ pure logic


def mse(a, b):
    """Mean squared difference of two arrays, as a Python float (float64 sums)."""
    import numpy as np

    return float(np.mean(np.square(np.asarray(a, "float64") - np.asarray(b, "float64"))))


def image_errors(rebuilt, images):
    """`{"mse", "sse"}`: per-value MSE and mean per-image sum of squared error."""
    import numpy as np

    squared = np.square(np.asarray(rebuilt, "float64") - np.asarray(images, "float64"))
    return {
        "mse": float(squared.mean()),
        "sse": float(squared.reshape(len(squared), -1).sum(axis=1).mean()),
    }


def scale(output, target):
    """Least-squares `s` of `output ~ s * target`: `<output, target> / <target, target>`."""
    import numpy as np

    output, target = np.asarray(output, "float64"), np.asarray(target, "float64")
    return float(np.sum(output * target) / np.sum(target * target))


def level_diagnostics(encoder_levels, decoder_levels, images):
    """Truncation and per-level rebuild errors of a symmetric autoencoder.

    Args:
        encoder_levels: `E_1..E_n`, callables from one NumPy array to the next.
        decoder_levels: `D_1..D_n` (outermost first), `D_k` mapping `T_k`'s
            shape back to `T_{k-1}`'s.
        images: the images `T_0`.

    Returns:
        A dict: `truncated`, one `{"level", "mse", "sse"}` per cut level k
        (the image error of `D_1(...D_k(T_k))`, the full model at k = n), and
        `levels`, one dict per level k with `exact_mse` (`D_k(T_k)` against
        `T_{k-1}`), `rebuilt_mse` (`D_k(R_k)` against `T_{k-1}`, `R_k` the
        assembled decoder's tensor), `mean_tensor_mse` (the mean of
        `T_{k-1}` over `images` as the prediction) and `scale` (of
        `D_k(T_k)` against `T_{k-1}`, see `scale`).
    """
    import numpy as np

    depth = len(encoder_levels)
    if len(decoder_levels) != depth:
        raise ValueError(
            "Expected as many decoder levels as encoder levels. Received: "
            f"{depth} encoder and {len(decoder_levels)} decoder levels."
        )
    tensors = [np.asarray(images)]
    for encode in encoder_levels:
        tensors.append(np.asarray(encode(tensors[-1])))
    rebuilt = [None] * depth + [tensors[-1]]  # R_n = T_n
    for k in range(depth, 0, -1):
        rebuilt[k - 1] = np.asarray(decoder_levels[k - 1](rebuilt[k]))

    truncated, levels = [], []
    for k in range(1, depth + 1):
        exact = np.asarray(decoder_levels[k - 1](tensors[k]))  # D_k(T_k)
        image = exact
        for j in range(k - 1, 0, -1):
            image = np.asarray(decoder_levels[j - 1](image))
        truncated.append({"level": k, **image_errors(image, tensors[0])})
        target = tensors[k - 1]
        levels.append(
            {
                "level": k,
                "exact_mse": mse(exact, target),
                "rebuilt_mse": mse(rebuilt[k - 1], target),
                "mean_tensor_mse": mse(target.mean(axis=0, keepdims=True), target),
                "scale": scale(exact, target),
            }
        )
    return {"truncated": truncated, "levels": levels}


def markdown_table(headers, rows):
    """A markdown table: a header row, a rule, then one line per row (cells as given)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _number(value, digits=4):
    return "" if value is None else f"{value:.{digits}f}"


def summary_rows(results, mean_face):
    """Rows of the main table: one per model (greedy and end to end), and the mean face."""
    rows = [["mean training face", "", _number(mean_face["mse"]), _number(mean_face["sse"], 1)]]
    for result in results:
        for schedule in ("greedy", "end_to_end"):
            score = result[schedule]
            rows.append(
                [result["model"], schedule, _number(score["mse"]), _number(score["sse"], 1)]
            )
        if result.get("greedy_bn_recalibrated"):
            score = result["greedy_bn_recalibrated"]
            rows.append(
                [
                    result["model"],
                    "greedy, decoder BN statistics re-estimated on R_k",
                    _number(score["mse"]),
                    _number(score["sse"], 1),
                ]
            )
    return rows


def truncation_rows(results):
    """One row per greedy model: its image MSE truncated at 1..n (blank past its depth)."""
    depth = max(len(r["diagnostics"]["truncated"]) for r in results)
    rows = []
    for result in results:
        cells = [_number(t["mse"]) for t in result["diagnostics"]["truncated"]]
        rows.append([result["model"], *cells, *[""] * (depth - len(cells))])
    return [f"cut at {k}" for k in range(1, depth + 1)], rows


def level_rows(results):
    """One row per greedy model and level: exact against reconstructed input."""
    rows = []
    for result in results:
        for level in result["diagnostics"]["levels"]:
            ratio = level["rebuilt_mse"] / level["exact_mse"] if level["exact_mse"] else None
            rows.append(
                [
                    result["model"],
                    level["level"],
                    _number(level["exact_mse"], 5),
                    _number(level["rebuilt_mse"], 5),
                    "" if ratio is None else f"{ratio:.2f}",
                    _number(level["mean_tensor_mse"], 5),
                    _number(level["scale"], 3),
                ]
            )
    return rows


def report(results, mean_face):
    """The markdown tables, as one string."""
    headers, truncation = truncation_rows(results)
    return "\n\n".join(
        [
            "Held-out error of the assembled models:",
            markdown_table(
                ["model", "schedule", "image MSE", "SSE/image"], summary_rows(results, mean_face)
            ),
            "Greedy models, held-out image MSE of the autoencoder truncated at level k "
            "(E_1..E_k, then D_k..D_1):",
            markdown_table(["model", *headers], truncation),
            "Greedy models, per level: D_k's error on T_{k-1} given the exact T_k "
            "against the assembled decoder's R_k:",
            markdown_table(
                [
                    "model",
                    "level k",
                    "mse(D_k(T_k), T_k-1)",
                    "mse(D_k(R_k), T_k-1)",
                    "ratio",
                    "mean-tensor MSE",
                    "scale of D_k(T_k)",
                ],
                level_rows(results),
            ),
        ]
    )


# ---------------------------------------------------------------- models


def build_user_pair(filters, batch_norm, encoder_dropout, decoder_dropout, rate, channels=3):
    """The user's encoder and decoder (`keras.Sequential`s of one `Sequential` per level).

    The decoder is listed innermost level first, as `RecursiveTrainer`
    takes it by default. Returns `(encoder, decoder, decoder_norms)`, where
    `decoder_norms[k]` is `(Conv2DTranspose, BatchNormalization)` of decoder
    level k + 2 (levels 2..n; level 1 has none) or `None` without BN.
    """
    import keras

    layers = keras.layers

    def tail(batch_norm, dropout):
        parts = [layers.BatchNormalization()] if batch_norm else []
        parts.append(layers.LeakyReLU())
        if dropout:
            parts.append(layers.Dropout(rate))
        return parts

    encoder = keras.Sequential(
        [
            keras.Sequential(
                [
                    layers.Conv2D(f, 3, strides=2, padding="same"),
                    *tail(batch_norm, encoder_dropout),
                ],
                name=f"user_encoder_{k}",
            )
            for k, f in enumerate(filters, 1)
        ],
        name="user_encoder",
    )
    decoder_levels, norms = [], []
    for k in range(len(filters), 1, -1):  # innermost first; level k rebuilds T_{k-1}
        conv = layers.Conv2DTranspose(filters[k - 2], 3, strides=2, padding="same")
        parts = tail(batch_norm, decoder_dropout)
        decoder_levels.append(keras.Sequential([conv, *parts], name=f"user_decoder_{k}"))
        norms.append((conv, parts[0]) if batch_norm else None)
    decoder_levels.append(
        keras.Sequential(
            [layers.Conv2DTranspose(channels, 3, strides=2, padding="same", activation="sigmoid")],
            name="user_decoder_1",
        )
    )
    return encoder, keras.Sequential(decoder_levels, name="user_decoder"), norms[::-1]


def batched(model):
    """`model` as a NumPy function in inference mode, in batches of `_BATCH`."""
    import numpy as np

    def call(x):
        outputs = [
            np.asarray(model.predict_on_batch(x[i : i + _BATCH]), "float32")
            for i in range(0, len(x), _BATCH)
        ]
        return np.concatenate(outputs)

    return call


def _eager(layer, x):
    import keras
    import numpy as np

    return np.concatenate(
        [
            np.asarray(keras.ops.convert_to_numpy(layer(x[i : i + _BATCH])))
            for i in range(0, len(x), _BATCH)
        ]
    )


def recalibrate_decoder_norms(trainer, norms, x):
    """Sets each decoder BN's moving statistics to those of its input in the assembled model.

    From the innermost decoder level out: `R_k` is computed with the levels
    already recalibrated, the level's Conv2DTranspose applied to it, and the
    BN's moving mean and variance set to that output's per-channel mean and
    (biased) variance over `x`. Changes the trainer's weights.
    """
    autoencoder = trainer.autoencoder
    code = batched(autoencoder.encoder)(x)
    for k in range(autoencoder.depth, 1, -1):
        rebuilt = code  # R_n
        for j in range(autoencoder.depth, k, -1):
            rebuilt = batched(autoencoder.decoder_levels[j - 1])(rebuilt)
        conv, norm = norms[k - 2]
        features = _eager(conv, rebuilt).astype("float64")
        axes = tuple(range(features.ndim - 1))
        norm.moving_mean.assign(features.mean(axis=axes).astype("float32"))
        norm.moving_variance.assign(features.var(axis=axes).astype("float32"))


def score(model, x_test):
    return image_errors(batched(model)(x_test), x_test)


def diagnose(trainer, x_test):
    autoencoder = trainer.autoencoder
    return level_diagnostics(
        [batched(m) for m in autoencoder.encoder_levels],
        [batched(m) for m in autoencoder.decoder_levels],
        x_test,
    )


def _train(trainer, x_train, epochs, args):
    import keras

    keras.utils.set_random_seed(args.seed)
    trainer.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss="mse")
    trainer.fit(x_train, epochs=epochs, batch_size=args.batch_size, verbose=0)


def run_user_variant(args, name, x_train, x_test):
    import keras

    from keras_recursive_ae import RecursiveTrainer

    batch_norm, encoder_dropout, decoder_dropout = VARIANTS[name]
    shape = tuple(x_train.shape[1:])

    def trainer_for(schedule):
        keras.utils.set_random_seed(args.seed)
        encoder, decoder, norms = build_user_pair(
            args.filters, batch_norm, encoder_dropout, decoder_dropout, args.dropout, shape[-1]
        )
        return RecursiveTrainer(encoder, decoder, input_shape=shape, schedule=schedule), norms

    greedy, norms = trainer_for("greedy")
    end_to_end, _ = trainer_for("end_to_end")
    end_to_end.model.set_weights(greedy.model.get_weights())
    _train(greedy, x_train, args.greedy_epochs, args)
    result = {
        "model": f"user {name}",
        "variant": name,
        "greedy": score(greedy.model, x_test),
        "diagnostics": diagnose(greedy, x_test),
    }
    if batch_norm:
        recalibrate_decoder_norms(greedy, norms, x_train)
        result["greedy_bn_recalibrated"] = score(greedy.model, x_test)
    _train(end_to_end, x_train, args.end_to_end_epochs, args)
    result["end_to_end"] = score(end_to_end.model, x_test)
    return result


def run_paper(args, x_train, x_test):
    import keras

    from keras_recursive_ae import MirroredConvStack, RecursiveTrainer

    shape = tuple(x_train.shape[1:])
    keras.utils.set_random_seed(args.seed)
    stack = MirroredConvStack.paper(input_shape=shape)
    initial = stack.get_weights()
    greedy = RecursiveTrainer(stack)
    _train(greedy, x_train, args.paper_epochs, args)
    result = {
        "model": "MirroredConvStack.paper",
        "variant": "paper",
        "greedy": score(greedy.model, x_test),
        "diagnostics": diagnose(greedy, x_test),
    }
    stack = MirroredConvStack.paper(input_shape=shape)
    stack.set_weights(initial)
    end_to_end = RecursiveTrainer(stack, schedule="end_to_end")
    _train(end_to_end, x_train, args.paper_epochs, args)
    result["end_to_end"] = score(end_to_end.model, x_test)
    return result


def load_data(args):
    """`(x_train, x_test, info)`: NumPy arrays of the train and held-out faces."""
    splits, x_test, info = held_out_split(args)
    x_train = splits.numpy("train")
    return x_train, x_test, info


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    x_train, x_test, info = load_data(args)
    print(f"# {machine()}; data: {json.dumps(info)}", flush=True)
    mean_face = image_errors(
        np.broadcast_to(x_train.mean(axis=0, dtype="float64"), x_test.shape), x_test
    )
    results = []
    if "user" in args.parts:
        for name in args.variants:
            results.append(run_user_variant(args, name, x_train, x_test))
            print(f"# done: user {name}", flush=True)
    if "paper" in args.parts:
        results.append(run_paper(args, x_train, x_test))
        print("# done: MirroredConvStack.paper", flush=True)
    print()
    print(report(results, mean_face))
    if args.json:
        payload = {"args": vars(args), "data": info, "mean_face": mean_face, "results": results}
        pathlib.Path(args.json).write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
