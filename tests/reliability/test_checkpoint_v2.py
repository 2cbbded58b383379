"""Untrusted-input paths of checkpoint format version 2.

1. ``lk.load_model("x.keras")`` on a zip archive holding layerkit's checkpoint as the
   member ``layerkit.h5`` (what ``model.save("x.keras")`` writes): damaged, truncated,
   foreign or hostile members, members declaring huge sizes, archives without the
   member (they go to ``lk.io.load_keras``) and archives whose two halves disagree.
2. The ``epoch_in_progress`` of a mid-epoch backup (``BackupAndRestore(save_freq=N)``)
   holding values that ``fit`` could not continue from.
3. Optimizer state: an unknown ``slot_form``, parameters whose group is missing.
4. ``restore_training_state`` / ``BackupAndRestore`` into a model whose architecture
   changed: refused with a ValueError naming the difference, nothing in the model
   changed (weights, optimizer state, iterations, learning rate, shuffle generator,
   layer states).

"""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

import layerkit as lk
from layerkit.io.checkpoint import restore_training_state, seal
from layerkit.random import rng_state

MEMBER = "layerkit.h5"
MEMORY_LIMIT = 64 << 20
# A temporary copy of the member (tempfile.TemporaryDirectory(prefix="layerkit-")).
TEMPORARY = re.compile(r"layerkit-[A-Za-z0-9_]+[/\\]layerkit\.h5")
X = np.linspace(-1, 1, 64, dtype=np.float32).reshape(16, 4)
Y = np.linspace(-1, 1, 32, dtype=np.float32).reshape(16, 2)
STEPS = 4  # batches of 4 out of 16 samples


# --------------------------------------------------------------------------------------
# Models and their complete state
# --------------------------------------------------------------------------------------


def victim(
    seed: int = 0,
    *,
    units: int = 3,
    activation: str = "relu",
    use_bias: bool = True,
    rate: float = 0.2,
    features: int = 4,
    extra_layer: bool = False,
    dropout: bool = True,
    first_name: str = "hidden1",
    learning_rate: float = 0.01,
    metrics=("mae",),
    trained: bool = True,
) -> lk.Sequential:
    """Input -> Dense "hidden1" -> Dropout "drop" -> Dense 2 "out", Adam, MSE, MAE; one
    epoch trained (so the optimizer has slots, iterations and a moved shuffle generator)."""
    lk.utils.set_random_seed(seed)
    layers = [
        lk.layers.Input((features,)),
        lk.layers.Dense(units, activation=activation, use_bias=use_bias, name=first_name),
    ]
    if extra_layer:
        layers.append(lk.layers.Dense(units, activation="relu", name="extra"))
    if dropout:
        layers.append(lk.layers.Dropout(rate, seed=1, name="drop"))
    layers.append(lk.layers.Dense(2, name="out"))
    model = lk.Sequential(layers, name="victim")
    model.compile(
        optimizer=lk.optim.Adam(learning_rate=learning_rate), loss="mse", metrics=list(metrics)
    )
    if trained:
        x = np.linspace(-1, 1, 16 * features, dtype=np.float32).reshape(16, features)
        model.fit(x, Y, batch_size=4, epochs=1, verbose=0)
    return model


def full_state(rel, model) -> dict:
    """``rel.snapshot`` plus what a backup also restores: learning rate, optimizer
    config, shuffle generator, layer states, the pending resume position."""
    return {
        "snapshot": rel.snapshot(model),
        "learning_rate": model.optimizer.learning_rate,
        "optimizer_config": json.dumps(model.optimizer.get_config(), sort_keys=True),
        "shuffle_rng": json.dumps(rng_state(model._shuffle_rng), sort_keys=True),
        "layer_states": json.dumps([layer.training_state() for layer in model.layers]),
        "resume": (model._resume_from_epoch, model._resume_in_epoch),
    }


def assert_all_unchanged(rel, model, before: dict, context: str) -> None:
    rel.assert_unchanged(model, before["snapshot"], context)
    after = full_state(rel, model)
    for key in ("learning_rate", "optimizer_config", "shuffle_rng", "layer_states", "resume"):
        assert after[key] == before[key], f"{key} changed after {context}"


