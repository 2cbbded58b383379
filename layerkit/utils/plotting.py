"""Training curves as a PNG (matplotlib is needed only here: ``pip install layerkit[plot]``)."""

from __future__ import annotations

import os


def plot_history(history, path: str | os.PathLike) -> str:
    """Writes loss and accuracy curves (training and validation, per epoch) to ``path``.

    Args:
        history: a ``History`` (what ``fit`` returns) or its ``.history`` dict.
        path: the PNG file to write.

    Returns:
        The path written.

    Raises:
        ImportError: when matplotlib is not installed, saying how to install it.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "plot_history needs matplotlib: pip install 'layerkit[plot]' (or matplotlib)."
        ) from None
    record = getattr(history, "history", history)
    if not isinstance(record, dict) or not record:
        raise ValueError("Expected a History or a non-empty dict of per-epoch lists.")
    bases = [k for k in record if not k.startswith("val_")]
    figure, axes = plt.subplots(1, len(bases), figsize=(5 * len(bases), 4), squeeze=False)
    for axis, key in zip(axes[0], bases):
        epochs = range(1, len(record[key]) + 1)
        axis.plot(epochs, record[key], marker="o", label=f"training {key}")
        if f"val_{key}" in record:
            axis.plot(epochs, record[f"val_{key}"], marker="o", label=f"validation {key}")
        axis.set_xlabel("epoch")
        axis.set_title(key)
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(os.fspath(path), dpi=100)
    plt.close(figure)
    return os.fspath(path)
