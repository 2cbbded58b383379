"""Numbers against real Keras 3 (PyTorch backend), built as the same computation:

* the cross-entropies, values and gradients (torch autograd), on predictions that are
  not probabilities: Keras clips them to [1e-7, 1 - 1e-7], and the gradient is zero
  where it clipped;
* one SGD(0.1) step on a model whose output has no softmax / sigmoid;
* ``evaluate`` on confident softmax / sigmoid models, where layerkit's fused loss is
  exact and Keras's is clipped;
* the per-sample loss and metric functions, ``to_categorical``, the initializer aliases,
  and numpy scalars as options.

All Keras work runs in ONE subprocess for this module (``KERAS_BACKEND=torch``): importing
Keras takes seconds, and layerkit's own process must never import it. The subprocess reads
the inputs from ``job.npz`` / ``job.json`` and writes ``results.npz`` / ``results.json``.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from keras_process import IMPORT_KERAS, run_keras

import layerkit as lk
from layerkit import losses, metrics

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

for name, case in job["losses"].items():
    y_pred = torch.tensor(arrays[name + ".y_pred"], requires_grad=True)
    loss = getattr(keras.losses, case["cls"])(from_logits=case["from_logits"])
    value = loss(arrays[name + ".y_true"], y_pred)
    value.backward()
    out[name + ".value"] = np.float64(value.detach().cpu().numpy())
    out[name + ".grad"] = y_pred.grad.cpu().numpy()

def model_for(spec):
    model = keras.Sequential(
        [keras.Input((spec["inputs"],)), keras.layers.Dense(spec["units"], spec["activation"])]
    )
    model.set_weights([arrays[spec["name"] + ".kernel"], arrays[spec["name"] + ".bias"]])
    model.compile(optimizer=keras.optimizers.SGD(spec["learning_rate"]), loss=spec["loss"])
    return model

for spec in job["models"]:
    model, name = model_for(spec), spec["name"]
    x, y = arrays[name + ".x"], arrays[name + ".y"]
    out[name + ".evaluate"] = np.float64(model.evaluate(x, y, batch_size=len(x), verbose=0))
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    out[name + ".kernel_after"], out[name + ".bias_after"] = model.get_weights()

for name, case in job["functions"].items():
    function = getattr(getattr(keras, case["module"]), case["function"])
    result = function(arrays[name + ".y_true"], arrays[name + ".y_pred"], **case["kwargs"])
    out[name] = keras.ops.convert_to_numpy(result)

for name, case in job["to_categorical"].items():
    out[name] = keras.utils.to_categorical(arrays[name], **case)

info["initializers"] = {}
for name in job["initializers"]:
    alias = getattr(keras.initializers, name)
    initializer = alias()
    info["initializers"][name] = {
        "is_class": isinstance(alias, type),
        "class_name": type(initializer).__name__,
        "config_keys": sorted(initializer.get_config()),
    }

info["numpy_options"] = {}
for name, (path, kwargs, attribute) in job["numpy_options"].items():
    target = keras
    for part in path.split("."):
        target = getattr(target, part)
    kwargs = {key: getattr(np, kind)(value) for key, (kind, value) in kwargs.items()}
    try:
        value = getattr(target(**kwargs), attribute)
        info["numpy_options"][name] = {"accepted": True, "value": float(value)}
    except Exception as error:
        info["numpy_options"][name] = {"accepted": False, "error": str(error)[:200]}

np.savez(f"{folder}/results.npz", **out)
json.dump(info, open(f"{folder}/results.json", "w"))
""".replace("{import_keras}", IMPORT_KERAS)

# --- the inputs --------------------------------------------------------------------------

N, K = 6, 4


def _not_probabilities(rng, shape) -> np.ndarray:
    """Outputs of a layer without softmax: negative, above 1, rows of any sum."""
    return rng.normal(scale=2.0, size=shape).astype(np.float32)


