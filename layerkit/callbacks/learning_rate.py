"""Callbacks that change the learning rate: LearningRateScheduler, ReduceLROnPlateau."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from numbers import Real

import numpy as np

from .base import Callback
from .monitor import initial_best, is_improvement, read_monitor, resolve_mode


def _refuse_optimizer_schedule(callback: Callback) -> None:
    """Raises TypeError when the optimizer's learning rate comes from a schedule: the
    callback would otherwise replace that schedule (Keras refuses to set such a rate)."""
    optimizer = callback.model.optimizer
    schedule = getattr(optimizer, "schedule", None)
    if schedule is not None:
        name = type(callback).__name__
        raise TypeError(
            f"{name} cannot change the learning rate: the optimizer "
            f"{type(optimizer).__name__} was created with a LearningRateSchedule "
            f"({type(schedule).__name__}, config {schedule.get_config()!r}); its learning "
            f"rate is not settable. Give the optimizer a float learning_rate to use {name}, "
            "or remove the callback and keep the schedule"
        )


def _as_rate(value) -> float | None:
    """``value`` as a float when it is a real number (Python or numpy scalar, 0-d array);
    None for anything else (bools, strings, arrays with elements, complex numbers)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        return None
    return float(value)


def _takes_current_rate(schedule: Callable) -> bool | None:
    """True for ``schedule(epoch, lr)``, False for ``schedule(epoch)``, None when the
    signature cannot be read or accepts neither."""
    try:
        signature = inspect.signature(schedule)
    except (TypeError, ValueError):
        return None
    for arguments, answer in (((0, 0.0), True), ((0,), False)):
        try:
            signature.bind(*arguments)
        except TypeError:
            continue
        return answer
    return None


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of each epoch to ``schedule(epoch, lr)``, or to
    ``schedule(epoch)`` when the schedule takes one argument (as Keras 3).

    Args:
        schedule: a function of the epoch index (from 0) and the current learning rate,
            or of the epoch index alone, returning the new rate: a finite real number
            (Python or numpy scalar).
        verbose: 1 to print each rate set.

    Raises:
        TypeError: at the start of training, when the optimizer was created with a
            learning-rate schedule (``lk.optim.schedules``), which this callback would
            replace.
    """

    def __init__(
        self, schedule: Callable[[int, float], float] | Callable[[int], float], verbose: int = 0
    ) -> None:
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_train_begin(self, logs=None):
        _refuse_optimizer_schedule(self)

    def _call_schedule(self, epoch: int, lr: float):
        takes_rate = _takes_current_rate(self.schedule)
        if takes_rate is None:
            # Keras 3's own rule, for callables whose signature cannot be read.
            try:
                return self.schedule(epoch, lr)
            except TypeError:
                return self.schedule(epoch)
        return self.schedule(epoch, lr) if takes_rate else self.schedule(epoch)

    def on_epoch_begin(self, epoch, logs=None):
        value = self._call_schedule(epoch, float(self.model.optimizer.learning_rate))
        lr = _as_rate(value)
        if lr is None or not math.isfinite(lr):
            raise ValueError(
                f"The schedule must return a finite float. Received: {value!r} at epoch {epoch}"
            )
        self.model.optimizer.learning_rate = lr
        if self.verbose:
            self._say(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by ``factor`` after ``patience`` epochs without
    improvement of ``monitor``, down to ``min_lr``, then waits ``cooldown`` epochs.

    Raises:
        TypeError: at the start of training, when the optimizer was created with a
            learning-rate schedule (``lk.optim.schedules``), which this callback would
            replace.
    """

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
        _refuse_optimizer_schedule(self)
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
