"""Reshape: shapes, -1 inference, errors, a float64 finite-difference gradient check, and
against real Keras 3 the layer's values and gradients, its error messages, and two
Sequential models (predictions with copied weights, then one SGD step).

All Keras work runs in ONE subprocess for this module (``KERAS_BACKEND=torch``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from keras_process import IMPORT_KERAS, run_keras

import layerkit as lk
from layerkit.layers import Dense, Flatten, Input, Reshape

KERAS_SCRIPT = r"""
import json, sys, warnings
folder = sys.argv[1]
{import_keras}
import torch
import numpy as np

warnings.simplefilter("ignore")
job = json.load(open(f"{folder}/job.json"))
arrays = dict(np.load(f"{folder}/job.npz"))
out, info = {}, {"keras_version": keras.__version__, "backend": keras.backend.backend()}

info["shapes"] = {}
for name, case in job["cases"].items():
    layer = keras.layers.Reshape(tuple(case["target_shape"]))
    x = torch.tensor(arrays[name + ".x"], requires_grad=True)
    y = layer(x)
    (y * torch.tensor(arrays[name + ".r"])).sum().backward()
    out[name + ".y"] = y.detach().cpu().numpy()
    out[name + ".grad"] = x.grad.cpu().numpy()
    symbolic = (None, *arrays[name + ".x"].shape[1:])
    info["shapes"][name] = list(layer.compute_output_shape(symbolic))
    info[name + ".config"] = layer.get_config()["target_shape"]

info["errors"] = {}
for name, (target_shape, input_shape) in job["errors"].items():
    try:
        layer = keras.layers.Reshape(tuple(target_shape))
        layer.compute_output_shape(tuple(input_shape))
        info["errors"][name] = None
    except ValueError as error:
        info["errors"][name] = str(error)

