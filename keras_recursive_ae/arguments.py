"""Argument checks shared by the library, with Keras-style messages."""

import numbers


def check_choice(value, argument, choices):
    """Raises `ValueError` unless `value` is one of `choices`."""
    if not any(
        value is choice or (type(value) is type(choice) and value == choice) for choice in choices
    ):
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected one of {tuple(choices)}. "
            f"Received: {argument}={value!r}"
        )
    return value


def check_int(value, argument, minimum=0):
    """Raises `ValueError` unless `value` is an integer (not a bool) >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        what = "non-negative" if minimum == 0 else f"at least {minimum}"
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected a {what} integer. "
            f"Received: {argument}={value!r}"
        )
    return int(value)
