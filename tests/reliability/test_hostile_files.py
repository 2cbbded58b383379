"""Hostile files: checkpoints and weight files written to make a loader read another
file on the machine, run code, exhaust memory or trip over unexpected types.

``model.load_weights``, ``lk.load_model``, ``python -m layerkit inspect`` (its
``inspect`` function) and ``lk.io.load_keras`` must refuse every one of them with a
ValueError (``lk.io.FormatError``) or an OSError whose message names the file and the
offending object; a refused load leaves the model unchanged, never puts the content of
a foreign file into a weight, and never allocates much memory (the address space is
capped while they run, and the resident memory's growth is measured).

The last test scans layerkit's own source for pickle, eval, exec and allow_pickle=True.
"""

from __future__ import annotations

import ast
import io
import json
import os
import shutil
import tokenize
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import layerkit as lk
from layerkit.__main__ import inspect as lk_inspect
from layerkit.io.checkpoint import seal

SECRET_VALUE = np.float32(1234.5)  # what a plausible foreign weight file holds
SECRET_TEXT = b"TOP-SECRET-reliability-canary-7c1f9e"
PASSWD = Path("/etc/passwd")
MEMORY_LIMIT = 64 << 20  # growth of the resident memory allowed while refusing a file


# --------------------------------------------------------------------------------------
# The files
# --------------------------------------------------------------------------------------


class Env:
    """Original checkpoints of the victim model and the foreign files they point at."""

    def __init__(self, folder: Path, rel) -> None:
        self.folder = folder
        source = rel.small_model("mse", seed=7)
        source.fit(np.ones((8, 4), np.float32), np.ones((8, 2), np.float32), epochs=2, verbose=0)
        self.model_file = Path(source.save(folder / "victim_model.h5"))
        self.weights_file = Path(source.save_weights(folder / "victim_weights.h5"))
        # Raw bytes: exactly a (4, 3) float32 kernel, so a loader that follows them
        # would find a perfect fit.
        self.secret_bin = folder / "secret.bin"
        self.secret_bin.write_bytes(np.full((4, 3), SECRET_VALUE, "<f4").tobytes())
        self.secret_big = folder / "secret_big.bin"  # a (20, 16) kernel for the Keras model
        self.secret_big.write_bytes(np.full((20, 16), SECRET_VALUE, "<f4").tobytes())
        self.secret_txt = folder / "secret.txt"
        self.secret_txt.write_bytes(SECRET_TEXT * 8)
        self.passwd = PASSWD if PASSWD.is_file() else self.secret_txt
        # An HDF5 file holding plausible weights of both victims.
        self.other = folder / "other.h5"
        with h5py.File(self.other, "w") as f:
            f["kernel"] = np.full((4, 3), SECRET_VALUE, np.float32)
            f["bias"] = np.full(3, SECRET_VALUE, np.float32)
            f["kernel20x16"] = np.full((20, 16), SECRET_VALUE, np.float32)
            group = f.create_group("grp")
            group["kernel"] = np.full((4, 3), SECRET_VALUE, np.float32)
            group["bias"] = np.full(3, SECRET_VALUE, np.float32)
            group.attrs["class_name"] = "Dense"
            weights = f.create_group("weights")
            for name, shape in (("hidden1", (4, 3)), ("out", (3, 2))):
                layer = weights.create_group(name)
                layer["kernel"] = np.full(shape, SECRET_VALUE, np.float32)
                layer["bias"] = np.full(shape[1], SECRET_VALUE, np.float32)
            f.attrs["weight_names"] = ["kernel:0", "bias:0"]
            f["kernel:0"] = np.full((20, 16), SECRET_VALUE, np.float32)
            f["bias:0"] = np.full(16, SECRET_VALUE, np.float32)


@pytest.fixture(scope="module")
def env(rel, tmp_path_factory) -> Env:
    return Env(tmp_path_factory.mktemp("hostile"), rel)


def _copy(env: Env, tmp_path: Path, source: Path, name: str) -> Path:
    path = tmp_path / f"{name}{source.suffix}"
    shutil.copyfile(source, path)
    os.chmod(path, 0o644)
    return path


def _secret_in(arrays) -> bool:
    """Whether any array holds the secret value or the bytes of a secret file."""
    for array in arrays:
        array = np.asarray(array)
        if array.dtype.kind == "f" and np.any(array == SECRET_VALUE):
            return True
        raw = array.tobytes()
        if SECRET_TEXT[:16] in raw or (PASSWD.is_file() and b"root:" in raw):
            return True
    return False


