"""Training and scoring every configuration: `ExperimentConfig`, `run_experiment`."""

import dataclasses
import datetime
import hashlib
import time
from pathlib import Path

import keras
import numpy as np

from experiments.lfw.configurations import (
    PAPER_IMAGE_SHAPE,
    build_autoencoder,
    select_configurations,
)
from experiments.lfw.figures import (
    FIGURE_FACES,
    draw_figures,
    save_figure_arrays,
)
from experiments.lfw.report import (
    RESULTS_JSON,
    RESULTS_MD,
    load_average,
    machine_record,
    sitting_record,
    split_words,
    write_results,
)
from experiments.lfw.samples import (
    DENSITY_COMPONENTS,
    SAMPLES,
    SampleScorer,
    describe_sample_scores,
)
from experiments.lfw.scores import (
    epochs_by_stage,
    evaluate_reconstructions,
    finite_or_none,
    history_record,
)
from experiments.lfw.seeds import model_seeds, seed_spread
from experiments.lfw.tensorboard_logs import prepare_tensorboard_dir
from experiments.lfw.training import (
    budget_words,
    equal_time_order,
    greedy_partner,
    train_configuration,
)
from keras_recursive_ae import MirroredConvStack
from keras_recursive_ae.datasets.lfw import load_lfw

_IN_MEMORY_LIMIT_BYTES = 2 * 1024**3
MIXED_PRECISION = ("off", "mixed_bfloat16", "mixed_float16")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """What `run_experiment` trains, scores and writes: the command-line flags.

    The defaults are the command line's. See the package's docstring for the
    outputs, the budget and the architecture. Every value is checked when
    the object is made.

    Args:
        data_dir: Optional LFW folder or `.tgz` archive. Defaults to `None`
            (download with `download=True`, else scikit-image's 100 faces).
        output_dir: Folder for the outputs, created if needed. Defaults to
            `"outputs/lfw_faces"`.
        image_size: Optional side of the square images. Defaults to `None`:
            32 for real LFW, the native 25 for scikit-image's faces.
        epochs: The budget `E` (see the package's docstring). Defaults to `3`.
        fine_tune_epochs: Optional end-to-end epochs of
            `recursive_fine_tune`. Defaults to `None` (`epochs`).
        max_images: Optional number of LFW images to use in all, people
            taken whole in a seeded order. `None` uses them all. Defaults
            to `4000`.
        configs: Configuration or group names (see `select_configurations`).
            Defaults to `("all",)`.
        seed: Seed of the split by person and of every configuration's
            initial weights (each configuration starts from this seed).
            Defaults to `0`.
        seeds: How many times each configuration is trained, with model
            seeds `seed, seed + 1, ..., seed + seeds - 1` (initial weights,
            data order, sampled codes; `keras.utils.set_random_seed` before
            each model is built), all on the split of `seed`. Each entry of
            `results.json` then lists every seed's scores (`"seeds"`) and
            their mean, sample standard deviation, min and max
            (`"spread"`, see `seed_spread`); its other fields, the figures
            and the TensorBoard run `<name>` are the first seed's; with
            `save_models`, later seeds' models are `<name>_seed<s>.keras`.
            Defaults to `1`.
        equal_time: Whether each end-to-end configuration trains, instead
            of `epochs`, until its wall time reaches that of its greedy
            partner with the same seed (see `equal_time_order`, which runs
            the partner first and requires it to be selected), stopping at
            the end of the first epoch at or past it. Each such seed records
            `"equal_time": {"partner", "partner_seconds"}` beside its
            `epochs_run` and `train_seconds`. Defaults to `False`.
        test_images: How many test images to score (the first of the test
            split). Defaults to `100`, as in the paper.
        batch_size: Batch size. Defaults to `32` (the paper's).
        learning_rate: Adam's learning rate. Defaults to `1e-3`.
        base_filters: Filters of level 1. Defaults to `16` (the paper's).
        depth: Optional number of levels (default: down to a 1x1 code).
        decoder_statistics: `"encoder"` or `"batch"`, for the shared-norm
            configurations (see `build_autoencoder`). Defaults to
            `"encoder"`.
        latent_dim: Optional code size of the variational configurations
            (see `build_autoencoder`).
        kl_weight: Optional KL weight of the variational configurations
            (see `build_autoencoder`).
        download: Whether to download LFW when `data_dir` is `None`.
            Defaults to `False`.
        save_models: Whether to save each trained model as
            `<output_dir>/<name>.keras`, and each deterministic one's
            fitted code density as `<name>_density.npz`. Defaults to `False`.
        figure_faces: How many test faces the reconstruction figure shows,
            and how many samples per configuration the samples figure
            shows. Defaults to `8`.
        samples: How many images each configuration generates and is
            scored on (see `SampleScorer`): a variational one from N(0, I),
            a deterministic one from a Gaussian mixture fitted to its
            training codes. Defaults to `64`.
        density_components: Gaussians in that mixture, at most the number
            of training faces. Defaults to `10` (the library's default).
        tensorboard_dir: Optional folder for TensorBoard logs: one run
            folder per configuration, `<tensorboard_dir>/<name>`, with
            `keras.callbacks.TensorBoard`'s curves and a
            `ReconstructionLogger` on the first `figure_faces` test images
            (see `tensorboard_callbacks`). Defaults to `None` (none).
        mixed_precision: `"off"` (default: float32), `"mixed_bfloat16"` or
            `"mixed_float16"`: Keras' global dtype policy while each model is
            built, trained and scored; the policy before the run is
            restored afterwards.

    Raises:
        ValueError: If a configuration name is unknown, an end-to-end
            configuration lacks its greedy partner under `equal_time`, or
            a count or `mixed_precision` is invalid.

    Example:

    >>> from experiments.lfw import ExperimentConfig
    >>> config = ExperimentConfig(configs=("recursive",), epochs=1)
    >>> config.epochs, config.max_images, config.output_dir
    (1, 4000, 'outputs/lfw_faces')
    """

    data_dir: str | None = None
    output_dir: str = "outputs/lfw_faces"
    image_size: int | None = None
    epochs: int = 3
    fine_tune_epochs: int | None = None
    max_images: int | None = 4000
    configs: tuple = ("all",)
    seed: int = 0
    seeds: int = 1
    equal_time: bool = False
    test_images: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    base_filters: int = 16
    depth: int | None = None
    decoder_statistics: str = "encoder"
    latent_dim: int | None = None
    kl_weight: float | None = None
    download: bool = False
    save_models: bool = False
    figure_faces: int = FIGURE_FACES
    samples: int = SAMPLES
    density_components: int = DENSITY_COMPONENTS
    tensorboard_dir: str | None = None
    mixed_precision: str = "off"

    def __post_init__(self):
        configs = (self.configs,) if isinstance(self.configs, str) else tuple(self.configs)
        object.__setattr__(self, "configs", configs)
        configurations = select_configurations(configs)
        if self.equal_time:
            equal_time_order(configurations)
        model_seeds(self.seed, self.seeds)
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"Invalid value for argument `mixed_precision`. Expected one of "
                f"{MIXED_PRECISION}. Received: mixed_precision={self.mixed_precision!r}"
            )
        _check_positive_int("epochs", self.epochs)
        _check_positive_int("test_images", self.test_images)
        _check_positive_int("samples", self.samples)
        _check_positive_int("density_components", self.density_components)
        if self.fine_tune_epochs is not None:
            _check_positive_int("fine_tune_epochs", self.fine_tune_epochs, allow_zero=True)

    @property
    def configurations(self):
        """The selected `Configuration`s, in canonical order."""
        return select_configurations(self.configs)


