"""One epoch of ``fit``: the batches in (shuffled) order, the step on each, the running
logs (summed over MPI ranks), the progress bar and the batch callbacks, and a mid-epoch
resume from a backup."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator

import numpy as np
from tqdm.auto import tqdm

from ..callbacks.simple import TerminateOnNaN
from ..random import rng_state
from . import data, disk
from .compiled import metric_states, set_metric_states
from .resume import EpochProgress
from .strategy import Strategy
from .stream import BatchStream


class EpochMixin:
    """The epoch loop of :class:`~layerkit.models.trainer.Trainer`."""

    def _train_epoch(
        self,
        x,
        y,
        batch_size,
        shuffle,
        cache,
        callback_list,
        verbose,
        epoch,
        epochs,
        strategy: Strategy | None = None,
        weights: list | None = None,
    ) -> dict[str, float]:
        # The generator's state before this epoch's permutation: a mid-epoch backup
        # stores it, so that the resumed epoch draws the same order again.
        epoch_rng = rng_state(self._shuffle_rng)
        objectives = self._objectives
        objectives.reset()
        total_loss, seen = 0.0, 0
        first_step = 0
        resume, self._resume_in_epoch = self._resume_in_epoch, None
        if resume is not None and resume["epoch"] == epoch:
            # BackupAndRestore: continue after the backed-up step (unless initial_epoch
            # moved the run past the backed-up epoch).
            self._check_resume(resume)
            first_step = resume["steps_done"]
            total_loss, seen = resume["loss_total"], resume["seen"]
            set_metric_states(self._metrics, resume["metrics"])
        if isinstance(x, BatchStream):  # a generator or a PyDataset
            steps = x.steps
            produce = x.batches(self._shuffle_rng, shuffle, first_step, strategy)
        else:
            n = data.rows(x)
            steps = math.ceil(n / batch_size)
            produce = self._array_batches(
                x, y, weights, batch_size, shuffle, cache, first_step, steps, strategy
            )
        progress = self._epoch_progress = EpochProgress(epoch, epoch_rng, first_step)
        progress.loss_total, progress.seen = total_loss, seen
        progress.learning_rate = self._epoch_start_learning_rate
        chief = strategy is None or strategy.is_chief
        bar = tqdm(
            total=steps,
            initial=first_step,
            desc=f"Epoch {epoch + 1}/{epochs}",
            unit="step",
            disable=verbose != 1 or not chief,
            leave=True,
            dynamic_ncols=True,
        )
        last_postfix = time.monotonic()
        wants_batch = callback_list.wants_batch_hooks
        # Distributed without batch callbacks, the running figures exist only per rank:
        # the bar shows the summed ones at the end of the epoch rather than reduce them
        # at every step (ranks must make the same collective calls; timers differ).
        live_postfix = verbose == 1 and (strategy is None or wants_batch)
        logs: dict[str, float] = {}
        try:
            step = first_step - 1
            while steps is None or step + 1 < steps:
                step += 1
                if wants_batch:  # first: a callback may change what the cache depends on
                    callback_list.on_train_batch_begin(step, {})
                batch = next(produce, None)
                if batch is None:  # a generator ran out (BatchStream warned)
                    break
                sources, xb, yb, wb, rows, batch_rows = batch
                if strategy is None:
                    value, per_output, out = self._step(sources, xb, yb, weights=wb)
                else:
                    value = 0.0
                    if rows:
                        value, per_output, out = self._step(
                            sources, xb, yb, update=False, scale=rows / batch_rows, weights=wb
                        )
                    self._reduce_and_apply(strategy, sources, rows)
                total_loss += value * rows
                seen += rows
                if rows and objectives.states:
                    objectives.update(yb, out, per_output, rows, wb)
                progress.steps_done, progress.loss_total, progress.seen = (
                    step + 1,
                    total_loss,
                    seen,
                )
                if not math.isfinite(value) and not self._nan_warned and chief:
                    self._nan_warned = True
                    advice = (
                        ""
                        if callback_list.has(TerminateOnNaN)
                        else " Add lk.callbacks.TerminateOnNaN() to stop training when it does."
                    )
                    warnings.warn(
                        f"The loss became {value} at epoch {epoch + 1}, step {step + 1}." + advice,
                        RuntimeWarning,
                        stacklevel=4,
                    )
                bar.update(1)
                if wants_batch or (live_postfix and time.monotonic() - last_postfix > 0.25):
                    logs = self._logs(total_loss, seen, strategy)
                    if wants_batch:
                        callback_list.on_train_batch_end(step, logs)
                        if strategy is not None:
                            self.stop_training = strategy.any(self.stop_training)
                    if live_postfix and chief:
                        bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=False)
                        last_postfix = time.monotonic()
                if self.stop_training:
                    break
            logs = self._logs(total_loss, seen, strategy, keep=True)
            if verbose == 1:
                bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=False)
        finally:
            self._epoch_progress = None
            produce.close()
            bar.close()
        return logs

    def _array_batches(
        self, x, y, weights, batch_size, shuffle, cache, first_step, steps, strategy
    ) -> Iterator[tuple]:
        """The batches of arrays (in memory or on disk) from step ``first_step`` on:
        ``(slots, inputs, targets, sample weights, this rank's rows, batch rows)``.
        The epoch's order is drawn now (from the model's shuffling generator), even if
        no step is left to run, so the next epochs draw the same orders."""
        n = data.rows(x)
        rng = self._shuffle_rng
        # The sample weights ride with the targets: gathered in the same pass.
        targets = y if weights is None else [*y, *weights]
        if cache.on_disk or disk.any_on_disk(x) or disk.any_on_disk(targets):
            order, windows = self._disk_order(x, targets, n, batch_size, shuffle)
            batches = gatherer = disk.DiskGatherer(targets)
            spans = []
            for step in range(steps):
                lo, hi = step * batch_size, min(n, (step + 1) * batch_size)
                if strategy is not None:
                    first, last = strategy.shard(hi - lo)
                    lo, hi = lo + first, lo + last
                spans.append((lo, hi))
            batches.begin_epoch(order, windows, spans)
        else:
            batches = None
            gatherer = data.BatchGatherer(targets)
            if shuffle == "batch":
                order = disk.batch_shuffled_order(rng, n, batch_size)
            else:
                order = rng.permutation(n) if shuffle else None
        return self._gather_batches(
            x, weights, batch_size, cache, first_step, steps, strategy, order, batches, gatherer
        )

    def _gather_batches(
        self, x, weights, batch_size, cache, first_step, steps, strategy, order, batches, gatherer
    ) -> Iterator[tuple]:
        n, n_targets = data.rows(x), len(gatherer.targets)
        if weights is not None:
            n_targets -= len(weights)
        try:
            for step in range(first_step, steps):
                sources, features = cache.training_inputs()
                lo, hi = step * batch_size, min(n, (step + 1) * batch_size)
                batch_rows = hi - lo
                if strategy is not None:  # this rank's share of the global batch
                    first, last = strategy.shard(batch_rows)
                    lo, hi = lo + first, lo + last
                if batches is None:
                    xb, yb = gatherer.take(features, order, lo, hi)
                else:
                    try:
                        xb, yb = batches.take(features, step)
                    except Exception as error:
                        error.add_note(
                            f"(layerkit: while reading the rows of step {step + 1} from disk; "
                            f"the model holds the weights after step {step}.)"
                        )
                        raise
                wb = None
                if weights is not None:
                    yb, wb = yb[:n_targets], yb[n_targets:]
                yield sources, xb, yb, wb, hi - lo, batch_rows
        finally:
            if batches is not None:
                batches.close()

    def _disk_order(self, x, targets, n, batch_size, shuffle):
        """The epoch's order and reading windows for arrays on disk (see
        :mod:`layerkit.models.disk`). The order depends on where the data is, not the
        frozen-output cache: data in memory keeps its order with a cache on disk, so
        the numbers are those of the in-memory cache (its reads are then scattered)."""
        on_disk = [a for a in (*x, *targets) if isinstance(a, disk.DiskArray)]
        row_bytes = sum(a.row_bytes for a in on_disk) or 1
        rng = self._shuffle_rng
        if shuffle is True and not on_disk:
            return rng.permutation(n), disk.batch_windows(
                n, batch_size, 4 * int(np.prod(x[0].shape[1:]))
            )
        if shuffle is True:
            block = on_disk[0].block_rows if on_disk else 1024
            window = max(1, disk.WINDOW_BYTES // (row_bytes * block)) * block
            return disk.chunk_shuffled_order(rng, n, block, window)
        order = disk.batch_shuffled_order(rng, n, batch_size) if shuffle == "batch" else None
        return order, disk.batch_windows(n, batch_size, row_bytes)

    def _logs(
        self,
        total_loss: float,
        seen: int,
        strategy: Strategy | None = None,
        keep: bool = False,
    ) -> dict[str, float]:
        """The mean loss and the metrics so far; with ``strategy``, of all ranks together:
        one Allreduce of (loss x rows, rows, each metric's total and count). ``keep``
        leaves the summed totals in the metrics (at the end of an epoch)."""
        states = self._metrics
        names = self.metrics_names[1:]
        if strategy is None:
            logs = {"loss": total_loss / max(seen, 1)}
            for name, metric in zip(names, states):
                logs[name] = metric.result()
            return logs
        local = metric_states(states)
        sums = strategy.sum(
            np.array([total_loss, seen, *(v for s in local for v in s)], np.float64)
        )
        logs = {"loss": float(sums[0]) / max(float(sums[1]), 1.0)}
        offset = 2
        for name, metric, mine in zip(names, states, local):
            set_metric_states([metric], [sums[offset : offset + len(mine)]])
            offset += len(mine)
            logs[name] = metric.result()
            if not keep:
                set_metric_states([metric], [mine])
        return logs
