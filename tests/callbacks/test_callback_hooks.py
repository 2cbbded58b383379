"""Callback hooks as Keras 3 calls them (issue 20): which hooks fire, in what order, with
which batch indices, and with dicts (never None) as ``logs``, in ``fit`` (with validation),
``evaluate(callbacks=...)`` and ``predict(callbacks=...)``.

The same recorder runs in layerkit and in real Keras 3 (PyTorch backend, imported once
for the module by the ``keras`` fixture) and the recorded sequences are compared.
"""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk
from layerkit.callbacks import Callback
from layerkit.layers import Dense, Input

HOOKS = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_begin",
    "on_predict_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
)


# --- local helpers -------------------------------------------------------------------
def _recording_hook(name: str):
    """A hook that appends ``(name, index or None, type of logs, sorted keys or None)``;
    ``logs`` may come positionally (layerkit) or by keyword (Keras's batch hooks)."""
    if "batch" in name or "epoch" in name:

        def hook(self, index, logs=None):
            self.record(name, index, logs)

    else:

        def hook(self, logs=None):
            self.record(name, None, logs)

    hook.__name__ = name
    return hook


def recorder_class(base: type) -> type:
    """A subclass of ``base`` (layerkit's or Keras's Callback) overriding every hook."""

    def __init__(self):
        base.__init__(self)
        self.calls = []
        self.outputs = []

    def record(self, name, index, logs):
        keys = sorted(logs) if isinstance(logs, dict) else None
        self.calls.append((name, index, type(logs).__name__, keys))
        if name == "on_predict_batch_end" and isinstance(logs, dict):
            self.outputs.append(np.array(logs["outputs"]))

    body = {"__init__": __init__, "record": record}
    body.update({name: _recording_hook(name) for name in HOOKS})
    return type("Recorder", (base,), body)


Recorder = recorder_class(Callback)


def make_data(n: int = 10, seed: int = 7):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = rng.normal(size=(n, 3)).astype(np.float32)
    return x, y


def make_model() -> lk.Sequential:
    model = lk.Sequential([Input((5,)), Dense(3)])
    model.compile(optimizer=lk.optim.SGD(0.05), loss="mse")
    return model


def make_keras_model(keras):
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def expected_fit_calls(epochs: int, train_steps: int, val_steps: int) -> list[tuple]:
    calls = [("on_train_begin", None, "dict", [])]
    for epoch in range(epochs):
        calls.append(("on_epoch_begin", epoch, "dict", []))
        for step in range(train_steps):
            calls += [
                ("on_train_batch_begin", step, "dict", []),
                ("on_train_batch_end", step, "dict", ["loss"]),
            ]
        calls.append(("on_test_begin", None, "dict", []))
        for step in range(val_steps):
            calls += [
                ("on_test_batch_begin", step, "dict", []),
                ("on_test_batch_end", step, "dict", ["loss"]),
            ]
        calls.append(("on_test_end", None, "dict", ["loss"]))
        calls.append(("on_epoch_end", epoch, "dict", ["loss", "val_loss"]))
    calls.append(("on_train_end", None, "dict", ["loss", "val_loss"]))
    return calls


# --- 6. fit ----------------------------------------------------------------------------
def test_fit_calls_every_hook_with_dict_logs(fresh_session):
    x, y = make_data()
    recorder = Recorder()
    history = make_model().fit(
        x,
        y,
        batch_size=4,
        epochs=2,
        verbose=0,
        validation_data=(x[:6], y[:6]),
        callbacks=[recorder],
    )
    # 10 samples in batches of 4: 3 steps; 6 validation samples: 2 steps.
    assert recorder.calls == expected_fit_calls(epochs=2, train_steps=3, val_steps=2)
    assert all(kind == "dict" for _, _, kind, _ in recorder.calls)
    assert len(history.history["val_loss"]) == 2


def test_fit_hooks_and_logs_match_keras(fresh_session, keras):
    x, y = make_data()
    ours, theirs = Recorder(), recorder_class(keras.callbacks.Callback)()
    kwargs = {"batch_size": 4, "epochs": 2, "verbose": 0, "validation_data": (x[:6], y[:6])}
    make_model().fit(x, y, callbacks=[ours], **kwargs)
    make_keras_model(keras).fit(x, y, callbacks=[theirs], **kwargs)
    assert {c[0] for c in ours.calls} == {c[0] for c in theirs.calls}
    assert ours.calls == theirs.calls


