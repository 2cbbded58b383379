"""Models from other frameworks: real Keras 3, tf.keras 2 and TensorFlow 1 files.

Every fixture is loaded into layerkit (``lk.io.load_keras`` where the file has an
architecture, a hand-built model and ``load_weights`` otherwise) and must reproduce the
outputs that Keras / TensorFlow computed. Partial restores, renaming, ``inspect`` and
the absence of any Keras / torch / TensorFlow import are checked on every format.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import layerkit as lk
from layerkit.layers import Dense, Input

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "keras"
REPO_ROOT = Path(lk.__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"no fixtures at {FIXTURES}")

MLP_NAMES = ["hidden1", "hidden2", "hidden3", "hidden4", "hidden5", "outputs"]
DEFAULT_NAMES = ["dense", "dense_1", "dense_2"]
# The same MLP (784-300-50-50-50-50-10) in every format; "tf1_folder" is the folder
# holding the TensorFlow "checkpoint" file.
MLP_FILES = {
    "seed_mlp.weights.h5": "seed_mlp",
    "seed_mlp.legacy.h5": "seed_mlp",
    "seed_mlp.keras": "seed_mlp",
    "tfkeras2_mlp.weights_only.h5": "tfkeras2_mlp",
    "tfkeras2_mlp.full.h5": "tfkeras2_mlp",
    "tf1_mlp.ckpt": "tf1_mlp",
    "tf1_folder": "tf1_mlp",
}
DEFAULT_FILES = {
    "default_names.weights.h5": "default_names",
    "default_names.legacy.h5": "default_names",
    "default_names.keras": "default_names",
}
WITH_ARCHITECTURE = [
    "seed_mlp.keras",
    "seed_mlp.legacy.h5",
    "default_names.keras",
    "default_names.legacy.h5",
    "tfkeras2_mlp.full.h5",
]
WEIGHTS_ONLY = [
    "seed_mlp.weights.h5",
    "default_names.weights.h5",
    "tfkeras2_mlp.weights_only.h5",
    "tf1_mlp.ckpt",
    "tf1_folder",
]
RTOL, ATOL = 1e-4, 1e-5


# --- local helpers -------------------------------------------------------------------
def fixture_path(name: str) -> Path:
    return FIXTURES if name == "tf1_folder" else FIXTURES / name


def io_pair(stem: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(FIXTURES / f"{stem}.io.npz") as data:
        return data["x"], data["y"]


def mlp(outputs_units: int = 10, seed: int = 0) -> lk.Sequential:
    lk.utils.set_random_seed(seed)
    return lk.Sequential(
        [
            Input((784,)),
            Dense(300, activation="relu", name="hidden1"),
            Dense(50, activation="relu", name="hidden2"),
            Dense(50, activation="relu", name="hidden3"),
            Dense(50, activation="relu", name="hidden4"),
            Dense(50, activation="relu", name="hidden5"),
            Dense(outputs_units, name="outputs"),
        ]
    )


def default_names_model(names=DEFAULT_NAMES, seed: int = 0) -> lk.Sequential:
    lk.utils.set_random_seed(seed)
    return lk.Sequential(
        [
            Input((20,)),
            Dense(16, activation="sigmoid", name=names[0]),
            Dense(8, activation="relu", name=names[1]),
            Dense(3, activation="softmax", name=names[2]),
        ]
    )


def layer_weights(model: lk.Sequential) -> dict[str, list[np.ndarray]]:
    return {layer.name: layer.get_weights() for layer in model.layers}


def assert_same_weights(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def rewrite_archive(src: Path, dst: Path, edit) -> Path:
    """Copies a .keras archive, passing its config through ``edit(config) -> config``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "config.json":
                data = json.dumps(edit(json.loads(data))).encode()
            zout.writestr(info, data)
    return dst


def rewrite_legacy(src: Path, dst: Path, edit) -> Path:
    """Copies a legacy .h5 model file, passing its model_config through ``edit``."""
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o644)  # the fixtures are read-only
    with h5py.File(dst, "r+") as f:
        f.attrs["model_config"] = json.dumps(edit(json.loads(f.attrs["model_config"])))
    return dst


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture(scope="module")
def reference_mlp() -> dict[str, list[np.ndarray]]:
    """The MLP weights of each source, fully loaded (for comparing partial restores)."""
    out = {}
    for name in MLP_FILES:
        model = mlp()
        model.load_weights(fixture_path(name))
        out[name] = layer_weights(model)
    return out


# --- whole models from files with an architecture ---------------------------------------
@pytest.mark.parametrize("name", WITH_ARCHITECTURE)
def test_load_keras_reproduces_stored_outputs(name):
    stem = MLP_FILES.get(name) or DEFAULT_FILES[name]
    x, y = io_pair(stem)
    model = lk.io.load_keras(FIXTURES / name)
    assert isinstance(model, lk.Sequential)
    assert model.built
    np.testing.assert_allclose(model.predict(x, verbose=0), y, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", WITH_ARCHITECTURE)
def test_load_keras_builds_the_keras_architecture(name):
    model = lk.io.load_keras(str(FIXTURES / name))
    if name.startswith("default_names"):
        expected = [("dense", 16, "sigmoid"), ("dense_1", 8, "relu"), ("dense_2", 3, "softmax")]
        input_shape = (None, 20)
    else:
        expected = [(n, 50, "relu") for n in MLP_NAMES]
        expected[0] = ("hidden1", 300, "relu")
        expected[-1] = ("outputs", 10, "linear")
        input_shape = (None, 784)
    got = [(layer.name, layer.units, layer.activation.name) for layer in model.layers]
    assert got == expected
    assert all(type(layer) is Dense and layer.use_bias for layer in model.layers)
    assert model.input_shape == input_shape
    assert all(layer.trainable for layer in model.layers)
    # The Keras InputLayer becomes a layerkit InputLayer with its name.
    input_name = "hidden1_input" if name.startswith("tfkeras2") else "input_layer"
    assert isinstance(model._layers[0], lk.layers.InputLayer)
    assert model._layers[0].name == input_name


def test_load_keras_model_is_trainable_and_savable(tmp_path):
    model = lk.io.load_keras(FIXTURES / "default_names.keras")
    x, _ = io_pair("default_names")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, np.arange(len(x)) % 3, epochs=1, verbose=0)
    model.save(tmp_path / "resumable.h5")
    again = lk.load_model(tmp_path / "resumable.h5")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("name", WEIGHTS_ONLY)
def test_load_keras_refuses_weights_only_files(name):
    path = fixture_path(name)
    with pytest.raises(ValueError, match="no architecture") as info:
        lk.io.load_keras(path)
    assert str(path) in str(info.value)
    assert "load_weights" in str(info.value)


def test_load_keras_refuses_a_layerkit_checkpoint(tmp_path):
    model = default_names_model()
    model.save(tmp_path / "mine.h5")
    with pytest.raises(ValueError, match=r"lk\.load_model"):
        lk.io.load_keras(tmp_path / "mine.h5")


def test_load_keras_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.keras"))):
        lk.io.load_keras(tmp_path / "nope.keras")


def _insert_layer(config: dict, index: int, layer: dict) -> dict:
    config["config"]["layers"].insert(index, layer)
    return config


@pytest.mark.parametrize("source", ["default_names.keras", "default_names.legacy.h5"])
def test_load_keras_unsupported_layer_class_names_it_and_the_path(tmp_path, source):
    batch_norm = {
        "class_name": "LayerNormalization",
        "config": {"name": "bn", "axis": -1},
    }
    edit = lambda c: _insert_layer(c, 2, batch_norm)  # noqa: E731
    rewrite = rewrite_archive if source.endswith(".keras") else rewrite_legacy
    path = rewrite(FIXTURES / source, tmp_path / source, edit)
    with pytest.raises(ValueError, match="LayerNormalization") as info:
        lk.io.load_keras(path)
    assert str(path) in str(info.value)
    assert "'bn'" in str(info.value)


def test_load_keras_refuses_functional_models(tmp_path):
    def edit(config):
        config["class_name"] = "Functional"
        return config

    path = rewrite_archive(FIXTURES / "default_names.keras", tmp_path / "f.keras", edit)
    with pytest.raises(ValueError, match="Functional") as info:
        lk.io.load_keras(path)
    assert str(path) in str(info.value)


