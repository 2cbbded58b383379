"""Data-parallel training over MPI: N processes, one model each, the numbers of one process.

Every rank holds the whole model. ``fit(..., distribute=lk.distributed.MPI())`` makes all
ranks start from rank 0's weights, optimizer state and shuffling generator, so they draw
the same permutation each epoch. Each global batch of ``batch_size`` samples is split
across the ranks (:func:`shard_bounds`), each rank computes the gradient of its share with
the loss scaled by ``local rows / global rows``, one in-place ``Allreduce`` over the
model's contiguous gradient arena sums them into the gradient of the global-batch mean,
and every rank applies the same optimizer update. Losses and metrics are summed across
ranks, so the logs are the single-process ones.

mpi4py is imported only when :class:`MPI` is created: ``import layerkit`` never loads it.
Install it with ``pip install "layerkit[mpi]"`` (mpi4py and the MPICH wheel, which puts
``mpiexec`` next to the Python executable).

Example:
    >>> # train.py, run as: mpiexec -n 4 python train.py
    >>> import layerkit as lk
    >>> strategy = lk.distributed.MPI()
    >>> history = model.fit(x, y, batch_size=256, epochs=5, distribute=strategy)
    >>> if strategy.is_chief:
    ...     model.save("model.h5")

See ``docs/distributed.md`` for the remainder rule, fault handling and when it pays off.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

from .parameter import note_change
from .random import rng_from_state, rng_state

__all__ = ["MPI", "barrier", "check_distribute", "is_chief", "shard_bounds"]

_INSTALL_HINT = 'pip install "layerkit[mpi]" (mpi4py and an MPI runtime such as the mpich wheel)'


def shard_bounds(rows: int, size: int, rank: int) -> tuple[int, int]:
    """The rows ``[start, stop)`` of a batch of ``rows`` that rank ``rank`` of ``size`` takes.

    The remainder rule: every rank gets ``rows // size`` rows and the first
    ``rows % size`` ranks one more, in rank order (as ``np.array_split``). A rank can get
    none when ``rows < size``; it then contributes a zero gradient.

    Args:
        rows: rows in the global batch (>= 0).
        size: number of ranks (>= 1).
        rank: this rank, in ``[0, size)``.

    Returns:
        ``(start, stop)`` offsets into the batch.

    Example:
        >>> [shard_bounds(50, 3, r) for r in range(3)]
        [(0, 17), (17, 34), (34, 50)]
    """
    if size < 1 or not 0 <= rank < size or rows < 0:
        raise ValueError(
            f"Expected rows >= 0, size >= 1 and 0 <= rank < size. "
            f"Received: rows={rows}, size={size}, rank={rank}"
        )
    base, extra = divmod(rows, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class MPI:
    """Data-parallel training over the ranks of an MPI communicator.

    Pass it to ``fit`` and ``evaluate`` as ``distribute=``. Create it once per process;
    every rank must make the same calls in the same order (MPI collectives). With more
    than one rank, creating it also makes an uncaught exception anywhere in the script
    end every rank (``MPI_Abort``) rather than leave the others waiting for ever.

    Args:
        comm: an ``mpi4py`` intra-communicator; ``MPI.COMM_WORLD`` when None.

    Attributes:
        comm: the communicator.
        rank, size: this process's rank and the number of ranks.
        is_chief: whether this is rank 0, the one that prints and saves.
        allreduce_seconds, allreduce_steps: wall time spent in the gradient ``Allreduce``
            and how many were made, since creation (it includes waiting for slower ranks).

    Raises:
        ImportError: mpi4py (or its MPI library) is not installed.
        TypeError: ``comm`` is not an mpi4py intra-communicator.

    Example:
        >>> strategy = lk.distributed.MPI()
        >>> strategy.rank, strategy.size
        (0, 2)
    """

    def __init__(self, comm: Any = None) -> None:
        try:
            from mpi4py import MPI as mpi  # here, not at the top: import layerkit stays light
        except ImportError as error:
            raise ImportError(
                f"lk.distributed.MPI() needs mpi4py and an MPI runtime: {_INSTALL_HINT}. ({error})"
            ) from error
        if comm is None:
            comm = mpi.COMM_WORLD
        if not isinstance(comm, mpi.Intracomm):
            raise TypeError(
                "Expected an mpi4py intra-communicator (such as MPI.COMM_WORLD). "
                f"Received: comm={comm!r:.100} of type {type(comm).__name__}"
            )
        self._mpi = mpi
        self.comm = comm
        self.rank: int = comm.Get_rank()
        self.size: int = comm.Get_size()
        self.allreduce_seconds = 0.0
        self.allreduce_steps = 0
        # (global rows, first, stop) of the last batch shard() split, and the model whose
        # fit handed its random layers to this strategy (see batch_share).
        self._batch: tuple[int, int, int] | None = None
        self._fitting: weakref.ref | None = None
        _install_abort_hook(mpi.COMM_WORLD)
        _warn_if_oversubscribed()

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        return f"lk.distributed.MPI(rank={self.rank}, size={self.size})"

    # --- collectives --------------------------------------------------------------------
    def shard(self, rows: int) -> tuple[int, int]:
        """This rank's ``(start, stop)`` in a batch of ``rows`` (see :func:`shard_bounds`).

        The trainer calls it on every rank before each step (also on a rank left without
        rows), so it also remembers the batch for :meth:`batch_share`."""
        start, stop = shard_bounds(rows, self.size, self.rank)
        self._batch = (rows, start, stop)
        return start, stop

    def batch_share(self, rows: int) -> tuple[int, int] | None:
        """``(global rows, first row)`` of the batch being trained when this rank holds
        ``rows`` rows of it: what a random layer needs to draw its rows' part of the global
        batch's masks. None when no distributed fit of the model is in progress or the
        call is not of this rank's share (a callback calling the model on other data)."""
        model = None if self._fitting is None else self._fitting()
        batch = self._batch
        if model is None or model.distribute is not self or batch is None:
            return None
        total, start, stop = batch
        return (total, start) if stop - start == rows else None

    def allreduce_gradients(self, grads: np.ndarray) -> None:
        """Sums ``grads`` (a contiguous array) over the ranks, in place, and times it."""
        start = time.perf_counter()
        self.comm.Allreduce(self._mpi.IN_PLACE, grads, op=self._mpi.SUM)
        self.allreduce_seconds += time.perf_counter() - start
        self.allreduce_steps += 1

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Sums a float64 array over the ranks, in place; returns it."""
        if self.size > 1:
            self.comm.Allreduce(self._mpi.IN_PLACE, values, op=self._mpi.SUM)
        return values

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank."""
        if self.size == 1:
            return bool(flag)
        return bool(self.comm.allreduce(bool(flag), op=self._mpi.LOR))

    def broadcast(self, obj: Any, root: int = 0) -> Any:
        """Rank ``root``'s ``obj`` (any picklable object) on every rank."""
        return obj if self.size == 1 else self.comm.bcast(obj, root=root)

    def gather(self, obj: Any, root: int = 0) -> list[Any] | None:
        """Every rank's ``obj`` (picklable), as a list on rank ``root``; None elsewhere."""
        return [obj] if self.size == 1 else self.comm.gather(obj, root=root)

    def barrier(self) -> None:
        """Waits until every rank gets here (after rank 0 has saved a file, say)."""
        if self.size > 1:
            self.comm.Barrier()

    def check_same(self, what: str, **values: Any) -> None:
        """Raises ValueError on every rank unless each value is equal on all ranks.

        Cheap insurance against ranks that load different data: with different sample
        counts they would make different numbers of collective calls and wait forever.
        """
        if self.size == 1:
            return
        everyone = self.comm.allgather(values)
        for key, mine in everyone[0].items():
            for rank, theirs in enumerate(everyone):
                if theirs.get(key) != mine:
                    raise ValueError(
                        f"{what}(distribute=...) needs the same {key} on every rank. "
                        f"Received: {key}={mine!r} on rank 0 but {theirs.get(key)!r} on "
                        f"rank {rank}."
                    )

    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Turns an exception on any one rank into the end of every rank.

        A rank that raises would leave the others waiting forever in their next
        collective. So with more than one rank, the exception's traceback is printed
        and ``MPI_Abort`` ends the whole job with exit status 1 (MPICH's ``mpiexec``
        then kills every rank). This costs nothing per step, unlike reducing an error
        flag at every step. With one rank the exception propagates as usual.
        """
        try:
            yield
        except BaseException:
            if self.size == 1:
                raise
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                print(
                    f"layerkit: rank {self.rank} of {self.size} raised in {what}(); "
                    "aborting every rank (MPI_Abort).",
                    file=sys.stderr,
                )
                traceback.print_exc()
                sys.stderr.flush()
            self.comm.Abort(1)
            raise  # not reached: Abort does not return

    # --- model state --------------------------------------------------------------------
    def broadcast_training_state(self, model) -> None:
        """Gives every rank rank 0's weights, optimizer state, training position and
        shuffling generator, so they all start (or resume) from the same point."""
        if self.size == 1:
            return
        arena = model._arena
        if arena is not None:
            self.comm.Bcast(arena.values, root=0)
            for p in model.weights:  # caches of frozen outputs must see the new values
                p.version += 1
            note_change()
        else:  # weights outside an arena (not built by Sequential.build): one by one
            for p in model.weights:
                self.comm.Bcast(p.value, root=0)
        position = self.broadcast(
            (
                model._epochs_done,
                model._resume_from_epoch,
                rng_state(model._shuffle_rng),
                model._resume_in_epoch,
            )
        )
        model._epochs_done, model._resume_from_epoch = position[0], position[1]
        model._shuffle_rng = rng_from_state(position[2])
        # A mid-epoch backup holds the running totals of all ranks (summed before the
        # save): rank 0 continues from them and the others from zero, so the sums over
        # the ranks go on as in the uninterrupted run.
        resume = position[3]
        if resume is not None and not self.is_chief:
            resume = {**resume, "loss_total": 0.0, "seen": 0}
            resume["metrics"] = [[0.0, 0] for _ in resume["metrics"]]
        model._resume_in_epoch = resume
        if model.optimizer is not None:
            self._broadcast_optimizer(model.optimizer, model.weights)

    def _broadcast_optimizer(self, optimizer, weights) -> None:
        # The slot arrays go as raw blocks when every rank laid them out alike (the usual
        # case): no copies. Otherwise weight by weight, matched by position (automatic layer
        # names may differ between ranks), still raw: state_dict() rescales Adam's slots,
        # which would change their last bits and let the ranks drift apart.
        layout = (
            [tuple(block.size for block in blocks) for blocks in optimizer._slot_blocks],
            [optimizer._slot_place.get(p.name) for p in weights],
        )
        lr = optimizer._learning_rate
        chief = self.broadcast(
            # _iterations counts apply() calls: with gradient accumulation, the phase too.
            (layout, optimizer._iterations, lr if isinstance(lr, float) else None)
        )
        if not self.any(layout != chief[0]):
            for blocks in optimizer._slot_blocks:
                for block in blocks:
                    self.comm.Bcast(block, root=0)
        else:
            slots = [optimizer._slots.get(p.name) for p in weights]
            theirs = self.broadcast(slots if self.is_chief else None)
            for mine, arrays in zip(slots, theirs):
                if mine is not None and arrays is not None and not self.is_chief:
                    for target, value in zip(mine, arrays):
                        np.copyto(target, value)
        optimizer._iterations = chief[1]
        if chief[2] is not None:
            optimizer.learning_rate = chief[2]

    def restore_rank_layer_states(self, model, states: list | None) -> bool:
        """Restores the layer states of a mid-epoch backup (``states[r]`` for rank ``r``,
        as :meth:`gather` collected them), after :meth:`spread_layer_states`.

        Random layers that draw by position in the global batch (Dropout and the noise
        layers) need nothing more: they hold rank 0's backed-up generators, which are
        every rank's, with any number of ranks (backups of layerkit versions that drew
        per-rank masks included: those masks are not drawn any more). Other layers with a
        state get their own rank's. Returns False, changing nothing, when such a layer
        exists and the backup was taken with another number of ranks or without them."""
        layers = model._stack
        own = [not getattr(layer, "draws_by_global_row", False) for layer in layers]
        if not any(own[i] and layer.training_state() for i, layer in enumerate(layers)):
            return True
        if not states or len(states) != self.size or len(states[self.rank]) != len(layers):
            return False
        for layer, state, per_rank in zip(layers, states[self.rank], own):
            if state and per_rank:
                layer.load_training_state(state)
        return True

    def spread_layer_states(self, model) -> None:
        """Starts each epoch from rank 0's layer states on every rank.

        Random layers that draw by position in the global batch (Dropout and the noise
        layers: ``draws_by_global_row``) keep rank 0's generators as they are and learn
        from :meth:`batch_share` where this rank's rows lie, so every rank draws the masks
        one process would. A rank left without rows in a step does not draw and falls
        behind; this resynchronises it (only the last batch of an epoch, or batches
        smaller than the ranks, leave ranks without rows). Other layers with a state get
        rank 0's with rank ``r``'s generator jumped ``r`` x 2**127 draws ahead."""
        self._fitting = weakref.ref(model)
        layers = model._stack
        by_row = [getattr(layer, "draws_by_global_row", False) for layer in layers]
        for layer, global_rows in zip(layers, by_row):
            if global_rows:
                layer._ranks = weakref.ref(self)
        if self.size == 1:
            return
        states = [layer.training_state() for layer in layers]
        if not any(states):
            return
        states = self.broadcast(states)
        if self.is_chief:
            return
        for layer, state, global_rows in zip(layers, states, by_row):
            if state:
                layer.load_training_state(state if global_rows else _jumped(state, self.rank))


_abort_hook_installed = False


def _install_abort_hook(world: Any) -> None:
    """Makes an uncaught exception on any rank end every rank (once per process).

    :meth:`MPI.guard` covers ``fit`` and ``evaluate``; this covers the rest of the script,
    such as rank 0 alone plotting or saving after ``fit`` while the other ranks wait in a
    collective for ever. As ``python -m mpi4py`` does, the hook prints the traceback
    (through the hook it replaces) and calls ``MPI_Abort`` on ``world``. With one rank
    nothing is installed: the exception ends the process as usual. A ``sys.exit()`` on one
    rank is not an exception Python reports, so it is not covered.
    """
    global _abort_hook_installed
    if _abort_hook_installed or world.Get_size() == 1:
        return
    _abort_hook_installed = True
    previous = sys.excepthook
    rank, size = world.Get_rank(), world.Get_size()

    def abort_every_rank(kind, value, tb) -> None:
        try:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
            previous(kind, value, tb)
        finally:
            with contextlib.suppress(Exception):
                print(
                    f"layerkit: rank {rank} of {size} ended with an uncaught {kind.__name__}; "
                    "aborting every rank (MPI_Abort).",
                    file=sys.stderr,
                )
                sys.stderr.flush()
                # The launcher forwards output through pipes; MPI_Abort kills every rank
                # at once, and a traceback still in the pipe would be lost.
                time.sleep(0.5)
            world.Abort(1)

    sys.excepthook = abort_every_rank


def _env_int(*names: str) -> int | None:
    for name in names:
        with contextlib.suppress(KeyError, ValueError):
            return int(os.environ[name])
    return None


def _warn_if_oversubscribed() -> None:
    """Warns (once per machine) when the ranks sharing it may start more BLAS threads
    than it has cores: an epoch of the seed MLP then runs ~15x slower, not 2x faster."""
    ranks_here = _env_int("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")  # MPICH, Open MPI
    local_rank = _env_int("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK")
    if not ranks_here or ranks_here < 2 or local_rank != 0:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    threads = _env_int("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    if ranks_here > cores:
        warnings.warn(
            f"{ranks_here} ranks share this machine's {cores} cores: they will wait for one "
            "another's time slices at every step (much slower). Start at most one rank per core.",
            stacklevel=3,
        )
    elif ranks_here * (threads or cores) > cores:
        fit = cores // ranks_here
        warnings.warn(
            f"{ranks_here} ranks share this machine's {cores} cores and each may start "
            f"{threads or cores} BLAS threads, which oversubscribes them (much slower). "
            f"Launch with OMP_NUM_THREADS={fit} OPENBLAS_NUM_THREADS={fit} in the environment.",
            stacklevel=3,
        )


def _jumped(state: dict[str, Any], rank: int) -> dict[str, Any]:
    rng = state.get("rng")
    if not isinstance(rng, dict) or rng.get("bit_generator") != "PCG64":
        return state
    bits = np.random.PCG64()
    bits.state = rng
    return {**state, "rng": bits.jumped(rank).state}


def check_distribute(distribute: Any) -> MPI | None:
    """Validates a ``distribute=`` argument: None or a strategy such as :class:`MPI`
    (the trainer's check; see ``layerkit.models.strategy``)."""
    from .models.strategy import check_strategy

    return check_strategy(distribute)


def is_chief(model) -> bool:
    """Whether this process prints and saves for ``model``: always when it is not being
    trained or evaluated with ``distribute=``, else only on rank 0.

    Callbacks use it so that N ranks do not write the same file N times.

    Example:
        >>> class SaveEveryEpoch(lk.callbacks.Callback):
        ...     def on_epoch_end(self, epoch, logs=None):
        ...         if lk.distributed.is_chief(self.model):
        ...             self.model.save(f"epoch{epoch}.h5")
        ...         lk.distributed.barrier(self.model)
    """
    strategy = getattr(model, "distribute", None)
    return strategy is None or strategy.is_chief


def barrier(model) -> None:
    """Waits for every rank when ``model`` is being trained with ``distribute=``, so no
    rank runs ahead of a file that rank 0 is still writing; else does nothing."""
    strategy = getattr(model, "distribute", None)
    if strategy is not None:
        strategy.barrier()
