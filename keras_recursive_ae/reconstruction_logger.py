"""`ReconstructionLogger`'s old import path; it lives in `keras_recursive_ae.callbacks`."""

from keras_recursive_ae.callbacks.reconstruction_logger import ReconstructionLogger

__all__ = ["ReconstructionLogger"]
