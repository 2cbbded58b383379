"""One epoch of ``fit``: the batches in (shuffled) order, the step on each, the running
logs (summed over MPI ranks), the progress bar and the batch callbacks, and a mid-epoch
resume from a backup."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
from tqdm.auto import tqdm

from ..callbacks.simple import TerminateOnNaN
from ..random import rng_state
from . import data
from .resume import EpochProgress
from .strategy import Strategy


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
        n = data.rows(x)
        # The generator's state before this epoch's permutation: a mid-epoch backup
        # stores it, so that the resumed epoch draws the same order again.
        epoch_rng = rng_state(self._shuffle_rng)
        order = self._shuffle_rng.permutation(n) if shuffle else None
        objectives = self._objectives
        objectives.reset()
        total_loss, seen = 0.0, 0
        steps = math.ceil(n / batch_size)
        first_step = 0
        resume, self._resume_in_epoch = self._resume_in_epoch, None
        if resume is not None and resume["epoch"] == epoch:
            # BackupAndRestore: continue after the backed-up step (unless initial_epoch
            # moved the run past the backed-up epoch).
            self._check_resume(resume)
            first_step = resume["steps_done"]
            total_loss, seen = resume["loss_total"], resume["seen"]
            for metric, (metric_total, count) in zip(self._metrics, resume["metrics"]):
                metric._total, metric._count = metric_total, count
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
        # The sample weights ride with the targets: gathered in the same pass.
        n_targets = len(y)
        batches = data.BatchGatherer(y if weights is None else [*y, *weights])
        logs: dict[str, float] = {}
        try:
            for step in range(first_step, steps):
                if wants_batch:  # first: a callback may change what the cache depends on
                    callback_list.on_train_batch_begin(step, {})
                sources, features = cache.training_inputs()
                lo, hi = step * batch_size, min(n, (step + 1) * batch_size)
                batch_rows = hi - lo
                if strategy is not None:  # this rank's share of the global batch
                    first, last = strategy.shard(batch_rows)
                    lo, hi = lo + first, lo + last
                rows = hi - lo
                xb, yb = batches.take(features, order, lo, hi)
                wb = None
                if weights is not None:
                    yb, wb = yb[:n_targets], yb[n_targets:]
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
            bar.close()
        return logs

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
        local = [(m._total, m._count) for m in states]
        sums = strategy.sum(
            np.array([total_loss, seen, *(v for pair in local for v in pair)], np.float64)
        )
        logs = {"loss": float(sums[0]) / max(float(sums[1]), 1.0)}
        for i, (name, metric) in enumerate(zip(names, states)):
            # Counts are floats: a weighted metric counts the sum of the weights.
            metric._total, metric._count = float(sums[2 + 2 * i]), float(sums[3 + 2 * i])
            logs[name] = metric.result()
            if not keep:
                metric._total, metric._count = local[i]
        return logs
