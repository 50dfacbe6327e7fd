"""Training and scoring every configuration: `run_experiment`."""

import datetime
import hashlib
import sys
import time
from pathlib import Path

import keras
import numpy as np

from keras_recursive_ae.experiments.lfw.configurations import (
    PAPER_IMAGE_SHAPE,
    build_autoencoder,
    select_configurations,
)
from keras_recursive_ae.experiments.lfw.figures import (
    FIGURE_FACES,
    draw_figures,
    save_figure_arrays,
)
from keras_recursive_ae.experiments.lfw.report import (
    RESULTS_JSON,
    RESULTS_MD,
    load_average,
    machine_record,
    sitting_record,
    split_words,
    write_results,
)
from keras_recursive_ae.experiments.lfw.samples import (
    DENSITY_COMPONENTS,
    SAMPLES,
    SampleScorer,
    describe_sample_scores,
)
from keras_recursive_ae.experiments.lfw.scores import (
    epochs_by_stage,
    evaluate_reconstructions,
    finite_or_none,
    history_record,
)
from keras_recursive_ae.experiments.lfw.tensorboard_logs import (
    prepare_tensorboard_dir,
    tensorboard_callbacks,
)
from keras_recursive_ae.lfw import load_lfw
from keras_recursive_ae.mirrored_conv_stack import MirroredConvStack
from keras_recursive_ae.recursive_trainer import RecursiveTrainer

