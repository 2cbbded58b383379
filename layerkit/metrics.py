"""Metrics: stateful running averages over the batches of an epoch, as in Keras.

``update_state(y_true, y_pred, sample_weight=None)`` adds a batch, ``result()`` returns the
mean so far (with weights Keras's ``sum(w v) / sum(w)``; weighted counts for
:class:`Precision`, :class:`Recall` and :class:`AUC`) and ``reset_state()`` starts again.
:class:`Mean` and :class:`Sum` take ``update_state(values, sample_weight=None)``.
``"accuracy"`` is resolved from the loss first, then the output shape (see :func:`resolve`
for the rule and how it differs from Keras 3's).

The state of every metric is :meth:`Metric.state_arrays` (a ``(total, count)`` pair for
all but :class:`AUC`, whose state is four arrays of counts): what the training loop sums
over MPI ranks and stores in mid-epoch checkpoints.

Keras 3's metric functions are here too (``binary_accuracy``, ``mean_absolute_error``,
the cross-entropies...): they return one value per sample (per element for
``binary_accuracy``), without the mean over the batch.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from . import backend
from .losses import (
    BinaryCrossentropy,
    binary_crossentropy,
    categorical_crossentropy,
    mae,
    mean_absolute_error,
    mean_squared_error,
    mse,
    sparse_categorical_crossentropy,
)
from .validation import (
    check_flag,
    check_integer,
    check_number,
    check_sample_weight,
    numeric_array,
    prediction_pair,
)

__all__ = [
    "AUC",
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "CosineSimilarity",
    "LogCoshError",
    "Mean",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "Metric",
    "Precision",
    "Recall",
    "RootMeanSquaredError",
    "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "Sum",
    "TopKCategoricalAccuracy",
    "binary_accuracy",
    "binary_crossentropy",
    "categorical_accuracy",
    "categorical_crossentropy",
    "get",
    "mae",
    "mean_absolute_error",
    "mean_squared_error",
    "mse",
    "resolve",
    "sparse_categorical_accuracy",
    "sparse_categorical_crossentropy",
]


class Metric:
    """Base class: a weighted mean of per-sample values, Keras's ``Mean`` of a metric
    function.

    The running state is two floats, ``_total`` and ``_count`` (``result() = _total /
    _count``, 0 when ``_count`` is 0): batches and MPI ranks add up by summing them, and
    a mid-epoch checkpoint stores them. :meth:`state_arrays` / :meth:`set_state_arrays`
    give the same state as arrays, the form every metric has (:class:`AUC`'s is
    four arrays of counts).

    Subclasses implement :meth:`values` (Keras's metric function: one value per sample,
    or per element, averaged per sample) and may implement :meth:`per_sample_sum` faster.
    """

    name = "metric"
    # Whether update_state takes (y_true, y_pred), as compile's metrics must.
    takes_targets = True

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        self._total = 0.0
        self._count = 0

    def values(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """The metric of each sample (shape ``(n,)``) or element (``(n, ...)``)."""
        raise NotImplementedError

    def per_sample_sum(self, y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, int]:
        """Returns the sum of the per-sample values of a batch and how many there are."""
        return _row_means(self.values(y_true, y_pred))

    def weighted_sum(
        self, y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray
    ) -> tuple[float, float]:
        """Returns ``(sum(w v), sum(w))`` over the per-sample values ``v``, as Keras's
        ``Mean`` with ``sample_weight`` (a sample's value is its mean over the other axes)."""
        per_sample = self.values(y_true, y_pred)
        per_sample = np.asarray(per_sample, np.float64).reshape(len(per_sample), -1).mean(axis=1)
        weights = sample_weight.astype(np.float64, copy=False)
        return float(np.dot(per_sample, weights)), float(weights.sum())

    def _batch(self, y_true, y_pred, sample_weight) -> tuple[float, float]:
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        if sample_weight is None:
            return self.per_sample_sum(y_true, y_pred)
        rows = len(y_pred) if y_pred.ndim else 1
        return self.weighted_sum(y_true, y_pred, check_sample_weight(sample_weight, rows))

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Adds a batch; ``sample_weight``: one non-negative weight per sample."""
        total, count = self._batch(y_true, y_pred, sample_weight)
        self._total += total
        self._count += count

    def result(self) -> float:
        return self._total / self._count if self._count else 0.0

    def reset_state(self) -> None:
        self._total, self._count = 0.0, 0

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        """One-shot value for a batch (does not touch the running state)."""
        total, count = self._batch(y_true, y_pred, sample_weight)
        return total / count if count else 0.0

    def state_arrays(self) -> list[np.ndarray]:
        """The running state as float64 arrays, to sum over ranks or checkpoint:
        ``[array([total, count])]`` here; :class:`AUC` overrides it."""
        return [np.array([self._total, self._count], dtype=np.float64)]

    def set_state_arrays(self, arrays: list[np.ndarray]) -> None:
        """Restores (or replaces by the sum over ranks) what :meth:`state_arrays` gave.

        Raises:
            ValueError: arrays of other shapes than :meth:`state_arrays` returns, or NaN
                or infinite values; the state is then unchanged.
        """
        (state,) = _check_state(self, arrays, [(2,)])
        self._total, self._count = float(state[0]), float(state[1])

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


def _check_state(metric: Metric, arrays, shapes: list[tuple]) -> list[np.ndarray]:
    """``arrays`` as float64 arrays of ``shapes``, or ValueError naming the metric."""
    received = "?"
    try:
        arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
        received = [a.shape for a in arrays]
        ok = [a.shape for a in arrays] == [tuple(s) for s in shapes]
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"Invalid state for metric {metric.name!r}: expected arrays of shapes {shapes}. "
            f"Received: {received}"
        )
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError(f"Invalid state for metric {metric.name!r}: NaN or infinite values.")
    return arrays


class Accuracy(Metric):
    """How often predictions equal the labels exactly."""

    name = "accuracy"

    def values(self, y_true, y_pred):
        return (y_true.reshape(y_pred.shape) == y_pred).astype(np.float64)

    def per_sample_sum(self, y_true, y_pred):
        return float(np.count_nonzero(y_true.reshape(y_pred.shape) == y_pred)), y_pred.size


class BinaryAccuracy(Metric):
    """How often ``y_pred > threshold`` equals the 0/1 label (threshold 0 for logits)."""

    name = "binary_accuracy"

    def __init__(self, name: str | None = None, threshold: float = 0.5) -> None:
        super().__init__(name)
        self.threshold = check_number(threshold, "threshold")

    def values(self, y_true, y_pred):
        return _binary_hits(y_true.reshape(y_pred.shape), y_pred, self.threshold).astype(float)

    def per_sample_sum(self, y_true, y_pred):
        hits = _binary_hits(y_true.reshape(y_pred.shape), y_pred, self.threshold)
        return float(np.count_nonzero(hits)), hits.size

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}


class CategoricalAccuracy(Metric):
    """How often the arg-max of the prediction equals the arg-max of the one-hot label."""

    name = "categorical_accuracy"

    def values(self, y_true, y_pred):
        return _categorical_hits(y_true, y_pred).astype(np.float64)

    def per_sample_sum(self, y_true, y_pred):
        hits = _categorical_hits(y_true, y_pred)
        return float(np.count_nonzero(hits)), hits.size


class SparseCategoricalAccuracy(Metric):
    """How often the arg-max of the prediction equals the integer label."""

    name = "sparse_categorical_accuracy"

    def values(self, y_true, y_pred):
        hits = _sparse_categorical_hits(y_true.reshape(y_pred.shape[:-1]), y_pred)
        return hits.astype(np.float64)

    def per_sample_sum(self, y_true, y_pred):
        hits = _sparse_categorical_hits(y_true.reshape(y_pred.shape[:-1]), y_pred)
        return float(np.count_nonzero(hits)), hits.size


class MeanSquaredError(Metric):
    name = "mean_squared_error"

    def values(self, y_true, y_pred):
        return np.square(y_pred - y_true.reshape(y_pred.shape))

    def per_sample_sum(self, y_true, y_pred):
        diff = y_pred - y_true.reshape(y_pred.shape)
        per_sample = np.square(diff).reshape(len(diff), -1).mean(axis=1)
        return float(per_sample.sum()), len(per_sample)


class MeanAbsoluteError(Metric):
    name = "mean_absolute_error"

    def values(self, y_true, y_pred):
        return np.abs(y_pred - y_true.reshape(y_pred.shape))

    def per_sample_sum(self, y_true, y_pred):
        diff = y_pred - y_true.reshape(y_pred.shape)
        per_sample = np.abs(diff).reshape(len(diff), -1).mean(axis=1)
        return float(per_sample.sum()), len(per_sample)


# Keras's epsilon (``keras.backend.epsilon()``), which its metric functions clip with.
_EPSILON = 1e-7


def _row_means(values: np.ndarray) -> tuple[float, int]:
    """Sum over samples of each sample's mean value (Keras's ``Mean`` on a batch)."""
    per_sample = values.reshape(len(values), -1).mean(axis=1)
    return float(per_sample.sum()), len(per_sample)


def _per_row(sample_weight: np.ndarray, like: np.ndarray) -> np.ndarray:
    """One weight per sample as float64, shaped ``(n, 1, ..., 1)`` to broadcast over ``like``."""
    w = sample_weight.astype(np.float64, copy=False)
    return w.reshape((-1,) + (1,) * (like.ndim - 1)) if like.ndim else w


def _pair64(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_pred = np.asarray(y_pred, dtype=np.float64)
    return np.asarray(y_true, dtype=np.float64).reshape(y_pred.shape), y_pred


class RootMeanSquaredError(MeanSquaredError):
    """``sqrt`` of the running mean squared error (not the mean of per-batch roots).

    The state stays a (sum of per-sample squared errors, samples) pair, so batches and
    ranks add up as for the other metrics; only :meth:`result` takes the root.
    """

    name = "root_mean_squared_error"

    def result(self) -> float:
        return float(np.sqrt(super().result()))

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        return float(np.sqrt(super().__call__(y_true, y_pred, sample_weight)))


class MeanAbsolutePercentageError(Metric):
    """``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7))`` per sample, averaged."""

    name = "mean_absolute_percentage_error"

    def values(self, y_true, y_pred):
        y_true, y_pred = _pair64(y_true, y_pred)
        return 100.0 * np.abs(y_true - y_pred) / np.maximum(np.abs(y_true), _EPSILON)


class MeanSquaredLogarithmicError(Metric):
    """``mean((log(max(y_pred, 1e-7) + 1) - log(max(y_true, 1e-7) + 1))**2)`` per sample."""

    name = "mean_squared_logarithmic_error"

    def values(self, y_true, y_pred):
        y_true, y_pred = _pair64(y_true, y_pred)
        diff = np.log1p(np.maximum(y_pred, _EPSILON)) - np.log1p(np.maximum(y_true, _EPSILON))
        return np.square(diff)


class LogCoshError(Metric):
    """``mean(log(cosh(y_pred - y_true)))`` per sample, computed as
    ``x + softplus(-2x) - log(2)`` so large errors do not overflow."""

    name = "logcosh"

    def values(self, y_true, y_pred):
        y_true, y_pred = _pair64(y_true, y_pred)
        x = y_pred - y_true
        return x + np.logaddexp(0.0, -2.0 * x) - np.log(2.0)


class CosineSimilarity(Metric):
    """``sum(y_true / ||y_true|| * y_pred / ||y_pred||)`` along ``axis``, averaged over the
    rest; each norm is clipped below at 1e-7, as Keras's ``normalize``."""

    name = "cosine_similarity"

    def __init__(self, name: str | None = None, axis: int = -1) -> None:
        super().__init__(name)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"Expected an integer axis. Received: axis={axis!r}")
        self.axis = int(axis)

    def values(self, y_true, y_pred):
        y_true, y_pred = _pair64(y_true, y_pred)

        def unit(v):
            norm = np.sqrt(np.sum(np.square(v), axis=self.axis, keepdims=True))
            return v / np.maximum(norm, _EPSILON)

        return np.sum(unit(y_true) * unit(y_pred), axis=self.axis)

    def get_config(self):
        return {"name": self.name, "axis": self.axis}


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"Expected k to be a positive integer. Received: k={k!r}")
    return int(k)


