"""Lion: the sign of an interpolated momentum (Chen et al., 2023)."""

from __future__ import annotations

import numpy as np

from ..validation import check_number
from . import kernels
from .base import Optimizer


class Lion(Optimizer):
    """Keras 3's Lion. With the gradient ``g`` and the slot ``momentum`` ``m`` (from 0):

    ``c = beta_1 m + (1 - beta_1) g``; ``w -= lr sign(c)``;
    ``m = beta_2 m + (1 - beta_2) g``.

    Every element moves by exactly ``lr`` (or not at all), so a good learning rate is
    3-10x smaller than AdamW's and a good ``weight_decay`` 3-10x larger.

    Args:
        beta_1: weight of the momentum in the update direction, in ``(0, 1]`` (at 0 Lion
            degenerates to SignSGD, refused as in Keras).
        beta_2: decay rate of the momentum, in ``[0, 1]``.
    """

    slot_names = ("momentum",)

    def __init__(
        self,
        learning_rate=None,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        **kwargs,
    ) -> None:
        self.beta_1 = check_number(
            beta_1, "beta_1", minimum=0.0, maximum=1.0, exclusive_minimum=True
        )
        self.beta_2 = check_number(beta_2, "beta_2", minimum=0.0, maximum=1.0)
        super().__init__(learning_rate, **kwargs)

    def update_step(self, value, grad, slots, lr):
        (m,) = slots
        b1, b2 = self.beta_1, self.beta_2
        kernel = kernels.get("lion", value.dtype, value.size)
        if kernel is not None:
            f = value.dtype.type
            kernel(value, grad, m, f(lr), f(b1), f(1.0 - b1), f(b2), f(1.0 - b2))
            return
        step = self._work(value.size, value.dtype)
        mixed = self._work(value.size, value.dtype, 1)
        np.multiply(m, b1, out=step)
        np.multiply(grad, 1.0 - b1, out=mixed)
        step += mixed
        np.sign(step, out=step)
        step *= lr
        value -= step
        m *= b2
        grad *= 1.0 - b2  # the gradient buffer doubles as scratch space, as in Adam
        m += grad

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
