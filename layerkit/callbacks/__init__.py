"""Callbacks: hooks into ``fit`` (Keras's names and semantics)."""

from .base import Callback, CallbackList
from .early_stopping import EarlyStopping
from .history import History
from .simple import CSVLogger, LambdaCallback, TerminateOnNaN

__all__ = [
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "TerminateOnNaN",
]
