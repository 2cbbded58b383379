"""Normalization (adapt, fixed statistics, invert) and Rescaling against real Keras 3, in
float32; Normalization's statistics in a model (non-trainable, saved), and its errors."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk
from layerkit.layers import Normalization, Rescaling

TOL = {"rtol": 1e-5, "atol": 1e-5}


def data(rng, shape, scale=3.0, shift=1.5):
    return (rng.normal(size=shape) * scale + shift).astype(np.float32)


def keras_out(keras, layer, x):
    return keras.ops.convert_to_numpy(layer(x))


# --- adapt ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "axis"),
    [
        ((40, 5), -1),
        ((40, 5), None),
        ((40, 4, 3), -1),
        ((40, 4, 3), (1, 2)),
        ((40, 4, 3), 1),
    ],
    ids=["rank2-axis-1", "rank2-None", "rank3-axis-1", "rank3-axis12", "rank3-axis1"],
)
@pytest.mark.parametrize("invert", [False, True])
def test_adapt_matches_keras(shape, axis, invert, keras, fresh_session, rng):
    train = data(rng, shape)
    x = data(rng, (7, *shape[1:]))
    layer = Normalization(axis=axis, invert=invert)
    layer.adapt(train)
    k_layer = keras.layers.Normalization(axis=axis, invert=invert)
    k_layer.adapt(train)
    np.testing.assert_allclose(layer(x), keras_out(keras, k_layer, x), **TOL)
    k_mean = keras.ops.convert_to_numpy(k_layer.adapt_mean)
    np.testing.assert_allclose(layer.mean.numpy().reshape(k_mean.shape), k_mean, **TOL)
    k_var = keras.ops.convert_to_numpy(k_layer.adapt_variance)
    np.testing.assert_allclose(layer.variance.numpy().reshape(k_var.shape), k_var, **TOL)
    if not invert:  # standardised training data
        out = layer(train)
        reduce = tuple(i for i in range(train.ndim) if i not in layer._kept(train.ndim))
        np.testing.assert_allclose(out.mean(axis=reduce), 0.0, atol=1e-4)
        np.testing.assert_allclose(out.std(axis=reduce), 1.0, atol=1e-4)


def test_adapt_on_one_dimensional_data(keras, fresh_session, rng):
    train = data(rng, (50,))
    layer = Normalization(axis=None)
    layer.adapt(train)
    assert layer.mean.numpy().item() == pytest.approx(float(train.mean()), rel=1e-5)
    assert layer.variance.numpy().item() == pytest.approx(float(train.var()), rel=1e-4)


# --- fixed statistics ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "axis", "mean", "variance"),
    [
        ((6, 3), -1, [1.0, -2.0, 0.5], [4.0, 0.25, 1.0]),
        ((6, 3), -1, [2.0], [9.0]),
        ((6, 4, 3), -1, [1.0, -2.0, 0.5], [4.0, 0.25, 1.0]),
        ((6, 4, 3), (1, 2), [[1.0, -2.0, 0.5]] * 4, [[4.0, 0.25, 1.0]] * 4),
        pytest.param((6, 3), -1, 2.0, 9.0),
        pytest.param((6, 3), None, 0.5, 2.0),
    ],
)
@pytest.mark.parametrize("invert", [False, True])
def test_mean_and_variance_arguments_match_keras(
    shape, axis, mean, variance, invert, keras, fresh_session, rng
):
    x = data(rng, shape)
    layer = Normalization(axis=axis, mean=mean, variance=variance, invert=invert)
    k_layer = keras.layers.Normalization(axis=axis, mean=mean, variance=variance, invert=invert)
    np.testing.assert_allclose(layer(x), keras_out(keras, k_layer, x), **TOL)


def test_invert_undoes_the_normalisation(fresh_session, rng):
    train = data(rng, (30, 4))
    forward = Normalization()
    forward.adapt(train)
    inverse = Normalization(
        mean=forward.mean.numpy(), variance=forward.variance.numpy(), invert=True
    )
    np.testing.assert_allclose(inverse(forward(train)), train, rtol=1e-5, atol=1e-5)


def test_zero_variance_uses_epsilon_as_keras(keras, fresh_session):
    train = np.ones((10, 2), np.float32)
    x = np.array([[1.0, 1.5]], np.float32)
    layer = Normalization()
    layer.adapt(train)
    k_layer = keras.layers.Normalization()
    k_layer.adapt(train)
    np.testing.assert_allclose(layer(x), keras_out(keras, k_layer, x), rtol=1e-5)
    assert np.all(np.isfinite(layer(x)))


def test_config_round_trips_and_matches_keras_keys(keras):
    layer = Normalization(axis=(1, 2), mean=[1.0, 2.0], variance=[1.0, 4.0], invert=True)
    config = layer.get_config()
    clone = lk.layers.deserialize(lk.layers.serialize(layer))
    assert clone.get_config() == config
    k_config = keras.layers.Normalization(axis=(1, 2), invert=True).get_config()
    assert {"axis", "invert", "mean", "variance"} <= set(config) & set(k_config)
    assert Normalization(axis=None).get_config()["axis"] is None


# --- in a model -------------------------------------------------------------------------
def norm_model(train):
    norm = Normalization(name="norm")
    norm.adapt(train)
    model = lk.Sequential([lk.layers.Input((train.shape[1],)), norm, lk.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_statistics_are_non_trainable_and_untouched_by_fit(fresh_session, rng, tmp_path):
    train = data(rng, (64, 4))
    y = rng.normal(size=(64, 1)).astype(np.float32)
    model = norm_model(train)
    norm = model.get_layer("norm")
    mean, variance = norm.mean.numpy(), norm.variance.numpy()
    assert [p.name for p in model.non_trainable_weights] == ["norm/mean", "norm/variance"]
    assert [p.name for p in model.trainable_weights] == ["dense/kernel", "dense/bias"]
    model.fit(train, y, batch_size=16, epochs=2, verbose=0)
    np.testing.assert_array_equal(norm.mean.numpy(), mean)
    np.testing.assert_array_equal(norm.variance.numpy(), variance)
    slots = model.optimizer.state_dict()["slots"]  # optimizer state: trained weights only
    assert sorted(slots) == ["dense/bias", "dense/kernel"]

    loaded = lk.load_model(model.save(tmp_path / "norm.h5"))
    np.testing.assert_array_equal(loaded.get_layer("norm").mean.numpy(), mean)
    np.testing.assert_array_equal(loaded.get_layer("norm").variance.numpy(), variance)
    np.testing.assert_array_equal(loaded.predict(train, verbose=0), model.predict(train, verbose=0))
    assert [p.name for p in loaded.non_trainable_weights] == ["norm/mean", "norm/variance"]


def test_fixed_statistics_survive_save_and_load(fresh_session, rng, tmp_path):
    x = data(rng, (8, 3))
    model = lk.Sequential(
        [
            lk.layers.Input((3,)),
            Normalization(mean=[1.0, 2.0, 3.0], variance=[1.0, 4.0, 9.0], name="norm"),
            Rescaling(0.5, offset=1.0),
        ]
    )
    loaded = lk.load_model(model.save(tmp_path / "fixed.h5"))
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# --- errors -----------------------------------------------------------------------------
def test_adapt_refuses_empty_data():
    with pytest.raises(ValueError, match="non-empty"):
        Normalization().adapt(np.zeros((0, 3), np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_adapt_refuses_nan_or_inf(bad):
    x = np.ones((5, 3), np.float32)
    x[2, 1] = bad
    with pytest.raises(ValueError, match="finite"):
        Normalization().adapt(x)


def test_mean_without_variance_is_refused(keras):
    with pytest.raises(ValueError, match="both mean and variance"):
        Normalization(mean=[1.0, 2.0])
    with pytest.raises(ValueError, match="both mean and variance"):
        Normalization(variance=[1.0, 2.0])
    with pytest.raises(ValueError, match="both"):  # as Keras
        keras.layers.Normalization(mean=[1.0, 2.0])


def test_adapt_refuses_data_of_another_shape(rng):
    layer = Normalization()
    layer.adapt(data(rng, (10, 3)))
    with pytest.raises(ValueError, match="shape"):
        layer.adapt(data(rng, (10, 4)))


def test_negative_variance_and_batch_axis_are_refused():
    with pytest.raises(ValueError, match="variance >= 0"):
        Normalization(mean=[0.0], variance=[-1.0])
    with pytest.raises(ValueError, match="axis"):
        Normalization(axis=0).build((None, 3))


# --- Rescaling --------------------------------------------------------------------------
@pytest.mark.parametrize(("scale", "offset"), [(1 / 255, 0.0), (2.0, -1.0), (-0.5, 0.25)])
def test_rescaling_matches_keras(scale, offset, keras, fresh_session, rng):
    x = (rng.random((5, 4, 3)) * 255).astype(np.float32)
    layer = Rescaling(scale, offset=offset)
    k_layer = keras.layers.Rescaling(scale, offset=offset)
    np.testing.assert_allclose(layer(x), keras_out(keras, k_layer, x), **TOL)
    clone = lk.layers.deserialize(lk.layers.serialize(layer))
    assert clone.get_config() == layer.get_config()
    k_config = k_layer.get_config()
    assert (k_config["scale"], k_config["offset"]) == (layer.scale, layer.offset)


@pytest.mark.parametrize("name", ["Normalization", "Rescaling"])
def test_preprocessing_gradients(name, fresh_session, rng):
    x = rng.normal(size=(4, 3))
    if name == "Normalization":
        layer = Normalization(mean=[1.0, 0.0, -1.0], variance=[4.0, 1.0, 0.25])
    else:
        layer = Rescaling(0.5, offset=2.0)
    report = lk.testing.check_gradients(layer, x)
    assert set(report) == {"input"}


# --- Keras files: load_keras and save_keras ---------------------------------------------------
def keras_preprocessing_model(keras, train, functional=False):
    adapted = keras.layers.Normalization(axis=-1, name="adapted")
    adapted.adapt(train)
    blocks = keras.layers.Normalization(axis=(1, 2), name="blocks")
    blocks.adapt(train)
    layers = [
        keras.layers.Rescaling(0.5, offset=-1.0, name="rescale"),
        adapted,
        blocks,
        keras.layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[1.0, 4.0, 9.0], name="fixed"),
        keras.layers.Normalization(mean=0.5, variance=4.0, invert=True, name="scalar"),
        keras.layers.Flatten(),
        keras.layers.Dense(2, name="out"),
    ]
    if not functional:
        return keras.Sequential([keras.Input(train.shape[1:]), *layers])
    inputs = keras.Input(train.shape[1:], name="x")
    h = inputs
    for layer in layers:
        h = layer(h)
    return keras.Model(inputs, h)


@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_load_keras_reads_normalization_and_rescaling(
    functional, suffix, keras, fresh_session, rng, tmp_path
):
    train = data(rng, (30, 4, 3))
    x = data(rng, (6, 4, 3))
    k_model = keras_preprocessing_model(keras, train, functional)
    path = tmp_path / f"pre{suffix}"
    k_model.save(path)
    model = lk.io.load_keras(path)
    assert [type(layer).__name__ for layer in model.layers if layer.name != "x"][:5] == [
        "Rescaling",
        "Normalization",
        "Normalization",
        "Normalization",
        "Normalization",
    ]
    np.testing.assert_allclose(model.predict(x, verbose=0), k_model.predict(x, verbose=0), **TOL)
    adapted = model.get_layer("adapted")
    assert adapted.mean.shape == (1, 3)  # Keras keeps (3,); layerkit every sample axis
    k_mean = keras.ops.convert_to_numpy(k_model.get_layer("adapted").adapt_mean)
    np.testing.assert_allclose(adapted.mean.numpy().reshape(-1), k_mean, rtol=1e-6)
    assert model.get_layer("scalar").invert
    assert [p.name for p in model.non_trainable_weights] == [
        f"{n}/{w}" for n in ("adapted", "blocks", "fixed", "scalar") for w in ("mean", "variance")
    ]


@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
def test_save_keras_writes_files_keras_loads(functional, keras, fresh_session, rng, tmp_path):
    train = data(rng, (30, 4, 3))
    x = data(rng, (6, 4, 3))
    adapted = Normalization(name="adapted")
    adapted.adapt(train)
    everything = Normalization(axis=None, name="everything")
    everything.adapt(train)
    layers = [
        Rescaling(2.0, offset=0.5, name="rescale"),
        adapted,
        everything,
        Normalization(mean=[1.0, 2.0, 3.0], variance=[1.0, 4.0, 9.0], name="fixed"),
        Normalization(mean=[[0.5]], variance=[[4.0]], axis=(1, 2), invert=True, name="inv"),
        lk.layers.Flatten(),
        lk.layers.Dense(2, name="out"),
    ]
    if functional:
        inputs = lk.layers.Input((4, 3), name="x")
        h = inputs
        for layer in layers:
            h = layer(h)
        model = lk.Model(inputs, h)
    else:
        model = lk.Sequential([lk.layers.Input((4, 3)), *layers])
    expected = model.predict(x, verbose=0)
    path = lk.io.save_keras(model, tmp_path / "pre.keras")
    k_model = keras.models.load_model(path)
    np.testing.assert_allclose(k_model.predict(x, verbose=0), expected, **TOL)
    k_adapted = k_model.get_layer("adapted")
    assert [w.path.split("/")[-1] for w in k_adapted.weights] == ["mean", "variance", "count"]
    assert int(keras.ops.convert_to_numpy(k_adapted.count)) == 0  # as Keras's own adapt
    assert k_model.get_layer("fixed").weights == []
    # and back: layerkit reads what it wrote
    again = lk.io.load_keras(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)


def test_load_keras_refuses_per_channel_rescaling(fresh_session, tmp_path, keras):
    k_model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Rescaling([0.5, 1.0, 2.0]), keras.layers.Dense(1)]
    )
    path = tmp_path / "channels.keras"
    k_model.save(path)
    with pytest.raises(ValueError, match="Rescaling") as info:
        lk.io.load_keras(path)
    assert str(path) in str(info.value)
