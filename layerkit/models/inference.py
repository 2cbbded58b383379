"""Evaluation and prediction: ``evaluate``, ``predict``, calling a model, over arrays
(in memory or on disk) and streams (generators, ``PyDataset``), in inference mode."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..callbacks.base import CallbackList
from . import data
from .compiled import keras_order
from .data import (
    check_batch_size,
    check_int,
    check_verbose,
)
from .step import activity_penalties
from .strategy import Strategy
from .stream import BatchStream, is_stream


class InferenceMixin:
    """``evaluate``, ``predict`` and ``__call__`` of :class:`~layerkit.models.trainer.Trainer`."""

    def evaluate(
        self,
        x=None,
        y=None,
        batch_size: int | None = None,
        verbose: str | int = 0,
        return_dict: bool = False,
        callbacks: list | None = None,
        distribute: Strategy | None = None,
        sample_weight=None,
        steps: int | None = None,
    ):
        """Returns the loss (a float) when there are no metrics, else ``[loss, *metrics]``,
        or a dict with ``return_dict=True``. Dropout is inactive. ``sample_weight``
        weighs the loss and the ``weighted_metrics`` as in :meth:`fit`.

        ``callbacks`` receive ``on_test_begin``, ``on_test_batch_begin/end`` and
        ``on_test_end``, as in Keras. With ``distribute=lk.Strategy()``, each rank
        evaluates a contiguous share of ``x`` (the remainder rule of ``fit``) in batches
        of ``batch_size``, and every rank returns the figures of the whole set.

        ``x`` may also be arrays on disk, a generator of ``(x, y[, sample_weight])``
        batches or an ``lk.utils.PyDataset`` (``y`` None; ``steps`` batches, or until
        the generator is exhausted / the dataset's length; under MPI each rank takes its
        share of each batch).

        Example:
            >>> loss, accuracy = model.evaluate(x_test, y_test, batch_size=1024)
        """
        with self._distributed(distribute, "evaluate") as strategy:
            self._require_compiled("evaluate")
            batch_size = check_batch_size(batch_size)
            check_verbose(verbose)
            if is_stream(x):
                if y is not None or sample_weight is not None:
                    raise ValueError(
                        "y and sample_weight must be None when x is a generator or a "
                        "PyDataset: its batches hold them, as in Keras."
                    )
                stream = self._stream(x, steps, "steps", "x")
                callback_list = CallbackList(callbacks, self, {"steps": stream.steps, "verbose": 0})
                logs = self._evaluate_stream(stream, strategy, callback_list)
                if return_dict:
                    return keras_order(logs, len(self._output_names()) > 1)
                values = list(logs.values())
                return values[0] if len(values) == 1 else values
            if steps is not None:
                raise ValueError(
                    "steps is for a generator or a PyDataset x; with arrays evaluate reads "
                    f"every batch. Received: steps={steps!r}"
                )
            x, y = self._prepare_xy(x, y)
            weights = self._prepare_weights(sample_weight, None, y)
            if strategy is not None:
                strategy.check_same(
                    "evaluate",
                    samples=data.rows(x),
                    sample_shape=data.sample_shapes(x),
                    batch=batch_size,
                    sample_weights=weights is not None,
                )
            callback_list = CallbackList(
                callbacks, self, {"steps": math.ceil(data.rows(x) / batch_size), "verbose": 0}
            )
            logs = self._evaluate_arrays(None, x, y, batch_size, strategy, callback_list, weights)
        if return_dict:
            return keras_order(logs, len(self._output_names()) > 1)
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def _evaluate_arrays(
        self,
        sources: tuple[int, ...] | None,
        x: list[np.ndarray],
        y: list,
        batch_size: int,
        strategy: Strategy | None = None,
        callback_list: CallbackList | None = None,
        weights: list | None = None,
    ) -> dict[str, float]:
        """The loss and metrics of ``x`` (arrays for the slots ``sources``, the model
        inputs by default) against ``y`` (with per-output sample ``weights``), in
        batches, in inference mode."""
        plan = self._get_plan()
        objectives = self._objectives
        step = plan.get_pass(sources, objectives.losses)
        objectives.reset()
        if strategy is not None:  # this rank's contiguous share
            first, stop = strategy.shard(data.rows(x))
            x, y = data.row_range(x, first, stop), data.row_range(y, first, stop)
            if weights is not None:
                weights = data.split_rows(weights, first, stop)
        n = data.rows(x)
        batches = (
            (
                data.split_rows(x, lo, min(n, lo + batch_size)),
                data.split_rows(y, lo, min(n, lo + batch_size)),
                None if weights is None else data.split_rows(weights, lo, min(n, lo + batch_size)),
            )
            for lo in range(0, n, batch_size)
        )
        return self._evaluate_batches(step, batches, strategy, callback_list)

    def _evaluate_stream(self, stream: BatchStream, strategy, callback_list) -> dict[str, float]:
        """The loss and metrics of the batches of a generator or PyDataset."""
        self._objectives.reset()
        step = self._get_plan().get_pass(None, self._objectives.losses)
        batches = ((xb, yb, wb) for _, xb, yb, wb, _, _ in stream.batches(None, False, 0, strategy))
        return self._evaluate_batches(step, batches, strategy, callback_list)

    def _evaluate_batches(self, step, batches, strategy, callback_list) -> dict[str, float]:
        """Runs the inference pass ``step`` over ``(inputs, targets, weights)`` batches;
        returns the mean loss and the metrics (summed over the ranks)."""
        plan, objectives = self._get_plan(), self._objectives
        penalty = sum(self.losses)  # the weights do not change while evaluating
        hooks = callback_list is not None and callback_list.wants_test_batch_hooks
        if callback_list is not None:
            callback_list.on_test_begin({})
        total, seen = 0.0, 0
        for index, (xb, yb, wb) in enumerate(batches):
            if hooks:
                callback_list.on_test_batch_begin(index, {})
            rows = data.rows(xb)
            if rows == 0:  # a rank without rows of this batch
                if hooks:
                    callback_list.on_test_batch_end(index, self._logs(total, seen))
                continue
            values = plan.run_forward(step, xb, False)
            outs = [values[slot] for slot in plan.outputs]
            value, per_output, _ = objectives.values_and_grads(
                yb, outs, step.fused, False, weights=wb
            )
            if step.activity:
                value += activity_penalties(step.activity, values)[0]
            total += (value + penalty) * rows
            seen += rows
            if objectives.states:
                objectives.update(yb, self._metric_outputs(step, outs), per_output, rows, wb)
            if hooks:
                # This rank's running figures: batch hooks make no collective calls.
                callback_list.on_test_batch_end(index, self._logs(total, seen))
        logs = self._logs(total, seen, strategy, keep=True)
        if callback_list is not None:
            callback_list.on_test_end(dict(logs))
        return logs

    def predict(
        self,
        x,
        batch_size: int | None = None,
        verbose: str | int = 0,
        callbacks: list | None = None,
        steps: int | None = None,
    ):
        """Returns the model's outputs for ``x`` (new float arrays): one array for a
        model with one output, else a list in output order (a dict for a model whose
        outputs were given as a dict). Dropout is inactive.

        ``x`` may also be arrays on disk (read in batches), or a generator / PyDataset
        of batches ``x`` or ``(x, ...)`` (targets ignored): ``steps`` batches, or until
        it is exhausted / the dataset's length.

        ``callbacks`` receive ``on_predict_begin``, ``on_predict_batch_begin/end`` (with
        ``{"outputs": batch outputs}``) and ``on_predict_end``, as in Keras.
        """
        batch_size = check_batch_size(batch_size)
        verbose = check_verbose(verbose)
        if is_stream(x):
            return self._predict_stream(x, steps, verbose, callbacks)
        if steps is not None:
            raise ValueError(
                "steps is for a generator or a PyDataset x; with arrays predict reads "
                f"every batch. Received: steps={steps!r}"
            )
        x = self._prepare_x(x)
        plan = self._get_plan()
        if callbacks is None:
            results = self.forward_slots(x, plan.inputs, plan.outputs, batch_size, verbose)
        else:
            callback_list = CallbackList(
                callbacks, self, {"steps": math.ceil(data.rows(x) / batch_size), "verbose": verbose}
            )
            callback_list.on_predict_begin({})
            results = self.forward_slots(
                x, plan.inputs, plan.outputs, batch_size, verbose, callback_list
            )
            callback_list.on_predict_end({})
        return self._structure_outputs(results)

    def _predict_stream(self, source, steps, verbose: int, callbacks) -> Any:
        """:meth:`predict` over the batches of a generator or PyDataset."""
        if steps is not None:
            steps = check_int(steps, "steps", 1)

        def inputs_of(batch, where):
            is_tuple = isinstance(batch, tuple) and 1 <= len(batch) <= 3
            return self._standardize_batch(batch if is_tuple else (batch,), where, None, False)

        stream = BatchStream(source, inputs_of, steps, "x")
        if not self.built:
            inputs_of(stream.peek(), "batch 0 of x")
        plan = self._get_plan()
        step = plan.get_pass(None, None, plan.outputs)
        callback_list = CallbackList(callbacks, self, {"steps": stream.steps, "verbose": verbose})
        hooks = callbacks is not None and callback_list.wants_predict_batch_hooks
        if callbacks is not None:
            callback_list.on_predict_begin({})
        parts: list[list[np.ndarray]] = [[] for _ in plan.outputs]
        batches = stream.batches(None, False, 0)
        bar = tqdm(batches, total=stream.steps, disable=verbose != 1, unit="step", desc="predict")
        for index, (_, xb, _, _, _, _) in enumerate(bar):
            if hooks:
                callback_list.on_predict_batch_begin(index, {})
            values = plan.run_forward(step, xb, False)
            outputs = [np.array(values[slot], copy=True) for slot in plan.outputs]
            for part, out in zip(parts, outputs):
                part.append(out)
            if hooks:
                callback_list.on_predict_batch_end(
                    index, {"outputs": self._structure_outputs(outputs)}
                )
        if callbacks is not None:
            callback_list.on_predict_end({})
        return self._structure_outputs([np.concatenate(p) for p in parts])

    def forward_slots(
        self,
        x: list[np.ndarray],
        sources: tuple[int, ...],
        wanted: tuple[int, ...],
        batch_size: int,
        verbose: int = 0,
        callback_list: CallbackList | None = None,
    ) -> list[np.ndarray]:
        """The values of the plan's slots ``wanted`` computed from validated arrays for
        the slots ``sources``, in batches, in inference mode, each into one new array."""
        plan = self._get_plan()
        step = plan.get_pass(sources, None, wanted)
        n = data.rows(x)
        results: list[np.ndarray | None] = [None] * len(wanted)
        hooks = callback_list is not None and callback_list.wants_predict_batch_hooks
        starts = range(0, n, batch_size)
        bar = tqdm(starts, disable=verbose != 1, unit="step", desc="predict")
        for index, lo in enumerate(bar):
            if hooks:
                callback_list.on_predict_batch_begin(index, {})
            hi = min(n, lo + batch_size)
            values = plan.run_forward(step, [a[lo:hi] for a in x], False)
            for i, slot in enumerate(wanted):
                value = values[slot]
                if results[i] is None:
                    results[i] = np.empty((n, *value.shape[1:]), dtype=value.dtype)
                results[i][lo:hi] = value
            if hooks:
                outputs = [r[lo:hi] for r in results]
                callback_list.on_predict_batch_end(
                    index, {"outputs": self._structure_outputs(outputs)}
                )
        return results

    def __call__(self, x, training: bool = False):
        """Computes the model on ``x`` in one batch (Dropout active if ``training``);
        on symbolic tensors, records the model as one call in a graph (a model used as
        a layer)."""
        from .node import is_symbolic

        if is_symbolic(x) or (isinstance(x, dict) and any(map(is_symbolic, x.values()))):
            return self._call_symbolic(x)
        x = data.in_memory(self._prepare_x(x))
        plan = self._get_plan()
        values = plan.run_forward(plan.get_pass(), x, training)
        return self._structure_outputs([np.array(values[s], copy=True) for s in plan.outputs])

    def predict_on_batch(self, x):
        """Returns predictions for one batch."""
        return self(x)
