"""Read PyTorch ``torch.save`` files without PyTorch, and without running code from them.

A current ``torch.save(obj, "m.pt")`` writes a zip archive (stored, not compressed)::

    <archive>/data.pkl          the object, serialised; tensors refer to their storages
    <archive>/data/<key>        one raw storage per key, in the byte order below
    <archive>/byteorder         "little" or "big" (absent in old files: little)
    <archive>/version, ...      bookkeeping, ignored

``data.pkl`` is a program for Python's object-serialisation stack machine, which can call
any importable function: a hostile file can run ``os.system``. It is therefore never given
to Python's own loader. :class:`_Unserialiser` below is a separate, small machine that knows
only the opcodes a state dict needs and resolves only the globals a state dict names, each
to a harmless stand-in (in the spirit of ``torch.load(weights_only=True)``):

- ``collections.OrderedDict`` (the state dict and its ``_metadata``),
- ``torch._utils._rebuild_tensor_v2`` and ``_rebuild_parameter`` (a tensor: storage,
  offset, size, stride),
- ``torch.<Type>Storage`` (the element type of a storage),
- and plain containers and scalars (dict, list, tuple, str, bytes, int, float, bool, None).

Anything else (another global, building an object, an extension code) is refused with
:class:`FormatError` naming it. The machine's work is bounded: ``data.pkl`` is at most
:data:`MAX_PICKLE_BYTES` and it may create at most :data:`MAX_OBJECTS` objects. Each
tensor's storage size, element type, offset, sizes and strides are checked against the
archive before a byte of it is copied.

The legacy format (``_use_new_zipfile_serialization=False``, the only one before torch 1.6)
is refused with advice to re-save it.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import struct
import zipfile
import zlib
from typing import Any

import numpy as np

from .stored import FormatError, StoredLayer

__all__ = [
    "MAX_OBJECTS",
    "MAX_PICKLE_BYTES",
    "is_legacy_torch_file",
    "is_torch_archive",
    "read_state_dict",
    "read_torch",
    "stored_layers",
]

PathLike = str | os.PathLike

MAX_PICKLE_BYTES = 64 << 20  # a state dict of 10,000 tensors needs about 1 MiB
MAX_OBJECTS = 1 << 19  # about 15 per tensor; bounds the memory a hostile program takes
_MAX_MEMBERS = 1 << 20
_COPY_FACTOR = 4  # the tensors' bytes may reach this many times the archive's size
_MAX_DIMS = 32
# The first object of a legacy torch.save file: protocol 2, the magic number as LONG1.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

# torch.<Name>Storage -> little-endian element type; "bfloat16" has no numpy type and is
# widened to float32 on reading (exactly: a bfloat16 is the top half of a float32).
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}

# State dict entries that are bookkeeping, not weights (BatchNorm's step counter).
_NOT_WEIGHTS = frozenset({"num_batches_tracked"})
# Keys under which training scripts nest the model's state dict, most likely first.
_NESTING_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network")


def _fail(path: PathLike, obj: str, message: str) -> FormatError:
    return FormatError(f"{os.fspath(path)}: {obj}: {message}")


# --------------------------------------------------------------------------------------
# The restricted machine
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _StorageType:
    name: str  # e.g. "FloatStorage"


@dataclasses.dataclass(frozen=True)
class _Storage:
    key: str
    type_name: str
    numel: int


@dataclasses.dataclass(frozen=True, eq=False)
class Tensor:
    """A tensor as the file describes it; its bytes are read (and checked) later."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


class _Mapping(dict):
    """What ``collections.OrderedDict`` gives: a dict (ordered) that may carry the
    ``_metadata`` attribute PyTorch attaches to a state dict (module versions)."""

    __slots__ = ("metadata",)


class _Global:
    """A resolved global: a stand-in called by REDUCE, or a storage type."""

    def __init__(self, name: str, call=None, value=None) -> None:
        self.name, self.call, self.value = name, call, value


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _int_tuple(x: Any) -> bool:
    return isinstance(x, tuple) and all(_is_int(v) for v in x)


def _new_mapping(*args):
    if args:
        raise TypeError("OrderedDict(...) with arguments")
    return _Mapping()


