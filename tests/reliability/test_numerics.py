"""Numerics at the extremes: every loss on logits of magnitude 1e4 and 1e30, the
activations on inputs up to the largest finite float, and a diverging run, stopped by
``TerminateOnNaN`` at the first NaN batch or, without it, warned about once.

"No numpy warning" is checked with warnings turned into errors and, for the
activations, under ``np.errstate(all="raise")`` as well.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import layerkit as lk

MAGNITUDES = {"float32": (1e4, 1e30), "float64": (1e4, 1e30, 1e300)}


def _predictions(magnitude: float, dtype: str) -> np.ndarray:
    m = magnitude
    rows = [[m, -m, m / 2], [-m, -m / 2, m], [m, m, m], [-m, -m, -m]]
    return np.array(rows, dtype=dtype)


def _targets(kind: str, dtype: str) -> np.ndarray:
    labels = np.array([0, 2, 1, 0])
    if kind == "sparse":
        return labels
    if kind == "onehot":
        return np.eye(3, dtype=dtype)[labels]
    if kind == "binary":
        return np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=dtype)
    return np.linspace(-1, 1, 12, dtype=dtype).reshape(4, 3)  # regression


LOSSES = {
    "mean_squared_error": (lk.losses.MeanSquaredError, None, "regression"),
    "mean_absolute_error": (lk.losses.MeanAbsoluteError, None, "regression"),
    "binary_crossentropy(from_logits=True)": (lk.losses.BinaryCrossentropy, True, "binary"),
    "binary_crossentropy(from_logits=False)": (lk.losses.BinaryCrossentropy, False, "binary"),
    "categorical_crossentropy(from_logits=True)": (
        lk.losses.CategoricalCrossentropy,
        True,
        "onehot",
    ),
    "categorical_crossentropy(from_logits=False)": (
        lk.losses.CategoricalCrossentropy,
        False,
        "onehot",
    ),
    "sparse_categorical_crossentropy(from_logits=True)": (
        lk.losses.SparseCategoricalCrossentropy,
        True,
        "sparse",
    ),
    "sparse_categorical_crossentropy(from_logits=False)": (
        lk.losses.SparseCategoricalCrossentropy,
        False,
        "sparse",
    ),
}


def _make_loss(name: str):
    cls, from_logits, kind = LOSSES[name]
    return (cls() if from_logits is None else cls(from_logits=from_logits)), kind


def _makes_sense(name: str, magnitude: float, dtype: str) -> bool:
    # The squared error of 1e30 is 1e60, which no float32 holds: the loss value is
    # meant to overflow there. Everything else has a finite, representable answer.
    too_big = math.log10(magnitude) * 2 > math.log10(np.finfo(dtype).max)
    return not (name == "mean_squared_error" and too_big)


def _strict():
    """Warnings are errors; overflow, invalid operations and division by zero raise.
    (Underflow to 0 of exp(-1e4) is the right answer, so it is allowed here.)"""
    return np.errstate(over="raise", invalid="raise", divide="raise", under="ignore")


def _reference(name: str, y: np.ndarray, z: np.ndarray) -> float | None:
    """The mean loss of logits, computed row by row in float64 without cancellation:
    sum_k y_k (log sum_j e^(z_j - max) + (max - z_k)), and softplus for the binary case."""
    if "from_logits=True" not in name:
        return None
    z = z.astype(np.float64)
    with np.errstate(under="ignore"):
        if name.startswith("binary"):
            return float(np.mean(np.logaddexp(0.0, z) - y * z))
        top = z.max(axis=-1, keepdims=True)
        spread = np.log(np.exp(z - top).sum(axis=-1, keepdims=True))
        onehot = np.eye(z.shape[-1])[y] if y.ndim == 1 else y.astype(np.float64)
        return float(np.mean((onehot * (spread + (top - z))).sum(axis=-1)))


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_losses_of_extreme_logits_are_finite(rel, name, dtype):
    problems = []
    for magnitude in MAGNITUDES[dtype]:
        if not _makes_sense(name, magnitude, dtype):
            continue
        loss, kind = _make_loss(name)
        y = _targets(kind, dtype)
        z = _predictions(magnitude, dtype)
        try:
            with warnings.catch_warnings(), _strict():
                warnings.simplefilter("error")
                value, grad = loss.value_and_grad(
                    loss.check_targets(y, (None, 3)) if kind == "sparse" else y, z.copy()
                )
                called = loss(y, z.copy())
        except (FloatingPointError, Warning) as error:
            problems.append(f"|z|={magnitude:g}: {type(error).__name__}: {error}")
            rel.record("numerics: losses", "failed")
            continue
        rel.record("numerics: losses", "checked")
        if not math.isfinite(value) or not math.isfinite(called):
            problems.append(f"|z|={magnitude:g}: loss {value} / {called}")
        if grad.shape != z.shape or not np.isfinite(grad).all():
            problems.append(f"|z|={magnitude:g}: gradient not finite: {grad}")
        # A sanity check, not a precision test: at |z| = 1e30 the float sums behind a
        # mean loss of order 1 cancel, so only errors on the scale of |z| are caught.
        reference = _reference(name, y, z)
        tolerance = 1e-3 + 1e-6 * magnitude
        if reference is not None and not math.isclose(
            value, reference, rel_tol=1e-5, abs_tol=tolerance
        ):
            problems.append(f"|z|={magnitude:g}: loss {value}, log-sum-exp says {reference}")
    assert not problems, f"{name} in {dtype}:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "name",
    [
        "categorical_crossentropy(from_logits=False)",
        "sparse_categorical_crossentropy(from_logits=False)",
    ],
)
def test_probability_losses_of_logits_summing_to_zero_are_finite(rel, name):
    """Logits given by mistake to the probability form: a row [1e4, -1e4, 0] sums to 0,
    and normalising it must not divide by zero."""
    loss, kind = _make_loss(name)
    z = np.array([[1e4, -1e4, 0.0], [1.0, 2.0, 3.0]], np.float32)
    y = _targets(kind, "float32")[:2]
    with warnings.catch_warnings(), _strict():
        warnings.simplefilter("error")
        value, grad = loss.value_and_grad(loss.check_targets(y, (None, 3)), z.copy())
    rel.record("numerics: losses", "checked")
    assert math.isfinite(value)
    assert np.isfinite(grad).all()


# --------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------

ACTIVATIONS = ["sigmoid", "softmax", "elu", "tanh", "relu", "leaky_relu"]


def _check_activation(name: str, x: np.ndarray, y: np.ndarray) -> list[str]:
    problems = []
    if not np.isfinite(y).all():
        problems.append(f"non-finite output {y}")
    big = x > 1
    small = x < -1
    if name == "sigmoid":
        if not (np.all(y[big] == 1) and np.all(y[small] == 0)):
            problems.append(f"sigmoid limits wrong: {y}")
    elif name == "softmax":
        if not np.allclose(y.sum(axis=-1), 1):
            problems.append(f"softmax rows do not sum to 1: {y}")
    elif name == "elu":
        if not np.all(y[small] == -1):
            problems.append(f"elu(-inf) should be -1: {y}")
    elif name == "tanh" and not (np.all(y[big] == 1) and np.all(y[small] == -1)):
        problems.append(f"tanh limits wrong: {y}")
    return problems


def _extreme_inputs(magnitude: float, dtype: str) -> np.ndarray:
    m = magnitude
    return np.array([[m, -m, 0, 1], [-m, -m, -m, -m], [m, m, m, m], [m, -m, -m, m]], dtype)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_of_extreme_inputs_raise_no_numpy_warning(rel, name):
    """±1e4 and ±1e38 in float32 and float64, under np.errstate(all="raise") with
    warnings as errors: forward and backward."""
    function = lk.activations.get(name)
    problems = []
    for dtype in ("float32", "float64"):
        for magnitude in (1e4, 1e38):
            x = _extreme_inputs(magnitude, dtype)
            try:
                with warnings.catch_warnings(), np.errstate(all="raise"):
                    warnings.simplefilter("error")
                    y = function(x)
                    dx = function.backward_(np.ones_like(y), y.copy())
            except (FloatingPointError, Warning) as error:
                problems.append(f"{dtype} ±{magnitude:g}: {type(error).__name__}: {error}")
                rel.record("numerics: activations", "failed")
                continue
            rel.record("numerics: activations", "checked")
            problems += [f"{dtype} ±{magnitude:g}: {p}" for p in _check_activation(name, x, y)]
            if not np.isfinite(dx).all():
                problems.append(f"{dtype} ±{magnitude:g}: backward not finite: {dx}")
    assert not problems, f"{name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_of_the_largest_floats_do_not_overflow(rel, name):
    """The module promises that no input, however large, overflows: ±finfo.max, with
    numpy's default error handling and warnings as errors."""
    function = lk.activations.get(name)
    problems = []
    for dtype in ("float32", "float64"):
        x = _extreme_inputs(float(np.finfo(dtype).max), dtype)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                y = function(x)
        except (FloatingPointError, Warning) as error:
            problems.append(f"{dtype} ±max: {type(error).__name__}: {error}")
            rel.record("numerics: activations", "failed")
            continue
        rel.record("numerics: activations", "checked")
        problems += [f"{dtype} ±max: {p}" for p in _check_activation(name, x, y)]
    assert not problems, f"{name}:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("activation", "loss", "targets"),
    [
        ("softmax", "sparse_categorical_crossentropy", np.array([0, 1, 2, 0])),
        ("softmax", "categorical_crossentropy", np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]),
        ("sigmoid", "binary_crossentropy", np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])),
    ],
)
@pytest.mark.parametrize("scale", [1e4, 1e30])
def test_training_step_at_extreme_logits_is_finite(rel, activation, loss, targets, scale):
    """A model whose last layer outputs logits of ±scale: the fused loss, its gradient
    and the updated weights stay finite, and nothing warns."""
    lk.utils.set_random_seed(0)
    model = lk.Sequential(
        [lk.layers.Input((3,)), lk.layers.Dense(3, activation=activation, name="out")]
    )
    model.compile(optimizer=lk.optim.SGD(learning_rate=1e-40), loss=loss)
    model.get_layer("out").set_weights([np.eye(3, dtype=np.float32), np.zeros(3, np.float32)])
    x = np.array([[1, -1, 0.5], [-1, 1, -0.5], [1, 1, 1], [-1, -1, -1]], np.float32) * np.float32(
        scale
    )
    with warnings.catch_warnings(), _strict():
        warnings.simplefilter("error")
        value = model.train_on_batch(x, targets)
        predictions = model.predict(x)
        evaluated = model.evaluate(x, targets)
    rel.record("numerics: training steps", "checked")
    assert math.isfinite(value)
    assert math.isfinite(evaluated)
    assert np.isfinite(predictions).all()
    assert all(np.isfinite(w).all() for w in model.get_weights())