def _in_top_k(labels: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Whether each label's score is among the ``k`` largest of its row.

    As Keras's ``ops.in_top_k``: a tie with the k-th largest score counts as a hit,
    i.e. a hit is fewer than ``k`` scores strictly above the label's.
    """
    scores = scores.reshape(-1, scores.shape[-1])
    labels = labels.reshape(-1).astype(np.int64)
    target = np.take_along_axis(scores, labels[:, None], axis=-1)
    return np.count_nonzero(scores > target, axis=-1) < k


class TopKCategoricalAccuracy(Metric):
    """How often the arg-max of the one-hot label is among the ``k`` top predictions."""

    name = "top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str | None = None) -> None:
        super().__init__(name)
        self.k = _check_k(k)

    def values(self, y_true, y_pred):
        hits = _in_top_k(y_true.argmax(axis=-1), y_pred, self.k)
        return hits.reshape(y_pred.shape[:-1]).astype(np.float64)

    def get_config(self):
        return {"name": self.name, "k": self.k}


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    """How often the integer label is among the ``k`` top predictions."""

    name = "sparse_top_k_categorical_accuracy"

    def values(self, y_true, y_pred):
        hits = _in_top_k(y_true.reshape(y_pred.shape[:-1]), y_pred, self.k)
        return hits.reshape(y_pred.shape[:-1]).astype(np.float64)


class Precision(Metric):
    """``true positives / predicted positives``, a prediction being positive when
    ``y_pred > thresholds`` and a label when it is non-zero (0 with no positives).

    The running state is (true positives, predicted positives): a total and a count,
    like every other metric here. One threshold only (Keras also takes a list, and
    ``top_k``/``class_id``).
    """

    name = "precision"

    def __init__(self, thresholds: float | None = None, name: str | None = None) -> None:
        super().__init__(name)
        self.thresholds = 0.5 if thresholds is None else check_number(thresholds, "thresholds")

    def _positives(self, y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
        return y_true.reshape(y_pred.shape) != 0, y_pred > self.thresholds

    def per_sample_sum(self, y_true, y_pred):
        label, predicted = self._positives(y_true, y_pred)
        return float(np.count_nonzero(label & predicted)), int(np.count_nonzero(predicted))

    def _weighted_counts(self, y_true, y_pred, sample_weight) -> tuple[float, float, float]:
        """Weighted (true positives, predicted positives, actual positives): each
        sample's weight counts for all its outputs, as Keras."""
        label, predicted = self._positives(y_true, y_pred)
        w = _per_row(sample_weight, predicted)
        return (
            float(np.sum(w * (label & predicted))),
            float(np.sum(w * predicted)),
            float(np.sum(w * label)),
        )

    def weighted_sum(self, y_true, y_pred, sample_weight):
        tp, predicted, _ = self._weighted_counts(y_true, y_pred, sample_weight)
        return tp, predicted

    def get_config(self):
        return {"name": self.name, "thresholds": self.thresholds}


class Recall(Precision):
    """``true positives / actual positives``, with the thresholding of :class:`Precision`;
    the running state is (true positives, actual positives)."""

    name = "recall"

    def per_sample_sum(self, y_true, y_pred):
        label, predicted = self._positives(y_true, y_pred)
        return float(np.count_nonzero(label & predicted)), int(np.count_nonzero(label))

    def weighted_sum(self, y_true, y_pred, sample_weight):
        tp, _, actual = self._weighted_counts(y_true, y_pred, sample_weight)
        return tp, actual


class Mean(Metric):
    """Keras's ``Mean``: the (weighted) mean of the values given to
    ``update_state(values, sample_weight=None)``.

    A sample's value is its mean over the other axes. With one weight per sample the
    result is ``sum(w v) / sum(w)``; a scalar weight weighs the batch's mean as a whole
    (``total += w mean(v)``, ``count += w``), as Keras.
    """

    name = "mean"
    takes_targets = False

    def _reduce_row(self, rows: np.ndarray) -> np.ndarray:
        return rows.mean(axis=1)

    def _batch_values(self, values, sample_weight) -> tuple[float, float]:
        v = np.asarray(values)
        if v.dtype.kind not in "biuf":
            raise TypeError(
                f"Expected numeric values for metric {self.name!r}. "
                f"Received: values of dtype {v.dtype}"
            )
        v = v.astype(np.float64).reshape(-1, 1) if v.ndim == 0 else v.astype(np.float64)
        per_sample = self._reduce_row(v.reshape(len(v), -1)) if v.size else v.reshape(len(v))
        if sample_weight is None:
            return float(per_sample.sum()), len(per_sample)
        if np.ndim(sample_weight) == 0:
            w = check_sample_weight(np.reshape(sample_weight, 1), 1)[0].astype(np.float64)
            batch = self._reduce_row(per_sample.reshape(1, -1))[0] if per_sample.size else 0.0
            return float(w * batch), float(w)
        w = check_sample_weight(sample_weight, len(per_sample)).astype(np.float64)
        return float(np.dot(per_sample, w)), float(w.sum())

    def update_state(self, values, sample_weight=None) -> None:
        """Adds ``values`` (one per sample, or an array whose first axis is the samples)."""
        total, count = self._batch_values(values, sample_weight)
        self._total += total
        self._count += count

    def __call__(self, values, sample_weight=None) -> float:
        """The result for ``values`` alone (does not touch the running state)."""
        total, count = self._batch_values(values, sample_weight)
        return self._result(total, count)

    def _result(self, total: float, count: float) -> float:
        return total / count if count else 0.0

    def result(self) -> float:
        return self._result(self._total, self._count)


class Sum(Mean):
    """Keras's ``Sum``: the (weighted) sum of the values given to
    ``update_state(values, sample_weight=None)``, ``sum(w v)``. The state keeps a count
    of samples too (unused by the result), so it adds up over ranks like the others."""

    name = "sum"

    def _reduce_row(self, rows):
        return rows.sum(axis=1)

    def _result(self, total, count):
        return total


_CURVES = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
_SUMMATIONS = ("interpolation", "minoring", "majoring")


class AUC(Metric):
    """Area under the ROC or precision-recall curve, from counts at fixed thresholds, as
    Keras 3 (``num_thresholds=200``, ``curve="ROC"``, ``summation_method="interpolation"``).

    Thresholds ``[-eps, 1/(T-1), ..., (T-2)/(T-1), 1 + eps]`` (``eps = 1e-7``), or the
    sorted ``thresholds`` given between ``-eps`` and ``1 + eps``. A prediction is
    positive at threshold ``t`` when ``p > t``; a label when it is non-zero. Each
    threshold counts (weighted) true and false positives and negatives; with evenly
    spaced thresholds predictions are clipped to ``[0, 1]`` and bucketed as Keras
    (``ceil(p (T - 1)) - 1``), in one pass.

    ``result()``: with ``x`` the false-positive rate (ROC) or recall (PR) and ``y`` the
    recall (ROC) or precision (PR) at each threshold, ``sum((x_i - x_{i+1}) h_i)`` with
    ``h_i`` the mean (interpolation), min (minoring) or max (majoring) of ``y_i`` and
    ``y_{i+1}``. PR with interpolation uses Davis & Goadrich's formula as Keras:
    ``sum(slope (dTP + intercept log(P_i / P_{i+1})) / (TP_{i+1} + FN_{i+1}))``, with
    ``P = TP + FP`` varying linearly between thresholds. ``multi_label``: one curve per
    label (column), averaged (by ``label_weights`` if given); otherwise every output
    counts as one prediction and ``label_weights`` weigh the columns' counts.

    The state is four ``(T,)`` arrays (``(T, labels)`` for ``multi_label``), exposed
    by :meth:`state_arrays` / :meth:`set_state_arrays` (true positives, false positives,
    true negatives, false negatives); there is no ``_total``/``_count`` pair.
    """

    name = "auc"

    def __init__(
        self,
        num_thresholds: int = 200,
        curve: str = "ROC",
        summation_method: str = "interpolation",
        name: str | None = None,
        *,
        thresholds: list[float] | None = None,
        multi_label: bool = False,
        num_labels: int | None = None,
        label_weights: list[float] | None = None,
        from_logits: bool = False,
    ) -> None:
        if name is not None:
            self.name = name
        if not isinstance(curve, str) or curve.lower() not in _CURVES:
            raise ValueError(
                f"Invalid curve: expected one of {list(_CURVES.values())}. "
                f"Received: curve={curve!r}"
            )
        if not isinstance(summation_method, str) or summation_method.lower() not in _SUMMATIONS:
            raise ValueError(
                f"Invalid summation_method: expected one of {list(_SUMMATIONS)}. "
                f"Received: summation_method={summation_method!r}"
            )
        self.curve = _CURVES[curve.lower()]
        self.summation_method = summation_method.lower()
        self.multi_label = check_flag(multi_label, "multi_label")
        self.from_logits = check_flag(from_logits, "from_logits")
        self._init_thresholds = thresholds is not None
        eps = _EPSILON
        if thresholds is not None:
            inner = sorted(check_number(t, "thresholds") for t in thresholds)
            self.num_thresholds = len(inner) + 2
            points = np.array([0.0, *inner, 1.0])
            steps = np.diff(points)
            self._evenly = bool(len(inner) > 0 and np.allclose(steps, steps[0], atol=eps))
        else:
            self.num_thresholds = check_integer(num_thresholds, "num_thresholds", minimum=2)
            n = self.num_thresholds
            inner = [(i + 1) * 1.0 / (n - 1) for i in range(n - 2)]
            self._evenly = True
        self._thresholds = np.array([0.0 - eps, *inner, 1.0 + eps])
        if num_labels is not None:
            num_labels = check_integer(num_labels, "num_labels", minimum=1)
            if not self.multi_label:
                raise ValueError(
                    "num_labels is needed only when multi_label is True. "
                    f"Received: num_labels={num_labels}, multi_label=False"
                )
        self.num_labels = num_labels
        if label_weights is not None:
            weights = np.asarray(label_weights, dtype=np.float64)
            if weights.ndim != 1 or not np.isfinite(weights).all() or (weights < 0).any():
                raise ValueError(
                    "Expected label_weights to be a list of non-negative numbers, one per "
                    f"label. Received: label_weights={label_weights!r:.100}"
                )
            self.label_weights = [float(w) for w in weights]
        else:
            self.label_weights = None
        self._counts: list[np.ndarray] | None = None
        if not self.multi_label:
            self._build(None)
        elif num_labels:
            self._build(num_labels)

    @property
    def thresholds(self) -> list[float]:
        """The thresholds the counts are taken at, ``-eps`` and ``1 + eps`` included."""
        return [float(t) for t in self._thresholds]

    @property
    def _total(self):
        raise TypeError("AUC's state is four arrays of counts: use state_arrays().")

    @property
    def _count(self):
        raise TypeError("AUC's state is four arrays of counts: use state_arrays().")

    def _build(self, labels: int | None) -> None:
        shape = (self.num_thresholds,) if labels is None else (self.num_thresholds, labels)
        self._counts = [np.zeros(shape) for _ in range(4)]  # tp, fp, tn, fn

    def reset_state(self) -> None:
        if self._counts is not None:
            for counts in self._counts:
                counts[...] = 0.0

    def _batch_counts(self, y_true, y_pred, sample_weight) -> list[np.ndarray]:
        """This batch's (tp, fp, tn, fn) at every threshold."""
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind not in "biuf" or y_pred.ndim == 0:
            raise ValueError(
                f"Expected numeric predictions with a batch axis for metric {self.name!r}. "
                f"Received: y_pred of shape {y_pred.shape} and dtype {y_pred.dtype}"
            )
        y_pred = y_pred.astype(np.float32)
        y_true = np.asarray(y_true)
        if y_true.size != y_pred.size:
            raise ValueError(
                f"Expected y_true with one label per prediction for metric {self.name!r}. "
                f"Received: y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}"
            )
        label = y_true.reshape(y_pred.shape) != 0
        if np.isnan(y_pred).any():  # no bucket for it (Keras counts it at a random one)
            raise ValueError(f"Invalid y_pred for metric {self.name!r}: it contains NaN.")
        if self.from_logits:
            y_pred = 1.0 / (1.0 + np.exp(-y_pred))
        if self.multi_label and y_pred.ndim != 2:
            raise ValueError(
                "Expected y_pred of rank 2 (samples, labels) when multi_label is True. "
                f"Received: y_pred.shape={y_pred.shape}"
            )
        weights = np.ones(y_pred.shape)
        if sample_weight is not None:
            weights = weights * _per_row(check_sample_weight(sample_weight, len(y_pred)), y_pred)
        if self.label_weights is not None and not self.multi_label:
            if y_pred.shape[-1] != len(self.label_weights):
                raise ValueError(
                    f"Expected {len(self.label_weights)} labels (label_weights) for metric "
                    f"{self.name!r}. Received: y_pred.shape={y_pred.shape}"
                )
            weights = weights * np.asarray(self.label_weights)
        t = self.num_thresholds
        if self._evenly:
            # Keras's buckets, in float32 as it computes them: bucket b holds the p with
            # b < p (T - 1) <= b + 1, so p counts at thresholds 0..b.
            p = np.clip(y_pred, 0.0, 1.0)
            bucket = np.maximum(np.ceil(p * np.float32(t - 1)) - 1, 0).astype(np.intp)
        else:
            # The number of thresholds strictly below p, minus one: p > t_i for i <= bucket.
            cuts = self._thresholds.astype(np.float32)
            bucket = np.searchsorted(cuts, y_pred, side="left").astype(np.intp) - 1
        columns = y_pred.shape[1] if self.multi_label else 1
        if self.multi_label:
            offset = np.arange(columns) * (t + 1)
        else:
            offset = np.zeros(1, dtype=np.intp)
        # Slot b + 1 of each column (slot 0: below every threshold, never positive).
        slots = (bucket.reshape(len(y_pred), -1) + 1 + offset).ravel()
        w = weights.reshape(len(y_pred), -1).ravel()
        pos = label.reshape(len(y_pred), -1).ravel()
        size = columns * (t + 1)
        true_w = np.bincount(slots, weights=w * pos, minlength=size).reshape(columns, t + 1)
        false_w = np.bincount(slots, weights=w * ~pos, minlength=size).reshape(columns, t + 1)
        # Reverse cumulative sums: positives at threshold i are the slots above i.
        tp = np.cumsum(true_w[:, ::-1], axis=1)[:, ::-1][:, 1:]
        fp = np.cumsum(false_w[:, ::-1], axis=1)[:, ::-1][:, 1:]
        fn = true_w.sum(axis=1, keepdims=True) - tp
        tn = false_w.sum(axis=1, keepdims=True) - fp
        counts = [tp, fp, tn, fn]
        return [c.T if self.multi_label else c[0] for c in counts]

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Adds a batch's counts; ``sample_weight``: one non-negative weight per sample."""
        counts = self._batch_counts(y_true, y_pred, sample_weight)
        if self._counts is None:
            self._build(counts[0].shape[1])
        if counts[0].shape != self._counts[0].shape:
            raise ValueError(
                f"Expected {self._counts[0].shape[1]} labels for metric {self.name!r} (as in "
                f"earlier batches). Received: y_pred with {counts[0].shape[1]}"
            )
        for mine, batch in zip(self._counts, counts):
            mine += batch

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        """The AUC of this batch alone (does not touch the running state)."""
        return self._result(self._batch_counts(y_true, y_pred, sample_weight))

    def result(self) -> float:
        if self._counts is None:
            return 0.0
        return self._result(self._counts)

    def _result(self, counts: list[np.ndarray]) -> float:
        tp, fp, tn, fn = counts
        if self.curve == "PR" and self.summation_method == "interpolation":
            terms = self._interpolated_pr(tp, fp, fn)
        else:
            recall = _divide_no_nan(tp, tp + fn)
            if self.curve == "ROC":
                x, y = _divide_no_nan(fp, fp + tn), recall
            elif self.curve == "PR":
                x, y = recall, _divide_no_nan(tp, tp + fp)
            else:  # PRGAIN
                scale = _divide_no_nan(tp + fn, tn + fp)
                recall_gain = 1.0 - scale * _divide_no_nan(fn, tp)
                precision_gain = 1.0 - scale * _divide_no_nan(fp, tp)
                x = np.maximum(np.where(tp == 0, 0.0, recall_gain), 0.0)
                y = np.where(tp == 0, 1.0, precision_gain)
            if self.summation_method == "interpolation":
                heights = (y[:-1] + y[1:]) / 2.0
            elif self.summation_method == "minoring":
                heights = np.minimum(y[:-1], y[1:])
            else:
                heights = np.maximum(y[:-1], y[1:])
            terms = (x[:-1] - x[1:]) * heights
        by_label = terms.sum(axis=0)
        if not self.multi_label:
            return float(by_label)
        if self.label_weights is None:
            return float(by_label.mean()) if by_label.size else 0.0
        weights = np.asarray(self.label_weights)
        return float(_divide_no_nan(np.sum(by_label * weights), np.sum(weights)))

    @staticmethod
    def _interpolated_pr(tp, fp, fn) -> np.ndarray:
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0.0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:-1], np.maximum(p[1:], 0.0)), 1.0)
        with np.errstate(divide="ignore"):
            log_ratio = np.log(np.where(ratio > 0, ratio, 1.0))
        return _divide_no_nan(slope * (dtp + intercept * log_ratio), np.maximum(tp[1:] + fn[1:], 0))

    def state_arrays(self) -> list[np.ndarray]:
        """``[true_positives, false_positives, true_negatives, false_negatives]``, float64
        arrays of shape ``(num_thresholds,)`` (``(num_thresholds, labels)`` for
        ``multi_label``; ``(num_thresholds, 0)`` before the first batch when
        ``num_labels`` was not given). They add up over ranks element by element."""
        if self._counts is None:
            return [np.zeros((self.num_thresholds, 0)) for _ in range(4)]
        return [c.copy() for c in self._counts]

    def set_state_arrays(self, arrays: list[np.ndarray]) -> None:
        if self._counts is not None:
            shape = self._counts[0].shape
        else:
            first = np.shape(arrays[0]) if len(arrays) else ()
            shape = first if len(first) == 2 and first[0] == self.num_thresholds else None
            if shape is None:
                shape = (self.num_thresholds, 1)
        checked = _check_state(self, arrays, [shape] * 4)
        if self._counts is None:
            if shape[1] == 0:
                return
            self._build(shape[1])
        for mine, value in zip(self._counts, checked):
            mine[...] = value

    def get_config(self):
        config = {
            "name": self.name,
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": self.label_weights,
            "from_logits": self.from_logits,
        }
        if self._init_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config


