"""The fully connected layer: ``y = activation(x @ kernel + bias)``."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .. import activations, initializers
from ..validation import check_integer
from .base import Layer, register_layer


def _positive_int(value: Any, argument: str) -> int:
    """``value`` as an int >= 1; numpy integers are accepted (Keras 3 refuses them)."""
    return check_integer(value, argument, minimum=1)


@functools.lru_cache(maxsize=32)
def _ones(n: int, dtype: np.dtype) -> np.ndarray:
    ones = np.ones(n, dtype)
    ones.flags.writeable = False
    return ones


@register_layer
class Dense(Layer):
    """A densely connected layer; the kernel is ``(input_dim, units)`` as in Keras.

    Args:
        units: number of outputs.
        activation: name or ``lk.activations`` function; ``None`` is linear.
        use_bias: whether to add a bias vector.
        kernel_initializer, bias_initializer: names or ``lk.initializers`` objects.
        name: layer name; ``input_dim`` / ``input_shape``: input size, to build eagerly.

    Example:
        >>> layer = Dense(300, activation="relu", name="hidden1", input_dim=784)
        >>> layer.kernel.shape
        (784, 300)
    """

    def __init__(
        self,
        units: int,
        activation: activations.ActivationLike = None,
        use_bias: bool = True,
        kernel_initializer: str | initializers.Initializer = "glorot_uniform",
        bias_initializer: str | initializers.Initializer = "zeros",
        name: str | None = None,
        input_dim: int | None = None,
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        if input_dim is not None:
            if kwargs.get("input_shape") is not None:
                raise ValueError("Pass input_dim or input_shape, not both.")
            kwargs["input_shape"] = (_positive_int(input_dim, "input_dim"),)
        super().__init__(name=name, activity_regularizer=activity_regularizer, **kwargs)
        self.units = _positive_int(units, "units")
        self.activation = activations.get(activation)
        if not isinstance(use_bias, (bool, np.bool_)):
            raise TypeError(f"Expected use_bias to be a bool. Received: use_bias={use_bias!r}")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self._set_weight_options(
            {
                "kernel_regularizer": kernel_regularizer,
                "bias_regularizer": bias_regularizer,
                "kernel_constraint": kernel_constraint,
                "bias_constraint": bias_constraint,
            }
        )
        self.kernel = None
        self.bias = None

    def weight_shapes(self, input_shape) -> dict[str, tuple]:
        if len(input_shape) < 2:
            raise ValueError(
                f"Dense layer {self.name!r} expects inputs of rank >= 2 (batch, features). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        input_dim = _positive_int(input_shape[-1], "input_shape[-1]")
        shapes = {"kernel": (input_dim, self.units)}
        if self.use_bias:
            shapes["bias"] = (self.units,)
        return shapes

    def build(self, input_shape) -> None:
        shapes = self.weight_shapes(input_shape)
        self.kernel = self.add_weight(
            "kernel",
            shapes["kernel"],
            self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                "bias",
                shapes["bias"],
                self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        super().build(input_shape)

    def unbuild(self) -> None:
        super().unbuild()
        self.kernel = self.bias = None

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.units)

    def forward(self, x, training=False, *, logits=False):
        """``logits=True`` skips the activation (a fused softmax/sigmoid loss does it)."""
        kernel = self.kernel.value
        x2 = x.reshape(-1, kernel.shape[0]) if x.ndim != 2 else x
        y = self._buffer("y", (x2.shape[0], self.units))
        np.matmul(x2, kernel, out=y)
        if self.use_bias:
            y += self.bias.value
        activation = activations.linear if logits else self.activation
        activation.forward_(y)

        def backward(dy, need_dx=True):
            dz = activation.backward_(dy.reshape(y.shape), y)
            if self._trainable:
                if self._accumulate:  # a later call of a shared layer: add to the gradient
                    dkernel = self._buffer("dkernel", kernel.shape)
                    np.matmul(x2.T, dz, out=dkernel)
                    self.kernel.grad += dkernel
                    if self.use_bias:
                        self.bias.grad += np.matmul(_ones(dz.shape[0], dz.dtype), dz)
                else:
                    np.matmul(x2.T, dz, out=self.kernel.grad)
                    if self.use_bias:  # a product with ones: BLAS sums columns faster
                        np.matmul(_ones(dz.shape[0], dz.dtype), dz, out=self.bias.grad)
            if not need_dx:
                return None
            dx = self._buffer("dx", x2.shape)
            np.matmul(dz, kernel.T, out=dx)
            return dx.reshape(x.shape)

        return (y if x.ndim == 2 else y.reshape(*x.shape[:-1], self.units)), backward

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            activation=activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
        )
        config.update(self._weight_options_config())
        return config
