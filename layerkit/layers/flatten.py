"""Flatten: one feature axis per sample."""

from __future__ import annotations

import numpy as np

from .base import Layer, register_layer


@register_layer
class Flatten(Layer):
    """Flattens each sample to one axis: ``(batch, 28, 28)`` becomes ``(batch, 784)``."""

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else int(np.prod(rest, dtype=np.int64))
        return (input_shape[0], size)

    def forward(self, x, training=False):
        y = x.reshape(x.shape[0], -1)

        def backward(dy, need_dx=True):
            return dy.reshape(x.shape) if need_dx else None

        return y, backward
