"""ModelCheckpoint (file names, save_best_only, weights only) and BackupAndRestore
(resume a killed run in a new process to the same weights)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import layerkit as lk

REPO_ROOT = Path(lk.__file__).resolve().parents[1]


# --- local helpers -------------------------------------------------------------------
def make_data(n: int = 240, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20)).astype(np.float32)
    y = np.argmax(x[:, :3] + 0.5 * rng.normal(size=(n, 3)), axis=1).astype(np.int64)
    return x, y


def make_model(seed: int = 0) -> lk.Sequential:
    lk.utils.set_random_seed(seed)
    model = lk.Sequential(
        [
            lk.layers.Input((20,)),
            lk.layers.Dense(16, activation="relu", name="hidden1"),
            lk.layers.Dropout(0.2, name="drop"),
            lk.layers.Dense(8, activation="relu", name="hidden2"),
            lk.layers.Dense(3, name="out"),
        ]
    )
    model.compile(
        optimizer=lk.optim.Adam(learning_rate=0.01),
        loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


class Script(lk.callbacks.Callback):
    """Overwrites logged values with a script, so "best" epochs are known in advance.
    Must come before the callbacks that read them (callbacks share the logs dict)."""

    def __init__(self, key: str, values: list[float]):
        super().__init__()
        self.key, self.values = key, values

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class WeightsRecorder(lk.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights: list[list[np.ndarray]] = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def h5_files(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".h5"))


# --- ModelCheckpoint -----------------------------------------------------------------
def test_filepath_formatting_with_epoch_and_val_loss(tmp_path):
    x, y = make_data()
    model = make_model()
    recorder = WeightsRecorder()
    checkpoint = lk.callbacks.ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.3f}.h5"))
    history = model.fit(
        x,
        y,
        batch_size=32,
        epochs=3,
        verbose=0,
        validation_split=0.25,
        callbacks=[checkpoint, recorder],
    )
    expected = [
        f"ckpt-{epoch + 1:02d}-{val_loss:.3f}.h5"
        for epoch, val_loss in enumerate(history.history["val_loss"])
    ]
    assert h5_files(tmp_path) == expected
    assert checkpoint.last_saved == str(tmp_path / expected[-1])
    # Each file holds the model as it was at the end of its epoch.
    for name, weights in zip(expected, recorder.weights, strict=True):
        loaded = lk.load_model(tmp_path / name)
        for a, b in zip(loaded.get_weights(), weights, strict=True):
            assert np.array_equal(a, b)
    assert lk.load_model(tmp_path / expected[1]).optimizer.iterations == 2 * 6


def test_filepath_with_unknown_key_is_a_clear_error(tmp_path):
    x, y = make_data(64)
    model = make_model()
    checkpoint = lk.callbacks.ModelCheckpoint(str(tmp_path / "ckpt-{val_los:.3f}.h5"))
    with pytest.raises(ValueError, match="val_los"):
        model.fit(x, y, epochs=1, verbose=0, validation_split=0.25, callbacks=[checkpoint])
    assert h5_files(tmp_path) == []


@pytest.mark.parametrize(
    ("monitor", "mode", "values", "best_epochs"),
    [
        ("val_loss", "auto", [0.9, 1.2, 0.5, 0.5, 0.7, 0.2], [1, 3, 6]),
        ("val_accuracy", "auto", [0.5, 0.4, 0.6, 0.6, 0.9, 0.8], [1, 3, 5]),
        ("val_accuracy", "min", [0.5, 0.4, 0.6, 0.6, 0.9, 0.3], [1, 2, 6]),
        ("loss", "max", [0.9, 1.2, 0.5, 1.3, 0.7, 0.2], [1, 2, 4]),
    ],
)
def test_save_best_only_saves_on_improvement(tmp_path, monitor, mode, values, best_epochs):
    x, y = make_data(96)
    model = make_model()
    recorder = WeightsRecorder()
    every = lk.callbacks.ModelCheckpoint(
        str(tmp_path / "best-{epoch:02d}.h5"), monitor=monitor, mode=mode, save_best_only=True
    )
    latest = lk.callbacks.ModelCheckpoint(
        str(tmp_path / "best.h5"), monitor=monitor, mode=mode, save_best_only=True
    )
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=6,
        verbose=0,
        validation_split=0.25,
        callbacks=[Script(monitor, values), every, latest, recorder],
    )
    assert h5_files(tmp_path) == sorted(
        ["best.h5", *(f"best-{epoch:02d}.h5" for epoch in best_epochs)]
    )
    best = best_epochs[-1]
    assert every.best == values[best - 1]
    loaded = lk.load_model(tmp_path / "best.h5")
    for a, b in zip(loaded.get_weights(), recorder.weights[best - 1], strict=True):
        assert np.array_equal(a, b)
    assert loaded.training_position()["epochs_done"] == best


def test_save_best_only_with_missing_monitor_warns_and_saves_nothing(tmp_path):
    x, y = make_data(64)
    model = make_model()
    checkpoint = lk.callbacks.ModelCheckpoint(
        str(tmp_path / "m.h5"), monitor="val_loss", save_best_only=True
    )
    with pytest.warns(UserWarning, match="val_loss"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[checkpoint])
    assert h5_files(tmp_path) == []


@pytest.mark.parametrize("weights_only", [True, False])
def test_save_weights_only(tmp_path, weights_only):
    x, y = make_data(96)
    model = make_model()
    checkpoint = lk.callbacks.ModelCheckpoint(
        str(tmp_path / "e{epoch}.h5"), save_weights_only=weights_only
    )
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[checkpoint])
    assert h5_files(tmp_path) == ["e1.h5", "e2.h5"]
    with h5py.File(tmp_path / "e2.h5", "r") as f:
        assert f.attrs["kind"] == ("weights" if weights_only else "model")
        assert ("optimizer" in f) is (not weights_only)
        assert ("training_position" in f.attrs) is (not weights_only)
        assert sorted(f["weights"]) == ["hidden1", "hidden2", "out"]
    fresh = make_model(seed=5)
    assert fresh.load_weights(tmp_path / "e2.h5") == [
        ("hidden1", "hidden1"),
        ("hidden2", "hidden2"),
        ("out", "out"),
    ]
    for a, b in zip(fresh.get_weights(), model.get_weights(), strict=True):
        assert np.array_equal(a, b)


# --- BackupAndRestore ----------------------------------------------------------------
TRAIN_SCRIPT = r"""
import json, os, signal, sys
import numpy as np
import layerkit as lk

