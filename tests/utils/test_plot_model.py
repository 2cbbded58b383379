"""lk.utils.plot_model: the picture is made, shows every layer and every connection, and
says what Keras 3's ``plot_model`` says in each box.

The boxes are counted in the PNG itself (every box has one fill colour: its connected
regions are the boxes), the texts read from an SVG, the arrows compared with Keras 3's own
graph of the same model, and the box texts with Keras's ``make_layer_label`` (Keras's
drawing needs pydot and Graphviz; its labels do not).
"""

from __future__ import annotations

import html
import os
import re
import stat

import numpy as np
import pytest

import layerkit as lk
from layerkit.utils import model_diagram


def wide_and_deep(module, dense_kwargs=None):
    """The wide & deep model of Hands-On ML chapter 10, with an auxiliary output, in
    layerkit (``module=lk``) or Keras (``module=keras``)."""
    layers = module.layers
    wide = layers.Input((5,), name="wide_input")
    deep = layers.Input((6,), name="deep_input")
    hidden1 = layers.Dense(30, activation="relu", name="hidden1")(deep)
    hidden2 = layers.Dense(30, activation="relu", name="hidden2")(hidden1)
    concat = layers.Concatenate(name="concat")([wide, hidden2])
    output = layers.Dense(1, name="output")(concat)
    aux = layers.Dense(1, name="aux_output")(hidden2)
    return module.Model(inputs=[wide, deep], outputs=[output, aux], name="wide_deep")


def mnist_mlp() -> lk.Sequential:
    return lk.Sequential(
        [
            lk.layers.Input((784,)),
            lk.layers.Dense(300, activation="relu", name="hidden1"),
            lk.layers.Dense(100, activation="relu", name="hidden2"),
            lk.layers.Dense(10, activation="softmax", name="output"),
        ]
    )


def count_boxes(path) -> int:
    """The regions of the PNG painted in the boxes' fill colour."""
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread
    from scipy import ndimage

    pixels = imread(str(path))[..., :3]
    fill = np.array(to_rgb(model_diagram._BOX_COLOR))
    mask = np.abs(pixels - fill).max(axis=-1) < 0.02
    labels, _ = ndimage.label(mask)
    sizes = np.bincount(labels.ravel())[1:]
    return int(np.sum(sizes > 200))  # antialiasing specks are not boxes


def keras_edges(model) -> set[tuple[str, str]]:
    edges = set()
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                edges.add((tensor._keras_history.operation.name, layer.name))
    return edges


@pytest.fixture(autouse=True)
def no_graphviz(monkeypatch):
    """The matplotlib drawing, whatever the machine has installed."""
    monkeypatch.setattr(model_diagram.shutil, "which", lambda name: None)


def test_wide_and_deep_png_shows_every_layer(tmp_path, keras):
    model = wide_and_deep(lk)
    path = tmp_path / "wide_deep.png"
    result = lk.utils.plot_model(model, path, show_shapes=True, show_layer_names=True, dpi=60)
    # As Keras: an IPython Image of the file where IPython is installed, else None.
    assert result is None or result.filename == str(path)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert count_boxes(path) == len(model.layers) == 7
    diagram = model_diagram.describe(model)
    names = diagram.names
    ours = {(names[a], names[b]) for a, b in diagram.edges}
    assert ours == keras_edges(wide_and_deep(keras))  # Keras's graph of the same model
    assert len(diagram.edges) == 6


def test_sequential_png_and_defaults(tmp_path):
    model = mnist_mlp()
    path = tmp_path / "mlp.png"
    lk.utils.plot_model(model, path, dpi=60)
    assert count_boxes(path) == 3  # as Keras 3: a Sequential is drawn without its input
    diagram = model_diagram.describe(model)
    assert diagram.labels == [["Dense"], ["Dense"], ["Dense"]]  # Keras 3's default: classes
    assert diagram.edges == [(0, 1), (1, 2)]
    lk.utils.plot_model(model, tmp_path / "mlp_lr.png", rankdir="LR", dpi=60)
    assert count_boxes(tmp_path / "mlp_lr.png") == 3


def test_svg_holds_every_label(tmp_path):
    import matplotlib

    model = wide_and_deep(lk)
    path = tmp_path / "model.svg"
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text kept as text
        lk.utils.plot_model(
            model,
            path,
            show_shapes=True,
            show_dtype=True,
            show_layer_names=True,
            show_layer_activations=True,
            show_trainable=True,
        )
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text())]
    for layer in model.layers:
        assert f"{layer.name} ({type(layer).__name__})" in texts
    # Each box's lines, as written (a layer without weights has no trainable mark).
    for line in (
        "Activation: relu",
        "Input shape: (None, 6) | Output shape: (None, 30) | Output dtype: float32 | Trainable",
        "Input shape: [(None, 5), (None, 30)] | Output shape: (None, 35) | Output dtype: float32",
        "Output shape: (None, 5) | Output dtype: float32",
    ):
        assert line in texts
    assert len(texts) == 7 + 4 + 7  # titles, activations (Dense only), details