def _divide_no_nan(a, b) -> np.ndarray:
    """``a / b``, 0 where ``b`` is 0 (Keras's ``divide_no_nan``)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    safe = np.where(b == 0, 1.0, b)
    return np.where(b == 0, 0.0, a / safe)


_BY_NAME: dict[str, type[Metric]] = {
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "root_mean_squared_error": RootMeanSquaredError,
    "mape": MeanAbsolutePercentageError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "log_cosh_error": LogCoshError,
    "cosine_similarity": CosineSimilarity,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "precision": Precision,
    "recall": Recall,
    "auc": AUC,
    "mean": Mean,
    "sum": Sum,
}


def resolve(identifier: str | Metric, loss, output_shape: tuple) -> Metric:
    """Returns the metric for ``identifier``; ``"accuracy"``/``"acc"`` picks the right kind.

    layerkit's rule looks at the loss first, then at the output shape, as multi-backend
    Keras 2 did: ``sparse_categorical_crossentropy`` gives sparse categorical accuracy;
    ``binary_crossentropy``, or one output unit, gives binary accuracy; anything else
    categorical accuracy. Keras 3 looks at the shapes of the labels and outputs only, so
    the two differ for ``binary_crossentropy`` on several outputs (multi-label): binary
    accuracy here, categorical accuracy in Keras 3.

    A binary accuracy resolved by name (``"accuracy"``, ``"acc"`` or ``"binary_accuracy"``)
    for a loss with ``from_logits=True`` thresholds the logits at 0, which is probability
    0.5. Keras always thresholds at 0.5, i.e. at probability 0.62 on logits. A metric
    object is used as given. The metric keeps the name the user wrote.
    """
    if isinstance(identifier, Metric):
        return identifier
    if not isinstance(identifier, str):
        raise TypeError(
            f"Expected a metric name or a layerkit metric. Received: {identifier!r:.100}"
        )
    from_logits = bool(getattr(loss, "from_logits", False))
    key = identifier.lower()
    if key in ("accuracy", "acc"):
        if getattr(loss, "sparse_targets", False):
            return SparseCategoricalAccuracy(name=identifier)
        if isinstance(loss, BinaryCrossentropy) or output_shape[-1] == 1:
            return BinaryAccuracy(name=identifier, threshold=0.0 if from_logits else 0.5)
        return CategoricalAccuracy(name=identifier)
    if key in ("binary_accuracy", "binaryaccuracy") and from_logits:
        return BinaryAccuracy(name=identifier, threshold=0.0)
    return get(identifier)


def get(identifier: str | Metric) -> Metric:
    """Returns a metric for a name (other than ``"accuracy"``) or an object."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()](name=identifier)
    raise ValueError(
        f"Unknown metric: expected one of {sorted(_BY_NAME) + ['accuracy']}. "
        f"Received: metrics={identifier!r}"
    )


