"""The Layer base class, automatic names and the registry of layer classes.

A layer's training interface is ``forward(x, training) -> (y, backward)``: ``backward(dy,
need_dx)`` captures exactly what the layer needs (its input and output), writes the
weight gradients into the parameters' ``grad`` arrays when the layer is trainable, and
returns dL/dx when ``need_dx`` is true. A frozen layer therefore still passes gradients
down; it only skips its own weight gradients.

Forward outputs live in buffers that are reused from one batch to the next (reallocated
only when the batch shape changes), so a training step allocates almost nothing. The
buffers belong to a call, not to the layer: the model's plan sets ``_call`` before each
call's forward and backward, so the two calls of a shared layer keep their own outputs,
and sets ``_accumulate`` on the later backwards of a step, where a layer with weights
adds its weight gradients instead of assigning them. ``layer(x)`` is the public,
copying call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from .. import backend, constraints, regularizers
from ..parameter import Parameter, check_new_values, note_change

Backward = Callable[[np.ndarray, bool], "np.ndarray | None"]
Shape = tuple  # (None or int, ...)

_LAYER_CLASSES: dict[str, type[Layer]] = {}
_NAME_COUNTERS: dict[str, int] = {}
_MAX_BUFFERS = 16


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Class decorator: makes ``cls`` loadable from configs (nothing else is)."""
    _LAYER_CLASSES[cls.__name__] = cls
    return cls


def layer_class(class_name: str) -> type[Layer]:
    """Returns the registered layer class called ``class_name``; ValueError otherwise."""
    try:
        return _LAYER_CLASSES[class_name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown layer class {class_name!r}: expected one of {sorted(_LAYER_CLASSES)}."
        ) from None


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def unique_name(base: str) -> str:
    """Returns ``base``, then ``base_1``, ``base_2``... as Keras names layers."""
    count = _NAME_COUNTERS.get(base, 0)
    _NAME_COUNTERS[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def reset_names() -> None:
    """Restarts automatic naming (``lk.utils.clear_session``)."""
    _NAME_COUNTERS.clear()


def check_name(name: Any) -> str:
    if (
        not isinstance(name, str)
        or name in (".", "..")
        or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name)
    ):
        raise ValueError(
            f"Expected a layer name of letters, digits, '_', '.' or '-'. Received: name={name!r}"
        )
    return name


class Layer:
    """Base class of all layers.

    Args:
        name: unique within a model; automatic (``dense``, ``dense_1``, ...) when omitted.
        trainable: whether the optimizer updates this layer's weights.
        input_shape: Keras 2 style shape of one sample, e.g. ``(784,)``; lets a model
            build as soon as this layer is its first.
        dtype: float type of the weights (default ``lk.backend.floatx()``).
        activity_regularizer: a penalty on the layer's output (``lk.regularizers``):
            while training and evaluating, ``penalty(output) / batch size`` is added to
            the loss, as Keras 3.
    """

    # Layers that act differently while training (Dropout) cannot have their output cached.
    deterministic: ClassVar[bool] = True
    # Set by the model's plan around each call (see the module docstring).
    _call: int = 0
    _accumulate: bool = False
    # Layers whose training forward needs statistics of the global batch under
    # distribute= (BatchNormalization): fit gives them the strategy as ``_strategy``.
    synchronizes: ClassVar[bool] = False
    _strategy: Any = None
    _pending: Any = None  # the (output, backward) of the last call() (see call)

    def __init__(
        self,
        name: str | None = None,
        trainable: bool = True,
        input_shape: tuple | None = None,
        dtype: str | None = None,
        activity_regularizer: Any = None,
    ) -> None:
        self.name = (
            check_name(name) if name is not None else unique_name(_snake_case(type(self).__name__))
        )
        self._trainable = bool(trainable)
        self.built = False
        self.dtype = _check_dtype(dtype or backend.floatx(), self.name)
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        self._parameters: list[Parameter] = []
        self._buffers: dict[tuple, np.ndarray] = {}
        self._inbound_nodes: list = []  # the calls on symbolic tensors (models.node.Node)
        self._declared_input_shape = (
            None if input_shape is None else (None, *_check_shape(input_shape, "input_shape"))
        )
        self.activity_regularizer = regularizers.get(activity_regularizer, "activity_regularizer")

    # --- trainability -------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"Expected trainable to be a bool. Received: trainable={value!r}")
        if bool(value) != self._trainable:
            self._trainable = bool(value)
            note_change()

    # --- building -----------------------------------------------------------------
    def build(self, input_shape: Shape) -> None:
        """Creates the weights for inputs of ``input_shape`` (batch axis first)."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def weight_shapes(self, input_shape: Shape) -> dict[str, tuple]:
        """The weights ``build(input_shape)`` would create, by name, without creating
        them: checkpoint loading checks a file against this before allocating."""
        return {}

    def unbuild(self) -> None:
        """Forgets the weights and shapes, as before ``build`` (undoes a failed load)."""
        self._parameters = []
        self._buffers.clear()
        self.built = False
        self.input_shape = self.output_shape = None

    def add_weight(
        self,
        name: str,
        shape: tuple,
        initializer,
        trainable: bool = True,
        regularizer=None,
        constraint=None,
    ) -> Parameter:
        """Creates a weight; ``trainable=False`` makes a statistic that the layer updates
        itself (never trained, whatever the layer's flag; no optimizer state). A
        ``regularizer`` adds its penalty to the loss, a ``constraint`` projects the
        weight after each update (``lk.regularizers``, ``lk.constraints``)."""
        if constraint is not None:
            constraint.check_shape(tuple(shape), f"{self.name}/{name}")
        value = initializer(shape, dtype=self.dtype)
        parameter = Parameter(
            f"{self.name}/{name}", value, lambda: self._trainable, statistic=not trainable
        )
        parameter.regularizer, parameter.constraint = regularizer, constraint
        self._parameters.append(parameter)
        return parameter

    def _set_weight_options(self, options: dict[str, Any]) -> None:
        """Sets the ``<weight>_regularizer`` / ``<weight>_constraint`` constructor
        arguments (``{"kernel_regularizer": "l2", ...}``) as checked attributes; the
        layer passes them to :meth:`add_weight`, :meth:`_weight_options_config` saves them."""
        for key, value in options.items():
            module = regularizers if key.endswith("_regularizer") else constraints
            setattr(self, key, module.get(value, key))
        self._weight_option_keys = tuple(options)

    def _weight_options_config(self) -> dict[str, Any]:
        """The weight options that are set, serialised (configs without them stay as
        they were, and as older files)."""
        config = {}
        for key in getattr(self, "_weight_option_keys", ()):
            value = getattr(self, key)
            if value is not None:
                module = regularizers if key.endswith("_regularizer") else constraints
                config[key] = module.serialize(value)
        return config

    def _ensure_built(self, x: np.ndarray) -> None:
        if not self.built:
            self.build((None, *x.shape[1:]))

    # --- computing ----------------------------------------------------------------
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Keras's way of customising a layer: override call() and call super().call()
        # in it (Monte-Carlo dropout forces training=True). Such a class computes
        # through its call; the parent's forward does the work and gives the backward.
        if "call" in cls.__dict__ and "forward" not in cls.__dict__:
            cls._parent_forward = cls.forward
            cls.forward = _forward_through_call

    def forward(self, x: np.ndarray, training: bool = False) -> tuple[np.ndarray, Backward]:
        """Returns the output (in a reused buffer) and the backward function."""
        raise NotImplementedError

    def call(self, inputs, training: bool | None = None):
        """Keras's hook: the layer's output for ``inputs``. A subclass may override it
        to change the arguments of the parent's computation and return
        ``super().call(...)`` as it is (see ``docs/custom_layers.md``); layers with new
        computations implement :meth:`forward` instead.

        Example:
            >>> class MCDropout(lk.layers.Dropout):
            ...     def call(self, inputs, training=None):
            ...         return super().call(inputs, training=True)
        """
        forward = getattr(type(self), "_parent_forward", type(self).forward)
        y, backward = forward(self, inputs, bool(training))
        self._pending = (y, backward, inputs)
        return y

    def __call__(self, x, training: bool = False):
        """Computes the layer on ``x`` and returns a new array; on a symbolic tensor
        (from ``lk.layers.Input`` or another layer call) records the call and returns
        the symbolic output, as Keras's functional API.

        Example:
            >>> y = Dense(3)(np.ones((2, 4), "float32"))  # an array of shape (2, 3)
            >>> h = Dense(3)(lk.layers.Input((4,)))  # a SymbolicTensor of shape (None, 3)
        """
        from ..models.node import is_symbolic, mixed_symbolic

        if is_symbolic(x) or mixed_symbolic(x):
            return self._call_symbolic(x)
        x = np.asarray(x, dtype=self.dtype)
        self._ensure_built(x)
        y, _ = self.forward(x, training=training)
        return np.array(y, copy=True)

    def _call_symbolic(self, x):
        """Records a call of this one-input layer on a symbolic tensor."""
        from ..models.node import Node, SymbolicTensor

        if isinstance(x, (list, tuple)):
            if len(x) != 1 or not isinstance(x[0], SymbolicTensor):
                raise TypeError(
                    f"Layer {self.name!r} ({type(self).__name__}) takes one tensor. Received: "
                    f"a list of {len(x)}. To combine tensors, use a merge layer such as "
                    "lk.layers.concatenate([a, b]) or lk.layers.add([a, b])."
                )
            x = x[0]
        shape = x.shape
        if not self.built:
            self.build(shape)
        elif tuple(self.input_shape[1:]) != tuple(shape[1:]):
            raise ValueError(
                f"Layer {self.name!r} was built for inputs of shape {self.input_shape}, but "
                f"is called on {x.name} of shape {shape}. A layer called several times "
                "(a shared layer) takes inputs of one shape."
            )
        return Node(self, [x], [self.compute_output_shape(shape)]).outputs[0]

    @property
    def input(self):
        """The symbolic input of the layer's first call (a list for a merge layer)."""
        return self._node_attribute("inputs", "input")

    @property
    def output(self):
        """The symbolic output of the layer's first call."""
        return self._node_attribute("outputs", "output")

    def _node_attribute(self, attribute: str, name: str):
        if not self._inbound_nodes:
            raise AttributeError(
                f"Layer {self.name!r} has never been called on a symbolic tensor, so it has "
                f"no {name}. Call it on lk.layers.Input(...) or on another layer's output."
            )
        node = self._inbound_nodes[0]
        tensors = getattr(node, attribute)
        listed = node.listed and attribute == "inputs"  # a merge layer's inputs
        return list(tensors) if listed or len(tensors) > 1 else tensors[0]

    def _buffer(self, tag: str, shape: tuple, dtype=None) -> np.ndarray:
        """A reused array for ``tag`` of the current call (``_call``) and ``shape``."""
        key = (tag, shape, self._call)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) >= _MAX_BUFFERS:
                self._buffers.clear()
            buf = np.empty(shape, dtype=dtype or self.dtype)
            self._buffers[key] = buf
        return buf

    # --- weights ------------------------------------------------------------------
    @property
    def weights(self) -> list[Parameter]:
        return list(self._parameters)

    @property
    def variables(self) -> list[Parameter]:
        """All weights, trainable or not (Keras 3's ``layer.variables``)."""
        return list(self._parameters)

    def stored_weights(self, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Weights read from a file (by name) in this layer's form, for layers that
        another framework stores differently (Keras's Normalization ``count``)."""
        return weights

    def check_weights(self, weights: dict[str, np.ndarray]) -> str | None:
        """Why values about to be loaded into this layer (by weight name) are invalid
        for it, or None: loading refuses them before anything is assigned."""
        return None

    @property
    def trainable_weights(self) -> list[Parameter]:
        return [p for p in self._parameters if p.trainable]

    @property
    def non_trainable_weights(self) -> list[Parameter]:
        return [p for p in self._parameters if not p.trainable]

    def _trains(self) -> bool:
        """Whether a step computes gradients for some weight of this layer."""
        return self._trainable and any(not p.statistic for p in self._parameters)

    def get_weights(self) -> list[np.ndarray]:
        """Returns copies of the weights (``[kernel, bias]`` for Dense)."""
        return [p.numpy() for p in self._parameters]

    def set_weights(self, weights: list) -> None:
        """Sets all weights at once; on any mismatch raises ValueError and changes nothing."""
        arrays = check_new_values(self._parameters, weights, f"Layer {self.name!r}")
        for p, w in zip(self._parameters, arrays):
            p.assign(w)

    def count_params(self) -> int:
        return int(sum(p.size for p in self._parameters))

    # --- state beyond weights (random generators) ----------------------------------
    def training_state(self) -> dict[str, Any]:
        """JSON-serialisable state that a resumed run needs besides the weights."""
        return {}

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restores :meth:`training_state`."""

    # --- serialisation --------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": self.dtype,
        }
        if self._declared_input_shape is not None:
            config["input_shape"] = list(self._declared_input_shape[1:])
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


def _forward_through_call(self: Layer, x, training: bool = False, **kwargs: Any):
    """``forward`` of a layer class that overrides ``call``: runs ``call`` and takes the
    backward of the ``super().call`` it made, refusing anything it cannot differentiate."""
    if kwargs:
        raise TypeError(f"Layer {self.name!r} overrides call(), which takes no {sorted(kwargs)}.")
    self._pending = None
    y = self.call(x, training=training)
    pending = self._pending
    self._pending = None
    if pending is None or pending[0] is not y or pending[2] is not x:
        raise TypeError(
            f"{type(self).__name__}.call must return the result of super().call(...) as "
            "it is, called on its own inputs: layerkit differentiates the parent layer's "
            "computation, not numpy "
            "code around it. To compute something new, implement forward(x, training) "
            "returning (y, backward) (see docs/custom_layers.md)."
        )
    return pending[0], pending[1]


def _check_dtype(dtype: Any, layer: str) -> str:
    """The name of a float dtype; layers compute in float16, float32 or float64 only."""
    try:
        parsed = np.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"Layer {layer!r}: expected a float dtype. Received: dtype={dtype!r:.60}"
        ) from None
    if parsed.kind != "f":
        raise ValueError(
            f"Layer {layer!r}: expected a float dtype (float16, float32, float64). "
            f"Received: dtype={dtype!r:.60}"
        )
    return parsed.name


def _check_shape(shape: Any, argument: str) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"Expected a shape tuple. Received: {argument}={shape!r}") from None
    if not dims or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in dims
    ):
        raise ValueError(f"Expected a tuple of positive integers. Received: {argument}={shape!r}")
    return tuple(int(d) for d in dims)


def serialize(layer: Layer) -> dict[str, Any]:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(spec: dict[str, Any]) -> Layer:
    """Builds a layer from ``serialize``'s output; only registered classes are accepted."""
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise ValueError(f"Expected a layer config with a class_name. Received: {spec!r:.200}")
    cls = layer_class(spec["class_name"])
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"Layer config must be a dict. Received: {config!r:.200}")
    try:
        return cls.from_config(dict(config))
    except TypeError as error:
        raise ValueError(f"Invalid config for {cls.__name__}: {error}") from None
