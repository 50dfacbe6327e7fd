"""`results.json` and `results.md`, and merging runs made in several sittings."""

import datetime
import json
import os
import platform
from pathlib import Path

import keras

from experiments.lfw.configurations import CONFIGURATIONS
from experiments.lfw.figures import (
    draw_figures,
    load_figure_arrays,
    save_figure_arrays,
)
from experiments.lfw.scores import METRICS, SAMPLE_METRICS, format_epochs
from experiments.lfw.seeds import format_seed_epochs, format_spread
from experiments.lfw.training import equal_time_lines

RESULTS_JSON = "results.json"

RESULTS_MD = "results.md"

_TIME_DIGITS = 1


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
        raise ValueError(
            "Invalid value for argument `directories`. Expected at least one "
            "folder. Received: directories=[]"
        )
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
                    k
                    for k in set(run[key]) | set(first[key])
                    if run[key].get(k) != first[key].get(k)
                )
                raise ValueError(
                    f"Cannot merge {directory} with {directories[0]}: their "
                    f"{key} differ in {differing} (every sitting must use the "
                    f"same data and budget). Received: "
                    + ", ".join(
                        f"{k}={run[key].get(k)!r} vs {first[key].get(k)!r}" for k in differing
                    )
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
    sittings = [sitting for run in runs for sitting in run.get("sittings", [sitting_record(run)])]
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    shown, reconstructions, samples = None, {}, {}
    for directory in directories:
        images, run_reconstructions, run_samples = load_figure_arrays(directory)
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
    save_figure_arrays(output_dir, shown, reconstructions, samples)
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
        "held_out_real": first.get("held_out_real"),
        "figures": draw_figures(output_dir, shown, reconstructions, samples, histories),
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
    per-image sum of squared error is comparable. A configuration trained
    with several seeds shows `mean ± std (min-max)` over them in every
    score's cell; one trained for its greedy partner's wall time
    (`--equal-time`) is listed under the table with its epochs and time.

    Args:
        results: The dict returned by `run_experiment` (or read back from
            `results.json`).

    Returns:
        A string.
    """
    settings = results["settings"]
    data = results["data"]
    comparable = results.get("paper_comparable", False)
    sittings = results.get("sittings") or [sitting_record(results)]
    seeds = settings.get("seeds", 1)
    seed_words = f"seed {settings['seed']}"
    if seeds > 1:
        seed_words = (
            f"seeds {settings['seed']} to {settings['seed'] + seeds - 1} (weights, data "
            f"order, samples; the split is seed {settings['seed']}'s)"
        )
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
        f"{data['num_images']['test']} test images ({split_words(data)}), "
        f"shape {tuple(data['image_shape'])}",
        f"- Scored on the first {data['test_images_scored']} test images "
        f"({data['test_people_scored'] or 'unnamed'} people none of whom "
        f"was trained on), the same for every configuration",
        f"- Architecture: {settings['depth']} levels, base filters "
        f"{settings['base_filters']}, tensor shapes {settings['shapes']}",
        f"- Training: {settings['optimizer']}, loss {settings['loss']}, "
        f"batch {settings['batch_size']}, {seed_words}, shared "
        f"BN decoder statistics {settings['shared_bn_decoder_statistics']!r}",
        f"- Budget: {results['budget']}",
    ]
    if seeds > 1:
        lines.append(
            f"- Seeds: every configuration trained {seeds} times; each score below is "
            f"mean ± sample standard deviation (min-max) over the seeds; the figures "
            f"show the first seed's models"
        )
    lines += [
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
        runs = entry.get("seeds") or []
        spread = entry.get("spread") if len(runs) > 1 else None
        row = [f"`{entry['name']}`"]
        for key, _, digits in METRICS:
            row.append(_cell(entry["metrics"][key], spread, ("metrics", key), digits, len(runs)))
        if comparable:
            paper = entry.get("paper_sum_squared_error")
            row.append("-" if paper is None else f"{paper:g}")
        row.append(_cell(entry["train_seconds"], spread, ("train_seconds",), _TIME_DIGITS))
        row.append(format_seed_epochs(runs) if spread else format_epochs(entry["epochs_by_stage"]))
        lines.append("| " + " | ".join(row) + " |")
    lines += equal_time_lines(results["configurations"])
    lines += ["", "Configurations:", ""]
    for entry in results["configurations"]:
        lines.append(f"- `{entry['name']}`: {entry['description']}")
    lines += _samples_lines(results)
    figures = results.get("figures", {})
    titles = {
        "reconstructions": "Reconstructions of the same held-out faces (top row: the originals)",
        "samples": "Generated faces, one row per configuration: the VAEs decode N(0, I) codes, "
        "the others codes drawn from a density fitted to their training codes",
        "training_curves": "Training (solid) and validation (dashed) loss per epoch, stages shaded",
    }
    if figures:
        lines += ["", "## Figures", ""]
        for key, path in figures.items():
            lines += [f"{titles.get(key, key)}:", "", f"![{key}]({path})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _samples_lines(results):
    """The samples section: how near and how crisp each configuration's samples are."""
    entries = [entry for entry in results["configurations"] if entry.get("samples")]
    if not entries:
        return []
    count = entries[0]["samples"]["count"]
    reference = results.get("held_out_real")
    lines = [
        "",
        "## Samples",
        "",
        f"Each configuration generated {count} images: the VAEs decode codes drawn "
        f"from N(0, I); the deterministic configurations fit a mixture of Gaussians "
        f"(`RecursiveTrainer.fit_latent_density`) to the codes of the training "
        f"faces and decode codes drawn from it. The first two scores are taken against the "
        f"{results['data']['num_images']['train']} training faces: the mean over "
        f"the images of the sum of squared error to the nearest training face (a "
        f"copy of a training face is at 0, uniform noise is far, and a blurry face "
        f"is nearer than a sharp one, so read it beside the next column), and the "
        f"images' mean sharpness (variance of the Laplacian) over the training "
        f"faces' (1 = as crisp as the training faces, below 1 blurrier, above 1 "
        f"noisier). The spread is, per pixel value, the standard deviation across "
        f"the images, averaged over the values (0 when all images are alike). The "
        f"first row scores held-out real faces the same way"
        + (
            f" (their spread over the first {reference['spread_count']} of them)."
            if reference and reference.get("spread_count")
            else "."
        ),
        "",
    ]
    header = ["configuration", "codes drawn from"] + [title for _, title, _ in SAMPLE_METRICS]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---", "---"] + ["---:"] * len(SAMPLE_METRICS)) + "|")
    rows = []
    if reference:
        rows.append((f"held-out real faces ({reference['count']})", "-", reference, None, 1))
    for entry in entries:
        record = entry["samples"]
        source = record["density"]
        if record.get("density_components"):
            source = f"mixture of {record['density_components']} Gaussians"
        runs = entry.get("seeds") or []
        spread = entry["spread"] if len(runs) > 1 else None
        rows.append((f"`{entry['name']}`", source, record, spread, len(runs)))
    for name, source, record, spread, total in rows:
        cells = [name, source]
        cells += [
            _cell(record.get(key), spread, ("samples", key), digits, total)
            for key, _, digits in SAMPLE_METRICS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _cell(value, spread, path, digits, total=None):
    """A score's cell: the value, or with several seeds `mean ± std (min-max)`."""
    if spread is None:
        return _format_number(value, digits)
    for key in path:
        spread = spread.get(key) or {}
    return format_spread(spread, digits, total)


def split_words(data):
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


def sitting_record(results):
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


def _format_number(value, digits):
    return "nan" if value is None else f"{value:.{digits}f}"


def _format_load(load):
    if not load:
        return "unknown"
    return ", ".join(f"{v:.2f}" for v in load)


def load_average():
    """The machine's load average over 1, 5 and 15 minutes, or `None`."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_record():
    """What a run records about the machine it ran on."""
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
