"""Losses, with Keras's names, defaults and reduction (the mean over the batch).

Each loss gives its value and its gradient with respect to the predictions in one call,
``value_and_grad(y_true, y_pred)``. The cross-entropies are numerically stable:

* from logits, through log-sum-exp and softplus (``softplus(z) = max(z, 0) + log1p(e^-|z|)``),
  never ``log(sigmoid(z))``;
* from probabilities, clipped to ``[eps, 1 - eps]`` as Keras does.

A model whose last activation is softmax (or sigmoid) trained with the probability form of
categorical (or binary) cross-entropy uses the logits form internally (``fused_with``),
so the gradient reaching the last layer is the fused ``(p - y) / n``.

Example:
    >>> loss = SparseCategoricalCrossentropy(from_logits=True)
    >>> value, grad = loss.value_and_grad(np.array([1]), np.array([[0.0, 2.0]], "float32"))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backend
from .registry import lookup
from .validation import check_finite, numeric_array, to_float

__all__ = [
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "SparseCategoricalCrossentropy",
    "get",
]


class Loss:
    """Base class. Subclasses implement ``value_and_grad`` and, if needed, ``check_targets``."""

    name = "loss"
    sparse_targets = False
    from_logits = False

    def __call__(self, y_true, y_pred) -> float:
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind != "f":
            y_pred = y_pred.astype(backend.floatx())
        y_true = self.check_targets(y_true, y_pred.shape)
        return self.value_and_grad(y_true, y_pred, need_grad=False)[0]

    def value_and_grad(
        self, y_true: np.ndarray, y_pred: np.ndarray, need_grad: bool = True
    ) -> tuple[float, np.ndarray | None]:
        """Returns the mean loss and dL/dy_pred (``None`` when ``need_grad`` is false)."""
        raise NotImplementedError

    def check_targets(self, y_true, output_shape: tuple, argument: str = "y") -> np.ndarray:
        """Validates targets against the model's output shape and returns them as arrays.

        Raises:
            ValueError / TypeError naming ``argument`` (``y``, ``validation_data[1]``...)
            with what was received and what was expected.
        """
        y = numeric_array(y_true, argument)
        expected = tuple(output_shape[1:])
        if y.shape[1:] != expected:
            if y.ndim == 1 and expected == (1,):
                y = y.reshape(-1, 1)
            else:
                raise ValueError(
                    f"Expected {argument} of shape (n, {', '.join(map(str, expected))}) to "
                    f"match the model's outputs for loss {self.name!r}. "
                    f"Received: {argument}.shape={y.shape}"
                )
        return to_float(y, argument)

    def fused_with(self, activation_name: str) -> Loss | None:
        """The logits form of this loss when it follows ``activation_name``, else None."""
        return None

    def get_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


class MeanSquaredError(Loss):
    """``mean((y_pred - y_true)^2)``; gradient ``2 (y_pred - y_true) / size``."""

    name = "mean_squared_error"

    def value_and_grad(self, y_true, y_pred, need_grad=True):
        diff = y_pred - y_true
        value = float(np.vdot(diff, diff)) / diff.size
        if need_grad:
            diff *= 2.0 / diff.size
            return value, diff
        return value, None


class MeanAbsoluteError(Loss):
    """``mean(|y_pred - y_true|)``; gradient ``sign(y_pred - y_true) / size``."""

    name = "mean_absolute_error"

    def value_and_grad(self, y_true, y_pred, need_grad=True):
        diff = y_pred - y_true
        value = float(np.abs(diff).sum(dtype=np.float64)) / diff.size
        if need_grad:
            grad = np.sign(diff)
            grad *= 1.0 / diff.size
            return value, grad
        return value, None


class BinaryCrossentropy(Loss):
    """Binary cross-entropy for 0/1 (or soft) targets.

    From logits ``z``: ``softplus(z) - y z``, gradient ``(sigmoid(z) - y) / size``.
    From probabilities ``p`` (clipped to ``[eps, 1-eps]``): ``-(y log p + (1-y) log(1-p))``.
    """

    name = "binary_crossentropy"

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)

    def value_and_grad(self, y_true, y_pred, need_grad=True):
        n = y_pred.size
        if self.from_logits:
            z = y_pred
            e = np.exp(-np.abs(z))  # in (0, 1]: no overflow for any z
            loss = np.maximum(z, 0) - y_true * z + np.log1p(e)
            value = float(loss.sum(dtype=np.float64)) / n
            if not need_grad:
                return value, None
            # sigmoid(z) from e without overflow, then (p - y) / n
            grad = np.where(z >= 0, 1.0, e).astype(z.dtype, copy=False) / (1.0 + e)
            grad -= y_true
            grad *= 1.0 / n
            return value, grad
        eps = backend.epsilon()
        p = np.clip(y_pred, eps, 1.0 - eps)
        loss = -(y_true * np.log(p) + (1.0 - y_true) * np.log1p(-p))
        value = float(loss.sum(dtype=np.float64)) / n
        if not need_grad:
            return value, None
        grad = (p - y_true) / (p * (1.0 - p))
        grad *= 1.0 / n
        return value, grad.astype(y_pred.dtype, copy=False)

    def fused_with(self, activation_name):
        if not self.from_logits and activation_name == "sigmoid":
            return BinaryCrossentropy(from_logits=True)
        return None

    def get_config(self):
        return {"from_logits": self.from_logits}


_ARANGES: dict[int, np.ndarray] = {}


def _arange(n: int) -> np.ndarray:
    """``np.arange(n)``, cached: batch row indices are needed at every step."""
    rows = _ARANGES.get(n)
    if rows is None:
        if len(_ARANGES) > 16:
            _ARANGES.clear()
        rows = _ARANGES[n] = np.arange(n)
        rows.flags.writeable = False
    return rows


def _log_softmax_parts(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(e, lse)`` with ``e = exp(z - max)`` and ``lse = log-sum-exp(z)``."""
    top = z.max(axis=-1, keepdims=True)
    e = np.exp(z - top)
    total = e.sum(axis=-1, keepdims=True)
    return e, np.log(total) + top


class CategoricalCrossentropy(Loss):
    """Cross-entropy for one-hot (or soft) targets of shape ``(n, classes)``.

    From logits: ``lse(z) - sum(y z)``, gradient ``(softmax(z) sum(y) - y) / n``.
    From probabilities (normalised, clipped to ``[eps, 1-eps]``): ``-sum(y log p)``.
    """

    name = "categorical_crossentropy"

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)

    def value_and_grad(self, y_true, y_pred, need_grad=True):
        n = y_pred.size // y_pred.shape[-1] if y_pred.size else 0  # rows: the mean is over them
        if self.from_logits:
            e, lse = _log_softmax_parts(y_pred)
            y_sum = y_true.sum(axis=-1, keepdims=True)
            value = float((lse * y_sum).sum(dtype=np.float64) - np.vdot(y_true, y_pred)) / n
            if not need_grad:
                return value, None
            e /= e.sum(axis=-1, keepdims=True)
            e *= y_sum
            e -= y_true
            e *= 1.0 / n
            return value, e
        eps = backend.epsilon()
        # A row summing to 0 (logits passed as probabilities) must not divide by zero.
        total = np.maximum(y_pred.sum(axis=-1, keepdims=True), eps)
        p = np.clip(y_pred / total, eps, 1.0 - eps)
        value = float(-(y_true * np.log(p)).sum(dtype=np.float64)) / n
        if not need_grad:
            return value, None
        # d/dp of -sum y log(p / sum p) = -y / p + sum(y) / sum(p)
        grad = y_true.sum(axis=-1, keepdims=True) / total - y_true / (p * total)
        grad *= 1.0 / n
        return value, grad.astype(y_pred.dtype, copy=False)

    def fused_with(self, activation_name):
        if not self.from_logits and activation_name == "softmax":
            return type(self)(from_logits=True)
        return None

    def get_config(self):
        return {"from_logits": self.from_logits}


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Cross-entropy for integer class labels of shape ``(n,)`` or ``(n, 1)``.

    From logits: ``lse(z) - z[y]``, gradient ``(softmax(z) - onehot(y)) / n``.
    """

    name = "sparse_categorical_crossentropy"
    sparse_targets = True

    def check_targets(self, y_true, output_shape, argument="y"):
        y = numeric_array(y_true, argument)
        expected = tuple(output_shape[1:-1])  # one label per output row, as in Keras
        if y.shape[1:] == (*expected, 1):
            y = y.reshape(y.shape[:-1])
        if y.ndim < 1 or y.shape[1:] != expected:
            shape = ", ".join(["n", *map(str, expected)])
            raise ValueError(
                f"Expected integer class labels of shape ({shape}) or ({shape}, 1) for "
                f"{argument} with sparse_categorical_crossentropy on outputs of shape "
                f"{('n', *output_shape[1:])}. Received: {argument}.shape={y.shape}"
            )
        if y.dtype.kind == "b":
            raise TypeError(f"Expected integer class labels in {argument}. Received booleans.")
        if y.dtype.kind == "f":
            check_finite(y, argument)
            if not np.array_equal(y, np.round(y)):
                raise ValueError(
                    f"Invalid {argument}: expected integer class labels. "
                    "Received non-integer values."
                )
        classes = output_shape[-1]
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise ValueError(
                f"Invalid {argument}: expected class labels in [0, {classes - 1}] for a model "
                f"with {classes} outputs. Received labels from {y.min():g} to {y.max():g}."
            )
        return y.astype(np.intp, copy=False)

    def value_and_grad(self, y_true, y_pred, need_grad=True):
        if y_pred.ndim > 2:  # (n, ..., classes): the mean over every row, as Keras does
            rows_pred = y_pred.reshape(-1, y_pred.shape[-1])
            value, grad = self.value_and_grad(y_true.reshape(-1), rows_pred, need_grad)
            return value, None if grad is None else grad.reshape(y_pred.shape)
        n = y_pred.shape[0]
        rows = _arange(n)
        if self.from_logits:
            # A hot path when training classifiers: few numpy calls (each costs ~1 us, as
            # much as the arithmetic at these sizes) and no needless temporaries.
            true = rows * y_pred.shape[1] + y_true  # flat positions of the true classes
            e = np.subtract(y_pred, np.maximum.reduce(y_pred, axis=1, keepdims=True))
            picked = e.ravel().take(true)  # z[y] - max
            np.exp(e, out=e)
            total = np.add.reduce(e, axis=1, keepdims=True)
            value = float(np.log(total).sum(dtype=np.float64) - picked.sum(dtype=np.float64)) / n
            if not need_grad:
                return value, None
            np.divide(e, total * n, out=e)  # softmax / n
            e.ravel()[true] -= 1.0 / n
            return value, e
        eps = backend.epsilon()
        total = np.maximum(y_pred.sum(axis=-1, keepdims=True), eps)
        picked = np.clip(y_pred[rows, y_true] / total[:, 0], eps, 1.0 - eps)
        value = float(-np.log(picked).sum(dtype=np.float64)) / n
        if not need_grad:
            return value, None
        grad = np.broadcast_to(1.0 / total, y_pred.shape).astype(y_pred.dtype)
        grad[rows, y_true] -= 1.0 / (picked * total[:, 0])
        grad *= 1.0 / n
        return value, grad


_BY_NAME: dict[str, type[Loss]] = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}
_CLASSES = {cls.__name__: cls for cls in set(_BY_NAME.values())}


def get(identifier: str | Loss | dict) -> Loss:
    """Returns a loss for a name, an object, or a config from :func:`serialize`."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        return lookup(_BY_NAME, identifier, "loss", "loss")()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        config = identifier.get("config") or {}
        if not isinstance(config, dict) or not set(config) <= {"from_logits"}:
            raise ValueError(f"Invalid loss config. Received: {identifier!r:.200}")
        return _CLASSES[identifier["class_name"]](**config)
    raise TypeError(
        "Expected a loss name or a layerkit loss. "
        f"Received: loss={identifier!r:.100} of type {type(identifier).__name__}"
    )


def serialize(loss: Loss) -> dict[str, Any]:
    return {"class_name": type(loss).__name__, "config": loss.get_config()}
