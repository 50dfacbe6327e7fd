"""The LFW reference experiment: the paper's configurations, measured.

Trains the configurations of Ray & Hannon, "Recursively Trained
Autoencoders" (2022) on Labeled Faces in the Wild with the same budget,
scores every one on the same held-out faces (people held out by name) with
the four metrics of `keras_recursive_ae.metrics`, and writes:

- `results.json` and `results.md`: per configuration, the mean per-image sum
  of squared error (the paper's Table 1 metric), PSNR, SSIM and sharpness
  ratio on the test faces, the training time and the epochs of each stage,
  with the command, date, machine and load of the run;
- `reconstructions.png`: the same test faces rebuilt by every configuration
  (the paper's Figure 6);
- `vae_samples.png`: images decoded from N(0, I) codes by the variational
  configurations (the paper's Figure 4), when any ran;
- `training_curves.png`: training and validation loss per epoch, one panel
  per configuration, stages shaded;
- `figure_arrays.npz`: the pixels the figures show (8-bit), kept so that
  `--merge` can draw them again.

Too many configurations for one sitting? Run them in groups with the same
flags into separate folders, then join them with
`--merge DIR [DIR ...] --output-dir OUT` (see `merge_results`).

Run it from the installed package, or through `examples/lfw_faces.py`:

    python -m keras_recursive_ae.lfw_faces --data-dir path/to/lfw
    keras-recursive-ae-lfw --data-dir path/to/lfw --configs paper

With no `--data-dir` (and no `--download`) it falls back to the 100 LFW
faces that scikit-image ships (25x25 grey) and says so.

**Configurations** (`--configs`, names or groups; see `CONFIGURATIONS`):
the paper's eight (`stacked` = trained end to end, `recursive` = trained
greedily one level at a time; each with no normalization, standard batch
norm, shared batch norm, and shared batch norm with ReLU), its two
variational autoencoders, and two schedules beyond the paper: `joint` (one
model, a reconstruction loss at every decoder level) and
`recursive_fine_tune` (greedy, then end-to-end fine-tuning).

**Budget.** `--epochs E` is the number of passes over the training images
that every weight is trained for: a greedy run trains each stage (level)
for `E` epochs, an end-to-end or joint run trains the whole model for `E`
epochs. This is the paper's comparison at equal epochs. A greedy stage
epoch costs less than an end-to-end epoch (it runs one level on cached
inputs), so train times differ and are reported. `recursive_fine_tune` is
the one configuration with a larger budget: `E` epochs per stage, then
`--fine-tune-epochs` (default `E`) end-to-end epochs, i.e. the stacked
budget on top of a greedy start.

**Architecture.** The paper's, scaled to the image size: `depth` levels of
stride-2 "same" convolutions (kernel 5 at level 1, 3 elsewhere, filters
doubling from `--base-filters`, SELU unless the configuration says ReLU),
mirrored by `Conv2DTranspose` levels ending in a sigmoid. By default
`depth = min(7, ceil(log2(image_size)))`, so the innermost code is 1x1 as in
the paper; at 128x128x3 with 16 base filters this is exactly
`MirroredConvStack.paper()`.

**The error metric scales with the image size**: the per-image sum of
squared error sums over `height * width * channels` values, so only a
128x128x3 run is comparable with the paper's Table 1; `results.md` shows the
paper's numbers beside ours only then.
"""

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import keras
import numpy as np

from keras_recursive_ae import metrics as metrics_module
from keras_recursive_ae.lfw import load_lfw
from keras_recursive_ae.mirrored_conv_stack import MirroredConvStack
from keras_recursive_ae.recursive_trainer import RecursiveTrainer

PAPER_IMAGE_SHAPE = (128, 128, 3)
"""The image shape at which the paper's Table 1 numbers are comparable."""

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
RECONSTRUCTIONS_PNG = "reconstructions.png"
VAE_SAMPLES_PNG = "vae_samples.png"
TRAINING_CURVES_PNG = "training_curves.png"
FIGURE_ARRAYS_NPZ = "figure_arrays.npz"

METRICS = (
    # (key, column title, digits in results.md)
    ("sum_squared_error", "sum sq. error (lower better)", 1),
    ("psnr", "PSNR dB (higher better)", 2),
    ("ssim", "SSIM (higher better)", 4),
    ("sharpness_ratio", "sharpness ratio (1 = as crisp as input)", 3),
)
"""The four scores of every configuration, as written to results.md."""

_MODULE_COMMAND = "python -m keras_recursive_ae.lfw_faces"
_TIME_DIGITS = 1
# The train split is held as a float32 NumPy array (shared by every
# configuration) up to this size; larger splits stream through tf.data.
_IN_MEMORY_LIMIT_BYTES = 2 * 1024**3
_FIGURE_FACES = 8


@dataclasses.dataclass(frozen=True)
class Configuration:
    """One trained model of the experiment.

    Attributes:
        name: Short name, used by `--configs` and in every output.
        description: One line, for headers and tables.
        schedule: `RecursiveTrainer` schedule: `"greedy"`, `"end_to_end"`
            or `"joint"`.
        normalization: `MirroredConvStack` normalization: `None`,
            `"batch"` or `"shared"`.
        activation: Activation of every block but the output block.
        variational: Whether the innermost level is a variational
            bottleneck.
        fine_tune: Whether end-to-end fine-tuning follows the greedy stages.
        paper_error: The paper's Table 1 error (128x128x3), or `None` where
            the paper gives no number.
    """

    name: str
    description: str
    schedule: str
    normalization: "str | None" = None
    activation: str = "selu"
    variational: bool = False
    fine_tune: bool = False
    paper_error: "float | None" = None


def _paper_pair(normalization, activation, title, stacked_error, recursive_error):
    suffix = {
        (None, "selu"): "",
        ("batch", "selu"): "_bn",
        ("shared", "selu"): "_shared_bn",
        ("shared", "relu"): "_shared_bn_relu",
    }[(normalization, activation)]
    return [
        Configuration(
            name=f"stacked{suffix}",
            description=f"stacked (end to end), {title}",
            schedule="end_to_end",
            normalization=normalization,
            activation=activation,
            paper_error=stacked_error,
        ),
        Configuration(
            name=f"recursive{suffix}",
            description=f"recursive (greedy), {title}",
            schedule="greedy",
            normalization=normalization,
            activation=activation,
            paper_error=recursive_error,
        ),
    ]


