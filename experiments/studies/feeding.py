"""How fast `fit` reads a cached stage input, by the way it is handed over.

A greedy stage trains on a tensor held in memory (`T_{k-1}`). This script
trains the stage models of `MirroredConvStack.paper()` on such a tensor,
handed to Keras' `fit` in each of the ways the trainer could use, and prints
the wall time per step of each, beside the floor: the same train step in a
bare `tf.function` loop over slices of a tensor, with no input pipeline.

- `array`: the NumPy array, `fit(x, batch_size=32, shuffle=True)`: Keras'
  array pipeline (on TensorFlow it copies the array into a tensor and
  gathers each batch from it).
- `pydataset`: `SeededBatches`, the trainer's seeded order, as a
  `keras.utils.PyDataset` (a Python generator per batch).
- `tf_dataset`: the same batches through `stage_inputs.as_tf_dataset`
  (a `tf.data` pipeline calling it with `tf.numpy_function`), what the
  trainer hands to `fit` on TensorFlow.
- `tf_gather`: the same batches gathered by TensorFlow itself, with no
  Python per batch: the array converted to one tensor, and a `tf.data`
  pipeline mapping batch `i` to `tf.gather` of its rows.
- `bare_loop`: the floor described above.

Each variant trains a fresh stage model for `--epochs` epochs over
`--images` random rows of the stage's input shape; rounds interleave the
variants, so a burst of load from elsewhere hits them all alike, and the
fastest round of each is kept. TensorFlow only.

Usage (from the repository root):

```
python experiments/studies/feeding.py                   # stages 1, 4 and 7
python experiments/studies/feeding.py --levels 1 --rounds 3
```
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["KERAS_BACKEND"] = "tensorflow"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
# This checkout's library, and the module the benchmarks and the studies
# share, benchmarks/bench_common.py.
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "benchmarks")]

from bench_common import machine, versions_and_device  # noqa: E402

VARIANTS = ("bare_loop", "array", "pydataset", "tf_dataset", "tf_gather")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 7])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_recursive_ae import MirroredConvStack
    from keras_recursive_ae.trainers.seeded_batches import SeededBatches, as_tf_dataset
    from keras_recursive_ae.trainers.stage_models import StageModel

    print(f"# feeding {time.strftime('%Y-%m-%d %H:%M %Z')}")
    _, versions, _ = versions_and_device()
    print(f"# machine: {machine()}; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"# command: {' '.join(['python'] + sys.argv)}")
    keras.utils.set_random_seed(0)
    stack = MirroredConvStack.paper(input_shape=(args.image_size,) * 2 + (3,))
    batch = args.batch_size
    steps = args.epochs * -(-args.images // batch)

    def stage_model(level):
        model = StageModel(stack.encoder_levels[level - 1], stack.decoder_levels[level - 1])
        model.compile(optimizer="adam", loss="mse")
        return model

    def bare_loop(level, x):
        model = stage_model(level)
        model.build((None,) + x.shape[1:])
        variables = model.trainable_variables
        model.optimizer.build(variables)

        @tf.function
        def step(rows):
            with tf.GradientTape() as tape:
                loss = model.compute_loss(rows, y_pred=model(rows, training=True))
            model.optimizer.apply(tape.gradient(loss, variables), variables)
            return loss

        tensor = tf.constant(x)
        step(tensor[:batch])  # traced here, not timed
        start = time.perf_counter()
        for _ in range(args.epochs):
            for first in range(0, len(x), batch):
                loss = step(tensor[first : first + batch])
        float(loss)
        return time.perf_counter() - start

    def gathered(batches, x):
        # The same rows as `batches`: row numbers read through the same order.
        numbers = SeededBatches(
            np.arange(len(x)),
            batches.batch_size,
            batches.seed,
            batches.shuffle,
            batches.first_epoch,
            batches.epochs,
        )
        # SeededBatches hands out floatx: the row numbers back as integers.
        rows = tf.ragged.constant([numbers[i].astype("int64") for i in range(len(numbers))])
        tensor = tf.convert_to_tensor(x)
        options = tf.data.Options()
        options.autotune.enabled = False  # as `as_tf_dataset`
        dataset = tf.data.Dataset.range(len(numbers)).map(lambda i: tf.gather(tensor, rows[i]))
        return dataset.prefetch(2).with_options(options)

    def with_fit(level, x, variant):
        model = stage_model(level)
        start = time.perf_counter()
        if variant == "array":
            model.fit(x, batch_size=batch, epochs=args.epochs, shuffle=True, verbose=0)
        else:
            seeded = SeededBatches(
                x, batch, seed=[0, level], shuffle=True, first_epoch=0, epochs=args.epochs
            )
            per_epoch, data = seeded.steps_per_epoch, seeded
            if variant == "tf_dataset":
                data = as_tf_dataset(seeded)  # reads `seeded`, which stays referenced here
            elif variant == "tf_gather":
                data = gathered(seeded, x)
            model.fit(data, epochs=args.epochs, steps_per_epoch=per_epoch, shuffle=False, verbose=0)
        return time.perf_counter() - start

    print()
    print(
        "| stage | input | "
        + " | ".join(f"{v} ms/step" for v in VARIANTS)
        + " | array / tf_dataset |"
    )
    print("|---|---|" + "---:|" * (len(VARIANTS) + 1))
    for level in args.levels:
        shape = stack.shapes[level - 1]
        x = np.random.default_rng(level).random((args.images,) + tuple(shape), dtype="float32")
        best = dict.fromkeys(VARIANTS, float("inf"))
        for _ in range(args.rounds):
            for variant in VARIANTS:
                seconds = (
                    bare_loop(level, x) if variant == "bare_loop" else with_fit(level, x, variant)
                )
                best[variant] = min(best[variant], seconds / steps * 1000)
        cells = " | ".join(f"{best[v]:.1f}" for v in VARIANTS)
        print(
            f"| {level} | {tuple(shape)} | {cells} | {best['array'] / best['tf_dataset']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
