"""Seeding. One process-wide generator feeds weight initialisation and new models.

``set_random_seed(seed)`` makes initialisation, shuffling and dropout reproducible:
every draw that is not given its own seed comes from this generator, and each model
takes its own shuffling generator from it when it first trains (that generator's
state is stored in checkpoints, so a resumed run shuffles as an unbroken one would).
"""

from __future__ import annotations

import random as _py_random

import numpy as np

_global_rng = np.random.default_rng()


def set_random_seed(seed: int) -> None:
    """Seeds layerkit, numpy's legacy global generator and Python's ``random``.

    Args:
        seed: a non-negative integer.

    Example:
        >>> import layerkit as lk
        >>> lk.utils.set_random_seed(42)
    """
    global _global_rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"Expected a non-negative integer seed. Received: seed={seed!r}")
    _global_rng = np.random.default_rng(int(seed))
    np.random.seed(int(seed) % 2**32)  # noqa: NPY002 - user code may use the legacy API
    _py_random.seed(int(seed))


def global_rng() -> np.random.Generator:
    """Returns the process-wide generator (replaced by each ``set_random_seed``)."""
    return _global_rng


def make_rng(seed: int | None = None) -> np.random.Generator:
    """Returns a new generator: from ``seed`` if given, else drawn from the global one."""
    if seed is None:
        seed = int(_global_rng.integers(0, 2**63 - 1))
    return np.random.default_rng(seed)


def rng_state(rng: np.random.Generator) -> dict:
    """Returns a JSON-serialisable snapshot of a generator's state."""
    return rng.bit_generator.state


def rng_from_state(state: dict) -> np.random.Generator:
    """Rebuilds a generator from :func:`rng_state`'s snapshot (PCG64 only)."""
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
        raise ValueError(f"Expected a PCG64 generator state. Received: {state!r:.200}")
    bit_generator = np.random.PCG64()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
