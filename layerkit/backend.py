"""Global numeric settings: the default float type, the fuzz factor, the update kernels.

layerkit computes in float32 unless told otherwise. Gradient checks switch to
float64 with :func:`set_floatx` (or the :func:`floatx_scope` context manager).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

_FLOATX = "float32"
_EPSILON = 1e-7
_ALLOWED = ("float16", "float32", "float64")


def floatx() -> str:
    """Returns the default float type name, ``"float32"`` unless changed."""
    return _FLOATX


def set_floatx(value: str) -> None:
    """Sets the default float type used for new weights and for inputs.

    Args:
        value: one of ``"float16"``, ``"float32"``, ``"float64"``.
    """
    global _FLOATX
    if value not in _ALLOWED:
        raise ValueError(f"Unknown floatx: expected one of {_ALLOWED}. Received: value={value!r}")
    _FLOATX = str(value)


@contextlib.contextmanager
def floatx_scope(value: str) -> Iterator[None]:
    """Temporarily sets the default float type (handy in tests)."""
    previous = _FLOATX
    set_floatx(value)
    try:
        yield
    finally:
        set_floatx(previous)


def float_dtype() -> np.dtype:
    """Returns the default float type as a numpy dtype."""
    return np.dtype(_FLOATX)


def epsilon() -> float:
    """Returns the fuzz factor used to keep logs and divisions finite (Keras: 1e-7)."""
    return _EPSILON


def kernels() -> str:
    """The path optimizer updates take: ``"numba"`` (each rule fused into one pass over
    the weights) or ``"numpy"`` (the fallback: the same numbers, more passes).

    numba is used when installed (``pip install layerkit[fast]``) unless
    ``LAYERKIT_KERNELS=numpy`` is set in the environment or :func:`set_kernels` says
    otherwise.
    """
    from .optim import kernels as fused

    return fused.active()


def set_kernels(value: str) -> None:
    """Chooses the optimizer update path: ``"numba"``, ``"numpy"`` or ``"auto"`` (numba
    when installed). Both give the same numbers; see :mod:`layerkit.optim.kernels`."""
    from .optim import kernels as fused

    fused.set_kernels(value)


def clear_session() -> None:
    """Restarts automatic layer naming, as ``keras.backend.clear_session`` (Keras 3 has
    it in ``keras.backend`` and ``keras.utils``; so does layerkit)."""
    from .utils import clear_session as clear

    clear()
