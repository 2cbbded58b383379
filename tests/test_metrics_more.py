"""The Keras 3 metrics beyond accuracy and MSE/MAE, each checked against real Keras."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk
from layerkit import metrics


def _batches(name: str, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Three batches of (y_true, y_pred) of uneven sizes fitting the metric ``name``."""
    out = []
    for n in (5, 8, 3):
        if name in ("TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy"):
            # rounded scores: ties with the k-th largest happen and must count as hits
            scores = np.round(rng.uniform(size=(n, 6)), 1).astype(np.float32)
            labels = rng.integers(0, 6, size=n)
            y = np.eye(6, dtype=np.float32)[labels] if name.startswith("Top") else labels
            out.append((y, scores))
        elif name in ("Precision", "Recall"):
            labels = rng.integers(0, 2, size=(n, 1)).astype(np.float32)
            scores = np.round(rng.uniform(size=(n, 1)), 1).astype(np.float32)  # 0.5 exactly too
            out.append((labels, scores))
        elif name in ("MeanSquaredLogarithmicError",):
            out.append(
                (
                    rng.uniform(0, 3, size=(n, 3)).astype(np.float32),
                    rng.uniform(-0.5, 3, size=(n, 3)).astype(np.float32),
                )
            )
        else:
            y = rng.normal(size=(n, 3)).astype(np.float32)
            if name == "MeanAbsolutePercentageError":
                y[0, 0] = 0.0  # the 1e-7 clip
            out.append((y, rng.normal(size=(n, 3)).astype(np.float32)))
    return out


CASES = [
    ("RootMeanSquaredError", {}, "root_mean_squared_error"),
    ("TopKCategoricalAccuracy", {"k": 2}, "top_k_categorical_accuracy"),
    ("SparseTopKCategoricalAccuracy", {"k": 3}, "sparse_top_k_categorical_accuracy"),
    ("MeanAbsolutePercentageError", {}, "mean_absolute_percentage_error"),
    ("MeanSquaredLogarithmicError", {}, "mean_squared_logarithmic_error"),
    ("LogCoshError", {}, "log_cosh_error"),
    ("CosineSimilarity", {}, "cosine_similarity"),
    ("Precision", {}, "precision"),
    ("Recall", {}, "recall"),
]


@pytest.mark.parametrize(("cls_name", "kwargs", "snake"), CASES)
def test_running_value_matches_keras(keras, rng, cls_name, kwargs, snake):
    ours = getattr(metrics, cls_name)(**kwargs)
    theirs = getattr(keras.metrics, cls_name)(**kwargs)
    assert ours.name == theirs.name
    for y_true, y_pred in _batches(cls_name, rng):
        ours.update_state(y_true, y_pred)
        theirs.update_state(y_true, y_pred)
        np.testing.assert_allclose(ours.result(), float(theirs.result()), rtol=1e-6, atol=1e-7)
    # __call__ is the one-shot value of a batch and leaves the running state alone
    before = ours.result()
    fresh = getattr(keras.metrics, cls_name)(**kwargs)
    fresh.update_state(y_true, y_pred)
    np.testing.assert_allclose(ours(y_true, y_pred), float(fresh.result()), rtol=1e-6, atol=1e-7)
    assert ours.result() == before
    ours.reset_state()
    assert ours.result() == 0.0
    assert (ours._total, ours._count) == (0.0, 0)


@pytest.mark.parametrize(("cls_name", "kwargs", "snake"), CASES)
def test_names_and_config(keras, cls_name, kwargs, snake):
    cls = getattr(metrics, cls_name)
    # the names Keras's compile accepts for the class
    assert keras.metrics.get(cls_name).__class__.__name__ == cls_name
    assert keras.metrics.get(snake).__class__.__name__ == cls_name
    for name in (cls_name, snake):
        metric = metrics.get(name)
        assert type(metric) is cls
        assert metric.name == name
    original = cls(name="custom", **kwargs)
    again = metrics.deserialize(metrics.serialize(original))
    assert type(again) is cls
    assert again.get_config() == original.get_config()
    for key, value in kwargs.items():
        assert getattr(again, key) == value


