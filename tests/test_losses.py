"""Losses: values against Keras's documented examples and gradients against finite
differences (float64)."""

from __future__ import annotations

import warnings

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


# --- predictions that are not probabilities (Keras's clip, gradient included) -------------------


def test_binary_crossentropy_non_probabilities_gradient(float64, rng, numeric_grad):
    """Outputs of a linear layer: the clipped elements are flat (zero gradient), the
    others are bounded; finite differences agree everywhere."""
    y = rng.integers(0, 2, size=(N, 3)).astype(float)
    y[0, 0] = 0.3
    pred = rng.normal(scale=2.0, size=(N, 3))
    clipped = (pred < 1e-7) | (pred > 1 - 1e-7)
    assert clipped.any()
    assert not clipped.all()
    _check_grad(losses.BinaryCrossentropy(), y, pred, numeric_grad)
    _, grad = losses.BinaryCrossentropy().value_and_grad(y, pred.copy())
    assert np.all(grad[clipped] == 0)
    assert np.abs(grad).max() < 1e7  # bounded by 1 / (eps (1 - eps)) / size


@pytest.mark.parametrize("sparse", [False, True])
def test_categorical_crossentropy_non_probabilities_gradient(float64, rng, numeric_grad, sparse):
    """Logits passed to the probability form: rows of negative and positive sums, some
    entries normalised outside [eps, 1 - eps]. Keras's normalise-then-clip, differentiated."""
    labels = rng.integers(0, K, size=N)
    pred = rng.normal(scale=2.0, size=(N, K))
    totals = pred.sum(axis=-1)
    assert (totals < 0).any()
    assert (totals > 0).any()
    if sparse:
        _check_grad(losses.SparseCategoricalCrossentropy(), labels, pred, numeric_grad)
    else:
        y = np.eye(K)[labels]
        y[1] = np.linspace(0.1, 1.0, K) / np.linspace(0.1, 1.0, K).sum()  # soft targets
        _check_grad(losses.CategoricalCrossentropy(), y, pred, numeric_grad)


def test_sparse_and_one_hot_agree_on_non_probabilities(float64, rng):
    labels = rng.integers(0, K, size=N)
    pred = rng.normal(scale=2.0, size=(N, K))
    sparse, dense = losses.SparseCategoricalCrossentropy(), losses.CategoricalCrossentropy()
    vs, gs = sparse.value_and_grad(sparse.check_targets(labels, pred.shape), pred.copy())
    vd, gd = dense.value_and_grad(np.eye(K)[labels], pred.copy())
    assert vs == pytest.approx(vd, rel=1e-12)
    np.testing.assert_allclose(gs, gd, rtol=1e-12, atol=1e-15)


def test_fully_clipped_rows_pass_no_gradient(float64):
    """A true class normalised below eps (or the whole row summing to 0) is clipped:
    the loss is -log(eps) and nothing flows back, as in Keras."""
    eps = lk.backend.epsilon()
    pred = np.array([[2.0, -1.0, 0.5], [1e4, -1e4, 0.0]])  # q = [1.33, -0.67, 0.33]; sum 0
    for loss, y in (
        (losses.CategoricalCrossentropy(), np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])),
        (losses.SparseCategoricalCrossentropy(), np.array([1, 1])),
    ):
        value, grad = loss.value_and_grad(loss.check_targets(y, pred.shape), pred.copy())
        assert value == pytest.approx(-np.log(eps), rel=1e-9)
        assert np.all(grad == 0)


def test_one_sgd_step_on_a_linear_output_stays_bounded(fresh_session, rng):
    """The issue's case: categorical_crossentropy (probabilities) after a layer without
    softmax. One SGD(0.1) step took the kernel to 3.7e12; Keras's clipped gradient keeps it
    near its start (the step itself is compared with Keras in test_keras_semantics.py)."""
    x = rng.normal(size=(8, 5)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, size=8)]
    model = lk.Sequential([lk.layers.Input((5,)), lk.layers.Dense(3)])
    model.compile(optimizer=lk.optim.SGD(0.1), loss="categorical_crossentropy")
    before = model.get_weights()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the trainer may warn about the missing softmax
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert np.abs(model.get_weights()[0] - before).max() < 5.0


# --- binary targets must be in [0, 1] ------------------------------------------------------------


