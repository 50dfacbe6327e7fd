"""`--seeds N`: every configuration trained N times, and the spread of its scores.

Seed `s` of a configuration sets `keras.utils.set_random_seed(s)` before its
model is built: initial weights, data order, dropout, and the codes its
samples are drawn from. The split by person stays the one of `--seed`, so
every seed is scored on the same held-out people.
"""

import math

import numpy as np

from experiments.lfw.scores import METRICS, SAMPLE_METRICS, format_epochs


def model_seeds(seed, count):
    """The model seeds of `--seed seed --seeds count`.

    Args:
        seed: The first seed (also the split's).
        count: How many seeds, at least 1.

    Returns:
        `[seed, seed + 1, ..., seed + count - 1]`.

    Raises:
        ValueError: If `count` is not an integer of at least 1.

    Example:

    >>> from experiments.lfw.seeds import model_seeds
    >>> model_seeds(5, 3)
    [5, 6, 7]
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(
            f"Invalid value for argument `seeds`. Expected an integer of at least 1. "
            f"Received: seeds={count!r}"
        )
    return [int(seed) + i for i in range(int(count))]


def spread(values):
    """Mean, sample standard deviation, min and max of the finite values.

    Args:
        values: Numbers; `None` (a non-finite score in `results.json`) and
            non-finite values are left out.

    Returns:
        A dict with `mean`, `std` (with `n - 1` in the denominator; `None`
        below two values), `min`, `max` (`None` without values) and
        `count`, the number of values kept.

    Example:

    >>> from experiments.lfw.seeds import spread
    >>> spread([1.0, 2.0, None, 6.0])
    {'mean': 3.0, 'std': 2.6457513110645907, 'min': 1.0, 'max': 6.0, 'count': 3}
    """
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not kept:
        return {"mean": None, "std": None, "min": None, "max": None, "count": 0}
    return {
        "mean": float(np.mean(kept)),
        "std": float(np.std(kept, ddof=1)) if len(kept) > 1 else None,
        "min": min(kept),
        "max": max(kept),
        "count": len(kept),
    }


def seed_spread(runs):
    """The `spread` over seeds of every numeric score of one configuration.

    Args:
        runs: The configuration's per-seed records, as in `results.json`'s
            `"seeds"`: dicts with `metrics`, `train_seconds`, `epochs_run`
            and, optionally, `samples`.

    Returns:
        A dict shaped like a run: `{"metrics": {key: spread}, "train_seconds":
        spread, "epochs_run": spread, "samples": {key: spread}}`.
    """
    samples = [run.get("samples") or {} for run in runs]
    return {
        "metrics": {
            key: spread([run["metrics"].get(key) for run in runs]) for key, _, _ in METRICS
        },
        "train_seconds": spread([run["train_seconds"] for run in runs]),
        "epochs_run": spread([run["epochs_run"] for run in runs]),
        "samples": {key: spread([s.get(key) for s in samples]) for key, _, _ in SAMPLE_METRICS},
    }


def format_spread(stats, digits, total=None):
    """A `spread` as `"mean ± std (min-max)"`, for `results.md`.

    Args:
        stats: A dict from `spread`.
        digits: Digits after the point.
        total: Optional number of seeds; when fewer values were finite,
            the cell says how many.

    Returns:
        A string; `"nan"` without values.

    Example:

    >>> from experiments.lfw.seeds import format_spread, spread
    >>> format_spread(spread([1.0, 2.0, 6.0]), 1)
    '3.0 ± 2.6 (1.0-6.0)'
    """
    if not stats or not stats.get("count"):
        return "nan"
    text = f"{stats['mean']:.{digits}f}"
    if stats["std"] is not None:
        text += (
            f" ± {stats['std']:.{digits}f} ({stats['min']:.{digits}f}-{stats['max']:.{digits}f})"
        )
    if total is not None and stats["count"] < total:
        text += f" [{stats['count']} of {total} seeds finite]"
    return text


def format_seed_epochs(runs):
    """The epochs column over seeds: one value when every seed ran the same.

    Example:

    >>> from experiments.lfw.seeds import format_seed_epochs
    >>> format_seed_epochs([{"epochs_by_stage": [["end_to_end", n]]} for n in (7, 5, 6)])
    '5-7 end_to_end'
    """
    texts = [format_epochs(run["epochs_by_stage"]) for run in runs]
    if len(set(texts)) == 1:
        return texts[0]
    phases = [[stage for stage, _ in run["epochs_by_stage"]] for run in runs]
    if (
        all(p == phases[0] for p in phases)
        and len(phases[0]) == 1
        and isinstance(phases[0][0], str)
    ):
        counts = [run["epochs_by_stage"][0][1] for run in runs]
        return f"{min(counts)}-{max(counts)} {phases[0][0]}"
    return " / ".join(texts)
