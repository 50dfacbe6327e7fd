"""The LFW reference experiment: the paper's configurations, measured.

Trains the configurations of Ray & Hannon, "Recursively Trained
Autoencoders" (2022) on Labeled Faces in the Wild with the same budget,
scores every one on the same held-out faces (people held out by name) with
the four metrics of `keras_recursive_ae.metrics`, and writes:

- `results.json` and `results.md`: per configuration, the mean per-image sum
  of squared error (the paper's Table 1 metric), PSNR, SSIM and sharpness
  ratio on the test faces, the training time and the epochs of each stage,
  with the command, date, machine and load of the run; and the scores of
  its samples (`--samples`, 64): the mean distance of a sample to its
  nearest training face (sum of squared error) and the samples' sharpness
  against the training faces, beside the same two numbers for held-out
  real faces (see `SampleScorer`);
- `reconstructions.png`: the same test faces rebuilt by every configuration
  (the paper's Figure 6);
- `samples.png`: generated images, one row per configuration: the
  variational ones decode N(0, I) codes (the paper's Figure 4), the
  deterministic ones codes drawn from a Gaussian mixture fitted to the codes
  of their training faces (`RecursiveTrainer.fit_latent_density`,
  `--density-components`, 10);
- `training_curves.png`: training and validation loss per epoch, one panel
  per configuration, stages shaded;
- `figure_arrays.npz`: the pixels the figures show (8-bit), kept so that
  `--merge` can draw them again.

With `--tensorboard DIR`, each configuration also writes a TensorBoard run,
`DIR/<name>`: Keras' own curves (`keras.callbacks.TensorBoard`, epochs
numbered across stages) and a `ReconstructionLogger` on the figure's test
faces, so `tensorboard --logdir DIR` compares the configurations side by side.

Too many configurations for one sitting? Run them in groups with the same
flags into separate folders, then join them with
`--merge DIR [DIR ...] --output-dir OUT` (see `merge_results`).

Run it from a checkout of the repository (it is not installed with the
library, and uses only the library's public API):

    python examples/lfw_faces.py --data-dir path/to/lfw
    python -m experiments.lfw --data-dir path/to/lfw --configs paper   # from the root

The defaults (32x32 faces, 4,000 images, 3 epochs per weight, all twelve
configurations) take about 5 minutes on 2 CPU cores and write to
`outputs/lfw_faces/`.

With no `--data-dir` (and no `--download`) it falls back to the 100 LFW
faces that scikit-image ships (25x25 grey) and says so.

**Configurations** (`--configs`, names or groups; see `CONFIGURATIONS`):
the paper's eight (`stacked` = trained end to end, `recursive` = trained
greedily one level at a time; each with no normalization, standard batch
norm, shared batch norm, and shared batch norm with ReLU), its two
variational autoencoders, and two schedules beyond the paper: `joint` (one
model, a reconstruction loss at every decoder level) and
`recursive_fine_tune` (greedy, then end-to-end fine-tuning).

**Budget.** `--epochs E` is the number of passes over the training images
that every weight is trained for: a greedy run trains each stage (level)
for `E` epochs, an end-to-end or joint run trains the whole model for `E`
epochs. This is the paper's comparison at equal epochs. A greedy stage
epoch costs less than an end-to-end epoch (it runs one level on cached
inputs), so train times differ and are reported. `recursive_fine_tune` is
the one configuration with a larger budget: `E` epochs per stage, then
`--fine-tune-epochs` (default `E`) end-to-end epochs, i.e. the stacked
budget on top of a greedy start.

**Architecture.** `MirroredConvStack.paper(input_shape=...)`, the paper's
network scaled to the image size: stride-2 "same" convolutions (kernel 5 at
level 1, 3 elsewhere, filters doubling from `--base-filters`, SELU unless
the configuration says ReLU), mirrored by `Conv2DTranspose` levels ending
in a sigmoid, by default down to a 1x1 code as in the paper (at most 7
levels: 7 at 128x128, 5 at 32x32).

**The error metric scales with the image size**: the per-image sum of
squared error sums over `height * width * channels` values, so only a
128x128x3 run is comparable with the paper's Table 1; `results.md` shows the
paper's numbers beside ours only then.

**Seeds and equal time.** `--seeds N` trains every configuration N times
(model seeds `--seed` to `--seed + N - 1`, on the split of `--seed`);
`results.json` keeps each seed's scores and their mean, sample standard
deviation, min and max, and `results.md` shows `mean ± std (min-max)`; the
figures show the first seed's models. `--equal-time` gives each end-to-end
configuration its greedy partner's wall time (same seed) instead of
`--epochs`: `stacked` trains until it has run as long as `recursive`, and so
on. The group `map` (`stacked`, `recursive`, `recursive_fine_tune`,
`stacked_bn`, `recursive_bn`) is the map of recursive vs stacked training
meant for both.

The modules: `configurations` (what is trained), `run` (`ExperimentConfig`,
the flags as one object, and `run_experiment`, training and scoring),
`training` (one configuration, for `--epochs` or a wall time), `seeds`
(`--seeds`), `scores`, `samples` (generating and scoring samples), `report`
(`results.json`, `results.md`, `--merge`), `figures`, `tensorboard_logs`
(`--tensorboard`) and `cli`. The library never imports this package.
"""

from experiments.lfw.cli import build_parser, config_from_args, main
from experiments.lfw.configurations import (
    CONFIGURATION_GROUPS,
    CONFIGURATIONS,
    PAPER_IMAGE_SHAPE,
    Configuration,
    build_autoencoder,
    select_configurations,
)
from experiments.lfw.figures import (
    plot_reconstructions,
    plot_samples,
    plot_training_curves,
)
from experiments.lfw.report import (
    merge_results,
    results_markdown,
    write_results,
)
from experiments.lfw.run import ExperimentConfig, run_experiment
from experiments.lfw.samples import SampleScorer
from experiments.lfw.scores import (
    METRICS,
    evaluate_reconstructions,
    nearest_training_distance,
    score_samples,
)
from experiments.lfw.tensorboard_logs import tensorboard_callbacks
from experiments.lfw.training import train_configuration

__all__ = [
    "CONFIGURATIONS",
    "CONFIGURATION_GROUPS",
    "Configuration",
    "ExperimentConfig",
    "METRICS",
    "PAPER_IMAGE_SHAPE",
    "SampleScorer",
    "build_autoencoder",
    "build_parser",
    "config_from_args",
    "evaluate_reconstructions",
    "main",
    "merge_results",
    "nearest_training_distance",
    "plot_reconstructions",
    "plot_samples",
    "plot_training_curves",
    "results_markdown",
    "run_experiment",
    "score_samples",
    "select_configurations",
    "tensorboard_callbacks",
    "train_configuration",
    "write_results",
]
