"""BatchNormalization, with Keras 3's arguments, weight order, freezing and numbers.

While training, a trainable layer normalises with the statistics of the batch and moves
its moving statistics toward them (``moving = moving * momentum + batch * (1 -
momentum)``, the batch variance biased, as Keras 3); otherwise it uses the moving
statistics. As in Keras 3, a frozen layer (``trainable = False``) always runs in
inference mode and its moving statistics stay put: it is then deterministic, and the
frozen-output cache may cache through it.

Under ``lk.distributed.MPI()`` the batch statistics (and the two sums the input gradient
needs) are those of the global batch, summed over the ranks with one small Allreduce in
the forward and one in the backward, so N ranks give the numbers of one process
(PyTorch needs ``SyncBatchNorm`` for this; Keras's ``synchronized=True``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .. import initializers
from ..validation import check_integer, check_number
from .base import Layer, register_layer


@register_layer
class BatchNormalization(Layer):
    """Normalises each feature over the batch: ``gamma * (x - mean) / sqrt(var + eps) + beta``.

    Args:
        axis: the feature axis (-1: the last).
        momentum: of the moving statistics (0.99, as Keras).
        epsilon: added to the variance (1e-3, as Keras).
        center, scale: whether to learn ``beta`` and ``gamma``.
        beta_initializer, gamma_initializer, moving_mean_initializer,
            moving_variance_initializer: names or ``lk.initializers`` objects.
        synchronized: accepted for Keras configs; layerkit always uses the global batch
            under ``distribute=``.

    Weights, in Keras's order: ``gamma``, ``beta`` (trainable), ``moving_mean``,
    ``moving_variance`` (statistics, never trained).

    Example:
        >>> model = lk.Sequential([lk.layers.Input((784,)),
        ...                        lk.layers.Dense(100, use_bias=False),
        ...                        lk.layers.BatchNormalization(),
        ...                        lk.layers.Activation("elu")])
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        synchronized: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.axis = check_integer(axis, "axis")
        if self.axis == 0:
            raise ValueError(
                "BatchNormalization normalises features: axis=0 is the batch axis. "
                "Received: axis=0 (use -1, the last axis, for Dense outputs)"
            )
        self.momentum = check_number(momentum, "momentum", minimum=0.0, maximum=1.0)
        self.epsilon = check_number(epsilon, "epsilon", minimum=0.0, exclusive_minimum=True)
        for name, value in (("center", center), ("scale", scale), ("synchronized", synchronized)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"Expected {name} to be a bool. Received: {name}={value!r}")
        self.center, self.scale, self.synchronized = bool(center), bool(scale), bool(synchronized)
        self.beta_initializer = initializers.get(beta_initializer, "beta_initializer")
        self.gamma_initializer = initializers.get(gamma_initializer, "gamma_initializer")
        self.moving_mean_initializer = initializers.get(
            moving_mean_initializer, "moving_mean_initializer"
        )
        self.moving_variance_initializer = initializers.get(
            moving_variance_initializer, "moving_variance_initializer"
        )
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    # fit(distribute=...) sets ``_strategy`` for the global batch's statistics.
    synchronizes: ClassVar[bool] = True

    # --- building -----------------------------------------------------------------------
    def _feature_axis(self, ndim: int) -> int:
        if not -ndim <= self.axis < ndim or ndim < 2:
            raise ValueError(
                f"BatchNormalization layer {self.name!r}: axis={self.axis} is not a feature "
                f"axis of inputs of rank {ndim}."
            )
        axis = self.axis % ndim
        if axis == 0:
            raise ValueError(
                f"BatchNormalization layer {self.name!r}: axis={self.axis} is the batch axis."
            )
        return axis

    def weight_shapes(self, input_shape) -> dict[str, tuple]:
        axis = self._feature_axis(len(input_shape))
        features = check_integer(input_shape[axis], "input_shape[axis]", minimum=1)
        shapes: dict[str, tuple] = {}
        if self.scale:
            shapes["gamma"] = (features,)
        if self.center:
            shapes["beta"] = (features,)
        shapes["moving_mean"] = (features,)
        shapes["moving_variance"] = (features,)
        return shapes

    def build(self, input_shape) -> None:
        shapes = self.weight_shapes(input_shape)
        if self.scale:
            self.gamma = self.add_weight("gamma", shapes["gamma"], self.gamma_initializer)
        if self.center:
            self.beta = self.add_weight("beta", shapes["beta"], self.beta_initializer)
        self.moving_mean = self.add_weight(
            "moving_mean", shapes["moving_mean"], self.moving_mean_initializer, trainable=False
        )
        self.moving_variance = self.add_weight(
            "moving_variance",
            shapes["moving_variance"],
            self.moving_variance_initializer,
            trainable=False,
        )
        super().build(input_shape)

    def unbuild(self) -> None:
        super().unbuild()
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        """A frozen layer runs in inference mode: the same in training and inference."""
        return not self._trainable

    # --- computing ----------------------------------------------------------------------
    def _sums(self, values: np.ndarray) -> np.ndarray:
        """``values`` summed over the ranks of a distributed fit (as is otherwise)."""
        return values if self._strategy is None else self._strategy.sum(values)

    def forward(self, x, training=False):
        axis = self._feature_axis(x.ndim)
        reduce = tuple(i for i in range(x.ndim) if i != axis)
        shape = [1] * x.ndim
        shape[axis] = x.shape[axis]
        batch_statistics = training and self._trainable
        if batch_statistics:
            local = x.size // x.shape[axis]
            # Sum, sum of squares and count in one collective; float64 sums of float32
            # keep the variance exact enough for any batch size.
            sums = self._sums(
                np.concatenate(
                    [
                        x.sum(axis=reduce, dtype=np.float64),
                        np.square(x, dtype=np.float64).sum(axis=reduce),
                        [local],
                    ]
                )
            )
            c = x.shape[axis]
            count = max(float(sums[-1]), 1.0)
            mean64 = sums[:c] / count
            variance64 = np.maximum(sums[c : 2 * c] / count - mean64 * mean64, 0.0)
            mean = mean64.astype(x.dtype)
            variance = variance64.astype(x.dtype)
            m = x.dtype.type(self.momentum)
            moving_mean, moving_variance = self.moving_mean.value, self.moving_variance.value
            moving_mean *= m
            moving_mean += (1 - m) * mean
            moving_variance *= m
            moving_variance += (1 - m) * variance
        else:
            mean, variance = self.moving_mean.value, self.moving_variance.value
            count = 0.0
        inv_std = 1.0 / np.sqrt(variance + x.dtype.type(self.epsilon))
        xhat = self._buffer("xhat", x.shape)
        np.subtract(x, mean.reshape(shape), out=xhat)
        xhat *= inv_std.reshape(shape)
        y = self._buffer("y", x.shape)
        if self.scale:
            np.multiply(xhat, self.gamma.value.reshape(shape), out=y)
        else:
            y[...] = xhat
        if self.center:
            y += self.beta.value.reshape(shape)

        def backward(dy, need_dx=True):
            trains = self._trainable and (self.scale or self.center)
            sum_dy = sum_dy_xhat = None
            if trains or (need_dx and batch_statistics):
                sum_dy = dy.sum(axis=reduce)
                sum_dy_xhat = (dy * xhat).sum(axis=reduce)
            if self._trainable:
                for parameter, grad in ((self.gamma, sum_dy_xhat), (self.beta, sum_dy)):
                    if parameter is None:
                        continue
                    if self._accumulate:
                        parameter.grad += grad
                    else:
                        parameter.grad[...] = grad
            if not need_dx:
                return None
            factor = inv_std if not self.scale else self.gamma.value * inv_std
            dx = self._buffer("dx", x.shape)
            if batch_statistics:
                # The fused input gradient: factor * (dy - mean(dy) - xhat * mean(dy xhat)),
                # the means over the (global) batch.
                c = x.shape[axis]
                sums = self._sums(np.concatenate([sum_dy, sum_dy_xhat]).astype(np.float64))
                mean_dy = (sums[:c] / count).astype(x.dtype)
                mean_dy_xhat = (sums[c:] / count).astype(x.dtype)
                np.multiply(xhat, mean_dy_xhat.reshape(shape), out=dx)
                np.subtract(dy, dx, out=dx)
                dx -= mean_dy.reshape(shape)
                dx *= factor.reshape(shape)
            else:
                np.multiply(dy, factor.reshape(shape), out=dx)
            return dx

        return y, backward

    # --- serialisation --------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            axis=self.axis,
            momentum=self.momentum,
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
            beta_initializer=initializers.serialize(self.beta_initializer),
            gamma_initializer=initializers.serialize(self.gamma_initializer),
            moving_mean_initializer=initializers.serialize(self.moving_mean_initializer),
            moving_variance_initializer=initializers.serialize(self.moving_variance_initializer),
            synchronized=self.synchronized,
        )
        return config
