"""Activations against real Keras 3 (torch backend): values, gradients, names, export.

Keras's gradients come from torch autograd through ``keras.activations.<name>``; layerkit's
from ``backward_`` given the output. The inputs cover negatives, zero, the kinks and
magnitudes far beyond where exp overflows (a RuntimeWarning from layerkit is an error).
"""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk
from layerkit import activations

# Negatives, zero, kinks (+-3, 6), and large magnitudes; one row per softmax-like row.
ROW = [-1e30, -1e4, -100.0, -30.0, -20.5, -5.0, -3.0, -2.9, -1.0, -0.5, -1e-3, 0.0]
ROW2 = [1e-3, 0.5, 1.0, 2.9, 3.0, 5.0, 6.0, 6.5, 20.5, 30.0, 1e4, 1e30]
INPUTS = np.array([ROW, ROW2, [-0.7, 0.2, 1.3, -2.2, 0.9, -4.1, 2.2, 0.05, -0.3, 1.7, -1.1, 0.6]])

NEW_NAMES = [
    "selu",
    "gelu",
    "silu",
    "swish",
    "softplus",
    "softsign",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "exponential",
    "relu6",
    "mish",
    "log_softmax",
]
MAIN_NAME = {"swish": "silu", "hard_swish": "hard_silu"}


def _keras_value_and_grad(keras, fn, z: np.ndarray, r: np.ndarray):
    import torch

    x = torch.tensor(z, requires_grad=True)
    y = fn(x)
    (y * torch.tensor(r)).sum().backward()
    return y.detach().numpy(), x.grad.numpy()


def _check_against_keras(keras, f, keras_fn, z, dtype, rtol, atol):
    z = z.astype(dtype)
    r = np.random.default_rng(3).uniform(0.5, 1.5, size=z.shape).astype(dtype)
    if keras_fn is None:
        keras_fn = keras.activations.get(f.name)
    expected_y, expected_dz = _keras_value_and_grad(keras, keras_fn, z, r)
    y = f(z)
    assert y.dtype == dtype
    dz = f.backward_(r.copy(), y)
    assert dz.dtype == dtype
    np.testing.assert_allclose(y, expected_y, rtol=rtol, atol=atol)
    np.testing.assert_allclose(dz, expected_dz, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NEW_NAMES)
def test_values_and_gradients_match_keras(keras, name, dtype):
    f = activations.get(name)
    assert f is getattr(activations, name)
    assert f.name == MAIN_NAME.get(name, name)
    tol = {np.float32: (2e-6, 1e-6), np.float64: (1e-12, 1e-14)}[dtype]
    if dtype == np.float64 and name in ("softplus", "mish"):
        tol = (2e-9, 1e-14)  # torch's softplus returns z itself above 20 (off by e^-20)
    if dtype == np.float64 and name in ("hard_sigmoid", "hard_silu", "hard_swish"):
        tol = (1e-7, 1e-14)  # torch's double kernels multiply by the float 1/6
    z = INPUTS
    if name == "exponential":  # e^z is inf beyond ~88 (float32) in Keras too; keep r * inf
        z = np.where(np.abs(INPUTS) > 1e3, np.sign(INPUTS) * 1e3, INPUTS)
    _check_against_keras(keras, f, keras.activations.get(name), z, dtype, *tol)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"negative_slope": 0.3},
        {"max_value": 6.0},
        {"max_value": 2.5},
        {"threshold": 1.0},
        {"negative_slope": 0.1, "threshold": 0.5},
        {"negative_slope": 0.25, "max_value": 4.0, "threshold": 1.0},
        {"negative_slope": 0.2, "max_value": 6.0},
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_options_match_keras(keras, options, dtype):
    # max_value itself is avoided except for 6 (see ReLU: torch's clip passes 1 there).
    z = INPUTS.copy()
    if options.get("max_value") not in (None, 6.0):
        z[z == 6.0] = 6.25
    f = activations.ReLU(**options)
    _check_against_keras(
        keras, f, lambda x: keras.activations.relu(x, **options), z, dtype, 1e-6, 1e-7
    )
    # Called as Keras's function, the options apply once.
    np.testing.assert_allclose(activations.relu(z, **options), f(z))