def test_aliases_as_keras():
    assert type(metrics.get("mape")) is metrics.MeanAbsolutePercentageError
    assert type(metrics.get("msle")) is metrics.MeanSquaredLogarithmicError


def test_rmse_is_root_of_running_mean_not_mean_of_roots():
    m = metrics.RootMeanSquaredError()
    m.update_state(np.zeros((1, 1)), np.full((1, 1), 3.0))  # squared error 9
    m.update_state(np.zeros((3, 1)), np.ones((3, 1)))  # squared errors 1, 1, 1
    assert m.result() == pytest.approx(np.sqrt(12 / 4))  # not (3 + 1) / 2
    assert (m._total, m._count) == (12.0, 4)


def test_top_k_ties_count_as_hits():
    # label 2 ties the 2nd largest score: a hit for k=2, as Keras's in_top_k
    scores = np.array([[0.5, 0.3, 0.3, 0.1]])
    assert metrics.SparseTopKCategoricalAccuracy(k=2)(np.array([2]), scores) == 1.0
    assert metrics.SparseTopKCategoricalAccuracy(k=1)(np.array([2]), scores) == 0.0
    assert metrics.TopKCategoricalAccuracy(k=2)(np.eye(4)[[1]], scores) == 1.0
    with pytest.raises(ValueError, match=r"k=0"):
        metrics.TopKCategoricalAccuracy(k=0)


def test_precision_recall_without_positives_is_zero():
    y, p = np.array([[1.0], [0.0]]), np.array([[0.2], [0.1]])
    assert metrics.Precision()(y, p) == 0.0
    assert metrics.Recall()(np.zeros((2, 1)), p) == 0.0
    assert metrics.Precision(thresholds=0.15)(y, p) == 1.0


def _fit_logs(model, x, y, epochs=1):
    history = model.fit(x, y, batch_size=4, epochs=epochs, verbose=0, shuffle=False)
    return history.history


@pytest.mark.parametrize(("cls_name", "kwargs", "snake"), CASES)
@pytest.mark.parametrize("use_class_name", [True, False])
def test_history_keys_match_keras(
    keras, fresh_session, rng, cls_name, kwargs, snake, use_class_name
):
    name = cls_name if use_class_name else snake
    if cls_name == "SparseTopKCategoricalAccuracy":
        x, y, units, loss = (
            rng.normal(size=(12, 3)),
            rng.integers(0, 6, size=12),
            6,
            "sparse_categorical_crossentropy",
        )
    elif cls_name == "TopKCategoricalAccuracy":
        x, y, units = rng.normal(size=(12, 3)), np.eye(6)[rng.integers(0, 6, size=12)], 6
        loss = "categorical_crossentropy"
    elif cls_name in ("Precision", "Recall"):
        x, y, units, loss = (
            rng.normal(size=(12, 3)),
            rng.integers(0, 2, size=(12, 1)),
            1,
            "binary_crossentropy",
        )
    else:
        x, y, units, loss = rng.normal(size=(12, 3)), rng.normal(size=(12, 2)), 2, "mse"
    activation = "sigmoid" if units == 1 else ("softmax" if units == 6 else None)
    x, y = x.astype(np.float32), y.astype(np.float32)

    ours = lk.Sequential([lk.layers.Dense(units, activation=activation, input_dim=3)])
    ours.compile(optimizer="sgd", loss=loss, metrics=[name])
    theirs = keras.Sequential([keras.Input((3,)), keras.layers.Dense(units, activation=activation)])
    theirs.compile(optimizer="sgd", loss=loss, metrics=[name])
    our_logs = _fit_logs(ours, x, y)
    their_logs = _fit_logs(theirs, x, y)
    assert set(our_logs) == set(their_logs) == {"loss", name}
    # the same weights, so evaluate's values agree too
    theirs.set_weights(ours.get_weights())
    ours_eval = ours.evaluate(x, y, batch_size=5, verbose=0, return_dict=True)
    theirs_eval = theirs.evaluate(x, y, batch_size=5, verbose=0, return_dict=True)
    assert set(ours_eval) == set(theirs_eval)
    np.testing.assert_allclose(ours_eval[name], theirs_eval[name], rtol=1e-4, atol=1e-5)
