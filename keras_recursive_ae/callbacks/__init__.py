"""Keras callbacks for watching recursive training."""

from keras_recursive_ae.callbacks.reconstruction_logger import ReconstructionLogger

__all__ = ["ReconstructionLogger"]
