"""The text of ``model.summary()``, laid out as Keras prints it."""

from __future__ import annotations


def _size(count: int, itemsize: int = 4) -> str:
    size = float(count * itemsize)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} GB"


def format_summary(model) -> str:
    rows = []
    for layer in model.layers:
        shape = str(layer.output_shape) if layer.output_shape is not None else "?"
        rows.append(
            (
                f"{layer.name} ({type(layer).__name__})",
                shape,
                f"{layer.count_params():,}",
                "" if layer.trainable else "frozen",
            )
        )
    widths = [max(29, *(len(r[0]) + 1 for r in rows)) if rows else 29, 26, 12, 8]
    line = "_" * sum(widths)

    def fmt(cells):
        return "".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    parts = [
        f'Model: "{model.name}"',
        line,
        fmt(("Layer (type)", "Output Shape", "Param #", "")),
        "=" * sum(widths),
    ]
    for i, row in enumerate(rows):
        parts.append(fmt(row))
        if i < len(rows) - 1:
            parts.append("")
    parts.append("=" * sum(widths))
    total = sum(p.size for p in model.weights)  # count_params() refuses an unbuilt model
    trainable = sum(p.size for p in model.trainable_weights)
    itemsize = model.weights[0].dtype.itemsize if model.weights else 4
    parts += [
        f"Total params: {total:,} ({_size(total, itemsize)})",
        f"Trainable params: {trainable:,} ({_size(trainable, itemsize)})",
        f"Non-trainable params: {total - trainable:,} ({_size(total - trainable, itemsize)})",
        line,
    ]
    return "\n".join(parts)
