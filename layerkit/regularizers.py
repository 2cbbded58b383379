"""Weight penalties added to the loss, as Keras 3's ``keras.regularizers``.

``L1(l1)``: ``l1 * sum(|w|)``; ``L2(l2)``: ``l2 * sum(w**2)`` (no factor 1/2, as Keras);
``L1L2(l1, l2)``: both. By name: ``"l1"``, ``"l2"``, ``"l1_l2"`` (Keras's defaults:
0.01, 0.01, and 0 and 0). A layer's penalties are added to the training loss (and to
``evaluate``'s, as Keras) and their gradients to the weights' at each step; frozen
layers add nothing. ``model.losses`` lists them.

Example:
    >>> layer = lk.layers.Dense(100, activation="selu", kernel_regularizer=lk.regularizers.l2(0.01))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .registry import get_object
from .validation import check_number


class Regularizer:
    """A penalty on one weight: its value and its gradient."""

    def __call__(self, w: np.ndarray) -> float:
        raise NotImplementedError

    def gradient(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError

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
        value = 0.0
        if self.l1:
            value += self.l1 * float(np.abs(w).sum(dtype=np.float64))
        if self.l2:
            value += self.l2 * float(np.square(w, dtype=np.float64).sum())
        return value

    def gradient(self, w):
        grad = np.zeros_like(w)
        if self.l1:
            grad += w.dtype.type(self.l1) * np.sign(w)
        if self.l2:
            grad += w.dtype.type(2.0 * self.l2) * w
        return grad

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


# Keras's functional spellings: lk.regularizers.l2(0.01) is L2(0.01).
l1, l2, l1_l2 = L1, L2, L1L2

_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}


def get(identifier: Any, argument: str = "regularizer") -> Regularizer | None:
    """A regularizer from None, a name, an object or a :func:`serialize` config."""
    return get_object(identifier, Regularizer, _CLASSES, _BY_NAME, "regularizer", argument)


def serialize(regularizer: Regularizer | None) -> dict[str, Any] | None:
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