def _rebuild_tensor(storage, offset, size, stride, requires_grad, hooks, metadata=None):
    if not isinstance(storage, _Storage):
        raise TypeError("its storage is not a storage reference")
    if not (_is_int(offset) and _int_tuple(size) and _int_tuple(stride)):
        raise TypeError("offset, size and stride must be integers")
    if not isinstance(requires_grad, bool):
        raise TypeError("requires_grad must be a bool")
    # Backward hooks are code; a saved tensor has none (torch refuses them too).
    if not isinstance(hooks, dict) or hooks:
        raise TypeError("a tensor with backward hooks")
    return Tensor(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad, hooks, *state):
    if not isinstance(data, Tensor) or not isinstance(requires_grad, bool):
        raise TypeError("a Parameter that does not wrap a tensor")
    if not isinstance(hooks, dict) or hooks or state:
        raise TypeError("a Parameter with hooks or extra state")
    return data


_GLOBALS: dict[str, _Global] = {
    "collections.OrderedDict": _Global("collections.OrderedDict", call=_new_mapping),
    "torch._utils._rebuild_tensor_v2": _Global("_rebuild_tensor_v2", call=_rebuild_tensor),
    "torch._utils._rebuild_parameter": _Global("_rebuild_parameter", call=_rebuild_parameter),
    **{f"torch.{n}": _Global(f"torch.{n}", value=_StorageType(n)) for n in _STORAGE_DTYPES},
}

# Opcodes refused by name (everything not handled is refused; these get a clearer word).
_REFUSED_OPCODES = {
    b"\x81": "NEWOBJ",
    b"\x92": "NEWOBJ_EX",
    b"o": "OBJ",
    b"i": "INST",
    b"\x82": "EXT1",
    b"\x83": "EXT2",
    b"\x84": "EXT4",
    b"P": "PERSID",
    b"\x96": "BYTEARRAY8",
    b"\x97": "NEXT_BUFFER",
    b"\x98": "READONLY_BUFFER",
}


