"""Learning-rate schedules: Keras 3 values at given steps, and their use by optimizers."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk
from layerkit import optim
from layerkit.optim import schedules


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.1), (50, 0.1 * 0.5**0.5), (100, 0.05), (200, 0.025), (250, 0.1 * 0.5**2.5)],
)
def test_exponential_decay(step, expected):
    assert schedules.ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5)(step) == pytest.approx(
        expected, rel=1e-12
    )


@pytest.mark.parametrize(("step", "expected"), [(0, 0.1), (99, 0.1), (100, 0.05), (250, 0.025)])
def test_exponential_decay_staircase(step, expected):
    schedule = schedules.ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5, staircase=True)
    assert schedule(step) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 1.0), (10, 1.0), (11, 0.5), (20, 0.5), (21, 0.1), (1000, 0.1)],
)
def test_piecewise_constant_decay(step, expected):
    schedule = schedules.PiecewiseConstantDecay(boundaries=[10, 20], values=[1.0, 0.5, 0.1])
    assert schedule(step) == expected


def test_inverse_time_and_cosine_decay():
    inv = schedules.InverseTimeDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert inv(20) == pytest.approx(0.1 / 2.0)
    cos = schedules.CosineDecay(1.0, decay_steps=100, alpha=0.1)
    assert cos(0) == pytest.approx(1.0)
    assert cos(50) == pytest.approx(0.1 + 0.9 * 0.5)
    assert cos(100) == pytest.approx(0.1)
    assert cos(500) == pytest.approx(0.1)


def test_schedule_validation():
    with pytest.raises(ValueError, match=r"decay_steps=0"):
        schedules.ExponentialDecay(0.1, decay_steps=0, decay_rate=0.5)
    with pytest.raises(ValueError, match=r"len"):
        schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5])
    with pytest.raises(ValueError, match=r"increasing"):
        schedules.PiecewiseConstantDecay([20, 10], [1.0, 0.5, 0.1])


def _layer():
    layer = lk.layers.Dense(1, use_bias=False, name="w")
    layer.build((None, 1))
    layer.set_weights([np.array([[1.0]])])
    return layer


def test_sgd_uses_exponential_decay_per_step(float64, fresh_session):
    schedule = schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    opt = optim.SGD(learning_rate=schedule)
    assert opt.schedule is schedule
    layer = _layer()
    w, seen = 1.0, []
    for step in range(3):
        seen.append(opt.learning_rate)
        opt.apply_gradients([(np.array([[1.0]]), layer.kernel)])
        w -= 0.1 * 0.5**step  # the rate of step t is schedule(t), t from 0
        assert layer.kernel.value[0, 0] == pytest.approx(w, rel=1e-12)
    assert seen == pytest.approx([0.1, 0.05, 0.025])
    assert opt.learning_rate == pytest.approx(0.0125)


def test_adam_uses_piecewise_constant_decay(float64, fresh_session):
    schedule = schedules.PiecewiseConstantDecay(boundaries=[0, 1], values=[0.1, 0.01, 0.001])
    opt = optim.Adam(learning_rate=schedule)
    layer = _layer()
    w = 1.0
    m = v = 0.0
    g = 0.5
    for t, lr in enumerate([0.1, 0.01, 0.001], start=1):
        assert opt.learning_rate == lr
        opt.apply_gradients([(np.array([[g]]), layer.kernel)])
        m += (g - m) * 0.1
        v += (g * g - v) * 0.001
        alpha = lr * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        w -= alpha * m / (np.sqrt(v) + 1e-7)
        assert layer.kernel.value[0, 0] == pytest.approx(w, rel=1e-12)


def test_schedule_in_fit(fresh_session):
    """fit reads the schedule at every step: after k full-batch steps the rate is lr(k)."""
    schedule = schedules.PiecewiseConstantDecay(boundaries=[1], values=[0.1, 0.0])
    model = lk.Sequential(
        [lk.layers.Dense(1, use_bias=False, input_dim=1, kernel_initializer="zeros")]
    )
    model.compile(optimizer=optim.SGD(learning_rate=schedule), loss="mse")
    x = np.ones((4, 1), dtype=np.float32)
    y = np.ones((4, 1), dtype=np.float32)
    model.fit(x, y, batch_size=4, epochs=5, verbose=0)
    # step 0: w = 0 - 0.1 * 2 (0 - 1) = 0.2; step 1: w = 0.2 - 0.1 * 2 (0.2 - 1) = 0.36;
    # later steps have rate 0.
    assert model.get_weights()[0][0, 0] == pytest.approx(0.36, rel=1e-6)
    assert model.optimizer.iterations == 5


def test_schedule_serialisation_round_trip():
    opt = optim.SGD(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.9, staircase=True))
    again = optim.get(optim.serialize(opt))
    assert isinstance(again.schedule, schedules.ExponentialDecay)
    assert again.schedule.get_config() == opt.schedule.get_config()
    assert again.learning_rate == pytest.approx(0.1)


# --- Against real Keras 3: values, config keys, serialisation, use by an optimizer ---

_CASES = [
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=100, decay_rate=0.96)),
    (
        "ExponentialDecay",
        dict(initial_learning_rate=0.5, decay_steps=7, decay_rate=0.5, staircase=True),
    ),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5)),
    (
        "InverseTimeDecay",
        dict(initial_learning_rate=1.0, decay_steps=3, decay_rate=2.0, staircase=True),
    ),
    ("PiecewiseConstantDecay", dict(boundaries=[10, 20], values=[1.0, 0.5, 0.1])),
    ("PiecewiseConstantDecay", dict(boundaries=[0, 50, 150], values=[0.3, 0.2, 0.1, 0.05])),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=100)),
    (
        "PolynomialDecay",
        dict(initial_learning_rate=0.1, decay_steps=60, end_learning_rate=0.01, power=0.5),
    ),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=30, power=2.0, cycle=True)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=100)),
    ("CosineDecay", dict(initial_learning_rate=1.0, decay_steps=150, alpha=0.1)),
    (
        "CosineDecay",
        dict(initial_learning_rate=0.0, decay_steps=100, warmup_target=0.1, warmup_steps=20),
    ),
    (
        "CosineDecay",
        dict(
            initial_learning_rate=0.01,
            decay_steps=50,
            alpha=0.2,
            warmup_target=0.5,
            warmup_steps=25,
        ),
    ),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=10)),
    (
        "CosineDecayRestarts",
        dict(initial_learning_rate=0.1, first_decay_steps=20, t_mul=1.0, m_mul=0.5, alpha=0.1),
    ),
    (
        "CosineDecayRestarts",
        dict(initial_learning_rate=1.0, first_decay_steps=7, t_mul=1.5, m_mul=0.9, alpha=0.05),
    ),
]
_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(_CASES)]
_STEPS = [*range(201), 1000, 12345, 100_000]


@pytest.mark.parametrize(("name", "kwargs"), _CASES, ids=_IDS)
def test_values_match_keras(keras, name, kwargs):
    ours = getattr(schedules, name)(**kwargs)
    theirs = getattr(keras.optimizers.schedules, name)(**kwargs)
    got = np.array([ours(step) for step in _STEPS])
    want = np.array([float(theirs(step)) for step in _STEPS])
    # Keras computes in float32; where a rate is tiny next to its peak (cosine near its end,
    # 0.96 ** 1000) float32 cancellation dominates, so allow one float32 step of the peak.
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7 * np.max(np.abs(want)))


@pytest.mark.parametrize(("name", "kwargs"), _CASES, ids=_IDS)
def test_config_matches_keras(keras, name, kwargs):
    ours = getattr(schedules, name)(**kwargs)
    theirs = getattr(keras.optimizers.schedules, name)(**kwargs)
    assert ours.get_config() == theirs.get_config()
    assert list(ours.get_config()) == list(theirs.get_config())


@pytest.mark.parametrize(("name", "kwargs"), _CASES, ids=_IDS)
def test_serialize_round_trip(name, kwargs):
    schedule = getattr(schedules, name)(**kwargs)
    spec = schedules.serialize(schedule)
    assert spec["class_name"] == name
    again = schedules.deserialize(spec)
    assert type(again) is type(schedule)
    assert again.get_config() == schedule.get_config()
    assert [again(s) for s in _STEPS] == [schedule(s) for s in _STEPS]


def test_deserialize_keras_spec(keras):
    theirs = keras.optimizers.schedules.PolynomialDecay(0.1, 40, cycle=True)
    ours = schedules.deserialize(keras.optimizers.schedules.serialize(theirs))
    assert isinstance(ours, schedules.PolynomialDecay)
    assert ours.get_config() == theirs.get_config()
    with pytest.raises(ValueError, match=r"Unknown learning-rate schedule"):
        schedules.deserialize({"class_name": "Nope", "config": {}})


def test_inverse_time_decay_is_not_exponential_decay():
    assert not isinstance(schedules.InverseTimeDecay(0.1, 10, 0.5), schedules.ExponentialDecay)


@pytest.mark.parametrize(("name", "kwargs"), _CASES, ids=_IDS)
def test_sgd_follows_schedule(float64, fresh_session, name, kwargs):
    schedule = getattr(schedules, name)(**kwargs)
    opt = optim.SGD(learning_rate=schedule)
    layer = _layer()
    w = 1.0
    for step in range(25):
        lr = opt.learning_rate
        assert lr == pytest.approx(schedule(step), rel=1e-12, abs=1e-300)
        opt.apply_gradients([(np.array([[1.0]]), layer.kernel)])
        w -= lr
        assert layer.kernel.value[0, 0] == pytest.approx(w, rel=1e-12, abs=1e-12)


def test_polynomial_decay_cycle_stretches_decay_steps():
    schedule = schedules.PolynomialDecay(1.0, 10, end_learning_rate=0.0, cycle=True)
    assert schedule(0) == 1.0
    assert schedule(5) == pytest.approx(0.5)
    assert schedule(10) == pytest.approx(0.0)
    assert schedule(15) == pytest.approx(1 - 15 / 20)  # decay_steps stretched to 20
    assert schedules.PolynomialDecay(1.0, 10, end_learning_rate=0.0)(15) == 0.0


def test_cosine_decay_restarts_periods():
    schedule = schedules.CosineDecayRestarts(1.0, 10, t_mul=2.0, m_mul=0.5)
    assert schedule(0) == pytest.approx(1.0)
    assert schedule(10) == pytest.approx(0.5)  # second period starts at m_mul
    assert schedule(20) == pytest.approx(0.5 * 0.5)  # half-way through the 20-step period
    assert schedule(30) == pytest.approx(0.25)  # third period


@pytest.mark.parametrize(
    ("factory", "error", "pattern"),
    [
        (lambda: schedules.ExponentialDecay(0.1, -5, 0.5), ValueError, r"decay_steps=-5"),
        (lambda: schedules.InverseTimeDecay(0.1, 0, 0.5), ValueError, r"decay_steps=0"),
        (lambda: schedules.PolynomialDecay(0.1, 0), ValueError, r"decay_steps=0"),
        (lambda: schedules.CosineDecay(0.1, 0), ValueError, r"decay_steps=0"),
        (lambda: schedules.CosineDecayRestarts(0.1, 0), ValueError, r"first_decay_steps=0"),
        (lambda: schedules.CosineDecayRestarts(0.1, 10, t_mul=0.0), ValueError, r"t_mul"),
        (lambda: schedules.CosineDecay(0.1, 10, warmup_steps=-1), ValueError, r"warmup_steps"),
        (
            lambda: schedules.PiecewiseConstantDecay([10, 10], [1.0, 0.5, 0.1]),
            ValueError,
            r"increasing",
        ),
        (lambda: schedules.PiecewiseConstantDecay([10], [1.0, 0.5, 0.1]), ValueError, r"length"),
        (lambda: schedules.PiecewiseConstantDecay([10], [1.0, "x"]), TypeError, r"values\[1\]"),
        (lambda: schedules.ExponentialDecay("0.1", 10, 0.5), TypeError, r"initial_learning_rate"),
        (lambda: schedules.ExponentialDecay(0.1, 10, float("nan")), ValueError, r"decay_rate"),
        (lambda: schedules.PolynomialDecay(0.1, 10, cycle="yes"), TypeError, r"cycle"),
        (lambda: schedules.ExponentialDecay(0.1, 10, 0.5, staircase=1), TypeError, r"staircase"),
        (lambda: schedules.CosineDecay(0.1, 10, name=3), TypeError, r"name"),
    ],
)
def test_bad_arguments_are_refused(factory, error, pattern):
    with pytest.raises(error, match=pattern):
        factory()
