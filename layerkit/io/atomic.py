"""Atomic file writes: a checkpoint is either the old file or the new one, never half of one.

The data goes to a temporary file in the target's folder (same file system, so the final
``os.replace`` is atomic), which is flushed and fsynced before the rename; the folder is
fsynced after it so the rename itself survives a power cut. Temporary files left by a
process that died are removed by the next save to the same target.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Callable

_TMP_PATTERN = r"\.{name}\.tmp-(\d+)-[0-9a-f]+"


def _tmp_name(target: str) -> str:
    folder, name = os.path.split(target)
    return os.path.join(folder, f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temporaries(target: str) -> list[str]:
    """Removes temporary files of ``target`` whose writing process is gone."""
    folder, name = os.path.split(os.path.abspath(target))
    pattern = re.compile(_TMP_PATTERN.format(name=re.escape(name)))
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.listdir(folder):
            match = pattern.fullmatch(entry)
            if match and not _process_alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(folder, entry))
                    removed.append(entry)
    return removed


def _fsync_path(path: str, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:
            return  # some file systems do not let folders be opened; the rename still stands
        raise
    try:
        os.fsync(fd)
    except OSError as error:
        if not directory or error.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def atomic_write(target: str | os.PathLike, write: Callable[[str], None]) -> str:
    """Calls ``write(tmp_path)`` and then moves the finished file onto ``target``.

    Raises:
        OSError: when writing, syncing or renaming fails (full disk, no permission...),
            with a message naming ``target``; the previous ``target`` is left unchanged
            and the temporary file is removed.
    """
    target = os.path.abspath(os.fspath(target))
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            errno.ENOENT, f"Cannot save to {target}: the folder {folder} does not exist"
        )
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, f"Cannot save to {target}: it is a folder")
    clean_stale_temporaries(target)
    tmp = _tmp_name(target)
    try:
        write(tmp)
        _fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(error, OSError):
            raise type(error)(
                error.errno,
                f"Could not save to {target}: {error.strerror or error}. "
                "The previous file, if any, is unchanged",
            ) from error
        raise
    _fsync_path(folder, directory=True)
    return target
