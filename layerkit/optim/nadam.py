"""Nadam: Adam with Nesterov momentum and Dozat's momentum schedule."""

from __future__ import annotations

import numpy as np

from .. import backend
from . import kernels
from .base import Optimizer, check_moments


class Nadam(Optimizer):
    """Keras 3's Nadam. At step ``t`` (1 for the first update), with the momentum schedule
    ``u_t = beta_1 (1 - 0.5 * 0.96^t)`` and its running product ``U_t = u_1 u_2 ... u_t``:

    ``m = beta_1 m + (1 - beta_1) g``; ``v = beta_2 v + (1 - beta_2) g^2``;
    ``m_hat = u_{t+1} m / (1 - U_t u_{t+1}) + (1 - u_t) g / (1 - U_t)``;
    ``v_hat = v / (1 - beta_2^t)``; ``w -= lr m_hat / (sqrt(v_hat) + eps)``.

    Keras keeps ``U_t`` as a variable of the weights' dtype, multiplied once per step.
    Here it is a function of ``iterations``: the last value is cached, and recomputed from
    step 1 with the same float arithmetic when ``iterations`` jumps (a loaded state dict),
    so a resumed run gives the same bits as an uninterrupted one. The arithmetic, scalars
    included, follows Keras's PyTorch-backend kernel (``torch_nadam.py``) in the weights'
    dtype. Two roundings differ: PyTorch fuses the moment updates ``m += (1 - beta_1) g``
    into one rounding (an FMA) where numpy rounds the product first, and PyTorch's
    float32 ``sqrt`` on the CPU is not always correctly rounded (numpy's is): now and then
    a weight ends a step a unit in the last place away from Keras's, and the difference
    carries into later steps (a few ulp of the largest weight after 6 steps).

    Args:
        learning_rate: a float or a ``lk.optim.schedules`` schedule.
        beta_1: decay rate of the first moment, in [0, 1).
        beta_2: decay rate of the second moment, in [0, 1).
        epsilon: added to ``sqrt(v_hat)``, >= 0.
        **kwargs: the base options (clipping, name).
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
        self._u_cache: dict[tuple, tuple[int, np.floating]] = {}

    # --- the momentum schedule -------------------------------------------------------
    def _u(self, step: int, dtype: np.dtype) -> np.floating:
        """``u_step`` as Keras: ``beta_1 * (1 - 0.5 * 0.96 ** step)`` in ``dtype``."""
        decay = dtype.type(0.96) ** dtype.type(step)
        return dtype.type(self.beta_1) * (dtype.type(1.0) - dtype.type(0.5) * decay)

    def _u_product_at(self, step: int, dtype: np.dtype) -> np.floating:
        """``U_step = u_1 ... u_step`` in ``dtype``, by the same multiplications in the same
        order whether advanced from the cached step or recomputed from step 1."""
        key = (dtype.str, self.beta_1)
        cached_step, product = self._u_cache.get(key, (0, dtype.type(1.0)))
        if cached_step > step:
            cached_step, product = 0, dtype.type(1.0)
        limit = dtype.type(self.beta_1)
        while cached_step < step:
            cached_step += 1
            u = self._u(cached_step, dtype)
            following = product * u
            if following == product and u == limit:
                # 0.96^t no longer shows in u_t, and the product (0 or a subnormal that
                # rounds back to itself) is a fixed point of multiplying by it: later steps
                # change nothing, so a resume at step 10**6 need not loop 10**6 times.
                cached_step = step
            product = following
        self._u_cache[key] = (step, product)
        return product

    def u_product(self, dtype=None) -> np.floating:
        """The momentum cache ``U_t`` after ``iterations`` steps (Keras's ``_u_product``),
        in ``dtype`` (the default float type unless given)."""
        return self._u_product_at(self.iterations, np.dtype(dtype or backend.floatx()))

    def keras_extra_variables(self, parameters):
        dtype = parameters[0].dtype if parameters else np.dtype(backend.floatx())
        return [np.asarray(self._u_product_at(self.iterations, np.dtype(dtype)))]

    # --- the update ------------------------------------------------------------------
    def update_step(self, value, grad, slots, lr):
        m, v = slots
        dtype = value.dtype
        f = dtype.type
        t = self.iterations + 1
        beta_1, beta_2 = f(self.beta_1), f(self.beta_2)
        u_t, u_next = self._u(t, dtype), self._u(t + 1, dtype)
        u_product = self._u_product_at(t, dtype)
        u_product_next = u_product * u_next
        kernel = kernels.get("nadam", dtype, value.size)
        if kernel is not None:
            kernel(
                value,
                grad,
                m,
                v,
                f(lr),
                beta_1,
                f(1.0 - self.beta_1),
                beta_2,
                f(1.0 - self.beta_2),
                u_next,
                f(1.0) - u_product_next,
                f(1.0) - u_t,
                f(1.0) - u_product,
                f(1.0) - beta_2 ** f(t),
                f(self.epsilon),
            )
            return
        work, work2 = self._work(value.size, dtype, 0), self._work(value.size, dtype, 1)

        m *= beta_1
        np.multiply(grad, f(1.0 - self.beta_1), out=work)
        m += work
        v *= beta_2
        np.multiply(grad, grad, out=work)
        work *= f(1.0 - self.beta_2)
        v += work

        np.multiply(m, u_next, out=work)
        work /= f(1.0) - u_product_next
        np.multiply(grad, f(1.0) - u_t, out=work2)
        work2 /= f(1.0) - u_product
        work += work2  # m_hat
        work *= f(lr)
        np.divide(v, f(1.0) - beta_2 ** f(t), out=work2)  # v_hat
        np.sqrt(work2, out=work2)
        work2 += f(self.epsilon)
        work /= work2
        value -= work

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }
