"""A minimal writer of TensorFlow tensor bundles (``.index`` SST + ``.data-*`` shard), to
build valid and hostile TF1 checkpoints in tests without TensorFlow.

Shared by ``tests/io/test_tf1_checkpoint.py`` and the reliability suite; pytest puts this
folder on ``sys.path`` (``pythonpath`` in ``pyproject.toml``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from layerkit.io.crc32c import crc32c, mask

DTYPE_CODES = {np.dtype("f4"): 1, np.dtype("f8"): 2, np.dtype("i4"): 3, np.dtype("i8"): 9}
SST_MAGIC = 0xDB4775248B80FB57


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pb_int(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value % (1 << 64))


def pb_bytes(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


def pb_fixed32(number: int, value: int) -> bytes:
    return varint(number << 3 | 5) + value.to_bytes(4, "little")


def bundle_entry(dtype: int, shape, offset: int, size: int, crc: int, shard: int = 0) -> bytes:
    """A BundleEntryProto."""
    shape_msg = b"".join(pb_bytes(2, pb_int(1, d)) for d in shape)
    out = pb_int(1, dtype) + pb_bytes(2, shape_msg)
    if shard:
        out += pb_int(3, shard)
    if offset:
        out += pb_int(4, offset)
    return out + pb_int(5, size) + pb_fixed32(6, crc)


def block(entries: list[tuple[bytes, bytes]], restart_interval: int = 3) -> bytes:
    """An SST block with prefix-compressed keys and a restart point every few entries."""
    out, restarts, prev = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(prev), len(key)) and prev[shared] == key[shared]:
                shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value))
        out += key[shared:] + value
        prev = key
    restarts = restarts or [0]
    for r in restarts:
        out += r.to_bytes(4, "little")
    return bytes(out + len(restarts).to_bytes(4, "little"))


def trailer(data: bytes, kind: int = 0) -> bytes:
    """A block's trailer: compression kind and masked CRC32C."""
    return bytes([kind]) + mask(crc32c(data + bytes([kind]))).to_bytes(4, "little")


def table(entries, per_block: int = 4, extra_handles=()) -> tuple[bytes, list[tuple[int, int]]]:
    """An SST of ``entries``; returns the bytes and each data block's (offset, size)."""
    out, index, blocks = bytearray(), [], []
    for start in range(0, len(entries), per_block):
        chunk = entries[start : start + per_block]
        data = block(chunk)
        blocks.append((len(out), len(data)))
        index.append((chunk[-1][0], varint(len(out)) + varint(len(data))))
        out += data + trailer(data)
    for key, offset, size in extra_handles:
        index.append((key, varint(offset) + varint(size)))
    meta = block([])
    meta_handle = varint(len(out)) + varint(len(meta))
    out += meta + trailer(meta)
    index_block = block(index, restart_interval=1)
    index_handle = varint(len(out)) + varint(len(index_block))
    out += index_block + trailer(index_block)
    footer = (meta_handle + index_handle).ljust(40, b"\0")
    out += footer + SST_MAGIC.to_bytes(8, "little")
    return bytes(out), blocks


def write_checkpoint(
    prefix: Path,
    variables: dict[str, np.ndarray],
    *,
    overrides: dict[str, bytes] | None = None,
    big_endian: bool = False,
    header: bytes | None = None,
    num_shards: int = 1,
    extra_entries=(),
    extra_handles=(),
) -> list[tuple[int, int]]:
    """Writes ``prefix.index`` and ``prefix.data-00000-of-0000N`` holding ``variables``.

    ``overrides`` replaces the BundleEntryProto of some variables (to point them past the
    shard, give them absurd shapes, ...); ``header`` replaces the BundleHeaderProto.
    Returns each data block's (offset, size) in the index.
    """
    data, entries = bytearray(), []
    for name in sorted(variables):
        array = np.asarray(variables[name])
        raw = array.astype(array.dtype.newbyteorder(">" if big_endian else "<")).tobytes()
        entry = bundle_entry(
            DTYPE_CODES[array.dtype], array.shape, len(data), len(raw), mask(crc32c(raw))
        )
        entries.append((name.encode(), (overrides or {}).get(name, entry)))
        data += raw
    entries += list(extra_entries)
    if header is None:
        endian = pb_int(2, 1) if big_endian else b""
        header = pb_int(1, num_shards) + endian + pb_bytes(3, pb_int(1, 1))
    index, blocks = table(sorted([(b"", header), *entries]), extra_handles=extra_handles)
    Path(f"{prefix}.index").write_bytes(index)
    Path(f"{prefix}.data-00000-of-{num_shards:05d}").write_bytes(bytes(data))
    return blocks
