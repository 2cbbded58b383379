"""Running the examples as a user does, for the tests under tests/examples: in a
subprocess, on MNIST given by ``--data`` (never a download)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def mnist_folder() -> str | None:
    """``$LAYERKIT_DATA/mnist``, else ``../shared/data/mnist``, if it exists."""
    for root in (os.environ.get("LAYERKIT_DATA"), str(ROOT.parent / "shared" / "data")):
        if root and os.path.isdir(os.path.join(root, "mnist")):
            return os.path.join(root, "mnist")
    return None


needs_mnist = pytest.mark.skipif(mnist_folder() is None, reason="no MNIST under $LAYERKIT_DATA")


def run(
    example: str, *args, cwd=None, timeout: float = 60, path=None
) -> subprocess.CompletedProcess:
    """``python examples/EXAMPLE ARGS...`` with this checkout first on the path (and
    ``path`` before it), plots written without a display."""
    env = dict(os.environ)
    first = [str(path)] if path is not None else []
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [*first, str(ROOT), env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "Agg"
    return subprocess.run(
        [sys.executable, str(EXAMPLES / example), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )
