"""Arrays that are not in memory (an ``h5py.Dataset``, a ``np.memmap``, anything with
``shape``, ``dtype`` and row slicing), read batch by batch.

``fit`` reads them window by window: a window is a range of positions in the epoch's
order (tens of MiB of rows); its rows are sorted, read as contiguous runs (whole chunks
when shuffling), cast to the float type, checked, and put back in the epoch's order.
While the steps of one window run, a thread reads the next. With ``shuffle=True`` the
order is *chunk-shuffled*: the blocks of rows (the file's chunks) come in a random
order and the rows are shuffled within a window of blocks, so reading stays sequential
within a block. ``shuffle="batch"`` (Keras) keeps the batches in order and shuffles the
rows inside each, and gives the same batches as in-memory arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from .. import backend
from ..validation import check_finite

WINDOW_BYTES = 32 << 20  # rows read at a time (per window), all arrays together
_BLOCK_BYTES = 1 << 20  # block of a file without chunks, for chunk-shuffling


def is_array_like(value: Any) -> bool:
    """An array to read in slices rather than load: a ``np.memmap``, or a non-numpy
    object with a numpy ``dtype``, a ``shape`` with a batch axis and ``__getitem__``."""
    if isinstance(value, (DiskArray, np.memmap)):
        return True
    if isinstance(value, np.ndarray):
        return False
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    return (
        isinstance(dtype, np.dtype)
        and isinstance(shape, tuple)
        and len(shape) >= 1
        and hasattr(value, "__getitem__")
    )


def any_on_disk(arrays: list) -> bool:
    return any(isinstance(a, DiskArray) for a in arrays if a is not None)


class DiskArray:
    """A validated view of rows ``[start, stop)`` of an array-like: reading a slice
    returns the rows as a checked C-contiguous array (``check`` casts and validates:
    the float type and no NaN for inputs, the loss's checks for targets).

    Nothing is read when it is made: the dtype and shape are checked from the metadata.
    """

    def __init__(
        self,
        source: Any,
        argument: str,
        check: Callable[[np.ndarray], np.ndarray],
        start: int = 0,
        stop: int | None = None,
        one_dimensional: bool = False,
    ) -> None:
        self.source, self.argument, self.check = source, argument, check
        self.start = start
        self.stop = int(source.shape[0]) if stop is None else stop
        self.one_dimensional = one_dimensional
        tail = (1,) if one_dimensional else tuple(int(d) for d in source.shape[1:])
        self.shape = (self.stop - self.start, *tail)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(backend.floatx()) if source.dtype.kind in "biuf" else source.dtype
        self.itemsize = self.dtype.itemsize
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * max(
            self.itemsize, source.dtype.itemsize
        )
        chunks = getattr(source, "chunks", None)
        self.block_rows = (
            int(chunks[0]) if chunks else max(1, _BLOCK_BYTES // max(self.row_bytes, 1))
        )

    @classmethod
    def inputs(cls, value: Any, argument: str, input_shape: tuple | None) -> DiskArray:
        """An input array-like, checked against the model's ``input_shape`` (or None)."""
        if isinstance(value, DiskArray):
            return value
        shape, dtype = tuple(value.shape), value.dtype
        if dtype.kind not in "biuf":
            raise TypeError(
                f"Expected numeric data for {argument} (ints, floats or bools). "
                f"Received: {argument} of dtype {dtype}"
            )
        if not shape or shape[0] == 0 or 0 in shape:
            raise ValueError(f"Expected a non-empty {argument}. Received: {argument}.shape={shape}")
        one_dimensional = len(shape) == 1
        features = (1,) if one_dimensional else shape[1:]
        if input_shape is not None and features != tuple(input_shape[1:]):
            raise ValueError(
                f"Invalid {argument}: expected samples of shape {tuple(input_shape[1:])}, "
                f"received {features} ({argument}.shape={shape})."
            )

        def check(array: np.ndarray) -> np.ndarray:
            array = np.ascontiguousarray(array, dtype=backend.floatx())
            check_finite(array, argument)
            return array

        return cls(value, argument, check, one_dimensional=one_dimensional)

    @classmethod
    def targets(cls, value: Any, argument: str, loss, output_shape: tuple) -> DiskArray:
        """A target array-like, checked by ``loss`` (the first rows now, each window
        when read)."""
        if isinstance(value, DiskArray):
            return value
        shape = tuple(value.shape)
        if not shape or shape[0] == 0:
            raise ValueError(f"Expected a non-empty {argument}. Received: {argument}.shape={shape}")
        checked = loss.check_targets(np.asarray(value[0:1]), output_shape, argument)
        target = cls(value, argument, lambda a: loss.check_targets(a, output_shape, argument))
        # The loss may add or drop a trailing axis (sparse labels): use its shape.
        target.shape = (target.shape[0], *checked.shape[1:])
        target.ndim, target.dtype = len(target.shape), checked.dtype
        target.itemsize = checked.dtype.itemsize
        return target

    def __len__(self) -> int:
        return self.shape[0]

    def view(self, lo: int, hi: int) -> DiskArray:
        """Rows ``lo:hi`` of this view, without reading them."""
        lo, hi = max(0, lo), min(len(self), hi)
        view = object.__new__(DiskArray)
        view.__dict__.update(self.__dict__)
        view.start, view.stop = self.start + lo, self.start + max(lo, hi)
        view.shape = (view.stop - view.start, *self.shape[1:])
        return view

    def __getitem__(self, index) -> np.ndarray:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError(f"{self.argument} is read by row ranges. Received: {index!r}")
        lo, hi, _ = index.indices(len(self))
        return self.read_sorted(np.arange(lo, max(lo, hi)))

    def read_sorted(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (increasing, relative to this view), read as contiguous runs."""
        rows = rows + self.start
        raw = np.empty((len(rows), *self.source.shape[1:]), self.source.dtype)
        if len(rows):
            breaks = np.flatnonzero(np.diff(rows) != 1) + 1
            starts = np.concatenate(([0], breaks))
            ends = np.concatenate((breaks, [len(rows)]))
            # h5py reads straight into the buffer; other array-likes through a copy.
            direct = getattr(self.source, "read_direct", None)
            for a, b in zip(starts.tolist(), ends.tolist()):
                first, last = int(rows[a]), int(rows[b - 1]) + 1
                if direct is not None:
                    direct(raw, np.s_[first:last], np.s_[a:b])
                else:
                    raw[a:b] = self.source[first:last]
        if self.one_dimensional:
            raw = raw.reshape(-1, 1)
        try:
            return self.check(raw)
        except ValueError as error:
            if raw.dtype.kind == "f":  # say which row of the file, not of the window
                bad = ~np.isfinite(raw.reshape(len(raw), -1)).all(axis=1)
                if bad.any():
                    row = int(rows[int(np.argmax(bad))])
                    error.add_note(f"(layerkit: row {row} of {self.argument} on disk)")
            raise


def chunk_shuffled_order(rng: np.random.Generator, n: int, block: int, window: int):
    """(a permutation of ``n`` rows, the windows as position ranges): the blocks of
    ``block`` rows in a random order, the rows shuffled within windows of ``window``
    rows (a multiple of ``block``)."""
    blocks = rng.permutation(-(-n // block))
    per_window = max(1, window // block)
    order, windows, pos = [], [], 0
    for first in range(0, len(blocks), per_window):
        rows = np.concatenate(
            [
                np.arange(b * block, min(n, (b + 1) * block))
                for b in blocks[first : first + per_window]
            ]
        )
        order.append(rows[rng.permutation(len(rows))])
        windows.append((pos, pos + len(rows)))
        pos += len(rows)
    return np.concatenate(order), windows


def batch_shuffled_order(rng: np.random.Generator, n: int, batch_size: int) -> np.ndarray:
    """Keras's ``shuffle="batch"``: the batches in order, each one's rows shuffled."""
    return np.concatenate(
        [lo + rng.permutation(min(n, lo + batch_size) - lo) for lo in range(0, n, batch_size)]
    )


def batch_windows(n: int, batch_size: int, row_bytes: int) -> list[tuple[int, int]]:
    """Windows of whole batches, about :data:`WINDOW_BYTES` each."""
    size = max(1, WINDOW_BYTES // max(row_bytes * batch_size, 1)) * batch_size
    return [(lo, min(n, lo + size)) for lo in range(0, n, size)]


class DiskGatherer:
    """The rows of each step, for arrays some of which are :class:`DiskArray`: one
    window in use, the next read by a thread meanwhile (in-memory arrays are taken
    directly)."""

    def __init__(self, targets: list) -> None:
        self.targets = targets
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="layerkit-read")
        self._features: list | None = None
        self._loaded: dict[int, Future] = {}

    def begin_epoch(self, order, windows: list[tuple[int, int]], spans: list[tuple[int, int]]):
        """``spans``: this rank's positions ``[lo, hi)`` of each step, in step order."""
        self._order, self._windows = order, windows
        mine = (
            np.concatenate([np.arange(lo, hi) for lo, hi in spans]) if spans else np.empty(0, int)
        )
        self._mine = mine
        self._step_start = np.concatenate(([0], np.cumsum([hi - lo for lo, hi in spans])))
        # index range of ``mine`` that each window holds
        starts = np.searchsorted(mine, [w[0] for w in windows])
        self._window_of = np.searchsorted(starts, np.arange(len(mine)), side="right") - 1
        self._bounds = [(int(a), int(np.searchsorted(mine, w[1]))) for a, w in zip(starts, windows)]
        self._loaded.clear()

    def _load(self, features: list, k: int) -> list:
        a, b = self._bounds[k]
        positions = self._mine[a:b]
        rows = positions if self._order is None else self._order[positions]
        perm = None
        if self._order is not None:
            perm = np.argsort(rows, kind="stable")
            rows = rows[perm]
        out = []
        for array in (*features, *self.targets):
            if array is None:
                out.append(None)
                continue
            if isinstance(array, DiskArray):
                sorted_values = array.read_sorted(rows)
            else:
                sorted_values = np.take(array, rows, axis=0)
            if perm is None:
                out.append(sorted_values)
            else:
                values = np.empty_like(sorted_values)
                values[perm] = sorted_values
                out.append(values)
        return out

    def _window(self, features: list, k: int) -> list:
        if features is not self._features:  # the frozen cache was recomputed
            self._features = features
            self._loaded.clear()
        if k not in self._loaded:
            self._loaded[k] = self._pool.submit(self._load, features, k)
        for old in [j for j in self._loaded if j < k]:
            del self._loaded[old]
        if k + 1 < len(self._bounds) and k + 1 not in self._loaded:
            self._loaded[k + 1] = self._pool.submit(self._load, features, k + 1)
        return self._loaded[k].result()

    def take(self, features: list, step: int) -> tuple[list, list]:
        lo, hi = int(self._step_start[step]), int(self._step_start[step + 1])
        n_features = len(features)
        if hi == lo:
            empty = [
                None if a is None else np.empty((0, *a.shape[1:]), a.dtype)
                for a in (*features, *self.targets)
            ]
            return empty[:n_features], empty[n_features:]
        first, last = int(self._window_of[lo]), int(self._window_of[hi - 1])
        pieces = []
        for k in range(first, last + 1):
            a, _ = self._bounds[k]
            window = self._window(features, k)
            s, e = max(lo, a) - a, min(hi, self._bounds[k][1]) - a
            pieces.append([None if v is None else v[s:e] for v in window])
        if len(pieces) == 1:
            values = pieces[0]
        else:
            values = [None if parts[0] is None else np.concatenate(parts) for parts in zip(*pieces)]
        return values[:n_features], values[n_features:]

    def close(self) -> None:
        self._loaded.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
