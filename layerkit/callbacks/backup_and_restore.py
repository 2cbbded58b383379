"""BackupAndRestore: resume an interrupted ``fit`` where its last backup left it."""

from __future__ import annotations

import contextlib
import os
import warnings

from ..distributed import barrier, is_chief
from .base import Callback
from .save_frequency import BatchCounter


class BackupAndRestore(Callback):
    """Backs up the full training state at the end of every epoch (or every
    ``save_freq`` batches); when ``fit`` starts and a backup exists, restores it and
    continues from where it was taken.

    The backup holds the weights, the optimizer state (with a learning rate a callback
    changed), and the training position: the shuffling generator, and for a backup taken
    mid-epoch the epoch's progress, so a run killed and started again ends with the same
    weights as one that was never interrupted, to the bit. A backup is refused, changing
    nothing, if the model's architecture changed since it was written.

    Args:
        backup_dir: the folder for the backup (created if needed).
        save_freq: ``"epoch"``, or back up every this many batches (counted across
            epochs, as Keras); ``False`` to never back up (only restore).
        double_checkpoint: keep the previous backup too (``backup.prev.h5``), and
            restore from it when the latest cannot be read. (Every save is atomic, so
            a crash never damages the latest; this guards against other damage.)
        delete_checkpoint: remove the backup(s) when training finishes normally.

    In a distributed ``fit`` (``distribute=lk.distributed.MPI()``), rank 0 alone reads
    and writes the backup (so ``backup_dir`` need only exist on its machine); ``fit``
    then gives every rank rank 0's restored state, and the other ranks wait at a barrier
    while it saves. A resumed distributed run ends as an uninterrupted one.

    Example:
        >>> model.fit(x, y, epochs=20, callbacks=[BackupAndRestore("backup", save_freq=100)])
    """

    def __init__(
        self,
        backup_dir: str | os.PathLike,
        save_freq: str | int | bool = "epoch",
        double_checkpoint: bool = False,
        delete_checkpoint: bool = True,
    ) -> None:
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty backup_dir argument passed.")
        self.backup_dir = os.fsdecode(backup_dir)
        self.save_freq = save_freq
        self._counter = BatchCounter(save_freq, "BackupAndRestore", allow_false=True)
        if self._counter.every is not None:
            # A per-batch hook only when needed: it makes fit build batch logs each step.
            self.on_train_batch_end = self._on_train_batch_end
        self.double_checkpoint = bool(double_checkpoint)
        self.delete_checkpoint = delete_checkpoint
        self.path = os.path.join(self.backup_dir, "backup.h5")
        self.previous_path = os.path.join(self.backup_dir, "backup.prev.h5")
        self._completed = False
        self._latest_damaged = False

    def on_train_begin(self, logs=None):
        from ..io.checkpoint import restore_training_state

        self._completed = False
        self._counter.reset()
        if not is_chief(self.model):
            return  # fit broadcasts what rank 0 restores
        os.makedirs(self.backup_dir, exist_ok=True)
        path = self._readable_backup()
        if path is not None:
            position = restore_training_state(self.model, path)
            in_epoch = position.get("epoch_in_progress")
            if in_epoch is not None:  # a mid-epoch backup: continue inside that epoch
                self.model._resume_from_epoch = in_epoch["epoch"]
                self.model._resume_in_epoch = in_epoch
            else:  # continue after the last epoch the backup completed
                self.model._resume_from_epoch = int(position.get("last_epoch", -1)) + 1

    def _readable_backup(self) -> str | None:
        """The latest backup, or with ``double_checkpoint`` the previous one when the
        latest is damaged; None when there is none. Raises FormatError when every backup
        there is damaged (as without ``double_checkpoint``): starting afresh silently
        would throw the run away."""
        from ..io.checkpoint import read_snapshot
        from ..io.stored import FormatError

        self._latest_damaged = False
        if not self.double_checkpoint:
            return self.path if os.path.exists(self.path) else None
        error = None
        for path in (self.path, self.previous_path):
            if os.path.exists(path):
                try:
                    read_snapshot(path)
                except FormatError as damage:
                    warnings.warn(f"Skipping a damaged backup: {damage}", stacklevel=3)
                    self._latest_damaged = self._latest_damaged or path == self.path
                    error = damage
                    continue
                return path
        if error is not None:
            raise error
        return None

    def _on_train_batch_end(self, batch, logs=None):
        if self._counter.due():
            self._backup()

    def on_epoch_end(self, epoch, logs=None):
        if self._counter.per_epoch:
            self._backup()

    def _backup(self) -> None:
        self.model._sync_epoch_progress()  # every rank: a collective when distributed
        if is_chief(self.model):
            # Never rotate a damaged latest over the good previous one.
            if self.double_checkpoint and os.path.exists(self.path) and not self._latest_damaged:
                os.replace(self.path, self.previous_path)
            self._latest_damaged = False
            self.model.save(self.path)
        barrier(self.model)

    def on_train_end(self, logs=None):
        # Only reached when fit ends normally: an exception or a kill keeps the backup.
        if self.delete_checkpoint and is_chief(self.model):
            for path in (self.path, self.previous_path):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
