"""Tests for reading TensorFlow 1 checkpoints (layerkit.io.tf1_checkpoint) and CRC-32C."""

from __future__ import annotations

import random
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import tf_bundle as tb

from layerkit.io import tf1_checkpoint
from layerkit.io.crc32c import crc32c, mask, unmask
from layerkit.io.keras_files import detect_format
from layerkit.io.stored import FormatError
from layerkit.io.tf1_checkpoint import read_tf1_checkpoint, resolve_checkpoint_prefix

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "keras"
PREFIX = FIXTURES / "tf1_mlp.ckpt"
SHARD_SUFFIX = ".data-00000-of-00001"
MLP_NAMES = ["hidden1", "hidden2", "hidden3", "hidden4", "hidden5", "outputs"]

needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"no fixtures at {FIXTURES}")


def _mlp_variables(rng: np.random.Generator, names: list[str]) -> dict[str, np.ndarray]:
    variables, fan_in = {}, 4
    for name in names:
        variables[f"{name}/kernel"] = rng.standard_normal((fan_in, 3)).astype(np.float32)
        variables[f"{name}/bias"] = rng.standard_normal(3).astype(np.float32)
        fan_in = 3
    return variables


def _refused(path, *words: str, exc=FormatError):
    with pytest.raises(exc) as err:
        read_tf1_checkpoint(path)
    message = str(err.value)
    assert str(path) in message
    for word in words:
        assert word in message
    return message


# --------------------------------------------------------------------------------------
# CRC-32C
# --------------------------------------------------------------------------------------


def _crc_reference(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0),
        (b"123456789", 0xE3069283),
        (bytes(32), 0x8A9136AA),  # RFC 3720 test vectors
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
    ],
)
def test_crc32c_known_values(data, expected):
    assert crc32c(data) == expected


@pytest.mark.parametrize("size", [1, 255, 4095, 4096, 4097, 10_000, 65_539, 300_001])
def test_crc32c_matches_bitwise_reference(size):
    data = random.Random(size).randbytes(size)
    expected = _crc_reference(data) if size <= 10_000 else None
    if expected is not None:
        assert crc32c(data) == expected
    cut = size // 3
    assert crc32c(data[cut:], crc32c(data[:cut])) == crc32c(data)
    assert crc32c(bytearray(data)) == crc32c(memoryview(data)) == crc32c(data)


def test_crc32c_large_matches_small_path():
    data = random.Random(7).randbytes(200_003)
    chained = 0
    for start in range(0, len(data), 4000):  # pieces small enough for the byte loop
        chained = crc32c(data[start : start + 4000], chained)
    assert crc32c(data) == chained


def test_crc32c_is_fast_enough():
    data = random.Random(0).randbytes(1_200_000)
    crc32c(data)  # warm the zero-operator cache
    start = time.perf_counter()
    crc32c(data)
    assert time.perf_counter() - start < 0.5


def test_mask_round_trip():
    for value in (0, 1, 0xFFFFFFFF, 0x12345678, 0xE3069283):
        assert unmask(mask(value)) == value
    assert mask(0) == 0xA282EAD8


# --------------------------------------------------------------------------------------
# The real TensorFlow 1 fixture
# --------------------------------------------------------------------------------------


def _copy_checkpoint(tmp_path: Path, with_meta: bool = True) -> Path:
    for suffix in (".index", SHARD_SUFFIX) + ((".meta",) if with_meta else ()):
        shutil.copyfile(f"{PREFIX}{suffix}", tmp_path / f"tf1_mlp.ckpt{suffix}")
    return tmp_path / "tf1_mlp.ckpt"


def _forward(layers, x):
    for i, layer in enumerate(layers):
        x = x @ layer.weights["kernel"] + layer.weights["bias"]
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
    return x