class _Unserialiser:
    """Runs the few opcodes of Python's serialisation format that a state dict uses.

    Protocols 2 to 5 as PyTorch writes them; no text opcodes of protocol 0 or 1 beyond
    ``GLOBAL``. Errors name the file, the member and the byte offset.
    """

    def __init__(self, data: bytes, path: PathLike, member: str) -> None:
        self.data = memoryview(data)
        self.path, self.member = path, member
        self.pos = 0
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        self.storages: dict[str, _Storage] = {}
        self.created = 0

    def fail(self, message: str) -> FormatError:
        return _fail(self.path, self.member, f"at byte {self.pos}: {message}")

    def take(self, n: int) -> memoryview:
        if n < 0 or n > len(self.data) - self.pos:
            raise self.fail("truncated (an operand runs past the end)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def line(self) -> str:
        end = bytes(self.data[self.pos : self.pos + 1024]).find(b"\n")
        if end < 0:
            raise self.fail("a GLOBAL name without an end of line (or longer than 1 KiB)")
        text = bytes(self.take(end + 1)[:-1])
        try:
            return text.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"a non-ASCII GLOBAL name {text!r:.80}") from None

    def count(self, n: int = 1) -> None:
        self.created += n
        if self.created > MAX_OBJECTS:
            raise self.fail(
                f"more than {MAX_OBJECTS} objects: not a state dict (or a hostile file)"
            )

    def push(self, value: Any) -> None:
        self.count()
        self.stack.append(value)

    def pop(self) -> Any:
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise self.fail("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise self.fail("no MARK for this opcode")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def top(self) -> Any:
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise self.fail("stack underflow")
        return self.stack[-1]

    def resolve(self, module: str, name: str) -> _Global:
        found = _GLOBALS.get(f"{module}.{name}")
        if found is None:
            raise self.fail(
                f"refused global {f'{module}.{name}'[:200]}: a weights file may only name "
                "collections.OrderedDict, torch._utils._rebuild_tensor_v2, "
                "torch._utils._rebuild_parameter and torch storage types (nothing from "
                "the file is run)"
            )
        return found

    def text(self, n: int) -> str:
        raw = bytes(self.take(n))
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise self.fail("a string that is not UTF-8") from None

    def run(self) -> Any:
        while True:
            op = bytes(self.take(1))
            if op == b".":  # STOP
                if len(self.stack) != 1 or self.marks:
                    raise self.fail("STOP with a malformed stack")
                return self.stack[0]
            self.step(op)

    def step(self, op: bytes) -> None:
        if op == b"\x80":  # PROTO
            if self.uint(1) > 5:
                raise self.fail("unknown protocol version")
        elif op == b"\x95":  # FRAME: a length hint, nothing to do
            self.take(8)
        elif op == b"(":  # MARK
            self.marks.append(len(self.stack))
        elif op == b")":
            self.push(())
        elif op == b"]":
            self.push([])
        elif op == b"}":
            self.push({})
        elif op == b"t":  # TUPLE
            self.push(tuple(self.pop_mark()))
        elif op in (b"\x85", b"\x86", b"\x87"):  # TUPLE1..3
            n = op[0] - 0x84
            items = [self.pop() for _ in range(n)][::-1]
            self.push(tuple(items))
        elif op == b"a":  # APPEND
            value = self.pop()
            self.append(self.top(), [value])
        elif op == b"e":  # APPENDS
            items = self.pop_mark()
            self.append(self.top(), items)
        elif op == b"s":  # SETITEM
            value, key = self.pop(), self.pop()
            self.setitems(self.top(), [key, value])
        elif op == b"u":  # SETITEMS
            items = self.pop_mark()
            self.setitems(self.top(), items)
        elif op in (b"q", b"r", b"\x94"):  # BINPUT, LONG_BINPUT, MEMOIZE
            index = len(self.memo) if op == b"\x94" else self.uint(1 if op == b"q" else 4)
            self.count()
            self.memo[index] = self.top()
        elif op in (b"h", b"j"):  # BINGET, LONG_BINGET
            index = self.uint(1 if op == b"h" else 4)
            if index not in self.memo:
                raise self.fail(f"memo entry {index} used before it was stored")
            self.push(self.memo[index])
        elif op == b"c":  # GLOBAL
            module = self.line()
            self.push(self.resolve(module, self.line()))
        elif op == b"\x93":  # STACK_GLOBAL
            name, module = self.pop(), self.pop()
            if not (isinstance(module, str) and isinstance(name, str)):
                raise self.fail("STACK_GLOBAL with names that are not strings")
            self.push(self.resolve(module, name))
        elif op == b"R":  # REDUCE
            self.reduce()
        elif op == b"b":  # BUILD
            state, inst = self.pop(), self.top()
            # Only PyTorch's state-dict metadata: {"_metadata": {...}} on an OrderedDict.
            if not (isinstance(inst, _Mapping) and isinstance(state, dict)):
                raise self.fail(
                    f"BUILD of a {type(inst).__name__}: only a state dict's metadata is accepted"
                )
            inst.metadata = state.get("_metadata")
        elif op == b"Q":  # BINPERSID
            self.push(self.storage(self.pop()))
        elif op == b"J":
            self.push(int.from_bytes(self.take(4), "little", signed=True))
        elif op == b"K":
            self.push(self.uint(1))
        elif op == b"M":
            self.push(self.uint(2))
        elif op == b"\x8a":  # LONG1
            self.push(int.from_bytes(self.take(self.uint(1)), "little", signed=True))
        elif op == b"N":
            self.push(None)
        elif op == b"\x88":
            self.push(True)
        elif op == b"\x89":
            self.push(False)
        elif op == b"G":  # BINFLOAT
            self.push(struct.unpack(">d", self.take(8))[0])
        elif op == b"X":  # BINUNICODE
            self.push(self.text(self.uint(4)))
        elif op == b"\x8c":  # SHORT_BINUNICODE
            self.push(self.text(self.uint(1)))
        elif op == b"\x8d":  # BINUNICODE8
            self.push(self.text(self.uint(8)))
        elif op in (b"C", b"B", b"\x8e"):  # SHORT_BINBYTES, BINBYTES, BINBYTES8
            self.push(bytes(self.take(self.uint({b"C": 1, b"B": 4, b"\x8e": 8}[op]))))
        elif op == b"0":  # POP
            self.pop()
        elif op == b"1":  # POP_MARK
            self.pop_mark()
        elif op == b"2":  # DUP
            self.push(self.top())
        else:
            name = _REFUSED_OPCODES.get(op, f"opcode {op!r}")
            raise self.fail(f"refused {name}: not used by a state dict (nothing is run)")

    def append(self, target: Any, items: list[Any]) -> None:
        if not isinstance(target, list):
            raise self.fail(f"APPEND to a {type(target).__name__}")
        self.count(len(items))
        target.extend(items)

    def setitems(self, target: Any, items: list[Any]) -> None:
        if not isinstance(target, dict) or len(items) % 2:
            raise self.fail(f"SETITEM on a {type(target).__name__}")
        self.count(len(items) // 2)
        for key, value in zip(items[::2], items[1::2]):
            if not isinstance(key, (str, int, float, bool, bytes, type(None))):
                raise self.fail(f"a dict key of type {type(key).__name__}")
            target[key] = value

    def reduce(self) -> None:
        args, func = self.pop(), self.pop()
        if not isinstance(func, _Global) or func.call is None:
            raise self.fail(f"REDUCE calls a {type(func).__name__}: only known rebuilders")
        if not isinstance(args, tuple):
            raise self.fail("REDUCE without an argument tuple")
        try:
            value = func.call(*args)
        except TypeError as error:
            raise self.fail(f"{func.name}: {error}") from None
        self.push(value)

    def storage(self, pid: Any) -> _Storage:
        if not (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] == "storage"
            and isinstance(pid[1], _Global)
            and isinstance(pid[1].value, _StorageType)
            and isinstance(pid[2], str)
            and isinstance(pid[3], str)
            and _is_int(pid[4])
        ):
            raise self.fail(
                "a persistent id that is not ('storage', type, key, location, numel) "
                f"(a {type(pid).__name__})"
            )
        _, kind, key, _, numel = pid
        if numel < 0:
            raise self.fail(f"storage {key!r:.80} with {numel} elements")
        storage = _Storage(key, kind.value.name, numel)
        known = self.storages.setdefault(key, storage)
        if known != storage:
            raise self.fail(f"storage {key!r:.80} described twice, differently")
        return known


# --------------------------------------------------------------------------------------
# The archive
# --------------------------------------------------------------------------------------


def is_legacy_torch_file(path: PathLike) -> bool:
    """Whether ``path`` starts as a legacy (pre-zip) ``torch.save`` file does."""
    with open(path, "rb") as f:
        return f.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC


def _archive_prefix(names: list[str]) -> str | None:
    """``"<archive>/"`` if the names are those of a torch.save archive, else None."""
    if not names:
        return None
    top = names[0].split("/", 1)[0]
    return f"{top}/" if f"{top}/data.pkl" in names else None


def is_torch_archive(zf: zipfile.ZipFile) -> bool:
    """Whether an open zip archive is a ``torch.save`` file (``<archive>/data.pkl``)."""
    return _archive_prefix(zf.namelist()) is not None


def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: PathLike, limit: int) -> bytes:
    if info.compress_type != zipfile.ZIP_STORED:
        # torch.save never compresses; a compressed member could be a decompression bomb.
        raise _fail(path, info.filename, "a compressed member (torch.save stores them plainly)")
    if info.file_size > limit:
        raise _fail(path, info.filename, f"{info.file_size} bytes, more than the {limit} allowed")
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError) as error:  # CRC or truncation
        raise _fail(path, info.filename, f"unreadable ({error}); truncated or damaged?") from None
    if len(data) != info.file_size:
        raise _fail(path, info.filename, "its size differs from the archive's directory")
    return data


def read_state_dict(path: PathLike) -> dict[str, np.ndarray]:
    """Reads the state dict of a ``torch.save`` file: ``{name: array}`` in file order.

    A checkpoint that nests the state dict (``{"model": sd, "optimizer": ..., "epoch":
    3}``) gives the nested one: under ``state_dict``, ``model_state_dict``, ``model``,
    ``module``, ``net`` or ``network``, or the only mapping of names to tensors in it.
    Only that state dict's storages are read.

    Raises:
        FormatError: the file is not a current torch.save archive, names anything but a
            state dict's globals, or a tensor does not fit its storage; the message names
            the file and the offending member, global or tensor.
    """
    path = os.fspath(path)
    archive_size = os.path.getsize(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise _fail(path, "zip archive", f"unreadable ({error}); truncated?") from None
    with zf, open(path, "rb") as raw_file:
        infos = zf.infolist()
        if len(infos) > _MAX_MEMBERS:
            raise _fail(path, "zip archive", f"{len(infos)} members")
        by_name = {info.filename: info for info in infos}
        prefix = _archive_prefix([info.filename for info in infos])
        if prefix is None:
            raise _fail(path, "data.pkl", "not a torch.save archive (no <archive>/data.pkl)")
        order = "little"
        if f"{prefix}byteorder" in by_name:
            raw = _member(zf, by_name[f"{prefix}byteorder"], path, 16)
            order = raw.decode("ascii", "replace").strip()
            if order not in ("little", "big"):
                raise _fail(path, f"{prefix}byteorder", f"unknown byte order {raw!r:.40}")
        member = f"{prefix}data.pkl"
        program = _member(zf, by_name[member], path, MAX_PICKLE_BYTES)
        machine = _Unserialiser(program, path, member)
        obj = machine.run()
        where, state = _find_state_dict(obj, path)
        arrays: dict[str, np.ndarray] = {}
        cache: dict[str, bytearray] = {}
        users = collections.Counter(t.storage.key for t in state.values())
        # Views may share a storage (tied weights), but thousands of views of one large
        # storage would make a small file fill the memory: the copies are bounded.
        budget = _COPY_FACTOR * archive_size + (1 << 20)
        for name, tensor in state.items():
            storage = tensor.storage
            budget -= math.prod(tensor.size) * _itemsize(storage.type_name)
            if budget < 0:
                raise _fail(
                    path,
                    f"tensor {where}{name!r}",
                    f"the tensors read so far claim more than {_COPY_FACTOR} times the "
                    f"archive's {archive_size} bytes (many views of the same storage?)",
                )
            if storage.key not in cache:
                info = by_name.get(f"{prefix}data/{storage.key}")
                if info is None:
                    raise _fail(
                        path, f"tensor {where}{name!r}", f"storage {storage.key!r} is missing"
                    )
                cache[storage.key] = _read_storage(raw_file, info, storage, path, archive_size)
            arrays[name] = _tensor_array(
                tensor,
                cache[storage.key],
                order,
                path,
                f"tensor {where}{name!r}",
                sole=users[storage.key] == 1,
            )
    return arrays


def _itemsize(type_name: str) -> int:
    code = _STORAGE_DTYPES[type_name]
    return 2 if code == "bfloat16" else np.dtype(code).itemsize


def _read_storage(f, info, storage: _Storage, path: PathLike, archive_size: int) -> bytearray:
    """A storage's bytes, read straight from the archive into a buffer of its own (no
    intermediate copy), and checked against the member's CRC-32."""
    expected = storage.numel * _itemsize(storage.type_name)
    if info.file_size != expected:
        raise _fail(
            path,
            info.filename,
            f"{info.file_size} bytes, but the file declares {storage.numel} elements of "
            f"{storage.type_name} ({expected} bytes)",
        )
    if info.compress_type != zipfile.ZIP_STORED:
        raise _fail(path, info.filename, "a compressed member (torch.save stores them plainly)")
    f.seek(info.header_offset)
    local = f.read(30)
    name = info.filename.encode("utf-8")
    if len(local) != 30 or local[:4] != b"PK\x03\x04" or f.read(len(name)) != name:
        raise _fail(path, info.filename, "no local header where the directory says (damaged?)")
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + name_length + extra_length
    if start + expected > archive_size:
        raise _fail(
            path,
            info.filename,
            f"{expected} bytes at {start} run past the {archive_size}-byte file",
        )
    buf = bytearray(expected)  # bounded by the archive's size just above
    f.seek(start)
    if f.readinto(buf) != expected:
        raise _fail(path, info.filename, "short read (file changed while reading?)")
    if zlib.crc32(buf) != info.CRC:
        raise _fail(path, info.filename, "CRC-32 mismatch: the storage's bytes are corrupted")
    return buf


def _strides(size: tuple[int, ...]) -> tuple[int, ...]:
    """C-order strides, in elements."""
    strides, step = [], 1
    for n in reversed(size):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def _tensor_array(
    tensor: Tensor, raw: bytearray, order: str, path: PathLike, obj: str, sole: bool = False
) -> np.ndarray:
    """The tensor as a C-ordered array of its own; ``sole``: no other tensor uses
    ``raw``, which may then become the array without a copy."""
    size, stride, offset = tensor.size, tensor.stride, tensor.offset
    numel = tensor.storage.numel
    if len(size) != len(stride) or len(size) > _MAX_DIMS:
        raise _fail(path, obj, f"size {size} and stride {stride} do not describe a tensor")
    if offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise _fail(path, obj, f"negative offset, size or stride: {offset}, {size}, {stride}")
    count = math.prod(size)
    if count:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        # Elements beyond the storage's count would need overlapping strides: a tiny
        # storage could then claim a huge tensor.
        if last >= numel or count > numel:
            raise _fail(
                path,
                obj,
                f"size {size}, stride {stride} and offset {offset} reach past its storage "
                f"{tensor.storage.key!r} of {numel} elements",
            )
    code = _STORAGE_DTYPES[tensor.storage.type_name]
    bfloat16 = code == "bfloat16"
    dtype = np.dtype("<u2" if bfloat16 else code)
    if order == "big":
        dtype = dtype.newbyteorder(">")
    flat = np.frombuffer(raw, dtype=dtype)
    if sole and not bfloat16 and dtype.isnative and count == numel and stride == _strides(size):
        return flat.reshape(size)  # the whole storage, in C order: its buffer is the array
    items = dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[offset:] if count else flat[:0],
        shape=size,
        strides=tuple(s * items for s in stride),
        writeable=False,
    )
    array = np.array(view, dtype=dtype.newbyteorder("="), order="C")
    if bfloat16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, Tensor) for v in obj.values())
    )


