"""``lk.io.save_keras``: write a layerkit model as Keras 3 files, without Keras installed.

Two outputs, chosen by the suffix (as Keras chooses them):

- ``.keras``: the Keras 3 zip archive that ``keras.models.load_model`` reads:
  ``metadata.json``, ``config.json`` (the model's Keras config) and ``model.weights.h5``.
- ``.weights.h5``: the Keras 3 weights file that ``keras_model.load_weights`` reads into a
  Keras model built with the same layers.

A ``Sequential`` is written as Keras's ``Sequential``; a graph (``lk.Model``) as a Keras
``Functional`` model, whose layers (InputLayers included, a shared layer once) follow
``model.layers``, which is Keras's order.

Both weight files use Keras 3's layout: a root ``vars`` group named after the model, then
``layers/<snake_case_class>[_N]/vars/<i>`` in model order, numbered per class (``dense``,
``dense_1``...; Keras matches layers by these keys, not by name), each ``vars`` group with
a ``name`` attribute holding the layer name (which layerkit's own reader uses).

A compiled model whose loss and metrics Keras can name (built-in losses, metric strings)
is written compiled: ``compile_config`` holds the optimizer, loss and metrics as Keras 3
serialises them, and ``model.weights.h5`` an ``optimizer/vars/<i>`` group in Keras's
variable layout (:mod:`layerkit.optim.keras_layout`), so ``keras.models.load_model``
continues training from the same optimizer state. Any other model is written uncompiled
(``compile_config`` ``{}``, no ``optimizer`` group), as Keras writes an uncompiled model.

The config holds only keys that every Keras 3 release accepts (newer optional keys such
as ``quantization_config`` are left at their defaults), so older Keras 3 versions load
the file too.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import zipfile
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np

from .. import activations, backend, initializers
from .. import layers as lk_layers
from .. import losses as lk_losses
from ..layers import Activation, Dense, Dropout, Flatten, InputLayer, Layer
from ..optim import keras_layout
from .atomic import atomic_write
from .keras_files import _to_snake_case

__all__ = ["keras_writer", "save_keras"]

PathLike = str | os.PathLike

# The Keras release whose file layout this module reproduces; Keras records its own
# version in metadata.json and only displays it.
KERAS_VERSION = "3.15.1"

# The layer classes exported, by their Keras class name (the same as layerkit's); group
# keys are keras.src.utils.naming.to_snake_case of that name (``p_re_lu``, ``re_lu``).
_MERGE_CLASSES = (
    lk_layers.Concatenate,
    lk_layers.Add,
    lk_layers.Subtract,
    lk_layers.Multiply,
    lk_layers.Average,
    lk_layers.Maximum,
    lk_layers.Minimum,
    lk_layers.Dot,
)
_EXPORTED = (
    Dense,
    Dropout,
    Flatten,
    Activation,
    lk_layers.Reshape,
    lk_layers.ReLU,
    lk_layers.LeakyReLU,
    lk_layers.ELU,
    lk_layers.Softmax,
    lk_layers.PReLU,
    lk_layers.BatchNormalization,
    lk_layers.GaussianNoise,
    lk_layers.GaussianDropout,
    lk_layers.AlphaDropout,
    lk_layers.Rescaling,
    lk_layers.Normalization,
    *_MERGE_CLASSES,
)
_BATCH_NORM_WEIGHTS = ("beta", "gamma", "moving_mean", "moving_variance")
_SNAKE_CLASS = {cls: _to_snake_case(cls.__name__) for cls in (*_EXPORTED, InputLayer)}
# layerkit activation classes and the Keras 3 activation of the same name; parameterised
# ones are equal only with Keras's defaults (checked below).
_ACTIVATIONS = {
    activations.Linear: "linear",
    activations.ReLU: "relu",
    activations.LeakyReLU: "leaky_relu",
    activations.ELU: "elu",
    activations.Sigmoid: "sigmoid",
    activations.Tanh: "tanh",
    activations.Softmax: "softmax",
    activations.LogSoftmax: "log_softmax",
    activations.SELU: "selu",
    activations.Softplus: "softplus",
    activations.Softsign: "softsign",
    activations.Exponential: "exponential",
    activations.ReLU6: "relu6",
    activations.HardSigmoid: "hard_sigmoid",
    activations.GELU: "gelu",
    activations.SiLU: "silu",
    activations.HardSiLU: "hard_silu",
    activations.Mish: "mish",
}
_KERAS_ACTIVATION_DEFAULTS = {
    "leaky_relu": ("negative_slope", 0.2),
    "elu": ("alpha", 1.0),
    "relu": ("config", {"negative_slope": 0.0, "max_value": None, "threshold": 0.0}),
    "gelu": ("approximate", False),
}
_INITIALIZERS = (
    initializers.Zeros,
    initializers.Ones,
    initializers.Constant,
    initializers.RandomNormal,
    initializers.RandomUniform,
    initializers.TruncatedNormal,
    initializers.VarianceScaling,
    initializers.GlorotUniform,
    initializers.GlorotNormal,
    initializers.HeUniform,
    initializers.HeNormal,
    initializers.LecunNormal,
    initializers.LecunUniform,
    initializers.Orthogonal,
    initializers.Identity,
)
_FLOAT_DTYPES = ("float16", "float32", "float64")


def save_keras(model, path: PathLike) -> str:
    """Writes ``model`` as a Keras 3 ``.keras`` archive or ``.weights.h5`` file, atomically.

    Args:
        model: a built layerkit ``Sequential``, or a graph (``lk.Model(inputs,
            outputs)``: several inputs and outputs, shared layers), of ``Dense``,
            ``Dropout``, ``Flatten``, ``Activation``, ``Reshape``, ``ReLU``,
            ``LeakyReLU``, ``ELU``, ``Softmax``, ``PReLU``, ``BatchNormalization``,
            ``GaussianNoise``, ``GaussianDropout``, ``AlphaDropout``, ``Rescaling``,
            ``Normalization``, ``InputLayer`` and (graphs)
            the merge layers ``Concatenate``, ``Add``, ``Subtract``, ``Multiply``,
            ``Average``, ``Maximum``, ``Minimum`` and ``Dot``. A graph is written as a
            Keras Functional model.
        path: ends in ``.keras`` (architecture and weights, for
            ``keras.models.load_model``) or ``.weights.h5`` (weights only, for
            ``keras_model.load_weights`` on a Keras model built with the same layers).

    Returns:
        The absolute path written.

    Raises:
        ValueError: another suffix, an unbuilt model, or a layer, activation or
            initializer Keras cannot express identically (the message names the layer).
            Nothing is written then.
        OSError: the file cannot be written; a previous file at ``path`` is unchanged.

    Example:
        >>> model = lk.Sequential([lk.layers.Input((784,)),
        ...                        lk.layers.Dense(10, activation="softmax", name="out")])
        >>> lk.io.save_keras(model, "mnist.keras")  # doctest: +SKIP
        '/home/me/mnist.keras'
        >>> # With Keras: keras.models.load_model("mnist.keras").predict(x)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"Expected path to be a str or os.PathLike. Received: path={path!r:.100} "
            f"of type {type(path).__name__}"
        )
    path = os.fspath(path)
    if path.endswith(".keras"):
        archive = True
    elif path.endswith(".weights.h5"):
        archive = False
    else:
        raise ValueError(
            "Expected a path ending in '.keras' (model) or '.weights.h5' (weights), as Keras 3 "
            f"requires. Received: path={path!r}"
        )
    write = keras_writer(model, archive)
    return atomic_write(path, write)


