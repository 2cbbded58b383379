"""Tests for reading Keras weight files (layerkit.io.keras_files) against real fixtures."""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from layerkit.io import keras_files
from layerkit.io.keras_files import (
    detect_format,
    keras_dense_layers,
    read_keras_model_config,
    read_keras_weights,
)
from layerkit.io.stored import FormatError, StoredLayer

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "keras"

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"no fixtures at {FIXTURES}")

MLP_NAMES = ["hidden1", "hidden2", "hidden3", "hidden4", "hidden5", "outputs"]
MLP_ACTS = ["relu"] * 5 + ["linear"]
DEFAULT_NAMES = ["dense", "dense_1", "dense_2"]
DEFAULT_ACTS = ["sigmoid", "relu", "softmax"]

# file, expected format, npz with x/y, layer names, activations, class names known?
CASES = [
    ("seed_mlp.weights.h5", "keras3_weights", "seed_mlp", MLP_NAMES, MLP_ACTS, True),
    ("seed_mlp.legacy.h5", "legacy_h5", "seed_mlp", MLP_NAMES, MLP_ACTS, True),
    ("seed_mlp.keras", "keras_archive", "seed_mlp", MLP_NAMES, MLP_ACTS, True),
    (
        "default_names.weights.h5",
        "keras3_weights",
        "default_names",
        DEFAULT_NAMES,
        DEFAULT_ACTS,
        True,
    ),
    ("default_names.legacy.h5", "legacy_h5", "default_names", DEFAULT_NAMES, DEFAULT_ACTS, True),
    ("default_names.keras", "keras_archive", "default_names", DEFAULT_NAMES, DEFAULT_ACTS, True),
    ("tfkeras2_mlp.full.h5", "legacy_h5", "tfkeras2_mlp", MLP_NAMES, MLP_ACTS, True),
    ("tfkeras2_mlp.weights_only.h5", "legacy_h5", "tfkeras2_mlp", MLP_NAMES, MLP_ACTS, False),
]


def _activate(x: np.ndarray, name: str) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    assert name == "linear"
    return x


def _forward(layers: list[StoredLayer], x: np.ndarray, activations: list[str]) -> np.ndarray:
    assert len(layers) == len(activations)
    for layer, act in zip(layers, activations, strict=True):
        x = _activate(x @ layer.weights["kernel"] + layer.weights["bias"], act)
    return x


def _assert_same_layers(a: list[StoredLayer], b: list[StoredLayer]) -> None:
    assert [layer.name for layer in a] == [layer.name for layer in b]
    for la, lb in zip(a, b, strict=True):
        assert list(la.weights) == list(lb.weights)
        for key in la.weights:
            np.testing.assert_array_equal(la.weights[key], lb.weights[key])


