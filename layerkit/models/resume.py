"""Where training stands, for checkpoints: epochs and steps done, and the epoch in
progress (a checkpoint saved every N batches resumes inside it exactly)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..random import rng_state
from .compiled import metric_states


class EpochProgress:
    """Where the epoch in progress stands (read by ``training_position``)."""

    __slots__ = ("epoch", "learning_rate", "loss_total", "rng", "seen", "steps_done", "totals")

    def __init__(self, epoch: int, rng: dict, steps_done: int) -> None:
        self.epoch, self.rng, self.steps_done = epoch, rng, steps_done
        self.loss_total, self.seen = 0.0, 0
        self.learning_rate = None  # the rate when the epoch began (before its callbacks)
        # (steps done, loss x rows, rows, metric states, every rank's layer states) of all
        # ranks, when last synced (rank 0 holds the gathered layer states)
        self.totals = None


class ResumeMixin:
    """The training position of :class:`~layerkit.models.trainer.Trainer`."""

    def training_position(self) -> dict[str, Any]:
        """Epochs done, optimizer steps, and the shuffling generator's state; during an
        epoch (a checkpoint saved every N batches) also the epoch in progress: its index,
        the steps done and the running loss and metric totals, with the generator's
        state from before the epoch's permutation, so a resumed run continues exactly."""
        progress = self._epoch_progress
        position = {
            "epochs_done": self._epochs_done,
            "last_epoch": self._last_epoch,
            "iterations": self.optimizer.iterations if self.optimizer else 0,
            "shuffle_rng": rng_state(self._shuffle_rng),
        }
        if progress is not None:
            samples, batch_size, shuffle = self._fit_signature
            synced = progress.totals is not None and progress.totals[0] == progress.steps_done
            loss_total, seen, metrics, rank_states = (
                progress.totals[1:]
                if synced
                else (
                    progress.loss_total,
                    progress.seen,
                    metric_states(self._metrics),
                    None,
                )
            )
            rate = progress.learning_rate
            position["epoch_in_progress"] = {
                "epoch": progress.epoch,
                "steps_done": progress.steps_done,
                "samples": samples,
                "batch_size": batch_size,
                "shuffle": shuffle,
                # The generator before the epoch's permutation (the top-level state is
                # after it, so that a plain fit after load_model draws a new order).
                "shuffle_rng": progress.rng,
                "learning_rate": rate if isinstance(rate, float) else None,
                "loss_total": loss_total,
                "seen": seen,
                "metric_names": self.metrics_names[1:],
                "metrics": metrics,
            }
            if rank_states is not None:  # distributed: every rank's random layers
                position["epoch_in_progress"]["rank_layer_states"] = rank_states
        return position

    def _sync_epoch_progress(self) -> None:
        """Before a mid-epoch save, on every rank: sums the running totals of all ranks
        into the epoch's progress, so the backup holds the figures of the whole batch
        (rank 0 resumes with them, the others from zero). A no-op on one process."""
        progress, strategy = self._epoch_progress, self.distribute
        if progress is None or strategy is None:
            return
        local = metric_states(self._metrics)
        sums = strategy.sum(
            np.array([progress.loss_total, progress.seen, *(v for s in local for v in s)])
        )
        summed, offset = [], 2
        for mine in local:
            summed.append([float(v) for v in sums[offset : offset + len(mine)]])
            offset += len(mine)
        progress.totals = (
            progress.steps_done,
            float(sums[0]),
            int(sums[1]),
            summed,
            strategy.gather([layer.training_state() for layer in self._stack]),
        )

    def _check_resume(self, resume: dict[str, Any]) -> None:
        """Refuses to continue a backed-up epoch with other batches or other metrics."""
        samples, batch_size, shuffle = self._fit_signature
        stored = (resume["samples"], resume["batch_size"], resume["shuffle"])
        if stored != (samples, batch_size, shuffle):
            raise ValueError(
                f"Cannot resume inside epoch {resume['epoch'] + 1}: the backup was taken "
                f"with samples, batch_size, shuffle = {stored}, this fit has "
                f"{(samples, batch_size, shuffle)}. Pass the interrupted run's data and "
                "arguments, or delete the backup."
            )
        names = self.metrics_names[1:]
        if resume["metric_names"] != names:
            raise ValueError(
                f"Cannot resume inside epoch {resume['epoch'] + 1}: the backup holds the "
                f"running state of metrics {resume['metric_names']}, the model computes "
                f"{names}. Compile with the interrupted run's metrics, or delete the backup."
            )