_IN_MEMORY_LIMIT_BYTES = 2 * 1024**3
MIXED_PRECISION = ("off", "mixed_bfloat16", "mixed_float16")


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
    callbacks=None,
    tensorboard_dir=None,
    tensorboard_images=None,
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
        callbacks: Optional Keras callbacks for the whole run (see
            `RecursiveTrainer.fit`).
        tensorboard_dir: Optional TensorBoard run folder for this
            configuration: adds `tensorboard_callbacks(tensorboard_dir,
            tensorboard_images, trainer.autoencoder)`. Defaults to `None`.
        tensorboard_images: The fixed held-out images whose reconstructions
            go to TensorBoard; required with `tensorboard_dir`.

    Returns:
        A tuple `(trainer, history, seconds)`: the `RecursiveTrainer`, the
        history over all stages, and the wall time of `fit` in seconds.
    """
    trainer_options = {}
    if configuration.schedule != "greedy":
        trainer_options["schedule"] = configuration.schedule
    trainer = RecursiveTrainer(autoencoder, **trainer_options)
    trainer.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    callbacks = list(callbacks or [])
    if tensorboard_dir is not None:
        callbacks += tensorboard_callbacks(tensorboard_dir, tensorboard_images, trainer.autoencoder)
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
        callbacks=callbacks,
        **fit_options,
    )
    return trainer, history, time.perf_counter() - start


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
    figure_faces=FIGURE_FACES,
    samples=SAMPLES,
    density_components=DENSITY_COMPONENTS,
    verbose="auto",
    command=None,
    tensorboard_dir=None,
    mixed_precision="off",
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
            `<output_dir>/<name>.keras`, and each deterministic one's
            fitted code density as `<name>_density.npz`.
        figure_faces: How many test faces the reconstruction figure shows,
            and how many samples per configuration the samples figure
            shows. Defaults to `8`.
        samples: How many images each configuration generates and is
            scored on (see `SampleScorer`): a variational one from N(0, I),
            a deterministic one from a Gaussian mixture fitted to its
            training codes. Defaults to `64`.
        density_components: Gaussians in that mixture, at most the number
            of training faces. Defaults to `10` (the library's default).
        verbose: As in `keras.Model.fit`.
        command: Optional command line to record in the results.
        tensorboard_dir: Optional folder for TensorBoard logs: one run
            folder per configuration, `<tensorboard_dir>/<name>`, with
            `keras.callbacks.TensorBoard`'s curves and a
            `ReconstructionLogger` on the first `figure_faces` test images
            (see `tensorboard_callbacks`). Defaults to `None` (none).
        mixed_precision: `"off"` (default: float32), `"mixed_bfloat16"` or
            `"mixed_float16"`: Keras' global dtype policy while each model is
            built, trained and scored; the policy before the call is
            restored afterwards.

    Returns:
        The results, as written to `results.json`.
    """
    configurations = select_configurations(configs)
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(
            f"Invalid value for argument `mixed_precision`. Expected one of "
            f"{MIXED_PRECISION}. Received: mixed_precision={mixed_precision!r}"
        )
    _check_positive_int("epochs", epochs)
    _check_positive_int("test_images", test_images)
    _check_positive_int("samples", samples)
    _check_positive_int("density_components", density_components)
    if fine_tune_epochs is not None:
        _check_positive_int("fine_tune_epochs", fine_tune_epochs, allow_zero=True)
    tensorboard_dir = prepare_tensorboard_dir(tensorboard_dir)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    load_before = load_average()
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
    # The plain network every configuration starts from: its levels' shapes.
    shapes = MirroredConvStack.paper(
        input_shape=image_shape, base_filters=base_filters, depth=depth
    ).shapes
    depth = len(shapes) - 1
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
    sampler = SampleScorer(
        train, faces.num_images["train"], samples, density_components, seed, batch_size
    )
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
        f"({split_words(data)}); scoring {len(x_test)} test images of "
        f"{len(scored_people) or 'unnamed'} people. Train split {train_note}.",
    )

    results = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_record(),
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
            "shapes": [list(t) for t in shapes],
            "shared_bn_decoder_statistics": decoder_statistics,
            "seed": seed,
            "mixed_precision": mixed_precision,
            "samples": samples,
            "density_components": density_components,
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
    generated = {}
    histories = {}
    previous_policy = keras.config.dtype_policy()
    try:
        for index, configuration in enumerate(configurations, start=1):
            _say(
                quiet,
                f"\n=== Configuration {index}/{len(configurations)}: "
                f"{configuration.name} - {configuration.description} ===",
            )
            keras.backend.clear_session()  # which also resets the dtype policy
            if mixed_precision != "off":
                keras.mixed_precision.set_global_policy(mixed_precision)
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
                tensorboard_dir=None
                if tensorboard_dir is None
                else tensorboard_dir / configuration.name,
                tensorboard_images=x_test[:figure_faces],
            )
            rebuilt = trainer.model.predict(x_test, batch_size=batch_size, verbose=0)
            rebuilt = np.asarray(rebuilt, dtype="float32")  # not bfloat16 under a policy
            reconstructions[configuration.name] = rebuilt
            scores = evaluate_reconstructions(x_test, rebuilt)
            curves = history_record(history, configuration.schedule, depth)
            histories[configuration.name] = curves
            entry = {
                "name": configuration.name,
                "description": configuration.description,
                "schedule": configuration.schedule,
                "normalization": configuration.normalization,
                "activation": configuration.activation,
                "variational": configuration.variational,
                "fine_tune": configuration.fine_tune,
                "metrics": {k: finite_or_none(v) for k, v in scores.items()},
                "train_seconds": round(seconds, 3),
                "epochs_run": len(curves["stage"]),
                "epochs_by_stage": epochs_by_stage(curves["stage"]),
                "paper_sum_squared_error": configuration.paper_error,
                "history": curves,
            }
            if configuration.variational:
                entry["latent_dim"] = autoencoder.latent_dim
                entry["kl_weight"] = autoencoder.kl_weight
            density_path = output_dir / f"{configuration.name}_density.npz" if save_models else None
            generated[configuration.name], entry["samples"] = sampler.sample(
                trainer, configuration, density_path
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
                + ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
                + f"; {samples} samples: {describe_sample_scores(entry['samples'])}",
            )
            del trainer, autoencoder
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    results["held_out_real"] = sampler.held_out_real(x_test)
    _say(quiet, f"Held-out real faces: {describe_sample_scores(results['held_out_real'])}")
    _say(quiet, "\nDrawing the figures.")
    generated = {k: v[:figure_faces] for k, v in generated.items()}
    shown = x_test[:figure_faces]
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
