"""InputLayer and Input: the declared shape of a sample, and the start of a graph."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Layer, _check_shape, register_layer

if TYPE_CHECKING:
    from ..models.node import SymbolicTensor


@register_layer
class InputLayer(Layer):
    """Declares the shape of one sample: the first element of a Sequential model, or
    an input of a graph of layers.

    ``lk.layers.Input(shape=(784,))`` is the usual way to write it. The layer owns one
    call without inputs, whose output :attr:`output` is the symbolic tensor that
    ``Input`` returns.
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
        self.build(self._declared_input_shape)
        from ..models.node import Node

        Node(self, [], [self._declared_input_shape]).outputs[0].name = self.name

    def forward(self, x, training=False):
        return x, lambda dy, need_dx=True: dy if need_dx else None

    def get_config(self):
        config = super().get_config()
        config.pop("input_shape", None)
        config["shape"] = list(self.shape)
        return config


def Input(shape: tuple | int, name: str | None = None, dtype: str | None = None) -> SymbolicTensor:
    """Returns the symbolic tensor of a new :class:`InputLayer`, as ``keras.Input`` does:
    the start of a graph of layers, or the first element of a ``Sequential`` list.

    Args:
        shape: the shape of one sample, without the batch axis (``(784,)``).
        name: the input's name (automatic: ``input_layer``, ``input_layer_1``...).
        dtype: its float type (default ``lk.backend.floatx()``).

    Example:
        >>> x = lk.layers.Input(shape=(784,), name="pixels")
        >>> x.shape
        (None, 784)
        >>> model = lk.Sequential([lk.layers.Input((784,)), lk.layers.Dense(10)])
    """
    return InputLayer(shape=shape, name=name, dtype=dtype).output
