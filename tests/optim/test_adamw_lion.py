"""Weight decay (every optimizer), Adam's AMSGrad, AdamW and Lion against real Keras 3.

The same two-layer model is built in Keras (PyTorch backend) and in layerkit with the
same weights; both optimizers get the same gradients for five steps and must agree on
the weights after every step and on the optimizer's slots (``slots()`` against Keras's
optimizer variables). Learning rates are powers of two: Keras keeps the learning rate
in a float32 variable, and in float64 any other value would differ by its rounding.
Keras also computes the weight-decay factor ``1 - wd * lr`` in float32 even for float64
weights, and its clip_by_norm loses float32-level precision on float64 gradients; where
either applies, the float64 comparison allows for it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import layerkit as lk
from layerkit import optim
from layerkit.layers import Dense
from layerkit.optim.adamw import AdamW
from layerkit.optim.lion import Lion

# Keras's numpy conversion on the PyTorch backend, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

STEPS = 5
# float32: Keras computes Adam's alpha in float32, layerkit in float64, so the weights
# differ by a few ulps (about 3e-7 on weights of size 1); float64 agrees to rounding.
TOLERANCE = {"float32": {"rtol": 1e-6, "atol": 1e-6}, "float64": {"rtol": 1e-12, "atol": 1e-13}}

# (id, Keras optimizer from the keras module, the layerkit optimizer)
CASES = [
    (
        "adam-amsgrad",
        lambda k: k.optimizers.Adam(2**-6, amsgrad=True),
        lambda: optim.Adam(2**-6, amsgrad=True),
    ),
    ("adamw", lambda k: k.optimizers.AdamW(2**-6), lambda: AdamW(2**-6)),
    (
        "adamw-amsgrad",
        lambda k: k.optimizers.AdamW(2**-6, weight_decay=0.5, amsgrad=True),
        lambda: AdamW(2**-6, weight_decay=0.5, amsgrad=True),
    ),
    ("lion", lambda k: k.optimizers.Lion(2**-7), lambda: Lion(2**-7)),
    (
        "lion-decay",
        lambda k: k.optimizers.Lion(2**-7, beta_1=0.8, beta_2=0.95, weight_decay=0.1),
        lambda: Lion(2**-7, beta_1=0.8, beta_2=0.95, weight_decay=0.1),
    ),
    (
        "sgd-decay",
        lambda k: k.optimizers.SGD(2**-4, weight_decay=0.01),
        lambda: optim.SGD(2**-4, weight_decay=0.01),
    ),
    (
        "sgd-momentum-decay",
        lambda k: k.optimizers.SGD(2**-4, momentum=0.9, weight_decay=0.01),
        lambda: optim.SGD(2**-4, momentum=0.9, weight_decay=0.01),
    ),
    (
        "rmsprop-decay",
        lambda k: k.optimizers.RMSprop(2**-6, weight_decay=0.01),
        lambda: optim.RMSprop(2**-6, weight_decay=0.01),
    ),
    (
        "adam-decay",
        lambda k: k.optimizers.Adam(2**-6, weight_decay=0.01),
        lambda: optim.Adam(2**-6, weight_decay=0.01),
    ),
    (
        "adam-decay-clipnorm",
        lambda k: k.optimizers.Adam(2**-6, weight_decay=0.5, clipnorm=0.5),
        lambda: optim.Adam(2**-6, weight_decay=0.5, clipnorm=0.5),
    ),
]


def _keras_model(keras, dtype):
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, name="d1", dtype=dtype),
            keras.layers.Dense(2, name="d2", dtype=dtype),
        ]
    )


def _layerkit_model(weights):
    model = lk.Sequential([Dense(3, input_dim=4, name="d1"), Dense(2, name="d2")])
    model.set_weights(weights)
    return model


def _gradients(shapes, dtype, steps=STEPS, seed=5):
    rng = np.random.default_rng(seed)
    grads = [[rng.normal(size=s).astype(dtype) for s in shapes] for _ in range(steps)]
    grads[2][1][:] = 0.0  # a zero gradient (Lion's sign, AMSGrad's maximum)
    return grads


def _keras_slot(keras_optimizer, variable, slot):
    """The Keras optimizer variable ``slot`` of ``variable`` (named after its path)."""
    wanted = f"{variable.path.replace('/', '_')}_{slot}"
    (found,) = [v for v in keras_optimizer.variables if v.path.split("/")[-1] == wanted]
    return np.asarray(found.numpy())


def _keras_rounds_decay(opt):
    """Whether Keras's float32 ``1 - wd * lr`` differs from the float64 value."""
    if opt.weight_decay is None:
        return False
    wd, lr = opt.weight_decay, opt.learning_rate
    return float(np.float32(1) - np.float32(wd) * np.float32(lr)) != 1.0 - wd * lr


