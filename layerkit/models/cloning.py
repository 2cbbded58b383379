"""``clone_model``: the same architecture with new layers and fresh weights (Keras 3's
``keras.models.clone_model``)."""

from __future__ import annotations

from collections.abc import Callable

from ..layers.base import Layer, deserialize, serialize
from ..layers.input_layer import Input, InputLayer
from .model import Model
from .sequential import Sequential


def _default_clone(layer: Layer) -> Layer:
    """A new layer of the same class and config (same name), not built: its weights
    are initialised afresh when the clone is built."""
    return deserialize(serialize(layer))


def clone_model(model: Model, clone_function: Callable[[Layer], Layer] | None = None) -> Model:
    """Returns a new model with the architecture of ``model``: new layer objects with the
    same names and configs, and freshly initialised weights (copy them with
    ``clone.set_weights(model.get_weights())``). The clone is not compiled.

    Args:
        model: a ``Sequential`` or a graph ``Model``.
        clone_function: called on each layer (not on InputLayers) to make its copy;
            by default a new layer from the layer's config. Return the layer itself to
            share it between the two models.

    Raises:
        TypeError: ``model`` is not a layerkit model, or ``clone_function`` returns
            something that is not a layer.
        ValueError: a subclassed model (its ``call`` is code, not a graph to copy).

    Example:
        >>> clone = lk.models.clone_model(model_a)
        >>> clone.set_weights(model_a.get_weights())
    """
    if not isinstance(model, Model):
        raise TypeError(
            f"Expected a layerkit model. Received: {model!r:.100} of type {type(model).__name__}"
        )
    make = clone_function or _default_clone

    def clone(layer: Layer) -> Layer:
        copy = make(layer)
        if not isinstance(copy, Layer):
            raise TypeError(
                f"clone_function must return a layer. Received: {copy!r:.100} for layer "
                f"{layer.name!r}"
            )
        return copy

    if isinstance(model, Sequential):
        layers = [
            Input(layer.shape, name=layer.name) if isinstance(layer, InputLayer) else clone(layer)
            for layer in model._layers
        ]
        copy = Sequential(layers, name=model.name)
        if model.built and not copy.built:
            copy.build(model.input_shape)
        return copy
    if model._graph is None:
        if type(model).call is not Model.call:
            raise ValueError(
                f"Cannot clone subclassed model {model.name!r}: its call() is code. Make a "
                "new instance of its class instead."
            )
        raise ValueError(f"Cannot clone model {model.name!r}: it is not built.")
    graph = model._graph
    copies: dict[int, Layer] = {}
    mapped = {}
    for tensor in graph.inputs:
        layer = tensor.node.layer
        mapped[id(tensor)] = Input(layer.shape, name=layer.name, dtype=layer.dtype)
    for node in graph.nodes:
        if not node.inputs:
            continue
        layer = copies.get(id(node.layer))
        if layer is None:
            layer = copies[id(node.layer)] = clone(node.layer)
        args = [mapped[id(t)] for t in node.inputs]
        mapped[id(node.outputs[0])] = layer(args if node.listed else args[0])
    inputs = [mapped[id(t)] for t in graph.inputs]
    outputs = [mapped[id(t)] for t in graph.outputs]
    if model._input_keys is not None:
        inputs = dict(zip(model._input_keys, inputs))
    if model._output_keys is not None:
        outputs = dict(zip(model._output_keys, outputs))
    elif model._single_output:
        outputs = outputs[0]
    return Model(inputs, outputs, name=model.name, trainable=model.trainable)
