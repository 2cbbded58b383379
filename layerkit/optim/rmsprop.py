"""RMSprop: scale steps by a running root mean square of the gradients."""

from __future__ import annotations

import numpy as np

from ..validation import check_flag, check_number
from . import kernels
from .base import Optimizer


class RMSprop(Optimizer):
    """Keras 3's RMSprop.

    ``v = rho v + (1 - rho) g^2``; with ``centered``, also ``a = rho a + (1 - rho) g`` and
    the denominator is ``v - a^2``. Then ``inc = lr g / sqrt(v + eps)`` (eps inside the
    root, as Keras), and ``w -= inc``, or with momentum ``m = momentum m + inc; w -= m``.
    """

    def __init__(
        self,
        learning_rate=None,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        **kwargs,
    ) -> None:
        self.rho = check_number(rho, "rho", minimum=0.0, maximum=1.0, exclusive_maximum=True)
        self.momentum = check_number(momentum, "momentum", minimum=0.0, maximum=1.0)
        self.epsilon = check_number(epsilon, "epsilon", minimum=0.0)
        self.centered = check_flag(centered, "centered")
        self.slot_names = (
            ("velocity",)
            + (("momentum",) if self.momentum else ())
            + (("average_gradient",) if self.centered else ())
        )
        super().__init__(learning_rate, **kwargs)

    def keras_slot_groups(self):
        return tuple((slot,) for slot in self.slot_names)  # one Keras call per slot

    def update_step(self, value, grad, slots, lr):
        named = dict(zip(self.slot_names, slots))
        v, rho = named["velocity"], self.rho
        kernel = kernels.get("rmsprop", value.dtype, value.size)
        if kernel is not None:
            f = value.dtype.type
            kernel(
                value,
                grad,
                v,
                named.get("momentum", v),  # absent slots: never read, any array will do
                named.get("average_gradient", v),
                f(lr),
                f(rho),
                f(1.0 - rho),
                f(self.epsilon),
                f(self.momentum),
                bool(self.momentum),
                self.centered,
            )
            return
        work = self._work(value.size, value.dtype)
        np.multiply(grad, grad, out=work)
        work *= 1.0 - rho
        v *= rho
        v += work
        if self.centered:
            a = named["average_gradient"]
            a *= rho
            a += (1.0 - rho) * grad
            np.multiply(a, a, out=work)
            np.subtract(v, work, out=work)
            work += self.epsilon
        else:
            np.add(v, self.epsilon, out=work)
        np.sqrt(work, out=work)
        np.divide(grad, work, out=work)
        work *= lr
        if self.momentum:
            m = named["momentum"]
            m *= self.momentum
            m += work
            value -= m
        else:
            value -= work

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }
