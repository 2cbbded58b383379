"""``Model``: a graph of layers from inputs to outputs (Keras's Functional API), or a
subclass whose ``call`` composes layers; the base of ``Sequential``.

Everything a model does with its layers (weights, freezing, saving, the summary) lives
here once; what differs between a graph and a stack is how the layers are found and
which :class:`~layerkit.models.plan.Plan` runs them.

Example:
    >>> wide = lk.layers.Input((5,), name="wide_input")
    >>> deep = lk.layers.Input((6,), name="deep_input")
    >>> hidden = lk.layers.Dense(30, activation="relu", name="hidden")(deep)
    >>> output = lk.layers.Dense(1, name="output")(lk.layers.concatenate([wide, hidden]))
    >>> model = lk.Model(inputs=[wide, deep], outputs=output)
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> model.fit({"wide_input": x_wide, "deep_input": x_deep}, y, epochs=2)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..layers.base import Layer, check_name, unique_name
from ..layers.input_layer import InputLayer
from ..parameter import Parameter, check_new_values, pack
from ..random import make_rng
from ..registry import register_model
from .graph import Graph, map_graph
from .node import SymbolicTensor, is_symbolic
from .plan import Plan
from .summary import format_summary
from .trainer import Trainer


class Model(Trainer):
    """A model made of layers: ``Model(inputs, outputs)`` for a graph, or a subclass.

    Args:
        inputs: the model's input tensors (from ``lk.layers.Input``): one, a list, or a
            dict by name.
        outputs: the tensors it computes from them: one (``predict`` returns an array),
            a list (a list; a list of one returns one array, as Keras 3), or a dict (a
            dict).
        name: the model's name (automatic: ``functional``, ``functional_1``...).

    A subclass defines its layers in ``__init__`` and composes them in ``call(inputs)``;
    it is traced once, on symbolic inputs of the first data's shape, into the same graph
    a functional model has (so it trains, freezes, caches and saves like one):

    Example:
        >>> class WideAndDeep(lk.Model):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.hidden = lk.layers.Dense(30, activation="relu")
        ...         self.out = lk.layers.Dense(1)
        ...     def call(self, inputs):
        ...         wide, deep = inputs
        ...         return self.out(lk.layers.concatenate([wide, self.hidden(deep)]))
    """

    def __init__(
        self,
        inputs: Any = None,
        outputs: Any = None,
        name: str | None = None,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        default = "functional" if type(self) is Model else _snake(type(self).__name__)
        self.name = check_name(name) if name is not None else unique_name(default)
        self._layers: list[Layer] = []
        self._tracked: list[Layer] = []  # layers assigned as attributes (subclasses)
        self.built = False
        self._arena = None
        self._shuffle_rng = make_rng()
        self._trainable = bool(trainable)
        self._graph: Graph | None = None
        self._plan_obj: Plan | None = None
        self._input_keys: list[str] | None = None  # inputs given as a dict
        self._output_keys: list[str] | None = None
        self._single_output = True
        self._inbound_nodes: list = []
        if inputs is None and outputs is None:
            if type(self) is Model:
                raise TypeError(
                    "lk.Model needs inputs and outputs: lk.Model(inputs=x, outputs=y) with "
                    "tensors from lk.layers.Input and layer calls, or subclass lk.Model "
                    "and define call()."
                )
            return
        if inputs is None or outputs is None:
            raise TypeError(
                "lk.Model needs both inputs and outputs. Received: "
                f"inputs={inputs!r:.80}, outputs={outputs!r:.80}"
            )
        self._init_graph(inputs, outputs)

    # --- the graph ------------------------------------------------------------------
    def _init_graph(self, inputs: Any, outputs: Any) -> None:
        self._input_keys = list(inputs) if isinstance(inputs, dict) else None
        flat_inputs = _flatten(inputs, "inputs")
        # Outputs given as a dict are listed by name, as Keras 3 does (output_names,
        # predict's dict and the logs follow that order).
        if isinstance(outputs, dict):
            outputs = dict(sorted(outputs.items()))
        self._output_keys = list(outputs) if isinstance(outputs, dict) else None
        flat_outputs = _flatten(outputs, "outputs")
        # A list of one output predicts one array, as Keras 3.
        self._single_output = self._output_keys is None and len(flat_outputs) == 1
        self._graph = map_graph(flat_inputs, flat_outputs)
        self._layers = list(self._graph.layers)
        for layer in self._layers:
            if not layer.built:
                raise ValueError(f"Layer {layer.name!r} of the graph is not built.")
        self.built = True
        if not self._trainable:
            for layer in self._layers:
                layer.trainable = False
        self._on_structure_change()

    @property
    def inputs(self) -> list[SymbolicTensor]:
        """The model's input tensors, in order."""
        self._require_graph("inputs")
        return list(self._graph.inputs)

    @property
    def outputs(self) -> list[SymbolicTensor]:
        """The model's output tensors, in order."""
        self._require_graph("outputs")
        return list(self._graph.outputs)

    @property
    def input(self):
        """The input tensor (a list when there are several), as Keras."""
        inputs = self.inputs
        return inputs[0] if len(inputs) == 1 else inputs

    @property
    def output(self):
        """The output tensor (a list when there are several), as Keras."""
        outputs = self.outputs
        return outputs[0] if len(outputs) == 1 else outputs

    @property
    def input_names(self) -> list[str]:
        return self._input_names()

    @property
    def output_names(self) -> list[str]:
        return self._output_names()

    def _require_graph(self, what: str) -> None:
        if self._graph is None:
            raise AttributeError(
                f"Model {self.name!r} has no {what} yet: it is built on its first call "
                "(or model.build(input_shape))."
            )

    @property
    def layers(self) -> list[Layer]:
        """The layers in Keras's order (a graph lists its InputLayers)."""
        if self._graph is None:
            return list(self._tracked)
        return list(self._layers)

    @property
    def _stack(self) -> list[Layer]:
        """The layers that compute (no InputLayer), each once, in ``layers`` order."""
        return [layer for layer in self._layers if not isinstance(layer, InputLayer)]

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """Returns a layer by name or by index in ``layers``."""
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"Index {index} out of range for {len(layers)} layers.")
            return layers[index]
        for layer in self._layers or layers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"No such layer: {name!r}. Existing layers are: {[layer.name for layer in layers]}."
        )

    # --- what the trainer asks ------------------------------------------------------
    def _get_plan(self) -> Plan:
        if self._plan_obj is None:
            if self._graph is None:
                raise ValueError(f"Model {self.name!r} is not built yet.")
            self._plan_obj = Plan.of_graph(self._graph)
        return self._plan_obj

    def _forget_plan(self) -> None:
        self._plan_obj = None

    def _input_names(self) -> list[str]:
        if self._graph is None:
            return ["input_layer"]
        if self._input_keys is not None:
            return list(self._input_keys)
        return [t.node.layer.name for t in self._graph.inputs]

    def _input_shapes(self) -> list[tuple]:
        return [t.shape for t in self._graph.inputs]

    def _output_names(self) -> list[str]:
        if self._graph is None:
            return ["output"]
        if self._output_keys is not None:
            return list(self._output_keys)
        return [t.node.layer.name for t in self._graph.outputs]

    def _output_shapes(self) -> list[tuple]:
        return [t.shape for t in self._graph.outputs]

    def _structure_outputs(self, arrays: list):
        if self._output_keys is not None:
            return dict(zip(self._output_keys, arrays))
        return arrays[0] if self._single_output else list(arrays)

    def _pack(self) -> None:
        """Packs the weights into one arena owned by this model, unless they already
        are: the fused optimizer update and the MPI Allreduce then see one array. A
        layer shared with another model moves into the arena of the model trained last
        (the other one still trains, one weight at a time)."""
        parameters = self.weights
        if not parameters:
            return
        arena = self._arena
        if arena is not None and all(p.arena is arena for p in parameters):
            return
        if len({p.dtype for p in parameters}) == 1:
            self._arena = pack(parameters, parameters[0].dtype)
            self._grad_spans.clear()

    # --- building -------------------------------------------------------------------
    @property
    def input_shape(self):
        """The input shape (a list of shapes for several inputs)."""
        if not self.built:
            return None
        shapes = self._input_shapes()
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        if not self.built:
            return None
        shapes = self._output_shapes()
        return shapes[0] if len(shapes) == 1 else shapes

    def build(self, input_shape: Any = None) -> None:
        """Builds a subclassed model by tracing ``call`` on inputs of ``input_shape``
        (batch axis first, ``(None, 784)``; a list of shapes for several inputs)."""
        if self.built:
            return
        if type(self).call is Model.call:
            raise ValueError(f"Model {self.name!r} has no graph and no call() to trace.")
        if input_shape is None:
            raise ValueError(
                f"Cannot build model {self.name!r} without an input shape: call it on data "
                "or pass model.build((None, n_features))."
            )
        shapes = input_shape if _is_shape_list(input_shape) else [input_shape]
        from ..layers.input_layer import Input

        inputs = [Input(tuple(shape)[1:]) for shape in shapes]
        traced_inputs = inputs[0] if len(inputs) == 1 else inputs
        outputs = _trace(self, traced_inputs)
        self._init_graph(traced_inputs, outputs)

    def _build_from_data(self, x, argument: str) -> list[np.ndarray]:
        """Traces a subclassed model on inputs shaped as ``x``: one array, a list of
        arrays (several inputs, in that order) or a dict (inputs by name)."""
        from ..layers.input_layer import Input
        from .data import as_input_list

        if type(self).call is Model.call:  # a stack (Sequential): built from the shape
            return super()._build_from_data(x, argument)
        if isinstance(x, dict):
            names = [str(key) for key in x]
        elif isinstance(x, (list, tuple)) and x and all(isinstance(v, np.ndarray) for v in x):
            names = [f"input_{i}" for i in range(len(x))] if len(x) > 1 else ["input"]
        else:
            names = ["input"]
        arrays = as_input_list(x, names, None, argument)
        inputs = [Input(a.shape[1:]) for a in arrays]
        if isinstance(x, dict):
            traced: Any = dict(zip(names, inputs))
        else:
            traced = inputs[0] if len(inputs) == 1 else inputs
        self._init_graph(traced, _trace(self, traced))
        return arrays

    def call(self, inputs, training: bool | None = None):
        """A subclass's computation on symbolic inputs (see the class docstring)."""
        raise NotImplementedError

    def unbuild(self, layers: Iterable[Layer] | None = None) -> None:
        """Returns an unbuilt subclassed model to the unbuilt state after a refused fit."""
        if self._graph is not None and type(self).call is not Model.call:
            self._graph = None
            self._layers = []
            self.built = False
            self._arena = None
            self._on_structure_change()

    def _call_symbolic(self, x):
        """A model called on symbolic tensors, as a layer of another model: its calls are
        replayed on ``x`` with the same layer objects (the weights stay shared), and the
        outputs come back in the model's structure."""
        if not self.built:
            shapes = [t.shape for t in (x if isinstance(x, (list, tuple)) else [x])]
            self.build(shapes[0] if len(shapes) == 1 else shapes)
        return self._inline(x)

    def _inline(self, x):
        graph = self._graph
        if isinstance(x, dict):
            names = self._input_names()
            missing = [n for n in names if n not in x]
            if missing:
                raise ValueError(f"Model {self.name!r} needs inputs {names}; missing {missing}.")
            given = [x[n] for n in names]
        else:
            given = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(given) != len(graph.inputs):
            raise ValueError(
                f"Model {self.name!r} takes {len(graph.inputs)} inputs "
                f"{self._input_names()}. Received: {len(given)} tensors"
            )
        mapped = {id(t): g for t, g in zip(graph.inputs, given)}
        for tensor, value in zip(graph.inputs, given):
            if tuple(tensor.shape[1:]) != tuple(value.shape[1:]):
                raise ValueError(
                    f"Model {self.name!r} expects input {tensor.name} of shape {tensor.shape}. "
                    f"Received: {value.name} of shape {value.shape}"
                )
        for node in graph.nodes:
            if not node.inputs:
                continue
            args = [mapped[id(t)] for t in node.inputs]
            mapped[id(node.outputs[0])] = node.layer(args if node.listed else args[0])
        return self._structure_outputs([mapped[id(t)] for t in graph.outputs])

    def __setattr__(self, name: str, value: Any) -> None:
        # Layers assigned in a subclass's __init__ are its layers until it is traced.
        tracked = self.__dict__.get("_tracked")
        if (
            isinstance(value, Layer)
            and tracked is not None
            and all(value is not t for t in tracked)
        ):
            tracked.append(value)
        object.__setattr__(self, name, value)

    # --- weights --------------------------------------------------------------------
    @property
    def weights(self) -> list[Parameter]:
        return [p for layer in self._weight_layers() for p in layer.weights]

    @property
    def variables(self) -> list[Parameter]:
        """All weights, trainable or not (Keras 3's ``model.variables``)."""
        return self.weights

    @property
    def trainable_weights(self) -> list[Parameter]:
        return [p for layer in self._weight_layers() for p in layer.trainable_weights]

    @property
    def non_trainable_weights(self) -> list[Parameter]:
        return [p for layer in self._weight_layers() for p in layer.non_trainable_weights]

    def _weight_layers(self) -> list[Layer]:
        return self._layers if self._layers else self._tracked

    def count_params(self) -> int:
        """The number of weights; raises ValueError on an unbuilt model, as Keras."""
        if not self.built:
            raise ValueError(
                f"You tried to call count_params() on model {self.name!r}, but it is not "
                "built yet, so its weights do not exist. Build it first: "
                "model.build((None, n_features)), or start it with lk.layers.Input(shape)."
            )
        return int(sum(p.size for p in self.weights))

    def get_weights(self) -> list[np.ndarray]:
        """Returns copies of all weights, layer by layer (``[kernel, bias, ...]``)."""
        return [p.numpy() for p in self.weights]

    def set_weights(self, weights: list) -> None:
        """Sets all weights at once; on any mismatch raises ValueError and changes nothing."""
        parameters = self.weights
        arrays = check_new_values(parameters, weights, f"Model {self.name!r}")
        for p, w in zip(parameters, arrays):
            p.assign(w)

    # --- trainable ------------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        """Whether the model trains; setting it sets ``trainable`` on every layer, as in
        Keras (``base_model.trainable = False`` freezes a whole model), from the next
        step on, without recompiling."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"Expected trainable to be a bool. Received: trainable={value!r}")
        self._trainable = bool(value)
        for layer in self._weight_layers():
            layer.trainable = bool(value)

    # --- freezing -------------------------------------------------------------------
    def select_layers(self, pattern: str | Iterable[str], argument: str = "pattern") -> list[Layer]:
        """Layers whose names match ``pattern`` with ``re.fullmatch`` (or are in a list)."""
        layers = [layer for layer in self.layers if not isinstance(layer, InputLayer)]
        if isinstance(pattern, str):
            try:
                regex = re.compile(pattern)
            except re.error as error:
                raise ValueError(
                    f"Invalid regular expression {argument}={pattern!r}: {error}"
                ) from None
            chosen = [layer for layer in layers if regex.fullmatch(layer.name)]
        else:
            names = list(pattern)
            missing = [n for n in names if n not in {layer.name for layer in layers}]
            if missing:
                raise ValueError(
                    f"No layers named {missing} in model {self.name!r}. "
                    f"Layers are: {[layer.name for layer in layers]}."
                )
            chosen = [layer for layer in layers if layer.name in names]
        if not chosen:
            raise ValueError(
                f"{argument}={pattern!r} matches no layer of model {self.name!r}. "
                f"Layers are: {[layer.name for layer in layers]}."
            )
        return chosen

    def freeze(self, pattern: str | Iterable[str]) -> list[str]:
        """Marks the layers matching ``pattern`` non-trainable, from the next step on.

        No recompile is needed, and the optimizer keeps their state for later.

        Example:
            >>> model.freeze("hidden[12]")
            ['hidden1', 'hidden2']
        """
        chosen = self.select_layers(pattern)
        for layer in chosen:
            layer.trainable = False
        return [layer.name for layer in chosen]

    def unfreeze(self, pattern: str | Iterable[str]) -> list[str]:
        """Marks the layers matching ``pattern`` trainable again; returns their names."""
        chosen = self.select_layers(pattern)
        for layer in chosen:
            layer.trainable = True
        return [layer.name for layer in chosen]

    # --- saving and loading ---------------------------------------------------------
    def save(self, filepath: str | os.PathLike, include_optimizer: bool = True) -> str:
        """Saves everything needed to resume training, atomically: architecture,
        weights, trainable flags, compile config, optimizer state and training position.
        Returns the absolute path. Reload with ``lk.load_model``.

        The suffix decides the format, as in Keras: ``"model.keras"`` writes a Keras 3
        archive that real Keras loads (``keras.models.load_model``), with layerkit's
        checkpoint inside so that ``lk.load_model`` resumes exactly; any other name
        (``"model.h5"``) writes layerkit's HDF5 checkpoint.
        """
        from ..io.checkpoint import save_model

        return save_model(self, filepath, include_optimizer=include_optimizer)

    def save_weights(self, filepath: str | os.PathLike) -> str:
        """Saves the weights atomically; returns the path. A name ending in
        ``.weights.h5`` gets Keras 3's weights layout (for ``keras_model.load_weights``),
        ``.safetensors`` the state dict of the equivalent ``nn.Sequential`` (PyTorch names,
        weights transposed; ``docs/pytorch_weights.md``), any other name layerkit's (one
        HDF5 group per layer)."""
        from ..io.checkpoint import save_weights

        if not self.built:
            raise ValueError("Cannot save the weights of a model that is not built yet.")
        return save_weights(self, filepath)

    def load_weights(
        self,
        filepath: str | os.PathLike,
        layers: str | Iterable[str] | None = None,
        rename: dict[str, str] | Callable[[str], str] | None = None,
        skip_mismatch: bool = False,
    ) -> list[tuple[str, str]]:
        """Restores weights by layer name from a layerkit, Keras, TensorFlow 1 or PyTorch
        (``torch.save`` state dict, ``.safetensors``) file.

        Args:
            filepath: the file (its format is recognised from its content).
            layers: a regular expression matched with ``re.fullmatch`` against the layer
                names in the file (``"hidden[123]"``), or a list of names; all when None.
            rename: a dict or function from names in the file to names in this model. For
                PyTorch files whose module names (``fc1``, ``0``) are not the model's, and
                without ``rename``, the selected layers go by order into the model's layers
                with weights (a Linear into a Dense, a BatchNorm into a
                BatchNormalization); see ``docs/pytorch_weights.md``.
            skip_mismatch: skip (with a warning) layers whose shapes do not fit,
                instead of raising.

        Returns:
            The ``(name in file, name in model)`` pairs restored.

        Raises:
            ValueError: a selection that matches nothing, a layer the model lacks, or a
                shape mismatch; raised before anything is changed.
            lk.io.FormatError: a damaged, legacy or hostile file (a ``torch.save`` pickle
                naming anything a state dict does not need is refused, never run).

        Example:
            >>> model.load_weights("mnist_mlp.h5", layers="hidden[123]")
            [('hidden1', 'hidden1'), ('hidden2', 'hidden2'), ('hidden3', 'hidden3')]
        """
        from ..io.weights import load_weights

        if isinstance(filepath, bytes):
            filepath = os.fsdecode(filepath)
        return load_weights(
            self, filepath, layers=layers, rename=rename, skip_mismatch=skip_mismatch
        )

    # --- description ----------------------------------------------------------------
    def summary(self, print_fn=None) -> None:
        """Prints a table of layers, output shapes and parameter counts, then the totals
        (with a "Connected to" column for a graph, as Keras)."""
        text = format_summary(self)
        (print_fn or print)(text)

    def get_config(self) -> dict[str, Any]:
        """Keras 3's functional config: the layers with their inbound calls, and the
        model's input and output tensors as ``[layer name, call index, 0]``."""
        from .functional_config import graph_config

        self._require_graph("config")
        return graph_config(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Model:
        """Rebuilds a graph from :meth:`get_config` (untrusted input: checked whole
        before any layer is built)."""
        from .functional_config import model_from_config

        return model_from_config(config)

    @staticmethod
    def planned_weight_shapes(config: dict[str, Any]) -> dict[str, dict[str, tuple]]:
        """The weights a stored graph config would create, by layer, without creating
        them (ValueError for a malformed config): checkpoints check files against it."""
        from .functional_config import check_config

        return check_config(config).weight_shapes

    def __repr__(self) -> str:
        names = [layer.name for layer in self.layers]
        return f"<{type(self).__name__} name={self.name!r} layers={names}>"


register_model("Functional")(Model)  # stored graph configs are built with it


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _flatten(value: Any, argument: str) -> list:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _is_shape_list(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(v, (list, tuple)) for v in value)
    )


def _trace(model: Model, inputs):
    """Runs a subclass's ``call`` on symbolic inputs; an error from Python code that
    needs values names the line of ``call`` it came from."""
    import traceback

    try:
        outputs = model.call(inputs)
    except TypeError as error:
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.name == "call"]
        where = (
            f" (line {frames[-1].lineno} of {frames[-1].filename}: {frames[-1].line})"
            if (frames)
            else ""
        )
        raise TypeError(
            f"Tracing {type(model).__name__}.call on symbolic inputs failed{where}: {error}. "
            "call() must compose layers (and lk.layers merge helpers); Python control flow "
            "on values or numpy on a tensor cannot be recorded in a graph."
        ) from error
    if not is_symbolic(outputs) and not (
        isinstance(outputs, dict) and outputs and all(map(is_symbolic, outputs.values()))
    ):
        raise TypeError(
            f"{type(model).__name__}.call must return the symbolic outputs of layer calls. "
            f"Received: {outputs!r:.100}"
        )
    return outputs
