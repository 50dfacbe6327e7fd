"""The command line: `python -m experiments.lfw`."""

import argparse
import shlex
import sys
from pathlib import Path

from experiments.lfw.configurations import (
    CONFIGURATION_GROUPS,
    CONFIGURATIONS,
    select_configurations,
)
from experiments.lfw.figures import FIGURE_FACES
from experiments.lfw.report import merge_results
from experiments.lfw.run import MIXED_PRECISION, ExperimentConfig, run_experiment
from experiments.lfw.samples import DENSITY_COMPONENTS, SAMPLES
from experiments.lfw.tensorboard_logs import prepare_tensorboard_dir
from experiments.lfw.training import equal_time_order

MODULE_COMMAND = "python -m experiments.lfw"


def build_parser(prog=MODULE_COMMAND):
    """The command line of the experiment.

    Args:
        prog: The program's name in `--help`. Defaults to
            `python -m experiments.lfw`.

    Returns:
        An `argparse.ArgumentParser`.

    Example:

    >>> from experiments.lfw import build_parser
    >>> args = build_parser().parse_args(["--configs", "paper", "--epochs", "5"])
    >>> args.configs, args.epochs, args.image_size, args.max_images
    (['paper'], 5, None, 4000)
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Train the configurations of 'Recursively Trained Autoencoders' "
            "(Ray & Hannon, 2022) on LFW with the same budget, score them on "
            "held-out people, and write results.json, results.md and figures."
        ),
        epilog=(
            "Configurations: "
            + ", ".join(CONFIGURATIONS)
            + ". Groups: "
            + "; ".join(_group_words(g) for g in CONFIGURATION_GROUPS)
            + ". The defaults (32x32 faces, 4,000 images, 3 epochs per weight, all twelve "
            "configurations) take about 5 minutes on 2 CPU cores."
        ),
    )
    parser.add_argument(
        "--data-dir",
        help="LFW folder (<Person>/<Person>_NNNN.jpg) or .tgz archive; without "
        "it (and without --download), scikit-image's 100 LFW faces",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="download the deep-funneled LFW when --data-dir is not given",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="side of the square images (default: 32; 25 for scikit-image's faces; the paper: 128)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=3,
        help="budget: epochs per stage (greedy) or in all (end to end, joint) (default: 3)",
    )
    parser.add_argument(
        "--fine-tune-epochs",
        type=int,
        default=None,
        help="end-to-end epochs of recursive_fine_tune after its stages (default: --epochs)",
    )
    parser.add_argument(
        "--max-images",
        type=int,
        default=4000,
        help="LFW images to use in all, whole people in a seeded "
        "order; 0 for all 13,233 (default: 4000)",
    )
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["all"],
        help="configuration or group names, space or comma separated "
        "(default: all). Groups: "
        + "; ".join(_group_words(g) for g in CONFIGURATION_GROUPS if g != "all"),
    )
    parser.add_argument(
        "--output-dir",
        default="outputs/lfw_faces",
        help="where to write results and figures (default: outputs/lfw_faces)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the split and of every model's initial weights (default: 0)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="train each configuration N times, with model seeds --seed to --seed + N - 1 "
        "(weights, data order, samples) on the split of --seed; results give each seed's "
        "scores and their mean ± std (min-max); figures show the first seed (default: 1)",
    )
    parser.add_argument(
        "--equal-time",
        action="store_true",
        help="train each end-to-end configuration (stacked*, stacked_vae) not for --epochs "
        "but until its wall time reaches that of its greedy partner (stacked: recursive, "
        "stacked_bn: recursive_bn, ...; same seed, must be selected too), stopping at the "
        "end of the first epoch at or past it",
    )
    parser.add_argument(
        "--test-images",
        type=int,
        default=100,
        help="held-out images to score (default: 100, as the paper)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="(default: 32)")
    parser.add_argument(
        "--learning-rate", type=float, default=1e-3, help="Adam's learning rate (default: 1e-3)"
    )
    parser.add_argument(
        "--base-filters",
        type=int,
        default=16,
        help="filters of level 1, doubling per level (default: 16)",
    )
    parser.add_argument(
        "--depth", type=int, default=None, help="levels (default: down to a 1x1 code, at most 7)"
    )
    parser.add_argument(
        "--shared-bn-decoder-statistics",
        choices=["encoder", "batch"],
        default="encoder",
        help="SharedBatchNorm decoder_statistics for the shared-BN "
        "configurations; 'batch' is the paper's plain Keras "
        "behaviour (default: encoder)",
    )
    parser.add_argument(
        "--latent-dim",
        type=int,
        default=None,
        help="code size of the VAEs (default: the size of the plain models' innermost code)",
    )
    parser.add_argument(
        "--kl-weight",
        type=float,
        default=None,
        help="KL weight of the VAEs (default: one over the number of values of "
        "the image end to end; greedy, a hundredth over the number of values of T_{n-1})",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="DIR",
        help="train nothing: merge the results of earlier runs "
        "(sittings with the same flags but different --configs) "
        "into --output-dir",
    )
    parser.add_argument(
        "--figure-faces",
        type=int,
        default=FIGURE_FACES,
        help="test faces in the reconstruction figure and samples per "
        "configuration in samples.png (default: 8); with --merge, at most what the runs kept",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=SAMPLES,
        help="images each configuration generates (VAEs from N(0, I), the others from a "
        "Gaussian mixture fitted to their training codes) and is scored on: distance "
        f"to the nearest training face and sharpness (default: {SAMPLES})",
    )
    parser.add_argument(
        "--density-components",
        type=int,
        default=DENSITY_COMPONENTS,
        help="Gaussians in the mixture fitted to a deterministic configuration's "
        f"training codes, at most the training faces (default: {DENSITY_COMPONENTS})",
    )
    parser.add_argument(
        "--save-models",
        action="store_true",
        help="save each trained model as <output-dir>/<name>.keras (and a deterministic "
        "one's fitted code density as <name>_density.npz); with --seeds, later seeds' "
        "as <name>_seed<s>.keras",
    )
    parser.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="also write TensorBoard logs, one run folder per configuration "
        "(DIR/<name>): Keras' curves (epoch_loss, epoch_stage, ...; epochs "
        "numbered across stages) and a ReconstructionLogger on the first "
        "--figure-faces test faces; view with: tensorboard --logdir DIR "
        "(needs the tensorboard package)",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=MIXED_PRECISION,
        default="off",
        help="Keras' global dtype policy for the models: mixed_bfloat16 or "
        "mixed_float16 compute in 16 bits and keep float32 variables, batch-norm "
        "statistics and KL terms (default: off, float32)",
    )
    parser.add_argument(
        "--verbose",
        choices=["auto", "0", "1", "2"],
        default="auto",
        help="Keras progress: 1 bars, 2 one line per epoch, 0 silent "
        "(default: auto, bars on a terminal, lines otherwise)",
    )
    return parser


def main(argv=None, prog=None):
    """Runs the experiment from command-line arguments; returns the exit code.

    Args:
        argv: Optional list of arguments. Defaults to `None` (`sys.argv`).
        prog: How the program was called, for `--help` and the command
            recorded in the results. Defaults to `None` (the name it was
            called by, e.g. `lfw_faces.py`).
    """
    if prog is None:
        prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else MODULE_COMMAND
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    else:
        verbose = int(args.verbose)
    try:
        selected = select_configurations(args.configs)
        if args.equal_time:
            equal_time_order(selected)
    except ValueError as e:
        parser.error(str(e))
    for flag in (
        "image_size",
        "epochs",
        "test_images",
        "batch_size",
        "base_filters",
        "depth",
        "latent_dim",
        "figure_faces",
        "samples",
        "density_components",
        "seeds",
    ):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1. Received: {value}")
    for flag in ("max_images", "fine_tune_epochs", "kl_weight"):
        value = getattr(args, flag)
        if value is not None and value < 0:
            parser.error(f"--{flag.replace('_', '-')} must not be negative. Received: {value}")
    if args.data_dir is not None and not Path(args.data_dir).expanduser().exists():
        parser.error(f"--data-dir does not exist: {args.data_dir}")
    if args.tensorboard is not None:
        if args.merge:
            parser.error("--tensorboard logs training; --merge trains nothing")
        try:
            prepare_tensorboard_dir(args.tensorboard)
        except (ImportError, ValueError) as e:
            parser.error(str(e))
    raw = sys.argv[1:] if argv is None else list(argv)
    command = " ".join([prog, *map(shlex.quote, raw)])
    if args.merge:
        try:
            merge_results(
                args.merge, args.output_dir, command=command, figure_faces=args.figure_faces
            )
        except (OSError, ValueError) as e:
            parser.error(f"--merge: {e}")
        print(f"Merged {len(args.merge)} runs into {Path(args.output_dir).resolve()}.")
        return 0
    run_experiment(config_from_args(args), verbose=verbose, command=command)
    return 0


def config_from_args(args):
    """The `ExperimentConfig` of parsed command-line arguments (`--max-images 0`: all).

    Example:

    >>> from experiments.lfw import build_parser, config_from_args
    >>> args = build_parser().parse_args(["--configs", "map", "--max-images", "0"])
    >>> config = config_from_args(args)
    >>> config.configs, config.max_images, config.epochs
    (('map',), None, 3)
    """
    return ExperimentConfig(
        data_dir=args.data_dir,
        output_dir=args.output_dir,
        image_size=args.image_size,
        epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        max_images=args.max_images or None,
        configs=tuple(args.configs),
        seed=args.seed,
        seeds=args.seeds,
        equal_time=args.equal_time,
        test_images=args.test_images,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        base_filters=args.base_filters,
        depth=args.depth,
        decoder_statistics=args.shared_bn_decoder_statistics,
        latent_dim=args.latent_dim,
        kl_weight=args.kl_weight,
        download=args.download,
        save_models=args.save_models,
        figure_faces=args.figure_faces,
        samples=args.samples,
        density_components=args.density_components,
        tensorboard_dir=args.tensorboard,
        mixed_precision=args.mixed_precision,
    )


def _group_words(group):
    """E.g. `"vae = stacked_vae, recursive_vae"`; `all` by its count."""
    members = CONFIGURATION_GROUPS[group]
    if group == "all":
        return f"all = the {len(members)} configurations"
    return f"{group} = {', '.join(members)}"
