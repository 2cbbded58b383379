"""Preprocessing layers of Keras 3: ``Normalization`` (with ``adapt``) and ``Rescaling``.

Both have no trainable weights; ``Normalization`` keeps the mean and variance it adapted
to as statistics (saved with the model, never trained), so a model that normalises its
own inputs needs no separate scaler when it is reloaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..validation import check_integer, check_number, numeric_array
from .base import Layer, register_layer


def _axes(axis: Any) -> tuple[int, ...]:
    if axis is None:
        return ()
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        return (int(axis),)
    if isinstance(axis, (list, tuple)) and all(
        isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axis
    ):
        return tuple(int(a) for a in axis)
    raise TypeError(f"Expected axis to be an int, a tuple of ints or None. Received: axis={axis!r}")


def _batches(data: Any, batch_size: int | None, steps: int | None):
    """The chunks ``adapt`` reads: an array in chunks of rows, or the given batches."""
    if batch_size is not None:
        check_integer(batch_size, "batch_size", minimum=1)
    if steps is not None:
        check_integer(steps, "steps", minimum=1)
    if (
        isinstance(data, np.ndarray)
        or not hasattr(data, "__iter__")
        or isinstance(data, (list, tuple))
    ):
        array = numeric_array(data, "data")
        size = batch_size or (1 << 16)
        chunks = (array[i : i + size] for i in range(0, max(len(array), 1), size))
    else:
        chunks = iter(data)
    for index, chunk in enumerate(chunks):
        if steps is not None and index >= steps:
            return
        yield chunk


def _statistic(value: Any, argument: str, dtype: str) -> np.ndarray:
    """A mean or variance given to the constructor: a number or an array of numbers."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"Expected numbers for {argument}. Received: {argument}={value!r}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"Expected numbers for {argument}. Received: {argument}={value!r:.60}"
        ) from None
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"Expected finite numbers for {argument}. Received: {argument}={value!r:.60}"
        )
    return array.astype(dtype)


