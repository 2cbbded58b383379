"""Sequential: a stack of layers with unique names, the chain case of :class:`Model`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..layers.base import Layer, check_name, deserialize, serialize, unique_name
from ..layers.input_layer import InputLayer
from ..registry import register_model
from .model import Model
from .node import SymbolicTensor
from .plan import Plan


@register_model("Sequential")
class Sequential(Model):
    """A linear stack of layers.

    Example:
        >>> model = Sequential([
        ...     Input((784,)),
        ...     Dense(300, activation="relu", name="hidden1"),
        ...     Dense(10, name="outputs"),
        ... ])
        >>> model.compile(optimizer="adam",
        ...               loss=SparseCategoricalCrossentropy(from_logits=True),
        ...               metrics=["accuracy"])
        >>> history = model.fit(x_train, y_train, epochs=5, validation_split=0.1)
    """

    def __init__(self, layers: Iterable[Layer] | None = None, name: str | None = None) -> None:
        super().__init__(name=check_name(name) if name is not None else unique_name("sequential"))
        self._input_shape: tuple | None = None
        self._output_shape: tuple | None = None
        self._chain_nodes: list = []  # the record of the built stack on symbolic tensors
        self._chain_inputs: list | None = None
        self._chain_outputs: list | None = None
        for layer in layers or []:
            self.add(layer)

    # --- structure ------------------------------------------------------------------
    def add(self, layer: Layer | SymbolicTensor) -> None:
        """Appends a layer; builds it at once when the model's input shape is known.

        ``lk.layers.Input(shape)`` (a symbolic tensor) stands for its InputLayer, as in
        Keras.
        """
        if isinstance(layer, SymbolicTensor) and isinstance(layer.node.layer, InputLayer):
            layer = layer.node.layer
        if isinstance(layer, Model):
            raise TypeError(
                f"A model ({layer.name!r}) inside a Sequential is not supported yet. Call it "
                "on a tensor in a functional model instead: x = lk.layers.Input(shape); "
                f"y = {layer.name}(x); ... lk.Model(x, outputs); or pass its layers: "
                "lk.Sequential(base.layers + [...])."
            )
        if not isinstance(layer, Layer):
            raise TypeError(
                "Expected a layerkit Layer. "
                f"Received: {layer!r:.100} of type {type(layer).__name__}"
            )
        if isinstance(layer, InputLayer) and self._layers:
            raise ValueError("An InputLayer can only be the first layer of a Sequential model.")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(
                f"All layers added to a Sequential model should have unique names. "
                f"Name {layer.name!r} is already the name of a layer in this model."
            )
        self._layers.append(layer)
        self._on_structure_change()
        if self.built:
            try:
                self.build(self._input_shape)
            except Exception:
                self._layers.pop()
                self._on_structure_change()
                raise
        elif len(self._layers) == 1 and layer._declared_input_shape is not None:
            self.build(layer._declared_input_shape)

    def pop(self) -> Layer:
        """Removes and returns the last layer."""
        if not self.layers:
            raise IndexError("There are no layers in the model.")
        layer = self._layers.pop()
        self._on_structure_change()
        if self.built and self.layers:
            self.build(self._input_shape)
        elif not self.layers:
            self.built = False
        return layer

    @property
    def layers(self) -> list[Layer]:
        """The layers, without the InputLayer (as Keras 3)."""
        return [layer for layer in self._layers if not isinstance(layer, InputLayer)]

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """Returns a layer by name or by index in ``layers``."""
        if index is not None:
            layers = self.layers
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"Index {index} out of range for {len(layers)} layers.")
            return layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"No such layer: {name!r}. "
            f"Existing layers are: {[layer.name for layer in self.layers]}."
        )

    def build(self, input_shape: tuple | None = None) -> None:
        """Builds every layer for inputs of ``input_shape`` (batch axis first, e.g.
        ``(None, 784)``) and packs the weights into one arena."""
        if input_shape is None:
            input_shape = self._declared_input_shape()
            if input_shape is None:
                raise ValueError(
                    "Cannot build a model without an input shape: pass input_shape, "
                    "start with lk.layers.Input(shape), or give the first layer input_dim."
                )
        try:
            shape = tuple(None if d is None else int(d) for d in input_shape)
        except (TypeError, ValueError):
            raise TypeError(
                f"Expected a shape tuple. Received: input_shape={input_shape!r}"
            ) from None
        if len(shape) < 2 or any(d is not None and d <= 0 for d in shape[1:]):
            raise ValueError(
                "Expected an input shape (batch, features...). "
                f"Received: input_shape={input_shape!r}"
            )
        input_shape = (None, *shape[1:])
        current = input_shape
        for layer in self._layers:
            if layer.built:
                if tuple(layer.input_shape[1:]) != tuple(current[1:]):
                    raise ValueError(
                        f"Layer {layer.name!r} was built for inputs of shape {layer.input_shape}, "
                        f"but receives {current} in this model."
                    )
            else:
                layer.build(current)
            current = layer.output_shape
        self._input_shape, self._output_shape = input_shape, current
        self._arena = None
        self._pack()
        self.built = True
        self._record_chain()
        self._on_structure_change()

    def _record_chain(self) -> None:
        """Records the stack as calls on symbolic tensors, as Keras 3 does, so that
        ``model.inputs``, ``model.outputs`` and each layer's ``output`` exist (the
        feature-extractor idiom ``lk.Model(model.inputs, model.layers[-2].output)``).
        A rebuild replaces the previous record instead of adding to it."""
        from ..layers.input_layer import Input

        for node in self._chain_nodes:
            layer = node.layer
            layer._inbound_nodes = [n for n in layer._inbound_nodes if n is not node]
            for index, other in enumerate(layer._inbound_nodes):
                other.index = index
        first = self._layers[0]
        tensor = first.output if isinstance(first, InputLayer) else Input(self._input_shape[1:])
        self._chain_inputs = [tensor]
        nodes = []
        for layer in self._stack:
            tensor = layer._call_symbolic(tensor)
            nodes.append(tensor.node)
        self._chain_nodes = nodes
        self._chain_outputs = [tensor]

    def unbuild(self, layers: Iterable[Layer] | None = None) -> None:
        """Returns the model (and ``layers``, all by default) to the unbuilt state."""
        for node in self._chain_nodes:
            node.layer._inbound_nodes = [n for n in node.layer._inbound_nodes if n is not node]
        self._chain_nodes, self._chain_inputs, self._chain_outputs = [], None, None
        for layer in self._layers if layers is None else layers:
            layer.unbuild()
        self.built = False
        self._input_shape = self._output_shape = self._arena = None
        self._on_structure_change()

    def _declared_input_shape(self) -> tuple | None:
        return self._layers[0]._declared_input_shape if self._layers else None

    @property
    def input_shape(self) -> tuple | None:
        return self._input_shape

    @property
    def output_shape(self) -> tuple | None:
        return self._output_shape

    # --- what the trainer asks: the chain plan -----------------------------------------
    @property
    def _stack(self) -> list[Layer]:
        return [layer for layer in self._layers if not isinstance(layer, InputLayer)]

    def _weight_layers(self) -> list[Layer]:
        return self._layers

    def _get_plan(self) -> Plan:
        if self._plan_obj is None:
            if not self.built:
                raise ValueError(f"Model {self.name!r} is not built yet.")
            self._plan_obj = Plan.of_chain(self._stack)
        return self._plan_obj

    def _input_names(self) -> list[str]:
        first = self._layers[0] if self._layers else None
        return [first.name if isinstance(first, InputLayer) else "input_layer"]

    def _input_shapes(self) -> list[tuple]:
        return [self._input_shape]

    def _output_names(self) -> list[str]:
        stack = self._stack
        return [stack[-1].name if stack else "output"]

    def _output_shapes(self) -> list[tuple]:
        return [self._output_shape]

    def _structure_outputs(self, arrays: list):
        return arrays[0]

    @property
    def inputs(self) -> list[SymbolicTensor]:
        """The symbolic input of the built stack (``[tensor]``), as Keras 3."""
        self._require_chain("inputs")
        return list(self._chain_inputs)

    @property
    def outputs(self) -> list[SymbolicTensor]:
        """The symbolic output of the built stack (``[tensor]``), as Keras 3."""
        self._require_chain("outputs")
        return list(self._chain_outputs)

    def _require_chain(self, what: str) -> None:
        if self._chain_inputs is None:
            raise AttributeError(
                f"Sequential model {self.name!r} is not built yet, so it has no {what}: "
                "start it with lk.layers.Input(shape) or call model.build((None, n))."
            )

    def _inline(self, tensor):
        """The stack's layers called on ``tensor`` (a model used as a layer)."""
        self._require_chain("graph")
        if isinstance(tensor, (list, tuple)):
            if len(tensor) != 1:
                raise TypeError(
                    f"Sequential model {self.name!r} takes one tensor. Received: {len(tensor)}"
                )
            tensor = tensor[0]
        for layer in self._stack:
            tensor = layer(tensor)
        return tensor

    # --- description ----------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """A JSON-serialisable description of the architecture (no weights)."""
        return {
            "name": self.name,
            "layers": [serialize(layer) for layer in self._layers],
            "build_input_shape": list(self._input_shape) if self._input_shape else None,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        """Rebuilds a model from :meth:`get_config`; only registered layer classes load."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError(
                f"Expected a Sequential config with a list of layers. Received: {config!r:.200}"
            )
        model = cls([deserialize(spec) for spec in config["layers"]], name=config.get("name"))
        shape = config.get("build_input_shape")
        if shape and not model.built:
            model.build(tuple(shape))
        return model

    def __repr__(self) -> str:
        return f"<Sequential name={self.name!r} layers={[layer.name for layer in self.layers]}>"
