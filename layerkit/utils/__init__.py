"""Utilities: seeding, one-hot encoding, session reset, training plots."""

from __future__ import annotations

import numpy as np

from ..random import set_random_seed
from .plotting import plot_history

__all__ = ["clear_session", "plot_history", "set_random_seed", "to_categorical"]


def to_categorical(y, num_classes: int | None = None, dtype: str = "float32") -> np.ndarray:
    """One-hot encodes integer class labels: ``[1, 0] -> [[0, 1], [1, 0]]``.

    Args:
        y: integer labels of any shape (a trailing axis of 1 is dropped, as in Keras).
        num_classes: number of classes; ``max(y) + 1`` when omitted.
        dtype: the result's dtype.
    """
    labels = np.asarray(y)
    if labels.dtype.kind not in "iuf" or (
        labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels))
    ):
        raise ValueError(f"Expected integer class labels. Received: y of dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.size and labels.min() < 0:
        raise ValueError(f"Expected non-negative labels. Received a label {labels.min()}.")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    elif labels.size and labels.max() >= num_classes:
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