def _find_state_dict(obj: Any, path: PathLike) -> tuple[str, dict[str, Tensor]]:
    """``(where, state dict)``: ``obj`` itself or the state dict nested in it."""
    if _is_state_dict(obj):
        return "", obj
    if isinstance(obj, dict):
        found = {k: v for k, v in obj.items() if _is_state_dict(v)}
        for key in _NESTING_KEYS:
            if key in found:
                return f"[{key!r}] ", found[key]
        if len(found) == 1:
            key = next(iter(found))
            return f"[{key!r}] ", found[key]
        if found:
            raise _fail(
                path,
                "data.pkl",
                f"several state dicts, under {sorted(map(repr, found))}; save the one "
                "to load with torch.save(checkpoint[key], ...)",
            )
        if isinstance(obj, dict) and any(isinstance(v, Tensor) for v in obj.values()):
            bad = [repr(k) for k, v in obj.items() if not isinstance(v, Tensor)][:5]
            raise _fail(path, "data.pkl", f"a mapping of tensors with non-tensor entries {bad}")
    raise _fail(
        path,
        "data.pkl",
        f"holds a {type(obj).__name__}, not a state dict (a mapping of names to tensors, "
        "as torch.save(model.state_dict(), path) writes)",
    )


# --------------------------------------------------------------------------------------
# From PyTorch names to layers
# --------------------------------------------------------------------------------------