@register_layer
class Normalization(Layer):
    """Standardises features: ``(x - mean) / max(sqrt(variance), epsilon)``, as Keras 3.

    The mean and variance come from ``mean=`` / ``variance=`` or from :meth:`adapt`.

    Args:
        axis: the axis (or axes) that keep their own statistics (-1: one per feature);
            None: one mean and variance for everything.
        mean, variance: fixed statistics (both or neither), broadcastable to the kept axes.
        invert: undo the normalisation instead (``mean + x * std``).

    Example:
        >>> norm = lk.layers.Normalization()
        >>> norm.adapt(x_train)  # per-feature mean and variance of the training set
        >>> model = lk.Sequential([lk.layers.Input((8,)), norm, lk.layers.Dense(1)])
    """

    def __init__(
        self,
        axis: int | tuple | None = -1,
        mean: Any = None,
        variance: Any = None,
        invert: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.axis = _axes(axis)
        if (mean is None) != (variance is None):
            raise ValueError(
                "Pass both mean and variance, or neither (then call adapt()). Received: "
                f"mean={mean!r:.60}, variance={variance!r:.60}"
            )
        if not isinstance(invert, (bool, np.bool_)):
            raise TypeError(f"Expected invert to be a bool. Received: invert={invert!r}")
        self.invert = bool(invert)
        self._fixed = None
        if mean is not None:
            self._fixed = (
                _statistic(mean, "mean", self.dtype),
                _statistic(variance, "variance", self.dtype),
            )
            if np.any(self._fixed[1] < 0):
                raise ValueError("Expected variance >= 0 everywhere.")
        self.mean = self.variance = None
        self.adapted = self._fixed is not None

    def _kept(self, ndim: int) -> tuple[int, ...]:
        kept = []
        for a in self.axis:
            if not -ndim <= a < ndim or a % ndim == 0:
                raise ValueError(
                    f"Normalization layer {self.name!r}: axis={a} is not a feature axis of "
                    f"inputs of rank {ndim}."
                )
            kept.append(a % ndim)
        return tuple(sorted(set(kept)))

    def _statistics_shape(self, input_shape) -> tuple[int, ...]:
        kept = self._kept(len(input_shape))
        return tuple(int(input_shape[a]) if a in kept else 1 for a in range(1, len(input_shape)))

    def weight_shapes(self, input_shape) -> dict[str, tuple]:
        shape = self._statistics_shape(input_shape)
        return {"mean": shape, "variance": shape}

    def build(self, input_shape) -> None:
        shapes = self.weight_shapes(input_shape)
        from .. import initializers

        self.mean = self.add_weight("mean", shapes["mean"], initializers.get("zeros"), False)
        self.variance = self.add_weight(
            "variance", shapes["variance"], initializers.get("ones"), False
        )
        if self._fixed is not None:
            try:
                self.mean.value[...] = np.broadcast_to(self._fixed[0], shapes["mean"])
                self.variance.value[...] = np.broadcast_to(self._fixed[1], shapes["variance"])
            except ValueError:
                self.unbuild()
                raise ValueError(
                    f"Normalization layer {self.name!r}: mean and variance of shapes "
                    f"{self._fixed[0].shape}, {self._fixed[1].shape} do not broadcast to "
                    f"the statistics shape {shapes['mean']}."
                ) from None
        super().build(input_shape)

    def unbuild(self) -> None:
        super().unbuild()
        self.mean = self.variance = None

    @staticmethod
    def from_keras_weights(weights: dict[str, np.ndarray], shapes: dict[str, tuple]) -> dict:
        """Keras's stored Normalization weights in layerkit's form: ``count`` (a sample
        count Keras 3's adapt leaves at 0) dropped, and ``mean``/``variance`` of Keras's
        shape (the kept axes only: ``(3,)`` for axis -1 of ``(n, 4, 3)`` inputs)
        reshaped to layerkit's (every sample axis, 1 where reduced: ``(1, 3)``)."""
        weights = dict(weights)
        keys = list(weights)
        if len(keys) == 3 and all(k.isdigit() for k in keys):
            values = [weights[k] for k in sorted(keys, key=int)]
            weights = dict(zip(("mean", "variance", "count"), values, strict=True))
        count = weights.pop("count", None)
        if count is not None and np.shape(count) != ():
            weights["count"] = count  # not Keras's scalar: reported as a mismatch
        for key in ("mean", "variance"):
            array, shape = weights.get(key), shapes.get(key)
            if array is not None and shape is not None and array.size == int(np.prod(shape)):
                weights[key] = array.reshape(tuple(int(d) for d in shape))
        return weights

    def stored_weights(self, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.built:
            return weights
        return self.from_keras_weights(weights, self.weight_shapes(self.input_shape))

    def adapt(self, data, batch_size: int | None = None, steps: int | None = None) -> None:
        """Computes the mean and variance of ``data`` over every axis not kept, as
        Keras's ``adapt`` (the population variance).

        ``data`` is an array of samples, read in chunks of ``batch_size`` rows (default
        65,536: a float64 copy of one chunk at a time, whatever the data's size), or an
        iterable of such arrays (a generator of batches, for data bigger than memory;
        ``steps`` batches at most). The statistics are combined exactly (Chan et al.'s
        pairwise update in float64) and assigned only once all the data is read.
        """
        batches = _batches(data, batch_size, steps)
        count = 0
        mean = m2 = None
        kept = reduce = None
        sample_shape = None
        for index, batch in enumerate(batches):
            where = "data" if isinstance(data, np.ndarray) else f"data batch {index}"
            array = numeric_array(batch, where).astype(np.float64)
            if array.ndim == 1:
                array = array.reshape(-1, 1)
            if array.shape[0] == 0:
                continue
            if not np.all(np.isfinite(array)):
                raise ValueError(
                    f"Expected finite {where} to adapt to. Received: NaN or inf values"
                )
            expected = tuple(self.input_shape[1:]) if self.built else sample_shape
            if expected is not None and array.shape[1:] != expected:
                raise ValueError(
                    f"Normalization layer {self.name!r} expects samples of shape {expected}. "
                    f"Received: {where} of shape {array.shape}"
                )
            if kept is None:
                sample_shape = array.shape[1:]
                kept = self._kept(array.ndim)
                reduce = tuple(a for a in range(array.ndim) if a not in kept)
            n = array.size // int(np.prod([array.shape[a] for a in kept], dtype=np.int64) or 1)
            batch_mean = array.mean(axis=reduce, keepdims=True)[0]
            batch_m2 = np.square(array - batch_mean).sum(axis=reduce, keepdims=True)[0]
            if mean is None:
                count, mean, m2 = n, batch_mean, batch_m2
                continue
            delta = batch_mean - mean
            total = count + n
            mean = mean + delta * (n / total)
            m2 = m2 + batch_m2 + np.square(delta) * (count * n / total)
            count = total
        if mean is None:
            raise ValueError("Expected non-empty data to adapt to. Received: 0 samples")
        if not self.built:
            self.build((None, *sample_shape))
        self.mean.assign(mean.astype(self.dtype))
        self.variance.assign((m2 / count).astype(self.dtype))
        self.adapted = True

    def forward(self, x, training=False):
        std = np.maximum(np.sqrt(self.variance.value), x.dtype.type(backend.epsilon()))
        y = self._buffer("y", x.shape)
        if self.invert:
            np.multiply(x, std, out=y)
            y += self.mean.value
            factor = std
        else:
            np.subtract(x, self.mean.value, out=y)
            y /= std
            factor = 1.0 / std

        def backward(dy, need_dx=True):
            if not need_dx:
                return None
            dx = self._buffer("dx", x.shape)
            np.multiply(dy, factor, out=dx)
            return dx

        return y, backward

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            axis=list(self.axis) if len(self.axis) != 1 else self.axis[0],
            invert=self.invert,
            mean=None if self._fixed is None else self._fixed[0].tolist(),
            variance=None if self._fixed is None else self._fixed[1].tolist(),
        )
        if not self.axis:
            config["axis"] = None
        return config


@register_layer
class Rescaling(Layer):
    """Multiplies inputs by ``scale`` and adds ``offset`` (``Rescaling(1 / 255)``)."""

    def __init__(self, scale: float, offset: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale = check_number(scale, "scale")
        self.offset = check_number(offset, "offset")

    def forward(self, x, training=False):
        y = self._buffer("y", x.shape)
        np.multiply(x, x.dtype.type(self.scale), out=y)
        if self.offset:
            y += x.dtype.type(self.offset)

        def backward(dy, need_dx=True):
            if not need_dx:
                return None
            dx = self._buffer("dx", x.shape)
            np.multiply(dy, dy.dtype.type(self.scale), out=dx)
            return dx

        return y, backward

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(scale=self.scale, offset=self.offset)
        return config