def _check_refused(rel, env, error, path, objects, model=None, before=None, result=None):
    # A leak is the worst outcome: report it before anything else.
    if result is not None and hasattr(result, "get_weights"):
        assert not _secret_in(result.get_weights()), f"{path}: a foreign file was read"
    if model is not None:
        assert not _secret_in(model.get_weights()), f"{path}: a foreign file was read"
    rel.assert_refusal(error, texts=(str(path), *objects), context=path.name)
    assert isinstance(error, (ValueError, OSError)), (
        f"{path.name}: refused with {type(error).__name__}, expected a ValueError "
        f"(FormatError) or an OSError: {rel.describe(error)}"
    )
    if model is not None:
        rel.assert_unchanged(model, before, f"refusing {path.name}")


OPERATIONS = ("load_weights", "load_model", "inspect")


def _run(rel, operation: str, path: Path, model):
    calls = {
        "load_weights": lambda: model.load_weights(path),
        "load_model": lambda: lk.load_model(path),
        "inspect": lambda: lk_inspect(str(path)),
        "load_keras": lambda: lk.io.load_keras(path),
    }
    with rel.memory_guard() as memory:
        result, error = rel.attempt(f"hostile files: {operation}", calls[operation])
    return result, error, memory["peak"]


# --------------------------------------------------------------------------------------
# layerkit checkpoints: links, virtual datasets, external storage, absurd shapes
# --------------------------------------------------------------------------------------


# Edits: each is edit(file, env). ``replace`` swaps one object of the file for what a
# maker builds: make(group, key, env).
KERNEL = "weights/hidden1/kernel"


def replace(member, make, before=None):
    """An edit replacing the object at ``member`` (a path, or a function of the file
    giving one) by ``make(group, key, env)``; ``before`` plants what it points at."""

    def edit(f: h5py.File, e: Env) -> None:
        if before is not None:
            before(f, e)
        parent, _, key = (member if isinstance(member, str) else member(f)).rpartition("/")
        group = f[parent] if parent else f
        del group[key]
        make(group, key, e)

    return edit


def set_attr(key: str, value, where: str = "/"):
    def edit(f: h5py.File, e: Env) -> None:
        f[where].attrs[key] = value

    return edit


def external_link(target: str, inner: str):
    """A link into another file: ``target`` names an Env attribute (other, passwd)."""

    def make(group, key, e):
        group[key] = h5py.ExternalLink(str(getattr(e, target)), inner)

    return make


def soft_link(path: str):
    def make(group, key, e):
        group[key] = h5py.SoftLink(path)

    return make


def virtual(target: str, inner: str, shape):
    """A virtual dataset mapping ``inner`` of another file (``"."``: this file)."""

    def make(group, key, e):
        layout = h5py.VirtualLayout(shape=shape, dtype=np.float32)
        source = "." if target == "." else str(getattr(e, target))
        layout[:] = h5py.VirtualSource(source, inner, shape=shape)
        group.create_virtual_dataset(key, layout)

    return make


def external_storage(target: str, shape, dtype: str = "<f4"):
    """A dataset whose raw bytes live in another file (a secret, /etc/passwd)."""

    def make(group, key, e):
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        group.create_dataset(
            key, shape=shape, dtype=dtype, external=[(str(getattr(e, target)), 0, size)]
        )

    return make


def declared(shape, dtype: str = "f4", **options):
    """A dataset declared with ``shape`` and never written: the file stays tiny."""

    def make(group, key, e):
        group.create_dataset(key, shape=shape, dtype=dtype, **options)

    return make


def plant(path: str, shape):
    """Puts a plausible array of secret values at ``path``, for links to point at."""

    def edit(f: h5py.File, e: Env) -> None:
        f.create_dataset(path, data=np.full(shape, SECRET_VALUE, np.float32))

    return edit


def plant_layer(f: h5py.File, e: Env) -> None:
    f.copy(f["weights/hidden1"], "stash_layer")
    f["stash_layer/kernel"][...] = SECRET_VALUE


def first_slot(f: h5py.File) -> str:
    return f"optimizer/hidden1/kernel/{sorted(f['optimizer/hidden1/kernel'])[0]}"


