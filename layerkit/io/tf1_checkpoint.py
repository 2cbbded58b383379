"""Read TensorFlow 1 ``Saver`` checkpoints without TensorFlow.

A checkpoint ``prefix`` (what ``saver.restore(sess, prefix)`` takes) is:

- ``prefix.index``: a sorted string table in the LevelDB format. The entry with
  the empty key is a ``BundleHeaderProto`` (number of shards, endianness); every
  other key is a variable name whose value is a ``BundleEntryProto`` (dtype,
  shape, shard, offset, size, masked CRC-32C of the bytes).
- ``prefix.data-00000-of-00001`` (one file per shard): the raw tensor bytes.
- ``prefix.meta`` (optional): the ``MetaGraphDef``, whose graph lists the
  variables in the order the model created them.

The index itself is sorted by name, so it does not record model order. When the
``.meta`` graph is present its variable order is used; otherwise layers are put
in natural name order (``dense``, ``dense_1``, ``dense_2``, ``dense_10``;
``hidden1`` ... ``hidden5``, ``outputs``), which is right for the usual naming
schemes but cannot be guaranteed.

Everything read from the files is bounded by the files' sizes before it is
used, so a hostile index gives :class:`FormatError`, never a huge allocation or
a hang. Protocol buffers are decoded by a tiny wire-format reader below.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .crc32c import crc32c, unmask
from .stored import FormatError, StoredLayer

__all__ = ["read_tf1_checkpoint", "resolve_checkpoint_prefix"]

PathLike = str | os.PathLike

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER_SIZE = 5  # one compression-type byte + masked CRC-32C
_MAX_INDEX_BYTES = 1 << 30
_MAX_META_BYTES = 256 << 20
_MAX_STATE_BYTES = 1 << 20
_MAX_ELEMENTS = 1 << 31
_MAX_SHARDS = 99_999  # shard file names have five digits

# TensorFlow DataType enum -> little-endian numpy dtype. Reference types (100+)
# are never stored in a bundle, and DT_STRING tensors use a different encoding.
_DTYPES = {
    1: "<f4",  # DT_FLOAT
    2: "<f8",  # DT_DOUBLE
    3: "<i4",  # DT_INT32
    4: "u1",  # DT_UINT8
    5: "<i2",  # DT_INT16
    6: "i1",  # DT_INT8
    8: "<c8",  # DT_COMPLEX64
    9: "<i8",  # DT_INT64
    10: "?",  # DT_BOOL
    17: "<u2",  # DT_UINT16
    18: "<c16",  # DT_COMPLEX128
    19: "<f2",  # DT_HALF
    22: "<u4",  # DT_UINT32
    23: "<u8",  # DT_UINT64
}
_DT_STRING = 7

# Optimizer slots and bookkeeping that are not model weights. TF1 optimizers name
# slots ``<var>/<Optimizer>[_N]`` and keep scalars like ``beta1_power`` at the top.
_SLOT_COMPONENT = re.compile(
    r"(Adam|Adamax|Nadam|AdamW|Momentum|RMSProp|Adagrad|AdagradDA|ProximalAdagrad|"
    r"ProximalGradientDescent|Ftrl|Adadelta|ExponentialMovingAverage)(_\d+)?"
)
_NON_WEIGHT_NAME = re.compile(r"global_step|beta[12]_power(_\d+)?|save_counter|iter(ations)?")
# TF2 object-based checkpoints store ``<path>/.ATTRIBUTES/VARIABLE_VALUE``.
_TF2_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
# Keras order of a layer's weights; anything else keeps its order in the index.
_WEIGHT_ORDER = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")
# tf.contrib.layers names Dense weights ``weights`` / ``biases``.
_WEIGHT_ALIASES = {"weights": "kernel", "biases": "bias"}
_VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})


def _fail(path: PathLike, obj: str, message: str) -> FormatError:
    return FormatError(f"{os.fspath(path)}: {obj}: {message}")


# --------------------------------------------------------------------------------------
# Protocol buffer wire format
# --------------------------------------------------------------------------------------


def _varint(buf: memoryview, pos: int, end: int, path: PathLike, obj: str) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return ``(value, next_pos)``."""
    value = 0
    for shift in range(0, 70, 7):
        if pos >= end:
            raise _fail(path, obj, "truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >= 1 << 64:
                raise _fail(path, obj, "varint overflows 64 bits")
            return value, pos
    raise _fail(path, obj, "varint longer than 10 bytes")


def _proto_fields(buf: memoryview, path: PathLike, obj: str) -> list[tuple[int, int, object]]:
    """Split a protobuf message into ``(field_number, wire_type, value)`` triples.

    Varint and fixed fields give ints; length-delimited fields give memoryviews
    (no copy). Groups (wire types 3 and 4) are obsolete and refused.
    """
    fields: list[tuple[int, int, object]] = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos, end, path, obj)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _fail(path, obj, "protobuf field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end, path, obj)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if end - pos < width:
                raise _fail(path, obj, "truncated fixed-width protobuf field")
            value = int.from_bytes(buf[pos : pos + width], "little")
            pos += width
        elif wire == 2:
            length, pos = _varint(buf, pos, end, path, obj)
            if length > end - pos:
                raise _fail(path, obj, f"protobuf field {number} runs past its message")
            value = buf[pos : pos + length]
            pos += length
        else:
            raise _fail(path, obj, f"unsupported protobuf wire type {wire}")
        fields.append((number, wire, value))
    return fields


def _int_field(fields, number: int, wire: int, path: PathLike, obj: str, default: int = 0) -> int:
    """The last value of a scalar field (protobuf semantics), checking its wire type."""
    value = default
    for n, w, v in fields:
        if n == number:
            if w != wire:
                raise _fail(path, obj, f"protobuf field {number} has wire type {w}")
            value = v
    return value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


# --------------------------------------------------------------------------------------
# LevelDB sorted string table
# --------------------------------------------------------------------------------------


def _block_handle(
    buf: memoryview, pos: int, end: int, limit: int, path: PathLike, obj: str
) -> tuple[int, int, int]:
    """Decode a BlockHandle; check the block and its trailer lie in ``[0, limit)``."""
    offset, pos = _varint(buf, pos, end, path, obj)
    size, pos = _varint(buf, pos, end, path, obj)
    if offset + size + _BLOCK_TRAILER_SIZE > limit:
        raise _fail(
            path,
            obj,
            f"block handle (offset {offset}, size {size}) points past the end of the table",
        )
    return offset, size, pos


def _read_block(data: memoryview, offset: int, size: int, path: PathLike, obj: str) -> memoryview:
    """Return a block's contents after checking its trailer (type byte and CRC)."""
    block = data[offset : offset + size]
    kind = data[offset + size]
    stored = int.from_bytes(data[offset + size + 1 : offset + size + 5], "little")
    # The CRC covers the contents and the type byte, and is stored masked.
    if unmask(stored) != crc32c(data[offset : offset + size + 1]):
        raise _fail(path, obj, "block checksum mismatch (corrupted index)")
    if kind != 0:
        # TensorFlow writes bundle indexes uncompressed; snappy (1) would need a decoder.
        raise _fail(path, obj, f"compressed table block (type {kind}) is not supported")
    return block


def _block_entries(
    block: memoryview, path: PathLike, obj: str
) -> Iterator[tuple[bytes, memoryview]]:
    """Yield ``(key, value)`` from a block with prefix-compressed keys and restart points."""
    n = len(block)
    if n < 4:
        raise _fail(path, obj, "block too short")
    num_restarts = int.from_bytes(block[n - 4 :], "little")
    if num_restarts > (n - 4) // 4:
        raise _fail(path, obj, f"block claims {num_restarts} restart points")
    end = n - 4 - 4 * num_restarts  # entries stop where the restart array starts
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos, end, path, obj)
        unshared, pos = _varint(block, pos, end, path, obj)
        value_len, pos = _varint(block, pos, end, path, obj)
        if shared > len(key) or unshared + value_len > end - pos:
            raise _fail(path, obj, "block entry runs past its block")
        key = key[:shared] + bytes(block[pos : pos + unshared])
        pos += unshared
        yield key, block[pos : pos + value_len]
        pos += value_len