def keras_writer(
    model, archive: bool, extra_members: dict[str, bytes] | None = None
) -> Callable[[str], None]:
    """Checks ``model`` and returns ``write(path)`` for a ``.keras`` archive (``archive``)
    or a ``.weights.h5`` file. Raises ValueError (as :func:`save_keras`) before anything
    is written.

    ``extra_members`` are stored in the archive after Keras's own members; Keras 3 reads
    the members it knows and ignores the others (``model.save("x.keras")`` puts
    layerkit's full checkpoint there, so that ``lk.load_model`` resumes exactly).
    """
    layers, entries, graph = _describe(model)
    if not archive:
        if extra_members:
            raise ValueError("A .weights.h5 file has no room for extra members.")
        return lambda tmp: _write_weights(tmp, model.name, entries)
    config = _graph_model_config(model, layers) if graph else _model_config(model, layers)
    compiled = _compile_config(model)
    optimizer = None
    if compiled is not None:
        config["compile_config"] = compiled
        optimizer = (model.optimizer.name, _keras_optimizer_variables(model))
    weights = io.BytesIO()
    _write_weights(weights, model.name, entries, optimizer)
    return lambda tmp: _write_archive(tmp, config, weights.getvalue(), extra_members or {})


# --------------------------------------------------------------------------------------
# Checking the model
# --------------------------------------------------------------------------------------


