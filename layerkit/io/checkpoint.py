"""layerkit's own checkpoints: one HDF5 file, written atomically, read with full checks.

Layout (``h5dump`` shows it plainly)::

    /                      attrs: format="layerkit", format_version, layerkit_version,
                                  kind ("model" or "weights"), layer_names, model_config,
                                  compile_config, optimizer_config, training_position,
                                  layer_states (all JSON)
    /weights/<layer>/      attrs: class_name, trainable; datasets: kernel, bias
    /optimizer/<layer>/<weight>/<slot>   attrs on /optimizer: iterations, parameter_names

A checkpoint is data, never code: configs are JSON and only registered layer classes are
built from them; no pickle, no eval.
"""

from __future__ import annotations

import json
import os
from typing import Any

import h5py
import numpy as np

from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optim
from ..random import rng_from_state
from ..version import __version__
from .atomic import atomic_write
from .stored import FormatError, StoredLayer

FORMAT_NAME = "layerkit"
FORMAT_VERSION = 1
# Refuse absurd datasets before reading them: more elements than this is not a Dense layer.
MAX_ELEMENTS = 1 << 31


# --- writing ---------------------------------------------------------------------------
def save_model(model, path: str | os.PathLike, include_optimizer: bool = True) -> str:
    """Writes the architecture, weights, compile config, optimizer state and training
    position of ``model`` to ``path`` (atomically). Returns the absolute path."""
    return atomic_write(path, lambda tmp: _write(model, tmp, "model", include_optimizer))


def save_weights(model, path: str | os.PathLike) -> str:
    """Writes the weights of ``model`` (one group per layer) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: _write(model, tmp, "weights", False))


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _write(model, tmp: str, kind: str, include_optimizer: bool) -> None:
    with h5py.File(tmp, "w", libver="earliest") as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["layerkit_version"] = __version__
        f.attrs["kind"] = kind
        f.attrs["model_config"] = _json(model.get_config())
        layers = [layer for layer in model.layers if layer.weights]
        f.attrs["layer_names"] = _json([layer.name for layer in layers])
        weights = f.create_group("weights")
        for layer in layers:
            group = weights.create_group(layer.name)
            group.attrs["class_name"] = type(layer).__name__
            group.attrs["trainable"] = bool(layer.trainable)
            for p in layer.weights:
                group.create_dataset(p.name.split("/", 1)[1], data=p.value)
        if kind != "model":
            return
        f.attrs["training_position"] = _json(model.training_position())
        f.attrs["layer_states"] = _json(
            {layer.name: state for layer in model.layers if (state := layer.training_state())}
        )
        if model.compiled:
            f.attrs["compile_config"] = _json(
                {
                    "loss": losses_module.serialize(model.loss),
                    "metrics": [metrics_module.serialize(m) for m in model._metric_specs],
                }
            )
            f.attrs["optimizer_config"] = _json(optim.serialize(model.optimizer))
            if include_optimizer:
                state = model.optimizer.state_dict()
                group = f.create_group("optimizer")
                group.attrs["iterations"] = state["iterations"]
                group.attrs["parameter_names"] = _json(sorted(state["slots"]))
                for name, slots in state["slots"].items():
                    for slot, array in slots.items():
                        group.create_dataset(f"{name}/{slot}", data=array)


# --- reading ---------------------------------------------------------------------------
def open_checkpoint(path: str | os.PathLike) -> h5py.File:
    """Opens a layerkit checkpoint for reading, or raises a clear error naming the path.

    Raises:
        FileNotFoundError: no such file.
        FormatError: not HDF5, truncated, or HDF5 but not a layerkit checkpoint.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No checkpoint at {path}: the file does not exist.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"Expected a checkpoint file, but {path} is a folder.")
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise FormatError(
            f"Cannot read {path} as an HDF5 checkpoint (not HDF5, or truncated): {error}"
        ) from None
    if _attr_str(f, "format") != FORMAT_NAME:
        f.close()
        raise FormatError(
            f"{path} is an HDF5 file but not a layerkit checkpoint (no format='layerkit' "
            "attribute). Keras and TensorFlow files load with model.load_weights()."
        )
    version = f.attrs.get("format_version")
    if not isinstance(version, (int, np.integer)) or version > FORMAT_VERSION:
        f.close()
        raise FormatError(
            f"{path} has checkpoint format version {version!r}; this layerkit "
            f"({__version__}) reads versions up to {FORMAT_VERSION}."
        )
    return f


