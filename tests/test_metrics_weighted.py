"""Metrics with ``sample_weight`` (Keras's weighted mean, weighted counts), ``AUC``,
``Mean`` and ``Sum``, each against real Keras 3 over several batches; names, configs,
and the state arrays the training loop sums over ranks and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit import metrics


def _batch(name: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One batch of ``(y_true, y_pred)`` (float32) fitting the metric ``name``."""
    if name in ("TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy"):
        scores = np.round(rng.uniform(size=(n, 6)), 1).astype(np.float32)  # ties too
        labels = rng.integers(0, 6, size=n)
        return (np.eye(6, dtype=np.float32)[labels] if name[0] == "T" else labels), scores
    if name in ("CategoricalAccuracy", "SparseCategoricalAccuracy"):
        scores = rng.normal(size=(n, 4)).astype(np.float32)
        labels = rng.integers(0, 4, size=n)
        return (np.eye(4, dtype=np.float32)[labels] if name[0] == "C" else labels), scores
    if name in ("Precision", "Recall", "BinaryAccuracy", "AUC"):
        labels = rng.integers(0, 2, size=(n, 3)).astype(np.float32)
        return labels, np.round(rng.uniform(size=(n, 3)), 2).astype(np.float32)  # 0.5 too
    if name == "Accuracy":
        return (
            rng.integers(0, 3, size=(n, 2)).astype(np.float32),
            rng.integers(0, 3, size=(n, 2)).astype(np.float32),
        )
    if name == "MeanSquaredLogarithmicError":
        return (
            rng.uniform(0, 3, size=(n, 3)).astype(np.float32),
            rng.uniform(-0.5, 3, size=(n, 3)).astype(np.float32),
        )
    y = rng.normal(size=(n, 3)).astype(np.float32)
    if name == "MeanAbsolutePercentageError":
        y[0, 0] = 0.0  # the 1e-7 clip
    return y, rng.normal(size=(n, 3)).astype(np.float32)


def _weights(n: int, rng: np.random.Generator) -> np.ndarray:
    w = rng.uniform(0.0, 2.0, size=n).astype(np.float32)
    w[0] = 0.0
    return w


MEAN_METRICS = [
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "SparseCategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "MeanSquaredError",
    "RootMeanSquaredError",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError",
    "LogCoshError",
    "CosineSimilarity",
    "Precision",
    "Recall",
]


def _run(metric, batches, weights) -> float:
    for (y, p), w in zip(batches, weights):
        metric.update_state(y, p, sample_weight=w)
    return float(metric.result())


@pytest.mark.parametrize("name", MEAN_METRICS)
def test_weighted_metrics_match_keras(keras, name):
    rng = np.random.default_rng(len(name))
    sizes = (5, 8, 3)
    batches = [_batch(name, n, rng) for n in sizes]
    weights = [_weights(n, rng) for n in sizes]
    ours = _run(getattr(metrics, name)(), batches, weights)
    theirs = _run(getattr(keras.metrics, name)(name="k"), batches, weights)
    assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-7)
    # One batch, one shot: the same number, no running state touched.
    one_shot = getattr(metrics, name)()
    assert one_shot(*batches[1], sample_weight=weights[1]) == pytest.approx(
        _run(getattr(keras.metrics, name)(name="k"), batches[1:2], weights[1:2]),
        rel=1e-6,
        abs=1e-7,
    )
    assert one_shot.result() == 0.0
    # Weights of one give the unweighted result (float32 there, float64 here for some).
    ones = [np.ones(n, np.float32) for n in sizes]
    unweighted = _run(getattr(metrics, name)(), batches, [None] * 3)
    assert _run(getattr(metrics, name)(), batches, ones) == pytest.approx(unweighted, rel=1e-6)