def _describe(model) -> tuple[list[Layer], list[tuple[str, str, list[np.ndarray]]], bool]:
    """Checks every layer; returns the layers, ``(group key, name, arrays)`` per layer in
    model order and whether the model is a graph. A Sequential's InputLayer has no group,
    as in Keras; a graph's InputLayers have (weightless) groups, as Keras's Functional
    models list them among their layers. A shared layer is listed once."""
    from ..models.model import Model
    from ..models.sequential import Sequential

    graph = isinstance(model, Model) and not isinstance(model, Sequential)
    if not isinstance(model, Model):
        raise TypeError(
            "Expected a layerkit Sequential or graph model (lk.Model). "
            f"Received: model={model!r:.100} of type {type(model).__name__}"
        )
    if not model.built or (graph and model._graph is None):
        raise ValueError(
            f"Model {model.name!r} is not built, so its weights do not exist yet. Build it "
            "first: model.build((None, n_features)), or start it with lk.layers.Input."
        )
    layers = list(model._layers)
    counts: dict[str, int] = {}
    entries = []
    for layer in layers:
        _check_layer(layer)
        if isinstance(layer, InputLayer) and not graph:
            continue
        snake = _SNAKE_CLASS[type(layer)]
        n = counts.get(snake, 0)
        counts[snake] = n + 1
        entries.append((snake if n == 0 else f"{snake}_{n}", layer.name, _keras_weights(layer)))
    return layers, entries, graph


def _keras_weights(layer: Layer) -> list[np.ndarray]:
    """The variables Keras 3 gives ``layer``, in its order. A Normalization given
    ``mean=``/``variance=`` has none (they are in its config); an adapted one has
    ``mean`` and ``variance`` of the kept axes' shape and an int ``count``, which
    Keras 3's adapt leaves at 0 (layerkit keeps no count either)."""
    if not isinstance(layer, lk_layers.Normalization):
        return layer.get_weights()
    if layer.get_config()["mean"] is not None:
        return []
    mean, variance = _keras_statistics(layer)
    return [mean, variance, np.array(0, dtype=np.int32)]


def _keras_statistics(layer) -> tuple[np.ndarray, np.ndarray]:
    """A Normalization's mean and variance in Keras's shape: the kept axes only (a
    scalar for ``axis=None``), where layerkit keeps every sample axis (1 if reduced)."""
    kept = layer._kept(len(layer.input_shape))
    shape = tuple(int(layer.input_shape[a]) for a in kept)
    return layer.mean.numpy().reshape(shape), layer.variance.numpy().reshape(shape)


