"""``lk.io.load_keras``: a whole layerkit model from a Keras ``.keras`` or full-model ``.h5``.

The architecture comes from the file's Keras config (``config.json`` of a ``.keras``
archive, the ``model_config`` attribute of a legacy ``.h5``), the weights from the same
file, matched by layer name. Neither Keras nor TensorFlow is needed: both are read with
:mod:`layerkit.io.keras_files`, which checks everything it reads.

Only what layerkit computes identically is accepted: ``Sequential`` models of ``Dense``,
``Dropout``, ``Flatten``, ``Activation`` and ``InputLayer``, with layerkit's activations.
Anything else is a ValueError naming the layer and the file, never an approximation.
"""

from __future__ import annotations

import inspect
import os
import warnings
from typing import Any

import h5py

from .. import activations, initializers
from ..layers import Activation, Dense, Dropout, Flatten, InputLayer, Layer
from ..layers.base import check_name
from ..models.sequential import Sequential
from . import keras_files
from .checkpoint import weight_mismatch
from .stored import FormatError, StoredLayer

__all__ = ["load_keras"]

PathLike = str | os.PathLike

# Dense options that only change training; layerkit has no equivalent, so they are
# dropped with a warning (predictions are unaffected).
_TRAINING_ONLY_DENSE_OPTIONS = (
    "kernel_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "bias_constraint",
)
# Dense options that change the stored weights or the computation: refused.
_REFUSED_DENSE_OPTIONS = ("lora_rank", "quantization_config")
# Keras names its dtype policies; these keep float variables that layerkit can hold.
_PLAIN_POLICIES = {"float16", "float32", "float64", "mixed_float16", "mixed_bfloat16"}
_INITIALIZER_CLASSES = {
    "Zeros": initializers.Zeros,
    "Ones": initializers.Ones,
    "Constant": initializers.Constant,
    "RandomNormal": initializers.RandomNormal,
    "RandomUniform": initializers.RandomUniform,
    "TruncatedNormal": initializers.TruncatedNormal,
    "VarianceScaling": initializers.VarianceScaling,
    "GlorotUniform": initializers.GlorotUniform,
    "GlorotNormal": initializers.GlorotNormal,
    "HeUniform": initializers.HeUniform,
    "HeNormal": initializers.HeNormal,
    "LecunNormal": initializers.LecunNormal,
    "LecunUniform": initializers.LecunUniform,
    "Orthogonal": initializers.Orthogonal,
    "Identity": initializers.Identity,
    # Older names Keras 3 still reads.
    "OrthogonalInitializer": initializers.Orthogonal,
    "IdentityInitializer": initializers.Identity,
}


def load_keras(path: PathLike) -> Sequential:
    """Builds a layerkit ``Sequential`` from a Keras model file and loads its weights.

    Args:
        path: a Keras 3 ``.keras`` archive, or a legacy full-model ``.h5`` written by
            ``model.save("x.h5")`` in Keras 3 or tf.keras 2. The format is recognised
            from the content, not the suffix.

    Returns:
        A built, uncompiled model with the Keras layer names, sizes, activations,
        ``use_bias`` and ``trainable`` flags, holding the file's weights.

    Raises:
        FileNotFoundError: nothing exists at ``path``.
        ValueError: the file holds no architecture (a weights-only file: build the model
            in layerkit and use ``model.load_weights``), the model is not Sequential, or
            a layer, activation or option is not supported; the message names the file
            and the layer. :class:`~layerkit.io.FormatError` (a ValueError) when the
            file is corrupt or unsafe.

    Example:
        >>> model = lk.io.load_keras("mnist_mlp.keras")  # doctest: +SKIP
        >>> [layer.name for layer in model.layers]  # doctest: +SKIP
        ['hidden1', 'hidden2', 'outputs']
        >>> model.compile(optimizer="adam", loss="mse")  # doctest: +SKIP
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"Expected path to be a str or os.PathLike. Received: path={path!r:.100} "
            f"of type {type(path).__name__}"
        )
    path = os.fspath(path)
    kind = keras_files.detect_format(path)
    if kind in ("keras3_weights", "tf1_checkpoint", "layerkit"):
        raise ValueError(_no_architecture_message(path, kind))
    if kind == "legacy_h5" and not _has_model_config(path):
        raise ValueError(_no_architecture_message(path, "legacy_weights"))
    config = keras_files.read_keras_model_config(path)
    try:
        specs = keras_files.keras_dense_layers(config)
    except (TypeError, ValueError) as error:  # TypeError: a malformed value, e.g. rate=None
        raise ValueError(f"Cannot load the Keras model in {path}: {error}.") from None
    raw_layers = [c for c in _raw_layers(config) if c.get("class_name") != "InputLayer"]
    if len(raw_layers) != len(specs):  # keras_dense_layers keeps every non-input layer
        raise FormatError(f"{path}: model config: unexpected layer list")

    stored = keras_files.read_keras_weights(path)
    _check_units_against_weights(specs, stored, path)  # before any allocation
    layers: list[Layer] = []
    input_layer = _input_layer(config, path)
    if input_layer is not None:
        layers.append(input_layer)
    layers.extend(
        _make_layer(spec, raw.get("config", {}), path)
        for spec, raw in zip(specs, raw_layers, strict=True)
    )
    shape = _input_feature_shape(specs, stored, path)
    try:
        model = Sequential(layers, name=_model_name(config, path))
        if not model.built:
            model.build((None, *shape))
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"Cannot build the model of {path} for inputs of shape {(None, *shape)}: {error}"
        ) from None
    _assign_weights(model, stored, path)
    return model


def _check_units_against_weights(specs: list[dict], stored: list, path: str) -> None:
    """Refuses a config whose Dense sizes the stored kernels do not back, so a config that
    declares 2**40 units fails here instead of allocating."""
    by_name = {s.name: s.weights for s in stored}
    missing = [
        s["name"] for s in specs if s.get("class_name") == "Dense" and s["name"] not in by_name
    ]
    if missing:
        raise FormatError(f"{path}: the file has no weights for layers {missing}.")
    for spec in specs:
        if spec.get("class_name") != "Dense":
            continue
        name, units = spec["name"], spec["units"]
        kernel = by_name.get(name, {}).get("kernel")
        if kernel is None or kernel.ndim != 2 or kernel.shape[1] != units:
            found = None if kernel is None else kernel.shape
            raise FormatError(
                f"{path}: Dense layer {name!r} declares {units} units, but the file's kernel "
                f"for it has shape {found}."
            )
        if spec.get("input_dim") not in (None, kernel.shape[0]):
            raise FormatError(
                f"{path}: Dense layer {name!r} declares input_dim {spec['input_dim']}, but "
                f"the file's kernel has shape {kernel.shape}."
            )


def _has_model_config(path: str) -> bool:
    # Only the root attributes are looked at; keras_files reads (and checks) the rest.
    with h5py.File(path, "r") as f:
        return "model_config" in f.attrs


def _no_architecture_message(path: str, kind: str) -> str:
    what = {
        "keras3_weights": "a Keras 3 weights file (model.save_weights)",
        "legacy_weights": "a legacy Keras weights-only .h5 file (no 'model_config')",
        "tf1_checkpoint": "a TensorFlow 1 checkpoint",
        "layerkit": "a layerkit checkpoint",
    }[kind]
    if kind == "layerkit":
        return f"{path} is {what}, not a Keras model: load it with lk.load_model(path)."
    return (
        f"{path} is {what}: it holds weights but no architecture, so load_keras cannot "
        "build a model from it. Build the model in layerkit and call "
        "model.load_weights(path), or pass a .keras archive or a full-model .h5."
    )


def _raw_layers(config: dict) -> list[dict]:
    inner = config.get("config")
    layers = inner.get("layers") if isinstance(inner, dict) else inner
    return [layer for layer in layers or [] if isinstance(layer, dict)]


def _model_name(config: dict, path: str) -> str | None:
    inner = config.get("config")
    name = inner.get("name") if isinstance(inner, dict) else None
    if name is None:
        return None
    try:
        return check_name(name)
    except ValueError:
        # The model name is cosmetic (weights are matched by layer names), so a Keras
        # name that layerkit does not allow is replaced rather than refused.
        warnings.warn(
            f"{path}: the Keras model name {name!r} is not a valid layerkit name; "
            "using an automatic one.",
            stacklevel=3,
        )
        return None


def _layer_name(name: Any, class_name: str, path: str) -> str:
    try:
        return check_name(name)
    except ValueError:
        raise ValueError(
            f"{path}: {class_name} layer name {name!r} is not a valid layerkit name "
            "(letters, digits, '_', '.' and '-' only)."
        ) from None


def _input_layer(config: dict, path: str):
    """A layerkit InputLayer for the Keras InputLayer, when it fixes every dimension."""
    for layer in _raw_layers(config):
        if layer.get("class_name") != "InputLayer":
            continue
        cfg = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        shape = _declared_shape(cfg)
        if not shape or any(d is None for d in shape):
            return None  # built from the shape later, without an InputLayer
        if cfg.get("sparse") or cfg.get("ragged"):
            raise ValueError(
                f"{path}: InputLayer {cfg.get('name')!r} takes sparse or ragged tensors, "
                "which layerkit does not support."
            )
        name = cfg.get("name")
        name = None if name is None else _layer_name(name, "InputLayer", path)
        return InputLayer(shape=shape, name=name)
    return None


def _declared_shape(cfg: dict) -> tuple | None:
    """The sample shape an InputLayer declares (``batch_shape`` minus the batch axis)."""
    for value in (cfg.get("batch_shape"), cfg.get("batch_input_shape")):  # Keras 3, tf.keras 2
        if isinstance(value, list) and len(value) >= 2:
            return tuple(
                d if isinstance(d, int) and not isinstance(d, bool) and d > 0 else None
                for d in value[1:]
            )
    return None


def _dtype_policy(cfg: dict) -> str | None:
    dtype = cfg.get("dtype")
    if isinstance(dtype, dict):
        inner = dtype.get("config")
        return inner.get("name") if isinstance(inner, dict) else None
    return dtype if isinstance(dtype, str) else None


def _activation(
    name: str, layer: str, class_name: str, path: str
) -> activations.ActivationFunction:
    try:
        return activations.get(name)
    except (TypeError, ValueError):
        raise ValueError(
            f"{path}: {class_name} layer {layer!r} uses activation {name!r}, which layerkit "
            f"does not implement. Supported: {activations.names()}."
        ) from None


def _initializer(value: Any, default: str) -> initializers.Initializer:
    """The layerkit initializer of a Keras initializer config, else ``default``.

    Initial values are overwritten by the loaded weights, so an initializer layerkit
    lacks only matters if the model is re-initialised; falling back is harmless.
    """
    if isinstance(value, str):
        try:
            return initializers.get(value)
        except (TypeError, ValueError):
            return initializers.get(default)
    if not isinstance(value, dict) or not isinstance(value.get("config"), dict):
        return initializers.get(default)
    cls = _INITIALIZER_CLASSES.get(value.get("class_name"))
    if cls is None:
        return initializers.get(default)
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in value["config"].items() if k in accepted and k != "self"}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError):
        return initializers.get(default)


def _make_layer(spec: dict, cfg: dict, path: str) -> Layer:
    class_name, keras_name = spec["class_name"], spec["name"]
    name = _layer_name(keras_name, class_name, path)
    where = f"{path}: {class_name} layer {name!r}"
    policy = _dtype_policy(cfg)
    if policy is not None and policy not in _PLAIN_POLICIES:
        raise ValueError(
            f"{where} has dtype policy {policy!r} (quantized or not a float type); "
            f"layerkit loads only {sorted(_PLAIN_POLICIES)}."
        )
    trainable = cfg.get("trainable", True)
    if not isinstance(trainable, bool):
        raise ValueError(f"{where}: invalid trainable {trainable!r}, expected a bool.")
    if class_name == "Dense":
        for option in _REFUSED_DENSE_OPTIONS:
            if cfg.get(option):
                raise ValueError(
                    f"{where} has {option}={cfg[option]!r}, which changes its weights; "
                    "layerkit supports plain Dense layers only."
                )
        ignored = [option for option in _TRAINING_ONLY_DENSE_OPTIONS if cfg.get(option)]
        if ignored:
            warnings.warn(
                f"{where}: {', '.join(ignored)} ignored (layerkit has no regularizers or "
                "constraints); predictions are the same, further training is not.",
                stacklevel=3,
            )
        return Dense(
            spec["units"],
            activation=_activation(spec["activation"], name, class_name, path),
            use_bias=spec["use_bias"],
            kernel_initializer=_initializer(cfg.get("kernel_initializer"), "glorot_uniform"),
            bias_initializer=_initializer(cfg.get("bias_initializer"), "zeros"),
            name=name,
            trainable=trainable,
        )
    if class_name == "Dropout":
        if cfg.get("noise_shape") is not None:
            raise ValueError(
                f"{where} has noise_shape={cfg['noise_shape']!r}; layerkit's Dropout drops "
                "every unit independently."
            )
        seed = cfg.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, int):
            seed = None
        try:
            return Dropout(spec["rate"], seed=seed, name=name, trainable=trainable)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
    if class_name == "Activation":
        return Activation(
            _activation(spec["activation"], name, class_name, path),
            name=name,
            trainable=trainable,
        )
    if class_name == "Flatten":
        rank = len(spec["input_shape"]) if spec["input_shape"] is not None else None
        if cfg.get("data_format") == "channels_first" and rank != 1:
            # Keras moves the channel axis last before flattening such inputs.
            raise ValueError(
                f"{where} flattens channels_first inputs of shape {spec['input_shape']}, "
                "which reorders features; layerkit flattens in channels_last order only."
            )
        return Flatten(name=name, trainable=trainable)
    # keras_dense_layers refuses every other class; this guards against it growing.
    raise ValueError(f"{where}: unsupported Keras layer class {class_name!r}.")


def _input_feature_shape(specs: list[dict], stored: list[StoredLayer], path: str) -> tuple:
    """The shape of one input sample: declared in the config, else the first kernel's."""
    declared = specs[0]["input_shape"] if specs else None
    if declared is not None and (len(declared) > 1 or declared[0] is not None):
        # Unknown inner dimensions are left to model.build, which says what it lacks.
        return tuple(declared)
    by_name = {s.name: s for s in stored}
    for spec in specs:
        if spec["class_name"] == "Dense":
            kernel = by_name.get(spec["name"], StoredLayer("", {})).weights.get("kernel")
            if kernel is not None and kernel.ndim == 2:
                return (int(kernel.shape[0]),)
            break
        if spec["class_name"] == "Flatten":
            break  # the flattened size does not tell the shape before it
    raise ValueError(
        f"{path}: the model config declares no input shape, and it cannot be inferred "
        "from the weights."
    )


def _assign_weights(model: Sequential, stored: list[StoredLayer], path: str) -> None:
    """Copies every stored layer into the model layer of the same name, all or nothing."""
    model_layers = {layer.name: layer for layer in model.layers}
    pairs = []
    for s in stored:
        layer = model_layers.get(s.name)
        if layer is None:
            raise ValueError(
                f"{path} holds weights for layer {s.name!r}, which its model config does not "
                f"list. Config layers: {list(model_layers)}."
            )
        problem = weight_mismatch(s, layer)
        if problem:
            raise ValueError(f"Cannot load {path}: {problem}.")
        pairs.append((s, layer))
    restored = {s.name for s in stored}
    missing = [layer.name for layer in model.layers if layer.weights and layer.name not in restored]
    if missing:
        # Random initial values would be silently wrong predictions.
        raise ValueError(
            f"{path} holds no weights for layers {missing}. "
            f"Layers with weights in the file: {sorted(restored)}."
        )
    for s, layer in pairs:
        for p in layer.weights:
            p.assign(s.weights[p.name.split("/", 1)[1]])
