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
log_softmax z - log sum e^z  (last axis)     dy - e^y sum(dy)
selu        s z if z > 0 else s a (e^z - 1)  dy * (s if y > 0 else y + s a)
softplus    log(1 + e^z)                     dy * (1 - e^-y)
softsign    z / (1 + |z|)                    dy * (1 - |y|)^2
exponential e^z                              dy * y
relu6       min(max(z, 0), 6)                dy * (0 < y < 6)
hard_sigmoid relu6(z + 3) / 6                dy / 6 * (0 < y < 1)
gelu        z Phi(z)  (Phi: normal CDF)      dy * (Phi(z) + z phi(z))             [z kept]
silu        z sigmoid(z)   (alias swish)     dy * s (1 + z (1 - s)), s = sigmoid(z) [z kept]
hard_silu   z relu6(z + 3) / 6 (hard_swish)  dy * (0, z/3 + 1/2, 1) on (<=-3, -3..3, >=3) [z kept]
mish        z tanh(softplus(z))              dy * (t + z (1 - t^2) sigmoid(z))       [z kept]
=========== ================================ =========================================

Names, definitions and defaults are Keras 3's (``keras.activations``), down to the
gradient at the kinks where torch (Keras's backend in the tests) defines one. ``relu``
takes Keras's ``negative_slope``, ``max_value`` and ``threshold``; ``gelu`` Keras's
``approximate`` (``False``: the exact erf form, Keras's default by name).

gelu, silu, hard_silu and mish are not monotonic, so ``z`` cannot be read back from ``y``:
their ``forward_`` keeps a copy of ``z`` for the output array it wrote (one buffer per
output array, reused, freed with it), and ``backward_`` must get that same array.

No input, however large, overflows (exponential returns inf where e^z does, as Keras).
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from .registry import lookup
from .validation import check_number

__all__ = [
    "elu",
    "exponential",
    "gelu",
    "get",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "leaky_relu",
    "linear",
    "log_softmax",
    "mish",
    "relu",
    "relu6",
    "selu",
    "serialize",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "softsign",
    "swish",
    "tanh",
]


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

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments (``{}`` for activations without any)."""
        return {}

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


_SAME = object()  # "this instance's value" in ReLU.__call__


class ReLU(ActivationFunction):
    """Keras's ``relu(x, negative_slope=0.0, max_value=None, threshold=0.0)``.

    ``y = min(z, max_value)`` for ``z > threshold``, else ``negative_slope * (z - threshold)``.
    All three must be >= 0, as for Keras's ReLU layer (so the sign of ``y`` tells where
    ``z`` was). The gradient is 0 at ``z == threshold`` and ``z >= max_value``, as Keras
    on torch (except ``z == max_value`` exactly, where torch's clip gives 1 unless
    ``max_value == 6``); with only a slope, Keras's leaky_relu gives the slope at 0.

    ``lk.activations.relu(x, negative_slope=0.5)`` applies those options once, as Keras.
    """

    name = "relu"

    def __init__(
        self, negative_slope: float = 0.0, max_value: float | None = None, threshold: float = 0.0
    ) -> None:
        self.negative_slope = check_number(negative_slope, "negative_slope", minimum=0.0)
        self.max_value = (
            None if max_value is None else check_number(max_value, "max_value", minimum=0.0)
        )
        self.threshold = check_number(threshold, "threshold", minimum=0.0)
        self._plain = self.config == _RELU_DEFAULTS
        # Keras takes its leaky_relu path here, whose gradient at z = 0 is the slope.
        self._leaky = self.negative_slope != 0.0 and self.max_value is None and not self.threshold

    def get_config(self) -> dict[str, Any]:
        return self.config

    @property
    def config(self) -> dict[str, Any]:
        """The Keras arguments; Keras's ``"relu"`` is only the defaults."""
        return {
            "negative_slope": self.negative_slope,
            "max_value": self.max_value,
            "threshold": self.threshold,
        }

    def __call__(self, x, negative_slope=_SAME, max_value=_SAME, threshold=_SAME):
        options = {"negative_slope": negative_slope, "max_value": max_value, "threshold": threshold}
        options = {k: v for k, v in options.items() if v is not _SAME}
        if options and {**self.config, **options} != self.config:
            return ReLU(**{**self.config, **options})(x)
        return super().__call__(x)

    def forward_(self, z):
        if self._plain:
            # Against an array of zeros rather than the scalar 0: numpy 2.4 vectorises
            # maximum only when both operands are arrays of the same shape (4x faster).
            return np.maximum(z, _zeros(z.shape, z.dtype.str), out=z)
        if self._leaky:
            np.multiply(z, self.negative_slope, out=z, where=z < 0)
            return z
        below = z <= self.threshold
        negative = None
        if self.negative_slope:
            negative = z - self.threshold
            negative *= self.negative_slope
        np.copyto(z, 0.0, where=below)
        if self.max_value is not None:
            np.minimum(z, self.max_value, out=z)
        if negative is not None:
            np.copyto(z, negative, where=below)
        return z

    def backward_(self, dy, y):
        if self._plain:
            # Multiplying by the boolean mask is ~5x faster than np.copyto(..., where=):
            # numpy's masked loops are not vectorised. (A non-finite dy stays non-finite
            # where y = 0.)
            return np.multiply(dy, np.greater(y, 0), out=dy)
        if self._leaky:
            np.multiply(dy, self.negative_slope, out=dy, where=y <= 0)
            return dy
        passing = y > 0
        if self.max_value is not None:
            passing &= y < self.max_value
        slope = np.where(y < 0, self.negative_slope, passing).astype(dy.dtype, copy=False)
        return np.multiply(dy, slope, out=dy)


_RELU_DEFAULTS = {"negative_slope": 0.0, "max_value": None, "threshold": 0.0}


class LeakyReLU(ActivationFunction):
    name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.2) -> None:
        # As Keras's LeakyReLU layer: a negative slope would make y's sign ambiguous.
        self.negative_slope = check_number(negative_slope, "negative_slope", minimum=0.0)

    def get_config(self):
        return {"negative_slope": self.negative_slope}

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

    def get_config(self):
        return {"alpha": self.alpha}

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


