"""``lk.io.load_keras``: a whole layerkit model from a Keras ``.keras`` or full-model ``.h5``.

The architecture comes from the file's Keras config (``config.json`` of a ``.keras``
archive, the ``model_config`` attribute of a legacy ``.h5``), the weights from the same
file, matched by layer name. Neither Keras nor TensorFlow is needed: both are read with
:mod:`layerkit.io.keras_files`, which checks everything it reads.

Only what layerkit computes identically is accepted: ``Sequential`` models and
Functional graphs (several inputs and outputs, shared layers) of ``Dense``, ``Dropout``,
``Flatten``, ``Activation``, ``Reshape``, the activation layers (``ReLU``, ``LeakyReLU``,
``ELU``, ``Softmax``, ``PReLU``), ``BatchNormalization``, the noise layers
(``GaussianNoise``, ``GaussianDropout``, ``AlphaDropout``), ``Rescaling``,
``Normalization`` (Keras's ``count`` weight is dropped), the merge layers (``Concatenate``, ``Add``,
``Subtract``, ``Multiply``, ``Average``, ``Maximum``, ``Minimum``, ``Dot``; graphs only)
and ``InputLayer``, with layerkit's activations. Anything else is a ValueError naming
the layer and the file, never an approximation.

A Functional config is translated into layerkit's own functional config and built by
:func:`layerkit.models.functional_config.model_from_config`, whose checks (references,
cycles, shapes, total size) run before anything is allocated; the weights the checked
graph would create are compared with the file's before the model is built.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import warnings
from typing import TYPE_CHECKING, Any

import h5py

from .. import activations, constraints, initializers, regularizers
from .. import layers as lk_layers
from .. import losses as losses_module
from .. import metrics as metrics_module
from ..layers import Activation, Dense, Dropout, Flatten, InputLayer, Layer
from ..layers.base import check_name, serialize
from ..models.sequential import Sequential
from . import keras_files
from .checkpoint import aligned, weight_mismatch
from .stored import FormatError, StoredLayer

if TYPE_CHECKING:
    from ..models.model import Model

__all__ = ["load_keras"]

PathLike = str | os.PathLike

# Options that only change training: Keras's regularizers and constraints carry over,
# any other class is dropped with a warning (predictions are unaffected).
_TRAINING_ONLY_DENSE_OPTIONS = (
    "kernel_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "bias_constraint",
)
_TRAINING_ONLY_PRELU_OPTIONS = ("alpha_regularizer", "alpha_constraint", "activity_regularizer")
_TRAINING_ONLY_BATCH_NORM_OPTIONS = (
    "beta_regularizer",
    "gamma_regularizer",
    "beta_constraint",
    "gamma_constraint",
    "activity_regularizer",
)
# Options of the layer that calls a layer (the "kwargs" of an inbound node) layerkit
# cannot honour when they are set.
_MAX_INBOUND_KWARGS = 16
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


def load_keras(path: PathLike) -> Model:
    """Builds a layerkit model from a Keras model file and loads its weights.

    Args:
        path: a Keras 3 ``.keras`` archive, or a legacy full-model ``.h5`` written by
            ``model.save("x.h5")`` in Keras 3 or tf.keras 2. The format is recognised
            from the content, not the suffix.

    Returns:
        A built model with the Keras layer names, sizes, activations, ``use_bias`` and
        ``trainable`` flags, holding the file's weights: a ``Sequential`` for a Keras
        ``Sequential``, an ``lk.Model`` graph (the same inputs, outputs, layer order and
        shared layers) for a Keras Functional model. A model Keras saved compiled is
        compiled the same way (optimizer, loss, metrics), its optimizer holding the
        archive's state, so ``fit`` continues where Keras stopped; compile settings
        layerkit cannot translate leave it uncompiled, with a warning.

    Raises:
        FileNotFoundError: nothing exists at ``path``.
        ValueError: the file holds no architecture (a weights-only file: build the model
            in layerkit and use ``model.load_weights``), the model is neither Sequential
            nor Functional, the graph is malformed (a cycle, a reference to a layer or
            call that does not exist, sizes the weights do not back), or a layer,
            activation or option is not supported; the message names the file and the
            layer. :class:`~layerkit.io.FormatError` (a ValueError) when the
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
    if config.get("class_name") in keras_files._GRAPH_CLASSES:
        model = _load_functional(config, path)
        _compile_as_saved(model, config, path)
        return model
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
    normalizations = {
        layer.name for layer in model.layers if isinstance(layer, lk_layers.Normalization)
    }
    shapes = {
        layer.name: {p.name.split("/", 1)[1]: p.shape for p in layer.weights}
        for layer in model.layers
    }
    stored = _keras_statistics(stored, shapes, normalizations)
    configs = {
        c.get("config", {}).get("name"): (c.get("class_name"), c.get("config")) for c in raw_layers
    }
    _assign_weights(model, stored, path, _fixed_statistics(configs))
    _compile_as_saved(model, config, path)
    return model


