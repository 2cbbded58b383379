"""Dropout: random zeroing of inputs while training."""

from __future__ import annotations

import numpy as np

from .base import register_layer
from .random_layer import RateLayer


@register_layer
class Dropout(RateLayer):
    """Sets a fraction ``rate`` of inputs to 0 while training, scaling the rest by 1/(1-rate).

    ``y = x * keep / (1 - rate)`` with ``keep`` 1 with probability ``1 - rate`` (to
    ``2**-16``: see :mod:`~layerkit.layers.random_layer`), else 0, drawn afresh at every
    call. Active only while training (``fit``, ``train_on_batch``, ``compute_gradients``);
    the identity in ``predict`` and ``evaluate``.
    """

    def _active(self, x):
        mask = self._keep_mask(x.shape, self.rate)
        # The factor 1/(1-rate) where the unit survives, else 0: the output's and the
        # gradient's, in one pass from the mask.
        keep = self._buffer("keep", x.shape, x.dtype)
        np.multiply(mask, x.dtype.type(1.0 / (1.0 - self.rate)), out=keep)
        y = self._buffer("y", x.shape)
        np.multiply(x, keep, out=y)
        return self._times(y, keep)
