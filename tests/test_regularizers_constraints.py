"""Weight penalties and constraints against real Keras 3: the same model from copied
weights trains to the same weights and losses; penalty gradients against central
differences; configs, checkpoints and Keras files keep them."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk


def _models(keras, rng):
    def build(api, reg, con):
        inputs = api.layers.Input((6,))
        h = api.layers.Dense(
            5,
            activation="tanh",
            name="hidden",
            kernel_regularizer=reg.L1L2(l1=0.01, l2=0.02),
            bias_regularizer=reg.L2(0.05),
            kernel_constraint=con.MaxNorm(0.6),
        )(inputs)
        out = api.layers.Dense(
            2,
            name="out",
            kernel_regularizer=reg.L1(0.03),
            kernel_constraint=con.NonNeg(),
            bias_constraint=con.UnitNorm(),
        )(h)
        return api.Model(inputs, out)

    theirs = build(keras, keras.regularizers, keras.constraints)
    ours = build(lk, lk.regularizers, lk.constraints)
    weights = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    return ours, theirs


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_penalties_and_constraints_train_as_in_keras(keras, fresh_session, rng, optimizer):
    ours, theirs = _models(keras, rng)
    x = rng.normal(size=(48, 6)).astype("float32")
    y = rng.normal(size=(48, 2)).astype("float32")
    np.testing.assert_allclose(sum(ours.losses), float(sum(theirs.losses)), rtol=1e-5)
    make = {
        "sgd": lambda api: api.optimizers.SGD(0.05),
        "adam": lambda api: api.optimizers.Adam(0.01),
    }
    ours.compile(optimizer=make[optimizer](lk), loss="mse")
    theirs.compile(optimizer=make[optimizer](keras), loss="mse")
    h_ours = ours.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0).history
    h_theirs = theirs.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h_ours["loss"], h_theirs["loss"], rtol=1e-4)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # The constraints hold after training.
    assert np.all(np.linalg.norm(ours.get_layer("hidden").kernel.value, axis=0) <= 0.6 + 1e-6)
    assert np.all(ours.get_layer("out").kernel.value >= 0)
    # evaluate adds the penalties too, as Keras.
    np.testing.assert_allclose(ours.evaluate(x, y), theirs.evaluate(x, y, verbose=0), rtol=1e-4)


@pytest.mark.parametrize(
    "regularizer",
    [lk.regularizers.L1(0.3), lk.regularizers.L2(0.2), lk.regularizers.L1L2(0.1, 0.4)],
)
def test_penalty_gradients_match_central_differences(float64, regularizer, rng):
    w = rng.normal(size=(4, 3))
    w[np.abs(w) < 1e-3] = 0.5  # away from |w|'s kink
    expected = lk.testing.numeric_gradient(lambda: regularizer(w), w)
    np.testing.assert_allclose(regularizer.gradient(w), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    "constraint",
    [
        lk.constraints.MaxNorm(0.5),
        lk.constraints.NonNeg(),
        lk.constraints.UnitNorm(axis=1),
        lk.constraints.MinMaxNorm(0.2, 0.7, rate=0.5),
    ],
)
def test_constraints_project_as_keras(keras, constraint, rng):
    w = rng.normal(size=(5, 3)).astype("float32")
    keras_constraint = getattr(keras.constraints, type(constraint).__name__)(
        **constraint.get_config()
    )
    np.testing.assert_allclose(
        constraint(w), keras.ops.convert_to_numpy(keras_constraint(w)), rtol=1e-5, atol=1e-7
    )


def test_configs_and_checkpoints_keep_them(fresh_session, rng, tmp_path):
    model = lk.Sequential(
        [
            lk.layers.Input((3,)),
            lk.layers.Dense(4, kernel_regularizer="l2", kernel_constraint="max_norm", name="d"),
        ]
    )
    model.compile(optimizer="sgd", loss="mse")
    model.fit(rng.normal(size=(8, 3)), rng.normal(size=(8, 4)), verbose=0)
    loaded = lk.load_model(model.save(tmp_path / "m.h5"))
    layer = loaded.get_layer("d")
    assert layer.kernel_regularizer.get_config() == {"l2": 0.01}
    assert layer.kernel_constraint.get_config() == {"max_value": 2.0, "axis": 0}
    assert loaded.losses == pytest.approx(model.losses)


def test_frozen_layers_add_no_penalty(fresh_session):
    model = lk.Sequential(
        [lk.layers.Input((3,)), lk.layers.Dense(2, kernel_regularizer=lk.regularizers.L2(1.0))]
    )
    assert len(model.losses) == 1
    model.trainable = False
    assert model.losses == []


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="l2"):
        lk.regularizers.L2(-1.0)
    with pytest.raises(ValueError, match="Unknown regularizer"):
        lk.layers.Dense(2, kernel_regularizer="l3")
    with pytest.raises(TypeError, match="kernel_constraint"):
        lk.layers.Dense(2, kernel_constraint=3)
    with pytest.raises(TypeError, match="activity_regularizer"):
        lk.layers.Dense(2, activity_regularizer=3)
    with pytest.raises(ValueError, match="l1"):
        lk.regularizers.L1L2(l1=float("nan"))
    with pytest.raises(ValueError, match="factor"):
        lk.regularizers.OrthogonalRegularizer(float("inf"))
    with pytest.raises(ValueError, match="mode"):
        lk.regularizers.OrthogonalRegularizer(mode="diagonal")
    with pytest.raises(ValueError, match="gamma_regularizer"):
        lk.layers.BatchNormalization(gamma_regularizer="l7")
    with pytest.raises(TypeError, match="alpha_constraint"):
        lk.layers.PReLU(alpha_constraint=1.5)
