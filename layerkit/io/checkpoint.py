"""layerkit's own checkpoints: one HDF5 file, written atomically, read with full checks.

Layout (``h5dump`` shows it plainly)::

    /                      attrs: format="layerkit", format_version, layerkit_version,
                                  kind ("model" or "weights"), layer_names, model_config,
                                  compile_config, optimizer_config, training_position,
                                  layer_states (all JSON)
    /weights/<layer>/      attrs: class_name, trainable; datasets: kernel, bias
    /optimizer/<layer>/<weight>/<slot>   attrs on /optimizer: iterations, parameter_names,
                                         slot_form ("stored")

Every trainable parameter has its group under ``/optimizer``, empty for optimizers
without state (plain SGD). The slots are the arrays the optimizer computes with (Adam's
scaled moments), so a round trip is bit-exact; format version 1 stored Keras's
definitions (``optimizer.slots()``), which are converted on reading.

The file name decides the format, as in Keras: ``model.save("m.keras")`` writes a Keras 3
archive (that real Keras opens) holding this checkpoint as the extra member
``layerkit.h5`` (Keras ignores it; ``lk.load_model`` reads it and resumes exactly);
``save_weights("w.weights.h5")`` writes Keras 3's weights layout; anything else, this
HDF5 checkpoint.

A checkpoint is data, never code: configs are JSON and only registered layer classes are
built from them; no pickle, no eval.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import tempfile
import zipfile
from typing import Any

import h5py
import numpy as np

from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optim
from ..layers.base import deserialize, layer_class
from ..random import rng_from_state
from ..registry import model_class
from ..version import __version__
from .atomic import atomic_write
from .safe_hdf5 import child, hdf5_errors, read_dataset
from .stored import FormatError, StoredLayer

FORMAT_NAME = "layerkit"
FORMAT_VERSION = 2  # 2: slots in the stored form, a group for every parameter
KERAS_ARCHIVE_MEMBER = "layerkit.h5"  # layerkit's checkpoint inside a .keras archive
HEADER_BYTES = 512  # the HDF5 user block that holds the header
MAGIC = b"layerkit checkpoint\n"


# --- writing ---------------------------------------------------------------------------
def save_model(model, path: str | os.PathLike, include_optimizer: bool = True) -> str:
    """Writes the architecture, weights, compile config, optimizer state and training
    position of ``model`` to ``path`` (atomically). Returns the absolute path.

    A path ending in ``.keras`` gets a Keras 3 archive that real Keras loads, with this
    checkpoint inside it; any other path gets layerkit's HDF5 checkpoint.

    Raises:
        ValueError: a ``.keras`` path for a model Keras cannot express (the message names
            the layer); nothing is written then.
    """
    path = _check_path(path)
    if path.endswith(".weights.h5"):
        raise ValueError(
            "A file name ending in '.weights.h5' holds weights only, as in Keras: use "
            f"model.save_weights(), or '.keras' or '.h5' for the whole model. Received: {path!r}"
        )
    if path.endswith(".keras"):
        from .keras_export import keras_writer

        members: dict[str, bytes] = {}
        try:  # first: a model Keras cannot express costs no checkpoint
            write = keras_writer(model, True, members)
        except ValueError as error:
            raise ValueError(
                f"Cannot save {path} as a Keras 3 archive (the .keras suffix): {error} "
                "Save to a .h5 path for layerkit's own checkpoint."
            ) from None
        with tempfile.TemporaryDirectory(prefix="layerkit-") as folder:
            inner = os.path.join(folder, KERAS_ARCHIVE_MEMBER)
            _write(model, inner, "model", include_optimizer)
            with open(inner, "rb") as f:
                members[KERAS_ARCHIVE_MEMBER] = f.read()
        return atomic_write(path, write)
    return atomic_write(path, lambda tmp: _write(model, tmp, "model", include_optimizer))


def save_weights(model, path: str | os.PathLike) -> str:
    """Writes the weights of ``model`` to ``path`` atomically: Keras 3's weights layout
    for a path ending in ``.weights.h5`` (as Keras requires), the state dict of the
    equivalent ``nn.Sequential`` for ``.safetensors`` (see ``safetensors.torch_state``),
    else one group per layer."""
    path = _check_path(path)
    if path.endswith(".safetensors"):
        from .safetensors import save_safetensors, torch_state

        torch_state(model)  # a model PyTorch cannot name is refused before any file exists
        return atomic_write(path, lambda tmp: save_safetensors(model, tmp))
    if path.endswith(".keras"):
        raise ValueError(
            "A file name ending in '.keras' holds a whole model, as in Keras: use "
            f"model.save(), or '.weights.h5' or '.h5' for weights. Received: {path!r}"
        )
    if path.endswith(".weights.h5"):
        from .keras_export import keras_writer

        return atomic_write(path, keras_writer(model, False))
    return atomic_write(path, lambda tmp: _write(model, tmp, "weights", False))


def _check_path(path) -> str:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"Expected a file path (str or os.PathLike). Received: filepath={path!r:.100} "
            f"of type {type(path).__name__}"
        )
    return os.fspath(path)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _write(model, tmp: str, kind: str, include_optimizer: bool) -> None:
    with h5py.File(tmp, "w", libver="earliest", userblock_size=HEADER_BYTES) as f:
        _write_contents(model, f, kind, include_optimizer)
    seal(tmp)


def seal(path: str) -> None:
    """Writes the header: a magic line and the SHA-256 of everything after the header.

    HDF5 finds its data after a "user block", so the header costs the format nothing;
    loading checks the digest before libhdf5 parses a byte, so a damaged or truncated file
    is refused cleanly (libhdf5 itself can crash on some damaged files).
    """
    digest, size = _digest(path)
    header = MAGIC + f"sha256 {digest}\nsize {size}\n".encode()
    with open(path, "r+b") as f:
        f.write(header.ljust(HEADER_BYTES, b"\0"))


def _digest(path: str) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        f.seek(HEADER_BYTES)
        while chunk := f.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def _verify_header(path: str) -> None:
    with open(path, "rb") as f:
        header = f.read(HEADER_BYTES)
    if not header.startswith(MAGIC):
        raise FormatError(
            f"{path} is not a layerkit checkpoint (it does not start with the layerkit "
            "header). Keras and TensorFlow files load with model.load_weights()."
        )
    fields = dict(
        line.split(" ", 1)
        for line in header[len(MAGIC) :].rstrip(b"\0").decode("ascii", "replace").splitlines()
        if " " in line
    )
    digest, size = _digest(path)
    if fields.get("size") != str(size):
        raise FormatError(
            f"{path} is truncated or damaged: it holds {size + HEADER_BYTES} bytes, "
            f"its header says {fields.get('size')} + {HEADER_BYTES}."
        )
    if fields.get("sha256") != digest:
        raise FormatError(f"{path} is damaged: its contents do not match their SHA-256 digest.")


def _write_contents(model, f: h5py.File, kind: str, include_optimizer: bool) -> None:
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
        f.attrs["compile_config"] = _json(model._objectives.config())
        f.attrs["optimizer_config"] = _json(optim.serialize(model.optimizer))
        if include_optimizer:
            state = model.optimizer.state_dict()
            group = f.create_group("optimizer")
            group.attrs["iterations"] = state["iterations"]
            group.attrs["parameter_names"] = _json(sorted(state["slots"]))
            group.attrs["slot_form"] = "stored"
            for name, slots in state["slots"].items():
                # Always a group, even without slots: the reader finds every parameter.
                slot_group = group.create_group(name)
                for slot, array in slots.items():
                    slot_group.create_dataset(slot, data=array)


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
    _verify_header(path)
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
    """Whether ``path`` starts with the layerkit header (nothing else is read)."""
    try:
        with open(os.fspath(path), "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _attr_str(obj, key: str) -> str | None:
    value = obj.attrs.get(key)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _attr_json(obj: h5py.Group, key: str, path: str, expected: type, default: Any = None) -> Any:
    """A JSON attribute, checked to be of the ``expected`` type (dict or list)."""
    text = _attr_str(obj, key)
    if text is None:
        return default
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise FormatError(
            f"{path}: attribute {key!r} of {obj.name} is not valid JSON ({error})."
        ) from None
    if not isinstance(value, expected):
        raise FormatError(
            f"{path}: attribute {key!r} of {obj.name} should hold a JSON "
            f"{expected.__name__}, it holds {type(value).__name__}."
        )
    return value


def _group(parent: h5py.Group, key: str, path: str) -> h5py.Group:
    """``parent[key]`` (one or more components), refusing links and missing members."""
    if not key or any(part in ("", ".", "..") for part in key.split("/")):
        raise FormatError(f"{path}: invalid name {key!r} under {parent.name}.")
    obj = parent
    for part in key.split("/"):
        found = child(obj, part, path) if isinstance(obj, h5py.Group) else None
        if found is None:
            raise FormatError(f"{path}: {parent.name.rstrip('/')}/{key} is missing.")
        obj = found
    if not isinstance(obj, h5py.Group):
        raise FormatError(f"{path}: {obj.name} is not a group.")
    return obj


def _datasets(group: h5py.Group, path: str) -> dict[str, np.ndarray]:
    file_size = os.path.getsize(path)
    return {key: read_dataset(child(group, key, path), path, file_size) for key in group}


def read_layers(f: h5py.File, path: str) -> list[StoredLayer]:
    """The layers of a layerkit checkpoint, in model order, with their weights."""
    names = _attr_json(f, "layer_names", path, list)
    if names is None or not all(isinstance(n, str) for n in names):
        raise FormatError(f"{path}: attribute 'layer_names' is not a list of names.")
    weights = _group(f, "weights", path)
    order = {"kernel": 0, "bias": 1}
    layers = []
    for name in names:
        group = _group(weights, name, path)
        arrays = dict(sorted(_datasets(group, path).items(), key=lambda kv: order.get(kv[0], 2)))
        layers.append(StoredLayer(name, arrays, class_name=_attr_str(group, "class_name")))
    return layers


def read_layerkit_layers(path: str | os.PathLike) -> list[StoredLayer]:
    path = os.fspath(path)
    with hdf5_errors(path), open_checkpoint(path) as f:
        return read_layers(f, path)


@dataclasses.dataclass
class Snapshot:
    """Everything a model checkpoint holds, read and checked, nothing applied yet."""

    kind: str
    config: dict | None
    layers: list[StoredLayer]
    compile_config: dict | None = None
    optimizer_config: dict | None = None
    optimizer_state: dict | None = None
    position: dict = dataclasses.field(default_factory=dict)
    layer_states: dict = dataclasses.field(default_factory=dict)
    frozen: list[str] = dataclasses.field(default_factory=list)
    written_by: str = ""
    format_version: int = FORMAT_VERSION


def read_snapshot(path: str | os.PathLike) -> Snapshot:
    """Reads and validates a whole layerkit checkpoint (see :class:`Snapshot`).

    Raises:
        FileNotFoundError, FormatError: as :func:`open_checkpoint`, or for any part of the
            file that is corrupt, of the wrong type, or refers outside the file.
    """
    path = os.fspath(path)
    with hdf5_errors(path), open_checkpoint(path) as f:
        snapshot = Snapshot(
            kind=_attr_str(f, "kind") or "weights",
            config=_attr_json(f, "model_config", path, dict),
            layers=read_layers(f, path),
            compile_config=_attr_json(f, "compile_config", path, dict),
            optimizer_config=_attr_json(f, "optimizer_config", path, dict),
            optimizer_state=_read_optimizer_state(f, path),
            position=_attr_json(f, "training_position", path, dict, {}),
            layer_states=_attr_json(f, "layer_states", path, dict, {}),
            written_by=_attr_str(f, "layerkit_version") or "?",
            format_version=int(f.attrs["format_version"]),
        )
        snapshot.frozen = [
            s.name for s in snapshot.layers if not f["weights"][s.name].attrs.get("trainable", True)
        ]
    _check_position(snapshot, path)
    config = snapshot.compile_config
    if config is not None and ("loss" not in config or not isinstance(config.get("metrics"), list)):
        raise FormatError(f"{path}: compile_config needs a loss and a list of metrics.")
    return snapshot


def _read_optimizer_state(f: h5py.File, path: str) -> dict[str, Any] | None:
    if "optimizer" not in f:
        return None
    group = _group(f, "optimizer", path)
    names = _attr_json(group, "parameter_names", path, list, [])
    if not all(isinstance(n, str) for n in names):
        raise FormatError(f"{path}: optimizer attribute 'parameter_names' is not a list of names.")
    iterations = group.attrs.get("iterations", 0)
    if not isinstance(iterations, (int, np.integer)) or iterations < 0:
        raise FormatError(f"{path}: optimizer iterations {iterations!r} is not a count.")
    version = int(f.attrs["format_version"])
    if version < 2:
        form = "keras"  # version 1 stored Keras's definitions
    else:
        form = _attr_str(group, "slot_form")
        if form not in ("stored", "keras"):
            raise FormatError(
                f"{path}: optimizer attribute slot_form={group.attrs.get('slot_form')!r} is "
                "missing or unknown (expected 'stored' or 'keras')."
            )
    slots = {}
    for name in names:
        # Version 1 wrote no group for a parameter without slots (plain SGD): that is
        # "no slots", which the optimizer then checks against the slots it expects.
        if version < 2 and not _has(group, name, path):
            slots[name] = {}
        else:
            slots[name] = _datasets(_group(group, name, path), path)
    return {"iterations": int(iterations), "slots": slots, "form": form}


def _has(parent: h5py.Group, key: str, path: str) -> bool:
    """Whether ``parent[key]`` exists (an invalid key counts as present: ``_group`` then
    refuses it with its own message)."""
    obj = parent
    for part in key.split("/"):
        if part in ("", ".", ".."):
            return True
        obj = child(obj, part, path) if isinstance(obj, h5py.Group) else None
        if obj is None:
            return False
    return True


def _check_position(snapshot: Snapshot, path: str) -> None:
    """Refuses a training position or layer states that could not be restored."""
    position = snapshot.position
    for key, minimum in (("epochs_done", 0), ("last_epoch", -1), ("iterations", 0)):
        value = position.get(key, minimum)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise FormatError(f"{path}: training_position {key}={value!r} is not a count.")
    in_epoch = position.get("epoch_in_progress")
    if in_epoch is not None:
        _check_epoch_in_progress(in_epoch, path)
    try:
        if "shuffle_rng" in position:
            rng_from_state(position["shuffle_rng"])
        for name, state in snapshot.layer_states.items():
            if not isinstance(state, dict):
                raise ValueError(f"the state of layer {name!r} is not a dict")
            if "rng" in state:
                rng_from_state(state["rng"])
    except (ValueError, TypeError, KeyError) as error:
        raise FormatError(f"{path}: invalid training_position or layer_states: {error}") from None


def _check_epoch_in_progress(value: Any, path: str) -> None:
    """Refuses a mid-epoch position that fit could not continue from."""

    def count(x: Any, minimum: int = 0) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= minimum

    def real(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    valid = (
        isinstance(value, dict)
        and count(value.get("epoch"))
        and count(value.get("samples"), 1)
        and count(value.get("batch_size"), 1)
        and (isinstance(value.get("shuffle"), bool) or value.get("shuffle") == "batch")
        and count(value.get("steps_done"))
        and count(value.get("seen"))
        and real(value.get("loss_total"))
        and (value.get("learning_rate") is None or real(value["learning_rate"]))
        and isinstance(value.get("metric_names"), list)
        and all(isinstance(n, str) for n in value["metric_names"])
        and isinstance(value.get("metrics"), list)
        and len(value["metrics"]) == len(value["metric_names"])
        and all(
            # [total, count] (a weighted metric counts the sum of its weights: a real
            # >= 0), or the four confusion-count arrays of an AUC, flattened (>= 0).
            isinstance(m, list)
            and (
                (len(m) == 2 and real(m[0]) and real(m[1]) and m[1] >= 0)
                or (len(m) % 4 == 0 and len(m) > 2 and all(real(v) and v >= 0 for v in m))
            )
            for m in value["metrics"]
        )
    )
    if valid:
        steps = math.ceil(value["samples"] / value["batch_size"])
        valid = value["steps_done"] <= steps and value["seen"] <= value["samples"]
    if not valid:
        raise FormatError(
            f"{path}: training_position epoch_in_progress={value!r:.300} is not an epoch "
            "in progress (epoch, samples, batch_size, shuffle, steps done within the "
            "epoch, running totals, metric names and states)."
        )
    ranks = value.get("rank_layer_states")
    if ranks is not None and not (
        isinstance(ranks, list)
        and all(isinstance(r, list) and all(isinstance(s, dict) for s in r) for r in ranks)
    ):
        raise FormatError(
            f"{path}: epoch_in_progress rank_layer_states is not a list of layer states per rank."
        )
    try:
        rng_from_state(value.get("shuffle_rng"))
        for state in (s for r in ranks or [] for s in r if "rng" in s):
            rng_from_state(state["rng"])
    except (ValueError, TypeError, KeyError) as error:
        raise FormatError(
            f"{path}: epoch_in_progress generator state is invalid: {error}"
        ) from None


def planned_weight_shapes(config: dict, path: str) -> dict[str, dict[str, tuple]]:
    """The weights a Sequential config would create, computed without creating them.

    A file is checked against this before anything is allocated, so a config declaring a
    layer of 2**40 units is refused instead of exhausting memory. Each layer is made from
    its config (registered classes only; a constructor allocates nothing) and asked for
    its output shape and :meth:`~layerkit.layers.Layer.weight_shapes`.
    """
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise FormatError(f"{path}: model_config has no list of layers.")
    if is_graph_config(config):
        try:
            return model_class("Functional").planned_weight_shapes(config)
        except (ValueError, TypeError) as error:
            raise FormatError(f"{path}: model_config: {error}") from None
    shape = config.get("build_input_shape")
    shape = tuple(shape[1:]) if isinstance(shape, list) and shape else None
    planned: dict[str, dict[str, tuple]] = {}
    for spec in layers:
        cfg = spec.get("config", {}) if isinstance(spec, dict) else None
        if not isinstance(cfg, dict):
            raise FormatError(f"{path}: model_config holds a layer that is not a dict.")
        try:
            layer = deserialize(spec)
        except (ValueError, TypeError) as error:
            raise FormatError(f"{path}: model_config layer {cfg.get('name')!r}: {error}") from None
        if shape is None:
            declared = layer._declared_input_shape
            shape = tuple(declared[1:]) if declared is not None else None
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            shape = None  # an unbuilt model: it has no weights to plan
            continue
        try:
            shapes = layer.weight_shapes((None, *shape))
            shape = tuple(layer.compute_output_shape((None, *shape))[1:])
        except (ValueError, TypeError) as error:
            raise FormatError(f"{path}: model_config layer {layer.name!r}: {error}") from None
        if shapes:
            planned[layer.name] = shapes
    return planned


def is_graph_config(config: dict) -> bool:
    """Whether a model config is a graph's (``lk.Model``), not a ``Sequential``'s."""
    return "input_layers" in config or "output_layers" in config


def model_from_config(config: dict):
    """A ``Model`` or ``Sequential`` from a checked ``model.get_config()``, through the
    registry of model classes (``io`` does not import ``layerkit.models``)."""
    return model_class("Functional" if is_graph_config(config) else "Sequential").from_config(
        config
    )


def _check_against_config(snapshot: Snapshot, path: str) -> None:
    specs = snapshot.config.get("layers")
    if not isinstance(specs, list):
        raise FormatError(f"{path}: model_config has no list of layers.")
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise FormatError(
                f"{path}: model_config layers[{i}] must be a dict. Received: {spec!r:.100}"
            )
        try:
            layer_class(spec.get("class_name"))
        except ValueError as error:
            raise FormatError(f"{path}: model_config: {error}") from None
    planned = planned_weight_shapes(snapshot.config, path)
    stored = {s.name: {k: v.shape for k, v in s.weights.items()} for s in snapshot.layers}
    if set(planned) != set(stored):
        raise FormatError(
            f"{path}: the model_config has layers with weights {sorted(planned)}, "
            f"but the file holds weights for {sorted(stored)}."
        )
    for name, shapes in planned.items():
        if shapes != stored[name]:
            raise FormatError(
                f"{path}: layer {name!r}: the model_config (its build_input_shape and units) "
                f"implies weights {shapes}, the file holds {stored[name]}."
            )


# --- restoring -------------------------------------------------------------------------
def load_model(path: str | os.PathLike):
    """Rebuilds a model saved by ``model.save``: compiled if it was, with the optimizer
    state and training position restored, ready to continue ``fit``.

    A ``.keras`` archive written by layerkit resumes exactly from the checkpoint inside
    it; one written by Keras loads as :func:`~layerkit.io.load_keras` does (weights and
    architecture, uncompiled).

    Example:
        >>> model = lk.load_model("mnist_mlp.h5")
        >>> model.fit(x, y, epochs=1)  # continues exactly where the saved run stopped
    """
    path = _check_path(path)
    if not is_layerkit_checkpoint(path) and os.path.isfile(path) and zipfile.is_zipfile(path):
        if not _archive_has_member(path, KERAS_ARCHIVE_MEMBER):
            from .keras_model import load_keras

            return load_keras(path)
        with _archive_checkpoint(path) as inner:
            return _load_model(inner, f"{path}!{KERAS_ARCHIVE_MEMBER}")
    return _load_model(path, path)


def _archive_has_member(path: str, member: str) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return member in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


@contextlib.contextmanager
def _archive_checkpoint(path: str):
    """The layerkit checkpoint inside a ``.keras`` archive, copied in chunks to a
    temporary file: its declared size and compression ratio are checked first, and a
    member that does not start with the layerkit header is refused after one chunk."""
    from .keras_files import _MAX_COMPRESSION_RATIO, _MAX_MEMBER_BYTES

    where = f"{path}!{KERAS_ARCHIVE_MEMBER}"
    with tempfile.TemporaryDirectory(prefix="layerkit-") as folder:
        inner = os.path.join(folder, KERAS_ARCHIVE_MEMBER)
        try:
            with zipfile.ZipFile(path) as zf:
                info = zf.getinfo(KERAS_ARCHIVE_MEMBER)
                if info.file_size > _MAX_MEMBER_BYTES:
                    raise FormatError(
                        f"{where}: declared size {info.file_size} exceeds "
                        f"{_MAX_MEMBER_BYTES} bytes."
                    )
                if info.file_size > _MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
                    raise FormatError(
                        f"{where}: compression ratio {info.file_size}/{info.compress_size} "
                        f"exceeds {_MAX_COMPRESSION_RATIO} (zip bomb?)."
                    )
                copied = 0
                with zf.open(info) as source, open(inner, "wb") as target:
                    while chunk := source.read(1 << 20):
                        if copied == 0 and not chunk.startswith(MAGIC):
                            raise FormatError(
                                f"{where} is not a layerkit checkpoint (it does not start "
                                "with the layerkit header)."
                            )
                        copied += len(chunk)
                        if copied > info.file_size:
                            raise FormatError(f"{where}: more data than its declared size.")
                        target.write(chunk)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as error:
            raise FormatError(f"{where}: unreadable zip member: {error}") from None
        if copied != info.file_size:
            raise FormatError(f"{where}: member size differs from its declared size.")
        yield inner


def _load_model(path: str, shown: str):
    """Loads the checkpoint at ``path``; errors name ``shown`` (the user's file)."""
    try:
        snapshot = read_snapshot(path)
    except FormatError as error:
        raise FormatError(str(error).replace(path, shown)) from None
    path = shown
    if snapshot.kind != "model" or snapshot.config is None:
        raise FormatError(
            f"{path} holds weights only (written by save_weights): build the model and "
            "call model.load_weights() instead of load_model()."
        )
    _check_against_config(snapshot, path)
    try:
        model = model_from_config(snapshot.config)
        _apply_layers(model, [(s, model.get_layer(s.name)) for s in snapshot.layers], path)
        if snapshot.compile_config is not None:
            model.compile(*_compile_arguments(snapshot, path))
        _restore_training_state(model, snapshot, path)
    except FormatError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        # The model is new: nothing outside this function has been changed.
        raise FormatError(f"{path}: cannot rebuild the model: {error}") from None
    return model


def _compile_arguments(snapshot: Snapshot, path: str) -> tuple:
    """(optimizer, loss, metrics, loss_weights, weighted_metrics) from the compile and
    optimizer configs, or FormatError."""
    config = snapshot.compile_config
    try:
        metrics = config.get("metrics", [])
        if not isinstance(metrics, list):
            raise TypeError(f"metrics should be a list, not {type(metrics).__name__}")
        loss = config["loss"]
        weighted = config.get("weighted_metrics")  # one list per output, when set
        if weighted is not None:
            if not isinstance(weighted, list) or not all(isinstance(w, list) for w in weighted):
                raise TypeError("weighted_metrics should be a list of lists")
            weighted = [[metrics_module.deserialize(m) for m in specs] for specs in weighted]
        if isinstance(loss, list):  # several outputs: per-output losses and metrics
            loss = [None if spec is None else losses_module.get(spec) for spec in loss]
            metrics = [[metrics_module.deserialize(m) for m in specs] for specs in metrics]
        else:
            loss = losses_module.get(loss)
            metrics = [metrics_module.deserialize(m) for m in metrics]
            weighted = None if weighted is None else weighted[0]
        return (
            optim.get(snapshot.optimizer_config),
            loss,
            metrics,
            config.get("loss_weights"),
            weighted,
        )
    except (ValueError, TypeError, KeyError) as error:
        raise FormatError(
            f"{path}: invalid compile_config or optimizer_config: {error!r}"
        ) from None


def restore_training_state(model, path: str | os.PathLike) -> dict[str, Any]:
    """Restores weights, optimizer state (with a learning rate changed during training)
    and training position from a model checkpoint into an existing, compiled model of
    the same architecture (``BackupAndRestore``).

    Everything is checked before anything changes: a model whose layers differ from the
    file's (a layer added, removed, resized or reconfigured since the backup) is refused
    with a ValueError naming the difference. Returns the stored training position.
    """
    path = _check_path(path)
    snapshot = read_snapshot(path)
    _check_same_architecture(model, snapshot, path)
    pairs = [(s, _model_layer(model, s.name, path)) for s in snapshot.layers]
    _check_shapes(pairs, path)
    unknown = [name for name in snapshot.layer_states if name not in _layer_names(model)]
    if unknown:
        raise FormatError(f"{path}: training state for layers {unknown} not in the model.")
    in_epoch = snapshot.position.get("epoch_in_progress")
    if in_epoch is not None and model._fit_signature is not None:
        try:
            model._check_resume(in_epoch)  # before anything changes
        except ValueError as error:
            raise ValueError(f"Cannot restore {path}: {error}") from None
    optimizer = model.optimizer
    learning_rate = _stored_learning_rate(snapshot, optimizer, path)
    if in_epoch is not None and learning_rate is not None:
        # Resume the epoch from the rate it began with: fit runs the epoch's callbacks
        # (LearningRateScheduler) again, then sets the rate of the backup's moment.
        in_epoch["learning_rate_now"] = learning_rate
        if in_epoch.get("learning_rate") is not None:
            learning_rate = in_epoch["learning_rate"]
    if snapshot.optimizer_state is not None and optimizer is not None:
        _check_optimizer_names(snapshot, model, path)
        optimizer.build(model._optimized_weights())
        try:
            optimizer.load_state_dict(snapshot.optimizer_state)  # checks, then applies
        except ValueError as error:
            raise ValueError(f"Cannot restore {path}: {error}") from None
    if learning_rate is not None:
        optimizer.learning_rate = learning_rate
    _apply_layers(model, pairs, path)
    _restore_training_state(model, snapshot, path, optimizer_done=True)
    if in_epoch is not None:  # the epoch's permutation is drawn again
        model._shuffle_rng = rng_from_state(in_epoch["shuffle_rng"])
    return snapshot.position


def _comparable_layers(config: dict | None) -> list[tuple[str, dict]]:
    """(class name, config without the trainable flag) of each layer of a model config:
    what must agree for a backup to resume into a model (freezing may differ)."""
    specs = (config or {}).get("layers") or []
    layers = []
    for spec in specs:
        if not isinstance(spec, dict) or not isinstance(spec.get("config", {}), dict):
            continue
        cls = spec.get("class_name")
        # An InputLayer's name is usually automatic (input_layer_3): only its shape counts.
        ignored = ("trainable", "name") if cls == "InputLayer" else ("trainable",)
        layers.append((cls, {k: v for k, v in spec.get("config", {}).items() if k not in ignored}))
    return layers


def _check_same_architecture(model, snapshot: Snapshot, path: str) -> None:
    if snapshot.config is None:
        return  # a weights file: the name and shape checks are all there is
    stored = _comparable_layers(snapshot.config)
    current = _comparable_layers(model.get_config())
    if stored == current:
        return
    names = [c.get("name") for _, c in current]
    stored_names = [c.get("name") for _, c in stored]
    if names != stored_names:
        difference = f"the file has layers {stored_names}, the model {names}"
    else:
        name, was, now = next((a[1].get("name"), a, b) for a, b in zip(stored, current) if a != b)
        changed = sorted(k for k in set(was[1]) | set(now[1]) if was[1].get(k) != now[1].get(k))
        if was[0] != now[0]:
            changed = ["class_name", *changed]
        difference = f"layer {name!r} differs in {changed}"
    raise ValueError(
        f"Cannot restore {path} into model {model.name!r}: its architecture changed since "
        f"the backup ({difference}). Delete the backup to start afresh, or restore the "
        "script's previous model."
    )


def _stored_learning_rate(snapshot: Snapshot, optimizer, path: str) -> float | None:
    """The plain learning rate the file's optimizer had (a callback may have changed it),
    to give the script's optimizer; None when either side follows a schedule."""
    if optimizer is None or optimizer.schedule is not None or snapshot.optimizer_config is None:
        return None
    config = snapshot.optimizer_config.get("config")
    value = config.get("learning_rate") if isinstance(config, dict) else None
    if value is None or isinstance(value, dict):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FormatError(f"{path}: optimizer learning_rate {value!r} is not a number.")
    return float(value)


def _layer_names(model) -> set[str]:
    return {layer.name for layer in model.layers}


def _check_optimizer_names(snapshot: Snapshot, model, path: str) -> None:
    """Refuses optimizer state for parameters the model does not have: it would be kept
    aside silently while the real parameters resumed from zero state."""
    names = {p.name for p in model.weights}
    stored = set(snapshot.optimizer_state["slots"])
    unknown = sorted(stored - names)
    if unknown:
        raise FormatError(
            f"{path}: the optimizer state names parameters {unknown[:10]} that model "
            f"{model.name!r} does not have (its parameters: {sorted(names)[:10]})."
        )
    # Format 2 writes every trainable parameter's state: one left out would resume from
    # zero state while the step count goes on.
    missing = sorted(p.name for p in model.weights if p.trainable and p.name not in stored)
    if missing and snapshot.format_version >= 2 and snapshot.optimizer_state["iterations"]:
        raise FormatError(
            f"{path}: the optimizer state has no entry for parameters {missing[:10]} of the model."
        )


def _restore_training_state(
    model, snapshot: Snapshot, path: str, optimizer_done: bool = False
) -> None:
    if not optimizer_done and snapshot.optimizer_state is not None and model.optimizer:
        _check_optimizer_names(snapshot, model, path)
        model.optimizer.load_state_dict(snapshot.optimizer_state)
    position = snapshot.position
    if position:
        model._epochs_done = int(position.get("epochs_done", 0))
        if "shuffle_rng" in position:
            model._shuffle_rng = rng_from_state(position["shuffle_rng"])
    for name, state in snapshot.layer_states.items():
        model.get_layer(name).load_training_state(state)


def _model_layer(model, name: str, path: str):
    try:
        return model.get_layer(name)
    except ValueError:
        raise ValueError(
            f"{path} holds layer {name!r}, which model {model.name!r} does not have. "
            f"Model layers: {[layer.name for layer in model.layers]}."
        ) from None


def aligned(stored: StoredLayer, layer) -> StoredLayer:
    """``stored`` with its weights named after ``layer``'s when the file numbers them
    only (Keras 3 stores ``vars/0, 1, ...``, and which weights exist can depend on the
    layer's options, such as BatchNormalization's ``center``): by position, in Keras's
    order, if the counts agree; otherwise as stored (the mismatch is then reported)."""
    weights = layer.stored_weights(stored.weights)
    if weights is not stored.weights:
        stored = dataclasses.replace(stored, weights=weights)
    names = [p.name.split("/", 1)[1] for p in layer.weights]
    keys = list(stored.weights)
    if keys and len(keys) == len(names) and all(k.isdigit() for k in keys) and keys != names:
        values = [stored.weights[k] for k in sorted(keys, key=int)]
        return dataclasses.replace(stored, weights=dict(zip(names, values)))
    return stored


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
    return layer.check_weights(stored.weights)


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
