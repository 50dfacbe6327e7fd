"""The experiment's configurations and the network each one trains."""

import dataclasses
import math

from keras_recursive_ae import MirroredConvStack

PAPER_IMAGE_SHAPE = (128, 128, 3)
"""The image shape at which the paper's Table 1 numbers are comparable."""

GREEDY_KL_SCALE = 0.01
"""The greedy VAE's KL weight, times the number of values of `T_{n-1}`.

At one over that number (the ELBO's balance) the innermost stage diverged at
128x128 on all of LFW (its loss 0.54, 25.97, 10.22 over 3 epochs) and the
model rebuilt every face as noise. At a hundredth it trains stably and
rebuilds held-out faces at 1.22 times the error of the deterministic greedy
model (a tenth: 1.61 times); `experiments/studies/vae_kl.py`, docs/results.md
run F.
"""


@dataclasses.dataclass(frozen=True)
class Configuration:
    """One trained model of the experiment.

    Attributes:
        name: Short name, used by `--configs` and in every output.
        description: One line, for headers and tables.
        schedule: `RecursiveTrainer` schedule: `"greedy"`, `"end_to_end"`
            or `"joint"`.
        normalization: `MirroredConvStack` normalization: `None`,
            `"batch"` or `"shared"`.
        activation: Activation of every block but the output block.
        variational: Whether the innermost level is a variational
            bottleneck.
        fine_tune: Whether end-to-end fine-tuning follows the greedy stages.
        paper_error: The paper's Table 1 error (128x128x3), or `None` where
            the paper gives no number.
    """

    name: str
    description: str
    schedule: str
    normalization: "str | None" = None
    activation: str = "selu"
    variational: bool = False
    fine_tune: bool = False
    paper_error: "float | None" = None


def _paper_pair(normalization, activation, title, stacked_error, recursive_error):
    suffix = {
        (None, "selu"): "",
        ("batch", "selu"): "_bn",
        ("shared", "selu"): "_shared_bn",
        ("shared", "relu"): "_shared_bn_relu",
    }[(normalization, activation)]
    return [
        Configuration(
            name=f"stacked{suffix}",
            description=f"stacked (end to end), {title}",
            schedule="end_to_end",
            normalization=normalization,
            activation=activation,
            paper_error=stacked_error,
        ),
        Configuration(
            name=f"recursive{suffix}",
            description=f"recursive (greedy), {title}",
            schedule="greedy",
            normalization=normalization,
            activation=activation,
            paper_error=recursive_error,
        ),
    ]


CONFIGURATIONS = {
    c.name: c
    for c in [
        # The paper's Table 1, 128x128x3 LFW, mean over 100 test images.
        *_paper_pair(None, "selu", "no BN, SELU", 258.0, 239.0),
        *_paper_pair("batch", "selu", "standard BN, SELU", 467.0, 7831.0),
        *_paper_pair("shared", "selu", "shared BN, SELU", 643.0, 455.0),
        *_paper_pair("shared", "relu", "shared BN, ReLU", 643.0, 2020.0),
        Configuration(
            name="stacked_vae",
            description="stacked (end to end) VAE, no BN, SELU",
            schedule="end_to_end",
            variational=True,
        ),
        Configuration(
            name="recursive_vae",
            description="recursive (greedy) VAE, no BN, SELU",
            schedule="greedy",
            variational=True,
        ),
        Configuration(
            name="joint",
            description="joint: one model, loss at every decoder level, no BN, SELU",
            schedule="joint",
        ),
        Configuration(
            name="recursive_fine_tune",
            description="recursive (greedy) + end-to-end fine-tuning, no BN, SELU",
            schedule="greedy",
            fine_tune=True,
        ),
    ]
}
"""Every configuration of the experiment, by name, in the order they run."""

CONFIGURATION_GROUPS = {
    "all": tuple(CONFIGURATIONS),
    "paper": tuple(n for n, c in CONFIGURATIONS.items() if c.paper_error is not None),
    "vae": ("stacked_vae", "recursive_vae"),
    "beyond": ("joint", "recursive_fine_tune"),
    # Recursive vs stacked, with and without batch norm (see `--seeds`, `--equal-time`).
    "map": ("stacked", "recursive", "recursive_fine_tune", "stacked_bn", "recursive_bn"),
}
"""Names that `--configs` expands to several configurations."""


def select_configurations(names=None):
    """Returns the configurations named, groups expanded, duplicates dropped.

    Args:
        names: Optional iterable of configuration or group names (see
            `CONFIGURATIONS` and `CONFIGURATION_GROUPS`); an item may hold
            several names separated by commas. Defaults to `None` (all).

    Returns:
        A list of `Configuration`, in the order `CONFIGURATIONS` lists them.

    Raises:
        ValueError: If a name is unknown, or no name is given.

    Example:

    >>> from experiments.lfw import select_configurations
    >>> ", ".join(c.name for c in select_configurations(["recursive,stacked", "vae"]))
    'stacked, recursive, stacked_vae, recursive_vae'
    """
    if names is None:
        names = ["all"]
    if isinstance(names, str):
        names = [names]
    wanted = set()
    for item in names:
        for name in str(item).split(","):
            name = name.strip()
            if not name:
                continue
            if name in CONFIGURATION_GROUPS:
                wanted.update(CONFIGURATION_GROUPS[name])
            elif name in CONFIGURATIONS:
                wanted.add(name)
            else:
                raise ValueError(
                    f"Invalid value for argument `configs`. Expected names "
                    f"among {list(CONFIGURATIONS)} or groups among "
                    f"{list(CONFIGURATION_GROUPS)}. Received: {name!r}"
                )
    if not wanted:
        raise ValueError(
            f"Invalid value for argument `configs`. Expected at least one "
            f"name. Received: configs={list(names)!r}"
        )
    return [c for name, c in CONFIGURATIONS.items() if name in wanted]


def build_autoencoder(
    configuration,
    image_shape,
    *,
    base_filters=16,
    depth=None,
    decoder_statistics="encoder",
    latent_dim=None,
    kl_weight=None,
):
    """The paper's architecture, scaled to `image_shape`, for a configuration.

    `MirroredConvStack.paper(input_shape=image_shape, ...)` with the
    configuration's schedule-independent options (activation,
    normalization, variational bottleneck).

    Args:
        configuration: A `Configuration`.
        image_shape: `(height, width, channels)` of one image.
        base_filters: Filters of level 1, doubling at every level. Defaults
            to `16` (the paper's).
        depth: Optional number of levels. Defaults to `None` (as
            `MirroredConvStack.paper`: down to a 1x1 code, at most 7).
        decoder_statistics: `SharedBatchNorm`'s argument for the
            shared-norm configurations: `"encoder"` (the library's default)
            or `"batch"` (plain Keras behaviour, as the paper ran it).
        latent_dim: Optional code size of a variational configuration.
            Defaults to `None`: the size of the plain models' innermost
            code `T_n` (256 at 32x32, 1024 at 128x128), so every
            configuration has the same bottleneck.
        kl_weight: Optional weight of a variational configuration's KL term.
            Defaults to `None`: end to end, one over the number of values
            of the image, so with the mean squared error the loss is, up to
            a constant factor, a negative ELBO with a Gaussian likelihood;
            greedy, `GREEDY_KL_SCALE` (a hundredth) over the number of values of
            `T_{n-1}`, which the stage that trains the bottleneck rebuilds:
            at the ELBO's balance that stage diverged at 128x128 on all of
            LFW.

    Returns:
        A `MirroredConvStack`.

    Example:

    ```python
    from experiments.lfw import CONFIGURATIONS, build_autoencoder

    stack = build_autoencoder(CONFIGURATIONS["recursive_shared_bn"], (32, 32, 3))
    stack.shapes[-1]     # (1, 1, 256): 5 levels down to a 1x1 code
    ```
    """
    preset = {
        "input_shape": tuple(int(s) for s in image_shape),
        "base_filters": base_filters,
        "depth": depth,
    }
    options = {
        "activation": configuration.activation,
        "normalization": configuration.normalization,
    }
    if configuration.normalization == "shared":
        options["decoder_statistics"] = decoder_statistics
    if configuration.variational:
        # T_0..T_n of the plain network, the one the other configurations train.
        shapes = MirroredConvStack.paper(**preset).shapes
        if latent_dim is None:
            latent_dim = math.prod(shapes[-1])
        if kl_weight is None:
            if configuration.schedule == "greedy":
                kl_weight = GREEDY_KL_SCALE / math.prod(shapes[-2])
            else:
                kl_weight = 1.0 / math.prod(shapes[0])
        options.update(variational=True, latent_dim=int(latent_dim), kl_weight=float(kl_weight))
    return MirroredConvStack.paper(**preset, **options)
