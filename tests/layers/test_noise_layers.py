"""GaussianNoise, GaussianDropout and AlphaDropout against real Keras 3: inference is the
identity, training follows Keras's formulas and statistics, gradients are checked, configs
round-trip and a model with them resumes from a checkpoint exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

import layerkit as lk
from layerkit.layers import AlphaDropout, GaussianDropout, GaussianNoise

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805
ALPHA_P = -SELU_ALPHA * SELU_SCALE

LAYERS = {
    "GaussianNoise": (GaussianNoise, {"stddev": 0.3}),
    "GaussianDropout": (GaussianDropout, {"rate": 0.2}),
    "AlphaDropout": (AlphaDropout, {"rate": 0.1}),
}


def alpha_constants(rate: float) -> tuple[float, float]:
    a = ((1 - rate) * (1 + rate * ALPHA_P**2)) ** -0.5
    return a, -a * ALPHA_P * rate


def make(kind: str, **extra):
    cls, kwargs = LAYERS[kind]
    return cls(**kwargs, **extra)


# --- inference --------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(LAYERS))
def test_inference_is_the_identity_as_in_keras(name, keras, fresh_session, rng):
    x = rng.normal(size=(6, 5)).astype(np.float32)
    layer = make(name, seed=1)
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer(x, training=False), x)
    k_layer = getattr(keras.layers, name)(**LAYERS[name][1], seed=1)
    np.testing.assert_array_equal(np.asarray(k_layer(x, training=False)), x)


@pytest.mark.parametrize("name", list(LAYERS))
def test_rate_or_stddev_zero_is_the_identity_in_training(name, fresh_session, rng):
    cls, kwargs = LAYERS[name]
    key = next(iter(kwargs))
    x = rng.normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_array_equal(cls(**{key: 0.0})(x, training=True), x)


# --- AlphaDropout: Keras's formula on the same mask ----------------------------------------
@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_alpha_dropout_matches_keras_with_the_same_mask(
    rate, keras, monkeypatch, fresh_session, rng
):
    x = rng.normal(size=(64, 16)).astype(np.float32)
    y = AlphaDropout(rate, seed=3)(x, training=True)
    assert y.dtype == np.float32
    a, b = alpha_constants(rate)
    dropped_value = np.float32(a * ALPHA_P + b)
    dropped = np.isclose(y, dropped_value, rtol=0, atol=1e-6)
    assert 0 < dropped.mean() < 1
    assert abs(dropped.mean() - rate) < 0.08
    kept = (~dropped).astype(np.float32)
    np.testing.assert_allclose(y, a * (x * kept + ALPHA_P * (1 - kept)) + b, rtol=1e-6, atol=1e-6)

    # Keras itself, fed the same mask through its uniform draw (1 keeps, 0 drops).
    from keras.src.layers.regularization import alpha_dropout

    keras_random = alpha_dropout.ops.random

    def same_mask(shape, *args, **kwargs):
        return keras.ops.convert_to_tensor(kept)

    monkeypatch.setattr(keras_random, "uniform", same_mask)
    expected = keras.ops.convert_to_numpy(keras.layers.AlphaDropout(rate, seed=3)(x, training=True))
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


def test_alpha_dropout_keeps_mean_and_variance_as_keras(keras, fresh_session):
    x = np.random.default_rng(5).standard_normal((1000, 1000)).astype(np.float32)
    y = AlphaDropout(0.2, seed=0)(x, training=True)
    k = keras.ops.convert_to_numpy(keras.layers.AlphaDropout(0.2, seed=0)(x, training=True))
    assert abs(float(y.mean()) - float(x.mean())) < 1e-2
    assert abs(float(y.var()) - float(x.var())) < 1e-2
    assert abs(float(y.mean()) - float(k.mean())) < 1e-2
    assert abs(float(y.var()) - float(k.var())) < 1e-2


def test_alpha_dropout_refuses_noise_shape():
    with pytest.raises(ValueError, match="noise_shape"):
        AlphaDropout(0.1, noise_shape=(None, 1))


# --- GaussianNoise / GaussianDropout statistics ------------------------------------------
def test_gaussian_noise_statistics_match_the_definition_and_keras(keras, fresh_session):
    x = np.full((500, 1000), 2.0, np.float32)
    noise = GaussianNoise(0.3, seed=0)(x, training=True) - x
    k_noise = (
        keras.ops.convert_to_numpy(keras.layers.GaussianNoise(0.3, seed=0)(x, training=True)) - x
    )
    for n in (noise, k_noise):
        assert abs(float(n.mean())) < 3e-3
        assert abs(float(n.std()) - 0.3) < 3e-3


def test_gaussian_dropout_statistics_match_the_definition_and_keras(keras, fresh_session):
    rate = 0.2
    x = np.full((500, 1000), 3.0, np.float32)
    factor = GaussianDropout(rate, seed=0)(x, training=True) / x
    k_factor = (
        keras.ops.convert_to_numpy(keras.layers.GaussianDropout(rate, seed=0)(x, training=True)) / x
    )
    for f in (factor, k_factor):
        assert abs(float(f.mean()) - 1.0) < 3e-3
        assert abs(float(f.std()) - math.sqrt(rate / (1 - rate))) < 3e-3


@pytest.mark.parametrize("name", list(LAYERS))
def test_a_seed_makes_the_draws_reproducible(name, fresh_session, rng):
    x = rng.normal(size=(8, 6)).astype(np.float32)
    first = make(name, seed=11)(x, training=True)
    second = make(name, seed=11)(x, training=True)
    other = make(name, seed=12)(x, training=True)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)
    layer = make(name, seed=11)
    assert not np.array_equal(layer(x, training=True), layer(x, training=True))  # fresh draws


# --- gradients ------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(LAYERS))
def test_backward_passes_the_gradient_check(name, fresh_session, rng):
    x = rng.normal(size=(4, 5))
    report = lk.testing.check_gradients(make(name, seed=2), x, training=True)
    assert set(report) == {"input"}
    assert report["input"] < 1e-7


@pytest.mark.parametrize("name", list(LAYERS))
def test_backward_is_the_local_derivative(name, float64, fresh_session, rng):
    x = rng.normal(size=(5, 7))
    layer = make(name, seed=4)
    y, backward = layer.forward(x, training=True)
    y = np.array(y, copy=True)
    dy = rng.normal(size=x.shape)
    dx = np.array(backward(dy.copy(), True), copy=True)
    if name == "GaussianNoise":
        np.testing.assert_array_equal(dx, dy)
    elif name == "GaussianDropout":
        np.testing.assert_allclose(dx, dy * (y / x), rtol=1e-10)
    else:
        a, b = alpha_constants(0.1)
        kept = ~np.isclose(y, a * ALPHA_P + b, rtol=0, atol=1e-12)
        np.testing.assert_allclose(dx, dy * a * kept, rtol=1e-12)


# --- configs --------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(LAYERS))
def test_config_round_trips_and_has_keras_keys(name, keras, fresh_session):
    layer = make(name, seed=5, name="noisy")
    config = layer.get_config()
    clone = lk.layers.deserialize(lk.layers.serialize(layer))
    assert type(clone) is type(layer)
    assert clone.get_config() == config
    keras_config = getattr(keras.layers, name)(**LAYERS[name][1], seed=5).get_config()
    own = {k for k in keras_config if k not in ("name", "trainable", "dtype")}
    assert own <= set(config)
    for key in own:
        assert config[key] == keras_config[key], key


# --- in a model: save, load_model, resume ---------------------------------------------
def noisy_model():
    return lk.Sequential(
        [
            lk.layers.Input((6,)),
            lk.layers.GaussianNoise(0.1, seed=1),
            lk.layers.Dense(8, activation="selu", kernel_initializer="lecun_normal"),
            lk.layers.AlphaDropout(0.2, seed=2),
            lk.layers.Dense(8, activation="relu"),
            lk.layers.GaussianDropout(0.3, seed=3),
            lk.layers.Dense(1),
        ]
    )


def test_model_saves_and_resumes_like_an_unbroken_run(fresh_session, rng, tmp_path):
    x = rng.normal(size=(48, 6)).astype(np.float32)
    y = rng.normal(size=(48, 1)).astype(np.float32)
    lk.utils.set_random_seed(0)
    reference = noisy_model()
    reference.compile(optimizer="adam", loss="mse")
    reference.fit(x, y, batch_size=16, epochs=3, verbose=0)

    lk.utils.set_random_seed(0)
    first = noisy_model()
    first.compile(optimizer="adam", loss="mse")
    first.fit(x, y, batch_size=16, epochs=1, verbose=0)
    loaded = lk.load_model(first.save(tmp_path / "noisy.h5"))
    assert [type(layer).__name__ for layer in loaded.layers] == [
        type(layer).__name__ for layer in first.layers
    ]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), first.predict(x, verbose=0))
    lk.utils.set_random_seed(987654)  # the checkpoint's generator states must win
    loaded.fit(x, y, batch_size=16, epochs=2, verbose=0)
    for a, b in zip(loaded.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_noise_layers_change_training_not_predictions(fresh_session, rng):
    x = rng.normal(size=(10, 6)).astype(np.float32)
    model = noisy_model()
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


# --- Keras files ------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_load_keras_reads_the_noise_layers(suffix, keras, fresh_session, rng, tmp_path):
    k_model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.GaussianNoise(0.2, seed=4, name="noise"),
            keras.layers.Dense(6, activation="selu", kernel_initializer="lecun_normal"),
            keras.layers.AlphaDropout(0.15, seed=5, name="alpha"),
            keras.layers.GaussianDropout(0.25, name="gdrop"),
            keras.layers.Dense(2),
        ]
    )
    path = tmp_path / f"noise{suffix}"
    k_model.save(path)
    model = lk.io.load_keras(path)
    x = rng.normal(size=(7, 5)).astype(np.float32)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), k_model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    noise, alpha, gdrop = (model.get_layer(n) for n in ("noise", "alpha", "gdrop"))
    assert (type(noise), noise.stddev, noise.seed) == (GaussianNoise, pytest.approx(0.2), 4)
    assert (type(alpha), alpha.rate, alpha.seed) == (AlphaDropout, pytest.approx(0.15), 5)
    assert (type(gdrop), gdrop.rate, gdrop.seed) == (GaussianDropout, pytest.approx(0.25), None)


@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
def test_save_keras_writes_noise_layers_keras_loads(
    functional, keras, fresh_session, rng, tmp_path
):
    layers = [
        GaussianNoise(0.2, seed=4, name="noise"),
        lk.layers.Dense(6, activation="selu", kernel_initializer="lecun_normal"),
        AlphaDropout(0.15, seed=5, name="alpha"),
        GaussianDropout(0.25, name="gdrop"),
        lk.layers.Dense(2),
    ]
    if functional:
        inputs = lk.layers.Input((5,), name="x")
        h = inputs
        for layer in layers:
            h = layer(h)
        model = lk.Model(inputs, h)
    else:
        model = lk.Sequential([lk.layers.Input((5,)), *layers])
    x = rng.normal(size=(7, 5)).astype(np.float32)
    path = lk.io.save_keras(model, tmp_path / "noise.keras")
    k_model = keras.models.load_model(path)
    np.testing.assert_allclose(
        k_model.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    k_alpha = k_model.get_layer("alpha")
    assert type(k_alpha).__name__ == "AlphaDropout"
    assert (k_alpha.rate, k_alpha.seed) == (0.15, 5)
    assert k_model.get_layer("noise").stddev == 0.2
    assert k_model.get_layer("gdrop").rate == 0.25
    again = lk.io.load_keras(path)
    assert [type(layer) for layer in again.layers] == [type(layer) for layer in model.layers]
