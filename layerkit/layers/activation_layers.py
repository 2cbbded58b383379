"""Keras 3's activation layers: ``ReLU``, ``LeakyReLU``, ``ELU``, ``Softmax`` and ``PReLU``.

The first four hold one :mod:`layerkit.activations` instance and run its in-place forward
and its backward from the output ``y``; ``PReLU`` has a trainable ``alpha``:

    y = x if x > 0 else alpha * x,   dL/dx = dy * (1, alpha, 0) for x > 0, x < 0, x == 0,
    dL/dalpha = sum of dy * min(x, 0) over the batch axis and the shared axes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import activations, initializers
from .activation import ActivationLayer
from .base import Layer, register_layer, unique_name


def _keras_name(kwargs: dict[str, Any], base: str) -> dict[str, Any]:
    """Keras's automatic names (``re_lu``, ``p_re_lu``...), which base's snake case
    (``re_l_u``) does not give."""
    if kwargs.get("name") is None:
        kwargs["name"] = unique_name(base)
    return kwargs


@register_layer
class ReLU(ActivationLayer):
    """``y = min(x, max_value)`` for ``x > threshold``, else ``negative_slope * (x - threshold)``.

    Args:
        max_value: float >= 0 or ``None`` (no upper bound).
        negative_slope: float >= 0.
        threshold: float >= 0.
    """

    def __init__(
        self,
        max_value: float | None = None,
        negative_slope: float = 0.0,
        threshold: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**_keras_name(kwargs, "re_lu"))
        self.activation = activations.ReLU(
            negative_slope=negative_slope, max_value=max_value, threshold=threshold
        )

    @property
    def max_value(self) -> float | None:
        return self.activation.max_value

    @property
    def negative_slope(self) -> float:
        return self.activation.negative_slope

    @property
    def threshold(self) -> float:
        return self.activation.threshold

    def get_config(self):
        config = super().get_config()
        config.update(
            max_value=self.max_value, negative_slope=self.negative_slope, threshold=self.threshold
        )
        return config


@register_layer
class LeakyReLU(ActivationLayer):
    """``y = x if x > 0 else negative_slope * x``; the layer's default slope is Keras's 0.3
    (the function ``lk.activations.leaky_relu`` uses 0.2, as ``keras.activations``)."""

    def __init__(self, negative_slope: float = 0.3, **kwargs: Any) -> None:
        super().__init__(**_keras_name(kwargs, "leaky_re_lu"))
        self.activation = activations.LeakyReLU(negative_slope)

    @property
    def negative_slope(self) -> float:
        return self.activation.negative_slope

    def get_config(self):
        config = super().get_config()
        config["negative_slope"] = self.negative_slope
        return config


@register_layer
class ELU(ActivationLayer):
    """``y = x if x > 0 else alpha * (e^x - 1)``.

    ``alpha`` must be > 0 (Keras accepts any): the backward pass reads the sign of ``x``
    from ``y``.
    """

    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**_keras_name(kwargs, "elu"))
        self.activation = activations.ELU(alpha)

    @property
    def alpha(self) -> float:
        return self.activation.alpha

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.alpha
        return config


def _check_axes(value: Any, argument: str) -> int | list[int]:
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items or not all(
        isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_)) for a in items
    ):
        raise TypeError(
            f"Expected an integer or a list of integers. Received: {argument}={value!r}"
        )
    axes = [int(a) for a in items]
    return axes if isinstance(value, (list, tuple)) else axes[0]


@register_layer
class Softmax(ActivationLayer):
    """``y = e^x / sum e^x`` over ``axis`` (an int or a list of ints; Keras's masks are not
    supported). Over the last axis it is ``lk.activations.softmax``, so a following
    categorical cross-entropy fuses with it as with ``Dense(..., activation="softmax")``."""

    def __init__(self, axis: int | list[int] = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = _check_axes(axis, "axis")
        self._softmax = activations.Softmax()

    def _axes(self, ndim: int) -> tuple[int, ...]:
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        normalised = []
        for a in axes:
            if not -ndim <= a < ndim:
                raise ValueError(
                    f"Softmax layer {self.name!r}: axis {a} is out of range for inputs of "
                    f"rank {ndim}. Received: axis={self.axis!r}"
                )
            normalised.append(a % ndim)
        return tuple(sorted(set(normalised)))

    def build(self, input_shape) -> None:
        self._axes(len(input_shape))
        super().build(input_shape)

    @property
    def activation(self):
        """The softmax activation when it runs over the last axis only, else None (so the
        trainer does not fuse a loss over the last axis with it)."""
        if self.axis in (-1, [-1]):
            return self._softmax
        if self.built and self._axes(len(self.input_shape)) == (len(self.input_shape) - 1,):
            return self._softmax
        return None

    def forward(self, x, training=False, *, logits=False):
        axes = self._axes(x.ndim)
        if logits or axes == (x.ndim - 1,):
            return super().forward(x, training, logits=logits)
        y = self._buffer("y", x.shape)
        np.copyto(y, x)
        with np.errstate(under="ignore", over="ignore"):
            y -= y.max(axis=axes, keepdims=True)
            np.exp(y, out=y)
        y /= y.sum(axis=axes, keepdims=True)

        def backward(dy, need_dx=True):
            if not need_dx:
                return None
            dy -= np.sum(dy * y, axis=axes, keepdims=True)
            dy *= y
            return dy

        return y, backward

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


@register_layer
class PReLU(Layer):
    """``y = x if x > 0 else alpha * x`` with a trainable ``alpha`` per input element.

    Args:
        alpha_initializer: name or ``lk.initializers`` object (default zeros, as Keras).
        alpha_regularizer, alpha_constraint: a penalty and a constraint on ``alpha``
            (``lk.regularizers``, ``lk.constraints``).
        shared_axes: input axes (1 = the first after the batch axis) along which one
            ``alpha`` is shared; ``alpha``'s shape is ``input_shape[1:]`` with 1 there.
    """

    def __init__(
        self,
        alpha_initializer: str | initializers.Initializer = "zeros",
        alpha_regularizer: Any = None,
        alpha_constraint: Any = None,
        shared_axes: int | list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**_keras_name(kwargs, "p_re_lu"))
        self._set_weight_options(
            {"alpha_regularizer": alpha_regularizer, "alpha_constraint": alpha_constraint}
        )
        self.alpha_initializer = initializers.get(alpha_initializer, "alpha_initializer")
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = _check_axes(shared_axes, "shared_axes")
            self.shared_axes = axes if isinstance(axes, list) else [axes]
            if any(a < 1 for a in self.shared_axes):
                raise ValueError(
                    "Expected shared_axes >= 1 (axis 0 is the batch axis). "
                    f"Received: shared_axes={shared_axes!r}"
                )
        self.alpha = None

    def weight_shapes(self, input_shape) -> dict[str, tuple]:
        ndim = len(input_shape)
        if ndim < 2:
            raise ValueError(
                f"PReLU layer {self.name!r} expects inputs of rank >= 2. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        shape = list(input_shape[1:])
        for a in self.shared_axes or []:
            if a >= ndim:
                raise ValueError(
                    f"PReLU layer {self.name!r}: shared axis {a} is out of range for inputs "
                    f"of shape {tuple(input_shape)}. Received: shared_axes={self.shared_axes}"
                )
            shape[a - 1] = 1
        if any(d is None for d in shape):
            raise ValueError(
                f"PReLU layer {self.name!r} needs known sizes on its unshared axes. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        return {"alpha": tuple(shape)}

    def build(self, input_shape) -> None:
        shape = self.weight_shapes(input_shape)["alpha"]
        self.alpha = self.add_weight(
            "alpha",
            shape,
            self.alpha_initializer,
            regularizer=self.alpha_regularizer,
            constraint=self.alpha_constraint,
        )
        # dalpha sums over the batch axis and the shared axes.
        self._reduce_axes = (0, *sorted(set(self.shared_axes or [])))
        super().build(input_shape)

    def unbuild(self) -> None:
        super().unbuild()
        self.alpha = None

    def forward(self, x, training=False):
        alpha = self.alpha.value
        y = self._buffer("y", x.shape)
        np.multiply(x, alpha, out=y)
        positive = x > 0
        np.copyto(y, x, where=positive)

        def backward(dy, need_dx=True):
            if self._trainable:
                product = np.minimum(x, 0)
                product *= dy
                grad = product.sum(axis=self._reduce_axes).reshape(alpha.shape)
                if self._accumulate:  # a later call of a shared layer
                    self.alpha.grad += grad
                else:
                    self.alpha.grad[...] = grad
            if not need_dx:
                return None
            # 0 at x == 0, as Keras's relu(x) - alpha * relu(-x) on torch.
            slope = np.where(positive, 1.0, np.where(x < 0, alpha, 0.0)).astype(dy.dtype)
            dx = self._buffer("dx", x.shape)
            np.multiply(dy, slope, out=dx)
            return dx

        return y, backward

    def get_config(self):
        config = super().get_config()
        config.update(
            alpha_initializer=initializers.serialize(self.alpha_initializer),
            alpha_regularizer=None,
            alpha_constraint=None,
            shared_axes=self.shared_axes,
        )
        config.update(self._weight_options_config())
        return config
