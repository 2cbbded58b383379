"""What a new user meets first (issue 20): freezing a whole model, setting the learning
rate of a scheduled optimizer, the warnings of a fit that cannot do what is meant, the
per-epoch lines of ``fit`` and ``ModelCheckpoint``, a 1-D ``x`` in ``predict``, numpy
scalars as optimizer options, and unbuilt models / bytes paths.

Where Keras 3 is the reference, the same thing runs in real Keras (PyTorch backend),
imported once for the module by the ``keras`` fixture.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest

import layerkit as lk
from layerkit.callbacks import Callback, ModelCheckpoint, TerminateOnNaN
from layerkit.layers import Dense, Input


# --- local helpers -------------------------------------------------------------------
def make_model(last_activation=None, optimizer=None, loss="mse") -> lk.Sequential:
    """5 -> 4 (relu) -> 3: four weights (two kernels, two biases); fixed layer names, so
    that weights load by name from one such model into another."""
    model = lk.Sequential(
        [
            Input((5,)),
            Dense(4, activation="relu", name="hidden"),
            Dense(3, activation=last_activation, name="out"),
        ]
    )
    model.compile(optimizer=optimizer or lk.optim.SGD(0.1), loss=loss)
    return model


def make_data(n: int = 12, seed: int = 3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = rng.normal(size=(n, 3)).astype(np.float32)
    return x, y


def same_weights(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


# --- 1. model.trainable ----------------------------------------------------------------
def test_model_trainable_false_freezes_every_layer_and_fit_changes_nothing(fresh_session):
    model = make_model()
    x, y = make_data()
    model.trainable = False
    assert model.trainable is False
    assert [layer.trainable for layer in model.layers] == [False, False]
    assert (len(model.trainable_weights), len(model.non_trainable_weights)) == (0, 4)
    before = model.get_weights()
    with pytest.warns(UserWarning, match="no trainable weights"):
        model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert same_weights(before, model.get_weights()), "a frozen model's weights changed"

    model.trainable = True  # no recompile: the next fit trains again
    assert [layer.trainable for layer in model.layers] == [True, True]
    assert (len(model.trainable_weights), len(model.non_trainable_weights)) == (4, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "no trainable weights" now
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    after = model.get_weights()
    assert all(not np.array_equal(u, v) for u, v in zip(before, after)), (
        "after model.trainable = True every weight should train"
    )


def test_model_trainable_weight_counts_match_keras(fresh_session, keras):
    model = make_model()
    twin = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3)]
    )

    def counts(m):
        return len(m.trainable_weights), len(m.non_trainable_weights)

    assert counts(model) == counts(twin) == (4, 0)
    model.trainable = twin.trainable = False
    assert counts(model) == counts(twin) == (0, 4)
    assert [layer.trainable for layer in model.layers] == [layer.trainable for layer in twin.layers]
    model.trainable = twin.trainable = True
    assert counts(model) == counts(twin) == (4, 0)


# --- 2. learning_rate of a scheduled optimizer ------------------------------------------
def test_setting_the_learning_rate_of_a_scheduled_optimizer_raises(fresh_session):
    decay = lk.optim.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    optimizer = lk.optim.SGD(learning_rate=decay)
    with pytest.raises(TypeError, match="not settable"):
        optimizer.learning_rate = 0.1
    assert optimizer.schedule is decay
    # The schedule still drives the steps: 3 batches -> iterations 3 -> 0.1 * 0.5 ** 1.5.
    model = make_model(optimizer=optimizer)
    x, y = make_data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert optimizer.iterations == 3
    assert optimizer.learning_rate == pytest.approx(0.1 * 0.5**1.5)
    # A float learning rate stays settable (numpy scalars included).
    plain = lk.optim.SGD(learning_rate=0.1)
    plain.learning_rate = np.float32(0.25)
    assert plain.learning_rate == pytest.approx(0.25)


def test_keras_also_refuses_to_set_a_scheduled_learning_rate(keras):
    decay = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    optimizer = keras.optimizers.SGD(learning_rate=decay)
    with pytest.raises(TypeError, match="not settable"):
        optimizer.learning_rate = 0.1


# --- 3 and 5. warnings before a fit ------------------------------------------------------
def test_fit_with_every_layer_frozen_warns(fresh_session):
    model = make_model()
    x, y = make_data()
    for layer in model.layers:
        layer.trainable = False  # layer by layer, not model.trainable
    with pytest.warns(UserWarning, match="no trainable weights") as caught:
        model.fit(x, y, batch_size=4, epochs=3, verbose=0)
    assert sum("no trainable weights" in str(w.message) for w in caught) == 1
    model.get_layer(index=1).trainable = True
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # one layer trains: no warning


def _fit_warnings(model, x, y) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=4, epochs=3, verbose=0)
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


@pytest.mark.parametrize(
    ("loss_name", "activation", "loss_class"),
    [
        ("categorical_crossentropy", "softmax", lk.losses.CategoricalCrossentropy),
        ("binary_crossentropy", "sigmoid", lk.losses.BinaryCrossentropy),
    ],
)
def test_probability_loss_after_a_linear_layer_warns_once_about_from_logits(
    fresh_session, loss_name, activation, loss_class
):
    x, _ = make_data()
    y = np.eye(3, dtype=np.float32)[np.arange(len(x)) % 3]  # one-hot: also valid 0/1 labels
    model = make_model(loss=loss_name)
    messages = _fit_warnings(model, x, y)
    assert sum("from_logits=True" in m for m in messages) == 1, (
        f"expected one from_logits warning over 3 epochs, got {messages}; the loss defines "
        f"probability_activation={getattr(model.loss, 'probability_activation', None)!r}, "
        f"expected_activation={getattr(model.loss, 'expected_activation', None)!r}"
    )
    assert "'linear'" in next(m for m in messages if "from_logits" in m)
    # No warning when the activation is the expected one, or the loss takes logits.
    assert _fit_warnings(make_model(activation, loss=loss_name), x, y) == []
    logits = loss_class(from_logits=True)
    assert _fit_warnings(make_model(loss=logits), x, y) == []


# --- 9. NaN warning and TerminateOnNaN ---------------------------------------------------
@pytest.mark.parametrize("terminate", [False, True], ids=["alone", "with_terminate_on_nan"])
def test_nan_warning_suggests_terminate_on_nan_only_without_it(fresh_session, terminate, capsys):
    model = make_model(optimizer=lk.optim.SGD(learning_rate=1e20))  # diverges at once
    x, y = make_data()
    callbacks = [TerminateOnNaN()] if terminate else []
    with pytest.warns(RuntimeWarning, match=r"The loss became (nan|inf)") as caught:
        history = model.fit(x * 100, y, batch_size=2, epochs=3, verbose=0, callbacks=callbacks)
    messages = [str(w.message) for w in caught if "The loss became" in str(w.message)]
    assert len(messages) == 1, messages  # once per fit, not per batch
    if terminate:
        assert "TerminateOnNaN" not in messages[0]
        assert len(history.history["loss"]) == 1  # stopped in the first epoch
        assert "Invalid loss, terminating training" in capsys.readouterr().out
    else:
        assert "Add lk.callbacks.TerminateOnNaN()" in messages[0]
        assert len(history.history["loss"]) == 3
        assert not np.isfinite(history.history["loss"][-1])


# --- 10. what fit and ModelCheckpoint print ----------------------------------------------
EPOCH_LINE = re.compile(
    r"^(\d+)/\1 - \d+s - \d+(us|ms|s)/step - loss: (\d+\.\d{4}) - val_loss: (\d+\.\d{4})$"
)


def _template(line: str) -> str:
    """A printed line with its numbers and time units blanked, to compare with Keras."""
    line = re.sub(r"\d+(us|ms|s)/step", "T/step", line)
    return re.sub(r"\d+(\.\d+)?(e[-+]\d+)?", "N", line)


@pytest.mark.parametrize("verbose", [2, 1, "auto"])
def test_fit_prints_keras_per_epoch_lines_when_not_a_terminal(fresh_session, verbose, capsys):
    model = make_model()
    x, y = make_data()
    history = model.fit(
        x, y, batch_size=4, epochs=2, verbose=verbose, validation_data=(x[:4], y[:4])
    )
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4, lines
    assert lines[0] == "Epoch 1/2"
    assert lines[2] == "Epoch 2/2"
    for epoch, line in enumerate(lines[1::2]):
        match = EPOCH_LINE.match(line)
        assert match, f"not Keras's verbose=2 line: {line!r}"
        assert match.group(1) == "3"  # steps
        assert float(match.group(3)) == pytest.approx(history.history["loss"][epoch], abs=6e-5)
        assert float(match.group(4)) == pytest.approx(history.history["val_loss"][epoch], abs=6e-5)


def test_fit_verbose_0_prints_nothing(fresh_session, capsys):
    x, y = make_data()
    make_model().fit(x, y, batch_size=4, epochs=2, verbose=0, validation_data=(x, y))
    assert capsys.readouterr().out == ""


def test_fit_verbose_2_lines_have_the_shape_of_keras_lines(fresh_session, keras, capsys):
    x, y = make_data()
    make_model().fit(x, y, batch_size=4, epochs=2, verbose=2, validation_data=(x[:4], y[:4]))
    ours = [_template(line) for line in capsys.readouterr().out.splitlines()]
    twin = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3)]
    )
    twin.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    twin.fit(x, y, batch_size=4, epochs=2, verbose=2, validation_data=(x[:4], y[:4]))
    theirs = [_template(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert ours == theirs


class StopLearningAfterFirstEpoch(Callback):
    """Learning rate 0 from the second epoch on: val_loss repeats, so it cannot improve."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.optimizer.learning_rate = 0.0


