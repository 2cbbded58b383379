"""Lamb: Adam's direction scaled per weight by a trust ratio (You et al., 2020)."""

from __future__ import annotations

import math

import numpy as np

from .base import Optimizer, _Run, check_moments


class Lamb(Optimizer):
    """Keras 3's Lamb. At step ``t`` (1 for the first update):

    ``m += (g - m)(1 - beta_1)``; ``v += (g^2 - v)(1 - beta_2)``;
    ``u = (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + eps)``;
    ``w -= r lr u`` with the trust ratio ``r = ||w|| / ||u||`` of each weight array
    (``r = 1`` where either norm is 0).

    The moments are updated over the whole fused run at once; the norms are taken over
    each parameter's stretch of it.

    Args:
        learning_rate: a float or a ``lk.optim.schedules`` schedule.
        beta_1: decay rate of the first moment, in [0, 1).
        beta_2: decay rate of the second moment, in [0, 1).
        epsilon: added to the root of the corrected second moment, >= 0.
        **kwargs: the base options (clipping, weight decay, EMA, accumulation, name).
    """

    slot_names = ("momentum", "velocity")

    def __init__(
        self,
        learning_rate=0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **kwargs,
    ) -> None:
        self.beta_1, self.beta_2, self.epsilon = check_moments(beta_1, beta_2, epsilon)
        super().__init__(learning_rate, **kwargs)

    def _update_run(self, run: _Run, lr: float) -> None:
        value, grad = run.value, run.grad
        m, v = run.slots
        f = value.dtype.type
        t = f(self.iterations + 1)
        b1, b2 = f(self.beta_1), f(self.beta_2)
        work = self._work(value.size, value.dtype)
        np.subtract(grad, m, out=work)
        work *= f(1.0 - self.beta_1)
        m += work
        np.multiply(grad, grad, out=grad)  # the gradient buffer doubles as scratch
        grad -= v
        grad *= f(1.0 - self.beta_2)
        v += grad
        np.divide(m, f(1.0) - b1**t, out=work)
        np.divide(v, f(1.0) - b2**t, out=grad)
        np.sqrt(grad, out=grad)
        grad += f(self.epsilon)
        work /= grad  # u
        for start, end in run.spans:
            w, u = value[start:end], work[start:end]
            w_norm, u_norm = math.sqrt(np.dot(w, w)), math.sqrt(np.dot(u, u))
            ratio = f(w_norm) / f(u_norm) if w_norm > 0 and u_norm > 0 else f(1.0)
            u *= ratio * f(lr)
        value -= work

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }
