"""Callbacks that change the learning rate: LearningRateScheduler, ReduceLROnPlateau."""

from __future__ import annotations

import math
from collections.abc import Callable

from .base import Callback
from .monitor import initial_best, is_improvement, read_monitor, resolve_mode


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of each epoch to ``schedule(epoch, lr)``."""

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0) -> None:
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.schedule(epoch, float(self.model.optimizer.learning_rate))
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr):
            raise ValueError(
                f"The schedule must return a finite float. Received: {lr!r} at epoch {epoch}"
            )
        self.model.optimizer.learning_rate = float(lr)
        if self.verbose:
            self._say(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by ``factor`` after ``patience`` epochs without
    improvement of ``monitor``, down to ``min_lr``, then waits ``cooldown`` epochs."""

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 < factor < 1.0:
            raise ValueError(f"Expected factor in (0, 1). Received: factor={factor!r}")
        self.monitor, self.factor, self.patience = monitor, float(factor), int(patience)
        self.verbose, self.min_delta = verbose, float(min_delta)
        self.cooldown, self.min_lr = int(cooldown), float(min_lr)
        self.mode = resolve_mode(monitor, mode)
        self.best = initial_best(self.mode)
        self.wait = self.cooldown_counter = 0

    def on_train_begin(self, logs=None):
        self.best = initial_best(self.mode)
        self.wait = self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        current = read_monitor(logs, self.monitor, "ReduceLROnPlateau")
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if is_improvement(current, self.best, self.mode, self.min_delta):
            self.best, self.wait = current, 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            old = float(self.model.optimizer.learning_rate)
            if old > self.min_lr:
                new = max(old * self.factor, self.min_lr)
                self.model.optimizer.learning_rate = new
                if self.verbose:
                    self._say(
                        f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}."
                    )
                self.cooldown_counter, self.wait = self.cooldown, 0
