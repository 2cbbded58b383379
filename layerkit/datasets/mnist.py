"""MNIST handwritten digits, loaded as Keras's ``keras.datasets.mnist.load_data`` does.

The loader reads the four standard IDX files (gzip-compressed or not) or a Keras-style
``mnist.npz``. Given a ``path``, it reads the data there or raises: a mistyped path never
falls back to other data. Without one, it looks in ``$LAYERKIT_DATA/mnist`` and then in the
cache folder ``~/.layerkit/datasets/mnist`` (``$LAYERKIT_HOME/datasets/mnist`` when
``LAYERKIT_HOME`` is set); only then does it try to download the files into the cache.

Example:
    >>> from layerkit.datasets import mnist
    >>> (x_train, y_train), (x_test, y_test) = mnist.load_data()
    >>> x_train.shape, y_train.shape, x_test.shape, y_test.shape
    ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import io
import math
import os
import tempfile
import tokenize
import urllib.request
import zipfile
import zlib
from collections.abc import Sequence
from typing import BinaryIO

import numpy as np

__all__ = ["load_data", "write_idx"]

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILE_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
NPZ_NAME = "mnist.npz"
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

# Tried in order; each serves the four files as ``<mirror><name>.gz``.
MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
DOWNLOAD_TIMEOUT = 30.0

# sha256 of the uncompressed files: a mirror may recompress, but the IDX bytes must not change.
_SHA256 = {
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

_IMAGE_SIZE = (28, 28)
_NUM_CLASSES = 10
_CHUNK = 1 << 20
_MAX_NPZ_RATIO = 1000  # deflate rarely beats 1000:1 on real images
# What a damaged .npz can raise while numpy reads it.
# numpy parses a .npy header with Python's tokenizer, which raises its own error (not a
# SyntaxError) on a damaged header.
_NPZ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    SyntaxError,
    tokenize.TokenError,
)
_GZIP_MAGIC = b"\x1f\x8b"
# gzip reports damage through several unrelated exception types.
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)

Split = tuple[np.ndarray, np.ndarray]
# Where the data was found: the path of an .npz, or IDX file name -> path.
Source = str | dict[str, str]


def load_data(path: str | os.PathLike[str] | None = None) -> tuple[Split, Split]:
    """Loads the MNIST dataset.

    Args:
        path: A folder holding the four IDX files (``train-images-idx3-ubyte`` and so on, each
            optionally ending in ``.gz``) or a ``mnist.npz``, or the path of a ``mnist.npz``
            with Keras's keys ``x_train``, ``y_train``, ``x_test``, ``y_test``. In a folder
            holding both, ``mnist.npz`` wins over the IDX files. Only this path is read: when
            it does not hold the data, that is an error. When None, ``$LAYERKIT_DATA/mnist``
            and then the cache folder ``~/.layerkit/datasets/mnist`` are searched, and last
            the files are downloaded into the cache.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 images of shape ``(n, 28, 28)`` with
        grey levels 0-255 and uint8 labels of shape ``(n,)`` with digits 0-9.

    Raises:
        FileNotFoundError: ``path`` does not exist or does not hold the data (the message
            names it and says what is missing); or, without ``path``, the files are in none
            of the places searched and could not be downloaded (the message lists them).
        ValueError: A file is corrupt, truncated, padded or not what its name says; the
            message names the file.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_data("data/mnist")
        >>> x_train.dtype, x_train.shape, y_test.shape
        (dtype('uint8'), (60000, 28, 28), (10000,))
    """
    if path is not None:
        return _load_explicit(path)
    looked = []
    for where, location in _search_locations():
        if location is None:
            looked.append(f"{where}: not searched, LAYERKIT_DATA is not set")
            continue
        source, reason = _locate(location, explicit=False)
        if source is not None:
            return _load(source)
        looked.append(f"{where}: {reason}")

    cache = _cache_dir()
    missing = _missing_files(cache)
    try:
        _download(cache, missing)
    except OSError as exc:
        looked.append(f"download of {', '.join(n + '.gz' for n in missing)} into {cache}: {exc}")
        raise FileNotFoundError(_not_found_message(looked, cache)) from exc
    source, reason = _locate(cache, explicit=False)
    if source is None:  # Only if a replaced downloader stored nothing usable.
        looked.append(f"{cache} after downloading: {reason}")
        raise FileNotFoundError(_not_found_message(looked, cache))
    return _load(source)


def _load_explicit(path: str | os.PathLike[str]) -> tuple[Split, Split]:
    """Loads the data at a path the caller named, or raises: never the data of another place."""
    location = os.path.expanduser(os.fsdecode(path))
    if not os.path.exists(location):
        raise FileNotFoundError(
            f"load_data: `path` does not exist. Received: path={location!r}; expected a folder "
            f"holding the four IDX files or a {NPZ_NAME}, or the path of a {NPZ_NAME}. "
            "Pass path=None to search $LAYERKIT_DATA/mnist and the cache instead."
        )
    source, reason = _locate(location, explicit=True)
    if source is None:
        raise FileNotFoundError(
            f"load_data: `path` {reason}. Received: path={location!r}; expected a folder "
            f"holding the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            f"t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally .gz) or a "
            f"{NPZ_NAME}. Pass path=None to search $LAYERKIT_DATA/mnist and the cache instead."
        )
    return _load(source)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Writes a uint8 array as an IDX file, gzip-compressed when ``path`` ends with ``.gz``.

    This is the inverse of what :func:`load_data` reads; it is meant for tests and for
    converting small datasets to MNIST's layout.

    Args:
        path: The file to write; an existing file is replaced.
        array: A uint8 array with 1 to 255 dimensions, each shorter than 2**32.

    Example:
        >>> write_idx("t10k-labels-idx1-ubyte.gz", np.array([7, 2, 1], dtype=np.uint8))
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(
            f"write_idx: `array` must have dtype uint8 (IDX unsigned bytes). "
            f"Received: dtype={array.dtype}"
        )
    if not 1 <= array.ndim <= 255 or any(d >= 2**32 for d in array.shape):
        raise ValueError(
            f"write_idx: `array` must have 1 to 255 dimensions, each shorter than 2**32. "
            f"Received: shape={array.shape}"
        )
    header = (0x0800 | array.ndim).to_bytes(4, "big") + np.array(array.shape, ">u4").tobytes()
    payload = memoryview(np.ascontiguousarray(array)).cast("B")
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header)
        f.write(payload)


def _search_locations() -> list[tuple[str, str | None]]:
    """Returns ``(description, location)`` pairs in search order when no ``path`` is given,
    the cache last.

    The location is None for ``$LAYERKIT_DATA/mnist`` when the variable is not set.
    """
    locations = []
    data_root = os.environ.get("LAYERKIT_DATA")
    if data_root:
        location = os.path.join(os.path.expanduser(data_root), "mnist")
        locations.append((f"$LAYERKIT_DATA/mnist ({location})", location))
    else:
        locations.append(("$LAYERKIT_DATA/mnist", None))
    cache = _cache_dir()
    locations.append((f"cache {cache}", cache))
    return locations


def _cache_dir() -> str:
    """Returns the download cache: ``$LAYERKIT_HOME/datasets/mnist``, by default in ``~``."""
    home = os.environ.get("LAYERKIT_HOME") or os.path.join("~", ".layerkit")
    return os.path.join(os.path.expanduser(home), "datasets", "mnist")


def _locate(location: str, explicit: bool) -> tuple[Source | None, str]:
    """Finds the data at ``location``.

    Returns:
        ``(source, "")`` when the data is there, where ``source`` is the path of an .npz or a
        dict from IDX file name to path; else ``(None, reason)`` with the reason it is not.
    """
    if os.path.isfile(location):
        if location.endswith(".npz"):
            return location, ""
        if explicit:
            raise ValueError(
                f"load_data: `path` must be a folder or an .npz file. Received: path={location!r}, "
                "a file that is neither"
            )
        return None, "is a file, expected a folder"
    if not os.path.isdir(location):
        return None, "does not exist"
    npz = os.path.join(location, NPZ_NAME)
    if os.path.isfile(npz):
        return npz, ""
    files = {}
    for name in FILE_NAMES:
        # The plain file first: it needs no decompression.
        for candidate in (name, name + ".gz"):
            candidate_path = os.path.join(location, candidate)
            if os.path.isfile(candidate_path):
                files[name] = candidate_path
                break
    if len(files) == len(FILE_NAMES):
        return files, ""
    if not files:
        return None, f"holds neither {NPZ_NAME} nor the IDX files"
    missing = ", ".join(n + "[.gz]" for n in FILE_NAMES if n not in files)
    return None, f"holds no {NPZ_NAME} and only some IDX files; missing {missing}"


def _missing_files(folder: str) -> list[str]:
    return [
        name
        for name in FILE_NAMES
        if not any(os.path.isfile(os.path.join(folder, name + ext)) for ext in ("", ".gz"))
    ]


def _not_found_message(looked: Sequence[str], cache: str) -> str:
    places = "\n".join(f"  - {entry}" for entry in looked)
    return (
        "MNIST not found. Looked in:\n"
        f"{places}\n"
        "Provide the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally .gz) or a mnist.npz "
        "in one of three ways:\n"
        "  1. pass load_data(path=...) a folder holding them, or the path of a mnist.npz;\n"
        "  2. set LAYERKIT_DATA to a folder whose mnist/ subfolder holds them;\n"
        f"  3. put them in ~/.layerkit/datasets/mnist (here {cache}; LAYERKIT_HOME moves it)."
    )


def _load(source: Source) -> tuple[Split, Split]:
    if isinstance(source, str):
        return _load_npz(source)
    files = source
    train = _load_idx_split(files[TRAIN_IMAGES], files[TRAIN_LABELS])
    test = _load_idx_split(files[TEST_IMAGES], files[TEST_LABELS])
    return train, test


def _load_idx_split(images_path: str, labels_path: str) -> Split:
    images = _read_idx(images_path, ndim=3)
    labels = _read_idx(labels_path, ndim=1)
    _check_split(images, labels, images_path, labels_path)
    return images, labels


def _check_npz_members(path: str) -> None:
    """Reads each member's .npy header and refuses arrays its stored bytes cannot back,
    before numpy allocates them (a 1 KB file can declare a 78 TB array)."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise ValueError(
                        f"member {info.filename} uses compression {info.compress_type}"
                    )
                if info.file_size > _MAX_NPZ_RATIO * max(info.compress_size, 1) + (1 << 20):
                    raise ValueError(f"member {info.filename} expands more than {_MAX_NPZ_RATIO}x")
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(member)
                if math.prod(shape) * dtype.itemsize > info.file_size:
                    raise ValueError(
                        f"member {info.filename} declares shape {shape} of {dtype}, more than "
                        f"its {info.file_size} bytes"
                    )
    except _NPZ_ERRORS as exc:
        raise ValueError(f"{path}: not a valid mnist.npz ({exc})") from exc


