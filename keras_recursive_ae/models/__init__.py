"""Symmetric autoencoders: any pair of blocks, and the mirrored conv stack."""

from keras_recursive_ae.models.mirrored_conv_stack import MirroredConvStack
from keras_recursive_ae.models.symmetric_autoencoder import SymmetricAutoencoder

__all__ = ["MirroredConvStack", "SymmetricAutoencoder"]