class LogSoftmax(ActivationFunction):
    name = "log_softmax"

    def forward_(self, z):
        # As softmax: exp(z - max) <= 1, and the sum is >= 1, so its log is finite.
        with np.errstate(under="ignore", over="ignore"):
            z -= z.max(axis=-1, keepdims=True)
            z -= np.log(np.exp(z).sum(axis=-1, keepdims=True))
        return z

    def backward_(self, dy, y):
        total = dy.sum(axis=-1, keepdims=True)
        with np.errstate(under="ignore"):
            softmax = np.exp(y)
        softmax *= total
        dy -= softmax
        return dy


class SELU(ActivationFunction):
    """``scale * elu(z, alpha)`` with Keras's (and torch's) constants."""

    name = "selu"
    alpha = 1.6732632423543772848170429916717
    scale = 1.0507009873554804934193349852946

    def forward_(self, z):
        negative = z < 0
        np.multiply(np.expm1(np.minimum(z, 0)), self.alpha, out=z, where=negative)
        with np.errstate(over="ignore"):  # beyond max / scale the answer is inf, as Keras
            z *= self.scale
        return z

    def backward_(self, dy, y):
        # y <= 0 exactly where z <= 0; at z = 0 torch takes the negative branch: scale * alpha.
        np.multiply(dy, y + self.scale * self.alpha, out=dy, where=y <= 0)
        np.multiply(dy, self.scale, out=dy, where=y > 0)
        return dy


class Softplus(ActivationFunction):
    """``log(1 + e^z)``, as ``max(z, 0) + log1p(e^-|z|)`` so nothing overflows."""

    name = "softplus"

    def forward_(self, z):
        with np.errstate(under="ignore"):
            tail = np.log1p(np.exp(-np.abs(z)))
        np.maximum(z, 0, out=z)
        z += tail
        return z

    def backward_(self, dy, y):
        # sigmoid(z) = 1 - e^-y, exact for small y through expm1.
        with np.errstate(under="ignore"):
            dy *= -np.expm1(-y)
        return dy


