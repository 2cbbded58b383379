"""The Optimizer base class: hyper-parameters, clipping, per-parameter state, fused updates.

Subclasses name their state slots and write one ``update_step`` over flat arrays. State
is keyed by each parameter's stable name (``"hidden1/kernel"``), so it survives reloads,
reordering and freeze/unfreeze.

Speed: parameters that sit next to each other in the model's arena (see
:mod:`layerkit.parameter`) and whose state also sits together are updated as one flat
slice, so a step costs a handful of in-place numpy calls instead of a handful per weight;
with numba installed each rule is one fused pass over that slice (:mod:`.kernels`).

Keras 3's base options live here too: ``use_ema`` (a moving average of the weights, slot
``average``), ``gradient_accumulation_steps`` (slot ``gradient_accumulator``),
``loss_scale_factor`` (gradients divided before anything else) and tf.keras 2's ``decay``.
An optimizer whose state is not shaped like its parameter (Adafactor's factored moments)
names it in ``shaped_slot_names`` and gives each shape in :meth:`Optimizer.slot_shape`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..parameter import Parameter
from ..validation import check_flag, check_integer, check_number
from . import kernels, schedules


class _Run:
    """Neighbouring parameters updated together: flat views of values, grads and slots.

    ``slots`` are the update rule's slots, ``base`` the base options' (``average``,
    ``gradient_accumulator``) by name, ``spans`` each parameter's ``(start, end)`` in the
    flat views (for rules that need per-parameter norms or shapes).
    """

    __slots__ = ("base", "decay", "grad", "parameters", "slots", "spans", "value")

    def __init__(self, parameters, value, grad, slots, decay=(), base=None):
        self.parameters, self.value, self.grad, self.slots = parameters, value, grad, slots
        self.decay = decay  # flat views of the values that weight decay applies to
        self.base = base or {}
        spans, start = [], 0
        for p in parameters:
            spans.append((start, start + p.size))
            start += p.size
        self.spans = tuple(spans)


def check_moments(beta_1: Any, beta_2: Any, epsilon: Any) -> tuple[float, float, float]:
    """The moment options of the Adam family (Adam, Nadam, Lamb), checked: both decay
    rates in ``[0, 1)``, ``epsilon >= 0``."""
    betas = (
        check_number(beta, argument, minimum=0.0, maximum=1.0, exclusive_maximum=True)
        for argument, beta in (("beta_1", beta_1), ("beta_2", beta_2))
    )
    return (*betas, check_number(epsilon, "epsilon", minimum=0.0))


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
        use_ema: keep an exponential moving average of the weights (slot ``average``):
            after every step ``a = m a + (1 - m) w``, with ``m = 0`` at the first step and
            ``ema_momentum`` after. :meth:`finalize_variable_values` copies it into the
            weights (``fit`` does so at its end, as Keras's).
        ema_momentum: ``m`` above, in ``[0, 1]``; Keras's default 0.99.
        ema_overwrite_frequency: with ``use_ema``, copy the average into the weights every
            this many steps (an integer >= 1), or never (None).
        loss_scale_factor: the trainer multiplies the loss by it before the backward pass
            (:meth:`scale_loss`) and the optimizer divides the gradients by it before
            anything else (mixed-precision loss scaling).
        gradient_accumulation_steps: an integer >= 2, or None: sum the gradients of this
            many calls (slot ``gradient_accumulator``) and update with their mean on the
            last, as Keras 3. ``iterations`` then counts updates, and a schedule follows
            the calls (Keras's ``_iterations``).
        name: optional name.

    Only one of the three clipping options may be set, as in Keras. ``lr=`` is refused
    (Keras 3 spells it ``learning_rate=``); tf.keras 2's ``decay=`` is applied as tf.keras
    2 did, ``lr / (1 + decay * iterations)``, with a warning pointing to
    :class:`~layerkit.optim.schedules.InverseTimeDecay` (Keras 3 ignores it silently).
    """

    slot_names: tuple[str, ...] = ()
    shaped_slot_names: tuple[str, ...] = ()  # state whose shape is not the parameter's
    default_learning_rate = 0.001

    def __init__(
        self,
        learning_rate: float | schedules.LearningRateSchedule | None = None,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs,
    ) -> None:
        decay = self._legacy_options(kwargs)
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
        self.use_ema = check_flag(use_ema, "use_ema")
        self.ema_momentum = check_number(ema_momentum, "ema_momentum", minimum=0.0, maximum=1.0)
        self.ema_overwrite_frequency = (
            None
            if ema_overwrite_frequency is None
            else check_integer(ema_overwrite_frequency, "ema_overwrite_frequency", minimum=1)
        )
        self.loss_scale_factor = (
            None
            if loss_scale_factor is None
            else check_number(
                loss_scale_factor, "loss_scale_factor", minimum=0.0, exclusive_minimum=True
            )
        )
        self.gradient_accumulation_steps = (
            None
            if gradient_accumulation_steps is None
            else check_integer(
                gradient_accumulation_steps, "gradient_accumulation_steps", minimum=2
            )
        )
        self.decay = decay
        self._exclude_names: frozenset[str] = frozenset()
        self._exclude_pattern: re.Pattern | None = None
        self.learning_rate = self.default_learning_rate if learning_rate is None else learning_rate
        self.name = name or type(self).__name__.lower()
        self._iterations = 0  # calls of apply (Keras's ``_iterations``)
        self._slots: dict[str, tuple[np.ndarray, ...]] = {}  # flat slots, then base slots
        self._shaped: dict[str, tuple[np.ndarray, ...]] = {}  # shaped_slot_names' arrays
        self._slot_blocks: list[tuple[np.ndarray, ...]] = []  # flat storage, one per slot
        self._slot_place: dict[str, tuple[int, int]] = {}  # name -> (block index, offset)
        self._pending_state: dict[str, dict[str, np.ndarray]] = {}
        self._plans: dict[tuple, tuple[list[_Run], list]] = {}
        self._scratch: dict[tuple, np.ndarray] = {}
        self._last_plan: tuple = (None, None)

    @staticmethod
    def _legacy_options(kwargs: dict[str, Any]) -> float | None:
        """Refuses ``lr=`` and unknown options; returns tf.keras 2's ``decay`` (or None)."""
        if "lr" in kwargs:
            raise TypeError(
                "Keras 3 optimizers take `learning_rate=`, not `lr=`: write "
                f"learning_rate={kwargs['lr']!r:.100}. Received: lr={kwargs['lr']!r:.100}"
            )
        decay = kwargs.pop("decay", None)
        if kwargs:
            raise TypeError(
                f"Argument(s) not recognized: {sorted(kwargs)}. Received: {kwargs!r:.200}"
            )
        if decay is None:
            return None
        decay = check_number(decay, "decay", minimum=0.0)
        if decay == 0.0:
            return None  # tf.keras 2's default, found in its saved configs: nothing to do
        warnings.warn(
            f"`decay={decay!r}` is tf.keras 2's learning-rate decay, which Keras 3 ignores; "
            "layerkit applies it as tf.keras 2 did, lr / (1 + decay * iterations). Write "
            "learning_rate=lk.optim.schedules.InverseTimeDecay(lr, decay_steps=1, "
            "decay_rate=decay) to say so in Keras 3's terms.",
            UserWarning,
            stacklevel=4,
        )
        return decay

    # --- iterations -----------------------------------------------------------------
    @property
    def iterations(self) -> int:
        """The number of updates taken (Keras's ``iterations``): with gradient
        accumulation, the calls of :meth:`apply` divided by the accumulation steps."""
        if self.gradient_accumulation_steps:
            return self._iterations // self.gradient_accumulation_steps
        return self._iterations

    @iterations.setter
    def iterations(self, value: int) -> None:
        value = check_integer(value, "iterations", minimum=0)
        self._iterations = value * (self.gradient_accumulation_steps or 1)

    # --- learning rate --------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The learning rate for the next step (the schedule's value, if there is one).

        A schedule follows the calls of :meth:`apply`, as Keras's (they differ from
        ``iterations`` with gradient accumulation). tf.keras 2's ``decay`` is not in it:
        it applies at the step, so a callback that reads and sets the rate does not
        compound it.
        """
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            return float(self._learning_rate(self._iterations))
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

    def _step_learning_rate(self) -> float:
        """The rate the next update uses: :attr:`learning_rate`, with tf.keras 2's
        ``decay`` applied if set."""
        lr = self.learning_rate
        if self.decay is not None:
            lr = lr / (1.0 + self.decay * self.iterations)
        return lr

    @property
    def schedule(self) -> schedules.LearningRateSchedule | None:
        lr = self._learning_rate
        return lr if isinstance(lr, schedules.LearningRateSchedule) else None

    # --- state ----------------------------------------------------------------------
    @property
    def base_slot_names(self) -> tuple[str, ...]:
        """The base options' slots, shaped as the parameter, in Keras's build order."""
        return (("average",) if self.use_ema else ()) + (
            ("gradient_accumulator",) if self.gradient_accumulation_steps else ()
        )

    @property
    def state_names(self) -> tuple[str, ...]:
        """Every state array of a parameter: the update's slots, the base options', then
        the shaped ones."""
        return self.slot_names + self.base_slot_names + self.shaped_slot_names

    def keras_slot_groups(self) -> tuple[tuple[str, ...], ...]:
        """The update rule's slots as Keras 3 creates them: one tuple per
        ``add_optimizer_variables`` call (see :mod:`layerkit.optim.keras_layout`)."""
        return (self.slot_names,) if self.slot_names else ()

    def keras_extra_variables(self, parameters: Sequence[Parameter]) -> list[np.ndarray]:
        """Keras 3 optimizer variables after the slots (Nadam's momentum cache)."""
        return []

    def slot_initial_value(self, slot: str) -> float:
        return 0.0

    def slot_scale(self, slot: str) -> float:
        """Stored slot = reported slot / scale (an optimizer may keep a scaled form)."""
        return 1.0

    def slot_shape(self, slot: str, parameter: Parameter) -> tuple[int, ...]:
        """The shape of the ``shaped_slot_names`` slot ``slot`` of ``parameter``."""
        raise NotImplementedError

    def build(self, parameters: Iterable[Parameter]) -> None:
        """Creates the state slots of parameters not seen before (all zeros, or the
        optimizer's initial value), each slot of the new ones in one contiguous block."""
        new = [p for p in parameters if p.name not in self._slots]
        if not new:
            return
        total = sum(p.size for p in new)
        dtype = new[0].dtype
        flat = self.slot_names + self.base_slot_names
        blocks = [np.full(total, self.slot_initial_value(s), dtype=dtype) for s in flat]
        block_id = len(self._slot_blocks)
        self._slot_blocks.append(tuple(blocks))
        offset = 0
        for p in new:
            end = offset + p.size
            self._slots[p.name] = tuple(b[offset:end].reshape(p.shape) for b in blocks)
            self._shaped[p.name] = tuple(
                np.full(self.slot_shape(s, p), self.slot_initial_value(s), dtype=p.dtype)
                for s in self.shaped_slot_names
            )
            self._slot_place[p.name] = (block_id, offset)
            offset = end
            pending = self._pending_state.pop(p.name, None)
            if pending is not None:
                self._load_slots(p.name, pending)
        self._plans.clear()
        self._last_plan = (None, None)

    def _state_arrays(self, name: str) -> tuple[np.ndarray, ...]:
        """The live state arrays of parameter ``name``, in :attr:`state_names`' order."""
        return self._slots[name] + self._shaped[name]

    def _scale(self, slot: str) -> float:
        # Only the update rule's own slots may be kept scaled; the others are as Keras's.
        return self.slot_scale(slot) if slot in self.slot_names else 1.0

    def slots(self, name: str) -> dict[str, np.ndarray]:
        """Returns copies of the state arrays of the parameter called ``name``, in the
        definitions of the update formula (Keras's)."""
        return {s: a * self._scale(s) for s, a in zip(self.state_names, self._state_arrays(name))}

    def state_dict(self) -> dict[str, Any]:
        """Returns ``{"iterations": int, "slots": {param name: {slot: array copy}}}``.

        The slots are copies of the arrays the update computes with (Adam keeps scaled
        moments, see :class:`~layerkit.optim.Adam`), so ``load_state_dict(state_dict())``
        is bit-exact; :meth:`slots` reports Keras's definitions. ``iterations`` counts the
        calls of :meth:`apply` (Keras's ``_iterations``, which with gradient accumulation
        also says where in the accumulation the state is).
        """
        slots = {
            name: {s: a.copy() for s, a in zip(self.state_names, self._state_arrays(name))}
            for name in self._slots
        }
        for name, pending in self._pending_state.items():
            slots.setdefault(name, {k: v.copy() for k, v in pending.items()})
        return {"iterations": self._iterations, "slots": slots}

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
        names = self.state_names
        for name, arrays in slots.items():
            if set(arrays) != set(names):
                raise ValueError(
                    f"Optimizer state for {name!r} has slots {sorted(arrays)}, "
                    f"but {type(self).__name__} expects {sorted(names)}."
                )
            if name in self._slots:
                for slot, current in zip(names, self._state_arrays(name)):
                    if np.shape(arrays[slot]) != current.shape:
                        raise ValueError(
                            f"Optimizer state {name!r}/{slot}: expected shape {current.shape}, "
                            f"received {np.shape(arrays[slot])}."
                        )
        for name, arrays in slots.items():
            if form == "keras":
                arrays = {k: np.asarray(v) / self._scale(k) for k, v in arrays.items()}
            if name in self._slots:
                self._load_slots(name, arrays)
            else:
                self._pending_state[name] = {k: np.array(v) for k, v in arrays.items()}
        self._iterations = iterations

    def _load_slots(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        for slot, current in zip(self.state_names, self._state_arrays(name)):
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
        """Updates ``parameters`` from the gradients already in their ``grad`` arrays.

        Keras 3's order: unscale (``loss_scale_factor``); with gradient accumulation, add
        to the accumulators and stop there except on every ``gradient_accumulation_steps``-th
        call, which takes the mean; clip; weight decay; the update rule; the moving
        average (``use_ema``, at every call). The gradient buffers serve as scratch.
        """
        if not parameters:
            return
        runs = self._plan(parameters)
        if self.loss_scale_factor is not None:
            for run in runs:
                run.grad /= self.loss_scale_factor
        if self._accumulate(runs):
            self._clip(runs)
            lr = self._step_learning_rate()
            if self.weight_decay is not None:  # Keras's order: clip, decay, update
                self._apply_weight_decay(runs, lr)
            for run in runs:
                self._update_run(run, lr)
        if self.use_ema:
            self._update_average(runs)
        self._iterations += 1

    def _update_run(self, run: _Run, lr: float) -> None:
        """One run's update; rules that need each parameter's shape or norm override it."""
        self.update_step(run.value, run.grad, run.slots, lr)

    def _accumulate(self, runs: list[_Run]) -> bool:
        """Gradient accumulation as Keras 3: ``acc += g`` on all but every ``steps``-th
        call, which turns the gradients into ``(g + acc) / steps`` and zeroes ``acc``.
        Returns whether this call updates the weights."""
        steps = self.gradient_accumulation_steps
        if not steps:
            return True
        update = (self._iterations + 1) % steps == 0
        for run in runs:
            accumulator = run.base["gradient_accumulator"]
            if update:
                run.grad += accumulator
                run.grad /= steps
                accumulator.fill(0.0)
            else:
                accumulator += run.grad
        return update

    def _update_average(self, runs: list[_Run]) -> None:
        """``a = m a + (1 - m) w`` (``m = 0`` at the first update, so ``a`` starts at the
        weights), then every ``ema_overwrite_frequency`` updates ``w = a``; Keras 3's
        arithmetic in the weights' dtype."""
        first = self.iterations == 0
        overwrite = (
            self.ema_overwrite_frequency is not None
            and (self.iterations + 1) % self.ema_overwrite_frequency == 0
        )
        for run in runs:
            average, real = run.base["average"], run.value.dtype.type
            momentum = real(0.0) if first else real(self.ema_momentum)
            kernel = kernels.get("moving_average", run.value.dtype, run.value.size)
            if kernel is not None:
                kernel(run.value, average, momentum, real(1.0) - momentum, overwrite)
                continue
            work = self._work(run.value.size, run.value.dtype)
            average *= momentum
            np.multiply(run.value, real(1.0) - momentum, out=work)
            average += work
            if overwrite:
                np.copyto(run.value, average)

    def finalize_variable_values(self, parameters: Iterable[Parameter]) -> None:
        """With ``use_ema``, copies the moving average into ``parameters`` (Keras calls it
        at the end of ``fit``); otherwise does nothing. Parameters never updated keep
        their values."""
        if not self.use_ema:
            return
        position = self.base_slot_names.index("average") + len(self.slot_names)
        for p in parameters:
            arrays = self._slots.get(p.name)
            if arrays is not None:
                np.copyto(p.value, arrays[position])

    def scale_loss(self, loss):
        """``loss * loss_scale_factor`` (the loss unchanged without one), as Keras's: the
        trainer differentiates the scaled loss and :meth:`apply` divides it back out."""
        if self.loss_scale_factor is None:
            return loss
        return loss * self.loss_scale_factor

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
            flat = tuple(b[offset : offset + size] for b in self._slot_blocks[block_id])
            count = len(self.slot_names)
            base = dict(zip(self.base_slot_names, flat[count:]))
            runs.append(
                _Run(group, value, grad, flat[:count], self._decay_views(group, value), base)
            )
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
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            # tf.keras 2's option only when set: Keras 3 would ignore it, with a warning
            **({"decay": self.decay} if self.decay is not None else {}),
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