def _check_layer(layer: Layer) -> None:
    supported = (InputLayer, *_EXPORTED)
    if type(layer) not in supported:
        # Subclasses too: they may compute something else under a known class name.
        raise ValueError(
            f"Cannot export layer {layer.name!r} of class {type(layer).__name__} to Keras: "
            f"supported layers are {sorted(cls.__name__ for cls in supported)}."
        )
    if layer.dtype not in _FLOAT_DTYPES:
        raise ValueError(
            f"Cannot export layer {layer.name!r} to Keras: dtype {layer.dtype!r}, "
            f"expected one of {_FLOAT_DTYPES}."
        )
    if isinstance(layer, (Dense, Activation)):
        _keras_activation(layer)
    if isinstance(layer, (Dense, lk_layers.PReLU, lk_layers.BatchNormalization)):
        arguments = ("alpha_initializer",) if isinstance(layer, lk_layers.PReLU) else ()
        if isinstance(layer, lk_layers.BatchNormalization):
            arguments = tuple(f"{w}_initializer" for w in _BATCH_NORM_WEIGHTS)
        for argument in arguments or ("kernel_initializer", "bias_initializer"):
            value = getattr(layer, argument)
            if type(value) not in _INITIALIZERS:
                raise ValueError(
                    f"Cannot export layer {layer.name!r} to Keras: {argument} of class "
                    f"{type(value).__name__} has no Keras equivalent."
                )


def _keras_activation(layer: Layer) -> str:
    activation = layer.activation
    name = _ACTIVATIONS.get(type(activation))
    if name is None:
        raise ValueError(
            f"Cannot export layer {layer.name!r} to Keras: activation {activation!r} of class "
            f"{type(activation).__name__} is not a built-in layerkit activation."
        )
    if name in _KERAS_ACTIVATION_DEFAULTS:
        attribute, keras_value = _KERAS_ACTIVATION_DEFAULTS[name]
        value = getattr(activation, attribute)
        if value != keras_value:
            # The config stores the activation by name, i.e. with Keras's default.
            raise ValueError(
                f"Cannot export layer {layer.name!r} to Keras: activation {name!r} with "
                f"{attribute}={value}; Keras's {name!r} uses {attribute}={keras_value}."
            )
    return name


# --------------------------------------------------------------------------------------
# config.json
# --------------------------------------------------------------------------------------


def _policy(dtype: str) -> dict[str, Any]:
    return {
        "module": "keras",
        "class_name": "DTypePolicy",
        "config": {"name": dtype},
        "registered_name": None,
    }


def _shape(shape: tuple) -> list:
    return [None if d is None else int(d) for d in shape]


def _keras_initializer(initializer: initializers.Initializer) -> dict[str, Any]:
    # layerkit's initializers carry Keras's class names and config keys.
    return {
        "module": "keras.initializers",
        "class_name": type(initializer).__name__,
        "config": initializer.get_config(),
        "registered_name": None,
    }


def _layer_entry(class_name: str, config: dict[str, Any], build_shape=None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "module": "keras.layers",
        "class_name": class_name,
        "config": config,
        "registered_name": None,
    }
    if build_shape is not None:
        # Keras records it for layers that build weights or shapes (Dense, Flatten).
        entry["build_config"] = {"input_shape": _shape(build_shape)}
    return entry


def _keras_object(module: str, value: Any) -> dict[str, Any] | None:
    """A regularizer or constraint in Keras 3's serialized form (same class names and
    config keys as layerkit's)."""
    if value is None:
        return None
    config = value.get_config()
    if isinstance(config.get("axis"), tuple):
        config["axis"] = list(config["axis"])
    return {
        "module": f"keras.{module}",
        "class_name": type(value).__name__,
        "config": config,
        "registered_name": None,
    }


