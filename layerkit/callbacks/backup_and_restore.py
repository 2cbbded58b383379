"""BackupAndRestore: resume an interrupted ``fit`` where its last backup left it."""

from __future__ import annotations

import contextlib
import os

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
        delete_checkpoint: remove the backup when training finishes normally.

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
        delete_checkpoint: bool = True,
    ) -> None:
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty backup_dir argument passed.")
        self.backup_dir = os.fsdecode(backup_dir)
        self.save_freq = save_freq
        self._counter = BatchCounter(save_freq, "BackupAndRestore", allow_false=True)
        self.delete_checkpoint = delete_checkpoint
        self.path = os.path.join(self.backup_dir, "backup.h5")
        self._completed = False

    def on_train_begin(self, logs=None):
        from ..io.checkpoint import restore_training_state

        self._completed = False
        self._counter.reset()
        if not is_chief(self.model):
            return  # fit broadcasts what rank 0 restores
        os.makedirs(self.backup_dir, exist_ok=True)
        if os.path.exists(self.path):
            position = restore_training_state(self.model, self.path)
            in_epoch = position.get("epoch_in_progress")
            if in_epoch is not None:  # a mid-epoch backup: continue inside that epoch
                self.model._resume_from_epoch = in_epoch["epoch"]
                self.model._resume_in_epoch = in_epoch
            else:  # continue after the last epoch the backup completed
                self.model._resume_from_epoch = int(position.get("last_epoch", -1)) + 1

    def on_train_batch_end(self, batch, logs=None):
        if self._counter.due():
            self._backup()

    def on_epoch_end(self, epoch, logs=None):
        if self._counter.per_epoch:
            self._backup()

    def _backup(self) -> None:
        if is_chief(self.model):
            self.model.save(self.path)
        barrier(self.model)

    def on_train_end(self, logs=None):
        # Only reached when fit ends normally: an exception or a kill keeps the backup.
        if self.delete_checkpoint and is_chief(self.model):
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)
