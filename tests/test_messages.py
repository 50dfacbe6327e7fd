"""Error messages a user can act on: short, and pointing to the API that works."""

import keras
import numpy as np
import tensorflow as tf

from keras_recursive_ae.utils.messages import MAX_CHARACTERS, describe

BIG = np.zeros((64, 16, 16, 1), "float32")
BIG_TEXT = "array of shape (64, 16, 16, 1) and dtype float32"


def test_describe_gives_shape_and_dtype_of_arrays_and_tensors():
    assert describe(BIG) == BIG_TEXT
    assert describe(tf.zeros((2, 3), "int32")).endswith("of shape (2, 3) and dtype int32")
    assert describe(keras.KerasTensor((None, 8))) == (
        "KerasTensor of shape (None, 8) and dtype float32"
    )
    assert describe((BIG, BIG)) == f"({BIG_TEXT}, {BIG_TEXT})"
    assert describe({"x": BIG}) == f"{{'x': {BIG_TEXT}}}"
    many = describe([np.zeros(3)] * 10)
    assert many.endswith("... (10 items)]") and len(many) <= MAX_CHARACTERS


def test_describe_keeps_short_values_as_their_repr_and_caps_long_ones():
    for value in ("mse", -1, 2.5, None, [0], (1, -1), np.float32(2.0)):
        assert describe(value) == repr(value)
    for value in ("x" * 10_000, list(range(100_000)), {i: i for i in range(10_000)}):
        assert len(describe(value)) <= MAX_CHARACTERS
    assert len(describe("x" * 10_000, max_characters=50)) == 50


def test_describe_survives_a_broken_repr():
    class Broken:
        def __repr__(self):
            raise RuntimeError("no repr")

    assert describe(Broken()).startswith("<Broken")