def test_weighted_mean_is_sum_wv_over_sum_w(rng):
    y, p = _batch("MeanAbsoluteError", 6, rng)
    w = np.array([1.0, 0.0, 2.0, 0.5, 0.0, 3.0])
    metric = metrics.MeanAbsoluteError()
    metric.update_state(y, p, sample_weight=w)
    per_sample = np.abs(p - y).mean(axis=1)
    assert metric.result() == pytest.approx(np.sum(w * per_sample) / w.sum(), rel=1e-7)
    assert metric._count == pytest.approx(6.5)  # the weight, not the samples


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"curve": "PR"},
        {"curve": "PR", "summation_method": "minoring"},
        {"curve": "ROC", "summation_method": "majoring"},
        {"curve": "PRGAIN"},
        {"num_thresholds": 7},
        {"thresholds": [0.1, 0.5, 0.7]},  # not evenly spaced: the general path
        {"thresholds": [0.25, 0.5, 0.75]},  # evenly spaced: the buckets
        {"multi_label": True},
        {"multi_label": True, "curve": "PR", "label_weights": [1.0, 2.0, 0.5]},
        {"multi_label": True, "num_labels": 3},
        {"label_weights": [1.0, 2.0, 0.5]},
        {"from_logits": True},
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_auc_matches_keras(keras, kwargs, weighted):
    rng = np.random.default_rng(7)
    sizes = (12, 20, 5)
    batches = [_batch("AUC", n, rng) for n in sizes]
    if kwargs.get("from_logits"):
        batches = [(y, (p * 8 - 4).astype(np.float32)) for y, p in batches]
    batches[0][1][:3, 0] = [0.0, 1.0, 0.5]  # the edges, and a bucket boundary
    weights = [_weights(n, rng) if weighted else None for n in sizes]
    ours = metrics.AUC(**kwargs)
    theirs = keras.metrics.AUC(name="k", **kwargs)
    assert _run(ours, batches, weights) == pytest.approx(
        _run(theirs, batches, weights), rel=1e-6, abs=1e-7
    )
    keras_counts = [
        np.asarray(v)
        for v in (
            theirs.true_positives,
            theirs.false_positives,
            theirs.true_negatives,
            theirs.false_negatives,
        )
    ]
    for mine, expected in zip(ours.state_arrays(), keras_counts):
        np.testing.assert_allclose(mine, expected, rtol=1e-6, atol=1e-5)
    assert ours.thresholds == pytest.approx([float(t) for t in theirs.thresholds])


def test_auc_perfect_and_chance_rankings():
    y = np.array([0, 0, 1, 1], np.float32)
    assert metrics.AUC()(y, np.array([0.1, 0.2, 0.8, 0.9])) == pytest.approx(1.0, abs=1e-6)
    assert metrics.AUC()(y, np.array([0.9, 0.8, 0.2, 0.1])) == pytest.approx(0.0, abs=1e-6)
    assert metrics.AUC()(y, np.full(4, 0.5)) == pytest.approx(0.5, abs=1e-6)


def test_auc_state_sums_over_ranks_and_resumes(rng):
    batches = [_batch("AUC", n, rng) for n in (10, 7, 9, 4)]
    weights = [_weights(n, rng) for n in (10, 7, 9, 4)]
    whole = metrics.AUC(curve="PR")
    _run(whole, batches, weights)
    # Two "ranks" see half the batches each; the loop adds their arrays element-wise.
    rank_0, rank_1 = metrics.AUC(curve="PR"), metrics.AUC(curve="PR")
    _run(rank_0, batches[::2], weights[::2])
    _run(rank_1, batches[1::2], weights[1::2])
    summed = [a + b for a, b in zip(rank_0.state_arrays(), rank_1.state_arrays())]
    merged = metrics.AUC(curve="PR")
    merged.set_state_arrays(summed)
    assert merged.result() == pytest.approx(whole.result(), rel=1e-12)
    # A checkpoint after two batches, restored into a fresh metric, then the rest.
    first = metrics.AUC(curve="PR")
    _run(first, batches[:2], weights[:2])
    saved = first.state_arrays()
    resumed = metrics.AUC(curve="PR")
    resumed.set_state_arrays(saved)
    assert resumed.result() == pytest.approx(first.result(), rel=1e-12)
    _run(resumed, batches[2:], weights[2:])
    assert resumed.result() == pytest.approx(whole.result(), rel=1e-12)
    # Multi-label without num_labels: built by the first batch, or by the restored arrays.
    multi = metrics.AUC(multi_label=True)
    assert [a.shape for a in multi.state_arrays()] == [(200, 0)] * 4
    multi.set_state_arrays([np.ones((200, 3))] * 4)
    assert [a.shape for a in multi.state_arrays()] == [(200, 3)] * 4