def run_experiment(config=None, *, verbose="auto", command=None):
    """Trains and scores the configurations; writes every output file.

    See the package's docstring for the outputs, the budget and the
    architecture.

    Args:
        config: Optional `ExperimentConfig`. Defaults to `None`
            (`ExperimentConfig()`, the command line's defaults).
        verbose: As in `keras.Model.fit`.
        command: Optional command line to record in the results.

    Returns:
        The results, as written to `results.json`.

    Example:

    ```py
    from experiments.lfw import ExperimentConfig, run_experiment

    config = ExperimentConfig(data_dir="path/to/lfw", configs=("map",), epochs=2)
    results = run_experiment(config)
    ```
    """
    config = ExperimentConfig() if config is None else config
    configurations = config.configurations
    order = equal_time_order(configurations) if config.equal_time else configurations
    tensorboard_dir = prepare_tensorboard_dir(config.tensorboard_dir)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    load_before = load_average()
    quiet = verbose == 0

    faces = _load_faces(config, quiet)
    image_shape = tuple(faces.image_shape)
    # The plain network every configuration starts from: its levels' shapes.
    shapes = MirroredConvStack.paper(
        input_shape=image_shape, base_filters=config.base_filters, depth=config.depth
    ).shapes
    depth = len(shapes) - 1
    x_test, x_validation, train, data = _split_arrays(config, faces, quiet)
    sampler = SampleScorer(
        train,
        faces.num_images["train"],
        config.samples,
        config.density_components,
        config.seed,
        config.batch_size,
    )
    results = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_record(),
        "load_average_before": load_before,
        "data": data,
        "settings": _settings_record(config, image_shape, shapes),
        "budget": budget_words(depth, config.epochs, config.fine_tune_epochs, config.equal_time),
        "paper_comparable": image_shape == PAPER_IMAGE_SHAPE,
        "configurations": [],
        "figures": {},
    }
    trial = _Trial(
        config, image_shape, depth, train, x_validation, x_test, sampler,
        output_dir, tensorboard_dir, verbose,
    )  # fmt: skip
    entries = {}
    previous_policy = keras.config.dtype_policy()
    try:
        for index, configuration in enumerate(order, start=1):
            _say(
                quiet,
                f"\n=== Configuration {index}/{len(order)}: "
                f"{configuration.name} - {configuration.description} ===",
            )
            entries[configuration.name] = trial.train_seeds(configuration)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    # Back in the order of `configurations` (--equal-time trains partners first).
    names = [c.name for c in configurations]
    results["configurations"] = [entries[n] for n in names]
    reconstructions, generated, histories = (
        {n: d[n] for n in names} for d in (trial.reconstructions, trial.generated, trial.histories)
    )
    results["held_out_real"] = sampler.held_out_real(x_test)
    _say(quiet, f"Held-out real faces: {describe_sample_scores(results['held_out_real'])}")
    _say(quiet, "\nDrawing the figures.")
    generated = {k: v[: config.figure_faces] for k, v in generated.items()}
    shown = x_test[: config.figure_faces]
    save_figure_arrays(
        output_dir, shown, {k: v[: len(shown)] for k, v in reconstructions.items()}, generated
    )
    results["figures"] = draw_figures(output_dir, shown, reconstructions, generated, histories)
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    results["load_average_after"] = load_average()
    results["sittings"] = [sitting_record(results)]
    write_results(results, output_dir)
    _say(
        quiet,
        f"\nDone in {results['wall_seconds']:.0f} s. Outputs in "
        f"{output_dir.resolve()}: {RESULTS_JSON}, {RESULTS_MD}, "
        + ", ".join(results["figures"].values()),
    )
    if tensorboard_dir is not None:
        _say(quiet, f"TensorBoard logs: tensorboard --logdir {tensorboard_dir.resolve()}")
    return results


