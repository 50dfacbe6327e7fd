"""Layer-wise ("recursive") training of symmetric autoencoders for Keras 3."""

import importlib

from keras_recursive_ae import generation, metrics
from keras_recursive_ae.callbacks.reconstruction_logger import ReconstructionLogger
from keras_recursive_ae.generation import LatentDensity, fit_latent_density, generate
from keras_recursive_ae.layers.shared_batch_norm import SharedBatchNorm
from keras_recursive_ae.layers.variational_bottleneck import VariationalBottleneck
from keras_recursive_ae.metrics import (
    PSNR,
    SSIM,
    SharpnessRatio,
    SumSquaredError,
    psnr,
    sharpness,
    sharpness_ratio,
    ssim,
    sum_squared_error,
)
from keras_recursive_ae.models.levels import GreedyTrainingWarning
from keras_recursive_ae.models.mirrored_conv_stack import MirroredConvStack
from keras_recursive_ae.models.symmetric_autoencoder import SymmetricAutoencoder
from keras_recursive_ae.trainers.recursive_trainer import RecursiveTrainer
from keras_recursive_ae.trainers.stage_input_cache import StageInputCache
from keras_recursive_ae.version import __version__

__all__ = [
    "GreedyTrainingWarning",
    "LFWSplits",
    "LatentDensity",
    "MirroredConvStack",
    "PSNR",
    "SSIM",
    "SharpnessRatio",
    "SumSquaredError",
    "ReconstructionLogger",
    "RecursiveTrainer",
    "SharedBatchNorm",
    "StageInputCache",
    "SymmetricAutoencoder",
    "VariationalBottleneck",
    "__version__",
    "fit_latent_density",
    "generate",
    "generation",
    "lfw",
    "load_lfw",
    "metrics",
    "psnr",
    "sharpness",
    "sharpness_ratio",
    "ssim",
    "sum_squared_error",
]

# The LFW loader imports TensorFlow (for `tf.data`): it loads on first use, so
# that `import keras_recursive_ae` under JAX or PyTorch does not import it.
_LAZY = {"lfw": None, "LFWSplits": "lfw", "load_lfw": "lfw"}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module("keras_recursive_ae.datasets.lfw")
    value = module if _LAZY[name] is None else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
