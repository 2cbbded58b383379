"""Adagrad: per-weight steps scaled by the accumulated squared gradients."""

from __future__ import annotations

import numpy as np

from ..validation import check_number
from . import kernels
from .base import Optimizer


class Adagrad(Optimizer):
    """Keras 3's Adagrad: ``acc += g^2`` (starting at ``initial_accumulator_value``),
    ``w -= lr g / sqrt(acc + eps)``."""

    slot_names = ("accumulator",)

    def __init__(
        self,
        learning_rate=None,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        **kwargs,
    ) -> None:
        self.initial_accumulator_value = check_number(
            initial_accumulator_value, "initial_accumulator_value", minimum=0.0
        )
        self.epsilon = check_number(epsilon, "epsilon", minimum=0.0)
        super().__init__(learning_rate, **kwargs)

    def slot_initial_value(self, slot):
        return self.initial_accumulator_value

    def update_step(self, value, grad, slots, lr):
        (acc,) = slots
        kernel = kernels.get("adagrad", value.dtype, value.size)
        if kernel is not None:
            f = value.dtype.type
            kernel(value, grad, acc, f(lr), f(self.epsilon))
            return
        work = self._work(value.size, value.dtype)
        np.multiply(grad, grad, out=work)
        acc += work
        np.add(acc, self.epsilon, out=work)
        np.sqrt(work, out=work)
        np.divide(grad, work, out=work)
        work *= lr
        value -= work

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }
