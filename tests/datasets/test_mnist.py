import gzip
import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest

from layerkit.datasets import mnist

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"
NAMES = mnist.FILE_NAMES


def make_arrays(n_train=5, n_test=3, label_offset=0, seed=0):
    """Tiny MNIST-shaped arrays; ``label_offset`` makes datasets from different places differ."""
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    y_train = ((np.arange(n_train) + label_offset) % 10).astype(np.uint8)
    y_test = ((np.arange(n_test) + label_offset) % 10).astype(np.uint8)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def write_dataset(folder, arrays, suffix=".gz"):
    """Writes ``arrays`` as the four IDX files in ``folder``; returns the paths by file name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, key in zip(NAMES, mnist.NPZ_KEYS, strict=True):
        paths[name] = folder / (name + suffix)
        mnist.write_idx(paths[name], arrays[key])
    return paths


def assert_loaded(result, arrays):
    (x_train, y_train), (x_test, y_test) = result
    for key, got in zip(mnist.NPZ_KEYS, (x_train, y_train, x_test, y_test), strict=True):
        assert got.dtype == np.uint8, key
        np.testing.assert_array_equal(got, arrays[key], err_msg=key)


def idx_bytes(array):
    header = (0x0800 | array.ndim).to_bytes(4, "big") + np.array(array.shape, ">u4").tobytes()
    return header + array.tobytes()


# Formats


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_loads_idx_files(tmp_path, suffix):
    arrays = make_arrays()
    write_dataset(tmp_path, arrays, suffix)
    result = mnist.load_data(tmp_path)
    assert_loaded(result, arrays)
    (x_train, _), _ = result
    assert x_train.shape == (5, 28, 28)
    assert x_train.flags.writeable


def test_loads_mixed_plain_and_gz_files(tmp_path):
    arrays = make_arrays()
    paths = write_dataset(tmp_path, arrays)
    plain = paths[mnist.TEST_LABELS].with_suffix("")
    plain.write_bytes(gzip.decompress(paths[mnist.TEST_LABELS].read_bytes()))
    paths[mnist.TEST_LABELS].unlink()
    assert_loaded(mnist.load_data(str(tmp_path)), arrays)


def test_plain_file_wins_over_gz_in_same_folder(tmp_path):
    write_dataset(tmp_path, make_arrays(label_offset=1), ".gz")
    plain = make_arrays(label_offset=2)
    write_dataset(tmp_path, plain, "")
    assert_loaded(mnist.load_data(tmp_path), plain)


def test_loads_npz_given_as_file(tmp_path):
    arrays = make_arrays()
    np.savez(tmp_path / "mine.npz", **arrays)
    assert_loaded(mnist.load_data(tmp_path / "mine.npz"), arrays)


def test_loads_npz_in_folder_before_idx_files(tmp_path):
    write_dataset(tmp_path, make_arrays(label_offset=1))
    arrays = make_arrays(label_offset=2)
    np.savez_compressed(tmp_path / "mnist.npz", **arrays)
    assert_loaded(mnist.load_data(tmp_path), arrays)


def test_npz_missing_key_raises_naming_file(tmp_path):
    arrays = make_arrays()
    del arrays["y_test"]
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(ValueError, match=r"mnist\.npz: missing arrays \['y_test'\]"):
        mnist.load_data(tmp_path)


def test_npz_wrong_dtype_raises_naming_file(tmp_path):
    arrays = make_arrays()
    arrays["x_train"] = arrays["x_train"].astype(np.float32)
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(ValueError, match=r"mnist\.npz: x_train must have dtype uint8"):
        mnist.load_data(tmp_path)


def test_npz_object_array_is_refused(tmp_path):
    arrays = make_arrays()
    arrays["y_train"] = np.array([object()] * 5, dtype=object)
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(ValueError, match=r"mnist\.npz: cannot read its arrays"):
        mnist.load_data(tmp_path)


def test_corrupt_npz_raises_naming_file(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip archive")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        mnist.load_data(path)


def test_path_to_file_that_is_not_npz_raises(tmp_path):
    paths = write_dataset(tmp_path, make_arrays())
    with pytest.raises(ValueError, match=r"`path` must be a folder or an \.npz file"):
        mnist.load_data(paths[mnist.TRAIN_IMAGES])


# Search order


def test_search_order_path_then_env_then_cache(tmp_path, monkeypatch):
    from_path = make_arrays(label_offset=1)
    from_env = make_arrays(label_offset=2)
    from_cache = make_arrays(label_offset=3)
    write_dataset(tmp_path / "given", from_path)
    write_dataset(tmp_path / "data" / "mnist", from_env)
    write_dataset(mnist._cache_dir(), from_cache)
    monkeypatch.setenv("LAYERKIT_DATA", str(tmp_path / "data"))

    assert_loaded(mnist.load_data(tmp_path / "given"), from_path)
    assert_loaded(mnist.load_data(), from_env)
    monkeypatch.delenv("LAYERKIT_DATA")
    assert_loaded(mnist.load_data(), from_cache)


def test_explicit_path_that_does_not_exist_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    # Data elsewhere that a typo must not silently train on.
    write_dataset(tmp_path / "data" / "mnist", make_arrays(label_offset=2))
    write_dataset(mnist._cache_dir(), make_arrays(label_offset=3))
    monkeypatch.setenv("LAYERKIT_DATA", str(tmp_path / "data"))
    absent = tmp_path / "absent"
    for given in (absent, str(absent), os.fsencode(absent)):
        with pytest.raises(FileNotFoundError) as excinfo:
            mnist.load_data(given)
        message = str(excinfo.value)
        assert f"Received: path={str(absent)!r}" in message
        assert "`path` does not exist" in message
        assert "path=None" in message


def test_explicit_folder_without_the_data_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    write_dataset(tmp_path / "data" / "mnist", make_arrays(label_offset=2))
    monkeypatch.setenv("LAYERKIT_DATA", str(tmp_path / "data"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"`path` holds neither mnist\.npz nor the IDX"):
        mnist.load_data(tmp_path / "empty")


def test_cache_defaults_to_home_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("LAYERKIT_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert mnist._cache_dir() == str(tmp_path / ".layerkit" / "datasets" / "mnist")


def test_incomplete_explicit_folder_is_refused_naming_the_missing_files(tmp_path):
    paths = write_dataset(tmp_path / "partial", make_arrays())
    paths[mnist.TEST_LABELS].unlink()
    write_dataset(mnist._cache_dir(), make_arrays(label_offset=4))
    with pytest.raises(FileNotFoundError, match=r"missing t10k-labels-idx1-ubyte\[\.gz\]"):
        mnist.load_data(tmp_path / "partial")


def test_incomplete_searched_folder_is_skipped_and_reported(tmp_path, monkeypatch):
    paths = write_dataset(tmp_path / "data" / "mnist", make_arrays())
    paths[mnist.TEST_LABELS].unlink()
    monkeypatch.setenv("LAYERKIT_DATA", str(tmp_path / "data"))
    arrays = make_arrays(label_offset=4)
    write_dataset(mnist._cache_dir(), arrays)
    assert_loaded(mnist.load_data(), arrays)

    def offline(folder, names):
        raise OSError("network is unreachable")

    monkeypatch.setattr(mnist, "_download", offline)
    monkeypatch.setenv("LAYERKIT_HOME", str(tmp_path / "empty_home"))
    with pytest.raises(FileNotFoundError, match=r"missing t10k-labels-idx1-ubyte\[\.gz\]"):
        mnist.load_data()


# Validation


def test_corrupt_gzip_raises_naming_file(tmp_path):
    paths = write_dataset(tmp_path, make_arrays())
    path = paths[mnist.TRAIN_IMAGES]
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": corrupt gzip data"):
        mnist.load_data(tmp_path)


def test_truncated_gzip_raises_naming_file(tmp_path):
    paths = write_dataset(tmp_path, make_arrays())
    path = paths[mnist.TEST_IMAGES]
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": corrupt gzip data"):
        mnist.load_data(tmp_path)


def test_not_gzip_despite_suffix_raises_naming_file(tmp_path):
    paths = write_dataset(tmp_path, make_arrays())
    path = paths[mnist.TRAIN_LABELS]
    path.write_bytes(gzip.decompress(path.read_bytes()))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": corrupt gzip data"):
        mnist.load_data(tmp_path)


def test_gzip_without_suffix_gets_a_hint(tmp_path):
    paths = write_dataset(tmp_path, make_arrays(), "")
    path = paths[mnist.TRAIN_LABELS]
    path.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(ValueError, match=r"wrong IDX magic number 0x1F8B.*name it \*\.gz"):
        mnist.load_data(tmp_path)


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize(
    ("name", "cut", "message"),
    [
        (mnist.TRAIN_IMAGES, 10, r"truncated, 3910 bytes of data follow the header"),
        (mnist.TRAIN_LABELS, 1, r"truncated, 4 bytes of data follow the header"),
        (mnist.TEST_IMAGES, -2, r"padded, 2354 bytes of data follow the header"),
        (mnist.TEST_LABELS, 6, r"truncated, 5 bytes long, shorter than its 8-byte header"),
        (mnist.TEST_LABELS, 9, r"truncated, 2 bytes long, shorter than a header"),
    ],
)
def test_truncated_or_padded_file_raises_naming_file(tmp_path, suffix, name, cut, message):
    paths = write_dataset(tmp_path, make_arrays(), suffix)
    path = paths[name]
    data = path.read_bytes()
    data = gzip.decompress(data) if suffix else data
    # A negative cut pads, a positive one truncates.
    data = data + b"\0" * -cut if cut < 0 else data[:-cut]
    path.write_bytes(gzip.compress(data) if suffix else data)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": " + message):
        mnist.load_data(tmp_path)


def test_wrong_magic_raises_naming_file(tmp_path):
    arrays = make_arrays()
    paths = write_dataset(tmp_path, arrays)
    # A labels file where the images belong.
    mnist.write_idx(paths[mnist.TRAIN_IMAGES], arrays["y_train"])
    with pytest.raises(
        ValueError,
        match=re.escape(str(paths[mnist.TRAIN_IMAGES]))
        + r": wrong IDX magic number 0x00000801, expected 0x00000803",
    ):
        mnist.load_data(tmp_path)


def test_mismatched_counts_raise_naming_both_files(tmp_path):
    arrays = make_arrays()
    paths = write_dataset(tmp_path, arrays)
    mnist.write_idx(paths[mnist.TEST_LABELS], arrays["y_test"][:2])
    expected = (
        re.escape(str(paths[mnist.TEST_IMAGES]))
        + " holds 3 images but "
        + re.escape(str(paths[mnist.TEST_LABELS]))
        + " holds 2 labels"
    )
    with pytest.raises(ValueError, match=expected):
        mnist.load_data(tmp_path)


def test_wrong_image_size_raises_naming_file(tmp_path):
    paths = write_dataset(tmp_path, make_arrays())
    mnist.write_idx(paths[mnist.TRAIN_IMAGES], np.zeros((5, 27, 28), np.uint8))
    with pytest.raises(
        ValueError,
        match=re.escape(str(paths[mnist.TRAIN_IMAGES])) + ": images are 27x28 pixels",
    ):
        mnist.load_data(tmp_path)


def test_label_out_of_range_raises_naming_file(tmp_path):
    paths = write_dataset(tmp_path, make_arrays())
    mnist.write_idx(paths[mnist.TRAIN_LABELS], np.array([1, 2, 10, 3, 4], np.uint8))
    with pytest.raises(
        ValueError,
        match=re.escape(str(paths[mnist.TRAIN_LABELS])) + r": .*Received: 10 at index 2",
    ):
        mnist.load_data(tmp_path)


def test_huge_count_in_plain_header_is_caught_before_allocating(tmp_path):
    paths = write_dataset(tmp_path, make_arrays(), "")
    path = paths[mnist.TRAIN_IMAGES]
    data = bytearray(path.read_bytes())
    data[4:8] = (2**32 - 1).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": truncated"):
        mnist.load_data(tmp_path)


# write_idx


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_write_idx_writes_the_standard_layout(tmp_path, suffix):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a" + suffix)
    mnist.write_idx(str(path), array)
    data = gzip.decompress(path.read_bytes()) if suffix else path.read_bytes()
    assert data == bytes.fromhex("00000803 00000002 00000003 00000004") + bytes(range(24))


def test_write_idx_rejects_other_dtypes(tmp_path):
    with pytest.raises(TypeError, match=r"dtype uint8 .*Received: dtype=int64"):
        mnist.write_idx(tmp_path / "a", np.zeros(3, np.int64))


def test_write_idx_rejects_scalars(tmp_path):
    with pytest.raises(ValueError, match=r"Received: shape=\(\)"):
        mnist.write_idx(tmp_path / "a", np.uint8(3))


# Download


def fake_server(monkeypatch, arrays, corrupt_urls=()):
    """Serves ``arrays`` as gz IDX files from every mirror; returns the list of fetched URLs."""
    payloads = {
        name: idx_bytes(arrays[key]) for name, key in zip(NAMES, mnist.NPZ_KEYS, strict=True)
    }
    monkeypatch.setattr(
        mnist, "_SHA256", {n: hashlib.sha256(p).hexdigest() for n, p in payloads.items()}
    )
    fetched = []

    def fetch(url, timeout):
        assert timeout == mnist.DOWNLOAD_TIMEOUT
        fetched.append(url)
        name = url.rsplit("/", 1)[1].removesuffix(".gz")
        payload = payloads[name]
        if url in corrupt_urls:
            payload = payload[:-1] + b"\x09"
        return gzip.compress(payload)

    monkeypatch.setattr(mnist, "_fetch", fetch)
    return fetched


def test_download_lands_in_cache_atomically(tmp_path, monkeypatch):
    arrays = make_arrays()
    fetched = fake_server(monkeypatch, arrays)
    cache = Path(mnist._cache_dir())
    replaced = []
    real_replace = os.replace

    def replace(src, dst):
        # The final name appears only by renaming a complete temporary file from the same folder.
        assert Path(src).parent == cache
        assert not Path(dst).exists()
        replaced.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert_loaded(mnist.load_data(), arrays)
    assert fetched == [mnist.MIRRORS[0] + n + ".gz" for n in NAMES]
    assert replaced == [n + ".gz" for n in NAMES]
    assert sorted(os.listdir(cache)) == sorted(n + ".gz" for n in NAMES)

    # A second call reads the cache and downloads nothing.
    fetched.clear()
    assert_loaded(mnist.load_data(), arrays)
    assert fetched == []


def test_download_fetches_only_missing_files(tmp_path, monkeypatch):
    arrays = make_arrays()
    write_dataset(mnist._cache_dir(), arrays, "")
    os.remove(os.path.join(mnist._cache_dir(), mnist.TEST_IMAGES))
    fetched = fake_server(monkeypatch, arrays)
    assert_loaded(mnist.load_data(), arrays)
    assert fetched == [mnist.MIRRORS[0] + mnist.TEST_IMAGES + ".gz"]


def test_download_falls_back_to_second_mirror(tmp_path, monkeypatch):
    arrays = make_arrays()
    bad = mnist.MIRRORS[0] + mnist.TRAIN_LABELS + ".gz"
    fetched = fake_server(monkeypatch, arrays, corrupt_urls=(bad,))
    assert_loaded(mnist.load_data(), arrays)
    assert fetched[1:3] == [bad, mnist.MIRRORS[1] + mnist.TRAIN_LABELS + ".gz"]


def test_download_with_wrong_checksum_leaves_no_file(tmp_path, monkeypatch):
    arrays = make_arrays()
    fake_server(monkeypatch, arrays)
    wrong = dict(mnist._SHA256, **{mnist.TRAIN_IMAGES: "0" * 64})
    monkeypatch.setattr(mnist, "_SHA256", wrong)
    with pytest.raises(FileNotFoundError, match=r"could not download train-images-idx3-ubyte\.gz"):
        mnist.load_data()
    assert os.listdir(mnist._cache_dir()) == []


def test_failed_rename_leaves_no_file(tmp_path, monkeypatch):
    fake_server(monkeypatch, make_arrays())

    def replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(FileNotFoundError, match="disk full"):
        mnist.load_data()
    assert os.listdir(mnist._cache_dir()) == []


def test_offline_error_lists_every_place_and_the_ways_to_fix_it(tmp_path, monkeypatch):
    def offline(folder, names):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(mnist, "_download", offline)
    monkeypatch.setenv("LAYERKIT_DATA", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError) as excinfo:
        mnist.load_data()
    message = str(excinfo.value)
    cache = mnist._cache_dir()
    assert f"$LAYERKIT_DATA/mnist ({tmp_path / 'data' / 'mnist'}): does not exist" in message
    assert f"cache {cache}: does not exist" in message
    assert "Temporary failure in name resolution" in message
    assert "pass load_data(path=...)" in message
    assert "set LAYERKIT_DATA" in message
    assert "~/.layerkit/datasets/mnist" in message


def test_offline_error_says_when_layerkit_data_is_unset(monkeypatch):
    def offline(folder, names):
        raise OSError("no network")

    monkeypatch.setattr(mnist, "_download", offline)
    with pytest.raises(FileNotFoundError, match=r"\$LAYERKIT_DATA/mnist: not searched"):
        mnist.load_data()


# The real data


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"{REAL_DATA} is absent")
def test_real_mnist():
    (x_train, y_train), (x_test, y_test) = mnist.load_data(REAL_DATA)
    assert x_train.shape == (60000, 28, 28)
    assert x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,)
    assert y_test.shape == (10000,)
    for array in (x_train, y_train, x_test, y_test):
        assert array.dtype == np.uint8
    np.testing.assert_array_equal(
        np.bincount(y_train, minlength=10),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    )
    np.testing.assert_array_equal(
        np.bincount(y_test, minlength=10),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    )
    assert x_train.max() == 255
