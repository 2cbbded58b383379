"""Keras 3's ``reduction`` and ``sample_weight`` on every loss, ``label_smoothing`` on the
cross-entropies (the fused logits form included) and ``BinaryFocalCrossentropy``: values
and gradients against real Keras (torch autograd), gradients by finite differences in
float64, configs, names and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk
from layerkit import losses
from layerkit.validation import check_sample_weight

N, K = 6, 4
REDUCTIONS = ["sum_over_batch_size", "mean", "sum", "mean_with_sample_weight"]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _data(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true, y_pred)`` in float64, away from kinks and clip bounds (the finite
    differences need smooth points; the clips are covered in tests/test_losses*.py)."""
    shape = (N, K)
    if kind == "regression":
        y = rng.normal(size=shape)
        p = y + rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 0.8, size=shape)
        return y, p
    if kind == "away_from_zero":  # MAPE divides by |y|
        y = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape)
        return y, y + rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 0.8, size=shape)
    if kind == "positive":
        return rng.uniform(0.0, 3.0, size=shape), rng.uniform(0.2, 3.0, size=shape)
    if kind == "distribution":
        return rng.dirichlet(np.ones(K), size=N), rng.dirichlet(np.ones(K), size=N) * 0.9 + 0.02
    if kind == "binary_probability":
        return rng.integers(0, 2, size=shape).astype(float), rng.uniform(0.05, 0.95, size=shape)
    if kind == "binary_logit":
        return rng.integers(0, 2, size=shape).astype(float), rng.normal(scale=2.0, size=shape)
    if kind in ("onehot_probability", "onehot_logit", "sparse_probability", "sparse_logit"):
        labels = rng.integers(0, K, size=N)
        z = rng.normal(scale=1.5, size=shape)
        y = labels.astype(float) if kind.startswith("sparse") else np.eye(K)[labels]
        return y, _softmax(z) if kind.endswith("probability") else z
    if kind == "hinge":
        y = rng.integers(0, 2, size=shape).astype(float)
        p = rng.normal(scale=1.5, size=shape)
        return y, np.where(np.abs(1.0 - (2 * y - 1) * p) < 0.05, p + 0.2, p)
    if kind == "categorical_hinge":
        return np.eye(K)[rng.integers(0, K, size=N)], rng.normal(size=shape)
    raise AssertionError(kind)


# name: (layerkit class, keras class, options, data)
CASES = {
    "mse": ("MeanSquaredError", {}, "regression"),
    "mae": ("MeanAbsoluteError", {}, "regression"),
    "huber": ("Huber", {"delta": 0.5}, "regression"),
    "log_cosh": ("LogCosh", {}, "regression"),
    "cosine_similarity": ("CosineSimilarity", {}, "regression"),
    "mape": ("MeanAbsolutePercentageError", {}, "away_from_zero"),
    "msle": ("MeanSquaredLogarithmicError", {}, "positive"),
    "poisson": ("Poisson", {}, "positive"),
    "kl_divergence": ("KLDivergence", {}, "distribution"),
    "hinge": ("Hinge", {}, "hinge"),
    "squared_hinge": ("SquaredHinge", {}, "hinge"),
    "categorical_hinge": ("CategoricalHinge", {}, "categorical_hinge"),
    "bce": ("BinaryCrossentropy", {}, "binary_probability"),
    "bce_logits": ("BinaryCrossentropy", {"from_logits": True}, "binary_logit"),
    "bce_smoothed": ("BinaryCrossentropy", {"label_smoothing": 0.2}, "binary_probability"),
    "bce_logits_smoothed": (
        "BinaryCrossentropy",
        {"from_logits": True, "label_smoothing": 0.3},
        "binary_logit",
    ),
    "cce": ("CategoricalCrossentropy", {}, "onehot_probability"),
    "cce_logits": ("CategoricalCrossentropy", {"from_logits": True}, "onehot_logit"),
    "cce_smoothed": ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "onehot_probability"),
    "cce_logits_smoothed": (
        "CategoricalCrossentropy",
        {"from_logits": True, "label_smoothing": 0.25},
        "onehot_logit",
    ),
    "scce": ("SparseCategoricalCrossentropy", {}, "sparse_probability"),
    "scce_logits": ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse_logit"),
    "focal": ("BinaryFocalCrossentropy", {}, "binary_probability"),
    "focal_logits": ("BinaryFocalCrossentropy", {"from_logits": True}, "binary_logit"),
    "focal_balanced": (
        "BinaryFocalCrossentropy",
        {"apply_class_balancing": True, "alpha": 0.3, "gamma": 1.5},
        "binary_probability",
    ),
    "focal_logits_all": (
        "BinaryFocalCrossentropy",
        {
            "apply_class_balancing": True,
            "alpha": 0.6,
            "gamma": 3.0,
            "from_logits": True,
            "label_smoothing": 0.2,
        },
        "binary_logit",
    ),
    "focal_gamma0": ("BinaryFocalCrossentropy", {"gamma": 0.0}, "binary_probability"),
    "focal_gamma1_smoothed": (
        "BinaryFocalCrossentropy",
        {"gamma": 1.0, "label_smoothing": 0.1},
        "binary_probability",
    ),
}


def _weights(rng: np.random.Generator) -> np.ndarray:
    w = rng.uniform(0.1, 3.0, size=N)
    w[1] = 0.0  # a sample that does not count
    return w


def _layerkit(case: str, **extra) -> losses.Loss:
    cls_name, options, _ = CASES[case]
    return getattr(losses, cls_name)(**options, **extra)


def _keras_value_and_grad(keras, case, y, p, sample_weight, reduction):
    """Keras's value of the loss and, for a scalar, its gradient (torch autograd)."""
    import torch

    cls_name, options, kind = CASES[case]
    dtype = torch.int64 if kind.startswith("sparse") else torch.float32
    y_t = torch.tensor(y, dtype=dtype)
    p_t = torch.tensor(p, dtype=torch.float32, requires_grad=True)
    w_t = None if sample_weight is None else torch.tensor(sample_weight, dtype=torch.float32)
    loss = getattr(keras.losses, cls_name)(reduction=reduction, **options)
    out = loss(y_t, p_t, sample_weight=w_t)
    if out.ndim:
        return out.detach().numpy(), None
    out.backward()
    return float(out.detach()), p_t.grad.numpy()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_weighted_value_and_grad_match_keras(keras, case, reduction):
    rng = np.random.default_rng(len(case))
    y, p = (a.astype(np.float32) for a in _data(CASES[case][2], rng))
    w = _weights(rng).astype(np.float32)
    loss = _layerkit(case, reduction=reduction)
    targets = loss.check_targets(y, p.shape)
    value, grad = loss.value_and_grad(targets, p.copy(), sample_weight=w)
    expected_value, expected_grad = _keras_value_and_grad(keras, case, y, p, w, reduction)
    assert value == pytest.approx(expected_value, rel=2e-6, abs=1e-7)
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, expected_grad, rtol=2e-5, atol=1e-7)
    assert loss(y, p, sample_weight=w) == pytest.approx(value, rel=1e-12)
    # Without weights: the same reductions, Keras's numbers too.
    value, grad = loss.value_and_grad(targets, p.copy())
    expected_value, expected_grad = _keras_value_and_grad(keras, case, y, p, None, reduction)
    assert value == pytest.approx(expected_value, rel=2e-6, abs=1e-7)
    np.testing.assert_allclose(grad, expected_grad, rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("reduction", ["none", None])
@pytest.mark.parametrize("case", sorted(CASES))
def test_reduction_none_gives_keras_per_sample_values(keras, case, reduction):
    rng = np.random.default_rng(len(case) + 100)
    y, p = (a.astype(np.float32) for a in _data(CASES[case][2], rng))
    w = _weights(rng).astype(np.float32)
    loss = _layerkit(case, reduction=reduction)
    for weights in (None, w):
        values = loss(y, p, sample_weight=weights)
        expected, _ = _keras_value_and_grad(keras, case, y, p, weights, reduction)
        assert values.shape == (N,)
        assert values.dtype == np.float32
        np.testing.assert_allclose(values, expected, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_weighted_gradient_matches_finite_differences(float64, numeric_grad, case, reduction):
    rng = np.random.default_rng(len(case) + 200)
    y, p = _data(CASES[case][2], rng)
    w = _weights(rng)
    kept = w.copy()
    loss = _layerkit(case, reduction=reduction)
    targets = loss.check_targets(y, p.shape)
    value, grad = loss.value_and_grad(targets, p.copy(), sample_weight=w)
    assert grad.dtype == np.float64
    numeric = numeric_grad(
        lambda: loss.value_and_grad(targets, p.copy(), need_grad=False, sample_weight=w)[0], p
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    # The value is the reduction of the per-sample losses, as stated in Loss's docstring.
    per_sample = _layerkit(case, reduction="none")(y, p)
    divisor = {"sum": 1.0, "mean_with_sample_weight": w.sum()}.get(reduction, N)
    assert value == pytest.approx(float(np.sum(w * per_sample)) / divisor, rel=1e-12)
    assert grad[1] == pytest.approx(np.zeros(K), abs=0)  # the weight-0 sample passes nothing
    np.testing.assert_array_equal(w, kept)  # the caller's weights are not scaled in place


def test_sum_over_batch_size_divides_by_the_batch_not_the_weights(keras, rng):
    # Measured on Keras 3.15: the default reduction is sum(w l) / n, not sum(w l) / sum(w).
    y, p = (a.astype(np.float32) for a in _data("regression", rng))
    w = np.array([0.5, 0.0, 2.0, 1.0, 3.0, 0.25], np.float32)
    per_sample = losses.mean_squared_error(y, p)
    keras_value = float(keras.losses.MeanSquaredError()(y, p, sample_weight=w))
    assert keras_value == pytest.approx(float(np.sum(w * per_sample)) / N, rel=1e-6)
    assert keras_value != pytest.approx(float(np.sum(w * per_sample) / w.sum()), rel=1e-3)
    assert losses.MeanSquaredError()(y, p, sample_weight=w) == pytest.approx(keras_value, rel=1e-6)
    weighted_mean = losses.MeanSquaredError(reduction="mean_with_sample_weight")
    assert weighted_mean(y, p, sample_weight=w) == pytest.approx(
        float(np.sum(w * per_sample) / w.sum()), rel=1e-6
    )
    # All weights zero: 0, as Keras's divide_no_nan.
    assert weighted_mean(y, p, sample_weight=np.zeros(N)) == 0.0


@pytest.mark.parametrize("case", ["mse", "bce_logits", "cce_logits_smoothed", "scce_logits"])
def test_unweighted_path_is_the_loss_itself(rng, case):
    y, p = (a.astype(np.float32) for a in _data(CASES[case][2], rng))
    loss = _layerkit(case)
    targets = loss.check_targets(y, p.shape)
    value, grad = loss.value_and_grad(targets, p.copy())
    own_value, own_grad = loss._value_and_grad(targets, p.copy())
    assert value == own_value
    np.testing.assert_array_equal(grad, own_grad)
    # Weights of one give the unweighted numbers.
    value_1, grad_1 = loss.value_and_grad(targets, p.copy(), sample_weight=np.ones(N, np.float32))
    assert value_1 == pytest.approx(value, rel=1e-6)
    np.testing.assert_allclose(grad_1, grad, rtol=1e-6)


def test_sequence_outputs_take_one_weight_per_sample(float64, rng, numeric_grad):
    # (n, t, classes): Keras needs (n, t) weights here; one per sample covers its t rows.
    z = rng.normal(size=(3, 5, K))
    labels = rng.integers(0, K, size=(3, 5))
    w = np.array([1.0, 0.0, 2.5])
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    value, grad = loss.value_and_grad(labels, z.copy(), sample_weight=w)
    per_row = losses.sparse_categorical_crossentropy(labels, z, from_logits=True)
    assert value == pytest.approx(float(np.sum(w[:, None] * per_row)) / 15, rel=1e-12)
    numeric = numeric_grad(
        lambda: loss.value_and_grad(labels, z.copy(), need_grad=False, sample_weight=w)[0], z
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_reduction_none_cannot_drive_training(rng):
    y, p = (a.astype(np.float32) for a in _data("regression", rng))
    for reduction in ("none", None):
        loss = losses.MeanSquaredError(reduction=reduction)
        with pytest.raises(ValueError, match="cannot drive training"):
            loss.value_and_grad(y, p)
        assert loss(y, p).shape == (N,)  # calling it still gives the per-sample values


def test_bad_reduction_and_options_are_refused():
    with pytest.raises(ValueError, match=r"reduction.*Received: reduction='average'"):
        losses.MeanSquaredError(reduction="average")
    with pytest.raises(ValueError, match=r"label_smoothing in \[0, 1\]"):
        losses.BinaryCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="alpha"):
        losses.BinaryFocalCrossentropy(alpha=-0.1)
    with pytest.raises(ValueError, match="gamma"):
        losses.BinaryFocalCrossentropy(gamma=-1.0)
    with pytest.raises(TypeError, match="from_logits"):
        losses.BinaryFocalCrossentropy(from_logits="yes")
    with pytest.raises(ValueError, match="axis=-1"):
        losses.CategoricalCrossentropy(axis=0)


def test_sparse_cross_entropy_takes_no_label_smoothing(keras):
    # Keras 3.15's SparseCategoricalCrossentropy has no label_smoothing: neither has ours.
    with pytest.raises(TypeError):
        keras.losses.SparseCategoricalCrossentropy(label_smoothing=0.1)
    with pytest.raises(TypeError):
        losses.SparseCategoricalCrossentropy(label_smoothing=0.1)


def test_bad_sample_weight_is_refused_before_anything_changes(rng):
    y, p = (a.astype(np.float32) for a in _data("regression", rng))
    loss = losses.MeanSquaredError()
    bad = {
        "length": (np.ones(N + 1), r"shape \(6,\).*Received: sample_weight.shape=\(7,\)"),
        "negative": (np.array([1, 1, -2, 1, 1, 1.0]), r"sample_weight\[2\]=-2.0"),
        "nan": (np.array([1, 1, 1, 1, np.nan, 1.0]), r"sample_weight\[4\]=nan"),
        "inf": (np.array([np.inf, 1, 1, 1, 1, 1.0]), r"sample_weight\[0\]=inf"),
        "2-d": (np.ones((N, 2)), r"Received: sample_weight.shape=\(6, 2\)"),
    }
    for weights, message in bad.values():
        with pytest.raises(ValueError, match=message):
            loss(y, p, sample_weight=weights)
    with pytest.raises(TypeError, match="sample_weight"):
        check_sample_weight(np.array(["a"] * N), N)
    with pytest.raises(ValueError, match=r"class_weight\[1\]"):
        check_sample_weight([1.0, -1.0], 2, argument="class_weight")
    checked = check_sample_weight(np.arange(N).reshape(N, 1), N)  # (n, 1) squeezed, as Keras
    assert checked.shape == (N,)
    assert checked.dtype == np.float32
    np.testing.assert_array_equal(checked, np.arange(N))


@pytest.mark.parametrize(
    ("kwargs", "kind"),
    [
        ({}, "binary_probability"),
        ({"from_logits": True, "gamma": 3.0}, "binary_logit"),
        ({"apply_class_balancing": True, "alpha": 0.4, "label_smoothing": 0.1}, "binary_logit"),
    ],
)
def test_focal_function_matches_keras(keras, rng, kwargs, kind):
    y, p = (a.astype(np.float32) for a in _data(kind, rng))
    if kind == "binary_logit" and not kwargs.get("from_logits"):
        p = 1.0 / (1.0 + np.exp(-p))  # probabilities from the logits
    ours = losses.binary_focal_crossentropy(y, p, **kwargs)
    theirs = keras.losses.binary_focal_crossentropy(y, p, **kwargs).cpu().numpy()
    assert ours.shape == (N,)
    np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=1e-7)
    # axis: the per-sample mean over another axis, as Keras
    ours = losses.binary_focal_crossentropy(y, p, axis=0, **kwargs)
    theirs = keras.losses.binary_focal_crossentropy(y, p, axis=0, **kwargs).cpu().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=1e-7)


def test_focal_from_logits_is_exact_where_keras_clips(keras):
    # Keras takes sigmoid(z) and clips it: a confidently wrong logit costs at most 16.12
    # there. layerkit's logits form is exact (as its binary cross-entropy).
    y = np.array([[1.0], [0.0]], np.float32)
    z = np.array([[-30.0], [2.0]], np.float32)
    loss = losses.BinaryFocalCrossentropy(from_logits=True, reduction="none")
    ours = loss(y, z)
    theirs = keras.losses.BinaryFocalCrossentropy(from_logits=True, reduction="none")(y, z)
    theirs = theirs.cpu().numpy()
    assert ours[0] == pytest.approx(30.0, rel=1e-6)  # (1 - sigmoid(-30))^2 * 30
    assert theirs[0] == pytest.approx(-np.log(1e-7), rel=1e-5)
    assert ours[1] == pytest.approx(theirs[1], rel=1e-6)  # moderate logits agree


@pytest.mark.parametrize(
    ("cls_name", "options", "activation"),
    [
        ("BinaryCrossentropy", {"label_smoothing": 0.2}, "sigmoid"),
        ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "softmax"),
        ("BinaryFocalCrossentropy", {"label_smoothing": 0.15, "gamma": 1.5}, "sigmoid"),
        (
            "BinaryFocalCrossentropy",
            {"apply_class_balancing": True, "alpha": 0.7},
            "sigmoid",
        ),
    ],
)
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum"])
def test_fused_logits_form_carries_the_options(
    keras, rng, cls_name, options, activation, reduction
):
    import torch

    loss = getattr(losses, cls_name)(reduction=reduction, **options)
    fused = loss.fused_with(activation)
    assert fused.from_logits
    assert fused.get_config() == {**loss.get_config(), "from_logits": True}
    labels = rng.integers(0, K, size=N)
    y = (np.eye(K)[labels] if activation == "softmax" else rng.integers(0, 2, (N, K))).astype(
        np.float32
    )
    z = rng.normal(scale=1.5, size=(N, K)).astype(np.float32)
    w = _weights(rng).astype(np.float32)
    value, grad = fused.value_and_grad(y, z.copy(), sample_weight=w)
    # Keras's probability form after the activation, differentiated through it.
    z_t = torch.tensor(z, requires_grad=True)
    probabilities = torch.softmax(z_t, -1) if activation == "softmax" else torch.sigmoid(z_t)
    keras_loss = getattr(keras.losses, cls_name)(reduction=reduction, **options)
    out = keras_loss(torch.tensor(y), probabilities, sample_weight=torch.tensor(w))
    out.backward()
    assert value == pytest.approx(float(out.detach()), rel=2e-6)
    np.testing.assert_allclose(grad, z_t.grad.numpy(), rtol=2e-5, atol=1e-7)


