"""A failure on any one rank ends the whole ``mpiexec`` job, with a message, not a hang.

``MPI.guard`` ends every rank when one raises inside ``fit`` or ``evaluate``; the
``sys.excepthook`` that ``lk.distributed.MPI()`` installs covers the rest of a script, such
as rank 0 alone saving or plotting after ``fit`` while the other ranks wait in
``evaluate``. Each job here runs under a timeout (``run_mpi_script``): a hang fails the test
instead of blocking the suite.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import textwrap

import pytest

from layerkit import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")
TIMEOUT = 90  # a hang is caught; a job that ends properly takes a few seconds
ABORTED = "aborting every rank (MPI_Abort)"


def mnist_folder() -> str | None:
    """The MNIST files these runs read; never downloaded (the tests skip without them)."""
    beside_repo = os.path.join(os.path.dirname(ROOT), "shared", "data")
    for root in (os.environ.get("LAYERKIT_DATA"), beside_repo):
        if root and os.path.isdir(os.path.join(root, "mnist")):
            return os.path.join(root, "mnist")
    return None


needs_mnist = pytest.mark.skipif(mnist_folder() is None, reason="no MNIST under $LAYERKIT_DATA")


def write_script(tmp_path, text: str) -> str:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(text))
    return str(path)


# --- the hook, in this process ----------------------------------------------------------
class FakeWorld:
    def __init__(self, size: int) -> None:
        self.size, self.aborted = size, []

    def Get_size(self) -> int:
        return self.size

    def Get_rank(self) -> int:
        return 1

    def Abort(self, code: int) -> None:
        self.aborted.append(code)


def test_abort_hook_chains_the_previous_hook_and_installs_once(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *info: seen.append(info[1]))
    monkeypatch.setattr(distributed, "_abort_hook_installed", False)
    world = FakeWorld(size=2)
    distributed._install_abort_hook(world)
    hook = sys.excepthook
    distributed._install_abort_hook(FakeWorld(size=2))  # a second MPI(): no second hook
    assert sys.excepthook is hook
    error = ValueError("boom")
    sys.excepthook(ValueError, error, None)
    assert seen == [error]  # the previous hook printed it
    assert world.aborted == [1]
    assert f"rank 1 of 2 ended with an uncaught ValueError; {ABORTED}" in capsys.readouterr().err


def test_abort_hook_aborts_even_when_the_previous_hook_fails(monkeypatch):
    def broken(*info):
        raise RuntimeError("the previous hook failed")

    monkeypatch.setattr(sys, "excepthook", broken)
    monkeypatch.setattr(distributed, "_abort_hook_installed", False)
    world = FakeWorld(size=2)
    distributed._install_abort_hook(world)
    with pytest.raises(RuntimeError):  # a real Abort never returns; the fake one does
        sys.excepthook(ValueError, ValueError("boom"), None)
    assert world.aborted == [1]


def test_abort_hook_is_not_installed_for_a_single_rank(monkeypatch):
    previous = sys.excepthook
    monkeypatch.setattr(distributed, "_abort_hook_installed", False)
    distributed._install_abort_hook(FakeWorld(size=1))
    assert sys.excepthook is previous
    assert distributed._abort_hook_installed is False


# --- under mpiexec -----------------------------------------------------------------------
def test_uncaught_exception_on_one_rank_ends_every_rank(run_mpi_script, tmp_path):
    script = write_script(
        tmp_path,
        """
        import sys

        import layerkit as lk

        def users_hook(kind, value, tb):
            print(f"users hook saw {kind.__name__}", file=sys.stderr)
            sys.__excepthook__(kind, value, tb)

        sys.excepthook = users_hook
        strategy = lk.distributed.MPI()
        lk.distributed.MPI()  # a second strategy must not add a second hook
        if strategy.rank == 0:
            raise ValueError("rank 0 failed outside fit")
        strategy.barrier()  # without the hook, rank 1 waits here for ever
        print(f"rank {strategy.rank} passed the barrier")
        """,
    )
    launch = run_mpi_script(2, [script], tmp_path, timeout=TIMEOUT)
    assert launch.returncode != 0
    assert "passed the barrier" not in launch.stdout
    assert "ValueError: rank 0 failed outside fit" in launch.stderr
    assert launch.stderr.count("users hook saw ValueError") == 1
    assert launch.stderr.count(f"rank 0 of 2 ended with an uncaught ValueError; {ABORTED}") == 1
    assert launch.seconds < TIMEOUT / 3


@needs_mnist
def test_example_failure_after_fit_on_rank_0_ends_every_rank(run_mpi_script, tmp_path):
    # The final save runs on rank 0 alone, after fit and before evaluate's collectives.
    script = write_script(
        tmp_path,
        f"""
        import sys

        sys.path.insert(0, {EXAMPLES!r})
        import mnist_mlp

        import layerkit as lk

        real_save = lk.Sequential.save

        def save(self, path, *args, **kwargs):
            if str(path).endswith("final.h5"):
                raise OSError(f"[Errno 28] No space left on device: {{str(path)!r}}")
            return real_save(self, path, *args, **kwargs)

        lk.Sequential.save = save
        mnist_mlp.main(
            ["--distributed", "--quick", "--data", {mnist_folder()!r}, "--out", "final.h5"]
        )
        """,
    )
    launch = run_mpi_script(2, [script], tmp_path, timeout=TIMEOUT)
    assert launch.returncode != 0
    assert "OSError: [Errno 28] No space left on device" in launch.stderr
    assert f"rank 0 of 2 ended with an uncaught OSError; {ABORTED}" in launch.stderr
    assert "test_accuracy=" not in launch.stdout
    assert launch.seconds < TIMEOUT * 2 / 3


def test_example_refuses_a_folder_as_out_on_every_rank_before_training(run_mpi_script, tmp_path):
    example = os.path.join(EXAMPLES, "mnist_mlp.py")
    folder = tmp_path / "existing"
    folder.mkdir()
    launch = run_mpi_script(
        2, [example, "--distributed", "--quick", "--out", folder], tmp_path, timeout=TIMEOUT
    )
    assert launch.returncode == 2
    message = (
        f"error: --out: expected a file to write, got an existing folder. Received: {str(folder)!r}"
    )
    assert launch.stderr.count(message) == 2  # each rank says it and stops
    assert "Epoch 1/1" not in launch.stdout  # before training
    assert launch.seconds < TIMEOUT / 3


@needs_mnist
def test_example_plot_into_a_missing_folder_ends_on_every_rank(run_mpi_script, tmp_path):
    example = os.path.join(EXAMPLES, "mnist_mlp.py")
    args = [example, "--distributed", "--quick", "--data", mnist_folder()]
    args += ["--out", "m.h5", "--plot", os.path.join("nodir", "p.png")]
    launch = run_mpi_script(2, args, tmp_path, timeout=TIMEOUT)
    if importlib.util.find_spec("matplotlib") is None:  # refused before training
        assert launch.returncode == 2
        assert launch.stderr.count("error: --plot needs matplotlib") == 2
        assert "Epoch 1/1" not in launch.stdout
    else:  # the folder is created, as Keras creates a checkpoint's folders
        assert launch.returncode == 0, launch.stderr
        assert "test_accuracy=" in launch.stdout
        assert (tmp_path / "nodir" / "p.png").stat().st_size > 0
    assert launch.seconds < TIMEOUT * 2 / 3
