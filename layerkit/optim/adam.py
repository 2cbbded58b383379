"""Adam: bias-corrected running means of the gradient and of its square."""

from __future__ import annotations

import math

import numpy as np

from ..validation import check_flag
from . import kernels
from .base import Optimizer, check_moments


class Adam(Optimizer):
    """Keras 3's Adam. At step ``t`` (1 for the first update):

    ``alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)``;
    ``m += (g - m)(1 - beta_1)``; ``v += (g^2 - v)(1 - beta_2)``;
    ``w -= alpha m / (sqrt(v) + eps)`` (eps outside the root, as Keras).

    With ``amsgrad=True`` (Reddi et al., 2018), a third slot ``velocity_hat`` keeps the
    running maximum of ``v`` (uncorrected, as Keras): ``v_hat = max(v_hat, v)``, and
    ``v_hat`` replaces ``v`` in the step.

    Internally the moments are kept as ``m / (1 - beta_1)`` and ``v / (1 - beta_2)`` (and
    ``v_hat / (1 - beta_2)``, the scale commutes with the maximum), which turns each moment
    update into ``s = beta s + g`` and saves passes over the weights (the update is
    memory-bound); ``state_dict()`` holds that stored form, ``slots()`` reports Keras's.
    """

    slot_names = ("momentum", "velocity")

    def __init__(
        self,
        learning_rate=None,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **kwargs,
    ) -> None:
        self.beta_1, self.beta_2, self.epsilon = check_moments(beta_1, beta_2, epsilon)
        self.amsgrad = check_flag(amsgrad, "amsgrad")
        if self.amsgrad:
            self.slot_names = ("momentum", "velocity", "velocity_hat")
        super().__init__(learning_rate, **kwargs)

    def keras_slot_groups(self):
        return (("momentum", "velocity"),) + ((("velocity_hat",),) if self.amsgrad else ())

    def slot_scale(self, slot):
        return 1.0 - (self.beta_1 if slot == "momentum" else self.beta_2)

    def update_step(self, value, grad, slots, lr):
        m, v = slots[0], slots[1]  # scaled moments, see the class docstring
        b1, b2 = self.beta_1, self.beta_2
        t = self.iterations + 1
        root = math.sqrt(1.0 - b2)
        alpha = lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t) * (1.0 - b1) / root
        kernel = kernels.get("adam", value.dtype, value.size)
        if kernel is not None:
            f = value.dtype.type
            kernel(
                value,
                grad,
                m,
                v,
                slots[2] if self.amsgrad else v,
                f(b1),
                f(b2),
                f(self.epsilon / root),
                f(1.0 / alpha) if alpha else f(0.0),
                self.amsgrad,
                alpha != 0.0,
            )
            return
        m *= b1
        m += grad
        np.multiply(grad, grad, out=grad)  # the gradient buffer doubles as scratch space
        v *= b2
        v += grad
        if self.amsgrad:
            v = np.maximum(slots[2], v, out=slots[2])
        if alpha == 0.0:
            return
        np.sqrt(v, out=grad)
        grad += self.epsilon / root
        grad *= 1.0 / alpha
        np.divide(m, grad, out=grad)
        value -= grad

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }
