"""``lk.testing.check_gradients``: passes on correct built-in layers (weights, statistics,
merge inputs, random layers in training) and names the weight of a broken backward,
without changing the layer it is given."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk
from layerkit.layers import (
    AlphaDropout,
    BatchNormalization,
    Concatenate,
    Dense,
    Dropout,
    GaussianDropout,
    GaussianNoise,
    PReLU,
)


@lk.layers.register_layer
class ScaledKernelGradDense(Dense):
    """A Dense whose backward overstates the kernel gradient by 1%."""

    def forward(self, x, training=False):
        y, backward = super().forward(x, training)

        def broken(dy, need_dx=True):
            dx = backward(dy, need_dx)
            self.kernel.grad *= 1.01
            return dx

        return y, broken


@lk.layers.register_layer
class WrongInputGradDense(Dense):
    """A Dense whose backward returns twice the input gradient."""

    def forward(self, x, training=False):
        y, backward = super().forward(x, training)

        def broken(dy, need_dx=True):
            dx = backward(dy, need_dx)
            return None if dx is None else dx * 2

        return y, broken


def built(layer, shape, rng=None):
    layer.build((None, *shape[1:]))
    if rng is not None:
        for p in layer.weights:
            p.assign(
                rng.normal(size=p.shape).astype(p.dtype) * 0.5 + (1.0 if "var" in p.name else 0)
            )
    return layer


@pytest.mark.parametrize("training", [False, True])
def test_dense(training, fresh_session, rng):
    report = lk.testing.check_gradients(
        Dense(3, activation="tanh"), rng.normal(size=(4, 5)), training=training
    )
    assert set(report) == {"input", "kernel", "bias"}
    assert max(report.values()) < 1e-7


@pytest.mark.parametrize("training", [False, True])
def test_batch_normalization(training, fresh_session, rng):
    x = rng.normal(size=(6, 4)) * 2 + 1
    layer = built(BatchNormalization(), x.shape, rng)
    report = lk.testing.check_gradients(layer, x, training=training)
    assert set(report) == {"input", "gamma", "beta"}  # moving statistics are not trained
    assert max(report.values()) < 1e-6


def test_prelu(fresh_session, rng):
    x = rng.normal(size=(4, 3, 5))
    x[np.abs(x) < 1e-2] += 0.05  # away from the kink
    layer = built(PReLU(shared_axes=[1]), x.shape, rng)
    report = lk.testing.check_gradients(layer, x)
    assert set(report) == {"input", "alpha"}


def test_concatenate_takes_a_list(fresh_session, rng):
    a, b = rng.normal(size=(3, 2)), rng.normal(size=(3, 4))
    report = lk.testing.check_gradients(Concatenate(), [a, b])
    assert set(report) == {"input 0", "input 1"}
    assert max(report.values()) < 1e-8


@pytest.mark.parametrize(
    "layer",
    [
        GaussianNoise(0.5, seed=1),
        GaussianDropout(0.3, seed=1),
        AlphaDropout(0.2, seed=1),
        Dropout(0.4, seed=1),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_random_layers_in_training(layer, fresh_session, rng):
    report = lk.testing.check_gradients(layer, rng.normal(size=(5, 4)), training=True)
    assert report["input"] < 1e-7


def test_a_broken_weight_gradient_is_named(fresh_session, rng):
    layer = built(ScaledKernelGradDense(3, name="broken"), (4, 5), rng)
    with pytest.raises(AssertionError, match="ScaledKernelGradDense kernel") as info:
        lk.testing.check_gradients(layer, rng.normal(size=(4, 5)))
    assert "finite differences" in str(info.value)
    assert "bias" not in str(info.value)


def test_a_broken_input_gradient_is_named(fresh_session, rng):
    with pytest.raises(AssertionError, match="WrongInputGradDense input"):
        lk.testing.check_gradients(WrongInputGradDense(2), rng.normal(size=(3, 4)))


def test_the_layer_passed_in_is_not_changed(fresh_session, rng):
    x = rng.normal(size=(6, 4)).astype(np.float32)
    layer = built(BatchNormalization(name="bn"), x.shape, rng)
    before = [p.numpy() for p in layer.weights]
    grads = [None if p.grad is None else np.array(p.grad) for p in layer.weights]
    config = layer.get_config()
    lk.testing.check_gradients(layer, x, training=True)
    assert layer.dtype == "float32"
    assert layer.get_config() == config
    for p, value, grad in zip(layer.weights, before, grads, strict=True):
        np.testing.assert_array_equal(p.numpy(), value)
        assert p.dtype == np.float32
        if grad is None:
            assert p.grad is None
        else:
            np.testing.assert_array_equal(p.grad, grad)

    unbuilt = Dense(2)
    lk.testing.check_gradients(unbuilt, x)
    assert not unbuilt.built

    noise = GaussianNoise(1.0, seed=3)
    state = noise.training_state()
    lk.testing.check_gradients(noise, x, training=True)
    assert noise.training_state() == state  # its generator has not moved


def test_the_weights_of_a_built_layer_are_the_ones_checked(fresh_session, rng):
    layer = built(Dense(2, activation="relu"), (3, 4), rng)
    x = rng.normal(size=(3, 4))
    layer.kernel.assign(np.zeros(layer.kernel.shape, np.float32))
    layer.bias.assign(-np.ones(layer.bias.shape, np.float32))
    # all units off: every gradient is zero, and equal to the finite differences
    report = lk.testing.check_gradients(layer, x)
    assert max(report.values()) == 0.0
