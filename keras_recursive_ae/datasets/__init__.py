"""Datasets. `keras_recursive_ae.datasets.lfw` imports TensorFlow (for `tf.data`)."""
