"""Helpers for people who write their own layers: ``check_gradients``."""

from .gradients import check_gradients

__all__ = ["check_gradients"]
