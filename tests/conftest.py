"""Shared fixtures for the layerkit test suite.

Test files are imported with ``--import-mode=importlib`` and cannot import one another,
so everything they share lives here as fixtures.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import layerkit as lk


@pytest.fixture(scope="session")
def keras():
    """Real Keras 3 on the PyTorch backend (the test extra installs it), imported once.

    A missing Keras fails the tests that compare against it instead of skipping them:
    a skipped comparison checks nothing.
    """
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError as error:  # pragma: no cover - the test extra has it
        pytest.fail(f"real Keras 3 is needed: pip install -e '.[test]' ({error})")
    return keras


@pytest.fixture
def float64():
    """Computes in float64 for the duration of the test (gradient checks)."""
    with lk.backend.floatx_scope("float64"):
        yield "float64"


@pytest.fixture
def fresh_session():
    """Restarts automatic layer names and seeds every generator with 0."""
    lk.utils.clear_session()
    lk.utils.set_random_seed(0)
    yield
    lk.utils.clear_session()


@pytest.fixture
def rng() -> np.random.Generator:
    """A local, seeded generator for test data (independent of layerkit's)."""
    return np.random.default_rng(1234)


@pytest.fixture
def numeric_grad() -> Callable[..., np.ndarray]:
    """``numeric_grad(f, x, eps=1e-6)``: central-difference gradient of ``f()`` w.r.t. ``x``.

    ``x`` is perturbed in place, one element at a time, and restored afterwards, so it
    can be a weight's live value array (``lk.testing.numeric_gradient``).
    """
    return lk.testing.numeric_gradient