def _keras_spec(value: Any) -> Any:
    """A Keras-serialised loss or metric (``{"module", "class_name", "config", ...}``) as
    layerkit's ``{"class_name", "config"}``; names and None pass through."""
    if isinstance(value, dict) and "class_name" in value:
        config = dict(value.get("config") or {})
        config.pop("dtype", None)  # Keras's metric dtype: layerkit's metrics are float64
        return {"class_name": value["class_name"], "config": config}
    return value


def _compile_as_saved(model: Model, config: dict, path: str) -> None:
    """Compiles a model loaded from a Keras archive as Keras saved it (optimizer, loss,
    metrics) and gives its optimizer the archive's state, so training continues where
    Keras stopped. A model Keras saved uncompiled stays so; compile settings layerkit
    cannot translate (a custom loss) leave it uncompiled with a warning."""
    from ..optim import keras_layout

    settings = config.get("compile_config")
    if not isinstance(settings, dict) or not settings.get("optimizer") or not settings.get("loss"):
        return
    try:
        loss = settings["loss"]
        if isinstance(loss, list):
            loss = [None if v is None else losses_module.get(_keras_spec(v)) for v in loss]
        elif isinstance(loss, dict) and "class_name" not in loss:
            loss = {
                k: None if v is None else losses_module.get(_keras_spec(v)) for k, v in loss.items()
            }
        else:
            loss = losses_module.get(_keras_spec(loss))

        def metric_specs(value: Any) -> Any:
            if isinstance(value, list):
                return [metric_specs(v) for v in value]
            if isinstance(value, dict) and "class_name" not in value:
                return {k: metric_specs(v) for k, v in value.items()}
            spec = _keras_spec(value)
            return metrics_module.deserialize(spec) if isinstance(spec, dict) else spec

        model.compile(
            optimizer=keras_layout.from_keras_config(settings["optimizer"]),
            loss=loss,
            metrics=metric_specs(settings.get("metrics")),
            loss_weights=settings.get("loss_weights"),
            weighted_metrics=metric_specs(settings.get("weighted_metrics")),
        )
    except (KeyError, TypeError, ValueError) as error:
        model.optimizer, model._objectives, model.compiled = None, None, False
        warnings.warn(
            f"{path}: its compile settings cannot be translated ({error}); the model is "
            "loaded uncompiled (compile it to train).",
            stacklevel=3,
        )
        return
    arrays = keras_files.read_keras_optimizer_variables(path)
    if arrays:
        # Keras's trainable_variables, in layer order: the frozen layers' are not in it.
        trainable = [p for p in model.weights if p.trainable and not p.statistic]
        model.optimizer.build(model._optimized_weights())
        try:
            keras_layout.load_keras_variables(model.optimizer, trainable, arrays)
        except ValueError as error:
            raise FormatError(f"{path}: optimizer state: {error}") from None


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
        kept = _training_options(cfg, _TRAINING_ONLY_DENSE_OPTIONS, where)
        return Dense(
            spec["units"],
            activation=_activation(spec["activation"], name, class_name, path),
            use_bias=spec["use_bias"],
            kernel_initializer=_initializer(cfg.get("kernel_initializer"), "glorot_uniform"),
            bias_initializer=_initializer(cfg.get("bias_initializer"), "zeros"),
            name=name,
            trainable=trainable,
            **kept,
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
    layer = _make_other_layer(class_name, cfg, name, trainable, where, path)
    if layer is None:
        # keras_layer_spec refuses every other class; this guards against it growing.
        raise ValueError(f"{where}: unsupported Keras layer class {class_name!r}.")
    return layer


def _training_options(cfg: dict, options: tuple[str, ...], where: str) -> dict[str, Any]:
    """The regularizers and constraints of a Keras layer config that layerkit has (L1,
    L2, L1L2, OrthogonalRegularizer; MaxNorm, NonNeg, UnitNorm, MinMaxNorm), as layer
    arguments; any other class only changes training and is dropped with a warning."""
    kept: dict[str, Any] = {}
    ignored = []
    for option in options:
        value = cfg.get(option)
        if not value:
            continue
        translated = _penalty_or_constraint(option, value)
        if translated is None:
            ignored.append(option)
        else:
            kept[option] = translated
    if ignored:
        warnings.warn(
            f"{where}: {', '.join(ignored)} ignored (not a regularizer or constraint "
            "layerkit has); predictions are the same, further training is not.",
            stacklevel=4,
        )
    return kept


def _penalty_or_constraint(option: str, value: Any) -> Any:
    """The layerkit regularizer or constraint of a Keras config entry, else None (a
    class layerkit does not have)."""
    if not isinstance(value, dict):
        return None
    module = regularizers if option.endswith("regularizer") else constraints
    try:
        return module.get({"class_name": value.get("class_name"), "config": value.get("config")})
    except (TypeError, ValueError):
        return None


def _number(cfg: dict, key: str, default: Any, where: str, allow_none: bool = False) -> Any:
    value = cfg.get(key, default)
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: invalid {key} {value!r}, expected a number.")
    return float(value)


def _make_other_layer(
    class_name: str, cfg: dict, name: str, trainable: bool, where: str, path: str
) -> Layer | None:
    """The activation, Reshape and merge layers; None for a class it does not know."""
    common = {"name": name, "trainable": trainable}
    try:
        if class_name == "LeakyReLU":
            # Keras 3 calls the slope negative_slope, tf.keras 2 alpha.
            key = "negative_slope" if "negative_slope" in cfg or "alpha" not in cfg else "alpha"
            return lk_layers.LeakyReLU(_number(cfg, key, 0.3, where), **common)
        if class_name == "ELU":
            return lk_layers.ELU(_number(cfg, "alpha", 1.0, where), **common)
        if class_name == "ReLU":
            return lk_layers.ReLU(
                max_value=_number(cfg, "max_value", None, where, allow_none=True),
                negative_slope=_number(cfg, "negative_slope", 0.0, where),
                threshold=_number(cfg, "threshold", 0.0, where),
                **common,
            )
        if class_name == "Softmax":
            return lk_layers.Softmax(axis=cfg.get("axis", -1), **common)
        if class_name == "PReLU":
            return lk_layers.PReLU(
                alpha_initializer=_initializer(cfg.get("alpha_initializer"), "zeros"),
                shared_axes=cfg.get("shared_axes"),
                **common,
                **_training_options(cfg, _TRAINING_ONLY_PRELU_OPTIONS, where),
            )
        if class_name == "BatchNormalization":
            options = _training_options(cfg, _TRAINING_ONLY_BATCH_NORM_OPTIONS, where)
            if cfg.get("renorm"):
                raise ValueError(f"{where}: renorm=True is not supported.")
            return lk_layers.BatchNormalization(
                axis=cfg.get("axis", -1),
                momentum=_number(cfg, "momentum", 0.99, where),
                epsilon=_number(cfg, "epsilon", 1e-3, where),
                center=cfg.get("center", True),
                scale=cfg.get("scale", True),
                beta_initializer=_initializer(cfg.get("beta_initializer"), "zeros"),
                gamma_initializer=_initializer(cfg.get("gamma_initializer"), "ones"),
                moving_mean_initializer=_initializer(cfg.get("moving_mean_initializer"), "zeros"),
                moving_variance_initializer=_initializer(
                    cfg.get("moving_variance_initializer"), "ones"
                ),
                synchronized=bool(cfg.get("synchronized", False)),
                **common,
                **options,
            )
        if class_name in ("GaussianNoise", "GaussianDropout", "AlphaDropout"):
            return _noise_layer(class_name, cfg, common)
        if class_name == "Rescaling":
            scale, offset = cfg.get("scale", 1.0), cfg.get("offset", 0.0)
            for key, value in (("scale", scale), ("offset", offset)):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(
                        f"{key}={value!r:.60}; layerkit's Rescaling takes one number "
                        "(no per-channel scales)."
                    )
            return lk_layers.Rescaling(float(scale), float(offset), **common)
        if class_name == "Normalization":
            axis = cfg.get("axis", -1)
            if isinstance(axis, list) and len(axis) == 1:
                axis = axis[0]
            mean, variance = cfg.get("mean"), cfg.get("variance")
            # Keras takes scalar statistics (one for every kept position); layerkit's
            # constructor wants arrays, which broadcast the same way.
            mean, variance = (
                [v] if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                for v in (mean, variance)
            )
            return lk_layers.Normalization(
                axis=tuple(axis) if isinstance(axis, list) else axis,
                mean=mean,
                variance=variance,
                invert=cfg.get("invert", False),
                **common,
            )
        if class_name == "Reshape":
            return lk_layers.Reshape(cfg.get("target_shape"), **common)
        if class_name == "Concatenate":
            return lk_layers.Concatenate(axis=cfg.get("axis", -1), **common)
        if class_name == "Dot":
            return lk_layers.Dot(
                axes=cfg.get("axes"), normalize=cfg.get("normalize", False), **common
            )
        simple = {
            "Add": lk_layers.Add,
            "Subtract": lk_layers.Subtract,
            "Multiply": lk_layers.Multiply,
            "Average": lk_layers.Average,
            "Maximum": lk_layers.Maximum,
            "Minimum": lk_layers.Minimum,
        }
        if class_name in simple:
            return simple[class_name](**common)
    except (TypeError, ValueError) as error:
        message = str(error)
        if message.startswith(path):
            raise
        raise ValueError(f"{where}: {message}") from None
    return None


def _noise_layer(class_name: str, cfg: dict, common: dict) -> Layer:
    """GaussianNoise, GaussianDropout or AlphaDropout (identities in inference)."""
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        seed = None  # a Keras SeedGenerator config: layerkit draws its own
    key = "stddev" if class_name == "GaussianNoise" else "rate"
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"invalid {key} {value!r:.60}, expected a number.")
    if class_name == "GaussianNoise":
        return lk_layers.GaussianNoise(float(value), seed=seed, **common)
    if class_name == "GaussianDropout":
        return lk_layers.GaussianDropout(float(value), seed=seed, **common)
    if cfg.get("noise_shape") is not None:
        raise ValueError(
            f"noise_shape={cfg['noise_shape']!r}; layerkit's AlphaDropout drops every unit "
            "independently."
        )
    return lk_layers.AlphaDropout(float(value), seed=seed, **common)


