"""Draws the schedule map of docs/results.md from LFW runner results.

    python docs/figures/plot_schedule_map.py OUT.png RESULTS.json [RESULTS.json ...]

One panel per image size, one bar per configuration: the mean over the
runner's seeds (`--seeds`) of the held-out sum of squared error per image,
with the min-max range as the error bar. A configuration trained with
`--equal-time` gets its own bar, "(equal time)"; a configuration already
drawn for that size by an earlier file is not drawn twice.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402


def bars(paths):
    """{image size: [(label, mean, min, max, seeds)]} from runner results files."""
    panels = {}
    for path in paths:
        with open(path) as file:
            results = json.load(file)
        size = results["data"]["image_shape"][0]
        panel = panels.setdefault(size, [])
        for configuration in results["configurations"]:
            label = configuration["name"]
            if any("equal_time" in seed for seed in configuration.get("seeds", [])):
                label += " (equal time)"
            if any(bar[0] == label for bar in panel):
                continue
            spread = configuration.get("spread", {}).get("metrics", {}).get("sum_squared_error")
            if spread is None:  # one seed
                value = configuration["metrics"]["sum_squared_error"]
                spread = {"mean": value, "min": value, "max": value, "count": 1}
            panel.append((label, spread["mean"], spread["min"], spread["max"], spread["count"]))
    return dict(sorted(panels.items()))


def main(out, *paths):
    panels = bars(paths)
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for axis, (size, panel) in zip(axes[0], panels.items()):
        labels = [bar[0] for bar in panel]
        means = [bar[1] for bar in panel]
        low = [bar[1] - bar[2] for bar in panel]
        high = [bar[3] - bar[1] for bar in panel]
        axis.bar(range(len(panel)), means, yerr=[low, high], capsize=4, color="#7fa7d9")
        axis.set_xticks(range(len(panel)), labels, rotation=35, ha="right")
        seeds = sorted({bar[4] for bar in panel})
        axis.set_title(f"{size}x{size}, seeds per bar: {', '.join(map(str, seeds))}")
        axis.set_ylabel("held-out SSE per image (lower is better)")
    figure.suptitle("Mean over seeds, min-max as error bars")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
