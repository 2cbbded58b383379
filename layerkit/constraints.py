"""Constraints on weights, applied after each optimizer update, as Keras 3's
``keras.constraints``: ``MaxNorm(max_value=2, axis=0)``, ``NonNeg()``,
``UnitNorm(axis=0)``, ``MinMaxNorm(min_value=0, max_value=1, rate=1, axis=0)``. The
norms are over ``axis`` (0: each Dense unit's incoming weights), with Keras's epsilon.

Example:
    >>> layer = lk.layers.Dense(50, kernel_constraint=lk.constraints.MaxNorm(1.0))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backend
from .registry import get_object
from .validation import check_integer, check_number


def _axis(axis: Any) -> int | tuple[int, ...]:
    if isinstance(axis, (list, tuple)):
        return tuple(check_integer(a, "axis") for a in axis)
    return check_integer(axis, "axis")


class Constraint:
    """A projection of a weight, applied in place after each update."""

    def __call__(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def apply_(self, w: np.ndarray) -> None:
        """Projects ``w`` in place."""
        w[...] = self(w)

    def check_shape(self, shape: tuple, weight: str) -> None:
        """Refuses a weight of ``shape`` this constraint cannot project (an ``axis`` out
        of range): called when the weight is created, so training never stops half-way
        through an update."""
        axis = getattr(self, "axis", None)
        if axis is None:
            return
        axes = axis if isinstance(axis, tuple) else (axis,)
        bad = [a for a in axes if not -len(shape) <= a < len(shape)]
        if bad:
            raise ValueError(
                f"{type(self).__name__}(axis={axis}) cannot constrain {weight!r} of shape "
                f"{tuple(shape)}: axis {bad[0]} is out of range for a weight of rank "
                f"{len(shape)}."
            )

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Constraint:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


def _norms(w: np.ndarray, axis) -> np.ndarray:
    return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


class MaxNorm(Constraint):
    """Rescales each slice along ``axis`` whose norm exceeds ``max_value`` down to it."""

    def __init__(self, max_value: float = 2.0, axis: int | tuple = 0) -> None:
        self.max_value = check_number(max_value, "max_value", minimum=0.0)
        self.axis = _axis(axis)

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = np.clip(norms, 0, self.max_value)
        return w * (desired / (w.dtype.type(backend.epsilon()) + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Sets negative weights to 0."""

    def __call__(self, w):
        return w * (w >= 0)

    def apply_(self, w):
        np.maximum(w, 0, out=w)


class UnitNorm(Constraint):
    """Divides each slice along ``axis`` by its norm."""

    def __init__(self, axis: int | tuple = 0) -> None:
        self.axis = _axis(axis)

    def __call__(self, w):
        return w / (w.dtype.type(backend.epsilon()) + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Moves each slice's norm into ``[min_value, max_value]`` at ``rate``."""

    def __init__(
        self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis=0
    ) -> None:
        self.min_value = check_number(min_value, "min_value", minimum=0.0)
        self.max_value = check_number(max_value, "max_value", minimum=self.min_value)
        self.rate = check_number(rate, "rate", minimum=0.0, maximum=1.0)
        self.axis = _axis(axis)

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = (
            self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        )
        return w * (desired / (w.dtype.type(backend.epsilon()) + norms))

    def get_config(self):
        return {
            "min_value": self.min_value,
            "max_value": self.max_value,
            "rate": self.rate,
            "axis": self.axis,
        }


# Keras's snake-case spellings.
max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm

_CLASSES = {c.__name__: c for c in (MaxNorm, NonNeg, UnitNorm, MinMaxNorm)}
_BY_NAME = {
    "max_norm": MaxNorm,
    "non_neg": NonNeg,
    "unit_norm": UnitNorm,
    "min_max_norm": MinMaxNorm,
}
_BY_NAME.update({name.lower(): cls for name, cls in _CLASSES.items()})


def get(identifier: Any, argument: str = "constraint") -> Constraint | None:
    """A constraint from None, a name, an object or a :func:`serialize` config."""
    return get_object(identifier, Constraint, _CLASSES, _BY_NAME, "constraint", argument)


def serialize(constraint: Constraint | None) -> dict[str, Any] | None:
    if constraint is None:
        return None
    config = constraint.get_config()
    if isinstance(config.get("axis"), tuple):
        config["axis"] = list(config["axis"])
    return {"class_name": type(constraint).__name__, "config": config}
