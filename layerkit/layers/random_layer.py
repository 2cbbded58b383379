"""The base of layers that draw random numbers while training (Dropout and the noise
layers): a seed, a generator of their own whose state checkpoints keep (a resumed run
draws the masks an unbroken one would), and no output caching."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..random import make_rng, rng_from_state, rng_state
from ..validation import check_integer, check_number
from .base import Layer


class RandomLayer(Layer):
    """A layer with its own generator, active only while training.

    Args:
        seed: a non-negative integer for the layer's generator; drawn from the global
            generator (``lk.utils.set_random_seed``) when omitted.
    """

    deterministic = False

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # A plain int: the config is stored as JSON.
        self.seed = None if seed is None else check_integer(seed, "seed", minimum=0)
        self._rng = make_rng(self.seed)

    def _uniform(self, shape: tuple, dtype) -> np.ndarray:
        """Uniform [0, 1) numbers of ``shape`` in a reused buffer."""
        out = self._buffer("uniform", shape, dtype)
        if out.dtype in (np.float32, np.float64):
            self._rng.random(dtype=out.dtype, out=out)
        else:
            out[...] = self._rng.random(shape)
        return out

    def _normal(self, shape: tuple, dtype) -> np.ndarray:
        """Standard normal numbers of ``shape`` in a reused buffer."""
        out = self._buffer("normal", shape, dtype)
        if out.dtype in (np.float32, np.float64):
            self._rng.standard_normal(dtype=out.dtype, out=out)
        else:
            out[...] = self._rng.standard_normal(shape)
        return out

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
