"""Activation functions, by name (``"relu"``) or as functions (``lk.activations.relu``).

Each activation knows its derivative in terms of its *output* ``y`` (thinc's habit), so a
layer keeps only ``y`` for the backward pass and applies the activation in place:

=========== ================================ =========================================
name        y = f(z)                         dL/dz from dL/dy and y
=========== ================================ =========================================
linear      z                                dy
relu        max(z, 0)                        dy * (y > 0)
leaky_relu  z if z > 0 else a z  (a = 0.2)   dy * (1 if y > 0 else a)
elu         z if z > 0 else a (e^z - 1)      dy * (1 if y > 0 else y + a)
sigmoid     1 / (1 + e^-z)                   dy * y (1 - y)
tanh        tanh z                           dy * (1 - y^2)
softmax     e^z / sum e^z  (last axis)       y * (dy - sum(dy * y))
=========== ================================ =========================================

Sigmoid, softmax and elu are written so that no input, however large, overflows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from .registry import lookup
from .validation import check_number

__all__ = ["elu", "get", "leaky_relu", "linear", "relu", "serialize", "sigmoid", "softmax", "tanh"]


class ActivationFunction:
    """A named activation with an in-place forward and a backward from its output.

    Calling it (``relu(x)``) returns a new array and leaves ``x`` alone.
    """

    name = "linear"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        out = np.array(x, dtype=x.dtype if x.dtype.kind == "f" else np.float32, copy=True)
        return self.forward_(out)

    def forward_(self, z: np.ndarray) -> np.ndarray:
        """Applies the activation to ``z`` in place and returns it."""
        return z

    def backward_(self, dy: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Returns dL/dz given dL/dy and the output ``y``; may overwrite ``dy``."""
        return dy

    def __repr__(self) -> str:
        return f"<activation {self.name}>"


class Linear(ActivationFunction):
    name = "linear"


@functools.lru_cache(maxsize=32)
def _zeros(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    # Never written, so the pages stay the kernel's shared zero page: no memory cost.
    zeros = np.zeros(shape, dtype)
    zeros.flags.writeable = False
    return zeros


class ReLU(ActivationFunction):
    name = "relu"

    def forward_(self, z):
        # Against an array of zeros rather than the scalar 0: numpy 2.4 vectorises
        # maximum only when both operands are arrays of the same shape (4x faster).
        return np.maximum(z, _zeros(z.shape, z.dtype.str), out=z)

    def backward_(self, dy, y):
        # Multiplying by the boolean mask is ~5x faster than np.copyto(..., where=): numpy's
        # masked loops are not vectorised. (A non-finite dy stays non-finite where y = 0.)
        return np.multiply(dy, np.greater(y, 0), out=dy)


class LeakyReLU(ActivationFunction):
    name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.2) -> None:
        # As Keras's LeakyReLU layer: a negative slope would make y's sign ambiguous.
        self.negative_slope = check_number(negative_slope, "negative_slope", minimum=0.0)

    def forward_(self, z):
        np.multiply(z, self.negative_slope, out=z, where=z < 0)
        return z

    def backward_(self, dy, y):
        # y <= 0 exactly where z <= 0 because the slope is not negative (with a slope of 0,
        # y is -0.0 there, so ``y < 0`` would miss it); at z = 0 the slope is used, as torch.
        np.multiply(dy, self.negative_slope, out=dy, where=y <= 0)
        return dy


class ELU(ActivationFunction):
    name = "elu"

    def __init__(self, alpha: float = 1.0) -> None:
        # The backward pass reads the sign of z from y, which needs alpha > 0.
        self.alpha = check_number(alpha, "alpha", minimum=0.0, exclusive_minimum=True)

    def forward_(self, z):
        negative = z < 0
        # expm1 of min(z, 0) never overflows, and is exact near 0.
        np.multiply(np.expm1(np.minimum(z, 0)), self.alpha, out=z, where=negative)
        return z

    def backward_(self, dy, y):
        negative = y < 0
        np.multiply(dy, y + self.alpha, out=dy, where=negative)
        return dy


class Sigmoid(ActivationFunction):
    name = "sigmoid"

    def forward_(self, z):
        # e = exp(-|z|) is in (0, 1]: sigmoid is 1/(1+e) for z >= 0 and e/(1+e) below.
        # Underflow to 0 for |z| > ~100 is the right answer, not an error.
        with np.errstate(under="ignore"):
            e = np.exp(-np.abs(z))
        numerator = np.where(z >= 0, 1.0, e).astype(z.dtype, copy=False)
        e += 1.0
        return np.divide(numerator, e, out=z)

    def backward_(self, dy, y):
        dy *= y
        dy *= 1.0 - y
        return dy


class Tanh(ActivationFunction):
    name = "tanh"

    def forward_(self, z):
        return np.tanh(z, out=z)

    def backward_(self, dy, y):
        dy *= 1.0 - y * y
        return dy


class Softmax(ActivationFunction):
    name = "softmax"

    def forward_(self, z):
        # exp of very negative values underflows to 0, which is exact enough; z - max can
        # overflow to -inf only for inputs near the float maximum, and exp(-inf) = 0 too.
        with np.errstate(under="ignore", over="ignore"):
            z -= z.max(axis=-1, keepdims=True)
            np.exp(z, out=z)
        z /= z.sum(axis=-1, keepdims=True)
        return z

    def backward_(self, dy, y):
        inner = np.einsum("...i,...i->...", dy, y)[..., None]
        dy -= inner
        dy *= y
        return dy


linear = Linear()
relu = ReLU()
leaky_relu = LeakyReLU()
elu = ELU()
sigmoid = Sigmoid()
tanh = Tanh()
softmax = Softmax()

_BY_NAME: dict[str, ActivationFunction] = {
    f.name: f for f in (linear, relu, leaky_relu, elu, sigmoid, tanh, softmax)
}


def get(identifier: str | ActivationFunction | None) -> ActivationFunction:
    """Returns the activation for a name, an activation object, or ``None`` (linear).

    Raises:
        ValueError: for an unknown name.
        TypeError: for anything else (layerkit needs the derivative, so an arbitrary
            Python function is not accepted).
    """
    if identifier is None:
        return linear
    if isinstance(identifier, ActivationFunction):
        return identifier
    if isinstance(identifier, str):
        return lookup(_BY_NAME, identifier, "activation", "activation")
    raise TypeError(
        "Expected an activation name, a layerkit activation or None. "
        f"Received: activation={identifier!r} of type {type(identifier).__name__}"
    )


def serialize(activation: ActivationFunction) -> str:
    """Returns the name under which ``activation`` is stored in configs."""
    return activation.name


def names() -> list[str]:
    """Returns the names of all known activations."""
    return sorted(_BY_NAME)


ActivationLike = str | ActivationFunction | Callable | None
