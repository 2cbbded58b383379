"""Hostile PyTorch files: ``torch.save`` archives whose program tries to run code, names
unknown globals or lies about its tensors, and ``.safetensors`` files whose header lies.

``model.load_weights`` and ``python -m layerkit inspect`` must refuse each with a
ValueError (``lk.io.FormatError``) naming the file and the offending object, run
nothing (a canary file stays absent), leave the model unchanged and allocate little.
The programs are written with the standard library's own serialiser here, in the test,
exactly as an attacker would; layerkit never uses it.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import layerkit as lk
from layerkit.__main__ import inspect as lk_inspect

MEMORY_LIMIT = 64 << 20
OPERATIONS = ("load_weights", "inspect")


# --------------------------------------------------------------------------------------
# Writing torch.save archives by hand
# --------------------------------------------------------------------------------------


class FakeStorage:
    def __init__(self, key: str, numel: int, kind=torch.FloatStorage):
        self.key, self.numel, self.kind = key, numel, kind


class FakeTensor:
    """Serialises as ``_rebuild_tensor_v2(storage, offset, size, stride, False, {})``."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


class _Writer(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", obj.kind, obj.key, "cpu", obj.numel)
        return None


def program(obj) -> bytes:
    buf = io.BytesIO()
    _Writer(buf, protocol=2).dump(obj)
    return buf.getvalue()


def victim_state():
    """The victim's (4 -> 3 -> 2) weights as fake tensors over two storages."""
    kernel = FakeStorage("0", 12 + 3)  # hidden1 weight then bias, in one storage
    out = FakeStorage("1", 6 + 2)
    state = collections.OrderedDict(
        [
            ("hidden1.weight", FakeTensor(kernel, 0, (3, 4), (4, 1))),
            ("hidden1.bias", FakeTensor(kernel, 12, (3,), (1,))),
            ("out.weight", FakeTensor(out, 0, (2, 3), (3, 1))),
            ("out.bias", FakeTensor(out, 6, (2,), (1,))),
        ]
    )
    storages = {
        "0": np.linspace(-1, 1, 15, dtype="<f4").tobytes(),
        "1": np.linspace(-1, 1, 8, dtype="<f4").tobytes(),
    }
    return state, storages


def write_torch(path: Path, data: bytes, storages: dict[str, bytes], compress=False) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        kind = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        zf.writestr("archive/data.pkl", data, compress_type=kind)
        zf.writestr("archive/byteorder", b"little")
        for key, raw in storages.items():
            zf.writestr(f"archive/data/{key}", raw)
        zf.writestr("archive/version", b"3\n")
    return path


def test_the_hand_written_victim_file_loads(rel, tmp_path):
    """The baseline the hostile cases modify: valid, so each refusal is the edit's doing."""
    state, storages = victim_state()
    path = write_torch(tmp_path / "victim.pt", program(state), storages)
    model = rel.small_model("mse")
    assert model.load_weights(path) == [("hidden1", "hidden1"), ("out", "out")]
    want = np.linspace(-1, 1, 15, dtype=np.float32)[:12].reshape(3, 4).T
    np.testing.assert_array_equal(model.get_layer("hidden1").kernel.value, want)


# --------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------


CANARY = Path(os.environ.get("TMPDIR", "/tmp")) / f"layerkit-canary-{os.getpid()}"


class RunsShell:
    def __reduce__(self):
        return os.system, (f"touch {CANARY}",)


class CallsEval:
    def __reduce__(self):
        return eval, ("__import__('os').system('touch " + str(CANARY) + "')",)


class Plain:  # built with NEWOBJ / BUILD by the standard serialiser
    def __init__(self):
        self.x = 1


def with_entry(key, value):
    def make():
        state, storages = victim_state()
        state[key] = value
        return program(state), storages

    return make


def tensor_case(name, storage=None, offset=0, size=(3, 4), stride=(4, 1), stored=None):
    """hidden1.weight replaced by a tensor lying about its storage."""

    def make():
        state, storages = victim_state()
        s = storage or FakeStorage("0", 15)
        state["hidden1.weight"] = FakeTensor(s, offset, size, stride)
        if stored is not None:
            storages[s.key] = stored
        return program(state), storages

    return make


def many_views():
    state, storages = victim_state()
    big = FakeStorage("big", 1 << 18)  # 1 MiB, viewed whole by 400 tensors: 400 MiB
    for i in range(400):
        state[f"view{i}.weight"] = FakeTensor(big, 0, (1 << 9, 1 << 9), (1 << 9, 1))
    storages["big"] = bytes(4 << 18)
    return program(state), storages


def deep_nesting(tail: bytes) -> bytes:
    """Lists nested 5,000 deep (a repr or a recursive walk would overflow the stack),
    then ``tail``."""
    ops = bytearray(b"\x80\x02]r\x00\x00\x00\x000")
    for i in range(1, 5000):
        ops += b"]r" + i.to_bytes(4, "little") + b"0"  # list i, kept in the memo only
        ops += b"j" + (i - 1).to_bytes(4, "little") + b"j" + i.to_bytes(4, "little") + b"a0"
    return bytes(ops + tail)


def raw_program(data: bytes):
    def make():
        return data, victim_state()[1]

    return make


def object_bomb() -> bytes:
    # A million empty lists: a few bytes each in the file, ~56 bytes each in memory.
    return b"\x80\x02]" + b"]0" * 1_000_000 + b"]."


TORCH_CASES = {
    # name: (make() -> (data.pkl, storages), texts the message must contain)
    "__reduce__ calling os.system": (with_entry("x.weight", RunsShell()), ("posix.system",)),
    "__reduce__ calling eval": (with_entry("x.weight", CallsEval()), ("eval",)),
    "an object of an unknown class": (with_entry("x.weight", Plain()), ("Plain",)),
    "a numpy array (an unknown global)": (
        with_entry("x.weight", np.ones(3)),
        ("numpy",),
    ),
    "a storage the archive does not hold": (
        tensor_case("missing", storage=FakeStorage("9", 15)),
        ("'hidden1.weight'", "'9'"),
    ),
    "a storage declaring more elements than its bytes": (
        tensor_case("lying numel", storage=FakeStorage("2", 1 << 40), stored=bytes(48)),
        ("archive/data/2",),
    ),
    "a size past the end of its storage": (
        tensor_case("size", size=(300, 4)),
        ("'hidden1.weight'", "reach past"),
    ),
    "an offset past the end of its storage": (
        tensor_case("offset", offset=1 << 40),
        ("'hidden1.weight'",),
    ),
    "a negative offset": (tensor_case("negative", offset=-4), ("'hidden1.weight'",)),
    "a negative stride": (tensor_case("stride", stride=(-4, 1)), ("'hidden1.weight'",)),
    "2**40 elements from 15 by stride 0": (
        tensor_case("expand", size=(1 << 20, 1 << 20), stride=(0, 0)),
        ("'hidden1.weight'",),
    ),
    "size and stride of different ranks": (
        tensor_case("ranks", size=(3, 4), stride=(1,)),
        ("'hidden1.weight'",),
    ),
    "a storage of an unknown type": (
        tensor_case("type", storage=FakeStorage("0", 15, kind=torch.ComplexFloatStorage)),
        ("ComplexFloatStorage",),
    ),
    "a program cut short": (lambda: (program(victim_state()[0])[:-40], victim_state()[1]), ()),
    "a million objects": (raw_program(object_bomb()), ("objects",)),
    "400 views of a 1 MiB storage": (many_views, ("times the archive",)),
    "an extension-registry opcode": (raw_program(b"\x80\x02\x82\x01."), ("EXT1",)),
    "a persistent id nested 5,000 deep": (
        raw_program(deep_nesting(b"j\x00\x00\x00\x00Q.")),
        ("persistent id",),
    ),
    "a state dict entry nested 5,000 deep": (
        raw_program(deep_nesting(b"}X\x01\x00\x00\x00aj\x00\x00\x00\x00s.")),
        ("not a state dict",),
    ),
    "a string longer than the program": (raw_program(b"\x80\x02X\xff\xff\xff\x7fab."), ()),
    "a memo entry used before it is stored": (raw_program(b"\x80\x02h\x05."), ("memo",)),
    "not a state dict (a list)": (raw_program(b"\x80\x02]."), ("not a state dict",)),
}


def _run(rel, operation, path, model):
    calls = {
        "load_weights": lambda: model.load_weights(path),
        "inspect": lambda: lk_inspect(str(path)),
    }
    with rel.memory_guard() as memory:
        _, error = rel.attempt(f"hostile pytorch files: {operation}", calls[operation])
    return error, memory["peak"]


def _check(rel, error, path, texts, model, before, peak, case):
    assert not CANARY.exists(), f"{case}: code from the file ran"
    rel.assert_refusal(error, texts=(str(path), *texts), context=case)
    assert isinstance(error, ValueError), rel.describe(error)
    if model is not None:
        rel.assert_unchanged(model, before, f"refusing {case}")
    assert peak < MEMORY_LIMIT, f"{case}: the resident memory grew by {peak >> 20} MiB"


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("case", list(TORCH_CASES))
def test_hostile_torch_files_are_refused(rel, tmp_path, case, operation):
    make, texts = TORCH_CASES[case]
    data, storages = make()
    path = write_torch(tmp_path / "hostile.pt", data, storages)
    model = rel.small_model("mse")
    before = rel.snapshot(model)
    error, peak = _run(rel, operation, path, model)
    _check(rel, error, path, texts, model, before, peak, case)


def test_a_compressed_member_is_refused_unread(rel, tmp_path):
    state, storages = victim_state()
    path = write_torch(tmp_path / "deflated.pt", program(state), storages, compress=True)
    model = rel.small_model("mse")
    before = rel.snapshot(model)
    error, peak = _run(rel, "load_weights", path, model)
    _check(rel, error, path, ("data.pkl", "compressed"), model, before, peak, "deflated")


def test_a_truncated_archive_is_refused(rel, tmp_path):
    state, storages = victim_state()
    whole = write_torch(tmp_path / "whole.pt", program(state), storages).read_bytes()
    for cut in (len(whole) // 2, len(whole) - 10, 30):
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(whole[:cut])
        model = rel.small_model("mse")
        before = rel.snapshot(model)
        error, peak = _run(rel, "load_weights", path, model)
        _check(rel, error, path, (), model, before, peak, f"cut at {cut}")


def test_a_directory_declaring_a_huge_program_is_refused_unread(rel, tmp_path):
    state, storages = victim_state()
    path = write_torch(tmp_path / "huge.pt", program(state), storages)
    raw = bytearray(path.read_bytes())
    # The central directory entry of data.pkl: its uncompressed size field says 4 GiB.
    at = raw.rfind(b"PK\x01\x02", 0, raw.find(b"archive/data.pkl", raw.find(b"PK\x01\x02")))
    struct.pack_into("<I", raw, at + 24, 0xFFFF0000)
    path.write_bytes(bytes(raw))
    model = rel.small_model("mse")
    before = rel.snapshot(model)
    error, peak = _run(rel, "load_weights", path, model)
    _check(rel, error, path, ("data.pkl",), model, before, peak, "huge program")


# --------------------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------------------


def safetensors_bytes(header: dict | bytes, data: bytes, length: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def good_header() -> dict:
    return {
        "hidden1.weight": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]},
        "hidden1.bias": {"dtype": "F32", "shape": [3], "data_offsets": [48, 60]},
    }


DATA = np.ones(15, "<f4").tobytes()


def edited(edit):
    header = good_header()
    edit(header)
    return safetensors_bytes(header, DATA)


SAFETENSORS_CASES = {
    "a header length of 2**60": (safetensors_bytes(b"{}", DATA, length=1 << 60), ("header",)),
    "a header length past the end of the file": (
        safetensors_bytes(b'{"a": 1}', DATA, length=len(DATA) + 9),
        ("header",),
    ),
    "a header of 200 MB declared": (
        safetensors_bytes(b"{", b" " * 64, length=200_000_000),
        ("header",),
    ),
    "a header that is not JSON": (safetensors_bytes(b"{nope", DATA), ("header",)),
    "a JSON list nested 100,000 deep": (
        safetensors_bytes(b"{" + b'"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", DATA),
        ("header",),
    ),
    "duplicate tensor names": (
        safetensors_bytes(
            b'{"hidden1.bias": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}, '
            b'"hidden1.bias": {"dtype": "F32", "shape": [3], "data_offsets": [12, 24]}}',
            DATA[:24],
        ),
        ("duplicate",),
    ),
    "offsets past the end of the data": (
        edited(lambda h: h["hidden1.bias"].update(data_offsets=[48, 1 << 40])),
        ("'hidden1.bias'",),
    ),
    "a shape larger than its bytes": (
        edited(lambda h: h["hidden1.weight"].update(shape=[1 << 30, 1 << 30])),
        ("'hidden1.weight'",),
    ),
    "overlapping tensors": (
        edited(lambda h: h["hidden1.bias"].update(data_offsets=[36, 48])),
        ("'hidden1.bias'",),
    ),
    "a gap between tensors": (
        edited(lambda h: h["hidden1.weight"].update(data_offsets=[4, 52], shape=[3, 4])),
        ("hidden1",),
    ),
    "an unknown dtype": (edited(lambda h: h["hidden1.bias"].update(dtype="F8_E4M3")), ("F8",)),
    "a negative dimension": (edited(lambda h: h["hidden1.bias"].update(shape=[-3])), ("shape",)),
    "a boolean offset": (
        edited(lambda h: h["hidden1.bias"].update(data_offsets=[True, 60])),
        ("data_offsets",),
    ),
    "an extra key in an entry": (
        edited(lambda h: h["hidden1.bias"].update(path="/etc/passwd")),
        ("'hidden1.bias'",),
    ),
    "metadata that is not strings": (
        edited(lambda h: h.update(__metadata__={"a": [1]})),
        ("__metadata__",),
    ),
}


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("case", list(SAFETENSORS_CASES))
def test_hostile_safetensors_are_refused(rel, tmp_path, case, operation):
    raw, texts = SAFETENSORS_CASES[case]
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(raw)
    model = rel.small_model("mse")
    before = rel.snapshot(model)
    error, peak = _run(rel, operation, path, model)
    _check(rel, error, path, texts, model, before, peak, case)


def test_nothing_ran():
    assert not CANARY.exists()
    lk.utils.clear_session()


def test_corrupted_storage_bytes_fail_their_checksum(rel, tmp_path):
    state, storages = victim_state()
    path = write_torch(tmp_path / "flipped.pt", program(state), storages)
    raw = bytearray(path.read_bytes())
    at = raw.find(storages["1"])  # the out layer's storage, as stored
    raw[at + 5] ^= 0x40
    path.write_bytes(bytes(raw))
    model = rel.small_model("mse")
    before = rel.snapshot(model)
    error, peak = _run(rel, "load_weights", path, model)
    _check(rel, error, path, ("archive/data/1", "CRC-32"), model, before, peak, "flipped byte")


def test_a_directory_pointing_a_storage_at_another_member_is_refused(rel, tmp_path):
    state, storages = victim_state()
    path = write_torch(tmp_path / "moved.pt", program(state), storages)
    raw = bytearray(path.read_bytes())
    # data/1's central directory entry: point its local header offset at data/0's.
    directory = raw.find(b"PK\x01\x02")
    entry_0 = raw.find(b"archive/data/0", directory) - 46
    entry_1 = raw.find(b"archive/data/1", directory) - 46
    raw[entry_1 + 42 : entry_1 + 46] = raw[entry_0 + 42 : entry_0 + 46]
    path.write_bytes(bytes(raw))
    model = rel.small_model("mse")
    before = rel.snapshot(model)
    error, peak = _run(rel, "load_weights", path, model)
    _check(rel, error, path, ("archive/data/1",), model, before, peak, "moved member")