def _fixed_statistics(layer_configs: dict[str, tuple[str, dict]]) -> set[str]:
    """Names of the Normalization layers given ``mean=``/``variance=``: Keras keeps
    those in the config and stores no weights for them."""
    return {
        name
        for name, (class_name, cfg) in layer_configs.items()
        if class_name == "Normalization" and isinstance(cfg, dict) and cfg.get("mean") is not None
    }


def _keras_statistics(
    stored: list[StoredLayer], shapes: dict[str, dict[str, tuple]], normalizations: set[str]
) -> list[StoredLayer]:
    """``stored`` with Keras's Normalization weights in layerkit's form (see
    ``Normalization.from_keras_weights``), checked against the planned shapes before
    any layer is built."""
    return [
        dataclasses.replace(
            s, weights=lk_layers.Normalization.from_keras_weights(s.weights, shapes.get(s.name, {}))
        )
        if s.name in normalizations
        else s
        for s in stored
    ]


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


def _assign_weights(
    model: Sequential, stored: list[StoredLayer], path: str, fixed: set[str] = frozenset()
) -> None:
    """Copies every stored layer into the model layer of the same name, all or nothing;
    the layers named in ``fixed`` (Normalization with ``mean=``) have theirs from the
    config."""
    model_layers = {layer.name: layer for layer in model.layers}
    pairs = []
    for s in stored:
        layer = model_layers.get(s.name)
        if layer is None:
            raise ValueError(
                f"{path} holds weights for layer {s.name!r}, which its model config does not "
                f"list. Config layers: {list(model_layers)}."
            )
        s = aligned(s, layer)
        problem = weight_mismatch(s, layer)
        if problem:
            raise ValueError(f"Cannot load {path}: {problem}.")
        pairs.append((s, layer))
    restored = {s.name for s in stored}
    missing = [
        layer.name
        for layer in model.layers
        if layer.weights and layer.name not in restored and layer.name not in fixed
    ]
    if missing:
        # Random initial values would be silently wrong predictions.
        raise ValueError(
            f"{path} holds no weights for layers {missing}. "
            f"Layers with weights in the file: {sorted(restored)}."
        )
    for s, layer in pairs:
        for p in layer.weights:
            p.assign(s.weights[p.name.split("/", 1)[1]])


