"""Atomic saves: a killed writer, a failing write or a read-only folder never leaves a
half-written checkpoint in place of the previous one."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import warnings
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


# --- (d) symbolic links: written through, as open(path, "w") does ------------------------
def write_bytes(data: bytes):
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return write


def loaded_weights(path: Path, method: str) -> list[np.ndarray]:
    if method == "save":
        return lk.load_model(path).get_weights()
    checker = make_model(seed=9)
    checker.load_weights(path)
    return checker.get_weights()


@pytest.mark.parametrize("chain", [1, 2], ids=["link", "link_to_link"])
@pytest.mark.parametrize("method", ["save", "save_weights"])
def test_save_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path, method, chain):
    data, links = tmp_path / "data", tmp_path / "links"
    data.mkdir()
    links.mkdir()
    real = data / "ckpt.h5"
    old, new = make_model(seed=1), make_model(seed=2)
    getattr(old, method)(real)
    link = links / "ckpt.h5"
    pointed = Path("../data/ckpt.h5")  # relative, resolved from the link's folder
    if chain == 2:
        (links / "hop.h5").symlink_to("../data/ckpt.h5")
        pointed = Path("hop.h5")
    link.symlink_to(pointed)

    assert getattr(new, method)(link) == str(link)
    assert link.is_symlink()
    assert os.readlink(link) == str(pointed)
    assert which_set(loaded_weights(real, method), [new.get_weights()]) == 0
    assert which_set(loaded_weights(link, method), [new.get_weights()]) == 0
    assert os.listdir(data) == ["ckpt.h5"]  # no temporary left, none beside the link
    assert sorted(os.listdir(links)) == sorted(["ckpt.h5"] + (["hop.h5"] if chain == 2 else []))


def test_save_through_a_dangling_symlink_creates_the_file_it_points_to(tmp_path):
    (tmp_path / "data").mkdir()
    link = tmp_path / "ckpt.h5"
    link.symlink_to("data/new.h5")
    model = make_model(seed=2)
    model.save_weights(link)
    assert link.is_symlink()
    real = tmp_path / "data" / "new.h5"
    assert real.is_file()
    assert not real.is_symlink()
    assert which_set(loaded_weights(real, "save_weights"), [model.get_weights()]) == 0
    # What open(path, "w") does with a dangling link, for comparison.
    other = tmp_path / "other"
    other.symlink_to("data/by_open")
    with open(other, "w") as f:
        f.write("x")
    assert other.is_symlink()
    assert (tmp_path / "data" / "by_open").is_file()


def test_dangling_symlink_into_a_missing_folder_or_a_loop_is_refused(tmp_path):
    link = tmp_path / "ckpt.h5"
    link.symlink_to("missing/new.h5")
    with pytest.raises(FileNotFoundError) as info:
        make_model(seed=1).save(link)
    assert str(link) in str(info.value)
    assert str(tmp_path / "missing") in str(info.value)
    assert os.readlink(link) == "missing/new.h5"

    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(OSError) as info:
        lk.io.atomic.atomic_write(tmp_path / "a", write_bytes(b"new"))
    assert info.value.errno == errno.ELOOP
    assert str(tmp_path / "a") in str(info.value)
    assert os.readlink(tmp_path / "a") == "b"


def test_symlink_to_a_folder_is_refused(tmp_path):
    (tmp_path / "folder").mkdir()
    link = tmp_path / "ckpt.h5"
    link.symlink_to("folder")
    with pytest.raises(IsADirectoryError) as info:
        make_model(seed=1).save(link)
    assert str(link) in str(info.value)
    assert link.is_symlink()
    assert os.listdir(tmp_path / "folder") == []


# --- (e) permission bits and owner -----------------------------------------------------------
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
@pytest.mark.parametrize("method", ["save", "save_weights"])
def test_overwriting_keeps_the_permission_bits(tmp_path, method, mode):
    target = tmp_path / "ckpt.h5"
    getattr(make_model(seed=1), method)(target)
    os.chmod(target, mode)
    if mode == 0o444 and os.geteuid() != 0:
        os.chmod(target, 0o644)  # a non-root owner could not have written it with open()
        mode = 0o644
    getattr(make_model(seed=2), method)(target)
    assert stat_mode(target) == mode


def stat_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o7777


def test_a_new_file_gets_the_mode_open_would_give(tmp_path):
    previous = os.umask(0o027)
    try:
        make_model(seed=1).save(tmp_path / "new.h5")
        with open(tmp_path / "by_open", "w"):
            pass
    finally:
        os.umask(previous)
    assert stat_mode(tmp_path / "new.h5") == stat_mode(tmp_path / "by_open") == 0o640


def test_overwriting_through_a_symlink_keeps_the_target_mode(tmp_path):
    real = tmp_path / "real.h5"
    real.write_bytes(b"old")
    os.chmod(real, 0o600)
    (tmp_path / "link.h5").symlink_to("real.h5")
    lk.io.atomic.atomic_write(tmp_path / "link.h5", write_bytes(b"new"))
    assert real.read_bytes() == b"new"
    assert stat_mode(real) == 0o600


def test_overwriting_keeps_owner_and_group_when_allowed(tmp_path):
    target = tmp_path / "ckpt.h5"
    target.write_bytes(b"old")
    if os.geteuid() == 0:
        os.chown(target, 65534, 65534)  # root may give the new file the old owner
    before = os.stat(target)
    lk.io.atomic.atomic_write(target, write_bytes(b"new"))
    after = os.stat(target)
    assert target.read_bytes() == b"new"
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert after.st_ino != before.st_ino  # really a new file, renamed over the old one


# --- (f) a writable file in a read-only folder: in place, with a warning --------------------
@pytest.fixture
def read_only_folder(monkeypatch, tmp_path):
    """``(folder, elsewhere, lock)``: after ``lock()``, creating a temporary file in
    ``folder`` fails as in a read-only folder (root ignores chmod); the system temporary
    folder is ``elsewhere``, so that the test sees what is left there."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    elsewhere = tmp_path / "system_tmp"
    elsewhere.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    create = lk.io.atomic._create_temporary

    def refuse(path, mode):
        if os.path.dirname(path) == str(folder):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        create(path, mode)

    def lock():
        monkeypatch.setattr(lk.io.atomic, "_create_temporary", refuse)

    return folder, elsewhere, lock


@pytest.mark.parametrize("method", ["save", "save_weights"])
def test_read_only_folder_falls_back_to_an_in_place_copy(read_only_folder, method):
    folder, elsewhere, lock = read_only_folder
    target = folder / "ckpt.h5"
    old, new = make_model(seed=1), make_model(seed=2)
    getattr(old, method)(target)
    os.chmod(target, 0o600)
    inode = os.stat(target).st_ino
    lock()
    with pytest.warns(UserWarning, match="not atomic") as caught:
        getattr(new, method)(target)
    message = str(caught[0].message)
    assert str(folder) in message
    assert "not writable" in message
    assert which_set(loaded_weights(target, method), [new.get_weights()]) == 0
    assert os.stat(target).st_ino == inode  # the same file, overwritten in place
    assert stat_mode(target) == 0o600
    assert os.listdir(folder) == ["ckpt.h5"]
    assert os.listdir(elsewhere) == []  # the temporary copy is removed


def test_read_only_folder_without_the_file_raises_permission_error(read_only_folder):
    folder, elsewhere, lock = read_only_folder
    target = folder / "ckpt.h5"
    lock()
    with pytest.raises(PermissionError) as info:
        make_model(seed=1).save(target)
    assert str(folder) in str(info.value)
    assert "not writable" in str(info.value)
    assert os.listdir(folder) == []
    assert os.listdir(elsewhere) == []


def test_in_place_copy_cuts_a_longer_old_file(read_only_folder):
    folder, _, lock = read_only_folder
    target = folder / "data.bin"
    target.write_bytes(b"x" * 100_000)
    lock()
    with pytest.warns(UserWarning, match="not atomic"):
        lk.io.atomic.atomic_write(target, write_bytes(b"short"))
    assert target.read_bytes() == b"short"
    big = bytes(range(256)) * 10_000  # several copy chunks
    with pytest.warns(UserWarning, match="not atomic"):
        lk.io.atomic.atomic_write(target, write_bytes(big))
    assert target.read_bytes() == big


def test_read_only_folder_and_read_only_file_raise_permission_error(read_only_folder, monkeypatch):
    folder, elsewhere, lock = read_only_folder
    target = folder / "ckpt.h5"
    make_model(seed=1).save(target)
    previous = target.read_bytes()
    lock()
    real_open = os.open

    def refuse_writing(path, flags, *args, **kwargs):
        # What a read-only file gives a user that is not root.
        if os.fspath(path) == str(target) and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_writing)
    # No "not atomic" warning: nothing is attempted.
    with warnings_as_errors(), pytest.raises(PermissionError) as info:
        make_model(seed=2).save(target)
    monkeypatch.undo()
    assert info.value.errno == errno.EACCES
    assert str(target) in str(info.value)
    assert str(folder) in str(info.value)
    assert "not writable" in str(info.value)
    assert target.read_bytes() == previous
    assert os.listdir(elsewhere) == []


@contextlib.contextmanager
def warnings_as_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _failing_write(kind: str):
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"half a new file")
        if kind == "interrupt":
            raise KeyboardInterrupt
        raise OSError(errno.ENOSPC, "No space left on device")

    return write