CONFIGURATIONS = {
    c.name: c
    for c in [
        # The paper's Table 1, 128x128x3 LFW, mean over 100 test images.
        *_paper_pair(None, "selu", "no BN, SELU", 258.0, 239.0),
        *_paper_pair("batch", "selu", "standard BN, SELU", 467.0, 7831.0),
        *_paper_pair("shared", "selu", "shared BN, SELU", 643.0, 455.0),
        *_paper_pair("shared", "relu", "shared BN, ReLU", 643.0, 2020.0),
        Configuration(
            name="stacked_vae",
            description="stacked (end to end) VAE, no BN, SELU",
            schedule="end_to_end",
            variational=True,
        ),
        Configuration(
            name="recursive_vae",
            description="recursive (greedy) VAE, no BN, SELU",
            schedule="greedy",
            variational=True,
        ),
        Configuration(
            name="joint",
            description="joint: one model, loss at every decoder level, no BN, SELU",
            schedule="joint",
        ),
        Configuration(
            name="recursive_fine_tune",
            description="recursive (greedy) + end-to-end fine-tuning, no BN, SELU",
            schedule="greedy",
            fine_tune=True,
        ),
    ]
}
"""Every configuration of the experiment, by name, in the order they run."""

CONFIGURATION_GROUPS = {
    "all": tuple(CONFIGURATIONS),
    "paper": tuple(n for n, c in CONFIGURATIONS.items() if c.paper_error is not None),
    "vae": ("stacked_vae", "recursive_vae"),
    "beyond": ("joint", "recursive_fine_tune"),
}
"""Names that `--configs` expands to several configurations."""


def select_configurations(names=None):
    """Returns the configurations named, groups expanded, duplicates dropped.

    Args:
        names: Optional iterable of configuration or group names (see
            `CONFIGURATIONS` and `CONFIGURATION_GROUPS`); an item may hold
            several names separated by commas. Defaults to `None` (all).

    Returns:
        A list of `Configuration`, in the order `CONFIGURATIONS` lists them.

    Raises:
        ValueError: If a name is unknown, or no name is given.

    Example:

    >>> from keras_recursive_ae.lfw_faces import select_configurations
    >>> [c.name for c in select_configurations(["recursive,stacked"])]
    ['stacked', 'recursive']
    """
    if names is None:
        names = ["all"]
    if isinstance(names, str):
        names = [names]
    wanted = set()
    for item in names:
        for name in str(item).split(","):
            name = name.strip()
            if not name:
                continue
            if name in CONFIGURATION_GROUPS:
                wanted.update(CONFIGURATION_GROUPS[name])
            elif name in CONFIGURATIONS:
                wanted.add(name)
            else:
                raise ValueError(
                    f"Invalid value for argument `configs`. Expected names "
                    f"among {list(CONFIGURATIONS)} or groups among "
                    f"{list(CONFIGURATION_GROUPS)}. Received: {name!r}"
                )
    if not wanted:
        raise ValueError(
            f"Invalid value for argument `configs`. Expected at least one "
            f"name. Received: configs={list(names)!r}"
        )
    return [c for name, c in CONFIGURATIONS.items() if name in wanted]