def _table_entries(data: memoryview, path: PathLike) -> list[tuple[bytes, memoryview]]:
    """All ``(key, value)`` pairs of a table, in key order."""
    if len(data) < _FOOTER_SIZE:
        raise _fail(path, "footer", "file too short for a table footer")
    footer_at = len(data) - _FOOTER_SIZE
    if int.from_bytes(data[len(data) - 8 :], "little") != _TABLE_MAGIC:
        raise _fail(path, "footer", "bad table magic number (not a checkpoint index)")
    pos, end = footer_at, len(data) - 8
    _, _, pos = _block_handle(data, pos, end, footer_at, path, "footer metaindex handle")
    index_off, index_size, _ = _block_handle(data, pos, end, footer_at, path, "footer index handle")
    index = _read_block(data, index_off, index_size, path, "index block")

    entries: list[tuple[bytes, memoryview]] = []
    next_free = 0
    for sep, handle in _block_entries(index, path, "index block"):
        obj = f"data block before key {sep!r}"
        off, size, _ = _block_handle(handle, 0, len(handle), footer_at, path, obj)
        # Real tables lay blocks out one after another; insisting on that means each
        # byte is parsed once, so a hostile index cannot make us loop over one block.
        if off < next_free:
            raise _fail(path, obj, "data blocks overlap or are out of order")
        next_free = off + size + _BLOCK_TRAILER_SIZE
        for key, value in _block_entries(_read_block(data, off, size, path, obj), path, obj):
            if entries and key <= entries[-1][0]:
                raise _fail(path, f"key {key!r}", "table keys are not strictly increasing")
            entries.append((key, value))
    return entries


