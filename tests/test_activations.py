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


# Keras 3's further activations (compared with real Keras in test_activations_keras.py).
MORE_NAMES = ["selu", "gelu", "silu", "softplus", "softsign", "hard_sigmoid", "hard_silu"]
MORE_NAMES += ["exponential", "relu6", "mish", "log_softmax"]
ALIASES = ["swish", "hard_swish"]
# Away from every kink (0, +-3, 6), so central differences see one branch.
Z_SMOOTH = np.array([[-7.3, -3.4, -2.2, -0.6, 0.3, 1.1], [2.6, 4.4, 6.7, 9.1, -1.7, -25.0]])


@pytest.mark.parametrize(
    "f",
    [activations.get(name) for name in MORE_NAMES]
    + [
        activations.GELU(approximate=True),
        activations.ReLU(negative_slope=0.3, max_value=5.0, threshold=1.0),
        activations.ReLU(negative_slope=0.2, max_value=6.0),
        activations.ReLU(threshold=0.5),
    ],
    ids=repr,
)
def test_more_activations_backward_matches_finite_differences(f, float64, numeric_grad):
    # e^9 would drown the differences in rounding: exponential gets smaller inputs.
    z = Z_SMOOTH / 4 if f.name == "exponential" else Z_SMOOTH.copy()
    r = np.random.default_rng(7).normal(size=z.shape)
    y = f(z)
    analytic = f.backward_(r.copy(), y)
    numeric = numeric_grad(lambda: float(np.sum(f(z) * r)), z)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_more_specific_values():
    z = np.array([-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 7.0])
    np.testing.assert_allclose(activations.hard_sigmoid(z), np.clip(z + 3, 0, 6) / 6)
    np.testing.assert_allclose(activations.hard_silu(z), z * np.clip(z + 3, 0, 6) / 6)
    np.testing.assert_allclose(activations.relu6(z), [0, 0, 0, 0, 1.5, 3, 6])
    np.testing.assert_allclose(activations.softsign(z), z / (1 + np.abs(z)))
    np.testing.assert_allclose(activations.softplus(z), np.log1p(np.exp(z)), rtol=1e-14)
    np.testing.assert_allclose(activations.silu(z), z / (1 + np.exp(-z)), rtol=1e-14)
    np.testing.assert_allclose(activations.exponential(z), np.exp(z))
    sp = np.log1p(np.exp(z))
    np.testing.assert_allclose(activations.mish(z), z * np.tanh(sp), rtol=1e-14)
    selu = 1.0507009873554805 * np.where(z > 0, z, 1.6732632423543772 * np.expm1(z))
    np.testing.assert_allclose(activations.selu(z), selu, rtol=1e-15)
    row = z[None, :]
    np.testing.assert_allclose(
        activations.log_softmax(row), np.log(activations.softmax(row)), rtol=1e-13
    )
    # gelu = z Phi(z); Phi(+-1.5) from the normal table: 0.9331927987311419
    np.testing.assert_allclose(
        activations.gelu(np.array([-1.5, 1.5])),
        [-1.5 * (1 - 0.9331927987311419), 1.5 * 0.9331927987311419],
        rtol=1e-13,
    )


def test_aliases_are_the_same_function():
    assert activations.get("swish") is activations.silu is activations.swish
    assert activations.get("hard_swish") is activations.hard_silu is activations.hard_swish
    assert activations.serialize(activations.get("swish")) == "silu"


def test_bad_more_activation_options():
    with pytest.raises(ValueError, match=r"threshold >= 0.*threshold=-1"):
        activations.ReLU(threshold=-1)
    with pytest.raises(ValueError, match=r"max_value >= 0"):
        activations.ReLU(max_value=-2.0)
    with pytest.raises(TypeError, match=r"approximate='yes'"):
        activations.GELU(approximate="yes")


def test_get_by_name_object_and_none():
    assert activations.get("ReLU") is activations.relu
    assert activations.get(activations.tanh) is activations.tanh
    assert activations.get(None) is activations.linear
    assert activations.names() == sorted(NAMES + MORE_NAMES + ALIASES)


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


@pytest.mark.parametrize(
    "activation",
    [
        lk.activations.LeakyReLU(0.1),
        lk.activations.ELU(0.5),
        lk.activations.ReLU(max_value=6.0, negative_slope=0.1),
        lk.activations.GELU(approximate=True),
    ],
    ids=["leaky_relu", "elu", "relu", "gelu"],
)
def test_non_default_settings_survive_configs_and_checkpoints(activation, tmp_path):
    # Stored by name alone, these would load with the registered defaults.
    spec = lk.activations.serialize(activation)
    assert spec == {"class_name": type(activation).__name__, "config": activation.get_config()}
    model = lk.Sequential([lk.layers.Input((3,)), lk.layers.Dense(2, activation=activation)])
    loaded = lk.load_model(model.save(tmp_path / "m.h5"))
    restored = loaded.layers[0].activation
    assert type(restored) is type(activation)
    assert restored.get_config() == activation.get_config()
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_default_settings_are_stored_by_name():
    for name in ("relu", "leaky_relu", "elu", "gelu", "selu"):
        assert lk.activations.serialize(lk.activations.get(name)) == name


def test_unknown_activation_config_is_refused():
    with pytest.raises(ValueError, match="Unknown activation config"):
        lk.activations.get({"class_name": "Evil", "config": {}})
    with pytest.raises(ValueError, match="Invalid config for activation LeakyReLU"):
        lk.activations.get({"class_name": "LeakyReLU", "config": {"slope": 1}})
