"""Losses, with Keras 3's names, defaults, ``reduction`` and ``sample_weight``.

Each loss gives its value and its gradient with respect to the predictions in one call,
``value_and_grad(y_true, y_pred, sample_weight=None)``; the reduction (``"sum_over_batch_size"``
by default: ``sum(w l) / n``, see :class:`Loss`) is Keras's. The cross-entropies take
``label_smoothing`` as Keras (not the sparse one, as in Keras 3.15) and are numerically
stable:

* from logits, through log-sum-exp and softplus (``softplus(z) = max(z, 0) + log1p(e^-|z|)``),
  never ``log(sigmoid(z))``;
* from probabilities, clipped to ``[eps, 1 - eps]`` (``eps = 1e-7``) exactly as Keras 3
  does, gradient included: where a prediction was clipped the gradient is zero, so an
  output that is not a probability (a layer without softmax) takes the same moderate
  step as in Keras, not one that throws the weights to 1e12.

A model whose last activation is softmax (or sigmoid) trained with the probability form of
categorical (or binary) cross-entropy uses the logits form internally (``fused_with``),
so the gradient reaching the last layer is the fused ``(p - y) / n`` and the loss is exact
where Keras clips it (see :class:`CategoricalCrossentropy` for the numbers).

Keras 3's loss functions are here too (``mean_squared_error``, ``binary_crossentropy``...):
they return one value per sample, without the mean over the batch.

Example:
    >>> loss = SparseCategoricalCrossentropy(from_logits=True)
    >>> value, grad = loss.value_and_grad(np.array([1]), np.array([[0.0, 2.0]], "float32"))
    >>> mean_squared_error([[0.0, 1.0]], [[1.0, 1.0]])
    array([0.5], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backend
from .registry import lookup
from .validation import (
    check_finite,
    check_flag,
    check_number,
    check_sample_weight,
    numeric_array,
    prediction_array,
    prediction_pair,
    to_float,
)

__all__ = [
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalCrossentropy",
    "CategoricalHinge",
    "CosineSimilarity",
    "Hinge",
    "Huber",
    "KLDivergence",
    "LogCosh",
    "Loss",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "Poisson",
    "SparseCategoricalCrossentropy",
    "SquaredHinge",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_hinge",
    "cosine_similarity",
    "get",
    "hinge",
    "huber",
    "kl_divergence",
    "kld",
    "log_cosh",
    "mae",
    "mape",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_logarithmic_error",
    "mse",
    "msle",
    "poisson",
    "sparse_categorical_crossentropy",
    "squared_hinge",
]


_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)
# The reductions that divide by the number of per-sample values when there are no weights:
# the form every loss computes directly (``_value_and_grad``).
_MEAN_REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight")


def _check_reduction(reduction: Any) -> str | None:
    if not isinstance(reduction, (str, type(None))) or reduction not in _REDUCTIONS:
        raise ValueError(
            f"Invalid value for argument reduction. Expected one of {list(_REDUCTIONS)}. "
            f"Received: reduction={reduction!r:.100}"
        )
    return reduction


class Loss:
    """Base class: Keras 3's ``Loss(reduction="sum_over_batch_size", name=None)``.

    Subclasses implement ``_value_and_grad`` (the mean of the per-sample losses and its
    gradient), ``per_sample`` and, if needed, ``check_targets``. The base class applies
    the reduction and the sample weights, as Keras's ``reduce_weighted_values``: with
    per-sample losses ``l_i``, weights ``w_i`` (1 without weights) and ``m`` per-sample
    values,

    * ``"sum_over_batch_size"`` (the default) and ``"mean"``: ``sum(w l) / m``;
    * ``"mean_with_sample_weight"``: ``sum(w l) / sum(w)`` (``/ m`` without weights);
    * ``"sum"``: ``sum(w l)``;
    * ``"none"`` or ``None``: the weighted per-sample losses ``w l`` (``__call__`` only:
      a vector cannot drive training, see :meth:`value_and_grad`).

    A zero divisor gives 0, as Keras's ``divide_no_nan``.
    """

    name = "loss"
    sparse_targets = False
    from_logits = False
    # The activation whose output this loss reads as probabilities (and fuses with).
    probability_activation: str | None = None
    # The axis ``per_sample`` reduces (CosineSimilarity and the binary losses take one).
    axis = -1
    # Keras's default, also for a subclass whose __init__ does not call Loss.__init__.
    reduction: str | None = "sum_over_batch_size"

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str | None = None):
        self.reduction = _check_reduction(reduction)
        if name is not None:
            if not isinstance(name, str) or not name:
                raise TypeError(f"Expected a non-empty string name. Received: name={name!r:.100}")
            self.name = name

    @property
    def expects_probabilities(self) -> bool:
        """Whether the predictions are read as probabilities: a cross-entropy without
        ``from_logits``. The model's last activation should then be
        :attr:`probability_activation` (``"softmax"`` or ``"sigmoid"``)."""
        return self.probability_activation is not None and not self.from_logits

    def __call__(self, y_true, y_pred, sample_weight=None) -> float | np.ndarray:
        """The reduced loss of a batch (a float), or the per-sample losses (an array)
        with reduction ``"none"``. ``sample_weight``: one non-negative weight per sample."""
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind != "f":
            y_pred = y_pred.astype(backend.floatx())
        y_true = self.check_targets(y_true, y_pred.shape)
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, len(y_pred))
        if self.reduction in (None, "none"):
            values = self.per_sample(y_true, y_pred)
            if sample_weight is not None:
                values = values * self._weights_like(sample_weight, values, y_pred)
            return values.astype(y_pred.dtype, copy=False)
        return self.value_and_grad(y_true, y_pred, need_grad=False, sample_weight=sample_weight)[0]

    def value_and_grad(
        self,
        y_true: np.ndarray,
        y_pred: np.ndarray,
        need_grad: bool = True,
        sample_weight: np.ndarray | None = None,
    ) -> tuple[float, np.ndarray | None]:
        """Returns the reduced loss and dL/dy_pred (``None`` when ``need_grad`` is false).

        ``y_true`` as :meth:`check_targets` returns it. ``sample_weight``: ``None`` or a 1-D
        float array of one weight per sample (:func:`layerkit.validation.check_sample_weight`
        checks it once, at the edge); row ``i``'s gradient is then ``w_i dl_i/dy_pred_i``
        divided by the reduction's divisor. Without weights and with a mean reduction
        this is exactly the subclass's own computation (no extra pass).

        Raises:
            ValueError: reduction ``"none"``/``None``, which gives a vector, not a loss to
                minimise (Keras 3 on PyTorch fails at the first training step, as JAX
                must; TensorFlow would silently train on the sum).
        """
        if sample_weight is None and self.reduction in _MEAN_REDUCTIONS:
            return self._value_and_grad(y_true, y_pred, need_grad)
        return self._reduced(y_true, y_pred, need_grad, sample_weight)

    def _value_and_grad(
        self, y_true: np.ndarray, y_pred: np.ndarray, need_grad: bool
    ) -> tuple[float, np.ndarray | None]:
        """The mean of the per-sample losses, and its gradient (a fresh array)."""
        raise NotImplementedError

    def per_sample(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """The unreduced losses, one per sample (Keras's loss functions): the mean over
        the last axis for element-wise losses, one value per row for the categorical ones."""
        raise NotImplementedError

    def _per_sample_axis(self, y_pred: np.ndarray) -> int:
        """The axis of ``y_pred`` that :meth:`per_sample` reduces, as a non-negative index."""
        return self.axis % y_pred.ndim

    def _weights_like(self, weights: np.ndarray, values: np.ndarray, y_pred) -> np.ndarray:
        """``weights`` (one per sample) shaped to multiply the per-sample ``values``:
        ``(n, 1, ..., 1)``, so each sample's weight covers all its values (Keras needs
        weights of the values' shape for sequences; one per sample is accepted here)."""
        if values.ndim == 0 or values.shape[0] != len(weights):
            raise ValueError(
                f"Expected predictions with a batch axis kept by loss {self.name!r} to apply "
                f"sample_weight of length {len(weights)}. Received: y_pred.shape="
                f"{y_pred.shape}, per-sample losses of shape {values.shape}"
            )
        return weights.astype(values.dtype, copy=False).reshape((-1,) + (1,) * (values.ndim - 1))

    def _reduced(self, y_true, y_pred, need_grad, sample_weight):
        """``value_and_grad`` for the other reductions and for weighted batches: the mean
        form scaled (``"sum"``), or reweighted row by row from the per-sample losses."""
        if self.reduction in (None, "none"):
            raise ValueError(
                f"Loss {self.name!r} with reduction={self.reduction!r} gives one loss per "
                "sample, which cannot drive training or be logged as the loss. Use "
                "'sum_over_batch_size' (the default), 'mean', 'mean_with_sample_weight' or "
                "'sum'; call the loss, loss(y_true, y_pred), for the per-sample values."
            )
        value, grad = self._value_and_grad(y_true, y_pred, need_grad)
        count = y_pred.size // y_pred.shape[self._per_sample_axis(y_pred)] if y_pred.size else 0
        if sample_weight is None:  # "sum": the mean times the number of values
            if grad is not None:
                grad *= count
            return value * count, grad
        n = len(y_pred) if y_pred.ndim > 1 and self._per_sample_axis(y_pred) != 0 else -1
        if n < 0 or len(sample_weight) != n:
            raise ValueError(
                f"Expected sample_weight of shape ({len(y_pred)},), one weight per sample, and "
                f"predictions whose batch axis loss {self.name!r} keeps. Received: "
                f"sample_weight.shape={np.shape(sample_weight)}, y_pred.shape={y_pred.shape}"
            )
        values = self.per_sample(y_true, y_pred)
        w = np.asarray(sample_weight, dtype=np.float64)
        if values.ndim > 1:  # (n, t, ...): each sample's weight covers its t values
            values = values.reshape(n, -1).sum(axis=1, dtype=np.float64)
        weighted = float(np.dot(values.astype(np.float64, copy=False), w))
        if self.reduction == "sum":
            divisor = 1.0
        elif self.reduction == "mean_with_sample_weight":
            divisor = float(w.sum()) * (count // n if n else 0)
        else:
            divisor = float(count)
        value = weighted / divisor if divisor else 0.0
        if grad is None:
            return value, None
        # grad is d(mean of l)/dy = (dl_i/dy) / count: reweight each row, redivide.
        scale = w * (count / divisor if divisor else 0.0)  # a new array: w may be the caller's
        grad *= scale.astype(grad.dtype, copy=False).reshape((n,) + (1,) * (grad.ndim - 1))
        return value, grad

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
        """The logits form of this loss (same options) when it follows
        ``activation_name``, else None."""
        if self.expects_probabilities and activation_name == self.probability_activation:
            return type(self).from_config({**self.get_config(), "from_logits": True})
        return None

    def get_config(self) -> dict[str, Any]:
        """Keras 3's keys: ``name``, ``reduction``, then the loss's own options."""
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


def _mean(values: np.ndarray, axis: int) -> np.ndarray:
    """``values.mean(axis)``, the same numbers without ``np.mean``'s Python overhead
    (several microseconds, more than the arithmetic at batch sizes)."""
    total = np.add.reduce(values, axis=axis)
    total /= values.shape[axis]
    return total


def _clip_bounds(dtype: np.dtype) -> tuple[np.floating, np.floating]:
    """Keras's ``[eps, 1 - eps]``, in the predictions' float type (1 - 1e-7 rounds to
    0.99999988 in float32, and the comparisons that mask the gradient must agree)."""
    eps = backend.epsilon()
    return dtype.type(eps), dtype.type(1.0 - eps)


def _inside(y_pred: np.ndarray, low, high) -> np.ndarray:
    """Where ``clip(y_pred, low, high)`` lets the gradient through (bounds included, as
    the derivative of torch's and numpy's clip)."""
    return (y_pred >= low) & (y_pred <= high)


class MeanSquaredError(Loss):
    """``mean((y_pred - y_true)^2)``; gradient ``2 (y_pred - y_true) / size``."""

    name = "mean_squared_error"

    def _value_and_grad(self, y_true, y_pred, need_grad=True):
        diff = y_pred - y_true
        value = float(np.vdot(diff, diff)) / diff.size
        if need_grad:
            diff *= 2.0 / diff.size
            return value, diff
        return value, None

    def per_sample(self, y_true, y_pred):
        return _mean(np.square(y_pred - y_true), -1)


class MeanAbsoluteError(Loss):
    """``mean(|y_pred - y_true|)``; gradient ``sign(y_pred - y_true) / size``."""

    name = "mean_absolute_error"

    def _value_and_grad(self, y_true, y_pred, need_grad=True):
        diff = y_pred - y_true
        value = float(np.abs(diff).sum(dtype=np.float64)) / diff.size
        if need_grad:
            grad = np.sign(diff)
            grad *= 1.0 / diff.size
            return value, grad
        return value, None

    def per_sample(self, y_true, y_pred):
        return _mean(np.abs(y_pred - y_true), -1)


def _check_smoothing(label_smoothing: Any) -> float:
    return check_number(label_smoothing, "label_smoothing", minimum=0.0, maximum=1.0)


def _check_axis(axis: Any) -> int:
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"Expected an integer axis. Received: axis={axis!r:.100}")
    return int(axis)


class BinaryCrossentropy(Loss):
    """Binary cross-entropy for targets in ``[0, 1]``: 0/1 labels or soft targets.

    From logits ``z``: ``softplus(z) - y z``, gradient ``(sigmoid(z) - y) / size``.

    From probabilities ``p``, as Keras 3: ``c = clip(p, eps, 1 - eps)`` with ``eps = 1e-7``,
    loss ``-(y log c + (1 - y) log(1 - c))``, gradient ``(c - y) / (c (1 - c)) / size``
    where ``p`` is inside ``[eps, 1 - eps]`` and 0 where it was clipped.

    ``label_smoothing = s`` trains on ``y (1 - s) + s / 2`` instead of ``y``, as Keras (both
    forms, the fused one included). ``axis`` is the axis the per-sample mean is taken
    over (Keras's ``axis``); the reduced loss is the mean over every element either way.

    After a ``sigmoid`` layer (``Dense(1, activation="sigmoid")``), ``fit`` and ``evaluate``
    use the logits form (``fused_with``): the exact loss, where Keras 3 on PyTorch or JAX
    clips the probabilities, so that a confidently wrong sample costs at most
    ``-log(1e-7) = 16.12`` and passes no gradient back. On logits ``[[-30], [20]]``
    for labels ``[[1], [1]]`` layerkit's ``evaluate`` gives 15.00 (= (30 + 2e-9) / 2),
    Keras (torch backend) 8.06 (= (16.12 + 1.2e-7) / 2). Keras on TensorFlow uses the
    logits as layerkit does. ``BinaryCrossentropy()(y, model.predict(x))`` gives Keras's
    clipped number.

    Targets outside ``[0, 1]`` are refused by :meth:`check_targets` (Keras accepts them
    and trains on a meaningless loss).
    """

    name = "binary_crossentropy"
    probability_activation = "sigmoid"

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
    ) -> None:
        super().__init__(reduction, name)
        self.from_logits = check_flag(from_logits, "from_logits")
        self.label_smoothing = _check_smoothing(label_smoothing)
        self.axis = _check_axis(axis)

    def check_targets(self, y_true, output_shape, argument="y"):
        y = super().check_targets(y_true, output_shape, argument)
        # Once per fit, at the edge: two passes over y, nothing per batch.
        if y.size:
            low, high = float(y.min()), float(y.max())
            if low < 0.0 or high > 1.0:
                raise ValueError(
                    f"Invalid {argument}: expected targets in [0, 1] for {self.name} "
                    f"(0/1 labels or probabilities). Received values from {low:g} to {high:g}."
                )
        return y

    def _smoothed(self, y_true: np.ndarray) -> np.ndarray:
        """Keras's ``y (1 - s) + 0.5 s``; the targets themselves when ``s = 0``."""
        s = self.label_smoothing
        return y_true * (1.0 - s) + 0.5 * s if s else y_true

    def _elementwise(self, y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
        """The loss of each element, and what the gradient reuses: ``exp(-|z|)`` from
        logits, the clipped ``c`` from probabilities. ``y_true`` is already smoothed."""
        if self.from_logits:
            e = np.exp(-np.abs(y_pred))  # in (0, 1]: no overflow for any z
            return np.maximum(y_pred, 0) - y_true * y_pred + np.log1p(e), e
        c = np.clip(y_pred, *_clip_bounds(y_pred.dtype))
        return -(y_true * np.log(c) + (1.0 - y_true) * np.log1p(-c)), c

    def per_sample(self, y_true, y_pred):
        return _mean(self._elementwise(self._smoothed(y_true), y_pred)[0], self.axis)

    def _value_and_grad(self, y_true, y_pred, need_grad=True):
        n = y_pred.size
        y_true = self._smoothed(y_true)
        loss, reused = self._elementwise(y_true, y_pred)
        value = float(loss.sum(dtype=np.float64)) / n
        if not need_grad:
            return value, None
        if self.from_logits:
            z, e = y_pred, reused
            # sigmoid(z) from e without overflow, then (p - y) / n
            grad = np.where(z >= 0, 1.0, e).astype(z.dtype, copy=False) / (1.0 + e)
            grad -= y_true
            grad *= 1.0 / n
            return value, grad
        c = reused
        grad = c - y_true
        grad /= c * (1.0 - c)
        grad *= _inside(y_pred, *_clip_bounds(y_pred.dtype))  # no gradient through the clip
        grad *= 1.0 / n
        return value, grad.astype(y_pred.dtype, copy=False)

    def get_config(self):
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
        }