class Softsign(ActivationFunction):
    name = "softsign"

    def forward_(self, z):
        denominator = np.abs(z)
        denominator += 1.0
        z /= denominator
        return z

    def backward_(self, dy, y):
        # 1 / (1 + |z|)^2 = (1 - |y|)^2; for |z| beyond 1/eps that is 0, off by < eps^2.
        factor = np.abs(y)
        np.subtract(1.0, factor, out=factor)
        factor *= factor
        dy *= factor
        return dy


class Exponential(ActivationFunction):
    name = "exponential"

    def forward_(self, z):
        # e^z beyond the float range is inf, as in Keras: the right answer, not a warning.
        with np.errstate(over="ignore", under="ignore"):
            return np.exp(z, out=z)

    def backward_(self, dy, y):
        dy *= y
        return dy


class ReLU6(ActivationFunction):
    name = "relu6"

    def forward_(self, z):
        np.maximum(z, _zeros(z.shape, z.dtype.str), out=z)
        return np.minimum(z, 6.0, out=z)

    def backward_(self, dy, y):
        # 0 at z = 0 and z = 6, as torch's relu6.
        inside = np.greater(y, 0)
        inside &= y < 6.0
        return np.multiply(dy, inside, out=dy)


class HardSigmoid(ActivationFunction):
    """Keras 3's ``relu6(z + 3) / 6`` (Keras 2's was ``0.2 z + 0.5``)."""

    name = "hard_sigmoid"

    def forward_(self, z):
        z += 3.0
        np.clip(z, 0.0, 6.0, out=z)
        z /= 6.0
        return z

    def backward_(self, dy, y):
        inside = np.greater(y, 0)
        inside &= y < 1.0
        np.multiply(dy, inside, out=dy)
        dy /= 6.0
        return dy


