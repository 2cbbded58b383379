"""Checks on user arrays shared by inputs (``x``) and targets (``y``).

Every error names the argument, what was received and what was expected.
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
