"""LearningRateScheduler and ReduceLROnPlateau against hand-computed learning-rate sequences.

The rate "used" in an epoch is read from ``model.optimizer.learning_rate`` at the start of
the epoch's first batch (what the optimizer applies), and compared with the
``learning_rate`` that the callbacks log at the end of the epoch. ReduceLROnPlateau is
driven by scripted monitor values, so that every expected reduction is known in advance.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from keras_process import run_keras

import layerkit as lk
from layerkit.callbacks import Callback, LambdaCallback, LearningRateScheduler, ReduceLROnPlateau
from layerkit.layers import Dense, Input

LR0 = 0.01


# --- local helpers -------------------------------------------------------------------
def make_model(lr: float = LR0) -> lk.Sequential:
    lk.utils.set_random_seed(0)
    model = lk.Sequential([Input((4,)), Dense(3, activation="tanh"), Dense(1)])
    model.compile(optimizer=lk.optim.SGD(learning_rate=lr), loss="mse")
    return model


def make_data(n: int = 32):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0], dtype=np.float32))[:, None]
    return x, y


class Script(Callback):
    """Overwrites ``logs[key]`` with scripted values; must come before the callback reading
    them (callbacks share the logs dict)."""

    def __init__(self, key: str, values: list[float]):
        super().__init__()
        self.key, self.values = key, values

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class Recorder:
    """The learning rate applied in each epoch, and the one logged for it."""

    def __init__(self, model: lk.Sequential):
        self.used: dict[int, float] = {}
        self.logged: list[float] = []
        self.epoch = -1

        def batch_begin(batch, logs=None):
            self.used.setdefault(self.epoch, float(model.optimizer.learning_rate))

        def epoch_begin(epoch, logs=None):
            self.epoch = epoch

        def epoch_end(epoch, logs=None):
            self.logged.append(logs["learning_rate"])

        # Two callbacks: one to put before the LR callback, one after it.
        self.before = LambdaCallback(on_epoch_begin=epoch_begin)
        self.after = LambdaCallback(on_train_batch_begin=batch_begin, on_epoch_end=epoch_end)

    @property
    def used_list(self) -> list[float]:
        return [self.used[e] for e in sorted(self.used)]


def fit(model, callbacks, epochs, batch_size=16, **kwargs):
    x, y = make_data()
    return model.fit(
        x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=callbacks, **kwargs
    )


# --- LearningRateScheduler -----------------------------------------------------------------
def test_scheduler_sets_the_rate_of_each_epoch_from_epoch_and_current_rate():
    model = make_model()
    recorder = Recorder(model)
    calls = []

    def schedule(epoch, lr):
        calls.append((epoch, lr))
        return lr if epoch == 0 else lr * 0.5

    history = fit(model, [recorder.before, LearningRateScheduler(schedule), recorder.after], 4)
    expected = [LR0, LR0 / 2, LR0 / 4, LR0 / 8]
    assert recorder.used_list == pytest.approx(expected, rel=1e-12)
    assert recorder.logged == pytest.approx(expected, rel=1e-12)
    assert history.history["learning_rate"] == pytest.approx(expected, rel=1e-12)
    # The schedule receives the rate in force before the epoch: the previous result.
    assert calls == [(0, LR0), (1, LR0), (2, LR0 / 2), (3, LR0 / 4)]
    assert model.optimizer.learning_rate == pytest.approx(LR0 / 8, rel=1e-12)


def test_scheduler_applies_to_every_batch_of_the_epoch():
    model = make_model()
    seen = []
    per_batch = LambdaCallback(
        on_train_batch_begin=lambda batch, logs=None: seen.append(model.optimizer.learning_rate)
    )
    schedule = LearningRateScheduler(lambda epoch, lr: [0.1, 0.02, 0.003][epoch])
    fit(model, [schedule, per_batch], 3, batch_size=8)  # 4 batches per epoch
    assert seen == [0.1] * 4 + [0.02] * 4 + [0.003] * 4


def test_scheduler_rate_really_drives_the_updates():
    """An epoch scheduled at rate 0 leaves the weights exactly as they were."""
    model = make_model()
    snapshots = []
    keep = LambdaCallback(
        on_epoch_end=lambda epoch, logs=None: snapshots.append(model.get_weights())
    )
    schedule = LearningRateScheduler(lambda epoch, lr: [0.05, 0.0, 0.05][epoch])
    fit(model, [schedule, keep], 3)
    for before, after in zip(snapshots[0], snapshots[1]):
        np.testing.assert_array_equal(before, after)
    assert any(not np.array_equal(a, b) for a, b in zip(snapshots[1], snapshots[2]))


def test_scheduler_with_initial_epoch_starts_at_that_epoch():
    model = make_model()
    recorder = Recorder(model)
    calls = []

    def schedule(epoch, lr):
        calls.append(epoch)
        return 0.1 / (epoch + 1)

    fit(
        model,
        [recorder.before, LearningRateScheduler(schedule), recorder.after],
        5,
        initial_epoch=2,
    )
    assert calls == [2, 3, 4]
    assert recorder.used_list == pytest.approx([0.1 / 3, 0.1 / 4, 0.1 / 5], rel=1e-12)
    assert recorder.logged == pytest.approx([0.1 / 3, 0.1 / 4, 0.1 / 5], rel=1e-12)


def test_scheduler_verbose_announces_each_rate(capsys):
    model = make_model()
    fit(model, [LearningRateScheduler(lambda epoch, lr: 0.5 ** (epoch + 1), verbose=1)], 2)
    out = capsys.readouterr().out
    assert "Epoch 1: LearningRateScheduler setting learning rate to 0.5." in out
    assert "Epoch 2: LearningRateScheduler setting learning rate to 0.25." in out


@pytest.mark.parametrize(
    "bad",
    [math.nan, math.inf, "0.1", None, True, np.bool_(True), np.float32("nan"), np.array([0.1]), 1j],
)
def test_scheduler_refuses_a_non_finite_or_non_float_rate(bad):
    model = make_model()
    schedule = LearningRateScheduler(lambda epoch, lr: LR0 if epoch == 0 else bad)
    with pytest.raises(ValueError, match="at epoch 1"):
        fit(model, [schedule], 3)
    assert model.optimizer.learning_rate == LR0  # the bad value was never applied


# Keras 3 is the reference for what a schedule may look like and return. It runs in a
# subprocess (KERAS_BACKEND=torch): layerkit's own process never imports Keras.
KERAS_SCRIPT = r"""
import json, sys
import numpy as np
try:
    import keras