LINK_CASES = {
    # name: (edit, objects the message must name)
    "external link to a plausible kernel in another HDF5 file": (
        replace(KERNEL, external_link("other", "/kernel")),
        ("/weights/hidden1/kernel",),
    ),
    "external link to /etc/passwd": (
        replace(KERNEL, external_link("passwd", "/")),
        ("/weights/hidden1/kernel",),
    ),
    "external link of a layer group to another file": (
        replace("weights/hidden1", external_link("other", "/grp")),
        ("/weights/hidden1",),
    ),
    "external link of /weights to another file": (
        replace("weights", external_link("other", "/weights")),
        ("/weights",),
    ),
    "soft link of a kernel to a dataset outside the layer": (
        replace(KERNEL, soft_link("/stash/k"), before=plant("stash/k", (4, 3))),
        ("/weights/hidden1/kernel",),
    ),
    "soft link of a layer group": (
        replace("weights/hidden1", soft_link("/stash_layer"), before=plant_layer),
        ("/weights/hidden1",),
    ),
    "virtual dataset reading another file": (
        replace(KERNEL, virtual("other", "kernel", (4, 3))),
        ("/weights/hidden1/kernel",),
    ),
    "virtual dataset reading the same file": (
        replace(KERNEL, virtual(".", "/stash/k", (4, 3)), before=plant("stash/k", (4, 3))),
        ("/weights/hidden1/kernel",),
    ),
    "external raw storage in a secret file": (
        replace(KERNEL, external_storage("secret_bin", (4, 3))),
        ("/weights/hidden1/kernel",),
    ),
    "external raw storage in /etc/passwd": (
        replace(KERNEL, external_storage("passwd", (4, 3), "u4")),
        ("/weights/hidden1/kernel",),
    ),
    "optimizer slot as an external link": (
        replace(first_slot, external_link("other", "/kernel")),
        ("/optimizer/hidden1/kernel",),
    ),
}

ABSURD_CASES = {
    "kernel of 2**31+1 elements, chunked and compressed": (
        replace(KERNEL, declared((2**31 + 1,), "f4", chunks=(4096,), compression="gzip")),
        ("hidden1", "kernel"),
    ),
    "kernel of 2**31 float64 (16 GiB), chunked and compressed": (
        replace(KERNEL, declared((2**31,), "f8", chunks=(4096,), compression="gzip")),
        ("hidden1", "kernel"),
    ),
    "kernel of 1 GiB, chunked and compressed, in a 20 KB file": (
        replace(KERNEL, declared((2**27,), "f8", chunks=(2**16,), compression="gzip")),
        ("hidden1", "kernel"),
    ),
    "kernel of 256 MiB never written (fill values only)": (
        replace(KERNEL, declared((2**26,), "f4")),
        ("hidden1", "kernel"),
    ),
    "optimizer slot of 256 MiB never written": (
        replace(first_slot, declared((2**26,), "f4")),
        ("hidden1/kernel",),
    ),
}


def _hostile_checkpoint(env: Env, tmp_path: Path, name: str, edit) -> Path:
    path = _copy(env, tmp_path, env.model_file, "hostile")
    with h5py.File(path, "r+") as f:
        edit(f, env)
    seal(path)  # re-sealed, as a deliberate attacker would
    return path


def _ops_for(case: str) -> tuple[str, ...]:
    # The optimizer state is read by load_model only.
    return ("load_model",) if "optimizer" in case else OPERATIONS


@pytest.mark.parametrize(
    ("case", "operation"),
    [(c, op) for c in {**LINK_CASES, **ABSURD_CASES} for op in _ops_for(c)],
)
def test_hostile_layerkit_checkpoint_is_refused(rel, env, tmp_path, case, operation):
    edit, objects = {**LINK_CASES, **ABSURD_CASES}[case]
    path = _hostile_checkpoint(env, tmp_path, case, edit)
    model = rel.small_model("mse")
    before = rel.snapshot(model)
    result, error, peak = _run(rel, operation, path, model)
    _check_refused(rel, env, error, path, objects, model, before, result)
    assert peak < MEMORY_LIMIT, f"{case}: {operation} grew the resident memory by {peak >> 20} MiB"


# --------------------------------------------------------------------------------------
# layerkit checkpoints: configs naming foreign classes, JSON of unexpected types
# --------------------------------------------------------------------------------------

INPUT = {"class_name": "InputLayer", "config": {"name": "input", "shape": [4]}}


