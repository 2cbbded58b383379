"""Models: ``Model`` (graphs of layers and subclasses), ``Sequential`` and ``load_model``."""

from ..io.checkpoint import load_model
from .model import Model
from .sequential import Sequential

__all__ = ["Model", "Sequential", "load_model"]
