"""Scores of the reconstructions, and the history of a run, JSON-ready."""

import math

import numpy as np

from keras_recursive_ae import metrics as metrics_module

METRICS = (
    # (key, column title, digits in results.md)
    ("sum_squared_error", "sum sq. error (lower better)", 1),
    ("psnr", "PSNR dB (higher better)", 2),
    ("ssim", "SSIM (higher better)", 4),
    ("sharpness_ratio", "sharpness ratio (1 = as crisp as input)", 3),
)
"""The four scores of every configuration, as written to results.md."""


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
    >>> from keras_recursive_ae.experiments.lfw import evaluate_reconstructions
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
    return {key: float(np.mean(functions[key](images, reconstructions))) for key, _, _ in METRICS}


def finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def history_record(history, schedule="greedy", depth=None):
    """The history's per-epoch stage, loss and val_loss, JSON-ready.

    Args:
        history: The `keras.callbacks.History` of `RecursiveTrainer.fit`.
        schedule: The trainer's schedule. Every epoch of an `"end_to_end"`
            or `"joint"` run is labelled with the schedule's name.
        depth: Optional number of levels of a greedy run: a stage number
            above it is the end-to-end fine-tuning, labelled `"fine_tune"`
            (as is any stage the history names instead of numbering).

    Returns:
        A dict with `stage` (level numbers as `int`s, phases by name),
        `loss` and, with validation, `val_loss` (non-finite values `None`).
    """
    stages = [_stage_label(s) for s in history.history.get("stage", [])]
    if schedule != "greedy":
        stages = [schedule] * len(stages)
    else:
        stages = [
            s if isinstance(s, int) and (depth is None or s <= depth) else "fine_tune"
            for s in stages
        ]
    record = {"stage": stages}
    for key in ("loss", "val_loss"):
        if key in history.history:
            record[key] = [finite_or_none(v) for v in history.history[key]]
    if not record["stage"] and "loss" in record:
        record["stage"] = ["all"] * len(record["loss"])
    return record


def _stage_label(stage):
    """A level's number as an `int` (logs may carry it as a float), else a name."""
    if isinstance(stage, np.ndarray) and stage.ndim == 0:
        stage = stage.item()
    if isinstance(stage, (int, np.integer)) and not isinstance(stage, bool):
        return int(stage)
    if isinstance(stage, (float, np.floating)) and float(stage).is_integer():
        return int(stage)
    return str(stage)


def stage_runs(stages):
    """`(stage, first, last)` index ranges of consecutive equal stages."""
    runs = []
    for i, stage in enumerate(stages):
        if runs and runs[-1][0] == stage:
            runs[-1][2] = i
        else:
            runs.append([stage, i, i])
    return [tuple(r) for r in runs]


def epochs_by_stage(stages):
    """`[[stage, epochs], ...]` in order (JSON keeps no int keys)."""
    return [[stage, last - first + 1] for stage, first, last in stage_runs(stages)]


def format_epochs(epochs_by_stage):
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