def _model_config(*layers, build=(None, 4)) -> str:
    return json.dumps({"name": "victim", "layers": list(layers), "build_input_shape": build})


def _dense(name: str, units: int = 3, **extra) -> dict:
    return {"class_name": "Dense", "config": {"name": name, "units": units, **extra}}


CONFIG_CASES = {
    # name: (edit, objects to name, operations that must refuse)
    "layer class Lambda": (
        set_attr(
            "model_config",
            _model_config({"class_name": "Lambda", "config": {"function": "os.system('id')"}}),
        ),
        ("Lambda",),
        ("load_model",),
    ),
    "layer class __import__": (
        set_attr(
            "model_config", _model_config({"class_name": "__import__", "config": {"name": "os"}})
        ),
        ("__import__",),
        ("load_model",),
    ),
    "layer class os.system": (
        set_attr(
            "model_config", _model_config({"class_name": "os.system", "config": {"command": "id"}})
        ),
        ("os.system",),
        ("load_model",),
    ),
    "layer class given as a list": (
        set_attr("model_config", _model_config({"class_name": ["Dense"], "config": {}})),
        ("class",),
        ("load_model",),
    ),
    "activation os.system": (
        set_attr(
            "model_config",
            _model_config(_dense("hidden1", activation="os.system"), _dense("out", 2)),
        ),
        ("os.system",),
        ("load_model",),
    ),
    "initializer __import__": (
        set_attr(
            "model_config",
            _model_config(
                _dense("hidden1", kernel_initializer={"class_name": "__import__", "config": {}}),
                _dense("out", 2),
            ),
        ),
        ("__import__",),
        ("load_model",),
    ),
    "optimizer class os.system": (
        set_attr("optimizer_config", json.dumps({"class_name": "os.system", "config": {}})),
        ("os.system",),
        ("load_model",),
    ),
    "learning-rate schedule class os.system": (
        set_attr(
            "optimizer_config",
            json.dumps(
                {
                    "class_name": "Adam",
                    "config": {"learning_rate": {"class_name": "os.system", "config": {}}},
                }
            ),
        ),
        ("os.system",),
        ("load_model",),
    ),
    "loss class Lambda": (
        set_attr(
            "compile_config",
            json.dumps({"loss": {"class_name": "Lambda", "config": {}}, "metrics": []}),
        ),
        ("Lambda",),
        ("load_model",),
    ),
    "metric class os.system": (
        set_attr(
            "compile_config", json.dumps({"loss": "mse", "metrics": [{"class_name": "os.system"}]})
        ),
        ("os.system",),
        ("load_model",),
    ),
    "Dense layer of 2**40 units": (
        set_attr("model_config", _model_config(_dense("hidden1", 2**40), _dense("out", 2))),
        ("hidden1",),
        ("load_model",),
    ),
    "build_input_shape of 2**40 features": (
        set_attr(
            "model_config", _model_config(_dense("hidden1"), _dense("out", 2), build=(None, 2**40))
        ),
        ("build_input_shape",),
        ("load_model",),
    ),
}

