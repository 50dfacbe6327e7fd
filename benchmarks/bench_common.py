"""What the benchmarks and the studies share: arguments, the LFW split, scoring, the machine.

The one module that several scripts import: `benchmarks/bench_*.py` from
their own folder, `experiments/studies/*.py` after putting this folder on
`sys.path`.
"""

import argparse
import math
import os
import pathlib
import platform
import sys
import time

DEFAULT_LFW = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"
TEST_SPLIT = 0.1
# Held-out faces scored per `predict_on_batch`.
_SCORE_BATCH = 128


def positive_int(option, minimum=1):
    """An argparse type: an integer of at least `minimum`, named `option` in errors."""

    def check(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{option} must be an integer. Received: {option} {text}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{option} must be at least {minimum}. Received: {option} {text}"
            )
        return value

    return check


def positive_float(option):
    """An argparse type: a finite number above 0, named `option` in errors."""

    def check(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{option} must be a number. Received: {option} {text}"
            ) from None
        if not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(
                f"{option} must be a finite number above 0. Received: {option} {text}"
            )
        return value

    return check


def machine():
    """The cores this process may use, the CPU model, the memory and the OS, in a line."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} cores ({cpu}), {memory:.0f} GiB RAM, {platform.system()}"


def versions_and_device():
    """`(backend, versions, device)`: Keras' backend, the versions that matter, its device.

    Imports no other backend than Keras' own: TensorFlow's version is given
    only when it is already imported (under JAX or PyTorch, it need not be).
    """
    import keras
    import numpy as np

    backend = keras.config.backend()
    versions = {"python": platform.python_version(), "keras": keras.__version__}
    versions["numpy"] = np.__version__
    device = "cpu"
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        device = f"{len(gpus)} GPU" if gpus else "cpu"
    elif backend == "jax":
        import jax

        versions["jax"] = jax.__version__
        device = f"{jax.devices()[0].platform} ({jax.devices()[0].device_kind})"
    elif backend == "torch":
        import torch

        versions["torch"] = torch.__version__
        versions["torch_threads"] = torch.get_num_threads()
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return backend, versions, device


def add_training_arguments(parser, json_help="write every number and curve here"):
    """`--batch-size` (32), `--learning-rate` (Adam's, 1e-3), `--seed` (0) and `--json`."""
    parser.add_argument("--batch-size", type=positive_int("--batch-size"), default=32)
    parser.add_argument(
        "--learning-rate",
        type=positive_float("--learning-rate"),
        default=1e-3,
        help="Adam's learning rate, for every run (default: 1e-3, the LFW experiment's)",
    )
    parser.add_argument("--seed", type=positive_int("--seed", 0), default=0)
    parser.add_argument("--json", help=json_help)


def add_lfw_arguments(parser, images, image_size):
    """`--data-dir`, `--images`, `--image-size` and `--test-images`, with these defaults."""
    parser.add_argument("--data-dir", default=str(DEFAULT_LFW), help="LFW folder or .tgz")
    parser.add_argument(
        "--images",
        type=positive_int("--images", 0),
        default=images,
        help=f"LFW faces to load, trained on and held out (0: all 13,233; default: {images})",
    )
    parser.add_argument("--image-size", type=positive_int("--image-size"), default=image_size)
    parser.add_argument(
        "--test-images",
        type=positive_int("--test-images", 0),
        default=0,
        help="held-out faces to score, the first ones (0, the default: all of them)",
    )


def held_out_split(args, validation_split=0.0):
    """The faces of `add_lfw_arguments`, split by person: `(splits, x_test, info)`.

    `load_lfw(..., validation_split, test_split=TEST_SPLIT, seed=args.seed)`:
    the held-out people are the test split, none of whom is trained on (nor
    are the validation people); `x_test` holds the first `--test-images` of
    them as a NumPy array. `validation_split=0.1` with `--test-images 100`
    gives the LFW experiment's split and its 100 test faces (the paper's).
    """
    from keras_recursive_ae.datasets.lfw import load_lfw

    splits = load_lfw(
        args.data_dir,
        image_size=args.image_size,
        max_images=args.images or None,
        validation_split=validation_split,
        test_split=TEST_SPLIT,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    x_test = splits.numpy("test", max_images=args.test_images or None)
    test_paths = splits.paths["test"][: len(x_test)]
    info = {
        "source": splits.source,
        "num_train": splits.num_images["train"],
        "num_test": len(x_test),
        "test_people": len({pathlib.Path(p).parent.name for p in test_paths}),
        "image_shape": list(splits.image_shape),
    }
    return splits, x_test, info


def held_out_sse(model, x_test):
    """Mean over `x_test` of each image's sum of squared error after `model`."""
    import numpy as np

    from keras_recursive_ae.metrics import sum_squared_error

    total = 0.0
    for start in range(0, len(x_test), _SCORE_BATCH):
        images = x_test[start : start + _SCORE_BATCH]
        rebuilt = np.asarray(model.predict_on_batch(images), dtype="float32")
        total += float(np.sum(sum_squared_error(images, rebuilt)))
    return total / len(x_test)


def curve_callback(scored, x_test, label, stop=None):
    """A Keras callback that scores `scored` after every epoch, its time excluded."""
    import keras

    class HeldOutCurve(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.points, self.stop_reason = [], None

        def start(self):
            self.excluded, self.began = 0.0, time.perf_counter()

        def training_seconds(self):
            # Reading the weights back waits for the steps still queued on an
            # accelerator: they count as training, not as scoring.
            for variable in scored.weights:
                keras.ops.convert_to_numpy(variable)
            return time.perf_counter() - self.began - self.excluded

        def on_epoch_end(self, epoch, logs=None):
            wall = self.training_seconds()
            begin = time.perf_counter()
            point = {"epoch": epoch + 1, "wall_s": wall, "sse": held_out_sse(scored, x_test)}
            if logs and "stage" in logs:
                point["stage"] = int(logs["stage"])
            self.points.append(point)
            stage = f" (stage {point['stage']})" if "stage" in point else ""
            print(
                f"# {label} epoch {point['epoch']}{stage}: {wall:.1f} s, "
                f"held-out SSE/image {point['sse']:.2f}",
                flush=True,
            )
            if stop is not None:
                self.stop_reason = stop(self.points)
                if self.stop_reason:
                    self.model.stop_training = True
            self.excluded += time.perf_counter() - begin

    return HeldOutCurve()


def comma_separated_names(parser, option, text, choices):
    """The names of a comma-separated option, in `choices`' order; an argparse error otherwise."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in choices]
    if not names or unknown or len(set(names)) != len(names):
        parser.error(
            f"{option} must be a comma-separated list of distinct names from "
            f"{tuple(choices)}. Received: {option} {text!r}"
        )
    return [n for n in choices if n in names]