def _layerkit_run(make, weights, grads):
    model = _layerkit_model(weights)
    opt = make()
    history = []
    for step in grads:
        opt.apply_gradients([(g.copy(), p) for g, p in zip(step, model.weights, strict=True)])
        history.append(model.get_weights())
    return model, opt, history


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("case", "make_keras", "make"), CASES, ids=[c[0] for c in CASES])
def test_matches_keras_step_by_step(case, make_keras, make, dtype, keras, fresh_session):
    tol = TOLERANCE[dtype]
    if dtype == "float64" and (_keras_rounds_decay(make()) or make().clipnorm is not None):
        tol = {"rtol": 1e-6, "atol": 1e-7}  # Keras's float32 rounding: up to 6e-8 |w| a step
    keras_model = _keras_model(keras, dtype)
    weights = keras_model.get_weights()
    grads = _gradients([w.shape for w in weights], dtype)
    keras_opt = make_keras(keras)
    with lk.backend.floatx_scope(dtype):
        model, opt, history = _layerkit_run(make, weights, grads)
    assert model.weights[0].dtype == np.dtype(dtype)
    variables = keras_model.trainable_variables
    for step, (step_grads, ours) in enumerate(zip(grads, history, strict=True), start=1):
        keras_opt.apply_gradients(
            zip([keras.ops.convert_to_tensor(g) for g in step_grads], variables, strict=True)
        )
        for theirs, mine in zip(keras_model.get_weights(), ours, strict=True):
            np.testing.assert_allclose(mine, theirs, err_msg=f"{case} step {step}", **tol)
    assert opt.iterations == int(keras_opt.iterations.numpy()) == STEPS
    for p, variable in zip(model.weights, variables, strict=True):
        ours = opt.slots(p.name)
        assert set(ours) == set(opt.slot_names)
        for slot, value in ours.items():
            np.testing.assert_allclose(
                value, _keras_slot(keras_opt, variable, slot), err_msg=f"{p.name}/{slot}", **tol
            )


def test_slot_names_are_keras_names():
    assert optim.Adam().slot_names == ("momentum", "velocity")
    assert optim.Adam(amsgrad=True).slot_names == ("momentum", "velocity", "velocity_hat")
    assert AdamW(amsgrad=True).slot_names == ("momentum", "velocity", "velocity_hat")
    assert Lion().slot_names == ("momentum",)


def test_exclude_from_weight_decay_matches_keras(keras, fresh_session):
    keras_model = _keras_model(keras, "float32")
    weights = keras_model.get_weights()
    grads = _gradients([w.shape for w in weights], "float32")
    keras_opt = keras.optimizers.AdamW(2**-6, weight_decay=0.5)
    keras_opt.exclude_from_weight_decay(var_names=["bias"])

    def make():
        opt = AdamW(2**-6, weight_decay=0.5)
        opt.exclude_from_weight_decay(var_names=["bias"])
        return opt

    _, _, history = _layerkit_run(make, weights, grads)
    _, _, decay_all = _layerkit_run(lambda: AdamW(2**-6, weight_decay=0.5), weights, grads)
    for step_grads, ours in zip(grads, history, strict=True):
        keras_opt.apply_gradients(
            zip(
                [keras.ops.convert_to_tensor(g) for g in step_grads],
                keras_model.trainable_variables,
            )
        )
        for theirs, mine in zip(keras_model.get_weights(), ours, strict=True):
            np.testing.assert_allclose(mine, theirs, **TOLERANCE["float32"])
    # the exclusion changed the biases only
    for i, (excluded, decayed) in enumerate(zip(history[-1], decay_all[-1], strict=True)):
        assert np.array_equal(excluded, decayed) == (i % 2 == 0), i


