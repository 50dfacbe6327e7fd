"""The LFW reference experiment: recursive vs stacked training, measured.

A thin front for `experiments.lfw` (in this repository, beside `examples/`;
not installed with the library): it trains the paper's configurations with
the same budget, scores them on held-out people and writes results.json,
results.md and the figures to outputs/lfw_faces/. The defaults (32x32 faces,
4,000 images, 3 epochs per weight, all twelve configurations) take about 3
minutes on 2 CPU cores.

    python examples/lfw_faces.py --data-dir ../shared/data/lfw
    python examples/lfw_faces.py --help

Without `--data-dir` it uses the 100 LFW faces that scikit-image ships.
"""

import os
import pathlib
import sys

# Before TensorFlow loads: 3 also hides the "failed call to cuInit" error
# that TensorFlow logs on every machine without a GPU.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The repository root, whatever the current directory, for `experiments`.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from experiments.lfw import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="python examples/lfw_faces.py"))