# --------------------------------------------------------------------------------------
# Tensor bundle
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Entry:
    name: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc: int


def _parse_entry(name: str, value: memoryview, path: PathLike) -> _Entry:
    obj = f"variable {name!r}"
    fields = _proto_fields(value, path, obj)
    if any(n == 7 for n, _, _ in fields):
        raise _fail(path, obj, "partitioned (sliced) variables are not supported")
    shape: list[int] = []
    for n, w, v in fields:
        if n != 2:
            continue
        if w != 2:
            raise _fail(path, obj, "shape is not a message")
        shape_fields = _proto_fields(v, path, obj)
        if _int_field(shape_fields, 3, 0, path, obj):
            raise _fail(path, obj, "shape of unknown rank")
        shape = []
        for dn, dw, dv in shape_fields:
            if dn != 2:
                continue
            if dw != 2:
                raise _fail(path, obj, "shape dimension is not a message")
            size = _signed64(_int_field(_proto_fields(dv, path, obj), 1, 0, path, obj))
            if size < 0:
                raise _fail(path, obj, f"negative dimension {size}")
            shape.append(size)
    return _Entry(
        name=name,
        dtype=_int_field(fields, 1, 0, path, obj),
        shape=tuple(shape),
        shard_id=_int_field(fields, 3, 0, path, obj),
        offset=_signed64(_int_field(fields, 4, 0, path, obj)),
        size=_signed64(_int_field(fields, 5, 0, path, obj)),
        crc=_int_field(fields, 6, 5, path, obj),
    )


def _read_index(index_path: Path) -> tuple[int, bool, list[_Entry]]:
    """Return ``(num_shards, big_endian, entries)`` from a ``.index`` file."""
    size = index_path.stat().st_size
    if size > _MAX_INDEX_BYTES:
        raise _fail(index_path, "index", f"index file of {size} bytes is implausibly large")
    data = memoryview(index_path.read_bytes())
    header: memoryview | None = None
    entries: list[_Entry] = []
    for key, value in _table_entries(data, index_path):
        if key == b"":
            header = value
            continue
        try:
            name = key.decode("utf-8")
        except UnicodeDecodeError:
            raise _fail(index_path, f"key {key!r}", "variable name is not UTF-8") from None
        entries.append(_parse_entry(name, value, index_path))
    if header is None:
        raise _fail(index_path, "header", "no BundleHeaderProto (entry with the empty key)")
    fields = _proto_fields(header, index_path, "header")
    num_shards = _int_field(fields, 1, 0, index_path, "header")
    endianness = _int_field(fields, 2, 0, index_path, "header")
    if not 1 <= num_shards <= _MAX_SHARDS:
        raise _fail(index_path, "header", f"implausible number of shards {num_shards}")
    if endianness not in (0, 1):
        raise _fail(index_path, "header", f"unknown endianness {endianness}")
    return num_shards, endianness == 1, entries


def _read_tensor(entry: _Entry, shard: Path, shard_size: int, big_endian: bool) -> np.ndarray:
    obj = f"variable {entry.name!r}"
    code = _DTYPES.get(entry.dtype)
    if code is None:
        raise _fail(shard, obj, f"unsupported TensorFlow dtype enum {entry.dtype}")
    dtype = np.dtype(code)
    if dtype.kind == "c":  # dropping the imaginary part would be silent data loss
        raise _fail(shard, obj, f"complex tensors ({dtype}) cannot be layer weights")
    if big_endian:
        dtype = dtype.newbyteorder(">")
    count = math.prod(entry.shape)
    if count > _MAX_ELEMENTS:
        raise _fail(shard, obj, f"absurd shape {entry.shape}")
    if entry.size != count * dtype.itemsize:
        raise _fail(
            shard, obj, f"{entry.size} bytes do not hold shape {entry.shape} of {dtype.name}"
        )
    if entry.offset < 0 or entry.offset + entry.size > shard_size:
        raise _fail(
            shard,
            obj,
            f"bytes {entry.offset}..{entry.offset + entry.size} lie past the end of the "
            f"{shard_size}-byte data file (truncated shard?)",
        )
    buf = bytearray(entry.size)  # bounded by the shard's size just above
    with open(shard, "rb") as f:
        f.seek(entry.offset)
        if f.readinto(buf) != entry.size:
            raise _fail(shard, obj, "short read (file changed while reading?)")
    # TensorFlow stores the CRC masked, as LevelDB does (checked on real checkpoints).
    if crc32c(buf) != unmask(entry.crc):
        raise _fail(shard, obj, "crc32c mismatch: the tensor bytes are corrupted")
    array = np.frombuffer(buf, dtype=dtype).reshape(entry.shape)
    return array.astype(dtype.newbyteorder("="), copy=False) if big_endian else array