@pytest.mark.parametrize(("lr", "weight_decay"), [(0.001, 0.004), (0.1, 0.01), (0.0123, 0.37)])
def test_weight_decay_is_bit_identical_to_keras_float32(lr, weight_decay, keras, fresh_session):
    """Zero gradients: SGD only decays, and the float32 weights agree bit for bit."""
    keras_model = _keras_model(keras, "float32")
    weights = keras_model.get_weights()
    keras_opt = keras.optimizers.SGD(lr, weight_decay=weight_decay)
    model = _layerkit_model(weights)
    opt = optim.SGD(lr, weight_decay=weight_decay)
    for _ in range(3):
        keras_opt.apply_gradients(
            (keras.ops.zeros(v.shape), v) for v in keras_model.trainable_variables
        )
        opt.apply_gradients([(np.zeros(p.shape, np.float32), p) for p in model.weights])
    for theirs, mine in zip(keras_model.get_weights(), model.get_weights(), strict=True):
        assert not np.array_equal(theirs, weights[0]) or theirs.shape != weights[0].shape
        np.testing.assert_array_equal(mine, theirs)


# --- weight decay in layerkit alone ----------------------------------------------------


def test_weight_decay_is_applied_before_the_step_and_skips_excluded(float64, fresh_session):
    """With zero gradients, SGD + decay only decays: ``w *= 1 - wd * lr`` each step."""
    model = _layerkit_model([np.full((4, 3), 2.0), np.ones(3), np.full((3, 2), -1.0), np.ones(2)])
    params = model.weights
    opt = optim.SGD(0.5, weight_decay=0.1)
    opt.exclude_from_weight_decay(var_list=[params[3]], var_names=["d1/b"])
    for _ in range(3):
        opt.apply_gradients([(np.zeros(p.shape), p) for p in params])
    factor = (1 - 0.1 * 0.5) ** 3
    np.testing.assert_allclose(params[0].value, 2.0 * factor, rtol=1e-14)
    np.testing.assert_array_equal(params[1].value, 1.0)  # excluded by name
    np.testing.assert_allclose(params[2].value, -1.0 * factor, rtol=1e-14)
    np.testing.assert_array_equal(params[3].value, 1.0)  # excluded as a parameter
    # the whole arena is still one run; the decay covers two stretches of it
    (run,) = opt._plan(params)
    assert [v.size for v in run.decay] == [12, 6]
    # a new call replaces the exclusions
    opt.exclude_from_weight_decay()
    opt.apply_gradients([(np.zeros(p.shape), p) for p in params])
    np.testing.assert_allclose(params[1].value, 0.95, rtol=1e-14)


def test_weight_decay_uses_the_scheduled_learning_rate(float64, fresh_session):
    schedule = optim.schedules.ExponentialDecay(0.5, decay_steps=1, decay_rate=0.5)
    model = _layerkit_model([np.ones((4, 3)), np.ones(3), np.ones((3, 2)), np.ones(2)])
    opt = optim.SGD(schedule, weight_decay=0.1)
    for _ in range(3):
        opt.apply_gradients([(np.zeros(p.shape), p) for p in model.weights])
    expected = (1 - 0.1 * 0.5) * (1 - 0.1 * 0.25) * (1 - 0.1 * 0.125)
    np.testing.assert_allclose(model.weights[0].value, expected, rtol=1e-14)


