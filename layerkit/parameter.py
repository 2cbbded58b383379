"""Parameters: one object per weight, and the arena that packs a model's weights together.

A :class:`Parameter` has a stable ``name`` (``"hidden1/kernel"``), a ``value`` array,
a preallocated ``grad`` array of the same shape, and a ``trainable`` flag read from its
layer. Optimizer state is keyed by ``name``, never by position or ``id()``, so it
survives reloading, reordering and freeze/unfreeze.

When a model is built, :func:`pack` moves all of its parameters into one contiguous
array for values and one for gradients (each parameter keeps views into them). The
optimizer then updates a run of neighbouring parameters with a handful of numpy calls
over one flat slice instead of a handful per weight: that is most of the update cost
for small models.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

# Bumped by every outside change to any weight or trainable flag. Caches of frozen-layer
# outputs compare it at each step (one integer) before looking at what changed.
_changes = itertools.count(1)
_last_change = [0]


def note_change() -> None:
    """Records that some weight or trainable flag changed outside training."""
    _last_change[0] = next(_changes)


def last_change() -> int:
    """A number that grows whenever :func:`note_change` is called."""
    return _last_change[0]


class Arena:
    """Flat storage for the values and gradients of a list of parameters."""

    __slots__ = ("grads", "values")

    def __init__(self, size: int, dtype: np.dtype) -> None:
        self.values = np.zeros(size, dtype=dtype)
        self.grads = np.zeros(size, dtype=dtype)


class Parameter:
    """A weight of a layer.

    Attributes:
        name: stable path ``"<layer>/<weight>"``; optimizer state is keyed by it.
        value: the weight array (a view into the model's arena once packed).
        grad: the gradient array, same shape and dtype, overwritten by each backward pass;
            once the optimizer has applied it, it may have used it as scratch space.
        arena, offset: where ``value`` and ``grad`` live in a packed arena (``None``, 0 if not).
        version: bumped whenever the value is replaced from outside training
            (``assign``), so caches of frozen-layer outputs know they are stale.
        statistic: a weight the layer updates itself, never trainable (moving means).
    """

    __slots__ = (
        "_trainable_source",
        "arena",
        "constraint",
        "grad",
        "name",
        "offset",
        "regularizer",
        "statistic",
        "value",
        "version",
    )

    def __init__(
        self,
        name: str,
        value: np.ndarray,
        trainable_source: Callable[[], bool] | None = None,
        statistic: bool = False,
    ) -> None:
        self.name = name
        # A statistic (BatchNormalization's moving mean) is never trained: the layer
        # updates it itself, and no optimizer keeps state for it.
        self.statistic = bool(statistic)
        # lk.regularizers / lk.constraints objects (or None), set by the layer.
        self.regularizer = None
        self.constraint = None
        self.value = value
        self.grad = np.zeros_like(value)
        self.arena: Arena | None = None
        self.offset = 0
        self.version = 0
        self._trainable_source = trainable_source

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    @property
    def size(self) -> int:
        return self.value.size

    @property
    def trainable(self) -> bool:
        """Whether the optimizer updates this weight (its layer's ``trainable`` flag)."""
        if self.statistic:
            return False
        return True if self._trainable_source is None else bool(self._trainable_source())

    def numpy(self) -> np.ndarray:
        """Returns a copy of the value."""
        return self.value.copy()

    def assign(self, new_value: np.ndarray) -> None:
        """Copies ``new_value`` into the weight in place (shape must match)."""
        new_value = np.asarray(new_value)
        if new_value.shape != self.value.shape:
            raise ValueError(
                f"Shape mismatch for weight {self.name!r}: expected {self.value.shape}, "
                f"received {new_value.shape}."
            )
        np.copyto(self.value, new_value, casting="unsafe")
        self.version += 1
        note_change()

    def __repr__(self) -> str:
        return (
            f"<Parameter {self.name} shape={self.value.shape} dtype={self.value.dtype} "
            f"trainable={self.trainable}>"
        )


def pack(parameters: Sequence[Parameter], dtype: np.dtype) -> Arena:
    """Moves ``parameters`` into one new arena, in order, keeping their current values."""
    arena = Arena(sum(p.size for p in parameters), dtype)
    offset = 0
    for p in parameters:
        end = offset + p.size
        values = arena.values[offset:end].reshape(p.shape)
        values[...] = p.value
        p.value = values
        p.grad = arena.grads[offset:end].reshape(p.shape)
        p.arena, p.offset = arena, offset
        offset = end
    return arena


def check_new_values(parameters: Sequence[Parameter], weights, owner: str) -> list[np.ndarray]:
    """Validates a ``set_weights`` list against ``parameters`` without changing anything.

    Returns the arrays to assign. Raises TypeError or ValueError naming the weight.
    """
    if not isinstance(weights, (list, tuple)):
        raise TypeError(f"Expected a list of arrays. Received: {type(weights).__name__}")
    if len(weights) != len(parameters):
        raise ValueError(
            f"{owner} expects {len(parameters)} weights "
            f"({[p.name for p in parameters]}), received {len(weights)}."
        )
    arrays = [np.asarray(w) for w in weights]
    for p, w in zip(parameters, arrays):
        if w.shape != p.shape:
            raise ValueError(f"Weight {p.name!r}: expected shape {p.shape}, received {w.shape}.")
        if w.dtype.kind not in "fiub":
            raise TypeError(f"Weight {p.name!r} must be numeric. Received dtype {w.dtype}.")
    return arrays
