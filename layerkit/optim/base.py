"""The Optimizer base class: hyper-parameters, clipping, per-parameter state, fused updates.

Subclasses name their state slots and write one ``update_step`` over flat arrays. State
is keyed by each parameter's stable name (``"hidden1/kernel"``), so it survives reloads,
reordering and freeze/unfreeze.

Speed: parameters that sit next to each other in the model's arena (see
:mod:`layerkit.parameter`) and whose state also sits together are updated as one flat
slice, so a step costs a handful of in-place numpy calls instead of a handful per weight.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..parameter import Parameter
from ..validation import check_number
from . import schedules


class _Run:
    """Neighbouring parameters updated together: flat views of values, grads and slots."""

    __slots__ = ("decay", "grad", "parameters", "slots", "value")

    def __init__(self, parameters, value, grad, slots, decay=()):
        self.parameters, self.value, self.grad, self.slots = parameters, value, grad, slots
        self.decay = decay  # flat views of the values that weight decay applies to


class Optimizer:
    """Base class of layerkit's optimizers.

    Args:
        learning_rate: a float or a ``lk.optim.schedules`` schedule of the step count.
        weight_decay: if set, decoupled weight decay as Keras 3: before each update step
            (after clipping), ``w -= w * weight_decay * lr`` for every parameter not
            excluded by :meth:`exclude_from_weight_decay`.
        clipnorm: clip each gradient to this L2 norm.
        clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: clip all gradients together to this global L2 norm.
        name: optional name.

    Only one of the three clipping options may be set, as in Keras.
    """

    slot_names: tuple[str, ...] = ()
    default_learning_rate = 0.001

    def __init__(
        self,
        learning_rate: float | schedules.LearningRateSchedule | None = None,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
    ) -> None:
        set_options = [
            k
            for k, v in (
                ("clipnorm", clipnorm),
                ("clipvalue", clipvalue),
                ("global_clipnorm", global_clipnorm),
            )
            if v is not None
        ]
        if len(set_options) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                f"Received: {', '.join(set_options)}"
            )
        clipnorm, clipvalue, global_clipnorm = (
            None
            if value is None
            else check_number(value, option, minimum=0.0, exclusive_minimum=True)
            for option, value in (
                ("clipnorm", clipnorm),
                ("clipvalue", clipvalue),
                ("global_clipnorm", global_clipnorm),
            )
        )
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.weight_decay = (
            None
            if weight_decay is None
            else check_number(weight_decay, "weight_decay", minimum=0.0)
        )
        self._exclude_names: frozenset[str] = frozenset()
        self._exclude_pattern: re.Pattern | None = None
        self.learning_rate = self.default_learning_rate if learning_rate is None else learning_rate
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self._slots: dict[str, tuple[np.ndarray, ...]] = {}
        self._slot_blocks: list[tuple[np.ndarray, ...]] = []  # flat storage, one per slot
        self._slot_place: dict[str, tuple[int, int]] = {}  # name -> (block index, offset)
        self._pending_state: dict[str, dict[str, np.ndarray]] = {}
        self._plans: dict[tuple, tuple[list[_Run], list]] = {}
        self._scratch: dict[tuple, np.ndarray] = {}
        self._last_plan: tuple = (None, None)

    # --- learning rate --------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The learning rate for the next step (the schedule's value, if there is one)."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if isinstance(getattr(self, "_learning_rate", None), schedules.LearningRateSchedule):
            # As Keras: replacing the schedule by a number would silently end it.
            raise TypeError(
                f"This optimizer was created with a LearningRateSchedule "
                f"({type(self._learning_rate).__name__}) as its learning_rate, hence its "
                f"learning rate is not settable. Received: learning_rate={value!r:.100}"
            )
        if isinstance(value, schedules.LearningRateSchedule):
            self._learning_rate = value
            return
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise TypeError(f"Expected a float or a schedule. Received: learning_rate={value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(
                f"Expected a finite, non-negative learning rate. Received: learning_rate={value!r}"
            )
        self._learning_rate = float(value)

    @property
    def schedule(self) -> schedules.LearningRateSchedule | None:
        lr = self._learning_rate
        return lr if isinstance(lr, schedules.LearningRateSchedule) else None

    # --- state ----------------------------------------------------------------------
    def slot_initial_value(self, slot: str) -> float:
        return 0.0

    def slot_scale(self, slot: str) -> float:
        """Stored slot = reported slot / scale (an optimizer may keep a scaled form)."""
        return 1.0

    def build(self, parameters: Iterable[Parameter]) -> None:
        """Creates the state slots of parameters not seen before (all zeros, or the
        optimizer's initial value), each slot of the new ones in one contiguous block."""
        new = [p for p in parameters if p.name not in self._slots]
        if not new:
            return
        total = sum(p.size for p in new)
        dtype = new[0].dtype
        blocks = [np.full(total, self.slot_initial_value(s), dtype=dtype) for s in self.slot_names]
        block_id = len(self._slot_blocks)
        self._slot_blocks.append(tuple(blocks))
        offset = 0
        for p in new:
            end = offset + p.size
            self._slots[p.name] = tuple(b[offset:end].reshape(p.shape) for b in blocks)
            self._slot_place[p.name] = (block_id, offset)
            offset = end
            pending = self._pending_state.pop(p.name, None)
            if pending is not None:
                self._load_slots(p.name, pending)
        self._plans.clear()
        self._last_plan = (None, None)

    def slots(self, name: str) -> dict[str, np.ndarray]:
        """Returns copies of the state arrays of the parameter called ``name``, in the
        definitions of the update formula (Keras's)."""
        return {s: a * self.slot_scale(s) for s, a in zip(self.slot_names, self._slots[name])}

    def state_dict(self) -> dict[str, Any]:
        """Returns ``{"iterations": int, "slots": {param name: {slot: array copy}}}``.

        The slots are copies of the arrays the update computes with (Adam keeps scaled
        moments, see :class:`~layerkit.optim.Adam`), so ``load_state_dict(state_dict())``
        is bit-exact; :meth:`slots` reports Keras's definitions.
        """
        slots = {
            name: {s: a.copy() for s, a in zip(self.slot_names, arrays)}
            for name, arrays in self._slots.items()
        }
        for name, pending in self._pending_state.items():
            slots.setdefault(name, {k: v.copy() for k, v in pending.items()})
        return {"iterations": self.iterations, "slots": slots}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`'s output, checking slot names and shapes first.

        ``state["form"] == "keras"`` marks slots in Keras's definitions (as :meth:`slots`
        reports them, and as checkpoints before format version 2 stored them); they are
        converted to the stored form. State for parameters not built yet is kept and
        applied when they are. Raises ValueError, changing nothing, on any mismatch.
        """
        if not isinstance(state, dict) or "iterations" not in state:
            raise ValueError("Expected an optimizer state dict with 'iterations' and 'slots'.")
        iterations = int(state["iterations"])
        if iterations < 0:
            raise ValueError(f"Expected iterations >= 0. Received: {iterations}")
        form = state.get("form", "stored")
        if form not in ("stored", "keras"):
            raise ValueError(f"Expected form 'stored' or 'keras'. Received: form={form!r}")
        slots = state.get("slots", {})
        for name, arrays in slots.items():
            if set(arrays) != set(self.slot_names):
                raise ValueError(
                    f"Optimizer state for {name!r} has slots {sorted(arrays)}, "
                    f"but {type(self).__name__} expects {sorted(self.slot_names)}."
                )
            if name in self._slots:
                for slot, current in zip(self.slot_names, self._slots[name]):
                    if np.shape(arrays[slot]) != current.shape:
                        raise ValueError(
                            f"Optimizer state {name!r}/{slot}: expected shape {current.shape}, "
                            f"received {np.shape(arrays[slot])}."
                        )
        for name, arrays in slots.items():
            if form == "keras":
                arrays = {k: np.asarray(v) / self.slot_scale(k) for k, v in arrays.items()}
            if name in self._slots:
                self._load_slots(name, arrays)
            else:
                self._pending_state[name] = {k: np.array(v) for k, v in arrays.items()}
        self.iterations = iterations

    def _load_slots(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        for slot, current in zip(self.slot_names, self._slots[name]):
            value = np.asarray(arrays[slot])
            if value.shape != current.shape:
                raise ValueError(
                    f"Optimizer state {name!r}/{slot}: expected shape {current.shape}, "
                    f"received {value.shape}."
                )
            np.copyto(current, value, casting="unsafe")

    # --- applying -------------------------------------------------------------------
    def apply_gradients(self, grads_and_params: Iterable[tuple[np.ndarray, Parameter]]) -> None:
        """Applies ``(gradient, parameter)`` pairs, as TensorFlow's ``apply_gradients``.

        Example:
            >>> loss, pairs = model.compute_gradients(x, y)
            >>> optimizer.apply_gradients([(np.clip(g, -1, 1), p) for g, p in pairs])
        """
        pairs = list(grads_and_params)
        for g, p in pairs:
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"Expected (gradient, Parameter) pairs. Received: {type(p).__name__}"
                )
            g = np.asarray(g)
            if g.shape != p.shape:
                raise ValueError(
                    f"Gradient for {p.name!r}: expected shape {p.shape}, received {g.shape}."
                )
            if g is not p.grad:
                np.copyto(p.grad, g, casting="same_kind")
        self.apply([p for _, p in pairs])

    def apply(self, parameters: Sequence[Parameter]) -> None:
        """Updates ``parameters`` from the gradients already in their ``grad`` arrays."""
        if not parameters:
            return
        runs = self._plan(parameters)
        self._clip(runs)
        lr = self.learning_rate
        if self.weight_decay is not None:  # Keras's order: clip, decay, update
            self._apply_weight_decay(runs, lr)
        for run in runs:
            self.update_step(run.value, run.grad, run.slots, lr)
        self.iterations += 1

    def update_step(
        self, value: np.ndarray, grad: np.ndarray, slots: tuple[np.ndarray, ...], lr: float
    ) -> None:
        """Updates ``value`` in place from ``grad`` and the state ``slots`` (flat arrays)."""
        raise NotImplementedError

    def _plan(self, parameters: Sequence[Parameter]) -> list[_Run]:
        # Keyed on the objects, not the names: a rebuilt layer with the same name has new
        # arrays. The cached entry keeps the parameters and arenas alive, so ids stay unique.
        if parameters is self._last_plan[0]:  # the trainer passes the same list each step
            return self._last_plan[1]
        key = tuple((id(p), id(p.arena), p.offset) for p in parameters)
        entry = self._plans.get(key)
        if entry is None:
            self.build(parameters)
            if len(self._plans) > 16:
                self._plans.clear()
            entry = self._plans[key] = (
                self._make_runs(parameters),
                [(p, p.arena) for p in parameters],
            )
        if isinstance(parameters, tuple):  # immutable: safe to recognise by identity
            self._last_plan = (parameters, entry[0])
        return entry[0]

    def _make_runs(self, parameters: Sequence[Parameter]) -> list[_Run]:
        groups: list[list[Parameter]] = []
        for p in parameters:
            if groups:
                q = groups[-1][-1]
                block_q, offset_q = self._slot_place[q.name]
                block_p, offset_p = self._slot_place[p.name]
                if (
                    p.arena is not None
                    and p.arena is q.arena
                    and p.offset == q.offset + q.size
                    and block_p == block_q
                    and offset_p == offset_q + q.size
                ):
                    groups[-1].append(p)
                    continue
            groups.append([p])
        runs = []
        for group in groups:
            first, size = group[0], sum(p.size for p in group)
            if len(group) == 1 or first.arena is None:
                value, grad = first.value.reshape(-1), first.grad.reshape(-1)
            else:
                value = first.arena.values[first.offset : first.offset + size]
                grad = first.arena.grads[first.offset : first.offset + size]
            block_id, offset = self._slot_place[first.name]
            slots = tuple(b[offset : offset + size] for b in self._slot_blocks[block_id])
            runs.append(_Run(group, value, grad, slots, self._decay_views(group, value)))
        return runs

    def _decay_views(self, group: list[Parameter], value: np.ndarray) -> tuple[np.ndarray, ...]:
        """The stretches of a run's flat ``value`` that weight decay applies to."""
        spans: list[list[int]] = []
        start = 0
        for p in group:
            end = start + p.size
            if self._use_weight_decay(p):
                if spans and spans[-1][1] == start:
                    spans[-1][1] = end
                else:
                    spans.append([start, end])
            start = end
        if spans == [[0, value.size]]:
            return (value,)
        return tuple(value[a:b] for a, b in spans)

    def _work(self, size: int, dtype: np.dtype, index: int = 0) -> np.ndarray:
        """A reusable scratch array for update arithmetic without temporaries."""
        key = (size, dtype.str, index)
        buf = self._scratch.get(key)
        if buf is None:
            buf = self._scratch[key] = np.empty(size, dtype=dtype)
        return buf

    # --- weight decay ---------------------------------------------------------------
    def exclude_from_weight_decay(
        self, var_list: Iterable[Parameter] | None = None, var_names: Iterable[str] | None = None
    ) -> None:
        """Exempts parameters from weight decay, as Keras 3's method of the same name.

        Args:
            var_list: parameters to exempt (matched by their stable name).
            var_names: strings (regular expressions, as Keras); a parameter whose name
                contains a match is exempt. ``var_names=["bias"]`` exempts every bias.

        Each call replaces the previous exclusions; it takes effect at the next step.
        """
        names = []
        for p in var_list or ():
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"Expected a list of Parameters for var_list. Received: {p!r:.100} "
                    f"of type {type(p).__name__}"
                )
            names.append(p.name)
        if isinstance(var_names, str):
            raise TypeError(
                f"Expected a list of strings for var_names. Received: var_names={var_names!r}"
            )
        patterns = list(var_names or ())
        for pattern in patterns:
            if not isinstance(pattern, str):
                raise TypeError(
                    f"Expected a list of strings for var_names. Received: {pattern!r:.100} "
                    f"of type {type(pattern).__name__}"
                )
        self._exclude_names = frozenset(names)
        self._exclude_pattern = re.compile("|".join(patterns)) if patterns else None
        self._plans.clear()  # the runs cache which stretches decay
        self._last_plan = (None, None)

    def _use_weight_decay(self, parameter: Parameter) -> bool:
        if parameter.name in self._exclude_names:
            return False
        pattern = self._exclude_pattern
        return pattern is None or pattern.search(parameter.name) is None

    def _apply_weight_decay(self, runs: list[_Run], lr: float) -> None:
        # ``w *= 1 - wd * lr``, with the factor computed in the weights' dtype, is Keras 3's
        # decay exactly as its PyTorch backend computes it (``torch._foreach_mul_`` by a
        # float32 factor for float32 weights): bit-identical, one in-place pass and no
        # scratch. The generic ``w - w * wd * lr`` differs from it in the last bit.
        # (For float64 weights Keras still rounds the factor to float32; layerkit doesn't.)
        for run in runs:
            real = run.value.dtype.type
            factor = real(1.0) - real(self.weight_decay) * real(lr)
            if factor == 1.0:
                continue
            for value in run.decay:
                value *= factor

    def _clip(self, runs: list[_Run]) -> None:
        if self.clipvalue is not None:
            for run in runs:
                np.clip(run.grad, -self.clipvalue, self.clipvalue, out=run.grad)
        elif self.clipnorm is not None:
            for run in runs:
                for p in run.parameters:
                    g = p.grad
                    norm = math.sqrt(float(np.vdot(g, g)))
                    if norm > self.clipnorm:
                        g *= self.clipnorm / norm
        elif self.global_clipnorm is not None:
            norm = math.sqrt(sum(float(np.vdot(run.grad, run.grad)) for run in runs))
            if norm > self.global_clipnorm:
                scale = self.global_clipnorm / norm
                for run in runs:
                    run.grad *= scale

    # --- config ---------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        lr = self._learning_rate
        return {
            "name": self.name,
            "learning_rate": schedules.serialize(lr)
            if isinstance(lr, schedules.LearningRateSchedule)
            else lr,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            config["learning_rate"] = schedules.deserialize(lr)
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self._learning_rate!r})"
