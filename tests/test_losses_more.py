"""Keras 3's regression, divergence and hinge losses: finite-difference gradients (float64),
values and gradients against real Keras (torch autograd), names and a training epoch."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk
from layerkit import losses

N, K = 5, 4


def _inputs(name: str, rng: np.random.Generator, smooth: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true, y_pred)`` for loss ``name``; ``smooth`` keeps away from kinks and clip
    bounds (for finite differences)."""
    shape = (N, K)
    if name in ("huber", "log_cosh", "cosine_similarity"):
        y = rng.normal(size=shape)
        p = y + rng.normal(scale=2.0, size=shape)
        if name == "log_cosh" and not smooth:
            p[0, :2] = [30.0, -30.0]  # where a naive cosh overflows
        if name == "huber":  # |e| well away from delta = 1 for the differences
            e = p - y
            p = np.where(np.abs(np.abs(e) - 1.0) < 0.05, y + 1.5 * np.sign(e), p)
        return y, p
    if name == "kl_divergence":
        y = rng.dirichlet(np.ones(K), size=N)
        p = rng.dirichlet(np.ones(K), size=N) * 0.9 + 0.02
        if not smooth:
            y[0, 0], p[0, 1], p[1, 2] = 0.0, -0.5, 1.5  # clipped on both sides
        return y, p
    if name == "poisson":
        return rng.poisson(2.0, size=shape).astype(float), rng.uniform(0.2, 4.0, size=shape)
    if name == "mape":
        y = rng.normal(size=shape)
        p = y + rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 1.0, size=shape)
        if not smooth:
            y[0, 0] = 0.0  # divided by eps
        return y, p
    if name == "msle":
        y, p = rng.uniform(0.0, 3.0, size=shape), rng.uniform(0.1, 3.0, size=shape)
        if not smooth:
            p[0, :2] = [-0.5, 0.0]  # below eps: cut by the max
            y[1, 0] = -1.0
        return y, p
    if name in ("hinge", "squared_hinge"):
        y = rng.integers(0, 2, size=shape).astype(float)
        p = rng.normal(scale=1.5, size=shape)
        p = np.where(np.abs(1.0 - (2 * y - 1) * p) < 0.05, p + 0.2, p)  # off the kink
        return y, p
    if name == "categorical_hinge":
        y = np.eye(K)[rng.integers(0, K, size=N)]
        p = rng.normal(size=shape)
        return y, p
    raise AssertionError(name)


NAMES = [
    "huber",
    "log_cosh",
    "kl_divergence",
    "poisson",
    "mape",
    "msle",
    "cosine_similarity",
    "hinge",
    "squared_hinge",
    "categorical_hinge",
]
KERAS_CLASSES = {
    "huber": "Huber",
    "log_cosh": "LogCosh",
    "kl_divergence": "KLDivergence",
    "poisson": "Poisson",
    "mape": "MeanAbsolutePercentageError",
    "msle": "MeanSquaredLogarithmicError",
    "cosine_similarity": "CosineSimilarity",
    "hinge": "Hinge",
    "squared_hinge": "SquaredHinge",
    "categorical_hinge": "CategoricalHinge",
}


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_finite_differences(float64, rng, numeric_grad, name):
    loss = losses.get(name)
    y_raw, p = _inputs(name, rng, smooth=True)
    p = np.ascontiguousarray(p, dtype=np.float64)
    y = loss.check_targets(y_raw, p.shape)
    value, grad = loss.value_and_grad(y, p.copy())
    assert grad.shape == p.shape
    assert grad.dtype == np.float64
    assert value == pytest.approx(loss(y_raw, p), rel=1e-12)
    assert value == pytest.approx(float(loss.per_sample(y, p).mean()), rel=1e-12)
    numeric = numeric_grad(lambda: loss.value_and_grad(y, p.copy(), need_grad=False)[0], p)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def _keras_value_and_grad(keras, cls_name, y, p, **kwargs):
    import torch

    y_t = torch.tensor(y, dtype=torch.float32)
    p_t = torch.tensor(p, dtype=torch.float32, requires_grad=True)
    out = getattr(keras.losses, cls_name)(**kwargs)(y_t, p_t)
    out.backward()
    return float(out.detach()), p_t.grad.numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("smooth", [True, False])
