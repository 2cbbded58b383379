"""Shared logic of callbacks that watch a logged quantity (``val_loss``, ``accuracy``...)."""

from __future__ import annotations

import math
import warnings

_MAX_HINTS = ("acc", "auc", "precision", "recall", "f1")


def resolve_mode(monitor: str, mode: str) -> str:
    """Returns ``"min"`` or ``"max"``; ``"auto"`` picks max for accuracy-like names."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"Expected mode in 'auto', 'min', 'max'. Received: mode={mode!r}")
    if mode != "auto":
        return mode
    name = monitor.removeprefix("val_")
    return "max" if any(hint in name for hint in _MAX_HINTS) else "min"


def is_improvement(value: float, best: float, mode: str, min_delta: float = 0.0) -> bool:
    if mode == "max":
        return value - abs(min_delta) > best
    return value + abs(min_delta) < best


def initial_best(mode: str) -> float:
    return -math.inf if mode == "max" else math.inf


def read_monitor(logs: dict | None, monitor: str, owner: str) -> float | None:
    value = (logs or {}).get(monitor)
    if value is None:
        warnings.warn(
            f"{owner} is monitoring {monitor!r}, which is not in the logs "
            f"(available: {sorted(logs or {})}).",
            stacklevel=3,
        )
        return None
    return float(value)
