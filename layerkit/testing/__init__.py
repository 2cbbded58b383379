"""Helpers for people who write their own layers: ``check_gradients``, and the central
differences it uses (``numeric_gradient``)."""

from .gradients import check_gradients, numeric_gradient

__all__ = ["check_gradients", "numeric_gradient"]
