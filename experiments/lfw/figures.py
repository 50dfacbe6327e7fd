"""The figures of a run, and the pixels they show, kept for `--merge`."""

import math
from pathlib import Path

import numpy as np

from experiments.lfw.scores import stage_runs

RECONSTRUCTIONS_PNG = "reconstructions.png"

SAMPLES_PNG = "samples.png"

TRAINING_CURVES_PNG = "training_curves.png"

FIGURE_ARRAYS_NPZ = "figure_arrays.npz"

FIGURE_FACES = 8


def plot_reconstructions(images, reconstructions, path, columns=FIGURE_FACES):
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
    """Saves one row of generated images per configuration.

    Args:
        samples: Dict mapping configuration names to generated images:
            the variational ones decoded from N(0, I) codes, the
            deterministic ones from codes drawn from their fitted density.
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
        ax.text(
            -8,
            r * cell_h + height * scale / 2,
            name,
            ha="right",
            va="center",
            fontsize=8,
            clip_on=False,
        )
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
        for shade, (stage, first, last) in enumerate(stage_runs(stages)):
            if shade % 2:
                ax.axvspan(first + 0.5, last + 1.5, color="0.92", lw=0)
            ax.text(
                (first + last + 2) / 2,
                1.0,
                str(stage),
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=6,
            )
            span = slice(first, last + 1)
            for key, style in (("loss", "-"), ("val_loss", "--")):
                values = record.get(key)
                if values is None:
                    continue
                segment = np.asarray(values[span], dtype=float)
                if np.all(~np.isfinite(segment)):
                    continue
                ax.plot(
                    epochs[span],
                    segment,
                    style,
                    color="C0" if key == "loss" else "C1",
                    marker="." if last == first else None,
                    lw=1,
                )
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


def draw_figures(output_dir, images, reconstructions, samples, histories):
    figures = {}
    if reconstructions:
        plot_reconstructions(images, reconstructions, output_dir / RECONSTRUCTIONS_PNG)
        figures["reconstructions"] = RECONSTRUCTIONS_PNG
    if samples:
        plot_samples(samples, output_dir / SAMPLES_PNG)
        figures["samples"] = SAMPLES_PNG
    if histories:
        plot_training_curves(histories, output_dir / TRAINING_CURVES_PNG)
        figures["training_curves"] = TRAINING_CURVES_PNG
    return figures


def _to_uint8(images):
    return np.round(np.clip(np.asarray(images, dtype="float32"), 0.0, 1.0) * 255).astype("uint8")


def save_figure_arrays(output_dir, images, reconstructions, samples):
    """Keeps what the figures show (8-bit), so `merge_results` can redraw them."""
    arrays = {"images": _to_uint8(images)}
    arrays.update({f"reconstruction__{k}": _to_uint8(v) for k, v in reconstructions.items()})
    arrays.update({f"samples__{k}": _to_uint8(v) for k, v in samples.items()})
    np.savez_compressed(Path(output_dir) / FIGURE_ARRAYS_NPZ, **arrays)


def load_figure_arrays(directory):
    with np.load(Path(directory) / FIGURE_ARRAYS_NPZ) as arrays:
        float_arrays = {k: arrays[k].astype("float32") / 255.0 for k in arrays.files}
    reconstructions = {
        k.split("__", 1)[1]: v for k, v in float_arrays.items() if k.startswith("reconstruction__")
    }
    samples = {k.split("__", 1)[1]: v for k, v in float_arrays.items() if k.startswith("samples__")}
    return float_arrays["images"], reconstructions, samples


def _figure(width, height):
    # A bare Figure draws with Agg and leaves pyplot's global state alone.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))