except ImportError as error:
    print("KERAS_UNAVAILABLE", error)
    sys.exit(3)

x = np.random.default_rng(5).normal(size=(32, 4)).astype("float32")
y = x[:, :1]
SCHEDULES = {
    "one_argument": lambda epoch: 0.1 * 0.5**epoch,
    "numpy_float32": lambda epoch, lr: np.float32(lr * 0.5),
    "numpy_float64_one_argument": lambda epoch: np.float64(0.3 / (epoch + 1)),
}
results = {}
for name, schedule in SCHEDULES.items():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
    used = {}
    epoch_of = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs=None: epoch_of.append(epoch),
        on_train_batch_begin=lambda batch, logs=None: used.setdefault(
            epoch_of[-1], float(model.optimizer.learning_rate)
        ),
    )
    history = model.fit(
        x, y, epochs=3, batch_size=16, verbose=0,
        callbacks=[keras.callbacks.LearningRateScheduler(schedule), record],
    )
    results[name] = {
        "used": [used[e] for e in sorted(used)],
        "logged": [float(v) for v in history.history["learning_rate"]],
    }
json.dump(results, open(sys.argv[1], "w"))
"""

LAYERKIT_SCHEDULES = {
    "one_argument": lambda epoch: 0.1 * 0.5**epoch,
    "numpy_float32": lambda epoch, lr: np.float32(lr * 0.5),
    "numpy_float64_one_argument": lambda epoch: np.float64(0.3 / (epoch + 1)),
}


@pytest.fixture(scope="module")
def keras_rates(tmp_path_factory):
    out = tmp_path_factory.mktemp("keras_lr") / "rates.json"
    run_keras(KERAS_SCRIPT, str(out))
    return json.loads(out.read_text())


@pytest.mark.parametrize("name", list(LAYERKIT_SCHEDULES))
def test_scheduler_matches_keras_for_one_argument_and_numpy_schedules(keras_rates, name):
    model = make_model()
    recorder = Recorder(model)
    schedule = LearningRateScheduler(LAYERKIT_SCHEDULES[name])
    history = fit(model, [recorder.before, schedule, recorder.after], 3)
    reference = keras_rates[name]
    assert len(reference["used"]) == 3
    # Keras keeps the rate in a float32 variable: agreement to float32 precision.
    assert recorder.used_list == pytest.approx(reference["used"], rel=1e-6)
    assert history.history["learning_rate"] == pytest.approx(reference["logged"], rel=1e-6)
    assert all(type(lr) is float for lr in history.history["learning_rate"])


def test_one_argument_schedule_gets_the_epoch_only():
    model = make_model()
    calls = []

    def schedule(epoch):
        calls.append(epoch)
        return 0.1 * 0.5**epoch

    history = fit(model, [LearningRateScheduler(schedule)], 3)
    assert calls == [0, 1, 2]
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025], rel=1e-12)


@pytest.mark.parametrize(
    "value", [np.float32(0.125), np.float64(0.125), np.float16(0.125), np.array(0.125)]
)
def test_scheduler_accepts_numpy_scalars_and_0d_arrays(value):
    model = make_model()
    fit(model, [LearningRateScheduler(lambda epoch, lr: value)], 1)
    assert model.optimizer.learning_rate == 0.125
    assert type(model.optimizer.learning_rate) is float


def test_scheduler_accepts_numpy_integers_like_python_ints():
    model = make_model()
    fit(model, [LearningRateScheduler(lambda epoch: np.int64(epoch))], 2)
    assert model.optimizer.learning_rate == 1.0


def test_type_error_inside_the_schedule_is_not_swallowed():
    """The signature decides how to call; a TypeError raised by the user's code is theirs."""
    model = make_model()
    calls = []

    def schedule(epoch, lr):
        calls.append((epoch, lr))
        return lr + "oops"  # a bug in the schedule

    with pytest.raises(TypeError, match="unsupported operand"):
        fit(model, [LearningRateScheduler(schedule)], 2)
    assert calls == [(0, LR0)]  # called once, never retried as schedule(epoch)