@needs_fixtures
@pytest.mark.parametrize("how", ["prefix", "folder", "index_file", "data_file", "str"])
def test_fixture_reproduces_tensorflow_outputs(how):
    path = {
        "prefix": PREFIX,
        "folder": FIXTURES,
        "index_file": Path(f"{PREFIX}.index"),
        "data_file": Path(f"{PREFIX}{SHARD_SUFFIX}"),
        "str": str(PREFIX),
    }[how]
    layers = read_tf1_checkpoint(path)
    assert [layer.name for layer in layers] == MLP_NAMES
    for layer in layers:
        assert list(layer.weights) == ["kernel", "bias"]
        assert layer.weights["kernel"].dtype == np.float32
        assert layer.class_name is None
    assert layers[0].weights["kernel"].shape == (784, 300)
    assert layers[-1].weights["kernel"].shape == (50, 10)
    data = np.load(FIXTURES / "tf1_mlp.io.npz")
    np.testing.assert_allclose(_forward(layers, data["x"]), data["y"], rtol=1e-4, atol=1e-5)


@needs_fixtures
def test_fixture_crc_is_stored_masked():
    _, _, entries = tf1_checkpoint._read_index(Path(f"{PREFIX}.index"))
    data = Path(f"{PREFIX}{SHARD_SUFFIX}").read_bytes()
    assert len(entries) == 12
    for entry in entries:
        crc = crc32c(data[entry.offset : entry.offset + entry.size])
        assert entry.crc == mask(crc) != crc


@needs_fixtures
def test_fixture_order_without_meta_is_natural(tmp_path):
    prefix = _copy_checkpoint(tmp_path, with_meta=False)
    assert [layer.name for layer in read_tf1_checkpoint(prefix)] == MLP_NAMES


@needs_fixtures
def test_fixture_detection():
    assert detect_format(PREFIX) == "tf1_checkpoint"
    assert detect_format(FIXTURES) == "tf1_checkpoint"


@needs_fixtures
def test_checkpoint_state_file_paths(tmp_path):
    folder = tmp_path / "run"
    (folder / "ckpts").mkdir(parents=True)
    _copy_checkpoint(folder / "ckpts")
    (folder / "checkpoint").write_text(
        'model_checkpoint_path: "ckpts/tf1_mlp.ckpt"\nall_model_checkpoint_paths: "x"\n'
    )
    assert resolve_checkpoint_prefix(folder) == folder / "ckpts" / "tf1_mlp.ckpt"
    assert [layer.name for layer in read_tf1_checkpoint(folder)] == MLP_NAMES
    # An absolute path from the machine that saved it: fall back to the name next to it.
    moved = folder / "ckpts"
    (moved / "checkpoint").write_text('model_checkpoint_path: "/home/someone/old/tf1_mlp.ckpt"\n')
    assert resolve_checkpoint_prefix(moved) == moved / "tf1_mlp.ckpt"


def test_folder_without_state_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        read_tf1_checkpoint(tmp_path)
    (tmp_path / "checkpoint").write_text("garbage\n")
    _refused(tmp_path, "model_checkpoint_path")


def test_missing_prefix(tmp_path):
    _refused(tmp_path / "nothing.ckpt", exc=FileNotFoundError)


@needs_fixtures
def test_missing_shard(tmp_path):
    prefix = _copy_checkpoint(tmp_path)
    Path(f"{prefix}{SHARD_SUFFIX}").unlink()
    _refused(prefix, SHARD_SUFFIX, exc=FileNotFoundError)


# --------------------------------------------------------------------------------------
# Synthetic checkpoints
# --------------------------------------------------------------------------------------


