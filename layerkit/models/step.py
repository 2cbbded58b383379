"""The training step over a model's plan: forward, losses, backward, the optimizer
update; and its distributed half (one Allreduce of the gradients, then the update)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .strategy import Strategy


class StepMixin:
    """The step of :class:`~layerkit.models.trainer.Trainer` (a model's plan and its
    objectives are the model's)."""

    def _train_pass(self, sources: tuple[int, ...] | None = None):
        """The training pass from ``sources`` (the inputs, or the frozen-output cache's
        slots) for the trainable flags of now."""
        return self._get_plan().get_pass(sources, self._objectives.losses)

    def _metric_outputs(self, step, outs: list) -> list:
        """The outputs the metrics read: a fused output's activation applied."""
        plan = self._get_plan()
        wanted = self._objectives.wants_outputs
        return [
            plan.producer[plan.outputs[i]].layer.activation(out)
            if step.fused[i] is not None and i in wanted
            else out
            for i, out in enumerate(outs)
        ]

    def _step(
        self,
        sources,
        arrays,
        ys,
        update: bool = True,
        scale: float | None = None,
        weights: list | None = None,
    ):
        """One training step; returns (loss value, each output's loss, outputs for metrics).
        ``weights``: the batch's per-output sample weights (or None).

        ``scale`` multiplies the gradient of the loss (not its value): a rank holding
        ``n`` rows of a global batch of ``N`` passes ``n / N``, so that the gradients
        summed over the ranks are those of the mean over the global batch.
        """
        plan = self._get_plan()
        step = plan.get_pass(sources, self._objectives.losses)
        factor = self.optimizer.loss_scale_factor
        if factor is not None:  # Keras scales the whole loss; apply() divides back
            scale = (1.0 if scale is None else scale) * factor
        backs: list = [None] * len(step.forward)
        values = plan.run_forward(step, arrays, True, backs)
        outs = [values[slot] for slot in plan.outputs]
        total, per_output, grads = self._objectives.values_and_grads(
            ys, outs, step.fused, need_grad=step.trains, scale=scale, weights=weights
        )
        seeds = None
        if step.activity:
            penalty, seeds = activity_penalties(step.activity, values, step.trains, scale)
            total += penalty
        if step.trains:
            plan.run_backward(step, backs, grads, seeds)
            if step.regularized:
                total += _add_penalties(step.regularized, scale)
            if update:
                self.optimizer.apply(step.params)
                _constrain(step.constrained)
        if self._objectives.metrics:
            outs = self._metric_outputs(step, outs)
        return total, per_output, outs

    def _reduce_and_apply(self, strategy: Strategy, sources, rows: int) -> None:
        """The distributed half of a step: sums the gradients of every rank's shard with
        one Allreduce, then applies the same update on every rank. A rank without rows
        in this batch (``rows == 0``) contributes zeros."""
        params = self._train_pass(sources).params
        if not params:  # nothing trainable: the same on every rank, so no collective
            return
        buffers = self._grad_buffers(params)
        for grads in buffers:
            if rows == 0:
                grads[...] = 0.0
            strategy.allreduce_gradients(grads)
        self.optimizer.apply(params)
        _constrain(self._train_pass(sources).constrained)

    def _grad_buffers(self, params: tuple) -> tuple[np.ndarray, ...]:
        """The gradient memory of ``params`` as few contiguous arrays as possible: one
        slice of the model's arena (frozen layers in between ride along, unused)."""
        entry = self._grad_spans.get(id(params))
        if entry is not None and entry[0] is params:
            return entry[1]
        arena = getattr(self, "_arena", None)
        if arena is not None and all(p.arena is arena for p in params):
            lo = min(p.offset for p in params)
            hi = max(p.offset + p.size for p in params)
            buffers = (arena.grads[lo:hi],)
        else:  # not packed in one arena (layers shared with another model): one per weight
            buffers = tuple(p.grad for p in params)
        if len(self._grad_spans) > 16:
            self._grad_spans.clear()
        self._grad_spans[id(params)] = (params, buffers)
        return buffers


def _add_penalties(parameters, scale: float | None) -> float:
    """Adds each weight's penalty gradient to its gradient (times ``scale``: the ranks'
    shares sum to one penalty) and returns the sum of the penalties."""
    total = 0.0
    for p in parameters:
        total += p.regularizer(p.value)
        p.regularizer.add_gradient(p.value, p.grad, 1.0 if scale is None else scale)
    return total


def activity_penalties(
    activity, values: list, need_grad: bool = False, scale: float | None = None
) -> tuple[float, dict | None]:
    """The output penalties of a pass (``Pass.activity``) on the slot ``values`` of a
    batch: their sum, Keras 3's ``penalty(output) / batch size`` each, and with
    ``need_grad`` the gradient of each penalised slot (times ``scale``, as the loss's)."""
    total = 0.0
    seeds: dict | None = {} if need_grad else None
    for slot, regularizer in activity:
        y = values[slot]
        rows = y.shape[0] if y.ndim else 1
        if rows == 0:
            continue  # Keras divides with divide_no_nan: an empty batch adds nothing
        total += regularizer(y) / rows
        if seeds is not None:
            grad = np.zeros_like(y)
            regularizer.add_gradient(y, grad, (1.0 if scale is None else scale) / rows)
            seeds[slot] = grad
    return total, seeds


def _constrain(parameters) -> None:
    """Projects the constrained weights after an update, as Keras."""
    for p in parameters:
        p.constraint.apply_(p.value)
