"""What ``fit`` prints: whether a progress bar can redraw, and Keras's per-epoch line."""

from __future__ import annotations


def interactive() -> bool:
    """Whether a progress bar can redraw itself: a terminal, or a Jupyter kernel (whose
    stream is no tty), as Keras's Progbar decides."""
    import sys

    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty()) or "ipykernel" in sys.modules


def epoch_line(steps: int, seconds: float, logs: dict[str, float]) -> str:
    """Keras 3's verbose=2 line: ``1875/1875 - 2s - 1ms/step - loss: 0.2905 - ...``."""
    per_step = seconds / max(steps, 1)
    if per_step >= 1:
        rate = f"{per_step:.0f}s/step"
    elif per_step >= 1e-3:
        rate = f"{per_step * 1e3:.0f}ms/step"
    else:
        rate = f"{per_step * 1e6:.0f}us/step"
    # Keras's Progbar: 4 decimals, or 4 significant digits for magnitudes up to 1e-3.
    values = " - ".join(
        f"{k}: {v:.4f}" if abs(v) > 1e-3 else f"{k}: {v:.4e}" for k, v in logs.items()
    )
    return f"{steps}/{steps} - {seconds:.0f}s - {rate}" + (f" - {values}" if values else "")