@pytest.mark.parametrize("name", NAMES)
def test_matches_keras(keras, name, smooth, seed):
    y, p = _inputs(name, np.random.default_rng(seed), smooth)
    y, p = y.astype(np.float32), p.astype(np.float32)
    loss = losses.get(name)
    value, grad = loss.value_and_grad(loss.check_targets(y, p.shape), p.copy())
    assert grad.dtype == np.float32
    expected_value, expected_grad = _keras_value_and_grad(keras, KERAS_CLASSES[name], y, p)
    assert value == pytest.approx(expected_value, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)
    per_sample = getattr(losses, name)(y, p)
    keras_fn = keras.losses.get(name)
    np.testing.assert_allclose(
        per_sample, keras_fn(y, p).detach().cpu().numpy(), rtol=1e-5, atol=1e-6
    )


def test_hinge_keeps_minus_one_one_labels(keras, rng):
    y = rng.choice([-1.0, 1.0], size=(N, K)).astype(np.float32)
    p = rng.normal(size=(N, K)).astype(np.float32)
    for name in ("hinge", "squared_hinge"):
        loss = losses.get(name)
        value, grad = loss.value_and_grad(y, p.copy())
        expected_value, expected_grad = _keras_value_and_grad(keras, KERAS_CLASSES[name], y, p)
        assert value == pytest.approx(expected_value, rel=1e-5)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("delta", [0.3, 2.5])
def test_huber_delta_matches_keras(keras, rng, delta):
    y, p = _inputs("huber", rng, smooth=False)
    y, p = y.astype(np.float32), p.astype(np.float32)
    value, grad = losses.Huber(delta).value_and_grad(y, p.copy())
    expected_value, expected_grad = _keras_value_and_grad(keras, "Huber", y, p, delta=delta)
    assert value == pytest.approx(expected_value, rel=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        losses.huber(y, p, delta), keras.losses.huber(y, p, delta).cpu().numpy(), rtol=1e-5
    )


def test_cosine_similarity_axis_matches_keras(keras, rng, float64, numeric_grad):
    y, p = rng.normal(size=(3, K, 2)), rng.normal(size=(3, K, 2))
    loss = losses.CosineSimilarity(axis=1)
    value, grad = loss.value_and_grad(y, p.copy())
    numeric = numeric_grad(lambda: loss.value_and_grad(y, p, need_grad=False)[0], p)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    y32, p32 = y.astype(np.float32), p.astype(np.float32)
    expected_value, expected_grad = _keras_value_and_grad(
        keras, "CosineSimilarity", y32, p32, axis=1
    )
    with lk.backend.floatx_scope("float32"):
        value, grad = loss.value_and_grad(y32, p32.copy())
    assert value == pytest.approx(expected_value, rel=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("huber", losses.Huber),
        ("log_cosh", losses.LogCosh),
        ("kld", losses.KLDivergence),
        ("KLD", losses.KLDivergence),
        ("kl_divergence", losses.KLDivergence),
        ("poisson", losses.Poisson),
        ("mape", losses.MeanAbsolutePercentageError),
        ("mean_absolute_percentage_error", losses.MeanAbsolutePercentageError),
        ("msle", losses.MeanSquaredLogarithmicError),
        ("mean_squared_logarithmic_error", losses.MeanSquaredLogarithmicError),
        ("cosine_similarity", losses.CosineSimilarity),
        ("hinge", losses.Hinge),
        ("squared_hinge", losses.SquaredHinge),
        ("categorical_hinge", losses.CategoricalHinge),
    ],
)
def test_names_and_serialization(name, cls):
    loss = losses.get(name)
    assert type(loss) is cls
    again = losses.get(losses.serialize(loss))
    assert type(again) is cls
    assert again.get_config() == loss.get_config()


def test_configs_round_trip():
    assert losses.get(losses.serialize(losses.Huber(0.5))).delta == 0.5
    assert losses.get(losses.serialize(losses.CosineSimilarity(axis=1))).axis == 1
    with pytest.raises(ValueError, match="Invalid loss config"):
        losses.get({"class_name": "Huber", "config": {"axis": 1}})


@pytest.mark.parametrize("name", NAMES)
def test_one_fit_epoch(fresh_session, rng, name):
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y, _ = _inputs(name, rng, smooth=True)
    y = np.concatenate([y, y, y, y])[:16].astype(np.float32)
    # Positive outputs where the loss takes logarithms of the predictions.
    activation = {"kl_divergence": "softmax", "poisson": "softplus"}.get(name)
    model = lk.Sequential([lk.layers.Input((3,)), lk.layers.Dense(K, activation=activation)])
    model.compile(optimizer=lk.optim.SGD(0.01), loss=name)
    before = model.get_weights()[0]
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    loss = history.history["loss"][0]
    assert np.isfinite(loss)
    assert not np.array_equal(model.get_weights()[0], before)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(
        losses.get(name)(y, model.predict(x, verbose=0)), rel=1e-5
    )
