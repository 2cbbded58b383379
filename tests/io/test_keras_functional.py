"""Keras 3 Functional models: ``lk.io.load_keras``, ``load_weights`` and ``save_keras``.

Files written by Keras itself (``shared/fixtures/keras_functional``, see its README) are
loaded into layerkit and must reproduce Keras's predictions; graph models written by
layerkit are loaded by real Keras (in ONE subprocess, as in ``test_keras_export.py``) and
must predict as layerkit does. Hostile configs (cycles, dangling references, absurd
sizes) are refused before anything is allocated.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from keras_process import IMPORT_KERAS, run_keras

import layerkit as lk
from layerkit.io import FormatError, keras_files
from layerkit.layers import Dense, Input, concatenate
from layerkit.models import functional_config

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "keras_functional"

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"no fixtures at {FIXTURES}")

RTOL, ATOL = 1e-5, 1e-5
LOADABLE = [
    "bn_mlp",
    "wide_deep",
    "wide_deep_two_outputs",
    "siamese",
    "extractor_base",
    "extractor",
    "act_layers",
    "nadam_state",
    "adamw_state",
]
GRAPHS = ["wide_deep", "wide_deep_two_outputs", "siamese", "extractor"]
SOURCES = [".keras", ".legacy.h5"]


# --- helpers ----------------------------------------------------------------------------------
def io_data(stem: str) -> tuple[list[np.ndarray] | np.ndarray, list[np.ndarray], list[str]]:
    with np.load(FIXTURES / f"{stem}.io.npz") as data:
        x = [data["x0"], data["x1"]] if "x0" in data else data["x"]
        y = [data["y0"], data["y1"]] if "y0" in data else [data["y"]]
        return x, y, [str(n) for n in data["layer_names"]]


def outputs_of(prediction) -> list[np.ndarray]:
    return prediction if isinstance(prediction, list) else [prediction]


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
    os.chmod(dst, 0o644)  # the fixtures may be read-only
    with h5py.File(dst, "r+") as f:
        f.attrs["model_config"] = json.dumps(edit(json.loads(f.attrs["model_config"])))
    return dst


def rewrite(source: str, tmp_path: Path, edit) -> Path:
    src = FIXTURES / source
    dst = tmp_path / ("edited" + "".join(src.suffixes))
    return (rewrite_archive if source.endswith(".keras") else rewrite_legacy)(src, dst, edit)


def layer_entry(config: dict, name: str) -> dict:
    return next(entry for entry in config["config"]["layers"] if entry["name"] == name)


def tensor(history: list) -> dict:
    return {"class_name": "__keras_tensor__", "config": {"keras_history": history}}


@pytest.fixture
def no_building(monkeypatch):
    """Fails the test if a graph gets built (weights allocated) at all."""

    def refuse(config):
        raise AssertionError("model_from_config must not be reached")

    monkeypatch.setattr(functional_config, "model_from_config", refuse)


# --- load_keras: Keras's own files ---------------------------------------------------------
@pytest.mark.parametrize("suffix", SOURCES)
@pytest.mark.parametrize("stem", LOADABLE)
def test_load_keras_reproduces_keras_predictions(stem, suffix):
    x, y, layer_names = io_data(stem)
    model = lk.io.load_keras(FIXTURES / f"{stem}{suffix}")
    assert [layer.name for layer in model.layers] == layer_names
    predicted = outputs_of(model.predict(x, verbose=0))
    assert len(predicted) == len(y)
    for p, expected in zip(predicted, y, strict=True):
        np.testing.assert_allclose(p, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("stem", GRAPHS)
def test_functional_files_give_graph_models_with_keras_inputs_and_outputs(stem):
    model = lk.io.load_keras(FIXTURES / f"{stem}.keras")
    assert type(model) is lk.Model
    with np.load(FIXTURES / f"{stem}.io.npz") as data:
        assert [t.name for t in model.inputs] == [str(n) for n in data["input_names"]]
        assert model.output_names == [str(n) for n in data["output_names"]]
    assert model.name == stem


@pytest.mark.parametrize("stem", LOADABLE)
def test_weights_follow_keras_order_and_shapes(stem):
    model = lk.io.load_keras(FIXTURES / f"{stem}.keras")
    with np.load(FIXTURES / f"{stem}.io.npz") as data:
        info = json.loads(str(data["weights_json"]))
    expected = [
        (f"{layer['name']}/{w}", tuple(shape))
        for layer in info["layers"]
        for w, shape in zip(layer["weights"], layer["shapes"], strict=True)
    ]
    assert [(p.name, p.shape) for p in model.weights] == expected
    classes = {layer["name"]: layer["class"] for layer in info["layers"]}
    assert [type(layer).__name__ for layer in model.layers] == [
        classes[layer.name] for layer in model.layers
    ]


def test_siamese_shares_its_layers():
    model = lk.io.load_keras(FIXTURES / "siamese.keras")
    assert len(model.weights) == 6  # shared1, shared2 and same, each once
    assert len(model.get_layer("shared1")._inbound_nodes) == 2


def test_loaded_graph_trains():
    model = lk.io.load_keras(FIXTURES / "wide_deep_two_outputs.legacy.h5")
    x, y, _ = io_data("wide_deep_two_outputs")
    model.compile(optimizer="sgd", loss=["mse", "mse"], loss_weights=[0.9, 0.1])
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert "output_loss" in history.history


@pytest.mark.parametrize("suffix", SOURCES)
def test_selu_reg_loads_with_its_regularizer_and_constraint(suffix):
    # AlphaDropout, the l2 kernel_regularizer and the max_norm kernel_constraint all carry
    # over: the penalty equals the one Keras computed for the stored weights.
    x, y, layer_names = io_data("selu_reg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is dropped
        model = lk.io.load_keras(FIXTURES / f"selu_reg{suffix}")
    assert [layer.name for layer in model.layers] == layer_names
    dropout = model.get_layer("alpha_dropout")
    assert type(dropout) is lk.layers.AlphaDropout
    assert dropout.rate == pytest.approx(0.1)
    assert model.get_layer("dense").kernel_regularizer.get_config() == {"l2": 0.01}
    assert model.get_layer("dense_1").kernel_constraint.get_config() == {
        "max_value": 1.0,
        "axis": 0,
    }
    reg_loss = float(np.load(FIXTURES / "selu_reg.io.npz")["reg_loss"])
    assert sum(model.losses) == pytest.approx(reg_loss, rel=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0), y[0], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("suffix", SOURCES)
def test_unsupported_layers_are_refused_before_reading_weights(monkeypatch, tmp_path, suffix):
    def edit(config):
        entry = next(
            e for e in config["config"]["layers"] if e["config"].get("name") == "alpha_dropout"
        )
        entry["class_name"] = "SpatialDropout1D"
        return config

    path = rewrite(f"selu_reg{suffix}", tmp_path, edit)

    def refuse(path):
        raise AssertionError("the weights must not be read")

    monkeypatch.setattr(keras_files, "read_keras_weights", refuse)
    with pytest.raises(ValueError, match="SpatialDropout1D") as info:
        lk.io.load_keras(path)
    assert str(path) in str(info.value)
    assert "'alpha_dropout'" in str(info.value)


def test_unsupported_layer_in_a_graph_is_named(tmp_path, no_building):
    def edit(config):
        entry = layer_entry(config, "concatenate")
        entry["class_name"] = "LayerNormalization"
        return config

    path = rewrite("wide_deep.keras", tmp_path, edit)
    with pytest.raises(ValueError, match="LayerNormalization") as info:
        lk.io.load_keras(path)
    assert str(path) in str(info.value)
    assert "'concatenate'" in str(info.value)


def test_tf_keras_2_functional_config(tmp_path):
    """tf.keras 2's form: ``[[layer, call, tensor, kwargs], ...]`` calls, ``Model`` class,
    ``batch_input_shape``."""

    def edit(config):
        config["class_name"] = "Model"
        for entry in config["config"]["layers"]:
            cfg = entry["config"]
            if entry["class_name"] == "InputLayer":
                cfg["batch_input_shape"] = cfg.pop("batch_shape")
            calls = []
            for node in entry["inbound_nodes"]:
                args = node["args"][0] if isinstance(node["args"][0], list) else node["args"]
                calls.append([[*t["config"]["keras_history"], {}] for t in args])
            entry["inbound_nodes"] = calls
        return config

    path = rewrite("wide_deep_two_outputs.legacy.h5", tmp_path, edit)
    model = lk.io.load_keras(path)
    x, y, names = io_data("wide_deep_two_outputs")
    assert [layer.name for layer in model.layers] == names
    for p, expected in zip(outputs_of(model.predict(x, verbose=0)), y, strict=True):
        np.testing.assert_allclose(p, expected, rtol=RTOL, atol=ATOL)


def test_dict_outputs_are_kept_by_name(tmp_path):
    def edit(config):
        config["config"]["output_layers"] = {
            "main": ["output", 0, 0],
            "aux": ["aux_output", 0, 0],
        }
        return config

    path = rewrite("wide_deep_two_outputs.keras", tmp_path, edit)
    model = lk.io.load_keras(path)
    x, y, _ = io_data("wide_deep_two_outputs")
    predicted = model.predict(x, verbose=0)
    assert sorted(predicted) == ["aux", "main"]
    np.testing.assert_allclose(predicted["main"], y[0], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(predicted["aux"], y[1], rtol=RTOL, atol=ATOL)


# --- hostile configs ----------------------------------------------------------------------
def _cycle(config):
    # dense reads dense_1, which reads dense.
    entry = layer_entry(config, "dense")
    entry["inbound_nodes"] = [{"args": [tensor(["dense_1", 0, 0])], "kwargs": {}}]
    return config


def _missing_layer(config):
    entry = layer_entry(config, "dense_1")
    entry["inbound_nodes"] = [{"args": [tensor(["ghost", 0, 0])], "kwargs": {}}]
    return config


def _missing_call(config):
    entry = layer_entry(config, "dense_1")
    entry["inbound_nodes"] = [{"args": [tensor(["dense", 7, 0])], "kwargs": {}}]
    return config


def _huge_dense(config):
    layer_entry(config, "output")["config"]["units"] = 2**40
    return config


def _huge_input(config):
    layer_entry(config, "deep_input")["config"]["batch_shape"] = [None, 2**40]
    return config


def _units_not_backed(config):
    layer_entry(config, "dense_1")["config"]["units"] = 31
    return config


def _unknown_output(config):
    config["config"]["output_layers"] = [["nowhere", 0, 0]]
    return config


def _call_options(config):
    layer_entry(config, "dense")["inbound_nodes"][0]["kwargs"] = {"training": True}
    return config


def _self_reference(config):
    entry = layer_entry(config, "dense")
    entry["inbound_nodes"] = [{"args": [tensor(["dense", 0, 0])], "kwargs": {}}]
    return config


def _not_a_list(config):
    config["config"]["layers"] = {"a": 1}
    return config


HOSTILE = {
    "cycle": (_cycle, "cycle"),
    "self_reference": (_self_reference, "cycle"),
    "missing_layer": (_missing_layer, "unknown layer 'ghost'"),
    "missing_call": (_missing_call, "call 7"),
    "huge_dense": (_huge_dense, "more than"),
    "huge_input": (_huge_input, "more than"),
    "units_not_backed": (_units_not_backed, "dense_1"),
    "unknown_output": (_unknown_output, "'nowhere'"),
    "call_options": (_call_options, "training"),
    "not_a_list": (_not_a_list, "list of layers"),
}


@pytest.mark.parametrize("suffix", SOURCES)
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_configs_are_refused_before_building(tmp_path, no_building, case, suffix):
    edit, message = HOSTILE[case]
    path = rewrite(f"wide_deep{suffix}", tmp_path, edit)
    with pytest.raises(ValueError, match=message) as info:  # FormatError is a ValueError
        lk.io.load_keras(path)
    assert str(path) in str(info.value)


def test_missing_weights_for_a_layer_are_refused(tmp_path, no_building):
    """A config that adds a Dense the file holds no weights for."""

    def edit(config):
        entry = json.loads(json.dumps(layer_entry(config, "output")))
        entry["name"] = entry["config"]["name"] = "extra"
        entry["inbound_nodes"] = [{"args": [tensor(["dense_1", 0, 0])], "kwargs": {}}]
        config["config"]["layers"].append(entry)
        config["config"]["output_layers"].append(["extra", 0, 0])
        return config

    path = rewrite("wide_deep.keras", tmp_path, edit)
    with pytest.raises(ValueError, match="no weights for layers \\['extra'\\]"):
        lk.io.load_keras(path)


def test_hostile_weight_shapes_are_format_errors(tmp_path, no_building):
    path = rewrite("wide_deep.legacy.h5", tmp_path, _units_not_backed)
    with pytest.raises(FormatError, match="dense_1"):
        lk.io.load_keras(path)


# --- load_weights of Keras 3 weights files into a layerkit graph ------------------------------
def wide_deep_model() -> lk.Model:
    wide = Input((5,), name="wide_input")
    deep = Input((6,), name="deep_input")
    h1 = Dense(30, activation="relu", name="dense")(deep)
    h2 = Dense(30, activation="relu", name="dense_1")(h1)
    out = Dense(1, name="output")(concatenate([wide, h2]))
    return lk.Model([wide, deep], out)


def siamese_model() -> lk.Model:
    a, b = Input((784,), name="image_a"), Input((784,), name="image_b")
    shared1 = Dense(64, activation="relu", name="shared1")
    shared2 = Dense(32, activation="relu", name="shared2")
    merged = concatenate([shared2(shared1(a)), shared2(shared1(b))])
    return lk.Model([a, b], Dense(1, activation="sigmoid", name="same")(merged))


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras", ".legacy.h5"])
@pytest.mark.parametrize(
    ("stem", "make", "restored"),
    [
        ("wide_deep", wide_deep_model, ["dense", "dense_1", "output"]),
        ("siamese", siamese_model, ["shared1", "shared2", "same"]),
    ],
)
def test_load_weights_into_a_graph(stem, make, restored, suffix):
    lk.utils.clear_session()
    model = make()
    pairs = model.load_weights(FIXTURES / f"{stem}{suffix}")
    assert sorted(pairs) == sorted((n, n) for n in restored)
    x, y, names = io_data(stem)
    assert [layer.name for layer in model.layers] == names
    np.testing.assert_allclose(model.predict(x, verbose=0), y[0], rtol=RTOL, atol=ATOL)


def test_weights_file_of_a_graph_lists_input_layers_in_keras_order():
    stored = keras_files.read_keras_weights(FIXTURES / "wide_deep.keras")
    assert [s.name for s in stored] == ["dense", "dense_1", "output"]
    assert [s.class_name for s in stored] == ["Dense"] * 3
    stored = keras_files.read_keras_weights(FIXTURES / "act_layers.weights.h5")
    prelu = next(s for s in stored if s.name == "p_re_lu")
    assert list(prelu.weights) == ["alpha"]
    assert prelu.weights["alpha"].shape == (16,)


# --- save_keras of graph models, loaded by real Keras ------------------------------------------
def exported_wide_deep() -> lk.Model:
    wide = Input((5,), name="wide_input")
    deep = Input((6,), name="deep_input")
    h1 = Dense(30, activation="relu", name="hidden1")(deep)
    h2 = Dense(30, activation="tanh", name="hidden2")(h1)
    out = Dense(1, name="output")(concatenate([wide, h2]))
    aux = Dense(1, name="aux_output")(h2)
    return lk.Model([wide, deep], [out, aux], name="wide_deep")


def exported_siamese() -> lk.Model:
    a, b = Input((3,), name="a"), Input((3,), name="b")
    shared = Dense(4, activation="relu", name="shared")
    merged = lk.layers.Concatenate(name="merge")([shared(a), shared(b)])
    same = Dense(1, activation="sigmoid", name="same")(merged)
    return lk.Model([a, b], same, name="siamese")


def exported_mixed() -> lk.Model:
    """Activation layers, Reshape, Flatten, Add / Subtract / Multiply / Maximum / Dot, and
    a dict of outputs."""
    a, b = Input((4,), name="left"), Input((4,), name="right")
    h = lk.layers.LeakyReLU(0.1, name="leaky")(Dense(4, name="da")(a))
    g = lk.layers.PReLU(name="prelu")(Dense(4, name="db")(b))
    added = lk.layers.Add(name="add")([h, g])
    diff = lk.layers.Subtract(name="sub")([h, g])
    prod = lk.layers.ELU(name="elu")(lk.layers.Multiply(name="mul")([added, diff]))
    top = lk.layers.Maximum(name="max")([prod, added])
    dot = lk.layers.Dot(axes=1, name="dot")([top, diff])
    capped = lk.layers.ReLU(max_value=2.0, negative_slope=0.1, name="relu")(top)
    flat = lk.layers.Flatten(name="flat")(lk.layers.Reshape((2, 2), name="reshape")(capped))
    soft = lk.layers.Softmax(name="soft")(Dense(3, name="head")(flat))
    return lk.Model([a, b], {"scores": soft, "dot": dot}, name="mixed")


EXPORTS = {"wide_deep": exported_wide_deep, "siamese": exported_siamese, "mixed": exported_mixed}

KERAS_SCRIPT = r"""
import json, sys, warnings
job = json.load(open(sys.argv[1]))
{import_keras}
import numpy as np

