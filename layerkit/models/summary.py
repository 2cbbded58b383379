"""The text of ``model.summary()``, laid out as Keras prints it."""

from __future__ import annotations


def _size(count: int, itemsize: int = 4) -> str:
    size = float(count * itemsize)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} GB"


def _connections(model) -> dict[int, list[str]]:
    """For a graph model, each layer's inputs as Keras prints them: ``layer[call][0]``
    (calls numbered within the model), ``-`` for an InputLayer."""
    graph = getattr(model, "_graph", None)
    if graph is None:
        return {}
    call_index: dict[int, int] = {}
    per_layer: dict[int, int] = {}
    for node in graph.nodes:
        call_index[id(node)] = per_layer.get(id(node.layer), 0)
        per_layer[id(node.layer)] = call_index[id(node)] + 1
    connected: dict[int, list[str]] = {}
    for node in graph.nodes:
        names = [f"{t.node.layer.name}[{call_index[id(t.node)]}][{t.index}]" for t in node.inputs]
        connected.setdefault(id(node.layer), []).extend(names)
    return {key: names or ["-"] for key, names in connected.items()}


def format_summary(model) -> str:
    connections = _connections(model)
    rows = []
    for layer in model.layers:
        shape = str(layer.output_shape) if layer.output_shape is not None else "?"
        linked = connections.get(id(layer), [])
        rows.append(
            (
                f"{layer.name} ({type(layer).__name__})",
                shape,
                f"{layer.count_params():,}",
                *(linked[:1] if connections else ()),
                "" if layer.trainable else "frozen",
            )
        )
        # Further inputs of the layer, one per line under the first, as Keras wraps them.
        rows.extend(("", "", "", name, "") for name in linked[1:])
    name_width = max(29, *(len(r[0]) + 1 for r in rows)) if rows else 29
    widths = [name_width, 26, 12, 8]
    header = ["Layer (type)", "Output Shape", "Param #", ""]
    if connections:
        link_width = max(20, *(len(r[3]) + 1 for r in rows))
        widths = [name_width, 20, 12, link_width, 8]
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to", ""]
    line = "_" * sum(widths)

    def fmt(cells):
        return "".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    parts = [
        f'Model: "{model.name}"',
        line,
        fmt(header),
        "=" * sum(widths),
    ]
    for i, row in enumerate(rows):
        parts.append(fmt(row))
        continued = i + 1 < len(rows) and rows[i + 1][0] == ""
        if i < len(rows) - 1 and not continued:
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