def test_load_keras_unsupported_activation_names_layer_activation_and_path(tmp_path):
    def edit(config):
        config["config"]["layers"][2]["config"]["activation"] = "celu"
        return config

    path = rewrite_archive(FIXTURES / "default_names.keras", tmp_path / "g.keras", edit)
    with pytest.raises(ValueError, match="'celu'") as info:
        lk.io.load_keras(path)
    assert "'dense_1'" in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("quantization_config", {"mode": "int8"}, "quantization_config"),
        ("lora_rank", 4, "lora_rank"),
        ("dtype", "int8_from_float32", "dtype policy"),
    ],
)
def test_load_keras_refuses_options_that_change_the_weights(tmp_path, option, value, message):
    def edit(config):
        config["config"]["layers"][1]["config"][option] = value
        return config

    path = rewrite_archive(FIXTURES / "default_names.keras", tmp_path / "q.keras", edit)
    with pytest.raises(ValueError, match=message) as info:
        lk.io.load_keras(path)
    assert "'dense'" in str(info.value)


def test_load_keras_keeps_regularizers_warns_about_unknown_ones_and_keeps_trainable_flags(
    tmp_path,
):
    def edit(config):
        dense = config["config"]["layers"][1]["config"]
        dense["kernel_regularizer"] = {"class_name": "L2", "config": {"l2": 0.01}}
        dense["bias_regularizer"] = {"class_name": "MyCustomRegularizer", "config": {}}
        dense["trainable"] = False
        config["config"]["layers"][2]["config"]["kernel_regularizer"] = {
            "class_name": "OrthogonalRegularizer",
            "config": {"factor": 0.02, "mode": "columns"},
        }
        return config

    path = rewrite_archive(FIXTURES / "default_names.keras", tmp_path / "r.keras", edit)
    with pytest.warns(UserWarning, match="bias_regularizer ignored"):
        model = lk.io.load_keras(path)
    assert model.layers[0].kernel_regularizer.get_config() == {"l2": 0.01}
    assert model.layers[0].bias_regularizer is None
    assert model.layers[1].kernel_regularizer.get_config() == {"factor": 0.02, "mode": "columns"}
    assert [layer.trainable for layer in model.layers] == [False, True, True]
    x, y = io_pair("default_names")
    np.testing.assert_allclose(model.predict(x, verbose=0), y, rtol=RTOL, atol=ATOL)


def test_load_keras_with_dropout_activation_flatten_layers(tmp_path):
    """A config with every supported class, over the default_names weights."""

    def edit(config):
        layers = config["config"]["layers"]
        layers[0]["config"]["batch_shape"] = [None, 4, 5]
        layers.insert(1, {"class_name": "Flatten", "config": {"name": "flat"}})
        layers.insert(3, {"class_name": "Dropout", "config": {"name": "drop", "rate": 0.5}})
        layers.insert(
            4, {"class_name": "Activation", "config": {"name": "act", "activation": "linear"}}
        )
        return config

    path = rewrite_archive(FIXTURES / "default_names.keras", tmp_path / "all.keras", edit)
    model = lk.io.load_keras(path)
    classes = [type(layer).__name__ for layer in model.layers]
    assert classes == ["Flatten", "Dense", "Dropout", "Activation", "Dense", "Dense"]
    assert model.get_layer("drop").rate == 0.5
    x, y = io_pair("default_names")
    np.testing.assert_allclose(
        model.predict(x.reshape(-1, 4, 5), verbose=0), y, rtol=RTOL, atol=ATOL
    )


def test_load_keras_refuses_channels_first_flatten_of_images(tmp_path):
    def edit(config):
        layers = config["config"]["layers"]
        layers[0]["config"]["batch_shape"] = [None, 4, 5]
        flatten = {"name": "flat", "data_format": "channels_first"}
        layers.insert(1, {"class_name": "Flatten", "config": flatten})
        return config

    path = rewrite_archive(FIXTURES / "default_names.keras", tmp_path / "cf.keras", edit)
    with pytest.raises(ValueError, match="channels_first"):
        lk.io.load_keras(path)


def test_load_keras_refuses_a_config_layer_without_weights(tmp_path):
    def edit(config):
        extra = json.loads(json.dumps(config["config"]["layers"][3]))
        extra["config"]["name"] = "extra"
        extra["config"]["units"] = 3
        config["config"]["layers"].append(extra)
        return config

    path = rewrite_archive(FIXTURES / "default_names.keras", tmp_path / "x.keras", edit)
    with pytest.raises(ValueError, match=r"no weights for layers \['extra'\]"):
        lk.io.load_keras(path)


