"""Adam: bias-corrected running means of the gradient and of its square."""

from __future__ import annotations

import math

import numpy as np

from .base import Optimizer


class Adam(Optimizer):
    """Keras 3's Adam. At step ``t`` (1 for the first update):

    ``alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)``;
    ``m += (g - m)(1 - beta_1)``; ``v += (g^2 - v)(1 - beta_2)``;
    ``w -= alpha m / (sqrt(v) + eps)`` (eps outside the root, as Keras).
    """

    slot_names = ("momentum", "velocity")

    def __init__(
        self,
        learning_rate=None,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **kwargs,
    ) -> None:
        for argument, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Expected {argument} in [0, 1). Received: {argument}={beta!r}")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        super().__init__(learning_rate, **kwargs)

    def update_step(self, value, grad, slots, lr):
        m, v = slots
        t = self.iterations + 1
        alpha = lr * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        work = self._work(value.size, value.dtype)
        np.subtract(grad, m, out=work)
        work *= 1.0 - self.beta_1
        m += work
        np.multiply(grad, grad, out=work)
        work -= v
        work *= 1.0 - self.beta_2
        v += work
        if alpha == 0.0:
            return
        np.sqrt(v, out=work)
        work += self.epsilon
        # alpha m / (sqrt v + eps), folding alpha into the denominator: one pass fewer.
        work *= 1.0 / alpha
        np.divide(m, work, out=work)
        value -= work

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}
