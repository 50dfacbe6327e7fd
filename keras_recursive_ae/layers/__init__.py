"""Keras layers of the library: one class per module."""

from keras_recursive_ae.layers.shared_batch_norm import SharedBatchNorm
from keras_recursive_ae.layers.variational_bottleneck import VariationalBottleneck

__all__ = ["SharedBatchNorm", "VariationalBottleneck"]