def test_load_keras_infers_the_input_shape_from_the_first_kernel(tmp_path):
    def edit(config):
        layers = config["config"]["layers"]
        del layers[0]  # no InputLayer, and no build_config either
        for layer in layers:
            layer.pop("build_config", None)
        config["config"].pop("build_input_shape", None)
        config.pop("build_config", None)
        return config

    path = rewrite_archive(FIXTURES / "default_names.keras", tmp_path / "n.keras", edit)
    model = lk.io.load_keras(path)
    assert model.input_shape == (None, 20)
    x, y = io_pair("default_names")
    np.testing.assert_allclose(model.predict(x, verbose=0), y, rtol=RTOL, atol=ATOL)


# --- weights into hand-built models ----------------------------------------------------------
@pytest.mark.parametrize("name", [*MLP_FILES, *DEFAULT_FILES])
def test_load_weights_reproduces_stored_outputs(name):
    is_mlp = name in MLP_FILES
    model = mlp() if is_mlp else default_names_model()
    restored = model.load_weights(fixture_path(name))
    names = MLP_NAMES if is_mlp else DEFAULT_NAMES
    assert restored == [(n, n) for n in names]
    x, y = io_pair(MLP_FILES[name] if is_mlp else DEFAULT_FILES[name])
    np.testing.assert_allclose(model.predict(x, verbose=0), y, rtol=RTOL, atol=ATOL)


def test_tf1_prefix_given_as_a_string_and_as_a_path():
    a, b = mlp(), mlp(seed=1)
    a.load_weights(str(FIXTURES / "tf1_mlp.ckpt"))
    b.load_weights(FIXTURES / "tf1_mlp.ckpt")
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("name", list(MLP_FILES))
def test_partial_restore_by_regex_restores_exactly_those_layers(name, reference_mlp):
    model = mlp(seed=7)
    before = layer_weights(model)
    restored = model.load_weights(fixture_path(name), layers="hidden[123]")
    assert restored == [("hidden1", "hidden1"), ("hidden2", "hidden2"), ("hidden3", "hidden3")]
    after = layer_weights(model)
    for layer in MLP_NAMES:
        expected = (
            reference_mlp[name][layer] if layer in {"hidden1", "hidden2", "hidden3"} else None
        )
        assert_same_weights(after[layer], expected if expected is not None else before[layer])
    # A restored layer really changed (the fixtures hold trained weights).
    assert not np.array_equal(after["hidden1"][0], before["hidden1"][0])


@pytest.mark.parametrize("name", list(MLP_FILES))
def test_partial_restore_with_a_list_of_names(name, reference_mlp):
    model = mlp(seed=7)
    before = layer_weights(model)
    restored = model.load_weights(fixture_path(name), layers=["outputs", "hidden5"])
    assert restored == [("hidden5", "hidden5"), ("outputs", "outputs")]
    after = layer_weights(model)
    assert_same_weights(after["outputs"], reference_mlp[name]["outputs"])
    assert_same_weights(after["hidden1"], before["hidden1"])


@pytest.mark.parametrize("name", [*MLP_FILES, *DEFAULT_FILES])
def test_pattern_matching_nothing_lists_the_names_in_the_file(name):
    model = mlp() if name in MLP_FILES else default_names_model()
    before = model.get_weights()
    with pytest.raises(ValueError, match="matches no layer") as info:
        model.load_weights(fixture_path(name), layers="encoder.*")
    message = str(info.value)
    for layer in MLP_NAMES if name in MLP_FILES else DEFAULT_NAMES:
        assert f"'{layer}'" in message
    assert "'encoder.*'" in message
    assert_same_weights(model.get_weights(), before)


@pytest.mark.parametrize("name", list(MLP_FILES))
def test_shape_mismatch_names_both_shapes_and_changes_nothing(name):
    model = mlp(outputs_units=5)
    before = model.get_weights()
    with pytest.raises(ValueError, match="'outputs'") as info:
        model.load_weights(fixture_path(name))
    message = str(info.value)
    assert "(50, 5)" in message
    assert "(50, 10)" in message
    assert_same_weights(model.get_weights(), before)  # all or nothing
    # The layers that do fit can still be restored on their own.
    assert len(model.load_weights(fixture_path(name), layers="hidden.*")) == 5