@pytest.mark.parametrize(
    "make",
    [
        lambda: AdamW(0.01, weight_decay=0.3, amsgrad=True),
        lambda: Lion(0.01, weight_decay=0.3),
        lambda: optim.RMSprop(0.01, weight_decay=0.3, momentum=0.5),
    ],
)
def test_fused_and_separate_updates_agree_with_exclusions(make, float64, fresh_session):
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=s) for s in [(4, 3), (3,), (3, 2), (2,)]]
    model = _layerkit_model(weights)
    loose = [Dense(3, name="d1"), Dense(2, name="d2")]
    loose[0].build((None, 4))
    loose[1].build((None, 3))
    loose[0].set_weights(weights[:2])
    loose[1].set_weights(weights[2:])
    loose_params = [p for layer in loose for p in layer.weights]
    fused, separate = make(), make()
    for opt in (fused, separate):
        opt.exclude_from_weight_decay(var_names=["bias"])
    for _ in range(4):
        grads = [rng.normal(size=p.shape) for p in model.weights]
        fused.apply_gradients(zip([g.copy() for g in grads], model.weights))
        separate.apply_gradients(zip([g.copy() for g in grads], loose_params))
    assert len(fused._plan(model.weights)) == 1
    for p, q in zip(model.weights, loose_params, strict=True):
        np.testing.assert_allclose(p.value, q.value, rtol=1e-12, atol=1e-15)


# --- weight_decay=None costs nothing ---------------------------------------------------


def _adam_before_weight_decay(weights, grads, lr, b1=0.9, b2=0.999, eps=1e-7):
    """layerkit's Adam update as it was before weight decay and AMSGrad, on plain arrays."""
    weights = [w.copy() for w in weights]
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    history = []
    for t, step in enumerate(grads, start=1):
        root = math.sqrt(1.0 - b2)
        alpha = lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t) * (1.0 - b1) / root
        for w, g, mi, vi in zip(weights, [g.copy() for g in step], m, v, strict=True):
            mi *= b1
            mi += g
            np.multiply(g, g, out=g)
            vi *= b2
            vi += g
            np.sqrt(vi, out=g)
            g += eps / root
            g *= 1.0 / alpha
            np.divide(mi, g, out=g)
            w -= g
        history.append([w.copy() for w in weights])
    return history


def test_no_weight_decay_is_bit_identical_to_before_and_never_decays(monkeypatch, fresh_session):
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=s).astype(np.float32) for s in [(4, 3), (3,), (3, 2), (2,)]]
    grads = _gradients([w.shape for w in weights], "float32")

    def refuse(*args):
        raise AssertionError("weight decay ran without weight_decay")

    monkeypatch.setattr(optim.Optimizer, "_apply_weight_decay", refuse)
    _, opt, history = _layerkit_run(lambda: optim.Adam(0.01), weights, grads)
    assert opt.weight_decay is None
    expected = _adam_before_weight_decay(weights, grads, 0.01)
    for ours, before in zip(history, expected, strict=True):
        for a, b in zip(ours, before, strict=True):
            np.testing.assert_array_equal(a, b)
    monkeypatch.undo()
    # weight_decay=0 decays by a factor of exactly 1: the same bits again
    _, _, zero = _layerkit_run(lambda: optim.Adam(0.01, weight_decay=0.0), weights, grads)
    for ours, before in zip(zero, expected, strict=True):
        for a, b in zip(ours, before, strict=True):
            np.testing.assert_array_equal(a, b)


def test_amsgrad_and_decay_really_change_the_result(fresh_session):
    rng = np.random.default_rng(4)
    weights = [rng.normal(size=s).astype(np.float32) for s in [(4, 3), (3,), (3, 2), (2,)]]
    grads = _gradients([w.shape for w in weights], "float32")
    # gradients that shrink make v fall below its maximum, where AMSGrad differs
    grads = [[g / (t + 1) ** 2 for g in step] for t, step in enumerate(grads)]
    runs = {
        name: _layerkit_run(make, weights, grads)[2][-1]
        for name, make in {
            "adam": lambda: optim.Adam(0.01),
            "amsgrad": lambda: optim.Adam(0.01, amsgrad=True),
            "adamw": lambda: AdamW(0.01),
        }.items()
    }
    assert not np.allclose(runs["adam"][0], runs["amsgrad"][0], rtol=1e-6, atol=0)
    assert not np.allclose(runs["adam"][0], runs["adamw"][0], rtol=1e-6, atol=0)


