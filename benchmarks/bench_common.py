"""What the benchmark scripts share: arguments, the LFW split and the machine."""

import argparse
import math
import os
import pathlib
import platform

DEFAULT_LFW = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"
TEST_SPLIT = 0.1


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


def held_out_split(args):
    """The faces of `add_lfw_arguments`, split by person: `(splits, x_test, info)`.

    `load_lfw(..., validation_split=0, test_split=TEST_SPLIT, seed=args.seed)`:
    the held-out people are the test split, none of whom is trained on;
    `x_test` holds the first `--test-images` of them as a NumPy array.
    """
    from keras_recursive_ae.datasets.lfw import load_lfw

    splits = load_lfw(
        args.data_dir,
        image_size=args.image_size,
        max_images=args.images or None,
        validation_split=0.0,
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