def _edit_checkpoint(source: Path, target: Path, edit) -> Path:
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as f:
        edit(f)
    seal(str(target))
    return target


# --------------------------------------------------------------------------------------
# 1. .keras archives holding layerkit.h5
# --------------------------------------------------------------------------------------


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def _zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _crafted_zip(path: Path, members: list[tuple[str, bytes, int, int]]) -> Path:
    """A stored (uncompressed) zip whose central directory declares, for each member,
    ``(name, data, declared size, declared compressed size)``; sizes of 2**32-1 and
    above go in a zip64 extra field, as zip64 archives declare them."""
    out = io.BytesIO()
    directory = []
    for name, data, size, compressed in members:
        offset, raw, crc = out.tell(), name.encode(), zlib.crc32(data)
        out.write(
            struct.pack(
                "<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, len(data), len(data), len(raw), 0
            )
        )
        out.write(raw + data)
        extra = b""
        if max(size, compressed) >= 0xFFFFFFFF:
            extra = struct.pack("<HHQQ", 1, 16, size, compressed)
            size = compressed = 0xFFFFFFFF
        directory.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                45,
                45,
                0,
                0,
                0,
                0,
                crc,
                compressed,
                size,
                len(raw),
                len(extra),
                0,
                0,
                0,
                0,
                offset,
            )
            + raw
            + extra
        )
    start = out.tell()
    central = b"".join(directory)
    out.write(central)
    out.write(
        struct.pack(
            "<IHHHHIIH", 0x06054B50, 0, 0, len(directory), len(directory), len(central), start, 0
        )
    )
    path.write_bytes(out.getvalue())
    return path


class Archives:
    def __init__(self, folder: Path, rel) -> None:
        self.folder = folder
        self.source = victim(seed=3)
        self.keras = Path(self.source.save(folder / "source.keras"))
        self.h5 = Path(self.source.save(folder / "source.h5"))
        self.members = _members(self.keras)
        assert MEMBER in self.members
        self.other = folder / "other.h5"
        with h5py.File(self.other, "w") as f:
            f["kernel"] = np.full((4, 3), 1234.5, np.float32)


@pytest.fixture(scope="module")
def archives(rel, tmp_path_factory) -> Archives:
    return Archives(tmp_path_factory.mktemp("archives"), rel)


def _load(rel, category: str, path: Path):
    with rel.memory_guard() as memory:
        result, error = rel.attempt(category, lambda: lk.load_model(path))
    assert memory["peak"] < MEMORY_LIMIT, f"{path.name}: memory grew by {memory['peak'] >> 20} MiB"
    return result, error


def _check_named(rel, error, path: Path, *texts: str) -> None:
    """Refused with a ValueError naming the user's archive and member
    (``x.keras!layerkit.h5``), never the temporary copy of the member."""
    rel.assert_refusal(error, texts=(f"{path}!{MEMBER}", *texts), context=path.name)
    assert isinstance(error, ValueError), rel.describe(error)
    assert not TEMPORARY.search(str(error)), f"a temporary path leaked: {rel.describe(error)}"


