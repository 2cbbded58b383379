"""Noise layers of Keras 3, active only while training: ``GaussianNoise``,
``GaussianDropout`` and ``AlphaDropout`` (the dropout that keeps SELU's self-normalising
mean and variance). Each is the identity in ``predict`` and ``evaluate``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..validation import check_number
from .base import register_layer
from .random_layer import RandomLayer, RateLayer

# SELU's constants (Klambauer et al. 2017), as Keras writes them.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@register_layer
class GaussianNoise(RandomLayer):
    """Adds zero-centred Gaussian noise of standard deviation ``stddev`` while training.

    Example:
        >>> noisy = lk.layers.GaussianNoise(0.1)(lk.layers.Input((784,)))
    """

    def __init__(self, stddev: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.stddev = check_number(stddev, "stddev", minimum=0.0)

    def forward(self, x, training=False):
        if not training or self.stddev == 0.0:
            return self._identity(x)
        y = self._buffer("y", x.shape)
        np.multiply(self._normal(x.shape, x.dtype), x.dtype.type(self.stddev), out=y)
        y += x
        return y, lambda dy, need_dx=True: dy if need_dx else None

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["stddev"] = self.stddev
        return config


@register_layer
class GaussianDropout(RateLayer):
    """Multiplies inputs by Gaussian noise of mean 1 and standard deviation
    ``sqrt(rate / (1 - rate))`` while training."""

    def _active(self, x):
        noise = self._normal(x.shape, x.dtype)
        noise *= x.dtype.type(math.sqrt(self.rate / (1.0 - self.rate)))
        noise += 1
        y = self._buffer("y", x.shape)
        np.multiply(x, noise, out=y)
        return self._times(y, noise)


@register_layer
class AlphaDropout(RateLayer):
    """Dropout for SELU networks: dropped units are set to SELU's negative saturation
    value, and an affine map keeps the mean and variance of the inputs (Keras 3's
    formula), so that ``activation="selu"`` with ``lecun_normal`` stays self-normalising.

    Example:
        >>> layers = [lk.layers.Dense(100, activation="selu",
        ...                           kernel_initializer="lecun_normal"),
        ...           lk.layers.AlphaDropout(0.1)]
    """

    def __init__(
        self,
        rate: float,
        noise_shape: tuple | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(rate, seed=seed, **kwargs)
        if noise_shape is not None:
            raise ValueError(
                "AlphaDropout(noise_shape=...) is not supported; layerkit drops units "
                f"independently. Received: noise_shape={noise_shape!r}"
            )
        self.noise_shape = None

    def _active(self, x):
        rate = self.rate
        alpha_p = -_SELU_ALPHA * _SELU_SCALE
        a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
        b = -a * alpha_p * rate
        dropped = a * alpha_p + b
        # Keras's a * (x * keep + alpha_p * (1 - keep)) + b, as (x - alpha_p) * gain +
        # dropped with gain = a * keep: a * x + b where kept, ``dropped`` elsewhere, in
        # three passes without temporaries; gain is also the gradient.
        gain = self._buffer("gain", x.shape, x.dtype)
        np.multiply(self._keep_mask(x.shape, rate), x.dtype.type(a), out=gain)
        y = self._buffer("y", x.shape)
        np.subtract(x, x.dtype.type(alpha_p), out=y)
        y *= gain
        y += x.dtype.type(dropped)
        return self._times(y, gain)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["noise_shape"] = None
        return config
