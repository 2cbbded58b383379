"""Penalties added to the loss, as Keras 3's ``keras.regularizers``.

``L1(l1)``: ``l1 * sum(|w|)``; ``L2(l2)``: ``l2 * sum(w**2)`` (no factor 1/2, as Keras);
``L1L2(l1, l2)``: both; ``OrthogonalRegularizer(factor, mode)``: ``factor / 2`` times the
mean absolute cosine between distinct rows (or columns) of a matrix. By name: ``"l1"``,
``"l2"``, ``"l1_l2"``, ``"orthogonal_regularizer"`` (Keras's defaults: 0.01, 0.01, 0 and
0, 0.01).

On a weight (``kernel_regularizer=``, ``bias_regularizer=``, ``gamma_regularizer=``...)
the penalty is added to the training loss (and to ``evaluate``'s, as Keras) and its
gradient to the weight's, in place, at each step; frozen layers add nothing. On a layer's
output (``activity_regularizer=``, any layer) the penalty of the batch's output divided
by the batch size is added, as Keras 3. ``model.losses`` lists the current penalties.

Example:
    >>> layer = lk.layers.Dense(100, activation="selu", kernel_regularizer=lk.regularizers.l2(0.01))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .registry import get_object
from .validation import check_number


class Regularizer:
    """A penalty on an array: its value and its gradient.

    A subclass implements ``__call__`` and ``gradient``; it may override
    :meth:`add_gradient` to add the gradient without a temporary array.
    """

    def __call__(self, w: np.ndarray) -> float:
        raise NotImplementedError

    def gradient(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def add_gradient(self, w: np.ndarray, out: np.ndarray, scale: float = 1.0) -> None:
        """Adds ``scale`` times the penalty's gradient at ``w`` into ``out``, in place."""
        grad = self.gradient(w)
        if scale != 1.0:
            grad *= w.dtype.type(scale)
        out += grad

    def _scratch(self, w: np.ndarray) -> np.ndarray:
        """A reused array shaped like ``w`` (one per shape: a regularizer object may be
        shared by several weights), so the step's penalty gradients allocate nothing."""
        buffers = self.__dict__.setdefault("_buffers", {})
        key = (w.shape, w.dtype)
        buffer = buffers.get(key)
        if buffer is None:
            if len(buffers) > 8:
                buffers.clear()
            buffer = buffers[key] = np.empty_like(w)
        return buffer

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


class L1L2(Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w**2)``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = check_number(l1, "l1", minimum=0.0)
        self.l2 = check_number(l2, "l2", minimum=0.0)

    def __call__(self, w):
        w = np.asarray(w)
        value = 0.0
        if self.l1:
            value += self.l1 * float(np.abs(w, out=self._scratch(w)).sum(dtype=np.float64))
        if self.l2:
            flat = w.reshape(-1)
            value += self.l2 * float(np.dot(flat, flat))  # one BLAS pass, no temporary
        return value

    def gradient(self, w):
        grad = np.zeros_like(w)
        self.add_gradient(w, grad)
        return grad

    def add_gradient(self, w, out, scale=1.0):
        # sign(w) and 2 w go through one reused scratch array: no temporary per step.
        scratch = self._scratch(w)
        if self.l1:
            np.sign(w, out=scratch)
            scratch *= w.dtype.type(self.l1 * scale)
            out += scratch
        if self.l2:
            np.multiply(w, w.dtype.type(2.0 * self.l2 * scale), out=scratch)
            out += scratch

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|w|)``."""

    def __init__(self, l1: float = 0.01) -> None:
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(w**2)``."""

    def __init__(self, l2: float = 0.01) -> None:
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Keras 3's orthogonality penalty on a matrix: with ``n_i`` its rows (``mode="rows"``)
    or columns (``"columns"``) scaled to unit length, and ``k`` of them,
    ``factor / 2 * sum_{i != j} |n_i . n_j| / (k (k - 1) / 2)``.

    As Keras, a row's scale is ``min(1 / ||w_i||, 1 / eps)`` (``eps = 1e-7``), so an
    all-zero row counts as orthogonal to everything.

    Args:
        factor: the penalty's factor, finite and >= 0.
        mode: ``"rows"`` or ``"columns"``.
    """

    def __init__(self, factor: float = 0.01, mode: str = "rows") -> None:
        self.factor = check_number(factor, "factor", minimum=0.0)
        if mode not in ("rows", "columns"):
            raise ValueError(
                'Invalid value for argument `mode`. Expected one of {"rows", "columns"}. '
                f"Received: mode={mode!r}"
            )
        self.mode = mode

    def _vectors(self, w: np.ndarray) -> np.ndarray:
        w = np.asarray(w)
        if w.ndim != 2:
            raise ValueError(
                "Inputs to OrthogonalRegularizer must have rank 2. "
                f"Received: inputs.shape={w.shape}"
            )
        return w if self.mode == "rows" else w.T

    def _parts(self, vectors: np.ndarray):
        eps = 1e-7
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
        inverse = np.minimum(1.0 / np.maximum(norms, 1e-30), 1.0 / eps).astype(vectors.dtype)
        unit = vectors * inverse[:, None]
        product = unit @ unit.T
        np.fill_diagonal(product, 0.0)
        k = vectors.shape[0]
        weight = self.factor * 0.5 / (k * (k - 1) / 2.0) if k > 1 else 0.0
        return unit, inverse, norms > eps, product, weight

    def __call__(self, w):
        _, _, _, product, weight = self._parts(self._vectors(w))
        return weight * float(np.abs(product).sum(dtype=np.float64))

    def gradient(self, w):
        vectors = self._vectors(w)
        unit, inverse, scaled, product, weight = self._parts(vectors)
        # d/dn_i sum_{i != j} |n_i . n_j| = 2 sum_j sign(n_i . n_j) n_j (the sum is symmetric)
        g_unit = (np.sign(product) @ unit) * vectors.dtype.type(2.0 * weight)
        # Back through n_i = w_i / ||w_i||: the component along n_i drops out; rows
        # whose norm was clamped at eps were only scaled by 1 / eps.
        along = np.einsum("ij,ij->i", g_unit, unit)
        g_vectors = (g_unit - np.where(scaled, along, 0.0)[:, None] * unit) * inverse[:, None]
        g_vectors = g_vectors.astype(vectors.dtype, copy=False)
        return g_vectors if self.mode == "rows" else np.ascontiguousarray(g_vectors.T)

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


# Keras's functional spellings: lk.regularizers.l2(0.01) is L2(0.01).
l1, l2, l1_l2, orthogonal_regularizer = L1, L2, L1L2, OrthogonalRegularizer

_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2, "OrthogonalRegularizer": OrthogonalRegularizer}
_BY_NAME = {
    "l1": L1,
    "l2": L2,
    "l1_l2": L1L2,
    "l1l2": L1L2,
    "orthogonal_regularizer": OrthogonalRegularizer,
}


def get(identifier: Any, argument: str = "regularizer") -> Regularizer | None:
    """A regularizer from None, a name, an object or a :func:`serialize` config."""
    return get_object(identifier, Regularizer, _CLASSES, _BY_NAME, "regularizer", argument)


def serialize(regularizer: Regularizer | None) -> dict[str, Any] | None:
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