def _loss_cases() -> dict[str, dict]:
    rng = np.random.default_rng(20)
    labels = np.array([0, 3, 1, 2, 2, 0])
    one_hot = np.eye(K, dtype=np.float32)[labels]
    soft = one_hot.copy()
    soft[1] = [0.1, 0.2, 0.3, 0.4]
    binary = rng.integers(0, 2, size=(N, 3)).astype(np.float32)
    binary[0, 0] = 0.3
    probabilities = rng.uniform(0.05, 1.0, size=(N, K)).astype(np.float32)
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    # exact 0 and 1 (clipped), and an unnormalised row of positives
    edges = probabilities.copy()
    edges[0] = [0.0, 1.0, 0.0, 0.0]
    edges[1] = [0.0, 0.0, 0.0, 1.0]
    edges[2] *= 3.0
    cases = {}
    for from_logits in (False, True):
        tag = "logits" if from_logits else "probabilities"
        for kind, y_pred in (("raw", _not_probabilities(rng, (N, K))), ("edges", edges)):
            if from_logits and kind == "edges":
                continue
            cases[f"cce_{tag}_{kind}"] = ("CategoricalCrossentropy", from_logits, soft, y_pred)
            cases[f"scce_{tag}_{kind}"] = (
                "SparseCategoricalCrossentropy",
                from_logits,
                labels,
                y_pred,
            )
        bce_pred = _not_probabilities(rng, (N, 3))
        cases[f"bce_{tag}_raw"] = ("BinaryCrossentropy", from_logits, binary, bce_pred)
    bce_edges = rng.uniform(0.0, 1.0, size=(N, 3)).astype(np.float32)
    bce_edges[0] = [0.0, 1.0, 0.5]
    cases["bce_probabilities_edges"] = ("BinaryCrossentropy", False, binary, bce_edges)
    return {
        name: {"cls": cls, "from_logits": fl, "y_true": y, "y_pred": p}
        for name, (cls, fl, y, p) in cases.items()
    }


def _model_cases() -> list[dict]:
    """Dense layers trained one SGD(0.1) step and evaluated, in both frameworks."""
    rng = np.random.default_rng(21)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    labels = rng.integers(0, 3, size=8)
    cases = [
        # no softmax, probability loss: the case (weights to 2e12 before the fix)
        dict(name="linear_cce", activation="linear", loss="categorical_crossentropy",
             x=x, y=np.eye(3, dtype=np.float32)[labels], units=3),
        dict(name="linear_scce", activation="linear", loss="sparse_categorical_crossentropy",
             x=x, y=labels, units=3),
        dict(name="linear_bce", activation="linear", loss="binary_crossentropy",
             x=x, y=(labels[:, None] == 1).astype(np.float32), units=1),
        # confident models: logits [[0, 30, 0], [20, 0, 0]] for classes [0, 0], and
        # [[-30], [20]] for labels [[1], [1]] (x is the identity, so logits = kernel rows)
        dict(name="confident_softmax", activation="softmax", loss="categorical_crossentropy",
             x=np.eye(2, dtype=np.float32), y=np.eye(3, dtype=np.float32)[[0, 0]], units=3,
             kernel=np.array([[0.0, 30.0, 0.0], [20.0, 0.0, 0.0]], np.float32)),
        dict(name="confident_sigmoid", activation="sigmoid", loss="binary_crossentropy",
             x=np.eye(2, dtype=np.float32), y=np.ones((2, 1), np.float32), units=1,
             kernel=np.array([[-30.0], [20.0]], np.float32)),
    ]  # fmt: skip
    for case in cases:
        inputs = case["x"].shape[1]
        case.setdefault("kernel", rng.normal(size=(inputs, case["units"])).astype(np.float32))
        case["bias"] = np.zeros(case["units"], np.float32)
        case["inputs"] = inputs
        case["learning_rate"] = 0.1
    return cases


