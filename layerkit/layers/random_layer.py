"""The base of layers that draw random numbers while training (Dropout and the noise
layers): a seed, a generator of their own whose state checkpoints keep (a resumed run
draws the masks an unbroken one would), and no output caching.

Masks are drawn without a float per element: each 64-bit raw word of the generator
(``bit_generator.random_raw``) gives four 16-bit lanes, and an element is kept when its
lane is at least ``round(rate * 2**16)``. So ``P(keep) = 1 - round(rate * 2**16) / 2**16``,
within ``2**-17`` of ``1 - rate`` (exact for rates that are multiples of ``2**-16``), at a
quarter of a raw draw per element instead of a float32 uniform.

Under ``fit(distribute=lk.distributed.MPI())`` every draw is that of the *global* batch:
element ``i`` of the global batch always takes lane ``i % 4`` of raw word ``i // 4`` after
the same generator state, on every rank, as in one process. A rank draws only the words of
its own rows and ``advance``-s its generator past the others' (masks), or draws the
normals of the whole batch and keeps its rows (Gaussian noise, whose ziggurat sampler
uses a variable number of words). Either way every rank ends the step with the generator
state one process would have: N ranks draw the masks of one process.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ..random import make_rng, rng_from_state, rng_state
from ..validation import check_integer, check_number
from .base import Layer

# 16-bit lanes of the raw 64-bit words: the resolution of P(keep) is 2**-16.
_LANE_BITS = 16
_LANES_PER_WORD = 64 // _LANE_BITS


def keep_threshold(rate: float) -> int:
    """The lane value from which an element is kept: ``round(rate * 2**16)``, at most
    ``2**16 - 1`` (so a rate just below 1 still keeps ``2**-16`` of the elements)."""
    return min(round(rate * 2**_LANE_BITS), 2**_LANE_BITS - 1)


class RandomLayer(Layer):
    """A layer with its own generator, active only while training.

    Args:
        seed: a non-negative integer for the layer's generator; drawn from the global
            generator (``lk.utils.set_random_seed``) when omitted.
    """

    deterministic = False
    # lk.distributed.MPI leaves such layers' generators alike on every rank (no per-rank
    # jump): they draw by position in the global batch, so the masks are one process's.
    draws_by_global_row: ClassVar[bool] = True
    # A weak reference to the lk.distributed.MPI of the fit in progress (set at each
    # epoch by its spread_layer_states): it says where this rank's rows lie.
    _ranks: Any = None

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # A plain int: the config is stored as JSON.
        self.seed = None if seed is None else check_integer(seed, "seed", minimum=0)
        self._rng = make_rng(self.seed)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_ranks", None)  # a weak reference to the strategy: neither copies nor pickles
        return state

    # --- draws ------------------------------------------------------------------------
    def _share(self, rows: int) -> tuple[int, int]:
        """``(global rows, first row)`` of a batch of which this call holds ``rows``: the
        global batch of the distributed training step in progress, else the call's own."""
        ranks = self._ranks() if self._ranks is not None else None
        share = None if ranks is None else ranks.batch_share(rows)
        return (rows, 0) if share is None else share

    def _keep_mask(self, shape: tuple, rate: float) -> np.ndarray:
        """A boolean mask of ``shape`` (in a reused buffer), each element True with
        probability ``1 - keep_threshold(rate) / 2**16``, drawn as in one process."""
        rows = shape[0] if shape else 1
        per_row = math.prod(shape[1:]) if shape else 1
        total, first = self._share(rows)
        start, stop = first * per_row, (first + rows) * per_row
        first_word, stop_word = start // _LANES_PER_WORD, -(-stop // _LANES_PER_WORD)
        all_words = -(-(total * per_row) // _LANES_PER_WORD)
        bits = self._rng.bit_generator
        if first_word:  # the rows of the ranks before this one
            bits.advance(first_word)
        lanes = bits.random_raw(stop_word - first_word).view(np.uint16)
        if all_words > stop_word:  # and those of the ranks after it
            bits.advance(all_words - stop_word)
        offset = start - first_word * _LANES_PER_WORD
        mask = self._buffer("mask", shape, np.bool_)
        np.greater_equal(
            lanes[offset : offset + stop - start].reshape(shape), keep_threshold(rate), out=mask
        )
        return mask

    def _global_draw(self, tag: str, shape: tuple, dtype, fill) -> np.ndarray:
        """``fill(out)`` on a reused buffer for the whole global batch; this call's rows."""
        rows = shape[0] if shape else 1
        total, first = self._share(rows)
        if total == rows:
            out = self._buffer(tag, shape, dtype)
            fill(out)
            return out
        out = self._buffer(tag, (total, *shape[1:]), dtype)
        fill(out)
        return out[first : first + rows]

    def _uniform(self, shape: tuple, dtype) -> np.ndarray:
        """Uniform [0, 1) numbers of ``shape`` in a reused buffer (of the global batch)."""

        def fill(out):
            if out.dtype in (np.float32, np.float64):
                self._rng.random(dtype=out.dtype, out=out)
            else:
                out[...] = self._rng.random(out.shape)

        return self._global_draw("uniform", shape, dtype, fill)

    def _normal(self, shape: tuple, dtype) -> np.ndarray:
        """Standard normal numbers of ``shape`` in a reused buffer (of the global batch)."""

        def fill(out):
            if out.dtype in (np.float32, np.float64):
                self._rng.standard_normal(dtype=out.dtype, out=out)
            else:
                out[...] = self._rng.standard_normal(out.shape)

        return self._global_draw("normal", shape, dtype, fill)

    @staticmethod
    def _identity(x: np.ndarray):
        return x, lambda dy, need_dx=True: dy if need_dx else None

    @staticmethod
    def _times(y: np.ndarray, factor: np.ndarray):
        """``(y, backward)`` for an output that is the input times ``factor`` (a mask or
        noise, drawn for this batch): the gradient is ``dy * factor``."""

        def backward(dy, need_dx=True):
            if not need_dx:
                return None
            dy *= factor
            return dy

        return y, backward

    def training_state(self) -> dict[str, Any]:
        return {"rng": rng_state(self._rng)}

    def load_training_state(self, state: dict[str, Any]) -> None:
        if "rng" in state:
            self._rng = rng_from_state(state["rng"])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["seed"] = self.seed
        return config


class RateLayer(RandomLayer):
    """A random layer with a drop ``rate`` (Dropout, GaussianDropout, AlphaDropout): the
    identity in inference or at rate 0, else :meth:`_active`.

    Args:
        rate: in [0, 1) (Keras allows 1, which would divide by zero here).
        seed: as :class:`RandomLayer`.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.rate = check_number(rate, "rate", minimum=0.0, maximum=1.0, exclusive_maximum=True)

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            return self._identity(x)
        return self._active(x)

    def _active(self, x: np.ndarray):
        """``(y, backward)`` while training with a rate above 0."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["rate"] = self.rate
        return config
