"""The fused (numba) optimizer updates against the numpy fallback: the same bits, step by
step, for every rule and its variants, with the base options; the switch between paths
and its errors."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk
from layerkit import optim
from layerkit.optim import kernels
from layerkit.parameter import Parameter, pack

SHAPES = ((7, 5), (5,), (5, 3), (3,))  # two small Dense layers, packed as a model's arena
STEPS = 6

CONFIGS = {
    "sgd": lambda: optim.SGD(0.1),
    "sgd_momentum": lambda: optim.SGD(0.1, momentum=0.9),
    "sgd_nesterov": lambda: optim.SGD(0.1, momentum=0.9, nesterov=True),
    "rmsprop": lambda: optim.RMSprop(0.01),
    "rmsprop_momentum": lambda: optim.RMSprop(0.01, momentum=0.5),
    "rmsprop_centered": lambda: optim.RMSprop(0.01, momentum=0.5, centered=True),
    "adagrad": lambda: optim.Adagrad(0.1),
    "adadelta": lambda: optim.Adadelta(1.0),
    "adam": lambda: optim.Adam(0.01),
    "adam_amsgrad": lambda: optim.Adam(0.01, amsgrad=True),
    "adamw": lambda: optim.AdamW(0.01, weight_decay=0.1),
    "adamax": lambda: optim.Adamax(0.01),
    "nadam": lambda: optim.Nadam(0.01),
    "lion": lambda: optim.Lion(0.01),
    # the base options around the fused rule
    "adam_clipnorm": lambda: optim.Adam(0.01, clipnorm=0.5),
    "rmsprop_global_clipnorm_ema": lambda: optim.RMSprop(
        0.01, global_clipnorm=0.5, use_ema=True, ema_momentum=0.9
    ),
    "adam_ema_overwrite": lambda: optim.Adam(0.01, use_ema=True, ema_overwrite_frequency=2),
    "sgd_accumulation_decay": lambda: optim.SGD(
        0.1, momentum=0.9, gradient_accumulation_steps=2, weight_decay=0.01
    ),
    "adam_loss_scale_clipvalue": lambda: optim.Adam(0.01, loss_scale_factor=4.0, clipvalue=0.3),
}

needs_numba = pytest.mark.skipif(
    not kernels._numba_present,
    reason="numba is not installed: only the numpy path exists",
)


@pytest.fixture
def restore_kernels():
    previous = kernels._choice
    yield
    kernels._choice = previous


def _parameters(dtype, seed=0):
    rng = np.random.default_rng(seed)
    parameters = [
        Parameter(f"p{i}", rng.standard_normal(shape).astype(dtype))
        for i, shape in enumerate(SHAPES)
    ]
    pack(parameters, np.dtype(dtype))
    return tuple(parameters)


def _train(make, path, dtype=np.float32, grads=None):
    """``STEPS`` updates on fixed random gradients; returns the weights and the state."""
    kernels.set_kernels(path)
    optimizer = make()
    parameters = _parameters(dtype)
    rng = np.random.default_rng(1)
    for step in range(STEPS):
        for p in parameters:
            g = rng.standard_normal(p.shape).astype(dtype) if grads is None else grads[step]
            np.copyto(p.grad, g)
        optimizer.apply(parameters)
    state = optimizer.state_dict()["slots"]
    return [p.value.copy() for p in parameters], state


@needs_numba
@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_equals_numpy(name, dtype, restore_kernels):
    fused_weights, fused_state = _train(CONFIGS[name], "numba", dtype)
    plain_weights, plain_state = _train(CONFIGS[name], "numpy", dtype)
    # The same float operations in the same order: bit for bit, weights and slots.
    for fused, plain in zip(fused_weights, plain_weights, strict=True):
        assert fused.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(fused, plain)
    assert fused_state.keys() == plain_state.keys()
    for key, slots in fused_state.items():
        for slot, array in slots.items():
            np.testing.assert_array_equal(array, plain_state[key][slot], err_msg=slot)
    # ... and the update moved the weights (not two paths that both did nothing)
    initial = [p.value for p in _parameters(dtype)]
    assert max(np.abs(a - b).max() for a, b in zip(fused_weights, initial)) > 1e-4


@needs_numba
@pytest.mark.parametrize("name", ["adam", "adam_amsgrad", "adamax", "rmsprop", "lion"])
def test_nan_gradients_spread_alike(name, restore_kernels):
    # A NaN gradient element spreads into the same weights and slots on both paths.
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal(8).astype(np.float32) for _ in range(STEPS)]
    grads[2][3] = np.nan
    results = []
    for path in ("numba", "numpy"):
        kernels.set_kernels(path)
        p = Parameter("w", np.linspace(-1, 1, 8, dtype=np.float32))
        optimizer = CONFIGS[name]()
        for g in grads:
            np.copyto(p.grad, g)
            optimizer.apply((p,))
        results.append((p.value.copy(), optimizer.state_dict()["slots"]["w"]))
    (fused, fused_slots), (plain, plain_slots) = results
    assert np.isnan(plain).any()
    np.testing.assert_array_equal(fused, plain)  # NaNs in the same places, numbers equal
    for slot in plain_slots:
        np.testing.assert_array_equal(fused_slots[slot], plain_slots[slot])


@needs_numba
def test_fused_path_is_taken(restore_kernels):
    lk.backend.set_kernels("numba")
    assert lk.backend.kernels() == "numba"
    assert kernels.get("adam", np.dtype(np.float32)) is not None
    assert kernels.get("adam", np.dtype(np.float16)) is None  # numpy handles float16
    lk.backend.set_kernels("numpy")
    assert lk.backend.kernels() == "numpy"
    assert kernels.get("adam", np.dtype(np.float32)) is None


def test_float16_weights_take_the_numpy_path(restore_kernels):
    kernels.set_kernels("auto")
    p = Parameter("w", np.array([0.5, -0.25], dtype=np.float16))
    p.grad[...] = [1.0, -2.0]
    optim.SGD(0.5).apply((p,))
    np.testing.assert_array_equal(p.value, np.array([0.0, 0.75], dtype=np.float16))


def test_set_kernels_refuses_unknown_names(restore_kernels):
    with pytest.raises(ValueError, match=r"Received: value='fast'"):
        lk.backend.set_kernels("fast")
    before = lk.backend.kernels()
    with pytest.raises(ValueError):
        lk.backend.set_kernels("numexpr")
    assert lk.backend.kernels() == before


def test_set_kernels_numba_without_numba(monkeypatch, restore_kernels):
    monkeypatch.setattr(kernels, "_numba_present", False)
    with pytest.raises(ValueError, match="needs numba"):
        lk.backend.set_kernels("numba")
    kernels.set_kernels("auto")
    assert lk.backend.kernels() == "numpy"  # auto falls back when numba is missing
    assert kernels.get("sgd", np.dtype(np.float32)) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", "auto"), ("numpy", "numpy"), ("0", "numpy"), ("OFF", "numpy"), ("numba", "numba")],
)
def test_environment_variable(monkeypatch, value, expected):
    monkeypatch.setenv("LAYERKIT_KERNELS", value)
    assert kernels._initial_choice() == expected


def test_environment_variable_refuses_unknown(monkeypatch):
    monkeypatch.setenv("LAYERKIT_KERNELS", "turbo")
    with pytest.raises(ValueError, match=r"Received: LAYERKIT_KERNELS='turbo'"):
        kernels._initial_choice()


@needs_numba
def test_auto_leaves_small_updates_to_numpy_until_the_rule_is_compiled(restore_kernels):
    """Importing numba and loading a rule costs a fraction of a second once per process:
    in "auto" mode a small update does not pay it; a compiled rule serves every size."""
    kernels.set_kernels("auto")
    small, large = kernels._MIN_FUSED_SIZE - 1, kernels._MIN_FUSED_SIZE
    kernels._compiled.pop("lion", None)
    assert kernels.get("lion", np.dtype(np.float32), small) is None
    assert kernels.get("lion", np.dtype(np.float32), large) is not None
    assert kernels.get("lion", np.dtype(np.float32), small) is not None  # compiled now
    kernels.set_kernels("numba")  # asked for explicitly: every size
    kernels._compiled.pop("sgd", None)
    assert kernels.get("sgd", np.dtype(np.float32), 10) is not None
