"""Adafactor: second moments factored into row and column means (Shazeer and Stern, 2018)."""

from __future__ import annotations

import numpy as np

from ..parameter import Parameter
from ..validation import check_flag, check_number
from .base import Optimizer, _Run


class Adafactor(Optimizer):
    """Keras 3's Adafactor. At step ``t`` (1 for the first update), with
    ``rho = min(lr, 1 / sqrt(t))``, ``alpha = max(epsilon_2, rms(w)) rho``,
    ``beta = 1 - t^beta_2_decay`` and ``G = g^2 + epsilon_1``:

    for a weight of 2 or more dimensions, the last two factored:
    ``R = beta R + (1 - beta) mean(G, axis=-1)``; ``C = beta C + (1 - beta) mean(G, axis=-2)``;
    ``v = (R / mean(R, axis=-1))[..., None] C[..., None, :]``;
    otherwise ``v = beta v + (1 - beta) G``. Then
    ``u = g / sqrt(v)``; ``w -= alpha u / max(1, rms(u) / clip_threshold)``.

    ``R`` (slot ``row_velocity``, shape ``w.shape[:-1]``) and ``C`` (``column_velocity``,
    ``w.shape[:-2] + w.shape[-1:]``) are the only memory that grows with the weight's
    rows plus columns rather than their product; for weights under 2 dimensions they are
    scalars that stay 0, as Keras's placeholders. ``velocity`` is kept for every weight,
    as Keras does.

    ``relative_step`` is kept for Keras's config: in Keras 3 the step size is
    ``min(lr, 1 / sqrt(t))`` whether or not it is set.

    Args:
        learning_rate: a float or a ``lk.optim.schedules`` schedule.
        beta_2_decay: the exponent of the second moment's decay, ``beta = 1 - t^beta_2_decay``.
        epsilon_1: added to the squared gradient, >= 0.
        epsilon_2: the least ``rms(w)`` the step scales by, >= 0.
        clip_threshold: the update's RMS is clipped to it, > 0 (independent of
            ``clipnorm`` and the other gradient clipping options).
        relative_step: Keras's flag, see above.
        **kwargs: the base options (clipping, weight decay, EMA, accumulation, name).
    """

    slot_names = ("velocity",)
    shaped_slot_names = ("row_velocity", "column_velocity")

    def __init__(
        self,
        learning_rate=0.001,
        beta_2_decay: float = -0.8,
        epsilon_1: float = 1e-30,
        epsilon_2: float = 1e-3,
        clip_threshold: float = 1.0,
        relative_step: bool = True,
        **kwargs,
    ) -> None:
        self.beta_2_decay = check_number(beta_2_decay, "beta_2_decay", maximum=0.0)
        self.epsilon_1 = check_number(epsilon_1, "epsilon_1", minimum=0.0)
        self.epsilon_2 = check_number(epsilon_2, "epsilon_2", minimum=0.0)
        self.clip_threshold = check_number(
            clip_threshold, "clip_threshold", minimum=0.0, exclusive_minimum=True
        )
        self.relative_step = check_flag(relative_step, "relative_step")
        super().__init__(learning_rate, **kwargs)

    def keras_slot_groups(self):
        return (("row_velocity", "column_velocity", "velocity"),)  # weight by weight

    def slot_shape(self, slot: str, parameter: Parameter) -> tuple[int, ...]:
        shape = tuple(parameter.shape)
        if len(shape) < 2:
            return ()
        return shape[:-1] if slot == "row_velocity" else shape[:-2] + shape[-1:]

    def _update_run(self, run: _Run, lr: float) -> None:
        # Factoring needs each weight's own shape: one parameter at a time, on its
        # stretch of the run's flat arrays.
        (velocity,) = run.slots
        for p, (start, end) in zip(run.parameters, run.spans):
            row, column = self._shaped[p.name]
            self._update_one(
                run.value[start:end].reshape(p.shape),
                run.grad[start:end].reshape(p.shape),
                velocity[start:end].reshape(p.shape),
                row,
                column,
                lr,
            )

    def _update_one(self, value, grad, v, row, column, lr):
        f = value.dtype.type
        t = f(self.iterations + 1)
        size = value.size
        work = self._work(size, value.dtype).reshape(value.shape)
        rho = min(f(lr), f(1.0) / np.sqrt(t))
        np.multiply(value, value, out=work)
        alpha = max(f(self.epsilon_2), np.sqrt(work.mean(dtype=value.dtype))) * rho
        beta = f(1.0) - t ** f(self.beta_2_decay)
        np.multiply(grad, grad, out=work)
        work += f(self.epsilon_1)  # G
        if value.ndim >= 2:
            # The factored statistics are a row and a column: small, allocated freely.
            row *= beta
            row += (f(1.0) - beta) * work.mean(axis=-1)
            column *= beta
            column += (f(1.0) - beta) * work.mean(axis=-2)
            scaled = row / row.mean(axis=-1, keepdims=True)
            np.multiply(scaled[..., None], column[..., None, :], out=v)
        else:
            v *= beta
            work *= f(1.0) - beta
            v += work
        np.sqrt(v, out=work)
        np.divide(grad, work, out=grad)  # u; the gradient buffer doubles as scratch
        np.multiply(grad, grad, out=work)
        rms = np.sqrt(work.mean(dtype=value.dtype))
        grad /= max(f(1.0), rms / f(self.clip_threshold))
        grad *= alpha
        value -= grad

    def get_config(self):
        return {
            **super().get_config(),
            "beta_2_decay": self.beta_2_decay,
            "epsilon_1": self.epsilon_1,
            "epsilon_2": self.epsilon_2,
            "clip_threshold": self.clip_threshold,
            "relative_step": self.relative_step,
        }
