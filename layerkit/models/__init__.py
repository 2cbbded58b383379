"""Models: ``Model`` (graphs of layers and subclasses), ``Sequential``, ``clone_model``
and ``load_model``."""

from ..io.checkpoint import load_model
from .cloning import clone_model
from .model import Model
from .sequential import Sequential

__all__ = ["Model", "Sequential", "clone_model", "load_model"]