results = {}
for name, case in job.items():
    xs = [np.load(p) for p in case["x"]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.models.load_model(case["keras"])
        clone = keras.models.clone_model(loaded)
        clone.load_weights(case["weights"])
    out = {"warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}
    for tag, model in (("load_model", loaded), ("load_weights", clone)):
        y = model.predict(xs, verbose=0)
        if isinstance(y, dict):
            out[tag + "_keys"] = sorted(y)
            y = [y[k] for k in sorted(y)]
        elif not isinstance(y, list):
            y = [y]
        for i, v in enumerate(y):
            np.save(case["prefix"] + f"{tag}.{i}.npy", np.asarray(v))
        out[tag + "_count"] = len(y)
    out["names"] = [layer.name for layer in loaded.layers]
    out["classes"] = [type(layer).__name__ for layer in loaded.layers]
    out["n_weights"] = len(loaded.weights)
    out["inputs"] = [t.name for t in loaded.inputs]
    out["output_names"] = list(loaded.output_names)
    loaded.save(case["prefix"] + "resaved.keras")
    results[name] = out
json.dump(results, open(sys.argv[2], "w"))
""".replace("{import_keras}", IMPORT_KERAS)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_functional_export")
    cases = {}
    for i, (name, make) in enumerate(EXPORTS.items()):
        lk.utils.clear_session()
        lk.utils.set_random_seed(10 + i)
        model = make()
        rng = np.random.default_rng(20 + i)
        model.set_weights(
            [rng.normal(0, 0.5, w.shape).astype(w.dtype) for w in model.get_weights()]
        )
        xs = [rng.normal(size=(12, *t.shape[1:])).astype(np.float32) for t in model.inputs]
        paths = []
        for k, x in enumerate(xs):
            paths.append(str(folder / f"{name}.x{k}.npy"))
            np.save(paths[-1], x)
        y = model.predict(xs, verbose=0)
        y = [y[k] for k in sorted(y)] if isinstance(y, dict) else outputs_of(y)
        cases[name] = {
            "model": model,
            "xs": xs,
            "y": y,
            "x": paths,
            # model.save writes the Keras archive with layerkit's checkpoint inside.
            "keras": model.save(folder / f"{name}.keras"),
            "weights": lk.io.save_keras(model, folder / f"{name}.weights.h5"),
            "plain": lk.io.save_keras(model, folder / f"{name}.plain.keras"),
            "prefix": str(folder / f"{name}.out."),
        }
    return folder, cases


@pytest.fixture(scope="module")
def keras_results(exported):
    folder, cases = exported
    job = {
        name: {k: case[k] for k in ("x", "keras", "weights", "prefix")}
        for name, case in cases.items()
    }
    (folder / "job.json").write_text(json.dumps(job))
    run_keras(KERAS_SCRIPT, str(folder / "job.json"), str(folder / "results.json"), cwd=folder)
    return json.loads((folder / "results.json").read_text())


@pytest.mark.parametrize("name", list(EXPORTS))
@pytest.mark.parametrize("tag", ["load_model", "load_weights"])
def test_keras_predicts_like_layerkit(exported, keras_results, name, tag):
    case = exported[1][name]
    got = keras_results[name]
    assert got[f"{tag}_count"] == len(case["y"])
    for i, expected in enumerate(case["y"]):
        predicted = np.load(case["prefix"] + f"{tag}.{i}.npy")
        np.testing.assert_allclose(predicted, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", list(EXPORTS))
def test_keras_sees_the_same_graph(exported, keras_results, name):
    model = exported[1][name]["model"]
    got = keras_results[name]
    assert got["warnings"] == []
    assert got["names"] == [layer.name for layer in model.layers]
    assert got["classes"] == [type(layer).__name__ for layer in model.layers]
    assert got["n_weights"] == len(model.weights)
    assert got["inputs"] == [t.name for t in model.inputs]
    # Keras's output_names are the output layers' names, even for a dict of outputs.
    assert got["output_names"] == [t.node.layer.name for t in model.outputs]


def test_keras_keeps_dict_outputs(keras_results):
    assert keras_results["mixed"]["load_model_keys"] == ["dot", "scores"]


@pytest.mark.parametrize("name", list(EXPORTS))
def test_layerkit_reads_what_keras_resaved(exported, keras_results, name):
    case = exported[1][name]
    model = lk.io.load_keras(case["prefix"] + "resaved.keras")
    assert [layer.name for layer in model.layers] == [layer.name for layer in case["model"].layers]
    predicted = model.predict(case["xs"], verbose=0)
    predicted = (
        [predicted[k] for k in sorted(predicted)] if isinstance(predicted, dict) else predicted
    )
    for p, expected in zip(outputs_of(predicted), case["y"], strict=True):
        np.testing.assert_allclose(p, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", list(EXPORTS))
def test_graph_round_trips_without_keras(exported, name):
    case = exported[1][name]
    for path in (case["plain"], case["keras"]):
        model = lk.io.load_keras(path)
        assert type(model) is lk.Model
        predicted = model.predict(case["xs"], verbose=0)
        if isinstance(predicted, dict):
            predicted = [predicted[k] for k in sorted(predicted)]
        for p, expected in zip(outputs_of(predicted), case["y"], strict=True):
            np.testing.assert_allclose(p, expected, rtol=RTOL, atol=ATOL)
    restored = lk.load_model(case["keras"])  # layerkit's own checkpoint inside the archive
    assert [layer.name for layer in restored.layers] == [
        layer.name for layer in case["model"].layers
    ]


def test_weights_file_of_a_graph_has_keras_groups(exported):
    case = exported[1]["wide_deep"]
    with h5py.File(case["weights"], "r") as f:
        assert sorted(f["layers"]) == [
            "concatenate",
            "dense",
            "dense_1",
            "dense_2",
            "dense_3",
            "input_layer",
            "input_layer_1",
        ]
        assert f["layers/input_layer/vars"].attrs["name"] == "deep_input"
        assert f["layers/dense_2/vars"].attrs["name"] == "output"
    case = exported[1]["siamese"]
    with h5py.File(case["weights"], "r") as f:
        assert [f[f"layers/{k}/vars"].attrs["name"] for k in ("dense", "dense_1")] == [
            "shared",
            "same",
        ]