@pytest.mark.parametrize("name", list(MLP_FILES))
def test_rename_maps_foreign_names_onto_the_model(name, reference_mlp):
    lk.utils.set_random_seed(0)
    model = lk.Sequential(
        [
            Input((784,)),
            Dense(300, activation="relu", name="enc1"),
            Dense(50, activation="relu", name="enc2"),
            Dense(5, name="new_head"),
        ]
    )
    head_before = model.get_layer("new_head").get_weights()
    restored = model.load_weights(
        fixture_path(name),
        layers="hidden[12]",
        rename=lambda stored: stored.replace("hidden", "enc"),
    )
    assert restored == [("hidden1", "enc1"), ("hidden2", "enc2")]
    assert_same_weights(model.get_layer("enc1").get_weights(), reference_mlp[name]["hidden1"])
    assert_same_weights(model.get_layer("enc2").get_weights(), reference_mlp[name]["hidden2"])
    assert_same_weights(model.get_layer("new_head").get_weights(), head_before)


@pytest.mark.parametrize("name", list(DEFAULT_FILES))
def test_rename_dict_on_default_keras_names(name):
    model = default_names_model(names=["encoder", "middle", "classifier"])
    restored = model.load_weights(
        fixture_path(name),
        rename={"dense": "encoder", "dense_1": "middle", "dense_2": "classifier"},
    )
    assert restored == [("dense", "encoder"), ("dense_1", "middle"), ("dense_2", "classifier")]
    x, y = io_pair("default_names")
    np.testing.assert_allclose(model.predict(x, verbose=0), y, rtol=RTOL, atol=ATOL)


def test_rename_of_a_name_not_in_the_file_is_an_error():
    model = default_names_model(names=["encoder", "middle", "classifier"])
    with pytest.raises(ValueError, match="'hidden9'"):
        model.load_weights(FIXTURES / "default_names.keras", rename={"hidden9": "encoder"})


# --- inspect ------------------------------------------------------------------------
INSPECT_CASES = {
    "seed_mlp.weights.h5": ("keras3_weights", MLP_NAMES),
    "seed_mlp.legacy.h5": ("legacy_h5", MLP_NAMES),
    "seed_mlp.keras": ("keras_archive", MLP_NAMES),
    "default_names.weights.h5": ("keras3_weights", DEFAULT_NAMES),
    "default_names.legacy.h5": ("legacy_h5", DEFAULT_NAMES),
    "default_names.keras": ("keras_archive", DEFAULT_NAMES),
    "tfkeras2_mlp.weights_only.h5": ("legacy_h5", MLP_NAMES),
    "tfkeras2_mlp.full.h5": ("legacy_h5", MLP_NAMES),
    "tf1_mlp.ckpt": ("tf1_checkpoint", MLP_NAMES),
    "tf1_folder": ("tf1_checkpoint", MLP_NAMES),
}


@pytest.mark.parametrize("name", list(INSPECT_CASES))
def test_inspect_lists_the_layers_of_every_format(name):
    kind, names = INSPECT_CASES[name]
    result = subprocess.run(
        [sys.executable, "-m", "layerkit", "inspect", str(fixture_path(name))],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(),
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert f"format: {kind}" in result.stdout
    listed = re.findall(r"^  (\S+)", result.stdout, flags=re.MULTILINE)
    assert listed == names
    assert "kernel: shape=" in result.stdout


# --- no foreign framework is imported --------------------------------------------------------
ISOLATION_SCRIPT = """
import json, sys, tempfile, os
import layerkit
from layerkit.__main__ import inspect

fixtures = sys.argv[1]
p = lambda name: os.path.join(fixtures, name)
model = layerkit.io.load_keras(p("seed_mlp.keras"))
layerkit.io.load_keras(p("tfkeras2_mlp.full.h5"))
layerkit.io.load_keras(p("default_names.legacy.h5"))
for name in ("seed_mlp.weights.h5", "tfkeras2_mlp.weights_only.h5", "tf1_mlp.ckpt"):
    model.load_weights(p(name))
    inspect(p(name))
with tempfile.TemporaryDirectory() as tmp:
    layerkit.io.save_keras(model, os.path.join(tmp, "m.keras"))
    layerkit.io.save_keras(model, os.path.join(tmp, "m.weights.h5"))
roots = {"keras", "tf_keras", "tensorflow", "torch", "jax", "flax"}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in roots)))
"""


def test_layerkit_imports_no_foreign_framework():
    result = subprocess.run(
        [sys.executable, "-c", ISOLATION_SCRIPT, str(FIXTURES)],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(),
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