def is_layerkit_checkpoint(path: str | os.PathLike) -> bool:
    try:
        with h5py.File(os.fspath(path), "r") as f:
            return _attr_str(f, "format") == FORMAT_NAME
    except (OSError, ValueError):
        return False


def _attr_str(obj, key: str) -> str | None:
    value = obj.attrs.get(key)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _attr_json(obj: h5py.Group, key: str, path: str, default: Any = None) -> Any:
    text = _attr_str(obj, key)
    if text is None:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise FormatError(
            f"{path}: attribute {key!r} of {obj.name} is not valid JSON ({error})."
        ) from None


def read_dataset(obj: Any, path: str, label: str) -> np.ndarray:
    """Reads a numeric dataset after refusing anything that points outside the file."""
    if not isinstance(obj, h5py.Dataset):
        raise FormatError(f"{path}: {label} is not a dataset.")
    if obj.is_virtual:
        raise FormatError(f"{path}: {label} is a virtual dataset; refusing to follow it.")
    if obj.external:
        raise FormatError(f"{path}: {label} stores its data in external files; refusing it.")
    if obj.dtype.kind not in "fiu":
        raise FormatError(f"{path}: {label} has non-numeric dtype {obj.dtype}.")
    if obj.size > MAX_ELEMENTS:
        raise FormatError(f"{path}: {label} has an absurd shape {obj.shape}.")
    try:
        return obj[()]
    except OSError as error:
        raise FormatError(f"{path}: cannot read {label} (truncated file?): {error}") from None


def _safe_get(parent: h5py.Group, key: str, path: str):
    """``parent[key]`` after checking that no component of ``key`` is a link (an external
    link could make the loader read another file on the machine)."""
    obj = parent
    for part in key.split("/"):
        if not isinstance(obj, h5py.Group) or part not in obj:
            raise FormatError(f"{path}: {parent.name.rstrip('/')}/{key} is missing.")
        if isinstance(obj.get(part, getlink=True), (h5py.ExternalLink, h5py.SoftLink)):
            raise FormatError(
                f"{path}: {obj.name.rstrip('/')}/{part} is a link; refusing to follow it."
            )
        obj = obj[part]
    return obj


def _checked_group(parent: h5py.Group, key: str, path: str) -> h5py.Group:
    obj = _safe_get(parent, key, path)
    if not isinstance(obj, h5py.Group):
        raise FormatError(f"{path}: {obj.name} is not a group.")
    return obj


def read_layers(f: h5py.File, path: str) -> list[StoredLayer]:
    """The layers of a layerkit checkpoint, in model order, with their weights."""
    names = _attr_json(f, "layer_names", path)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise FormatError(f"{path}: attribute 'layer_names' is not a list of names.")
    weights = _checked_group(f, "weights", path)
    layers = []
    for name in names:
        group = _checked_group(weights, name, path)
        arrays = {}
        for key in group:
            arrays[key] = read_dataset(_safe_get(group, key, path), path, f"{group.name}/{key}")
        order = {"kernel": 0, "bias": 1}
        arrays = dict(sorted(arrays.items(), key=lambda kv: order.get(kv[0], 2)))
        layers.append(
            StoredLayer(name=name, weights=arrays, class_name=_attr_str(group, "class_name"))
        )
    return layers


def read_layerkit_layers(path: str | os.PathLike) -> list[StoredLayer]:
    with open_checkpoint(path) as f:
        return read_layers(f, os.fspath(path))


def _read_optimizer_state(f: h5py.File, path: str) -> dict[str, Any] | None:
    if "optimizer" not in f:
        return None
    group = _checked_group(f, "optimizer", path)
    names = _attr_json(group, "parameter_names", path, [])
    slots: dict[str, dict[str, np.ndarray]] = {}
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise FormatError(f"{path}: optimizer attribute 'parameter_names' is not a list of names.")
    for name in names:
        holder = _checked_group(group, name, path)
        slots[name] = {
            slot: read_dataset(_safe_get(holder, slot, path), path, f"optimizer/{name}/{slot}")
            for slot in holder
        }
    return {"iterations": int(group.attrs.get("iterations", 0)), "slots": slots}


