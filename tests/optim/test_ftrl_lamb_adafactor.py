"""Ftrl, Lamb and Adafactor against real Keras 3 (PyTorch backend, in-process).

The same Dense(3) -> Dense(2) model in both (its four weights fused into one run of the
arena in layerkit), the same float32 gradients for six steps: the weights after every
step and every optimizer variable must agree. Adafactor also runs on loose weights of 0,
1, 2 and 3 dimensions (its factored row and column moments), and all three in float64.
Then bit-exact resumes from ``state_dict`` and through ``model.save``, configs against
Keras's, bad options.
"""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk
from layerkit import optim
from layerkit.layers import Dense
from layerkit.optim.adafactor import Adafactor
from layerkit.optim.ftrl import Ftrl
from layerkit.optim.lamb import Lamb
from layerkit.parameter import Parameter

# Keras's convert_to_numpy on the PyTorch backend, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

STEPS = 6
RTOL, ATOL = 2e-6, 2e-7  # float32 weights of O(0.1-1), see the measured figures printed
# Ftrl's (n'^-p - n^-p) cancels: a last-bit difference in float32 ``pow`` (numpy's and
# PyTorch's differ in about 1 element in 4, both within an ulp) shows in ``linear`` at
# ~1e-5 of its size; the state is compared to 1e-5 of its largest element.
SLOT_SCALE_TOL = 1e-5
KERAS_SLOTS = {  # layerkit slot -> the Keras optimizer attribute holding it
    Ftrl: {"accumulator": "_accumulators", "linear": "_linears"},
    Lamb: {"momentum": "_momentums", "velocity": "_velocities"},
    Adafactor: {"row_velocity": "_r", "column_velocity": "_c", "velocity": "_v"},
}
CASES = [
    (Ftrl, {}),
    (Ftrl, {"learning_rate": 0.05}),
    (
        Ftrl,
        {
            "learning_rate": 0.1,
            "learning_rate_power": -0.7,
            "initial_accumulator_value": 0.5,
            "l1_regularization_strength": 0.01,
            "l2_regularization_strength": 0.02,
            "l2_shrinkage_regularization_strength": 0.03,
            "beta": 0.1,
        },
    ),
    (Ftrl, {"learning_rate": 0.1, "learning_rate_power": 0.0, "l1_regularization_strength": 0.3}),
    (Lamb, {}),
    (Lamb, {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.8, "epsilon": 1e-3}),
    (Lamb, {"learning_rate": 0.01, "weight_decay": 0.1}),
    (Adafactor, {}),
    (Adafactor, {"learning_rate": 0.5}),
    (
        Adafactor,
        {
            "learning_rate": 0.05,
            "beta_2_decay": -0.5,
            "epsilon_1": 1e-20,
            "epsilon_2": 1e-2,
            "clip_threshold": 0.5,
            "relative_step": False,
        },
    ),
]


def _gradients(shapes, steps=STEPS, seed=0):
    """Fixed float32 gradients, one list per step, over a few orders of magnitude."""
    rng = np.random.default_rng(seed)
    grads = [
        [(rng.normal(size=s) * 10.0 ** rng.integers(-2, 2)).astype(np.float32) for s in shapes]
        for _ in range(steps)
    ]
    grads[2][1][:] = 0.0  # a zero gradient: Lamb's trust ratio of 1
    return grads


def _models(keras):
    """The same Dense(3) -> Dense(2) model on 4 features in Keras and in layerkit."""
    keras_model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)]
    )
    model = lk.Sequential([Dense(3, input_dim=4, name="d1"), Dense(2, name="d2")])
    model.set_weights([keras.ops.convert_to_numpy(w) for w in keras_model.weights])
    return keras_model, model