def test_relu_function_keeps_the_default_fast_instance():
    assert activations.get("relu") is activations.relu
    assert activations.relu.config == {"negative_slope": 0.0, "max_value": None, "threshold": 0.0}
    assert activations.relu(np.array([-1.0, 2.0]), negative_slope=0.0).tolist() == [0.0, 2.0]
    np.testing.assert_allclose(
        activations.relu(np.array([-10.0, -5.0, 0.0, 5.0, 10.0]), threshold=5.0),
        [-0.0, -0.0, 0.0, 0.0, 10.0],
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_approximate_matches_keras(keras, dtype):
    f = activations.GELU(approximate=True)
    fn = lambda x: keras.activations.gelu(x, approximate=True)  # noqa: E731
    # torch's float32 z^3 overflows to nan at -1e30 (layerkit gives 0): left out.
    z = np.where(np.abs(INPUTS) > 1e4, 1e4 * np.sign(INPUTS), INPUTS)
    _check_against_keras(keras, f, fn, z, dtype, 2e-6, 1e-6)
    extremes = np.array([-1e30, 1e30], dtype=np.float32)
    np.testing.assert_array_equal(f(extremes), [0.0, extremes[1]])


def test_gelu_by_name_is_the_exact_form(keras):
    import inspect

    assert inspect.signature(keras.activations.gelu).parameters["approximate"].default is False
    assert activations.gelu.approximate is False
    # Phi(1) = 0.841344746068543
    np.testing.assert_allclose(activations.gelu(np.array([1.0])), [0.841344746068543], 1e-14)


def test_no_overflow_warnings_on_extremes():
    z = np.array([[-3.4e38, -1e30, -800.0, 0.0, 800.0, 1e30, 3.4e38]], dtype=np.float32)
    for name in NEW_NAMES + ["relu"]:
        f = activations.get(name)
        y = f(z)
        f.backward_(np.ones_like(z), y)
        if name == "exponential":
            assert y[0, -1] == np.inf
        elif name == "selu":  # 1.05 * 3.4e38 is beyond float32
            assert np.isfinite(y[:, :-1]).all()
        elif name == "log_softmax":  # -3.4e38 - 3.4e38 is beyond float32
            assert np.isfinite(y[:, 1:]).all()
        else:
            assert np.isfinite(y).all(), name


@pytest.mark.parametrize("name", NEW_NAMES)
def test_dense_by_name_and_config_round_trip(name):
    layer = lk.layers.Dense(3, activation=name, input_dim=4)
    config = layer.get_config()
    assert config["activation"] == MAIN_NAME.get(name, name)
    again = lk.layers.Dense.from_config(config)
    assert again.activation is activations.get(name)
    act = lk.layers.Activation(name)
    assert act.get_config()["activation"] == MAIN_NAME.get(name, name)


def test_kept_input_is_per_output_array():
    """Two outputs of one shared activation each keep their own z."""
    a = np.array([-1.5, 0.5, 2.0])
    b = np.array([3.0, -0.2, -4.0])
    ya = activations.gelu(a)
    yb = activations.gelu(b)
    ga = activations.gelu.backward_(np.ones(3), ya)
    gb = activations.gelu.backward_(np.ones(3), yb)
    np.testing.assert_allclose(ga, activations.gelu.backward_(np.ones(3), activations.gelu(a)))
    assert not np.allclose(ga, gb)
    with pytest.raises(ValueError, match=r"needs its input"):
        activations.gelu.backward_(np.ones(3), ya.copy())


def test_dense_gradient_through_kept_input(float64, numeric_grad):
    layer = lk.layers.Dense(3, activation="mish", input_dim=4)
    layer.build((None, 4))
    x = np.random.default_rng(2).normal(size=(5, 4))
    r = np.random.default_rng(4).normal(size=(5, 3))
    _, backward = layer.forward(x, True)
    dx = backward(r.copy())
    numeric = numeric_grad(lambda: float(np.sum(layer.forward(x, False)[0] * r)), x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)


EXPORTABLE = ["selu", "gelu", "swish", "softplus", "softsign", "hard_sigmoid", "hard_swish"]
EXPORTABLE += ["exponential", "relu6", "mish", "log_softmax"]


def test_export_writes_keras_names_and_loads_back(keras, tmp_path, fresh_session):
    dense = [lk.layers.Dense(3, activation=n, name=f"d{i}") for i, n in enumerate(EXPORTABLE)]
    model = lk.Sequential([lk.layers.InputLayer((3,)), *dense, lk.layers.Activation("selu")])
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    for layer in dense:  # keep exponential's inputs small
        layer.kernel.value[...] *= 0.3
    expected = model.predict(x, verbose=0)
    path = lk.io.save_keras(model, tmp_path / "acts.keras")
    loaded = keras.models.load_model(path)
    names = [keras.activations.serialize(layer.activation) for layer in loaded.layers]
    assert names == [MAIN_NAME.get(n, n) for n in EXPORTABLE] + ["selu"]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    again = lk.io.load_keras(path)
    assert [layer.activation for layer in again.layers] == [
        activations.get(n) for n in EXPORTABLE
    ] + [activations.selu]
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-7)


def test_load_keras_maps_keras_names(keras, tmp_path):
    names = ["swish", "hard_swish", "gelu", "relu6", "selu", "log_softmax"]
    model = keras.Sequential(
        [keras.Input((4,)), *[keras.layers.Dense(4, activation=n) for n in names]]
    )
    model.save(tmp_path / "k.keras")
    loaded = lk.io.load_keras(tmp_path / "k.keras")
    assert [layer.activation for layer in loaded.layers] == [activations.get(n) for n in names]
    x = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    ("activation", "message"),
    [
        (activations.ReLU(max_value=6.0), r"relu.*config=.*max_value"),
        (activations.GELU(approximate=True), r"gelu.*approximate=True"),
    ],
)
def test_non_default_options_are_not_exported(tmp_path, activation, message):
    model = lk.Sequential([lk.layers.InputLayer((2,)), lk.layers.Dense(2, activation=activation)])
    with pytest.raises(ValueError, match=message):
        lk.io.save_keras(model, tmp_path / "m.keras")
