"""``save_freq``: Keras's "epoch" or every N batches, for the callbacks that save."""

from __future__ import annotations

import numpy as np


class BatchCounter:
    """Counts training batches across epochs and says when a save is due.

    Args:
        save_freq: ``"epoch"``, or a positive number of batches; ``False`` (when
            ``allow_false``) never saves.
        owner: the callback's name, for error messages.
    """

    def __init__(self, save_freq, owner: str, allow_false: bool = False) -> None:
        valid_int = isinstance(save_freq, (int, np.integer)) and not isinstance(
            save_freq, (bool, np.bool_)
        )
        if save_freq == "epoch" or (allow_false and save_freq is False):
            self.every = None
        elif valid_int and save_freq > 0:
            self.every = int(save_freq)
        else:
            expected = "'epoch', a positive integer" + (" or False" if allow_false else "")
            raise ValueError(
                f"Unrecognized save_freq for {owner}: expected {expected}. "
                f"Received: save_freq={save_freq!r}"
            )
        self.per_epoch = save_freq == "epoch"
        self._seen = 0

    def reset(self) -> None:
        self._seen = 0

    def due(self) -> bool:
        """Counts one batch; True every ``save_freq`` batches."""
        if self.every is None:
            return False
        self._seen += 1
        if self._seen >= self.every:
            self._seen = 0
            return True
        return False
