"""What ``compile`` sets up for each output of a model: its loss, loss weight and metrics,
and the names the logs use (Keras 3's ``CompileLoss`` and ``CompileMetrics``).

One output: the logs are ``loss`` and each metric's name. Several outputs: ``loss`` is the
weighted sum of the outputs' losses, ``<output>_loss`` each output's own loss (not
weighted), and ``<output>_<metric>`` each metric, as Keras 3 names them; ``evaluate``
lists ``loss``, the output losses in output order, then the metrics by name, and the
logs (History, ``return_dict``) are sorted by name, as Keras 3.15.

The per-output losses are tracked by :class:`LossTracker`, a metric of the running mean,
so everything that sums metric totals (over the batches of an epoch, over MPI ranks, in a
mid-epoch backup) sums them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import losses as losses_module
from .. import metrics as metrics_module


class LossTracker(metrics_module.Metric):
    """The running mean of one output's loss over the samples seen."""

    def add(self, value: float, rows: int) -> None:
        self._total += value * rows
        self._count += rows


def _is_loss_spec(value: Any) -> bool:
    return isinstance(value, (str, dict, losses_module.Loss))


def per_output(value: Any, names: Sequence[str], argument: str, single) -> list:
    """``value`` as one entry per output: a dict keyed by output name (missing outputs
    get None), a list or tuple in output order, or ``single(value)`` for every output
    (one loss or weight for all; see the callers)."""
    n = len(names)
    if isinstance(value, dict) and not (argument == "loss" and "class_name" in value):
        unknown = [key for key in value if key not in names]
        if unknown:
            raise ValueError(
                f"{argument} has keys {unknown} that are not output names. The model's "
                f"outputs are {list(names)}."
            )
        missing = [name for name in names if name not in value]
        if argument == "loss" and missing:
            raise ValueError(
                f"Expected a loss for every output {list(names)}, as Keras 3. Received: no "
                f"key for {missing} (pass None for an output that has no loss)."
            )
        return [value.get(name) for name in names]
    if isinstance(value, (list, tuple)) and (n > 1 or argument == "loss_weights"):
        if len(value) != n:
            raise ValueError(
                f"Expected {argument} to have one entry per output ({n}: {list(names)}). "
                f"Received: {argument} with {len(value)} entries"
            )
        return list(value)
    return [single(value) for _ in names]


