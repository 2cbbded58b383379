"""Sequential: a stack of layers with unique names, trained by :class:`Trainer`."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..layers.base import Layer, check_name, deserialize, serialize, unique_name
from ..layers.input_layer import InputLayer
from ..parameter import Parameter, check_new_values, pack
from ..random import make_rng
from .node import SymbolicTensor
from .summary import format_summary
from .trainer import Trainer


class Sequential(Trainer):
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
        super().__init__()
        self.name = check_name(name) if name is not None else unique_name("sequential")
        self._layers: list[Layer] = []
        self.built = False
        self._input_shape: tuple | None = None
        self._output_shape: tuple | None = None
        self._arena = None
        self._shuffle_rng = make_rng()
        self._trainable = True
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
        parameters = self.weights
        if parameters:
            self._arena = pack(parameters, parameters[0].dtype)
        self.built = True
        self._on_structure_change()

    def unbuild(self, layers: Iterable[Layer] | None = None) -> None:
        """Returns the model (and ``layers``, all by default) to the unbuilt state."""
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

    # --- weights --------------------------------------------------------------------
    @property
    def weights(self) -> list[Parameter]:
        return [p for layer in self._layers for p in layer.weights]

    @property
    def trainable_weights(self) -> list[Parameter]:
        return [p for layer in self._layers for p in layer.trainable_weights]

    @property
    def non_trainable_weights(self) -> list[Parameter]:
        return [p for layer in self._layers for p in layer.non_trainable_weights]

    def count_params(self) -> int:
        """The number of weights; raises ValueError on an unbuilt model, as Keras."""
        if not self.built:
            raise ValueError(
                f"You tried to call count_params() on model {self.name!r}, but it is not "
                "built yet, so its weights do not exist. Build it first: "
                "model.build((None, n_features)), or start it with lk.layers.Input(shape)."
            )
        return int(sum(p.size for p in self.weights))

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
        for layer in self._layers:
            layer.trainable = bool(value)

    def get_weights(self) -> list[np.ndarray]:
        """Returns copies of all weights, layer by layer (``[kernel, bias, ...]``)."""
        return [p.numpy() for p in self.weights]

    def set_weights(self, weights: list) -> None:
        """Sets all weights at once; on any mismatch raises ValueError and changes nothing."""
        parameters = self.weights
        arrays = check_new_values(parameters, weights, f"Model {self.name!r}")
        for p, w in zip(parameters, arrays):
            p.assign(w)

    # --- freezing -------------------------------------------------------------------
    def select_layers(self, pattern: str | Iterable[str], argument: str = "pattern") -> list[Layer]:
        """Layers whose names match ``pattern`` with ``re.fullmatch`` (or are in a list)."""
        layers = self.layers
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
        any other name layerkit's (one HDF5 group per layer)."""
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
        """Restores weights by layer name from a layerkit, Keras or TensorFlow 1 file.

        Args:
            filepath: the file (its format is recognised from its content).
            layers: a regular expression matched with ``re.fullmatch`` against the layer
                names in the file (``"hidden[123]"``), or a list of names; all when None.
            rename: a dict or function from names in the file to names in this model.
            skip_mismatch: skip (with a warning) layers whose shapes do not fit,
                instead of raising.

        Returns:
            The ``(name in file, name in model)`` pairs restored.

        Raises:
            ValueError: a selection that matches nothing, a layer the model lacks, or a
                shape mismatch; raised before anything is changed.

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
        """Prints a table of layers, output shapes and parameter counts, then the totals."""
        text = format_summary(self)
        (print_fn or print)(text)

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
