"""Checks on user arrays shared by inputs (``x``) and targets (``y``), and on numeric
options (``rate``, ``units``, ``threshold``...).

Every error names the argument, what was received and what was expected. Options accept
Python and numpy scalars alike (``np.float32(0.5)``, ``np.int64(3)``), as Keras does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import backend

_CHUNK_ROWS = 8192  # finite-checks in chunks: no full-size boolean temporary


def numeric_array(values: Any, argument: str) -> np.ndarray:
    """``values`` as a numpy array of ints, floats or bools with a batch axis.

    Raises:
        ValueError: ragged nested lists, or a scalar.
        TypeError: objects, strings, complex numbers.
    """
    try:
        array = values if isinstance(values, np.ndarray) else np.asarray(values)
    except (ValueError, TypeError) as error:  # ragged nested lists
        raise ValueError(f"Invalid {argument}: cannot be read as an array ({error})") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"Expected numeric data for {argument} (ints, floats or bools). "
            f"Received: {argument} of dtype {array.dtype}"
        )
    if array.ndim == 0:
        raise ValueError(f"Expected an array with a batch axis for {argument}. Received a scalar.")
    return array


def prediction_array(y_pred: Any) -> np.ndarray:
    """Predictions as a float array: a float array keeps its type; integers and Python
    lists become the default float type, as Keras converts them."""
    is_float_array = isinstance(y_pred, np.ndarray) and y_pred.dtype.kind == "f"
    y_pred = numeric_array(y_pred, "y_pred")
    return y_pred if is_float_array else y_pred.astype(backend.floatx())


def prediction_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """``y_true`` and ``y_pred`` as arrays of the predictions' float type
    (:func:`prediction_array`), ranks matched as Keras's
    ``squeeze_or_expand_to_same_rank``: a trailing axis of 1 on one side only is dropped,
    or added to the other side when that one is rank 1. For the per-sample loss and
    metric functions."""
    y_pred = prediction_array(y_pred)
    y_true = numeric_array(y_true, "y_true").astype(y_pred.dtype, copy=False)
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        if y_pred.ndim == 1:
            y_pred = y_pred[:, None]
        else:
            y_true = y_true[..., 0]
    elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        if y_true.ndim == 1:
            y_true = y_true[:, None]
        else:
            y_pred = y_pred[..., 0]
    return y_true, y_pred


def to_float(array: np.ndarray, argument: str) -> np.ndarray:
    """Casts to the default float type (C-contiguous), then refuses NaN and infinity.

    The check comes after the cast: 1e300 in float64 becomes inf in float32.
    """
    try:
        array = np.ascontiguousarray(array, dtype=backend.floatx())
    except MemoryError:
        raise ValueError(
            f"Invalid {argument}: shape {array.shape} does not fit in memory as {backend.floatx()}."
        ) from None
    check_finite(array, argument)
    return array


def check_finite(array: np.ndarray, argument: str) -> None:
    """Raises ValueError naming ``argument`` and the first bad sample if any value is
    NaN or infinite."""
    if array.dtype.kind != "f":
        return
    flat = array.reshape(array.shape[0], -1) if array.ndim else array.reshape(1, -1)
    for start in range(0, flat.shape[0], _CHUNK_ROWS):
        chunk = flat[start : start + _CHUNK_ROWS]
        # NaN and inf propagate through a sum, so a finite sum proves every value finite in
        # one fast pass; only a non-finite sum (which may be mere overflow) needs the
        # element-wise check, isfinite being unvectorised in numpy.
        with np.errstate(over="ignore", invalid="ignore"):
            total = np.add.reduce(chunk, axis=None)
        if math.isfinite(total):
            continue
        if not np.isfinite(chunk).all():
            row = start + int(np.argmin(np.isfinite(chunk).all(axis=1)))
            raise ValueError(
                f"Invalid {argument}: it contains NaN or infinite values, or values too large "
                f"for {backend.floatx()} (first in sample {row})."
            )


_REALS = (int, float, np.integer, np.floating)


def check_number(
    value: Any,
    argument: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
) -> float:
    """Returns a finite real option (Python or numpy scalar, not bool) as a ``float``.

    ``minimum`` / ``maximum`` bound it, inclusively unless ``exclusive_*`` is set.

    Raises:
        TypeError: not a real number (a string, a bool, an array...).
        ValueError: NaN, infinite, or out of range; the message shows the range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, _REALS):
        raise TypeError(
            f"Expected a number for {argument}. "
            f"Received: {argument}={value!r:.100} of type {type(value).__name__}"
        )
    number = float(value)
    below = minimum is not None and (number <= minimum if exclusive_minimum else number < minimum)
    above = maximum is not None and (number >= maximum if exclusive_maximum else number > maximum)
    if not math.isfinite(number) or below or above:
        if minimum is not None and maximum is not None:
            left, right = "(" if exclusive_minimum else "[", ")" if exclusive_maximum else "]"
            expected = f"{argument} in {left}{minimum:g}, {maximum:g}{right}"
        elif minimum is not None:
            expected = f"{argument} {'>' if exclusive_minimum else '>='} {minimum:g}"
        elif maximum is not None:
            expected = f"{argument} {'<' if exclusive_maximum else '<='} {maximum:g}"
        else:
            expected = f"a finite {argument}"
        raise ValueError(f"Expected {expected}. Received: {argument}={value!r}")
    return number


def check_integer(value: Any, argument: str, *, minimum: int | None = None) -> int:
    """Returns an integer option (Python or numpy integer, not bool) as an ``int``.

    Raises:
        TypeError: not an integer (floats, even whole ones, are refused as in Keras).
        ValueError: below ``minimum``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"Expected an integer for {argument}. "
            f"Received: {argument}={value!r:.100} of type {type(value).__name__}"
        )
    if minimum is not None and value < minimum:
        raise ValueError(f"Expected {argument} >= {minimum}. Received: {argument}={value!r}")
    return int(value)


def check_flag(value: Any, argument: str) -> bool:
    """Returns a boolean option (``bool`` or ``np.bool_``) as a ``bool``; TypeError else."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"Expected True or False for {argument}. "
            f"Received: {argument}={value!r:.100} of type {type(value).__name__}"
        )
    return bool(value)


def check_sample_weight(
    sample_weight: Any, rows: int, argument: str = "sample_weight"
) -> np.ndarray:
    """Returns per-sample weights as a 1-D float array of length ``rows``.

    Accepts shape ``(rows,)`` or ``(rows, 1)`` (as Keras squeezes a trailing axis of 1).

    Raises:
        TypeError: non-numeric weights.
        ValueError: a wrong shape or length, or a negative, NaN or infinite weight; the
            message names ``argument`` and the first bad index.
    """
    weights = numeric_array(sample_weight, argument)
    if weights.ndim == 2 and weights.shape[1] == 1:
        weights = weights[:, 0]
    if weights.ndim != 1 or weights.shape[0] != rows:
        raise ValueError(
            f"Expected {argument} of shape ({rows},): one weight per sample. "
            f"Received: {argument}.shape={weights.shape}"
        )
    weights = np.ascontiguousarray(weights, dtype=backend.floatx())
    # One pass decides (NaN fails every comparison); the index is looked for only on error.
    good = weights >= 0
    good &= weights <= np.finfo(weights.dtype).max
    if not good.all():
        index = int(np.argmin(good))
        raise ValueError(
            f"Invalid {argument}: expected finite, non-negative weights. "
            f"Received: {argument}[{index}]={float(weights[index])!r}"
        )
    return weights
