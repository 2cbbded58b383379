"""ModelCheckpoint: save the model (atomically) at the end of epochs or every N batches."""

from __future__ import annotations

import os

from ..distributed import barrier, is_chief
from .base import Callback
from .monitor import initial_best, is_improvement, read_monitor, resolve_mode
from .save_frequency import BatchCounter


class ModelCheckpoint(Callback):
    """Saves the model or its weights after each epoch (or every ``save_freq`` batches),
    or only when it improves.

    Args:
        filepath: where to save; may hold ``{epoch}`` (1-based), ``{batch}`` (1-based,
            with an integer ``save_freq``) and logged values, e.g.
            ``"ckpt/{epoch:02d}-{val_loss:.3f}.keras"``. Missing folders are created.
            The suffix decides the format as in Keras: ``.keras`` a Keras 3 archive,
            ``.weights.h5`` Keras's weights layout (with ``save_weights_only``), other
            names layerkit's HDF5 checkpoint.
        monitor: the quantity that decides "best" when ``save_best_only``.
        verbose: print a line for each save (and, with ``save_best_only``, for each
            epoch that did not improve), as Keras.
        save_best_only: save only when ``monitor`` improves.
        save_weights_only: ``model.save_weights`` instead of ``model.save``.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        save_freq: ``"epoch"``, or save every this many batches (counted across
            epochs, as Keras; ``monitor`` is then read from the batch logs).
        initial_value_threshold: with ``save_best_only``, the value to beat first.

    Every save is atomic: a crash leaves the previous file intact. In a distributed
    ``fit`` (``distribute=lk.distributed.MPI()``) every rank decides alike, rank 0 alone
    writes, and the others wait for it at a barrier.

    Example:
        >>> checkpoint = ModelCheckpoint("best.keras", monitor="val_accuracy", save_best_only=True)
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
        save_freq: str | int = "epoch",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__()
        self.filepath = os.fsdecode(filepath)
        self.monitor, self.verbose = monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode = resolve_mode(monitor, mode)
        self.save_freq = save_freq
        self._counter = BatchCounter(save_freq, "ModelCheckpoint")
        if self._counter.every is not None:
            # A per-batch hook only when needed: it makes fit build batch logs each step.
            self.on_train_batch_end = self._on_train_batch_end
        _check_suffix(self.filepath, save_weights_only)
        self.best = (
            initial_best(self.mode)
            if initial_value_threshold is None
            else float(initial_value_threshold)
        )
        self.last_saved: str | None = None
        self._current_epoch = 0

    def on_train_begin(self, logs=None):
        self._counter.reset()

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def _on_train_batch_end(self, batch, logs=None):
        if self._counter.due():
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self._counter.per_epoch:
            self._save(epoch, None, logs)

    def _save(self, epoch: int, batch: int | None, logs) -> None:
        logs = dict(logs or {})
        path = self._file_path(epoch, batch, logs)
        if self.save_best_only:
            current = read_monitor(logs, self.monitor, "ModelCheckpoint")
            if current is None:
                return
            if not is_improvement(current, self.best, self.mode):
                if self.verbose:
                    self._say(
                        f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}"
                    )
                return
            if self.verbose:
                self._say(
                    f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                    f"{current:.5f}, saving model to {path}"
                )
            self.best = current
        elif self.verbose:
            self._say(f"Epoch {epoch + 1}: saving model to {path}")
        self.model._sync_epoch_progress()  # every rank: a collective when distributed
        if is_chief(self.model):
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)  # as Keras: the folder may not exist yet
            if self.save_weights_only:
                self.model.save_weights(path)
            else:
                self.model.save(path)
        self.last_saved = path
        barrier(self.model)  # no rank runs ahead of a file still being written

    def _file_path(self, epoch: int, batch: int | None, logs: dict) -> str:
        fields = {"epoch": epoch + 1, **logs}
        if batch is not None:
            fields.setdefault("batch", batch + 1)
        try:
            return self.filepath.format(**fields)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"Cannot format ModelCheckpoint filepath {self.filepath!r} with "
                f"{sorted(fields)}: {error!r}"
            ) from None


def _check_suffix(filepath: str, save_weights_only: bool) -> None:
    """Refuses a file name whose Keras meaning contradicts what is saved (Keras does)."""
    if save_weights_only and filepath.endswith(".keras"):
        raise ValueError(
            "With save_weights_only=True the file name cannot end in '.keras' (a whole "
            f"model, in Keras): use '.weights.h5' or '.h5'. Received: filepath={filepath!r}"
        )
    if not save_weights_only and filepath.endswith(".weights.h5"):
        raise ValueError(
            "A file name ending in '.weights.h5' holds weights only: pass "
            "save_weights_only=True, or use '.keras' or '.h5' for the whole model. "
            f"Received: filepath={filepath!r}"
        )
