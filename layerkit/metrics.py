"""Metrics: stateful running averages over the batches of an epoch, as in Keras.

``update_state(y_true, y_pred)`` adds a batch, ``result()`` returns the mean so far and
``reset_state()`` starts again. ``"accuracy"`` is resolved from the loss first, then the
output shape (see :func:`resolve` for the rule and how it differs from Keras 3's).

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
from .validation import check_number, numeric_array, prediction_pair

__all__ = [
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "CosineSimilarity",
    "LogCoshError",
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
    """Base class: a weighted mean of per-sample values."""

    name = "metric"

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        self._total = 0.0
        self._count = 0

    def per_sample_sum(self, y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, int]:
        """Returns the sum of the per-sample values of a batch and how many there are."""
        raise NotImplementedError

    def update_state(self, y_true, y_pred) -> None:
        total, count = self.per_sample_sum(np.asarray(y_true), np.asarray(y_pred))
        self._total += total
        self._count += count

    def result(self) -> float:
        return self._total / self._count if self._count else 0.0

    def reset_state(self) -> None:
        self._total, self._count = 0.0, 0

    def __call__(self, y_true, y_pred) -> float:
        """One-shot value for a batch (does not touch the running state)."""
        total, count = self.per_sample_sum(np.asarray(y_true), np.asarray(y_pred))
        return total / count if count else 0.0

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


class Accuracy(Metric):
    """How often predictions equal the labels exactly."""

    name = "accuracy"

    def per_sample_sum(self, y_true, y_pred):
        return float(np.count_nonzero(y_true.reshape(y_pred.shape) == y_pred)), y_pred.size


class BinaryAccuracy(Metric):
    """How often ``y_pred > threshold`` equals the 0/1 label (threshold 0 for logits)."""

    name = "binary_accuracy"

    def __init__(self, name: str | None = None, threshold: float = 0.5) -> None:
        super().__init__(name)
        self.threshold = check_number(threshold, "threshold")

    def per_sample_sum(self, y_true, y_pred):
        hits = _binary_hits(y_true.reshape(y_pred.shape), y_pred, self.threshold)
        return float(np.count_nonzero(hits)), hits.size

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}


class CategoricalAccuracy(Metric):
    """How often the arg-max of the prediction equals the arg-max of the one-hot label."""

    name = "categorical_accuracy"

    def per_sample_sum(self, y_true, y_pred):
        hits = _categorical_hits(y_true, y_pred)
        return float(np.count_nonzero(hits)), hits.size


class SparseCategoricalAccuracy(Metric):
    """How often the arg-max of the prediction equals the integer label."""

    name = "sparse_categorical_accuracy"

    def per_sample_sum(self, y_true, y_pred):
        hits = _sparse_categorical_hits(y_true.reshape(y_pred.shape[:-1]), y_pred)
        return float(np.count_nonzero(hits)), hits.size


class MeanSquaredError(Metric):
    name = "mean_squared_error"

    def per_sample_sum(self, y_true, y_pred):
        diff = y_pred - y_true.reshape(y_pred.shape)
        per_sample = np.square(diff).reshape(len(diff), -1).mean(axis=1)
        return float(per_sample.sum()), len(per_sample)


class MeanAbsoluteError(Metric):
    name = "mean_absolute_error"

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

    def __call__(self, y_true, y_pred) -> float:
        return float(np.sqrt(super().__call__(y_true, y_pred)))


class MeanAbsolutePercentageError(Metric):
    """``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7))`` per sample, averaged."""

    name = "mean_absolute_percentage_error"

    def per_sample_sum(self, y_true, y_pred):
        y_true, y_pred = _pair64(y_true, y_pred)
        diff = np.abs(y_true - y_pred) / np.maximum(np.abs(y_true), _EPSILON)
        return _row_means(100.0 * diff)


class MeanSquaredLogarithmicError(Metric):
    """``mean((log(max(y_pred, 1e-7) + 1) - log(max(y_true, 1e-7) + 1))**2)`` per sample."""

    name = "mean_squared_logarithmic_error"

    def per_sample_sum(self, y_true, y_pred):
        y_true, y_pred = _pair64(y_true, y_pred)
        diff = np.log1p(np.maximum(y_pred, _EPSILON)) - np.log1p(np.maximum(y_true, _EPSILON))
        return _row_means(np.square(diff))


class LogCoshError(Metric):
    """``mean(log(cosh(y_pred - y_true)))`` per sample, computed as
    ``x + softplus(-2x) - log(2)`` so large errors do not overflow."""

    name = "logcosh"

    def per_sample_sum(self, y_true, y_pred):
        y_true, y_pred = _pair64(y_true, y_pred)
        x = y_pred - y_true
        return _row_means(x + np.logaddexp(0.0, -2.0 * x) - np.log(2.0))


class CosineSimilarity(Metric):
    """``sum(y_true / ||y_true|| * y_pred / ||y_pred||)`` along ``axis``, averaged over the
    rest; each norm is clipped below at 1e-7, as Keras's ``normalize``."""

    name = "cosine_similarity"

    def __init__(self, name: str | None = None, axis: int = -1) -> None:
        super().__init__(name)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"Expected an integer axis. Received: axis={axis!r}")
        self.axis = int(axis)

    def per_sample_sum(self, y_true, y_pred):
        y_true, y_pred = _pair64(y_true, y_pred)

        def unit(v):
            norm = np.sqrt(np.sum(np.square(v), axis=self.axis, keepdims=True))
            return v / np.maximum(norm, _EPSILON)

        return _row_means(np.sum(unit(y_true) * unit(y_pred), axis=self.axis))

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

    def per_sample_sum(self, y_true, y_pred):
        hits = _in_top_k(y_true.argmax(axis=-1), y_pred, self.k)
        return float(np.count_nonzero(hits)), hits.size

    def get_config(self):
        return {"name": self.name, "k": self.k}


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    """How often the integer label is among the ``k`` top predictions."""

    name = "sparse_top_k_categorical_accuracy"

    def per_sample_sum(self, y_true, y_pred):
        hits = _in_top_k(y_true.reshape(y_pred.shape[:-1]), y_pred, self.k)
        return float(np.count_nonzero(hits)), hits.size


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

    def get_config(self):
        return {"name": self.name, "thresholds": self.thresholds}


class Recall(Precision):
    """``true positives / actual positives``, with the thresholding of :class:`Precision`;
    the running state is (true positives, actual positives)."""

    name = "recall"

    def per_sample_sum(self, y_true, y_pred):
        label, predicted = self._positives(y_true, y_pred)
        return float(np.count_nonzero(label & predicted)), int(np.count_nonzero(label))


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