def test_synthetic_order_slots_and_aliases(tmp_path):
    rng = np.random.default_rng(0)
    names = ["dense"] + [f"dense_{i}" for i in range(1, 12)]
    variables = _mlp_variables(rng, names)
    for name in names:
        variables[f"{name}/kernel/Adam"] = np.zeros((1,), np.float32)
        variables[f"{name}/kernel/Adam_1"] = np.zeros((1,), np.float32)
        variables[f"{name}/bias/Momentum"] = np.zeros((1,), np.float32)
    variables["beta1_power"] = np.zeros((), np.float32)
    variables["beta2_power"] = np.zeros((), np.float32)
    variables["global_step"] = np.zeros((), np.int64)
    variables["fc/weights"] = rng.standard_normal((3, 2)).astype(np.float32)
    variables["fc/biases"] = rng.standard_normal(2).astype(np.float64)
    variables["training/Adam/fc/weights/m"] = np.zeros((3, 2), np.float32)
    variables["bn/moving_variance"] = np.ones(3, np.float32)
    variables["bn/gamma"] = np.ones(3, np.float32)
    variables["bn/beta"] = np.zeros(3, np.float32)
    variables["bn/moving_mean"] = np.zeros(3, np.float32)
    prefix = tmp_path / "model.ckpt"
    blocks = tb.write_checkpoint(prefix, variables)
    assert len(blocks) > 5  # several data blocks, prefix-compressed keys, restarts

    layers = read_tf1_checkpoint(prefix)
    assert [layer.name for layer in layers] == ["bn", *names, "fc"]
    by_name = {layer.name: layer for layer in layers}
    assert list(by_name["bn"].weights) == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert list(by_name["fc"].weights) == ["kernel", "bias"]
    assert by_name["fc"].weights["bias"].dtype == np.float64
    for name in names:
        assert list(by_name[name].weights) == ["kernel", "bias"]
        np.testing.assert_array_equal(by_name[name].weights["kernel"], variables[f"{name}/kernel"])


def test_synthetic_big_endian(tmp_path):
    variables = _mlp_variables(np.random.default_rng(1), ["a"])
    prefix = tmp_path / "be.ckpt"
    tb.write_checkpoint(prefix, variables, big_endian=True)
    (layer,) = read_tf1_checkpoint(prefix)
    assert layer.weights["kernel"].dtype == np.float32
    assert layer.weights["kernel"].dtype.isnative
    np.testing.assert_array_equal(layer.weights["kernel"], variables["a/kernel"])


def test_string_variables_are_skipped(tmp_path):
    variables = _mlp_variables(np.random.default_rng(2), ["a"])
    prefix = tmp_path / "s.ckpt"
    graph = (b"_CHECKPOINTABLE_OBJECT_GRAPH", tb.bundle_entry(7, (), 0, 3, 0))
    path_var = (b"a/name", tb.bundle_entry(7, (), 0, 3, 0))
    tb.write_checkpoint(prefix, variables, extra_entries=[graph, path_var])
    (layer,) = read_tf1_checkpoint(prefix)
    assert list(layer.weights) == ["kernel", "bias"]


def test_tf2_object_checkpoint_names(tmp_path):
    rng = np.random.default_rng(3)
    suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
    variables = {
        f"layer_with_weights-{i}/{w}{suffix}": rng.standard_normal(s).astype(np.float32)
        for i in range(11)
        for w, s in (("kernel", (2, 2)), ("bias", (2,)))
    }
    variables[f"layer_with_weights-0/kernel/.OPTIMIZER_SLOT/optimizer/m{suffix}"] = np.zeros(
        1, np.float32
    )
    variables[f"optimizer/iter{suffix}"] = np.zeros((), np.int64)
    variables[f"save_counter{suffix}"] = np.zeros((), np.int64)
    prefix = tmp_path / "tf2.ckpt"
    tb.write_checkpoint(prefix, variables)
    layers = read_tf1_checkpoint(prefix)
    assert [layer.name for layer in layers] == [f"layer_with_weights-{i}" for i in range(11)]


def test_unreadable_meta_falls_back_to_names(tmp_path):
    variables = _mlp_variables(np.random.default_rng(4), ["b", "a"])
    prefix = tmp_path / "m.ckpt"
    tb.write_checkpoint(prefix, variables)
    Path(f"{prefix}.meta").write_bytes(b"\x12\xff\xff\xff\xff\x0f")  # field 2 length past the end
    with pytest.warns(UserWarning, match="ordering layers by name"):
        layers = read_tf1_checkpoint(prefix)
    assert [layer.name for layer in layers] == ["a", "b"]