def _weight_options(layer: Layer, keys: tuple[str, ...]) -> dict[str, Any]:
    """The layer's regularizers and constraints (``kernel_regularizer``...) as Keras 3
    writes them (None when unset)."""
    return {
        key: _keras_object(
            "regularizers" if key.endswith("_regularizer") else "constraints",
            getattr(layer, key, None),
        )
        for key in keys
    }


def _layer_config(layer: Layer) -> dict[str, Any]:
    common = {"name": layer.name, "trainable": layer.trainable, "dtype": _policy(layer.dtype)}
    if layer.activity_regularizer is not None:  # Keras 3's base layer config has it then
        common["activity_regularizer"] = _keras_object("regularizers", layer.activity_regularizer)
    if isinstance(layer, Dense):
        config = {
            **common,
            "units": layer.units,
            "activation": _keras_activation(layer),
            "use_bias": layer.use_bias,
            "kernel_initializer": _keras_initializer(layer.kernel_initializer),
            "bias_initializer": _keras_initializer(layer.bias_initializer),
            **_weight_options(
                layer,
                ("kernel_regularizer", "bias_regularizer", "kernel_constraint", "bias_constraint"),
            ),
        }
        return _layer_entry("Dense", config, layer.input_shape)
    if isinstance(layer, Dropout):
        config = {**common, "rate": layer.rate, "seed": layer.seed, "noise_shape": None}
        return _layer_entry("Dropout", config)
    if isinstance(layer, Activation):
        return _layer_entry("Activation", {**common, "activation": _keras_activation(layer)})
    if isinstance(layer, Flatten):
        config = {**common, "data_format": "channels_last"}
        return _layer_entry("Flatten", config, layer.input_shape)
    name = type(layer).__name__
    if isinstance(layer, lk_layers.Reshape):
        config = {**common, "target_shape": list(layer.target_shape)}
        return _layer_entry(name, config, layer.input_shape)
    if isinstance(layer, lk_layers.ReLU):
        config = {
            **common,
            "max_value": layer.max_value,
            "negative_slope": layer.negative_slope,
            "threshold": layer.threshold,
        }
        return _layer_entry(name, config)
    if isinstance(layer, lk_layers.LeakyReLU):
        return _layer_entry(name, {**common, "negative_slope": layer.negative_slope})
    if isinstance(layer, lk_layers.ELU):
        return _layer_entry(name, {**common, "alpha": layer.alpha})
    if isinstance(layer, lk_layers.Softmax):
        return _layer_entry(name, {**common, "axis": layer.axis})
    if isinstance(layer, lk_layers.PReLU):
        config = {
            **common,
            "alpha_initializer": _keras_initializer(layer.alpha_initializer),
            **_weight_options(layer, ("alpha_regularizer", "alpha_constraint")),
            "shared_axes": layer.shared_axes,
        }
        return _layer_entry(name, config, layer.input_shape)
    if isinstance(layer, lk_layers.BatchNormalization):
        config = {
            **common,
            "axis": layer.axis,
            "momentum": layer.momentum,
            "epsilon": layer.epsilon,
            "center": layer.center,
            "scale": layer.scale,
            **{
                f"{w}_initializer": _keras_initializer(getattr(layer, f"{w}_initializer"))
                for w in _BATCH_NORM_WEIGHTS
            },
            **_weight_options(
                layer,
                ("beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"),
            ),
            "synchronized": layer.synchronized,
        }
        return _layer_entry(name, config, layer.input_shape)
    if isinstance(layer, lk_layers.GaussianNoise):
        return _layer_entry(name, {**common, "stddev": layer.stddev, "seed": layer.seed})
    if isinstance(layer, lk_layers.GaussianDropout):
        return _layer_entry(name, {**common, "rate": layer.rate, "seed": layer.seed})
    if isinstance(layer, lk_layers.AlphaDropout):
        config = {**common, "rate": layer.rate, "seed": layer.seed, "noise_shape": None}
        return _layer_entry(name, config)
    if isinstance(layer, lk_layers.Rescaling):
        config = {**common, "scale": layer.scale, "offset": layer.offset}
        return _layer_entry(name, config, layer.input_shape)
    if isinstance(layer, lk_layers.Normalization):
        mean = variance = None
        if layer.get_config()["mean"] is not None:
            # Written as the statistics they broadcast to, in the shape Keras accepts.
            mean, variance = (a.tolist() for a in _keras_statistics(layer))
        config = {
            **common,
            "axis": list(layer.axis),  # Keras writes its tuple of kept axes; () for None
            "invert": layer.invert,
            "mean": mean,
            "variance": variance,
        }
        return _layer_entry(name, config, layer.input_shape)
    if isinstance(layer, _MERGE_CLASSES):
        config = dict(common)
        if isinstance(layer, lk_layers.Concatenate):
            config["axis"] = layer.axis
        if isinstance(layer, lk_layers.Dot):
            config["axes"] = layer.axes if isinstance(layer.axes, int) else list(layer.axes)
            config["normalize"] = layer.normalize
        entry = _layer_entry(name, config)
        if layer.input_shape is not None:
            entry["build_config"] = {"input_shape": [_shape(s) for s in layer.input_shape]}
        return entry
    raise AssertionError(f"unchecked layer class {type(layer).__name__}")  # _check_layer


def _input_name(layers: list[Layer]) -> str:
    if layers and isinstance(layers[0], InputLayer):
        return layers[0].name
    # Keras always puts an InputLayer first; its name must not clash with another layer's.
    taken = {layer.name for layer in layers}
    name, n = "input_layer", 0
    while name in taken:
        n += 1
        name = f"input_layer_{n}"
    return name


def _model_config(model, layers: list[Layer]) -> dict[str, Any]:
    input_shape = _shape(model.input_shape)
    weights = model.weights
    dtype = weights[0].dtype.name if weights else backend.floatx()
    input_layer = {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {
            "batch_shape": input_shape,
            "dtype": layers[0].dtype if isinstance(layers[0], InputLayer) else dtype,
            "sparse": False,
            "name": _input_name(layers),
        },
        "registered_name": None,
    }
    entries = [_layer_config(layer) for layer in layers if not isinstance(layer, InputLayer)]
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": model.name,
            "trainable": True,
            "dtype": _policy(dtype),
            "layers": [input_layer, *entries],
            "build_input_shape": input_shape,
        },
        "registered_name": None,
        "build_config": {"input_shape": input_shape},
        # Keras writes {} for an uncompiled model; layerkit's compile settings are not
        # translated, so the model loads uncompiled.
        "compile_config": {},
    }


def _input_entry(layer: InputLayer) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {
            "batch_shape": _shape((None, *layer.shape)),
            "dtype": layer.dtype,
            "sparse": False,
            "name": layer.name,
        },
        "registered_name": None,
    }


