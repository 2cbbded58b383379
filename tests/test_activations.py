"""Activation functions: values, derivatives from the output, stability, lookup."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import layerkit as lk
from layerkit import activations

Z = np.array([[-3.0, -0.5, 0.25, 2.0], [1.5, -2.5, 0.75, -0.1]])


def _reference(name: str, z: np.ndarray) -> np.ndarray:
    if name == "linear":
        return z.copy()
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, 0.2 * z)
    if name == "elu":
        return np.where(z > 0, z, np.exp(z) - 1.0)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise AssertionError(name)


NAMES = ["linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax"]


@pytest.mark.parametrize("name", NAMES)
def test_values_match_formulas(name):
    f = activations.get(name)
    z = Z.copy()
    y = f(z)
    np.testing.assert_allclose(y, _reference(name, Z), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(z, Z)  # calling does not touch the input
    assert f.name == name
    assert activations.serialize(f) == name


@pytest.mark.parametrize("name", NAMES)
def test_backward_from_output_matches_finite_differences(name, numeric_grad):
    f = activations.get(name)
    z = Z.copy()
    r = np.random.default_rng(5).normal(size=Z.shape)
    y = f(z)
    analytic = f.backward_(r.copy(), y)
    numeric = numeric_grad(lambda: float(np.sum(f(z) * r)), z)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_specific_values():
    assert activations.relu(np.array([-1.0, 0.0, 2.0])).tolist() == [0.0, 0.0, 2.0]
    np.testing.assert_allclose(activations.leaky_relu(np.array([-1.0, 3.0])), [-0.2, 3.0])
    np.testing.assert_allclose(activations.elu(np.array([-1.0, 3.0])), [np.exp(-1) - 1, 3.0])
    np.testing.assert_allclose(activations.sigmoid(np.array([0.0])), [0.5])
    np.testing.assert_allclose(activations.softmax(np.array([[0.0, 0.0]])), [[0.5, 0.5]])
    np.testing.assert_allclose(
        activations.softmax(np.array([[1.0, 2.0, 3.0]])),
        [[0.09003057, 0.24472847, 0.66524096]],
        rtol=1e-7,
    )


def test_large_inputs_do_not_overflow():
    z = np.array([[-1000.0, 0.0, 1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = activations.sigmoid(z)
        sm = activations.softmax(z)
        e = activations.elu(z)
        t = activations.tanh(z)
    np.testing.assert_allclose(s, [[0.0, 0.5, 1.0]], atol=1e-300)
    np.testing.assert_allclose(sm, [[0.0, 0.0, 1.0]])
    np.testing.assert_allclose(e, [[-1.0, 0.0, 1000.0]])
    np.testing.assert_allclose(t, [[-1.0, 0.0, 1.0]])
    assert np.isfinite(s).all()
    assert np.isfinite(sm).all()


def test_float32_stays_float32_and_ints_become_float():
    y = activations.sigmoid(np.array([1.0, 2.0], dtype=np.float32))
    assert y.dtype == np.float32
    y = activations.relu(np.array([-2, 3]))
    assert y.dtype.kind == "f"
    assert y.tolist() == [0.0, 3.0]


def test_softmax_rows_sum_to_one():
    z = np.random.default_rng(0).normal(scale=10, size=(6, 9))
    np.testing.assert_allclose(activations.softmax(z).sum(axis=-1), np.ones(6), rtol=1e-12)


def test_get_by_name_object_and_none():
    assert activations.get("ReLU") is activations.relu
    assert activations.get(activations.tanh) is activations.tanh
    assert activations.get(None) is activations.linear
    assert activations.names() == sorted(NAMES)


def test_unknown_activation_name():
    with pytest.raises(ValueError, match=r"Unknown activation.*activation='swishy'"):
        activations.get("swishy")


def test_plain_function_is_rejected():
    with pytest.raises(TypeError, match=r"activation="):
        activations.get(np.tanh)


def test_dense_rejects_unknown_activation():
    with pytest.raises(ValueError, match=r"activation='relu6x'"):
        lk.layers.Dense(3, activation="relu6x")


@pytest.mark.parametrize(
    ("cls", "option", "value"),
    [
        (activations.LeakyReLU, "negative_slope", np.float32(0.1)),
        (activations.LeakyReLU, "negative_slope", 0.0),
        (activations.LeakyReLU, "negative_slope", 1.5),
        (activations.ELU, "alpha", np.float64(0.5)),
        (activations.ELU, "alpha", np.int64(2)),
    ],
)
def test_parameterised_activation_gradients(cls, option, value, numeric_grad):
    """Numpy scalars are accepted, and the backward pass from the output is right for
    every allowed value (a slope of 0 gives y = -0.0 below zero, which ``y < 0`` missed)."""
    f = cls(**{option: value})
    assert getattr(f, option) == pytest.approx(float(value))
    assert type(getattr(f, option)) is float
    z = Z.copy()
    r = np.random.default_rng(6).normal(size=Z.shape)
    analytic = f.backward_(r.copy(), f(z))
    numeric = numeric_grad(lambda: float(np.sum(f(z) * r)), z)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_bad_activation_options():
    with pytest.raises(ValueError, match=r"negative_slope >= 0.*negative_slope=-0.1"):
        activations.LeakyReLU(negative_slope=-0.1)
    with pytest.raises(TypeError, match=r"negative_slope='0.2'"):
        activations.LeakyReLU(negative_slope="0.2")
    with pytest.raises(ValueError, match=r"alpha > 0.*alpha=0"):
        activations.ELU(alpha=0)