JSON_CASES = {
    "model_config is a string": (
        set_attr("model_config", json.dumps("hello")),
        ("model_config",),
        ("load_model",),
    ),
    "model_config nested 100000 deep": (
        set_attr("model_config", "[" * 100_000 + "]" * 100_000),
        ("model_config",),
        ("load_model",),
    ),
    "build_input_shape is a string": (
        set_attr("model_config", _model_config(_dense("hidden1"), _dense("out", 2), build="abc")),
        ("model_config",),
        ("load_model",),
    ),
    "compile_config is a list": (
        set_attr("compile_config", json.dumps([1, 2])),
        ("compile_config",),
        ("load_model", "inspect"),
    ),
    "compile_config without a loss": (
        set_attr("compile_config", json.dumps({"metrics": []})),
        ("compile_config",),
        ("load_model", "inspect"),
    ),
    "compile_config metrics is a number": (
        set_attr("compile_config", json.dumps({"loss": "mse", "metrics": 5})),
        ("compile_config",),
        ("load_model",),
    ),
    "optimizer_config is a list": (
        set_attr("optimizer_config", json.dumps([1])),
        ("optimizer_config",),
        ("load_model", "inspect"),
    ),
    "training_position is a list": (
        set_attr("training_position", json.dumps([1])),
        ("training_position",),
        ("load_model", "inspect"),
    ),
    "training_position epochs_done is a string": (
        set_attr("training_position", json.dumps({"epochs_done": "x"})),
        ("training_position",),
        ("load_model",),
    ),
    "training_position shuffle_rng state is a string": (
        set_attr(
            "training_position",
            json.dumps({"shuffle_rng": {"bit_generator": "PCG64", "state": "x"}}),
        ),
        ("training_position",),
        ("load_model",),
    ),
    "layer_states is a list": (
        set_attr("layer_states", json.dumps([1])),
        ("layer_states",),
        ("load_model",),
    ),
    "layer_states names a layer the model lacks": (
        set_attr("layer_states", json.dumps({"ghost": {}})),
        ("ghost",),
        ("load_model",),
    ),
    "layer_names is a dict": (
        set_attr("layer_names", json.dumps({"hidden1": 1})),
        ("layer_names",),
        OPERATIONS,
    ),
    "layer_names walks up the tree": (
        set_attr("layer_names", json.dumps(["../hidden1"])),
        ("../hidden1",),
        OPERATIONS,
    ),
    "optimizer iterations is a string": (
        set_attr("iterations", "abc", "optimizer"),
        ("iterations",),
        ("load_model", "inspect"),
    ),
    "optimizer parameter_names is a dict": (
        set_attr("parameter_names", json.dumps({"hidden1/kernel": 1}), "optimizer"),
        ("parameter_names",),
        ("load_model",),
    ),
    "format_version is a string": (
        set_attr("format_version", "1"),
        ("format version",),
        OPERATIONS,
    ),
}


@pytest.mark.parametrize(
    ("case", "operation"),
    [(c, op) for c in {**CONFIG_CASES, **JSON_CASES} for op in OPERATIONS],
)
def test_hostile_configs_and_json_are_refused(rel, env, tmp_path, case, operation):
    edit, objects, refusing = {**CONFIG_CASES, **JSON_CASES}[case]
    path = _hostile_checkpoint(env, tmp_path, case, edit)
    model = rel.small_model("mse")
    before = rel.snapshot(model)
    result, error, peak = _run(rel, operation, path, model)
    if operation in refusing:
        _check_refused(rel, env, error, path, objects, model, before, result)
    elif error is not None:
        # Not read by this operation (load_weights ignores configs): a refusal is
        # allowed, but it must be documented and name the file.
        _check_refused(rel, env, error, path, (), model, before, result)
    assert peak < MEMORY_LIMIT, f"{case}: {operation} grew the resident memory by {peak >> 20} MiB"


# --------------------------------------------------------------------------------------
# Keras files (Keras 3 .weights.h5, legacy .h5, .keras archives)
# --------------------------------------------------------------------------------------


V0 = "layers/dense/vars/0"
KERAS3 = "default_names.weights.h5"
LEGACY = "default_names.legacy.h5"

KERAS_CASES = {
    # name: (fixture, edit, objects the message must name)
    "keras3: external link to a plausible kernel": (
        KERAS3,
        replace(V0, external_link("other", "/kernel20x16")),
        (V0,),
    ),
    "keras3: external link to /etc/passwd": (
        KERAS3,
        replace(V0, external_link("passwd", "/")),
        (V0,),
    ),
    "keras3: external link of a layer group": (
        KERAS3,
        replace("layers/dense", external_link("other", "/")),
        ("layers/dense",),
    ),
    "keras3: virtual dataset reading another file": (
        KERAS3,
        replace(V0, virtual("other", "kernel20x16", (20, 16))),
        (V0,),
    ),
    "keras3: external raw storage in a secret file": (
        KERAS3,
        replace(V0, external_storage("secret_big", (20, 16))),
        (V0,),
    ),
    "keras3: soft link out of the layer": (
        KERAS3,
        replace(V0, soft_link("/stash"), before=plant("stash", (20, 16))),
        (V0,),
    ),
    "keras3: kernel of 2**31+1 elements, chunked": (
        KERAS3,
        replace(V0, declared((2**31 + 1,), "f4", chunks=(4096,))),
        (V0,),
    ),
    "keras3: kernel of 1 GiB, chunked and compressed": (
        KERAS3,
        replace(V0, declared((2**27,), "f8", chunks=(2**16,), compression="gzip")),
        (V0,),
    ),
    "legacy: weight_names walks out of the layer": (
        LEGACY,
        set_attr(
            "weight_names",
            ["../dense_1/sequential/dense_1/kernel", "sequential/dense/bias"],
            "model_weights/dense",
        ),
        ("model_weights/dense",),
    ),
    "legacy: weight_names gives an absolute path": (
        LEGACY,
        set_attr(
            "weight_names",
            ["/model_weights/dense_1/sequential/dense_1/kernel", "sequential/dense/bias"],
            "model_weights/dense",
        ),
        ("model_weights/dense",),
    ),
    "legacy: external link of a layer group": (
        LEGACY,
        replace("model_weights/dense", external_link("other", "/")),
        ("model_weights/dense",),
    ),
}


@pytest.mark.parametrize(
    ("case", "operation"), [(c, op) for c in KERAS_CASES for op in ("load_weights", "inspect")]
)
def test_hostile_keras_weights_are_refused(rel, env, tmp_path, case, operation):
    if not rel.FIXTURES.is_dir():
        pytest.skip(f"no fixtures at {rel.FIXTURES}")
    fixture, edit, objects = KERAS_CASES[case]
    path = _copy(env, tmp_path, rel.FIXTURES / fixture, "hostile")
    with h5py.File(path, "r+") as f:
        edit(f, env)
    model = rel.default_names_model()
    before = rel.snapshot(model)
    result, error, peak = _run(rel, operation, path, model)
    _check_refused(rel, env, error, path, objects, model, before, result)
    assert peak < MEMORY_LIMIT, f"{case}: {operation} grew the resident memory by {peak >> 20} MiB"


def _patch_declared_size(data: bytes, member: str, size: int) -> bytes:
    """Rewrites a zip member's declared uncompressed size in both of its headers."""
    out = bytearray(data)
    name = member.encode()
    for signature, size_at, name_len_at, name_at in (
        (b"PK\x03\x04", 22, 26, 30),
        (b"PK\x01\x02", 24, 28, 46),
    ):
        at = out.find(signature)
        while at >= 0:
            name_len = int.from_bytes(out[at + name_len_at : at + name_len_at + 2], "little")
            if out[at + name_at : at + name_at + name_len] == name:
                out[at + size_at : at + size_at + 4] = size.to_bytes(4, "little")
            at = out.find(signature, at + 4)
    return bytes(out)


def _archive_with(tmp_path: Path, fixtures: Path, config=None, weights_edit=None, env=None) -> Path:
    with zipfile.ZipFile(fixtures / "default_names.keras") as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    if config is not None:
        members["config.json"] = (
            json.dumps(config).encode() if not isinstance(config, bytes) else config
        )
    if weights_edit is not None:
        inner = tmp_path / "inner.h5"
        inner.write_bytes(members["model.weights.h5"])
        with h5py.File(inner, "r+") as f:
            weights_edit(f, env)
        members["model.weights.h5"] = inner.read_bytes()
    path = tmp_path / "hostile.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _keras_config(fixtures: Path) -> dict:
    with zipfile.ZipFile(fixtures / "default_names.keras") as zf:
        return json.loads(zf.read("config.json"))


def _with_layer(config: dict, index: int, layer: dict) -> dict:
    config = json.loads(json.dumps(config))
    layers = config["config"]["layers"]
    layers[index] = layer
    return config


@pytest.mark.parametrize("operation", ["load_weights", "inspect"])
@pytest.mark.parametrize("declared", [4_000_000_000, 0xFFFFFFFE])
def test_keras_archive_with_a_huge_declared_member_is_refused(
    rel, env, tmp_path, operation, declared
):
    if not rel.FIXTURES.is_dir():
        pytest.skip(f"no fixtures at {rel.FIXTURES}")
    path = tmp_path / "bomb.keras"
    path.write_bytes(
        _patch_declared_size(
            (rel.FIXTURES / "default_names.keras").read_bytes(), "model.weights.h5", declared
        )
    )
    model = rel.default_names_model()
    before = rel.snapshot(model)
    result, error, peak = _run(rel, operation, path, model)
    _check_refused(rel, env, error, path, ("model.weights.h5",), model, before, result)
    assert peak < MEMORY_LIMIT


@pytest.mark.parametrize("operation", ["load_weights", "inspect"])
def test_keras_archive_holding_a_hostile_hdf5_is_refused(rel, env, tmp_path, operation):
    if not rel.FIXTURES.is_dir():
        pytest.skip(f"no fixtures at {rel.FIXTURES}")
    path = _archive_with(
        tmp_path,
        rel.FIXTURES,
        weights_edit=replace(V0, external_link("other", "/kernel20x16")),
        env=env,
    )
    model = rel.default_names_model()
    before = rel.snapshot(model)
    result, error, _ = _run(rel, operation, path, model)
    _check_refused(rel, env, error, path, (V0,), model, before, result)