class UnreadableSignature:
    """A one-argument callable whose signature inspect cannot read."""

    __signature__ = "unreadable"

    def __init__(self):
        self.calls = []

    def __call__(self, *args):
        self.calls.append(args)
        if len(args) != 1:
            raise TypeError("takes 1 positional argument")
        return 0.2 / (args[0] + 1)


def test_unreadable_signature_falls_back_to_keras_try():
    model = make_model()
    schedule = UnreadableSignature()
    history = fit(model, [LearningRateScheduler(schedule)], 2)
    assert history.history["learning_rate"] == pytest.approx([0.2, 0.1], rel=1e-12)
    assert schedule.calls == [(0, LR0), (0,), (1, 0.2), (1,)]


def _scheduled_model():
    lk.utils.set_random_seed(0)
    model = lk.Sequential([Input((4,)), Dense(3, activation="tanh"), Dense(1)])
    decay = lk.optim.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    model.compile(optimizer=lk.optim.SGD(learning_rate=decay), loss="mse")
    return model, decay


@pytest.mark.parametrize(
    "make_callback",
    [
        pytest.param(lambda: LearningRateScheduler(lambda epoch, lr: 0.5), id="scheduler"),
        pytest.param(lambda: ReduceLROnPlateau(monitor="loss", patience=0), id="plateau"),
    ],
)
def test_lr_callbacks_refuse_an_optimizer_schedule_before_any_epoch(make_callback):
    model, decay = _scheduled_model()
    before = model.get_weights()
    epochs_begun = []
    callback = make_callback()
    watch = LambdaCallback(on_epoch_begin=lambda epoch, logs=None: epochs_begun.append(epoch))
    with pytest.raises(TypeError) as info:
        fit(model, [callback, watch], 3)
    message = str(info.value)
    assert type(callback).__name__ in message
    assert "ExponentialDecay" in message
    assert "not settable" in message
    assert epochs_begun == []
    assert model.optimizer.schedule is decay  # the schedule is still in place
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


# --- ReduceLROnPlateau -------------------------------------------------------------------------
def run_plateau(values: list[float], monitor: str = "val_loss", lr: float = 1.0, **options):
    """Fits len(values) epochs with ``monitor`` scripted; returns (used, logged, final lr)."""
    model = make_model(lr)
    recorder = Recorder(model)
    callbacks = [
        recorder.before,
        Script(monitor, values),
        ReduceLROnPlateau(monitor=monitor, **options),
        recorder.after,
    ]
    fit(model, callbacks, len(values))
    return recorder.used_list, recorder.logged, model.optimizer.learning_rate


def test_plateau_reduces_after_patience_epochs_without_improvement():
    values = [1.0, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8]
    # e0, e1 improve; e2 wait 1; e3 wait 2 -> 0.5 (from e4 on); e4 improves;
    # e5 wait 1; e6 wait 2 -> 0.25; e7 wait 1; e8 wait 2 -> 0.125 (after the last epoch).
    used, logged, final = run_plateau(values, patience=2, factor=0.5)
    expected = [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert used == pytest.approx(expected, rel=1e-12)
    assert logged == pytest.approx(expected, rel=1e-12)  # the rate of that epoch
    assert final == pytest.approx(0.125, rel=1e-12)


def test_plateau_cooldown_pauses_counting():
    # patience 1, cooldown 2: a reduction, then two epochs that do not count, then again.
    # e0 improves; e1 -> 0.1; e2, e3 cooldown (e3 ends it and counts) -> 0.01; e4, e5 -> 0.001...
    used, logged, final = run_plateau([1.0] * 8, patience=1, factor=0.1, cooldown=2)
    expected = [1.0, 1.0, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    assert used == pytest.approx(expected, rel=1e-9)
    assert logged == pytest.approx(expected, rel=1e-9)
    assert final == pytest.approx(1e-4, rel=1e-9)


def test_plateau_without_cooldown_reduces_every_patience_epochs():
    used, _, final = run_plateau([1.0] * 7, patience=2, factor=0.5)
    # e0 improves; reductions at the ends of e2, e4, e6.
    assert used == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25], rel=1e-12)
    assert final == pytest.approx(0.125, rel=1e-12)


