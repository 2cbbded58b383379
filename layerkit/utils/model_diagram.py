"""``plot_model``: a picture of a model's layers and connections (Keras's ``plot_model``).

Keras draws with pydot and the Graphviz program, and fails without them. layerkit
describes the model once (a box per layer, an arrow per connection: a Sequential's chain,
or a graph's calls as ``model.summary()`` lists them in "Connected to") and draws it with
Graphviz's ``dot`` when that program is installed, else with matplotlib (the ``plot``
extra), laid out in layers: each box one row below the lowest box it takes a tensor from
(one column to the right with ``rankdir="LR"``), rows ordered to keep arrows short.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from typing import Any

__all__ = ["model_to_dot", "plot_model"]

_RANKDIRS = ("TB", "LR", "BT", "RL")
_BOX_COLOR = "#d6e6f5"  # one fill for every box: tests count the boxes in the PNG
_EDGE_COLOR = "#404040"


@dataclasses.dataclass
class Diagram:
    """What the picture shows: one label per layer (in ``model.layers`` order) and the
    arrows between them as ``(source index, destination index)``."""

    names: list[str]
    labels: list[list[str]]
    edges: list[tuple[int, int]]


def describe(
    model,
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = False,
    show_layer_activations: bool = False,
    show_trainable: bool = False,
) -> Diagram:
    """The boxes and arrows of ``model``'s picture (see :func:`plot_model`)."""
    from ..models.model import Model
    from ..models.sequential import Sequential
    from ..models.summary import _connections

    if not isinstance(model, Model):
        raise TypeError(
            f"Expected a layerkit model. Received: model={model!r:.100} of type "
            f"{type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            f"Model {model.name!r} has not yet been built. Build it first by calling "
            "model.build((None, n_features)), by starting it with lk.layers.Input(shape), "
            "or by calling it on a batch of data."
        )
    layers = list(model.layers)
    index = {id(layer): i for i, layer in enumerate(layers)}
    edges: list[tuple[int, int]] = []
    if isinstance(model, Sequential):  # Keras draws a Sequential without its InputLayer
        edges = [(i, i + 1) for i in range(len(layers) - 1)]
    else:
        # The connections summary() prints ("hidden1[0][0]", "-" for an input): the
        # source is the layer named before the brackets (names are unique in a model).
        by_name = {layer.name: i for i, layer in enumerate(layers)}
        for layer_id, sources in _connections(model).items():
            for source in sources:
                name = source.split("[", 1)[0]
                edge = (by_name.get(name), index[layer_id])
                if name != "-" and edge[0] is not None and edge not in edges:
                    edges.append(edge)
    labels = [
        _label(
            layer,
            show_shapes=show_shapes,
            show_dtype=show_dtype,
            show_layer_names=show_layer_names,
            show_layer_activations=show_layer_activations,
            show_trainable=show_trainable,
        )
        for layer in layers
    ]
    return Diagram([layer.name for layer in layers], labels, edges)


def _label(layer, **show: bool) -> list[str]:
    from ..layers.input_layer import InputLayer

    kind = type(layer).__name__
    lines = [f"{layer.name} ({kind})" if show["show_layer_names"] else kind]
    activation = getattr(getattr(layer, "activation", None), "name", None)
    if show["show_layer_activations"] and activation is not None:
        lines.append(f"Activation: {activation}")
    details = []
    if show["show_shapes"]:
        if not isinstance(layer, InputLayer):
            details.append(f"Input shape: {_shape_text(layer.input_shape)}")
        details.append(f"Output shape: {_shape_text(layer.output_shape)}")
    if show["show_dtype"]:
        details.append(f"Output dtype: {layer.dtype}")
    if show["show_trainable"] and layer.weights:  # as Keras: only layers with weights
        details.append("Trainable" if layer.trainable else "Non-trainable")
    if details:
        lines.append(" | ".join(details))
    return lines


def _shape_text(shape: Any) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, list):
        return "[" + ", ".join(str(tuple(s)) for s in shape) + "]"
    return str(tuple(shape))


# --- Graphviz --------------------------------------------------------------------------------
def model_to_dot(
    model,
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = True,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: int = 200,
    show_layer_activations: bool = False,
    show_trainable: bool = False,
    splines: str = "ortho",
) -> str:
    """The model's picture in Graphviz's DOT language (Keras's ``model_to_dot`` returns
    a pydot object; this is its source text, for ``dot -Tpng``). Arguments as
    :func:`plot_model`."""
    _check_rankdir(rankdir)
    diagram = describe(
        model,
        show_shapes=show_shapes,
        show_dtype=show_dtype,
        show_layer_names=show_layer_names,
        show_layer_activations=show_layer_activations,
        show_trainable=show_trainable,
    )
    lines = [
        "digraph G {",
        f'  graph [rankdir="{rankdir}", concentrate=true, dpi={int(dpi)}, '
        f'splines="{_dot_escape(splines)}"];',
        f'  node [shape=box, style="rounded,filled", fillcolor="{_BOX_COLOR}", '
        'fontname="Helvetica"];',
        f'  edge [penwidth=2, color="{_EDGE_COLOR}"];',
    ]
    for i, label in enumerate(diagram.labels):
        text = "\\n".join(_dot_escape(line) for line in label)
        lines.append(f'  n{i} [label="{text}"];')
    lines += [f"  n{a} -> n{b};" for a, b in diagram.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_escape(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


# --- matplotlib ------------------------------------------------------------------------------
def _ranks(count: int, edges: list[tuple[int, int]]) -> list[int]:
    """Each box's row: one more than its lowest source (the longest path from an input);
    an input one row above the first layer it feeds."""
    parents: list[list[int]] = [[] for _ in range(count)]
    for a, b in edges:
        parents[b].append(a)
    rank = [0] * count
    for _ in range(count):  # enough passes for any order of the list
        changed = False
        for b in range(count):
            new = max((rank[a] + 1 for a in parents[b]), default=0)
            if new != rank[b]:
                rank[b], changed = new, True
        if not changed:
            break
    # An input that only feeds a late layer (the wide input of a wide & deep model) sits
    # just above it, as Graphviz places it, not at the top with a long arrow down.
    children: list[list[int]] = [[] for _ in range(count)]
    for a, b in edges:
        children[a].append(b)
    for box in range(count):
        if not parents[box] and children[box]:
            rank[box] = min(rank[c] for c in children[box]) - 1
    return rank


def _order_rows(rank: list[int], edges: list[tuple[int, int]]) -> list[list[int]]:
    """The boxes of each row, ordered by the mean position of the boxes they connect to
    in the row above (then below), a few sweeps: fewer crossing arrows."""
    rows: list[list[int]] = [[] for _ in range(max(rank) + 1)]
    for i, r in enumerate(rank):
        rows[r].append(i)
    neighbours_up: dict[int, list[int]] = {}
    neighbours_down: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours_up.setdefault(b, []).append(a)
        neighbours_down.setdefault(a, []).append(b)
    for _ in range(4):
        for sweep, neighbours in (
            (range(1, len(rows)), neighbours_up),
            (range(len(rows) - 2, -1, -1), neighbours_down),
        ):
            for r in sweep:
                position = {box: p for row in rows for p, box in enumerate(row)}

                def barycentre(box: int, neighbours=neighbours, position=position) -> float:
                    linked = neighbours.get(box)
                    if not linked:
                        return position[box]
                    return sum(position[n] for n in linked) / len(linked)

                rows[r].sort(key=barycentre)
    return rows


def _draw(diagram: Diagram, to_file: str, rankdir: str, dpi: int) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import FancyBboxPatch
    except ImportError:
        raise ImportError(
            "plot_model needs matplotlib (pip install 'layerkit[plot]') or the Graphviz "
            "program 'dot' (https://graphviz.org/download/); neither was found."
        ) from None
    count = len(diagram.labels)
    rank = _ranks(count, diagram.edges)
    rows = _order_rows(rank, diagram.edges)
    font = 10.0
    # Box sizes in inches, from the text: ~0.6 em per character, 1.5 lines per line.
    char_w, line_h, pad = 0.62 * font / 72, 1.5 * font / 72, 0.15
    widths = [max(len(s) for s in lab) * char_w + 2 * pad for lab in diagram.labels]
    heights = [len(lab) * line_h + 2 * pad for lab in diagram.labels]
    vertical = rankdir in ("TB", "BT")
    gap_along, gap_across = 0.45, 0.3  # between rows, between boxes of a row
    # Row extents along the flow and the size of each row across it.
    row_depth = [max((heights if vertical else widths)[b] for b in row) for row in rows]
    row_span = [
        sum((widths if vertical else heights)[b] for b in row) + gap_across * (len(row) - 1)
        for row in rows
    ]
    span = max(row_span)
    depth = sum(row_depth) + gap_along * (len(rows) - 1)
    centers: dict[int, tuple[float, float]] = {}
    along = 0.0
    for r, row in enumerate(rows):
        across = (span - row_span[r]) / 2
        for box in row:
            size = (widths if vertical else heights)[box]
            c_across, c_along = across + size / 2, along + row_depth[r] / 2
            centers[box] = (c_across, c_along) if vertical else (c_along, c_across)
            across += size + gap_across
        along += row_depth[r] + gap_along
    fig_w, fig_h = (span, depth) if vertical else (depth, span)
    # An arrow past one or more rows bends around the boxes of those rows: its bulge
    # (the arc's height) is half the widest of them plus a gap; the margins make room.
    size_across = widths if vertical else heights
    bends: dict[tuple[int, int], float] = {}
    for a, b in diagram.edges:
        between = [box for r in range(rank[a] + 1, rank[b]) for box in rows[r]]
        if between:
            bends[(a, b)] = max(size_across[box] for box in between) / 2 + gap_across
    bulge = max(bends.values(), default=0.0)
    mx, my = (0.15 + bulge, 0.15) if vertical else (0.15, 0.15 + bulge)
    figure = plt.figure(figsize=(fig_w + 2 * mx, fig_h + 2 * my))
    axis = figure.add_axes([0, 0, 1, 1])
    axis.set_xlim(-mx, fig_w + mx)
    axis.set_ylim(-my, fig_h + my)
    axis.set_axis_off()

    # Data units are inches; "TB" puts row 0 at the top, "RL"/"BT" mirror.
    def place(box: int) -> tuple[float, float]:
        x, y = centers[box]
        if rankdir == "TB" or rankdir == "LR":
            y = fig_h - y
        if rankdir == "RL":
            x = fig_w - x
        return x, y

    patches = []
    for box in range(count):
        x, y = place(box)
        w, h = widths[box], heights[box]
        patch = FancyBboxPatch(
            (x - w / 2 + 0.04, y - h / 2 + 0.04),
            w - 0.08,
            h - 0.08,
            boxstyle="round,pad=0.04",
            facecolor=_BOX_COLOR,
            edgecolor="#5a7fa8",
            linewidth=1.0,
            zorder=2,
        )
        axis.add_patch(patch)
        patches.append(patch)
        axis.text(
            x,
            y,
            "\n".join(diagram.labels[box]),
            ha="center",
            va="center",
            fontsize=font,
            family="monospace",
            linespacing=1.3,
            zorder=3,
        )
    for a, b in diagram.edges:
        (xa, ya), (xb, yb) = place(a), place(b)
        # arc3's control point sits rad x the distance off the middle: bulge = rad x d / 2.
        distance = max(((xb - xa) ** 2 + (yb - ya) ** 2) ** 0.5, 1e-6)
        rad = 2 * bends[(a, b)] / distance if (a, b) in bends else 0.0
        axis.annotate(
            "",
            xy=(xb, yb),
            xytext=(xa, ya),
            arrowprops={
                "arrowstyle": "-|>",
                "color": _EDGE_COLOR,
                "linewidth": 1.2,
                # Clipped to the two boxes' borders: the head touches the destination.
                "patchA": patches[a],
                "patchB": patches[b],
                "shrinkA": 2,
                "shrinkB": 2,
                "connectionstyle": f"arc3,rad={rad:.4f}",
            },
            zorder=1,  # under the boxes where an arrow passes near one
            annotation_clip=False,
        )
    try:
        figure.savefig(to_file, dpi=dpi)
    finally:
        plt.close(figure)


def _check_rankdir(rankdir: str) -> None:
    if rankdir not in _RANKDIRS:
        raise ValueError(f"Expected rankdir in {_RANKDIRS}. Received: rankdir={rankdir!r}")


def plot_model(
    model,
    to_file: str | os.PathLike = "model.png",
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = False,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: int = 200,
    show_layer_activations: bool = False,
    show_trainable: bool = False,
    splines: str = "ortho",
    **kwargs: Any,
):
    """Draws ``model`` to ``to_file``: a box per layer, an arrow per connection (Keras 3's
    ``keras.utils.plot_model``, with its arguments and defaults).

    Args:
        model: a built ``Sequential`` or graph model.
        to_file: the image; its suffix picks the format (``.png`` when it has none):
            any format matplotlib writes (``png``, ``svg``, ``pdf``, ``jpg``...).
        show_shapes: add each layer's input and output shapes.
        show_dtype: add each layer's dtype.
        show_layer_names: title each box ``name (Class)`` instead of ``Class``.
        rankdir: ``"TB"`` (top to bottom), ``"LR"`` (left to right), ``"BT"``, ``"RL"``.
        expand_nested: accepted for Keras compatibility; a model called inside another
            is already drawn as its layers (layerkit inlines it).
        dpi: resolution of raster images.
        show_layer_activations: add the activation of layers that have one.
        show_trainable: mark layers with weights ``Trainable`` or ``Non-trainable``.
        splines: Graphviz's edge style (only used when drawing with Graphviz).

    Returns:
        An ``IPython.display.Image`` of the file when IPython is installed (shown inline
        in a notebook) and the file is not a PDF, as Keras; else None.

    Raises:
        TypeError: ``model`` is not a layerkit model.
        ValueError: an unbuilt model, an unknown ``rankdir`` or image format, or an
            unknown keyword argument; nothing is written then.
        ImportError: neither Graphviz's ``dot`` nor matplotlib is installed.

    Graphviz's ``dot`` (found on the PATH) draws the picture when it is installed, as
    in Keras; otherwise matplotlib does (``pip install 'layerkit[plot]'``), so no system
    package is needed.

    Example:
        >>> lk.utils.plot_model(model, "wide_and_deep.png", show_shapes=True,
        ...                     show_layer_names=True)
    """
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("Argument `layer_range` is no longer supported (as in Keras 3).")
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {sorted(kwargs)}")
    _check_rankdir(rankdir)
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi <= 0:
        raise ValueError(f"Expected dpi to be a positive integer. Received: dpi={dpi!r}")
    if isinstance(to_file, bytes):
        to_file = os.fsdecode(to_file)
    if not isinstance(to_file, (str, os.PathLike)):
        raise TypeError(
            f"Expected to_file to be a path. Received: to_file={to_file!r:.100} of type "
            f"{type(to_file).__name__}"
        )
    to_file = os.fspath(to_file)
    extension = os.path.splitext(to_file)[1][1:].lower() or "png"
    show = {
        "show_shapes": show_shapes,
        "show_dtype": show_dtype,
        "show_layer_names": show_layer_names,
        "show_layer_activations": show_layer_activations,
        "show_trainable": show_trainable,
    }
    diagram = describe(model, **show)  # first: a bad model writes nothing
    dot = shutil.which("dot")
    if dot is not None:
        source = model_to_dot(
            model, rankdir=rankdir, expand_nested=expand_nested, dpi=dpi, splines=splines, **show
        )
        _run_dot(dot, source, extension, to_file)
    else:
        _check_matplotlib_format(extension, to_file)
        _draw(diagram, to_file, rankdir, dpi)
    if extension != "pdf":
        try:
            from IPython import display
        except ImportError:
            return None
        return display.Image(filename=to_file)
    return None


def _check_matplotlib_format(extension: str, to_file: str) -> None:
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        return  # _draw raises the ImportError that says what to install
    supported = FigureCanvasBase.get_supported_filetypes()
    if extension not in supported:
        raise ValueError(
            f"Cannot write a {extension!r} image with matplotlib; expected one of "
            f"{sorted(supported)}. Received: to_file={to_file!r}"
        )


def _run_dot(dot: str, source: str, extension: str, to_file: str) -> None:
    result = subprocess.run(
        [dot, f"-T{extension}", "-o", to_file],
        input=source.encode("utf-8"),
        capture_output=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip()
        raise ValueError(
            f"Graphviz's dot could not write {to_file!r} (format {extension!r}): {message}"
        )
