"""Training and scoring every configuration: `run_experiment`."""

import datetime
import hashlib
import time
from pathlib import Path

import keras
import numpy as np

from keras_recursive_ae.datasets.lfw import load_lfw
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
from keras_recursive_ae.experiments.lfw.seeds import model_seeds, seed_spread
from keras_recursive_ae.experiments.lfw.tensorboard_logs import prepare_tensorboard_dir
from keras_recursive_ae.experiments.lfw.training import (
    budget_words,
    equal_time_order,
    greedy_partner,
    train_configuration,
)
from keras_recursive_ae.models.mirrored_conv_stack import MirroredConvStack

_IN_MEMORY_LIMIT_BYTES = 2 * 1024**3
MIXED_PRECISION = ("off", "mixed_bfloat16", "mixed_float16")


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
    seeds=1,
    equal_time=False,
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
    order = equal_time_order(configurations) if equal_time else configurations
    seed_list = model_seeds(seed, seeds)
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
            "seeds": seeds,
            "equal_time": bool(equal_time),
            "mixed_precision": mixed_precision,
            "samples": samples,
            "density_components": density_components,
        },
        "budget": budget_words(depth, epochs, fine_tune_epochs, equal_time),
        "paper_comparable": image_shape == PAPER_IMAGE_SHAPE,
        "configurations": [],
        "figures": {},
    }
    reconstructions, generated, histories, entries, seconds_by_run = {}, {}, {}, {}, {}
    previous_policy = keras.config.dtype_policy()
    try:
        for index, configuration in enumerate(order, start=1):
            name = configuration.name
            _say(
                quiet,
                f"\n=== Configuration {index}/{len(order)}: "
                f"{name} - {configuration.description} ===",
            )
            runs = []
            for model_seed in seed_list:
                first = model_seed == seed_list[0]
                suffix = "" if first else f"_seed{model_seed}"
                if len(seed_list) > 1:
                    _say(quiet, f"--- {name}, model seed {model_seed} ---")
                keras.backend.clear_session()  # which also resets the dtype policy
                if mixed_precision != "off":
                    keras.mixed_precision.set_global_policy(mixed_precision)
                keras.utils.set_random_seed(model_seed)
                autoencoder = build_autoencoder(
                    configuration,
                    image_shape,
                    base_filters=base_filters,
                    depth=depth,
                    decoder_statistics=decoder_statistics,
                    latent_dim=latent_dim,
                    kl_weight=kl_weight,
                )
                partner = greedy_partner(configuration) if equal_time else None
                wall_time = None if partner is None else seconds_by_run[partner, model_seed]
                if wall_time is not None:
                    _say(quiet, f"{name}: training until {wall_time:.1f} s, {partner}'s time")
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
                    else tensorboard_dir / f"{name}{suffix}",
                    tensorboard_images=x_test[:figure_faces],
                    wall_time=wall_time,
                )
                seconds_by_run[name, model_seed] = seconds
                rebuilt = trainer.model.predict(x_test, batch_size=batch_size, verbose=0)
                rebuilt = np.asarray(rebuilt, dtype="float32")  # not bfloat16 under a policy
                scores = evaluate_reconstructions(x_test, rebuilt)
                curves = history_record(history, configuration.schedule, depth)
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
                density_path = output_dir / f"{name}{suffix}_density.npz" if save_models else None
                images, run["samples"] = sampler.sample(
                    trainer, configuration, density_path, seed=model_seed
                )
                if save_models:
                    path = output_dir / f"{name}{suffix}.keras"
                    trainer.model.save(path)
                    run["model"] = path.name
                if first:
                    reconstructions[name], generated[name] = rebuilt, images
                    histories[name] = curves
                    variational = (
                        {"latent_dim": autoencoder.latent_dim, "kl_weight": autoencoder.kl_weight}
                        if configuration.variational
                        else {}
                    )
                runs.append(run)
                _say(
                    quiet,
                    f"{name}{suffix}: trained in {seconds:.1f} s ({run['epochs_run']} "
                    f"epochs); on {len(x_test)} test images: "
                    + ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
                    + f"; {samples} samples: {describe_sample_scores(run['samples'])}",
                )
                del trainer, autoencoder
            entries[name] = {
                "name": name,
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
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    # Back in the order of `configurations` (--equal-time trains partners first).
    names = [c.name for c in configurations]
    results["configurations"] = [entries[n] for n in names]
    reconstructions, generated, histories = (
        {n: d[n] for n in names} for d in (reconstructions, generated, histories)
    )
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


def _check_positive_int(name, value, allow_zero=False):
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected an integer of at "
            f"least {low}. Received: {name}={value!r}"
        )
