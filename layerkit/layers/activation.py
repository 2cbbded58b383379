"""The Activation layer and the base of the activation layers."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import activations
from .base import Layer, register_layer


class ActivationLayer(Layer):
    """A layer that applies ``self.activation`` (an ``lk.activations`` object): the base of
    ``Activation`` and of the activation layers (``ReLU``, ``LeakyReLU``...)."""

    activation: activations.ActivationFunction | None

    def forward(self, x, training=False, *, logits=False):
        """``logits=True`` skips the activation (a fused softmax/sigmoid loss applies it)."""
        activation = activations.linear if logits else self.activation
        y = self._buffer("y", x.shape)
        np.copyto(y, x)
        activation.forward_(y)

        def backward(dy, need_dx=True):
            return activation.backward_(dy, y) if need_dx else None

        return y, backward


@register_layer
class Activation(ActivationLayer):
    """Applies an activation function: ``Activation("relu")``."""

    def __init__(self, activation: activations.ActivationLike, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def get_config(self):
        config = super().get_config()
        config["activation"] = activations.serialize(self.activation)
        return config