def test_model_checkpoint_save_best_only_prints_keras_lines(fresh_session, tmp_path, capsys):
    model = make_model()
    x, y = make_data()
    path = str(tmp_path / "best.h5")
    checkpoint = ModelCheckpoint(path, save_best_only=True, verbose=1)
    history = model.fit(
        x,
        y,
        batch_size=4,
        epochs=3,
        verbose=0,
        validation_data=(x[:4], y[:4]),
        callbacks=[StopLearningAfterFirstEpoch(), checkpoint],
    )
    val = history.history["val_loss"]
    assert val[1] == val[2] == val[0]  # nothing learnt after the first epoch
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert lines == [
        f"Epoch 1: val_loss improved from inf to {val[0]:.5f}, saving model to {path}",
        f"Epoch 2: val_loss did not improve from {val[0]:.5f}",
        f"Epoch 3: val_loss did not improve from {val[0]:.5f}",
    ]
    assert os.path.isfile(path)
    assert checkpoint.best == pytest.approx(val[0])


# --- 14. a 1-D x in predict -------------------------------------------------------------
def test_predict_one_sample_without_batch_axis_explains_x_none(fresh_session):
    model = make_model()
    x, _ = make_data()
    with pytest.raises(ValueError, match=r"5 samples of one feature") as info:
        model.predict(x[0])
    message = str(info.value)
    assert "1-D" in message
    assert "x[None]" in message
    np.testing.assert_allclose(model.predict(x[0][None]), model.predict(x)[:1], rtol=1e-6)


