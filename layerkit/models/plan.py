"""The plan: a model's graph as a flat list of calls over numbered slots, and its passes.

One engine runs every model. A :class:`Plan` numbers the tensors of a graph (*slots*:
the model's inputs first, then one per call) and lists the calls in an order where each
comes after the calls it reads from. A ``Sequential`` is the plan of a chain (call i
reads slot i and writes slot i+1); a functional ``Model`` is the plan of its graph.

A :class:`Pass` is what one kind of step runs over a plan, computed once and cached on
what it depends on (which slots are given, the layers' trainable flags, the losses):

- forward: the calls needed for the outputs, skipping those whose slots are given (the
  frozen-output cache gives the slots where the frozen part of the graph ends);
- backward: the same calls in reverse, only where a gradient is needed: a call runs its
  backward if its layer has trainable weights or a trainable call lies upstream of it.
  A slot read by several calls receives the sum of their input gradients (the first
  write takes the array, later ones add into it), and a layer called several times (a
  shared layer) assigns its weight gradients on its first backward of the step and adds
  on later ones (``Layer._accumulate``), so its gradient is the sum over its calls;
- each call's buffers are keyed by the call (``Layer._call``), so the two calls of a
  shared layer in one step never overwrite each other's outputs.

This is the shape ``../shared/STYLE.md`` sketches (a list of ``(layer, input slots,
output slot)`` steps); see ``docs/graphs.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..parameter import last_change

if TYPE_CHECKING:
    from ..layers.base import Layer
    from ..parameter import Parameter
    from .graph import Graph

_MAX_PASSES = 32


class Call:
    """One call of a layer in a plan: reads ``inputs`` (slots), writes ``output``."""

    __slots__ = ("inputs", "key", "layer", "listed", "output")

    def __init__(self, layer: Layer, inputs: tuple[int, ...], output: int, key: int, listed: bool):
        self.layer, self.inputs, self.output, self.key, self.listed = (
            layer,
            inputs,
            output,
            key,
            listed,
        )

    def __repr__(self) -> str:
        return f"<Call {self.layer.name}{list(self.inputs)} -> {self.output}>"


class Pass:
    """The calls one kind of step runs, with what its backward needs.

    Attributes:
        sources: the slots given to the pass (model inputs, or cached features).
        forward: the calls to run, in order.
        logits: for each call in ``forward``, whether it skips its activation (a loss
            fused with that activation takes its logits).
        backward: ``(position in forward, need_dx, accumulate)`` in the order to run them.
        grad_slots: the slots whose gradient some backward needs.
        params: the trainable weights the backward writes gradients for (each once).
        fused: per model output, the fused loss (or None).
        activity: ``(slot, regularizer)`` for each call whose layer penalises its output
            (``activity_regularizer``), in forward order.
    """

    __slots__ = (
        "activity",
        "backward",
        "backward_ops",
        "constrained",
        "forward",
        "forward_ops",
        "fused",
        "grad_slots",
        "logits",
        "params",
        "regularized",
        "sources",
    )

    def __init__(
        self, sources, forward, logits, backward, grad_slots, params, fused, activity=()
    ) -> None:
        self.sources, self.forward, self.logits = sources, forward, logits
        self.activity = activity
        self.backward, self.grad_slots, self.params, self.fused = (
            backward,
            grad_slots,
            params,
            fused,
        )
        # The trainable weights with a penalty or a constraint (usually none).
        self.regularized = tuple(p for p in params if p.regularizer is not None)
        self.constrained = tuple(p for p in params if p.constraint is not None)
        # What the loops read, unpacked once. A layer called once in the pass keeps the
        # buffers of whatever call it last ran (None: no need to set ``_call``).
        calls_of: dict[int, int] = {}
        for call in forward:
            calls_of[id(call.layer)] = calls_of.get(id(call.layer), 0) + 1

        def key(call: Call):
            return call.key if calls_of[id(call.layer)] > 1 else None

        self.forward_ops = tuple(
            (c.layer, key(c), c.inputs, c.listed, c.output, lg) for c, lg in zip(forward, logits)
        )
        self.backward_ops = tuple(
            (
                i,
                forward[i].layer,
                key(forward[i]),
                forward[i].output,
                forward[i].inputs,
                forward[i].listed,
                need_dx,
                accumulate,
                tuple(s in grad_slots for s in forward[i].inputs),
            )
            for i, need_dx, accumulate in backward
        )

    @property
    def trains(self) -> bool:
        return bool(self.params)


class Plan:
    """The calls of a model over numbered slots.

    Attributes:
        calls: every call, each after the calls whose outputs it reads.
        n_slots: the number of slots (tensors).
        inputs: the model inputs' slots (``0 .. n-1``).
        outputs: the model outputs' slots, in the model's output order.
        layers: each computing layer once, in call order.
    """

    def __init__(self, calls: Sequence[Call], n_inputs: int, outputs: Sequence[int]) -> None:
        self.calls = tuple(calls)
        self.inputs = tuple(range(n_inputs))
        self.outputs = tuple(outputs)
        self.n_slots = n_inputs + len(self.calls)
        seen: dict[int, Layer] = {}
        for call in self.calls:
            seen.setdefault(id(call.layer), call.layer)
        self.layers: tuple[Layer, ...] = tuple(seen.values())
        self.producer: dict[int, Call] = {call.output: call for call in self.calls}
        consumers: dict[int, list[Call]] = {}
        for call in self.calls:
            for slot in call.inputs:
                consumers.setdefault(slot, []).append(call)
        self.consumers = consumers
        self._passes: dict[tuple, Pass] = {}
        self._last: tuple | None = None

    @classmethod
    def of_chain(cls, layers: Sequence[Layer]) -> Plan:
        """The plan of a stack: call i reads slot i and writes slot i + 1."""
        calls = [Call(layer, (i,), i + 1, 0, False) for i, layer in enumerate(layers)]
        return cls(calls, 1, [len(calls)])

    @classmethod
    def of_graph(cls, graph: Graph) -> Plan:
        """The plan of a graph from :func:`~layerkit.models.graph.map_graph`."""
        slot: dict[int, int] = {id(t): i for i, t in enumerate(graph.inputs)}
        calls = []
        for node in graph.nodes:
            if not node.inputs:  # an InputLayer: its tensor is a model input's slot
                continue
            if len(node.outputs) != 1:
                raise ValueError(f"Layer {node.layer.name!r} returns several tensors.")
            output = len(graph.inputs) + len(calls)
            inputs = tuple(slot[id(t)] for t in node.inputs)
            calls.append(Call(node.layer, inputs, output, node.index, node.listed))
            slot[id(node.outputs[0])] = output
        return cls(calls, len(graph.inputs), [slot[id(t)] for t in graph.outputs])

    # --- passes ------------------------------------------------------------------------
    def forget_passes(self) -> None:
        self._passes.clear()
        self._last = None

    def get_pass(
        self,
        sources: tuple[int, ...] | None = None,
        losses: Sequence | None = None,
        wanted: tuple[int, ...] | None = None,
    ) -> Pass:
        """The pass from ``sources`` (the model inputs by default) to ``wanted`` (the
        model outputs by default).

        ``losses``: one loss (or None) per output. With losses the pass has a backward
        over the layers that are trainable now, and fuses a loss with its output layer's
        activation where the loss allows it; without, it only computes forward.
        """
        last = self._last
        if (
            last is not None
            and last[0] is sources
            and last[1] is losses
            and last[2] is wanted
            and last[3] == last_change()
        ):
            return last[4]  # the step's usual case: nothing changed since the last step
        change = last_change()
        given = (sources, losses, wanted)
        sources = self.inputs if sources is None else tuple(sources)
        wanted = self.outputs if wanted is None else tuple(wanted)
        flags = tuple(layer._trainable for layer in self.layers)
        losses_key = None if losses is None else tuple(id(loss) for loss in losses)
        key = (sources, wanted, flags, losses_key)
        found = self._passes.get(key)
        if found is None:
            found = self._make_pass(sources, losses, wanted)
            if len(self._passes) >= _MAX_PASSES:
                self._passes.clear()
            self._passes[key] = found
        # Trainable flags changing bump last_change(): then the flags are read again.
        self._last = (*given, change, found)
        return found

    def _needed(self, sources: tuple[int, ...], wanted: Sequence[int]) -> list[Call]:
        """The calls that compute ``wanted`` from ``sources``, in call order."""
        given = set(sources)
        needed: set[int] = set()
        stack = [slot for slot in wanted if slot not in given]
        while stack:
            slot = stack.pop()
            if slot in needed:
                continue
            call = self.producer.get(slot)
            if call is None:
                raise ValueError(f"Slot {slot} is neither given nor computed.")
            needed.add(slot)
            stack.extend(s for s in call.inputs if s not in given and s not in needed)
        return [call for call in self.calls if call.output in needed]

    def _make_pass(
        self, sources: tuple[int, ...], losses: Sequence | None, wanted: tuple[int, ...]
    ) -> Pass:
        forward = self._needed(sources, wanted)
        position = {call.output: i for i, call in enumerate(forward)}
        fused: list = [None] * len(self.outputs)
        logits = [False] * len(forward)
        if losses is not None and wanted == self.outputs:
            for i, (slot, loss) in enumerate(zip(self.outputs, losses)):
                if loss is None or slot not in position or self.outputs.count(slot) > 1:
                    continue
                if any(c.output in position for c in self.consumers.get(slot, ())):
                    continue  # another call reads the activated output
                layer = forward[position[slot]].layer
                if layer.activity_regularizer is not None:
                    continue  # the penalty reads the activated output
                activation = getattr(layer, "activation", None)
                name = getattr(activation, "name", None)
                fused[i] = loss.fused_with(name) if name is not None else None
                logits[position[slot]] = fused[i] is not None
        backward: list[tuple[int, bool, bool]] = []
        grad_slots: set[int] = set()
        params: list[Parameter] = []
        activity = tuple(
            (call.output, call.layer.activity_regularizer)
            for call in forward
            if call.layer.activity_regularizer is not None
        )
        if losses is not None and wanted == self.outputs:
            # Slots that reach a loss (or an output penalty): only they receive a gradient.
            reach = {slot for slot, loss in zip(self.outputs, losses) if loss is not None}
            reach.update(slot for slot, _ in activity)
            for call in reversed(forward):
                if call.output in reach:
                    reach.update(call.inputs)
            # Which calls have something trainable at or above their inputs (upstream).
            upstream: set[int] = set()  # slots whose producer side has a trainable call
            for call in forward:
                weighted = call.layer._trains()
                if weighted or any(s in upstream for s in call.inputs):
                    upstream.add(call.output)
            seen_layers: set[int] = set()
            seen_params: set[int] = set()
            for i in range(len(forward) - 1, -1, -1):
                call = forward[i]
                if call.output not in reach or call.output not in upstream:
                    continue
                need_dx = any(s in upstream for s in call.inputs)
                layer = call.layer
                accumulate = id(layer) in seen_layers
                seen_layers.add(id(layer))
                backward.append((i, need_dx, accumulate))
                grad_slots.add(call.output)
                if layer._trainable:
                    for p in layer._parameters:
                        if not p.statistic and id(p) not in seen_params:
                            seen_params.add(id(p))
                            params.append(p)
            grad_slots.update(s for s in upstream if s in reach)
            # Keep the model's weight order: the fused optimizer update walks the arena.
            order = {
                id(p): n for n, p in enumerate(q for lay in self.layers for q in lay._parameters)
            }
            params.sort(key=lambda p: order[id(p)])
        return Pass(
            sources,
            tuple(forward),
            tuple(logits),
            tuple(backward),
            frozenset(grad_slots),
            tuple(params),
            tuple(fused),
            activity,
        )

    # --- running -----------------------------------------------------------------------
    def run_forward(
        self, step: Pass, arrays: Sequence[np.ndarray], training: bool, backs: list | None = None
    ) -> list:
        """Runs ``step``'s forward calls on ``arrays`` (one per source slot); returns the
        slot values (a list indexed by slot). With ``backs``, keeps each call's backward."""
        values: list[Any] = [None] * self.n_slots
        for slot, array in zip(step.sources, arrays):
            values[slot] = array
        for i, (layer, key, inputs, listed, output, logits) in enumerate(step.forward_ops):
            if key is not None:
                layer._call = key
            x = [values[s] for s in inputs] if listed else values[inputs[0]]
            if logits:
                y, back = layer.forward(x, training, logits=True)
            else:
                y, back = layer.forward(x, training)
            values[output] = y
            if backs is not None:
                backs[i] = back
        return values

    def run_backward(
        self, step: Pass, backs: list, output_grads: Sequence, seeds: dict | None = None
    ) -> None:
        """Runs ``step``'s backward from the gradients of the outputs (None for an output
        without a loss): writes the trainable weights' gradients. ``seeds`` maps other
        slots to gradients of their own (output penalties), which the backward adds to."""
        grads: list[Any] = [None] * self.n_slots
        if seeds:
            for slot, grad in seeds.items():
                grads[slot] = grad
        for slot, grad in zip(self.outputs, output_grads):
            if grad is not None:
                grads[slot] = grad if grads[slot] is None else grads[slot] + grad
        for i, layer, key, output, inputs, listed, need_dx, accumulate, wanted in step.backward_ops:
            if key is not None:
                layer._call = key
            if accumulate:
                layer._accumulate = True
                dx = backs[i](grads[output], need_dx)
                layer._accumulate = False
            else:
                dx = backs[i](grads[output], need_dx)
            if not need_dx:
                continue
            if listed:
                for slot, g, needed in zip(inputs, dx, wanted):
                    if needed:
                        grads[slot] = g if grads[slot] is None else _add(grads[slot], g)
            else:
                slot = inputs[0]
                grads[slot] = dx if grads[slot] is None else _add(grads[slot], dx)


def _add(into: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``into + other``, in place when ``into`` is a writable array of the sum's shape."""
    if into.flags.writeable and into.shape == np.broadcast_shapes(into.shape, other.shape):
        into += other
        return into
    return into + other
