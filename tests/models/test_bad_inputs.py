"""Bad inputs: each raises the right exception naming the argument and what was wrong,
and leaves the model's weights bitwise unchanged."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import layerkit as lk
from layerkit.layers import Dense, Input
from layerkit.validation import check_finite


@pytest.fixture
def model(fresh_session):
    model = lk.Sequential(
        [
            Input((784,)),
            Dense(8, activation="relu", name="hidden"),
            Dense(10, activation="softmax", name="outputs"),
        ]
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture
def data(rng):
    x = rng.normal(size=(20, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=20)
    return x, y


def _snapshot(model):
    return [w.tobytes() for w in model.get_weights()]


def _assert_rejected(model, exception, patterns, call, *args, **kwargs):
    before = _snapshot(model)
    iterations = model.optimizer.iterations if model.optimizer else None
    with pytest.raises(exception) as info:
        call(*args, **kwargs)
    message = str(info.value)
    for pattern in patterns:
        assert pattern in message, f"{pattern!r} not in {message!r}"
    assert _snapshot(model) == before
    if iterations is not None:
        assert model.optimizer.iterations == iterations
    return message


# --- wrong shapes and lengths --------------------------------------------------------------------


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict", "train_on_batch"])
def test_wrong_feature_count(model, data, method):
    x, y = data
    bad = x[:, :783]
    call = getattr(model, method)
    args = (bad,) if method == "predict" else (bad, y)
    kwargs = {"verbose": 0} if method in ("fit", "evaluate", "predict") else {}
    _assert_rejected(
        model, ValueError, ["expected 784 features, received 783", "x"], call, *args, **kwargs
    )


def test_wrong_sample_shape(model, rng):
    _assert_rejected(
        model, ValueError, ["(784,)", "(28, 28)"], model.predict, rng.normal(size=(3, 28, 28))
    )


def test_x_and_y_lengths_differ(model, data):
    x, y = data
    _assert_rejected(
        model,
        ValueError,
        ["same number of samples", "x has 20", "y has 19"],
        model.fit,
        x,
        y[:19],
        verbose=0,
    )
    _assert_rejected(model, ValueError, ["x has 20", "y has 19"], model.evaluate, x, y[:19])


def test_validation_data_lengths_differ(model, data):
    x, y = data
    _assert_rejected(
        model,
        ValueError,
        ["validation_data[0]", "validation_data[1]"],
        model.fit,
        x,
        y,
        validation_data=(x[:5], y[:4]),
        verbose=0,
    )


def test_validation_data_feature_count(model, data):
    x, y = data
    _assert_rejected(
        model,
        ValueError,
        ["validation_data[0]", "expected 784 features"],
        model.fit,
        x,
        y,
        validation_data=(x[:5, :700], y[:5]),
        verbose=0,
    )


def test_one_hot_targets_for_sparse_loss(model, data):
    x, y = data
    _assert_rejected(
        model, ValueError, ["y.shape=(20, 10)"], model.fit, x, np.eye(10)[y], verbose=0
    )


# --- bad label values ----------------------------------------------------------------------------


def test_sparse_labels_out_of_range(model, data):
    x, y = data
    y = y.copy()
    y[3] = 10
    message = _assert_rejected(model, ValueError, ["[0, 9]", "10"], model.fit, x, y, verbose=0)
    # check_targets promises errors "naming y with what was received and what was expected"
    assert re.search(r"\by\b", message), message
    y[3] = -1
    _assert_rejected(model, ValueError, ["[0, 9]", "-1"], model.evaluate, x, y)


def test_sparse_labels_not_integers(model, data):
    x, y = data
    y = y.astype(np.float32)
    y[0] = 2.5
    _assert_rejected(model, ValueError, ["integer", "y"], model.fit, x, y, verbose=0)


def test_nan_in_targets(fresh_session, rng):
    model = lk.Sequential([Dense(1, input_dim=3)])
    model.compile(optimizer="sgd", loss="mse")
    y = np.ones((4, 1))
    y[2] = np.nan
    _assert_rejected(
        model, ValueError, ["y", "NaN"], model.fit, rng.normal(size=(4, 3)), y, verbose=0
    )


# --- bad x values --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_nan_or_inf_inputs(model, data, bad_value, method):
    x, y = data
    x = x.copy()
    x[7, 100] = bad_value
    args = (x,) if method == "predict" else (x, y)
    _assert_rejected(
        model,
        ValueError,
        ["x", "NaN or infinite", "sample 7"],
        getattr(model, method),
        *args,
        verbose=0,
    )


def test_finite_check_of_huge_values():
    # The finite check sums each chunk first: a sum that overflows (values near the float32
    # maximum) must fall back to the element check, neither rejecting finite data nor warning.
    x = np.full((16, 784), 3e38, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_finite(x, "x")
        x[5, 3] = -np.inf
        with pytest.raises(ValueError, match=r"Invalid x: .*NaN or infinite.*sample 5"):
            check_finite(x, "x")


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_empty_arrays(model, method):
    x = np.zeros((0, 784), dtype=np.float32)
    args = (x,) if method == "predict" else (x, np.zeros(0, dtype=int))
    _assert_rejected(
        model, ValueError, ["non-empty x", "(0, 784)"], getattr(model, method), *args, verbose=0
    )


@pytest.mark.parametrize(
    "x",
    [
        np.full((2, 784), "a"),
        np.array([[object()] * 784] * 2, dtype=object),
        np.zeros((2, 784), dtype=complex),
    ],
    ids=["str", "object", "complex"],
)
def test_non_numeric_inputs(model, x):
    _assert_rejected(
        model,
        TypeError,
        ["numeric", "x", str(x.dtype)],
        model.fit,
        x,
        np.zeros(2, dtype=int),
        verbose=0,
    )
    _assert_rejected(model, TypeError, ["numeric", "x"], model.predict, x)


def test_string_labels(model, data):
    x, _ = data
    _assert_rejected(
        model, TypeError, ["numeric", "y"], model.fit, x, np.array(["cat"] * 20), verbose=0
    )


def test_none_inputs(model, data):
    _, y = data
    _assert_rejected(model, TypeError, ["x", "None"], model.fit, None, y, verbose=0)
    _assert_rejected(model, TypeError, ["y=None"], model.fit, data[0], None, verbose=0)


# --- bad arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [0, -5])
def test_batch_size_not_positive(model, data, batch_size):
    x, y = data
    _assert_rejected(
        model,
        ValueError,
        [f"batch_size={batch_size}"],
        model.fit,
        x,
        y,
        batch_size=batch_size,
        verbose=0,
    )
    _assert_rejected(
        model, ValueError, [f"batch_size={batch_size}"], model.evaluate, x, y, batch_size=batch_size
    )
    _assert_rejected(
        model, ValueError, [f"batch_size={batch_size}"], model.predict, x, batch_size=batch_size
    )


def test_batch_size_not_integer(model, data):
    x, y = data
    _assert_rejected(
        model, TypeError, ["batch_size=2.5"], model.fit, x, y, batch_size=2.5, verbose=0
    )


def test_negative_epochs(model, data):
    x, y = data
    _assert_rejected(model, ValueError, ["epochs=-1"], model.fit, x, y, epochs=-1, verbose=0)


def test_bad_validation_split(model, data):
    x, y = data
    _assert_rejected(
        model,
        ValueError,
        ["validation_split=1.5"],
        model.fit,
        x,
        y,
        validation_split=1.5,
        verbose=0,
    )


def test_bad_verbose(model, data):
    x, y = data
    _assert_rejected(model, ValueError, ["verbose=3"], model.fit, x, y, verbose=3)


def test_zero_epochs_trains_nothing(model, data):
    x, y = data
    before = _snapshot(model)
    history = model.fit(x, y, epochs=0, verbose=0)
    assert history.history == {}
    assert _snapshot(model) == before


# --- unknown names -------------------------------------------------------------------------------


def test_unknown_names(fresh_session):
    with pytest.raises(ValueError, match=r"activation='relu7'"):
        Dense(3, activation="relu7")
    with pytest.raises(ValueError, match=r"initializer.*'glorot_wobbly'"):
        Dense(3, kernel_initializer="glorot_wobbly")
    model = lk.Sequential([Dense(2, input_dim=3)])
    before = _snapshot(model)
    with pytest.raises(ValueError, match=r"loss='hinge_loss_x'"):
        model.compile(optimizer="sgd", loss="hinge_loss_x")
    with pytest.raises(ValueError, match=r"optimizer='adamax_x'"):
        model.compile(optimizer="adamax_x", loss="mse")
    assert not model.compiled
    assert _snapshot(model) == before


def test_compile_without_loss(fresh_session):
    model = lk.Sequential([Dense(2, input_dim=3)])
    with pytest.raises(ValueError, match=r"loss=None"):
        model.compile(optimizer="sgd")


@pytest.mark.parametrize("units", [-3, 0])
def test_dense_bad_units(units):
    with pytest.raises(ValueError, match=rf"units={units}"):
        Dense(units=units)


def test_two_clip_options():
    with pytest.raises(ValueError, match=r"clipnorm.*clipvalue"):
        lk.optim.SGD(clipnorm=1.0, clipvalue=0.5)


# --- order of calls ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch", "compute_gradients"])
def test_training_before_compile(fresh_session, rng, method):
    model = lk.Sequential([Dense(2, input_dim=3)])
    before = _snapshot(model)
    with pytest.raises(RuntimeError, match=rf"compile.*{method}"):
        getattr(model, method)(rng.normal(size=(4, 3)), rng.normal(size=(4, 2)))
    assert _snapshot(model) == before


def test_predict_works_before_compile(fresh_session):
    model = lk.Sequential([Dense(2, input_dim=3, kernel_initializer="ones")])
    np.testing.assert_allclose(model.predict(np.ones((1, 3))), [[3.0, 3.0]])


# --- set_weights ---------------------------------------------------------------------------------


def test_set_weights_wrong_count(model):
    weights = model.get_weights()
    _assert_rejected(model, ValueError, ["expects 4", "received 3"], model.set_weights, weights[:3])
    _assert_rejected(
        model, ValueError, ["expects 4", "received 5"], model.set_weights, [*weights, weights[-1]]
    )


def test_set_weights_wrong_shape_changes_nothing(model):
    weights = [w + 1.0 for w in model.get_weights()]
    weights[3] = np.zeros(11)  # the last one is wrong: the first three must not be written
    _assert_rejected(
        model, ValueError, ["outputs/bias", "(10,)", "(11,)"], model.set_weights, weights
    )


def test_set_weights_not_a_list(model):
    _assert_rejected(model, TypeError, ["list"], model.set_weights, np.zeros(3))


def test_set_weights_non_numeric_changes_nothing(model):
    weights = model.get_weights()
    weights = [w + 1.0 for w in weights]
    weights[3] = np.array(["x"] * 10)
    before = _snapshot(model)
    with pytest.raises((TypeError, ValueError)):
        model.set_weights(weights)
    assert _snapshot(model) == before
