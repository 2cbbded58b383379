"""InputLayer and Input: the declared shape of a sample."""

from __future__ import annotations

from typing import Any

from .base import Layer, _check_shape, register_layer


@register_layer
class InputLayer(Layer):
    """Declares the shape of one sample; the first element of a Sequential model.

    ``lk.layers.Input(shape=(784,))`` is the usual way to write it.
    """

    def __init__(self, shape: tuple | int | None = None, **kwargs: Any) -> None:
        if shape is None:
            shape = kwargs.pop("input_shape", None)
        if shape is None:
            raise ValueError("InputLayer needs a shape. Received: shape=None")
        kwargs.pop("input_shape", None)
        super().__init__(**kwargs)
        self.shape = _check_shape(shape, "shape")
        self._declared_input_shape = (None, *self.shape)

    def forward(self, x, training=False):
        return x, lambda dy, need_dx=True: dy if need_dx else None

    def get_config(self):
        config = super().get_config()
        config.pop("input_shape", None)
        config["shape"] = list(self.shape)
        return config


def Input(shape: tuple | int, name: str | None = None, dtype: str | None = None) -> InputLayer:
    """Returns an :class:`InputLayer` for a Sequential model, as ``keras.Input`` does."""
    return InputLayer(shape=shape, name=name, dtype=dtype)