def test_callback_that_mutates_begin_logs_does_not_crash(fresh_session):
    """Keras passes fresh dicts: a callback may write into the logs of a *_begin hook."""
    x, y = make_data()
    seen = []

    class Writer(Callback):
        def on_train_begin(self, logs=None):
            logs["note"] = "train"

        def on_epoch_begin(self, epoch, logs=None):
            logs["note"] = epoch

        def on_train_batch_begin(self, batch, logs=None):
            logs["note"] = batch
            seen.append(batch)

    history = make_model().fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[Writer()])
    assert seen == [0, 1, 2, 0, 1, 2]
    assert set(history.history) == {"loss"}  # what begin hooks wrote is not logged


# --- 7. evaluate and predict -----------------------------------------------------------
def test_evaluate_calls_test_hooks(fresh_session):
    x, y = make_data()
    model = make_model()
    recorder = Recorder()
    loss = model.evaluate(x, y, batch_size=4, callbacks=[recorder])
    assert [(name, index) for name, index, _, _ in recorder.calls] == [
        ("on_test_begin", None),
        ("on_test_batch_begin", 0),
        ("on_test_batch_end", 0),
        ("on_test_batch_begin", 1),
        ("on_test_batch_end", 1),
        ("on_test_batch_begin", 2),
        ("on_test_batch_end", 2),
        ("on_test_end", None),
    ]
    assert all(kind == "dict" for _, _, kind, _ in recorder.calls)
    assert loss == pytest.approx(model.evaluate(x, y, batch_size=10))


def test_evaluate_test_end_logs_hold_the_returned_loss(fresh_session):
    x, y = make_data()
    model = make_model()
    ends = []

    class End(Callback):
        def on_test_end(self, logs=None):
            ends.append(dict(logs))

        def on_test_batch_end(self, batch, logs=None):
            ends.append(dict(logs))

    loss = model.evaluate(x, y, batch_size=4, callbacks=[End()])
    assert len(ends) == 4
    assert ends[-1]["loss"] == pytest.approx(loss)
    assert ends[-2]["loss"] == pytest.approx(loss)  # the running mean after the last batch
    first = float(np.mean((model.predict(x[:4]) - y[:4]) ** 2))
    assert ends[0]["loss"] == pytest.approx(first, rel=1e-5)


def test_predict_calls_predict_hooks_with_batch_outputs(fresh_session):
    x, _ = make_data()
    model = make_model()
    recorder = Recorder()
    result = model.predict(x, batch_size=4, callbacks=[recorder])
    assert [(name, index) for name, index, _, _ in recorder.calls] == [
        ("on_predict_begin", None),
        ("on_predict_batch_begin", 0),
        ("on_predict_batch_end", 0),
        ("on_predict_batch_begin", 1),
        ("on_predict_batch_end", 1),
        ("on_predict_batch_begin", 2),
        ("on_predict_batch_end", 2),
        ("on_predict_end", None),
    ]
    assert all(kind == "dict" for _, _, kind, _ in recorder.calls)
    assert [o.shape for o in recorder.outputs] == [(4, 3), (4, 3), (2, 3)]
    np.testing.assert_array_equal(np.concatenate(recorder.outputs), result)
    np.testing.assert_array_equal(result, model.predict(x, batch_size=4))


def test_evaluate_and_predict_hooks_match_keras(fresh_session, keras):
    x, y = make_data()  # 10 samples, batch_size 4: 3 batches
    model, twin = make_model(), make_keras_model(keras)
    twin.set_weights(model.get_weights())  # same (in, out) kernel layout
    keras_recorder = recorder_class(keras.callbacks.Callback)
    for run in ("evaluate", "predict"):
        ours, theirs = Recorder(), keras_recorder()
        if run == "evaluate":
            model.evaluate(x, y, batch_size=4, callbacks=[ours])
            twin.evaluate(x, y, batch_size=4, verbose=0, callbacks=[theirs])
        else:
            model.predict(x, batch_size=4, callbacks=[ours])
            twin.predict(x, batch_size=4, verbose=0, callbacks=[theirs])
        assert ours.calls == theirs.calls, run
    assert [o.shape for o in ours.outputs] == [o.shape for o in theirs.outputs]
    for a, b in zip(ours.outputs, theirs.outputs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
