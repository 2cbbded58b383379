"""The interface the trainer calls a distribution strategy through.

The trainer never imports :mod:`layerkit.distributed` (nor mpi4py): ``fit(distribute=s)``
takes any object with these methods, and ``lk.distributed.MPI`` is the one layerkit
ships. One process needs no strategy at all (``distribute=None``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Strategy(Protocol):
    """What data-parallel training asks of the ranks of a job."""

    rank: int
    size: int

    @property
    def is_chief(self) -> bool:
        """Whether this rank prints and saves (rank 0)."""

    def shard(self, rows: int) -> tuple[int, int]:
        """This rank's contiguous share ``[first, stop)`` of ``rows`` rows."""

    def allreduce_gradients(self, grads: np.ndarray) -> None:
        """Sums ``grads`` over the ranks, in place."""

    def sum(self, values: np.ndarray) -> np.ndarray:
        """The sum over the ranks of a small array (running totals of the logs)."""

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (a callback stopping training)."""

    def gather(self, obj: Any, root: int = 0) -> list[Any] | None:
        """Every rank's ``obj`` on ``root`` (None elsewhere)."""

    def check_same(self, what: str, **values: Any) -> None:
        """Raises on every rank if the ranks disagree on ``values``."""

    def guard(self, what: str) -> AbstractContextManager[None]:
        """A context in which an exception on one rank ends every rank."""

    def broadcast_training_state(self, model) -> None:
        """Gives every rank rank 0's weights, optimizer state and position."""

    def spread_layer_states(self, model) -> None:
        """Starts each epoch from rank 0's layer states (random layers then draw the global
        batch's masks by row, as one process)."""

    def restore_rank_layer_states(self, model, states: list | None) -> bool:
        """Restores each rank's per-rank layer states from a mid-epoch backup (random
        layers need only rank 0's)."""


def check_strategy(distribute: Any) -> Strategy | None:
    """Validates a ``distribute=`` argument: None or a strategy (``lk.distributed.MPI()``)."""
    if distribute is None or isinstance(distribute, Strategy):
        return distribute
    raise TypeError(
        "Expected distribute=None or an lk.distributed.MPI() instance. "
        f"Received: distribute={distribute!r:.100} of type {type(distribute).__name__}"
    )


__all__ = ["Strategy", "check_strategy"]