@pytest.mark.parametrize("kind", ["oserror", "interrupt"])
@pytest.mark.parametrize("path", ["atomic", "in_place"])
def test_failing_write_callback_leaves_the_old_file_in_both_paths(
    tmp_path, monkeypatch, path, kind
):
    elsewhere = tmp_path / "system_tmp"
    elsewhere.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    folder = tmp_path / "folder"
    folder.mkdir()
    target = folder / "ckpt.bin"
    target.write_bytes(b"the old checkpoint")
    os.chmod(target, 0o600)
    inode = os.stat(target).st_ino
    if path == "in_place":

        def refuse(tmp, mode):
            raise PermissionError(errno.EACCES, "Permission denied", tmp)

        monkeypatch.setattr(lk.io.atomic, "_create_temporary", refuse)
    expected = KeyboardInterrupt if kind == "interrupt" else OSError
    expect_warning = pytest.warns(UserWarning, match="not atomic")
    expect_warnings = warnings_as_errors() if path == "atomic" else expect_warning
    with expect_warnings, pytest.raises(expected) as info:
        lk.io.atomic.atomic_write(target, _failing_write(kind))
    if kind == "oserror":
        assert info.value.errno == errno.ENOSPC
        assert str(target) in str(info.value)
        assert "unchanged" in str(info.value)
    assert target.read_bytes() == b"the old checkpoint"
    assert os.stat(target).st_ino == inode
    assert stat_mode(target) == 0o600
    assert os.listdir(folder) == ["ckpt.bin"]
    assert os.listdir(elsewhere) == []


@pytest.mark.parametrize("method", ["save", "save_weights"])
def test_in_place_fallback_h5py_failure_leaves_the_old_checkpoint(
    read_only_folder, monkeypatch, method
):
    folder, elsewhere, lock = read_only_folder
    target = folder / "ckpt.h5"
    old = make_model(seed=1)
    getattr(old, method)(target)
    previous = target.read_bytes()
    lock()
    with monkeypatch.context() as patch:
        _fail_in_write(patch)
        with pytest.warns(UserWarning, match="not atomic"), pytest.raises(OSError) as info:
            getattr(make_model(seed=2), method)(target)
    assert info.value.errno == errno.ENOSPC
    assert str(target) in str(info.value)
    assert target.read_bytes() == previous
    assert os.listdir(elsewhere) == []


def small_model(seed: int = 0) -> lk.Sequential:
    lk.utils.set_random_seed(seed)
    return lk.Sequential([lk.layers.Input((20,)), lk.layers.Dense(3, name="out")])


READ_ONLY_FALLBACK_CHECK = r"""
import os, sys, warnings
import layerkit as lk
target, method = sys.argv[1:3]
lk.utils.set_random_seed(2)
model = lk.Sequential([lk.layers.Input((20,)), lk.layers.Dense(3, name="out")])
os.setgid(65534)
os.setuid(65534)  # nobody: chmod applies again
assert not os.access(os.path.dirname(target), os.W_OK)
assert os.access(target, os.W_OK)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    getattr(model, method)(target)
print("WARN", " | ".join(str(w.message) for w in caught if w.category is UserWarning))
model.save_weights(os.environ["TMPDIR"] + "/expected.h5")
"""


@pytest.mark.parametrize("method", ["save", "save_weights"])
def test_real_read_only_folder_with_a_writable_file_saves_in_place(method):
    """The fallback with the kernel refusing the folder, not a monkeypatch: as user nobody
    in a child process when the tests run as root."""
    with tempfile.TemporaryDirectory(dir="/tmp" if os.path.isdir("/tmp") else None) as top:
        folder = Path(top) / "readonly"
        folder.mkdir()
        target = folder / "ckpt.h5"
        scratch = Path(top) / "scratch"  # the child's system temporary folder
        scratch.mkdir()
        os.chmod(scratch, 0o777)
        getattr(make_model(seed=1), method)(target)
        os.chmod(target, 0o600)
        os.chmod(folder, 0o500)
        try:
            if os.access(folder, os.W_OK):
                if os.geteuid() != 0 or not hasattr(os, "setuid"):
                    pytest.skip("chmod does not make the folder read-only here")
                os.chmod(top, 0o755)
                os.chown(folder, 65534, 65534)
                os.chown(target, 65534, 65534)
                result = subprocess.run(
                    [sys.executable, "-c", READ_ONLY_FALLBACK_CHECK, str(target), method],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    env=dict(subprocess_env(), TMPDIR=str(scratch)),
                )
                assert result.returncode == 0, result.stderr
                line = result.stdout.strip().splitlines()[-1]
                assert line.startswith("WARN "), result.stdout
                assert "not atomic" in line
                assert str(folder) in line
                assert os.stat(target).st_uid == 65534
                expected_model = small_model()
                expected_model.load_weights(scratch / "expected.h5")
                expected = expected_model.get_weights()
                os.remove(scratch / "expected.h5")
            else:
                model = small_model(seed=2)
                tempfile.tempdir, saved = str(scratch), tempfile.tempdir
                try:
                    with pytest.warns(UserWarning, match="not atomic"):
                        getattr(model, method)(target)
                finally:
                    tempfile.tempdir = saved
                expected = model.get_weights()
            checker = small_model()
            checker.load_weights(target)
            assert which_set(checker.get_weights(), [expected]) == 0
            assert stat_mode(target) == 0o600
            assert os.listdir(folder) == ["ckpt.h5"]
            assert os.listdir(scratch) == []
        finally:
            os.chmod(folder, 0o700)