def test_model_evaluate_uses_the_smoothed_fused_loss(fresh_session, rng):
    x = rng.normal(size=(12, 3)).astype(np.float32)
    y = np.eye(K, dtype=np.float32)[rng.integers(0, K, size=12)]
    model = lk.Sequential([lk.layers.Input((3,)), lk.layers.Dense(K, activation="softmax")])
    loss = losses.CategoricalCrossentropy(label_smoothing=0.2)
    model.compile(optimizer="sgd", loss=loss)
    expected = loss(y, model.predict(x, verbose=0))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-5)
    unsmoothed = losses.CategoricalCrossentropy()(y, model.predict(x, verbose=0))
    assert abs(expected - unsmoothed) > 1e-3


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_has_keras_keys_and_round_trips(keras, case):
    cls_name, options, _ = CASES[case]
    loss = _layerkit(case, reduction="sum", name="my_loss")
    config = loss.get_config()
    assert config["name"] == "my_loss"
    assert config["reduction"] == "sum"
    keras_config = getattr(keras.losses, cls_name)(reduction="sum", name="my_loss", **options)
    keras_config = keras_config.get_config()
    # Keras 3.15 leaves Huber's delta and CosineSimilarity's axis out of its configs (they
    # do not round-trip there); layerkit keeps them.
    kept = {"Huber": {"delta"}, "CosineSimilarity": {"axis"}}.get(cls_name, set())
    assert set(config) == set(keras_config) | kept
    assert {key: config[key] for key in keras_config} == keras_config
    again = losses.get(losses.serialize(loss))
    assert type(again) is type(loss)
    assert again.get_config() == config
    assert again.name == "my_loss"
    # Default names as Keras's.
    default = getattr(keras.losses, cls_name)(**options).name
    assert _layerkit(case).get_config()["name"] == default