# --------------------------------------------------------------------------------------
# Real fixtures
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("filename", "kind", "npz", "names", "acts", "known"), CASES)
def test_fixture_reproduces_keras_outputs(filename, kind, npz, names, acts, known):
    layers = read_keras_weights(FIXTURES / filename)
    assert [layer.name for layer in layers] == names
    for layer in layers:
        assert list(layer.weights) == ["kernel", "bias"]
        assert layer.weights["kernel"].dtype == np.float32
        assert layer.weights["kernel"].shape[1] == layer.weights["bias"].shape[0]
        assert layer.class_name == ("Dense" if known else None)
    data = np.load(FIXTURES / f"{npz}.io.npz")
    y = _forward(layers, data["x"].astype(np.float32), acts)
    np.testing.assert_allclose(y, data["y"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("filename", "kind"), [(c[0], c[1]) for c in CASES])
def test_detect_format_of_fixtures(filename, kind):
    assert detect_format(FIXTURES / filename) == kind
    assert detect_format(str(FIXTURES / filename)) == kind


def test_same_weights_in_every_keras_layout():
    reference = read_keras_weights(FIXTURES / "seed_mlp.weights.h5")
    for other in ("seed_mlp.legacy.h5", "seed_mlp.keras"):
        _assert_same_layers(reference, read_keras_weights(FIXTURES / other))
    tf2 = read_keras_weights(FIXTURES / "tfkeras2_mlp.full.h5")
    _assert_same_layers(tf2, read_keras_weights(FIXTURES / "tfkeras2_mlp.weights_only.h5"))


def test_weights_are_writable_copies():
    layers = read_keras_weights(FIXTURES / "default_names.keras")
    kernel = layers[0].weights["kernel"]
    assert kernel.flags.writeable
    kernel[...] = 0  # must not fail or touch the file


@pytest.mark.parametrize(
    ("filename", "suffix", "kind"),
    [
        ("seed_mlp.weights.h5", "model.keras", "keras3_weights"),
        ("default_names.keras", "weights.h5", "keras_archive"),
        ("tfkeras2_mlp.full.h5", "archive.zip", "legacy_h5"),
        ("default_names.legacy.h5", "no_suffix", "legacy_h5"),
    ],
)
def test_detection_is_by_content_not_suffix(tmp_path, filename, suffix, kind):
    target = tmp_path / suffix
    shutil.copyfile(FIXTURES / filename, target)
    assert detect_format(target) == kind
    assert len(read_keras_weights(target)) > 0


def test_detect_layerkit_file(tmp_path):
    path = tmp_path / "mine.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "layerkit"
        f.create_dataset("layers/dense/kernel", data=np.zeros((2, 2), np.float32))
    assert detect_format(path) == "layerkit"
    with pytest.raises(FormatError, match="layerkit") as err:
        read_keras_weights(path)
    assert str(path) in str(err.value)


def test_detect_tf1_checkpoint():
    assert detect_format(FIXTURES / "tf1_mlp.ckpt") == "tf1_checkpoint"
    assert detect_format(FIXTURES) == "tf1_checkpoint"
    assert detect_format(FIXTURES / "tf1_mlp.ckpt.index") == "tf1_checkpoint"


def test_missing_path_raises_file_not_found(tmp_path):
    missing = tmp_path / "nope.weights.h5"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        detect_format(missing)
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        read_keras_weights(missing)


@pytest.mark.parametrize("content", [b"", b"hello, not weights\n" * 10, b"\x89HDF\r\n\x1a\n"])
def test_other_files_are_refused(tmp_path, content):
    path = tmp_path / "model.h5"
    path.write_bytes(content)
    with pytest.raises(FormatError) as err:
        detect_format(path)
    assert str(path) in str(err.value)


def test_folder_without_checkpoint_is_refused(tmp_path):
    with pytest.raises(FormatError) as err:
        detect_format(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_hdf5_without_keras_layout_is_refused(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(3))
    with pytest.raises(FormatError) as err:
        read_keras_weights(path)
    assert str(path) in str(err.value)


def test_zip_without_weights_is_refused(tmp_path):
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(FormatError, match=r"model\.weights\.h5") as err:
        detect_format(path)
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------------------
# Legacy attribute layout
# --------------------------------------------------------------------------------------


def test_legacy_split_attributes(tmp_path):
    """Keras splits long name lists into ``layer_names0``, ``layer_names1``, ..."""
    path = tmp_path / "split.h5"
    shutil.copyfile(FIXTURES / "tfkeras2_mlp.weights_only.h5", path)
    with h5py.File(path, "r+") as f:
        names = list(f.attrs["layer_names"])
        del f.attrs["layer_names"]
        f.attrs["layer_names0"] = np.array(names[:2], dtype="S")
        f.attrs["layer_names1"] = np.array(names[2:5], dtype="S")
        f.attrs["layer_names2"] = np.array(names[5:], dtype="S")
        weight_names = list(f["hidden3"].attrs["weight_names"])
        del f["hidden3"].attrs["weight_names"]
        f["hidden3"].attrs["weight_names0"] = np.array(weight_names[:1], dtype="S")
        f["hidden3"].attrs["weight_names1"] = np.array(weight_names[1:], dtype="S")
    assert detect_format(path) == "legacy_h5"
    _assert_same_layers(
        read_keras_weights(FIXTURES / "tfkeras2_mlp.weights_only.h5"), read_keras_weights(path)
    )


def test_legacy_str_names_and_dataset_paths_from_attributes(tmp_path):
    """Names may be str or bytes; datasets are wherever weight_names says, not guessed."""
    path = tmp_path / "moved.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = ["a", "skipped", "b"]  # stored as variable-length str
        f.attrs["backend"] = "tensorflow"
        a = f.create_group("a")
        a.attrs["weight_names"] = [b"deep/er/kernel:0", b"x/bias:0"]
        a["deep/er/kernel:0"] = np.ones((2, 3), np.float32)
        a["x/bias:0"] = np.full(3, 2.0, np.float32)
        a["kernel:0"] = np.zeros((2, 3), np.float32)  # a decoy a guesser would pick
        s = f.create_group("skipped")
        s.attrs["weight_names"] = np.array([], dtype=np.float64)  # how Keras writes none
        b = f.create_group("b")
        b.attrs["weight_names"] = ["b/kernel:0"]
        b["b/kernel:0"] = np.ones((3, 1), np.float64)
    layers = read_keras_weights(path)
    assert [layer.name for layer in layers] == ["a", "b"]
    assert list(layers[0].weights) == ["kernel", "bias"]
    np.testing.assert_array_equal(layers[0].weights["kernel"], np.ones((2, 3)))
    assert layers[1].weights["kernel"].dtype == np.float64


def test_legacy_missing_listed_weight_is_refused(tmp_path):
    path = tmp_path / "missing.h5"
    shutil.copyfile(FIXTURES / "tfkeras2_mlp.weights_only.h5", path)
    with h5py.File(path, "r+") as f:
        del f["hidden2/hidden2/bias:0"]
    with pytest.raises(FormatError, match="hidden2") as err:
        read_keras_weights(path)
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------------------
# Keras 3 order and naming
# --------------------------------------------------------------------------------------


def _write_keras3(f: h5py.File, keys: list[str], *, names: bool = True) -> None:
    """Write Dense-like layer groups in the given (creation) order."""
    for i, key in enumerate(keys):
        group = f.create_group(f"layers/{key}/vars")
        if names:
            group.attrs["name"] = f"layer_{key}"
        group["0"] = np.full((2, 2), i, np.float32)
        if not key.startswith("nobias"):
            group["1"] = np.full((2,), i, np.float32)
    f.create_group("vars")


def test_keras3_numeric_suffix_order(tmp_path):
    path = tmp_path / "many.weights.h5"
    keys = ["dense"] + [f"dense_{i}" for i in range(1, 12)]
    with h5py.File(path, "w") as f:
        _write_keras3(f, keys)
        assert list(f["layers"])[:4] == ["dense", "dense_1", "dense_10", "dense_11"]
    layers = read_keras_weights(path)
    assert [layer.name for layer in layers] == [f"layer_{k}" for k in keys]
    assert [int(layer.weights["kernel"][0, 0]) for layer in layers] == list(range(12))


def test_keras3_suffix_order_wins_over_write_order(tmp_path):
    path = tmp_path / "scrambled.weights.h5"
    with h5py.File(path, "w") as f:
        _write_keras3(f, ["dense_2", "dense", "dense_1"], names=False)
    layers = read_keras_weights(path)
    assert [layer.name for layer in layers] == ["dense", "dense_1", "dense_2"]


def test_keras3_mixed_classes_follow_write_order(tmp_path):
    """Per-class counters cannot order classes; Keras writes layers in model order."""
    path = tmp_path / "mixed.weights.h5"
    keys = ["dense", "layer_normalization", "dense_1", "batch_normalization", "dense_2"]
    with h5py.File(path, "w") as f:
        _write_keras3(f, keys, names=False)
    layers = read_keras_weights(path)
    assert [layer.name for layer in layers] == keys
    assert layers[1].class_name == "LayerNormalization"
    assert list(layers[1].weights) == ["gamma", "beta"]


def test_keras3_dense_without_bias_and_unknown_class(tmp_path):
    path = tmp_path / "odd.weights.h5"
    with h5py.File(path, "w") as f:
        _write_keras3(f, ["dense", "my_layer"], names=False)
        del f["layers/dense/vars/1"]
        f.create_group("layers/dropout/vars")  # a layer without weights
        f["layers/dropout/seed_generator/vars/0"] = np.array([1, 2], np.uint32)
    layers = read_keras_weights(path)
    assert [layer.name for layer in layers] == ["dense", "my_layer"]
    assert list(layers[0].weights) == ["kernel"]
    assert layers[1].class_name is None
    assert list(layers[1].weights) == ["0", "1"]


def test_keras_archive_order_comes_from_config(tmp_path):
    """Written out of model order, a .keras archive is still read in config order."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        _write_keras3(f, ["batch_normalization", "dense_1", "dense"], names=False)
        norm = f["layers/batch_normalization/vars"]
        for key in list(norm):
            del norm[key]
        for i in range(4):
            norm[str(i)] = np.full(3, i, np.float32)
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "seq",
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_shape": [None, 2], "name": "in"}},
                {"class_name": "Dense", "config": {"name": "first", "units": 2}},
                {"class_name": "BatchNormalization", "config": {"name": "norm"}},
                {"class_name": "Dense", "config": {"name": "last", "units": 2}},
            ],
        },
    }
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", buf.getvalue())
    layers = read_keras_weights(path)
    assert [layer.name for layer in layers] == ["first", "norm", "last"]
    assert [layer.class_name for layer in layers] == ["Dense", "BatchNormalization", "Dense"]
    assert list(layers[1].weights) == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert read_keras_model_config(path) == config


# --------------------------------------------------------------------------------------
# Model configs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "names", "acts", "input_dim"),
    [
        ("seed_mlp.keras", MLP_NAMES, MLP_ACTS, 784),
        ("seed_mlp.legacy.h5", MLP_NAMES, MLP_ACTS, 784),
        ("tfkeras2_mlp.full.h5", MLP_NAMES, MLP_ACTS, 784),
        ("default_names.keras", DEFAULT_NAMES, DEFAULT_ACTS, 20),
        ("default_names.legacy.h5", DEFAULT_NAMES, DEFAULT_ACTS, 20),
    ],
)
def test_model_config_of_fixtures(filename, names, acts, input_dim):
    config = read_keras_model_config(FIXTURES / filename)
    assert config["class_name"] == "Sequential"
    dense = keras_dense_layers(config)
    assert [d["name"] for d in dense] == names
    assert [d["activation"] for d in dense] == acts
    assert all(d["class_name"] == "Dense" and d["use_bias"] for d in dense)
    assert dense[0]["input_dim"] == input_dim
    weights = read_keras_weights(FIXTURES / filename)
    assert [d["units"] for d in dense] == [w.weights["bias"].shape[0] for w in weights]
    assert [d["input_dim"] for d in dense] == [w.weights["kernel"].shape[0] for w in weights]


@pytest.mark.parametrize("filename", ["seed_mlp.weights.h5", "tfkeras2_mlp.weights_only.h5"])
def test_weights_only_files_have_no_config(filename):
    with pytest.raises(FormatError) as err:
        read_keras_model_config(FIXTURES / filename)
    assert str(FIXTURES / filename) in str(err.value)


def test_dense_layers_of_tf_keras2_config_without_input_layer():
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "s",
            "layers": [
                {
                    "class_name": "Flatten",
                    "config": {"name": "f", "batch_input_shape": [None, 4, 5]},
                },
                {"class_name": "Dense", "config": {"name": "d", "units": 3, "activation": "relu"}},
                {"class_name": "Dropout", "config": {"name": "drop", "rate": 0.5}},
                {"class_name": "Activation", "config": {"name": "act", "activation": "tanh"}},
                {
                    "class_name": "Dense",
                    "config": {
                        "name": "out",
                        "units": 2,
                        "use_bias": False,
                        "activation": {"class_name": "function", "config": "softmax"},
                    },
                },
            ],
        },
    }
    layers = keras_dense_layers(config)
    assert [d["class_name"] for d in layers] == [
        "Flatten",
        "Dense",
        "Dropout",
        "Activation",
        "Dense",
    ]
    assert layers[0]["input_shape"] == (4, 5)
    assert layers[1]["input_dim"] == 20
    assert layers[2]["rate"] == 0.5
    assert layers[3]["activation"] == "tanh"
    assert layers[4]["input_dim"] == 3
    assert layers[4]["use_bias"] is False
    assert layers[4]["activation"] == "softmax"


def test_dense_layers_refuse_unsupported():
    conv = {
        "class_name": "Sequential",
        "config": {"layers": [{"class_name": "Conv2D", "config": {"name": "c1", "filters": 3}}]},
    }
    with pytest.raises(ValueError, match="Conv2D"):
        keras_dense_layers(conv)
    with pytest.raises(ValueError, match="Functional"):
        keras_dense_layers({"class_name": "Functional", "config": {"layers": []}})


# --------------------------------------------------------------------------------------
# Hostile HDF5 files
# --------------------------------------------------------------------------------------


def _copy(tmp_path: Path, name: str = "default_names.weights.h5") -> Path:
    path = tmp_path / f"hostile_{name}"
    shutil.copyfile(FIXTURES / name, path)
    return path


def _refused(path: Path, *words: str) -> FormatError:
    with pytest.raises(FormatError) as err:
        read_keras_weights(path)
    message = str(err.value)
    assert str(path) in message
    for word in words:
        assert word in message
    return err.value


def test_external_link_is_refused(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.zeros((20, 16), np.float32)
    path = _copy(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = h5py.ExternalLink(str(other), "/data")
    _refused(path, "layers/dense/vars/0", "external link")


def test_external_link_to_layer_group_is_refused(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["weight_names"] = ["kernel:0"]
        f["kernel:0"] = np.zeros((20, 16), np.float32)
    path = _copy(tmp_path, "default_names.legacy.h5")
    with h5py.File(path, "r+") as f:
        del f["model_weights/dense"]
        f["model_weights/dense"] = h5py.ExternalLink(str(other), "/")
    _refused(path, "model_weights/dense", "external link")


def test_soft_link_outside_the_layer_is_refused(tmp_path):
    path = _copy(tmp_path, "default_names.legacy.h5")
    with h5py.File(path, "r+") as f:
        del f["model_weights/dense/sequential/dense/kernel"]
        f["model_weights/dense/sequential/dense/kernel"] = h5py.SoftLink(
            "/optimizer_weights/adam/sequential_dense_kernel_momentum"
        )
    _refused(path, "model_weights/dense/sequential/dense/kernel", "soft link")


def test_soft_link_inside_the_layer_is_followed(tmp_path):
    path = _copy(tmp_path, "default_names.legacy.h5")
    with h5py.File(path, "r+") as f:
        f.move("model_weights/dense/sequential/dense/kernel", "model_weights/dense/real_kernel")
        f["model_weights/dense/sequential/dense/kernel"] = h5py.SoftLink("../../real_kernel")
    _assert_same_layers(
        read_keras_weights(FIXTURES / "default_names.legacy.h5"), read_keras_weights(path)
    )


def test_soft_link_cycle_is_refused(tmp_path):
    path = _copy(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = h5py.SoftLink("/layers/dense/vars/0")
    _refused(path, "layers/dense/vars/0")


def test_virtual_dataset_is_refused(tmp_path):
    other = tmp_path / "source.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.ones((20, 16), np.float32)
    path = _copy(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars/0"]
        layout = h5py.VirtualLayout(shape=(20, 16), dtype=np.float32)
        layout[:] = h5py.VirtualSource(str(other), "data", shape=(20, 16))
        f["layers/dense/vars"].create_virtual_dataset("0", layout)
    _refused(path, "layers/dense/vars/0", "virtual")


def test_external_storage_is_refused(tmp_path):
    raw = tmp_path / "raw.bin"
    raw.write_bytes(np.ones((20, 16), np.float32).tobytes())
    path = _copy(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars"].create_dataset(
            "0", shape=(20, 16), dtype=np.float32, external=[(str(raw), 0, 20 * 16 * 4)]
        )
    _refused(path, "layers/dense/vars/0", "external")


def test_string_dataset_is_refused(tmp_path):
    path = _copy(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars/1"]
        f["layers/dense/vars/1"] = np.array([b"not", b"a", b"weight"])
    _refused(path, "layers/dense/vars/1", "non-numeric")


def test_compound_dataset_is_refused(tmp_path):
    path = _copy(tmp_path, "tfkeras2_mlp.weights_only.h5")
    with h5py.File(path, "r+") as f:
        del f["hidden1/hidden1/bias:0"]
        f["hidden1/hidden1/bias:0"] = np.zeros(3, dtype=[("a", "f4"), ("b", "i4")])
    _refused(path, "hidden1/hidden1/bias:0", "non-numeric")


@pytest.mark.parametrize(
    ("shape", "kwargs", "word"),
    [
        ((1 << 16, 1 << 16), {}, "absurd shape"),
        ((1 << 16, 1 << 16), {"chunks": (256, 256)}, "absurd shape"),
        ((20_000, 20_000), {}, "more than the file"),
        ((20_000, 20_000), {"chunks": (1000, 1000)}, "more than the file"),
        ((20_000, 20_000), {"chunks": (1000, 1000), "compression": "gzip"}, "expands"),
    ],
)
def test_absurd_shapes_are_refused_before_reading(tmp_path, shape, kwargs, word):
    path = _copy(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars"].create_dataset("0", shape=shape, dtype=np.float32, **kwargs)
    _refused(path, "layers/dense/vars/0", word)


def test_unwritten_dataset_is_refused(tmp_path):
    path = _copy(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars"].create_dataset("0", shape=(20, 16), dtype=np.float32)
    _refused(path, "layers/dense/vars/0", "never written")


def test_nested_models_are_flattened_with_a_depth_limit(tmp_path):
    path = tmp_path / "nested.weights.h5"
    with h5py.File(path, "w") as f:
        f["layers/dense/vars/0"] = np.ones((2, 2), np.float32)
        inner = f.create_group("layers/sequential/layers/dense/vars")
        inner.attrs["name"] = "inner_dense"
        inner["0"] = np.ones((2, 2), np.float32)
        inner["1"] = np.ones(2, np.float32)
    layers = read_keras_weights(path)
    assert [layer.name for layer in layers] == ["dense", "inner_dense"]
    with h5py.File(path, "w") as f:
        f.create_group("layers/m" + "/layers/m" * 40)
    _refused(path, "nested")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_hdf5_is_refused(tmp_path, fraction):
    data = (FIXTURES / "seed_mlp.weights.h5").read_bytes()
    path = tmp_path / "truncated.weights.h5"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(FormatError) as err:
        detect_format(path)
    assert str(path) in str(err.value)
    _refused(path)


# --------------------------------------------------------------------------------------
# Hostile archives
# --------------------------------------------------------------------------------------


def _patch_declared_size(path: Path, member: str, size: int) -> None:
    """Rewrite a zip member's declared uncompressed size in both of its headers."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    local = data.find(b"PK\x03\x04")
    while local >= 0:
        name_len = int.from_bytes(data[local + 26 : local + 28], "little")
        if data[local + 30 : local + 30 + name_len] == name:
            data[local + 22 : local + 26] = size.to_bytes(4, "little")
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        name_len = int.from_bytes(data[central + 28 : central + 30], "little")
        if data[central + 46 : central + 46 + name_len] == name:
            data[central + 24 : central + 28] = size.to_bytes(4, "little")
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


def test_zip_bomb_declared_size_is_refused(tmp_path):
    path = tmp_path / "bomb.keras"
    shutil.copyfile(FIXTURES / "default_names.keras", path)
    _patch_declared_size(path, "model.weights.h5", 4_000_000_000)
    with pytest.raises(FormatError, match="compression ratio") as err:
        read_keras_weights(path)
    assert str(path) in str(err.value)


def test_highly_compressed_member_is_refused(tmp_path):
    path = tmp_path / "zeros.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("model.weights.h5", bytes(8 << 20))
    info = zipfile.ZipFile(path).getinfo("model.weights.h5")
    assert info.file_size > 1000 * info.compress_size  # deflate tops out near 1030:1
    with pytest.raises(FormatError, match="zip bomb") as err:
        read_keras_weights(path)
    assert str(path) in str(err.value)


def test_member_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(keras_files, "_MAX_MEMBER_BYTES", 1000)
    path = FIXTURES / "default_names.keras"
    with pytest.raises(FormatError, match="declared size") as err:
        read_keras_weights(path)
    assert str(path) in str(err.value)


def test_corrupt_zip_member_is_refused(tmp_path):
    data = bytearray((FIXTURES / "default_names.keras").read_bytes())
    offset = data.find(b"\x89HDF")
    data[offset + 5000] ^= 0xFF  # inside the stored model.weights.h5: its CRC no longer matches
    path = tmp_path / "corrupt.keras"
    path.write_bytes(bytes(data))
    _refused(path, "model.weights.h5")


def test_hostile_hdf5_inside_archive_is_refused(tmp_path):
    with zipfile.ZipFile(FIXTURES / "default_names.keras") as zf:
        weights = zf.read("model.weights.h5")
    inner = tmp_path / "inner.h5"
    inner.write_bytes(weights)
    with h5py.File(inner, "r+") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = h5py.ExternalLink("/etc/passwd", "/")
    path = tmp_path / "linked.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.weights.h5", inner.read_bytes())
    _refused(path, "layers/dense/vars/0", "external link")