def _compare(keras, keras_opt, opt, params, variables, grads, label):
    """Steps both optimizers through ``grads``; returns the largest weight difference."""
    worst = 0.0
    for step, step_grads in enumerate(grads, start=1):
        keras_opt.apply_gradients(
            zip([keras.ops.convert_to_tensor(g) for g in step_grads], variables, strict=True)
        )
        opt.apply_gradients([(g.copy(), p) for g, p in zip(step_grads, params, strict=True)])
        assert opt.iterations == int(keras.ops.convert_to_numpy(keras_opt.iterations)) == step
        for p, w in zip(params, variables, strict=True):
            expected = keras.ops.convert_to_numpy(w)
            np.testing.assert_allclose(
                p.value, expected, rtol=RTOL, atol=ATOL, err_msg=f"{label} {p.name} step {step}"
            )
            worst = max(worst, float(np.max(np.abs(p.value - expected), initial=0.0)))
        for slot, attribute in KERAS_SLOTS[type(opt)].items():
            for p, keras_slot in zip(params, getattr(keras_opt, attribute), strict=True):
                theirs = keras.ops.convert_to_numpy(keras_slot)
                np.testing.assert_allclose(
                    opt.slots(p.name)[slot],
                    theirs,
                    rtol=RTOL,
                    atol=SLOT_SCALE_TOL * float(np.max(np.abs(theirs), initial=0.0)) + 1e-30,
                    err_msg=f"{label} {p.name}/{slot} step {step}",
                )
    return worst


@pytest.mark.parametrize(
    ("cls", "options"), CASES, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(CASES)]
)
def test_matches_keras_step_by_step(cls, options, keras, fresh_session):
    keras_model, model = _models(keras)
    keras_opt = getattr(keras.optimizers, cls.__name__)(**options)
    opt = cls(**options)
    params = model.weights
    assert len(opt._plan(params)) == 1  # one fused run: per-parameter views inside it
    grads = _gradients([p.shape for p in params])
    worst = _compare(
        keras, keras_opt, opt, params, keras_model.trainable_variables, grads, cls.__name__
    )
    print(f"{cls.__name__} {options}: max |diff| {worst:.3g}")


@pytest.mark.parametrize("options", [{}, {"learning_rate": 0.3, "clip_threshold": 0.1}])
def test_adafactor_factors_the_last_two_axes_as_keras(options, keras, fresh_session):
    rng = np.random.default_rng(1)
    shapes = [(), (5,), (4, 3), (2, 3, 4)]
    initial = [rng.normal(size=s).astype(np.float32) for s in shapes]
    params = [Parameter(f"w{i}", w.copy()) for i, w in enumerate(initial)]
    variables = [keras.Variable(w.copy(), name=f"w{i}") for i, w in enumerate(initial)]
    opt, keras_opt = Adafactor(**options), keras.optimizers.Adafactor(**options)
    grads = _gradients(shapes, seed=3)
    worst = _compare(keras, keras_opt, opt, params, variables, grads, "adafactor")
    print(f"Adafactor shapes {shapes} {options}: max |diff| {worst:.3g}")
    state = opt.state_dict()["slots"]
    assert state["w3"]["row_velocity"].shape == (2, 3)
    assert state["w3"]["column_velocity"].shape == (2, 4)
    assert state["w1"]["row_velocity"].shape == state["w0"]["column_velocity"].shape == ()
    assert state["w2"]["velocity"].shape == (4, 3)


def _layer(name, weights):
    layer = Dense(2, name=name)
    layer.build((None, 3))
    layer.set_weights(weights)
    return layer


def _steps(opt, layer, grads):
    for gk, gb in grads:
        opt.apply_gradients([(gk.copy(), layer.kernel), (gb.copy(), layer.bias)])


MAKERS = [
    lambda: Ftrl(0.05, l1_regularization_strength=0.01, l2_shrinkage_regularization_strength=0.1),
    lambda: Lamb(0.01, weight_decay=0.01),
    lambda: Adafactor(0.1),
]


