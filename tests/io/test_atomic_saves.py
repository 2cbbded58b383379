"""Atomic saves: a killed writer, a failing write or a read-only folder never leaves a
half-written checkpoint in place of the previous one."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import layerkit as lk

REPO_ROOT = Path(lk.__file__).resolve().parents[1]


# --- local helpers -------------------------------------------------------------------
def make_model(seed: int) -> lk.Sequential:
    lk.utils.set_random_seed(seed)
    return lk.Sequential(
        [
            lk.layers.Input((20,)),
            lk.layers.Dense(16, activation="relu", name="hidden1"),
            lk.layers.Dense(8, activation="relu", name="hidden2"),
            lk.layers.Dense(3, name="out"),
        ]
    )


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


def temporaries(target: Path) -> list[str]:
    pattern = re.compile(rf"\.{re.escape(target.name)}\.tmp-(\d+)-[0-9a-f]+")
    return sorted(n for n in os.listdir(target.parent) if pattern.fullmatch(n))


def which_set(weights: list[np.ndarray], sets: list[list[np.ndarray]]) -> int | None:
    for index, candidate in enumerate(sets):
        if all(np.array_equal(a, b) for a, b in zip(weights, candidate, strict=True)):
            return index
    return None


# --- (a) SIGKILL at random moments ---------------------------------------------------
# A "zygote" process imports layerkit once, then forks one writer per trial; the test
# kills each writer with SIGKILL at a random moment while it saves in a loop.
ZYGOTE = r"""
import os, sys, time
import numpy as np
import layerkit as lk

model_path, weights_path, sets_path = sys.argv[1:4]
lk.utils.set_random_seed(0)
model = lk.Sequential([
    lk.layers.Input((20,)),
    lk.layers.Dense(16, activation="relu", name="hidden1"),
    lk.layers.Dense(8, activation="relu", name="hidden2"),
    lk.layers.Dense(3, name="out"),
])
model.compile(optimizer="adam", loss="mse")
data = np.load(sets_path)
sets = [[data[f"s{k}_{i}"] for i in range(6)] for k in range(2)]
model.set_weights(sets[0])
model.save(model_path)
model.save_weights(weights_path)
print("ready", flush=True)
for line in sys.stdin:
    command = line.split()
    if command[0] == "fork":
        pid = os.fork()
        if pid == 0:
            try:
                deadline = time.monotonic() + 10.0  # never outlive a broken test
                i = 0
                while time.monotonic() < deadline:
                    i += 1
                    model.set_weights(sets[i % 2])
                    if command[1] == "model":
                        model.save(model_path)
                    else:
                        model.save_weights(weights_path)
            finally:
                os._exit(0)
        print(pid, flush=True)
    elif command[0] == "reap":
        _, status = os.waitpid(int(command[1]), 0)
        print(status, flush=True)
    else:
        break
