"""Argument checks shared by the examples: a bad path is refused before training, not after.

Each check ends the script through ``parser.error`` (usage, the message, exit status 2), as
argparse does for its own errors. Under ``mpiexec`` every rank makes the same checks before
MPI starts, so every rank stops alike and none is left waiting.
"""

from __future__ import annotations

import argparse
import os
import tempfile


def at_least(minimum: int):
    """An argparse ``type=`` for integers ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}. Received: {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}. Received: {value}")
        return value

    return parse


def check_input(parser: argparse.ArgumentParser, option: str, path: str | None) -> None:
    """Refuses an input path (``--data``, ``--model``) that does not exist."""
    if path is not None and not os.path.exists(os.path.expanduser(path)):
        parser.error(f"{option}: no such file or folder. Received: {path!r}")


def prepare_output(
    parser: argparse.ArgumentParser, option: str, path: str | None, plot: bool = False
) -> None:
    """Makes sure ``path`` can be written once training is over.

    Missing parent folders are created (as Keras's ``ModelCheckpoint`` does). A path that
    is an existing folder, a folder that cannot be written and, for a plot, a missing
    matplotlib or an image type it cannot write are refused.
    """
    if path is None:
        return
    if os.path.isdir(path):
        parser.error(
            f"{option}: expected a file to write, got an existing folder. Received: {path!r}"
        )
    folder = os.path.dirname(os.path.abspath(path))
    above = folder
    while not os.path.exists(above):  # the nearest part of the path that exists
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        parser.error(f"{option}: {above!r} is a file, expected a folder. Received: {path!r}")
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        parser.error(
            f"{option}: cannot write into the folder {folder!r} "
            f"({error.strerror or error}). Received: {path!r}"
        )
    if plot:
        _check_plot_type(parser, option, path)


def _check_plot_type(parser: argparse.ArgumentParser, option: str, path: str) -> None:
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        parser.error(f"{option} needs matplotlib: pip install 'layerkit[plot]' (or matplotlib)")
    kind = os.path.splitext(path)[1][1:].lower()
    supported = FigureCanvasBase.get_supported_filetypes()
    if kind and kind not in supported:
        parser.error(
            f"{option}: matplotlib cannot write .{kind} images; expected one of "
            f"{', '.join('.' + k for k in sorted(supported))}. Received: {path!r}"
        )
