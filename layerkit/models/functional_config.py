"""A graph model's config, in Keras 3's functional form, and the model rebuilt from one.

The config lists the layers (each with ``inbound_nodes``: one entry per call, whose
``args`` hold the tensors it was called on as ``{"class_name": "__keras_tensor__",
"config": {"shape", "dtype", "keras_history": [layer, call, 0]}}``; a merge layer's
``args`` hold one list of them), and ``input_layers`` / ``output_layers`` as
``[layer, call, 0]`` triples (one triple, not a list of one, for a single output), as
``keras.Model.get_config()`` writes them.

A config read from a file is untrusted: :func:`model_from_config` checks the whole graph
(sizes, names, references, cycles, the shapes of the calls and the weights they would
create) before any layer is built, so a malformed file allocates nothing and says what
is wrong.
"""

from __future__ import annotations

import collections
from typing import Any

from ..layers.base import deserialize, serialize

MAX_LAYERS = 10_000
MAX_CALLS_PER_LAYER = 1_000
MAX_ARGS = 1_000
MAX_WEIGHTS = 1 << 31  # values: 8 GiB of float32
MAX_VALUES_PER_SAMPLE = 1 << 28  # the output of one call for one sample: 1 GiB of float32


def _history(tensor, call_index: dict[int, int]) -> list:
    return [tensor.node.layer.name, call_index[id(tensor.node)], tensor.index]


def graph_config(model) -> dict[str, Any]:
    """``model.get_config()`` of a graph model."""
    graph = model._graph
    # Calls are numbered per model, in the order the model makes them (a layer shared
    # with another model may have other calls there).
    call_index: dict[int, int] = {}
    per_layer: dict[int, int] = {}
    for node in graph.nodes:
        key = id(node.layer)
        call_index[id(node)] = per_layer.get(key, 0)
        per_layer[key] = call_index[id(node)] + 1
    calls: dict[int, list] = {}
    for node in graph.nodes:
        if not node.inputs:
            continue
        tensors = [
            {
                "class_name": "__keras_tensor__",
                "config": {
                    "shape": list(t.shape),
                    "dtype": t.dtype,
                    "keras_history": _history(t, call_index),
                },
            }
            for t in node.inputs
        ]
        args = [tensors] if node.listed else tensors
        calls.setdefault(id(node.layer), []).append({"args": args, "kwargs": {}})
    layers = []
    for layer in graph.layers:
        spec = serialize(layer)
        spec["name"] = layer.name
        spec["inbound_nodes"] = calls.get(id(layer), [])
        layers.append(spec)
    inputs = [_history(t, call_index) for t in graph.inputs]
    outputs = [_history(t, call_index) for t in graph.outputs]
    config: dict[str, Any] = {
        "name": model.name,
        "trainable": model.trainable,
        "layers": layers,
        "input_layers": inputs[0] if len(inputs) == 1 and model._input_keys is None else inputs,
        "output_layers": outputs[0] if model._single_output else outputs,
    }
    if model._input_keys is not None:
        config["input_names"] = list(model._input_keys)
    if model._output_keys is not None:
        config["output_names"] = list(model._output_keys)
    return config


# --- reading -----------------------------------------------------------------------------
def _fail(message: str) -> None:
    raise ValueError(f"Invalid functional model config: {message}")


def _triple(value: Any, where: str) -> tuple[str, int, int]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 3
        or not isinstance(value[0], str)
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value[1:])
    ):
        _fail(f"{where} must be [layer name, call index, tensor index]. Received: {value!r:.120}")
    return value[0], int(value[1]), int(value[2])