def _load_faces(config, quiet):
    """The LFW splits of `config`; scikit-image's 100 faces, said so, without data."""
    image_size = config.image_size
    if config.data_dir is None and not config.download:
        _say(
            quiet,
            "No --data-dir given: falling back to the 100 LFW faces that "
            "scikit-image ships (skimage.data.lfw_subset(), 25x25 grey). "
            "Pass --data-dir path/to/lfw (a folder or .tgz archive) or "
            "--download for the real data set.",
        )
    elif image_size is None:
        image_size = 32
    return load_lfw(
        config.data_dir,
        image_size=image_size,
        max_images=config.max_images,
        batch_size=config.batch_size,
        seed=config.seed,
        download=config.download,
    )


def _split_arrays(config, faces, quiet):
    """`(x_test, x_validation, train, data)`: the arrays trained and scored on, and their record."""
    image_shape = tuple(faces.image_shape)
    test_images = config.test_images
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
        "max_images": config.max_images,
    }
    _say(
        quiet,
        f"Faces: {faces.source}; {faces.num_images['train']} train, "
        f"{faces.num_images['validation']} validation, "
        f"{faces.num_images['test']} test images of shape {image_shape} "
        f"({split_words(data)}); scoring {len(x_test)} test images of "
        f"{len(scored_people) or 'unnamed'} people. Train split {train_note}.",
    )
    return x_test, x_validation, train, data


def _settings_record(config, image_shape, shapes):
    """The `"settings"` of `results.json`."""
    epochs, fine_tune_epochs = config.epochs, config.fine_tune_epochs
    return {
        "image_size": int(image_shape[0]),
        "epochs": epochs,
        "fine_tune_epochs": epochs if fine_tune_epochs is None else fine_tune_epochs,
        "batch_size": config.batch_size,
        "optimizer": f"Adam(learning_rate={config.learning_rate})",
        "loss": "mse",
        "base_filters": config.base_filters,
        "depth": len(shapes) - 1,
        "shapes": [list(t) for t in shapes],
        "shared_bn_decoder_statistics": config.decoder_statistics,
        "seed": config.seed,
        "seeds": config.seeds,
        "equal_time": bool(config.equal_time),
        "mixed_precision": config.mixed_precision,
        "samples": config.samples,
        "density_components": config.density_components,
    }