KERAS_CONFIG_CASES = {
    # name: (the layer put first in config.json, the object the message must name)
    "Lambda": (
        {"class_name": "Lambda", "config": {"name": "dense", "function": "os.system"}},
        "Lambda",
    ),
    "__import__": ({"class_name": "__import__", "config": {"name": "dense"}}, "__import__"),
    "os.system": ({"class_name": "os.system", "config": {"name": "dense"}}, "os.system"),
    "Dense of 2**40 units": (
        {
            "class_name": "Dense",
            "config": {"name": "dense", "units": 2**40, "activation": "sigmoid"},
        },
        "dense",
    ),
    "activation os.system": (
        {
            "class_name": "Dense",
            "config": {"name": "dense", "units": 16, "activation": "os.system"},
        },
        "os.system",
    ),
}


@pytest.mark.parametrize("case", list(KERAS_CONFIG_CASES))
def test_load_keras_refuses_foreign_layer_classes(rel, env, tmp_path, case):
    if not hasattr(lk.io, "load_keras"):
        pytest.skip("lk.io.load_keras is not available")
    if not rel.FIXTURES.is_dir():
        pytest.skip(f"no fixtures at {rel.FIXTURES}")
    config = _keras_config(rel.FIXTURES)
    layers = config["config"]["layers"]
    index = next(i for i, layer in enumerate(layers) if layer.get("class_name") != "InputLayer")
    layer, expected = KERAS_CONFIG_CASES[case]
    path = _archive_with(tmp_path, rel.FIXTURES, config=_with_layer(config, index, layer))
    result, error, peak = _run(rel, "load_keras", path, None)
    _check_refused(rel, env, error, path, (expected,), result=result)
    assert peak < MEMORY_LIMIT


def test_load_keras_refuses_deeply_nested_config(rel, env, tmp_path):
    if not hasattr(lk.io, "load_keras"):
        pytest.skip("lk.io.load_keras is not available")
    if not rel.FIXTURES.is_dir():
        pytest.skip(f"no fixtures at {rel.FIXTURES}")
    path = _archive_with(tmp_path, rel.FIXTURES, config=b"[" * 100_000 + b"]" * 100_000)
    result, error, _ = _run(rel, "load_keras", path, None)
    _check_refused(rel, env, error, path, ("config.json",), result=result)


# --------------------------------------------------------------------------------------
# TensorFlow 1 checkpoints whose index points outside the shard
# --------------------------------------------------------------------------------------


def _victim_variables() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "hidden1/kernel": rng.standard_normal((4, 3)).astype(np.float32),
        "hidden1/bias": rng.standard_normal(3).astype(np.float32),
        "out/kernel": rng.standard_normal((3, 2)).astype(np.float32),
        "out/bias": rng.standard_normal(2).astype(np.float32),
    }


TF1_CASES = {
    # name: (variable, entry (dtype, shape, offset, size, crc, shard), objects to name)
    "offset past the end of the shard": ("hidden1/bias", (1, (3,), 1 << 40, 12, 0, 0), None),
    "offset and size running past the end": ("hidden1/kernel", (1, (4, 3), 60, 48, 0, 0), None),
    "negative offset": ("hidden1/bias", (1, (3,), -8, 12, 0, 0), None),
    "size that does not hold the shape": ("hidden1/bias", (1, (3,), 0, 1 << 30, 0, 0), None),
    "2**30 floats, far past the end of the shard": (
        "hidden1/kernel",
        (1, (1 << 20, 1 << 10), 0, 4 << 30, 0, 0),
        None,
    ),
    "absurd shape": ("hidden1/kernel", (1, (1 << 40, 1 << 40), 0, 4, 0, 0), None),
    "shard number out of range": ("hidden1/bias", (1, (3,), 0, 12, 0, 7), None),
    "string tensor posing as a kernel": ("hidden1/kernel", (7, (4, 3), 0, 48, 0, 0), ("hidden1",)),
    "complex tensor as a bias, with a valid checksum": ("hidden1/bias", "complex", None),
}


