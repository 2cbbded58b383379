"""Fused optimizer updates: each rule in one pass over the weights, compiled with numba.

A numpy update is a chain of whole-array operations: Adam's is ten, each reading and
writing every weight, and numpy cannot fuse them. The loops below read the gradient and
the slots once and write the weights and the slots once. They perform the same float
operations, in the same order and in the weights' dtype, as the numpy code each optimizer
keeps as its fallback, so both paths give the same bits (tested in
``tests/optim/test_kernels.py``).

Why numba rather than numexpr: numexpr evaluates one expression with one output, so
Adam's three outputs (``m``, ``v``, ``w``) still take three passes, and its interpreted
float32 loops ran 2-5x slower than numpy on weights that fit in cache (the 784x300
kernel: Adam 2.9 ms with numexpr, 0.3 ms with numpy, 0.08 ms with a numba loop). A numba
loop is one pass with any number of outputs, vectorised by LLVM.

Rules:
- Scalars are passed in the weights' dtype (a Python float inside a loop would be
  float64 and widen the arithmetic); no literal constants in the loops.
- ``error_model="numpy"``: division by zero gives inf/nan as numpy does, and lets LLVM
  vectorise (Python's error model checks every division).
- No ``fastmath``: LLVM must not contract ``a * b + c`` into one FMA rounding or reorder,
  or the bits would differ from numpy's and Keras's.
- Single-threaded (``nogil``, no ``parallel``): the update is memory-bound, and a second
  thread pool would fight OpenBLAS's for the cores between matrix products.

numba is an optional extra (``pip install layerkit[fast]``). Without it, or with
``LAYERKIT_KERNELS=numpy`` in the environment, or after
``lk.backend.set_kernels("numpy")``, :func:`get` returns None and each optimizer runs its
numpy code. Kernels compile on first use (about half a second each, cached on disk by
numba afterwards).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable

import numpy as np

_CHOICES = ("auto", "numba", "numpy")
_FUSED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

_sources: dict[str, Callable] = {}  # rule name -> plain Python loop
_compiled: dict[str, Callable] = {}  # rule name -> numba dispatcher
_numba_present = importlib.util.find_spec("numba") is not None


def _initial_choice() -> str:
    value = os.environ.get("LAYERKIT_KERNELS", "auto").strip().lower() or "auto"
    if value in ("0", "false", "off"):
        value = "numpy"
    if value not in _CHOICES:
        raise ValueError(
            f"Unknown LAYERKIT_KERNELS: expected one of {_CHOICES}. Received: "
            f"LAYERKIT_KERNELS={value!r}"
        )
    return value


_choice = _initial_choice()


def set_kernels(value: str) -> None:
    """Chooses the optimizer update path: ``"numba"`` (fused, one pass), ``"numpy"`` (the
    fallback) or ``"auto"`` (numba when installed).

    Raises:
        ValueError: for another name, or for ``"numba"`` when numba is not installed.
    """
    global _choice
    if value not in _CHOICES:
        raise ValueError(f"Unknown kernels: expected one of {_CHOICES}. Received: value={value!r}")
    if value == "numba" and not _numba_present:
        raise ValueError(
            "kernels='numba' needs numba: pip install numba (or layerkit[fast]). "
            f"Received: value={value!r}"
        )
    _choice = value


def active() -> str:
    """The path updates take now: ``"numba"`` or ``"numpy"``."""
    return "numba" if _choice != "numpy" and _numba_present else "numpy"


# In "auto" mode, updates smaller than this many weights take the numpy path until the
# rule is compiled: importing numba and loading (or, the first time, compiling) a rule costs
# 0.3-1 s once per process, more than a small model's updates save in a short run.
_MIN_FUSED_SIZE = 1 << 16


def get(name: str, dtype: np.dtype, size: int | None = None) -> Callable | None:
    """The fused kernel of rule ``name`` for weights of ``dtype``, or None where the
    numpy fallback applies (numba absent or switched off, float16 weights, or in "auto"
    mode an update of fewer than ``_MIN_FUSED_SIZE`` weights before the rule is compiled)."""
    if _choice == "numpy" or not _numba_present or dtype not in _FUSED_DTYPES:
        return None
    kernel = _compiled.get(name)
    if kernel is None and _choice == "auto" and size is not None and size < _MIN_FUSED_SIZE:
        return None
    if kernel is None:
        import numba

        options = {"nogil": True, "error_model": "numpy", "boundscheck": False}
        try:
            kernel = numba.njit(cache=True, **options)(_sources[name])
        except RuntimeError:  # no writable cache folder (a read-only install): compile anew
            kernel = numba.njit(cache=False, **options)(_sources[name])
        _compiled[name] = kernel
    return kernel


def _rule(function: Callable) -> Callable:
    _sources[function.__name__] = function
    return function


# --- the update rules ----------------------------------------------------------------
# Each mirrors, operation for operation, the numpy code of the optimizer named after it.
# ``x if (x >= y or x != x) else y`` is np.maximum's rule: a NaN on either side wins.


@_rule
def sgd(w, g, lr):
    for i in range(w.shape[0]):
        w[i] -= g[i] * lr


@_rule
def sgd_momentum(w, g, m, lr, mu, nesterov):
    for i in range(w.shape[0]):
        scaled = g[i] * lr
        mi = m[i] * mu - scaled
        m[i] = mi
        w[i] += (mi * mu - scaled) if nesterov else mi


@_rule
def rmsprop(w, g, v, m, a, lr, rho, one_minus_rho, eps, mu, use_momentum, centered):
    for i in range(w.shape[0]):
        gi = g[i]
        vi = v[i] * rho + gi * gi * one_minus_rho
        v[i] = vi
        if centered:
            ai = a[i] * rho + one_minus_rho * gi
            a[i] = ai
            denominator = vi - ai * ai + eps
        else:
            denominator = vi + eps
        increment = gi / np.sqrt(denominator) * lr
        if use_momentum:
            increment = m[i] * mu + increment
            m[i] = increment
        w[i] -= increment


@_rule
def adagrad(w, g, acc, lr, eps):
    for i in range(w.shape[0]):
        gi = g[i]
        ai = acc[i] + gi * gi
        acc[i] = ai
        w[i] -= gi / np.sqrt(ai + eps) * lr


@_rule
def adadelta(w, g, acc_grad, acc_delta, lr, rho, one_minus_rho, eps):
    for i in range(w.shape[0]):
        gi = g[i]
        eg = acc_grad[i] * rho + gi * gi * one_minus_rho
        acc_grad[i] = eg
        delta = -(np.sqrt((acc_delta[i] + eps) / (eg + eps)) * gi)
        acc_delta[i] = acc_delta[i] * rho + delta * delta * one_minus_rho
        w[i] += delta * lr


@_rule
def adam(w, g, m, v, v_hat, b1, b2, eps, inverse_alpha, amsgrad, step):
    for i in range(w.shape[0]):
        gi = g[i]
        mi = m[i] * b1 + gi
        m[i] = mi
        vi = v[i] * b2 + gi * gi
        v[i] = vi
        if amsgrad:
            hi = v_hat[i]
            vi = hi if (hi >= vi or hi != hi) else vi
            v_hat[i] = vi
        if step:
            w[i] -= mi / ((np.sqrt(vi) + eps) * inverse_alpha)


@_rule
def adamax(w, g, m, u, lr, b1, one_minus_b1, b2, eps, correction):
    for i in range(w.shape[0]):
        gi = g[i]
        mi = m[i] * b1 + gi * one_minus_b1
        m[i] = mi
        ui = u[i] * b2
        magnitude = abs(gi)
        ui = ui if (ui >= magnitude or ui != ui) else magnitude
        u[i] = ui
        w[i] -= mi * lr / ((ui + eps) * correction)


@_rule
def nadam(
    w, g, m, v, lr, b1, one_minus_b1, b2, one_minus_b2, u_next, d_next, one_minus_u, d, c, eps
):
    for i in range(w.shape[0]):
        gi = g[i]
        mi = m[i] * b1 + gi * one_minus_b1
        m[i] = mi
        vi = v[i] * b2 + gi * gi * one_minus_b2
        v[i] = vi
        m_hat = (mi * u_next / d_next + gi * one_minus_u / d) * lr
        w[i] -= m_hat / (np.sqrt(vi / c) + eps)


@_rule
def lion(w, g, m, lr, b1, one_minus_b1, b2, one_minus_b2):
    for i in range(w.shape[0]):
        gi, mi = g[i], m[i]
        c = mi * b1 + gi * one_minus_b1
        # sign(c) lr, with sign(c) = +-1 written as +-lr (exact); 0 and NaN as c lr: 0
        # moves nothing, NaN spreads as np.sign's NaN does. Selects, not branches, so that
        # the loop vectorises.
        w[i] -= lr if c > 0 else (-lr if c < 0 else c * lr)
        m[i] = mi * b2 + gi * one_minus_b2


@_rule
def moving_average(w, a, momentum, one_minus_momentum, overwrite):
    for i in range(w.shape[0]):
        ai = a[i] * momentum + w[i] * one_minus_momentum
        a[i] = ai
        if overwrite:
            w[i] = ai
