"""Metrics: per-batch values, running averages, and how "accuracy" is resolved."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk
from layerkit import losses, metrics


def test_binary_accuracy_threshold():
    m = metrics.BinaryAccuracy()
    y = np.array([[1], [1], [0], [0]])
    p = np.array([[0.98], [0.4], [0.1], [0.6]])
    assert m(y, p) == pytest.approx(0.5)
    assert metrics.BinaryAccuracy(threshold=0.3)(y, p) == pytest.approx(0.75)
    assert metrics.BinaryAccuracy(threshold=0.0)(
        y, np.array([[2.0], [0.1], [-1.0], [-3.0]])
    ) == pytest.approx(1.0)


def test_categorical_and_sparse_accuracy():
    p = np.array([[0.1, 0.9, 0.0], [0.05, 0.95, 0.0], [0.7, 0.2, 0.1]])
    y_sparse = np.array([2, 1, 0])
    assert metrics.SparseCategoricalAccuracy()(y_sparse, p) == pytest.approx(2 / 3)
    assert metrics.SparseCategoricalAccuracy()(y_sparse.reshape(-1, 1), p) == pytest.approx(2 / 3)
    assert metrics.CategoricalAccuracy()(np.eye(3)[y_sparse], p) == pytest.approx(2 / 3)


def test_accuracy_exact_match():
    assert metrics.Accuracy()(np.array([1, 2, 3, 4]), np.array([0, 2, 3, 4])) == 0.75


def test_regression_metrics():
    y = np.array([[0.0, 1.0], [0.0, 0.0]])
    p = np.array([[1.0, 1.0], [1.0, 0.0]])
    assert metrics.MeanSquaredError()(y, p) == pytest.approx(0.5)
    assert metrics.MeanAbsoluteError()(y, p * 3) == pytest.approx((3 + 2 + 3 + 0) / 4)


def test_running_average_is_weighted_by_samples():
    m = metrics.SparseCategoricalAccuracy()
    assert m.result() == 0.0
    m.update_state(np.array([0, 1]), np.array([[1.0, 0.0], [1.0, 0.0]]))  # 1 of 2
    m.update_state(np.array([1]), np.array([[0.0, 1.0]]))  # 1 of 1
    assert m.result() == pytest.approx(2 / 3)
    # __call__ leaves the running state alone
    assert m(np.array([0]), np.array([[0.0, 1.0]])) == 0.0
    assert m.result() == pytest.approx(2 / 3)
    m.reset_state()
    assert m.result() == 0.0


@pytest.mark.parametrize(
    ("loss", "shape", "cls", "threshold"),
    [
        (
            losses.SparseCategoricalCrossentropy(),
            (None, 10),
            metrics.SparseCategoricalAccuracy,
            None,
        ),
        (losses.CategoricalCrossentropy(), (None, 10), metrics.CategoricalAccuracy, None),
        (losses.BinaryCrossentropy(), (None, 1), metrics.BinaryAccuracy, 0.5),
        (losses.BinaryCrossentropy(from_logits=True), (None, 1), metrics.BinaryAccuracy, 0.0),
        (losses.MeanSquaredError(), (None, 1), metrics.BinaryAccuracy, 0.5),
        (losses.MeanSquaredError(), (None, 4), metrics.CategoricalAccuracy, None),
    ],
)
def test_accuracy_resolution(loss, shape, cls, threshold):
    m = metrics.resolve("accuracy", loss, shape)
    assert type(m) is cls
    assert m.name == "accuracy"
    if threshold is not None:
        assert m.threshold == threshold
    assert metrics.resolve("acc", loss, shape).name == "acc"


def test_metric_names():
    assert type(metrics.get("mae")) is metrics.MeanAbsoluteError
    assert metrics.get("mae").name == "mae"
    assert type(metrics.get("mean_squared_error")) is metrics.MeanSquaredError
    with pytest.raises(ValueError, match=r"metrics='f2_score'"):
        metrics.get("f2_score")


def test_model_accuracy_matches_numpy(fresh_session, rng):
    model = lk.Sequential([lk.layers.Dense(3, activation="softmax", input_dim=4)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = rng.normal(size=(50, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=50)
    loss, acc = model.evaluate(x, y, batch_size=7)
    p = model.predict(x)
    assert acc == pytest.approx(np.mean(p.argmax(axis=1) == y))
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(50), y])), rel=1e-5)
    assert model.metrics_names == ["loss", "accuracy"]


def test_sequence_outputs_with_sparse_labels(fresh_session, rng):
    # (n, steps, classes) outputs take (n, steps) labels; accuracy counts every step.
    x = rng.normal(size=(12, 3, 4)).astype(np.float32)
    y = rng.integers(0, 5, size=(12, 3))
    model = lk.Sequential([lk.layers.Input((3, 4)), lk.layers.Dense(5)])
    model.compile(
        optimizer="sgd",
        loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["accuracy"] == pytest.approx(np.mean(model.predict(x).argmax(-1) == y))
    model.fit(x, y[..., None], epochs=1, verbose=0)  # (n, steps, 1) works too
    with pytest.raises(ValueError, match=r"y.shape=\(12,\)"):
        model.fit(x, y[:, 0], verbose=0)


def test_compile_rejects_unknown_metric(fresh_session):
    model = lk.Sequential([lk.layers.Dense(1, input_dim=2)])
    with pytest.raises(ValueError, match=r"metrics='precision_at_k'"):
        model.compile(optimizer="sgd", loss="mse", metrics=["precision_at_k"])


@pytest.mark.parametrize("name", ["accuracy", "acc", "binary_accuracy", "Binary_Accuracy"])
def test_binary_accuracy_on_logits_thresholds_at_zero(name):
    """Every binary accuracy resolved by name for a from_logits loss thresholds at 0."""
    loss = losses.BinaryCrossentropy(from_logits=True)
    m = metrics.resolve(name, loss, (None, 1))
    assert type(m) is metrics.BinaryAccuracy
    assert m.threshold == 0.0
    assert m.name == name
    y = np.array([[1], [1], [0], [0]])
    z = np.array([[0.3], [2.0], [-0.2], [0.4]])  # logits: 0.3 is p = 0.57, a hit
    assert m(y, z) == pytest.approx(0.75)
    # probabilities: 0.5, and an object is used as given
    assert metrics.resolve(name, losses.BinaryCrossentropy(), (None, 1)).threshold == 0.5
    given = metrics.BinaryAccuracy(threshold=0.7)
    assert metrics.resolve(given, loss, (None, 1)) is given


def test_model_binary_accuracy_names_agree_on_logits(fresh_session, rng):
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = rng.integers(0, 2, size=(40, 1))
    model = lk.Sequential([lk.layers.Dense(1, input_dim=3)])
    model.compile(
        optimizer="sgd",
        loss=lk.losses.BinaryCrossentropy(from_logits=True),
        metrics=["accuracy", "binary_accuracy"],
    )
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    expected = np.mean((model.predict(x, verbose=0) > 0) == y)
    assert logs["accuracy"] == pytest.approx(expected)
    assert logs["binary_accuracy"] == pytest.approx(expected)


def test_multi_label_binary_crossentropy_gets_binary_accuracy():
    """layerkit's rule looks at the loss first (Keras 3 would pick categorical here)."""
    m = metrics.resolve("accuracy", losses.BinaryCrossentropy(), (None, 4))
    assert type(m) is metrics.BinaryAccuracy


