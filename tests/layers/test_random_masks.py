"""The masks of Dropout and the noise layers: drawn from 16-bit lanes of the generator's
raw words (P(keep) = 1 - rate to 2**-16), Keras's formulas on them, and the same draws
for a rank's rows of a global batch as for those rows in one process (what
``fit(distribute=lk.distributed.MPI())`` relies on; the MPI runs are in tests/distributed)."""

from __future__ import annotations

import copy
import math
import pickle
import weakref

import numpy as np
import pytest

import layerkit as lk
from layerkit.layers import AlphaDropout, Dropout, GaussianDropout, GaussianNoise
from layerkit.layers.random_layer import keep_threshold

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805
ALPHA_P = -SELU_ALPHA * SELU_SCALE

LAYERS = {
    "Dropout": lambda seed: Dropout(0.3, seed=seed),
    "AlphaDropout": lambda seed: AlphaDropout(0.2, seed=seed),
    "GaussianNoise": lambda seed: GaussianNoise(0.4, seed=seed),
    "GaussianDropout": lambda seed: GaussianDropout(0.25, seed=seed),
}


def lanes(seed: int, count: int, skip_words: int = 0) -> np.ndarray:
    """The first ``count`` 16-bit lanes of a fresh PCG64(seed)'s raw words: the draw the
    layers document, rebuilt here independently of them."""
    bits = np.random.default_rng(seed).bit_generator
    bits.advance(skip_words)
    return bits.random_raw(-(-count // 4)).view(np.uint16)[:count]


# --- the draw ------------------------------------------------------------------------
@pytest.mark.parametrize(("rate", "threshold"), [(0.2, 13107), (0.5, 32768), (0.1, 6554)])
def test_the_keep_threshold_is_the_rate_in_16_bits(rate, threshold):
    assert keep_threshold(rate) == threshold
    assert abs(threshold / 2**16 - rate) <= 2**-17


def test_the_keep_threshold_keeps_something_below_rate_1():
    assert keep_threshold(0.0) == 0
    assert keep_threshold(1 - 2**-20) == 2**16 - 1  # keeps 2**-16, not nothing
    assert keep_threshold(2**-18) == 0  # below the resolution: keeps everything


def test_dropout_keeps_where_the_lane_reaches_the_threshold(fresh_session, rng):
    # 37 x 11 = 407 elements: not a whole number of words (four lanes each).
    x = rng.uniform(0.5, 1.5, size=(37, 11)).astype(np.float32)
    layer = Dropout(0.3, seed=5)
    y = layer(x, training=True)
    kept = (lanes(5, x.size) >= keep_threshold(0.3)).reshape(x.shape)
    np.testing.assert_array_equal(y != 0, kept)
    np.testing.assert_array_equal(y[kept], x[kept] * np.float32(1 / 0.7))
    # It used ceil(407 / 4) = 102 raw words of its generator, nothing else.
    bits = np.random.PCG64(5)
    bits.advance(102)
    assert layer.training_state()["rng"] == bits.state


def test_alpha_dropout_sets_the_dropped_lanes_to_its_saturation_value(fresh_session, rng):
    rate = 0.2
    x = rng.normal(size=(9, 7)).astype(np.float32)
    y = AlphaDropout(rate, seed=8)(x, training=True)
    kept = (lanes(8, x.size) >= keep_threshold(rate)).reshape(x.shape)
    a = ((1 - rate) * (1 + rate * ALPHA_P**2)) ** -0.5
    b = -a * ALPHA_P * rate
    np.testing.assert_array_equal(y[~kept], np.float32(a * ALPHA_P + b))
    np.testing.assert_allclose(y[kept], a * x[kept] + b, rtol=1e-6, atol=1e-6)


def test_dropout_keeps_one_minus_rate_of_the_units(fresh_session):
    x = np.ones((1000, 1000), np.float32)
    kept = float(np.mean(Dropout(0.2, seed=0)(x, training=True) != 0))
    p = 1 - keep_threshold(0.2) / 2**16
    # A binomial proportion of 10**6 draws: 5 standard deviations are 0.002.
    assert abs(kept - p) < 5 * math.sqrt(p * (1 - p) / x.size)
    assert abs(p - 0.8) <= 2**-17


def test_dropout_matches_keras_on_the_same_mask(keras, monkeypatch, fresh_session, rng):
    """Keras 3 (torch backend) draws its seeded mask with ``torch.bernoulli`` and returns
    ``where(mask, x / (1 - rate), 0)``: fed layerkit's mask, the outputs agree."""
    import torch

    rate = 0.3
    x = rng.normal(size=(32, 24)).astype(np.float32)
    y = Dropout(rate, seed=2)(x, training=True)
    kept = (y != 0).astype(np.float32)
    assert 0.6 < kept.mean() < 0.8
    monkeypatch.setattr(torch, "bernoulli", lambda *args, **kwargs: torch.from_numpy(kept))
    expected = keras.ops.convert_to_numpy(keras.layers.Dropout(rate, seed=2)(x, training=True))
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", list(LAYERS))
def test_a_seeded_layer_draws_again_after_its_state_is_restored(name, fresh_session, rng):
    x = rng.normal(size=(6, 10)).astype(np.float32)
    layer = LAYERS[name](3)
    layer(x, training=True)
    state = layer.training_state()
    second = np.array(layer(x, training=True))
    assert not np.array_equal(second, layer(x, training=True))  # fresh draws each call
    layer.load_training_state(state)
    np.testing.assert_array_equal(layer(x, training=True), second)


# --- a rank's rows of the global batch ---------------------------------------------------
class FakeModel:
    """The one attribute :meth:`MPI.batch_share` reads: the strategy of the fit in progress."""

    distribute = None


def ranks_of(size: int, model: FakeModel) -> list[lk.distributed.MPI]:
    """``size`` MPI strategies as the ranks of a job would hold them (without mpi4py:
    only ``shard`` and ``batch_share`` are used), fitting ``model``."""
    strategies = []
    for rank in range(size):
        strategy = object.__new__(lk.distributed.MPI)
        strategy.rank, strategy.size = rank, size
        strategy._batch, strategy._fitting = None, weakref.ref(model)
        strategies.append(strategy)
    return strategies


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize(("size", "batches"), [(1, [13]), (2, [13, 16, 7]), (3, [16, 13, 8, 2])])
def test_ranks_draw_their_rows_of_the_masks_of_one_process(name, size, batches, fresh_session):
    """Each of ``size`` ranks holds a copy of the layer and its rows of each batch (the
    remainder rule: 13 rows are 5 + 4 + 4 on 3 ranks; 2 rows leave rank 2 without any);
    what each rank outputs, and the gradient it returns, are one process's rows, and the
    generators stay alike on the ranks that drew."""
    features = 5  # 5 elements a row: a rank's rows start inside a raw word
    alone = LAYERS[name](21)
    model = FakeModel()
    strategies = ranks_of(size, model)
    layers = [LAYERS[name](21) for _ in strategies]
    for layer, strategy in zip(layers, strategies):
        layer._ranks = weakref.ref(strategy)
    data = np.random.default_rng(4)
    for rows in batches:
        x = data.normal(size=(rows, features)).astype(np.float32)
        dy = data.normal(size=x.shape).astype(np.float32)
        y, backward = alone.forward(x, training=True)
        want_y, want_dx = np.array(y), np.array(backward(dy.copy(), True))
        for layer, strategy in zip(layers, strategies):
            model.distribute = strategy  # the fit in progress, as the trainer sets it
            first, stop = strategy.shard(rows)
            if stop == first:
                continue  # the trainer makes no step on a rank without rows
            y, backward = layer.forward(x[first:stop], training=True)
            np.testing.assert_array_equal(y, want_y[first:stop], err_msg=f"rank {strategy.rank}")
            dx = backward(dy[first:stop].copy(), True)
            np.testing.assert_array_equal(dx, want_dx[first:stop])
            assert layer.training_state() == alone.training_state()


@pytest.mark.parametrize("name", list(LAYERS))
def test_the_backward_of_a_rank_share_passes_a_gradient_check(
    name, float64, fresh_session, numeric_grad
):
    model = FakeModel()
    strategy = ranks_of(3, model)[1]
    model.distribute = strategy
    layer = LAYERS[name](6)
    layer._ranks = weakref.ref(strategy)
    first, stop = strategy.shard(11)  # rows 4 to 8 of 11 (4 + 4 + 3)
    assert (first, stop) == (4, 8)
    data = np.random.default_rng(2)
    x = data.normal(size=(stop - first, 3))
    upstream = data.normal(size=x.shape)
    state = layer.training_state()

    def loss() -> float:
        layer.load_training_state(state)  # the same draws at every difference
        y, _ = layer.forward(x, training=True)
        return float(np.sum(y * upstream))

    layer.load_training_state(state)
    _, backward = layer.forward(x, training=True)
    analytic = np.array(backward(upstream.copy(), True))
    np.testing.assert_allclose(analytic, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


def test_outside_a_distributed_fit_a_layer_draws_as_one_process(fresh_session, rng):
    """After fit (``model.distribute`` back to None), or for a call that is not the rank's
    share of the batch (a callback predicting with ``training=True``: MC dropout), the
    layer draws for the rows it was given, as one process would."""
    x = rng.normal(size=(6, 4)).astype(np.float32)
    model = FakeModel()
    strategy = ranks_of(2, model)[1]
    strategy.shard(12)  # the last batch trained: rows 6 to 12
    layer, alone = Dropout(0.5, seed=9), Dropout(0.5, seed=9)
    layer._ranks = weakref.ref(strategy)
    assert strategy.batch_share(6) is None  # no fit in progress
    np.testing.assert_array_equal(layer(x, training=True), alone(x, training=True))
    model.distribute = strategy
    assert strategy.batch_share(6) == (12, 6)
    assert strategy.batch_share(5) is None  # not this rank's share of the batch
    np.testing.assert_array_equal(layer(x[:5], training=True), alone(x[:5], training=True))
    assert layer.training_state() == alone.training_state()


def test_a_layer_handed_to_a_strategy_still_copies_and_pickles(fresh_session):
    model = FakeModel()
    strategy = ranks_of(1, model)[0]
    layer = Dropout(0.4, seed=1)
    layer._ranks = weakref.ref(strategy)
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert clone._ranks is None  # the class default: draws as one process
        assert clone.training_state() == layer.training_state()
    assert layer._ranks() is strategy


def test_a_backup_resumes_random_layers_on_any_number_of_ranks(fresh_session):
    """Random layers hold rank 0's generator after ``spread_layer_states``: nothing is
    left to restore, whatever the ranks of the backup (one process, or an older
    layerkit's per-rank states), so no warning about other masks."""
    net = lk.Sequential([lk.layers.Input((3,)), lk.layers.Dense(4), Dropout(0.5, seed=1)])
    strategy = ranks_of(2, FakeModel())[1]
    before = net.layers[-1].training_state()
    other = {"rng": np.random.PCG64(77).state}
    for states in (None, [], [[{}, other]], [[{}, other], [{}, other], [{}, other]]):
        assert strategy.restore_rank_layer_states(net, states) is True
        assert net.layers[-1].training_state() == before