def _graph_model_config(model, layers: list[Layer]) -> dict[str, Any]:
    """Keras 3's Functional config: layerkit's graph config (the same form: inbound
    calls of ``__keras_tensor__`` arguments, ``[layer, call, 0]`` references) with each
    layer's entry written as Keras writes it."""
    from ..models.functional_config import graph_config

    graph = graph_config(model)
    calls = {spec["name"]: spec["inbound_nodes"] for spec in graph["layers"]}
    entries = []
    for layer in layers:
        entry = _input_entry(layer) if isinstance(layer, InputLayer) else _layer_config(layer)
        entry["name"] = layer.name
        entry["inbound_nodes"] = calls.get(layer.name, [])
        entries.append(entry)
    config: dict[str, Any] = {
        "name": model.name,
        "trainable": True,
        "layers": entries,
        "input_layers": graph["input_layers"],
        "output_layers": graph["output_layers"],
    }
    # Inputs or outputs given as a dict: Keras keeps the structure, {name: reference}.
    for key, names_key in (("input_layers", "input_names"), ("output_layers", "output_names")):
        if names_key in graph:
            config[key] = dict(zip(graph[names_key], graph[key], strict=True))
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": config,
        "registered_name": "Functional",
        "build_config": {"input_shape": None},
        # Keras writes {} for an uncompiled model; layerkit's compile settings are not
        # translated, so the model loads uncompiled.
        "compile_config": {},
    }


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def _write_weights(
    target: str | io.BytesIO,
    model_name: str,
    entries: list[tuple[str, str, list[np.ndarray]]],
    optimizer: tuple[str, list[np.ndarray]] | None = None,
) -> None:
    # Groups are created in Keras's order (model first, then layers in model order):
    # readers without a config, layerkit's included, recover the order from it.
    with h5py.File(target, "w") as f:
        f.create_group("vars").attrs["name"] = model_name
        for key, name, arrays in entries:
            group = f.create_group(f"layers/{key}").create_group("vars")
            group.attrs["name"] = name
            for i, array in enumerate(arrays):
                group[str(i)] = array
        if optimizer is not None:
            name, arrays = optimizer
            group = f.create_group("optimizer").create_group("vars")
            group.attrs["name"] = name
            for i, array in enumerate(arrays):
                group[str(i)] = array


# --------------------------------------------------------------------------------------
# The optimizer and compile settings
# --------------------------------------------------------------------------------------

# Config keys of layerkit's built-in losses that Keras 3's losses of the same class take.
_KERAS_LOSS_KEYS = frozenset(
    {"name", "reduction", "from_logits", "label_smoothing", "axis", "delta", "ignore_class"}
)


def _keras_loss(loss: Any) -> Any:
    """A loss as Keras 3 serialises it, or None when Keras could not read it back."""
    if isinstance(loss, str):
        return loss
    if (
        isinstance(loss, dict)
        and isinstance(loss.get("class_name"), str)
        and isinstance(loss.get("config"), dict)
        and set(loss["config"]) <= _KERAS_LOSS_KEYS
        and hasattr(lk_losses, loss["class_name"])
    ):
        return {
            "module": "keras.losses",
            "class_name": loss["class_name"],
            "config": dict(loss["config"]),
            "registered_name": None,
        }
    return None


def _compile_config(model) -> dict[str, Any] | None:
    """Keras 3's ``compile_config`` for a compiled model with one built-in loss and
    metric names, else None (the model is then written uncompiled)."""
    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        return None
    settings = model._objectives.config()
    loss = _keras_loss(settings.get("loss"))
    metrics = settings.get("metrics") or []
    if loss is None or not all(isinstance(m, str) for m in metrics):
        return None
    if settings.get("loss_weights") is not None or model.optimizer.decay is not None:
        return None  # not in Keras 3's terms
    return {
        "optimizer": keras_layout.keras_config(model.optimizer),
        "loss": loss,
        "loss_weights": None,
        "metrics": list(metrics) or None,
        "weighted_metrics": None,
        "run_eagerly": False,
        "steps_per_execution": 1,
        "jit_compile": False,
    }


def _keras_optimizer_variables(model) -> list[np.ndarray]:
    """The optimizer's state over the weights Keras builds it on (the trainable ones, in
    model order), in Keras's layout."""
    trainable = [p for p in model.weights if p.trainable and not p.statistic]
    return keras_layout.keras_variables(model.optimizer, trainable)


def _write_archive(
    target: str, config: dict[str, Any], weights: bytes, extra_members: dict[str, bytes]
) -> None:
    metadata = {
        "keras_version": KERAS_VERSION,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
    }
    # Uncompressed members, in Keras's order.
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(zipfile.ZipInfo("metadata.json"), json.dumps(metadata))
        zf.writestr(zipfile.ZipInfo("config.json"), json.dumps(config))
        zf.writestr("model.weights.h5", weights)
        for name, data in extra_members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