# --------------------------------------------------------------------------------------
# Prefix resolution and model order
# --------------------------------------------------------------------------------------


def _state_file_prefix(folder: Path) -> Path:
    """The newest checkpoint prefix named by a folder's ``checkpoint`` text file."""
    state = folder / "checkpoint"
    if not state.is_file():
        raise FileNotFoundError(f"{folder}: no 'checkpoint' file in this folder")
    if state.stat().st_size > _MAX_STATE_BYTES:
        raise _fail(state, "checkpoint state", "file is implausibly large")
    text = state.read_text(encoding="utf-8", errors="replace")
    # Text-format CheckpointState: model_checkpoint_path: "..." (C-escaped string).
    match = re.search(r'^\s*model_checkpoint_path:\s*"((?:[^"\\\n]|\\.)*)"', text, re.MULTILINE)
    if match is None:
        raise _fail(state, "model_checkpoint_path", "no model_checkpoint_path line")
    raw = re.sub(r"\\(.)", r"\1", match.group(1))
    prefix = Path(raw)
    if not prefix.is_absolute():
        return folder / prefix
    if not Path(raw + ".index").exists() and (folder / (prefix.name + ".index")).exists():
        # An absolute path from the machine that saved it; TensorFlow also falls back
        # to the same name next to the state file when checkpoints have been moved.
        return folder / prefix.name
    return prefix


def resolve_checkpoint_prefix(path: PathLike) -> Path:
    """Turn what a user passes into a checkpoint prefix.

    Args:
        path: a prefix (``.../model.ckpt``, with ``model.ckpt.index`` next to it), one of
            its files (``.index``, ``.meta``, ``.data-*``), or a folder holding a
            ``checkpoint`` text file.

    Returns:
        The prefix; ``prefix + ".index"`` exists.

    Raises:
        FileNotFoundError: nothing usable exists at ``path``.
    """
    p = Path(path)
    if p.is_dir():
        p = _state_file_prefix(p)
    elif not Path(f"{p}.index").exists() and p.is_file():
        # The user pointed at one of the checkpoint's files rather than at its prefix.
        match = re.fullmatch(r"(.+)\.(index|meta|data-\d{5}-of-\d{5})", str(p))
        if match:
            p = Path(match.group(1))
    if not Path(f"{p}.index").is_file():
        raise FileNotFoundError(f"{path}: no checkpoint index {p}.index")
    return p


def _meta_variable_order(meta: Path) -> list[str]:
    """Variable names in creation order, from the ``MetaGraphDef`` graph's nodes."""
    if meta.stat().st_size > _MAX_META_BYTES:
        raise _fail(meta, "MetaGraphDef", "file is implausibly large")
    data = memoryview(meta.read_bytes())
    names: list[str] = []
    for n, w, graph in _proto_fields(data, meta, "MetaGraphDef"):
        if n != 2 or w != 2:  # field 2: graph_def
            continue
        for gn, gw, node in _proto_fields(graph, meta, "GraphDef"):
            if gn != 1 or gw != 2:  # field 1: repeated NodeDef
                continue
            name = op = b""
            for fn, fw, fv in _proto_fields(node, meta, "NodeDef"):
                if fw == 2 and fn == 1:
                    name = bytes(fv)
                elif fw == 2 and fn == 2:
                    op = bytes(fv)
            if op.decode("utf-8", "replace") in _VARIABLE_OPS:
                names.append(name.decode("utf-8", "replace"))
    return names


def _natural_key(name: str) -> list[tuple[int, int | str]]:
    # (0, number) sorts before (1, text) so "dense" < "dense_1" < "dense_2" < "dense_10".
    return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", name) if t]


