"""Dropout: random zeroing of inputs while training."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..random import make_rng, rng_from_state, rng_state
from ..validation import check_integer, check_number
from .base import Layer, register_layer


@register_layer
class Dropout(Layer):
    """Sets a fraction ``rate`` of inputs to 0 while training, scaling the rest by 1/(1-rate).

    Active only while training (``fit``, ``train_on_batch``, ``compute_gradients``);
    the identity in ``predict`` and ``evaluate``.
    """

    deterministic = False

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Keras allows rate=1; here it would divide by zero (1 / (1 - rate)).
        self.rate = check_number(rate, "rate", minimum=0.0, maximum=1.0, exclusive_maximum=True)
        # A plain int: the config is stored as JSON.
        self.seed = None if seed is None else check_integer(seed, "seed", minimum=0)
        self._rng = make_rng(self.seed)

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            return x, lambda dy, need_dx=True: dy if need_dx else None
        keep = self._buffer("keep", x.shape)
        if keep.dtype in (np.float32, np.float64):
            self._rng.random(dtype=keep.dtype, out=keep)
        else:
            keep[...] = self._rng.random(keep.shape)
        # keep := 1/(1-rate) where the unit survives, else 0.
        np.greater_equal(keep, self.rate, out=keep, casting="unsafe")
        keep *= 1.0 / (1.0 - self.rate)
        y = self._buffer("y", x.shape)
        np.multiply(x, keep, out=y)

        def backward(dy, need_dx=True):
            if not need_dx:
                return None
            dy *= keep
            return dy

        return y, backward

    def training_state(self):
        return {"rng": rng_state(self._rng)}

    def load_training_state(self, state):
        if "rng" in state:
            self._rng = rng_from_state(state["rng"])

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config
