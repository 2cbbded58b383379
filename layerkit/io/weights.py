"""``model.load_weights``: pick layers by name from any supported file, all or nothing.

Sources: layerkit checkpoints, Keras 3 ``.weights.h5``, legacy Keras / tf.keras ``.h5``,
``.keras`` archives, TensorFlow 1 checkpoints, PyTorch ``torch.save`` state dicts and
``.safetensors`` files, recognised by content. Every source is read into
:class:`~layerkit.io.stored.StoredLayer` objects first; selection, renaming and shape
checks are the same for all of them, and nothing is written into the model until every
selected layer has been checked.

PyTorch's module names (``fc1``, ``0``) seldom match layerkit's, so when none of the
selected names is a model layer and no ``rename`` is given, PyTorch layers go by order:
the i-th selected layer of the file into the i-th model layer with weights, each of the
same kind (Dense, BatchNormalization).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Iterable

from .checkpoint import aligned, is_layerkit_checkpoint, read_layerkit_layers, weight_mismatch
from .safe_hdf5 import read_isolated
from .stored import StoredLayer

LayerSelection = str | Iterable[str] | None
Rename = dict[str, str] | Callable[[str], str] | None


def read_any(path: str | os.PathLike) -> list[StoredLayer]:
    """Reads the stored layers of any supported weight file, in model order."""
    path = os.fspath(path)
    # A TensorFlow 1 checkpoint is named by a prefix that is not itself a file, so a
    # missing path is left to detect_format, which names it in its error.
    if os.path.isfile(path) and is_layerkit_checkpoint(path):
        return read_layerkit_layers(path)
    from . import keras_files, tf1_checkpoint

    kind = keras_files.detect_format(path)
    if kind == "tf1_checkpoint":
        return tf1_checkpoint.read_tf1_checkpoint(path)
    if kind == "pytorch":
        from .pytorch import read_torch

        return read_torch(path)
    if kind == "safetensors":
        from .safetensors import read_safetensors

        return read_safetensors(path)
    # Files from other frameworks are parsed in a child process: libhdf5 can crash or
    # hang on a damaged file, and that must not take the user's process with it.
    return read_isolated(path, keras_files.read_keras_weights)


def select(stored: list[StoredLayer], layers: LayerSelection, path: str) -> list[StoredLayer]:
    """The stored layers chosen by a regex (``re.fullmatch``) or a list of names."""
    names = [s.name for s in stored]
    if layers is None:
        if not stored:
            raise ValueError(f"{path} holds no layers with weights.")
        return list(stored)
    if isinstance(layers, str):
        try:
            pattern = re.compile(layers)
        except re.error as error:
            raise ValueError(f"Invalid regular expression layers={layers!r}: {error}") from None
        chosen = [s for s in stored if pattern.fullmatch(s.name)]
        if not chosen:
            raise ValueError(
                f"layers={layers!r} matches no layer in {path}. The file holds: {names}."
            )
        return chosen
    wanted = list(layers)
    if not wanted or not all(isinstance(n, str) for n in wanted):
        raise TypeError(
            f"Expected layers to be a regex string or a non-empty list of names. "
            f"Received: layers={layers!r:.100}"
        )
    missing = [n for n in wanted if n not in names]
    if missing:
        raise ValueError(f"Layers {missing} are not in {path}. The file holds: {names}.")
    return [s for s in stored if s.name in wanted]


def _target_name(name: str, rename: Rename) -> str:
    if rename is None:
        return name
    if callable(rename):
        target = rename(name)
        if not isinstance(target, str):
            raise TypeError(f"rename({name!r}) must return a layer name. Received: {target!r}")
        return target
    return rename.get(name, name)


def load_weights(
    model,
    path: str | os.PathLike,
    layers: LayerSelection = None,
    rename: Rename = None,
    skip_mismatch: bool = False,
) -> list[tuple[str, str]]:
    """Restores the selected layers of ``path`` into ``model``; returns the pairs
    ``(name in file, name in model)`` restored. See ``Sequential.load_weights``."""
    path = os.fspath(path)
    if rename is not None and not (callable(rename) or isinstance(rename, dict)):
        raise TypeError(f"Expected rename to be a dict or a function. Received: {rename!r:.100}")
    stored = read_any(path)
    chosen = select(stored, layers, path)
    if isinstance(rename, dict):
        unknown = [k for k in rename if k not in {s.name for s in chosen}]
        if unknown:
            raise ValueError(
                f"rename names {unknown}, which are not among the selected layers "
                f"{[s.name for s in chosen]} of {path}."
            )
    built_here = None
    try:
        if rename is None and _goes_by_order(chosen, model):
            if not model.built:
                built_here = _build_from(model, chosen[:1], {chosen[0].name: _first(model)}, path)
            rename = by_order(chosen, model, path, every_layer=layers is None)
        elif not model.built:
            built_here = _build_from(model, chosen, rename, path)
        model_names = [layer.name for layer in model.layers]
        pairs = []
        targets_seen: dict[str, str] = {}
        for s in chosen:
            target = _target_name(s.name, rename)
            if target in targets_seen:
                raise ValueError(
                    f"Layers {targets_seen[target]!r} and {s.name!r} of {path} would both be "
                    f"restored into model layer {target!r}."
                )
            targets_seen[target] = s.name
            if target not in model_names:
                raise ValueError(
                    f"Layer {s.name!r} of {path} has no counterpart {target!r} in model "
                    f"{model.name!r}. Model layers: {model_names}. Use layers= to select "
                    "fewer layers or rename= to map names."
                )
            layer = model.get_layer(target)
            s = aligned(s, layer)
            problem = weight_mismatch(s, layer)
            if problem:
                if not skip_mismatch:
                    raise ValueError(f"Cannot restore from {path}: {problem}.")
                warnings.warn(f"Skipping layer {s.name!r} of {path}: {problem}.", stacklevel=3)
                continue
            pairs.append((s, layer))
        if any(s.origin == "pytorch" for s, _ in pairs):
            _warn_batchnorm_differences(pairs, path)
    except BaseException:
        if built_here is not None:  # all or nothing: an unbuilt model stays unbuilt
            model.unbuild(built_here)
        raise
    for s, layer in pairs:
        for p in layer.weights:
            p.assign(s.weights[p.name.split("/", 1)[1]])
    return [(s.name, layer.name) for s, layer in pairs]


def _build_from(model, chosen: list[StoredLayer], rename: Rename, path: str) -> list:
    """Builds an unbuilt model from the kernel of the stored layer for its first layer;
    returns the layers it built."""
    first = model.layers[0] if model.layers else None
    for s in chosen:
        kernel = s.weights.get("kernel")
        if first is not None and _target_name(s.name, rename) == first.name and kernel is not None:
            unbuilt = [layer for layer in model._layers if not layer.built]
            model.build((None, *kernel.shape[:-1]))
            return unbuilt
    raise ValueError(
        f"Model {model.name!r} is not built, so the shapes in {path} cannot be checked. "
        "Build it first: model.build((None, n_features)), or start it with lk.layers.Input."
    )


def _first(model) -> str:
    return model.layers[0].name if model.layers else ""


def _goes_by_order(chosen: list[StoredLayer], model) -> bool:
    """Whether PyTorch layers whose names are none of the model's go by order."""
    names = {layer.name for layer in model.layers}
    return all(s.origin == "pytorch" for s in chosen) and not any(s.name in names for s in chosen)


