"""CRC-32C (Castagnoli), as used by LevelDB tables and TensorFlow checkpoints.

Pure Python plus numpy, so reading a checkpoint needs no compiled extension.
Small inputs go through a table-driven byte loop; large ones are split into
equal lanes whose CRCs numpy computes side by side, then joined with the
"append n zero bytes" operator (CRC is linear over GF(2)). A megabyte takes a
few tens of milliseconds instead of a fraction of a second.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["crc32c", "mask", "unmask"]

_POLY = 0x82F63B78  # reflected Castagnoli polynomial
_MASK_DELTA = 0xA282EAD8  # LevelDB/TensorFlow "masked CRC" constant
# Below this size the plain byte loop beats the numpy set-up cost.
_NUMPY_THRESHOLD = 4096


def _make_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _make_table()
_TABLE_NP = np.array(_TABLE, dtype=np.uint32)


def _update_bytes(reg: int, data: bytes | memoryview) -> int:
    """Advance the raw register (no pre/post inversion) over ``data``, one byte at a time."""
    table = _TABLE
    for b in bytes(data):
        reg = table[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


@functools.lru_cache(maxsize=32)
def _zeros_operator(n: int) -> tuple[np.ndarray, ...]:
    """Tables for the linear map "advance the register over ``n`` zero bytes".

    Returns four 256-entry tables ``t[k]`` such that the map applied to ``reg``
    is ``t[0][reg & 255] ^ t[1][(reg >> 8) & 255] ^ ...`` (the map is linear,
    so it distributes over the bytes of ``reg``).
    """
    values = np.arange(256, dtype=np.uint32)
    regs = np.concatenate([values << np.uint32(8 * k) for k in range(4)])
    for _ in range(n):
        regs = _TABLE_NP[regs & np.uint32(0xFF)] ^ (regs >> np.uint32(8))
    return tuple(regs[256 * k : 256 * (k + 1)] for k in range(4))


def _update_numpy(reg: int, data: memoryview) -> int:
    """Advance the raw register over a large buffer using numpy lanes."""
    n = len(data)
    lane = max(256, int(n**0.5))  # ~sqrt(n) lanes of ~sqrt(n) bytes balances the two loops
    lanes = n // lane
    body = np.frombuffer(data, dtype=np.uint8, count=lanes * lane).reshape(lanes, lane)
    regs = np.zeros(lanes, dtype=np.uint32)
    regs[0] = reg  # only the first lane carries the incoming register
    for j in range(lane):
        regs = _TABLE_NP[(regs ^ body[:, j]) & np.uint32(0xFF)] ^ (regs >> np.uint32(8))
    t0, t1, t2, t3 = (t.tolist() for t in _zeros_operator(lane))
    out = 0
    for r in regs.tolist():
        # crc(A || B) = zeros_{len(B)}(crc(A)) ^ crc_from_zero(B)
        out = t0[out & 0xFF] ^ t1[(out >> 8) & 0xFF] ^ t2[(out >> 16) & 0xFF] ^ t3[out >> 24] ^ r
    return _update_bytes(out, data[lanes * lane :])


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Return the CRC-32C of ``data``.

    Args:
        data: the bytes to checksum.
        crc: a previous result, to continue a checksum over several pieces.

    Returns:
        The checksum as an unsigned 32-bit integer.

    Example:
        >>> hex(crc32c(b"123456789"))
        '0xe3069283'
    """
    view = memoryview(data).cast("B")
    reg = crc ^ 0xFFFFFFFF
    if len(view) < _NUMPY_THRESHOLD:
        reg = _update_bytes(reg, view)
    else:
        reg = _update_numpy(reg, view)
    return reg ^ 0xFFFFFFFF


def mask(crc: int) -> int:
    """Mask a CRC as LevelDB and TensorFlow store it (so CRCs of CRCs stay useful)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    """Invert :func:`mask`."""
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF
