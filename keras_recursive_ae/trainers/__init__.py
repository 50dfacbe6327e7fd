"""Recursive training: the trainer, its phases, their data and their run."""

from keras_recursive_ae.trainers.recursive_trainer import RecursiveTrainer
from keras_recursive_ae.trainers.stage_input_cache import StageInputCache

__all__ = ["RecursiveTrainer", "StageInputCache"]