def _load_npz(path: str) -> tuple[Split, Split]:
    _check_npz_members(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable .npz archive ({exc})") from exc
    if not hasattr(archive, "files"):
        raise ValueError(f"{path}: holds a single .npy array, expected an .npz archive")
    with archive:
        missing = [key for key in NPZ_KEYS if key not in archive.files]
        if missing:
            raise ValueError(
                f"{path}: missing arrays {missing}; expected the keys {list(NPZ_KEYS)}. "
                f"Received: {archive.files}"
            )
        try:
            arrays = {key: archive[key] for key in NPZ_KEYS}
        except _NPZ_ERRORS as exc:
            raise ValueError(f"{path}: cannot read its arrays ({exc})") from exc
    for key in NPZ_KEYS:
        if arrays[key].dtype != np.uint8:
            raise ValueError(f"{path}: {key} must have dtype uint8. Received: {arrays[key].dtype}")
    for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
        x, y = arrays[x_key], arrays[y_key]
        if x.ndim != 3 or x.shape[1:] != _IMAGE_SIZE:
            raise ValueError(f"{path}: {x_key} must have shape (n, 28, 28). Received: {x.shape}")
        if y.ndim != 1:
            raise ValueError(f"{path}: {y_key} must have shape (n,). Received: {y.shape}")
        _check_split(x, y, f"{path}[{x_key}]", f"{path}[{y_key}]")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _check_split(images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str):
    if len(images) != len(labels):
        raise ValueError(
            f"{images_name} holds {len(images)} images but {labels_name} holds {len(labels)} "
            "labels; expected as many of each"
        )
    if labels.size and labels.max() >= _NUM_CLASSES:
        index = int(np.argmax(labels >= _NUM_CLASSES))
        raise ValueError(
            f"{labels_name}: labels must be digits 0-9. Received: {labels[index]} at index {index}"
        )


def _read_idx(path: str, ndim: int) -> np.ndarray:
    """Reads an IDX file of unsigned bytes with ``ndim`` dimensions, checking its header."""
    compressed = path.endswith(".gz")
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as f:
            size = None if compressed else os.fstat(f.fileno()).st_size
            return _parse_idx(f, path, ndim, size)
    except _GZIP_ERRORS as exc:
        raise ValueError(
            f"{path}: corrupt gzip data ({type(exc).__name__}: {exc}); expected a "
            "gzip-compressed IDX file"
        ) from exc


def _parse_idx(f: BinaryIO, path: str, ndim: int, file_size: int | None) -> np.ndarray:
    header_size = 4 + 4 * ndim
    header = f.read(header_size)
    if len(header) < 4:
        raise ValueError(f"{path}: truncated, {len(header)} bytes long, shorter than a header")
    magic = int.from_bytes(header[:4], "big")
    expected_magic = 0x0800 | ndim
    if magic != expected_magic:
        kind = "images" if ndim == 3 else "labels"
        hint = " (it looks gzip-compressed: name it *.gz)" if header[:2] == _GZIP_MAGIC else ""
        raise ValueError(
            f"{path}: wrong IDX magic number 0x{magic:08X}, expected 0x{expected_magic:08X} "
            f"(unsigned bytes, {ndim} dimensions, as in an MNIST {kind} file){hint}"
        )
    if len(header) < header_size:
        raise ValueError(
            f"{path}: truncated, {len(header)} bytes long, shorter than its "
            f"{header_size}-byte header"
        )
    shape = tuple(int(d) for d in np.frombuffer(header, ">u4", offset=4))
    if ndim == 3 and shape[1:] != _IMAGE_SIZE:
        raise ValueError(f"{path}: images are {shape[1]}x{shape[2]} pixels, expected 28x28")
    expected = int(np.prod(shape, dtype=np.int64))
    described = f"the header announces {expected} bytes of data for shape {shape}"
    # For a plain file the size is known before allocating, so a corrupt count cannot ask for a
    # huge array.
    if file_size is not None and file_size != header_size + expected:
        state = "truncated" if file_size < header_size + expected else "padded"
        raise ValueError(
            f"{path}: {state}, {file_size - header_size} bytes of data follow the header but "
            f"{described}"
        )
    try:
        out = np.empty(shape, np.uint8)
    except MemoryError as exc:
        raise ValueError(f"{path}: {described}, more than memory holds; corrupt header?") from exc
    # Reading straight into the result keeps one copy of the data in memory, not two.
    buffer = memoryview(out).cast("B")
    filled = 0
    while filled < expected:
        n = f.readinto(buffer[filled : filled + _CHUNK])
        if not n:
            raise ValueError(
                f"{path}: truncated, {filled} bytes of data follow the header but {described}"
            )
        filled += n
    extra = 0
    while chunk := f.read(_CHUNK):
        extra += len(chunk)
    if extra:
        raise ValueError(
            f"{path}: padded, {expected + extra} bytes of data follow the header but {described}"
        )
    return out


def _download(folder: str, names: Sequence[str]) -> None:
    """Downloads ``<name>.gz`` for each name into ``folder``, trying each mirror in turn.

    Each file is checked against its sha256 and only then moved into place, so ``folder``
    never holds a partial or wrong file.

    Raises:
        OSError: No mirror supplied a file whose checksum matches, or ``folder`` is not
            writable.
    """
    os.makedirs(folder, exist_ok=True)
    for name in names:
        errors = []
        for mirror in MIRRORS:
            url = f"{mirror}{name}.gz"
            try:
                data = _fetch(url, DOWNLOAD_TIMEOUT)
                _check_sha256(data, name, url)
            except (OSError, ValueError, http.client.HTTPException, *_GZIP_ERRORS) as exc:
                errors.append(f"{url}: {exc}")
                continue
            _write_atomically(os.path.join(folder, name + ".gz"), data)
            break
        else:
            raise OSError(f"could not download {name}.gz ({'; '.join(errors)})")


def _fetch(url: str, timeout: float) -> bytes:
    """Returns the body at ``url``; the single place that touches the network."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _check_sha256(data: bytes, name: str, url: str) -> None:
    digest = hashlib.sha256()
    # Decompressing in chunks hashes the 47 MB of images without holding them.
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != _SHA256[name]:
        raise ValueError(
            f"sha256 of the uncompressed {name} from {url} is {digest.hexdigest()}, "
            f"expected {_SHA256[name]}"
        )


def _write_atomically(path: str, data: bytes) -> None:
    # A temporary file in the same folder, renamed when complete: readers and crashes never see
    # half a file, and the rename cannot cross file systems.
    fd, tmp_path = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".download-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        raise
