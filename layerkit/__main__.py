"""Command line: ``python -m layerkit inspect PATH`` describes a checkpoint or weights file
(layerkit, Keras, TensorFlow 1, PyTorch ``torch.save`` and ``.safetensors``)."""

from __future__ import annotations

import argparse
import json
import os
import sys


def _describe_layerkit(path: str) -> list[str]:
    from .io.checkpoint import read_snapshot

    snapshot = read_snapshot(path)
    lines = [
        f"format: layerkit v{snapshot.format_version} ({snapshot.kind}), "
        f"written by layerkit {snapshot.written_by}"
    ]
    if snapshot.layers:
        lines.append("layers:")
    elif _saved_unbuilt(snapshot.config):
        lines.append(
            "layers: none, the model was saved unbuilt (no weights yet): give it an Input "
            "layer, or build or fit it, before saving"
        )
    else:
        lines.append("layers: none with weights (its layers have no weights)")
    for stored in snapshot.layers:
        frozen = "  [frozen]" if stored.name in snapshot.frozen else ""
        lines.append(f"  {stored.name} ({stored.class_name}){frozen}")
        for key, array in stored.weights.items():
            lines.append(f"    {key}: shape={tuple(array.shape)} dtype={array.dtype}")
    if snapshot.compile_config:
        lines.append(f"loss: {json.dumps(snapshot.compile_config.get('loss'))}")
        lines.append(f"metrics: {json.dumps(snapshot.compile_config.get('metrics'))}")
    optimizer = snapshot.optimizer_config
    if optimizer:
        lines.append(
            f"optimizer: {optimizer.get('class_name')} {json.dumps(optimizer.get('config'))}"
        )
    if snapshot.optimizer_state is not None:
        state = snapshot.optimizer_state
        lines.append(
            f"optimizer state: iterations={state['iterations']}, {len(state['slots'])} parameters"
        )
    position = snapshot.position
    if position:
        lines.append(
            f"training position: epochs_done={position.get('epochs_done')}, "
            f"steps={position.get('iterations')}"
        )
    return lines


def _saved_unbuilt(config: dict | None) -> bool:
    """Whether a model config says the model had no input shape when it was saved."""
    return (
        isinstance(config, dict)
        and "build_input_shape" in config
        and config["build_input_shape"] is None
    )


def _describe_foreign(path: str) -> list[str]:
    from .io import keras_files
    from .io.tf1_checkpoint import resolve_checkpoint_prefix
    from .io.weights import read_any

    kind = keras_files.detect_format(path)
    lines = [f"format: {kind}"]
    if kind == "tf1_checkpoint":
        prefix = os.fspath(resolve_checkpoint_prefix(path))
        if prefix != path:  # a folder's 'checkpoint' file, or one of the prefix's files
            lines.append(f"checkpoint prefix: {prefix}")
    stored_layers = read_any(path)
    if kind in ("pytorch", "safetensors"):
        lines.append(
            "names: PyTorch module names (model.load_weights maps them by order when they "
            "are not the model's); kernels are Linear weights transposed to (in, out)"
        )
    lines.append("layers:" if stored_layers else "layers: none with weights")
    for stored in stored_layers:
        lines.append(f"  {stored.name}" + (f" ({stored.class_name})" if stored.class_name else ""))
        for key, array in stored.weights.items():
            lines.append(f"    {key}: shape={tuple(array.shape)} dtype={array.dtype}")
    return lines


def inspect(path: str | bytes | os.PathLike) -> str:
    """Returns a text description of the file at ``path``.

    Raises:
        TypeError: ``path`` is not a str, bytes or os.PathLike.
        FileNotFoundError, ValueError: nothing readable is at ``path``; the message names it.
    """
    from .io.checkpoint import is_layerkit_checkpoint

    try:
        path = os.fsdecode(path)
    except TypeError:
        raise TypeError(
            "Expected path to be a str, bytes or os.PathLike. "
            f"Received: path={path!r:.100} of type {type(path).__name__}"
        ) from None
    if is_layerkit_checkpoint(path):
        return "\n".join(_describe_layerkit(path))
    return "\n".join(_describe_foreign(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m layerkit")
    commands = parser.add_subparsers(dest="command", required=True)
    inspect_parser = commands.add_parser("inspect", help="describe a checkpoint or weights file")
    inspect_parser.add_argument("path")
    args = parser.parse_args(argv)
    try:
        text = inspect(args.path)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        print(text)
    except BrokenPipeError:  # `inspect FILE | head` closing early is not an error
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
