"""Command line: ``python -m layerkit inspect PATH`` describes a checkpoint or weights file."""

from __future__ import annotations

import argparse
import json
import sys


def _describe_layerkit(path: str) -> list[str]:
    from .io.checkpoint import _attr_json, _attr_str, open_checkpoint, read_layers

    lines = []
    with open_checkpoint(path) as f:
        lines.append(
            f"format: layerkit v{f.attrs['format_version']} ({_attr_str(f, 'kind')}), "
            f"written by layerkit {_attr_str(f, 'layerkit_version')}"
        )
        lines.append("layers:")
        for stored in read_layers(f, path):
            trainable = bool(f["weights"][stored.name].attrs.get("trainable", True))
            lines.append(
                f"  {stored.name} ({stored.class_name}){'' if trainable else '  [frozen]'}"
            )
            for key, array in stored.weights.items():
                lines.append(f"    {key}: shape={tuple(array.shape)} dtype={array.dtype}")
        compile_config = _attr_json(f, "compile_config", path)
        if compile_config:
            lines.append(f"loss: {json.dumps(compile_config['loss'])}")
            lines.append(f"metrics: {json.dumps(compile_config['metrics'])}")
        optimizer = _attr_json(f, "optimizer_config", path)
        if optimizer:
            lines.append(f"optimizer: {optimizer['class_name']} {json.dumps(optimizer['config'])}")
            if "optimizer" in f:
                group = f["optimizer"]
                names = json.loads(_attr_str(group, "parameter_names") or "[]")
                lines.append(
                    f"optimizer state: iterations={int(group.attrs['iterations'])}, "
                    f"{len(names)} parameters"
                )
        position = _attr_json(f, "training_position", path)
        if position:
            lines.append(
                f"training position: epochs_done={position.get('epochs_done')}, "
                f"steps={position.get('iterations')}"
            )
    return lines


def _describe_foreign(path: str) -> list[str]:
    from .io import keras_files
    from .io.weights import read_any

    kind = keras_files.detect_format(path)
    lines = [f"format: {kind}", "layers:"]
    for stored in read_any(path):
        lines.append(f"  {stored.name}" + (f" ({stored.class_name})" if stored.class_name else ""))
        for key, array in stored.weights.items():
            lines.append(f"    {key}: shape={tuple(array.shape)} dtype={array.dtype}")
    return lines


def inspect(path: str) -> str:
    """Returns a text description of the file at ``path``."""
    from .io.checkpoint import is_layerkit_checkpoint

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
        print(inspect(args.path))
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
