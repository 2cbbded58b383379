"""Fixtures that launch ``mpiexec``: these tests need the ``mpi`` extra and never skip.

CI installs it (``pip install -e ".[test,mpi]"``), so a missing mpi4py or ``mpiexec`` is a
broken set-up, reported as a failure that says what to install.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import ModuleType

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKER = os.path.join(HERE, "mpi_worker.py")
INSTALL = 'pip install -e ".[test,mpi]"'


@dataclasses.dataclass
class Launch:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def find_mpiexec() -> str | None:
    """``mpiexec`` next to this Python first (the mpich wheel puts it in the venv's bin),
    then on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    return shutil.which("mpiexec")


@pytest.fixture(scope="session")
def mpiexec() -> str:
    if importlib.util.find_spec("mpi4py") is None:
        pytest.fail(f"mpi4py is not installed; the distributed tests need it: {INSTALL}")
    path = find_mpiexec()
    if path is None:
        pytest.fail(f"No mpiexec next to {sys.executable} or on PATH: {INSTALL}")
    return path


def launch(mpiexec: str, ranks: int, args: list[str], cwd, timeout: float, what: str) -> Launch:
    """Runs ``mpiexec -n RANKS python ARGS...`` in ``cwd``; fails the test if it is still
    running after ``timeout`` seconds (a rank waiting forever), after killing it whole."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    # One BLAS thread per rank: 3 ranks on 2 cores, each with a thread per core, are
    # an order of magnitude slower. Set here, for these commands only.
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.setdefault("MPLBACKEND", "Agg")
    command = [mpiexec, "-n", str(ranks), sys.executable, *map(str, args)]
    result = _launch_once(command, env, cwd, timeout, ranks, what)
    if result.returncode != 0 and not result.stdout and not result.stderr:
        # A job that ends at once with no output at all never reached Python (a rank
        # prints a traceback, layerkit's abort hook a line): the launcher itself failed
        # to start it, as seen once in CI on a loaded machine. Start it once more.
        result = _launch_once(command, env, cwd, timeout, ranks, what)
    return result


def _launch_once(command, env, cwd, timeout: float, ranks: int, what: str) -> Launch:
    start = time.monotonic()
    # A session of its own, so that a hung job is killed whole (mpiexec, its proxies
    # and every rank), not just mpiexec.
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(
            f"mpiexec -n {ranks} ({what}) still ran after {timeout} s: a rank is waiting "
            f"forever.\nstdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}"
        )
    return Launch(process.returncode, stdout, stderr, time.monotonic() - start)


@pytest.fixture
def run_mpi(mpiexec) -> Callable[..., Launch]:
    """``run_mpi(ranks, mode, directory, timeout=120)`` runs ``mpi_worker.py MODE DIR`` on
    ``ranks`` ranks and returns its exit status, output and wall time."""

    def run(ranks: int, mode: str, directory, timeout: float = 120) -> Launch:
        return launch(mpiexec, ranks, [WORKER, mode, directory], directory, timeout, mode)

    return run


@pytest.fixture
def run_mpi_script(mpiexec) -> Callable[..., Launch]:
    """``run_mpi_script(ranks, args, cwd, timeout=60)`` runs ``python ARGS...`` (a script
    and its arguments) on ``ranks`` ranks and returns its exit status, output and wall time."""

    def run(ranks: int, args: list, cwd, timeout: float = 60) -> Launch:
        return launch(mpiexec, ranks, args, cwd, timeout, " ".join(map(str, args))[:200])

    return run


@pytest.fixture(scope="session")
def worker() -> ModuleType:
    """``mpi_worker.py`` imported in this process, for single-process reference runs."""
    spec = importlib.util.spec_from_file_location("layerkit_mpi_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