backup_dir, out_path, kill = sys.argv[1], sys.argv[2], sys.argv[3]
rng = np.random.default_rng(1)
x = rng.normal(size=(240, 20)).astype(np.float32)
y = np.argmax(x[:, :3] + 0.5 * rng.normal(size=(240, 3)), axis=1)
lk.utils.set_random_seed(0)
model = lk.Sequential([
    lk.layers.Input((20,)),
    lk.layers.Dense(16, activation="relu", name="hidden1"),
    lk.layers.Dropout(0.2, name="drop"),
    lk.layers.Dense(8, activation="relu", name="hidden2"),
    lk.layers.Dense(3, name="out"),
])
model.compile(optimizer=lk.optim.Adam(lk.optim.schedules.ExponentialDecay(0.02, 10, 0.8)),
              loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])

class Log(lk.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        print(f"begin {epoch}", flush=True)

class Kill(lk.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if kill == "exit_after_epoch_3" and epoch == 2:
            os._exit(3)

    def on_train_batch_end(self, batch, logs=None):
        if kill == "sigkill_in_epoch_5" and self.epoch == 4 and batch == 3:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

history = model.fit(x, y, batch_size=32, epochs=6, verbose=0, validation_split=0.2,
                    callbacks=[Log(), lk.callbacks.BackupAndRestore(backup_dir), Kill()])
print("history " + json.dumps({"epoch": history.epoch, **history.history}), flush=True)
model.save(out_path)
"""


def run_training(tmp_path: Path, backup_dir: Path, out: Path, kill: str):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = "1"
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(backup_dir), str(out), kill],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    begun = [
        int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("begin ")
    ]
    history = next(
        (
            json.loads(line[len("history ") :])
            for line in result.stdout.splitlines()
            if line.startswith("history ")
        ),
        None,
    )
    return result, begun, history


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    out = tmp_path / "final.h5"
    result, begun, history = run_training(tmp_path, tmp_path / "backup", out, "none")
    assert result.returncode == 0, result.stderr
    assert begun == [0, 1, 2, 3, 4, 5]
    assert history["epoch"] == [0, 1, 2, 3, 4, 5]
    assert not (tmp_path / "backup" / "backup.h5").exists()  # deleted after a normal finish
    return lk.load_model(out), history


@pytest.mark.parametrize(
    ("kill", "returncode", "completed"),
    [
        ("exit_after_epoch_3", 3, 3),
        ("sigkill_in_epoch_5", -9, 4),
    ],
)
def test_backup_and_restore_resumes_to_same_weights(
    tmp_path, uninterrupted, kill, returncode, completed
):
    reference, reference_history = uninterrupted
    backup_dir, out = tmp_path / "backup", tmp_path / "final.h5"
    backup = backup_dir / "backup.h5"

    result, begun, history = run_training(tmp_path, backup_dir, out, kill)
    assert result.returncode == returncode, result.stderr
    assert begun == list(range(completed + (kill == "sigkill_in_epoch_5")))
    assert history is None
    assert not out.exists()
    assert backup.exists()
    with h5py.File(backup, "r") as f:
        position = json.loads(f.attrs["training_position"])
    assert position["last_epoch"] == completed - 1
    assert position["epochs_done"] == completed
    assert position["iterations"] == completed * 6  # 192 samples / 32

    result, begun, history = run_training(tmp_path, backup_dir, out, "none")
    assert result.returncode == 0, result.stderr
    assert begun == list(range(completed, 6))
    assert history["epoch"] == list(range(completed, 6))
    # The resumed epochs log what the unbroken run logged for them.
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        np.testing.assert_allclose(
            history[key], reference_history[key][completed:], rtol=0, atol=1e-6, err_msg=key
        )
    assert not backup.exists()  # deleted after the normal finish
    resumed = lk.load_model(out)
    for got, want in zip(resumed.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert resumed.optimizer.iterations == reference.optimizer.iterations == 36
    assert resumed.optimizer.learning_rate == pytest.approx(reference.optimizer.learning_rate)


def test_backup_kept_when_delete_checkpoint_false(tmp_path):
    x, y = make_data(64)
    model = make_model()
    callback = lk.callbacks.BackupAndRestore(tmp_path / "keep", delete_checkpoint=False)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[callback])
    backup = tmp_path / "keep" / "backup.h5"
    assert backup.exists()
    loaded = lk.load_model(backup)
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert loaded.optimizer.iterations == 4
    # A later fit with the same callback resumes after epoch 2: nothing left to do.
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[callback])
    assert history.epoch == []
    assert model.optimizer.iterations == 4