@pytest.mark.parametrize("make", MAKERS, ids=["ftrl", "lamb", "adafactor"])
def test_state_dict_resume_is_bit_exact(make, fresh_session):
    rng = np.random.default_rng(5)
    weights = [rng.normal(size=(3, 2)).astype(np.float32), np.zeros(2, np.float32)]
    grads = [
        (rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32))
        for _ in range(6)
    ]
    reference = _layer("dense", weights)
    opt = make()
    _steps(opt, reference, grads[:3])
    state = opt.state_dict()
    assert set(state["slots"]["dense/kernel"]) == set(opt.state_names)

    lk.utils.clear_session()
    copy = _layer("dense", reference.get_weights())
    resumed = make()
    resumed.load_state_dict(state)
    _steps(opt, reference, grads[3:])
    _steps(resumed, copy, grads[3:])
    for a, b in zip(copy.get_weights(), reference.get_weights(), strict=True):
        assert np.array_equal(a, b)
    for name in ("dense/kernel", "dense/bias"):
        for slot in opt.state_names:
            assert np.array_equal(resumed.slots(name)[slot], opt.slots(name)[slot])


def test_adafactor_refuses_factored_state_of_the_wrong_shape(fresh_session):
    layer = _layer("dense", [np.ones((3, 2), np.float32), np.zeros(2, np.float32)])
    opt = Adafactor()
    _steps(opt, layer, [(np.ones((3, 2), np.float32), np.ones(2, np.float32))])
    state = opt.state_dict()
    before = opt.state_dict()
    state["slots"]["dense/kernel"]["row_velocity"] = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match=r"dense/kernel.*row_velocity.*\(3,\).*\(2,\)"):
        opt.load_state_dict(state)
    for name, slots in before["slots"].items():  # nothing changed
        for slot, value in slots.items():
            assert np.array_equal(opt.state_dict()["slots"][name][slot], value)


@pytest.mark.parametrize("name", ["ftrl", "lamb", "adafactor"])
def test_save_and_load_model_resumes_bit_exact(name, tmp_path, fresh_session):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    y = rng.normal(size=(20, 2)).astype(np.float32)
    model = lk.Sequential([Dense(3, input_dim=4, name="h"), Dense(2, name="o")])
    model.compile(optimizer=name, loss="mse")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    path = tmp_path / "model.h5"
    model.save(path)
    loaded = lk.load_model(path)
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 6
    for model_ in (model, loaded):
        model_.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("cls", [Ftrl, Lamb, Adafactor])
def test_defaults_and_config_match_keras(cls, keras):
    ours = cls().get_config()
    theirs = getattr(keras.optimizers, cls.__name__)().get_config()
    assert set(ours) == set(theirs)
    for key in sorted(set(ours) - {"name"}):
        if theirs[key] is None or isinstance(theirs[key], bool):
            assert ours[key] is theirs[key], key
        else:  # Keras's learning rate is a float32 variable
            assert ours[key] == pytest.approx(theirs[key], rel=1e-7), key
    again = cls.from_config(ours)
    assert again.get_config() == ours
    assert type(optim.get(cls.__name__.lower())) is cls
    assert type(optim.get({"class_name": cls.__name__, "config": ours})) is cls


def test_keras_names_and_defaults():
    ftrl = Ftrl()
    assert (ftrl.learning_rate, ftrl.learning_rate_power, ftrl.initial_accumulator_value) == (
        0.001,
        -0.5,
        0.1,
    )
    assert ftrl.slot_names == ("accumulator", "linear")
    assert Lamb().slot_names == ("momentum", "velocity")
    assert (Adafactor().beta_2_decay, Adafactor().epsilon_1, Adafactor().epsilon_2) == (
        -0.8,
        1e-30,
        1e-3,
    )
    assert Adafactor().state_names == ("velocity", "row_velocity", "column_velocity")