def _member_variants(data: bytes, h5: bytes, other: bytes) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    variants = {"empty": b"", "random bytes": rng.bytes(len(data))}
    for at in (0, 17, 100, 511, 512, 600, 2048, len(data) // 2, len(data) - 1):
        flipped = bytearray(data)
        flipped[at] ^= 0x5A
        variants[f"byte {at} flipped"] = bytes(flipped)
    for keep in (8, 511, 512, 4096, len(data) // 2, len(data) - 1):
        variants[f"truncated to {keep} bytes"] = data[:keep]
    variants["extended by 64 bytes"] = data + b"\0" * 64
    variants["the Keras weights member"] = h5
    variants["a plain HDF5 file"] = other
    return variants


def test_keras_archive_with_damaged_member_is_refused_naming_the_archive(rel, archives, tmp_path):
    data = archives.members[MEMBER]
    variants = _member_variants(
        data, archives.members["model.weights.h5"], archives.other.read_bytes()
    )
    for name, member in variants.items():
        for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            path = _zip(tmp_path / "x.keras", {**archives.members, MEMBER: member}, compression)
            result, error = _load(rel, "keras archive: damaged layerkit.h5 member", path)
            if result is not None:
                # Only a flip in the header's padding (after its last line) goes unseen;
                # then the model must be exactly the saved one.
                assert name == "byte 511 flipped", f"{name}: a damaged member was loaded"
                for a, b in zip(result.get_weights(), archives.source.get_weights()):
                    assert np.array_equal(a, b), f"{name}: loaded other weights"
                continue
            _check_named(rel, error, path)


def test_keras_archive_with_hostile_member_is_refused(rel, archives, tmp_path):
    """A resealed member whose kernel is an external link (relative: it would resolve
    next to the temporary copy) or whose config declares a huge layer."""
    edits = {
        "external link": lambda f: (
            f["weights/hidden1"].__delitem__("kernel"),
            f["weights/hidden1"].__setitem__(
                "kernel", h5py.ExternalLink(str(archives.other), "/kernel")
            ),
        ),
        "relative external link": lambda f: (
            f["weights/hidden1"].__delitem__("kernel"),
            f["weights/hidden1"].__setitem__("kernel", h5py.ExternalLink("other.h5", "/kernel")),
        ),
        "epoch_in_progress with NaN loss": lambda f: f.attrs.__setitem__(
            "training_position",
            json.dumps(
                {
                    "epoch_in_progress": {
                        "epoch": 0,
                        "steps_done": 1,
                        "seen": 4,
                        "loss_total": float("nan"),
                        "metrics": [[0.0, 4]],
                    }
                }
            ),
        ),
    }
    for name, edit in edits.items():
        inner = _edit_checkpoint(archives.h5, tmp_path / "inner.h5", edit)
        shutil.copyfile(archives.other, tmp_path / "other.h5")
        path = _zip(tmp_path / "x.keras", {**archives.members, MEMBER: inner.read_bytes()})
        result, error = _load(rel, "keras archive: hostile layerkit.h5 member", path)
        assert result is None, f"{name}: loaded"
        _check_named(rel, error, path)


def test_keras_archive_whose_member_is_a_zip_bomb_is_refused(rel, archives, tmp_path):
    # 64 MiB of zeros deflate to ~64 KB: a ratio above the allowed 1000.
    path = _zip(
        tmp_path / "bomb.keras",
        {**archives.members, MEMBER: bytes(64 << 20)},
        zipfile.ZIP_DEFLATED,
    )
    _, error = _load(rel, "keras archive: huge declared layerkit.h5", path)
    _check_named(rel, error, path, "compression ratio")


@pytest.mark.parametrize("declared", [4_000_000_000, 0xFFFFFFFE, 1 << 35, 1 << 62])
def test_keras_archive_declaring_a_huge_member_is_refused(rel, archives, tmp_path, declared):
    """Declared sizes patched in the central directory: beyond the compression ratio,
    and (zip64, 32 GiB and 2**62) beyond the 16 GiB limit on the member."""
    members = [(n, d, len(d), len(d)) for n, d in archives.members.items() if n != MEMBER]
    data = archives.members[MEMBER]
    path = _crafted_zip(tmp_path / "x.keras", [*members, (MEMBER, data, declared, len(data))])
    _, error = _load(rel, "keras archive: huge declared layerkit.h5", path)
    _check_named(rel, error, path)
    if declared > 1 << 34:
        assert str(declared) in str(error), rel.describe(error)


@pytest.mark.parametrize("declared", [1 << 30, 0xFFFFFFFE])
def test_keras_archive_declaring_huge_stored_sizes_is_refused(rel, archives, tmp_path, declared):
    """Declared size and compressed size both huge (a stored member): the ratio is fine,
    the data is missing; the member is copied in chunks, nothing of that size allocated."""
    members = [(n, d, len(d), len(d)) for n, d in archives.members.items() if n != MEMBER]
    data = archives.members[MEMBER]
    path = _crafted_zip(tmp_path / "x.keras", [*members, (MEMBER, data, declared, declared)])
    _, error = _load(rel, "keras archive: huge declared layerkit.h5", path)
    _check_named(rel, error, path)


@pytest.mark.parametrize("operation", ["load_weights", "load_keras"])
def test_keras_weights_member_declaring_huge_stored_sizes_is_refused(
    rel, archives, tmp_path, operation
):
    name, declared = "model.weights.h5", 0xFFFFFFFE
    members = [
        (n, d, len(d), len(d)) for n, d in archives.members.items() if n not in (name, MEMBER)
    ]
    data = archives.members[name]
    path = _crafted_zip(tmp_path / "x.keras", [*members, (name, data, declared, declared)])
    model = victim(seed=8)
    before = full_state(rel, model)
    call = {
        "load_weights": lambda: model.load_weights(path),
        "load_keras": lambda: lk.io.load_keras(path),
    }
    with rel.memory_guard():
        _, error = rel.attempt("keras archive: huge declared model.weights.h5", call[operation])
    rel.assert_refusal(error, texts=(str(path), name))
    assert_all_unchanged(rel, model, before, operation)


def test_keras_archive_without_the_member_goes_to_load_keras(rel, archives, tmp_path):
    keras_only = {n: d for n, d in archives.members.items() if n != MEMBER}
    path = _zip(tmp_path / "plain.keras", keras_only)
    model, error = rel.attempt("keras archive: no layerkit.h5", lambda: lk.load_model(path))
    assert error is None, rel.describe(error)
    reference = lk.io.load_keras(path)
    # Keras's part holds Keras's compile settings and optimizer state (not layerkit's
    # position): compiled as the source, at the same optimizer step.
    assert model.compiled == archives.source.compiled
    if model.compiled:
        assert type(model.optimizer) is type(archives.source.optimizer)
        assert model.optimizer.iterations == archives.source.optimizer.iterations
    for a, b, c in zip(model.get_weights(), reference.get_weights(), archives.source.get_weights()):
        assert np.array_equal(a, b)
        assert np.array_equal(a, c)
    # ... and load_keras's errors: an archive without config.json, one without weights.
    for missing in ("config.json", "model.weights.h5"):
        path = _zip(
            tmp_path / f"no_{missing}.keras", {n: d for n, d in keras_only.items() if n != missing}
        )
        _, error = _load(rel, "keras archive: no layerkit.h5", path)
        _, expected = rel.attempt(
            "keras archive: no layerkit.h5", lambda path=path: lk.io.load_keras(path)
        )
        assert expected is not None
        rel.assert_refusal(error, texts=(str(path),), context=missing)
        assert type(error) is type(expected)
        assert str(error) == str(expected)


def test_keras_archive_whose_halves_disagree_loads_layerkits_member(rel, archives, tmp_path):
    """The layerkit member wins over Keras's config.json and model.weights.h5: it is
    what resumes training exactly (``lk.io.load_keras`` still reads Keras's part)."""
    other = victim(seed=9, units=5, activation="tanh")
    other_members = _members(Path(other.save(tmp_path / "other.keras")))
    mixed = {**other_members, MEMBER: archives.members[MEMBER]}
    path = _zip(tmp_path / "mixed.keras", mixed)
    model, error = rel.attempt("keras archive: halves disagree", lambda: lk.load_model(path))
    assert error is None, rel.describe(error)
    assert model.get_layer("hidden1").units == 3  # the member's architecture
    for a, b in zip(model.get_weights(), archives.source.get_weights()):
        assert np.array_equal(a, b)
    assert model.compiled
    assert model.optimizer.iterations == archives.source.optimizer.iterations
    keras_view = lk.io.load_keras(path)
    assert keras_view.get_layer("hidden1").units == 5
    for a, b in zip(keras_view.get_weights(), other.get_weights()):
        assert np.array_equal(a, b)


# --------------------------------------------------------------------------------------
# 2. epoch_in_progress of a mid-epoch backup
# --------------------------------------------------------------------------------------


class _Interrupt(lk.callbacks.Callback):
    """Stops fit (as a kill would) after batch 1 of epoch 1: the last backup is mid-epoch."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == 1 and self.model._epochs_done == 1:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def mid_epoch_backup(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mid_epoch")
    model = victim(seed=4, trained=False)
    backup = lk.callbacks.BackupAndRestore(folder, save_freq=1)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, Y, batch_size=4, epochs=3, verbose=0, callbacks=[backup, _Interrupt()])
    path = folder / "backup.h5"
    with h5py.File(path) as f:
        position = json.loads(f.attrs["training_position"])
    assert position["epoch_in_progress"]["steps_done"] == 2, position
    assert len(position["epoch_in_progress"]["metrics"]) == 1
    return path


def _set(key, value):
    def edit(progress):
        progress[key] = value

    return edit


def _set_metric(value):
    def edit(progress):
        progress["metrics"] = value

    return edit


NAN, INF = float("nan"), float("inf")
EPOCH_CASES = {
    "steps_done negative": _set("steps_done", -1),
    "steps_done a bool": _set("steps_done", True),
    "steps_done a float": _set("steps_done", 2.0),
    "steps_done a string": _set("steps_done", "2"),
    "epoch negative": _set("epoch", -1),
    "epoch a bool": _set("epoch", True),
    "epoch a float": _set("epoch", 1.5),
    "seen negative": _set("seen", -8),
    "seen a float": _set("seen", 8.0),
    "seen a bool": _set("seen", False),
    "loss_total NaN": _set("loss_total", NAN),
    "loss_total infinite": _set("loss_total", INF),
    "loss_total a string": _set("loss_total", "4.7"),
    "loss_total a bool": _set("loss_total", True),
    "loss_total missing": lambda p: p.pop("loss_total"),
    "steps_done missing": lambda p: p.pop("steps_done"),
    "metrics a dict": _set_metric({"mae": [1.0, 8]}),
    "metrics a number": _set_metric(3),
    "metrics entry of one number": _set_metric([[1.0]]),
    "metrics entry of three numbers": _set_metric([[1.0, 8, 0]]),
    "metrics flat list": _set_metric([1.0, 8]),
    "metric count a string": _set_metric([[1.0, "8"]]),
    "metric count negative": _set_metric([[1.0, -1]]),
    "metric count a bool": _set_metric([[1.0, True]]),
    "metric total NaN": _set_metric([[NAN, 8]]),
    "metric total a string": _set_metric([["1.0", 8]]),
    "metric_names shorter than metrics": _set("metric_names", []),
    "metric_names not strings": _set("metric_names", [1]),
    "metric_names missing": lambda p: p.pop("metric_names"),
    "samples zero": _set("samples", 0),
    "samples a float": _set("samples", 16.0),
    "batch_size zero": _set("batch_size", 0),
    "batch_size a bool": _set("batch_size", True),
    "shuffle not a bool": _set("shuffle", 1),
    "seen beyond the samples": _set("seen", 17),
    "steps_done beyond the epoch's steps": _set("steps_done", STEPS + 1),
    "steps_done of 10**6": _set("steps_done", 10**6),
    "learning_rate NaN": _set("learning_rate", NAN),
    "learning_rate a string": _set("learning_rate", "0.01"),
    "shuffle_rng a string": _set("shuffle_rng", "x"),
    "shuffle_rng of an unknown generator": _set(
        "shuffle_rng", {"bit_generator": "os.system", "state": {}}
    ),
}


def _with_progress(source: Path, target: Path, edit) -> Path:
    def change(f):
        position = json.loads(f.attrs["training_position"])
        if callable(edit):
            edit(position["epoch_in_progress"])
        else:
            position["epoch_in_progress"] = edit
        f.attrs["training_position"] = json.dumps(position)

    return _edit_checkpoint(source, target, change)


def _resume(rel, category: str, model, folder: Path):
    backup = lk.callbacks.BackupAndRestore(folder, save_freq=False)
    return rel.attempt(
        category,
        lambda: model.fit(X, Y, batch_size=4, epochs=3, verbose=0, callbacks=[backup]),
    )


def test_mid_epoch_backup_resumes(rel, mid_epoch_backup, tmp_path):
    """The control: the unedited backup resumes inside epoch 2 (2 of its 4 steps left)."""
    folder = tmp_path / "backup"
    folder.mkdir()
    shutil.copyfile(mid_epoch_backup, folder / "backup.h5")
    model = victim(seed=8)
    history, error = _resume(rel, "epoch_in_progress: resume", model, folder)
    assert error is None, rel.describe(error)
    assert len(history.history["loss"]) == 2  # epochs 2 and 3
    assert model.optimizer.iterations == STEPS + 2 + 2 + STEPS


@pytest.mark.parametrize("case", [*EPOCH_CASES, "a list", "a string", "a number"])
def test_malformed_epoch_in_progress_is_refused(rel, mid_epoch_backup, tmp_path, case):
    edit = EPOCH_CASES.get(case) or {"a list": [1, 2], "a string": "1", "a number": 5}[case]
    folder = tmp_path / "backup"
    folder.mkdir()
    path = _with_progress(mid_epoch_backup, folder / "backup.h5", edit)
    # lk.load_model reads the position too (and refuses it).
    _, error = rel.attempt("epoch_in_progress: malformed", lambda: lk.load_model(path))
    rel.assert_refusal(error, texts=(str(path), "epoch_in_progress"), context=case)
    model = victim(seed=8)
    before = full_state(rel, model)
    _, error = _resume(rel, "epoch_in_progress: malformed", model, folder)
    rel.assert_refusal(error, texts=(str(path), "epoch_in_progress"), context=case)
    assert isinstance(error, ValueError)
    assert_all_unchanged(rel, model, before, case)


def test_load_model_ignores_epoch_in_progress_metric_count(rel, mid_epoch_backup, tmp_path):
    """``lk.load_model`` does not resume inside an epoch (only BackupAndRestore does), so
    a metric count that differs from the file's compile_config is accepted there."""

    def two_metrics(progress):
        progress["metric_names"] = ["mae", "mse"]
        progress["metrics"] = [[1.0, 8], [2.0, 8]]

    path = _with_progress(mid_epoch_backup, tmp_path / "m.h5", two_metrics)
    model, error = rel.attempt(
        "epoch_in_progress: metric count differs", lambda: lk.load_model(path)
    )
    assert error is None, rel.describe(error)
    assert model.metrics_names == ["loss", "mae"]


RESUME_CASES = {
    # name: (victim arguments, fit arguments, texts the message must hold)
    "no metrics": ({"metrics": ()}, {}, ("metrics", "mae")),
    "two metrics": ({"metrics": ("mae", "mse")}, {}, ("metrics", "mse")),
    "other metric": ({"metrics": ("mse",)}, {}, ("metrics", "mae")),
    "fewer samples": ({}, {"rows": 12}, ("samples",)),
    "other batch_size": ({}, {"batch_size": 8}, ("batch_size",)),
    "shuffle off": ({}, {"shuffle": False}, ("shuffle",)),
}


def _resume_differently(rel, mid_epoch_backup, tmp_path, case):
    arguments, fit_arguments, _ = RESUME_CASES[case]
    folder = tmp_path / "backup"
    folder.mkdir()
    shutil.copyfile(mid_epoch_backup, folder / "backup.h5")
    model = victim(seed=8, **arguments)
    before = full_state(rel, model)
    rows = fit_arguments.get("rows", 16)
    backup = lk.callbacks.BackupAndRestore(folder, save_freq=False)
    _, error = rel.attempt(
        "epoch_in_progress: resumed into another fit",
        lambda: model.fit(
            X[:rows],
            Y[:rows],
            batch_size=fit_arguments.get("batch_size", 4),
            shuffle=fit_arguments.get("shuffle", True),
            epochs=3,
            verbose=0,
            callbacks=[backup],
        ),
    )
    return model, before, error, folder / "backup.h5"


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resuming_a_mid_epoch_backup_into_another_fit_is_refused(
    rel, mid_epoch_backup, tmp_path, case
):
    """Other metrics, other data or another batch size than the interrupted run: the
    backed-up running totals and step count would mean something else."""
    model, before, error, _ = _resume_differently(rel, mid_epoch_backup, tmp_path, case)
    rel.assert_refusal(error, texts=RESUME_CASES[case][2], context=case)
    assert isinstance(error, ValueError), rel.describe(error)
    assert_all_unchanged(rel, model, before, case)


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resuming_into_another_fit_names_the_backup(rel, mid_epoch_backup, tmp_path, case):
    _, _, error, path = _resume_differently(rel, mid_epoch_backup, tmp_path, case)
    rel.assert_refusal(error, texts=(str(path),), context=case)


# --------------------------------------------------------------------------------------
# 3. Optimizer state of format version 2
# --------------------------------------------------------------------------------------


def _drop(key: str):
    def edit(f):
        del f[key]

    return edit


def _slot_form(value):
    def edit(f):
        f["optimizer"].attrs["slot_form"] = value

    return edit


def _unlist(name: str):
    def edit(f):
        names = json.loads(f["optimizer"].attrs["parameter_names"])
        f["optimizer"].attrs["parameter_names"] = json.dumps([n for n in names if n != name])

    return edit


def _ghost(f):
    group = f["optimizer"]
    group.attrs["parameter_names"] = json.dumps(
        [*json.loads(group.attrs["parameter_names"]), "ghost/kernel"]
    )
    f.copy(group["hidden1"], group, name="ghost")


OPTIMIZER_CASES = {
    # name: (edit, texts the message must hold besides the file)
    "slot_form unknown": (_slot_form("weird"), ("slot_form",)),
    "group of a kernel missing": (_drop("optimizer/hidden1/kernel"), ("hidden1/kernel",)),
    "group of a layer missing": (_drop("optimizer/out"), ("out/",)),
    "one slot missing": (_drop("optimizer/hidden1/kernel/velocity"), ("hidden1/kernel",)),
    "parameter_names names a parameter the model lacks": (_ghost, ("ghost/kernel",)),
}


def _restore(model, path):
    return lambda: restore_training_state(model, path)


@pytest.mark.parametrize("case", list(OPTIMIZER_CASES))
def test_bad_optimizer_state_is_refused_by_load_model(rel, archives, tmp_path, case):
    edit, texts = OPTIMIZER_CASES[case]
    path = _edit_checkpoint(archives.h5, tmp_path / "opt.h5", edit)
    with rel.memory_guard():
        _, error = rel.attempt("optimizer state v2: load_model", lambda: lk.load_model(path))
    rel.assert_refusal(error, texts=(str(path), *texts), context=case)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize("case", list(OPTIMIZER_CASES))
def test_bad_optimizer_state_is_refused_by_restore(rel, archives, tmp_path, case):
    edit, texts = OPTIMIZER_CASES[case]
    path = _edit_checkpoint(archives.h5, tmp_path / "opt.h5", edit)
    model = victim(seed=8)
    before = full_state(rel, model)
    _, error = rel.attempt("optimizer state v2: restore_training_state", _restore(model, path))
    assert isinstance(error, ValueError), rel.describe(error)
    assert_all_unchanged(rel, model, before, case)
    rel.assert_refusal(error, texts=texts, context=case)


@pytest.mark.parametrize("case", [c for c in OPTIMIZER_CASES if "missing" in c])
def test_bad_optimizer_state_refused_by_restore_names_the_file(rel, archives, tmp_path, case):
    edit, _ = OPTIMIZER_CASES[case]
    path = _edit_checkpoint(archives.h5, tmp_path / "opt.h5", edit)
    _, error = rel.attempt(
        "optimizer state v2: restore_training_state", _restore(victim(seed=8), path)
    )
    rel.assert_refusal(error, texts=(str(path),), context=case)


SILENT_CASES = {
    # Accepted today, each silently giving the model another optimizer state than saved.
    "format 2 without slot_form (read as Keras-form slots: velocity x1000)": (
        lambda f: f["optimizer"].attrs.__delitem__("slot_form"),
        ("slot_form",),
    ),
    "slot_form an integer (read as Keras-form slots)": (_slot_form(5), ("slot_form",)),
    "slot_form empty (read as Keras-form slots)": (_slot_form(""), ("slot_form",)),
    "parameter_names leaves out hidden1/kernel (its slots stay zero)": (
        _unlist("hidden1/kernel"),
        ("hidden1/kernel",),
    ),
}


@pytest.mark.parametrize("case", list(SILENT_CASES))
def test_inconsistent_optimizer_state_is_refused(rel, archives, tmp_path, case):
    edit, texts = SILENT_CASES[case]
    path = _edit_checkpoint(archives.h5, tmp_path / "opt.h5", edit)
    _, error = rel.attempt("optimizer state v2: inconsistent", lambda: lk.load_model(path))
    rel.assert_refusal(error, texts=(str(path), *texts), context=case)


# --------------------------------------------------------------------------------------
# 4. Restoring into a model whose architecture changed
# --------------------------------------------------------------------------------------


ARCHITECTURE_CASES = {
    # name: (victim arguments, texts the message must hold)
    "activation changed": ({"activation": "tanh"}, ("hidden1", "activation")),
    "units changed": ({"units": 5}, ("hidden1", "units")),
    "bias removed": ({"use_bias": False}, ("hidden1", "use_bias")),
    "dropout rate changed": ({"rate": 0.5}, ("drop", "rate")),
    "input features changed": ({"features": 5}, ("shape",)),
    "layer added": ({"extra_layer": True}, ("extra",)),
    "layer removed": ({"dropout": False}, ("drop",)),
    "layer renamed": ({"first_name": "first"}, ("first", "hidden1")),
}


@pytest.fixture(scope="module")
def backup_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("architecture")
    source = victim(seed=5, learning_rate=0.002)
    source.fit(X, Y, batch_size=4, epochs=1, verbose=0)
    return Path(source.save(folder / "backup.h5"))


@pytest.mark.parametrize("via", ["restore_training_state", "BackupAndRestore"])
@pytest.mark.parametrize("case", list(ARCHITECTURE_CASES))
def test_restore_into_changed_architecture_changes_nothing(rel, backup_file, tmp_path, case, via):
    arguments, texts = ARCHITECTURE_CASES[case]
    folder = tmp_path / "backup"
    folder.mkdir()
    path = folder / "backup.h5"
    shutil.copyfile(backup_file, path)
    model = victim(seed=6, learning_rate=0.05, **arguments)
    features = model.input_shape[-1]
    before = full_state(rel, model)
    category = f"restore into a changed architecture: {via}"
    if via == "restore_training_state":
        _, error = rel.attempt(category, _restore(model, path))
    else:
        x = np.linspace(-1, 1, 16 * features, dtype=np.float32).reshape(16, features)
        backup = lk.callbacks.BackupAndRestore(folder, save_freq=False)
        _, error = rel.attempt(
            category, lambda: model.fit(x, Y, batch_size=4, epochs=3, verbose=0, callbacks=[backup])
        )
    rel.assert_refusal(error, texts=(str(path), *texts), context=case)
    assert type(error) is ValueError or isinstance(error, ValueError), rel.describe(error)
    assert_all_unchanged(rel, model, before, f"{via}: {case}")
    assert path.is_file(), "the refused backup was deleted"


def test_restore_into_same_architecture_with_a_frozen_layer_is_accepted(rel, backup_file):
    """The control: freezing may differ; weights, iterations and learning rate come back."""
    model = victim(seed=6, learning_rate=0.05)
    model.freeze("hidden1")
    _, error = rel.attempt(
        "restore into a changed architecture: control", _restore(model, backup_file)
    )
    assert error is None, rel.describe(error)
    reference = lk.load_model(backup_file)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        assert np.array_equal(a, b)
    assert model.optimizer.iterations == reference.optimizer.iterations
    assert model.optimizer.learning_rate == pytest.approx(0.002)
