"""Validation of user arrays at the edge of ``fit``, ``evaluate`` and ``predict``.

Inputs are checked and cast to the float type once here, never per batch. Every error
names the argument, what was received and what was expected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..validation import numeric_array, to_float


def check_int(value: Any, argument: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"Expected an integer {argument}. Received: {argument}={value!r}")
    if value < minimum:
        raise ValueError(f"Expected {argument} >= {minimum}. Received: {argument}={value!r}")
    return int(value)


def as_inputs(x: Any, argument: str = "x", input_shape: tuple | None = None) -> np.ndarray:
    """Returns ``x`` as a C-contiguous float array of the default float type.

    A 1-D array is read as one feature per sample, as Keras 2 did.

    Raises:
        TypeError: for non-numeric data (objects, strings, complex numbers) or ``None``.
        ValueError: for scalars, empty arrays, NaN or infinite values, or a feature shape
            different from the model's ``input_shape``.
    """
    if x is None:
        raise TypeError(f"Expected an array for {argument}. Received: {argument}=None")
    array = numeric_array(x, argument)
    if array.shape[0] == 0 or array.size == 0:
        raise ValueError(
            f"Expected a non-empty {argument}. Received: {argument}.shape={array.shape}"
        )
    one_dimensional = array.ndim == 1
    if one_dimensional:
        array = array.reshape(-1, 1)
    if input_shape is not None:
        expected = tuple(input_shape[1:])
        if array.shape[1:] != expected:
            if one_dimensional:
                raise ValueError(
                    f"Invalid {argument}: a 1-D array of {len(array)} values is read as "
                    f"{len(array)} samples of one feature, but the model expects samples "
                    f"of shape {expected}. For one sample, pass {argument}[None] "
                    f"(shape (1, {len(array)}))."
                )
            if len(expected) == 1 and array.ndim == 2:
                raise ValueError(
                    f"Invalid {argument}: expected {expected[0]} features, "
                    f"received {array.shape[1]} ({argument}.shape={array.shape})."
                )
            raise ValueError(
                f"Invalid {argument}: expected samples of shape {expected}, "
                f"received {array.shape[1:]} ({argument}.shape={array.shape})."
            )
    return to_float(array, argument)


def check_same_length(x: np.ndarray, y: np.ndarray, x_name: str = "x", y_name: str = "y") -> None:
    if len(x) != len(y):
        raise ValueError(
            f"{x_name} and {y_name} must have the same number of samples. "
            f"Received: {x_name} has {len(x)}, {y_name} has {len(y)}."
        )


def check_batch_size(batch_size: Any) -> int:
    return 32 if batch_size is None else check_int(batch_size, "batch_size", 1)


def check_verbose(verbose: Any) -> int:
    """0, 1 or 2; ``"auto"`` is 1, as in Keras 3 (``fit`` prints Keras's per-epoch lines
    instead of a progress bar when the output is not a terminal)."""
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, float):
        raise ValueError(f"Expected verbose in 'auto', 0, 1, 2. Received: verbose={verbose!r}")
    return int(verbose)
