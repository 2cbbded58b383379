"""``lk.io.save_keras``: files that real Keras 3 loads and predicts with, identically.

All Keras work runs in ONE subprocess per test session (``KERAS_BACKEND=torch``; importing
Keras takes seconds, and layerkit's own process must never import it). The subprocess
loads every exported ``.keras`` with ``keras.models.load_model``, loads every exported
``.weights.h5`` into a Keras model built independently from the same layer list (with
Keras's own default names: Keras matches layers by position and class), predicts,
and re-saves what it loaded, so that the files layerkit writes can be compared with the
files Keras itself writes. Keras is a test requirement: without it these tests fail.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from keras_process import IMPORT_KERAS, run_keras

import layerkit as lk
from layerkit.io import keras_export
from layerkit.layers import Activation, Dense, Dropout, Flatten, Input

REPO_ROOT = Path(lk.__file__).resolve().parents[1]
RTOL, ATOL = 1e-5, 1e-6


# --- the models exported ------------------------------------------------------------------
def seed_mlp() -> tuple[lk.Sequential, list]:
    model = lk.Sequential(
        [
            Input((784,)),
            Dense(300, activation="relu", name="hidden1"),
            Dense(50, activation="relu", name="hidden2"),
            Dense(50, activation="relu", name="hidden3"),
            Dense(50, activation="relu", name="hidden4"),
            Dense(50, activation="relu", name="hidden5"),
            Dense(10, name="outputs"),
        ],
        name="mlp",
    )
    spec = [["Input", [784]]] + [["Dense", 300, "relu", True]]
    spec += [["Dense", 50, "relu", True]] * 4 + [["Dense", 10, "linear", True]]
    return model, spec


def small_classifier() -> tuple[lk.Sequential, list]:
    """Default names, sigmoid / tanh / softmax, Dropout, Flatten, Activation, no bias."""
    model = lk.Sequential(
        [
            Input((4, 3)),
            Flatten(),
            Dense(16, activation="sigmoid"),
            Dropout(0.25),
            Dense(8, activation="tanh", use_bias=False),
            Activation("relu"),
            Dense(3, activation="softmax"),
        ]
    )
    spec = [
        ["Input", [4, 3]],
        ["Flatten"],
        ["Dense", 16, "sigmoid", True],
        ["Dropout", 0.25],
        ["Dense", 8, "tanh", False],
        ["Activation", "relu"],
        ["Dense", 3, "softmax", True],
    ]
    return model, spec


def no_input_layer() -> tuple[lk.Sequential, list]:
    """Built from input_dim (no InputLayer), leaky_relu / elu, and a frozen layer."""
    model = lk.Sequential(
        [
            Dense(6, activation="leaky_relu", input_dim=5, name="a"),
            Dense(4, activation="elu", name="b"),
            Dense(2, name="c"),
        ],
        name="tiny",
    )
    model.get_layer("a").trainable = False
    spec = [
        ["Input", [5]],
        ["Dense", 6, "leaky_relu", True],
        ["Dense", 4, "elu", True],
        ["Dense", 2, "linear", True],
    ]
    return model, spec


CASES = {"seed_mlp": seed_mlp, "small_classifier": small_classifier, "no_input": no_input_layer}


def randomise(model: lk.Sequential, seed: int) -> None:
    """Non-zero biases too, so that a swapped kernel/bias or layer would show. Kernels are
    scaled by 1/sqrt(fan_in) so that outputs stay near 1 (float32 compares well there)."""
    rng = np.random.default_rng(seed)
    model.set_weights(
        [
            rng.normal(0.0, 1.0 / np.sqrt(w.shape[0]) if w.ndim == 2 else 0.1, size=w.shape).astype(
                w.dtype
            )
            for w in model.get_weights()
        ]
    )


def inputs(model: lk.Sequential, seed: int) -> np.ndarray:
    shape = (16, *model.input_shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# --- the one Keras subprocess ---------------------------------------------------------------
KERAS_SCRIPT = r"""
import json, os, sys, warnings
job = json.load(open(sys.argv[1]))
{import_keras}
import numpy as np

def build(spec):
    layers = []
    for entry in spec:
        kind = entry[0]
        if kind == "Input":
            layers.append(keras.Input(tuple(entry[1])))
        elif kind == "Dense":
            layers.append(keras.layers.Dense(entry[1], activation=entry[2], use_bias=entry[3]))
        elif kind == "Dropout":
            layers.append(keras.layers.Dropout(entry[1]))
        elif kind == "Flatten":
            layers.append(keras.layers.Flatten())
        elif kind == "Activation":
            layers.append(keras.layers.Activation(entry[1]))
    return keras.Sequential(layers)

results = {"keras_version": keras.__version__, "cases": {}}
for name, case in job["cases"].items():
    x = np.load(case["x"])
    out = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.models.load_model(case["keras"])
        built = build(case["spec"])
        built.load_weights(case["weights"])
    out["load_warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
    np.save(case["out_prefix"] + "load_model.npy", np.asarray(loaded.predict(x, verbose=0)))
    np.save(case["out_prefix"] + "load_weights.npy", np.asarray(built.predict(x, verbose=0)))
    out["names"] = [layer.name for layer in loaded.layers]
    out["classes"] = [type(layer).__name__ for layer in loaded.layers]
    out["trainable"] = [layer.trainable for layer in loaded.layers]
    out["model_name"] = loaded.name
    out["input_layer"] = loaded.get_config()["layers"][0]["config"]["name"]
    loaded.save(case["out_prefix"] + "resaved.keras")
    loaded.save_weights(case["out_prefix"] + "resaved.weights.h5")
    results["cases"][name] = out
json.dump(results, open(job["results"], "w"))
""".replace("{import_keras}", IMPORT_KERAS)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each case exported by layerkit, with its inputs and layerkit's predictions."""
    folder = tmp_path_factory.mktemp("keras_export")
    cases = {}
    for i, (name, make) in enumerate(CASES.items()):
        lk.utils.clear_session()
        lk.utils.set_random_seed(i)
        model, spec = make()
        randomise(model, seed=100 + i)
        x = inputs(model, seed=200 + i)
        np.save(folder / f"{name}.x.npy", x)
        cases[name] = {
            "model": model,
            "spec": spec,
            "x": x,
            "y": model.predict(x, verbose=0),
            "keras": lk.io.save_keras(model, folder / f"{name}.keras"),
            "weights": lk.io.save_keras(model, folder / f"{name}.weights.h5"),
            "out_prefix": str(folder / f"{name}.out."),
        }
    return folder, cases


@pytest.fixture(scope="module")
def keras_results(exported):
    folder, cases = exported
    job = {
        "results": str(folder / "results.json"),
        "cases": {
            name: {
                "x": str(folder / f"{name}.x.npy"),
                **{k: case[k] for k in ("spec", "keras", "weights", "out_prefix")},
            }
            for name, case in cases.items()
        },
    }
    (folder / "job.json").write_text(json.dumps(job))
    run_keras(KERAS_SCRIPT, str(folder / "job.json"), cwd=folder)
    return json.loads((folder / "results.json").read_text())


def _prediction(case: dict, kind: str) -> np.ndarray:
    return np.load(case["out_prefix"] + f"{kind}.npy")


# --- Keras loads what layerkit writes -------------------------------------------------------
def test_keras_is_version_3(keras_results):
    assert int(keras_results["keras_version"].split(".")[0]) == 3


@pytest.mark.parametrize("name", list(CASES))
def test_keras_load_model_predicts_like_layerkit(exported, keras_results, name):
    case = exported[1][name]
    np.testing.assert_allclose(_prediction(case, "load_model"), case["y"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", list(CASES))
def test_keras_load_weights_predicts_like_layerkit(exported, keras_results, name):
    case = exported[1][name]
    np.testing.assert_allclose(_prediction(case, "load_weights"), case["y"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", list(CASES))
def test_keras_model_keeps_names_classes_and_trainable_flags(exported, keras_results, name):
    model = exported[1][name]["model"]
    got = keras_results["cases"][name]
    assert got["names"] == [layer.name for layer in model.layers]
    assert got["classes"] == [type(layer).__name__ for layer in model.layers]
    assert got["trainable"] == [layer.trainable for layer in model.layers]
    assert got["model_name"] == model.name
    expected_input = model._layers[0].name if name != "no_input" else "input_layer"
    assert got["input_layer"] == expected_input


@pytest.mark.parametrize("name", list(CASES))
def test_keras_loads_without_warnings(keras_results, name):
    assert keras_results["cases"][name]["load_warnings"] == []


# --- the files are laid out as Keras lays them out --------------------------------------------
def h5_tree(source) -> list:
    """Every object in creation order: path, kind, attributes, shape, dtype."""
    with h5py.File(source, "r") as f:
        items = []
        f.visititems(lambda path, obj: items.append((path, obj)))
        described = [
            (
                path,
                type(obj).__name__,
                {k: str(v) for k, v in obj.attrs.items()},
                getattr(obj, "shape", None),
                str(getattr(obj, "dtype", "")),
            )
            for path, obj in items
        ]
        # layerkit reads files without a config in object-header order: it must be model order.
        order = sorted(f["layers"], key=lambda k: h5py.h5o.get_info(f["layers"][k].id).addr)
    return [sorted(described), order]


def subset(ours, theirs, where: str = "") -> list[str]:
    """Where ``ours`` differs from ``theirs``, ignoring keys only Keras writes."""
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            return [where]
        problems = []
        for key, value in ours.items():
            if key not in theirs:
                problems.append(f"{where}/{key} not written by Keras")
            else:
                problems.extend(subset(value, theirs[key], f"{where}/{key}"))
        return problems
    if isinstance(ours, list):
        if not isinstance(theirs, list) or len(ours) != len(theirs):
            return [where]
        return [
            p for i, (a, b) in enumerate(zip(ours, theirs)) for p in subset(a, b, f"{where}[{i}]")
        ]
    return [] if ours == theirs else [f"{where}: {ours!r} != {theirs!r}"]


def extra_keys_are_defaults(ours, theirs) -> list[str]:
    """Keys Keras writes that layerkit leaves out must be at Keras's defaults."""
    leftovers = []
    if isinstance(theirs, dict) and isinstance(ours, dict):
        for key, value in theirs.items():
            if key not in ours:
                if key != "shared_object_id" and value not in (None, False):
                    leftovers.append(f"{key}={value!r}")
            else:
                leftovers.extend(extra_keys_are_defaults(ours[key], value))
    elif isinstance(theirs, list) and isinstance(ours, list):
        for a, b in zip(ours, theirs):
            leftovers.extend(extra_keys_are_defaults(a, b))
    return leftovers


@pytest.mark.parametrize("name", list(CASES))
def test_weights_file_matches_keras_save_weights(exported, keras_results, name):
    case = exported[1][name]
    assert h5_tree(case["weights"]) == h5_tree(case["out_prefix"] + "resaved.weights.h5")


@pytest.mark.parametrize("name", list(CASES))
def test_archive_matches_keras_save(exported, keras_results, name):
    case = exported[1][name]
    with (
        zipfile.ZipFile(case["keras"]) as ours,
        zipfile.ZipFile(case["out_prefix"] + "resaved.keras") as theirs,
    ):
        layout = lambda zf: [(i.filename, i.compress_type) for i in zf.infolist()]  # noqa: E731
        assert layout(ours) == layout(theirs)
        ours_meta, theirs_meta = (json.loads(z.read("metadata.json")) for z in (ours, theirs))
        assert set(ours_meta) == set(theirs_meta) == {"keras_version", "date_saved"}
        ours_config, theirs_config = (json.loads(z.read("config.json")) for z in (ours, theirs))
        assert subset(ours_config, theirs_config) == []
        assert extra_keys_are_defaults(ours_config, theirs_config) == []
        ours_h5, theirs_h5 = (io.BytesIO(z.read("model.weights.h5")) for z in (ours, theirs))
        assert h5_tree(ours_h5) == h5_tree(theirs_h5)


# --- layerkit reads back what it writes (no Keras needed) -----------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_load_keras_round_trip(exported, name):
    case = exported[1][name]
    again = lk.io.load_keras(case["keras"])
    np.testing.assert_allclose(again.predict(case["x"], verbose=0), case["y"], rtol=RTOL, atol=ATOL)
    model = case["model"]
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]
    assert [layer.trainable for layer in again.layers] == [
        layer.trainable for layer in model.layers
    ]
    assert again.name == model.name


@pytest.mark.parametrize("name", list(CASES))
def test_weights_file_round_trip_through_load_weights(exported, name):
    case = exported[1][name]
    model = case["model"]
    stored = lk.io.read_any(case["weights"])  # no config: names and order from the file
    assert [s.name for s in stored] == [layer.name for layer in model.layers if layer.weights]
    lk.utils.clear_session()  # the same automatic names as the exported model
    lk.utils.set_random_seed(99)
    fresh, _ = CASES[name]()
    fresh.load_weights(case["weights"])
    np.testing.assert_allclose(fresh.predict(case["x"], verbose=0), case["y"], rtol=0, atol=0)


def test_export_of_a_loaded_keras_file(tmp_path):
    fixtures = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "keras"
    if not (fixtures / "seed_mlp.keras").is_file():
        pytest.skip(f"no fixtures at {fixtures}")
    model = lk.io.load_keras(fixtures / "seed_mlp.keras")
    path = lk.io.save_keras(model, tmp_path / "again.keras")
    with np.load(fixtures / "seed_mlp.io.npz") as data:
        x, y = data["x"], data["y"]
    np.testing.assert_allclose(lk.io.load_keras(path).predict(x, verbose=0), y, 1e-4, 1e-5)


# --- errors: nothing is written ---------------------------------------------------------------
class Scale(lk.layers.Layer):
    def forward(self, x, training=False):
        return 2 * x, lambda dy, need_dx=True: 2 * dy


def test_unsupported_layer_is_named(tmp_path):
    model = lk.Sequential([Input((3,)), Dense(2, name="d"), Scale(name="doubler")])
    with pytest.raises(ValueError, match="'doubler' of class Scale"):
        lk.io.save_keras(model, tmp_path / "m.keras")
    assert list(tmp_path.iterdir()) == []


def test_activation_keras_cannot_express_is_named(tmp_path):
    slope = lk.activations.LeakyReLU(negative_slope=0.1)
    model = lk.Sequential([Input((3,)), Dense(2, activation=slope, name="leaky")])
    with pytest.raises(ValueError, match=r"'leaky'.*negative_slope=0\.1"):
        lk.io.save_keras(model, tmp_path / "m.weights.h5")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".h5", ".keras.zip", ".weights", ""])
def test_other_suffixes_are_refused(tmp_path, suffix):
    model = lk.Sequential([Input((3,)), Dense(2)])
    with pytest.raises(ValueError, match=r"'\.keras'.*'\.weights\.h5'") as info:
        lk.io.save_keras(model, tmp_path / f"m{suffix}")
    assert f"m{suffix}" in str(info.value)


def test_unbuilt_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        lk.io.save_keras(lk.Sequential([Dense(2)]), tmp_path / "m.keras")


def test_non_model_is_refused(tmp_path):
    with pytest.raises(TypeError, match="Sequential"):
        lk.io.save_keras(Dense(2), tmp_path / "m.keras")


def test_missing_folder_names_the_path(tmp_path):
    model = lk.Sequential([Input((3,)), Dense(2)])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lk.io.save_keras(model, tmp_path / "nowhere" / "m.keras")


@pytest.mark.parametrize("suffix", [".keras", ".weights.h5"])
def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch, suffix):
    model = lk.Sequential([Input((3,)), Dense(2)])
    target = tmp_path / f"m{suffix}"
    lk.io.save_keras(model, target)
    before = target.read_bytes()

    def explode(*args, **kwargs):
        raise OSError(28, "No space left on device")

    writer = "_write_archive" if suffix == ".keras" else "_write_weights"
    monkeypatch.setattr(keras_export, writer, explode)
    with pytest.raises(OSError, match="previous file"):
        lk.io.save_keras(model, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary left
