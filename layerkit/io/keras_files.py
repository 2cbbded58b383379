"""Read weight files written by Keras 3 and tf.keras 2 without either installed.

Supported layouts (see :func:`detect_format`):

- ``"keras3_weights"``: ``model.save_weights("x.weights.h5")`` in Keras 3. Layers live in
  ``layers/<snake_case_class>[_N]/vars/<i>``; the ``vars`` group's ``name`` attribute holds
  the layer name (recent Keras 3) and ``optimizer/`` is ignored.
- ``"legacy_h5"``: the HDF5 format of Keras 2 and of ``model.save("x.h5")`` in Keras 3, with
  the weights under ``model_weights/`` (full model) or at the root (weights only), listed by
  the ``layer_names`` and per-layer ``weight_names`` attributes.
- ``"keras_archive"``: a ``.keras`` zip holding ``config.json`` and ``model.weights.h5``.

These files may come from strangers, so nothing is read before it has been checked: links
are followed one component at a time and external links, soft links that leave the layer
being read, virtual datasets, datasets with external storage, non-numeric types and shapes
too large for the file are refused with :class:`FormatError`. Nothing is unpickled or
evaluated, and zip members are size-checked before they are read (into memory, never onto
disk).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile
from collections.abc import Callable, Iterable
from typing import Any

import h5py
import numpy as np
from h5py import h5o

from .safe_hdf5 import MAX_COMPRESSION_RATIO as _MAX_COMPRESSION_RATIO
from .safe_hdf5 import child as _child
from .safe_hdf5 import fail as _fail
from .safe_hdf5 import read_dataset as _read_dataset
from .safe_hdf5 import reads_hdf5
from .safe_hdf5 import resolve as _resolve
from .stored import FormatError, StoredLayer

__all__ = [
    "detect_format",
    "keras_dense_layers",
    "keras_layer_spec",
    "read_keras_model_config",
    "read_keras_weights",
]

PathLike = str | os.PathLike

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_TABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")
_ZIP_MAGIC = b"PK\x03\x04"
# A TensorFlow checkpoint's data file: ``<prefix>.data-00000-of-00001``.
_TF_SHARD = re.compile(r".+(\.data-\d{5}-of-\d{5})")
_WEIGHTS_MEMBER = "model.weights.h5"
_CONFIG_MEMBER = "config.json"
# A weights member bigger than this, or more compressed than this, is refused unread.
_MAX_MEMBER_BYTES = 4 << 30
_MAX_CONFIG_BYTES = 64 << 20
# Model classes whose config is a graph of layers (Keras 3; tf.keras 2 and older).
_GRAPH_CLASSES = ("Functional", "Model")
# Nested models (``layers/<model>/layers/...``) deeper than this are refused, not recursed.
_MAX_NESTING = 16

# Names Keras gives the variables of common layers, by position in ``vars/``.
_VAR_NAMES = {
    "Dense": ("kernel", "bias"),
    "Conv1D": ("kernel", "bias"),
    "Conv2D": ("kernel", "bias"),
    "Conv3D": ("kernel", "bias"),
    "Embedding": ("embeddings",),
    "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    "LayerNormalization": ("gamma", "beta"),
    "PReLU": ("alpha",),
    # Keras 3 counts samples in ``count`` (never updated by its adapt, kept at 0).
    "Normalization": ("mean", "variance", "count"),
}
# Group keys in Keras 3 files are the snake-case class name; only these are mapped back.
_SNAKE_CLASSES = {
    "dense": "Dense",
    "conv1d": "Conv1D",
    "conv2d": "Conv2D",
    "conv3d": "Conv3D",
    "embedding": "Embedding",
    "batch_normalization": "BatchNormalization",
    "layer_normalization": "LayerNormalization",
    "p_re_lu": "PReLU",
    "normalization": "Normalization",
}


# --------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------


def _has_hdf5_signature(path: PathLike, size: int) -> bool:
    # HDF5 looks for its signature at 0, 512, 1024, 2048, ... (after a user block).
    with open(path, "rb") as f:
        offset = 0
        while offset + len(_HDF5_SIGNATURE) <= size:
            f.seek(offset)
            if f.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def _has_table_magic(path: PathLike, size: int) -> bool:
    if size < 48:
        return False
    with open(path, "rb") as f:
        f.seek(size - 8)
        return f.read(8) == _TABLE_MAGIC


def _open_hdf5(source: PathLike | io.BytesIO, path: PathLike) -> h5py.File:
    try:
        return h5py.File(source, "r")
    except (OSError, ValueError) as exc:
        raise _fail(
            path, "file", f"not a readable HDF5 file (truncated or corrupt?): {exc}"
        ) from exc


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "SUO":
        return _text(value.item())
    return None


def _hdf5_kind(f: h5py.File, path: PathLike) -> str:
    if _text(f.attrs.get("format")) == "layerkit":
        return "layerkit"
    # Legacy first: a weights-only legacy file may hold a layer that is named "layers".
    root = _child(f, "model_weights", path)
    for group in (root, f):
        if isinstance(group, h5py.Group) and (
            "layer_names" in group.attrs or "layer_names0" in group.attrs
        ):
            return "legacy_h5"
    if isinstance(_child(f, "layers", path), h5py.Group):
        return "keras3_weights"
    raise _fail(path, "/", "HDF5 file without Keras weights (no 'layers' group, no 'layer_names')")


def _archive_kind(path: PathLike) -> str:
    from .pytorch import is_torch_archive

    try:
        with zipfile.ZipFile(path) as zf:
            if is_torch_archive(zf):
                return "pytorch"
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise _fail(path, "zip archive", f"unreadable: {exc}") from exc
    if _WEIGHTS_MEMBER not in names:
        raise _fail(
            path, _WEIGHTS_MEMBER, "zip archive without Keras weights or a torch.save data.pkl"
        )
    return "keras_archive"


@reads_hdf5
def detect_format(path: PathLike) -> str:
    """Say which kind of weights file ``path`` is, by its content rather than its suffix.

    Args:
        path: a file, a TensorFlow checkpoint prefix (``prefix.index`` exists) or one of its
            files, or a folder holding a TensorFlow ``checkpoint`` file; str, bytes or
            os.PathLike.

    Returns:
        One of ``"keras3_weights"``, ``"legacy_h5"``, ``"keras_archive"``,
        ``"tf1_checkpoint"``, ``"layerkit"``, ``"pytorch"`` (a zip-based ``torch.save``
        file), ``"safetensors"``.

    Raises:
        FileNotFoundError: nothing exists at ``path``.
        FormatError: the content is none of these; the message says when the file is
            empty, a truncated zip archive, a checkpoint's data shard or a legacy
            ``torch.save`` file.
        TypeError: ``path`` is not a path.

    Example:
        >>> detect_format("model.weights.h5")  # doctest: +SKIP
        'keras3_weights'
    """
    p = _path_text(path)
    if os.path.isdir(p):
        if not os.path.isfile(os.path.join(p, "checkpoint")):
            raise _fail(p, "folder", "no TensorFlow 'checkpoint' file in this folder")
        return "tf1_checkpoint"
    if not os.path.exists(p):
        if os.path.isfile(p + ".index"):
            return "tf1_checkpoint"
        raise FileNotFoundError(f"{p}: no such file, folder or checkpoint prefix")
    if not os.path.isfile(p):
        raise _fail(p, "file", "not a regular file")  # devices and pipes could block reads
    size = os.path.getsize(p)
    if size == 0:
        raise _fail(p, "file", "empty (0 bytes); expected a weights file")
    if _has_hdf5_signature(p, size):
        with _open_hdf5(p, p) as f:
            return _hdf5_kind(f, p)
    if zipfile.is_zipfile(p):
        return _archive_kind(p)
    if os.path.isfile(p + ".index") or _has_table_magic(p, size):
        return "tf1_checkpoint"
    from .pytorch import is_legacy_torch_file
    from .safetensors import is_safetensors

    if is_safetensors(p, size):
        return "safetensors"
    if is_legacy_torch_file(p):
        raise _fail(
            p,
            "file",
            "a legacy torch.save file (the format of torch < 1.6, or "
            "_use_new_zipfile_serialization=False), which layerkit does not read: re-save it "
            "with a current PyTorch, torch.save(torch.load(path, weights_only=True), new_path), "
            "or as .safetensors",
        )
    shard = _TF_SHARD.fullmatch(os.path.basename(p))
    if shard and os.path.isfile(p[: -len(shard.group(1))] + ".index"):
        return "tf1_checkpoint"  # one of the checkpoint's files, as for its .index
    raise _fail(p, "file", _unknown_content(p))


def _path_text(path: PathLike) -> str:
    """``path`` as text: str, bytes (decoded as the file system does) or os.PathLike."""
    try:
        return os.fsdecode(path)
    except TypeError:
        raise TypeError(
            "Expected path to be a str, bytes or os.PathLike. "
            f"Received: path={path!r:.100} of type {type(path).__name__}"
        ) from None


def _unknown_content(path: str) -> str:
    """Why a file that is neither HDF5, a zip archive nor a checkpoint index is refused,
    with a hint for the damaged and the misnamed files users actually pass."""
    shard = _TF_SHARD.fullmatch(os.path.basename(path))
    if shard:
        prefix = path[: -len(shard.group(1))]
        return (
            f"a data shard of a TensorFlow checkpoint whose index {prefix}.index is missing; "
            f"pass the checkpoint prefix {prefix!r} (the path without {shard.group(1)!r}, "
            "with its .index file next to it)"
        )
    with open(path, "rb") as f:
        head = f.read(4)
    if head == _ZIP_MAGIC:
        return (
            "a truncated or damaged zip archive (such as a .keras file cut short): it starts "
            "like a zip archive but its end-of-archive record is missing or unreadable"
        )
    if head == _HDF5_SIGNATURE[:4]:
        return "a truncated HDF5 file: it starts like HDF5 but is too short to hold one"
    return "neither HDF5, a zip archive, safetensors nor a TensorFlow checkpoint"


# --------------------------------------------------------------------------------------
# Safe HDF5 access
# --------------------------------------------------------------------------------------


def _string_list(obj: h5py.HLObject, name: str, path: PathLike) -> list[str]:
    """A list-of-names attribute, joined from ``name0``, ``name1``, ... when Keras split it.

    Keras splits attributes above HDF5's 64 KiB attribute limit into numbered chunks.
    """
    if name in obj.attrs:
        chunks = [obj.attrs[name]]
    else:
        chunks = []
        while f"{name}{len(chunks)}" in obj.attrs:
            chunks.append(obj.attrs[f"{name}{len(chunks)}"])
    names: list[str] = []
    for chunk in chunks:
        values = chunk.ravel().tolist() if isinstance(chunk, np.ndarray) else [chunk]
        for value in values:
            text = _text(value)
            if text is None:
                raise _fail(path, f"{obj.name} attribute {name!r}", f"not a name: {value!r}")
            names.append(text)
    return names


# --------------------------------------------------------------------------------------
# Keras 3 weights
# --------------------------------------------------------------------------------------


def _to_snake_case(name: str) -> str:
    # keras.src.utils.naming.to_snake_case, which names the groups of Keras 3 files.
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _split_key(key: str) -> tuple[str, int]:
    match = re.fullmatch(r"(.*?)(?:_(\d+))?", key)
    assert match is not None  # the pattern matches every string
    return match.group(1), int(match.group(2) or 0)


def _object_address(obj: h5py.HLObject) -> int | None:
    try:
        return int(h5o.get_info(obj.id).addr)
    except (AttributeError, TypeError, ValueError, RuntimeError):
        return None


def _model_order(groups: dict[str, h5py.Group]) -> list[str]:
    """Guess model order of the ``layers/`` keys of a Keras 3 file without a config.

    HDF5 lists members alphabetically (``dense``, ``dense_1``, ``dense_10``, ``dense_2``).
    Keras numbers the groups of each class in model order, so within a class the numeric
    suffix is the order. Across classes, the only trace is where the groups were written:
    Keras writes layers in model order, so object headers lie at increasing addresses.
    """
    keys = list(groups)
    addresses = {k: _object_address(g) for k, g in groups.items()}
    if all(a is not None for a in addresses.values()):
        keys.sort(key=lambda k: addresses[k])
    else:
        keys.sort(key=_split_key)
    # Whatever the addresses say, each class keeps its numeric suffix order.
    by_class: dict[str, list[str]] = {}
    for key in keys:
        by_class.setdefault(_split_key(key)[0], []).append(key)
    queues = {base: iter(sorted(ks, key=_split_key)) for base, ks in by_class.items()}
    return [next(queues[_split_key(key)[0]]) for key in keys]


def _config_layers(config: dict | None) -> list[dict]:
    if not isinstance(config, dict):
        return []
    inner = config.get("config")
    layers = inner.get("layers") if isinstance(inner, dict) else inner
    return (
        [layer for layer in layers if isinstance(layer, dict)] if isinstance(layers, list) else []
    )


def _config_keys(config: dict | None) -> dict[str, tuple[int, str | None, str]]:
    """Map the group keys Keras 3 gives a model's layers to ``(index, name, class_name)``.

    Keras 3 names each layer's group by its snake-case class name plus a per-class
    counter, in model order, so the config fixes the order exactly.
    """
    keys: dict[str, tuple[int, str | None, str]] = {}
    counters: dict[str, int] = {}
    # Sequential.layers leaves the InputLayer out of the saved state; a functional
    # model's layers list its InputLayers (weightless groups input_layer, input_layer_1).
    graph = isinstance(config, dict) and config.get("class_name") in _GRAPH_CLASSES
    for index, layer in enumerate(_config_layers(config)):
        class_name = layer.get("class_name")
        if not isinstance(class_name, str) or (class_name == "InputLayer" and not graph):
            continue
        snake = _to_snake_case(class_name)
        n = counters.get(snake, -1) + 1
        counters[snake] = n
        cfg = layer.get("config")
        name = cfg.get("name") if isinstance(cfg, dict) else None
        keys[snake if n == 0 else f"{snake}_{n}"] = (
            index,
            name if isinstance(name, str) else None,
            class_name,
        )
    return keys


def _vars_of(group: h5py.Group, path: PathLike, file_size: int) -> list[np.ndarray]:
    """Arrays of a ``vars`` group, ordered by their integer keys."""
    entries: list[tuple[int, str]] = []
    for key in group:
        if not key.isdigit():
            raise _fail(path, f"{group.name}/{key}", "Keras variable keys are integers")
        entries.append((int(key), key))
    entries.sort()
    return [
        _read_dataset(_child(group, key, path, inside=group.name), path, file_size)
        for _, key in entries
    ]


def _keras3_layer(
    key: str,
    group: h5py.Group,
    hint: tuple[int, str | None, str] | None,
    path: PathLike,
    file_size: int,
    depth: int,
) -> list[StoredLayer]:
    """The StoredLayer of one ``layers/<key>`` group, plus those of a nested model."""
    out: list[StoredLayer] = []
    vars_group = _child(group, "vars", path, inside=group.name)
    arrays: list[tuple[str, np.ndarray]] = []
    name = hint[1] if hint and hint[1] else key
    class_name = hint[2] if hint else _SNAKE_CLASSES.get(_split_key(key)[0])
    if isinstance(vars_group, h5py.Group):
        stored_name = _text(vars_group.attrs.get("name"))
        name = stored_name or _text(group.attrs.get("name")) or name
        values = _vars_of(vars_group, path, file_size)
        names = _VAR_NAMES.get(class_name or "", ())
        labels = list(names) if len(values) == len(names) else []
        if class_name == "Dense" and len(values) == 1:
            labels = ["kernel"]  # use_bias=False
        labels = labels or [str(i) for i in range(len(values))]
        arrays.extend(zip(labels, values, strict=True))
    for child_key in group:
        if child_key in ("vars", "layers") or child_key.startswith("seed_generator"):
            continue  # seed generators hold RNG state, not weights
        child = _child(group, child_key, path, inside=group.name)
        if not isinstance(child, h5py.Group):
            continue
        sub = _child(child, "vars", path, inside=child.name)
        if isinstance(sub, h5py.Group):
            # Weights of a sub-object (e.g. an RNN cell): kept under "<child>/<i>" so that
            # nothing is dropped silently; a loader that does not know them will refuse.
            values = _vars_of(sub, path, file_size)
            arrays.extend((f"{child_key}/{i}", v) for i, v in enumerate(values))
    if arrays:
        out.append(StoredLayer(name=name, weights=dict(arrays), class_name=class_name))
    nested = _child(group, "layers", path)
    if isinstance(nested, h5py.Group):
        if depth >= _MAX_NESTING:
            raise _fail(path, nested.name, f"models nested more than {_MAX_NESTING} deep")
        out.extend(_keras3_layers(nested, None, path, file_size, depth + 1))
    return out


def _keras3_layers(
    layers: h5py.Group, config: dict | None, path: PathLike, file_size: int, depth: int = 0
) -> list[StoredLayer]:
    groups: dict[str, h5py.Group] = {}
    for key in layers:
        child = _child(layers, key, path)
        if not isinstance(child, h5py.Group):
            raise _fail(path, f"{layers.name}/{key}", "expected a layer group")
        groups[key] = child
    hints = _config_keys(config)
    guessed = _model_order(groups)
    if hints and all(k in hints for k in groups):
        order = sorted(groups, key=lambda k: hints[k][0])
    else:
        order = guessed
    out: list[StoredLayer] = []
    for key in order:
        out.extend(_keras3_layer(key, groups[key], hints.get(key), path, file_size, depth))
    return out


def _read_keras3(f: h5py.File, path: PathLike, file_size: int, config: dict | None = None):
    layers = _child(f, "layers", path)
    if not isinstance(layers, h5py.Group):
        raise _fail(path, "/layers", "missing layers group")
    return _keras3_layers(layers, config, path, file_size)


# --------------------------------------------------------------------------------------
# Legacy HDF5
# --------------------------------------------------------------------------------------


def _short_weight_name(weight_name: str) -> str:
    name = re.sub(r":\d+$", "", weight_name)  # TensorFlow's ":0" output index
    return name.rsplit("/", 1)[-1]


def _class_names(config: dict | None) -> dict[str, str]:
    names: dict[str, str] = {}
    for layer in _config_layers(config):
        cfg = layer.get("config")
        class_name = layer.get("class_name")
        if (
            isinstance(cfg, dict)
            and isinstance(cfg.get("name"), str)
            and isinstance(class_name, str)
        ):
            names[cfg["name"]] = class_name
    return names


def _read_legacy(f: h5py.File, path: PathLike, file_size: int) -> list[StoredLayer]:
    root = _child(f, "model_weights", path)
    if not isinstance(root, h5py.Group):
        root = f
    try:
        config = _model_config_attr(f, path)
    except FormatError:
        config = None  # the config only adds class names; weights do not need it
    class_names = _class_names(config)
    layers: list[StoredLayer] = []
    for layer in _string_list(root, "layer_names", path):
        group = _child(root, layer, path)
        if not isinstance(group, h5py.Group):
            raise _fail(
                path, f"{root.name.rstrip('/')}/{layer}", "listed in layer_names but missing"
            )
        weights: dict[str, np.ndarray] = {}
        for weight_name in _string_list(group, "weight_names", path):
            # weight_names gives the dataset path inside the layer group; never guess it.
            ds = _resolve(group, weight_name, path, inside=group.name)
            if ds is None:
                raise _fail(
                    path, f"{group.name}/{weight_name}", "listed in weight_names but missing"
                )
            short = _short_weight_name(weight_name)
            if short in weights:
                short = re.sub(r":\d+$", "", weight_name)
            if short in weights:
                raise _fail(path, f"{group.name}/{weight_name}", "duplicate weight name")
            weights[short] = _read_dataset(ds, path, file_size)
        if weights:
            layers.append(
                StoredLayer(name=layer, weights=weights, class_name=class_names.get(layer))
            )
    return layers


def _model_config_attr(f: h5py.File, path: PathLike) -> dict:
    raw = f.attrs.get("model_config")
    text = _text(raw)
    if text is None:
        raise _fail(path, "/ attribute 'model_config'", "missing (a weights-only file?)")
    return _parse_config(text, path, "/ attribute 'model_config'")


def _parse_config(text: str | bytes, path: PathLike, obj: str) -> dict:
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _fail(path, obj, f"invalid JSON: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise _fail(path, obj, "not a Keras model config (no class_name)")
    return config


# --------------------------------------------------------------------------------------
# .keras archives
# --------------------------------------------------------------------------------------


def _archive_member(path: PathLike, member: str, limit: int) -> bytes:
    """Read one zip member into memory after checking its declared sizes."""
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise _fail(path, member, "missing from the archive") from None
            if info.file_size > limit:
                raise _fail(path, member, f"declared size {info.file_size} exceeds {limit} bytes")
            if info.file_size > _MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
                raise _fail(
                    path,
                    member,
                    f"compression ratio {info.file_size}/{info.compress_size} "
                    f"exceeds {_MAX_COMPRESSION_RATIO} (zip bomb?)",
                )
            # In chunks: a member declaring gigabytes it does not hold fails at the end of
            # its real data instead of allocating the declared size first.
            chunks, size = [], 0
            with zf.open(info) as fh:
                while size <= info.file_size and (chunk := fh.read(1 << 20)):
                    chunks.append(chunk)
                    size += len(chunk)
            data = b"".join(chunks)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        RuntimeError,
        NotImplementedError,
        EOFError,
    ) as exc:
        raise _fail(path, member, f"unreadable zip member: {exc}") from exc
    if len(data) != info.file_size:
        raise _fail(path, member, "member size differs from its declared size")
    return data


def _read_archive(path: PathLike) -> list[StoredLayer]:
    try:
        config = _parse_config(
            _archive_member(path, _CONFIG_MEMBER, _MAX_CONFIG_BYTES), path, _CONFIG_MEMBER
        )
    except FormatError:
        config = None  # only used for order and class names; the weights file suffices
    data = _archive_member(path, _WEIGHTS_MEMBER, _MAX_MEMBER_BYTES)
    where = f"{os.fspath(path)}!{_WEIGHTS_MEMBER}"
    with _open_hdf5(io.BytesIO(data), where) as f:
        return _read_keras3(f, where, len(data), config)


# --------------------------------------------------------------------------------------
# Public readers
# --------------------------------------------------------------------------------------


@reads_hdf5
def read_keras_weights(path: PathLike) -> list[StoredLayer]:
    """Read the layer weights of a Keras 3 ``.weights.h5``, legacy ``.h5`` or ``.keras`` file.

    Args:
        path: the file; its kind is detected from its content.

    Returns:
        The layers that have weights, in model order, each with its weights named as
        Keras names them (``"kernel"``, ``"bias"`` for Dense) in Keras order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        FormatError: the file is not a Keras weights file, or is unsafe or corrupt; the
            message names the file and the object.

    Example:
        >>> [layer.name for layer in read_keras_weights("seed_mlp.weights.h5")]  # doctest: +SKIP
        ['hidden1', 'hidden2', 'hidden3', 'hidden4', 'hidden5', 'outputs']
    """
    kind = detect_format(path)
    if kind == "keras_archive":
        return _read_archive(path)
    if kind not in ("keras3_weights", "legacy_h5"):
        hint = " (use read_tf1_checkpoint)" if kind == "tf1_checkpoint" else ""
        raise _fail(path, "file", f"a {kind} file, not a Keras weights file{hint}")
    reader: Callable[[h5py.File, PathLike, int], list[StoredLayer]]
    reader = _read_keras3 if kind == "keras3_weights" else _read_legacy
    with _open_hdf5(path, path) as f:
        return reader(f, path, os.path.getsize(path))


@reads_hdf5
def read_keras_optimizer_variables(path: PathLike) -> list[np.ndarray] | None:
    """The ``optimizer/vars`` of a ``.keras`` archive in Keras 3's order (iterations, the
    learning rate, then each trainable weight's slots), or None when it holds none.

    Raises:
        FormatError: a malformed ``optimizer`` group (non-integer keys, oversized data).
    """
    if detect_format(path) != "keras_archive":
        return None
    data = _archive_member(path, _WEIGHTS_MEMBER, _MAX_MEMBER_BYTES)
    where = f"{os.fspath(path)}!{_WEIGHTS_MEMBER}"
    with _open_hdf5(io.BytesIO(data), where) as f:
        group = f.get("optimizer")
        variables = group.get("vars") if isinstance(group, h5py.Group) else None
        if variables is None:
            return None
        if not isinstance(variables, h5py.Group):
            raise _fail(where, "optimizer/vars", "expected a group of datasets")
        return _vars_of(variables, where, len(data))


@reads_hdf5
def read_keras_model_config(path: PathLike) -> dict:
    """Return the Keras model config (``{"class_name": "Sequential", "config": {...}}``).

    Args:
        path: a ``.keras`` archive (its ``config.json``) or a legacy full-model ``.h5``
            (its ``model_config`` attribute).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        FormatError: the file holds no model config (e.g. a weights-only file).
    """
    kind = detect_format(path)
    if kind == "keras_archive":
        text = _archive_member(path, _CONFIG_MEMBER, _MAX_CONFIG_BYTES)
        return _parse_config(text, path, _CONFIG_MEMBER)
    if kind == "legacy_h5":
        with _open_hdf5(path, path) as f:
            return _model_config_attr(f, path)
    raise _fail(path, "model config", f"a {kind} file holds no model config")


# --------------------------------------------------------------------------------------
# Config walking
# --------------------------------------------------------------------------------------


def _activation_name(value: Any, layer: str) -> str:
    if value is None:
        return "linear"
    if isinstance(value, str):
        return value
    # Keras 3 may serialize built-in activations as {"class_name": "function", "config": "relu"}.
    if isinstance(value, dict) and isinstance(value.get("config"), str):
        return value["config"]
    raise ValueError(f"Layer {layer!r}: unsupported activation {value!r}")


def _feature_shape(value: Any) -> tuple[int | None, ...] | None:
    """Drop the batch dimension of a Keras ``batch_shape``-like list."""
    if isinstance(value, (list, tuple)) and len(value) >= 2:
        return tuple(
            v if isinstance(v, int) and not isinstance(v, bool) else None for v in value[1:]
        )
    return None


def _declared_input(layer: dict, cfg: dict) -> tuple[int | None, ...] | None:
    for key in ("batch_shape", "batch_input_shape"):  # Keras 3, tf.keras 2
        shape = _feature_shape(cfg.get(key))
        if shape is not None:
            return shape
    build = layer.get("build_config")
    if isinstance(build, dict):
        return _feature_shape(build.get("input_shape"))
    return None


# Layers that keep the shape of their input and whose options load_keras reads from the
# layer's own config (activation layers).
SHAPE_PRESERVING = (
    "ReLU",
    "LeakyReLU",
    "ELU",
    "Softmax",
    "PReLU",
    "BatchNormalization",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "Rescaling",
    "Normalization",
)
# Merge layers (graph models only): several inputs, options read from the config.
MERGE_CLASSES = (
    "Concatenate",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Dot",
)


def keras_layer_spec(
    layer: Any, shape: tuple[int | None, ...] | None = None
) -> tuple[dict, tuple[int | None, ...] | None]:
    """Describe one Keras layer entry (see :func:`keras_dense_layers`).

    Args:
        layer: one entry of a Keras config's ``layers`` list (not an InputLayer).
        shape: the feature shape the layer receives, if known.

    Returns:
        The description and the feature shape the layer outputs (``None`` if unknown).

    Raises:
        ValueError: the entry is malformed or its class unsupported (the message names it).
    """
    if not isinstance(layer, dict) or not isinstance(layer.get("config"), dict):
        raise ValueError(f"Malformed layer entry in Keras config: {layer!r:.200}")
    class_name, cfg = layer.get("class_name"), layer["config"]
    name = cfg.get("name")
    entry: dict[str, Any] = {"class_name": class_name, "name": name, "input_shape": shape}
    if class_name == "Dense":
        units = cfg.get("units")
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"Dense layer {name!r}: invalid units {units!r}")
        use_bias = cfg.get("use_bias", True)
        if not isinstance(use_bias, bool):
            raise ValueError(f"Dense layer {name!r}: invalid use_bias {use_bias!r}")
        entry.update(
            units=units,
            activation=_activation_name(cfg.get("activation"), str(name)),
            use_bias=use_bias,
            input_dim=shape[-1] if shape else None,
        )
        shape = (*shape[:-1], units) if shape else None
    elif class_name == "Dropout":
        rate = cfg.get("rate", 0.0)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"Dropout layer {name!r}: invalid rate {rate!r}")
        entry["rate"] = float(rate)
    elif class_name == "Activation":
        entry["activation"] = _activation_name(cfg.get("activation"), str(name))
    elif class_name == "Flatten":
        known = shape is not None and all(d is not None for d in shape)
        shape = (math.prod(shape),) if known else None  # type: ignore[arg-type]
    elif class_name in SHAPE_PRESERVING:
        pass
    elif class_name == "Reshape" or class_name in MERGE_CLASSES:
        shape = None  # the graph checker computes these shapes
    else:
        raise ValueError(f"Unsupported Keras layer class {class_name!r} (layer {name!r})")
    return entry, shape


def keras_dense_layers(config: dict) -> list[dict]:
    """Describe the layers of a Keras 3 or tf.keras 2 ``Sequential`` config.

    Args:
        config: what :func:`read_keras_model_config` returns.

    Returns:
        One dict per layer, in order, InputLayer entries left out (they only give the
        input shape). Every dict has ``class_name``, ``name`` and ``input_shape`` (the
        feature shape the layer receives, without the batch axis, or ``None``). Dense
        adds ``units``, ``activation``, ``use_bias`` and ``input_dim`` (``None`` if not
        known); Dropout adds ``rate``; Activation adds ``activation``; Flatten, Reshape
        and the activation layers (ReLU, LeakyReLU, ELU, Softmax, PReLU), the noise layers
        (GaussianNoise, GaussianDropout, AlphaDropout), Rescaling and Normalization add
        nothing (their options are in their config).

    Raises:
        ValueError: the model is not Sequential, or a layer class is unsupported (the
            message names it).

    Example:
        >>> keras_dense_layers(read_keras_model_config("mlp.keras"))[0]  # doctest: +SKIP
        {'class_name': 'Dense', 'name': 'hidden1', 'input_shape': (784,), 'units': 300,
         'activation': 'relu', 'use_bias': True, 'input_dim': 784}
    """
    if not isinstance(config, dict) or config.get("class_name") != "Sequential":
        found = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"Unsupported Keras model class {found!r}: only Sequential is supported")
    inner = config.get("config")
    layers: Iterable[Any] = inner.get("layers", []) if isinstance(inner, dict) else inner or []
    shape: tuple[int | None, ...] | None = None
    out: list[dict] = []
    for layer in layers:
        if not isinstance(layer, dict) or not isinstance(layer.get("config"), dict):
            raise ValueError(f"Malformed layer entry in Keras config: {layer!r:.200}")
        class_name, cfg = layer.get("class_name"), layer["config"]
        declared = _declared_input(layer, cfg)
        if class_name == "InputLayer" or (shape is None and declared is not None):
            shape = declared
        if class_name == "InputLayer":
            continue
        if class_name in MERGE_CLASSES:
            raise ValueError(
                f"Keras layer class {class_name!r} (layer {cfg.get('name')!r}) merges several "
                "inputs, which a Sequential model cannot give it"
            )
        entry, shape = keras_layer_spec(layer, shape)
        out.append(entry)
    return out
