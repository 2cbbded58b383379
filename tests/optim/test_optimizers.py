"""Optimizers against Keras 3's update rules written out in numpy (float64), clipping,
fused (arena) updates, state by name, and state_dict round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest

import layerkit as lk
from layerkit import optim
from layerkit.layers import Dense

KERNEL0 = np.array([[0.5, -0.3], [0.1, 0.8], [-0.6, 0.2]])
BIAS0 = np.array([0.05, -0.1])
GRADS = [  # (kernel gradient, bias gradient) for steps 1, 2, 3
    (np.array([[0.2, -0.4], [1.5, 0.3], [-0.7, 0.05]]), np.array([0.3, -1.2])),
    (np.array([[-0.1, -0.2], [0.9, 0.6], [0.4, -0.5]]), np.array([0.25, 0.8])),
    (np.array([[0.35, 0.1], [-1.1, 0.2], [0.0, 0.7]]), np.array([-0.45, 0.1])),
]
TOL = {"rtol": 1e-12, "atol": 1e-15}


def _layer(name="dense"):
    layer = Dense(2, use_bias=True, name=name)
    layer.build((None, 3))
    layer.set_weights([KERNEL0, BIAS0])
    return layer


def _run(optimizer, grads=GRADS, layer=None):
    """Applies the fixed gradients; returns the weights after each step."""
    layer = layer or _layer()
    history = []
    for gk, gb in grads:
        optimizer.apply_gradients([(gk.copy(), layer.kernel), (gb.copy(), layer.bias)])
        history.append([w.copy() for w in layer.get_weights()])
    return history


def _reference(step_fn, grads=GRADS, state_init=None):
    """Runs ``step_fn(w, g, state, t) -> w`` on kernel and bias separately (t from 1)."""
    weights = [KERNEL0.copy(), BIAS0.copy()]
    states = [state_init(w) if state_init else {} for w in weights]
    history = []
    for t, pair in enumerate(grads, start=1):
        weights = [
            step_fn(w, g.copy(), s, t) for w, g, s in zip(weights, pair, states, strict=True)
        ]
        history.append([w.copy() for w in weights])
    return history


def _assert_history(actual, expected, **tol):
    tol = tol or TOL
    assert len(actual) == len(expected)
    for step, (a, e) in enumerate(zip(actual, expected, strict=True), start=1):
        for wa, we in zip(a, e, strict=True):
            np.testing.assert_allclose(wa, we, err_msg=f"step {step}", **tol)


# --- update rules --------------------------------------------------------------------------------


def test_sgd_plain(float64, fresh_session):
    lr = 0.1

    def step(w, g, s, t):
        return w - lr * g

    _assert_history(_run(optim.SGD(learning_rate=lr)), _reference(step))


def test_sgd_momentum(float64, fresh_session):
    lr, mu = 0.1, 0.9

    def step(w, g, s, t):
        s["m"] = mu * s["m"] - lr * g
        return w + s["m"]

    _assert_history(
        _run(optim.SGD(lr, momentum=mu)),
        _reference(step, state_init=lambda w: {"m": np.zeros_like(w)}),
    )


def test_sgd_nesterov(float64, fresh_session):
    lr, mu = 0.1, 0.9

    def step(w, g, s, t):
        s["m"] = mu * s["m"] - lr * g
        return w + mu * s["m"] - lr * g

    actual = _run(optim.SGD(lr, momentum=mu, nesterov=True))
    _assert_history(actual, _reference(step, state_init=lambda w: {"m": np.zeros_like(w)}))
    # and it really differs from classical momentum after the first step
    classical = _run(optim.SGD(lr, momentum=mu))
    assert not np.allclose(actual[1][0], classical[1][0])


def test_rmsprop_plain(float64, fresh_session):
    lr, rho, eps = 0.01, 0.9, 1e-7

    def step(w, g, s, t):
        s["v"] = rho * s["v"] + (1 - rho) * g**2
        return w - lr * g / np.sqrt(s["v"] + eps)

    _assert_history(
        _run(optim.RMSprop(lr)), _reference(step, state_init=lambda w: {"v": np.zeros_like(w)})
    )


def test_rmsprop_momentum(float64, fresh_session):
    lr, rho, eps, mom = 0.01, 0.8, 1e-7, 0.5

    def step(w, g, s, t):
        s["v"] = rho * s["v"] + (1 - rho) * g**2
        s["m"] = mom * s["m"] + lr * g / np.sqrt(s["v"] + eps)
        return w - s["m"]

    _assert_history(
        _run(optim.RMSprop(lr, rho=rho, momentum=mom)),
        _reference(step, state_init=lambda w: {"v": np.zeros_like(w), "m": np.zeros_like(w)}),
    )


def test_rmsprop_centered(float64, fresh_session):
    lr, rho, eps = 0.01, 0.9, 1e-7

    def step(w, g, s, t):
        s["v"] = rho * s["v"] + (1 - rho) * g**2
        s["a"] = rho * s["a"] + (1 - rho) * g
        return w - lr * g / np.sqrt(s["v"] - s["a"] ** 2 + eps)

    _assert_history(
        _run(optim.RMSprop(lr, centered=True)),
        _reference(step, state_init=lambda w: {"v": np.zeros_like(w), "a": np.zeros_like(w)}),
    )


def test_rmsprop_centered_with_momentum(float64, fresh_session):
    lr, rho, eps, mom = 0.01, 0.9, 1e-7, 0.9

    def step(w, g, s, t):
        s["v"] = rho * s["v"] + (1 - rho) * g**2
        s["a"] = rho * s["a"] + (1 - rho) * g
        s["m"] = mom * s["m"] + lr * g / np.sqrt(s["v"] - s["a"] ** 2 + eps)
        return w - s["m"]

    _assert_history(
        _run(optim.RMSprop(lr, momentum=mom, centered=True)),
        _reference(step, state_init=lambda w: {k: np.zeros_like(w) for k in "vam"}),
    )


def test_adagrad(float64, fresh_session):
    lr, eps = 0.1, 1e-7

    def step(w, g, s, t):
        s["acc"] = s["acc"] + g**2
        return w - lr * g / np.sqrt(s["acc"] + eps)

    _assert_history(
        _run(optim.Adagrad(lr)),
        _reference(step, state_init=lambda w: {"acc": np.full_like(w, 0.1)}),
    )


def test_adadelta(float64, fresh_session):
    lr, rho, eps = 1.0, 0.95, 1e-7

    def step(w, g, s, t):
        s["eg"] = rho * s["eg"] + (1 - rho) * g**2
        d = -np.sqrt(s["ed"] + eps) / np.sqrt(s["eg"] + eps) * g
        s["ed"] = rho * s["ed"] + (1 - rho) * d**2
        return w + lr * d

    _assert_history(
        _run(optim.Adadelta(lr)),
        _reference(step, state_init=lambda w: {"eg": np.zeros_like(w), "ed": np.zeros_like(w)}),
    )


@pytest.mark.parametrize(("b1", "b2", "eps"), [(0.9, 0.999, 1e-7), (0.5, 0.8, 1e-3)])
def test_adam(b1, b2, eps, float64, fresh_session):
    lr = 0.01

    def step(w, g, s, t):
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        s["m"] = s["m"] + (g - s["m"]) * (1 - b1)
        s["v"] = s["v"] + (g**2 - s["v"]) * (1 - b2)
        return w - alpha * s["m"] / (np.sqrt(s["v"]) + eps)

    _assert_history(
        _run(optim.Adam(lr, beta_1=b1, beta_2=b2, epsilon=eps)),
        _reference(step, state_init=lambda w: {"m": np.zeros_like(w), "v": np.zeros_like(w)}),
    )


def test_iterations_count_steps(float64, fresh_session):
    opt = optim.Adam()
    _run(opt)
    assert opt.iterations == 3


# --- defaults ------------------------------------------------------------------------------------


def test_keras3_defaults():
    sgd = optim.SGD()
    assert sgd.learning_rate == 0.01
    assert (sgd.momentum, sgd.nesterov) == (0.0, False)
    rms = optim.RMSprop()
    assert (rms.learning_rate, rms.rho, rms.momentum, rms.epsilon, rms.centered) == (
        0.001,
        0.9,
        0.0,
        1e-7,
        False,
    )
    ada = optim.Adagrad()
    assert (ada.learning_rate, ada.initial_accumulator_value, ada.epsilon) == (0.001, 0.1, 1e-7)
    delta = optim.Adadelta()
    assert (delta.learning_rate, delta.rho, delta.epsilon) == (0.001, 0.95, 1e-7)
    adam = optim.Adam()
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    for opt in (sgd, rms, ada, delta, adam):
        assert (opt.clipnorm, opt.clipvalue, opt.global_clipnorm) == (None, None, None)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("sgd", optim.SGD),
        ("rmsprop", optim.RMSprop),
        ("adagrad", optim.Adagrad),
        ("adadelta", optim.Adadelta),
        ("adam", optim.Adam),
        ("Adam", optim.Adam),
    ],
)
def test_get_by_name(name, cls):
    assert type(optim.get(name)) is cls
    assert type(lk.optimizers.get(name)) is cls


def test_unknown_optimizer_name():
    with pytest.raises(ValueError, match=r"Unknown optimizer.*optimizer='adamw2'"):
        optim.get("adamw2")


def test_serialize_round_trip():
    opt = optim.Adam(0.05, beta_1=0.8, clipnorm=2.0)
    again = optim.get(optim.serialize(opt))
    assert type(again) is optim.Adam
    assert (again.learning_rate, again.beta_1, again.clipnorm) == (0.05, 0.8, 2.0)


# --- clipping ------------------------------------------------------------------------------------


def test_clipvalue(float64, fresh_session):
    lr, c = 0.1, 0.5

    def step(w, g, s, t):
        return w - lr * np.clip(g, -c, c)

    _assert_history(_run(optim.SGD(lr, clipvalue=c)), _reference(step))


def test_clipnorm_is_per_weight(float64, fresh_session):
    lr, c = 0.1, 1.0

    def step(w, g, s, t):
        norm = np.linalg.norm(g)
        return w - lr * (g * c / norm if norm > c else g)

    expected = _reference(step)
    _assert_history(_run(optim.SGD(lr, clipnorm=c)), expected)
    # the kernel gradient of step 1 has norm > 1 and is clipped; the bias's (1.24) too; a
    # large clipnorm leaves everything alone
    plain = _reference(lambda w, g, s, t: w - lr * g)
    _assert_history(_run(optim.SGD(lr, clipnorm=100.0)), plain)


def test_global_clipnorm_clips_all_weights_together(float64, fresh_session):
    lr, c = 0.1, 1.0
    expected = []
    weights = [KERNEL0.copy(), BIAS0.copy()]
    for pair in GRADS:
        norm = math.sqrt(sum(float(np.sum(g**2)) for g in pair))
        scale = c / norm if norm > c else 1.0
        weights = [w - lr * g * scale for w, g in zip(weights, pair, strict=True)]
        expected.append([w.copy() for w in weights])
    _assert_history(_run(optim.SGD(lr, global_clipnorm=c)), expected)
    # differs from per-weight clipping
    per_weight = _run(optim.SGD(lr, clipnorm=c))
    assert not np.allclose(per_weight[0][0], expected[0][0])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"clipnorm": 1.0, "clipvalue": 1.0},
        {"clipnorm": 1.0, "global_clipnorm": 1.0},
        {"clipvalue": 1.0, "global_clipnorm": 1.0},
    ],
)
def test_two_clip_options_are_rejected(kwargs):
    with pytest.raises(ValueError, match=r"Only one of") as info:
        optim.Adam(**kwargs)
    for key in kwargs:
        assert key in str(info.value)


@pytest.mark.parametrize("kwargs", [{"clipnorm": 0}, {"clipvalue": -1.0}, {"global_clipnorm": -2}])
def test_non_positive_clip_option(kwargs):
    key = next(iter(kwargs))
    with pytest.raises(ValueError, match=rf"{key}="):
        optim.SGD(**kwargs)


def test_bad_learning_rates():
    with pytest.raises(ValueError, match=r"learning_rate=-0.1"):
        optim.SGD(-0.1)
    with pytest.raises(TypeError, match=r"learning_rate='fast'"):
        optim.SGD("fast")
    with pytest.raises(ValueError, match=r"learning_rate=nan"):
        optim.Adam(float("nan"))


def test_gradient_shape_mismatch(float64, fresh_session):
    layer = _layer()
    opt = optim.SGD()
    with pytest.raises(ValueError, match=r"dense/kernel"):
        opt.apply_gradients([(np.zeros((2, 3)), layer.kernel)])
    assert np.array_equal(layer.kernel.value, KERNEL0)


# --- fused updates over a model's arena ----------------------------------------------------------


def _model_and_loose_layers():
    model = lk.Sequential([Dense(2, input_dim=3, name="a"), Dense(2, name="b")])
    loose = [Dense(2, name="la"), Dense(2, name="lb")]
    loose[0].build((None, 3))
    loose[1].build((None, 2))
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=s) for s in [(3, 2), (2,), (2, 2), (2,)]]
    model.set_weights(weights)
    loose[0].set_weights(weights[:2])
    loose[1].set_weights(weights[2:])
    return model, loose, rng


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.SGD(0.1, momentum=0.9, nesterov=True),
        lambda: optim.RMSprop(0.01, momentum=0.5, centered=True),
        lambda: optim.Adagrad(0.1),
        lambda: optim.Adadelta(1.0),
        lambda: optim.Adam(0.01),
        lambda: optim.Adam(0.01, clipnorm=0.5),
        lambda: optim.SGD(0.1, global_clipnorm=0.5),
        lambda: optim.RMSprop(0.01, clipvalue=0.3),
    ],
)
def test_fused_arena_updates_match_separate_arrays(make, float64, fresh_session):
    model, loose, rng = _model_and_loose_layers()
    params = model.weights
    assert all(p.arena is not None and p.arena is params[0].arena for p in params)
    loose_params = [p for layer in loose for p in layer.weights]
    assert all(p.arena is None for p in loose_params)
    fused, separate = make(), make()
    for _ in range(3):
        grads = [rng.normal(size=p.shape) for p in params]
        fused.apply_gradients(list(zip([g.copy() for g in grads], params, strict=True)))
        separate.apply_gradients(list(zip([g.copy() for g in grads], loose_params, strict=True)))
    # the whole arena went through one run
    assert len(fused._plan(params)) == 1
    for p, q in zip(params, loose_params, strict=True):
        np.testing.assert_allclose(p.value, q.value, rtol=1e-12, atol=1e-15)


def test_fused_update_of_a_subset(float64, fresh_session):
    """Updating only the top layer (bottom frozen) leaves the bottom alone."""
    model, _, rng = _model_and_loose_layers()
    before = model.get_weights()
    top = model.get_layer("b").weights
    opt = optim.SGD(0.5)
    grads = [rng.normal(size=p.shape) for p in top]
    opt.apply_gradients(zip(grads, top, strict=True))
    after = model.get_weights()
    assert np.array_equal(after[0], before[0])
    assert np.array_equal(after[1], before[1])
    np.testing.assert_allclose(after[2], before[2] - 0.5 * grads[0], **TOL)
    np.testing.assert_allclose(after[3], before[3] - 0.5 * grads[1], **TOL)


# --- state by name, state_dict -------------------------------------------------------------------


def test_slots_are_keyed_by_parameter_name(float64, fresh_session):
    layer = _layer()
    opt = optim.Adam(0.01)
    _run(opt, GRADS[:1], layer)
    slots = opt.slots("dense/kernel")
    assert set(slots) == {"momentum", "velocity"}
    np.testing.assert_allclose(slots["momentum"], 0.1 * GRADS[0][0], **TOL)
    np.testing.assert_allclose(slots["velocity"], 0.001 * GRADS[0][0] ** 2, **TOL)
    np.testing.assert_allclose(opt.slots("dense/bias")["momentum"], 0.1 * GRADS[0][1], **TOL)
    assert set(optim.RMSprop(momentum=0.9, centered=True).slot_names) == {
        "velocity",
        "momentum",
        "average_gradient",
    }
    assert optim.SGD().slot_names == ()
    assert optim.SGD(momentum=0.5).slot_names == ("momentum",)


def test_adagrad_accumulator_starts_at_initial_value(float64, fresh_session):
    layer = _layer()
    opt = optim.Adagrad(initial_accumulator_value=0.3)
    opt.build(layer.weights)
    assert np.all(opt.slots("dense/bias")["accumulator"] == 0.3)


def test_state_dict_round_trip_continues_identically(float64, fresh_session):
    reference_layer = _layer("dense")
    reference = optim.Adam(0.01)
    _run(reference, GRADS[:2], reference_layer)
    state = reference.state_dict()
    assert state["iterations"] == 2
    assert set(state["slots"]) == {"dense/kernel", "dense/bias"}
    # the dict holds copies
    state["slots"]["dense/kernel"]["momentum"] += 0.0
    assert (
        state["slots"]["dense/kernel"]["momentum"]
        is not reference.slots("dense/kernel")["momentum"]
    )

    # a new layer with the same names and weights, and a new optimizer loading the state
    lk.utils.clear_session()
    layer = _layer("dense")
    layer.set_weights(reference_layer.get_weights())
    restored = optim.Adam(0.01)
    restored.load_state_dict(state)  # before build: kept and applied on build
    assert restored.iterations == 2
    _run(reference, GRADS[2:], reference_layer)
    _run(restored, GRADS[2:], layer)
    for a, b in zip(layer.get_weights(), reference_layer.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for slot in ("momentum", "velocity"):
        np.testing.assert_array_equal(
            restored.slots("dense/kernel")[slot], reference.slots("dense/kernel")[slot]
        )


def test_load_state_dict_after_build(float64, fresh_session):
    layer = _layer()
    source = optim.RMSprop(0.01, momentum=0.5)
    _run(source, GRADS, layer)
    target = optim.RMSprop(0.01, momentum=0.5)
    target.build(layer.weights)
    target.load_state_dict(source.state_dict())
    for name in ("dense/kernel", "dense/bias"):
        for slot, value in source.slots(name).items():
            np.testing.assert_array_equal(target.slots(name)[slot], value)
    assert target.iterations == 3


def test_load_state_dict_shape_mismatch_changes_nothing(float64, fresh_session):
    layer = _layer()
    opt = optim.Adam(0.01)
    _run(opt, GRADS[:1], layer)
    before = opt.state_dict()
    bad = opt.state_dict()
    bad["iterations"] = 10
    bad["slots"]["dense/bias"]["momentum"] = np.zeros(5)  # wrong shape
    bad["slots"]["dense/kernel"]["momentum"] = np.full((3, 2), 9.0)  # fine, but must not load
    with pytest.raises(ValueError, match=r"dense/bias.*momentum.*\(2,\).*\(5,\)"):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after["iterations"] == before["iterations"] == 1
    for name, slots in before["slots"].items():
        for slot, value in slots.items():
            np.testing.assert_array_equal(after["slots"][name][slot], value)


def test_load_state_dict_wrong_slot_names(float64, fresh_session):
    layer = _layer()
    opt = optim.Adam(0.01)
    _run(opt, GRADS[:1], layer)
    sgd_state = {"iterations": 1, "slots": {"dense/kernel": {"momentum": np.zeros((3, 2))}}}
    with pytest.raises(ValueError, match=r"velocity"):
        opt.load_state_dict(sgd_state)
    with pytest.raises(ValueError, match=r"iterations"):
        opt.load_state_dict({"slots": {}})


def test_model_compile_builds_state_for_model_weights(fresh_session):
    model = lk.Sequential([Dense(3, input_dim=2, name="h"), Dense(1, name="o")])
    model.compile(optimizer=optim.SGD(momentum=0.9), loss="mse")
    names = sorted(model.optimizer.state_dict()["slots"])
    assert names == ["h/bias", "h/kernel", "o/bias", "o/kernel"]
    assert model.optimizer.slots("h/kernel")["momentum"].shape == (2, 3)


def test_apply_gradients_updates_the_parameters_it_is_given(float64, fresh_session):
    """State is shared by name, but the update must land on the Parameter passed in, even
    when an earlier Parameter of the same name (a rebuilt layer) was updated before."""
    opt = optim.SGD(0.1)
    old = _layer("d")
    _run(opt, GRADS[:1], old)
    old_after = old.get_weights()
    new = _layer("d")  # same name, same shapes, fresh arrays
    _run(opt, GRADS[:1], new)
    np.testing.assert_allclose(new.kernel.value, KERNEL0 - 0.1 * GRADS[0][0], **TOL)
    np.testing.assert_allclose(new.bias.value, BIAS0 - 0.1 * GRADS[0][1], **TOL)
    for a, b in zip(old.get_weights(), old_after, strict=True):
        np.testing.assert_array_equal(a, b)
