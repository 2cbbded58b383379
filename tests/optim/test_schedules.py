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
