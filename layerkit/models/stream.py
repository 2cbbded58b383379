"""Batches that come ready-made: a Python generator or iterator of ``(x, y)`` /
``(x, y, sample_weight)`` tuples, or an :class:`~layerkit.utils.PyDataset`.

Keras 3's semantics (``keras/src/trainers/epoch_iterator.py``):

- with ``steps_per_epoch``, an epoch takes that many batches, and the next epoch goes on
  from where the previous one stopped (a generator is not restarted);
- without it, an epoch runs until the iterator is exhausted (a generator object then has
  nothing left for a second epoch; an iterable such as a list is iterated afresh);
- an iterator that runs out before ``steps_per_epoch`` batches stops training with
  Keras's warning. A PyDataset knows its length: asking for more steps than it holds is
  refused before training starts.

Each batch is validated as arrays passed to ``fit`` are (shapes against the model, NaN,
the loss's checks of the targets), and an error names the batch.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..utils.py_dataset import PyDataset
from . import data

_RAN_OUT = (
    "Your input ran out of data; interrupting training. Make sure that your dataset or "
    "generator can generate at least `steps_per_epoch * epochs` batches."
)


def is_stream(x: Any) -> bool:
    """A generator, an iterator or a PyDataset (not arrays, lists or dicts of them)."""
    if isinstance(x, PyDataset):
        return True
    if isinstance(x, (np.ndarray, list, tuple, dict, str, bytes)) or x is None:
        return False
    return hasattr(x, "__next__") or (hasattr(x, "__iter__") and not hasattr(x, "shape"))


class BatchStream:
    """A generator or a PyDataset, standardized batch by batch.

    Args:
        source: the generator, iterator, iterable or PyDataset.
        standardize: ``(batch, where) -> (inputs, targets, sample weights)``, the model's
            checks of one ``(x, y[, sample_weight])`` tuple.
        steps: ``steps_per_epoch`` (or ``steps``), None for Keras's default.
        argument: the argument's name in messages (``x``, ``validation_data``).
    """

    def __init__(
        self,
        source: Any,
        standardize: Callable[[Any, str], tuple],
        steps: int | None,
        argument: str = "x",
    ) -> None:
        self.source, self.standardize, self.argument = source, standardize, argument
        self.dataset = source if isinstance(source, PyDataset) else None
        self.stopped = False  # ran out of data (training stops)
        self.taken = 0  # batches taken in the epoch in progress (or the last one)
        self._peeked: Any = None
        self._iterator: Iterator | None = None
        self._order: list[int] | None = None
        self._position = 0
        if self.dataset is not None:
            length = len(self.dataset)
            if isinstance(length, bool) or not isinstance(length, int) or length < 1:
                raise ValueError(
                    f"Expected a PyDataset with at least one batch for {argument}. "
                    f"Received: len({argument})={length!r}"
                )
            if self.dataset.use_multiprocessing:
                raise NotImplementedError(
                    "PyDataset(use_multiprocessing=True) is not supported: layerkit prefetches "
                    "with threads. Pass use_multiprocessing=False and workers=N."
                )
            if steps is not None and steps > length:
                raise ValueError(
                    f"{argument} is a PyDataset of {length} batches, fewer than the steps "
                    f"asked for. Received: steps={steps}; expected at most {length}."
                )
            self.length = length
            self.steps = length if steps is None else steps
        else:
            self.length, self.steps = None, steps
            self._fixed_steps = steps

    # --- the first batch (to build the model) -----------------------------------------
    def peek(self) -> Any:
        """The first batch as given (the model is built from it); it is also the first
        batch of the first epoch."""
        if self.dataset is not None:
            return self.dataset[0]
        if self._peeked is None:
            self._iterator = iter(self.source)
            try:
                self._peeked = next(self._iterator)
            except StopIteration:
                raise ValueError(
                    f"The generator passed as {self.argument} yielded no batch."
                ) from None
        return self._peeked

    # --- the batches of an epoch -----------------------------------------------------
    def batches(
        self, rng: np.random.Generator, shuffle, first_step: int, strategy=None
    ) -> Iterator[tuple]:
        """``(None, inputs, targets, weights, this rank's rows, batch rows)`` per step.
        A PyDataset's batches come in a shuffled order if ``shuffle`` (drawn from
        ``rng``, so a resumed epoch draws the same); a generator's as they come."""
        if self.dataset is not None:
            if self._order is None or self._position + self.steps > self.length:
                order = list(range(self.length))
                if shuffle:
                    order = rng.permutation(self.length).tolist()
                self._order, self._position = order, 0
            indices = self._order[self._position + first_step : self._position + self.steps]
            self._position += self.steps
            raw = self._dataset_batches(indices, first_step)
        else:
            raw = self._generator_batches(first_step)
        self.taken = 0
        return self._standardized(raw, first_step, strategy)

    def _dataset_batches(self, indices: list[int], first_step: int) -> Iterator:
        dataset = self.dataset
        workers = int(dataset.workers or 1)
        try:
            if workers <= 1:
                for step, index in enumerate(indices, first_step):
                    yield self._call(lambda i=index: dataset[i], step)
                return
            # Threads fetch up to max_queue_size batches ahead; results come in order.
            ahead = max(1, int(dataset.max_queue_size or 1))
            with ThreadPoolExecutor(workers, thread_name_prefix="layerkit-pydataset") as pool:
                pending: deque = deque()
                todo = iter(enumerate(indices, first_step))
                for step, index in todo:
                    pending.append((step, pool.submit(dataset.__getitem__, index)))
                    if len(pending) >= ahead:
                        break
                while pending:
                    step, future = pending.popleft()
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending.append((nxt[0], pool.submit(dataset.__getitem__, nxt[1])))
                    yield self._call(future.result, step)
                    # (pending futures are cancelled when the pool shuts down)
        finally:
            dataset.on_epoch_end()  # as Keras, after every epoch

    def _generator_batches(self, first_step: int) -> Iterator:
        if self._iterator is None or (self._fixed_steps is None and self._peeked is None):
            self._iterator = iter(self.source)  # Keras: an iterable restarts each epoch
        iterator = self._iterator
        step = 0
        # A resumed epoch (BackupAndRestore) skips the batches already trained on: a
        # restarted generator yields them again.
        while step < first_step:
            if self._take(iterator, step) is None:
                return
            step += 1
        while self._fixed_steps is None or step < self._fixed_steps:
            batch = self._take(iterator, step)
            if batch is None:
                if self._fixed_steps is not None or step == 0:
                    warnings.warn(_RAN_OUT, UserWarning, stacklevel=2)
                    self.stopped = True
                else:
                    self.steps = step  # the epoch's length, known now (progress bar)
                return
            yield batch
            step += 1

    def _take(self, iterator: Iterator, step: int) -> Any:
        if self._peeked is not None:
            batch, self._peeked = self._peeked, None
            return batch
        try:
            return self._call(lambda: next(iterator), step)
        except StopIteration:
            return None

    def _call(self, fetch: Callable[[], Any], step: int) -> Any:
        try:
            return fetch()
        except StopIteration:
            raise
        except Exception as error:
            kind = "PyDataset" if self.dataset is not None else "generator"
            error.add_note(
                f"(layerkit: raised by the {kind} passed as {self.argument} for step "
                f"{step + 1}; the model holds the weights after step {step}.)"
            )
            raise

    def _standardized(self, raw: Iterator, first_step: int, strategy) -> Iterator[tuple]:
        try:
            for step, batch in enumerate(raw, first_step):
                self.taken += 1
                xs, ys, ws = self.standardize(batch, f"batch {step} of {self.argument}")
                batch_rows = data.rows(xs)
                if strategy is None:
                    yield None, xs, ys, ws, batch_rows, batch_rows
                    continue
                first, stop = strategy.shard(batch_rows)  # this rank's share
                xs, ys = data.split_rows(xs, first, stop), data.split_rows(ys, first, stop)
                if ws is not None:
                    ws = data.split_rows(ws, first, stop)
                yield None, xs, ys, ws, stop - first, batch_rows
        finally:
            raw.close()


def unpack(batch: Any, where: str, need_targets: bool = True) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` of a batch tuple ``(x,)``, ``(x, y)`` or ``(x, y, w)``
    (Keras's ``unpack_x_y_sample_weight``)."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        if need_targets:
            raise ValueError(
                f"Invalid {where}: expected a tuple (x, y) or (x, y, sample_weight). "
                f"Received: {type(batch).__name__}"
            )
        return batch, None, None
    if not 1 <= len(batch) <= 3:
        raise ValueError(
            f"Invalid {where}: expected a tuple (x, y) or (x, y, sample_weight). "
            f"Received: a tuple of {len(batch)} elements"
        )
    x, y, w = (*batch, None, None)[:3]
    if need_targets and y is None:
        raise ValueError(f"Invalid {where}: expected targets, (x, y). Received: (x,) only")
    return x, y, w
