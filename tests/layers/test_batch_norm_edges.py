"""BatchNormalization at the edges: stored statistics that cannot be right are refused at
load, a batch of one row stays finite, and Keras 3's introspection names."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import layerkit as lk
from layerkit.io.checkpoint import seal


def _model():
    return lk.Sequential(
        [
            lk.layers.Input((3,)),
            lk.layers.Dense(4, name="dense"),
            lk.layers.BatchNormalization(name="bn"),
        ]
    )


def test_a_negative_stored_moving_variance_is_refused_before_anything_changes(
    fresh_session, tmp_path
):
    model = _model()
    model.compile(optimizer="sgd", loss="mse")
    path = model.save(tmp_path / "bn.h5")
    with h5py.File(path, "r+") as f:
        f["weights/bn/moving_variance"][...] = -1.0
    seal(path)
    with pytest.raises(lk.io.FormatError, match="moving variance must be >= 0"):
        lk.load_model(path)
    target = _model()
    before = [w.copy() for w in target.get_weights()]
    with pytest.raises(ValueError, match="moving variance must be >= 0"):
        target.load_weights(path)
    for a, b in zip(before, target.get_weights()):
        np.testing.assert_array_equal(a, b)  # all or nothing: the Dense was not loaded


def test_a_training_batch_of_one_row_stays_finite(fresh_session):
    layer = lk.layers.BatchNormalization()
    y = layer(np.array([[1.0, -2.0, 3.0]], "float32"), training=True)
    np.testing.assert_array_equal(y, np.zeros((1, 3), "float32"))  # x - mean = 0
    assert np.all(np.isfinite(layer.moving_variance.value))


def test_variables_and_non_trainable_weights_hold_the_statistics(fresh_session):
    model = _model()
    assert [p.name for p in model.variables] == [p.name for p in model.weights]
    assert [p.name for p in model.non_trainable_weights] == ["bn/moving_mean", "bn/moving_variance"]
    bn = model.get_layer("bn")
    assert [p.name for p in bn.variables] == [
        "bn/gamma",
        "bn/beta",
        "bn/moving_mean",
        "bn/moving_variance",
    ]
    lk.backend.clear_session()
    assert lk.layers.Dense(1).name == "dense"


class _ThreeRanks:
    size = 3


def test_distributed_batch_norm_needs_rows_of_every_batch_on_every_rank(fresh_session):
    model = _model()
    # 10 samples in batches of 4: the last batch has 2 rows for 3 ranks.
    with pytest.raises(ValueError, match="a batch of 2 rows leaves some rank without any"):
        model._check_synchronized_batches(_ThreeRanks(), samples=10, batch=4)
    model._check_synchronized_batches(_ThreeRanks(), samples=12, batch=4)  # 4, 4, 4: fine
    model.get_layer("bn").trainable = False  # frozen: no statistics summed, no constraint
    model._check_synchronized_batches(_ThreeRanks(), samples=10, batch=2)