"""

TRIALS_PER_MODE = 30


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_during_saves_never_corrupts_the_target(tmp_path):
    sets = [make_model(seed=k).get_weights() for k in (1, 2)]
    assert which_set(sets[0], sets) == 0
    assert which_set(sets[1], sets) == 1
    np.savez(
        tmp_path / "sets.npz", **{f"s{k}_{i}": w for k in range(2) for i, w in enumerate(sets[k])}
    )
    model_path, weights_path = tmp_path / "model.h5", tmp_path / "model.weights.h5"

    zygote = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ZYGOTE,
            str(model_path),
            str(weights_path),
            str(tmp_path / "sets.npz"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
        env=subprocess_env(),
    )
    rng = np.random.default_rng(2024)
    checker = make_model(seed=9)
    seen = {("model", 0): 0, ("model", 1): 0, ("weights", 0): 0, ("weights", 1): 0}
    killed_mid_save = 0
    try:
        assert zygote.stdout.readline().strip() == "ready"
        for trial in range(2 * TRIALS_PER_MODE):
            mode = "model" if trial % 2 == 0 else "weights"
            target = model_path if mode == "model" else weights_path
            zygote.stdin.write(f"fork {mode}\n")
            pid = int(zygote.stdout.readline())
            time.sleep(float(rng.uniform(0.0, 0.05)))
            os.kill(pid, signal.SIGKILL)
            zygote.stdin.write(f"reap {pid}\n")
            status = int(zygote.stdout.readline())
            assert os.WIFSIGNALED(status)
            assert os.WTERMSIG(status) == signal.SIGKILL
            if any(f".tmp-{pid}-" in name for name in temporaries(target)):
                killed_mid_save += 1
            # The target is always one complete checkpoint: the old or the new weights.
            if mode == "model":
                weights = lk.load_model(target).get_weights()
            else:
                checker.load_weights(target)
                weights = checker.get_weights()
            index = which_set(weights, sets)
            assert index is not None, f"trial {trial}: {target} holds neither weight set"
            seen[(mode, index)] += 1
        zygote.stdin.write("exit\n")
        zygote.stdin.flush()
        assert zygote.wait(timeout=10) == 0
    finally:
        if zygote.poll() is None:
            zygote.kill()
            zygote.wait()

    # Kills landed inside saves (temporaries were left behind) and between them.
    assert killed_mid_save >= 5, killed_mid_save
    assert sum(seen.values()) == 2 * TRIALS_PER_MODE
    assert seen[("model", 1)] > 0
    assert seen[("weights", 1)] > 0
    # The next save removes the temporaries of the dead writers.
    survivor = make_model(seed=1)
    survivor.save(model_path)
    survivor.save_weights(weights_path)
    assert temporaries(model_path) == []
    assert temporaries(weights_path) == []
    assert which_set(lk.load_model(model_path).get_weights(), sets) == 0


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("method", ["save", "save_weights"])
def test_stale_temporaries_of_dead_processes_are_removed(tmp_path, method):
    target = tmp_path / "ckpt.h5"
    dead = _dead_pid()
    stale = tmp_path / f".ckpt.h5.tmp-{dead}-0badf00d"
    stale.write_bytes(b"half a checkpoint")
    live = tmp_path / f".ckpt.h5.tmp-{os.getpid()}-12345678"  # a writer still running
    live.write_bytes(b"in progress")
    other = tmp_path / f".other.h5.tmp-{dead}-0badf00d"  # another target's temporary
    other.write_bytes(b"not ours")

    model = make_model(seed=3)
    getattr(model, method)(target)
    assert not stale.exists()
    assert live.exists()
    assert other.exists()
    assert sorted(os.listdir(tmp_path)) == sorted(["ckpt.h5", live.name, other.name])


# --- (b) a write that fails part-way --------------------------------------------------
def _full_disk_file(real_file):
    class FullDiskFile(real_file):
        """Writes part of the checkpoint, then reports a full disk."""

        def create_group(self, name, *args, **kwargs):
            group = super().create_group(name, *args, **kwargs)
            group.create_dataset("partial", data=np.zeros(4096, np.float32))
            self.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    return FullDiskFile


def _fail_in_write(monkeypatch):
    monkeypatch.setattr(h5py, "File", _full_disk_file(h5py.File))


def _fail_in_fsync(monkeypatch):
    def fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)


def _fail_in_replace(monkeypatch):
    def replace(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize(
    "fail",
    [
        pytest.param(_fail_in_write, id="h5py_write"),
        pytest.param(_fail_in_fsync, id="fsync"),
        pytest.param(_fail_in_replace, id="replace"),
    ],
)
@pytest.mark.parametrize("method", ["save", "save_weights"])
def test_failed_write_leaves_previous_file_intact(tmp_path, monkeypatch, fail, method):
    target = tmp_path / "ckpt.h5"
    old = make_model(seed=1)
    old.compile(optimizer="adam", loss="mse")
    getattr(old, method)(target)
    previous = target.read_bytes()

    new = make_model(seed=2)
    new.compile(optimizer="adam", loss="mse")
    with monkeypatch.context() as patch:
        fail(patch)
        with pytest.raises(OSError) as info:
            getattr(new, method)(target)
    error = info.value
    assert str(target) in str(error)
    assert error.errno in (errno.ENOSPC, errno.EIO)
    assert target.read_bytes() == previous
    assert os.listdir(tmp_path) == ["ckpt.h5"]  # no temporary left
    checker = make_model(seed=5)
    checker.load_weights(target)
    assert which_set(checker.get_weights(), [old.get_weights()]) == 0


def test_interrupted_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "ckpt.h5"
    make_model(seed=1).save(target)
    previous = target.read_bytes()
    real_file = h5py.File

    class Interrupted(real_file):
        def create_group(self, name, *args, **kwargs):
            super().create_group(name, *args, **kwargs)
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(h5py, "File", Interrupted)
        with pytest.raises(KeyboardInterrupt):
            make_model(seed=2).save(target)
    assert target.read_bytes() == previous
    assert os.listdir(tmp_path) == ["ckpt.h5"]


def test_save_into_missing_folder_or_onto_a_folder(tmp_path):
    model = make_model(seed=1)
    missing = tmp_path / "no" / "such" / "ckpt.h5"
    with pytest.raises(FileNotFoundError) as info:
        model.save(missing)
    assert str(missing) in str(info.value)
    folder = tmp_path / "folder.h5"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        model.save_weights(folder)
    assert str(folder) in str(info.value)
    assert os.listdir(folder) == []


# --- (c) a read-only folder -------------------------------------------------------------
READ_ONLY_CHECK = r"""
import os, sys
import layerkit as lk
target, method = sys.argv[1:3]
lk.utils.set_random_seed(2)
model = lk.Sequential([lk.layers.Input((20,)), lk.layers.Dense(3, name="out")])
os.setgid(65534)
os.setuid(65534)  # nobody: chmod applies again
assert not os.access(os.path.dirname(target), os.W_OK)
try:
    getattr(model, method)(target)
except PermissionError as error:
    print(type(error).__name__, error.errno, str(error).replace("\n", " "))
else:
    print("no error")
"""


@pytest.mark.parametrize("method", ["save", "save_weights"])
def test_read_only_folder_raises_permission_error(method):
    with tempfile.TemporaryDirectory(dir="/tmp" if os.path.isdir("/tmp") else None) as top:
        folder = Path(top) / "readonly"
        folder.mkdir()
        target = folder / "ckpt.h5"
        original = make_model(seed=1)
        original.save(target)
        previous = target.read_bytes()
        os.chmod(folder, 0o500)
        try:
            if os.access(folder, os.W_OK):
                # Root ignores the mode bits: check as user nobody in a child process.
                if os.geteuid() != 0 or not hasattr(os, "setuid"):
                    pytest.skip("chmod does not make the folder read-only here")
                os.chmod(top, 0o755)
                os.chown(folder, 65534, 65534)
                result = subprocess.run(
                    [sys.executable, "-c", READ_ONLY_CHECK, str(target), method],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    env=subprocess_env(),
                )
                assert result.returncode == 0, result.stderr
                line = result.stdout.strip()
                assert line.startswith(f"PermissionError {errno.EACCES} "), line
                assert str(target) in line
            else:
                with pytest.raises(PermissionError) as info:
                    getattr(make_model(seed=2), method)(target)
                assert str(target) in str(info.value)
            assert target.read_bytes() == previous
            assert os.listdir(folder) == ["ckpt.h5"]
        finally:
            os.chmod(folder, 0o700)
