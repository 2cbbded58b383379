"""Adamax: Adam with the infinity norm in place of the root mean square."""

from __future__ import annotations

import numpy as np

from ..validation import check_number
from . import kernels
from .base import Optimizer


class Adamax(Optimizer):
    """Keras 3's Adamax (Kingma and Ba, 2014, section 7.1). At step ``t`` (1 for the first
    update):

    ``m = beta_1 m + (1 - beta_1) g``; ``u = max(beta_2 u, |g|)``;
    ``w -= lr m / ((u + eps)(1 - beta_1^t))``.

    The slots are Keras's ``momentum`` (``m``) and ``norm`` (``u``). The arithmetic follows
    Keras's PyTorch-backend kernel (``torch_adamax.py``) in the weights' dtype, except that
    PyTorch fuses ``m += (1 - beta_1) g`` into one rounding (an FMA) where numpy rounds
    the product first: about one float32 ulp now and then (2 ulp of the largest weight
    after 6 steps), for an update at plain numpy speed.

    Args:
        learning_rate: a float or a ``lk.optim.schedules`` schedule.
        beta_1: decay rate of the first moment, in [0, 1).
        beta_2: decay rate of the infinity norm, in [0, 1] (1 keeps the largest |g| seen).
        epsilon: added to ``u``, >= 0.
        **kwargs: the base options (clipping, name).
    """

    slot_names = ("momentum", "norm")

    def __init__(
        self,
        learning_rate=0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **kwargs,
    ) -> None:
        self.beta_1 = check_number(
            beta_1, "beta_1", minimum=0.0, maximum=1.0, exclusive_maximum=True
        )
        self.beta_2 = check_number(beta_2, "beta_2", minimum=0.0, maximum=1.0)
        self.epsilon = check_number(epsilon, "epsilon", minimum=0.0)
        super().__init__(learning_rate, **kwargs)

    def update_step(self, value, grad, slots, lr):
        m, u = slots
        dtype = value.dtype
        f = dtype.type
        t = self.iterations + 1
        kernel = kernels.get("adamax", dtype, value.size)
        if kernel is not None:
            kernel(
                value,
                grad,
                m,
                u,
                f(lr),
                f(self.beta_1),
                f(1.0 - self.beta_1),
                f(self.beta_2),
                f(self.epsilon),
                f(1.0) - f(self.beta_1) ** f(t),
            )
            return
        work, work2 = self._work(value.size, dtype, 0), self._work(value.size, dtype, 1)

        m *= f(self.beta_1)
        np.multiply(grad, f(1.0 - self.beta_1), out=work)
        m += work
        u *= f(self.beta_2)
        np.abs(grad, out=work)
        np.maximum(u, work, out=u)

        np.multiply(m, f(lr), out=work)
        np.add(u, f(self.epsilon), out=work2)
        work2 *= f(1.0) - f(self.beta_1) ** f(t)
        work /= work2
        value -= work

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }
