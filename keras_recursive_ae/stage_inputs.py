"""`StageInputCache`'s old import path; it lives in `keras_recursive_ae.trainers`."""

from keras_recursive_ae.trainers.stage_input_cache import StageInputCache

__all__ = ["StageInputCache"]
