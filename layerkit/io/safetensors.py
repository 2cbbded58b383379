"""Read and write ``.safetensors`` files, with strict checks and no dependency.

The format (https://github.com/huggingface/safetensors) is::

    8 bytes       N, the header's length (unsigned, little-endian)
    N bytes       a JSON object: {"name": {"dtype": "F32", "shape": [out, in],
                  "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
    the rest      the tensors' bytes, little-endian, C order; offsets count from here

It is simple enough to read here, which keeps layerkit free of a compiled dependency and
lets every check be ours (the ``safetensors`` package is only used by the tests, to make
and read real files). As the reference implementation does, a file is refused unless: N
is at most :data:`MAX_HEADER_BYTES` and fits the file; the header is a JSON object with
no duplicate keys; each entry has exactly a known ``dtype``, a ``shape`` of non-negative
integers and ``data_offsets`` ``[begin, end]`` whose length is the shape's byte size; and
the tensors, in offset order, cover the data exactly (no gap, overlap or trailing byte).
All of that is checked before any tensor is read.

Writing (``model.save_weights("m.safetensors")``) gives the weights PyTorch names and
layout, so ``safetensors.torch.load_file`` and ``nn.Sequential.load_state_dict`` take
them: see :func:`torch_state` for the naming.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from .pytorch import stored_layers
from .stored import FormatError, StoredLayer

__all__ = ["MAX_HEADER_BYTES", "is_safetensors", "read_safetensors", "torch_state", "write"]

PathLike = str | os.PathLike

MAX_HEADER_BYTES = 100_000_000  # the reference implementation's limit
# The model order of the layers, recorded by layerkit's writer (JSON header keys are
# written in sorted order, which would put "10" before "2").
_ORDER_KEY = "layerkit.layers"
_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "bfloat16",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}


def _fail(path: PathLike, obj: str, message: str) -> FormatError:
    return FormatError(f"{os.fspath(path)}: {obj}: {message}")


def is_safetensors(path: PathLike, size: int) -> bool:
    """Whether a file starts as a safetensors file does: a header length, then ``{``.

    The length is not judged here, so that a lying one is reported by the reader as
    such rather than as an unknown format."""
    if size < 9:
        return False
    with open(path, "rb") as f:
        head = f.read(9)
    return head[8:9] == b"{"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicated = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"duplicate keys {duplicated[:5]}")
    return dict(pairs)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _itemsize(code: str) -> int:
    return 2 if code == "bfloat16" else np.dtype(code).itemsize


def read_header(path: PathLike) -> tuple[dict[str, dict], dict[str, str], int]:
    """``(entries in offset order, metadata, data start)`` after checking all of them."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _fail(path, "header", "shorter than the 8-byte header length")
        n = int.from_bytes(head, "little")
        if n > MAX_HEADER_BYTES:
            raise _fail(path, "header", f"declares {n} bytes, more than {MAX_HEADER_BYTES}")
        if n > size - 8:
            raise _fail(path, "header", f"declares {n} bytes in a {size}-byte file (truncated?)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise _fail(path, "header", f"not a valid JSON header: {error}") from None
    if not isinstance(header, dict):
        raise _fail(path, "header", f"a JSON {type(header).__name__}, expected an object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _fail(path, "__metadata__", "must map strings to strings")
    data_size = size - 8 - n
    entries = {}
    for name, entry in header.items():
        obj = f"tensor {name!r}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise _fail(path, obj, "expected exactly 'dtype', 'shape' and 'data_offsets'")
        code = _DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
        if code is None:
            raise _fail(
                path,
                obj,
                f"unsupported dtype {entry['dtype']!r:.40}; expected one of {list(_DTYPES)}",
            )
        shape, offsets = entry["shape"], entry["data_offsets"]
        if not isinstance(shape, list) or len(shape) > 32 or not all(map(_count, shape)):
            raise _fail(path, obj, f"shape {shape!r:.80} is not a list of sizes")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_count, offsets))):
            raise _fail(path, obj, f"data_offsets {offsets!r:.80} is not [begin, end]")
        begin, end = offsets
        nbytes = math.prod(shape) * _itemsize(code)
        if end < begin or end - begin != nbytes:
            raise _fail(
                path,
                obj,
                f"data_offsets {offsets} hold {end - begin} bytes, shape {shape} "
                f"of {entry['dtype']} needs {nbytes}",
            )
        if end > data_size:
            raise _fail(
                path,
                obj,
                f"data_offsets {offsets} run past the {data_size} bytes of data (truncated?)",
            )
        entries[name] = {"code": code, "shape": tuple(shape), "begin": begin, "end": end}
    position = 0
    for name, entry in sorted(entries.items(), key=lambda kv: (kv[1]["begin"], kv[1]["end"])):
        if entry["begin"] != position:
            what = "overlaps another" if entry["begin"] < position else "leaves a gap before it"
            raise _fail(path, f"tensor {name!r}", f"its data {what}")
        position = entry["end"]
    if position != data_size:
        raise _fail(path, "data", f"{data_size - position} bytes after the last tensor")
    return entries, metadata, 8 + n


