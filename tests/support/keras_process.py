"""Run a Keras reference script in a subprocess, for the tests that check layerkit against
Keras 3.

Each such test module runs all its Keras work in ONE subprocess (``KERAS_BACKEND=torch``, no
GPU): importing Keras takes seconds, so it happens once per module, and layerkit's own test
process stays free of any torch or Keras state. Each script exits with code 3 after printing
``KERAS_UNAVAILABLE`` when it cannot import Keras; that becomes a test failure with an install
hint rather than a skip. Pytest puts this folder on ``sys.path`` (``pythonpath`` in
``pyproject.toml``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The first lines of every child script: Keras, or the exit code run_keras reports as
# "not installed" (a backend that cannot start counts too).
IMPORT_KERAS = """\
try:
    import keras
except Exception as error:  # ImportError, or a backend that cannot start
    print(f"KERAS_UNAVAILABLE: {type(error).__name__}: {error}")
    sys.exit(3)"""

INSTALL_HINT = (
    "These tests need Keras 3 with the PyTorch backend (CI installs them): install the test "
    "extra, pip install -e '.[test]', or pip install 'keras>=3' torch."
)


def run_keras(
    script: str, *args: str, cwd: str | Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c script *args`` with the torch backend on the CPU; fail the test with an
    install hint if Keras is missing, or with its output if it exits non-zero."""
    env = dict(os.environ, KERAS_BACKEND="torch", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )
    if result.returncode == 3 and "KERAS_UNAVAILABLE" in result.stdout:
        pytest.fail(f"{INSTALL_HINT}\n{result.stdout.strip()}", pytrace=False)
    if result.returncode != 0:
        pytest.fail(
            f"Keras subprocess failed (exit code {result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return result