def test_threshold_accepts_numpy_scalars_only_as_numbers():
    m = metrics.BinaryAccuracy(threshold=np.float32(0.25))
    assert m.threshold == 0.25
    assert type(m.threshold) is float
    assert metrics.BinaryAccuracy(threshold=np.int64(0)).threshold == 0.0
    with pytest.raises(TypeError, match=r"threshold='0.5'"):
        metrics.BinaryAccuracy(threshold="0.5")
    with pytest.raises(ValueError, match=r"threshold=nan"):
        metrics.BinaryAccuracy(threshold=float("nan"))


def test_metric_functions_per_sample():
    y = np.array([[1.0], [1.0], [0.0], [0.0]])
    p = np.array([[0.98], [0.4], [0.1], [0.6]])
    np.testing.assert_array_equal(metrics.binary_accuracy(y, p), [[1], [0], [1], [0]])
    np.testing.assert_array_equal(
        metrics.binary_accuracy(y, p, threshold=0.3), [[1], [1], [1], [0]]
    )
    scores = np.array([[0.1, 0.9, 0.0], [0.05, 0.95, 0.0], [0.7, 0.2, 0.1]])
    labels = np.array([2, 1, 0])
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(labels, scores), [0, 1, 1])
    np.testing.assert_array_equal(
        metrics.sparse_categorical_accuracy(labels[:, None], scores), [0, 1, 1]
    )
    np.testing.assert_array_equal(
        metrics.categorical_accuracy(np.eye(3)[labels], scores), [0, 1, 1]
    )
    assert metrics.categorical_accuracy(np.eye(3)[labels], scores).dtype == np.float32
    np.testing.assert_allclose(metrics.mean_absolute_error([[0.0, 1.0]], [[1.0, 3.0]]), [1.5])
    # the same numbers as the metric objects
    assert metrics.binary_accuracy(y, p).mean() == metrics.BinaryAccuracy()(y, p)
