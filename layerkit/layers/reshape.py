"""Reshape: gives each sample a new shape of the same size, as ``keras.layers.Reshape``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import Layer, register_layer


def _check_target_shape(target_shape: Any) -> tuple[int, ...]:
    """``target_shape`` as a tuple of ints >= 0 with at most one -1 (Keras's rules).

    Keras lets non-integer entries through (and fails later); layerkit refuses them here.
    """
    try:
        dims = tuple(target_shape)
    except TypeError:
        raise TypeError(
            f"Expected target_shape to be a tuple of integers. "
            f"Received: target_shape={target_shape!r}"
        ) from None
    for dim in dims:
        if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
            raise TypeError(
                f"Expected target_shape to be a tuple of integers. "
                f"Received: target_shape={target_shape!r}"
            )
    dims = tuple(int(d) for d in dims)
    if any(d < -1 for d in dims):
        raise ValueError(
            "Each dimension in `target_shape` must be a non-negative integer, or `-1` for a "
            f"single unknown dimension. Received: target_shape={dims}."
        )
    if dims.count(-1) > 1:
        raise ValueError(
            "There must be at most one unknown dimension (-1) in `target_shape`. "
            f"Received: target_shape={dims}."
        )
    return dims


def _resolve(sample_shape: tuple, target_shape: tuple[int, ...]) -> tuple:
    """The output sample shape: ``target_shape`` with its -1 inferred (None if unknown)."""
    if None in sample_shape:
        return tuple(None if d == -1 else d for d in target_shape)
    size = math.prod(sample_shape)
    if -1 not in target_shape:
        if size != math.prod(target_shape):
            raise ValueError(
                "The total size of the tensor must be unchanged. Received: "
                f"input_shape={sample_shape}, target_shape={target_shape}"
            )
        return target_shape
    known = math.prod(d for d in target_shape if d != -1)
    if known == 0 or size % known != 0:
        raise ValueError(
            "The total size of the tensor must be unchanged, however, the input size cannot "
            "be divided by the specified dimensions in target_shape. Received: "
            f"input_shape={sample_shape}, target_shape={target_shape}"
        )
    return tuple(size // known if d == -1 else d for d in target_shape)


@register_layer
class Reshape(Layer):
    """Reshapes each sample to ``target_shape``; the batch axis is kept.

    Args:
        target_shape: shape of one sample, without the batch axis; one entry may be -1,
            inferred from the size of the sample.

    Example:
        >>> Reshape((-1, 2, 2)).compute_output_shape((None, 12))
        (None, 3, 2, 2)
    """

    def __init__(self, target_shape: tuple, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_shape = _check_target_shape(target_shape)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        return (input_shape[0], *_resolve(tuple(input_shape[1:]), self.target_shape))

    def forward(self, x, training=False):
        # A view of x: nothing is stored, so a layer called twice in one step is safe.
        y = x.reshape(x.shape[0], *_resolve(x.shape[1:], self.target_shape))

        def backward(dy, need_dx=True):
            return dy.reshape(x.shape) if need_dx else None

        return y, backward

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = self.target_shape
        return config