def _function_cases() -> dict[str, dict]:
    rng = np.random.default_rng(22)
    y_reg = rng.normal(size=(N, 3)).astype(np.float32)
    p_reg = rng.normal(size=(N, 3)).astype(np.float32)
    labels = rng.integers(0, K, size=N)
    one_hot = np.eye(K, dtype=np.float32)[labels]
    scores = _not_probabilities(rng, (N, K))
    binary = rng.integers(0, 2, size=(N, 3)).astype(np.float32)
    binary_pred = rng.uniform(size=(N, 3)).astype(np.float32)
    column = rng.integers(0, 2, size=N).astype(np.float32)
    column_pred = rng.normal(size=(N, 1)).astype(np.float32)
    cases = {
        "mean_squared_error": ("losses", {}, y_reg, p_reg),
        "mean_absolute_error": ("losses", {}, y_reg, p_reg),
        "mean_squared_error_flat_labels": ("losses", {}, column, column_pred),
        "binary_crossentropy": ("losses", {}, binary, binary_pred),
        "binary_crossentropy_logits": ("losses", {"from_logits": True}, binary, scores[:, :3]),
        "categorical_crossentropy": ("losses", {}, one_hot, scores),
        "categorical_crossentropy_logits": ("losses", {"from_logits": True}, one_hot, scores),
        "sparse_categorical_crossentropy": ("losses", {}, labels, np.abs(scores)),
        "sparse_categorical_crossentropy_logits": (
            "losses",
            {"from_logits": True},
            labels[:, None],
            scores,
        ),
        "binary_accuracy": ("metrics", {}, binary, binary_pred),
        "binary_accuracy_threshold_0": ("metrics", {"threshold": 0.0}, column, column_pred),
        "categorical_accuracy": ("metrics", {}, one_hot, scores),
        "sparse_categorical_accuracy": ("metrics", {}, labels[:, None], scores),
        "metrics_mean_absolute_error": ("metrics", {}, y_reg, p_reg),
    }
    result = {}
    for name, (module, kwargs, y_true, y_pred) in cases.items():
        function = name.removeprefix("metrics_")
        for suffix in ("_flat_labels", "_logits", "_threshold_0"):
            function = function.removesuffix(suffix)
        result[name] = dict(
            module=module, function=function, kwargs=kwargs, y_true=y_true, y_pred=y_pred
        )
    return result


TO_CATEGORICAL = {
    "integral_floats": (np.array([0.0, 1.0, 2.0, 1.0]), {}),
    "labels_column": (np.array([[1], [0], [3]]), {"num_classes": 5}),
}

INITIALIZERS = [
    "zeros",
    "ones",
    "constant",
    "random_normal",
    "random_uniform",
    "variance_scaling",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_normal",
]

# name: (Keras path, {argument: (numpy type, value)}, attribute), and the layerkit twin
NUMPY_OPTIONS = {
    "dropout_rate": ("layers.Dropout", {"rate": ("float32", 0.5)}, "rate"),
    "dropout_rate_int": ("layers.Dropout", {"rate": ("int64", 0)}, "rate"),
    "binary_accuracy_threshold": ("metrics.BinaryAccuracy", {"threshold": ("float32", 0.25)},
                                  "threshold"),
    "random_normal_stddev": ("initializers.RandomNormal", {"stddev": ("float32", 0.25)},
                             "stddev"),
    "random_uniform_maxval": ("initializers.RandomUniform", {"maxval": ("float64", 0.5)},
                              "maxval"),
    "constant_value": ("initializers.Constant", {"value": ("float32", 2.5)}, "value"),
    "variance_scaling_scale": ("initializers.VarianceScaling", {"scale": ("float32", 2.0)},
                               "scale"),
    "dense_units": ("layers.Dense", {"units": ("int64", 3)}, "units"),
}  # fmt: skip


def _layerkit_option(name: str):
    path, kwargs, attribute = NUMPY_OPTIONS[name]
    target = lk
    for part in path.split("."):
        target = getattr(target, part)
    kwargs = {key: getattr(np, kind)(value) for key, (kind, value) in kwargs.items()}
    return getattr(target(**kwargs), attribute)


# --- running Keras once ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cases():
    return {
        "losses": _loss_cases(),
        "models": _model_cases(),
        "functions": _function_cases(),
    }