class _KeepsInput(ActivationFunction):
    """An activation whose derivative needs ``z``, which it keeps per output array.

    The copy is keyed by the identity of the array ``forward_`` wrote (a layer's output
    buffer, reused from step to step, or the array ``__call__`` returned), so layers
    sharing the activation, or a layer called twice, each keep their own; it is freed
    with that array.
    """

    def __init__(self) -> None:
        self._inputs: dict[int, tuple[weakref.ref, np.ndarray]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_inputs"] = {}  # weak references neither copy nor pickle
        return state

    def _keep(self, z: np.ndarray) -> np.ndarray:
        key = id(z)
        entry = self._inputs.get(key)
        if entry is not None and entry[0]() is z and entry[1].shape == z.shape:
            kept = entry[1]
            if kept.dtype == z.dtype:
                np.copyto(kept, z)
                return kept
        inputs = self._inputs
        kept = z.copy()
        inputs[key] = (weakref.ref(z, lambda _, key=key: inputs.pop(key, None)), kept)
        return kept

    def _kept(self, y: np.ndarray) -> np.ndarray:
        entry = self._inputs.get(id(y))
        if entry is None or entry[0]() is not y or entry[1].shape != y.shape:
            raise ValueError(
                f"The backward pass of {self.name} needs its input, which it keeps for the "
                "array forward_ returned: pass that array as y. Received: an array "
                f"of shape {y.shape} that forward_ did not write."
            )
        return entry[1]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """sigmoid(z) as a new array, without overflow (see Sigmoid)."""
    return Sigmoid().forward_(np.array(z, copy=True))


# Taylor coefficients of erf(x) = 2/sqrt(pi) x e^-x^2 sum_n (2x^2)^n / (2n+1)!!, all
# positive (no cancellation); 35 terms reach double precision for |x| < 2.
_ERF_SERIES = np.cumprod([1.0] + [1.0 / (2 * n + 1) for n in range(1, 35)])[::-1]


def _erfc(x: np.ndarray) -> np.ndarray:
    """erfc(x) in float64 (numpy has no erf), relative error below 1e-13.

    The Taylor series above for |x| < 2; beyond, Laplace's continued fraction
    erfc(x) = e^-x^2 / sqrt(pi) / (x + (1/2) / (x + 1 / (x + (3/2) / (x + ...)))),
    60 levels deep, for |x|, with erfc(-x) = 2 - erfc(x).
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    near = np.abs(x) < 2.0
    xs = x[near]
    u = 2.0 * xs * xs
    series = np.full_like(xs, _ERF_SERIES[0])
    for coefficient in _ERF_SERIES[1:]:
        series *= u
        series += coefficient
    series *= xs * np.exp(-xs * xs) * (2.0 / math.sqrt(math.pi))
    out[near] = 1.0 - series
    far = ~near
    xf = x[far]
    # erfc(27) ~ 5e-319: beyond, 0 (or 2) exactly, and x^2 stays finite.
    a = np.minimum(np.abs(xf), 27.0)
    fraction = a.copy()
    for k in range(60, 0, -1):
        fraction = a + (0.5 * k) / fraction
    with np.errstate(under="ignore"):
        tail = np.exp(-a * a) / (math.sqrt(math.pi) * fraction)
    out[far] = np.where(xf < 0, 2.0 - tail, tail)
    return out


class GELU(_KeepsInput):
    """Keras's ``gelu(x, approximate=False)``: ``z Phi(z)``, Phi the normal CDF.

    ``approximate=True`` is the tanh form
    ``z/2 (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))``.
    The exact form computes erf in float64 (numpy has none), which makes it slower than
    the others (a few ms per 100k values).
    """

    name = "gelu"

    def __init__(self, approximate: bool = False) -> None:
        super().__init__()
        if not isinstance(approximate, (bool, np.bool_)):
            raise TypeError(
                f"Expected approximate to be a bool. Received: approximate={approximate!r}"
            )
        self.approximate = bool(approximate)

    def get_config(self):
        return {"approximate": self.approximate}

    _C = math.sqrt(2.0 / math.pi)

    def _inner_tanh(self, z):
        # Beyond |z| = 10 the tanh is +-1 in float64 already; clipping keeps z^3 finite.
        c = np.clip(z, -10.0, 10.0)
        inner = c * c
        inner *= 0.044715
        inner += 1.0
        inner *= c
        inner *= self._C
        return np.tanh(inner, out=inner)

    def forward_(self, z):
        kept = self._keep(z)
        if self.approximate:
            t = self._inner_tanh(kept)
            t += 1.0
            z *= 0.5
            z *= t
            return z
        cdf = _erfc(kept.astype(np.float64) * (-1.0 / math.sqrt(2.0)))
        cdf *= 0.5
        np.multiply(z, cdf, out=z, casting="same_kind")
        return z

    def backward_(self, dy, y):
        z = self._kept(y)
        if self.approximate:
            t = self._inner_tanh(z)
            c = np.clip(z, -10.0, 10.0)
            # d/dz of sqrt(2/pi) (z + 0.044715 z^3)
            du = c * c
            du *= 3 * 0.044715
            du += 1.0
            du *= self._C
            sech2 = t * t
            np.subtract(1.0, sech2, out=sech2)
            sech2 *= du
            sech2 *= z
            sech2 += t
            sech2 += 1.0
            sech2 *= 0.5
            dy *= sech2
            return dy
        z64 = z.astype(np.float64, copy=False)
        derivative = _erfc(z64 * (-1.0 / math.sqrt(2.0)))
        derivative *= 0.5
        # phi(z) = e^(-z^2/2) / sqrt(2 pi) is 0 in float64 beyond |z| = 40.
        density = np.minimum(np.abs(z64), 40.0)
        density *= density
        density *= -0.5
        with np.errstate(under="ignore"):
            np.exp(density, out=density)
        density *= z64
        density *= 1.0 / math.sqrt(2.0 * math.pi)
        derivative += density
        np.multiply(dy, derivative, out=dy, casting="same_kind")
        return dy


class SiLU(_KeepsInput):
    """``z sigmoid(z)``; Keras's ``silu``, also named ``swish``."""

    name = "silu"

    def forward_(self, z):
        kept = self._keep(z)
        Sigmoid.forward_(self, z)
        z *= kept
        return z

    def backward_(self, dy, y):
        z = self._kept(y)
        s = _sigmoid(z)
        # s + z s (1 - s) = s + y (1 - s)
        derivative = np.subtract(1.0, s)
        derivative *= y
        derivative += s
        dy *= derivative
        return dy


