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
    >>> from experiments.lfw import evaluate_reconstructions
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


SAMPLE_METRICS = (
    # (key, column title, digits in results.md)
    ("nearest_training_sse", "nearest training face, sum sq. error (noise is far)", 1),
    ("sharpness_ratio", "sharpness vs training faces (blur is low)", 3),
    ("pixel_spread", "spread across images (all alike is 0)", 4),
)
"""The three scores of generated images (and of held-out real faces), as in results.md."""

_SHARPNESS_EPSILON = 1e-8  # `metrics.sharpness_ratio`'s default


def image_chunks(images, chunk_size=256):
    """NumPy batches of `images`: slices of an array, or a dataset's batches.

    Args:
        images: An array `(N, height, width, channels)`, or an iterable of
            such batches (a batched `tf.data.Dataset`, whose `(images, _)`
            pairs give their images).
        chunk_size: Images per slice of an array; a dataset keeps its own
            batches. Defaults to `256`.

    Yields:
        NumPy arrays of images.
    """
    if isinstance(images, np.ndarray):
        for start in range(0, len(images), chunk_size):
            yield images[start : start + chunk_size]
        return
    for batch in images:
        # A dataset of `(images, anything)` pairs gives its images.
        yield np.asarray(batch[0] if isinstance(batch, (tuple, list)) else batch)


def nearest_training_distance(images, train_faces, chunk_size=256):
    """Mean over `images` of the sum of squared error to the nearest training face.

    For each image, the per-image sum of squared error (the paper's Table 1
    metric) to every training face, the smallest kept; the mean of these
    minima is returned. A generated image that copies a training face is at
    0; uniform noise is far from every face; held-out real faces show how
    far a new face falls. The training faces are read `chunk_size` at a
    time, and each chunk's distances come from one matrix product
    (`|a - b|^2 = |a|^2 - 2 a.b + |b|^2`, in float64), so memory holds
    `len(images) x chunk_size` distances, never images x faces x pixels.

    Args:
        images: The images to score, an array `(N, height, width, channels)`.
        train_faces: The training faces, of the same image shape: an array,
            or a batched `tf.data.Dataset` (see `image_chunks`).
        chunk_size: Training faces per matrix product. Defaults to `256`.

    Returns:
        A Python float.

    Raises:
        ValueError: If the image shapes differ or there are no training faces.

    Example:

    >>> import numpy as np
    >>> from experiments.lfw.scores import nearest_training_distance
    >>> train = np.stack([np.zeros((2, 2, 1)), np.ones((2, 2, 1))])
    >>> nearest_training_distance(np.full((1, 2, 2, 1), 0.25), train)
    0.25
    """
    images = np.asarray(images)
    flat = images.reshape(len(images), -1).astype("float64")
    squared_norms = np.square(flat).sum(axis=1)
    nearest = np.full(len(flat), np.inf)
    for chunk in image_chunks(train_faces, chunk_size):
        if chunk.shape[1:] != images.shape[1:]:
            raise ValueError(
                f"The training faces have shape {chunk.shape[1:]}, the images "
                f"{images.shape[1:]}. Received: train_faces with shape {chunk.shape}"
            )
        faces = chunk.reshape(len(chunk), -1).astype("float64")
        distances = squared_norms[:, None] - 2.0 * flat @ faces.T + np.square(faces).sum(axis=1)
        np.minimum(nearest, distances.min(axis=1, initial=np.inf), out=nearest)
    if not np.all(np.isfinite(nearest)):
        raise ValueError("Expected at least one training face. Received: train_faces with none")
    # The expansion can round a zero distance a hair below zero.
    return float(np.maximum(nearest, 0.0).mean())


def mean_sharpness(images, chunk_size=256):
    """Mean over `images` of `keras_recursive_ae.metrics.sharpness`.

    Args:
        images: An array of images, or a batched dataset (see `image_chunks`).
        chunk_size: Images per call for an array. Defaults to `256`.

    Returns:
        A Python float.
    """
    total, count = 0.0, 0
    for chunk in image_chunks(images, chunk_size):
        total += float(np.sum(metrics_module.sharpness(chunk), dtype="float64"))
        count += len(chunk)
    return total / count


def pixel_spread(images):
    """How different `images` are from each other: the spread across them.

    Per value (pixel and channel), the standard deviation over the images
    (NumPy's, `ddof=0`), averaged over the values. Identical images (a
    generator that collapsed to one face) are at 0; compare with as many
    held-out real faces.

    Args:
        images: An array `(N, height, width, channels)`.

    Returns:
        A Python float.

    Example:

    >>> import numpy as np
    >>> from experiments.lfw.scores import pixel_spread
    >>> pixel_spread(np.stack([np.zeros((2, 2, 1)), np.ones((2, 2, 1))]))
    0.5
    """
    return float(np.asarray(images, dtype="float64").std(axis=0).mean())


def score_samples(images, train_faces, train_sharpness=None):
    """How near generated (or held-out real) images are to the training faces.

    Args:
        images: The images to score, `(N, height, width, channels)`.
        train_faces: The training faces (an array or a batched dataset).
        train_sharpness: Optional `mean_sharpness(train_faces)`, when already
            known. Defaults to `None` (computed).

    Returns:
        A dict with `count`, `nearest_training_sse`
        (`nearest_training_distance`), `sharpness_ratio`: the images'
        mean sharpness over the training faces' mean sharpness, each plus
        the metric's `epsilon` (1 = as crisp as the training faces, below 1
        blurrier, above 1 noisier; a ratio of means rather than a mean of
        per-image ratios: a sample has no original of its own), and
        `pixel_spread` (`pixel_spread` of the images: 0 if all are alike).
    """
    if train_sharpness is None:
        train_sharpness = mean_sharpness(train_faces)
    ratio = (mean_sharpness(images) + _SHARPNESS_EPSILON) / (train_sharpness + _SHARPNESS_EPSILON)
    return {
        "count": int(len(images)),
        "nearest_training_sse": finite_or_none(nearest_training_distance(images, train_faces)),
        "sharpness_ratio": finite_or_none(ratio),
        "pixel_spread": finite_or_none(pixel_spread(images)),
    }
