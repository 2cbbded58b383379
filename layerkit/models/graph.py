"""From a model's inputs and outputs to its graph: the calls in topological order.

:func:`map_graph` walks back from the output tensors through the recorded calls
(:class:`~layerkit.models.node.Node`), once, as Keras 3's ``map_graph``
(``keras/src/ops/function.py``) does, and refuses what cannot be a model: a call that
depends on an input the model was not given ("graph disconnected"), a cycle, two layers
with one name (checkpoints and configs refer to layers by name). The result orders the
calls so that each comes after the calls it takes tensors from, and lists the layers in
Keras's order (by decreasing depth from the outputs, ties in the order the walk met them),
so that ``model.layers`` reads the same as in Keras.

Example:
    >>> wide = lk.layers.Input((5,), name="wide_input")
    >>> deep = lk.layers.Input((6,), name="deep_input")
    >>> h1 = lk.layers.Dense(30, name="hidden1")(deep)
    >>> h2 = lk.layers.Dense(30, name="hidden2")(h1)
    >>> out = lk.layers.Dense(1, name="output")(lk.layers.concatenate([wide, h2]))
    >>> [layer.name for layer in map_graph([wide, deep], [out]).layers]
    ['deep_input', 'hidden1', 'wide_input', 'hidden2', 'concatenate', 'output']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .node import Node, SymbolicTensor

if TYPE_CHECKING:
    from ..layers.base import Layer


@dataclasses.dataclass(frozen=True)
class Graph:
    """The calls between a model's inputs and outputs.

    Attributes:
        inputs, outputs: the model's tensors, in the order given.
        nodes: every call, each after the calls it takes tensors from: the order a
            forward pass runs them in.
        layers: each layer once, in Keras's order (InputLayers included).
        depth: each node's distance from the outputs (0 for a node making an output).
    """

    inputs: tuple[SymbolicTensor, ...]
    outputs: tuple[SymbolicTensor, ...]
    nodes: tuple[Node, ...]
    layers: tuple[Layer, ...]
    depth: dict[Node, int]


def map_graph(
    inputs: SymbolicTensor | Sequence[SymbolicTensor],
    outputs: SymbolicTensor | Sequence[SymbolicTensor],
) -> Graph:
    """Finds the graph from ``inputs`` to ``outputs``.

    Raises:
        TypeError: an input or output that is not a symbolic tensor.
        ValueError: an input not made by ``lk.layers.Input``, an input given twice, an
            output that depends on a tensor that is not among the inputs, a cycle, or two
            layers with one name. Each message names the tensors and layers involved.
    """
    # One tensor stands for a list of one, as in keras.Model(x, y).
    inputs = [inputs] if isinstance(inputs, SymbolicTensor) else list(inputs)
    outputs = [outputs] if isinstance(outputs, SymbolicTensor) else list(outputs)
    for argument, tensors in (("inputs", inputs), ("outputs", outputs)):
        if not tensors:
            raise ValueError(f"A model needs at least one tensor in {argument}. Received: []")
        for tensor in tensors:
            if not isinstance(tensor, SymbolicTensor):
                raise TypeError(
                    f"Expected symbolic tensors (from lk.layers.Input and layer calls) in "
                    f"{argument}. Received: {tensor!r:.100} of type {type(tensor).__name__}"
                )
    for tensor in inputs:
        if tensor.node.inputs:  # only an InputLayer's node takes no tensor
            raise ValueError(
                f"Every model input must come from lk.layers.Input. Received: {tensor.name}, "
                f"the output of layer {tensor.node.layer.name!r}."
            )
    if len({id(t) for t in inputs}) != len(inputs):
        raise ValueError(
            f"Each model input may be given once. Received: {[t.name for t in inputs]}"
        )

    order = _walk(inputs, outputs)
    depth = _depths(order, outputs)
    position = {node: i for i, node in enumerate(order)}
    layer_depth: dict[int, int] = {}
    first_seen: dict[int, int] = {}
    layers_by_id: dict[int, Layer] = {}
    for node in order:
        key = id(node.layer)
        layers_by_id[key] = node.layer
        layer_depth[key] = max(layer_depth.get(key, 0), depth[node])
        first_seen.setdefault(key, position[node])
    layers = sorted(
        layers_by_id.values(), key=lambda layer: (-layer_depth[id(layer)], first_seen[id(layer)])
    )
    _check_unique_names(layers)
    return Graph(tuple(inputs), tuple(outputs), tuple(order), tuple(layers), depth)


def _walk(inputs: list[SymbolicTensor], outputs: list[SymbolicTensor]) -> list[Node]:
    """The nodes the outputs depend on, each after its parents (depth-first post-order
    from the outputs, arguments in order), without recursion: graphs may be deep."""
    given = {id(t.node) for t in inputs}
    done: set[int] = set()
    on_path: set[int] = set()
    order: list[Node] = []
    for output in outputs:
        stack: list[tuple[Node, int]] = [(output.node, 0)]
        while stack:
            node, next_parent = stack.pop()
            if next_parent == 0:
                if id(node) in done:
                    continue
                if not node.inputs and id(node) not in given:
                    raise ValueError(
                        f"Graph disconnected: the outputs depend on {node.outputs[0].name} "
                        f"(layer {node.layer.name!r}), which is not among the model's inputs "
                        f"{[t.name for t in inputs]}."
                    )
                on_path.add(id(node))
            if next_parent < len(node.inputs):
                stack.append((node, next_parent + 1))
                parent = node.inputs[next_parent].node
                if id(parent) in on_path:
                    raise ValueError(
                        f"The graph has a cycle: layer {node.layer.name!r} depends on its own "
                        f"output through {parent.layer.name!r}."
                    )
                if id(parent) not in done:
                    stack.append((parent, 0))
                continue
            on_path.discard(id(node))
            done.add(id(node))
            order.append(node)
    unused = [t.name for t in inputs if id(t.node) not in done]
    if unused:
        raise ValueError(
            f"Model inputs {unused} are not used to compute any of the outputs "
            f"{[t.name for t in outputs]}."
        )
    return order


def _depths(order: list[Node], outputs: list[SymbolicTensor]) -> dict[Node, int]:
    """Each node's depth from the outputs, as Keras: the longest distance to an output
    node, raised to the greatest depth of any call of the same layer seen so far (a
    shared layer's calls then sit at one depth, and what feeds them deeper)."""
    depth: dict[Node, int] = {}
    layer_depth: dict[int, int] = {}
    for node in reversed(order):  # children before parents
        d = max(depth.get(node, 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth[node] = d
        for parent in node.parents:
            depth[parent] = max(depth.get(parent, 0), d + 1)
    return depth


def _check_unique_names(layers: list[Layer]) -> None:
    seen: dict[str, int] = {}
    for layer in layers:
        seen[layer.name] = seen.get(layer.name, 0) + 1
    repeated = {name: n for name, n in seen.items() if n > 1}
    if repeated:
        name, n = next(iter(repeated.items()))
        raise ValueError(
            f"The name {name!r} is used {n} times in the model: all layer names must be "
            "unique (checkpoints and configs refer to layers by name). Pass name= to the "
            "layers."
        )