def read_tensors(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``({name: array}, metadata)`` of a safetensors file, in header order."""
    entries, metadata, start = read_header(path)
    arrays = {}
    with open(path, "rb") as f:
        for name, entry in entries.items():
            f.seek(start + entry["begin"])
            buf = bytearray(entry["end"] - entry["begin"])  # bounded by the file's size
            if f.readinto(buf) != len(buf):
                raise _fail(path, f"tensor {name!r}", "short read (file changed while reading?)")
            code = entry["code"]
            if code == "bfloat16":
                bits = np.frombuffer(buf, "<u2").astype(np.uint32) << 16
                array = bits.view(np.float32).reshape(entry["shape"])
            else:
                array = np.frombuffer(buf, code).reshape(entry["shape"])
                array = array.astype(array.dtype.newbyteorder("="), copy=False)
            arrays[name] = array
    return arrays, metadata


def _natural_key(name: str) -> list[tuple[int, int | str]]:
    from .tf1_checkpoint import _natural_key

    return _natural_key(name)


def read_safetensors(path: PathLike) -> list[StoredLayer]:
    """The layers of a safetensors file of PyTorch weights (see ``pytorch.stored_layers``).

    A JSON header does not keep the model's order; the layers come in the order layerkit's
    writer recorded in the metadata, else in natural name order (``0``, ``2``, ``10``;
    ``fc1``, ``fc2``), which is right for ``nn.Sequential`` and numbered names.
    """
    path = os.fspath(path)
    arrays, metadata = read_tensors(path)
    names = _recorded_names(metadata, path)
    if names:
        rank = {module: i for i, module in enumerate(names)}
        key = lambda k: (rank.get(k.rpartition(".")[0], len(rank)), _natural_key(k))  # noqa: E731
    else:
        key = lambda k: _natural_key(k.rpartition(".")[0]) + [(2, k)]  # noqa: E731
    layers = stored_layers({k: arrays[k] for k in sorted(arrays, key=key)}, path)
    for layer in layers:  # files layerkit wrote keep its layer names
        layer.name = names.get(layer.name, layer.name)
    return layers


def _recorded_names(metadata: dict[str, str], path: PathLike) -> dict[str, str]:
    """``{module index: layerkit name}`` from layerkit's metadata, in model order."""
    text = metadata.get(_ORDER_KEY)
    if text is None:
        return {}
    try:
        pairs = json.loads(text)
    except ValueError:
        pairs = None
    if not (
        isinstance(pairs, list)
        and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p)
            for p in pairs
        )
    ):
        raise _fail(path, f"__metadata__[{_ORDER_KEY!r}]", "not a list of [module, layer] names")
    return dict(pairs)


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def torch_state(model) -> tuple[dict[str, np.ndarray], list[list[str]]]:
    """The state dict of the ``nn.Sequential`` equivalent to ``model``, and the
    ``[module index, layer name]`` pairs of the layers with weights.

    Naming: the model's layers are numbered as ``nn.Sequential`` numbers its modules. A
    ``Dense`` is an ``nn.Linear`` (``i.weight = kernel.T``, ``i.bias``), followed by one
    activation module when its activation is not linear; a ``BatchNormalization`` is an
    ``nn.BatchNorm1d`` (``i.weight``, ``i.bias``, ``i.running_mean``, ``i.running_var``,
    ``i.num_batches_tracked = 0``); every other layer (Activation, Dropout, Flatten, ...)
    is one module without weights.

    Raises:
        ValueError: the model is not a Sequential, or a layer with weights has no
            ``nn`` counterpart; the message names the layer.
    """
    from ..layers.dense import Dense
    from ..layers.normalization import BatchNormalization
    from ..models.sequential import Sequential

    if not isinstance(model, Sequential):
        raise ValueError(
            "A .safetensors file holds the state dict of an equivalent nn.Sequential, "
            f"so the model must be a Sequential. Received: model of type {type(model).__name__}"
        )
    state: dict[str, np.ndarray] = {}
    names: list[list[str]] = []
    index = 0
    for layer in model.layers:
        values = {p.name.split("/", 1)[1]: p.value for p in layer.weights}
        if isinstance(layer, Dense):
            state[f"{index}.weight"] = np.ascontiguousarray(values["kernel"].T)
            if "bias" in values:
                state[f"{index}.bias"] = values["bias"]
            names.append([str(index), layer.name])
            index += 1 if layer.activation.name == "linear" else 2
            continue
        if isinstance(layer, BatchNormalization):
            _check_1d_batchnorm(layer)
            for key, torch_key in (("gamma", "weight"), ("beta", "bias")):
                if key in values:
                    state[f"{index}.{torch_key}"] = values[key]
            state[f"{index}.running_mean"] = values["moving_mean"]
            state[f"{index}.running_var"] = values["moving_variance"]
            state[f"{index}.num_batches_tracked"] = np.zeros((), np.int64)
            names.append([str(index), layer.name])
        elif values:
            raise ValueError(
                f"Layer {layer.name!r} ({type(layer).__name__}) has weights but no PyTorch "
                "module that a .safetensors file could name; only Dense and "
                "BatchNormalization layers have. Save to '.h5' or '.weights.h5' instead."
            )
        index += 1
    return state, names


