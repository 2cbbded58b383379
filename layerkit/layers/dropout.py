"""Dropout: random zeroing of inputs while training."""

from __future__ import annotations

import numpy as np

from .base import register_layer
from .random_layer import RateLayer


@register_layer
class Dropout(RateLayer):
    """Sets a fraction ``rate`` of inputs to 0 while training, scaling the rest by 1/(1-rate).

    Active only while training (``fit``, ``train_on_batch``, ``compute_gradients``);
    the identity in ``predict`` and ``evaluate``.
    """

    def _active(self, x):
        keep = self._uniform(x.shape, x.dtype)
        # keep := 1/(1-rate) where the unit survives, else 0.
        np.greater_equal(keep, self.rate, out=keep, casting="unsafe")
        keep *= 1.0 / (1.0 - self.rate)
        y = self._buffer("y", x.shape)
        np.multiply(x, keep, out=y)
        return self._times(y, keep)
