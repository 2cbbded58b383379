"""Dense: shapes, forward values, and finite-difference gradients (float64) for the kernel,
the bias and the input with every activation."""

from __future__ import annotations

import json

import numpy as np
import pytest

import layerkit as lk
from layerkit.layers import Dense

ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu"]


def _inputs_away_from_kinks(layer, rng, shape, margin=1e-2):
    """Random inputs whose pre-activations are at least ``margin`` from 0 (ReLU kinks)."""
    for _ in range(100):
        x = rng.normal(size=shape)
        z = x.reshape(-1, shape[-1]) @ layer.kernel.value
        if layer.use_bias:
            z = z + layer.bias.value
        if np.abs(z).min() > margin:
            return x
    raise AssertionError("could not draw inputs away from the kinks")


def _make_layer(activation, rng, units=4, in_dim=5, use_bias=True):
    layer = Dense(units, activation=activation, use_bias=use_bias)
    layer.build((None, in_dim))
    assert layer.kernel.value.dtype == np.float64
    layer.kernel.assign(rng.normal(size=(in_dim, units)))
    if use_bias:
        layer.bias.assign(rng.normal(scale=0.5, size=units))
    return layer


def _projection_loss(layer, x, r):
    y, _ = layer.forward(x, training=True)
    return float(np.sum(y * r))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_gradients_match_finite_differences(
    activation, float64, fresh_session, rng, numeric_grad
):
    layer = _make_layer(activation, rng)
    x = _inputs_away_from_kinks(layer, rng, (3, 5))
    r = rng.normal(size=(3, 4))

    y, backward = layer.forward(x, training=True)
    assert y.shape == (3, 4)
    dx = np.array(backward(r.copy(), True), copy=True)
    kernel_grad = layer.kernel.grad.copy()
    bias_grad = layer.bias.grad.copy()

    def f():
        return _projection_loss(layer, x, r)

    np.testing.assert_allclose(
        kernel_grad, numeric_grad(f, layer.kernel.value), rtol=1e-6, atol=1e-8
    )
    np.testing.assert_allclose(bias_grad, numeric_grad(f, layer.bias.value), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-8)


def test_dense_without_bias_gradients(float64, fresh_session, rng, numeric_grad):
    layer = _make_layer("tanh", rng, use_bias=False)
    assert layer.bias is None
    assert len(layer.weights) == 1
    x = rng.normal(size=(3, 5))
    r = rng.normal(size=(3, 4))
    _, backward = layer.forward(x, training=True)
    dx = np.array(backward(r.copy(), True), copy=True)
    kernel_grad = layer.kernel.grad.copy()

    def f():
        return _projection_loss(layer, x, r)

    np.testing.assert_allclose(
        kernel_grad, numeric_grad(f, layer.kernel.value), rtol=1e-6, atol=1e-8
    )
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-8)


def test_dense_on_rank3_inputs(float64, fresh_session, rng, numeric_grad):
    layer = _make_layer("sigmoid", rng, units=3, in_dim=4)
    x = rng.normal(size=(2, 5, 4))
    r = rng.normal(size=(2, 5, 3))
    y, backward = layer.forward(x, training=True)
    assert y.shape == (2, 5, 3)
    expected = 1 / (1 + np.exp(-(x @ layer.kernel.value + layer.bias.value)))
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    dx = np.array(backward(r.copy(), True), copy=True)
    assert dx.shape == x.shape
    kernel_grad = layer.kernel.grad.copy()

    def f():
        return _projection_loss(layer, x, r)

    np.testing.assert_allclose(
        kernel_grad, numeric_grad(f, layer.kernel.value), rtol=1e-6, atol=1e-8
    )
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-8)


def test_backward_without_dx_still_writes_weight_grads(float64, fresh_session, rng):
    layer = _make_layer("linear", rng)
    x = rng.normal(size=(3, 5))
    r = rng.normal(size=(3, 4))
    _, backward = layer.forward(x, training=True)
    assert backward(r.copy(), False) is None
    np.testing.assert_allclose(layer.kernel.grad, x.T @ r, rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, r.sum(axis=0), rtol=1e-12)


