"""ReLU, LeakyReLU, ELU, Softmax and PReLU layers: float64 finite-difference gradients,
values and configs against real Keras 3, and a Sequential against Keras's predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest

import layerkit as lk
from layerkit.layers import ELU, LeakyReLU, PReLU, ReLU, Softmax

# (layerkit layer, Keras class name, constructor arguments); inputs of shape (3, 4, 5)
CASES = [
    ("ReLU", {}),
    ("ReLU", {"max_value": 1.0}),
    ("ReLU", {"negative_slope": 0.2}),
    ("ReLU", {"max_value": 2.0, "negative_slope": 0.5, "threshold": 0.3}),
    ("LeakyReLU", {}),
    ("LeakyReLU", {"negative_slope": 0.05}),
    ("ELU", {}),
    ("ELU", {"alpha": 0.5}),
    ("Softmax", {}),
    ("Softmax", {"axis": 1}),
    ("Softmax", {"axis": [1, 2]}),
    ("PReLU", {}),
    ("PReLU", {"shared_axes": [1]}),
    ("PReLU", {"shared_axes": [1, 2]}),
]
LAYERS = {"ReLU": ReLU, "LeakyReLU": LeakyReLU, "ELU": ELU, "Softmax": Softmax, "PReLU": PReLU}


def _ids(case):
    name, kwargs = case
    return name + "".join(f"-{k}={v}" for k, v in kwargs.items())


def _away_from_kinks(rng, shape, kinks=(0.0, 0.3, 1.0, 2.0), margin=1e-2):
    x = rng.normal(size=shape)
    for kink in kinks:
        close = np.abs(x - kink) < margin
        x[close] += 3 * margin
    return x


def _build(name, kwargs, shape, rng):
    layer = LAYERS[name](**kwargs)
    layer.build((None, *shape[1:]))
    if name == "PReLU":
        layer.alpha.assign(rng.normal(size=layer.alpha.shape))
    return layer


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_gradients_match_finite_differences(case, float64, fresh_session, rng, numeric_grad):
    name, kwargs = case
    x = _away_from_kinks(rng, (3, 4, 5))
    layer = _build(name, kwargs, x.shape, rng)
    r = rng.normal(size=x.shape)
    y, backward = layer.forward(x, training=True)
    assert y.dtype == np.float64
    assert y.shape == x.shape
    dx = np.array(backward(r.copy(), True), copy=True)

    def f():
        out, _ = layer.forward(x, training=True)
        return float(np.sum(out * r))

    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-8)
    if name == "PReLU":
        np.testing.assert_allclose(
            layer.alpha.grad, numeric_grad(f, layer.alpha.value), rtol=1e-6, atol=1e-8
        )


def test_prelu_shapes_and_frozen_grads(float64, fresh_session, rng):
    layer = PReLU(shared_axes=[1, 2])
    layer.build((None, 4, 5, 6))
    assert layer.alpha.shape == (1, 1, 6)
    assert layer.alpha.name == "p_re_lu/alpha"
    assert np.all(layer.alpha.value == 0)
    layer.alpha.grad[...] = 7.0
    layer.trainable = False
    x = rng.normal(size=(2, 4, 5, 6))
    _, backward = layer.forward(x, training=True)
    dx = backward(np.ones_like(x), True)
    np.testing.assert_array_equal(dx, (x > 0).astype(float))
    assert np.all(layer.alpha.grad == 7.0)
    layer.trainable = True
    _, backward = layer.forward(x, training=True)
    assert backward(np.ones_like(x), False) is None
    np.testing.assert_allclose(layer.alpha.grad, np.minimum(x, 0).sum(axis=(0, 1, 2))[None, None])


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_values_match_keras(case, keras, fresh_session, rng):
    name, kwargs = case
    x = rng.normal(size=(3, 4, 5)).astype("float32")
    x[0, 0, :3] = [0.0, 0.3, 2.0]  # on the kinks
    layer = _build(name, kwargs, x.shape, rng)
    theirs = getattr(keras.layers, name)(**kwargs)
    if name == "PReLU":
        theirs.build(x.shape)
        theirs.set_weights(layer.get_weights())
    expected = keras.ops.convert_to_numpy(theirs(x))
    np.testing.assert_allclose(layer(x), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_config_keys_match_keras(case, keras, fresh_session):
    name, kwargs = case
    layer = LAYERS[name](**kwargs)
    config = layer.get_config()
    theirs = getattr(keras.layers, name)(**kwargs).get_config()
    assert set(config) == set(theirs)
    for key, value in kwargs.items():
        assert config[key] == value
    json.dumps(config)
    again = lk.layers.deserialize(lk.layers.serialize(layer))
    assert type(again) is type(layer)
    assert again.get_config() == config


def test_defaults_are_keras_layer_defaults(fresh_session):
    assert LeakyReLU().negative_slope == 0.3  # the function's default is 0.2
    assert lk.activations.leaky_relu.negative_slope == 0.2
    assert ReLU().get_config()["max_value"] is None
    assert ELU().alpha == 1.0
    assert Softmax().axis == -1
    assert PReLU().get_config()["alpha_initializer"] == "zeros"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ReLU(negative_slope=-0.1), "negative_slope"),
        (lambda: ReLU(max_value=-1.0), "max_value"),
        (lambda: ReLU(threshold=-1.0), "threshold"),
        (lambda: LeakyReLU(negative_slope=-0.3), "negative_slope"),
        (lambda: ELU(alpha=0.0), "alpha"),
        (lambda: ELU(alpha=-1.0), "alpha"),
        (lambda: PReLU(shared_axes=[0]), "shared_axes"),
        (lambda: PReLU(alpha_regularizer="l5"), "alpha_regularizer"),
    ],
)
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_argument_types_are_refused():
    with pytest.raises(TypeError, match="negative_slope"):
        LeakyReLU(negative_slope="0.3")
    with pytest.raises(TypeError, match="axis"):
        Softmax(axis=1.5)
    with pytest.raises(ValueError, match="axis"):
        Softmax(axis=3).build((None, 4))
    with pytest.raises(ValueError, match="shared axis"):
        PReLU(shared_axes=[2]).build((None, 4))


def _models(keras, rng):
    lk_layers = [
        lk.layers.Input((6,)),
        lk.layers.Dense(8),
        PReLU(alpha_initializer="ones"),
        lk.layers.Dense(8),
        ReLU(max_value=3.0, negative_slope=0.1),
        lk.layers.Dense(8),
        LeakyReLU(),
        lk.layers.Dense(8),
        ELU(alpha=0.7),
        lk.layers.Dense(3),
        Softmax(),
    ]
    model = lk.Sequential(lk_layers)
    theirs = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8),
            keras.layers.PReLU(),
            keras.layers.Dense(8),
            keras.layers.ReLU(max_value=3.0, negative_slope=0.1),
            keras.layers.Dense(8),
            keras.layers.LeakyReLU(),
            keras.layers.Dense(8),
            keras.layers.ELU(alpha=0.7),
            keras.layers.Dense(3),
            keras.layers.Softmax(),
        ]
    )
    # Small weights: confident outputs would meet Keras's 1e-7 clip of probabilities,
    # which the exact fused softmax cross-entropy of layerkit does not have.
    weights = [rng.normal(scale=0.3, size=w.shape).astype("float32") for w in model.get_weights()]
    model.set_weights(weights)
    theirs.set_weights(weights)
    return model, theirs


def test_sequential_matches_keras_and_trains(keras, fresh_session, rng):
    model, theirs = _models(keras, rng)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.integers(0, 3, size=32)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    model.compile(optimizer=lk.optim.SGD(0.05), loss="sparse_categorical_crossentropy")
    theirs.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    alpha_before = model.layers[1].alpha.numpy()
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    theirs.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert not np.array_equal(model.layers[1].alpha.numpy(), alpha_before)
    for ours, expected in zip(model.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-4, atol=1e-5
    )
