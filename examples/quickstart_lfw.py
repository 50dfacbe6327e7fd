"""Recursive training of a mirrored conv autoencoder on real LFW faces.

A short run of the library's main loop: load faces split by person, build
the paper's network at that size with `MirroredConvStack.paper` (kernel 5
then 3, stride 2, SELU, filters doubling from 16, down to a 1x1 code),
train it one level at a time with `RecursiveTrainer`, then score the
assembled model on held-out people with the paper's metric (per-image sum
of squared error) and save it.

    python examples/quickstart_lfw.py --data-dir ../shared/data/lfw

Without `--data-dir` it uses the 100 LFW faces that scikit-image ships.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np

# Before TensorFlow loads: 3 also hides the "failed call to cuInit" error
# that TensorFlow logs on every machine without a GPU.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_recursive_ae import MirroredConvStack, RecursiveTrainer  # noqa: E402
from keras_recursive_ae.datasets.lfw import load_lfw  # noqa: E402
from keras_recursive_ae.metrics import sum_squared_error  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="LFW folder or .tgz archive")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--max-images", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per stage")
    parser.add_argument("--normalization", choices=["none", "batch", "shared"], default="none")
    parser.add_argument("--output-dir", default="outputs/quickstart")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    faces = load_lfw(
        args.data_dir,
        image_size=args.image_size,
        max_images=args.max_images,
        batch_size=32,
        seed=args.seed,
    )
    print(f"Faces: {faces}")
    # The paper's network scaled to the image size, down to a 1x1 code.
    stack = MirroredConvStack.paper(
        input_shape=faces.image_shape,
        normalization=None if args.normalization == "none" else args.normalization,
    )
    depth = len(stack.filters)
    test_images = faces.numpy("test", max_images=100)
    before = sum_squared_error(test_images, stack.predict(test_images, verbose=0))

    trainer = RecursiveTrainer(stack)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    start = time.perf_counter()
    history = trainer.fit(
        faces.train, epochs=args.epochs, validation_data=faces.validation, verbose=2
    )
    seconds = time.perf_counter() - start
    after = sum_squared_error(test_images, trainer.model.predict(test_images, verbose=0))

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    trainer.model.save(output_dir / "autoencoder.keras")
    print(f"Trained {depth} stages x {args.epochs} epochs in {seconds:.0f} s.")
    print(f"Stage of each epoch: {history.history['stage']}")
    print(
        f"Test reconstruction error (sum of squared error per image, mean over "
        f"{len(test_images)} held-out faces): {np.mean(before):.1f} before, "
        f"{np.mean(after):.1f} after training."
    )
    print(f"Saved the autoencoder to {output_dir / 'autoencoder.keras'}")


if __name__ == "__main__":
    main()
