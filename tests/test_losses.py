"""Losses: values against Keras's documented examples and gradients against finite
differences (float64)."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk
from layerkit import losses

N, K = 4, 3


def _check_grad(loss, y_true_raw, y_pred, numeric_grad, rtol=1e-6, atol=1e-8):
    y_pred = np.ascontiguousarray(y_pred, dtype=np.float64)
    y_true = loss.check_targets(y_true_raw, y_pred.shape)
    value, grad = loss.value_and_grad(y_true, y_pred.copy())
    assert grad.shape == y_pred.shape
    assert value == pytest.approx(loss(y_true_raw, y_pred), rel=1e-12)
    numeric = numeric_grad(
        lambda: loss.value_and_grad(y_true, y_pred.copy(), need_grad=False)[0], y_pred
    )
    np.testing.assert_allclose(grad, numeric, rtol=rtol, atol=atol)
    return value


def _probabilities(rng, shape, normalised=True):
    p = rng.uniform(0.1, 1.0, size=shape)
    return p / p.sum(axis=-1, keepdims=True) if normalised else p


# --- finite-difference gradients -----------------------------------------------------------------


def test_mse_gradient(float64, rng, numeric_grad):
    y = rng.normal(size=(N, K))
    _check_grad(losses.MeanSquaredError(), y, rng.normal(size=(N, K)), numeric_grad)


def test_mae_gradient(float64, rng, numeric_grad):
    y = rng.normal(size=(N, K))
    pred = y + rng.choice([-1.0, 1.0], size=(N, K)) * rng.uniform(0.1, 1.0, size=(N, K))
    _check_grad(losses.MeanAbsoluteError(), y, pred, numeric_grad)


def test_binary_crossentropy_probabilities_gradient(float64, rng, numeric_grad):
    y = rng.integers(0, 2, size=(N, 2)).astype(float)
    y[0, 0] = 0.3  # soft targets are allowed
    pred = rng.uniform(0.05, 0.95, size=(N, 2))
    _check_grad(losses.BinaryCrossentropy(), y, pred, numeric_grad)


def test_binary_crossentropy_logits_gradient(float64, rng, numeric_grad):
    y = rng.integers(0, 2, size=(N, 2)).astype(float)
    _check_grad(
        losses.BinaryCrossentropy(from_logits=True),
        y,
        rng.normal(scale=3, size=(N, 2)),
        numeric_grad,
    )


def test_categorical_crossentropy_probabilities_gradient(float64, rng, numeric_grad):
    y = np.eye(K)[rng.integers(0, K, size=N)]
    _check_grad(losses.CategoricalCrossentropy(), y, _probabilities(rng, (N, K)), numeric_grad)


def test_categorical_crossentropy_unnormalised_probabilities_gradient(float64, rng, numeric_grad):
    """Keras normalises y_pred by its sum, so the loss (and its gradient) is defined for
    positive predictions whose rows do not sum to 1."""
    y = np.eye(K)[rng.integers(0, K, size=N)]
    _check_grad(
        losses.CategoricalCrossentropy(), y, _probabilities(rng, (N, K), False), numeric_grad
    )


def test_categorical_crossentropy_logits_gradient(float64, rng, numeric_grad):
    y = np.eye(K)[rng.integers(0, K, size=N)]
    y[1] = [0.2, 0.3, 0.5]  # soft targets
    _check_grad(
        losses.CategoricalCrossentropy(from_logits=True),
        y,
        rng.normal(scale=2, size=(N, K)),
        numeric_grad,
    )


def test_sparse_categorical_crossentropy_probabilities_gradient(float64, rng, numeric_grad):
    y = rng.integers(0, K, size=N)
    _check_grad(
        losses.SparseCategoricalCrossentropy(), y, _probabilities(rng, (N, K)), numeric_grad
    )
    _check_grad(
        losses.SparseCategoricalCrossentropy(), y, _probabilities(rng, (N, K), False), numeric_grad
    )


def test_sparse_categorical_crossentropy_logits_gradient(float64, rng, numeric_grad):
    y = rng.integers(0, K, size=(N, 1))  # (n, 1) labels are accepted too
    _check_grad(
        losses.SparseCategoricalCrossentropy(from_logits=True),
        y,
        rng.normal(scale=2, size=(N, K)),
        numeric_grad,
    )


def test_sparse_and_one_hot_agree(float64, rng):
    labels = rng.integers(0, K, size=N)
    for from_logits in (False, True):
        z = rng.normal(size=(N, K)) if from_logits else _probabilities(rng, (N, K))
        sparse = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        dense = losses.CategoricalCrossentropy(from_logits=from_logits)
        vs, gs = sparse.value_and_grad(sparse.check_targets(labels, z.shape), z.copy())
        vd, gd = dense.value_and_grad(dense.check_targets(np.eye(K)[labels], z.shape), z.copy())
        assert vs == pytest.approx(vd, rel=1e-12)
        np.testing.assert_allclose(gs, gd, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("from_logits", [True, False])
def test_sequence_outputs_average_over_every_row(float64, rng, numeric_grad, from_logits):
    # Outputs of shape (n, steps, classes) take labels of shape (n, steps): the loss is the
    # mean over all n * steps rows (Keras's sum_over_batch_size), not over the n samples.
    labels = rng.integers(0, K, size=(N, 2))
    z = rng.normal(size=(N, 2, K)) if from_logits else _probabilities(rng, (N, 2, K))
    sparse = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    dense = losses.CategoricalCrossentropy(from_logits=from_logits)
    flat = sparse(labels.reshape(-1), z.reshape(-1, K))
    assert sparse(labels, z) == pytest.approx(flat, rel=1e-12)
    assert sparse(labels[..., None], z) == pytest.approx(flat, rel=1e-12)
    assert dense(np.eye(K)[labels], z) == pytest.approx(flat, rel=1e-12)
    _check_grad(sparse, labels, z, numeric_grad)
    _check_grad(dense, np.eye(K)[labels], z, numeric_grad)
    with pytest.raises(ValueError, match=r"shape \(n, 2\).*y.shape=\(4,\)"):
        sparse.check_targets(labels[:, 0], z.shape)


def test_logits_and_probabilities_agree(float64, rng):
    z = rng.normal(size=(N, K))
    p = lk.activations.softmax(z)
    y = np.eye(K)[rng.integers(0, K, size=N)]
    assert losses.CategoricalCrossentropy(from_logits=True)(y, z) == pytest.approx(
        losses.CategoricalCrossentropy()(y, p), rel=1e-9
    )
    zb = rng.normal(size=(N, 1))
    yb = rng.integers(0, 2, size=(N, 1))
    assert losses.BinaryCrossentropy(from_logits=True)(yb, zb) == pytest.approx(
        losses.BinaryCrossentropy()(yb, lk.activations.sigmoid(zb)), rel=1e-9
    )


# --- values from the Keras documentation ---------------------------------------------------------


def test_keras_documented_values():
    mse = losses.MeanSquaredError()
    mae = losses.MeanAbsoluteError()
    yt, yp = [[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]]
    assert mse(yt, yp) == pytest.approx(0.5)
    assert mae(yt, yp) == pytest.approx(0.5)
    bce = losses.BinaryCrossentropy()
    assert bce([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]) == pytest.approx(0.815, abs=1e-3)
    bce_logits = losses.BinaryCrossentropy(from_logits=True)
    assert bce_logits(
        [[0.0], [1.0], [0.0], [0.0]], [[-18.6], [0.51], [2.94], [-12.8]]
    ) == pytest.approx(0.865, abs=1e-3)
    cce = losses.CategoricalCrossentropy()
    assert cce([[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]) == pytest.approx(
        1.177, abs=1e-3
    )
    scce = losses.SparseCategoricalCrossentropy()
    assert scce([1, 2], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]) == pytest.approx(1.177, abs=1e-3)


def test_manual_formulas(float64, rng):
    y = rng.integers(0, 2, size=(5, 1)).astype(float)
    z = rng.normal(size=(5, 1))
    p = 1 / (1 + np.exp(-z))
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert losses.BinaryCrossentropy(from_logits=True)(y, z) == pytest.approx(expected, rel=1e-10)
    assert losses.BinaryCrossentropy()(y, p) == pytest.approx(expected, rel=1e-9)


def test_extreme_logits_are_finite(float64):
    z = np.array([[1000.0, -1000.0, 0.0]])
    v, g = losses.CategoricalCrossentropy(from_logits=True).value_and_grad(
        np.array([[0.0, 1.0, 0.0]]), z.copy()
    )
    assert v == pytest.approx(2000.0)
    np.testing.assert_allclose(g, [[1.0, -1.0, 0.0]], atol=1e-12)
    v, g = losses.BinaryCrossentropy(from_logits=True).value_and_grad(
        np.array([[0.0, 1.0]]), np.array([[1000.0, -1000.0]])
    )
    assert v == pytest.approx(1000.0)
    np.testing.assert_allclose(g, [[0.5, -0.5]])


def test_probabilities_are_clipped_to_epsilon(float64):
    eps = lk.backend.epsilon()
    v = losses.BinaryCrossentropy()(np.array([[1.0]]), np.array([[0.0]]))
    assert v == pytest.approx(-np.log(eps), rel=1e-9)
    v = losses.CategoricalCrossentropy()(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert v == pytest.approx(-np.log(eps), rel=1e-9)


# --- lookup and validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("mse", losses.MeanSquaredError),
        ("mean_squared_error", losses.MeanSquaredError),
        ("mae", losses.MeanAbsoluteError),
        ("binary_crossentropy", losses.BinaryCrossentropy),
        ("categorical_crossentropy", losses.CategoricalCrossentropy),
        ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
    ],
)
def test_get_by_name(name, cls):
    loss = losses.get(name)
    assert type(loss) is cls
    assert loss.from_logits is False
    again = losses.get(losses.serialize(loss))
    assert type(again) is cls


def test_serialize_keeps_from_logits():
    loss = losses.get(losses.serialize(losses.BinaryCrossentropy(from_logits=True)))
    assert loss.from_logits is True


def test_unknown_loss_name():
    with pytest.raises(ValueError, match=r"Unknown loss.*loss='hinge_plus'"):
        losses.get("hinge_plus")


def test_fused_forms():
    fused = losses.CategoricalCrossentropy().fused_with("softmax")
    assert type(fused) is losses.CategoricalCrossentropy
    assert fused.from_logits
    fused = losses.SparseCategoricalCrossentropy().fused_with("softmax")
    assert type(fused) is losses.SparseCategoricalCrossentropy
    assert fused.from_logits
    fused = losses.BinaryCrossentropy().fused_with("sigmoid")
    assert type(fused) is losses.BinaryCrossentropy
    assert fused.from_logits
    assert losses.BinaryCrossentropy().fused_with("softmax") is None
    assert losses.CategoricalCrossentropy(from_logits=True).fused_with("softmax") is None
    assert losses.MeanSquaredError().fused_with("sigmoid") is None


def test_check_targets_errors():
    scce = losses.SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match=r"\[0, 2\].*from 0 to 3"):
        scce.check_targets(np.array([0, 3]), (None, 3))
    with pytest.raises(ValueError, match=r"non-integer"):
        scce.check_targets(np.array([0.5, 1.0]), (None, 3))
    with pytest.raises(ValueError, match=r"shape"):
        scce.check_targets(np.zeros((2, 3)), (None, 3))
    with pytest.raises(ValueError, match=r"y.shape=\(2, 4\)"):
        losses.CategoricalCrossentropy().check_targets(np.zeros((2, 4)), (None, 3))
    with pytest.raises(ValueError, match=r"NaN"):
        losses.MeanSquaredError().check_targets(np.array([[np.nan]]), (None, 1))
    with pytest.raises(TypeError, match=r"numeric"):
        losses.MeanSquaredError().check_targets(np.array([["a"]]), (None, 1))
    # a flat y is accepted for one output
    assert losses.MeanSquaredError().check_targets(np.array([1, 2]), (None, 1)).shape == (2, 1)
