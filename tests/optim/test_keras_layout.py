"""Optimizer state through ``.keras`` archives in Keras 3's variable layout, both ways.

Export: layerkit trains, ``lk.io.save_keras`` writes the archive, real Keras 3 loads it
compiled (``keras.models.load_model``) with every optimizer variable equal to layerkit's
state, then one more epoch in both gives the same weights. Import: Keras trains and
saves, layerkit reads the archive's ``optimizer/vars`` into a fresh optimizer, one more
step from the same gradients in both gives the same weights. Bad files change nothing.
"""

from __future__ import annotations

import io
import json
import zipfile

import h5py
import numpy as np
import pytest

import layerkit as lk
from layerkit import optim
from layerkit.layers import Dense
from layerkit.optim import keras_layout

# Keras's numpy conversion on the PyTorch backend, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

X = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
Y = np.random.default_rng(1).normal(size=(16, 2)).astype(np.float32)

VARIANTS = [
    ("sgd", lambda: optim.SGD(0.1)),
    ("sgd-momentum", lambda: optim.SGD(0.1, momentum=0.9, nesterov=True)),
    ("rmsprop-centered", lambda: optim.RMSprop(0.01, momentum=0.5, centered=True)),
    ("adagrad", lambda: optim.Adagrad(0.1)),
    ("adadelta", lambda: optim.Adadelta(1.0)),
    ("adam-amsgrad", lambda: optim.Adam(2**-6, amsgrad=True)),
    ("adamw", lambda: optim.AdamW(2**-6)),
    ("adamax", lambda: optim.Adamax(0.01)),
    ("nadam", lambda: optim.Nadam(0.01)),
    ("lion", lambda: optim.Lion(2**-8)),
    ("ftrl", lambda: optim.Ftrl(0.1, l1_regularization_strength=0.01)),
    ("lamb", lambda: optim.Lamb(0.01)),
    ("adafactor", lambda: optim.Adafactor(0.1)),
    (
        "adam-ema-accumulation",
        lambda: optim.Adam(2**-6, use_ema=True, ema_momentum=0.9, gradient_accumulation_steps=3),
    ),
    (
        "adam-schedule",
        lambda: optim.Adam(optim.schedules.ExponentialDecay(2**-5, decay_steps=2, decay_rate=0.5)),
    ),
]


def _trained(make):
    model = lk.Sequential([Dense(3, input_dim=4, name="h"), Dense(2, name="o")])
    model.compile(optimizer=make(), loss="mse", metrics=["mae"])
    model.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    return model


def _archive_optimizer(path):
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as f:
            group = f.get("optimizer/vars")
            arrays = None
            if group is not None:
                arrays = [np.asarray(group[str(i)]) for i in range(len(group))]
    return config["compile_config"], arrays


def test_every_registered_optimizer_is_in_the_matrix():
    covered = {type(make()) for _, make in VARIANTS}
    assert set(optim.registered_optimizers().values()) <= covered


