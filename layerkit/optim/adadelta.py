"""Adadelta: steps scaled by the ratio of running RMS of updates and of gradients."""

from __future__ import annotations

import numpy as np

from ..validation import check_number
from . import kernels
from .base import Optimizer


class Adadelta(Optimizer):
    """Keras 3's Adadelta, with ``rms(a) = sqrt(a + eps)``:

    ``Eg = rho Eg + (1 - rho) g^2``; ``d = -rms(Ed) g / rms(Eg)``;
    ``Ed = rho Ed + (1 - rho) d^2``; ``w += lr d``.
    """

    slot_names = ("accumulated_grad", "accumulated_delta_var")
    default_learning_rate = 0.001

    def __init__(
        self, learning_rate=None, rho: float = 0.95, epsilon: float = 1e-7, **kwargs
    ) -> None:
        self.rho = check_number(rho, "rho", minimum=0.0, maximum=1.0, exclusive_maximum=True)
        self.epsilon = check_number(epsilon, "epsilon", minimum=0.0)
        super().__init__(learning_rate, **kwargs)

    def update_step(self, value, grad, slots, lr):
        acc_grad, acc_delta = slots
        rho, eps = self.rho, self.epsilon
        kernel = kernels.get("adadelta", value.dtype, value.size)
        if kernel is not None:
            f = value.dtype.type
            kernel(value, grad, acc_grad, acc_delta, f(lr), f(rho), f(1.0 - rho), f(eps))
            return
        work = self._work(value.size, value.dtype)
        delta = self._work(value.size, value.dtype, 1)
        np.multiply(grad, grad, out=work)
        work *= 1.0 - rho
        acc_grad *= rho
        acc_grad += work
        # delta = -sqrt(Ed + eps) * g / sqrt(Eg + eps)
        np.add(acc_delta, eps, out=delta)
        np.add(acc_grad, eps, out=work)
        np.divide(delta, work, out=delta)
        np.sqrt(delta, out=delta)
        delta *= grad
        np.negative(delta, out=delta)
        np.multiply(delta, delta, out=work)
        work *= 1.0 - rho
        acc_delta *= rho
        acc_delta += work
        delta *= lr
        value += delta

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