for spec in job["models"]:
    name = spec["name"]
    layers = [keras.Input((spec["inputs"],))]
    for kind, argument in spec["layers"]:
        layers.append(getattr(keras.layers, kind)(*([tuple(argument)] if kind == "Reshape"
                                                     else [argument] if argument else [])))
    model = keras.Sequential(layers)
    weights = [arrays[f"{name}.w{i}"] for i in range(spec["n_weights"])]
    model.set_weights(weights)
    x, y = arrays[name + ".x"], arrays[name + ".y"]
    out[name + ".predict"] = model.predict(x, verbose=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    for i, w in enumerate(model.get_weights()):
        out[f"{name}.after{i}"] = w
    out[name + ".predict_after"] = model.predict(x, verbose=0)

np.savez(f"{folder}/results.npz", **out)
json.dump(info, open(f"{folder}/results.json", "w"))
""".replace("{import_keras}", IMPORT_KERAS)

# name: (target_shape, input shape with batch)
CASES = {
    "flat_to_2d": ((2, 3), (4, 6)),
    "infer_last": ((3, -1), (4, 12)),
    "infer_first_from_3d": ((-1, 2), (4, 3, 4)),
    "infer_middle_4d": ((2, -1, 2), (2, 3, 4)),
    "to_flat": ((-1,), (3, 2, 5)),
}

# name: (target_shape, input shape): Keras refuses them in compute_output_shape
ERRORS = {
    "size_changed": ((4,), (None, 6)),
    "not_divisible": ((-1, 4), (None, 6)),
    "zero_known": ((-1, 0), (None, 6)),
    "below_minus_one": ((-2, 3), (None, 6)),
    "two_unknown": ((-1, -1), (None, 6)),
}

# Sequential models: Input((inputs,)), then (class, argument) layers.
MODELS = [
    {"name": "reshape_flatten_dense", "inputs": 6,
     "layers": [["Reshape", [2, 3]], ["Flatten", None], ["Dense", 2]]},
    # gradients flow back through Reshape into the first Dense; Dense on a rank-3 input
    {"name": "dense_reshape_dense", "inputs": 4,
     "layers": [["Dense", 6], ["Reshape", [3, -1]], ["Dense", 2], ["Flatten", None],
                ["Dense", 1]]},
]  # fmt: skip


def _case_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    target_shape, input_shape = CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    x = rng.normal(size=input_shape).astype(np.float32)
    out = Reshape(target_shape).compute_output_shape(input_shape)
    return x, rng.normal(size=out).astype(np.float32)


def _build_layerkit(spec: dict) -> lk.Sequential:
    layers = [Input((spec["inputs"],))]
    for kind, argument in spec["layers"]:
        cls = getattr(lk.layers, kind)
        layers.append(
            cls(tuple(argument)) if kind == "Reshape" else cls(*[argument] * bool(argument))
        )
    return lk.Sequential(layers)


def _model_arrays(spec: dict) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(sum(map(ord, spec["name"])))
    lk.utils.clear_session()
    model = _build_layerkit(spec)
    arrays = {f"w{i}": rng.normal(scale=0.5, size=w.shape).astype(np.float32)
              for i, w in enumerate(model.get_weights())}  # fmt: skip
    arrays["x"] = rng.normal(size=(8, spec["inputs"])).astype(np.float32)
    arrays["y"] = rng.normal(size=(8, *model.output_shape[1:])).astype(np.float32)
    return arrays


@pytest.fixture(scope="module")
def keras_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_reshape")
    arrays = {}
    job = {"cases": {}, "errors": ERRORS, "models": []}
    for name, (target_shape, _) in CASES.items():
        arrays[name + ".x"], arrays[name + ".r"] = _case_arrays(name)
        job["cases"][name] = {"target_shape": list(target_shape)}
    for spec in MODELS:
        model_arrays = _model_arrays(spec)
        for key, value in model_arrays.items():
            arrays[f"{spec['name']}.{key}"] = value
        job["models"].append({**spec, "n_weights": sum(k.startswith("w") for k in model_arrays)})
    np.savez(folder / "job.npz", **arrays)
    (folder / "job.json").write_text(json.dumps(job))
    run_keras(KERAS_SCRIPT, str(folder), cwd=folder)
    return dict(np.load(folder / "results.npz")), json.loads((folder / "results.json").read_text())


# --- against Keras -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_values_gradients_and_shapes_match_keras(keras_results, fresh_session, name):
    numbers, info = keras_results
    target_shape, _ = CASES[name]
    x, r = _case_arrays(name)
    layer = Reshape(target_shape)
    layer.build((None, *x.shape[1:]))
    assert list(layer.output_shape) == info["shapes"][name]
    assert list(layer.get_config()["target_shape"]) == info[name + ".config"]
    y, backward = layer.forward(x, training=True)
    np.testing.assert_array_equal(y, numbers[name + ".y"])
    np.testing.assert_array_equal(backward(r.copy(), True), numbers[name + ".grad"])


@pytest.mark.parametrize("name", list(ERRORS))
def test_errors_match_keras(keras_results, name):
    target_shape, input_shape = ERRORS[name]
    message = keras_results[1]["errors"][name]
    assert message is not None, "Keras accepted this shape"
    with pytest.raises(ValueError) as error:
        Reshape(target_shape).compute_output_shape(input_shape)
    # the same words as Keras, without its typo
    assert str(error.value) == message.replace("cannot by divided", "cannot be divided")


@pytest.mark.parametrize("spec", MODELS, ids=[spec["name"] for spec in MODELS])
def test_sequential_predicts_and_fits_as_keras(keras_results, spec):
    numbers = keras_results[0]
    arrays = _model_arrays(spec)
    lk.utils.clear_session()
    model = _build_layerkit(spec)
    n_weights = len(model.get_weights())
    model.set_weights([arrays[f"w{i}"] for i in range(n_weights)])
    name = spec["name"]
    np.testing.assert_allclose(
        model.predict(arrays["x"], verbose=0), numbers[name + ".predict"], rtol=1e-5, atol=1e-6
    )
    model.compile(optimizer=lk.optim.SGD(0.1), loss="mse")
    model.fit(arrays["x"], arrays["y"], batch_size=8, epochs=1, shuffle=False, verbose=0)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, numbers[f"{name}.after{i}"], rtol=1e-5, atol=1e-6)
        assert not np.array_equal(w, arrays[f"w{i}"])  # the step changed every weight
    np.testing.assert_allclose(
        model.predict(arrays["x"], verbose=0), numbers[name + ".predict_after"], rtol=1e-5,
        atol=1e-6,
    )  # fmt: skip


# --- layerkit alone --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_gradient_matches_finite_differences(name, float64, fresh_session, numeric_grad):
    target_shape, input_shape = CASES[name]
    rng = np.random.default_rng(5)
    layer = Reshape(target_shape)
    x = rng.normal(size=input_shape)
    y, backward = layer.forward(x, training=True)
    r = rng.normal(size=y.shape)
    dx = np.array(backward(r.copy(), True), copy=True)
    assert dx.shape == x.shape

    def f():
        out, _ = layer.forward(x, training=True)
        return float(np.sum(out * r))

    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-8)
    assert backward(r, False) is None


def test_output_shapes():
    assert Reshape((3, 4)).compute_output_shape((None, 12)) == (None, 3, 4)
    assert Reshape((-1, 2, 2)).compute_output_shape((None, 12)) == (None, 3, 2, 2)
    assert Reshape((-1, 3)).compute_output_shape((None, None)) == (None, None, 3)
    assert Reshape((2, 3)).compute_output_shape((5, 3, 2)) == (5, 2, 3)
    assert Reshape(()).compute_output_shape((None, 1, 1)) == (None,)


def test_call_keeps_the_batch_axis_and_copies(fresh_session):
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    y = Reshape((3, -1))(x)
    assert y.shape == (4, 3, 2)
    assert not np.shares_memory(y, x)
    np.testing.assert_array_equal(y.reshape(4, 6), x)
    with pytest.raises(ValueError, match=r"input_shape=\(6,\), target_shape=\(4,\)"):
        Reshape((4,))(x)


@pytest.mark.parametrize(
    ("target_shape", "error", "match"),
    [
        (5, TypeError, r"target_shape=5"),
        ((None, 3), TypeError, r"target_shape=\(None, 3\)"),
        ((2.0, 3), TypeError, r"target_shape=\(2.0, 3\)"),
        ((True, 3), TypeError, r"target_shape=\(True, 3\)"),
        ((-2, 3), ValueError, r"non-negative integer.*Received: target_shape=\(-2, 3\)"),
        ((-1, 2, -1), ValueError, r"at most one unknown.*target_shape=\(-1, 2, -1\)"),
    ],
)
def test_bad_target_shapes(target_shape, error, match):
    with pytest.raises(error, match=match):
        Reshape(target_shape)


def test_build_in_a_model_checks_the_size(fresh_session):
    with pytest.raises(ValueError, match=r"total size of the tensor must be unchanged"):
        lk.Sequential([Input((5,)), Reshape((2, 3))])


def test_config_round_trip(fresh_session):
    layer = Reshape([np.int64(2), -1], name="grid")
    config = layer.get_config()
    assert config["target_shape"] == (2, -1)
    assert all(type(d) is int for d in config["target_shape"])
    again = lk.layers.deserialize(json.loads(json.dumps(lk.layers.serialize(layer))))
    assert isinstance(again, Reshape)
    assert again.get_config() == config


def test_reshape_in_a_sequential_trains(fresh_session):
    model = lk.Sequential([Input((6,)), Reshape((2, 3)), Flatten(), Dense(2)])
    assert model.output_shape == (None, 2)
    model.compile(optimizer=lk.optim.SGD(0.1), loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    y = x[:, :2] - x[:, 3:5]
    history = model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.1 * history.history["loss"][0]
