"""Keras-style ``call`` overrides on layer subclasses: Monte-Carlo dropout predicts
differently each time, trains and saves when registered; a call that passes ``training``
through is the parent layer; a call that changes the result is refused."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk
from layerkit.layers import Dense, Dropout


@lk.layers.register_layer
class CallTestMCDropout(Dropout):
    def call(self, inputs, training=None):
        return super().call(inputs, training=True)


class UnregisteredMCDropout(Dropout):
    def call(self, inputs, training=None):
        return super().call(inputs, training=True)


@lk.layers.register_layer
class CallTestPassDense(Dense):
    def call(self, inputs, training=None):
        return super().call(inputs, training=training)


class DoublingDense(Dense):
    def call(self, inputs, training=None):
        return super().call(inputs) * 2


class NumpyOnlyDense(Dense):
    def call(self, inputs, training=None):
        return np.tanh(inputs)


@lk.layers.register_layer
class CallTestScaledInputDense(Dense):
    def call(self, inputs, training=None):
        return super().call(inputs * 2, training=training)


MESSAGE = r"call must return the result of super\(\)\.call\(\.\.\.\) as it is"


def mc_model(dropout_class=CallTestMCDropout):
    return lk.Sequential(
        [
            lk.layers.Input((12,)),
            lk.layers.Dense(16, activation="selu", kernel_initializer="lecun_normal"),
            dropout_class(0.3, name="mc"),
            lk.layers.Dense(3, activation="softmax"),
        ]
    )


def data(rng, n=32):
    x = rng.normal(size=(n, 12)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    return x, y


# --- Monte-Carlo dropout ------------------------------------------------------------------
def test_mc_dropout_predicts_differently_each_time(fresh_session, rng):
    x, _ = data(rng, 8)
    model = mc_model()
    first, second = model.predict(x, verbose=0), model.predict(x, verbose=0)
    assert not np.array_equal(first, second)
    np.testing.assert_allclose(first.sum(axis=1), 1.0, rtol=1e-5)
    # the plain Dropout is the identity in predict
    plain = mc_model(Dropout)
    np.testing.assert_array_equal(plain.predict(x, verbose=0), plain.predict(x, verbose=0))
    # and so is the MC layer's parent computation, called as a layer with training=False
    layer = CallTestMCDropout(0.5, seed=1)
    assert (layer(np.ones((4, 50), np.float32)) == 0).any()


def test_mc_dropout_masks_like_dropout_in_training(fresh_session):
    x = np.ones((1, 2000), np.float32)
    y = CallTestMCDropout(0.25, seed=3)(x, training=False)
    np.testing.assert_array_equal(y, Dropout(0.25, seed=3)(x, training=True))


def test_mc_dropout_trains_in_fit(fresh_session, rng):
    x, y = data(rng, 64)
    model = mc_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = model.get_weights()
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3
    assert all(np.isfinite(history.history["loss"]))
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_mc_dropout_gradients_pass_the_check(fresh_session, rng):
    report = lk.testing.check_gradients(CallTestMCDropout(0.4, seed=2), rng.normal(size=(4, 6)))
    assert report["input"] < 1e-7


def test_registered_mc_dropout_saves_and_loads(fresh_session, rng, tmp_path):
    x, y = data(rng, 32)
    model = mc_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    loaded = lk.load_model(model.save(tmp_path / "mc.h5"))
    layer = loaded.get_layer("mc")
    assert type(layer) is CallTestMCDropout
    assert layer.rate == pytest.approx(0.3)
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(loaded.predict(x, verbose=0), loaded.predict(x, verbose=0))
    # averaging many stochastic predictions (Monte-Carlo) still gives probabilities
    mean = np.mean([loaded.predict(x, verbose=0) for _ in range(20)], axis=0)
    assert np.abs(mean.sum(axis=1) - 1).max() < 1e-5


def test_an_unregistered_override_does_not_load(fresh_session, tmp_path):
    model = mc_model(UnregisteredMCDropout)
    path = model.save(tmp_path / "unregistered.h5")
    with pytest.raises(ValueError, match="UnregisteredMCDropout"):
        lk.load_model(path)


# --- passing training through ----------------------------------------------------------
def test_a_pass_through_call_is_the_parent_layer(fresh_session, rng):
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = rng.normal(size=(40, 2)).astype(np.float32)

    def build(cls):
        lk.utils.set_random_seed(0)
        model = lk.Sequential(
            [lk.layers.Input((5,)), cls(4, activation="relu", name="a"), Dense(2, name="b")]
        )
        model.compile(optimizer="adam", loss="mse")
        return model

    plain, custom = build(Dense), build(CallTestPassDense)
    for a, b in zip(plain.get_weights(), custom.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(custom.predict(x, verbose=0), plain.predict(x, verbose=0))
    h_plain = plain.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    h_custom = custom.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    assert h_custom.history["loss"] == h_plain.history["loss"]
    for a, b in zip(plain.get_weights(), custom.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    report = lk.testing.check_gradients(CallTestPassDense(3, activation="tanh"), x[:4])
    assert set(report) == {"input", "kernel", "bias"}


# --- refused overrides -----------------------------------------------------------------
@pytest.mark.parametrize("cls", [DoublingDense, NumpyOnlyDense], ids=lambda c: c.__name__)
def test_a_call_that_changes_the_output_is_a_type_error(cls, fresh_session, rng):
    x = rng.normal(size=(3, 4)).astype(np.float32)
    with pytest.raises(TypeError, match=MESSAGE) as info:
        cls(2)(x)
    assert cls.__name__ in str(info.value)
    assert "forward(x, training)" in str(info.value)
    model = lk.Sequential([lk.layers.Input((4,)), cls(2)])
    with pytest.raises(TypeError, match=MESSAGE):
        model.predict(x, verbose=0)


def test_a_call_that_changes_the_inputs_is_refused_or_differentiated(fresh_session, rng):
    x = rng.normal(size=(4, 5))
    try:
        CallTestScaledInputDense(3)(x.astype(np.float32))
    except TypeError:
        return  # refused, as a changed output is
    lk.testing.check_gradients(CallTestScaledInputDense(3), x)
