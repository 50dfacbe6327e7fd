"""Layer-wise ("recursive") training of symmetric autoencoders for Keras 3."""

from keras_recursive_ae import lfw, metrics
from keras_recursive_ae.lfw import LFWSplits, load_lfw
from keras_recursive_ae.metrics import (
    PSNR,
    SSIM,
    SharpnessRatio,
    SumSquaredError,
    psnr,
    sharpness_ratio,
    ssim,
    sum_squared_error,
)
from keras_recursive_ae.mirrored_conv_stack import MirroredConvStack
from keras_recursive_ae.recursive_trainer import RecursiveTrainer
from keras_recursive_ae.shared_batch_norm import SharedBatchNorm
from keras_recursive_ae.symmetric_autoencoder import SymmetricAutoencoder
from keras_recursive_ae.variational import VariationalBottleneck
from keras_recursive_ae.version import __version__

__all__ = [
    "LFWSplits",
    "MirroredConvStack",
    "PSNR",
    "SSIM",
    "SharpnessRatio",
    "SumSquaredError",
    "RecursiveTrainer",
    "SharedBatchNorm",
    "SymmetricAutoencoder",
    "VariationalBottleneck",
    "__version__",
    "lfw",
    "load_lfw",
    "metrics",
    "psnr",
    "sharpness_ratio",
    "ssim",
    "sum_squared_error",
]