def test_keras_configs_load(keras):
    for cls_name, options in [
        ("SparseCategoricalCrossentropy", {"from_logits": True}),
        ("CategoricalCrossentropy", {"label_smoothing": 0.1}),
        ("BinaryFocalCrossentropy", {"gamma": 3.0, "reduction": "sum"}),
    ]:
        config = getattr(keras.losses, cls_name)(**options).get_config()
        loss = losses.get({"class_name": cls_name, "config": config})
        assert loss.get_config() == config
    with pytest.raises(ValueError, match="ignore_class is not supported"):
        losses.SparseCategoricalCrossentropy(ignore_class=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_focal_is_finite_at_extreme_logits_and_edge_probabilities(dtype):
    y = np.array([[1, 1, 0], [1, 0, 1]], dtype)
    for options in ({}, {"gamma": 0.5}, {"apply_class_balancing": True, "label_smoothing": 0.1}):
        for magnitude in (30.0, 1e4, 1e30):
            z = np.array([[magnitude, -magnitude, 0.0], [-magnitude, magnitude, 1.0]], dtype)
            loss = losses.BinaryFocalCrossentropy(from_logits=True, **options)
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                value, grad = loss.value_and_grad(y, z.copy())
            assert np.isfinite(value)
            assert np.isfinite(grad).all()
        p = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 1e-9]], dtype)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            value, grad = losses.BinaryFocalCrossentropy(**options).value_and_grad(y, p.copy())
        assert np.isfinite(value)
        assert np.isfinite(grad).all()
        # a confidently wrong logit costs its size (exact), and pushes back
        wrong = losses.BinaryFocalCrossentropy(from_logits=True, **options)
        value, grad = wrong.value_and_grad(np.ones((1, 1), dtype), np.full((1, 1), -50.0, dtype))
        assert grad[0, 0] < 0