def test_meta_graph_order_is_used(tmp_path):
    variables = _mlp_variables(np.random.default_rng(5), ["zeta", "alpha"])
    prefix = tmp_path / "g.ckpt"
    tb.write_checkpoint(prefix, variables)
    nodes = b""
    for name, op in [
        ("zeta/kernel", "VariableV2"),
        ("zeta/MatMul", "MatMul"),
        ("alpha/kernel", "VarHandleOp"),
    ]:
        nodes += tb.pb_bytes(1, tb.pb_bytes(1, name.encode()) + tb.pb_bytes(2, op.encode()))
    Path(f"{prefix}.meta").write_bytes(tb.pb_bytes(2, nodes))
    assert [layer.name for layer in read_tf1_checkpoint(prefix)] == ["zeta", "alpha"]


# --------------------------------------------------------------------------------------
# Hostile checkpoints
# --------------------------------------------------------------------------------------


@needs_fixtures
def test_corrupted_index_byte(tmp_path):
    prefix = _copy_checkpoint(tmp_path)
    index = Path(f"{prefix}.index")
    data = bytearray(index.read_bytes())
    data[data.find(b"hidden1/bias") + 3] ^= 0x01
    index.write_bytes(bytes(data))
    _refused(prefix, "checksum")


@needs_fixtures
def test_corrupted_tensor_byte(tmp_path):
    prefix = _copy_checkpoint(tmp_path)
    shard = Path(f"{prefix}{SHARD_SUFFIX}")
    data = bytearray(shard.read_bytes())
    data[5000] ^= 0x40  # inside hidden1/kernel (bias is the first 1200 bytes)
    shard.write_bytes(bytes(data))
    message = _refused(prefix, "'hidden1/kernel'", "crc32c mismatch")
    assert str(shard) in message


@needs_fixtures
def test_truncated_data_shard(tmp_path):
    prefix = _copy_checkpoint(tmp_path)
    shard = Path(f"{prefix}{SHARD_SUFFIX}")
    shard.write_bytes(shard.read_bytes()[:500_000])
    _refused(prefix, "'hidden1/kernel'", "truncated")


@needs_fixtures
def test_footer_handle_past_the_end(tmp_path):
    prefix = _copy_checkpoint(tmp_path)
    index = Path(f"{prefix}.index")
    data = index.read_bytes()
    footer = (tb.varint(0) + tb.varint(0) + tb.varint(len(data) * 4) + tb.varint(15)).ljust(
        40, b"\0"
    )
    index.write_bytes(data[:-48] + footer + data[-8:])
    _refused(prefix, "past the end")


def test_data_block_handle_past_the_end(tmp_path):
    prefix = tmp_path / "h.ckpt"
    tb.write_checkpoint(
        prefix,
        _mlp_variables(np.random.default_rng(6), ["a"]),
        extra_handles=[(b"zzz", 1 << 40, 10)],
    )
    _refused(prefix, "past the end")


def test_overlapping_data_blocks(tmp_path):
    prefix = tmp_path / "o.ckpt"
    tb.write_checkpoint(
        prefix, _mlp_variables(np.random.default_rng(6), ["a"]), extra_handles=[(b"zzz", 0, 10)]
    )
    _refused(prefix, "overlap")


@needs_fixtures
def test_compressed_block_is_refused(tmp_path):
    prefix = _copy_checkpoint(tmp_path)
    index = Path(f"{prefix}.index")
    data = bytearray(index.read_bytes())
    # The index block is described by the footer; rewrite its type byte and its CRC.
    footer = memoryview(bytes(data[-48:]))
    pos = 0
    values = []
    for _ in range(4):
        value, pos = tf1_checkpoint._varint(footer, pos, 40, "f", "f")
        values.append(value)
    offset, size = values[2], values[3]
    block = bytes(data[offset : offset + size])
    data[offset + size : offset + size + 5] = tb.trailer(block, kind=1)
    index.write_bytes(bytes(data))
    _refused(prefix, "compressed")


@pytest.mark.parametrize(
    "content", [b"", b"short", bytes(100), b"x" * 40 + (0xDB4775248B80FB57).to_bytes(8, "little")]
)
def test_not_a_table(tmp_path, content):
    prefix = tmp_path / "bad.ckpt"
    Path(f"{prefix}.index").write_bytes(content)
    _refused(prefix)