# --------------------------------------------------------------------------------------
# Functional models
# --------------------------------------------------------------------------------------


def _load_functional(config: dict, path: str) -> Model:
    """A layerkit graph from a Keras Functional config (Keras 3 or tf.keras 2 form)."""
    from ..models import functional_config

    try:
        lk_config = _functional_config(config, path)
        checked = functional_config.check_config(lk_config)
    except (TypeError, ValueError) as error:
        message = str(error)
        if not message.startswith(path):
            message = f"Cannot load the Keras Functional model in {path}: {message}"
        raise ValueError(message) from None
    configs = {
        spec["name"]: (spec["class_name"], spec.get("config", {})) for spec in lk_config["layers"]
    }
    fixed = _fixed_statistics(configs)
    normalizations = {name for name, (cls, _) in configs.items() if cls == "Normalization"}
    planned = {k: v for k, v in checked.weight_shapes.items() if k not in fixed}
    stored = _keras_statistics(keras_files.read_keras_weights(path), planned, normalizations)
    _check_weights_against_plan(planned, stored, path)  # before any allocation
    try:
        model = functional_config.model_from_config(lk_config)
    except (TypeError, ValueError) as error:  # checked above; kept for a clear message
        raise ValueError(f"Cannot build the Keras Functional model in {path}: {error}") from None
    _assign_weights(model, stored, path, fixed)
    return model