# --- state, config, options ------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.Adam(0.01, amsgrad=True),
        lambda: AdamW(0.01, weight_decay=0.1),
        lambda: AdamW(0.01, amsgrad=True),
        lambda: Lion(0.01, weight_decay=0.1),
        lambda: optim.SGD(0.1, momentum=0.9, weight_decay=0.01),
    ],
)
def test_state_dict_continuation_is_bit_exact(make, fresh_session):
    rng = np.random.default_rng(6)
    weights = [rng.normal(size=s).astype(np.float32) for s in [(4, 3), (3,), (3, 2), (2,)]]
    grads = _gradients([w.shape for w in weights], "float32", steps=6)
    reference, reference_opt, _ = _layerkit_run(make, weights, grads[:3])
    state = reference_opt.state_dict()
    assert set(state["slots"]["d1/kernel"]) == set(reference_opt.slot_names)

    lk.utils.clear_session()
    restored = _layerkit_model(reference.get_weights())
    restored_opt = make()
    restored_opt.load_state_dict(state)
    for step in grads[3:]:
        for model, opt in ((reference, reference_opt), (restored, restored_opt)):
            opt.apply_gradients([(g.copy(), p) for g, p in zip(step, model.weights, strict=True)])
    for a, b in zip(restored.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    again, before = restored_opt.state_dict(), reference_opt.state_dict()
    assert again["iterations"] == before["iterations"] == 6
    for name, slots in before["slots"].items():
        for slot, value in slots.items():
            np.testing.assert_array_equal(again["slots"][name][slot], value)


def test_amsgrad_slots_report_keras_definitions_and_store_the_scaled_form(float64, fresh_session):
    model = _layerkit_model([np.zeros((4, 3)), np.zeros(3), np.zeros((3, 2)), np.zeros(2)])
    opt = optim.Adam(0.01, beta_2=0.9, amsgrad=True)
    g1, g2 = 2.0, 0.5
    for g in (g1, g2):
        opt.apply_gradients([(np.full(p.shape, g), p) for p in model.weights])
    v1 = 0.1 * g1**2
    v2 = 0.9 * v1 + 0.1 * g2**2
    slots = opt.slots("d1/bias")
    np.testing.assert_allclose(slots["velocity"], v2, rtol=1e-14)
    np.testing.assert_allclose(slots["velocity_hat"], max(v1, v2), rtol=1e-14)
    stored = opt.state_dict()["slots"]["d1/bias"]
    np.testing.assert_allclose(stored["velocity_hat"], max(v1, v2) / 0.1, rtol=1e-14)
    # Keras-form state (as slots() reports it) loads back to the same stored form
    other = optim.Adam(0.01, beta_2=0.9, amsgrad=True)
    keras_form = {
        name: opt.slots(name) for name in ("d1/kernel", "d1/bias", "d2/kernel", "d2/bias")
    }
    other.load_state_dict({"iterations": 2, "form": "keras", "slots": keras_form})
    other.build(model.weights)
    np.testing.assert_allclose(other.slots("d1/bias")["velocity_hat"], max(v1, v2), rtol=1e-14)


def test_adam_state_without_velocity_hat_does_not_load_into_amsgrad(fresh_session):
    model = _layerkit_model([np.zeros((4, 3)), np.zeros(3), np.zeros((3, 2)), np.zeros(2)])
    plain = optim.Adam(0.01)
    plain.apply_gradients([(np.ones(p.shape), p) for p in model.weights])
    with pytest.raises(ValueError, match=r"velocity_hat"):
        optim.Adam(0.01, amsgrad=True).load_state_dict(plain.state_dict())


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (optim.Adam, {"amsgrad": True, "weight_decay": 0.02, "clipnorm": 1.0}),
        (AdamW, {}),
        (AdamW, {"weight_decay": 0.1, "amsgrad": True, "beta_1": 0.8, "epsilon": 1e-6}),
        (Lion, {}),
        (Lion, {"beta_1": 0.5, "beta_2": 0.9, "weight_decay": 0.3, "global_clipnorm": 2.0}),
        (optim.SGD, {"weight_decay": 0.01, "momentum": 0.9}),
        (optim.RMSprop, {"weight_decay": 0.01}),
    ],
)
def test_config_round_trip(cls, kwargs):
    opt = cls(learning_rate=0.003, **kwargs)
    config = opt.get_config()
    for key, value in kwargs.items():
        assert config[key] == value
    again = cls.from_config(config)
    assert type(again) is cls
    assert again.get_config() == config
    assert again.slot_names == opt.slot_names


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda: optim.Adam(), lambda k: k.optimizers.Adam()),
        (lambda: AdamW(), lambda k: k.optimizers.AdamW()),
        (lambda: Lion(), lambda k: k.optimizers.Lion()),
        (lambda: optim.SGD(), lambda k: k.optimizers.SGD()),
    ],
)
def test_defaults_are_keras_defaults(ours, theirs, keras):
    config, keras_config = ours().get_config(), theirs(keras).get_config()
    shared = set(config) & set(keras_config) - {"name"}
    assert {"learning_rate", "weight_decay"} <= shared
    for key in sorted(shared):
        if keras_config[key] is None or isinstance(keras_config[key], bool):
            assert config[key] is keras_config[key], key
        else:  # Keras's learning rate is a float32 variable
            assert config[key] == pytest.approx(keras_config[key], rel=1e-7), key