@pytest.mark.parametrize(
    ("make", "error", "pattern"),
    [
        (lambda: Ftrl(learning_rate_power=0.5), ValueError, r"learning_rate_power=0.5"),
        (lambda: Ftrl(initial_accumulator_value=-1), ValueError, r"initial_accumulator_value=-1"),
        (
            lambda: Ftrl(l1_regularization_strength=-0.1),
            ValueError,
            r"l1_regularization_strength=-0.1",
        ),
        (
            lambda: Ftrl(l2_regularization_strength="0"),
            TypeError,
            r"l2_regularization_strength='0'",
        ),
        (
            lambda: Ftrl(l2_shrinkage_regularization_strength=-2),
            ValueError,
            r"l2_shrinkage_regularization_strength=-2",
        ),
        (lambda: Ftrl(beta=-1.0), ValueError, r"beta=-1.0"),
        (lambda: Lamb(beta_1=1.0), ValueError, r"beta_1=1.0"),
        (lambda: Lamb(epsilon=-1e-7), ValueError, r"epsilon=-1e-07"),
        (lambda: Adafactor(clip_threshold=0.0), ValueError, r"clip_threshold=0.0"),
        (lambda: Adafactor(beta_2_decay=0.5), ValueError, r"beta_2_decay=0.5"),
        (lambda: Adafactor(relative_step=1), TypeError, r"relative_step=1"),
        (lambda: Adafactor(epsilon_1=float("nan")), ValueError, r"epsilon_1=nan"),
    ],
)
def test_bad_options_are_refused(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


# Keras 3.15's PyTorch backend rounds to float32, even for float64 weights, the Python
# floats its generic optimizers pass to ``multiply``, ``add``, ``clip`` and ``power``
# (``1 - beta_1``, ``epsilon``, the L1 bound, the power), and it computes ``mean`` of a
# float64 array in float32. With constants exact in float32 Ftrl and Lamb agree to
# float64 rounding; Keras's defaults (0.1 = 1 - 0.9), weight decay's factor and
# Adafactor's means only to float32's.
F64_CASES = [
    (Ftrl, {"learning_rate": 2**-3, "l1_regularization_strength": 2**-7, "beta": 2**-3}, 1e-15),
    (Ftrl, {"learning_rate": 2**-3, "learning_rate_power": -0.75}, 1e-15),
    (Lamb, {"learning_rate": 2**-6, "beta_1": 0.5, "beta_2": 0.75, "epsilon": 2**-20}, 1e-15),
    (Lamb, {"learning_rate": 2**-6}, 1e-9),  # 1 - 0.9 and 1e-7 in float32
    (Lamb, {"learning_rate": 2**-6, "weight_decay": 0.5}, 1e-9),
    (Adafactor, {"learning_rate": 2**-2}, 1e-7),  # float32 means
]


@pytest.mark.parametrize(
    ("cls", "options", "tolerance"),
    F64_CASES,
    ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(F64_CASES)],
)
def test_matches_keras_in_float64(cls, options, tolerance, keras, fresh_session):
    """float64 weights on both sides (learning rates are powers of two: Keras keeps the
    rate in a float32 variable); see F64_CASES for where Keras rounds to float32."""
    keras_model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, dtype="float64"),
            keras.layers.Dense(2, dtype="float64"),
        ]
    )
    weights = [keras.ops.convert_to_numpy(w) for w in keras_model.weights]
    with lk.backend.floatx_scope("float64"):
        model = lk.Sequential([Dense(3, input_dim=4, name="d1"), Dense(2, name="d2")])
        model.set_weights(weights)
        opt = cls(**options)
    assert model.weights[0].dtype == np.float64
    keras_opt = getattr(keras.optimizers, cls.__name__)(**options)
    grads = [
        [g.astype(np.float64) for g in step] for step in _gradients([w.shape for w in weights])
    ]
    worst = 0.0
    for step_grads in grads:
        keras_opt.apply_gradients(
            zip(
                [keras.ops.convert_to_tensor(g) for g in step_grads],
                keras_model.trainable_variables,
                strict=True,
            )
        )
        opt.apply_gradients([(g.copy(), p) for g, p in zip(step_grads, model.weights, strict=True)])
        for p, w in zip(model.weights, keras_model.trainable_variables, strict=True):
            theirs = keras.ops.convert_to_numpy(w)
            worst = max(worst, float(np.max(np.abs(p.value - theirs))))
    assert worst <= tolerance, worst
    print(f"{cls.__name__} float64 {options}: max |diff| {worst:.3g}")
