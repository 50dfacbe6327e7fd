"""How error messages show the values a user passed (internal)."""

import math
import reprlib

import keras

MAX_CHARACTERS = 200
"""The longest a described value gets, however large the value."""

_REPR = reprlib.Repr()
_REPR.maxstring = MAX_CHARACTERS
_REPR.maxother = MAX_CHARACTERS
_REPR.maxlevel = 3


def describe(value, max_characters=MAX_CHARACTERS, max_values=0):
    """A short text for `value` in an error message, never its whole contents.

    Anything with a `shape` and a `dtype` (NumPy arrays, backend tensors,
    `keras.KerasTensor`) is shown by its type, shape and dtype (and its
    values too if it has at most `max_values` of them); a list, tuple or
    dict holding such values shows each of them that way (up to a few);
    anything else by its `repr`, shortened with `reprlib`. The result is at
    most `max_characters` long (an ellipsis marks a cut).

    Args:
        value: any object.
        max_characters: the longest result. Defaults to `MAX_CHARACTERS`
            (200).
        max_values: an array of at most this many values also shows them,
            for a message where the values are the problem (e.g. weights
            that do not sum to 1). Defaults to `0`: never.

    Returns:
        A string, e.g. `"array of shape (64, 16, 16, 1) and dtype float32"`
        or `"'mse'"`.

    Example:

    ```python
    import numpy as np
    from keras_recursive_ae.utils.messages import describe

    describe(np.zeros((64, 16, 16, 1), "float32"))
    # 'array of shape (64, 16, 16, 1) and dtype float32'
    f"Received: x={describe([1, 2])}"
    # 'Received: x=[1, 2]'
    ```
    """
    text = _describe(value, depth=0, max_values=max_values)
    if len(text) > max_characters:
        text = text[: max(max_characters - 3, 0)] + "..."
    return text


def _describe(value, depth, max_values=0):
    if _is_array_like(value):
        return _describe_array(value, max_values)
    if isinstance(value, (list, tuple, dict)) and depth < 2 and _holds_arrays(value):
        items = list(value.items()) if isinstance(value, dict) else list(value)
        shown = items[:4]
        if isinstance(value, dict):
            parts = [f"{key!r}: {_describe(item, depth + 1)}" for key, item in shown]
        else:
            parts = [_describe(item, depth + 1) for item in shown]
        if len(items) > len(shown):
            parts.append(f"... ({len(items)} items)")
        opening, closing = {list: "[]", dict: "{}"}.get(type(value), "()")
        if isinstance(value, tuple) and len(items) == 1:
            closing = ",)"
        return f"{opening}{', '.join(parts)}{closing}"
    # reprlib shortens containers and strings, and shows an object whose
    # __repr__ fails as `<Type instance at 0x...>`.
    return _REPR.repr(value)


def _is_array_like(value):
    # A scalar (np.float32(2.0), a 0-d array or tensor) has a shape and a
    # dtype but one value: its repr is short and says more.
    if isinstance(value, (str, bytes, type)):
        return False
    try:
        shape = getattr(value, "shape", None)
        return shape is not None and getattr(value, "dtype", None) is not None and len(shape) > 0
    except Exception:
        return False


def _holds_arrays(value):
    items = value.values() if isinstance(value, dict) else value
    return any(_is_array_like(item) or isinstance(item, (list, tuple, dict)) for item in items)


def _describe_array(value, max_values=0):
    kind = "array" if type(value).__name__ == "ndarray" else type(value).__name__
    try:
        shape = tuple(None if d is None else int(d) for d in value.shape)
    except (TypeError, ValueError):
        shape = value.shape
    try:
        dtype = keras.backend.standardize_dtype(value.dtype)
    except Exception:
        dtype = getattr(value.dtype, "name", None) or str(value.dtype)
    text = f"{kind} of shape {shape} and dtype {dtype}"
    if max_values and all(isinstance(d, int) for d in shape) and math.prod(shape) <= max_values:
        try:
            text += f": {keras.ops.convert_to_numpy(value).tolist()!r}"
        except Exception:  # a symbolic tensor has no values to show
            pass
    return text
