"""Output penalties (``activity_regularizer``), the orthogonal penalty, and penalties and
constraints on BatchNormalization's and PReLU's weights, against real Keras 3: the same
model from copied weights gives the same losses (History and ``evaluate``) and weights."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk


def _copy(ours, theirs, rng):
    weights = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in theirs.get_weights()]
    # BatchNormalization's moving variance must stay positive.
    weights = [
        np.abs(w) + 0.5 if "variance" in v.path else w for w, v in zip(weights, theirs.weights)
    ]
    theirs.set_weights(weights)
    ours.set_weights(weights)


def _graph(api):
    reg, con = api.regularizers, api.constraints
    inputs = api.layers.Input((6,))
    h = api.layers.Dense(
        5,
        activation="tanh",
        name="hidden",
        activity_regularizer=reg.L1L2(l1=0.01, l2=0.03),
        kernel_regularizer=reg.OrthogonalRegularizer(0.05),
    )(inputs)
    h = api.layers.BatchNormalization(
        name="norm",
        gamma_regularizer=reg.L2(0.02),
        beta_regularizer=reg.L1(0.01),
        gamma_constraint=con.NonNeg(),
        beta_constraint=con.MaxNorm(0.3),
    )(h)
    h = api.layers.PReLU(
        name="prelu",
        alpha_regularizer=reg.L2(0.05),
        alpha_constraint=con.NonNeg(),
        activity_regularizer="l2",
    )(h)
    out = api.layers.Dense(
        3,
        activation="softmax",
        name="out",
        kernel_regularizer=reg.OrthogonalRegularizer(0.1, mode="columns"),
        activity_regularizer=reg.L1(0.02),
    )(h)
    return api.Model(inputs, out)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_output_and_weight_penalties_train_as_in_keras(keras, fresh_session, rng, optimizer):
    ours, theirs = _graph(lk), _graph(keras)
    _copy(ours, theirs, rng)
    x = rng.normal(size=(40, 6)).astype("float32")
    y = rng.integers(0, 3, size=40)
    make = {
        "sgd": lambda api: api.optimizers.SGD(0.1),
        "adam": lambda api: api.optimizers.Adam(0.02),
    }
    ours.compile(optimizer=make[optimizer](lk), loss="sparse_categorical_crossentropy")
    theirs.compile(optimizer=make[optimizer](keras), loss="sparse_categorical_crossentropy")
    # evaluate adds the output penalties (per batch, over its size) and the weights'.
    np.testing.assert_allclose(
        ours.evaluate(x, y, batch_size=16),
        theirs.evaluate(x, y, batch_size=16, verbose=0),
        rtol=2e-6,
    )
    h_ours = ours.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0).history
    h_theirs = theirs.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h_ours["loss"], h_theirs["loss"], rtol=2e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)
    norm = ours.get_layer("norm")
    assert np.all(norm.gamma.value >= 0)
    assert np.all(np.abs(norm.beta.value) <= 0.3 + 1e-6)
    assert np.all(ours.get_layer("prelu").alpha.value >= 0)
    # model.losses: the weight penalties (Keras also lists the last call's output
    # penalties; an empty batch makes those zero).
    theirs(x[:0])
    np.testing.assert_allclose(sum(ours.losses), float(sum(theirs.losses)), rtol=1e-5)


def test_output_penalty_of_the_last_layer_is_not_fused_away(keras, fresh_session, rng):
    """A softmax output with an output penalty: the penalty reads probabilities, so the
    loss cannot take the logits shortcut; one SGD step as Keras."""
    ours, theirs = (
        api.Sequential(
            [
                api.layers.Input((4,)),
                api.layers.Dense(
                    3, activation="softmax", activity_regularizer=api.regularizers.L2(0.5)
                ),
            ]
        )
        for api in (lk, keras)
    )
    _copy(ours, theirs, rng)
    x = rng.normal(size=(8, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, size=8)]
    for model, api in ((ours, lk), (theirs, keras)):
        model.compile(optimizer=api.optimizers.SGD(0.5), loss="categorical_crossentropy")
    h_ours = ours.fit(x, y, batch_size=8, epochs=2, verbose=0).history["loss"]
    h_theirs = theirs.fit(x, y, batch_size=8, epochs=2, verbose=0).history["loss"]
    np.testing.assert_allclose(h_ours, h_theirs, rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["rows", "columns"])
def test_orthogonal_penalty_matches_keras_and_central_differences(keras, float64, rng, mode):
    w = rng.normal(size=(5, 4))
    regularizer = lk.regularizers.OrthogonalRegularizer(0.3, mode=mode)
    theirs = keras.regularizers.OrthogonalRegularizer(0.3, mode=mode)
    np.testing.assert_allclose(
        regularizer(w), float(theirs(keras.ops.convert_to_tensor(w))), rtol=1e-6
    )
    expected = lk.testing.numeric_gradient(lambda: regularizer(w), w)
    np.testing.assert_allclose(regularizer.gradient(w), expected, rtol=1e-6, atol=1e-9)
    # A zero row: Keras clamps its scale at 1 / eps; the gradient follows.
    w[1] = 0.0
    np.testing.assert_allclose(
        regularizer(w), float(theirs(keras.ops.convert_to_tensor(w))), rtol=1e-6
    )
    with pytest.raises(ValueError, match="rank 2"):
        regularizer(np.ones(3))


def test_in_place_penalty_gradients_add_scaled(rng):
    w = rng.normal(size=(6, 3)).astype("float32")
    for regularizer in (lk.regularizers.L1L2(0.2, 0.3), lk.regularizers.OrthogonalRegularizer()):
        out = np.ones_like(w)
        regularizer.add_gradient(w, out, 0.25)
        np.testing.assert_allclose(out, 1.0 + 0.25 * regularizer.gradient(w), rtol=1e-6)


def test_activity_penalty_under_the_frozen_cache_gives_the_same_numbers(fresh_session, rng):
    """A frozen layer with an output penalty is recomputed each step (its penalty is part
    of the loss); the layers below it are still cached: same History as without."""
    x = rng.normal(size=(64, 5)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")

    def run(cache):
        lk.utils.set_random_seed(3)
        model = lk.Sequential(
            [
                lk.layers.Input((5,)),
                lk.layers.Dense(8, activation="relu", name="a", trainable=False),
                lk.layers.Dense(
                    8, activation="relu", name="b", trainable=False, activity_regularizer="l1"
                ),
                lk.layers.Dense(1, name="top"),
            ]
        )
        model.compile(optimizer="sgd", loss="mse")
        return model.fit(x, y, epochs=3, batch_size=16, cache_frozen=cache, verbose=0).history[
            "loss"
        ]

    np.testing.assert_allclose(run(True), run(False), rtol=1e-6)


def test_configs_and_checkpoints_keep_the_new_options(fresh_session, tmp_path, rng):
    model = _graph(lk)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.normal(size=(16, 6)).astype("float32")
    y = rng.integers(0, 3, size=16)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.h5")
    again = lk.load_model(tmp_path / "m.h5")
    for name in ("hidden", "norm", "prelu", "out"):
        assert again.get_layer(name).get_config() == model.get_layer(name).get_config()
    assert again.get_layer("norm").gamma.regularizer.get_config() == {"l2": 0.02}
    assert isinstance(again.get_layer("prelu").alpha.constraint, lk.constraints.NonNeg)
    np.testing.assert_allclose(again.evaluate(x, y), model.evaluate(x, y), rtol=1e-6)


def test_keras_files_keep_the_new_options_both_ways(keras, fresh_session, tmp_path, rng):
    """layerkit writes a .keras that real Keras loads with the same options (and losses),
    and reads them back from Keras's own file."""
    ours = _graph(lk)
    x = rng.normal(size=(16, 6)).astype("float32")
    ours.predict(x)
    ours.save(tmp_path / "ours.keras")
    theirs = keras.saving.load_model(tmp_path / "ours.keras", compile=False)
    norm = theirs.get_layer("norm")
    assert norm.gamma_regularizer.get_config() == {"l2": 0.02}
    assert isinstance(norm.beta_constraint, keras.constraints.MaxNorm)
    assert theirs.get_layer("prelu").alpha_regularizer.get_config() == {"l2": 0.05}
    assert theirs.get_layer("hidden").activity_regularizer.get_config() == {"l1": 0.01, "l2": 0.03}
    orthogonal = theirs.get_layer("out").kernel_regularizer.get_config()
    assert orthogonal == {"factor": pytest.approx(0.1), "mode": "columns"}  # a float32 there
    theirs(x[:0])  # output penalties of an empty batch are 0: the weight penalties remain
    np.testing.assert_allclose(sum(ours.losses), float(sum(theirs.losses)), rtol=1e-5)
    original = _graph(keras)
    original.save(tmp_path / "theirs.keras")
    again = lk.io.load_keras(tmp_path / "theirs.keras")
    for name in ("hidden", "norm", "prelu", "out"):
        mine, copy = ours.get_layer(name).get_config(), again.get_layer(name).get_config()
        for key in mine:
            if key.endswith(("_regularizer", "_constraint")):
                assert copy.get(key)["class_name"] == mine[key]["class_name"], (name, key)
                for option, value in mine[key]["config"].items():
                    assert copy[key]["config"][option] == pytest.approx(value), (name, key)


def test_a_constraint_that_cannot_apply_is_refused_when_the_weight_is_made(fresh_session):
    with pytest.raises(ValueError, match=r"MaxNorm\(axis=1\) cannot constrain 'dense/bias'"):
        lk.Sequential(
            [
                lk.layers.Input((4,)),
                lk.layers.Dense(3, bias_constraint=lk.constraints.MaxNorm(axis=1)),
            ]
        )
    with pytest.raises(ValueError, match="UnitNorm"):
        lk.layers.BatchNormalization(gamma_constraint=lk.constraints.UnitNorm(axis=(0, 2))).build(
            (None, 5)
        )