def test_focal_name_and_old_configs(rng):
    assert type(losses.get("binary_focal_crossentropy")) is losses.BinaryFocalCrossentropy
    # A config written before reduction existed still loads, with Keras's defaults.
    old = losses.get({"class_name": "BinaryCrossentropy", "config": {"from_logits": True}})
    assert old.reduction == "sum_over_batch_size"
    assert old.label_smoothing == 0.0
    with pytest.raises(ValueError, match="Invalid loss config"):
        losses.get({"class_name": "MeanSquaredError", "config": {"reduction": "bogus"}})


@pytest.mark.parametrize(
    ("loss_name", "options", "activation", "units"),
    [
        ("BinaryFocalCrossentropy", {"gamma": 1.5, "label_smoothing": 0.1}, "sigmoid", 1),
        ("CategoricalCrossentropy", {"label_smoothing": 0.2}, "softmax", 3),
        ("MeanSquaredError", {"reduction": "sum"}, None, 2),
    ],
)
def test_fit_matches_keras(keras, fresh_session, rng, loss_name, options, activation, units):
    # Two epochs of SGD on 3 batches, weights copied: Keras's losses, weights and AUC.
    x = rng.normal(size=(12, 3)).astype(np.float32)
    if units == 1:
        y = rng.integers(0, 2, size=(12, 1)).astype(np.float32)
    elif activation == "softmax":
        y = np.eye(units, dtype=np.float32)[rng.integers(0, units, size=12)]
    else:
        y = rng.normal(size=(12, units)).astype(np.float32)
    metric_names = ["AUC"] if activation == "sigmoid" else []
    ours = lk.Sequential([lk.layers.Input((3,)), lk.layers.Dense(units, activation=activation)])
    ours.compile(
        optimizer=lk.optim.SGD(0.1),
        loss=getattr(losses, loss_name)(**options),
        metrics=metric_names,
    )
    theirs = keras.Sequential([keras.Input((3,)), keras.layers.Dense(units, activation=activation)])
    theirs.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=getattr(keras.losses, loss_name)(**options),
        metrics=[keras.metrics.AUC(name="k")] if metric_names else [],
    )
    theirs.set_weights(ours.get_weights())
    history = ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    expected = theirs.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(history["loss"], expected["loss"], rtol=1e-5)
    for mine, keras_weight in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, keras_weight, rtol=1e-5, atol=1e-6)
    if metric_names:
        np.testing.assert_allclose(history["AUC"], expected["k"], rtol=1e-5)
    np.testing.assert_allclose(
        np.atleast_1d(ours.evaluate(x, y, verbose=0)),
        np.atleast_1d(theirs.evaluate(x, y, verbose=0)),
        rtol=1e-5,
    )


def test_options_survive_a_checkpoint(fresh_session, tmp_path, rng):
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.integers(0, 2, size=(8, 1)).astype(np.float32)
    model = lk.Sequential([lk.layers.Input((3,)), lk.layers.Dense(1, activation="sigmoid")])
    loss = losses.BinaryFocalCrossentropy(
        apply_class_balancing=True, alpha=0.4, gamma=1.0, label_smoothing=0.05, reduction="sum"
    )
    auc = lk.metrics.AUC(num_thresholds=20, curve="PR", name="pr")
    model.compile(optimizer="sgd", loss=loss, metrics=[auc, "Precision"])
    model.fit(x, y, epochs=1, verbose=0)
    path = model.save(tmp_path / "focal.lk.h5")
    again = lk.load_model(path)
    assert again.loss.get_config() == loss.get_config()
    assert again.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
