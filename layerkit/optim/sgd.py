"""Stochastic gradient descent with optional (Nesterov) momentum."""

from __future__ import annotations

import numpy as np

from ..validation import check_flag, check_number
from . import kernels
from .base import Optimizer


class SGD(Optimizer):
    """Keras 3's SGD.

    Without momentum: ``w -= lr * g``. With momentum ``mu`` (velocity ``m``, starting at 0):
    ``m = mu * m - lr * g``, then ``w += m``, or with Nesterov ``w += mu * m - lr * g``.

    Example:
        >>> SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
        SGD(learning_rate=0.1)
    """

    default_learning_rate = 0.01

    def __init__(
        self,
        learning_rate=None,
        momentum: float = 0.0,
        nesterov: bool = False,
        **kwargs,
    ) -> None:
        self.momentum = check_number(momentum, "momentum", minimum=0.0, maximum=1.0)
        self.nesterov = check_flag(nesterov, "nesterov")
        self.slot_names = ("momentum",) if self.momentum else ()
        super().__init__(learning_rate, **kwargs)

    def update_step(self, value, grad, slots, lr):
        f = value.dtype.type
        if not self.momentum:
            kernel = kernels.get("sgd", value.dtype, value.size)
            if kernel is not None:
                kernel(value, grad, f(lr))
                return
        else:
            kernel = kernels.get("sgd_momentum", value.dtype, value.size)
            if kernel is not None:
                kernel(value, grad, slots[0], f(lr), f(self.momentum), self.nesterov)
                return
        # numpy fallback: the same arithmetic, a whole-array operation at a time
        scaled = self._work(value.size, value.dtype)
        np.multiply(grad, lr, out=scaled)
        if not self.momentum:
            value -= scaled
            return
        (m,) = slots
        mu = self.momentum
        m *= mu
        m -= scaled
        if self.nesterov:
            work = self._work(value.size, value.dtype, 1)
            np.multiply(m, mu, out=work)
            work -= scaled
            value += work
        else:
            value += m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