@pytest.mark.parametrize(
    ("entry", "word"),
    [
        (tb.bundle_entry(1, (1 << 20, 1 << 20), 0, 4, 0), "absurd shape"),
        (tb.bundle_entry(1, (3,), 0, 4, 0), "do not hold"),
        (tb.bundle_entry(1, (1,), 1 << 50, 4, 0), "truncated"),
        (tb.bundle_entry(1, (1,), -8, 4, 0), "truncated"),
        (tb.bundle_entry(1, (-1,), 0, 4, 0), "negative dimension"),
        (tb.bundle_entry(14, (1,), 0, 2, 0), "unsupported TensorFlow dtype"),
        (tb.bundle_entry(1, (1,), 0, 4, 0, shard=5), "shard 5"),
        (tb.bundle_entry(1, (1,), 0, 4, 0) + tb.pb_bytes(7, b""), "partitioned"),
        (b"\x08" + b"\x80" * 11, "varint"),
        (b"\x0b", "wire type"),
        (b"\x12\x50", "past its message"),
    ],
)
def test_hostile_entries(tmp_path, entry, word):
    prefix = tmp_path / "e.ckpt"
    tb.write_checkpoint(
        prefix, {"x/kernel": np.zeros((1,), np.float32)}, extra_entries=[(b"x/bias", entry)]
    )
    message = _refused(prefix, word)
    assert "x/bias" in message


@pytest.mark.parametrize(
    "header", [tb.pb_int(1, 0), tb.pb_int(1, 10**9), tb.pb_int(1, 1) + tb.pb_int(2, 7), b"\xff"]
)
def test_hostile_header(tmp_path, header):
    prefix = tmp_path / "hd.ckpt"
    tb.write_checkpoint(prefix, {"x/kernel": np.zeros((1,), np.float32)}, header=header)
    _refused(prefix, "header")


def test_hostile_blocks(tmp_path):
    prefix = tmp_path / "b.ckpt"
    index = Path(f"{prefix}.index")
    # Keys out of order.
    table, _ = tb.table([(b"b", b""), (b"a", b"")])
    index.write_bytes(table)
    _refused(prefix, "strictly increasing")
    # A restart count larger than the block.
    block = b"\x00\x01\x00a" + (10**6).to_bytes(4, "little")
    body = block + tb.trailer(block)
    idx = tb.block([(b"a", tb.varint(0) + tb.varint(len(block)))])
    idx_handle = tb.varint(len(body)) + tb.varint(len(idx))
    index.write_bytes(
        body
        + idx
        + tb.trailer(idx)
        + (tb.varint(0) + tb.varint(0) + idx_handle).ljust(40, b"\0")
        + (0xDB4775248B80FB57).to_bytes(8, "little")
    )
    _refused(prefix, "restart")


def test_fuzzed_index_only_raises_format_errors(tmp_path):
    """Random byte changes, with block CRCs made valid again, must give FormatError or data."""
    variables = _mlp_variables(np.random.default_rng(7), ["a", "b", "c"])
    prefix = tmp_path / "f.ckpt"
    blocks = tb.write_checkpoint(prefix, variables)
    index = Path(f"{prefix}.index")
    pristine = index.read_bytes()
    rng = random.Random(1234)
    outcomes = {"ok": 0, "refused": 0}
    messages: list[str] = []
    for _ in range(300):
        data = bytearray(pristine)
        offset, size = rng.choice(blocks)
        for _ in range(rng.randint(1, 3)):
            data[offset + rng.randrange(size)] = rng.randrange(256)
        data[offset + size : offset + size + 5] = tb.trailer(bytes(data[offset : offset + size]))
        index.write_bytes(bytes(data))
        try:
            read_tf1_checkpoint(prefix)
            outcomes["ok"] += 1
        except FormatError as exc:
            messages.append(str(exc))
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0
    assert all(str(prefix) in message for message in messages)