class Objectives:
    """The losses, loss weights and metrics of a compiled model, per output."""

    def __init__(
        self, loss, loss_weights, metrics, output_names: Sequence[str], weighted_metrics=None
    ) -> None:
        names = list(output_names)
        self.output_names = names
        if loss is None:
            raise ValueError("compile() needs a loss. Received: loss=None")
        specs = per_output(loss, names, "loss", lambda v: v)
        self.losses: list[losses_module.Loss | None] = [
            None if spec is None else losses_module.get(spec) for spec in specs
        ]
        if all(loss is None for loss in self.losses):
            raise ValueError(f"compile() needs a loss for at least one output. Received: {loss!r}")
        for name, active in zip(names, self.losses):
            if active is not None and getattr(active, "reduction", "sum_over_batch_size") in (
                "none",
                None,
            ):
                # Keras 3 fails at the first step on it (a loss that is not a scalar).
                raise ValueError(
                    f"The loss of output {name!r} has reduction={active.reduction!r}: fit "
                    "needs one number per batch. Use 'sum_over_batch_size' (the default), "
                    "'sum', 'mean' or 'mean_with_sample_weight' in compile; reduction='none' "
                    "is for calling the loss yourself."
                )
        if loss_weights is None:
            weights = [1.0] * len(names)
        else:
            weights = per_output(loss_weights, names, "loss_weights", lambda v: v)
        self.loss_weights: list[float] = []
        for name, weight in zip(names, weights):
            weight = 1.0 if weight is None else weight
            if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating)):
                raise TypeError(
                    f"Expected numbers in loss_weights. Received: {weight!r} for output {name!r}"
                )
            if not np.isfinite(weight) or weight < 0:
                raise ValueError(
                    f"Expected finite loss_weights >= 0. Received: {weight!r} for output {name!r}"
                )
            self.loss_weights.append(float(weight))
        self.metric_specs: list[list] = self._metric_specs(metrics, names)
        # Keras's weighted_metrics: metrics that take the sample weights (metrics= don't).
        self.weighted_specs: list[list] = self._metric_specs(weighted_metrics, names)
        self.trackers: list[tuple[int, LossTracker]] = []
        if len(names) > 1:
            self.trackers = [
                (i, LossTracker(name=f"{name}_loss"))
                for i, (name, loss) in enumerate(zip(names, self.losses))
                if loss is not None
            ]
        self.metrics: list[tuple[int, metrics_module.Metric]] = []
        self.weighted: list[bool] = []  # per entry of ``metrics``: takes sample weights
        self.log_names: list[str] = ["loss", *(t.name for _, t in self.trackers)]
        self.resolved = False
        self._states: list | None = None

    @staticmethod
    def _metric_specs(metrics, names: list[str]) -> list[list]:
        if metrics is None:
            return [[] for _ in names]

        def one_output(value, where: str) -> list:
            if value is None:
                return []
            if isinstance(value, (str, metrics_module.Metric)):
                value = [value]
            if not isinstance(value, (list, tuple)):
                raise TypeError(f"Expected a list of metrics{where}. Received: {value!r:.100}")
            for spec in value:
                if isinstance(spec, str) and spec.lower() not in ("accuracy", "acc"):
                    metrics_module.get(spec)  # validates the name now, not at fit time
                elif not isinstance(spec, (str, metrics_module.Metric)):
                    raise TypeError(f"Expected metric names or objects. Received: {spec!r:.100}")
            return list(value)

        if isinstance(metrics, dict):
            unknown = [key for key in metrics if key not in names]
            if unknown:
                raise ValueError(
                    f"metrics has keys {unknown} that are not output names. The model's "
                    f"outputs are {names}."
                )
            return [one_output(metrics.get(name), f" for output {name!r}") for name in names]
        if isinstance(metrics, (str, metrics_module.Metric)):
            metrics = [metrics]
        if not isinstance(metrics, (list, tuple)):
            raise TypeError(f"Expected a list of metrics. Received: metrics={metrics!r:.100}")
        nested = (
            len(names) > 1
            and metrics
            and all(m is None or isinstance(m, (list, tuple)) for m in metrics)
        )
        if nested:
            if len(metrics) != len(names):
                raise ValueError(
                    f"Expected one list of metrics per output ({len(names)}: {names}). "
                    f"Received: {len(metrics)} lists"
                )
            return [one_output(m, f" for output {n!r}") for m, n in zip(metrics, names)]
        if len(names) > 1 and metrics:
            raise ValueError(
                f"The model has {len(names)} outputs {names}: pass metrics as a dict keyed "
                "by output name or as one list per output, as Keras 3 requires. Received: "
                f"metrics={metrics!r:.100}"
            )
        return [one_output(list(metrics), "")]

    def resolve(self, output_shapes: Sequence[tuple]) -> None:
        """Resolves ``"accuracy"`` and names into metric objects, per output."""
        if self.resolved:
            return
        self.metrics, self.weighted = [], []
        for weighted, all_specs in ((False, self.metric_specs), (True, self.weighted_specs)):
            for i, specs in enumerate(all_specs):
                for spec in specs:
                    metric = metrics_module.resolve(spec, self.losses[i], output_shapes[i])
                    if not getattr(metric, "takes_targets", True):
                        raise ValueError(
                            f"Metric {metric.name!r} ({type(metric).__name__}) averages values "
                            "you give it (update_state(values)), not targets and "
                            "predictions: it cannot be a compile() metric. Call it yourself, "
                            "e.g. in a callback."
                        )
                    if weighted and any(j == i and m.name == metric.name for j, m in self.metrics):
                        metric.name = f"weighted_{metric.name}"  # as Keras names the pair
                    self.metrics.append((i, metric))
                    self.weighted.append(weighted)
        many = len(self.output_names) > 1
        names = [f"{self.output_names[i]}_{m.name}" if many else m.name for i, m in self.metrics]
        if many:  # Keras 3 lists the metrics of several outputs by name
            order = sorted(range(len(names)), key=names.__getitem__)
            self.metrics = [self.metrics[k] for k in order]
            self.weighted = [self.weighted[k] for k in order]
            names = [names[k] for k in order]
        self.log_names = ["loss", *(t.name for _, t in self.trackers), *names]
        self.resolved = True
        self._states = None

    def unresolve(self) -> None:
        self.metrics, self.weighted, self.resolved, self._states = [], [], False, None
        self.log_names = ["loss", *(t.name for _, t in self.trackers)]

    @property
    def states(self) -> list[metrics_module.Metric]:
        """Everything with a running total, in log order after ``loss``."""
        if self._states is None:
            self._states = [t for _, t in self.trackers] + [m for _, m in self.metrics]
        return self._states

    def reset(self) -> None:
        for state in self.states:
            state.reset_state()

    @property
    def single_loss(self) -> losses_module.Loss | None:
        """The loss of a one-output model (``model.loss``)."""
        return self.losses[0] if len(self.losses) == 1 else None

    # --- one batch --------------------------------------------------------------------
    def values_and_grads(
        self, ys, outs, fused, need_grad: bool, scale: float | None = None, weights=None
    ):
        """The weighted total loss of a batch, each output's loss, and the gradients to
        feed back (None for outputs without a loss). ``weights``: per-output sample
        weights of the batch (or None), as Keras 3's losses take them."""
        total = 0.0
        values: list[float | None] = []
        grads: list[np.ndarray | None] = []
        for i, loss in enumerate(self.losses):
            if loss is None:
                values.append(None)
                grads.append(None)
                continue
            active = fused[i] if fused[i] is not None else loss
            if weights is not None and weights[i] is not None:
                value, grad = active.value_and_grad(
                    ys[i], outs[i], need_grad=need_grad, sample_weight=weights[i]
                )
            else:
                value, grad = active.value_and_grad(ys[i], outs[i], need_grad=need_grad)
            weight = self.loss_weights[i]
            total += weight * value
            values.append(value)
            if need_grad:
                factor = weight if scale is None else weight * scale
                if factor != 1.0:
                    grad *= factor  # a fresh array of the loss: safe to scale in place
            grads.append(grad)
        return total, values, grads

    def update(self, ys, outs, values, rows: int, weights=None) -> None:
        for i, tracker in self.trackers:
            tracker.add(values[i], rows)
        for (i, metric), weighted in zip(self.metrics, self.weighted):
            if weighted and weights is not None and weights[i] is not None:
                metric.update_state(ys[i], outs[i], sample_weight=weights[i])
            else:
                metric.update_state(ys[i], outs[i])

    @property
    def wants_outputs(self) -> set[int]:
        """The outputs some metric reads."""
        return {i for i, _ in self.metrics}

    # --- serialisation ------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The compile arguments as JSON; a one-output model keeps the version-1 form."""
        weighted = (
            {}
            if not any(self.weighted_specs)
            else {
                "weighted_metrics": [
                    [metrics_module.serialize(m) for m in specs] for specs in self.weighted_specs
                ]
            }
        )
        if len(self.output_names) == 1:
            return {
                "loss": losses_module.serialize(self.losses[0]),
                "metrics": [metrics_module.serialize(m) for m in self.metric_specs[0]],
                **({"loss_weights": self.loss_weights} if self.loss_weights != [1.0] else {}),
                **weighted,
            }
        return {
            **weighted,
            "loss": [
                None if loss is None else losses_module.serialize(loss) for loss in self.losses
            ],
            "loss_weights": list(self.loss_weights),
            "metrics": [
                [metrics_module.serialize(m) for m in specs] for specs in self.metric_specs
            ],
            "output_names": list(self.output_names),
        }


def keras_order(logs: dict[str, float], many_outputs: bool) -> dict[str, float]:
    """The logs as Keras 3 hands them to callbacks: sorted by name for several outputs."""
    return dict(sorted(logs.items())) if many_outputs else logs


# --- metric states as flat vectors (MPI sums, mid-epoch backups) ----------------------
def metric_states(states: Sequence[metrics_module.Metric]) -> list[list[float]]:
    """Each metric's running state as a flat list of floats: ``[total, count]`` for the
    means, more for metrics with array states (``AUC``'s four confusion counts)."""
    return [[float(v) for a in m.state_arrays() for v in np.ravel(a)] for m in states]


def set_metric_states(states: Sequence[metrics_module.Metric], flats: Sequence) -> None:
    """Restores :func:`metric_states`'s lists (or their sums over ranks)."""
    for metric, flat in zip(states, flats):
        like = metric.state_arrays()
        flat = np.asarray(flat, dtype=np.float64)
        chunk = flat.size // len(like)
        arrays = [
            flat[i * chunk : (i + 1) * chunk].reshape((a.shape[0], -1) if a.ndim > 1 else a.shape)
            for i, a in enumerate(like)
        ]
        metric.set_state_arrays(arrays)
