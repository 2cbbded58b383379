"""Models: ``Sequential`` (and ``load_model`` once checkpoints are in)."""

from .sequential import Sequential

__all__ = ["Sequential"]