# --- 16. numpy scalars as optimizer options ----------------------------------------------
@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(
            lambda: lk.optim.Adam(
                learning_rate=np.float32(1e-3),
                clipnorm=np.float32(1.0),
                beta_1=np.float32(0.9),
                beta_2=np.float64(0.99),
                epsilon=np.float32(1e-6),
            ),
            {"learning_rate": 1e-3, "clipnorm": 1.0, "beta_1": 0.9, "beta_2": 0.99},
            id="adam",
        ),
        pytest.param(
            lambda: lk.optim.SGD(learning_rate=np.float64(0.1), momentum=np.float64(0.9)),
            {"learning_rate": 0.1, "momentum": 0.9},
            id="sgd",
        ),
        pytest.param(
            lambda: lk.optim.RMSprop(rho=np.float32(0.9), momentum=np.float32(0.5)),
            {"rho": 0.9, "momentum": 0.5},
            id="rmsprop",
        ),
        pytest.param(
            lambda: lk.optim.SGD(clipvalue=np.int64(1)), {"clipvalue": 1.0}, id="clipvalue"
        ),
        pytest.param(
            lambda: lk.optim.Adam(global_clipnorm=np.float32(2.0)),
            {"global_clipnorm": 2.0},
            id="global_clipnorm",
        ),
        pytest.param(
            lambda: lk.optim.Adagrad(initial_accumulator_value=np.float32(0.5)),
            {"initial_accumulator_value": 0.5},
            id="adagrad",
        ),
        pytest.param(lambda: lk.optim.Adadelta(rho=np.float32(0.9)), {"rho": 0.9}, id="adadelta"),
    ],
)
def test_optimizers_accept_numpy_scalars(fresh_session, make, expected):
    optimizer = make()
    config = optimizer.get_config()
    for option, value in expected.items():
        assert type(config[option]) is float, f"{option} stored as {type(config[option])}"
        assert config[option] == pytest.approx(value, rel=1e-6)
    # And it trains: one step moves the weights.
    model = make_model(optimizer=optimizer)
    x, y = make_data()
    before = model.get_weights()
    model.fit(x, y, batch_size=12, epochs=1, verbose=0)
    assert not same_weights(before, model.get_weights())


