"""Keras 3's base options on every optimizer, against real Keras 3 (PyTorch backend):
``use_ema`` / ``ema_momentum`` / ``ema_overwrite_frequency``, ``gradient_accumulation_steps``,
``loss_scale_factor``; tf.keras 2's ``decay`` (applied, with a warning) and ``lr=`` (refused).

Step-by-step comparisons feed both optimizers the same float32 gradients and compare the
weights and the optimizer variables (averages, accumulators, iterations) after every
call; a ``fit`` comparison trains the same Dense model in both with the same batches.
Exact resume from ``state_dict`` mid-accumulation, configs and bad options close it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import layerkit as lk
from layerkit import optim
from layerkit.layers import Dense
from layerkit.optim.lamb import Lamb

# Keras's convert_to_numpy on the PyTorch backend, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

STEPS = 7
TOL = {"rtol": 2e-6, "atol": 1e-6}  # float32 (as test_adamw_lion.py); measured figures printed


def _gradients(shapes, steps=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(steps)]


def _models(keras):
    keras_model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)]
    )
    model = lk.Sequential([Dense(3, input_dim=4, name="d1"), Dense(2, name="d2")])
    model.set_weights([keras.ops.convert_to_numpy(w) for w in keras_model.weights])
    return keras_model, model


def _numpy(keras, variable):
    return keras.ops.convert_to_numpy(variable)


# (id, Keras optimizer, layerkit optimizer): the same options on both sides
CASES = [
    (
        "adam-ema",
        lambda k: k.optimizers.Adam(2**-7, use_ema=True),
        lambda: optim.Adam(2**-7, use_ema=True),
    ),
    (
        "sgd-ema-momentum-overwrite",
        lambda k: k.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=3),
        lambda: optim.SGD(0.1, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=3),
    ),
    (
        "adam-accumulate-3",
        lambda k: k.optimizers.Adam(2**-7, gradient_accumulation_steps=3),
        lambda: optim.Adam(2**-7, gradient_accumulation_steps=3),
    ),
    (
        "rmsprop-accumulate-clip-decay",
        lambda k: k.optimizers.RMSprop(
            0.01, gradient_accumulation_steps=2, clipnorm=0.5, weight_decay=0.1
        ),
        lambda: optim.RMSprop(0.01, gradient_accumulation_steps=2, clipnorm=0.5, weight_decay=0.1),
    ),
    (
        "lamb-accumulate-ema-schedule",
        lambda k: k.optimizers.Lamb(
            k.optimizers.schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5),
            gradient_accumulation_steps=2,
            use_ema=True,
            ema_momentum=0.9,
            ema_overwrite_frequency=2,
        ),
        lambda: Lamb(
            optim.schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5),
            gradient_accumulation_steps=2,
            use_ema=True,
            ema_momentum=0.9,
            ema_overwrite_frequency=2,
        ),
    ),
    (
        "adam-loss-scale",
        lambda k: k.optimizers.Adam(2**-7, loss_scale_factor=128.0),
        lambda: optim.Adam(2**-7, loss_scale_factor=128.0),
    ),
    (
        "nadam-loss-scale-accumulate",
        lambda k: k.optimizers.Nadam(2**-7, loss_scale_factor=3.0, gradient_accumulation_steps=2),
        lambda: optim.Nadam(2**-7, loss_scale_factor=3.0, gradient_accumulation_steps=2),
    ),
]


@pytest.mark.parametrize(("case", "make_keras", "make"), CASES, ids=[c[0] for c in CASES])
def test_matches_keras_step_by_step(case, make_keras, make, keras, fresh_session):
    keras_model, model = _models(keras)
    keras_opt, opt = make_keras(keras), make()
    params, variables = model.weights, keras_model.trainable_variables
    worst = 0.0
    for call, grads in enumerate(_gradients([p.shape for p in params]), start=1):
        keras_opt.apply_gradients(
            zip([keras.ops.convert_to_tensor(g) for g in grads], variables, strict=True)
        )
        opt.apply_gradients([(g.copy(), p) for g, p in zip(grads, params, strict=True)])
        assert opt.iterations == int(_numpy(keras, keras_opt.iterations)), call
        assert opt.learning_rate == pytest.approx(float(_numpy(keras, keras_opt.learning_rate)))
        for p, w in zip(params, variables, strict=True):
            theirs = _numpy(keras, w)
            np.testing.assert_allclose(p.value, theirs, err_msg=f"{case} {p.name} {call}", **TOL)
            worst = max(worst, float(np.max(np.abs(p.value - theirs))))
        if opt.use_ema:
            for p, average in zip(params, keras_opt._model_variables_moving_average, strict=True):
                np.testing.assert_allclose(
                    opt.slots(p.name)["average"], _numpy(keras, average), **TOL
                )
        if opt.gradient_accumulation_steps:
            for p, acc in zip(params, keras_opt._accumulated_gradients, strict=True):
                np.testing.assert_allclose(
                    opt.slots(p.name)["gradient_accumulator"], _numpy(keras, acc), **TOL
                )
    keras_opt.finalize_variable_values(variables)
    opt.finalize_variable_values(params)
    for p, w in zip(params, variables, strict=True):
        np.testing.assert_allclose(p.value, _numpy(keras, w), **TOL)
    print(f"{case}: max |diff| {worst:.3g}")


def test_accumulation_updates_every_nth_call_with_the_mean(fresh_session):
    _, model = _models_lk()
    plain, accumulating = optim.SGD(0.5), optim.SGD(0.5, gradient_accumulation_steps=3)
    other = lk.Sequential([Dense(3, input_dim=4, name="d1"), Dense(2, name="d2")])
    other.set_weights(model.get_weights())
    grads = _gradients([p.shape for p in model.weights], steps=3, seed=4)
    start = model.get_weights()
    for call, step in enumerate(grads, start=1):
        accumulating.apply_gradients([(g.copy(), p) for g, p in zip(step, model.weights)])
        if call < 3:  # nothing moves until the third call
            assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), start))
            assert accumulating.iterations == 0
    mean = [(a + b + c) / 3 for a, b, c in zip(*grads, strict=True)]
    plain.apply_gradients([(g, p) for g, p in zip(mean, other.weights)])
    for a, b in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert accumulating.iterations == 1
    assert accumulating.state_dict()["iterations"] == 3  # Keras's _iterations: the calls
    for name in ("d1/kernel", "d2/bias"):
        assert not accumulating.slots(name)["gradient_accumulator"].any()  # reset


def _models_lk():
    model = lk.Sequential([Dense(3, input_dim=4, name="d1"), Dense(2, name="d2")])
    rng = np.random.default_rng(9)
    model.set_weights([rng.normal(size=p.shape).astype(np.float32) for p in model.weights])
    return None, model


@pytest.mark.parametrize(
    "options",
    [
        {"use_ema": True, "ema_momentum": 0.8},
        {"gradient_accumulation_steps": 2},
        {"use_ema": True, "ema_overwrite_frequency": 2, "gradient_accumulation_steps": 3},
    ],
    ids=["ema", "accumulation", "both"],
)
def test_fit_matches_keras_fit(options, keras, fresh_session):
    """The same model, data and batches (``shuffle=False``) through Keras's ``fit`` and
    layerkit's; Keras ends ``fit`` with ``finalize_variable_values`` (the average copied
    into the weights with ``use_ema``), done here by hand after layerkit's ``fit``."""
    keras_model, model = _models(keras)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(24, 4)).astype(np.float32)
    y = rng.normal(size=(24, 2)).astype(np.float32)
    keras_model.compile(optimizer=keras.optimizers.Adam(2**-5, **options), loss="mse")
    model.compile(optimizer=optim.Adam(2**-5, **options), loss="mse")
    theirs = keras_model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    ours = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    model.optimizer.finalize_variable_values(model.weights)
    np.testing.assert_allclose(ours.history["loss"], theirs.history["loss"], rtol=1e-5)
    worst = 0.0
    for a, b in zip(model.get_weights(), keras_model.get_weights(), strict=True):
        # 12 Adam steps of 2^-5 on gradients from two backward passes (float32 sums in a
        # different order): 1e-4 of a step
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=3e-6)
        worst = max(worst, float(np.max(np.abs(a - b))))
    assert model.optimizer.iterations == int(_numpy(keras, keras_model.optimizer.iterations))
    print(f"fit {options}: max |diff| {worst:.3g}")