def _functional_config(config: dict, path: str) -> dict:
    """layerkit's functional config for a Keras Functional one: every layer translated
    with the rules of the Sequential loader, the calls and the model's inputs and
    outputs passed on for :func:`~layerkit.models.functional_config.check_config`."""
    from ..models import functional_config

    inner = config.get("config")
    if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
        raise FormatError(f"{path}: Functional model config without a list of layers")
    entries = inner["layers"]
    if not entries or len(entries) > functional_config.MAX_LAYERS:
        raise FormatError(
            f"{path}: Functional model config with {len(entries)} layers (expected 1 to "
            f"{functional_config.MAX_LAYERS})"
        )
    layers = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise FormatError(f"{path}: layers[{index}] is not a Keras layer entry")
        cfg = entry["config"]
        class_name = entry.get("class_name")
        name = entry.get("name", cfg.get("name"))
        if class_name == "InputLayer":
            layer: Layer = _graph_input_layer(cfg, path)
        else:
            # The shape matters only to Flatten's channels_first check here; the graph
            # checker computes every shape from the inputs.
            shape = keras_files._declared_input(entry, cfg)
            try:
                spec, _ = keras_files.keras_layer_spec(entry, shape)
            except (TypeError, ValueError) as error:
                raise ValueError(f"Cannot load the Keras model in {path}: {error}.") from None
            layer = _make_layer(spec, cfg, path)
        if name is not None and name != layer.name:
            raise FormatError(
                f"{path}: layers[{index}] is named {name!r} but its config says {layer.name!r}"
            )
        spec = serialize(layer)
        spec["name"] = layer.name
        spec["inbound_nodes"] = _inbound_nodes(entry.get("inbound_nodes", []), layer.name, path)
        layers.append(spec)
    result: dict[str, Any] = {"name": _model_name(config, path), "layers": layers}
    for key, names_key in (("input_layers", "input_names"), ("output_layers", "output_names")):
        value = inner.get(key)
        if isinstance(value, dict):  # inputs or outputs given as a dict: by name
            if len(value) > functional_config.MAX_ARGS:
                raise FormatError(f"{path}: {key} lists {len(value)} tensors")
            result[names_key] = [str(k) for k in value]
            value = list(value.values())
        result[key] = value
    return result