@pytest.mark.parametrize(
    ("make", "option"),
    [
        pytest.param(lambda v: lk.optim.SGD(learning_rate=v), "learning_rate", id="SGD-lr"),
        pytest.param(lambda v: lk.optim.SGD(momentum=v), "momentum", id="SGD-momentum"),
        pytest.param(lambda v: lk.optim.SGD(clipnorm=v), "clipnorm", id="SGD-clipnorm"),
        pytest.param(lambda v: lk.optim.SGD(clipvalue=v), "clipvalue", id="SGD-clipvalue"),
        pytest.param(
            lambda v: lk.optim.SGD(global_clipnorm=v), "global_clipnorm", id="SGD-global_clipnorm"
        ),
        pytest.param(lambda v: lk.optim.Adam(beta_1=v), "beta_1", id="Adam-beta_1"),
        pytest.param(lambda v: lk.optim.Adam(beta_2=v), "beta_2", id="Adam-beta_2"),
        pytest.param(lambda v: lk.optim.Adam(epsilon=v), "epsilon", id="Adam-epsilon"),
        pytest.param(lambda v: lk.optim.RMSprop(rho=v), "rho", id="RMSprop-rho"),
        pytest.param(lambda v: lk.optim.RMSprop(momentum=v), "momentum", id="RMSprop-momentum"),
        pytest.param(lambda v: lk.optim.RMSprop(epsilon=v), "epsilon", id="RMSprop-epsilon"),
        pytest.param(
            lambda v: lk.optim.Adagrad(initial_accumulator_value=v),
            "initial_accumulator_value",
            id="Adagrad-initial_accumulator_value",
        ),
        pytest.param(lambda v: lk.optim.Adagrad(epsilon=v), "epsilon", id="Adagrad-epsilon"),
        pytest.param(lambda v: lk.optim.Adadelta(rho=v), "rho", id="Adadelta-rho"),
        pytest.param(lambda v: lk.optim.Adadelta(epsilon=v), "epsilon", id="Adadelta-epsilon"),
    ],
)
@pytest.mark.parametrize("bad", [True, np.bool_(False), "0.5"], ids=["True", "np_False", "str"])
def test_optimizers_refuse_bools_and_strings_naming_the_option(make, option, bad):
    with pytest.raises((TypeError, ValueError)) as info:
        make(bad)
    assert option in str(info.value), f"the error does not name {option}: {info.value}"


# --- 17. unbuilt models and bytes paths --------------------------------------------------
def test_count_params_of_an_unbuilt_model_raises_but_summary_works(fresh_session, capsys):
    model = lk.Sequential([Dense(3, name="head")])
    with pytest.raises(ValueError, match="not built"):
        model.count_params()
    model.summary()
    text = capsys.readouterr().out
    assert "head (Dense)" in text
    assert "Total params: 0" in text
    assert not model.built  # summary did not build it
    model.build((None, 5))
    assert model.count_params() == 5 * 3 + 3


def test_keras_count_params_of_an_unbuilt_model_raises_too(keras):
    with pytest.raises(ValueError):
        keras.Sequential([keras.layers.Dense(3)]).count_params()


def test_save_and_load_weights_accept_bytes_paths(fresh_session, tmp_path):
    model = make_model()
    x, y = make_data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    path = os.fsencode(tmp_path / "model.h5")
    saved = model.save(path)
    assert os.path.isfile(saved)
    assert os.fsencode(saved) == path
    other = make_model()
    assert not same_weights(model.get_weights(), other.get_weights())
    other.load_weights(path)
    assert same_weights(model.get_weights(), other.get_weights())
    loaded = lk.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
