"""BackupAndRestore: resume an interrupted ``fit`` from its last completed epoch."""

from __future__ import annotations

import contextlib
import os

from ..distributed import barrier, is_chief
from .base import Callback


class BackupAndRestore(Callback):
    """Backs up the full training state at the end of every epoch; when ``fit`` starts
    and a backup exists, restores it and continues after the last completed epoch.

    The backup holds the weights, the optimizer state and the training position
    (including the shuffling generator), so a run killed and started again ends with the
    same weights as one that was never interrupted.

    Args:
        backup_dir: the folder for the backup (created if needed).
        delete_checkpoint: remove the backup when training finishes normally.

    In a distributed ``fit`` (``distribute=lk.distributed.MPI()``), rank 0 alone reads
    and writes the backup (so ``backup_dir`` need only exist on its machine); ``fit``
    then gives every rank rank 0's restored state, and the other ranks wait at a barrier
    while it saves. A resumed distributed run ends as an uninterrupted one.

    Example:
        >>> model.fit(x, y, epochs=20, callbacks=[BackupAndRestore("backup")])
    """

    def __init__(self, backup_dir: str | os.PathLike, delete_checkpoint: bool = True) -> None:
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty backup_dir argument passed.")
        self.backup_dir = os.fspath(backup_dir)
        self.delete_checkpoint = delete_checkpoint
        self.path = os.path.join(self.backup_dir, "backup.h5")
        self._completed = False

    def on_train_begin(self, logs=None):
        from ..io.checkpoint import restore_training_state

        self._completed = False
        if not is_chief(self.model):
            return  # fit broadcasts what rank 0 restores
        os.makedirs(self.backup_dir, exist_ok=True)
        if os.path.exists(self.path):
            position = restore_training_state(self.model, self.path)
            # fit continues after the last epoch the backup completed.
            self.model._resume_from_epoch = int(position.get("last_epoch", -1)) + 1

    def on_epoch_end(self, epoch, logs=None):
        if is_chief(self.model):
            self.model.save(self.path)
        barrier(self.model)

    def on_train_end(self, logs=None):
        # Only reached when fit ends normally: an exception or a kill keeps the backup.
        if self.delete_checkpoint and is_chief(self.model):
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)