def _graph_input_layer(cfg: dict, path: str) -> InputLayer:
    name = _layer_name(cfg.get("name"), "InputLayer", path)
    shape = _declared_shape(cfg)
    if not shape:
        raise ValueError(f"{path}: InputLayer {name!r} declares no input shape.")
    if any(d is None for d in shape):
        raise ValueError(
            f"{path}: InputLayer {name!r} has inputs of shape {(None, *shape)}; layerkit "
            "needs every dimension but the batch axis known."
        )
    for option in ("sparse", "ragged", "optional"):
        if cfg.get(option):
            raise ValueError(
                f"{path}: InputLayer {name!r} has {option}=True, which layerkit does not support."
            )
    dtype = _dtype_policy(cfg)
    if dtype is not None and dtype not in ("float16", "float32", "float64"):
        raise ValueError(
            f"{path}: InputLayer {name!r} takes {dtype!r} inputs; layerkit takes float inputs only."
        )
    return InputLayer(shape=shape, name=name, dtype=dtype)


def _inbound_nodes(nodes: Any, layer: str, path: str) -> Any:
    """The calls of one layer in Keras 3's form (``{"args": [...], "kwargs": {}}``).

    tf.keras 2's calls (``[[layer, call, tensor, kwargs], ...]``) are rewritten; call
    options (``kwargs``) must be unset. What is not recognisable is passed on unchanged,
    for the graph checker to refuse with its own message.
    """
    from ..models import functional_config

    if not isinstance(nodes, list) or len(nodes) > functional_config.MAX_CALLS_PER_LAYER:
        return nodes
    out = []
    for k, node in enumerate(nodes):
        where = f"{path}: layer {layer!r} call {k}"
        if isinstance(node, dict):
            _check_call_kwargs(node.get("kwargs"), where)
            out.append({"args": node.get("args"), "kwargs": {}})
        elif isinstance(node, list) and node and all(isinstance(t, list) for t in node):
            if len(node) > functional_config.MAX_ARGS:
                out.append(node)
                continue
            tensors = []
            for t in node:
                if len(t) == 4:
                    _check_call_kwargs(t[3], where)
                tensors.append(
                    {"class_name": "__keras_tensor__", "config": {"keras_history": t[:3]}}
                )
            out.append({"args": [tensors] if len(tensors) > 1 else tensors, "kwargs": {}})
        else:
            out.append(node)
    return out


def _check_call_kwargs(kwargs: Any, where: str) -> None:
    if kwargs is None:
        return
    if not isinstance(kwargs, dict) or len(kwargs) > _MAX_INBOUND_KWARGS:
        raise FormatError(f"{where}: malformed call options {kwargs!r:.120}")
    used = sorted(str(k) for k, v in kwargs.items() if v is not None)
    if used:
        raise ValueError(
            f"{where} passes the options {used} ({kwargs!r:.120}), which layerkit does not support."
        )


def _check_weights_against_plan(
    planned: dict[str, dict[str, tuple]], stored: list[StoredLayer], path: str
) -> None:
    """Refuses a graph whose weights (as the checked config would create them) the file
    does not hold exactly, before any weight is allocated."""
    by_name = {s.name: s for s in stored}
    extra = [s.name for s in stored if s.name not in planned]
    if extra:
        raise ValueError(
            f"{path} holds weights for layers {extra}, which have no weights in its model "
            f"config. Layers with weights in the config: {sorted(planned)}."
        )
    missing = [name for name in planned if name not in by_name]
    if missing:
        raise ValueError(
            f"{path} holds no weights for layers {missing}. "
            f"Layers with weights in the file: {sorted(by_name)}."
        )
    for name, shapes in planned.items():
        found = {key: tuple(array.shape) for key, array in by_name[name].weights.items()}
        expected = {key: tuple(int(d) for d in shape) for key, shape in shapes.items()}
        if found != expected:
            raise FormatError(
                f"{path}: layer {name!r} of the model config has weights {expected}, the "
                f"file holds {found}."
            )