@pytest.mark.parametrize(("case", "make"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_keras_loads_the_state_and_continues_the_same(case, make, keras, tmp_path, fresh_session):
    model = _trained(make)
    path = lk.io.save_keras(model, tmp_path / "m.keras")
    compile_config, arrays = _archive_optimizer(path)
    assert compile_config["optimizer"]["class_name"] == type(model.optimizer).__name__
    loaded = keras.models.load_model(path)
    keras_opt = loaded.optimizer
    assert type(keras_opt).__name__ == type(model.optimizer).__name__
    assert len(keras_opt.variables) == len(arrays)  # else Keras skips loading, with a warning
    for i, (variable, ours) in enumerate(zip(keras_opt.variables, arrays, strict=True)):
        theirs = keras.ops.convert_to_numpy(variable)
        assert theirs.shape == ours.shape, (i, variable.path)
        np.testing.assert_array_equal(theirs, ours.astype(theirs.dtype), err_msg=variable.path)
    assert int(keras.ops.convert_to_numpy(keras_opt.iterations)) == model.optimizer.iterations
    model.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    loaded.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    model.optimizer.finalize_variable_values(model.weights)  # Keras's fit ends with it
    worst = 0.0
    for ours, theirs in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6, err_msg=case)
        worst = max(worst, float(np.max(np.abs(ours - theirs))))
    print(f"{case}: max |diff| after one more epoch in both {worst:.3g}")


@pytest.mark.parametrize(
    ("case", "make_keras", "make"),
    [
        ("adam-amsgrad", lambda k: k.optimizers.Adam(2**-6, amsgrad=True), None),
        ("nadam", lambda k: k.optimizers.Nadam(0.01), None),
        ("adafactor", lambda k: k.optimizers.Adafactor(0.1), None),
        (
            "rmsprop-ema-accumulation",
            lambda k: k.optimizers.RMSprop(
                0.01, momentum=0.5, use_ema=True, gradient_accumulation_steps=2
            ),
            None,
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_layerkit_reads_a_keras_archive_and_continues_the_same(
    case, make_keras, make, keras, tmp_path, fresh_session
):
    keras_model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="h"), keras.layers.Dense(2, name="o")]
    )
    keras_model.compile(optimizer=make_keras(keras), loss="mse")
    keras_model.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    path = str(tmp_path / "k.keras")
    keras_model.save(path)
    compile_config, arrays = _archive_optimizer(path)
    model = lk.Sequential([Dense(3, input_dim=4, name="h"), Dense(2, name="o")])
    model.set_weights(keras_model.get_weights())
    opt = keras_layout.from_keras_config(compile_config["optimizer"])
    keras_layout.load_keras_variables(opt, model.weights, arrays)
    assert opt.iterations == int(keras.ops.convert_to_numpy(keras_model.optimizer.iterations))
    again = keras_layout.keras_variables(opt, model.weights)
    for ours, theirs in zip(again, arrays, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-12)
    grads = [
        np.random.default_rng(7).normal(size=p.shape).astype(np.float32) for p in model.weights
    ]
    for _ in range(2):
        keras_model.optimizer.apply_gradients(
            zip([keras.ops.convert_to_tensor(g) for g in grads], keras_model.trainable_variables)
        )
        opt.apply_gradients([(g.copy(), p) for g, p in zip(grads, model.weights, strict=True)])
    worst = 0.0
    for ours, theirs in zip(model.get_weights(), keras_model.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6, err_msg=case)
        worst = max(worst, float(np.max(np.abs(ours - theirs))))
    print(f"{case}: max |diff| after two more steps in both {worst:.3g}")


def test_bad_keras_variables_change_nothing(fresh_session):
    model = _trained(lambda: optim.Adam(0.01))
    opt = model.optimizer
    arrays = keras_layout.keras_variables(opt, model.weights)
    before = opt.state_dict()
    with pytest.raises(ValueError, match=r"Expected 10 Keras optimizer variables.*Received: 9"):
        keras_layout.load_keras_variables(opt, model.weights, arrays[:-1])
    bad = list(arrays)
    bad[3] = np.zeros((5,), np.float32)
    with pytest.raises(ValueError, match=r"variable 3: expected shape \(4, 3\), received \(5,\)"):
        keras_layout.load_keras_variables(opt, model.weights, bad)
    for index, value, pattern in [
        (0, np.float32(3.0), r"variable 0: expected an integer array, received dtype float32"),
        (0, np.int32(-1), r"iterations: expected >= 0. Received: -1"),
        (1, np.float32(np.nan), r"learning_rate: expected a finite, non-negative rate"),
        (2, np.array([["a"] * 3] * 4), r"variable 2: expected a real array"),
    ]:
        bad = list(arrays)
        bad[index] = value
        with pytest.raises(ValueError, match=pattern):
            keras_layout.load_keras_variables(opt, model.weights, bad)
    assert opt.learning_rate == 0.01
    after = opt.state_dict()
    assert after["iterations"] == before["iterations"]
    for name, slots in before["slots"].items():
        for slot, value in slots.items():
            assert np.array_equal(after["slots"][name][slot], value)
    with pytest.raises(ValueError, match=r"Unknown optimizer config"):
        keras_layout.from_keras_config({"class_name": "Nope", "config": {}})
    with pytest.raises(ValueError, match=r"'config' dict"):
        keras_layout.from_keras_config(["adam"])


def test_a_model_keras_cannot_compile_is_written_uncompiled(tmp_path, fresh_session):
    model = lk.Sequential([Dense(3, input_dim=4, name="h"), Dense(2, name="o")])
    # a metric object: layerkit does not translate it to Keras
    model.compile(optimizer="adam", loss="mse", metrics=[lk.metrics.MeanAbsoluteError()])
    compile_config, arrays = _archive_optimizer(lk.io.save_keras(model, tmp_path / "c.keras"))
    assert compile_config == {}
    assert arrays is None
    plain = lk.Sequential([Dense(3, input_dim=4, name="h"), Dense(2, name="o")])
    compile_config, arrays = _archive_optimizer(lk.io.save_keras(plain, tmp_path / "u.keras"))
    assert compile_config == {}
    assert arrays is None


def test_writing_the_archive_does_not_build_the_optimizer(tmp_path, fresh_session):
    model = lk.Sequential([Dense(3, input_dim=4, name="h"), Dense(2, name="o")])
    model.compile(optimizer=optim.Ftrl(), loss="mse")
    before = model.optimizer.state_dict()
    _, arrays = _archive_optimizer(lk.io.save_keras(model, tmp_path / "f.keras"))
    assert model.optimizer.state_dict().keys() == before.keys()
    assert len(arrays) == 2 + 2 * 4  # iteration, learning_rate, accumulator + linear x 4
    np.testing.assert_array_equal(arrays[2], np.full((4, 3), 0.1, np.float32))
