"""Learning-rate schedules: functions of the optimizer's step count (Keras 3 formulas).

Arguments, defaults and ``get_config()`` keys are Keras 3's
(``keras/src/optimizers/schedules/learning_rate_schedule.py``). The maths is done in
float64 where Keras works in float32, so values agree to float32 precision.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from layerkit.validation import check_flag, check_number


def _positive_steps(value: Any, argument: str) -> int | float:
    """A step count > 0; Keras also takes floats here (``decay_steps=1.0``), kept as given."""
    number = check_number(value, argument, minimum=0.0, exclusive_minimum=True)
    return int(value) if isinstance(value, (int, np.integer)) else number


def _check_name(name: Any) -> str | None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"Expected a string or None for name. Received: name={name!r:.100}")
    return name


class LearningRateSchedule:
    """Base class: ``schedule(step)`` returns the learning rate for that step."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `__call__(self, step)`."
        )

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `get_config()` "
            "in order to be serializable."
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        return cls(**config)


class _StepDecay(LearningRateSchedule):
    """The arguments ExponentialDecay and InverseTimeDecay share (Keras's, in its order);
    ``name`` defaults to the class name, as in Keras."""

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str | None = None,
    ) -> None:
        self.initial_learning_rate = check_number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _positive_steps(decay_steps, "decay_steps")
        self.decay_rate = check_number(decay_rate, "decay_rate")
        self.staircase = check_flag(staircase, "staircase")
        self.name = _check_name(type(self).__name__ if name is None else name)

    def _progress(self, step):
        p = step / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class ExponentialDecay(_StepDecay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (floored if staircase).

    Example:
        >>> ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5)(200)
        0.025
    """

    def __call__(self, step):
        return self.initial_learning_rate * self.decay_rate ** self._progress(step)


class InverseTimeDecay(_StepDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (floored if staircase)."""

    def __call__(self, step):
        return self.initial_learning_rate / (1.0 + self.decay_rate * self._progress(step))


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, and ``values[-1]`` after the last.
    """

    def __init__(self, boundaries: list, values: list, name: str | None = "PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                f"values={values} of length {len(values)}."
            )
        for i, b in enumerate(boundaries):
            check_number(b, f"boundaries[{i}]")
        for i, v in enumerate(values):
            check_number(v, f"values[{i}]")
        if any(low >= high for low, high in itertools.pairwise(boundaries)):
            raise ValueError(
                f"Expected strictly increasing boundaries. Received: boundaries={boundaries}"
            )
        self.boundaries = boundaries
        self.values = values
        self.name = _check_name(name)

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return float(value)
        return float(self.values[-1])

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """``(initial - end) * (1 - step / decay_steps) ** power + end``, step capped at decay_steps.

    With ``cycle=True`` the step is not capped; ``decay_steps`` is stretched to the first
    multiple of it that is >= step: ``decay_steps * ceil(step / decay_steps)`` (1 at step 0).
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        end_learning_rate: float = 0.0001,
        power: float = 1.0,
        cycle: bool = False,
        name: str | None = "PolynomialDecay",
    ) -> None:
        self.initial_learning_rate = check_number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _positive_steps(decay_steps, "decay_steps")
        self.end_learning_rate = check_number(end_learning_rate, "end_learning_rate")
        self.power = check_number(power, "power")
        self.cycle = check_flag(cycle, "cycle")
        self.name = _check_name(name)

    def __call__(self, step):
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps = decay_steps * (1.0 if step == 0 else math.ceil(step / decay_steps))
        else:
            step = min(step, decay_steps)
        p = step / decay_steps
        delta = self.initial_learning_rate - self.end_learning_rate
        return delta * (1.0 - p) ** self.power + self.end_learning_rate

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


class CosineDecay(LearningRateSchedule):
    """Optional linear warmup, then cosine decay to ``alpha`` times its starting rate.

    Without ``warmup_target``: ``initial * ((1 - alpha) * c(step) + alpha)`` with
    ``c(s) = 0.5 * (1 + cos(pi * min(s, decay_steps) / decay_steps))``. With it: for
    ``step < warmup_steps`` the rate goes linearly from ``initial_learning_rate`` to
    ``warmup_target``, then ``warmup_target * ((1 - alpha) * c(step - warmup_steps) + alpha)``.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        alpha: float = 0.0,
        name: str | None = "CosineDecay",
        warmup_target: float | None = None,
        warmup_steps: int = 0,
    ) -> None:
        self.initial_learning_rate = check_number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _positive_steps(decay_steps, "decay_steps")
        self.alpha = check_number(alpha, "alpha")
        self.name = _check_name(name)
        if warmup_target is not None:
            warmup_target = check_number(warmup_target, "warmup_target")
        self.warmup_target = warmup_target
        check_number(warmup_steps, "warmup_steps", minimum=0.0)
        self.warmup_steps = warmup_steps

    def _decay(self, step, decay_from):
        cosine = 0.5 * (1.0 + math.cos(math.pi * (step / self.decay_steps)))
        return decay_from * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * (step / self.warmup_steps) + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay (SGDR) that restarts: period ``i`` lasts ``first_decay_steps * t_mul**i``
    steps and starts from ``initial_learning_rate * m_mul**i``; each decays to ``alpha``
    times the initial rate.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        first_decay_steps: int,
        t_mul: float = 2.0,
        m_mul: float = 1.0,
        alpha: float = 0.0,
        name: str | None = "SGDRDecay",
    ) -> None:
        self.initial_learning_rate = check_number(initial_learning_rate, "initial_learning_rate")
        self.first_decay_steps = _positive_steps(first_decay_steps, "first_decay_steps")
        # t_mul <= 0 would take the log of a non-positive number.
        self.t_mul = check_number(t_mul, "t_mul", minimum=0.0, exclusive_minimum=True)
        self.m_mul = check_number(m_mul, "m_mul")
        self.alpha = check_number(alpha, "alpha")
        self.name = _check_name(name)

    def __call__(self, step):
        fraction = step / self.first_decay_steps
        if self.t_mul == 1.0:
            i_restart = math.floor(fraction)
            fraction -= i_restart
        else:
            # Periods sum to (1 - t_mul**i) / (1 - t_mul) first periods: solve for i.
            i_restart = math.floor(
                math.log(1.0 - fraction * (1.0 - self.t_mul)) / math.log(self.t_mul)
            )
            done = (1.0 - self.t_mul**i_restart) / (1.0 - self.t_mul)
            fraction = (fraction - done) / self.t_mul**i_restart
        cosine = 0.5 * self.m_mul**i_restart * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self.t_mul,
            "m_mul": self.m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }


_CLASSES = {
    cls.__name__: cls
    for cls in (
        ExponentialDecay,
        InverseTimeDecay,
        PiecewiseConstantDecay,
        PolynomialDecay,
        CosineDecay,
        CosineDecayRestarts,
    )
}


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """``{"class_name": ..., "config": schedule.get_config()}`` (Keras's two main keys)."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(spec: dict[str, Any]) -> LearningRateSchedule:
    """Inverse of :func:`serialize`; ValueError for an unknown ``class_name``."""
    cls = _CLASSES.get(spec.get("class_name")) if isinstance(spec, dict) else None
    if cls is None:
        raise ValueError(
            f"Unknown learning-rate schedule. Expected one of {sorted(_CLASSES)}. "
            f"Received: {spec!r:.200}"
        )
    return cls.from_config(dict(spec.get("config", {})))