def _check_1d_batchnorm(layer) -> None:
    if layer.axis not in (-1, 1):
        raise ValueError(
            f"BatchNormalization layer {layer.name!r} normalises axis={layer.axis}; "
            "nn.BatchNorm1d normalises the features of (batch, features) inputs (axis=-1)."
        )


def _dtype_name(array: np.ndarray) -> str:
    for name, code in _DTYPES.items():
        if code != "bfloat16" and np.dtype(code) == array.dtype.newbyteorder("<"):
            return name
    raise ValueError(f"Cannot store arrays of dtype {array.dtype} in a .safetensors file.")


def write(tmp: str, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Writes ``tensors`` (in this order) as a safetensors file at ``tmp``."""
    header: dict[str, Any] = {"__metadata__": dict(metadata or {})}
    offset = 0
    for name, array in tensors.items():
        nbytes = array.size * array.dtype.itemsize
        header[name] = {
            "dtype": _dtype_name(array),
            "shape": list(array.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # as the reference writer: data aligned to 8 bytes
    with open(tmp, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for array in tensors.values():
            f.write(np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes())


def save_safetensors(model, tmp: str) -> None:
    """Writes ``model``'s weights as the state dict of its ``nn.Sequential`` twin."""
    state, names = torch_state(model)
    write(tmp, state, {"format": "pt", _ORDER_KEY: json.dumps(names)})