def keras_cells(label: str) -> list[str]:
    """The texts of the cells of Keras's HTML-like label, in order."""
    return [
        html.unescape(re.sub(r"<[^>]+>", "", cell))
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", label)
    ]


@pytest.mark.parametrize(
    "show",
    [
        {},
        {"show_layer_names": True},
        {"show_shapes": True, "show_layer_names": True},
        {
            "show_shapes": True,
            "show_dtype": True,
            "show_layer_activations": True,
            "show_trainable": True,
        },
    ],
)
def test_box_texts_are_kerass(keras, show):
    from keras.src.utils.model_visualization import make_layer_label

    options = {
        "show_shapes": False,
        "show_dtype": False,
        "show_layer_names": False,
        "show_layer_activations": False,
        "show_trainable": False,
        **show,
    }
    k_model = wide_and_deep(keras)
    k_model.get_layer("hidden1").trainable = False
    model = wide_and_deep(lk)
    model.get_layer("hidden1").trainable = False
    diagram = model_diagram.describe(model, **options)
    by_name = dict(zip(diagram.names, diagram.labels))
    assert sorted(by_name) == sorted(layer.name for layer in k_model.layers)
    for layer in k_model.layers:
        lines = by_name[layer.name]
        ours = lines[:-1] + lines[-1].split(" | ") if len(lines) > 1 else lines
        assert ours == keras_cells(make_layer_label(layer, **options)), layer.name


def test_graphviz_is_used_when_installed(tmp_path, monkeypatch):
    """With a ``dot`` on the PATH, plot_model gives it the DOT text (as Keras's pydot
    would) and asks for the file's format."""
    fake = tmp_path / "dot"
    record = tmp_path / "dot_input.txt"
    fake.write_text(
        "#!/bin/sh\n"
        f'cat > "{record}"\n'
        'echo "$@" >> "' + str(record) + '.args"\n'
        'for last; do :; done\nprintf "%s" "fake image" > "$last"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(model_diagram.shutil, "which", lambda name: str(fake))
    model = wide_and_deep(lk)
    lk.utils.plot_model(model, tmp_path / "g.svg", show_layer_names=True, rankdir="LR", dpi=80)
    assert (tmp_path / "g.svg").read_text() == "fake image"
    source = record.read_text()
    assert source == lk.utils.model_to_dot(model, show_layer_names=True, rankdir="LR", dpi=80)
    assert 'rankdir="LR"' in source
    assert source.count(" -> ") == 6
    for layer in model.layers:
        assert f'"{layer.name} ({type(layer).__name__})"' in source
    assert (tmp_path / "dot_input.txt.args").read_text().split()[:2] == ["-Tsvg", "-o"]


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"rankdir": "XY"}, ValueError, "rankdir='XY'"),
        ({"to_file": "model.bogus"}, ValueError, "Cannot write a 'bogus' image"),
        ({"dpi": 0}, ValueError, "dpi=0"),
        ({"layer_range": ["a", "b"]}, ValueError, "layer_range"),
        ({"colour": "red"}, ValueError, r"Unrecognized keyword arguments: \['colour'\]"),
        ({"to_file": 3}, TypeError, "to_file=3"),
    ],
)
def test_bad_arguments_write_nothing(tmp_path, monkeypatch, arguments, error, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message):
        lk.utils.plot_model(mnist_mlp(), **arguments)
    assert os.listdir(tmp_path) == []


def test_unbuilt_or_foreign_models_are_refused(tmp_path):
    unbuilt = lk.Sequential([lk.layers.Dense(3)])
    with pytest.raises(ValueError, match="not yet been built"):
        lk.utils.plot_model(unbuilt, tmp_path / "m.png")
    with pytest.raises(TypeError, match="Expected a layerkit model"):
        lk.utils.plot_model("model", tmp_path / "m.png")
    assert os.listdir(tmp_path) == []


def test_missing_matplotlib_and_graphviz_says_what_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backend_bases", None)
    with pytest.raises(ImportError, match=r"layerkit\[plot\].*Graphviz"):
        lk.utils.plot_model(mnist_mlp(), tmp_path / "m.png")
