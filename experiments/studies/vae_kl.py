"""The greedy VAE's innermost stage, by KL weight: does it settle, and how well does it rebuild?

One process, on real LFW faces (all 13,233 by default, 128x128, split by
person as `bench_time_to_quality.py` splits them): the LFW runner's
`recursive_vae` network (the paper's network, SELU, no normalization, a
`VariationalBottleneck` at the innermost level) has its outer levels
trained greedily once, E epochs per stage, with Adam(`--learning-rate`).
Then, from those same outer levels and the same initial innermost level
each time, the innermost (variational) stage alone is trained for E epochs
through the library (`trainer.fit(..., epochs=[0, ..., 0, E])`) once per
KL weight, given as a multiple of one over the number of values of
`T_{n-1}` (`--kl-scales`; 1 is the ELBO's balance with `"mse"`, 0.01 the
runner's default `GREEDY_KL_SCALE`). For each it reports the stage's loss
per epoch, its largest batch loss after the first epoch (a divergence shows
there), and the held-out faces' sum of squared error per image after every
epoch, beside the same error when the outer decoders rebuild the exact
`T_{n-1}` (the best the innermost level could do).

Usage (from the repository root; the script imports `benchmarks/bench_common.py`):

```
python experiments/studies/vae_kl.py --json vae_kl.json                      # all faces
python experiments/studies/vae_kl.py --images 512 --image-size 32 --epochs 1   # smoke
```
"""

import argparse
import json
import os
import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
# The LFW runner (`experiments.lfw`), and the module the benchmarks and the
# studies share, benchmarks/bench_common.py.
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "benchmarks")]

from bench_common import (  # noqa: E402
    add_lfw_arguments,
    add_training_arguments,
    curve_callback,
    held_out_split,
    machine,
    positive_int,
)


def parse_scales(text):
    """`"1,0.1"` -> `[1.0, 0.1]`; raises ValueError unless every one is a number >= 0."""
    scales = []
    for item in text.split(","):
        try:
            scale = float(item)
        except ValueError:
            scale = -1.0
        if not scale >= 0 or scale == float("inf"):
            raise ValueError(
                "--kl-scales must be finite numbers of at least 0, comma separated. "
                f"Received: --kl-scales {text!r}"
            )
        scales.append(scale)
    return scales


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_lfw_arguments(parser, images=0, image_size=128)
    parser.add_argument("--epochs", type=positive_int("--epochs"), default=3)
    parser.add_argument(
        "--kl-scales",
        default="1,0.1,0.01,0",
        help="KL weights, times the number of values of T_{n-1} (comma separated)",
    )
    add_training_arguments(parser)
    args = parser.parse_args(argv)
    try:
        args.kl_scales = parse_scales(args.kl_scales)
    except ValueError as error:
        parser.error(str(error))
    return args


def build_trainer(args, image_shape, kl_scale):
    import math

    import keras

    from experiments.lfw import CONFIGURATIONS, build_autoencoder
    from keras_recursive_ae import RecursiveTrainer

    keras.utils.set_random_seed(args.seed)
    configuration = CONFIGURATIONS["recursive_vae"]
    rebuilt = build_autoencoder(CONFIGURATIONS["recursive"], image_shape).shapes[-2]
    stack = build_autoencoder(configuration, image_shape, kl_weight=kl_scale / math.prod(rebuilt))
    trainer = RecursiveTrainer(stack)
    trainer.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss="mse")
    return trainer, stack.kl_weight


def batch_losses():
    import keras

    class BatchLosses(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append([])

        def on_train_batch_end(self, batch, logs=None):
            self.epochs[-1].append(float(logs["loss"]))

    return BatchLosses()


def exact_code_sse(autoencoder, x_test):
    """Held-out SSE per image when the outer decoders rebuild the exact `T_{n-1}`."""
    import numpy as np

    codes = autoencoder.encoder_prefix(autoencoder.depth - 1).predict(x_test, verbose=0)
    for decoder in reversed(autoencoder.decoder_levels[:-1]):
        codes = decoder.predict(codes, verbose=0)
    return float(np.mean(np.sum(np.square(codes - x_test), axis=(1, 2, 3))))


def main(argv=None):
    args = parse_args(argv)
    splits, x_test, info = held_out_split(args)
    print(f"# {machine()}; data: {json.dumps(info)}", flush=True)
    image_shape = tuple(info["image_shape"])

    outer, _ = build_trainer(args, image_shape, 1.0)
    depth = outer.autoencoder.depth
    outer.fit(splits.train, epochs=[args.epochs] * (depth - 1) + [0], verbose=0)
    outer_levels = [
        (encoder.get_weights(), decoder.get_weights())
        for encoder, decoder in zip(
            outer.autoencoder.encoder_levels[:-1], outer.autoencoder.decoder_levels[:-1]
        )
    ]
    exact = exact_code_sse(outer.autoencoder, x_test)
    results = {"args": vars(args), "info": info, "exact_code_sse": exact, "scales": []}
    print(
        f"# outer levels trained; held-out SSE/image through the exact T_{depth - 1}: {exact:.2f}"
    )

    for scale in args.kl_scales:
        trainer, kl_weight = build_trainer(args, image_shape, scale)
        levels = zip(trainer.autoencoder.encoder_levels, trainer.autoencoder.decoder_levels)
        for (encoder, decoder), (encoder_weights, decoder_weights) in zip(levels, outer_levels):
            encoder.set_weights(encoder_weights)
            decoder.set_weights(decoder_weights)
        curve = curve_callback(trainer.model, x_test, f"KL scale {scale}")
        batches = batch_losses()
        curve.start()
        history = trainer.fit(
            splits.train,
            epochs=[0] * (depth - 1) + [args.epochs],
            verbose=0,
            callbacks=[curve, batches],
        )
        later = [loss for epoch in batches.epochs[1:] for loss in epoch]
        results["scales"].append(
            {
                "scale": scale,
                "kl_weight": kl_weight,
                "stage_loss": history.history["loss"],
                "max_batch_loss_after_epoch_1": max(later) if later else None,
                "curve": curve.points,
            }
        )

    print(f"\nheld-out SSE/image through the exact T_{depth - 1}: {exact:.2f}")
    print(
        "| KL weight x values of T_{n-1} | stage loss per epoch | largest batch loss "
        "after epoch 1 | held-out SSE/image per epoch |"
    )
    print("|---:|---|---:|---|")
    for row in results["scales"]:
        losses = ", ".join(f"{v:.4f}" for v in row["stage_loss"])
        largest = row["max_batch_loss_after_epoch_1"]
        errors = ", ".join(f"{p['sse']:.1f}" for p in row["curve"])
        largest = "-" if largest is None else f"{largest:.3f}"
        print(f"| {row['scale']:g} | {losses} | {largest} | {errors} |")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
