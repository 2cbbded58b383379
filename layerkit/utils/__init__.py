"""Utilities: PyDataset, seeding, one-hot encoding, session reset, plots, model diagrams."""

from __future__ import annotations

import numpy as np

from ..random import set_random_seed
from ..validation import check_integer
from .model_diagram import model_to_dot, plot_model
from .plotting import plot_history
from .py_dataset import PyDataset

__all__ = [
    "PyDataset",
    "clear_session",
    "model_to_dot",
    "plot_history",
    "plot_model",
    "set_random_seed",
    "to_categorical",
]


def to_categorical(y, num_classes: int | None = None, dtype: str = "float32") -> np.ndarray:
    """One-hot encodes integer class labels: ``[1, 0] -> [[0, 1], [1, 0]]``.

    Args:
        y: integer labels of any shape (a trailing axis of 1 is dropped, as in Keras);
            floats holding whole numbers (``[0.0, 1.0]``) are accepted, as in Keras.
        num_classes: number of classes (an int or numpy integer); ``max(y) + 1`` when omitted.
        dtype: the result's dtype.

    Raises:
        ValueError: labels that are not whole numbers, negative labels, or labels not
            below ``num_classes``; the message shows an offending value.
        TypeError: labels that are not numbers, or a ``num_classes`` that is not an integer.
    """
    labels = np.asarray(y)
    if labels.dtype.kind not in "iuf":
        raise TypeError(f"Expected integer class labels in y. Received: y of dtype {labels.dtype}")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            raise ValueError("Expected integer class labels in y. Received NaN or infinity.")
        fractional = labels != np.round(labels)
        if fractional.any():
            raise ValueError(
                "Expected integer class labels in y: whole numbers such as 0, 1, 2 "
                f"(or 0.0, 1.0...). Received: {float(labels[fractional].flat[0]):g} "
                f"({int(np.count_nonzero(fractional))} of {labels.size} labels not whole)."
            )
    labels = labels.astype(np.int64)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.size and labels.min() < 0:
        raise ValueError(f"Expected non-negative labels in y. Received a label {labels.min()}.")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    else:
        num_classes = check_integer(num_classes, "num_classes", minimum=1)
        if labels.size and labels.max() >= num_classes:
            raise ValueError(
                f"Expected labels below num_classes={num_classes}. Received a label {labels.max()}."
            )
    out = np.zeros((*labels.shape, num_classes), dtype=dtype)
    np.put_along_axis(out, labels[..., None], 1, axis=-1)
    return out


def clear_session() -> None:
    """Restarts automatic layer naming (``dense``, ``dense_1``...), as Keras's does."""
    from ..layers.base import reset_names

    reset_names()