def test_auc_refuses_a_bad_state_and_has_no_scalar_pair():
    metric = metrics.AUC(num_thresholds=5)
    metric.update_state([0, 1, 1], [0.2, 0.7, 0.4])
    before = [a.copy() for a in metric.state_arrays()]
    with pytest.raises(ValueError, match=r"expected arrays of shapes \[\(5,\)"):
        metric.set_state_arrays([np.zeros(4)] * 4)
    with pytest.raises(ValueError, match="expected arrays"):
        metric.set_state_arrays([np.zeros(5)] * 3)
    with pytest.raises(ValueError, match="NaN or infinite"):
        metric.set_state_arrays([np.full(5, np.nan)] * 4)
    for kept, now in zip(before, metric.state_arrays()):
        np.testing.assert_array_equal(kept, now)
    with pytest.raises(TypeError, match="state_arrays"):
        _ = metric._total


def test_auc_refuses_bad_options():
    with pytest.raises(ValueError, match="num_thresholds >= 2"):
        metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="curve"):
        metrics.AUC(curve="DET")
    with pytest.raises(ValueError, match="summation_method"):
        metrics.AUC(summation_method="trapezoid")
    with pytest.raises(ValueError, match="num_labels is needed only when multi_label"):
        metrics.AUC(num_labels=3)
    with pytest.raises(ValueError, match="label_weights"):
        metrics.AUC(label_weights=[1.0, -1.0])
    metric = metrics.AUC()
    with pytest.raises(ValueError, match="NaN"):
        metric.update_state([0, 1], [0.5, np.nan])
    with pytest.raises(ValueError, match="one label per prediction"):
        metric.update_state([0, 1, 1], [0.5, 0.2])
    assert all(not a.any() for a in metric.state_arrays())  # nothing counted


@pytest.mark.parametrize("name", ["Mean", "Sum"])
def test_mean_and_sum_match_keras(keras, rng, name):
    cases = [
        (rng.normal(size=5), None),
        (rng.normal(size=(4, 3)), _weights(4, rng)),
        (rng.normal(size=6), _weights(6, rng)),
        (np.float32(2.5), None),
        (rng.normal(size=3), 0.5),  # a scalar weight: the batch as a whole
    ]
    ours, theirs = getattr(metrics, name)(), getattr(keras.metrics, name)(name="k")
    for values, weight in cases:
        values = np.asarray(values, np.float32)
        ours.update_state(values, sample_weight=weight)
        theirs.update_state(values, sample_weight=weight)
        # Keras sums in float32: a few 1e-7 apart on sums that cancel
        assert ours.result() == pytest.approx(float(theirs.result()), rel=1e-6, abs=1e-6)
    with pytest.raises(ValueError, match=r"sample_weight\[1\]"):
        ours.update_state([1.0, 2.0], sample_weight=[1.0, -1.0])
    assert ours.result() == pytest.approx(float(theirs.result()), rel=1e-6)  # unchanged


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("RootMeanSquaredError", metrics.RootMeanSquaredError),
        ("root_mean_squared_error", metrics.RootMeanSquaredError),
        ("Precision", metrics.Precision),
        ("recall", metrics.Recall),
        ("AUC", metrics.AUC),
        ("auc", metrics.AUC),
        ("Mean", metrics.Mean),
        ("sum", metrics.Sum),
        ("TopKCategoricalAccuracy", metrics.TopKCategoricalAccuracy),
        ("sparse_top_k_categorical_accuracy", metrics.SparseTopKCategoricalAccuracy),
        ("BinaryAccuracy", metrics.BinaryAccuracy),
        ("categorical_accuracy", metrics.CategoricalAccuracy),
        ("SparseCategoricalAccuracy", metrics.SparseCategoricalAccuracy),
        ("MeanSquaredError", metrics.MeanSquaredError),
        ("mae", metrics.MeanAbsoluteError),
    ],
)
def test_keras_names(keras, name, cls):
    metric = metrics.get(name)
    assert type(metric) is cls
    # Keras's own table (keras.metrics.get would make an instance and use up a name)
    from keras.src.metrics import ALL_OBJECTS_DICT

    assert ALL_OBJECTS_DICT[name].__name__ == cls.__name__
    assert metric.takes_targets is (cls not in (metrics.Mean, metrics.Sum))