# --- restoring -------------------------------------------------------------------------
def load_model(path: str | os.PathLike):
    """Rebuilds a model saved by ``model.save``: compiled if it was, with the optimizer
    state and training position restored, ready to continue ``fit``.

    Example:
        >>> model = lk.load_model("mnist_mlp.h5")
        >>> model.fit(x, y, epochs=1)  # continues exactly where the saved run stopped
    """
    from ..models.sequential import Sequential

    path = os.fspath(path)
    with open_checkpoint(path) as f:
        config = _attr_json(f, "model_config", path)
        if config is None:
            raise FormatError(f"{path}: no model_config; it was written by save_weights().")
        if _attr_str(f, "kind") != "model":
            raise FormatError(
                f"{path} holds weights only (written by save_weights): build the model and "
                "call model.load_weights() instead of load_model()."
            )
        try:
            model = Sequential.from_config(config)
        except (TypeError, KeyError, ValueError) as error:
            raise FormatError(f"{path}: invalid model_config: {error}") from None
        stored = read_layers(f, path)
        if stored and not model.built:
            raise FormatError(f"{path}: the model_config has no input shape for its weights.")
        _apply_layers(model, [(s, model.get_layer(s.name)) for s in stored], path)
        compile_config = _attr_json(f, "compile_config", path)
        if compile_config is not None:
            model.compile(
                optimizer=optim.get(_attr_json(f, "optimizer_config", path)),
                loss=losses_module.get(compile_config["loss"]),
                metrics=[metrics_module.deserialize(m) for m in compile_config["metrics"]],
            )
        _restore_training_state(model, f, path)
    return model


def restore_training_state(model, path: str | os.PathLike) -> dict[str, Any]:
    """Restores weights, optimizer state and training position from a model checkpoint
    into an existing, compiled model of the same architecture (``BackupAndRestore``).
    Returns the stored training position."""
    path = os.fspath(path)
    with open_checkpoint(path) as f:
        stored = read_layers(f, path)
        pairs = [(s, _model_layer(model, s.name, path)) for s in stored]
        _check_shapes(pairs, path)
        state = _read_optimizer_state(f, path)
        if state is not None and model.optimizer is not None:
            model.optimizer.build(model.weights)
            model.optimizer.load_state_dict(state)
        _apply_layers(model, pairs, path)
        return _restore_training_state(model, f, path, optimizer_done=True)


def _restore_training_state(
    model, f: h5py.File, path: str, optimizer_done: bool = False
) -> dict[str, Any]:
    if not optimizer_done:
        state = _read_optimizer_state(f, path)
        if state is not None and model.optimizer is not None:
            model.optimizer.load_state_dict(state)
    position = _attr_json(f, "training_position", path, {})
    if position:
        model._epochs_done = int(position.get("epochs_done", 0))
        if "shuffle_rng" in position:
            model._shuffle_rng = rng_from_state(position["shuffle_rng"])
    for name, state in (_attr_json(f, "layer_states", path, {}) or {}).items():
        model.get_layer(name).load_training_state(state)
    return position


def _model_layer(model, name: str, path: str):
    try:
        return model.get_layer(name)
    except ValueError:
        raise ValueError(
            f"{path} holds layer {name!r}, which model {model.name!r} does not have. "
            f"Model layers: {[layer.name for layer in model.layers]}."
        ) from None


def weight_mismatch(stored: StoredLayer, layer) -> str | None:
    """Describes why ``stored`` does not fit ``layer``, or returns None if it does."""
    params = {p.name.split("/", 1)[1]: p for p in layer.weights}
    if set(params) != set(stored.weights):
        return (
            f"layer {layer.name!r} has weights {sorted(params)}, the file has "
            f"{sorted(stored.weights)} for {stored.name!r}"
        )
    for key, array in stored.weights.items():
        if array.shape != params[key].shape:
            return (
                f"layer {layer.name!r} weight {key!r}: the model expects shape "
                f"{params[key].shape}, the file holds {array.shape} (as {stored.name!r})"
            )
    return None


def _check_shapes(pairs, path: str) -> None:
    for stored, layer in pairs:
        problem = weight_mismatch(stored, layer)
        if problem:
            raise ValueError(f"Cannot restore from {path}: {problem}.")


def _apply_layers(model, pairs, path: str) -> None:
    """Copies stored weights into model layers after checking every pair first."""
    _check_shapes(pairs, path)
    for stored, layer in pairs:
        for p in layer.weights:
            p.assign(stored.weights[p.name.split("/", 1)[1]])