def by_order(
    chosen: list[StoredLayer], model, path: str, every_layer: bool = True
) -> dict[str, str]:
    """``{file name: model name}`` pairing the stored layers, in order, with the model's
    layers that have weights, in order; the kinds must agree (a Linear is a Dense).

    With ``every_layer`` (no ``layers=`` selection) the counts must agree too; otherwise
    the selected layers go into the first layers of the model (the lower layers, for a
    partial restore) and the model's other layers are left alone.
    """
    targets = [layer for layer in model.layers if layer.weights]
    leftover_file = [s.name for s in chosen[len(targets) :]]
    leftover_model = [layer.name for layer in targets[len(chosen) :]] if every_layer else []
    if leftover_file or leftover_model:
        raise ValueError(
            f"The layer names of {path} ({[s.name for s in chosen]}) are not the model's, and "
            f"by order {len(chosen)} layers of the file do not go into the {len(targets)} "
            f"layers with weights of model {model.name!r}: left over in the file "
            f"{leftover_file}, in the model {leftover_model}. Use layers= to select fewer "
            "layers or rename= to map names."
        )
    for s, layer in zip(chosen, targets):
        kind = type(layer).__name__
        if s.class_name != kind:
            raise ValueError(
                f"By order, layer {s.name!r} of {path} ({s.class_name or 'unknown kind'}, "
                f"weights {sorted(s.weights)}) would go into model layer {layer.name!r} "
                f"({kind}). Use layers= to select the layers to restore or rename= to map "
                "names."
            )
    return {s.name: layer.name for s, layer in zip(chosen, targets)}


# PyTorch's BatchNorm1d defaults; its ``momentum`` weighs the new batch, Keras's the old
# statistics, so PyTorch's 0.1 is Keras's 0.9.
TORCH_BATCHNORM_EPSILON = 1e-5
TORCH_BATCHNORM_MOMENTUM_AS_KERAS = 0.9


def _warn_batchnorm_differences(pairs, path: str) -> None:
    """Warns when a BatchNormalization restored from PyTorch would not compute as
    PyTorch's defaults did (a state dict does not record eps or momentum)."""
    for s, layer in pairs:
        if s.origin != "pytorch" or s.class_name != "BatchNormalization":
            continue
        differences = []
        if not math.isclose(layer.epsilon, TORCH_BATCHNORM_EPSILON, rel_tol=1e-9):
            differences.append(
                f"epsilon={layer.epsilon:g} where PyTorch's default eps is 1e-05, so its "
                "outputs will differ from PyTorch's"
            )
        if layer.trainable and not math.isclose(
            layer.momentum, TORCH_BATCHNORM_MOMENTUM_AS_KERAS, rel_tol=1e-9
        ):
            differences.append(
                f"momentum={layer.momentum:g}, which is PyTorch's momentum="
                f"{1 - layer.momentum:g} (PyTorch's default 0.1 is momentum=0.9 here), so "
                "further training updates the moving statistics differently"
            )
        if differences:
            warnings.warn(
                f"BatchNormalization layer {layer.name!r} restored from {s.name!r} of {path} "
                f"has {'; and '.join(differences)}. Build it with epsilon=1e-5, momentum=0.9 "
                "to compute as PyTorch's BatchNorm1d defaults.",
                stacklevel=4,
            )
