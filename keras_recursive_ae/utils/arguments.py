"""Argument checks shared by the library, with Keras-style messages."""

import numbers

from keras_recursive_ae.utils.messages import describe


def check_choice(value, argument, choices):
    """Returns the one of `choices` that `value` is, else raises `ValueError`.

    Types must match (so `True` is not `1`), except that any `str`, such as
    NumPy's `np.str_`, matches a string choice.
    """
    for choice in choices:
        both_strings = isinstance(value, str) and isinstance(choice, str)
        same_kind = type(value) is type(choice) or both_strings
        if value is choice or (same_kind and value == choice):
            return choice
    raise ValueError(
        f"Invalid value for argument `{argument}`. Expected one of {tuple(choices)}. "
        f"Received: {argument}={describe(value)}"
    )


def check_int(value, argument, minimum=0, allow_none=False):
    """Raises `ValueError` unless `value` is an integer (not a bool) >= `minimum`.

    `minimum` is 0 or 1; with `allow_none`, `None` passes too (and is returned).
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        what = "non-negative" if minimum == 0 else "strictly positive"
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected a {what} integer"
            f"{' or None' if allow_none else ''}. Received: {argument}={describe(value)}"
        )
    return int(value)


def epochs_per_level(epochs, depth):
    """`epochs` as one count per level: a count for all, or a list of `depth`."""
    if isinstance(epochs, (list, tuple)):
        if len(epochs) == depth:
            return [check_int(count, "epochs") for count in epochs]
    else:
        try:
            return [check_int(epochs, "epochs")] * depth
        except ValueError:
            pass
    raise ValueError(
        "Invalid value for argument `epochs`. Expected a non-negative integer "
        f"or a list of {depth} of them (one per level, outermost first). "
        f"Received: epochs={describe(epochs)}"
    )


def standardize_level_weights(level_weights, depth):
    """One non-negative weight per level, not all zero; `None` stays (the default)."""
    if level_weights is None:
        return None
    weights = list(level_weights) if isinstance(level_weights, (list, tuple)) else None
    if (
        weights is None
        or len(weights) != depth
        or any(not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0 for w in weights)
        or not any(weights)
    ):
        raise ValueError(
            "Invalid value for argument `level_weights`. Expected "
            f"{depth} non-negative numbers (one per level, outermost first), "
            f"not all zero. Received: level_weights={describe(level_weights)}"
        )
    return [float(w) for w in weights]