# --------------------------------------------------------------------------------------
# A diverging run
# --------------------------------------------------------------------------------------

SCENARIOS = ["learning rate 1e30", "targets of 1e30"]
EPOCHS, BATCH, SAMPLES = 3, 8, 64


def _diverging_fit(scenario: str, terminate: bool):
    lk.utils.set_random_seed(0)
    model = lk.Sequential(
        [
            lk.layers.Input((4,)),
            lk.layers.Dense(8, activation="relu", name="hidden"),
            lk.layers.Dense(1, name="out"),
        ]
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 4)).astype(np.float32)
    if scenario == "learning rate 1e30":
        optimizer = lk.optim.SGD(learning_rate=1e30)
        y = rng.normal(size=(SAMPLES, 1)).astype(np.float32)
    else:
        optimizer = lk.optim.SGD(learning_rate=0.01)
        y = np.full((SAMPLES, 1), 1e30, np.float32)
    model.compile(optimizer=optimizer, loss="mse")
    losses: list[float] = []
    callbacks = [
        lk.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: losses.append(logs["loss"])
        )
    ]
    if terminate:
        callbacks.insert(0, lk.callbacks.TerminateOnNaN())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(
            x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=callbacks
        )
    return model, losses, history, list(caught)


def _first_bad(losses: list[float]) -> int:
    return next(i for i, value in enumerate(losses) if not math.isfinite(value))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_terminate_on_nan_stops_at_the_first_nan_batch(rel, scenario):
    _, free_losses, _, _ = _diverging_fit(scenario, terminate=False)
    first_bad = _first_bad(free_losses)  # the same run, not stopped
    model, losses, history, _ = _diverging_fit(scenario, terminate=True)
    rel.record("numerics: diverging runs", "checked")
    assert len(losses) == first_bad + 1, (
        f"TerminateOnNaN ran {len(losses)} batches; the first non-finite loss is at batch "
        f"{first_bad} (losses {free_losses[: first_bad + 2]})"
    )
    assert losses[:first_bad] == free_losses[:first_bad]
    assert model.stop_training
    assert len(history.history["loss"]) == 1 + first_bad // (SAMPLES // BATCH)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_diverging_fit_warns_once_and_keeps_running(rel, scenario):
    _, losses, history, caught = _diverging_fit(scenario, terminate=False)
    rel.record("numerics: diverging runs", "checked")
    assert len(losses) == EPOCHS * SAMPLES // BATCH, "fit stopped without TerminateOnNaN"
    assert len(history.history["loss"]) == EPOCHS
    ours = [w for w in caught if "TerminateOnNaN" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert issubclass(ours[0].category, RuntimeWarning)
    assert ours[0].filename == __file__, "the warning should point at the caller of fit"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_diverging_fit_emits_no_other_warning(rel, scenario):
    """The one warning is all the user sees: numpy's own overflow warnings from inside
    the layers would repeat the news (and become errors under ``-W error``)."""
    _, _, _, caught = _diverging_fit(scenario, terminate=False)
    rel.record("numerics: diverging runs", "checked")
    others = [
        f"{w.category.__name__} at {w.filename.rsplit('/', 2)[-2:]}:{w.lineno}: {w.message}"
        for w in caught
        if "TerminateOnNaN" not in str(w.message)
    ]
    assert others == []


def test_y_values_beyond_float32_are_refused_not_trained_on(rel):
    """float64 targets of 1e300 pass the NaN/inf check but become inf in float32: fit
    must refuse them (as it does for x) instead of training on inf."""
    model = rel.small_model("mse")
    before = rel.snapshot(model)
    x = np.ones((4, 4), np.float32)
    y = np.full((4, 2), 1e300)
    _, error = rel.attempt("numerics: targets beyond float32", lambda: model.fit(x, y, verbose=0))
    rel.assert_refusal(error, arguments=("y",), context="fit(y=1e300 in float64)")
    rel.assert_unchanged(model, before, "fit(y=1e300)")