def stored_layers(tensors: dict[str, np.ndarray], path: PathLike) -> list[StoredLayer]:
    """Groups a state dict by module into layers, in the order of ``tensors``.

    ``fc1.weight`` belongs to layer ``fc1``, ``0.weight`` (``nn.Sequential``) to ``0``,
    ``encoder.0.weight`` to ``encoder.0``. A module holding ``running_mean`` and
    ``running_var`` is a ``BatchNormalization``: ``weight``, ``bias``, ``running_mean``,
    ``running_var`` become ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``
    (``num_batches_tracked`` is dropped). A module holding a 2-D ``weight`` and at most a
    1-D ``bias`` is a ``Linear``, that is a ``Dense``: ``kernel = weight.T`` (PyTorch
    stores ``(out, in)``, layerkit ``(in, out)``). Any other module keeps PyTorch's names,
    and loading it reports what did not fit.
    """
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, array in tensors.items():
        layer, _, weight = key.rpartition(".")
        if weight in _NOT_WEIGHTS:
            continue
        groups.setdefault(layer, {})[weight] = array
    layers = []
    for name, weights in groups.items():
        class_name, mapped = _as_layerkit(weights)
        layers.append(StoredLayer(name, mapped, class_name, origin="pytorch"))
    return layers


def _as_layerkit(weights: dict[str, np.ndarray]) -> tuple[str | None, dict[str, np.ndarray]]:
    keys = set(weights)
    if {"running_mean", "running_var"} <= keys <= {"weight", "bias", "running_mean", "running_var"}:
        names = {"weight": "gamma", "bias": "beta"}
        names.update(running_mean="moving_mean", running_var="moving_variance")
        order = ("weight", "bias", "running_mean", "running_var")
        return "BatchNormalization", {names[k]: weights[k] for k in order if k in weights}
    weight, bias = weights.get("weight"), weights.get("bias")
    if (
        weight is not None
        and weight.ndim == 2
        and keys <= {"weight", "bias"}
        and (bias is None or bias.shape == weight.shape[:1])
    ):
        mapped = {"kernel": np.ascontiguousarray(weight.T)}
        if bias is not None:
            mapped["bias"] = bias
        return "Dense", mapped
    return None, dict(weights)


def read_torch(path: PathLike) -> list[StoredLayer]:
    """The layers of a ``torch.save`` state dict file (see :func:`stored_layers`)."""
    return stored_layers(read_state_dict(path), path)
