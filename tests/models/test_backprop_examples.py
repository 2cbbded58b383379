"""Whole-model backpropagation: finite-difference checks of ``compute_gradients``, the
classic single-unit examples trained to known answers, reproducibility, and the model's
description (summary, config, names, Dropout in training only)."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk
from layerkit.layers import Dense, Dropout, Input

# --- finite-difference checks of a whole model (float64) -----------------------------------------


def _check_model_gradients(model, x, y, numeric_grad):
    value, pairs = model.compute_gradients(x, y)
    assert value == pytest.approx(model.loss(y, model.predict(x)), rel=1e-9)
    assert [p.name for _, p in pairs] == [p.name for p in model.trainable_weights]
    before = model.get_weights()

    def f():
        return model.loss(y, model.predict(x))

    for grad, p in pairs:
        assert grad.dtype == np.float64
        np.testing.assert_allclose(
            grad, numeric_grad(f, p.value), rtol=1e-6, atol=1e-8, err_msg=p.name
        )
    # compute_gradients changes no weight (and the checks restored every value)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def _three_layers(last_units, last_activation):
    return lk.Sequential(
        [
            Input((4,)),
            Dense(5, activation="tanh", name="h1"),
            Dense(3, activation="elu", name="h2"),
            Dense(last_units, activation=last_activation, name="out"),
        ]
    )


def test_three_layer_mse_gradients(float64, fresh_session, rng, numeric_grad):
    model = _three_layers(2, "linear")
    model.compile(optimizer="sgd", loss="mse")
    x = rng.normal(size=(6, 4))
    y = rng.normal(size=(6, 2))
    _check_model_gradients(model, x, y, numeric_grad)


def test_three_layer_relu_mae_gradients(float64, fresh_session, rng, numeric_grad):
    model = lk.Sequential(
        [
            Input((4,)),
            Dense(6, activation="relu", name="h1", bias_initializer=lk.initializers.Constant(0.3)),
            Dense(4, activation="leaky_relu", name="h2"),
            Dense(2, activation="sigmoid", name="out"),
        ]
    )
    model.compile(optimizer="sgd", loss="mae")
    x = rng.normal(size=(5, 4))
    y = rng.uniform(-1, 2, size=(5, 2))  # far from the sigmoid's range: no MAE kink
    _check_model_gradients(model, x, y, numeric_grad)


def test_softmax_categorical_crossentropy_fused_gradients(
    float64, fresh_session, rng, numeric_grad
):
    model = _three_layers(3, "softmax")
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    fused = model._train_pass().fused[0]
    assert fused is not None
    assert fused.from_logits
    x = rng.normal(size=(6, 4))
    y = np.eye(3)[rng.integers(0, 3, size=6)]
    _check_model_gradients(model, x, y, numeric_grad)


def test_softmax_sparse_categorical_crossentropy_fused_gradients(
    float64, fresh_session, rng, numeric_grad
):
    model = _three_layers(3, "softmax")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert model._train_pass().fused[0] is not None
    x = rng.normal(size=(6, 4))
    y = rng.integers(0, 3, size=6)
    _check_model_gradients(model, x, y, numeric_grad)


def test_sigmoid_binary_crossentropy_fused_gradients(float64, fresh_session, rng, numeric_grad):
    model = _three_layers(1, "sigmoid")
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    assert model._train_pass().fused[0] is not None
    x = rng.normal(size=(6, 4))
    y = rng.integers(0, 2, size=(6, 1))
    _check_model_gradients(model, x, y, numeric_grad)


def test_logits_output_gradients(float64, fresh_session, rng, numeric_grad):
    model = _three_layers(3, "linear")
    model.compile(optimizer="sgd", loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert model._train_pass().fused[0] is None
    x = rng.normal(size=(6, 4))
    y = rng.integers(0, 3, size=6)
    _check_model_gradients(model, x, y, numeric_grad)


def test_frozen_layer_gradients(float64, fresh_session, rng, numeric_grad):
    model = _three_layers(2, "tanh")
    model.compile(optimizer="sgd", loss="mse")
    model.freeze("h2")
    x = rng.normal(size=(6, 4))
    y = rng.normal(size=(6, 2))
    _, pairs = model.compute_gradients(x, y)
    assert [p.name for _, p in pairs] == ["h1/kernel", "h1/bias", "out/kernel", "out/bias"]
    _check_model_gradients(model, x, y, numeric_grad)


def test_train_on_batch_is_one_sgd_step_of_compute_gradients(float64, fresh_session, rng):
    model = _three_layers(2, "linear")
    model.compile(optimizer=lk.optim.SGD(0.1), loss="mse")
    x = rng.normal(size=(6, 4))
    y = rng.normal(size=(6, 2))
    before = model.get_weights()
    value, pairs = model.compute_gradients(x, y)
    loss = model.train_on_batch(x, y)
    assert loss == pytest.approx(value, rel=1e-12)
    for w0, (g, _), w1 in zip(before, pairs, model.get_weights(), strict=True):
        np.testing.assert_allclose(w1, w0 - 0.1 * g, rtol=1e-12, atol=1e-15)


# --- the classic examples ------------------------------------------------------------------------


def test_single_weight_regression_to_ten(fresh_session):
    """x ~ N(1, 0.1), target 10: one weight A with x*A = 10, SGD on single samples."""
    data = np.random.default_rng(0)
    x = data.normal(1.0, 0.1, size=100).astype(np.float32)
    y = np.full(100, 10.0, dtype=np.float32)
    model = lk.Sequential([Dense(1, use_bias=False, input_dim=1, name="A")])
    model.compile(optimizer=lk.optim.SGD(learning_rate=0.02), loss="mse")
    a0 = float(model.get_weights()[0][0, 0])
    assert abs(a0) < 2.0
    for _ in range(2):
        for i in range(100):
            model.train_on_batch(x[i : i + 1], y[i : i + 1])
    a = float(model.get_weights()[0][0, 0])
    assert a == pytest.approx(10.0, abs=0.5)
    assert model.optimizer.iterations == 200
    # the least-squares optimum and its irreducible error (x has spread 0.1: about 1.0)
    best = 10.0 * float(np.sum(x, dtype=np.float64) / np.sum(x.astype(np.float64) ** 2))
    floor = float(np.mean((best * x - 10.0) ** 2))
    assert a == pytest.approx(best, abs=0.5)
    assert model.evaluate(x, y) < floor + 0.25


def test_logistic_unit_finds_the_boundary(fresh_session):
    """N(-1, 1) labelled 0, N(3, 1) labelled 1: the boundary -b/w should be near 1."""
    data = np.random.default_rng(1)
    x = np.concatenate([data.normal(-1.0, 1.0, 50), data.normal(3.0, 1.0, 50)]).astype(np.float32)
    y = np.concatenate([np.zeros(50), np.ones(50)]).astype(np.float32)
    model = lk.Sequential([Dense(1, input_dim=1, name="unit")])
    model.compile(
        optimizer=lk.optim.SGD(learning_rate=0.05),
        loss=lk.losses.BinaryCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    order = data.integers(0, 100, size=1400)
    for i in order:
        model.train_on_batch(x[i : i + 1], y[i : i + 1])
    w, b = (float(v.ravel()[0]) for v in model.get_weights())
    assert w > 0
    assert -b / w == pytest.approx(1.0, abs=0.5)
    logits = model.predict(x)[:, 0]
    accuracy = np.mean((logits > 0) == (y > 0.5))
    assert accuracy >= 0.95
    _, reported = model.evaluate(x, y)
    assert reported == pytest.approx(accuracy)


def test_fit_line_three_x(fresh_session):
    """y = 3x from w = 2.269, b = 1.01, full-batch gradient descent on the MSE."""
    x = np.array([1.0, 3.0, 4.0, 8.0, 10.0], dtype=np.float32)
    y = 3.0 * x
    model = lk.Sequential([Dense(1, input_dim=1, name="line")])
    model.set_weights([np.array([[2.269]]), np.array([1.01])])
    model.compile(optimizer=lk.optim.SGD(learning_rate=0.02), loss="mse")
    first = model.evaluate(x, y)
    expected_first = np.mean((2.269 * x + 1.01 - y) ** 2)
    assert first == pytest.approx(expected_first, rel=1e-5)
    history = model.fit(x, y, batch_size=5, epochs=1500, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(expected_first, rel=1e-5)
    w, b = (float(v.ravel()[0]) for v in model.get_weights())
    assert w == pytest.approx(3.0, abs=0.01)
    assert b == pytest.approx(0.0, abs=0.05)
    assert history.history["loss"][-1] < 1e-4


def test_first_step_of_the_line_fit_by_hand(float64, fresh_session):
    x = np.array([1.0, 3.0, 4.0, 8.0, 10.0])
    y = 3.0 * x
    model = lk.Sequential([Dense(1, input_dim=1)])
    model.set_weights([np.array([[2.269]]), np.array([1.01])])
    model.compile(optimizer=lk.optim.SGD(learning_rate=0.01), loss="mse")
    model.train_on_batch(x, y)
    err = 2.269 * x + 1.01 - y
    w = 2.269 - 0.01 * np.mean(2 * err * x)
    b = 1.01 - 0.01 * np.mean(2 * err)
    kernel, bias = model.get_weights()
    assert kernel[0, 0] == pytest.approx(w, rel=1e-12)
    assert bias[0] == pytest.approx(b, rel=1e-12)


# --- reproducibility -----------------------------------------------------------------------------


def _seeded_run(seed):
    lk.utils.clear_session()
    lk.utils.set_random_seed(seed)
    model = lk.Sequential(
        [
            Input((6,)),
            Dense(16, activation="relu"),
            Dropout(0.3),
            Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    data = np.random.default_rng(99)
    x = data.normal(size=(64, 6)).astype(np.float32)
    y = data.integers(0, 3, size=64)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    return model.get_weights()


def test_set_random_seed_makes_training_reproducible(fresh_session):
    a, b, c = _seeded_run(7), _seeded_run(7), _seeded_run(8)
    for wa, wb in zip(a, b, strict=True):
        assert wa.tobytes() == wb.tobytes()
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(a, c, strict=True))


# --- description: summary, config, names, Dropout ------------------------------------------------


def _mnist_mlp():
    return lk.Sequential(
        [
            Input((784,)),
            Dense(300, activation="relu", name="hidden1"),
            Dense(10, activation="softmax", name="outputs"),
        ]
    )


def test_summary_counts_with_a_frozen_layer(fresh_session):
    model = _mnist_mlp()
    model.freeze("hidden1")
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Total params: 238,510 (931.68 KB)" in text
    assert "Trainable params: 3,010 (11.76 KB)" in text
    assert "Non-trainable params: 235,500 (919.92 KB)" in text
    assert "235,500" in text.split("hidden1")[1].split("\n")[0]
    assert "(None, 300)" in text
    assert "(None, 10)" in text
    assert model.count_params() == 238_510
    model.unfreeze("hidden1")
    lines.clear()
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Trainable params: 238,510" in text
    assert "Non-trainable params: 0" in text


def test_config_round_trip(fresh_session, rng):
    model = lk.Sequential(
        [
            Input((5,)),
            Dense(4, activation="relu", name="hidden"),
            Dropout(0.2, name="drop"),
            Dense(2, activation="sigmoid", name="out", use_bias=False),
        ]
    )
    config = model.get_config()
    clone = lk.Sequential.from_config(config)
    assert [layer.name for layer in clone.layers] == ["hidden", "drop", "out"]
    assert [type(layer).__name__ for layer in clone.layers] == ["Dense", "Dropout", "Dense"]
    assert clone.get_layer("hidden").units == 4
    assert clone.get_layer("hidden").activation.name == "relu"
    assert clone.get_layer("out").activation.name == "sigmoid"
    assert clone.get_layer("out").use_bias is False
    assert clone.get_layer("drop").rate == 0.2
    assert clone.input_shape == (None, 5)
    assert clone.output_shape == (None, 2)
    assert clone.get_config() == config
    clone.set_weights(model.get_weights())
    x = rng.normal(size=(7, 5)).astype(np.float32)
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))


def test_automatic_names(fresh_session):
    model = lk.Sequential([Input((3,)), Dense(4), Dense(2)])
    assert [layer.name for layer in model.layers] == ["dense", "dense_1"]
    assert [p.name for p in model.weights] == [
        "dense/kernel",
        "dense/bias",
        "dense_1/kernel",
        "dense_1/bias",
    ]
    assert model.name == "sequential"
    assert lk.Sequential().name == "sequential_1"
    lk.utils.clear_session()
    assert lk.Sequential([Dense(1, input_dim=1)]).layers[0].name == "dense"


def test_duplicate_layer_names_rejected(fresh_session):
    with pytest.raises(ValueError, match=r"unique names.*'a'"):
        lk.Sequential([Dense(2, input_dim=2, name="a"), Dense(2, name="a")])


def test_dropout_only_in_training(fresh_session, rng):
    model = lk.Sequential([Input((20,)), Dense(20, activation="relu"), Dropout(0.5), Dense(4)])
    x = rng.normal(size=(8, 20)).astype(np.float32)
    p1, p2 = model.predict(x), model.predict(x)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(model(x), p1)
    np.testing.assert_array_equal(model(x, training=False), p1)
    t1, t2 = model(x, training=True), model(x, training=True)
    assert not np.allclose(t1, p1)
    assert not np.allclose(t1, t2)
