"""layerkit's own safetensors reader and writer against the reference ``safetensors``
package: every dtype, the header's strictness, model order, and files both ways."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import load_file as np_load_file
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import save_file as torch_save_file

import layerkit as lk
from layerkit.io import safetensors as st
from layerkit.io.stored import FormatError


def test_every_dtype_written_by_the_reference_reads_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "f64": rng.standard_normal((2, 3)),
        "f32": rng.standard_normal((3, 2)).astype(np.float32),
        "f16": rng.standard_normal(5).astype(np.float16),
        "i64": rng.integers(-(2**40), 2**40, 4),
        "i32": rng.integers(-100, 100, (2, 2)).astype(np.int32),
        "i16": np.array([-3, 7], np.int16),
        "i8": np.array([-128, 127], np.int8),
        "u8": np.array([0, 255], np.uint8),
        "u16": np.array([65535], np.uint16),
        "bool": np.array([True, False, True]),
        "scalar": np.array(3.5, np.float32),
        "empty": np.zeros((0, 4), np.float32),
    }
    path = tmp_path / "all.safetensors"
    np_save_file(arrays, str(path), metadata={"who": "test"})
    got, metadata = st.read_tensors(path)
    assert metadata == {"who": "test"}
    assert set(got) == set(arrays)
    for key, want in arrays.items():
        assert got[key].dtype == want.dtype, key
        np.testing.assert_array_equal(got[key], want, err_msg=key)


def test_bfloat16_is_widened_exactly(tmp_path):
    values = torch.tensor([1.0, -2.5, 3.140625, 1e30, -1e-30, float("inf")], dtype=torch.bfloat16)
    path = tmp_path / "bf16.safetensors"
    torch_save_file({"w.weight": values}, str(path))
    got, _ = st.read_tensors(path)
    assert got["w.weight"].dtype == np.float32
    np.testing.assert_array_equal(got["w.weight"], values.float().numpy())


def test_the_writer_is_read_by_the_reference(tmp_path):
    tensors = {
        "b": np.arange(6, dtype=np.float32).reshape(2, 3),
        "a": np.array([1, 2, 3], np.int64),
        "c": np.zeros((), np.int64),
    }
    path = tmp_path / "mine.safetensors"
    st.write(str(path), tensors, {"format": "pt"})
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    assert n % 8 == 0  # data aligned to 8 bytes, as the reference writes it
    loaded = np_load_file(str(path))
    for key, want in tensors.items():
        np.testing.assert_array_equal(loaded[key], want)
        assert loaded[key].dtype == want.dtype
    with safe_open(str(path), "np") as f:
        assert f.metadata() == {"format": "pt"}
    # Our reader keeps the writer's order (the reference sorts names).
    assert list(st.read_tensors(path)[0]) == ["b", "a", "c"]


def test_layers_come_in_natural_order_without_metadata(tmp_path):
    rng = np.random.default_rng(1)
    sizes = {"0": (4, 3), "2": (5, 4), "10": (6, 5), "4": (6, 5)}
    arrays = {}
    for name, (out, inp) in sizes.items():
        arrays[f"{name}.weight"] = rng.standard_normal((out, inp)).astype(np.float32)
        arrays[f"{name}.bias"] = rng.standard_normal(out).astype(np.float32)
    path = tmp_path / "seq.safetensors"
    np_save_file(arrays, str(path))  # the reference sorts the header: "10" before "2"
    layers = st.read_safetensors(path)
    assert [layer.name for layer in layers] == ["0", "2", "4", "10"]
    assert [layer.class_name for layer in layers] == ["Dense"] * 4
    np.testing.assert_array_equal(layers[1].weights["kernel"], arrays["2.weight"].T)
    assert list(layers[1].weights) == ["kernel", "bias"]


def test_layerkit_files_keep_layer_names_and_order(tmp_path):
    lk.utils.set_random_seed(3)
    model = lk.Sequential(
        [lk.layers.Input((3,))]
        + [lk.layers.Dense(2, activation="relu", name=f"layer{i}") for i in range(12)]
    )
    path = model.save_weights(tmp_path / "deep.safetensors")
    names = [layer.name for layer in st.read_safetensors(path)]
    assert names == [f"layer{i}" for i in range(12)]
    with safe_open(path, "np") as f:
        assert json.loads(f.metadata()["layerkit.layers"])[11] == ["22", "layer11"]


def test_an_empty_file_has_no_layers(tmp_path):
    path = tmp_path / "empty.safetensors"
    np_save_file({}, str(path))
    assert st.read_safetensors(path) == []
    model = lk.Sequential([lk.layers.Input((3,)), lk.layers.Dense(2)])
    with pytest.raises(ValueError, match="holds no layers with weights"):
        model.load_weights(path)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda raw: raw[:-1], "1 bytes"),  # a truncated last tensor
        (lambda raw: raw + b"\0" * 4, "4 bytes after the last tensor"),
        (lambda raw: raw[:7], "shorter than the 8-byte"),
    ],
    ids=["truncated", "trailing bytes", "no length"],
)
def test_files_that_do_not_add_up_are_refused(tmp_path, edit, words):
    path = tmp_path / "x.safetensors"
    np_save_file({"a.weight": np.ones((2, 2), np.float32)}, str(path))
    path.write_bytes(edit(path.read_bytes()))
    with pytest.raises(FormatError) as err:
        st.read_tensors(path)
    assert str(path) in str(err.value)
    if words != "1 bytes":
        assert words in str(err.value)
    else:
        assert "run past" in str(err.value)


def test_a_failed_save_leaves_the_previous_file(tmp_path):
    model = lk.Sequential([lk.layers.Input((3,)), lk.layers.Dense(2)])
    path = model.save_weights(tmp_path / "w.safetensors")
    before = Path(path).read_bytes()
    inputs = lk.layers.Input((3,))
    graph = lk.Model(inputs, lk.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="Sequential"):
        graph.save_weights(path)
    assert Path(path).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]
