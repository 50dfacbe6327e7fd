"""The LFW loader's old import path; it lives in `keras_recursive_ae.datasets.lfw`."""

from keras_recursive_ae.datasets.lfw import LFWSplits, default_data_options, load_lfw

__all__ = ["LFWSplits", "default_data_options", "load_lfw"]
