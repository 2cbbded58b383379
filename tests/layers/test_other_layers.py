"""Activation, Dropout, Flatten and InputLayer: values and gradients."""

from __future__ import annotations

import json

import numpy as np
import pytest

import layerkit as lk
from layerkit.layers import Activation, Dropout, Flatten, Input, InputLayer
from layerkit.models.node import SymbolicTensor

ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu"]


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_layer_gradient(name, float64, fresh_session, rng, numeric_grad):
    layer = Activation(name)
    x = rng.normal(size=(3, 4))
    x[np.abs(x) < 1e-2] = 0.5  # away from the ReLU kink
    r = rng.normal(size=(3, 4))
    y, backward = layer.forward(x, training=True)
    np.testing.assert_allclose(y, lk.activations.get(name)(x), rtol=1e-12)
    dx = np.array(backward(r.copy(), True), copy=True)

    def f():
        out, _ = layer.forward(x, training=True)
        return float(np.sum(out * r))

    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-8)
    assert layer.get_config()["activation"] == name
    assert layer.count_params() == 0


def test_activation_layer_call_leaves_input(fresh_session):
    x = np.array([[-1.0, 2.0]], dtype=np.float32)
    out = Activation("relu")(x)
    assert out.tolist() == [[0.0, 2.0]]
    assert x.tolist() == [[-1.0, 2.0]]


def test_dropout_mask_scaling_and_backward(float64, fresh_session, rng):
    layer = Dropout(0.25, seed=3)
    x = rng.uniform(0.5, 1.5, size=(40, 50))
    y, backward = layer.forward(x, training=True)
    y = y.copy()
    mask = y / x
    kept = mask != 0
    # every survivor is scaled by 1 / (1 - rate), the rest are exactly 0
    np.testing.assert_allclose(mask[kept], 1.0 / 0.75, rtol=1e-12)
    assert np.all(y[~kept] == 0.0)
    assert kept.mean() == pytest.approx(0.75, abs=0.03)
    dy = rng.normal(size=x.shape)
    dx = backward(dy.copy(), True)
    np.testing.assert_allclose(dx, dy * mask, rtol=1e-12, atol=0)
    assert backward(dy.copy(), False) is None


def test_dropout_gradient_with_fixed_mask(float64, fresh_session, rng, numeric_grad):
    """With the mask held fixed, Dropout is linear: its finite-difference gradient is the
    mask, and backward must return dy times the mask."""
    layer = Dropout(0.5, seed=0)
    x = rng.normal(size=(4, 6))
    r = rng.normal(size=(4, 6))
    y, backward = layer.forward(x, training=True)
    mask = np.where(y != 0, 2.0, 0.0)
    dx = np.array(backward(r.copy(), True), copy=True)
    numeric = numeric_grad(lambda: float(np.sum(x * mask * r)), x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)


def test_dropout_is_identity_outside_training(fresh_session, rng):
    layer = Dropout(0.5, seed=1)
    x = rng.normal(size=(5, 5))
    y, backward = layer.forward(x, training=False)
    assert np.array_equal(y, x)
    dy = rng.normal(size=(5, 5))
    assert np.array_equal(backward(dy, True), dy)
    zero = Dropout(0.0)
    y, _ = zero.forward(x, training=True)
    assert np.array_equal(y, x)


def test_dropout_seed_reproducible(fresh_session):
    x = np.ones((8, 8))
    a = Dropout(0.5, seed=42)(x, training=True)
    b = Dropout(0.5, seed=42)(x, training=True)
    c = Dropout(0.5, seed=43)(x, training=True)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    ("rate", "error"),
    [
        (-0.1, ValueError),
        (1.0, ValueError),
        (1.5, ValueError),
        ("0.5", TypeError),
        (True, TypeError),
    ],
)
def test_dropout_bad_rate(rate, error):
    with pytest.raises(error, match=r"rate="):
        Dropout(rate)


@pytest.mark.parametrize("rate", [np.float32(0.5), np.float64(0.25), np.int64(0), 0])
def test_dropout_accepts_numpy_scalars(rate):
    layer = Dropout(rate, seed=np.int64(3))
    assert layer.rate == float(rate)
    config = layer.get_config()
    assert type(config["rate"]) is float
    assert type(config["seed"]) is int
    json.dumps(config)  # numpy scalars would not serialise
    x = np.ones((4, 6), np.float32)
    assert np.array_equal(layer(x, training=True), Dropout(float(rate), seed=3)(x, training=True))


def test_dropout_bad_seed():
    with pytest.raises(TypeError, match=r"seed=1.5"):
        Dropout(0.5, seed=1.5)


def test_dropout_config():
    config = Dropout(0.3, seed=5, name="drop").get_config()
    assert config["rate"] == 0.3
    assert config["seed"] == 5
    assert Dropout.from_config(config).rate == 0.3


def test_flatten_values_and_gradient(float64, fresh_session, rng, numeric_grad):
    layer = Flatten()
    x = rng.normal(size=(2, 3, 4))
    y, backward = layer.forward(x, training=True)
    assert y.shape == (2, 12)
    assert np.array_equal(y, x.reshape(2, 12))
    r = rng.normal(size=(2, 12))
    dx = np.array(backward(r.copy(), True), copy=True)
    assert dx.shape == (2, 3, 4)

    def f():
        out, _ = layer.forward(x, training=True)
        return float(np.sum(out * r))

    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-8)
    assert layer.compute_output_shape((None, 28, 28)) == (None, 784)


def test_flatten_in_a_model(fresh_session):
    model = lk.Sequential(
        [Input((2, 3)), Flatten(), lk.layers.Dense(1, kernel_initializer="ones", use_bias=False)]
    )
    assert model.output_shape == (None, 1)
    out = model.predict(np.arange(12, dtype=np.float32).reshape(2, 2, 3))
    np.testing.assert_allclose(out, [[15.0], [51.0]])


def test_input_layer(fresh_session):
    # As keras.Input: a symbolic tensor, made by its InputLayer's call without inputs.
    tensor = Input((784,), name="pixels")
    assert isinstance(tensor, SymbolicTensor)
    assert (tensor.shape, tensor.dtype, tensor.name) == ((None, 784), "float32", "pixels")
    layer = tensor.node.layer
    assert isinstance(layer, InputLayer)
    assert layer.output is tensor
    assert tensor.node.inputs == []
    assert layer.shape == (784,)
    assert layer.get_config()["shape"] == [784]
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(tensor)
    with pytest.raises(ValueError, match=r"shape"):
        InputLayer()
    with pytest.raises(ValueError, match=r"shape=\(0,\)"):
        Input((0,))