def test_frozen_layer_passes_gradients_but_keeps_weight_grads(float64, fresh_session, rng):
    layer = _make_layer("linear", rng)
    layer.kernel.grad[...] = 7.0
    layer.trainable = False
    x = rng.normal(size=(3, 5))
    r = rng.normal(size=(3, 4))
    _, backward = layer.forward(x, training=True)
    dx = backward(r.copy(), True)
    np.testing.assert_allclose(dx, r @ layer.kernel.value.T, rtol=1e-12)
    assert np.all(layer.kernel.grad == 7.0)
    assert layer.trainable_weights == []
    assert [p.name for p in layer.non_trainable_weights] == [layer.kernel.name, layer.bias.name]


def test_forward_values_and_call(fresh_session, rng):
    layer = Dense(3, activation="relu", name="hidden1", input_dim=2)
    layer.build((None, 2))
    layer.set_weights([np.array([[1.0, -1.0, 0.5], [2.0, 0.0, -1.0]]), np.array([0.0, 1.0, 0.0])])
    out = layer(np.array([[1.0, 1.0], [-1.0, 0.5]]))
    np.testing.assert_allclose(out, [[3.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    assert out.dtype == np.float32
    assert layer.kernel.name == "hidden1/kernel"
    assert layer.bias.name == "hidden1/bias"


def test_call_returns_a_fresh_array(fresh_session):
    layer = Dense(2, kernel_initializer="ones")
    a = layer(np.ones((1, 3)))
    b = layer(2 * np.ones((1, 3)))
    assert a.tolist() == [[3.0, 3.0]]
    assert b.tolist() == [[6.0, 6.0]]


def test_shapes_and_counts(fresh_session):
    layer = Dense(300, activation="relu", name="hidden1", input_dim=784)
    layer.build((None, 784))
    assert layer.kernel.shape == (784, 300)
    assert layer.bias.shape == (300,)
    assert layer.count_params() == 784 * 300 + 300
    assert layer.compute_output_shape((None, 784)) == (None, 300)
    assert layer.output_shape == (None, 300)


def test_set_weights_validates_and_changes_nothing(fresh_session):
    layer = Dense(2, input_dim=3)
    layer.build((None, 3))
    before = layer.get_weights()
    with pytest.raises(ValueError, match=r"expects 2 weights.*received 1"):
        layer.set_weights([np.zeros((3, 2))])
    with pytest.raises(ValueError, match=r"expected shape \(2,\), received \(3,\)"):
        layer.set_weights([np.zeros((3, 2)), np.zeros(3)])
    after = layer.get_weights()
    for a, b in zip(before, after, strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("units", [-3, 0])
def test_bad_units(units):
    with pytest.raises(ValueError, match=rf"units={units}"):
        Dense(units)


def test_numpy_integer_units_and_input_dim(fresh_session):
    layer = Dense(np.int64(3), input_dim=np.int32(2))
    assert layer.units == 3
    assert type(layer.units) is int
    assert layer.get_config()["input_shape"] == [2]
    json.dumps(layer.get_config())


def test_non_integer_units():
    with pytest.raises(TypeError, match=r"units=2.5"):
        Dense(2.5)
    with pytest.raises(TypeError, match=r"units=True"):
        Dense(True)


def test_config_round_trip(fresh_session):
    layer = Dense(
        7, activation="tanh", use_bias=False, name="d", input_dim=3, kernel_initializer="he_normal"
    )
    config = layer.get_config()
    assert config["units"] == 7
    assert config["activation"] == "tanh"
    assert config["use_bias"] is False
    assert config["input_shape"] == [3]
    assert config["kernel_initializer"] == "he_normal"
    again = Dense.from_config(config)
    assert again.get_config() == config


def test_automatic_names(fresh_session):
    assert [Dense(1).name for _ in range(3)] == ["dense", "dense_1", "dense_2"]
    lk.utils.clear_session()
    assert Dense(1).name == "dense"
