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
from .dense import _ones


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
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        synchronized: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._set_weight_options(
            {
                "beta_regularizer": beta_regularizer,
                "gamma_regularizer": gamma_regularizer,
                "beta_constraint": beta_constraint,
                "gamma_constraint": gamma_constraint,
            }
        )
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
            self.gamma = self.add_weight(
                "gamma",
                shapes["gamma"],
                self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
            )
        if self.center:
            self.beta = self.add_weight(
                "beta",
                shapes["beta"],
                self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
            )
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

    def check_weights(self, weights: dict[str, np.ndarray]) -> str | None:
        variance = weights.get("moving_variance")
        if variance is not None and not np.all(np.asarray(variance) >= 0):
            return (
                f"BatchNormalization layer {self.name!r}: the moving variance must be >= 0 "
                "everywhere (a negative or NaN variance would make every output NaN)"
            )
        return None

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        """A frozen layer runs in inference mode: the same in training and inference."""
        return not self._trainable

    # --- computing ----------------------------------------------------------------------
    def forward(self, x, training=False):
        if x.ndim == 2 and self.axis in (-1, 1) and self._strategy is None:
            return self._forward_2d(x, training and self._trainable)
        return self._forward_any(x, training)

    def _move_statistics(self, mean: np.ndarray, variance: np.ndarray) -> None:
        """``moving = moving * momentum + batch * (1 - momentum)``, as Keras 3."""
        m = mean.dtype.type(self.momentum)
        for moving, batch in (
            (self.moving_mean.value, mean),
            (self.moving_variance.value, variance),
        ):
            moving *= m
            moving += (1 - m) * batch

    def _write_grads(self, gamma_grad: np.ndarray, beta_grad: np.ndarray) -> None:
        """Assigns (or, on a shared layer's later calls, adds) gamma's and beta's grads."""
        for parameter, grad in ((self.gamma, gamma_grad), (self.beta, beta_grad)):
            if parameter is None:
                continue
            if self._accumulate:
                parameter.grad += grad
            else:
                parameter.grad[...] = grad

    def _forward_2d(self, x: np.ndarray, batch_statistics: bool):
        """The common case, (batch, features): the same numbers as the general path,
        with fewer passes over the batch (about 10 against 13, and no reshapes). It
        keeps ``x - mean`` rather than the normalised ``xhat``: the backward folds the
        ``1 / std`` into per-feature vectors."""
        n = x.dtype.type(x.shape[0])
        ones = _ones(x.shape[0], x.dtype)
        centred = self._buffer("centred", x.shape)
        eps = x.dtype.type(self.epsilon)
        if batch_statistics:
            shift = x[0]  # shifted sums: stable for inputs with a large mean
            np.subtract(x, shift, out=centred)
            offset = np.matmul(ones, centred) / n
            centred -= offset
            mean = shift + offset
            square = self._buffer("square", x.shape)
            np.multiply(centred, centred, out=square)
            variance = np.matmul(ones, square) / n
            self._move_statistics(mean, variance)
        else:
            np.subtract(x, self.moving_mean.value, out=centred)
            variance = self.moving_variance.value
        inv_std = 1.0 / np.sqrt(variance + eps)
        scale = inv_std * self.gamma.value if self.scale else inv_std
        y = self._buffer("y", x.shape)
        np.multiply(centred, scale, out=y)
        if self.center:
            y += self.beta.value

        def backward(dy, need_dx=True):
            sum_dy = sum_dy_centred = None
            if self._trainable or (need_dx and batch_statistics):
                sum_dy = np.matmul(ones, dy)
                product = self._buffer("product", x.shape)
                np.multiply(dy, centred, out=product)
                sum_dy_centred = np.matmul(ones, product)
            if self._trainable:
                self._write_grads(sum_dy_centred * inv_std, sum_dy)
            if not need_dx:
                return None
            dx = self._buffer("dx", x.shape)
            np.multiply(dy, scale, out=dx)
            if batch_statistics:
                # scale * (dy - mean(dy)) - centred * scale / var * mean(dy * centred)
                dx -= scale * (sum_dy / n)
                product = self._buffer("product", x.shape)
                np.multiply(centred, scale * inv_std * inv_std * (sum_dy_centred / n), out=product)
                dx -= product
            return dx

        return y, backward

    def _forward_any(self, x, training):
        axis = self._feature_axis(x.ndim)
        reduce = tuple(i for i in range(x.ndim) if i != axis)
        shape = [1] * x.ndim
        shape[axis] = x.shape[axis]
        c = x.shape[axis]
        last = axis == x.ndim - 1

        def column_sums(a: np.ndarray) -> np.ndarray:
            # Over every axis but the features': a product with ones when the features
            # are last (BLAS sums rows faster than numpy's reduction), else a reduction.
            if last:
                rows = a.reshape(-1, c)
                return np.matmul(_ones(rows.shape[0], rows.dtype), rows)
            return a.sum(axis=reduce)

        batch_statistics = training and self._trainable
        xhat = self._buffer("xhat", x.shape)
        count = float(x.size // c)
        if batch_statistics:
            if self._strategy is None and last:
                # Two passes in the input's precision, shifted by the first sample: stable
                # for inputs with a large mean, where E[x^2] - E[x]^2 cancels (Keras's
                # float32 training output is NaN there) and a float32 sum of x loses digits.
                n = x.dtype.type(count)
                shift = x.reshape(-1, c)[0].copy()
                np.subtract(x, shift, out=xhat)
                offset = column_sums(xhat) / n
                xhat -= offset
                mean = shift + offset
                square = self._buffer("square", x.shape)
                np.multiply(xhat, xhat, out=square)
                variance = column_sums(square) / n
            else:
                # The global batch (or features not last): sum, sum of squares and
                # count in one collective, in float64 so that the difference does not
                # cancel.
                total = np.concatenate(
                    [
                        x.sum(axis=reduce, dtype=np.float64),
                        np.square(x, dtype=np.float64).sum(axis=reduce),
                        [count],
                    ]
                )
                sums = total if self._strategy is None else self._strategy.sum(total)
                count = max(float(sums[-1]), 1.0)
                mean64 = sums[:c] / count
                mean = mean64.astype(x.dtype)
                variance = np.maximum(sums[c : 2 * c] / count - mean64 * mean64, 0.0).astype(
                    x.dtype
                )
                np.subtract(x, mean.reshape(shape), out=xhat)
            self._move_statistics(mean, variance)
        else:
            mean, variance = self.moving_mean.value, self.moving_variance.value
            np.subtract(x, mean.reshape(shape), out=xhat)
        inv_std = 1.0 / np.sqrt(variance + x.dtype.type(self.epsilon))
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
                sum_dy = column_sums(dy)
                product = self._buffer("product", x.shape)
                np.multiply(dy, xhat, out=product)
                sum_dy_xhat = column_sums(product)
            if self._trainable:
                self._write_grads(sum_dy_xhat, sum_dy)
            if not need_dx:
                return None
            factor = inv_std if not self.scale else self.gamma.value * inv_std
            dx = self._buffer("dx", x.shape)
            if batch_statistics:
                # The fused input gradient: factor * (dy - mean(dy) - xhat * mean(dy xhat)),
                # the means over the (global) batch.
                if self._strategy is None:
                    mean_dy = sum_dy / x.dtype.type(count)
                    mean_dy_xhat = sum_dy_xhat / x.dtype.type(count)
                else:
                    sums = self._strategy.sum(
                        np.concatenate([sum_dy, sum_dy_xhat]).astype(np.float64)
                    )
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
        config.update(self._weight_options_config())
        return config