class HardSiLU(_KeepsInput):
    """``z relu6(z + 3) / 6``; Keras's ``hard_silu``, also named ``hard_swish``."""

    name = "hard_silu"

    def forward_(self, z):
        kept = self._keep(z)
        # The factor is exactly 1 above 3, so large z stay z (z * 6 could overflow).
        HardSigmoid.forward_(self, z)
        z *= kept
        return z

    def backward_(self, dy, y):
        z = self._kept(y)
        # As torch: 0 up to -3, z/3 + 1/2 between, 1 from 3 on.
        derivative = np.clip(z, -3.0, 3.0)
        derivative /= 3.0
        derivative += 0.5
        np.copyto(derivative, 1.0, where=z >= 3.0)
        np.copyto(derivative, 0.0, where=z <= -3.0)
        dy *= derivative
        return dy


class Mish(_KeepsInput):
    """``z tanh(softplus(z))``."""

    name = "mish"

    def forward_(self, z):
        kept = self._keep(z)
        Softplus.forward_(self, z)
        np.tanh(z, out=z)
        z *= kept
        return z

    def backward_(self, dy, y):
        z = self._kept(y)
        t = Softplus.forward_(self, z.copy())
        np.tanh(t, out=t)
        # t + z (1 - t^2) sigmoid(z)
        derivative = t * t
        np.subtract(1.0, derivative, out=derivative)
        derivative *= z
        derivative *= _sigmoid(z)
        derivative += t
        dy *= derivative
        return dy


linear = Linear()
relu = ReLU()
leaky_relu = LeakyReLU()
elu = ELU()
sigmoid = Sigmoid()
tanh = Tanh()
softmax = Softmax()
log_softmax = LogSoftmax()
selu = SELU()
softplus = Softplus()
softsign = Softsign()
exponential = Exponential()
relu6 = ReLU6()
hard_sigmoid = HardSigmoid()
gelu = GELU()
silu = swish = SiLU()
hard_silu = hard_swish = HardSiLU()
mish = Mish()

_BY_NAME: dict[str, ActivationFunction] = {
    f.name: f
    for f in (
        linear,
        relu,
        leaky_relu,
        elu,
        sigmoid,
        tanh,
        softmax,
        log_softmax,
        selu,
        softplus,
        softsign,
        exponential,
        relu6,
        hard_sigmoid,
        gelu,
        silu,
        hard_silu,
        mish,
    )
}
# Keras's aliases; serialised under the main name, as Keras does.
_BY_NAME["swish"] = silu
_BY_NAME["hard_swish"] = hard_silu


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
    if isinstance(identifier, dict):
        return _from_config(identifier)
    raise TypeError(
        "Expected an activation name, a layerkit activation or None. "
        f"Received: activation={identifier!r} of type {type(identifier).__name__}"
    )


def serialize(activation: ActivationFunction) -> str | dict[str, Any]:
    """Returns how ``activation`` is stored in configs: its name when it has the
    registered activation's settings, else ``{"class_name": ..., "config": {...}}`` (a
    ``LeakyReLU(0.1)`` stored as ``"leaky_relu"`` would load with the default slope)."""
    registered = _BY_NAME.get(activation.name)
    if type(registered) is type(activation) and registered.get_config() == activation.get_config():
        return activation.name
    return {"class_name": type(activation).__name__, "config": activation.get_config()}


def _from_config(spec: dict) -> ActivationFunction:
    """An activation from :func:`serialize`'s dict form; only layerkit's classes."""
    classes = {type(a).__name__: type(a) for a in _BY_NAME.values()}
    cls = classes.get(spec.get("class_name"))
    config = spec.get("config", {})
    if cls is None or not isinstance(config, dict):
        raise ValueError(
            f"Unknown activation config: expected a class among {sorted(classes)} and a "
            f"dict of options. Received: {spec!r:.200}"
        )
    try:
        return cls(**config)
    except TypeError as error:
        raise ValueError(f"Invalid config for activation {cls.__name__}: {error}") from None


def names() -> list[str]:
    """Returns the names of all known activations."""
    return sorted(_BY_NAME)


ActivationLike = str | ActivationFunction | Callable | None
