"""Weight initializers, by name (``"glorot_uniform"``) or as objects with a seed.

Keras 3's definitions, with ``fan_in, fan_out`` the kernel's input and output sizes:

* ``glorot_uniform``: U(-l, l), l = sqrt(6 / (fan_in + fan_out))
* ``glorot_normal``: truncated N(0, s), s = sqrt(2 / (fan_in + fan_out)) / 0.8796
* ``he_uniform``: U(-l, l), l = sqrt(6 / fan_in);  ``he_normal``: s = sqrt(2 / fan_in) / 0.8796
* ``lecun_normal``: s = sqrt(1 / fan_in) / 0.8796;  ``lecun_uniform``: l = sqrt(3 / fan_in)
* ``variance_scaling(scale, mode, distribution)``: variance ``scale / n`` with ``n`` the
  ``fan_in``, ``fan_out`` or their mean (at least 1), drawn from a truncated normal,
  a normal or a uniform distribution; the ones above are its special cases.
* ``random_normal`` N(0, 0.05), ``truncated_normal`` N(0, 0.05) truncated (std 0.05 *
  0.8796), ``random_uniform`` U(-0.05, 0.05), ``zeros``, ``ones``, ``constant(value)``.
* ``orthogonal(gain)``: ``gain * Q`` with Q from the QR decomposition of a normal draw,
  so ``W.T @ W = gain**2 I`` (tall) or ``W @ W.T = gain**2 I`` (wide); higher ranks are
  drawn as ``(prod(shape[:-1]), shape[-1])`` and reshaped.
* ``identity(gain)``: ``gain * eye(rows, cols)``, for 2-D shapes only.

For a 2-D shape ``(in, out)`` the fans are ``in`` and ``out``; for higher ranks
(convolution kernels ``(..., in, out)``) both are multiplied by the receptive field
``prod(shape[:-2])``, as Keras's ``compute_fans``.

Each name is also the class, as in Keras 3: ``lk.initializers.he_normal(seed=0)`` is
``HeNormal(seed=0)``. Numeric options accept numpy scalars (``stddev=np.float32(0.1)``).

The truncated normals redraw values two standard deviations or more from the mean, so
values lie strictly inside, as Keras's definition; 0.8796 is the
standard deviation of a unit normal truncated there, so the result has std ``s * 0.8796``.

Example:
    >>> init = GlorotUniform(seed=1)
    >>> init((784, 300)).dtype
    dtype('float32')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backend
from . import random as lk_random
from .registry import lookup
from .validation import check_integer, check_number

_TRUNCATED_STD = 0.87962566103423978


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: ``init(shape, dtype=None)`` returns a new array."""

    def __init__(self, seed: int | None = None) -> None:
        # Stored as a plain int: configs are written as JSON.
        self.seed = None if seed is None else check_integer(seed, "seed", minimum=0)

    def _rng(self) -> np.random.Generator:
        # A seeded initializer gives the same values at every call, as in Keras.
        return np.random.default_rng(self.seed) if self.seed is not None else lk_random.global_rng()

    def __call__(self, shape, dtype=None) -> np.ndarray:
        shape = tuple(int(s) for s in shape)
        dtype = np.dtype(dtype or backend.floatx())
        return self.generate(shape).astype(dtype, copy=False)

    def generate(self, shape: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        return cls(**config)


class Zeros(Initializer):
    def __init__(self) -> None:
        super().__init__(None)

    def generate(self, shape):
        return np.zeros(shape)

    def get_config(self):
        return {}


class Ones(Zeros):
    def generate(self, shape):
        return np.ones(shape)


class Constant(Initializer):
    def __init__(self, value: float = 0.0) -> None:
        super().__init__(None)
        self.value = check_number(value, "value")

    def generate(self, shape):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.mean = check_number(mean, "mean")
        self.stddev = check_number(stddev, "stddev", minimum=0.0)

    def generate(self, shape):
        return self._rng().normal(self.mean, self.stddev, size=shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class TruncatedNormal(Initializer):
    """N(mean, stddev) with values two ``stddev`` or more from ``mean`` redrawn.

    As Keras, ``stddev`` is that of the normal before truncation: the values have
    standard deviation ``0.8796 * stddev`` and lie inside ``mean +- 2 * stddev``.
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.mean = check_number(mean, "mean")
        self.stddev = check_number(stddev, "stddev", minimum=0.0)

    def generate(self, shape):
        return _truncated_normal(self._rng(), self.stddev, shape, self.mean)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(Initializer):
    def __init__(
        self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None
    ) -> None:
        super().__init__(seed)
        self.minval = check_number(minval, "minval")
        self.maxval = check_number(maxval, "maxval")

    def generate(self, shape):
        return self._rng().uniform(self.minval, self.maxval, size=shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")


class VarianceScaling(Initializer):
    """Scales the spread by the fans: ``scale / n`` is the target variance.

    Args:
        scale: a positive factor.
        mode: ``n`` is ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"`` (their mean), at least 1.
        distribution: ``"truncated_normal"`` (std ``sqrt(scale / n)`` after truncation at
            two standard deviations of the underlying normal), ``"untruncated_normal"``
            (std ``sqrt(scale / n)``) or ``"uniform"`` (U(-l, l), ``l = sqrt(3 scale / n)``).
            ``"normal"`` means ``"truncated_normal"``, as in Keras.
        seed: makes every call return the same values; ``None`` draws from the global
            generator (:func:`layerkit.utils.set_random_seed`).

    Keras 3.x also accepts ``input_axes`` / ``output_axes``; their default (``None``) is
    the fan computation here, so configs without them mean the same in Keras.
    """

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        scale = check_number(scale, "scale", minimum=0.0, exclusive_minimum=True)
        if mode not in _MODES:
            raise ValueError(f"Expected mode in fan_in, fan_out, fan_avg. Received: mode={mode!r}")
        if not isinstance(distribution, str):
            raise TypeError(
                "Expected a string for distribution. "
                f"Received: distribution={distribution!r:.100} "
                f"of type {type(distribution).__name__}"
            )
        # As Keras: case-insensitive, and "normal" is the truncated normal.
        distribution = distribution.lower()
        distribution = "truncated_normal" if distribution == "normal" else distribution
        if distribution not in _DISTRIBUTIONS:
            raise ValueError(
                "Expected distribution in truncated_normal, untruncated_normal, uniform. "
                f"Received: distribution={distribution!r}"
            )
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def generate(self, shape):
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        rng = self._rng()
        if self.distribution == "uniform":
            limit = np.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, size=shape)
        if self.distribution == "untruncated_normal":
            return rng.normal(0.0, np.sqrt(variance), size=shape)
        return _truncated_normal(rng, np.sqrt(variance) / _TRUNCATED_STD, shape)

    def get_config(self):
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": self.seed,
        }


def _truncated_normal(
    rng: np.random.Generator, stddev: float, shape, mean: float = 0.0
) -> np.ndarray:
    """N(mean, stddev) restricted to the open interval mean +- 2 stddev, by redrawing."""
    values = rng.normal(0.0, 1.0, size=shape)
    outside = np.abs(values) >= 2.0
    while outside.any():
        values[outside] = rng.normal(0.0, 1.0, size=int(outside.sum()))
        outside = np.abs(values) >= 2.0
    return values * stddev + mean


class GlorotUniform(VarianceScaling):
    def __init__(self, seed: int | None = None) -> None:
        super().__init__(1.0, "fan_avg", "uniform", seed)

    def get_config(self):
        return {"seed": self.seed}


class GlorotNormal(VarianceScaling):
    def __init__(self, seed: int | None = None) -> None:
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)

    def get_config(self):
        return {"seed": self.seed}


class HeUniform(VarianceScaling):
    def __init__(self, seed: int | None = None) -> None:
        super().__init__(2.0, "fan_in", "uniform", seed)

    def get_config(self):
        return {"seed": self.seed}


class HeNormal(VarianceScaling):
    def __init__(self, seed: int | None = None) -> None:
        super().__init__(2.0, "fan_in", "truncated_normal", seed)

    def get_config(self):
        return {"seed": self.seed}


class LecunNormal(VarianceScaling):
    def __init__(self, seed: int | None = None) -> None:
        super().__init__(1.0, "fan_in", "truncated_normal", seed)

    def get_config(self):
        return {"seed": self.seed}


class LecunUniform(VarianceScaling):
    def __init__(self, seed: int | None = None) -> None:
        super().__init__(1.0, "fan_in", "uniform", seed)

    def get_config(self):
        return {"seed": self.seed}


class Orthogonal(Initializer):
    """``gain`` times a random orthogonal matrix (Saxe et al., 2014), as Keras 3.

    A normal ``(max(r, c), min(r, c))`` draw, with ``r = prod(shape[:-1])`` and
    ``c = shape[-1]``, is QR-decomposed; Q's columns are multiplied by the signs of R's
    diagonal (so Q is uniformly distributed), transposed when ``r < c`` and reshaped.
    Tall shapes get orthonormal columns, wide ones orthonormal rows.
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        super().__init__(seed)
        self.gain = check_number(gain, "gain")

    def generate(self, shape):
        if len(shape) < 2:
            raise ValueError(
                "Orthogonal initializer needs a shape of rank 2 or more. "
                f"Received: shape={shape} of rank {len(shape)}"
            )
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        if rows == 0 or cols == 0:
            raise ValueError(
                f"Orthogonal initializer cannot fill an empty shape. Received: shape={shape}"
            )
        q, r = np.linalg.qr(self._rng().normal(size=(max(rows, cols), min(rows, cols))))
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """``gain * eye(rows, cols)``; only 2-D shapes, as in Keras (not square-only)."""

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__(None)
        self.gain = check_number(gain, "gain")

    def generate(self, shape):
        if len(shape) != 2:
            raise ValueError(
                "Identity initializer can only fill 2-D shapes. "
                f"Received: shape={shape} of rank {len(shape)}"
            )
        return self.gain * np.eye(*shape)

    def get_config(self):
        return {"gain": self.gain}


# Keras 3 exports every initializer class under its snake-case name as well, so
# ``glorot_uniform(seed=1)`` is a ``GlorotUniform``: the names that work as strings also
# work as Python objects.
zeros = Zeros
ones = Ones
constant = Constant
random_normal = RandomNormal
random_uniform = RandomUniform
truncated_normal = TruncatedNormal
variance_scaling = VarianceScaling
glorot_uniform = GlorotUniform
glorot_normal = GlorotNormal
he_uniform = HeUniform
he_normal = HeNormal
lecun_normal = LecunNormal
lecun_uniform = LecunUniform
orthogonal = Orthogonal
identity = Identity

_BY_NAME: dict[str, type[Initializer]] = {
    "zeros": Zeros,
    "ones": Ones,
    "constant": Constant,
    "random_normal": RandomNormal,
    "random_uniform": RandomUniform,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
    "lecun_normal": LecunNormal,
    "lecun_uniform": LecunUniform,
    "orthogonal": Orthogonal,
    "identity": Identity,
}
_NAME_OF = {cls: name for name, cls in _BY_NAME.items()}


def get(identifier: str | Initializer | dict, argument: str = "initializer") -> Initializer:
    """Returns an initializer for a name, an object, or a config dict from :func:`serialize`.

    ``argument`` names the constructor argument in error messages."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        return lookup(_BY_NAME, identifier, "initializer", argument)()
    if isinstance(identifier, dict) and set(identifier) == {"class_name", "config"}:
        cls = _BY_NAME.get(str(identifier["class_name"]))
        if cls is None or not isinstance(identifier["config"], dict):
            raise ValueError(
                f"Unknown initializer config. Received: {argument}={identifier!r:.200}"
            )
        return cls.from_config(identifier["config"])
    raise TypeError(
        "Expected an initializer name or object. "
        f"Received: {argument}={identifier!r:.100} of type {type(identifier).__name__}"
    )


def serialize(initializer: Initializer) -> str | dict[str, Any]:
    """Returns a JSON-serialisable description that :func:`get` turns back into it."""
    name = _NAME_OF.get(type(initializer))
    if name is None:
        raise TypeError(f"Cannot serialise initializer of type {type(initializer).__name__}")
    config = initializer.get_config()
    if not config or config == {"seed": None}:
        return name
    return {"class_name": name, "config": config}