def _split_variable(name: str) -> tuple[str, str] | None:
    """``(layer, weight)`` for a model weight, or ``None`` for optimizer state and counters."""
    if name.endswith(_TF2_SUFFIX):
        name = name[: -len(_TF2_SUFFIX)]
    elif "/.ATTRIBUTES/" in name or name.startswith("_CHECKPOINTABLE"):
        return None  # TF2 object-graph metadata, not a tensor of the model
    if ".OPTIMIZER_SLOT" in name or name.startswith("optimizer/"):
        return None
    parts = name.split("/")
    if any(_SLOT_COMPONENT.fullmatch(p) for p in parts):
        return None
    if _NON_WEIGHT_NAME.fullmatch(parts[-1]) or len(parts) < 2:
        # Unscoped variables are counters (global_step, beta1_power, ...), not layers.
        return None
    return "/".join(parts[:-1]), parts[-1]


def read_tf1_checkpoint(path: PathLike) -> list[StoredLayer]:
    """Read the model weights of a TensorFlow 1 ``Saver`` checkpoint.

    Args:
        path: the prefix as ``Saver.restore`` takes it (``.../my_model_final.ckpt``),
            or a folder holding a ``checkpoint`` file (its ``model_checkpoint_path``
            is used; a relative path there is relative to the folder).

    Returns:
        One :class:`StoredLayer` per variable scope ``<layer>/kernel``, ``<layer>/bias``
        (``weights``/``biases`` are renamed ``kernel``/``bias``), in model order:
        the ``.meta`` graph's order when it is there, otherwise natural name order.
        Optimizer slots (``.../Adam``, ``.../Momentum``, ...), ``global_step`` and
        ``beta1_power``-style scalars are skipped. ``class_name`` is ``None``.

    Raises:
        FileNotFoundError: the index or a data shard is missing.
        FormatError: the files are corrupt, truncated, hostile or unsupported; the
            message names the file and the variable.

    Example:
        >>> layers = read_tf1_checkpoint("./my_model_final.ckpt")  # doctest: +SKIP
        >>> [layer.name for layer in layers]  # doctest: +SKIP
        ['hidden1', 'hidden2', 'hidden3', 'hidden4', 'hidden5', 'outputs']
    """
    prefix = resolve_checkpoint_prefix(path)
    num_shards, big_endian, entries = _read_index(Path(f"{prefix}.index"))

    groups: dict[str, dict[str, _Entry]] = {}
    for entry in entries:
        split = _split_variable(entry.name)
        if split is None or entry.dtype == _DT_STRING:
            continue  # string tensors are checkpoint metadata, never layer weights
        layer, weight = split
        groups.setdefault(layer, {})[weight] = entry

    shards: dict[int, tuple[Path, int]] = {}
    layers: list[StoredLayer] = []
    for layer, weights in groups.items():
        if set(weights) & set(_WEIGHT_ALIASES) and not set(weights) & set(_WEIGHT_ALIASES.values()):
            weights = {_WEIGHT_ALIASES.get(k, k): v for k, v in weights.items()}
        names = [w for w in _WEIGHT_ORDER if w in weights]
        names += [w for w in weights if w not in _WEIGHT_ORDER]
        arrays: dict[str, np.ndarray] = {}
        for weight in names:
            entry = weights[weight]
            if not 0 <= entry.shard_id < num_shards:
                raise _fail(
                    f"{prefix}.index",
                    f"variable {entry.name!r}",
                    f"shard {entry.shard_id} out of range for {num_shards} shards",
                )
            if entry.shard_id not in shards:
                shard = Path(f"{prefix}.data-{entry.shard_id:05d}-of-{num_shards:05d}")
                if not shard.is_file():
                    raise FileNotFoundError(f"{shard}: missing data shard of {prefix}")
                shards[entry.shard_id] = (shard, shard.stat().st_size)
            shard, shard_size = shards[entry.shard_id]
            arrays[weight] = _read_tensor(entry, shard, shard_size, big_endian)
        layers.append(StoredLayer(name=layer, weights=arrays))

    order: dict[str, int] = {}
    meta = Path(f"{prefix}.meta")
    if meta.is_file():
        try:
            for name in _meta_variable_order(meta):
                split = _split_variable(name)
                if split is not None:
                    order.setdefault(split[0], len(order))
        except FormatError as exc:
            warnings.warn(f"ignoring {meta} ({exc}); ordering layers by name", stacklevel=2)
            order = {}
    # Layers the graph does not mention go after those it does, in natural order.
    layers.sort(key=lambda s: (order.get(s.name, len(order)), _natural_key(s.name)))
    return layers