@pytest.mark.parametrize("from_logits", [False, True])
def test_binary_targets_outside_0_1_are_refused(from_logits):
    bce = losses.BinaryCrossentropy(from_logits=from_logits)
    with pytest.raises(ValueError, match=r"Invalid y: expected targets in \[0, 1\].*from 0 to 2"):
        bce.check_targets(np.array([[0.0], [2.0]]), (None, 1))
    with pytest.raises(ValueError, match=r"validation_data\[1\].*from -1 to 1"):
        bce.check_targets(np.array([-1, 1]), (None, 1), "validation_data[1]")
    with pytest.raises(ValueError, match=r"from 0 to 2"):
        bce([[0.0], [2.0]], [[0.3], [0.6]])
    # 0/1 labels, soft targets and the bounds themselves are fine
    y = bce.check_targets(np.array([[0.0, 0.25], [1.0, 0.5]]), (None, 2))
    assert y.dtype == np.float32


def test_fit_refuses_binary_targets_outside_0_1(fresh_session, rng):
    """y in {0, 2} used to train silently (loss 0.135, accuracy 0.8)."""
    x = rng.normal(size=(10, 2)).astype(np.float32)
    model = lk.Sequential([lk.layers.Dense(1, activation="sigmoid", input_dim=2)])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    y = 2 * rng.integers(0, 2, size=(10, 1))
    y[0] = 2
    with pytest.raises(ValueError, match=r"Invalid y.*\[0, 1\].*Received values from 0 to 2"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match=r"Invalid y.*\[0, 1\]"):
        model.evaluate(x, y, verbose=0)
    with pytest.raises(ValueError, match=r"validation_data\[1\]"):
        model.fit(x, y // 2, validation_data=(x, y), verbose=0)


# --- helpers for the trainer, per-sample forms ---------------------------------------------------


def test_expects_probabilities():
    assert losses.CategoricalCrossentropy().expects_probabilities
    assert losses.SparseCategoricalCrossentropy().expects_probabilities
    assert losses.BinaryCrossentropy().expects_probabilities
    assert not losses.BinaryCrossentropy(from_logits=True).expects_probabilities
    assert not losses.SparseCategoricalCrossentropy(from_logits=True).expects_probabilities
    assert not losses.MeanSquaredError().expects_probabilities
    assert losses.BinaryCrossentropy().probability_activation == "sigmoid"
    assert losses.CategoricalCrossentropy().probability_activation == "softmax"
    assert losses.MeanAbsoluteError().probability_activation is None


@pytest.mark.parametrize(
    ("loss", "kind"),
    [
        (losses.MeanSquaredError(), "regression"),
        (losses.MeanAbsoluteError(), "regression"),
        (losses.BinaryCrossentropy(), "binary"),
        (losses.BinaryCrossentropy(from_logits=True), "binary"),
        (losses.CategoricalCrossentropy(), "onehot"),
        (losses.CategoricalCrossentropy(from_logits=True), "onehot"),
        (losses.SparseCategoricalCrossentropy(), "sparse"),
        (losses.SparseCategoricalCrossentropy(from_logits=True), "sparse"),
    ],
)
def test_per_sample_mean_is_the_loss(float64, rng, loss, kind):
    pred = rng.normal(scale=2.0, size=(N, K))
    y = {
        "regression": rng.normal(size=(N, K)),
        "binary": rng.integers(0, 2, size=(N, K)).astype(float),
        "onehot": np.eye(K)[rng.integers(0, K, size=N)],
        "sparse": rng.integers(0, K, size=N),
    }[kind]
    y = loss.check_targets(y, pred.shape)
    per_sample = loss.per_sample(y, pred.copy())
    assert per_sample.shape == (N,)
    assert per_sample.mean() == pytest.approx(loss.value_and_grad(y, pred.copy())[0], rel=1e-12)


def test_loss_functions():
    y, p = [[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]]
    np.testing.assert_allclose(losses.mean_squared_error(y, p), [0.5, 0.5])
    np.testing.assert_allclose(losses.mean_absolute_error(y, [[3.0, 1.0], [1.0, 0.0]]), [1.5, 0.5])
    assert losses.mean_squared_error(y, p).dtype == np.float32
    # Keras's documented values, per sample
    np.testing.assert_allclose(
        losses.binary_crossentropy([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]),
        [0.916, 0.714],
        atol=1e-3,
    )
    np.testing.assert_allclose(
        losses.categorical_crossentropy([[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]),
        [0.0513, 2.303],
        atol=1e-3,
    )
    np.testing.assert_allclose(
        losses.sparse_categorical_crossentropy([1, 2], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]),
        [0.0513, 2.303],
        atol=1e-3,
    )
    with pytest.raises(ValueError, match=r"y_true.shape=\(2, 2\), y_pred.shape=\(2, 3\)"):
        losses.categorical_crossentropy(np.zeros((2, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"y_true.*class labels in \[0, 2\]"):
        losses.sparse_categorical_crossentropy([3, 0], np.ones((2, 3)))