class BinaryFocalCrossentropy(BinaryCrossentropy):
    """Focal binary cross-entropy (Lin et al., 2017), as Keras 3.

    With ``p`` the probability (``sigmoid(z)`` from logits), ``y`` the (smoothed) target
    and ``q = 1 - p_t = y + p - 2 y p``: loss ``a q^gamma bce(y, p)``, where ``a = alpha y +
    (1 - alpha)(1 - y)`` with ``apply_class_balancing`` and 1 otherwise. Gradient
    ``a (q^gamma dbce/dp + gamma q^(gamma - 1) (1 - 2y) bce) dp``.

    From probabilities ``bce`` is clipped as in :class:`BinaryCrossentropy` (no gradient
    through the clip) while ``q`` uses ``p`` itself, as Keras. From logits ``bce`` is the
    exact ``softplus(z) - y z``; Keras takes ``sigmoid(z)`` then clips, which differs
    only where ``|z| > 16`` (Keras caps such a sample's bce at 16.12 and its gradient at 0).
    After a ``sigmoid`` layer ``fit`` uses the logits form, as for binary cross-entropy.
    """

    name = "binary_focal_crossentropy"

    def __init__(
        self,
        apply_class_balancing: bool = False,
        alpha: float = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
    ) -> None:
        super().__init__(from_logits, label_smoothing, axis, reduction, name)
        self.apply_class_balancing = check_flag(apply_class_balancing, "apply_class_balancing")
        self.alpha = check_number(alpha, "alpha", minimum=0.0, maximum=1.0)
        self.gamma = check_number(gamma, "gamma", minimum=0.0)

    def _terms(self, y, y_pred, need_grad):
        """The element-wise focal losses and (if ``need_grad``) their derivatives."""
        bce, reused = self._elementwise(y, y_pred)
        if self.from_logits:
            e = reused
            p = np.where(y_pred >= 0, 1.0, e).astype(y_pred.dtype, copy=False) / (1.0 + e)
        else:
            p = y_pred
        q = y + p - 2.0 * y * p  # 1 - p_t
        factor = np.power(q, self.gamma) if self.gamma != 2.0 else np.square(q)
        loss = factor * bce
        balance = None
        if self.apply_class_balancing:
            balance = y * self.alpha + (1.0 - y) * (1.0 - self.alpha)
            loss *= balance
        if not need_grad:
            return loss, None
        if self.from_logits:
            dp = p * (1.0 - p)  # dp/dz
            dbce = p - y  # dbce/dz
        else:
            c = reused
            low, high = _clip_bounds(y_pred.dtype)
            dp = None
            dbce = (c - y) / (c * (1.0 - c)) * _inside(y_pred, low, high)
        if self.gamma == 0.0:
            grad = dbce
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                # q^(gamma - 1), taken as 0 where q = 0 (the limit for gamma > 1)
                slope = np.where(
                    q > 0, np.power(q, self.gamma - 1.0), 0.0 if self.gamma != 1 else 1.0
                )
            dfactor = self.gamma * slope * (1.0 - 2.0 * y)
            if dp is not None:
                dfactor *= dp
            grad = factor * dbce + dfactor * bce
        if balance is not None:
            grad *= balance
        return loss, grad

    def per_sample(self, y_true, y_pred):
        return _mean(self._terms(self._smoothed(y_true), y_pred, False)[0], self.axis)

    def _value_and_grad(self, y_true, y_pred, need_grad=True):
        n = y_pred.size
        loss, grad = self._terms(self._smoothed(y_true), y_pred, need_grad)
        value = float(loss.sum(dtype=np.float64)) / n
        if not need_grad:
            return value, None
        grad *= 1.0 / n
        return value, grad.astype(y_pred.dtype, copy=False)

    def get_config(self):
        return {
            **super().get_config(),
            "apply_class_balancing": self.apply_class_balancing,
            "alpha": self.alpha,
            "gamma": self.gamma,
        }


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