def test_configs_round_trip():
    specs = [
        metrics.AUC(
            num_thresholds=50,
            curve="pr",
            summation_method="majoring",
            name="pr_auc",
            multi_label=True,
            num_labels=2,
            label_weights=[0.5, 1.5],
            from_logits=True,
        ),
        metrics.AUC(thresholds=[0.2, 0.6]),
        metrics.Mean(name="m"),
        metrics.Sum(),
    ]
    for metric in specs:
        again = metrics.deserialize(metrics.serialize(metric))
        assert type(again) is type(metric)
        assert again.get_config() == metric.get_config()
    assert specs[0].get_config()["curve"] == "PR"  # Keras's spelling in the config
    assert specs[1].get_config()["thresholds"] == pytest.approx([0.2, 0.6])


@pytest.mark.parametrize("name", ["MeanSquaredError", "Precision", "Sum"])
def test_scalar_state_arrays_sum_over_ranks_and_restore(rng, name):
    batches = [_batch("Precision" if name == "Precision" else "x", n, rng) for n in (6, 5, 7)]
    weights = [_weights(n, rng) for n in (6, 5, 7)]

    def update(metric, b, w):
        for (y, p), wi in zip(b, w):
            if name == "Sum":
                metric.update_state(p, sample_weight=wi)
            else:
                metric.update_state(y, p, sample_weight=wi)

    whole = getattr(metrics, name)()
    update(whole, batches, weights)
    rank_0, rank_1 = getattr(metrics, name)(), getattr(metrics, name)()
    update(rank_0, batches[:1], weights[:1])
    update(rank_1, batches[1:], weights[1:])
    merged = getattr(metrics, name)()
    merged.set_state_arrays([rank_0.state_arrays()[0] + rank_1.state_arrays()[0]])
    assert merged.result() == pytest.approx(whole.result(), rel=1e-12)
    assert (merged._total, merged._count) == pytest.approx((whole._total, whole._count))
    with pytest.raises(ValueError, match=r"expected arrays of shapes \[\(2,\)\]"):
        merged.set_state_arrays([np.zeros(3)])
    assert merged.result() == pytest.approx(whole.result(), rel=1e-12)


def test_bad_sample_weight_leaves_the_state_alone(rng):
    metric = metrics.MeanSquaredError()
    y, p = _batch("MeanSquaredError", 4, rng)
    metric.update_state(y, p)
    before = metric.state_arrays()[0]
    for bad in (np.ones(5), np.array([1.0, np.nan, 1.0, 1.0]), np.array([1.0, 1.0, -1.0, 0.0])):
        with pytest.raises(ValueError, match="sample_weight"):
            metric.update_state(y, p, sample_weight=bad)
    np.testing.assert_array_equal(metric.state_arrays()[0], before)
