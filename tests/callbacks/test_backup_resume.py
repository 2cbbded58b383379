"""BackupAndRestore and ModelCheckpoint resuming (fixes of a code review): learning rates
changed by callbacks survive a mid-epoch kill, a mid-epoch backup refuses another
division into batches or other metrics without changing anything, a save from inside
``fit`` stores both shuffling states, checks on what a checkpoint names, per-batch hooks
only when needed, verbose headers, Keras's reserved file names, ``double_checkpoint``,
and a ``.keras`` archive whose layerkit member is not a checkpoint.

A kill is simulated by a callback raising :class:`Killed` after BackupAndRestore has
written the backup of that moment; the run is then started again on a fresh model built
the same way, with the same backup folder and arguments.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import layerkit as lk
from layerkit.callbacks.base import CallbackList
from layerkit.io.checkpoint import read_snapshot, seal
from layerkit.random import rng_from_state, rng_state

SEED = 5
N_SAMPLES, BATCH = 30, 8
STEPS = 4  # ceil(30 / 8): the last batch has 6 samples
LR = 0.05
EPOCHS = 3
# A backup every 3 batches follows global batches 3, 6, 9...; the kill follows epoch 1
# batch 2 (global batch 7), one batch after the backup of epoch 1 batch 1: the resumed
# fit starts inside epoch 1, at step 2.
BACKUP_EVERY = 3
KILL_BATCH = (1, 2)
RESUMED_BATCHES = [(1, 2), (1, 3), *((2, b) for b in range(STEPS))]


# --- data, models, callbacks -----------------------------------------------------------
def make_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(N_SAMPLES, 4)).astype(np.float32)
    y = (x[:, 0] - 0.7 * x[:, 1] + 0.2 * x[:, 3] > 0).astype(np.int64)
    return x, y


X, Y = make_data()


def build(metrics=("accuracy",), optimizer=None) -> lk.Sequential:
    lk.utils.set_random_seed(SEED)
    model = lk.Sequential(
        [
            lk.layers.Input((4,), name="inputs"),
            lk.layers.Dense(5, activation="relu", name="hidden1"),
            lk.layers.Dropout(0.25, name="drop"),
            lk.layers.Dense(2, name="out"),
        ],
        name="resume",
    )
    model.compile(
        optimizer=optimizer or lk.optim.Adam(LR),
        loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=list(metrics),
    )
    return model


def fit(model, epochs=EPOCHS, callbacks=(), x=X, y=Y, batch_size=BATCH, shuffle=True, **kw):
    return model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        verbose=kw.pop("verbose", 0),
        shuffle=shuffle,
        callbacks=list(callbacks),
        **kw,
    )


class Killed(Exception):
    """A simulated kill of the training process."""


class KillAt(lk.callbacks.Callback):
    """Raises Killed at the end of ``epoch`` or, with ``batch``, of that batch of that
    epoch. Put it after BackupAndRestore, so the backup of that moment is written."""

    def __init__(self, epoch: int, batch: int | None = None):
        super().__init__()
        self.epoch, self.batch, self._epoch = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.batch is not None and (self._epoch, batch) == (self.epoch, self.batch):
            raise Killed(f"killed after epoch {self.epoch} batch {self.batch}")

    def on_epoch_end(self, epoch, logs=None):
        if self.batch is None and epoch == self.epoch:
            raise Killed(f"killed at the end of epoch {epoch}")


class BatchLog(lk.callbacks.Callback):
    """Records (epoch, batch) and the learning rate of every batch trained."""

    def __init__(self):
        super().__init__()
        self.batches: list[tuple[int, int]] = []
        self.rates: dict[tuple[int, int], float] = {}
        self._epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.batches.append((self._epoch, batch))
        self.rates[(self._epoch, batch)] = float(self.model.optimizer.learning_rate)


class SetRateAt(lk.callbacks.Callback):
    """Sets the learning rate at the end of one (epoch, batch), as a ReduceLROnPlateau
    acting mid-epoch would."""

    def __init__(self, epoch: int, batch: int, rate: float):
        super().__init__()
        self.at, self.rate, self._epoch = (epoch, batch), rate, None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self._epoch, batch) == self.at:
            self.model.optimizer.learning_rate = self.rate


def weights_of(model) -> dict[str, np.ndarray]:
    return {p.name: p.value.copy() for p in model.weights}


def assert_same_weights(expected: dict, got, stage: str) -> None:
    got = weights_of(got) if not isinstance(got, dict) else got
    assert list(got) == list(expected), f"{stage}: weights {list(got)}, expected {list(expected)}"
    for name, value in expected.items():
        assert np.array_equal(value, got[name]), (
            f"{stage}: {name!r} not bit-equal, max |diff| "
            f"{float(np.max(np.abs(value.astype(np.float64) - got[name]))):.3g}"
        )


def assert_same_tree(expected, got, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(got, dict), f"{where}: expected a dict, got {type(got).__name__}"
        assert sorted(map(str, got)) == sorted(map(str, expected)), (
            f"{where}: keys {sorted(map(str, got))}, expected {sorted(map(str, expected))}"
        )
        for key in expected:
            assert_same_tree(expected[key], got[key], f"{where}/{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), f"{where}: {len(got)} items, expected {len(expected)}"
        for i, (a, b) in enumerate(zip(expected, got, strict=True)):
            assert_same_tree(a, b, f"{where}[{i}]")
    elif isinstance(expected, np.ndarray):
        assert expected.dtype == got.dtype, f"{where}: dtype {got.dtype}, not {expected.dtype}"
        assert np.array_equal(expected, got), f"{where} differs"
    else:
        assert expected == got, f"{where}: expected {expected!r}, got {got!r}"


def model_state(model) -> dict:
    """Everything a refused resume must leave alone."""
    return {
        "weights": weights_of(model),
        "iterations": model.optimizer.iterations,
        "optimizer": model.optimizer.state_dict(),
        "learning_rate": model.optimizer.learning_rate,
        "position": model.training_position(),
        "layer_states": [layer.training_state() for layer in model.layers],
    }


def assert_unchanged(before: dict, model, stage: str) -> None:
    after = model_state(model)
    assert_same_weights(before["weights"], after["weights"], stage)
    assert after["iterations"] == before["iterations"], (
        f"{stage}: iterations {after['iterations']}, expected {before['iterations']}"
    )
    assert after["learning_rate"] == before["learning_rate"], (
        f"{stage}: learning rate {after['learning_rate']}, expected {before['learning_rate']}"
    )
    assert_same_tree(before["optimizer"], after["optimizer"], f"{stage}: optimizer state_dict")
    assert after["position"] == before["position"], f"{stage}: training_position changed"
    assert after["layer_states"] == before["layer_states"], f"{stage}: layer RNG changed"


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def killed_mid_epoch(folder: Path, metrics=("accuracy",)) -> None:
    """A run backed up every 3 batches and killed one batch after a mid-epoch backup."""
    model = build(metrics)
    backup = lk.callbacks.BackupAndRestore(folder, save_freq=BACKUP_EVERY)
    with pytest.raises(Killed):
        fit(model, callbacks=[backup, KillAt(*KILL_BATCH)])
    position = read_snapshot(folder / "backup.h5").position
    assert position["epoch_in_progress"]["epoch"] == 1
    assert position["epoch_in_progress"]["steps_done"] == 2


# --- 1. learning rates changed by callbacks survive a mid-epoch kill ------------------
def test_rate_dependent_scheduler_resumes_mid_epoch_bit_equal(tmp_path):
    def run(folder, extra=()):
        calls: list[tuple[int, float]] = []

        def halve(epoch, lr):
            calls.append((epoch, lr))
            return lr * 0.5

        model = build()
        scheduler = lk.callbacks.LearningRateScheduler(halve)
        backup = lk.callbacks.BackupAndRestore(folder, save_freq=BACKUP_EVERY)
        fit(model, callbacks=[scheduler, backup, *extra])
        return model, calls

    reference_log = BatchLog()
    reference, reference_calls = run(tmp_path / "reference", [reference_log])
    assert reference_calls == [(0, LR), (1, LR / 2), (2, LR / 4)]
    assert reference.optimizer.learning_rate == LR / 8
    with pytest.raises(Killed):
        run(tmp_path / "backup", [KillAt(*KILL_BATCH)])
    log = BatchLog()
    resumed, calls = run(tmp_path / "backup", [log])
    assert log.batches == RESUMED_BATCHES
    # The resumed epoch's schedule is called with the rate that epoch began with, not
    # the rate already halved at the moment of the backup.
    assert calls == [(1, LR / 2), (2, LR / 4)], f"the schedule was called with {calls}"
    assert {k: reference_log.rates[k] for k in log.rates} == log.rates
    assert resumed.optimizer.learning_rate == reference.optimizer.learning_rate == LR / 8
    assert resumed.optimizer.iterations == reference.optimizer.iterations == EPOCHS * STEPS
    assert_same_weights(weights_of(reference), resumed, "scheduler, resumed mid-epoch")
    assert_same_tree(
        reference.optimizer.state_dict(), resumed.optimizer.state_dict(), "optimizer state"
    )


def test_mid_epoch_rate_change_before_backup_is_kept(tmp_path):
    # The rate falls at the end of epoch 1 batch 0 (global batch 5); the backup of global
    # batch 6 holds it; the resumed fit starts at epoch 1 batch 2, past the change.
    new_rate = 0.0125

    def run(folder, extra=()):
        model = build()
        backup = lk.callbacks.BackupAndRestore(folder, save_freq=BACKUP_EVERY)
        fit(model, callbacks=[SetRateAt(1, 0, new_rate), backup, *extra])
        return model

    reference_log = BatchLog()
    reference = run(tmp_path / "reference", [reference_log])
    assert reference_log.rates[(1, 0)] == LR
    assert reference_log.rates[(1, 1)] == new_rate
    with pytest.raises(Killed):
        run(tmp_path / "backup", [KillAt(*KILL_BATCH)])
    log = BatchLog()
    resumed = run(tmp_path / "backup", [log])
    assert log.batches == RESUMED_BATCHES
    assert set(log.rates.values()) == {new_rate}, f"the resumed fit trained at {log.rates}"
    assert resumed.optimizer.learning_rate == reference.optimizer.learning_rate == new_rate
    assert_same_weights(weights_of(reference), resumed, "mid-epoch rate change, resumed")


# --- 2. and 3. a mid-epoch backup resumes only into the same batches and metrics ------
@pytest.mark.parametrize(
    ("change", "kwargs", "expected"),
    [
        ("batch_size", {"batch_size": 10}, "(30, 10, True)"),
        ("samples", {"x": X[:28], "y": Y[:28]}, "(28, 8, True)"),
        ("shuffle", {"shuffle": False}, "(30, 8, False)"),
        ("shuffle", {"shuffle": "batch"}, "(30, 8, 'batch')"),
    ],
)
def test_mid_epoch_backup_refuses_other_batches(tmp_path, change, kwargs, expected):
    folder = tmp_path / "backup"
    killed_mid_epoch(folder)
    files_before = folder_bytes(folder)
    model = build()
    before = model_state(model)
    log = BatchLog()
    backup = lk.callbacks.BackupAndRestore(folder, save_freq=BACKUP_EVERY)
    with pytest.raises(ValueError) as info:
        fit(model, callbacks=[backup, log], **kwargs)
    message = str(info.value)
    assert "samples, batch_size, shuffle = (30, 8, True)" in message, message
    assert f"this fit has {expected}" in message, message
    assert log.batches == [], f"batches {log.batches} trained before the refusal"
    assert_unchanged(before, model, f"after refusing another {change}")
    assert folder_bytes(folder) == files_before, "the refusal changed the backup"


def test_mid_epoch_backup_refuses_other_metrics(tmp_path):
    folder = tmp_path / "backup"
    killed_mid_epoch(folder, metrics=["accuracy"])
    files_before = folder_bytes(folder)
    model = build(metrics=["mse"])
    before = model_state(model)
    stored = read_snapshot(folder / "backup.h5").position["epoch_in_progress"]["metric_names"]
    current = [m.name for m in model._metrics]
    assert stored == ["accuracy"]
    assert current
    assert current != stored
    backup = lk.callbacks.BackupAndRestore(folder, save_freq=BACKUP_EVERY)
    with pytest.raises(ValueError) as info:
        fit(model, callbacks=[backup])
    message = str(info.value)
    assert repr(stored) in message, message
    assert repr(current) in message, message
    assert_unchanged(before, model, "after refusing other metrics")
    assert folder_bytes(folder) == files_before, "the refusal changed the backup"


# --- 4. model.save() from inside fit ---------------------------------------------------
class ShuffleStates(lk.callbacks.Callback):
    """The shuffling generator's state when each epoch begins (before its permutation)
    and at the end of the batch ``at`` (after it)."""

    def __init__(self, at: int):
        super().__init__()
        self.at, self.before, self.after = at, None, None

    def on_epoch_begin(self, epoch, logs=None):
        self.before = rng_state(self.model._shuffle_rng)

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.at:
            self.after = rng_state(self.model._shuffle_rng)


def test_save_inside_fit_stores_both_shuffle_states_and_load_draws_a_new_order(tmp_path):
    path = tmp_path / "ckpt.h5"
    original = build()
    checkpoint = lk.callbacks.ModelCheckpoint(str(path), save_freq=3)  # after batch 2 of 4
    states = ShuffleStates(at=2)
    fit(original, epochs=1, callbacks=[checkpoint, states])
    assert states.before != states.after, "the epoch's permutation did not advance the generator"
    position = read_snapshot(path).position
    assert position["epoch_in_progress"]["steps_done"] == 3
    assert position["shuffle_rng"] == states.after, "the file's generator is not post-permutation"
    assert position["epoch_in_progress"]["shuffle_rng"] == states.before, (
        "epoch_in_progress.shuffle_rng is not the state before the epoch's permutation"
    )
    loaded = lk.load_model(path)
    assert loaded.training_position()["shuffle_rng"] == states.after
    assert loaded._resume_in_epoch is None

    new_order = rng_from_state(states.after).permutation(N_SAMPLES)
    replay_order = rng_from_state(states.before).permutation(N_SAMPLES)
    assert not np.array_equal(new_order[:BATCH], replay_order[:BATCH])

    fit(loaded, epochs=2, initial_epoch=1)
    # The same checkpoint trained on the data put in each order, without shuffling: the
    # plain fit above matches the new order, not the replay of the saved epoch's.
    expected = {}
    for name, order in (("new", new_order), ("replay", replay_order)):
        twin = lk.load_model(path)
        fit(twin, epochs=2, initial_epoch=1, x=X[order], y=Y[order], shuffle=False)
        expected[name] = weights_of(twin)
    assert_same_weights(expected["new"], loaded, "fit after load_model vs the new order")
    differs = any(
        not np.array_equal(expected["replay"][k], v) for k, v in weights_of(loaded).items()
    )
    assert differs, "fit after load_model replayed the saved epoch's order"
    after_one = rng_from_state(states.after)
    after_one.permutation(N_SAMPLES)
    assert loaded.training_position()["shuffle_rng"] == rng_state(after_one)


# --- 5. optimizer state naming a parameter the model lacks ----------------------------
def rename_optimizer_parameter(path: Path, old: str, new: str) -> None:
    with h5py.File(path, "r+") as f:
        group = f["optimizer"]
        names = json.loads(group.attrs["parameter_names"])
        assert old in names, names
        group.move(old, new)
        group.attrs["parameter_names"] = json.dumps([new if n == old else n for n in names])
    seal(str(path))


def test_load_model_refuses_optimizer_state_for_unknown_parameter(tmp_path):
    model = build()
    fit(model, epochs=1)
    path = tmp_path / "m.h5"
    model.save(path)
    rename_optimizer_parameter(path, "hidden1/kernel", "hidden1/ghost")
    assert "hidden1/ghost" in read_snapshot(path).optimizer_state["slots"]
    with pytest.raises(lk.io.FormatError, match="hidden1/ghost"):
        lk.load_model(path)


def test_backup_refuses_optimizer_state_for_unknown_parameter(tmp_path):
    folder = tmp_path / "backup"
    with pytest.raises(Killed):
        fit(build(), callbacks=[lk.callbacks.BackupAndRestore(folder), KillAt(0)])
    rename_optimizer_parameter(folder / "backup.h5", "out/bias", "out/ghost")
    model = build()
    before = model_state(model)
    with pytest.raises(lk.io.FormatError, match="out/ghost"):
        fit(model, callbacks=[lk.callbacks.BackupAndRestore(folder)])
    assert_unchanged(before, model, "after refusing the backup")


# --- 6. per-batch hooks only with an integer save_freq --------------------------------
@pytest.mark.parametrize(
    ("make", "wants"),
    [
        pytest.param(lambda d: lk.callbacks.ModelCheckpoint(str(d / "m.h5")), False, id="mc"),
        pytest.param(
            lambda d: lk.callbacks.ModelCheckpoint(str(d / "m.h5"), save_freq=2), True, id="mc-2"
        ),
        pytest.param(lambda d: lk.callbacks.BackupAndRestore(d / "b"), False, id="br"),
        pytest.param(
            lambda d: lk.callbacks.BackupAndRestore(d / "b", save_freq=False), False, id="br-off"
        ),
        pytest.param(
            lambda d: lk.callbacks.BackupAndRestore(d / "b", save_freq=2), True, id="br-2"
        ),
    ],
)
def test_saving_callbacks_want_batch_hooks_only_with_integer_save_freq(
    tmp_path, monkeypatch, make, wants
):
    model = build()
    assert CallbackList([make(tmp_path)], model, {}).wants_batch_hooks is wants
    calls = []
    real_logs = model._logs
    monkeypatch.setattr(model, "_logs", lambda *a, **k: calls.append(1) or real_logs(*a, **k))
    fit(model, epochs=2, callbacks=[make(tmp_path)])
    # One set of logs per epoch; per-batch logs too only when a batch hook wants them.
    assert len(calls) == 2 * (STEPS + 1 if wants else 1), f"{len(calls)} calls of _logs"


# --- 7. verbose output and params["verbose"] ------------------------------------------
class Params(lk.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seen = dict(self.params)


def test_verbose_2_prints_epoch_headers_only_for_several_epochs(capsys):
    fit(build(), epochs=1, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/1" not in out, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith(f"{STEPS}/{STEPS} - "), out
    assert " - loss: " in lines[0], out
    assert " - accuracy: " in lines[0], out

    fit(build(), epochs=2, verbose=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("Epoch")] == ["Epoch 1/2", "Epoch 2/2"]
    assert sum(line.startswith(f"{STEPS}/{STEPS} - ") for line in lines) == 2, lines


@pytest.mark.parametrize("verbose", [0, 1, 2, "auto"])
def test_callbacks_see_the_users_verbose(capsys, verbose):
    params = Params()
    fit(build(), epochs=1, verbose=verbose, callbacks=[params])
    assert params.seen["verbose"] == (1 if verbose == "auto" else verbose)
    assert params.seen["epochs"] == 1
    assert params.seen["steps"] == STEPS
    out = capsys.readouterr().out
    if verbose in (1, "auto"):  # stdout is no terminal here: Keras's per-epoch line
        assert out.startswith(f"{STEPS}/{STEPS} - "), out


# --- 8. Keras's reserved file names -----------------------------------------------------
def test_reserved_suffixes_refused_and_nothing_written(tmp_path):
    model = build()
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        model.save(tmp_path / "m.weights.h5")
    with pytest.raises(ValueError, match=r"\.keras"):
        model.save_weights(tmp_path / "w.keras")
    assert os.listdir(tmp_path) == [], os.listdir(tmp_path)
    with pytest.raises(ValueError, match="save_weights_only"):
        lk.callbacks.ModelCheckpoint(str(tmp_path / "x.keras"), save_weights_only=True)
    with pytest.raises(ValueError, match="save_weights_only"):
        lk.callbacks.ModelCheckpoint(str(tmp_path / "x.weights.h5"))
    assert os.listdir(tmp_path) == []


# --- 9. double_checkpoint ---------------------------------------------------------------
def test_double_checkpoint_resumes_from_previous_when_latest_is_damaged(tmp_path):
    folder = tmp_path / "backup"

    def run(extra=(), epochs=4):
        model = build()
        backup = lk.callbacks.BackupAndRestore(folder, double_checkpoint=True)
        fit(model, epochs=epochs, callbacks=[backup, *extra])
        return model

    reference = build()
    fit(reference, epochs=4)
    with pytest.raises(Killed):
        run([KillAt(1)])  # backups after epochs 0 (previous) and 1 (latest)
    latest, previous = folder / "backup.h5", folder / "backup.prev.h5"
    assert latest.is_file(), os.listdir(folder)
    assert previous.is_file(), os.listdir(folder)
    assert read_snapshot(latest).position["last_epoch"] == 1
    assert read_snapshot(previous).position["last_epoch"] == 0
    with open(latest, "r+b") as f:
        f.truncate(latest.stat().st_size // 2)
    log = BatchLog()
    with pytest.warns(UserWarning, match="damaged backup"):
        resumed = run([log])
    assert log.batches[0] == (1, 0), log.batches  # the epoch after backup.prev.h5's
    assert len(log.batches) == 3 * STEPS, log.batches
    assert_same_weights(weights_of(reference), resumed, "resumed from backup.prev.h5")
    assert os.listdir(folder) == [], f"left after a normal end: {os.listdir(folder)}"


def test_double_checkpoint_keeps_a_readable_previous_after_resuming_from_it(tmp_path):
    folder = tmp_path / "backup"

    def run(extra):
        backup = lk.callbacks.BackupAndRestore(folder, double_checkpoint=True)
        fit(build(), epochs=4, callbacks=[backup, *extra])

    with pytest.raises(Killed):
        run([KillAt(1)])
    latest = folder / "backup.h5"
    with open(latest, "r+b") as f:
        f.truncate(latest.stat().st_size // 2)
    with pytest.warns(UserWarning, match="damaged backup"), pytest.raises(Killed):
        run([KillAt(1)])  # resumed from epoch 0's backup, killed after epoch 1's
    assert read_snapshot(latest).position["last_epoch"] == 1
    # The previous backup should be a readable one (epoch 0's), not the damaged file.
    assert read_snapshot(folder / "backup.prev.h5").position["last_epoch"] == 0


def test_damaged_backup_refused_without_double_checkpoint(tmp_path):
    folder = tmp_path / "backup"
    with pytest.raises(Killed):
        fit(build(), callbacks=[lk.callbacks.BackupAndRestore(folder), KillAt(1)])
    latest = folder / "backup.h5"
    with open(latest, "r+b") as f:
        f.truncate(latest.stat().st_size // 2)
    model = build()
    before = model_state(model)
    with pytest.raises(lk.io.FormatError, match="truncated or damaged"):
        fit(model, callbacks=[lk.callbacks.BackupAndRestore(folder)])
    assert_unchanged(before, model, "after refusing a damaged backup")


def test_double_checkpoint_with_every_backup_damaged_is_refused(tmp_path):
    folder = tmp_path / "backup"
    with pytest.raises(Killed):
        fit(
            build(),
            callbacks=[lk.callbacks.BackupAndRestore(folder, double_checkpoint=True), KillAt(1)],
        )
    for name in ("backup.h5", "backup.prev.h5"):
        damaged = folder / name
        with open(damaged, "r+b") as f:
            f.truncate(damaged.stat().st_size // 2)
    model = build()
    before = model_state(model)
    with pytest.warns(UserWarning, match="damaged backup"), pytest.raises(lk.io.FormatError):
        fit(model, callbacks=[lk.callbacks.BackupAndRestore(folder, double_checkpoint=True)])
    assert_unchanged(before, model, "after refusing two damaged backups")
    assert sorted(os.listdir(folder)) == ["backup.h5", "backup.prev.h5"]  # nothing deleted


# --- 10. a .keras archive whose layerkit member is not a checkpoint --------------------
def test_keras_archive_with_foreign_layerkit_member_is_refused(tmp_path):
    model = build()
    fit(model, epochs=1)
    good = model.save(tmp_path / "good.keras")
    path = str(tmp_path / "x.keras")
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "layerkit.h5":
                assert data.startswith(b"layerkit checkpoint\n")
                data = b"\x89HDF\r\n\x1a\n" + data[8:]  # a plain HDF5 signature instead
            target.writestr(info, data)
    with pytest.raises(lk.io.FormatError) as info:
        lk.load_model(path)
    assert f"{path}!layerkit.h5" in str(info.value), str(info.value)
    assert "not a layerkit checkpoint" in str(info.value)
    assert isinstance(lk.load_model(good), lk.Sequential)  # the original still loads