def test_plateau_never_goes_below_min_lr():
    used, logged, final = run_plateau([1.0] * 7, patience=1, factor=0.5, min_lr=0.3)
    # 1 -> 0.5 -> max(0.25, 0.3) = 0.3, then it stays.
    expected = [1.0, 1.0, 0.5, 0.3, 0.3, 0.3, 0.3]
    assert used == pytest.approx(expected, rel=1e-12)
    assert logged == pytest.approx(expected, rel=1e-12)
    assert final == pytest.approx(0.3, rel=1e-12)


def test_plateau_improvement_resets_the_wait():
    # Each improvement comes just before patience runs out: never a reduction.
    values = [1.0, 1.0, 0.9, 0.9, 0.8, 0.8, 0.7]
    used, _, final = run_plateau(values, patience=2, factor=0.5)
    assert used == [1.0] * 7
    assert final == 1.0


def test_plateau_min_delta_decides_what_counts_as_improvement():
    values = [1.0, 0.99995, 0.99993]
    # With min_delta 1e-4 neither later value improves: wait 2 at e2 -> 0.5.
    _, _, final = run_plateau(values, patience=2, factor=0.5, min_delta=1e-4)
    assert final == pytest.approx(0.5, rel=1e-12)
    # With min_delta 0 both improve: no reduction.
    _, _, final = run_plateau(values, patience=2, factor=0.5, min_delta=0.0)
    assert final == 1.0


def test_plateau_mode_max_for_accuracy_monitors():
    values = [0.5, 0.6, 0.6, 0.6, 0.7, 0.6]
    # "auto" picks max for accuracy: e2, e3 wait -> 0.5; e4 improves; e5 wait 1.
    used, logged, final = run_plateau(values, monitor="val_accuracy", patience=2, factor=0.5)
    assert used == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.5, 0.5], rel=1e-12)
    assert logged == used
    assert final == pytest.approx(0.5, rel=1e-12)
    # The same values with mode="min": only e0 improves.
    _, _, final = run_plateau(values, monitor="val_accuracy", patience=2, factor=0.5, mode="min")
    assert final == pytest.approx(0.25, rel=1e-12)


def test_plateau_state_restarts_with_each_fit():
    model = make_model(1.0)
    plateau = ReduceLROnPlateau(monitor="val_loss", patience=2, factor=0.5)
    fit(model, [Script("val_loss", [0.1, 0.2]), plateau], 2)  # best 0.1, wait 1
    assert model.optimizer.learning_rate == 1.0
    # A new fit forgets best and wait: 5.0 is an improvement, then only one epoch waits.
    fit(model, [Script("val_loss", [5.0, 5.0]), plateau], 2)
    assert model.optimizer.learning_rate == 1.0
    assert plateau.wait == 1


def test_plateau_with_a_missing_monitor_warns_and_keeps_the_rate():
    model = make_model(1.0)
    recorder = Recorder(model)
    plateau = ReduceLROnPlateau(monitor="val_loss", patience=1)
    with pytest.warns(UserWarning, match="'val_loss'"):
        fit(model, [recorder.before, plateau, recorder.after], 3)
    assert recorder.logged == [1.0, 1.0, 1.0]
    assert model.optimizer.learning_rate == 1.0


def test_plateau_on_real_validation_loss_logs_the_rate_in_history():
    model = make_model(LR0)
    x, y = make_data()
    plateau = ReduceLROnPlateau(monitor="val_loss", patience=1, factor=0.5, min_delta=1e9)
    # min_delta this large makes every epoch after the first a non-improvement.
    history = model.fit(
        x, y, epochs=4, batch_size=16, validation_data=(x, y), verbose=0, callbacks=[plateau]
    )
    expected = [LR0, LR0, LR0 / 2, LR0 / 4]
    assert history.history["learning_rate"] == pytest.approx(expected, rel=1e-12)
    assert model.optimizer.learning_rate == pytest.approx(LR0 / 8, rel=1e-12)


@pytest.mark.parametrize("factor", [0.0, 1.0, 1.5, -0.5])
def test_plateau_factor_must_be_between_0_and_1(factor):
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(factor=factor)


def test_plateau_verbose_announces_reductions(capsys):
    run_plateau([1.0, 1.0], patience=1, factor=0.5, verbose=1)
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.5." in capsys.readouterr().out