def _complex_bias_entry(rel, variables: dict[str, np.ndarray]) -> bytes:
    """hidden1/bias as 3 complex64 numbers: the first 24 bytes of the shard, with their
    correct CRC, so that only the type can make a reader refuse it."""
    shard = b"".join(np.ascontiguousarray(variables[n], "<f4").tobytes() for n in sorted(variables))
    return rel.bundle_entry(8, (3,), 0, 24, rel.mask(rel.crc32c(shard[:24])))


@pytest.mark.parametrize("operation", ["load_weights", "inspect"])
@pytest.mark.parametrize("case", list(TF1_CASES))
def test_tf1_index_pointing_outside_the_shard_is_refused(rel, env, tmp_path, case, operation):
    variable, fields, objects = TF1_CASES[case]
    variables = _victim_variables()
    if fields == "complex":
        entry = _complex_bias_entry(rel, variables)
    else:
        dtype, shape, offset, size, crc, shard = fields
        entry = rel.bundle_entry(dtype, shape, offset % (1 << 64), size, crc, shard)
    prefix = tmp_path / "victim.ckpt"
    rel.write_tf1_checkpoint(prefix, variables, {variable: entry})
    model = rel.small_model("mse")
    before = rel.snapshot(model)
    result, error, peak = _run(rel, operation, prefix, model)
    if operation == "inspect" and error is None and case.startswith(("string", "complex")):
        return  # describing a file is harmless; loading it is what must be refused
    _check_refused(rel, env, error, prefix, objects or (variable,), model, before, result)
    assert peak < MEMORY_LIMIT, f"{case}: {operation} grew the resident memory by {peak >> 20} MiB"


# --------------------------------------------------------------------------------------
# The source never unpickles or evaluates
# --------------------------------------------------------------------------------------

FORBIDDEN_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "dill",
    "cloudpickle",
    "marshal",
    "shelve",
    "joblib",
}
FORBIDDEN_CALLS = {"eval", "exec", "__import__"}


def _violations(source: str, filename: str) -> list[str]:
    tree = ast.parse(source, filename)
    found = []
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [
                f"{where}: import {a.name}"
                for a in node.names
                if a.name.split(".")[0] in FORBIDDEN_MODULES
            ]
        elif (
            isinstance(node, ast.ImportFrom)
            and (node.module or "").split(".")[0] in FORBIDDEN_MODULES
        ):
            found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else None
            )
            if name in FORBIDDEN_CALLS:
                found.append(f"{where}: call to {name}()")
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id in FORBIDDEN_MODULES
            ):
                found.append(f"{where}: {func.value.id}.{func.attr}()")
            for keyword in node.keywords:
                if keyword.arg == "allow_pickle" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                ):
                    found.append(f"{where}: allow_pickle={ast.unparse(keyword.value)}")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_MODULES:
            found.append(f"{where}: uses {node.id}")
    return found


def _code_names(source: str) -> set[str]:
    """Every name in the code, comments and strings left out (docstrings say "no
    pickle, no eval"): catches ``f = eval`` and ``getattr(pickle, ...)`` too."""
    return {
        token.string
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.NAME
    }


def test_the_scanner_finds_what_it_looks_for():
    planted = (
        "import pickle\nfrom marshal import loads\nimport numpy as np\n"
        "eval('1')\nexec('x = 1')\n__import__('os')\nnp.load('f', allow_pickle=True)\n"
        "x = np.load('f', allow_pickle=flag)\n"
    )
    found = _violations(planted, "planted.py")
    assert len(found) == 7, found
    assert {"pickle", "eval", "exec"} <= _code_names(planted)
    assert "pickle" not in _code_names("# no pickle\n'''no pickle'''\nx = 1\n")
    assert (
        _violations("'''no pickle, no eval('x')'''\nnp.load('f', allow_pickle=False)\n", "clean.py")
        == []
    )


def test_layerkit_source_never_unpickles_or_evaluates(rel):
    package = Path(lk.__file__).resolve().parent
    files = sorted(package.rglob("*.py"))
    assert len(files) >= 20, files
    found = []
    for path in files:
        source = path.read_text(encoding="utf-8")
        name = str(path.relative_to(package.parent))
        found += _violations(source, name)
        for token in sorted(_code_names(source)):
            if token in FORBIDDEN_MODULES | FORBIDDEN_CALLS:
                found.append(f"{name}: the name {token!r} appears in code")
    rel.record("source scan: files scanned", "clean" if not found else "violations", len(files))
    assert found == [], "\n".join(found)
