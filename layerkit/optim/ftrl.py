"""Ftrl: Follow The Regularized Leader (McMahan et al., 2013), with L1/L2 and shrinkage."""

from __future__ import annotations

import numpy as np

from ..validation import check_number
from .base import Optimizer


class Ftrl(Optimizer):
    """Keras 3's Ftrl. With the slots ``accumulator`` ``n`` (from
    ``initial_accumulator_value``) and ``linear`` ``z`` (from 0), ``p = learning_rate_power``,
    ``l1``, ``l2`` the regularization strengths and ``l2s`` the shrinkage one:

    ``g' = g + 2 l2s w``; ``n' = n + g^2``;
    ``z += g' - (n'^-p - n^-p) / lr * w``;
    ``w = (clip(z, -l1, l1) - z) / (n'^-p / lr + 2 (l2 + beta / (2 lr)))``; ``n = n'``.

    (``w = 0`` where ``|z| <= l1``: the L1 term makes the weights sparse.)

    Args:
        learning_rate: a float or a ``lk.optim.schedules`` schedule.
        learning_rate_power: ``p`` above, <= 0 (0: a fixed learning rate).
        initial_accumulator_value: the starting value of ``n``, >= 0.
        l1_regularization_strength: ``l1``, >= 0.
        l2_regularization_strength: ``l2``, >= 0 (the stabilisation penalty of the paper).
        l2_shrinkage_regularization_strength: ``l2s``, >= 0 (an L2 penalty on the
            weights' magnitude, added to the gradient).
        beta: the paper's beta, >= 0.
        **kwargs: the base options (clipping, weight decay, EMA, accumulation, name).
    """

    slot_names = ("accumulator", "linear")

    def __init__(
        self,
        learning_rate=0.001,
        learning_rate_power: float = -0.5,
        initial_accumulator_value: float = 0.1,
        l1_regularization_strength: float = 0.0,
        l2_regularization_strength: float = 0.0,
        l2_shrinkage_regularization_strength: float = 0.0,
        beta: float = 0.0,
        **kwargs,
    ) -> None:
        self.learning_rate_power = check_number(
            learning_rate_power, "learning_rate_power", maximum=0.0
        )
        self.initial_accumulator_value = check_number(
            initial_accumulator_value, "initial_accumulator_value", minimum=0.0
        )
        self.l1_regularization_strength, self.l2_regularization_strength = (
            check_number(value, argument, minimum=0.0)
            for argument, value in (
                ("l1_regularization_strength", l1_regularization_strength),
                ("l2_regularization_strength", l2_regularization_strength),
            )
        )
        self.l2_shrinkage_regularization_strength = check_number(
            l2_shrinkage_regularization_strength,
            "l2_shrinkage_regularization_strength",
            minimum=0.0,
        )
        self.beta = check_number(beta, "beta", minimum=0.0)
        super().__init__(learning_rate, **kwargs)

    def slot_initial_value(self, slot):
        return self.initial_accumulator_value if slot == "accumulator" else 0.0

    def update_step(self, value, grad, slots, lr):
        n, z = slots
        f = value.dtype.type
        lr = f(lr)
        power = f(-self.learning_rate_power)
        l1 = f(self.l1_regularization_strength)
        l2 = f(self.l2_regularization_strength) + f(self.beta) / (f(2.0) * lr)
        old = self._work(value.size, value.dtype, 0)
        new = self._work(value.size, value.dtype, 1)
        # n^0.5 (the default power) by sqrt: the same bits as numpy's power, 4x faster
        root = np.sqrt if power == 0.5 else lambda x, out: np.power(x, power, out=out)
        root(n, out=old)
        np.multiply(grad, grad, out=new)
        n += new  # n' (Keras assigns it last; nothing below reads the old n)
        root(n, out=new)
        np.subtract(new, old, out=old)
        old /= lr
        old *= value  # sigma w
        if self.l2_shrinkage_regularization_strength:
            shrink = self._work(value.size, value.dtype, 2)
            np.multiply(value, f(2.0 * self.l2_shrinkage_regularization_strength), out=shrink)
            grad += shrink
        grad -= old
        z += grad
        new /= lr
        new += f(2.0) * l2  # the quadratic term
        np.clip(z, -l1, l1, out=old)
        old -= z
        np.divide(old, new, out=value)

    def get_config(self):
        return {
            **super().get_config(),
            "learning_rate_power": self.learning_rate_power,
            "initial_accumulator_value": self.initial_accumulator_value,
            "l1_regularization_strength": self.l1_regularization_strength,
            "l2_regularization_strength": self.l2_regularization_strength,
            "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
            "beta": self.beta,
        }