class _Trial:
    """Trains every seed of a configuration on the same data; keeps what the figures need."""

    def __init__(
        self, config, image_shape, depth, train, x_validation, x_test, sampler,
        output_dir, tensorboard_dir, verbose,
    ):  # fmt: skip
        self.config = config
        self.image_shape = image_shape
        self.depth = depth
        self.train = train
        self.x_validation = x_validation
        self.x_test = x_test
        self.sampler = sampler
        self.output_dir = output_dir
        self.tensorboard_dir = tensorboard_dir
        self.verbose = verbose
        self.quiet = verbose == 0
        self.seed_list = model_seeds(config.seed, config.seeds)
        # The first seed's, per configuration name, for the figures.
        self.reconstructions, self.generated, self.histories = {}, {}, {}
        # Wall seconds per (configuration name, model seed), for --equal-time.
        self.seconds_by_run = {}

    def train_seeds(self, configuration):
        """Trains `configuration` once per model seed; returns its `results.json` entry."""
        runs, variational = [], {}
        for model_seed in self.seed_list:
            if len(self.seed_list) > 1:
                _say(self.quiet, f"--- {configuration.name}, model seed {model_seed} ---")
            run, autoencoder = self.train_seed(configuration, model_seed)
            if model_seed == self.seed_list[0] and configuration.variational:
                variational = {
                    "latent_dim": autoencoder.latent_dim,
                    "kl_weight": autoencoder.kl_weight,
                }
            del autoencoder
            runs.append(run)
        return {
            "name": configuration.name,
            "description": configuration.description,
            "schedule": configuration.schedule,
            "normalization": configuration.normalization,
            "activation": configuration.activation,
            "variational": configuration.variational,
            "fine_tune": configuration.fine_tune,
            "paper_sum_squared_error": configuration.paper_error,
            **variational,
            # The first seed's run, as before --seeds; then every seed's.
            **{k: v for k, v in runs[0].items() if k != "seed"},
            "seeds": runs,
            "spread": seed_spread(runs),
        }

    def train_seed(self, configuration, model_seed):
        """Builds, trains, scores and samples one model; returns `(run, autoencoder)`."""
        config, name, x_test = self.config, configuration.name, self.x_test
        first = model_seed == self.seed_list[0]
        suffix = "" if first else f"_seed{model_seed}"
        keras.backend.clear_session()  # which also resets the dtype policy
        if config.mixed_precision != "off":
            keras.mixed_precision.set_global_policy(config.mixed_precision)
        keras.utils.set_random_seed(model_seed)
        autoencoder = build_autoencoder(
            configuration,
            self.image_shape,
            base_filters=config.base_filters,
            depth=self.depth,
            decoder_statistics=config.decoder_statistics,
            latent_dim=config.latent_dim,
            kl_weight=config.kl_weight,
        )
        partner = greedy_partner(configuration) if config.equal_time else None
        wall_time = None if partner is None else self.seconds_by_run[partner, model_seed]
        if wall_time is not None:
            _say(self.quiet, f"{name}: training until {wall_time:.1f} s, {partner}'s time")
        trainer, history, seconds = train_configuration(
            configuration,
            autoencoder,
            self.train,
            self.x_validation,
            epochs=config.epochs,
            fine_tune_epochs=config.fine_tune_epochs,
            batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            verbose=self.verbose,
            tensorboard_dir=None
            if self.tensorboard_dir is None
            else self.tensorboard_dir / f"{name}{suffix}",
            tensorboard_images=x_test[: config.figure_faces],
            wall_time=wall_time,
        )
        self.seconds_by_run[name, model_seed] = seconds
        rebuilt = trainer.model.predict(x_test, batch_size=config.batch_size, verbose=0)
        rebuilt = np.asarray(rebuilt, dtype="float32")  # not bfloat16 under a policy
        scores = evaluate_reconstructions(x_test, rebuilt)
        curves = history_record(history, configuration.schedule, self.depth)
        run = {
            "seed": model_seed,
            "metrics": {k: finite_or_none(v) for k, v in scores.items()},
            "train_seconds": round(seconds, 3),
            "epochs_run": len(curves["stage"]),
            "epochs_by_stage": epochs_by_stage(curves["stage"]),
            "history": curves,
        }
        if wall_time is not None:
            run["equal_time"] = {"partner": partner, "partner_seconds": round(wall_time, 3)}
        output_dir = self.output_dir
        density_path = output_dir / f"{name}{suffix}_density.npz" if config.save_models else None
        images, run["samples"] = self.sampler.sample(
            trainer, configuration, density_path, seed=model_seed
        )
        if config.save_models:
            path = output_dir / f"{name}{suffix}.keras"
            trainer.model.save(path)
            run["model"] = path.name
        if first:
            self.reconstructions[name], self.generated[name] = rebuilt, images
            self.histories[name] = curves
        _say(
            self.quiet,
            f"{name}{suffix}: trained in {seconds:.1f} s ({run['epochs_run']} "
            f"epochs); on {len(x_test)} test images: "
            + ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
            + f"; {config.samples} samples: {describe_sample_scores(run['samples'])}",
        )
        del trainer
        return run, autoencoder


def _say(quiet, message):
    if not quiet:
        print(message, flush=True)


def _check_positive_int(name, value, allow_zero=False):
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected an integer of at "
            f"least {low}. Received: {name}={value!r}"
        )
