"""The Activation layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import activations
from .base import Layer, register_layer


@register_layer
class Activation(Layer):
    """Applies an activation function: ``Activation("relu")``."""

    def __init__(self, activation: activations.ActivationLike, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def forward(self, x, training=False, *, logits=False):
        activation = activations.linear if logits else self.activation
        y = self._buffer("y", x.shape)
        np.copyto(y, x)
        activation.forward_(y)

        def backward(dy, need_dx=True):
            return activation.backward_(dy, y) if need_dx else None

        return y, backward

    def get_config(self):
        config = super().get_config()
        config["activation"] = activations.serialize(self.activation)
        return config
