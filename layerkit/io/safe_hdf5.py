"""Reading HDF5 files from strangers: follow nothing that leaves the file, allocate nothing
the file cannot back.

Shared by every HDF5 reader in layerkit (its own checkpoints and Keras files). Links are
followed one component at a time: external links, soft links that leave the group being
read, virtual datasets, datasets with external raw storage, non-numeric types and shapes
the file cannot hold are refused with :class:`~layerkit.io.stored.FormatError` naming the
file and the object. Structural corruption that h5py reports as ``KeyError`` or
``RuntimeError`` becomes a ``FormatError`` too (:func:`hdf5_errors`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import h5py
import numpy as np
from h5py import h5d, h5l, h5p

from .stored import FormatError

PathLike = str | os.PathLike

MAX_COMPRESSION_RATIO = 1000
_MAX_ELEMENTS = 1 << 31
# Chunked, filtered datasets may legitimately expand; below this size any ratio is fine
# (a compressed all-zero bias compresses extremely well).
_SMALL_EXPANSION_BYTES = 64 << 20
# Dataset element kinds that can be weights: float, signed, unsigned, bool.
_NUMERIC_KINDS = "fiub"
_MAX_COMPRESSION_RATIO = MAX_COMPRESSION_RATIO


def fail(path: PathLike, obj: str, message: str) -> FormatError:
    return FormatError(f"{os.fspath(path)}: {obj}: {message}")


@contextlib.contextmanager
def hdf5_errors(path: PathLike) -> Iterator[None]:
    """Turns h5py's reports of a corrupt file structure into a FormatError naming ``path``.

    A damaged B-tree or object header surfaces from h5py as KeyError, RuntimeError or a
    bare OSError deep inside a read; to a user it is one thing: this file is corrupt.
    """
    try:
        yield
    except (FileNotFoundError, PermissionError, IsADirectoryError, FormatError):
        raise
    except (KeyError, RuntimeError, OSError) as error:
        raise FormatError(
            f"{os.fspath(path)}: corrupt or unreadable HDF5 structure ({type(error).__name__}: "
            f"{error})"
        ) from error


def reads_hdf5(function: Callable) -> Callable:
    """Decorator: ``function(path, ...)`` reports a corrupt file as a FormatError naming
    ``path`` (see :func:`hdf5_errors`)."""

    @functools.wraps(function)
    def wrapper(path, *args, **kwargs):
        with hdf5_errors(path):
            return function(path, *args, **kwargs)

    return wrapper


def child(
    group: h5py.Group, name: str, path: PathLike, inside: str | None = None
) -> h5py.Group | h5py.Dataset | None:
    """Open one member of ``group`` (a single path component), or ``None`` if absent.

    Hard links are followed. External links are refused: they make HDF5 open another
    file named by the stranger who wrote this one. Soft links are followed only when
    their target lies within ``inside`` (the group being read) and is reached by hard
    links alone, so chains and cycles of links are refused too.
    """
    where = f"{group.name.rstrip('/')}/{name}"
    if not name or "/" in name or name in (".", ".."):
        raise fail(path, where, "invalid member name")
    key = name.encode("utf-8")
    if not group.id.links.exists(key, h5p.create(h5p.LINK_ACCESS)):
        return None
    kind = group.id.links.get_info(key).type
    if kind == h5l.TYPE_HARD:
        return group[name]
    if kind == h5l.TYPE_EXTERNAL:
        raise fail(path, where, "external links to other files are refused")
    if kind != h5l.TYPE_SOFT:
        raise fail(path, where, f"user-defined link type {kind} is refused")
    target = group.id.links.get_val(key).decode("utf-8", "replace")
    if not target.startswith("/"):
        target = f"{group.name.rstrip('/')}/{target}"
    parts: list[str] = []
    for part in target.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    resolved = "/" + "/".join(parts)
    if inside is None:
        raise fail(path, where, f"soft link to {target!r} is refused here (no links to links)")
    if not (resolved + "/").startswith(inside.rstrip("/") + "/"):
        raise fail(path, where, f"soft link to {target!r} points outside {inside}")
    obj: h5py.Group | h5py.Dataset | None = group.file
    for part in parts:
        if not isinstance(obj, h5py.Group):
            return None
        # Only hard links on the way: no chains of soft links, hence no cycles.
        obj = child(obj, part, path, inside=None)
        if obj is None:
            return None
    return obj


def resolve(
    group: h5py.Group, relative: str, path: PathLike, inside: str
) -> h5py.Group | h5py.Dataset | None:
    obj: h5py.Group | h5py.Dataset | None = group
    for part in relative.split("/"):
        if not isinstance(obj, h5py.Group):
            return None
        obj = child(obj, part, path, inside)
        if obj is None:
            return None
    return obj


def read_dataset(ds: Any, path: PathLike, file_size: int) -> np.ndarray:
    """Check a dataset and read it fully into memory."""
    obj = ds.name if isinstance(ds, h5py.HLObject) else repr(ds)
    if not isinstance(ds, h5py.Dataset):
        raise fail(path, obj, "expected a dataset")
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    if ds.is_virtual or layout == h5d.VIRTUAL:
        raise fail(path, obj, "virtual datasets (data from other files) are refused")
    if ds.external is not None:
        raise fail(path, obj, "datasets with external raw storage are refused")
    try:
        dtype = ds.dtype
    except (TypeError, ValueError) as exc:
        raise fail(path, obj, f"unsupported HDF5 datatype: {exc}") from exc
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise fail(path, obj, f"non-numeric dtype {dtype} cannot be a weight")
    shape = ds.shape
    if shape is None:
        raise fail(path, obj, "empty dataspace")
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if count > _MAX_ELEMENTS:
        raise fail(path, obj, f"absurd shape {shape}")
    filtered = layout == h5d.CHUNKED and dcpl.get_nfilters() > 0
    if not filtered and nbytes > file_size:
        # Unfiltered data is stored as is, so it cannot exceed the file; more would be
        # fill values conjured from nothing (a cheap way to exhaust memory).
        raise fail(path, obj, f"shape {shape} of {dtype} needs {nbytes} bytes, more than the file")
    if not filtered and ds.id.get_storage_size() < nbytes:
        # Keras always writes its weights; unwritten parts would silently read as fill values.
        raise fail(path, obj, "data never written (only fill values are stored)")
    if filtered and nbytes > max(
        _SMALL_EXPANSION_BYTES, _MAX_COMPRESSION_RATIO * ds.id.get_storage_size()
    ):
        raise fail(path, obj, f"shape {shape} expands more than {_MAX_COMPRESSION_RATIO}x")
    try:
        array = np.asarray(ds[()])
    except (OSError, ValueError, TypeError) as exc:
        raise fail(path, obj, f"unreadable data (truncated file?): {exc}") from exc
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


# --- isolation ---------------------------------------------------------------------------
# A read may take 10 s plus 1 s per 50 MB before it counts as hung.
ISOLATION_BASE_S = 10.0
ISOLATION_BYTES_PER_S = 50 << 20


def read_isolated(path: PathLike, read: Callable[[PathLike], list], timeout: float | None = None):
    """Runs ``read(path)`` (a reader of StoredLayers) in a forked child process.

    libhdf5 is C code: a damaged file from a stranger can make it crash or loop forever,
    which no Python ``try`` can catch. In a child, a crash or a hang becomes a clean
    FormatError here; the child hands its arrays back through a temporary ``.npz``
    (read with ``allow_pickle=False``) and the names through JSON.
    """
    import json
    import tempfile
    import time

    from .stored import StoredLayer

    if not hasattr(os, "fork"):
        return read(path)
    if timeout is None:
        size = os.path.getsize(path) if os.path.isfile(path) else 0
        timeout = ISOLATION_BASE_S + size / ISOLATION_BYTES_PER_S
    with tempfile.TemporaryDirectory(prefix="layerkit-read-") as folder:
        arrays_file, meta_file = os.path.join(folder, "a.npz"), os.path.join(folder, "m.json")
        pid = os.fork()
        if pid == 0:  # the child: read, write the results, leave without cleanup
            code = 0
            try:
                layers = read(path)
                arrays = {f"{i}:{k}": v for i, s in enumerate(layers) for k, v in s.weights.items()}
                np.savez(arrays_file, **arrays)
                meta = [[s.name, s.class_name, list(s.weights)] for s in layers]
                with open(meta_file, "w") as f:
                    json.dump({"layers": meta}, f)
            except BaseException as error:  # reported to the parent, which raises it
                with open(meta_file, "w") as f:
                    json.dump({"error": type(error).__name__, "message": str(error)}, f)
                code = 3
            os._exit(code)
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise FormatError(
                    f"{os.fspath(path)}: reading it did not finish in {timeout:.0f} s "
                    "(a damaged file can make libhdf5 loop); refused."
                )
            time.sleep(0.002)
        if not os.path.exists(meta_file):
            raise FormatError(
                f"{os.fspath(path)}: libhdf5 crashed while reading it "
                f"(exit status {status}); the file is damaged."
            )
        with open(meta_file) as f:
            meta = json.load(f)
        if "error" in meta:
            kind = {"FileNotFoundError": FileNotFoundError, "TypeError": TypeError}.get(
                meta["error"], FormatError
            )
            raise kind(meta["message"])
        with np.load(arrays_file, allow_pickle=False) as arrays:
            return [
                StoredLayer(name, {k: arrays[f"{i}:{k}"] for k in keys}, class_name=cls)
                for i, (name, cls, keys) in enumerate(meta["layers"])
            ]
