"""Atomic file writes: a checkpoint is either the old file or the new one, never half of one.

The data goes to a temporary file in the target's folder (same file system, so the final
``os.replace`` is atomic), which is flushed and fsynced before the rename; the folder is
fsynced after it so the rename itself survives a power cut. Temporary files left by a
process that died are removed by the next save to the same target.

A save changes the file's contents only, as ``open(path, "w")`` would: a symbolic link is
written through (its target is replaced, the link stays), and an existing file keeps its
permission bits (and, where the process may, its owner and group). When the folder is not
writable but the file is, there is no room for a temporary file beside it: the new
contents are then written in full to a temporary file in the system's temporary folder
and copied over the target in place, with a warning that this save is not atomic.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import tempfile
import warnings
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


def _resolve(target: str) -> str:
    """The file a write to ``target`` lands in: symbolic links followed, as ``open`` does,
    also when the last link dangles."""
    real = os.path.realpath(target)
    if os.path.islink(real):  # realpath stops at a loop and returns a link
        raise OSError(errno.ELOOP, f"Cannot save to {target}: too many levels of symbolic links")
    return real


def _create_temporary(path: str, mode: int) -> None:
    """Creates the empty temporary file; fails (PermissionError) in a read-only folder."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))


def _copy_metadata(existing: os.stat_result, tmp: str) -> None:
    """Gives ``tmp`` the permission bits, and if possible the owner and group, of the file
    it replaces. Owner first: changing it may clear the set-user-ID bits."""
    current = os.stat(tmp)
    if (current.st_uid, current.st_gid) != (existing.st_uid, existing.st_gid):
        with contextlib.suppress(OSError):  # only root (or a group member) may
            os.chown(tmp, existing.st_uid, existing.st_gid)
    os.chmod(tmp, stat.S_IMODE(existing.st_mode))


def _saving_error(error: OSError, target: str, outcome: str) -> OSError:
    return type(error)(
        error.errno, f"Could not save to {target}: {error.strerror or error}. {outcome}"
    )


def atomic_write(target: str | os.PathLike, write: Callable[[str], None]) -> str:
    """Calls ``write(tmp_path)`` and then moves the finished file onto ``target``.

    A symbolic link is written through: the file it points to is replaced and the link
    stays a link. An existing file keeps its permission bits (and owner and group when the
    process may set them).

    Returns:
        ``target`` as an absolute path (a link stays named as given).

    Warns:
        UserWarning: when the folder is not writable but the file is; the save then copies
            the fully written new contents over the file in place, which is not atomic.

    Raises:
        PermissionError: when neither the folder nor the file is writable, naming both.
        OSError: when writing, syncing or renaming fails (full disk, no permission...),
            with a message naming ``target``; the previous ``target`` is left unchanged
            and the temporary file is removed.
    """
    target = os.path.abspath(os.fspath(target))
    real = _resolve(target)
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            errno.ENOENT, f"Cannot save to {target}: the folder {folder} does not exist"
        )
    if os.path.isdir(real):
        raise IsADirectoryError(errno.EISDIR, f"Cannot save to {target}: it is a folder")
    try:
        existing = os.stat(real)
    except FileNotFoundError:
        existing = None
    clean_stale_temporaries(real)
    tmp = _tmp_name(real)
    try:
        # Private until finished; a new file gets open()'s mode (0o666 less the umask).
        _create_temporary(tmp, 0o600 if existing is not None else 0o666)
    except PermissionError as error:
        _write_in_place(target, real, existing, write, error)
        return target
    except OSError as error:
        raise _saving_error(error, target, "The previous file, if any, is unchanged") from error
    try:
        write(tmp)
        if existing is not None:
            _copy_metadata(existing, tmp)
        _fsync_path(tmp)
        os.replace(tmp, real)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(error, OSError):
            raise _saving_error(error, target, "The previous file, if any, is unchanged") from error
        raise
    _fsync_path(folder, directory=True)
    return target


_COPY_CHUNK = 1 << 20


def _write_in_place(
    target: str,
    real: str,
    existing: os.stat_result | None,
    write: Callable[[str], None],
    folder_error: PermissionError,
) -> None:
    """Saves into a read-only folder: the whole new file is written and synced elsewhere
    first, then its bytes are copied over ``real`` (which keeps its inode, mode and owner)."""
    folder = os.path.dirname(real)
    unwritable = PermissionError(
        folder_error.errno,
        f"Cannot save to {target}: the folder {folder} is not writable (no temporary file "
        "can be created there) and "
        + ("the file itself is not writable either" if existing else "the file does not exist"),
    )
    if existing is None or not stat.S_ISREG(existing.st_mode):
        raise unwritable from folder_error
    try:
        # Opened now, without truncating: nothing is written to it before the copy.
        fd = os.open(real, os.O_WRONLY)
    except PermissionError as error:
        raise unwritable from error
    except OSError as error:
        raise _saving_error(error, target, "The previous file is unchanged") from error
    try:
        warnings.warn(
            f"Saving to {target} is not atomic: the folder {folder} is not writable, so the "
            "new file is written to a temporary file elsewhere and then copied over the old "
            "one in place; a crash during the copy can leave it half-written.",
            UserWarning,
            stacklevel=4,
        )
        tmp = None
        try:
            try:
                tmp_fd, tmp = tempfile.mkstemp(prefix=f"layerkit-{os.path.basename(real)}-")
                os.close(tmp_fd)
                write(tmp)
                _fsync_path(tmp)
                size = os.path.getsize(tmp)
            except OSError as error:
                raise _saving_error(error, target, "The previous file is unchanged") from error
            try:
                _copy_over(tmp, fd, size)
            except OSError as error:
                raise _saving_error(
                    error,
                    target,
                    "The save was not atomic (the folder is not writable): the file may be "
                    "half-written; save it again",
                ) from error
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.remove(tmp)
    finally:
        os.close(fd)


def _copy_over(source: str, fd: int, size: int) -> None:
    """Copies ``size`` bytes of ``source`` to the start of ``fd``, cuts ``fd`` there, syncs."""
    os.lseek(fd, 0, os.SEEK_SET)
    copied = 0
    with open(source, "rb") as src:
        while chunk := src.read(_COPY_CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
            copied += len(chunk)
    if copied != size:
        raise OSError(
            errno.EIO, f"the temporary file changed while copying ({copied} of {size} bytes)"
        )
    os.ftruncate(fd, size)
    os.fsync(fd)
