"""The TensorFlow module, looked up without importing it (internal)."""

import sys


def imported_tensorflow():
    """The `tensorflow` module if something already imported it, else `None`.

    The library never imports TensorFlow itself: under the JAX or PyTorch
    backend it stays unloaded unless the user imported it. A user who passes
    a `tf.data.Dataset`, or who runs Keras on TensorFlow, has imported it.
    """
    return sys.modules.get("tensorflow")