def test_loss_scale_factor_divides_the_gradients_and_scales_the_loss(fresh_session):
    _, model = _models_lk()
    _, other = _models_lk()
    scaled, plain = optim.Adam(2**-7, loss_scale_factor=1024.0), optim.Adam(2**-7)
    assert scaled.scale_loss(0.25) == 256.0
    assert plain.scale_loss(0.25) == 0.25
    for step in _gradients([p.shape for p in model.weights], steps=3):
        # the gradients of the scaled loss are 1024 times the gradients (exact in binary)
        scaled.apply_gradients([(g * 1024.0, p) for g, p in zip(step, model.weights)])
        plain.apply_gradients([(g.copy(), p) for g, p in zip(step, other.weights)])
    for a, b in zip(model.get_weights(), other.get_weights(), strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.Adam(2**-7, use_ema=True, ema_overwrite_frequency=4),
        lambda: optim.RMSprop(0.01, gradient_accumulation_steps=3, use_ema=True),
        lambda: optim.Nadam(2**-7, gradient_accumulation_steps=2, decay=0.1),
    ],
    ids=["ema", "accumulation-ema", "accumulation-decay"],
)
@pytest.mark.filterwarnings("ignore:`decay=")
def test_state_dict_resume_mid_accumulation_is_bit_exact(make, fresh_session):
    _, reference = _models_lk()
    grads = _gradients([p.shape for p in reference.weights], steps=9, seed=2)
    opt = make()
    for step in grads[:4]:  # 4 calls: in the middle of an accumulation of 3
        opt.apply_gradients([(g.copy(), p) for g, p in zip(step, reference.weights)])
    state = opt.state_dict()
    assert set(state["slots"]["d1/kernel"]) == set(opt.state_names)
    lk.utils.clear_session()
    resumed_model = lk.Sequential([Dense(3, input_dim=4, name="d1"), Dense(2, name="d2")])
    resumed_model.set_weights(reference.get_weights())
    resumed = make()
    resumed.load_state_dict(state)
    for step in grads[4:]:
        for model, o in ((reference, opt), (resumed_model, resumed)):
            o.apply_gradients([(g.copy(), p) for g, p in zip(step, model.weights)])
    for a, b in zip(resumed_model.get_weights(), reference.get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert resumed.state_dict()["iterations"] == opt.state_dict()["iterations"] == 9
    for name in ("d1/kernel", "d2/bias"):
        for slot, value in opt.slots(name).items():
            assert np.array_equal(resumed.slots(name)[slot], value)


def test_ema_state_does_not_load_into_an_optimizer_without_it(fresh_session):
    _, model = _models_lk()
    ema = optim.Adam(2**-7, use_ema=True)
    ema.apply_gradients([(np.ones(p.shape, np.float32), p) for p in model.weights])
    plain = optim.Adam(2**-7)
    with pytest.raises(ValueError, match=r"average"):
        plain.load_state_dict(ema.state_dict())
    assert plain.iterations == 0


def test_save_and_load_model_keeps_ema_and_accumulation(tmp_path, fresh_session):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    y = rng.normal(size=(20, 2)).astype(np.float32)
    model = lk.Sequential([Dense(3, input_dim=4, name="h"), Dense(2, name="o")])
    options = {"use_ema": True, "ema_overwrite_frequency": 2, "gradient_accumulation_steps": 2}
    model.compile(optimizer=Lamb(0.01, **options), loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # 3 calls: mid-way
    loaded = lk.load_model(model.save(tmp_path / "m.h5") or tmp_path / "m.h5")
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.state_dict()["iterations"] == 3
    for model_ in (model, loaded):
        model_.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        assert np.array_equal(a, b)


# --- tf.keras 2's options -------------------------------------------------------------
def test_lr_is_refused_with_the_keras_3_spelling():
    with pytest.raises(TypeError, match=r"learning_rate=0\.1.*Received: lr=0\.1"):
        optim.Adam(lr=0.1)
    with pytest.raises(TypeError, match=r"`learning_rate=`, not `lr=`"):
        optim.SGD(lr=0.1)
    # a tf.keras 2 config naming lr: refused by get() with the same advice
    with pytest.raises(ValueError, match=r"`learning_rate=`, not `lr=`"):
        optim.get({"class_name": "SGD", "config": {"lr": 0.1}})


def test_unknown_option_is_refused():
    with pytest.raises(TypeError, match=r"not recognized.*'momentun'"):
        optim.SGD(momentun=0.9)


def test_decay_applies_as_tf_keras_2_with_a_warning(fresh_session):
    with pytest.warns(UserWarning, match=r"InverseTimeDecay"):
        opt = optim.SGD(0.5, decay=0.25)
    _, model = _models_lk()
    _, other = _models_lk()
    schedule = optim.schedules.InverseTimeDecay(0.5, decay_steps=1, decay_rate=0.25)
    reference = optim.SGD(schedule)
    for step in _gradients([p.shape for p in model.weights], steps=4):
        before = model.get_weights()
        rate = 0.5 / (1 + 0.25 * opt.iterations)
        opt.apply_gradients([(g.copy(), p) for g, p in zip(step, model.weights)])
        reference.apply_gradients([(g.copy(), p) for g, p in zip(step, other.weights)])
        for w0, w1, g in zip(before, model.get_weights(), step, strict=True):
            np.testing.assert_allclose(w1, w0 - rate * g, rtol=1e-6, atol=1e-7)
    for a, b in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert opt.learning_rate == 0.5  # the base rate: a callback setting it won't compound
    config = opt.get_config()
    assert config["decay"] == 0.25
    with pytest.warns(UserWarning, match=r"decay=0.25"):
        assert optim.SGD.from_config(config).decay == 0.25


def test_decay_zero_and_none_are_quietly_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for decay in (0.0, None):
            opt = optim.Adam(decay=decay)
            assert opt.decay is None
            assert "decay" not in opt.get_config()


# --- configs and bad options ------------------------------------------------------------
def test_base_config_keys_and_defaults_are_keras(keras):
    ours = optim.Adam(use_ema=True, ema_overwrite_frequency=5).get_config()
    theirs = keras.optimizers.Adam(use_ema=True, ema_overwrite_frequency=5).get_config()
    for key in (
        "use_ema",
        "ema_momentum",
        "ema_overwrite_frequency",
        "loss_scale_factor",
        "gradient_accumulation_steps",
    ):
        assert ours[key] == theirs[key], key
    assert set(ours) == set(theirs)
    options = {
        "use_ema": True,
        "ema_momentum": 0.9,
        "ema_overwrite_frequency": 3,
        "loss_scale_factor": 8.0,
        "gradient_accumulation_steps": 4,
    }
    for cls in optim.registered_optimizers().values():
        keras_keys = set(getattr(keras.optimizers, cls.__name__)().get_config())
        assert set(cls().get_config()) == keras_keys, cls.__name__
        config = cls(**options).get_config()
        assert {k: config[k] for k in options} == options, cls.__name__
        assert cls.from_config(config).get_config() == config


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"use_ema": "yes"}, TypeError, r"use_ema='yes'"),
        ({"use_ema": True, "ema_momentum": 1.5}, ValueError, r"ema_momentum=1.5"),
        ({"ema_momentum": -0.1}, ValueError, r"ema_momentum=-0.1"),
        ({"ema_overwrite_frequency": 0}, ValueError, r"ema_overwrite_frequency=0"),
        ({"ema_overwrite_frequency": 2.0}, TypeError, r"ema_overwrite_frequency=2.0"),
        ({"gradient_accumulation_steps": 1}, ValueError, r"gradient_accumulation_steps=1"),
        ({"gradient_accumulation_steps": 2.5}, TypeError, r"gradient_accumulation_steps=2.5"),
        ({"loss_scale_factor": 0.0}, ValueError, r"loss_scale_factor=0.0"),
        ({"loss_scale_factor": float("inf")}, ValueError, r"loss_scale_factor=inf"),
        ({"decay": -0.1}, ValueError, r"decay=-0.1"),
        ({"decay": "0.1"}, TypeError, r"decay='0.1'"),
    ],
)
def test_bad_base_options_are_refused(kwargs, error, pattern):
    for cls in (optim.SGD, optim.Adam, Lamb):
        with pytest.raises(error, match=pattern):
            cls(**kwargs)