@pytest.fixture(scope="module")
def keras_results(cases, tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_semantics")
    arrays = {}
    job = {
        "losses": {},
        "models": [],
        "functions": {},
        "to_categorical": {},
        "initializers": INITIALIZERS,
        "numpy_options": NUMPY_OPTIONS,
    }
    for name, case in cases["losses"].items():
        arrays[name + ".y_true"], arrays[name + ".y_pred"] = case["y_true"], case["y_pred"]
        job["losses"][name] = {"cls": case["cls"], "from_logits": case["from_logits"]}
    for case in cases["models"]:
        for key in ("x", "y", "kernel", "bias"):
            arrays[f"{case['name']}.{key}"] = case[key]
        job["models"].append(
            {k: case[k] for k in ("name", "activation", "loss", "units", "inputs",
                                  "learning_rate")}
        )  # fmt: skip
    for name, case in cases["functions"].items():
        arrays[name + ".y_true"], arrays[name + ".y_pred"] = case["y_true"], case["y_pred"]
        job["functions"][name] = {k: case[k] for k in ("module", "function", "kwargs")}
    for name, (labels, kwargs) in TO_CATEGORICAL.items():
        arrays[name] = labels
        job["to_categorical"][name] = kwargs
    np.savez(folder / "job.npz", **arrays)
    (folder / "job.json").write_text(json.dumps(job))
    run_keras(KERAS_SCRIPT, str(folder), cwd=folder)
    numbers = dict(np.load(folder / "results.npz"))
    info = json.loads((folder / "results.json").read_text())
    return numbers, info


def test_keras_is_version_3_on_torch(keras_results):
    info = keras_results[1]
    assert int(info["keras_version"].split(".")[0]) == 3
    assert info["backend"] == "torch"


# --- the cross-entropies: values and gradients ---------------------------------------------


def _layerkit_loss(case: dict):
    loss = getattr(losses, case["cls"])(from_logits=case["from_logits"])
    y_pred = case["y_pred"].copy()
    y_true = loss.check_targets(case["y_true"], y_pred.shape)
    return loss.value_and_grad(y_true, y_pred)


@pytest.mark.parametrize("name", list(_loss_cases()))
def test_loss_value_and_gradient_match_keras(cases, keras_results, name):
    numbers = keras_results[0]
    value, grad = _layerkit_loss(cases["losses"][name])
    assert grad.dtype == np.float32
    assert value == pytest.approx(float(numbers[name + ".value"]), rel=1e-5, abs=1e-6)
    expected = numbers[name + ".grad"]
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6 * scale)


def test_clipped_predictions_pass_no_gradient(cases, keras_results):
    """Where Keras clipped a prediction its gradient is exactly 0, and layerkit's too."""
    numbers = keras_results[0]
    for name in ("bce_probabilities_raw", "bce_probabilities_edges"):
        y_pred = cases["losses"][name]["y_pred"]
        clipped = (y_pred < 1e-7) | (y_pred > np.float32(1 - 1e-7))
        assert clipped.any()
        assert np.all(numbers[name + ".grad"][clipped] == 0)
        assert np.all(_layerkit_loss(cases["losses"][name])[1][clipped] == 0)


# --- one SGD step without softmax; evaluate on confident models ----------------------------


def _layerkit_model(case: dict) -> lk.Sequential:
    lk.utils.clear_session()
    model = lk.Sequential(
        [lk.layers.Input((case["inputs"],)), lk.layers.Dense(case["units"], case["activation"])]
    )
    model.set_weights([case["kernel"], case["bias"]])
    model.compile(optimizer=lk.optim.SGD(case["learning_rate"]), loss=case["loss"])
    return model