def _triples(value: Any, where: str) -> list[tuple[str, int, int]]:
    if isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], str):
        return [_triple(value, where)]
    if not isinstance(value, (list, tuple)) or not value or len(value) > MAX_ARGS:
        _fail(f"{where} must be a non-empty list of tensors. Received: {value!r:.120}")
    return [_triple(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _call_args(call: Any, where: str) -> tuple[list[tuple[str, int, int]], bool]:
    """The tensors one inbound call reads, and whether they were passed as a list.
    Accepts Keras 3's form (``{"args": [...], "kwargs": {}}``) and tf.keras 2's
    (``[[layer, call, tensor, kwargs], ...]``)."""
    if isinstance(call, dict):
        args = call.get("args")
        if not isinstance(args, list) or (
            len(args) != 1 and not all(isinstance(a, dict) for a in args)
        ):
            _fail(f"{where}.args must be the tensors of the call. Received: {args!r:.120}")
        listed = len(args) == 1 and isinstance(args[0], list)
        tensors = args[0] if listed else args
        if not tensors or len(tensors) > MAX_ARGS:
            _fail(f"{where} calls a layer on {len(tensors)} tensors.")
        result = []
        for i, tensor in enumerate(tensors):
            if not isinstance(tensor, dict) or tensor.get("class_name") != "__keras_tensor__":
                _fail(f"{where}: argument {i} is not a tensor. Received: {tensor!r:.120}")
            config = tensor.get("config")
            history = config.get("keras_history") if isinstance(config, dict) else None
            result.append(_triple(history, f"{where}: argument {i} keras_history"))
        return result, listed
    if isinstance(call, list) and call and all(isinstance(t, list) for t in call):
        if len(call) > MAX_ARGS:
            _fail(f"{where} calls a layer on {len(call)} tensors.")
        return [_triple(t[:3], where) for t in call], len(call) > 1
    _fail(f"{where} must be a call ({{'args': [...], 'kwargs': {{}}}}). Received: {call!r:.120}")
    raise AssertionError  # unreachable


class CheckedConfig:
    """A functional config checked whole: the layer objects (no weights yet), the calls
    in an order that can run, and the weights each layer will create."""

    def __init__(self, layers, inbound, order, inputs, outputs, weight_shapes) -> None:
        self.layers, self.inbound, self.order = layers, inbound, order
        self.inputs, self.outputs, self.weight_shapes = inputs, outputs, weight_shapes


def check_config(config: Any) -> CheckedConfig:
    """Checks a functional config without building anything (see the module docstring).

    Raises:
        ValueError: naming what is malformed: sizes, names, unknown layers, references
            to calls that do not exist, cycles, shapes a layer cannot take.
    """
    from ..layers.input_layer import InputLayer
    from ..layers.merge import MergeLayer

    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        _fail(f"expected a dict with a list of layers. Received: {config!r:.200}")
    specs = config["layers"]
    if not specs or len(specs) > MAX_LAYERS:
        _fail(f"expected 1 to {MAX_LAYERS} layers. Received: {len(specs)}")
    # 1. The layer objects (no weights yet), names unique.
    layers: dict[str, Any] = {}
    inbound: dict[str, list] = {}
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            _fail(f"layers[{i}] must be a dict. Received: {spec!r:.120}")
        nodes = spec.get("inbound_nodes", [])
        if not isinstance(nodes, list) or len(nodes) > MAX_CALLS_PER_LAYER:
            _fail(f"layers[{i}].inbound_nodes must be a list of at most {MAX_CALLS_PER_LAYER}.")
        layer = deserialize({"class_name": spec.get("class_name"), "config": spec.get("config")})
        name = spec.get("name", layer.name)
        if name != layer.name:
            _fail(f"layers[{i}] is named {name!r} but its config says {layer.name!r}.")
        if name in layers:
            _fail(f"two layers are named {name!r}.")
        layers[name] = layer
        inbound[name] = [
            _call_args(call, f"layers[{i}] ({name}) inbound_nodes[{k}]")
            for k, call in enumerate(nodes)
        ]
        if isinstance(layer, InputLayer) and inbound[name]:
            _fail(f"the InputLayer {name!r} has inbound calls.")
        if not isinstance(layer, InputLayer) and not inbound[name]:
            _fail(f"layer {name!r} is never called.")
    inputs = _triples(config.get("input_layers"), "input_layers")
    outputs = _triples(config.get("output_layers"), "output_layers")

    # 2. References resolve: every tensor is (layer, call, 0) of a call that exists.
    def check_ref(ref: tuple[str, int, int], where: str) -> None:
        name, call, index = ref
        if name not in layers:
            _fail(f"{where} refers to an unknown layer {name!r}.")
        calls = 1 if isinstance(layers[name], InputLayer) else len(inbound[name])
        if call >= calls or index != 0:
            _fail(
                f"{where} refers to call {call}, tensor {index} of layer {name!r}, "
                f"which has {calls} call(s) of one tensor."
            )

    for name, calls in inbound.items():
        for k, (refs, _) in enumerate(calls):
            for ref in refs:
                check_ref(ref, f"layer {name!r} call {k}")
    for ref in inputs:
        check_ref(ref, "input_layers")
        if not isinstance(layers[ref[0]], InputLayer):
            _fail(f"input_layers lists {ref[0]!r}, which is not an InputLayer.")
    for ref in outputs:
        check_ref(ref, "output_layers")
    # 3. An order in which every call's tensors exist (none: a cycle), with shapes.
    shapes: dict[tuple[str, int], tuple] = {}
    for name, layer in layers.items():
        if isinstance(layer, InputLayer):
            shapes[(name, 0)] = (None, *layer.shape)
    # Kahn's order: each call waits for the calls whose outputs it reads; linear in the
    # number of calls whatever order the config lists them in.
    calls = [(name, k) for name, layer_calls in inbound.items() for k in range(len(layer_calls))]
    waiting: dict[tuple[str, int], int] = {}
    readers: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for call in calls:
        parents = {(r[0], r[1]) for r in inbound[call[0]][call[1]][0]} - set(shapes)
        waiting[call] = len(parents)
        for parent in parents:
            readers.setdefault(parent, []).append(call)
    ready = collections.deque(call for call in calls if waiting[call] == 0)
    order: list[tuple[str, int]] = []
    built_shape: dict[str, tuple] = {}
    weight_shapes: dict[str, dict[str, tuple]] = {}
    total = 0
    while ready:
        name, k = ready.popleft()
        refs, listed = inbound[name][k]
        layer = layers[name]
        in_shapes = [shapes[(r[0], r[1])] for r in refs]
        try:
            if isinstance(layer, MergeLayer) or listed:
                out_shape = layer.compute_output_shape(in_shapes)
                weight_shape = None
            else:
                if len(in_shapes) != 1:
                    _fail(f"layer {name!r} call {k} passes {len(in_shapes)} tensors.")
                out_shape = layer.compute_output_shape(in_shapes[0])
                weight_shape = in_shapes[0]
        except ValueError:
            raise
        except Exception as error:  # a layer refusing shapes it cannot take
            _fail(f"layer {name!r} call {k} cannot take inputs of shape {in_shapes}: {error}")
        if weight_shape is not None:
            if name in built_shape and built_shape[name][1:] != weight_shape[1:]:
                _fail(
                    f"shared layer {name!r} is called on shapes {built_shape[name]} "
                    f"and {weight_shape}."
                )
            if name not in built_shape:
                weight_shapes[name] = layer.weight_shapes(weight_shape)
                total += sum(_size(s) for s in weight_shapes[name].values())
            built_shape[name] = weight_shape
        if total > MAX_WEIGHTS:
            _fail(f"the layers would hold {total} weights (more than {MAX_WEIGHTS}).")
        values = _size(tuple(out_shape)[1:])
        if values > MAX_VALUES_PER_SAMPLE:
            _fail(
                f"layer {name!r} call {k} would output {values} values per sample "
                f"(shape {tuple(out_shape)}; at most {MAX_VALUES_PER_SAMPLE})."
            )
        shapes[(name, k)] = tuple(out_shape)
        order.append((name, k))
        for reader in readers.get((name, k), ()):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                ready.append(reader)
    if len(order) < len(calls):
        stuck = ", ".join(f"{n} call {k}" for n, k in calls if (n, k) not in shapes)
        _fail(f"the calls {stuck[:300]} wait for one another's outputs (a cycle).")
    for where, key, count in (
        ("input_names", "input_names", len(inputs)),
        ("output_names", "output_names", len(outputs)),
    ):
        names = config.get(key)
        if names is None:
            continue
        if (
            not isinstance(names, list)
            or len(names) != count
            or not all(isinstance(n, str) and n for n in names)
            or len(set(names)) != len(names)
        ):
            _fail(
                f"{where} must be a list of {count} distinct, non-empty strings (one per "
                f"model {where.split('_')[0]}). Received: {names!r:.120}"
            )
    return CheckedConfig(
        layers, inbound, order, inputs, outputs, {k: v for k, v in weight_shapes.items() if v}
    )


def model_from_config(config: Any):
    """Builds a graph model from its config, after checking all of it."""
    from ..layers.input_layer import InputLayer
    from ..layers.merge import MergeLayer
    from .model import Model

    checked = check_config(config)
    layers, inbound, order = checked.layers, checked.inbound, checked.order
    inputs, outputs = checked.inputs, checked.outputs
    # Build by replaying the calls on symbolic tensors.
    tensors: dict[tuple[str, int], Any] = {}
    for name, layer in layers.items():
        if isinstance(layer, InputLayer):
            tensors[(name, 0)] = layer.output
    for name, k in order:
        refs, listed = inbound[name][k]
        args = [tensors[(r[0], r[1])] for r in refs]
        layer = layers[name]
        tensors[(name, k)] = layer(args if listed or isinstance(layer, MergeLayer) else args[0])
    model_inputs = [tensors[(r[0], r[1])] for r in inputs]
    model_outputs = [tensors[(r[0], r[1])] for r in outputs]
    input_names, output_names = config.get("input_names"), config.get("output_names")
    if input_names is not None:  # checked: distinct strings, one per input
        model_inputs = dict(zip(input_names, model_inputs))
    if output_names is not None:
        model_outputs = dict(zip(output_names, model_outputs))
    elif len(model_outputs) == 1 and not _is_list_of_triples(config.get("output_layers")):
        model_outputs = model_outputs[0]
    name = config.get("name")
    return Model(model_inputs, model_outputs, name=name if isinstance(name, str) else None)


def _is_list_of_triples(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], list)


def _size(shape: tuple) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