def default_depth(image_size):
    """Levels that bring an `image_size` square down to a 1x1 code, at most 7.

    Every level halves the size, rounding up, as stride-2 "same"
    convolutions do; the paper's 128x128 faces get its 7 levels.

    Example:

    >>> from keras_recursive_ae.lfw_faces import default_depth
    >>> default_depth(128), default_depth(32), default_depth(25)
    (7, 5, 5)
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(
            f"Invalid value for argument `image_size`. Expected a strictly "
            f"positive integer. Received: image_size={image_size!r}"
        )
    return max(1, min(7, math.ceil(math.log2(image_size))))


def build_autoencoder(
    configuration,
    image_shape,
    *,
    base_filters=16,
    depth=None,
    decoder_statistics="encoder",
    latent_dim=None,
    kl_weight=None,
):
    """The paper's architecture, scaled to `image_shape`, for a configuration.

    Args:
        configuration: A `Configuration`.
        image_shape: `(height, width, channels)` of one image.
        base_filters: Filters of level 1, doubling at every level. Defaults
            to `16` (the paper's).
        depth: Optional number of levels. Defaults to `None`
            (`default_depth` of the smaller image side).
        decoder_statistics: `SharedBatchNorm`'s argument for the
            shared-norm configurations: `"encoder"` (the library's default)
            or `"batch"` (plain Keras behaviour, as the paper ran it).
        latent_dim: Optional code size of a variational configuration.
            Defaults to `None`: the size of the plain models' innermost
            code `T_n` (256 at 32x32, 1024 at 128x128), so every
            configuration has the same bottleneck.
        kl_weight: Optional weight of a variational configuration's KL term.
            Defaults to `None`: one over the number of values that the
            variational level's model rebuilds (the image for `end_to_end`,
            `T_{n-1}` for the greedy stage that trains the bottleneck), so
            with the mean squared error the loss is, up to a constant
            factor, the negative ELBO of a unit-variance Gaussian likelihood
            on that tensor.

    Returns:
        A `MirroredConvStack`.

    Example:

    ```python
    from keras_recursive_ae.lfw_faces import CONFIGURATIONS, build_autoencoder

    stack = build_autoencoder(CONFIGURATIONS["recursive_shared_bn"], (32, 32, 3))
    stack.shapes[-1]     # (1, 1, 256): 5 levels down to a 1x1 code
    ```
    """
    image_shape = tuple(int(s) for s in image_shape)
    if depth is None:
        depth = default_depth(min(image_shape[:2]))
    options = {
        "activation": configuration.activation,
        "normalization": configuration.normalization,
    }
    if configuration.normalization == "shared":
        options["decoder_statistics"] = decoder_statistics
    if configuration.variational:
        shapes = _level_shapes(image_shape, base_filters, depth)
        if latent_dim is None:
            latent_dim = math.prod(shapes[-1])
        if kl_weight is None:
            rebuilt = shapes[-2] if configuration.schedule == "greedy" else image_shape
            kl_weight = 1.0 / math.prod(rebuilt)
        options.update(variational=True, latent_dim=int(latent_dim), kl_weight=float(kl_weight))
    return MirroredConvStack(
        base_filters=base_filters,
        depth=depth,
        kernel_sizes=[5] + [3] * (depth - 1),
        strides=2,
        output_activation="sigmoid",
        input_shape=image_shape,
        name="recursive_autoencoder",
        **options,
    )


def train_configuration(
    configuration,
    autoencoder,
    train,
    validation=None,
    *,
    epochs=3,
    fine_tune_epochs=None,
    batch_size=32,
    learning_rate=1e-3,
    verbose="auto",
):
    """Trains one configuration with the experiment's budget.

    Args:
        configuration: A `Configuration`.
        autoencoder: Its `MirroredConvStack` (see `build_autoencoder`).
        train: Training images: a NumPy array or a batched `tf.data.Dataset`.
        validation: Optional validation images, in the same forms.
        epochs: The budget `E`: epochs per stage for greedy schedules,
            epochs in all for the others.
        fine_tune_epochs: End-to-end epochs after the greedy stages, for a
            configuration with `fine_tune=True`. Defaults to `None`
            (`epochs`).
        batch_size: Batch size for NumPy inputs. Defaults to `32`.
        learning_rate: Adam's learning rate. Defaults to `1e-3`.
        verbose: As in `keras.Model.fit`. Defaults to `"auto"`.

    Returns:
        A tuple `(trainer, history, seconds)`: the `RecursiveTrainer`, the
        history over all stages, and the wall time of `fit` in seconds.
    """
    trainer_options = {}
    if configuration.schedule != "greedy":
        trainer_options["schedule"] = configuration.schedule
    trainer = RecursiveTrainer(autoencoder, **trainer_options)
    trainer.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    fit_options = {}
    if configuration.fine_tune:
        fit_options["fine_tune_epochs"] = epochs if fine_tune_epochs is None else fine_tune_epochs
    if not _is_dataset(train):
        fit_options["batch_size"] = batch_size
    start = time.perf_counter()
    history = trainer.fit(
        train,
        epochs=epochs,
        validation_data=validation,
        verbose=verbose,
        **fit_options,
    )
    return trainer, history, time.perf_counter() - start


def evaluate_reconstructions(images, reconstructions):
    """The experiment's four scores: means over images of the per-image values.

    Args:
        images: Original images, `(batch, height, width, channels)` in
            `[0, 1]`.
        reconstructions: Reconstructed images, same shape.

    Returns:
        A dict with `sum_squared_error` (the paper's Table 1 metric),
        `psnr`, `ssim` and `sharpness_ratio`, each a Python float.

    Example:

    >>> import numpy as np
    >>> from keras_recursive_ae.lfw_faces import evaluate_reconstructions
    >>> x = np.zeros((2, 8, 8, 3))
    >>> evaluate_reconstructions(x, x + 0.5)["sum_squared_error"]
    48.0
    """
    functions = {
        "sum_squared_error": metrics_module.sum_squared_error,
        "psnr": metrics_module.psnr,
        "ssim": metrics_module.ssim,
        "sharpness_ratio": metrics_module.sharpness_ratio,
    }
    return {
        key: float(np.mean(functions[key](images, reconstructions)))
        for key, _, _ in METRICS
    }


def run_experiment(
    data_dir=None,
    *,
    output_dir="outputs/lfw_faces",
    image_size=None,
    epochs=3,
    fine_tune_epochs=None,
    max_images=4000,
    configs=None,
    seed=0,
    test_images=100,
    batch_size=32,
    learning_rate=1e-3,
    base_filters=16,
    depth=None,
    decoder_statistics="encoder",
    latent_dim=None,
    kl_weight=None,
    download=False,
    save_models=False,
    figure_faces=_FIGURE_FACES,
    verbose="auto",
    command=None,
):
    """Trains and scores the configurations; writes every output file.

    See the module's docstring for the outputs, the budget and the
    architecture; the arguments are the command-line flags.

    Args:
        data_dir: Optional LFW folder or `.tgz` archive. Defaults to `None`
            (download with `download=True`, else scikit-image's 100 faces).
        output_dir: Folder for the outputs, created if needed.
        image_size: Optional side of the square images. Defaults to `None`:
            32 for real LFW, the native 25 for scikit-image's faces.
        epochs: The budget `E` (see the module's docstring).
        fine_tune_epochs: Optional end-to-end epochs of
            `recursive_fine_tune`. Defaults to `None` (`epochs`).
        max_images: Optional number of LFW images to use in all, people
            taken whole in a seeded order. `None` uses them all.
        configs: Optional configuration or group names (see
            `select_configurations`). Defaults to `None` (all).
        seed: Seed of the split by person and of every configuration's
            initial weights (each configuration starts from this seed).
        test_images: How many test images to score (the first of the test
            split), 100 as in the paper.
        batch_size: Batch size. Defaults to `32` (the paper's).
        learning_rate: Adam's learning rate. Defaults to `1e-3`.
        base_filters: Filters of level 1. Defaults to `16` (the paper's).
        depth: Optional number of levels (default: down to a 1x1 code).
        decoder_statistics: `"encoder"` or `"batch"`, for the shared-norm
            configurations (see `build_autoencoder`).
        latent_dim: Optional code size of the variational configurations
            (see `build_autoencoder`).
        kl_weight: Optional KL weight of the variational configurations
            (see `build_autoencoder`).
        download: Whether to download LFW when `data_dir` is `None`.
        save_models: Whether to save each trained model as
            `<output_dir>/<name>.keras`.
        figure_faces: How many test faces the reconstruction figure shows,
            and how many images each variational configuration generates.
            Defaults to `8`.
        verbose: As in `keras.Model.fit`.
        command: Optional command line to record in the results.

    Returns:
        The results, as written to `results.json`.
    """
    configurations = select_configurations(configs)
    _check_positive_int("epochs", epochs)
    _check_positive_int("test_images", test_images)
    if fine_tune_epochs is not None:
        _check_positive_int("fine_tune_epochs", fine_tune_epochs, allow_zero=True)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    load_before = _load_average()
    quiet = verbose == 0

    if data_dir is None and not download:
        _say(
            quiet,
            "No --data-dir given: falling back to the 100 LFW faces that "
            "scikit-image ships (skimage.data.lfw_subset(), 25x25 grey). "
            "Pass --data-dir path/to/lfw (a folder or .tgz archive) or "
            "--download for the real data set.",
        )
    elif image_size is None:
        image_size = 32
    faces = load_lfw(
        data_dir,
        image_size=image_size,
        max_images=max_images,
        batch_size=batch_size,
        seed=seed,
        download=download,
    )
    image_shape = tuple(faces.image_shape)
    depth = default_depth(min(image_shape[:2])) if depth is None else depth
    x_test = faces.numpy("test", max_images=test_images)
    if len(x_test) < test_images:
        _say(
            quiet,
            f"Only {len(x_test)} test images are available; scoring all of "
            f"them (asked for {test_images}).",
        )
    x_validation = faces.numpy("validation") if faces.validation is not None else None
    train_bytes = faces.num_images["train"] * int(np.prod(image_shape)) * 4
    if train_bytes <= _IN_MEMORY_LIMIT_BYTES:
        train = faces.numpy("train")
        train_note = "held in memory as a NumPy array"
    else:
        train = faces.train
        train_note = "streamed through tf.data (too large to hold in memory)"
    scored_people = sorted({Path(p).parent.name for p in faces.paths["test"][: len(x_test)]})
    data = {
        "source": faces.source,
        "image_shape": list(image_shape),
        "num_images": dict(faces.num_images),
        "num_people": {s: len(p) for s, p in faces.people.items()},
        "test_images_scored": int(len(x_test)),
        "test_images_sha256": hashlib.sha256(np.ascontiguousarray(x_test).tobytes()).hexdigest(),
        "test_people_scored": len(scored_people),
        "skipped_files": len(faces.skipped),
        "train_input": train_note,
        "max_images": max_images,
    }
    _say(
        quiet,
        f"Faces: {faces.source}; {faces.num_images['train']} train, "
        f"{faces.num_images['validation']} validation, "
        f"{faces.num_images['test']} test images of shape {image_shape} "
        f"({_split_words(data)}); scoring {len(x_test)} test images of "
        f"{len(scored_people) or 'unnamed'} people. Train split {train_note}.",
    )

    results = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "load_average_before": load_before,
        "data": data,
        "settings": {
            "image_size": int(image_shape[0]),
            "epochs": epochs,
            "fine_tune_epochs": epochs if fine_tune_epochs is None else fine_tune_epochs,
            "batch_size": batch_size,
            "optimizer": f"Adam(learning_rate={learning_rate})",
            "loss": "mse",
            "base_filters": base_filters,
            "depth": depth,
            "shapes": [list(t) for t in _level_shapes(image_shape, base_filters, depth)],
            "shared_bn_decoder_statistics": decoder_statistics,
            "seed": seed,
        },
        "budget": (
            f"{epochs} epochs per weight: greedy schedules train each of the "
            f"{depth} stages for {epochs} epochs, end-to-end and joint "
            f"schedules train the whole model for {epochs} epochs; "
            f"recursive_fine_tune adds "
            f"{epochs if fine_tune_epochs is None else fine_tune_epochs} "
            f"end-to-end epochs after its greedy stages."
        ),
        "paper_comparable": image_shape == PAPER_IMAGE_SHAPE,
        "configurations": [],
        "figures": {},
    }
    reconstructions = {}
    samples = {}
    histories = {}
    for index, configuration in enumerate(configurations, start=1):
        _say(
            quiet,
            f"\n=== Configuration {index}/{len(configurations)}: "
            f"{configuration.name} - {configuration.description} ===",
        )
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        autoencoder = build_autoencoder(
            configuration,
            image_shape,
            base_filters=base_filters,
            depth=depth,
            decoder_statistics=decoder_statistics,
            latent_dim=latent_dim,
            kl_weight=kl_weight,
        )
        trainer, history, seconds = train_configuration(
            configuration,
            autoencoder,
            train,
            x_validation,
            epochs=epochs,
            fine_tune_epochs=fine_tune_epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            verbose=verbose,
        )
        rebuilt = np.asarray(
            trainer.model.predict(x_test, batch_size=batch_size, verbose=0)
        )
        reconstructions[configuration.name] = rebuilt
        scores = evaluate_reconstructions(x_test, rebuilt)
        curves = _history_record(history)
        histories[configuration.name] = curves
        entry = {
            "name": configuration.name,
            "description": configuration.description,
            "schedule": configuration.schedule,
            "normalization": configuration.normalization,
            "activation": configuration.activation,
            "variational": configuration.variational,
            "fine_tune": configuration.fine_tune,
            "metrics": {k: _finite_or_none(v) for k, v in scores.items()},
            "train_seconds": round(seconds, 3),
            "epochs_run": len(curves["stage"]),
            "epochs_by_stage": _epochs_by_stage(curves["stage"]),
            "paper_sum_squared_error": configuration.paper_error,
            "history": curves,
        }
        if configuration.variational:
            entry["latent_dim"] = autoencoder.latent_dim
            entry["kl_weight"] = autoencoder.kl_weight
            samples[configuration.name] = np.asarray(
                trainer.generate(figure_faces, seed=seed)
            )
        if save_models:
            path = output_dir / f"{configuration.name}.keras"
            trainer.model.save(path)
            entry["model"] = path.name
        results["configurations"].append(entry)
        _say(
            quiet,
            f"{configuration.name}: trained in {seconds:.1f} s; on "
            f"{len(x_test)} test images: "
            + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()),
        )
        del trainer, autoencoder

    _say(quiet, "\nDrawing the figures.")
    shown = x_test[:figure_faces]
    _save_figure_arrays(
        output_dir, shown, {k: v[: len(shown)] for k, v in reconstructions.items()}, samples
    )
    results["figures"] = _draw_figures(output_dir, shown, reconstructions, samples, histories)
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    results["load_average_after"] = _load_average()
    results["sittings"] = [_sitting(results)]
    write_results(results, output_dir)
    _say(
        quiet,
        f"\nDone in {results['wall_seconds']:.0f} s. Outputs in "
        f"{output_dir.resolve()}: {RESULTS_JSON}, {RESULTS_MD}, "
        + ", ".join(results["figures"].values()),
    )
    return results


def merge_results(directories, output_dir, command=None, figure_faces=None):
    """Merges runs of the experiment made in several sittings into one report.

    Training all configurations at 128x128 on 2 CPU cores takes longer than
    one sitting: run them in groups with the same flags (e.g. `--configs
    paper` today, `--configs vae beyond` tomorrow), each into its own
    folder, then merge the folders. The runs must agree on the data (the
    same held-out test images, checked by their fingerprint) and on every
    setting (the same budget); each configuration must come from one run
    only. The merged `results.json` lists every sitting (command, date,
    machine, load, wall time) and its total wall time is their sum; the
    figures are drawn again from the `figure_arrays.npz` of each run.

    Args:
        directories: Output folders of earlier runs, each holding
            `results.json` and `figure_arrays.npz`.
        output_dir: Where to write the merged results and figures.
        command: Optional command line to record.
        figure_faces: Optional number of faces (and samples) the figures
            show, at most what the runs kept. Defaults to `None` (all kept).

    Returns:
        The merged results, as written to `results.json`.

    Raises:
        ValueError: If fewer than one folder is given, or the runs differ
            in data or settings, or a configuration appears twice.
    """
    directories = [Path(d) for d in directories]
    if not directories:
        raise ValueError("Invalid value for argument `directories`. Expected at least one folder. Received: []")
    runs = []
    for directory in directories:
        with open(directory / RESULTS_JSON) as f:
            runs.append(json.load(f))
    first = runs[0]
    seen = {}
    for directory, run in zip(directories, runs):
        for key in ("settings", "data"):
            if run[key] != first[key]:
                differing = sorted(
                    k for k in set(run[key]) | set(first[key])
                    if run[key].get(k) != first[key].get(k)
                )
                raise ValueError(
                    f"Cannot merge {directory} with {directories[0]}: their "
                    f"{key} differ in {differing} (every sitting must use the "
                    f"same data and budget). Received: "
                    + ", ".join(f"{k}={run[key].get(k)!r} vs {first[key].get(k)!r}" for k in differing)
                )
        for entry in run["configurations"]:
            if entry["name"] in seen:
                raise ValueError(
                    f"Configuration {entry['name']!r} is in two runs: "
                    f"{seen[entry['name']]} and {directory}. Received: "
                    f"directories={[str(d) for d in directories]}"
                )
            seen[entry["name"]] = directory
    order = {name: i for i, name in enumerate(CONFIGURATIONS)}
    entries = sorted(
        (entry for run in runs for entry in run["configurations"]),
        key=lambda entry: order.get(entry["name"], len(order)),
    )
    sittings = [sitting for run in runs for sitting in run.get("sittings", [_sitting(run)])]
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    shown, reconstructions, samples = None, {}, {}
    for directory in directories:
        images, run_reconstructions, run_samples = _load_figure_arrays(directory)
        shown = images if shown is None else shown
        reconstructions.update(run_reconstructions)
        samples.update(run_samples)
    keep = slice(None, figure_faces)
    shown = shown[keep]
    reconstructions = {
        e["name"]: reconstructions[e["name"]][keep] for e in entries if e["name"] in reconstructions
    }
    samples = {e["name"]: samples[e["name"]][keep] for e in entries if e["name"] in samples}
    histories = {e["name"]: e["history"] for e in entries}
    _save_figure_arrays(output_dir, shown, reconstructions, samples)
    merged = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": first["machine"],
        "load_average_before": None,
        "data": first["data"],
        "settings": first["settings"],
        "budget": first["budget"],
        "paper_comparable": first["paper_comparable"],
        "configurations": entries,
        "figures": _draw_figures(output_dir, shown, reconstructions, samples, histories),
        "wall_seconds": round(sum(s["wall_seconds"] for s in sittings), 1),
        "load_average_after": None,
        "sittings": sittings,
    }
    write_results(merged, output_dir)
    return merged


def write_results(results, output_dir):
    """Writes `results.json` and `results.md` into `output_dir`."""
    output_dir = Path(output_dir)
    with open(output_dir / RESULTS_JSON, "w") as f:
        json.dump(results, f, indent=2, allow_nan=False)
        f.write("\n")
    (output_dir / RESULTS_MD).write_text(results_markdown(results))


def results_markdown(results):
    """The report of a run, as Markdown: settings, the table, the figures.

    The table has one row per configuration, with the four metrics rounded
    as `METRICS` says, the train time and the epochs; the paper's Table 1
    column appears only for 128x128x3 images, the only size at which the
    per-image sum of squared error is comparable.

    Args:
        results: The dict returned by `run_experiment` (or read back from
            `results.json`).

    Returns:
        A string.
    """
    settings = results["settings"]
    data = results["data"]
    comparable = results.get("paper_comparable", False)
    sittings = results.get("sittings") or [_sitting(results)]
    lines = ["# LFW reference run: recursive vs stacked training", ""]
    if len(sittings) == 1:
        lines += _sitting_lines(sittings[0], "- ")
    else:
        lines += [
            f"- Merged from {len(sittings)} sittings with the same data and "
            f"budget (`{results.get('command') or 'merge_results(...)'}`, "
            f"{results.get('date')}); total wall time "
            f"{results.get('wall_seconds', float('nan')):.0f} s:",
        ]
        for number, sitting in enumerate(sittings, start=1):
            lines.append(f"  {number}. Configurations: {', '.join(sitting['configurations'])}")
            lines += _sitting_lines(sitting, "     - ")
    lines += [
        f"- Data: {data['source']}; {data['num_images']['train']} train, "
        f"{data['num_images']['validation']} validation, "
        f"{data['num_images']['test']} test images ({_split_words(data)}), "
        f"shape {tuple(data['image_shape'])}",
        f"- Scored on the first {data['test_images_scored']} test images "
        f"({data['test_people_scored'] or 'unnamed'} people none of whom "
        f"was trained on), the same for every configuration",
        f"- Architecture: {settings['depth']} levels, base filters "
        f"{settings['base_filters']}, tensor shapes {settings['shapes']}",
        f"- Training: {settings['optimizer']}, loss {settings['loss']}, "
        f"batch {settings['batch_size']}, seed {settings['seed']}, shared "
        f"BN decoder statistics {settings['shared_bn_decoder_statistics']!r}",
        f"- Budget: {results['budget']}",
        "",
        "## Scores on held-out faces",
        "",
        "Means over the test images of per-image values. The sum of squared "
        "error is the paper's Table 1 metric: it sums over all "
        "height x width x channels values, so it grows with the image size.",
        "",
    ]
    if comparable:
        lines.append(
            f"The paper's Table 1 numbers (same metric, same 128x128x3 images, "
            f"100 test faces) are shown beside ours. The paper trained on "
            f"nearly all of LFW's 13,233 faces; this run trained on "
            f"{data['num_images']['train']} images for {settings['epochs']} "
            f"epochs per weight, so a gap can come from the budget as well as "
            f"from the method."
        )
    else:
        lines.append(
            f"These images are {'x'.join(map(str, data['image_shape']))}, "
            f"not the paper's 128x128x3: the sum of squared error is not "
            f"comparable with the paper's Table 1, so the paper's numbers "
            f"are not shown."
        )
    lines.append("")
    header = ["configuration"] + [title for _, title, _ in METRICS]
    if comparable:
        header.append("paper's error")
    header += ["train time (s)", "epochs"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 2) + ["---"]) + "|")
    for entry in results["configurations"]:
        row = [f"`{entry['name']}`"]
        for key, _, digits in METRICS:
            row.append(_format_number(entry["metrics"][key], digits))
        if comparable:
            paper = entry.get("paper_sum_squared_error")
            row.append("-" if paper is None else f"{paper:g}")
        row.append(_format_number(entry["train_seconds"], _TIME_DIGITS))
        row.append(_format_epochs(entry["epochs_by_stage"]))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Configurations:", ""]
    for entry in results["configurations"]:
        lines.append(f"- `{entry['name']}`: {entry['description']}")
    figures = results.get("figures", {})
    titles = {
        "reconstructions": "Reconstructions of the same held-out faces (top row: the originals)",
        "vae_samples": "Images decoded from N(0, I) codes by the variational configurations",
        "training_curves": "Training (solid) and validation (dashed) loss per epoch, stages shaded",
    }
    if figures:
        lines += ["", "## Figures", ""]
        for key, path in figures.items():
            lines += [f"{titles.get(key, key)}:", "", f"![{key}]({path})", ""]
    return "\n".join(lines).rstrip() + "\n"


def plot_reconstructions(images, reconstructions, path, columns=_FIGURE_FACES):
    """Saves a grid: the original faces, then one row per configuration.

    Every image is drawn at an integer scale (about 64 pixels a side), with
    no resampling blur, so the grid shows exactly what the models output.

    Args:
        images: Original images, `(batch, height, width, channels)`.
        reconstructions: Dict mapping configuration names to their
            reconstructions of `images`.
        path: Where to write the PNG.
        columns: How many faces to show (the first ones). Defaults to 8.
    """
    rows = {"original": np.asarray(images)[:columns]}
    rows.update({name: np.asarray(batch)[:columns] for name, batch in reconstructions.items()})
    _save_image_grid(rows, path)


def plot_samples(samples, path):
    """Saves one row of generated images per variational configuration.

    Args:
        samples: Dict mapping configuration names to generated images.
        path: Where to write the PNG.
    """
    _save_image_grid({name: np.asarray(batch) for name, batch in samples.items()}, path)


def _save_image_grid(rows, path, target_side=64, dpi=100, label_width=170):
    """One row of images per entry of `rows`, labelled, pixel-exact."""
    height, width = next(iter(rows.values())).shape[1:3]
    scale = max(1, round(target_side / max(height, width)))
    gap = max(2, scale)
    columns = max(len(batch) for batch in rows.values())
    cell_h, cell_w = height * scale + gap, width * scale + gap
    mosaic = np.ones((len(rows) * cell_h - gap, columns * cell_w - gap, 3), dtype="float32")
    for r, batch in enumerate(rows.values()):
        for c, image in enumerate(batch):
            image = np.clip(np.asarray(image, dtype="float32"), 0.0, 1.0)
            if image.shape[-1] == 1:
                image = np.repeat(image, 3, axis=-1)
            image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
            mosaic[r * cell_h : r * cell_h + height * scale,
                   c * cell_w : c * cell_w + width * scale] = image  # fmt: skip
    pixels_w, pixels_h = label_width + mosaic.shape[1], mosaic.shape[0]
    figure = _figure(pixels_w / dpi, pixels_h / dpi)
    ax = figure.add_axes((label_width / pixels_w, 0.0, mosaic.shape[1] / pixels_w, 1.0))
    ax.imshow(mosaic, interpolation="nearest", aspect="auto")
    ax.axis("off")
    for r, name in enumerate(rows):
        ax.text(-8, r * cell_h + height * scale / 2, name, ha="right", va="center",
                fontsize=8, clip_on=False)
    figure.savefig(path, dpi=dpi)


def plot_training_curves(histories, path):
    """Saves training and validation loss per epoch, one panel per configuration.

    Greedy stages rebuild different tensors, so their losses are not on one
    scale: each stage is drawn as its own segment on a shaded band, the
    band labelled with the stage.

    Args:
        histories: Dict mapping configuration names to dicts with `stage`,
            `loss` and optionally `val_loss` lists (one value per epoch).
        path: Where to write the PNG.
    """
    from matplotlib.ticker import MaxNLocator

    names = list(histories)
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    figure = _figure(columns * 3.2, rows * 2.4)
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, name in enumerate(names):
        ax = axes[index // columns][index % columns]
        record = histories[name]
        stages = record["stage"]
        epochs = np.arange(1, len(stages) + 1)
        for shade, (stage, first, last) in enumerate(_stage_runs(stages)):
            if shade % 2:
                ax.axvspan(first + 0.5, last + 1.5, color="0.92", lw=0)
            ax.text((first + last + 2) / 2, 1.0, str(stage), transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=6)
            span = slice(first, last + 1)
            for key, style in (("loss", "-"), ("val_loss", "--")):
                values = record.get(key)
                if values is None:
                    continue
                segment = np.asarray(values[span], dtype=float)
                if np.all(~np.isfinite(segment)):
                    continue
                ax.plot(epochs[span], segment, style, color="C0" if key == "loss" else "C1",
                        marker="." if last == first else None, lw=1)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name, fontsize=8, pad=10)
        if index == 0:
            ax.plot([], [], "-", color="C0", lw=1, label="train")
            ax.plot([], [], "--", color="C1", lw=1, label="validation")
            ax.legend(fontsize=6, loc="best")
        ax.tick_params(labelsize=6)
        ax.set_xlabel("epoch", fontsize=7)
    for index in range(len(names), rows * columns):
        axes[index // columns][index % columns].axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=80)


def build_parser(prog=_MODULE_COMMAND):
    """The command line of the experiment (`python -m keras_recursive_ae.lfw_faces`)."""
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
            + ", ".join(f"{g} ({len(n)})" for g, n in CONFIGURATION_GROUPS.items())
            + "."
        ),
    )
    parser.add_argument(
        "--data-dir",
        help="LFW folder (<Person>/<Person>_NNNN.jpg) or .tgz archive; without "
        "it (and without --download), scikit-image's 100 LFW faces",
    )
    parser.add_argument("--download", action="store_true",
                        help="download the deep-funneled LFW when --data-dir is not given")
    parser.add_argument("--image-size", type=int, default=None,
                        help="side of the square images (default: 32; 25 for "
                        "scikit-image's faces; the paper: 128)")
    parser.add_argument("--epochs", type=int, default=3,
                        help="budget: epochs per stage (greedy) or in all "
                        "(end to end, joint) (default: 3)")
    parser.add_argument("--fine-tune-epochs", type=int, default=None,
                        help="end-to-end epochs of recursive_fine_tune after "
                        "its stages (default: --epochs)")
    parser.add_argument("--max-images", type=int, default=4000,
                        help="LFW images to use in all, whole people in a seeded "
                        "order; 0 for all 13,233 (default: 4000)")
    parser.add_argument("--configs", nargs="+", default=["all"],
                        help="configuration or group names, space or comma "
                        "separated (default: all)")
    parser.add_argument("--output-dir", default="outputs/lfw_faces",
                        help="where to write results and figures (default: "
                        "outputs/lfw_faces)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the split and of every model's initial "
                        "weights (default: 0)")
    parser.add_argument("--test-images", type=int, default=100,
                        help="held-out images to score (default: 100, as the paper)")
    parser.add_argument("--batch-size", type=int, default=32, help="(default: 32)")
    parser.add_argument("--learning-rate", type=float, default=1e-3,
                        help="Adam's learning rate (default: 1e-3)")
    parser.add_argument("--base-filters", type=int, default=16,
                        help="filters of level 1, doubling per level (default: 16)")
    parser.add_argument("--depth", type=int, default=None,
                        help="levels (default: down to a 1x1 code, at most 7)")
    parser.add_argument("--shared-bn-decoder-statistics", choices=["encoder", "batch"],
                        default="encoder",
                        help="SharedBatchNorm decoder_statistics for the shared-BN "
                        "configurations; 'batch' is the paper's plain Keras "
                        "behaviour (default: encoder)")
    parser.add_argument("--latent-dim", type=int, default=None,
                        help="code size of the VAEs (default: the size of the "
                        "plain models' innermost code)")
    parser.add_argument("--kl-weight", type=float, default=None,
                        help="KL weight of the VAEs (default: one over the number "
                        "of values the variational level's model rebuilds)")
    parser.add_argument("--merge", nargs="+", metavar="DIR",
                        help="train nothing: merge the results of earlier runs "
                        "(sittings with the same flags but different --configs) "
                        "into --output-dir")
    parser.add_argument("--figure-faces", type=int, default=_FIGURE_FACES,
                        help="test faces in the reconstruction figure and samples "
                        "per VAE (default: 8); with --merge, at most what the runs kept")
    parser.add_argument("--save-models", action="store_true",
                        help="save each trained model as <output-dir>/<name>.keras")
    parser.add_argument("--verbose", choices=["auto", "0", "1", "2"], default="auto",
                        help="Keras progress: 1 bars, 2 one line per epoch, 0 silent "
                        "(default: auto, bars on a terminal, lines otherwise)")
    return parser


def main(argv=None, prog=None):
    """Runs the experiment from command-line arguments; returns the exit code.

    Args:
        argv: Optional list of arguments. Defaults to `None` (`sys.argv`).
        prog: How the program was called, for `--help` and the command
            recorded in the results. Defaults to `None` (the name it was
            called by, e.g. the console script `keras-recursive-ae-lfw`).
    """
    if prog is None:
        prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else _MODULE_COMMAND
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    else:
        verbose = int(args.verbose)
    try:
        select_configurations(args.configs)
    except ValueError as e:
        parser.error(str(e))
    for flag in ("image_size", "epochs", "test_images", "batch_size", "base_filters", "depth",
                 "latent_dim", "figure_faces"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1. Received: {value}")
    for flag in ("max_images", "fine_tune_epochs", "kl_weight"):
        value = getattr(args, flag)
        if value is not None and value < 0:
            parser.error(f"--{flag.replace('_', '-')} must not be negative. Received: {value}")
    if args.data_dir is not None and not Path(args.data_dir).expanduser().exists():
        parser.error(f"--data-dir does not exist: {args.data_dir}")
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
    run_experiment(
        args.data_dir,
        output_dir=args.output_dir,
        image_size=args.image_size,
        epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        max_images=args.max_images or None,
        configs=args.configs,
        seed=args.seed,
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
        verbose=verbose,
        command=command,
    )
    return 0


def _split_words(data):
    if any(data.get("num_people", {}).values()):
        return "split by person"
    return "split by image index: no person names"


def _sitting_lines(sitting, prefix):
    machine = sitting.get("machine") or {}
    wall = sitting.get("wall_seconds")
    return [
        f"{prefix}Command: `{sitting.get('command') or 'run_experiment(...)'}`",
        f"{prefix}Date (UTC): {sitting.get('date')}",
        f"{prefix}Machine: {machine.get('platform')}, {machine.get('cpu_count')} "
        f"CPU cores, Python {machine.get('python')}, Keras "
        f"{machine.get('keras')} on {machine.get('backend')}",
        f"{prefix}Load average (1, 5, 15 min) before: "
        f"{_format_load(sitting.get('load_average_before'))}, after: "
        f"{_format_load(sitting.get('load_average_after'))}",
        f"{prefix}Wall time: {'unknown' if wall is None else f'{wall:.0f} s'}",
    ]


def _sitting(results):
    """What one run records about when and where it ran."""
    return {
        "command": results.get("command"),
        "date": results.get("date"),
        "machine": results.get("machine"),
        "load_average_before": results.get("load_average_before"),
        "load_average_after": results.get("load_average_after"),
        "wall_seconds": results.get("wall_seconds"),
        "configurations": [e["name"] for e in results["configurations"]],
    }


def _draw_figures(output_dir, images, reconstructions, samples, histories):
    figures = {}
    if reconstructions:
        plot_reconstructions(images, reconstructions, output_dir / RECONSTRUCTIONS_PNG)
        figures["reconstructions"] = RECONSTRUCTIONS_PNG
    if samples:
        plot_samples(samples, output_dir / VAE_SAMPLES_PNG)
        figures["vae_samples"] = VAE_SAMPLES_PNG
    if histories:
        plot_training_curves(histories, output_dir / TRAINING_CURVES_PNG)
        figures["training_curves"] = TRAINING_CURVES_PNG
    return figures


def _to_uint8(images):
    return np.round(np.clip(np.asarray(images, dtype="float32"), 0.0, 1.0) * 255).astype("uint8")


def _save_figure_arrays(output_dir, images, reconstructions, samples):
    """Keeps what the figures show (8-bit), so `merge_results` can redraw them."""
    arrays = {"images": _to_uint8(images)}
    arrays.update({f"reconstruction__{k}": _to_uint8(v) for k, v in reconstructions.items()})
    arrays.update({f"samples__{k}": _to_uint8(v) for k, v in samples.items()})
    np.savez_compressed(Path(output_dir) / FIGURE_ARRAYS_NPZ, **arrays)


def _load_figure_arrays(directory):
    with np.load(Path(directory) / FIGURE_ARRAYS_NPZ) as arrays:
        float_arrays = {k: arrays[k].astype("float32") / 255.0 for k in arrays.files}
    reconstructions = {
        k.split("__", 1)[1]: v for k, v in float_arrays.items() if k.startswith("reconstruction__")
    }
    samples = {k.split("__", 1)[1]: v for k, v in float_arrays.items() if k.startswith("samples__")}
    return float_arrays["images"], reconstructions, samples


def _level_shapes(image_shape, base_filters, depth):
    """`T_0..T_depth` of the paper's stride-2 "same" stack, without building it."""
    shapes = [tuple(image_shape)]
    for k in range(depth):
        height, width, _ = shapes[-1]
        shapes.append((math.ceil(height / 2), math.ceil(width / 2), base_filters * 2**k))
    return shapes


def _say(quiet, message):
    if not quiet:
        print(message, flush=True)


def _is_dataset(data):
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(data, tf.data.Dataset)


def _check_positive_int(name, value, allow_zero=False):
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected an integer of at "
            f"least {low}. Received: {name}={value!r}"
        )


def _finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def _history_record(history):
    """The history's per-epoch stage, loss and val_loss, JSON-ready."""
    record = {"stage": [_stage_label(s) for s in history.history.get("stage", [])]}
    for key in ("loss", "val_loss"):
        if key in history.history:
            record[key] = [_finite_or_none(v) for v in history.history[key]]
    if not record["stage"] and "loss" in record:
        record["stage"] = ["all"] * len(record["loss"])
    return record


def _stage_label(stage):
    if isinstance(stage, (int, np.integer)) and not isinstance(stage, bool):
        return int(stage)
    return str(stage)


def _stage_runs(stages):
    """`(stage, first, last)` index ranges of consecutive equal stages."""
    runs = []
    for i, stage in enumerate(stages):
        if runs and runs[-1][0] == stage:
            runs[-1][2] = i
        else:
            runs.append([stage, i, i])
    return [tuple(r) for r in runs]


def _epochs_by_stage(stages):
    """`[[stage, epochs], ...]` in order (JSON keeps no int keys)."""
    return [[stage, last - first + 1] for stage, first, last in _stage_runs(stages)]


def _format_epochs(epochs_by_stage):
    """E.g. `"3 x 5 stages + 3 fine_tune"` or `"3 end_to_end"`."""
    levels = [count for stage, count in epochs_by_stage if isinstance(stage, int)]
    parts = []
    if levels:
        if len(set(levels)) == 1:
            parts.append(f"{levels[0]} x {len(levels)} stages")
        else:
            parts.append("stages " + "/".join(map(str, levels)))
    parts += [f"{count} {stage}" for stage, count in epochs_by_stage if not isinstance(stage, int)]
    return " + ".join(parts) or "0"


def _format_number(value, digits):
    return "nan" if value is None else f"{value:.{digits}f}"


def _format_load(load):
    if not load:
        return "unknown"
    return ", ".join(f"{v:.2f}" for v in load)


def _load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _machine():
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        info["backend"] = f"tensorflow {tf.__version__}"
        info["gpus"] = len(tf.config.list_physical_devices("GPU"))
    return info


def _figure(width, height):
    # A bare Figure draws with Agg and leaves pyplot's global state alone.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


if __name__ == "__main__":
    sys.exit(main(prog=_MODULE_COMMAND))
