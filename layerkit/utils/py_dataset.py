"""``PyDataset``: Keras 3's base class for a dataset of batches computed in Python."""

from __future__ import annotations

from typing import Any


class PyDataset:
    """A dataset that computes its batches on demand (Keras 3's ``keras.utils.PyDataset``).

    Subclass it, call ``super().__init__(**kwargs)``, and implement ``__len__`` (the
    number of batches) and ``__getitem__(index)`` (batch ``index`` as ``(x, y)`` or
    ``(x, y, sample_weight)``); ``on_epoch_end`` runs after every epoch.

    Args:
        workers: threads that compute batches ahead of the training step (1: none,
            the batch is computed when the step needs it).
        use_multiprocessing: processes instead of threads; not supported by layerkit
            (``fit`` raises NotImplementedError).
        max_queue_size: batches computed ahead at most, with ``workers > 1``.

    Example:
        >>> class Batches(lk.utils.PyDataset):
        ...     def __init__(self, x, y, batch_size, **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.x, self.y, self.batch_size = x, y, batch_size
        ...     def __len__(self):
        ...         return -(-len(self.x) // self.batch_size)
        ...     def __getitem__(self, i):
        ...         rows = slice(i * self.batch_size, (i + 1) * self.batch_size)
        ...         return self.x[rows], self.y[rows]
        >>> model.fit(Batches(x, y, 64, workers=2), epochs=3)
    """

    def __init__(
        self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10
    ) -> None:
        for name, value in (("workers", workers), ("max_queue_size", max_queue_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Expected {name} >= 1. Received: {name}={value!r}")
        self._workers = workers
        self._use_multiprocessing = bool(use_multiprocessing)
        self._max_queue_size = max_queue_size

    # A subclass that forgot super().__init__() still works, with Keras's defaults.
    @property
    def workers(self) -> int:
        return getattr(self, "_workers", 1)

    @workers.setter
    def workers(self, value: int) -> None:
        self._workers = value

    @property
    def use_multiprocessing(self) -> bool:
        return getattr(self, "_use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value: bool) -> None:
        self._use_multiprocessing = value

    @property
    def max_queue_size(self) -> int:
        return getattr(self, "_max_queue_size", 10)

    @max_queue_size.setter
    def max_queue_size(self, value: int) -> None:
        self._max_queue_size = value

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__.")

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__.")

    def on_epoch_end(self) -> None:
        """Called after every epoch (shuffle or refresh the data here)."""

    @property
    def num_batches(self) -> int:
        return len(self)
