"""ModelCheckpoint: save the model (atomically) at the end of epochs."""

from __future__ import annotations

import os

from ..distributed import barrier, is_chief
from .base import Callback
from .monitor import initial_best, is_improvement, read_monitor, resolve_mode


class ModelCheckpoint(Callback):
    """Saves the model or its weights after each epoch, or only when it improves.

    Args:
        filepath: where to save; may hold ``{epoch}`` (1-based) and logged values, e.g.
            ``"ckpt-{epoch:02d}-{val_loss:.3f}.h5"``.
        monitor: the quantity that decides "best" when ``save_best_only``.
        verbose: print a line for each save.
        save_best_only: save only when ``monitor`` improves.
        save_weights_only: ``model.save_weights`` instead of ``model.save``.
        mode: ``"auto"``, ``"min"`` or ``"max"``.

    Every save is atomic: a crash leaves the previous file intact. In a distributed
    ``fit`` (``distribute=lk.distributed.MPI()``) every rank decides alike, rank 0 alone
    writes, and the others wait for it at a barrier.

    Example:
        >>> checkpoint = ModelCheckpoint("best.h5", monitor="val_accuracy", save_best_only=True)
        >>> model.fit(x, y, validation_split=0.1, epochs=10, callbacks=[checkpoint])
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
    ) -> None:
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor, self.verbose = monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode = resolve_mode(monitor, mode)
        self.best = initial_best(self.mode)
        self.last_saved: str | None = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            current = read_monitor(logs, self.monitor, "ModelCheckpoint")
            if current is None or not is_improvement(current, self.best, self.mode):
                return
            self.best = current
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"Cannot format ModelCheckpoint filepath {self.filepath!r} with epoch and "
                f"logs {sorted(logs)}: {error!r}"
            ) from None
        if is_chief(self.model):
            if self.save_weights_only:
                self.model.save_weights(path)
            else:
                self.model.save(path)
            if self.verbose:
                self._say(f"Epoch {epoch + 1}: saved model to {path}")
        self.last_saved = path
        barrier(self.model)  # no rank runs ahead of a file still being written
