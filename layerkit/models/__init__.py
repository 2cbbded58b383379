"""Models: ``Sequential`` and ``load_model``."""

from ..io.checkpoint import load_model
from .sequential import Sequential

__all__ = ["Sequential", "load_model"]