def _row_sums(y_pred: np.ndarray) -> np.ndarray:
    """Keras's normaliser ``sum(y_pred)`` per row, as it is (negative sums included).

    A row summing to exactly 0 (logits passed as probabilities) would give NaN in Keras;
    here it is divided by eps instead: every nonzero prediction is then clipped and the
    row gets a finite loss and a zero or bounded gradient."""
    total = y_pred.sum(axis=-1, keepdims=True)
    zero = total == 0
    if zero.any():
        total[zero] = backend.epsilon()
    return total


class CategoricalCrossentropy(Loss):
    """Cross-entropy for one-hot (or soft) targets of shape ``(n, classes)``.

    From logits: ``lse(z) - sum(y z)``, gradient ``(softmax(z) sum(y) - y) / n``.

    From probabilities ``p``, as Keras 3: ``q = p / sum(p)``, ``c = clip(q, eps, 1 - eps)``,
    loss ``-sum(y log c)``. Its gradient follows the clip: with ``g = -y / c`` where ``q`` is
    inside ``[eps, 1 - eps]`` and 0 where it was clipped, ``dL/dp = (g - sum(g q)) / sum(p)
    / n`` (``sum(y) / sum(p) - y / p`` when nothing is clipped).

    After a ``softmax`` layer, ``fit`` and ``evaluate`` use the logits form (``fused_with``):
    the exact loss, where Keras 3 on PyTorch or JAX clips the probabilities, so that a
    confidently wrong sample costs at most ``-log(1e-7) = 16.12`` and passes no gradient
    back. On logits ``[[0, 30, 0], [20, 0, 0]]`` for classes ``[0, 0]`` layerkit's
    ``evaluate`` gives 15.00 (= (30 + 2e-9) / 2), Keras (torch backend) 8.06
    (= (16.12 + 1.2e-7) / 2). Keras on TensorFlow uses the logits as layerkit does.
    ``CategoricalCrossentropy()(y, model.predict(x))`` gives Keras's clipped number.

    ``label_smoothing = s`` trains on ``y (1 - s) + s / classes``, as Keras (both forms,
    the fused one included). ``axis`` must be the class axis, -1.
    """

    name = "categorical_crossentropy"
    probability_activation = "softmax"

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
    ) -> None:
        super().__init__(reduction, name)
        self.from_logits = check_flag(from_logits, "from_logits")
        self.label_smoothing = _check_smoothing(label_smoothing)
        if _check_axis(axis) != -1:
            raise ValueError(
                f"Expected axis=-1 (the classes last) for {type(self).__name__}. "
                f"Received: axis={axis!r}"
            )

    def _smoothed(self, y_true: np.ndarray, classes: int) -> np.ndarray:
        """Keras's ``y (1 - s) + s / classes``; the targets themselves when ``s = 0``."""
        s = self.label_smoothing
        return y_true * (1.0 - s) + s / classes if s else y_true

    def per_sample(self, y_true, y_pred):
        y_true = self._smoothed(y_true, y_pred.shape[-1])
        if self.from_logits:
            _, lse = _log_softmax_parts(y_pred)
            return (y_true * (lse - y_pred)).sum(axis=-1)
        c = np.clip(y_pred / _row_sums(y_pred), *_clip_bounds(y_pred.dtype))
        return -(y_true * np.log(c)).sum(axis=-1)

    def _value_and_grad(self, y_true, y_pred, need_grad=True):
        n = y_pred.size // y_pred.shape[-1] if y_pred.size else 0  # rows: the mean is over them
        y_true = self._smoothed(y_true, y_pred.shape[-1])
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
        low, high = _clip_bounds(y_pred.dtype)
        total = _row_sums(y_pred)
        q = y_pred / total
        c = np.clip(q, low, high)
        value = float(-(y_true * np.log(c)).sum(dtype=np.float64)) / n
        if not need_grad:
            return value, None
        g = -y_true / c
        g *= _inside(q, low, high)
        grad = g - np.einsum("...i,...i->...", g, q)[..., None]
        grad /= total * n
        return value, grad.astype(y_pred.dtype, copy=False)

    def get_config(self):
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": -1,
        }


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Cross-entropy for integer class labels of shape ``(n,)`` or ``(n, 1)``.

    From logits: ``lse(z) - z[y]``, gradient ``(softmax(z) - onehot(y)) / n``. From
    probabilities: categorical cross-entropy of ``onehot(y)``, clipped and normalised the
    same way (gradient included). The note on softmax outputs there applies here too.
    """

    name = "sparse_categorical_crossentropy"
    sparse_targets = True
    label_smoothing = 0.0  # Keras 3's sparse cross-entropy takes none

    def __init__(
        self,
        from_logits: bool = False,
        ignore_class: None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
    ) -> None:
        Loss.__init__(self, reduction, name)
        self.from_logits = check_flag(from_logits, "from_logits")
        if ignore_class is not None:  # accepted as None so that Keras's configs load
            raise ValueError(
                "ignore_class is not supported by layerkit's SparseCategoricalCrossentropy "
                f"(use sample_weight=0 for those samples). Received: ignore_class={ignore_class!r}"
            )

    def get_config(self):
        return {**Loss.get_config(self), "from_logits": self.from_logits, "ignore_class": None}

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

    def per_sample(self, y_true, y_pred):
        labels = y_true.astype(np.intp, copy=False)
        if labels.ndim == y_pred.ndim:  # (n, 1) labels, as Keras accepts
            labels = labels[..., 0]
        picked = np.take_along_axis(y_pred, labels[..., None], axis=-1)[..., 0]
        if self.from_logits:
            return _log_softmax_parts(y_pred)[1][..., 0] - picked
        total = _row_sums(y_pred)[..., 0]
        return -np.log(np.clip(picked / total, *_clip_bounds(y_pred.dtype)))

    def _value_and_grad(self, y_true, y_pred, need_grad=True):
        if y_pred.ndim > 2:  # (n, ..., classes): the mean over every row, as Keras does
            rows_pred = y_pred.reshape(-1, y_pred.shape[-1])
            value, grad = self._value_and_grad(y_true.reshape(-1), rows_pred, need_grad)
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
        low, high = _clip_bounds(y_pred.dtype)
        total = _row_sums(y_pred)[:, 0]
        q = y_pred[rows, y_true] / total
        c = np.clip(q, low, high)
        value = float(-np.log(c).sum(dtype=np.float64)) / n
        if not need_grad:
            return value, None
        # The categorical gradient with g = -1 / c at the true class only (0 if clipped):
        # (g onehot - g q) / sum(p) / n.
        g = -(_inside(q, low, high) / c)
        scale = 1.0 / (total * n)
        grad = np.broadcast_to((-g * q * scale)[:, None], y_pred.shape).astype(y_pred.dtype)
        grad[rows, y_true] += g * scale
        return value, grad


class _Elementwise(Loss):
    """An element-wise loss ``f(y_true, y_pred)``: the value is the mean over every element
    (Keras's mean over the last axis, then over the samples), the gradient ``f' / size``."""

    def _terms(self, y_true, y_pred, need_grad):
        """Returns the element-wise losses and (if ``need_grad``) their derivatives."""
        raise NotImplementedError

    def per_sample(self, y_true, y_pred):
        return _mean(self._terms(y_true, y_pred, False)[0], -1)

    def _value_and_grad(self, y_true, y_pred, need_grad=True):
        n = y_pred.size
        loss, grad = self._terms(y_true, y_pred, need_grad)
        value = float(loss.sum(dtype=np.float64)) / n
        if not need_grad:
            return value, None
        grad *= 1.0 / n
        return value, grad.astype(y_pred.dtype, copy=False)


def _rows(y_pred: np.ndarray, axis: int = -1) -> int:
    """The number of rows a per-row loss is averaged over."""
    return y_pred.size // y_pred.shape[axis] if y_pred.size else 0


class Huber(_Elementwise):
    """``0.5 e^2`` where ``|e| <= delta``, else ``delta (|e| - 0.5 delta)``, with
    ``e = y_pred - y_true``; derivative ``clip(e, -delta, delta)``."""

    name = "huber_loss"  # Keras 3's default name (its function is ``huber``)

    def __init__(
        self,
        delta: float = 1.0,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
    ) -> None:
        super().__init__(reduction, name)
        self.delta = check_number(delta, "delta", minimum=0.0, exclusive_minimum=True)

    def _terms(self, y_true, y_pred, need_grad):
        e = y_pred - y_true
        a = np.abs(e)
        d = y_pred.dtype.type(self.delta)
        loss = np.where(a <= d, 0.5 * np.square(e), d * a - 0.5 * d * d)
        return loss, np.clip(e, -d, d, out=e) if need_grad else None

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


class LogCosh(_Elementwise):
    """``log(cosh(e))`` with ``e = y_pred - y_true``, computed as Keras does without
    overflow (``|e| + log1p(exp(-2|e|)) - log 2``); derivative ``tanh(e)``."""

    name = "log_cosh"

    def _terms(self, y_true, y_pred, need_grad):
        e = y_pred - y_true
        a = np.abs(e)
        loss = np.exp(-2.0 * a)
        np.log1p(loss, out=loss)
        loss += a
        loss -= y_pred.dtype.type(np.log(2.0))
        return loss, np.tanh(e, out=e) if need_grad else None


class Poisson(_Elementwise):
    """``y_pred - y_true log(y_pred + eps)``; derivative ``1 - y_true / (y_pred + eps)``."""

    name = "poisson"

    def _terms(self, y_true, y_pred, need_grad):
        shifted = y_pred + y_pred.dtype.type(backend.epsilon())
        loss = np.log(shifted)
        loss *= -y_true
        loss += y_pred
        if not need_grad:
            return loss, None
        grad = np.divide(y_true, shifted, out=shifted)
        np.subtract(1.0, grad, out=grad)
        return loss, grad


class MeanAbsolutePercentageError(_Elementwise):
    """``100 |y_true - y_pred| / max(|y_true|, eps)``; derivative
    ``100 sign(y_pred - y_true) / max(|y_true|, eps)``."""

    name = "mean_absolute_percentage_error"

    def _terms(self, y_true, y_pred, need_grad):
        scale = np.maximum(np.abs(y_true), y_pred.dtype.type(backend.epsilon()))
        np.divide(100.0, scale, out=scale)
        e = y_pred - y_true
        loss = np.abs(e) * scale
        if not need_grad:
            return loss, None
        grad = np.sign(e, out=e)
        grad *= scale
        return loss, grad


class MeanSquaredLogarithmicError(_Elementwise):
    """``(log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1))^2``; derivative
    ``2 d / (y_pred + 1)`` where ``y_pred > eps``, 0 below (where the max cuts it)."""

    name = "mean_squared_logarithmic_error"

    def _terms(self, y_true, y_pred, need_grad):
        eps = y_pred.dtype.type(backend.epsilon())
        shifted = np.maximum(y_pred, eps)
        shifted += 1.0
        d = np.log(shifted)
        d -= np.log1p(np.maximum(y_true, eps))
        loss = np.square(d)
        if not need_grad:
            return loss, None
        d *= 2.0
        d /= shifted
        d *= y_pred > eps
        return loss, d


class KLDivergence(Loss):
    """Kullback-Leibler divergence per row: ``sum(t log(t / c))`` with ``t = clip(y_true,
    eps, 1)`` and ``c = clip(y_pred, eps, 1)``; the mean over the rows. Gradient ``-t / c``
    where ``y_pred`` is inside ``[eps, 1]``, 0 where it was clipped."""

    name = "kl_divergence"

    def _clipped(self, y_true, y_pred):
        low, high = y_pred.dtype.type(backend.epsilon()), y_pred.dtype.type(1.0)
        return np.clip(y_true, low, high), np.clip(y_pred, low, high), low, high

    def per_sample(self, y_true, y_pred):
        t, c, _, _ = self._clipped(y_true, y_pred)
        return (t * np.log(t / c)).sum(axis=-1)

    def _value_and_grad(self, y_true, y_pred, need_grad=True):
        n = _rows(y_pred)
        t, c, low, high = self._clipped(y_true, y_pred)
        terms = t / c
        np.log(terms, out=terms)
        value = float(np.vdot(t, terms)) / n
        if not need_grad:
            return value, None
        grad = np.divide(t, c, out=terms)
        grad *= _inside(y_pred, low, high)
        grad *= -1.0 / n
        return value, grad.astype(y_pred.dtype, copy=False)


class CosineSimilarity(Loss):
    """``-sum(normalize(y_true) normalize(y_pred))`` along ``axis``; the mean over the
    rest. As Keras, ``normalize(x) = x min(1 / |x|, 1 / eps)``. Gradient
    ``-(u - (u . v) v) / |y_pred|`` for unit vectors ``u``, ``v`` (``-u / eps`` where
    ``|y_pred| < eps``)."""

    name = "cosine_similarity"

    def __init__(
        self,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
    ) -> None:
        super().__init__(reduction, name)
        self.axis = _check_axis(axis)

    def _inverse_norm(self, x):
        inv = np.sqrt(np.square(x).sum(axis=self.axis, keepdims=True))
        with np.errstate(divide="ignore"):
            np.divide(1.0, inv, out=inv)
        return np.minimum(inv, x.dtype.type(1.0 / backend.epsilon()), out=inv)

    def per_sample(self, y_true, y_pred):
        u = y_true * self._inverse_norm(y_true)
        return -(u * y_pred * self._inverse_norm(y_pred)).sum(axis=self.axis)

    def _value_and_grad(self, y_true, y_pred, need_grad=True):
        n = _rows(y_pred, self.axis)
        u = y_true * self._inverse_norm(y_true).astype(y_pred.dtype, copy=False)
        inv = self._inverse_norm(y_pred)
        v = y_pred * inv
        dots = (u * v).sum(axis=self.axis, keepdims=True)
        value = -float(dots.sum(dtype=np.float64)) / n
        if not need_grad:
            return value, None
        # Where the clamp 1 / eps is active the norm is a constant: no projection term.
        dots *= inv < y_pred.dtype.type(1.0 / backend.epsilon())
        v *= dots
        v -= u
        v *= inv
        v *= 1.0 / n
        return value, v

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def _hinge_labels(y_true: np.ndarray) -> np.ndarray:
    """Keras's ``convert_binary_labels_to_hinge``: labels that are all 0 or 1 become -1 or 1;
    any other labels (-1/1 already) are kept. Decided per batch, as in Keras."""
    if ((y_true == 0) | (y_true == 1)).all():
        return 2.0 * y_true - 1.0
    return y_true


class Hinge(_Elementwise):
    """``max(1 - y_true y_pred, 0)`` for labels -1/1 (0/1 are converted); derivative
    ``-y_true`` where the margin is positive."""

    name = "hinge"

    def _terms(self, y_true, y_pred, need_grad):
        y = _hinge_labels(y_true).astype(y_pred.dtype, copy=False)
        margin = y * y_pred
        np.subtract(1.0, margin, out=margin)
        loss = np.maximum(margin, 0.0, out=margin)
        if not need_grad:
            return loss, None
        return loss, -y * (loss > 0)


class SquaredHinge(_Elementwise):
    """``max(1 - y_true y_pred, 0)^2`` for labels -1/1 (0/1 are converted); derivative
    ``-2 y_true max(1 - y_true y_pred, 0)``."""

    name = "squared_hinge"

    def _terms(self, y_true, y_pred, need_grad):
        y = _hinge_labels(y_true).astype(y_pred.dtype, copy=False)
        margin = y * y_pred
        np.subtract(1.0, margin, out=margin)
        np.maximum(margin, 0.0, out=margin)
        loss = np.square(margin)
        if not need_grad:
            return loss, None
        margin *= y
        margin *= -2.0
        return loss, margin


class CategoricalHinge(Loss):
    """``max(max((1 - y_true) y_pred) - sum(y_true y_pred) + 1, 0)`` per row, the mean over
    the rows. Gradient, where the row's loss is positive: ``(1 - y_true)`` at the largest
    negative score minus ``y_true``."""

    name = "categorical_hinge"

    def _parts(self, y_true, y_pred):
        negative = (1.0 - y_true) * y_pred
        top = negative.argmax(axis=-1)[..., None]
        loss = np.take_along_axis(negative, top, axis=-1)[..., 0]
        loss -= np.einsum("...i,...i->...", y_true, y_pred)
        loss += 1.0
        return np.maximum(loss, 0.0, out=loss), top

    def per_sample(self, y_true, y_pred):
        return self._parts(y_true, y_pred)[0]

    def _value_and_grad(self, y_true, y_pred, need_grad=True):
        n = _rows(y_pred)
        loss, top = self._parts(y_true, y_pred)
        value = float(loss.sum(dtype=np.float64)) / n
        if not need_grad:
            return value, None
        active = (loss > 0)[..., None]
        grad = -y_true * active
        # d max((1 - y) p) / dp: (1 - y) at the arg-max, added where that term is active.
        top_grad = np.take_along_axis(grad, top, axis=-1)
        top_grad += (1.0 - np.take_along_axis(y_true, top, axis=-1)) * active
        np.put_along_axis(grad, top, top_grad, axis=-1)
        grad *= 1.0 / n
        return value, grad.astype(y_pred.dtype, copy=False)


def mean_squared_error(y_true, y_pred) -> np.ndarray:
    """Keras's ``mean_squared_error``: ``mean((y_pred - y_true)^2, axis=-1)``, per sample."""
    return MeanSquaredError().per_sample(*prediction_pair(y_true, y_pred))


def mean_absolute_error(y_true, y_pred) -> np.ndarray:
    """Keras's ``mean_absolute_error``: ``mean(|y_pred - y_true|, axis=-1)``, per sample."""
    return MeanAbsoluteError().per_sample(*prediction_pair(y_true, y_pred))


# tf.keras 2's short names for the two (Keras 3 knows them only as strings: "mse", "mae").
mse = mean_squared_error
mae = mean_absolute_error


def binary_crossentropy(
    y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1
) -> np.ndarray:
    """Keras's ``binary_crossentropy``: the element-wise loss (clipped probabilities, or
    logits) of the smoothed targets, averaged over ``axis``: one value per sample."""
    loss = BinaryCrossentropy(from_logits, label_smoothing, axis)
    return loss.per_sample(*prediction_pair(y_true, y_pred))


def binary_focal_crossentropy(
    y_true,
    y_pred,
    apply_class_balancing: bool = False,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> np.ndarray:
    """Keras's ``binary_focal_crossentropy``: the focal loss of each element (see
    :class:`BinaryFocalCrossentropy`), averaged over ``axis``: one value per sample."""
    loss = BinaryFocalCrossentropy(
        apply_class_balancing, alpha, gamma, from_logits, label_smoothing, axis
    )
    return loss.per_sample(*prediction_pair(y_true, y_pred))


def categorical_crossentropy(
    y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1
) -> np.ndarray:
    """Keras's ``categorical_crossentropy``: one value per row of ``y_pred``."""
    loss = CategoricalCrossentropy(from_logits, label_smoothing, axis)
    y_true, y_pred = prediction_pair(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "Expected y_true and y_pred of the same shape. "
            f"Received: y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}"
        )
    return loss.per_sample(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False) -> np.ndarray:
    """Keras's ``sparse_categorical_crossentropy``: one value per row of ``y_pred``, for
    integer labels of shape ``y_pred.shape[:-1]`` (or with a trailing axis of 1)."""
    y_pred = prediction_array(y_pred)
    loss = SparseCategoricalCrossentropy(from_logits)
    labels = loss.check_targets(y_true, (None, *y_pred.shape[1:]), "y_true")
    return loss.per_sample(labels, y_pred)


def _per_sample(loss: Loss, y_true, y_pred) -> np.ndarray:
    y_true, y_pred = prediction_pair(y_true, y_pred)
    return loss.per_sample(y_true, y_pred)


def huber(y_true, y_pred, delta: float = 1.0) -> np.ndarray:
    """Keras's ``huber``: the Huber loss averaged over the last axis, per sample."""
    return _per_sample(Huber(delta), y_true, y_pred)


def log_cosh(y_true, y_pred) -> np.ndarray:
    """Keras's ``log_cosh``: ``mean(log(cosh(y_pred - y_true)), axis=-1)``."""
    return _per_sample(LogCosh(), y_true, y_pred)


def kl_divergence(y_true, y_pred) -> np.ndarray:
    """Keras's ``kl_divergence``: ``sum(t log(t / c), axis=-1)``, both clipped to [eps, 1]."""
    return _per_sample(KLDivergence(), y_true, y_pred)


def poisson(y_true, y_pred) -> np.ndarray:
    """Keras's ``poisson``: ``mean(y_pred - y_true log(y_pred + eps), axis=-1)``."""
    return _per_sample(Poisson(), y_true, y_pred)


def mean_absolute_percentage_error(y_true, y_pred) -> np.ndarray:
    """Keras's ``mean_absolute_percentage_error``, per sample."""
    return _per_sample(MeanAbsolutePercentageError(), y_true, y_pred)


def mean_squared_logarithmic_error(y_true, y_pred) -> np.ndarray:
    """Keras's ``mean_squared_logarithmic_error``, per sample."""
    return _per_sample(MeanSquaredLogarithmicError(), y_true, y_pred)


def cosine_similarity(y_true, y_pred, axis: int = -1) -> np.ndarray:
    """Keras's ``cosine_similarity``: minus the cosine of the angle along ``axis``."""
    return _per_sample(CosineSimilarity(axis), y_true, y_pred)


def hinge(y_true, y_pred) -> np.ndarray:
    """Keras's ``hinge``: ``mean(max(1 - y_true y_pred, 0), axis=-1)``, 0/1 labels converted."""
    return _per_sample(Hinge(), y_true, y_pred)


def squared_hinge(y_true, y_pred) -> np.ndarray:
    """Keras's ``squared_hinge``: ``mean(max(1 - y_true y_pred, 0)^2, axis=-1)``."""
    return _per_sample(SquaredHinge(), y_true, y_pred)


def categorical_hinge(y_true, y_pred) -> np.ndarray:
    """Keras's ``categorical_hinge``: one value per row."""
    return _per_sample(CategoricalHinge(), y_true, y_pred)


# Keras 3's short names.
kld = kl_divergence
mape = mean_absolute_percentage_error
msle = mean_squared_logarithmic_error


_BY_NAME: dict[str, type[Loss]] = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy,
    "binary_focal_crossentropy": BinaryFocalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "huber": Huber,
    "log_cosh": LogCosh,
    "kld": KLDivergence,
    "kl_divergence": KLDivergence,
    "poisson": Poisson,
    "mape": MeanAbsolutePercentageError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "cosine_similarity": CosineSimilarity,
    "hinge": Hinge,
    "squared_hinge": SquaredHinge,
    "categorical_hinge": CategoricalHinge,
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
        cls = _CLASSES[identifier["class_name"]]
        if not isinstance(config, dict) or not set(config) <= set(cls().get_config()):
            raise ValueError(f"Invalid loss config. Received: {identifier!r:.200}")
        try:
            return cls.from_config(config)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"Invalid loss config ({error}). Received: {identifier!r:.200}"
            ) from None
    raise TypeError(
        "Expected a loss name or a layerkit loss. "
        f"Received: loss={identifier!r:.100} of type {type(identifier).__name__}"
    )


def serialize(loss: Loss) -> dict[str, Any]:
    return {"class_name": type(loss).__name__, "config": loss.get_config()}