def test_defaults():
    adamw = AdamW()
    assert (adamw.learning_rate, adamw.weight_decay, adamw.beta_1, adamw.beta_2) == (
        0.001,
        0.004,
        0.9,
        0.999,
    )
    assert (adamw.epsilon, adamw.amsgrad) == (1e-7, False)
    lion = Lion()
    assert (lion.learning_rate, lion.beta_1, lion.beta_2, lion.weight_decay) == (
        0.001,
        0.9,
        0.99,
        None,
    )
    for opt in (optim.SGD(), optim.RMSprop(), optim.Adagrad(), optim.Adadelta(), optim.Adam()):
        assert opt.weight_decay is None
        assert opt.get_config()["weight_decay"] is None
    assert optim.Adam().amsgrad is False


@pytest.mark.parametrize(
    ("make", "error", "pattern"),
    [
        (
            lambda: optim.Adam(weight_decay=-0.1),
            ValueError,
            r"weight_decay >= 0.*weight_decay=-0.1",
        ),
        (lambda: optim.SGD(weight_decay=float("nan")), ValueError, r"weight_decay=nan"),
        (lambda: optim.RMSprop(weight_decay="0.1"), TypeError, r"weight_decay='0.1'"),
        (lambda: optim.Adagrad(weight_decay=True), TypeError, r"weight_decay=True"),
        (lambda: AdamW(weight_decay=None), ValueError, r"weight_decay=None"),
        (lambda: AdamW(weight_decay=-1), ValueError, r"weight_decay=-1"),
        (lambda: AdamW(amsgrad="yes"), TypeError, r"amsgrad='yes'"),
        (lambda: optim.Adam(amsgrad=1), TypeError, r"amsgrad=1"),
        (lambda: Lion(beta_1=0.0), ValueError, r"beta_1 in \(0, 1\].*beta_1=0.0"),
        (lambda: Lion(beta_1=1.5), ValueError, r"beta_1=1.5"),
        (lambda: Lion(beta_2=-0.1), ValueError, r"beta_2=-0.1"),
        (lambda: Lion(beta_1="0.9"), TypeError, r"beta_1='0.9'"),
        (lambda: Lion(learning_rate=-1.0), ValueError, r"learning_rate=-1.0"),
    ],
)
def test_bad_options_are_refused(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_bad_exclusions_are_refused():
    opt = AdamW()
    with pytest.raises(TypeError, match=r"var_names='bias'"):
        opt.exclude_from_weight_decay(var_names="bias")
    with pytest.raises(TypeError, match=r"var_names"):
        opt.exclude_from_weight_decay(var_names=[3])
    with pytest.raises(TypeError, match=r"var_list"):
        opt.exclude_from_weight_decay(var_list=["d1/kernel"])
