"""Layer-wise ("recursive") training of symmetric autoencoders for Keras 3."""

from keras_recursive_ae.mirrored_conv_stack import MirroredConvStack
from keras_recursive_ae.recursive_trainer import RecursiveTrainer
from keras_recursive_ae.shared_batch_norm import SharedBatchNorm
from keras_recursive_ae.symmetric_autoencoder import SymmetricAutoencoder
from keras_recursive_ae.version import __version__

__all__ = [
    "MirroredConvStack",
    "RecursiveTrainer",
    "SharedBatchNorm",
    "SymmetricAutoencoder",
    "__version__",
]
