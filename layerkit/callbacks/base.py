"""The Callback base class and the list that dispatches to callbacks during training."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..distributed import is_chief

_BATCH_HOOKS = (
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
)


class Callback:
    """Base class with Keras's hooks; ``self.model`` and ``self.params`` are set by ``fit``.

    Example:
        >>> class PrintLoss(Callback):
        ...     def on_epoch_end(self, epoch, logs=None):
        ...         print(epoch, logs["loss"])
    """

    def __init__(self) -> None:
        self.model = None
        self.params: dict[str, Any] = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def _say(self, message: str) -> None:
        """Prints a verbose message once: on rank 0 only when training is distributed."""
        if self.model is None or is_chief(self.model):
            print(message)

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...


def _overrides(callback: Callback, hook: str) -> bool:
    # A hook set on the instance (LambdaCallback) counts as overridden too.
    return hook in vars(callback) or getattr(type(callback), hook) is not getattr(Callback, hook)


class CallbackList:
    """Calls every callback's hook in order.

    Batch hooks are called only on callbacks that override them, and ``wants_batch_hooks``
    tells the training loop whether to build per-batch logs at all (it is a hot path).
    """

    def __init__(self, callbacks: Iterable[Callback] | None, model, params: dict[str, Any]):
        self.callbacks = list(callbacks or [])
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(
                    "Expected layerkit Callback instances in callbacks. "
                    f"Received: {callback!r:.100} of type {type(callback).__name__}"
                )
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(params)
        self._batch = {
            hook: [c for c in self.callbacks if _overrides(c, hook)] for hook in _BATCH_HOOKS
        }
        self.wants_batch_hooks = any(self._batch[h] for h in _BATCH_HOOKS[:2])
        self.wants_test_batch_hooks = any(self._batch[h] for h in _BATCH_HOOKS[2:4])
        self.wants_predict_batch_hooks = any(self._batch[h] for h in _BATCH_HOOKS[4:])

    def has(self, kind: type) -> bool:
        """Whether one of the callbacks is an instance of ``kind``."""
        return any(isinstance(c, kind) for c in self.callbacks)

    def _call(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call_batch("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call_batch("on_train_batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call_batch("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call_batch("on_test_batch_end", batch, logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call_batch("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call_batch("on_predict_batch_end", batch, logs)

    def _call_batch(self, hook: str, batch: int, logs) -> None:
        for callback in self._batch[hook]:
            getattr(callback, hook)(batch, logs)