def _binary_hits(y_true: np.ndarray, y_pred: np.ndarray, threshold: float) -> np.ndarray:
    # Labels are read as y > 0.5, so soft targets count by their nearer class (Keras
    # compares them with 0/1 exactly; the two agree on 0/1 labels).
    return (y_pred > threshold) == (y_true > 0.5)


def _categorical_hits(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return y_pred.argmax(axis=-1) == y_true.argmax(axis=-1)


def _sparse_categorical_hits(labels: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return y_pred.argmax(axis=-1) == labels


def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> np.ndarray:
    """Keras's ``binary_accuracy``: 1.0 where ``y_pred > threshold`` matches the 0/1
    label, else 0.0, element by element (no mean over the last axis, as in Keras 3)."""
    y_true, y_pred = prediction_pair(y_true, y_pred)
    hits = _binary_hits(y_true, y_pred, check_number(threshold, "threshold"))
    return hits.astype(backend.floatx())


def categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """Keras's ``categorical_accuracy``: 1.0 per row whose arg-max matches the one-hot
    label's, else 0.0."""
    hits = _categorical_hits(numeric_array(y_true, "y_true"), numeric_array(y_pred, "y_pred"))
    return hits.astype(backend.floatx())


def sparse_categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """Keras's ``sparse_categorical_accuracy``: 1.0 per row whose arg-max is the integer
    label (labels of shape ``y_pred.shape[:-1]``, or with a trailing axis of 1), else 0.0."""
    y_pred = numeric_array(y_pred, "y_pred")
    labels = numeric_array(y_true, "y_true")
    if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    hits = _sparse_categorical_hits(labels, y_pred)
    return hits.astype(backend.floatx())


_CLASSES: dict[str, type[Metric]] = {
    cls.__name__: cls
    for cls in (
        Accuracy,
        BinaryAccuracy,
        CategoricalAccuracy,
        SparseCategoricalAccuracy,
        MeanSquaredError,
        MeanAbsoluteError,
        RootMeanSquaredError,
        MeanAbsolutePercentageError,
        MeanSquaredLogarithmicError,
        LogCoshError,
        CosineSimilarity,
        TopKCategoricalAccuracy,
        SparseTopKCategoricalAccuracy,
        Precision,
        Recall,
        AUC,
        Mean,
        Sum,
    )
}
# Keras's compile takes class names as well as snake-case names; lookups here ignore case.
_BY_NAME.update({name.lower(): cls for name, cls in _CLASSES.items() if cls is not Accuracy})


def serialize(spec: str | Metric) -> str | dict[str, Any]:
    """A JSON-serialisable form of a metric as given to ``compile`` (names stay names)."""
    if isinstance(spec, str):
        return spec
    return {"class_name": type(spec).__name__, "config": spec.get_config()}


def deserialize(spec: str | dict[str, Any]) -> str | Metric:
    """Inverse of :func:`serialize`; only layerkit's metric classes are accepted."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict) and spec.get("class_name") in _CLASSES:
        config = spec.get("config") or {}
        cls = _CLASSES[spec["class_name"]]
        if not isinstance(config, dict) or not set(config) <= _init_args(cls):
            raise ValueError(f"Invalid metric config. Received: {spec!r:.200}")
        return cls(**config)
    raise ValueError(f"Unknown metric config. Received: {spec!r:.200}")


def _init_args(cls: type[Metric]) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self"}