@pytest.mark.parametrize("name", ["linear_cce", "linear_scce", "linear_bce"])
def test_one_sgd_step_without_softmax_matches_keras(cases, keras_results, name):
    numbers = keras_results[0]
    case = next(c for c in cases["models"] if c["name"] == name)
    model = _layerkit_model(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the "no softmax" warning is not under test here
        assert model.evaluate(case["x"], case["y"], batch_size=8, verbose=0) == pytest.approx(
            float(numbers[name + ".evaluate"]), rel=1e-5
        )
        model.fit(case["x"], case["y"], batch_size=8, epochs=1, shuffle=False, verbose=0)
    kernel, bias = model.get_weights()
    np.testing.assert_allclose(kernel, numbers[name + ".kernel_after"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bias, numbers[name + ".bias_after"], rtol=1e-4, atol=1e-5)
    assert np.abs(kernel).max() < 10  # it went to 2e12 when the clip was ignored


@pytest.mark.parametrize(
    ("name", "loss"),
    [
        ("confident_softmax", losses.CategoricalCrossentropy()),
        ("confident_sigmoid", losses.BinaryCrossentropy()),
    ],
)
def test_fused_loss_is_exact_where_keras_clips(cases, keras_results, name, loss):
    """The numbers quoted in the BinaryCrossentropy / CategoricalCrossentropy docstrings:
    layerkit's evaluate gives the exact loss of the logits (15.00), Keras on torch the
    clipped one (8.06), which is also what the probability form gives on predict's output."""
    case = next(c for c in cases["models"] if c["name"] == name)
    model = _layerkit_model(case)
    logits = case["x"].astype(np.float64) @ case["kernel"]
    if case["activation"] == "softmax":
        top = logits.max(axis=-1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(logits - top).sum(axis=-1))
        exact = np.mean(lse - (case["y"] * logits).sum(axis=-1))
    else:
        exact = np.mean(np.logaddexp(0.0, logits) - case["y"] * logits)
    layerkit_value = model.evaluate(case["x"], case["y"], verbose=0)
    keras_value = float(keras_results[0][name + ".evaluate"])
    assert exact == pytest.approx(15.0, abs=1e-6)
    assert layerkit_value == pytest.approx(exact, rel=1e-6)
    assert keras_value == pytest.approx((-np.log(1e-7) + 1.2e-7) / 2, rel=1e-4)  # 8.06
    assert loss(case["y"], model.predict(case["x"], verbose=0)) == pytest.approx(
        keras_value, rel=1e-5
    )


# --- functions, to_categorical, initializers, numpy options --------------------------------


@pytest.mark.parametrize("name", list(_function_cases()))
def test_per_sample_functions_match_keras(cases, keras_results, name):
    case = cases["functions"][name]
    function = getattr(getattr(lk, case["module"]), case["function"])
    got = function(case["y_true"], case["y_pred"], **case["kwargs"])
    expected = keras_results[0][name]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_short_names_are_the_functions():
    # tf.keras 2's lk.metrics.mae / mse (Keras 3 knows them as strings only)
    assert metrics.mae is losses.mae is losses.mean_absolute_error
    assert metrics.mse is losses.mse is losses.mean_squared_error
    y, p = [[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]]
    np.testing.assert_allclose(metrics.mse(y, p), [0.5, 0.5])
    np.testing.assert_allclose(metrics.mae(y, p), [0.5, 0.5])


@pytest.mark.parametrize("name", list(TO_CATEGORICAL))
def test_to_categorical_matches_keras(keras_results, name):
    labels, kwargs = TO_CATEGORICAL[name]
    np.testing.assert_array_equal(lk.utils.to_categorical(labels, **kwargs), keras_results[0][name])


@pytest.mark.parametrize("name", INITIALIZERS)
def test_initializer_aliases_are_keras_classes(keras_results, name):
    keras_side = keras_results[1]["initializers"][name]
    alias = getattr(lk.initializers, name)
    assert isinstance(alias, type)
    assert keras_side["is_class"]
    initializer = alias()
    assert type(initializer).__name__ == keras_side["class_name"]
    # Keras 3.15's VarianceScaling has input_axes / output_axes too, which layerkit lacks
    assert set(initializer.get_config()) <= set(keras_side["config_keys"])
    assert type(lk.initializers.get(name)) is alias


@pytest.mark.parametrize("name", list(NUMPY_OPTIONS))
def test_numpy_scalar_options_are_accepted(keras_results, name):
    keras_side = keras_results[1]["numpy_options"][name]
    value = _layerkit_option(name)
    assert type(value) in (int, float)  # stored as plain Python numbers: configs are JSON
    if keras_side["accepted"]:
        assert value == pytest.approx(keras_side["value"])
