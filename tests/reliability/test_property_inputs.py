"""Property-based tests of layerkit's edges: ``fit``, ``evaluate``, ``predict``,
``load_weights`` (and ``load_model``/``inspect`` on mutated checkpoints) and
``lk.datasets.mnist.load_data`` on random and mutated inputs.

The property is the same everywhere: a call either works or raises a documented
exception (ValueError, TypeError, OSError and their subclasses, ``lk.io.FormatError``
included) whose message names the argument or the file; it never crashes the
interpreter or hangs (see the watchdog in ``conftest.py``); and when it fails, the
model's weights, optimizer state (iterations and slots) and built state are unchanged.

Examples are derandomized (the same inputs on every run) and kept few so that the
suite stays fast; ``conftest.py`` counts them per category for ``docs/reliability.md``.
"""

from __future__ import annotations

import gzip
import io
import itertools
import math
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import layerkit as lk
from layerkit.__main__ import inspect as lk_inspect
from layerkit.datasets import mnist


def cfg(max_examples: int):
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


_unique = itertools.count()


def fresh_path(folder: Path, suffix: str) -> Path:
    """A new file name for each example: a file handle that a failed read left open
    must never make HDF5 serve a previous example's content."""
    return folder / f"example_{next(_unique)}{suffix}"


# --------------------------------------------------------------------------------------
# Random arrays
# --------------------------------------------------------------------------------------

FINITE = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.integers(min_value=-1, max_value=3).map(float),  # plausible labels too
)
SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf])
KINDS = [
    "bool",
    "int8",
    "int32",
    "int64",
    "uint8",
    "uint64",
    "float16",
    "float32",
    "float64",
    "float64",
    "complex64",
    "complex128",
    "object-numbers",
    "object-mixed",
    "str",
    "bytes",
    "datetime64",
]
CONTAINERS = ["array", "array", "list", "fortran", "strided", "readonly", "broadcast"]


def convert(values: np.ndarray, kind: str) -> np.ndarray:
    with np.errstate(all="ignore"):
        if kind == "bool":
            return values > 0
        if kind.startswith(("int", "uint")):
            info = np.iinfo(kind)
            return np.clip(np.nan_to_num(values), info.min, info.max).astype(kind)
        if kind.startswith("float"):
            return values.astype(kind)
        if kind.startswith("complex"):
            return (values + 0.5j).astype(kind)
        if kind == "object-numbers":
            return values.astype(object)
        if kind == "object-mixed":
            out = values.astype(object)
            if out.size:
                out.flat[0] = "a"
            if out.size > 1:
                out.flat[1] = None
            return out
        if kind == "str":
            return values.astype(str)
        if kind == "bytes":
            return values.astype("S32")
        if kind == "datetime64":
            return np.nan_to_num(values).astype(np.int64).view("datetime64[s]")
    raise AssertionError(kind)


def contain(array: np.ndarray, how: str):
    array = np.asarray(array)
    if how == "list":
        return array.tolist()
    if how == "fortran":
        return np.asfortranarray(array)
    if how == "strided" and array.ndim >= 1:
        return np.repeat(array, 2, axis=0)[::2]  # not contiguous
    if how == "readonly":
        copy = array.copy()
        copy.flags.writeable = False
        return copy
    if how == "broadcast" and array.ndim >= 1 and array.shape[0] >= 1:
        return np.broadcast_to(array[:1], array.shape)  # zero stride on the batch axis
    return array


@st.composite
def arrays(draw, features: int, rows: int | None = None, one_dim: bool = False):
    """Arrays of random dtype, rank 0-3, sizes 0-5, the right feature count and row count
    more often than not, sometimes holding NaN or an infinity, in various containers."""
    kind = draw(st.sampled_from(KINDS))
    ndim = draw(st.sampled_from([1, 1, 2, 0, 3] if one_dim else [2, 2, 2, 1, 0, 3]))
    shape = [draw(st.integers(min_value=0, max_value=5)) for _ in range(ndim)]
    if ndim >= 2 and draw(st.integers(0, 3)) > 0:
        shape[-1] = features
    if ndim >= 1 and rows is not None and draw(st.integers(0, 3)) > 0:
        shape[0] = rows
    size = math.prod(shape)
    values = np.array(draw(st.lists(FINITE, min_size=size, max_size=size)), dtype=np.float64)
    values = values.reshape(shape)
    if size and draw(st.integers(0, 4)) == 0:
        values.flat[draw(st.integers(0, size - 1))] = draw(SPECIAL)
    return contain(convert(values, kind), draw(st.sampled_from(CONTAINERS)))


def rows_of(value) -> int | None:
    shape = np.shape(value) if not isinstance(value, list) else np.asarray(value, object).shape
    return shape[0] if shape else None


LOSSES = [
    "mse",
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
]
OUTPUT_FEATURES = {
    "mse": 2,
    "binary_crossentropy": 1,
    "categorical_crossentropy": 3,
    "sparse_categorical_crossentropy": 1,
}


def targets(loss: str, rows: int | None = None):
    return arrays(
        OUTPUT_FEATURES[loss], rows=rows, one_dim=loss == "sparse_categorical_crossentropy"
    )


def check_failed_call(rel, model, before, error, arguments, context):
    """A failed call names the argument and leaves the model as it was."""
    rel.assert_refusal(error, arguments=arguments, context=context)
    rel.assert_unchanged(model, before, context)


# --------------------------------------------------------------------------------------
# fit / evaluate / predict
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", LOSSES)
@cfg(40)
@given(x=arrays(features=4, rows=4))
def test_fit_with_random_x(rel, loss, x):
    model = rel.small_model(loss)
    before = rel.snapshot(model)
    n = rows_of(x)
    y = rel.valid_targets(loss, 4 if n is None else n)
    _, error = rel.attempt(
        "fit(x=random)", lambda: model.fit(x, y, batch_size=3, epochs=1, verbose=0)
    )
    if error is None:
        assert model.input_shape == before["input_shape"]
        assert model.optimizer.iterations > before["iterations"]
    else:
        check_failed_call(rel, model, before, error, ("x",), "fit(x=random)")


@pytest.mark.parametrize("loss", LOSSES)
@cfg(40)
@given(data=st.data())
def test_fit_with_random_y(rel, loss, data):
    y = data.draw(targets(loss, rows=4), label="y")
    model = rel.small_model(loss)
    before = rel.snapshot(model)
    n = rows_of(y)
    x = np.linspace(-1, 1, 4 * (4 if n is None else n), dtype=np.float32).reshape(-1, 4)
    if len(x) == 0:
        x = np.ones((4, 4), np.float32)
    _, error = rel.attempt(
        "fit(y=random)", lambda: model.fit(x, y, batch_size=3, epochs=1, verbose=0)
    )
    if error is None:
        assert model.optimizer.iterations > before["iterations"]
    else:
        check_failed_call(rel, model, before, error, ("y",), "fit(y=random)")


@pytest.mark.parametrize("loss", LOSSES)
@cfg(30)
@given(data=st.data())
def test_fit_with_random_validation_data(rel, loss, data):
    shape = data.draw(
        st.sampled_from(["pair", "pair", "pair", "list", "triple", "single", "string", "dict"]),
        label="structure",
    )
    x_val = data.draw(arrays(features=4, rows=3), label="x_val")
    y_val = data.draw(targets(loss, rows=rows_of(x_val)), label="y_val")
    validation = {
        "pair": (x_val, y_val),
        "list": [x_val, y_val],
        "triple": (x_val, y_val, y_val),
        "single": (x_val,),
        "string": "xy",
        "dict": {"x": x_val, "y": y_val},
    }[shape]
    model = rel.small_model(loss)
    before = rel.snapshot(model)
    x = np.linspace(-1, 1, 24, dtype=np.float32).reshape(6, 4)
    y = rel.valid_targets(loss, 6)
    _, error = rel.attempt(
        "fit(validation_data=random)",
        lambda: model.fit(x, y, epochs=1, verbose=0, validation_data=validation),
    )
    if error is not None:
        check_failed_call(
            rel, model, before, error, ("validation_data",), "fit(validation_data=random)"
        )


@pytest.mark.parametrize("loss", LOSSES)
@cfg(40)
@given(data=st.data())
def test_evaluate_with_random_x_and_y(rel, loss, data):
    x = data.draw(arrays(features=4, rows=4), label="x")
    y = data.draw(targets(loss, rows=rows_of(x)), label="y")
    model = rel.small_model(loss)
    before = rel.snapshot(model)
    result, error = rel.attempt("evaluate(x, y=random)", lambda: model.evaluate(x, y))
    if error is None:
        assert np.isfinite(result)
        rel.assert_unchanged(model, before, "evaluate")  # evaluate never trains
    else:
        check_failed_call(rel, model, before, error, ("x", "y"), "evaluate(random)")


@cfg(150)
@given(x=arrays(features=4, rows=4), batch_size=st.sampled_from([None, 1, 2, 32]))
def test_predict_with_random_x(rel, x, batch_size):
    model = rel.small_model("mse")
    before = rel.snapshot(model)
    result, error = rel.attempt(
        "predict(x=random)", lambda: model.predict(x, batch_size=batch_size)
    )
    if error is None:
        assert result.shape == (rows_of(x) if np.ndim(x) > 1 else np.size(x), 2)
        assert np.isfinite(result).all()
        rel.assert_unchanged(model, before, "predict")
    else:
        check_failed_call(rel, model, before, error, ("x",), "predict(x=random)")


ARGUMENT_VALUES = {
    "batch_size": st.one_of(
        st.none(),
        st.integers(-2, 10**18),
        st.floats(allow_nan=True),
        st.booleans(),
        st.text(max_size=2),
        st.sampled_from([np.int64(3), np.float32(2.0), [2], (2,)]),
    ),
    "epochs": st.one_of(
        st.integers(-2, 2), st.floats(0, 2), st.none(), st.booleans(), st.just("1")
    ),
    "validation_split": st.one_of(
        st.floats(allow_nan=True), st.integers(-1, 2), st.none(), st.booleans(), st.just("0.1")
    ),
    "initial_epoch": st.one_of(st.integers(-2, 3), st.none(), st.floats(0, 2)),
    "verbose": st.sampled_from(["auto", 0, 2, 3, -1, 1.0, None, "x", "silent"]),
}


@cfg(100)
@given(
    chosen=st.fixed_dictionaries({}, optional=ARGUMENT_VALUES),
)
def test_fit_with_random_scalar_arguments(rel, chosen):
    model = rel.small_model("mse")
    before = rel.snapshot(model)
    x = np.linspace(-1, 1, 24, dtype=np.float32).reshape(6, 4)
    y = rel.valid_targets("mse", 6)
    _, error = rel.attempt("fit(scalar arguments=random)", lambda: model.fit(x, y, **chosen))
    if error is not None:
        check_failed_call(rel, model, before, error, tuple(chosen), f"fit(**{chosen!r})")


@cfg(60)
@given(data=st.data())
def test_failed_fit_leaves_an_unbuilt_model_unbuilt(rel, data):
    x = data.draw(arrays(features=4, rows=4), label="x")
    y = data.draw(targets("mse", rows=rows_of(x)), label="y")
    model = rel.small_model("mse", built=False)
    before = rel.snapshot(model)
    assert not before["built"]
    _, error = rel.attempt(
        "fit(unbuilt model, random x and y)", lambda: model.fit(x, y, epochs=1, verbose=0)
    )
    if error is not None:
        check_failed_call(rel, model, before, error, ("x", "y"), "fit on an unbuilt model")


def test_failed_fit_leaves_an_unbuilt_model_unbuilt_minimal(rel):
    """The smallest case of the property above: the targets are refused after ``x``
    has already been used to build the model."""
    model = rel.small_model("mse", built=False)
    before = rel.snapshot(model)
    _, error = rel.attempt(
        "fit(unbuilt model, random x and y)",
        lambda: model.fit(np.ones((5, 7), np.float32), np.ones((5, 9), np.float32), verbose=0),
    )
    check_failed_call(rel, model, before, error, ("y",), "fit(x (5, 7), y (5, 9)) unbuilt")


# --- inputs that are huge but cost nothing to create ---------------------------------
def _huge(value, shape, dtype=np.float32):
    return np.broadcast_to(np.asarray(value, dtype=dtype), shape)


SMALL_X = np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4)
SMALL_Y = np.zeros((4, 2), np.float32)
HUGE_CASES = {
    "predict: 2**40 rows, wrong feature count": (
        "predict",
        lambda: (_huge(0.5, (2**40, 5)),),
        ("x",),
    ),
    "predict: 2**40 rows of the right shape": (
        "predict",
        lambda: (_huge(0.5, (2**40, 4)),),
        ("x",),
    ),
    "predict: 2**40 rows of NaN": ("predict", lambda: (_huge(np.nan, (2**40, 4)),), ("x",)),
    "predict: 10**12 rows of rank 3": ("predict", lambda: (_huge(1, (10**12, 3, 4)),), ("x",)),
    "predict: 2**40 rows of nothing": (
        "predict",
        lambda: (np.empty((2**40, 0), np.float32),),
        ("x",),
    ),
    "evaluate: 2**40 rows of x, 4 of y": (
        "evaluate",
        lambda: (_huge(0.5, (2**40, 4)), SMALL_Y),
        ("x", "y"),
    ),
    "fit: 4 rows of x, 2**40 float rows of y": (
        "fit",
        lambda: (SMALL_X, _huge(0.0, (2**40, 2))),
        ("x", "y"),
    ),
    "fit: 4 rows of x, 2**40 int8 rows of y": (
        "fit",
        lambda: (SMALL_X, _huge(0, (2**40, 2), np.int8)),
        ("x", "y"),
    ),
    "fit: 2**40 rows of x with a wrong feature count": (
        "fit",
        lambda: (_huge(0.5, (2**40, 7)), SMALL_Y),
        ("x",),
    ),
    "fit: y of the wrong width, 2**40 rows": (
        "fit",
        lambda: (SMALL_X, _huge(0.0, (2**40, 5))),
        ("y",),
    ),
}


@pytest.mark.parametrize("case", list(HUGE_CASES))
def test_huge_but_cheap_inputs_are_refused_without_allocating(rel, case):
    method, make_args, arguments = HUGE_CASES[case]
    model = rel.small_model("mse")
    before = rel.snapshot(model)
    args = make_args()
    kwargs = {"verbose": 0} if method == "fit" else {}
    with rel.memory_guard() as memory:
        _, error = rel.attempt(
            "huge-but-cheap inputs", lambda: getattr(model, method)(*args, **kwargs)
        )
    check_failed_call(rel, model, before, error, arguments, case)
    assert memory["peak"] < 64 << 20, f"{case}: {memory['peak'] / 2**20:.0f} MiB allocated"


@pytest.mark.parametrize(
    ("x", "y"),
    [
        pytest.param([[1, 2, 3, 4], [1, 2]], None, id="ragged x"),
        pytest.param(None, [[1, 2], [1]], id="ragged y"),
        pytest.param([[1, 2, 3, 4], ["a", 2, 3, 4]], None, id="x with a string"),
        pytest.param(
            np.zeros(4, [("a", "f4"), ("b", "f4"), ("c", "f4"), ("d", "f4")]), None, id="record x"
        ),
    ],
)
def test_malformed_containers_name_the_argument(rel, x, y):
    model = rel.small_model("mse")
    before = rel.snapshot(model)
    x_arg = SMALL_X[: len(y)] if x is None else x
    y_arg = np.zeros((len(x_arg), 2), np.float32) if y is None else y
    argument = "x" if y is None else "y"
    _, error = rel.attempt(
        "malformed containers", lambda: model.fit(x_arg, y_arg, epochs=1, verbose=0)
    )
    check_failed_call(rel, model, before, error, (argument,), f"fit({argument}=malformed)")


# --------------------------------------------------------------------------------------
# load_weights on random bytes and on mutated real checkpoints
# --------------------------------------------------------------------------------------

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
TABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")


def _random_file(folder: Path, data: bytes, form: str) -> tuple[Path, Path]:
    """Writes ``data`` dressed as ``form``; returns (path to load, path to expect in
    the message)."""
    if form == "tf1-index":
        prefix = fresh_path(folder, ".ckpt")
        Path(f"{prefix}.index").write_bytes(data + TABLE_MAGIC)
        return prefix, prefix
    path = fresh_path(folder, ".bin")
    if form == "hdf5":
        path.write_bytes(HDF5_SIGNATURE + data)
    elif form == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("model.weights.h5", HDF5_SIGNATURE + data)
            zf.writestr("config.json", data)
    elif form == "table":
        path.write_bytes(data + TABLE_MAGIC)
    else:
        path.write_bytes(data)
    return path, path


@cfg(150)
@given(
    data=st.binary(max_size=4096),
    form=st.sampled_from(["raw", "hdf5", "zip", "table", "tf1-index"]),
)
def test_load_weights_of_random_bytes_is_refused(rel, tmp_path, data, form):
    path, named = _random_file(tmp_path, data, form)
    model = rel.small_model("mse")
    before = rel.snapshot(model)
    _, error = rel.attempt("load_weights(random bytes)", lambda: model.load_weights(path))
    rel.assert_refusal(error, texts=(str(named),), context=f"random bytes as {form}")
    rel.assert_unchanged(model, before, "load_weights of random bytes")


MUTATIONS = st.one_of(
    st.tuples(
        st.just("flip"),
        st.lists(
            st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
            min_size=1,
            max_size=8,
        ),
        st.booleans(),  # in the first 4 KiB (where HDF5 keeps its structure) or anywhere
    ),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("zero"), st.floats(0, 1, exclude_max=True), st.integers(1, 512)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
)


def mutate(data: bytes, mutation) -> bytes:
    out = bytearray(data)
    kind = mutation[0]
    if kind == "flip":
        span = min(len(out), 4096) if mutation[2] else len(out)
        for fraction, bits in mutation[1]:
            out[int(fraction * span)] ^= bits
    elif kind == "truncate":
        del out[int(mutation[1] * len(out)) :]
    elif kind == "zero":
        start = int(mutation[1] * len(out))
        end = min(len(out), start + mutation[2])
        out[start:end] = bytes(end - start)
    else:
        at = int(mutation[1] * len(out))
        out[at:at] = mutation[2]
    return bytes(out)


class _Originals(dict):
    def __repr__(self) -> str:  # keeps hypothesis's falsifying-example reports short
        return f"<original files {sorted(self)}>"


@pytest.fixture(scope="module")
def saved_checkpoints(rel, tmp_path_factory):
    """The bytes of a weights file and of a full checkpoint of a model like
    ``rel.small_model`` (trained, so every weight and slot differs from a fresh one)."""
    folder = tmp_path_factory.mktemp("checkpoints")
    source = rel.small_model("mse", seed=7)
    source.fit(np.ones((8, 4), np.float32), np.ones((8, 2), np.float32), epochs=2, verbose=0)
    return _Originals(
        weights=Path(source.save_weights(folder / "weights.h5")).read_bytes(),
        model=Path(source.save(folder / "model.h5")).read_bytes(),
    )


@pytest.mark.parametrize("kind", ["weights", "model"])
@cfg(120)
@given(mutation=MUTATIONS)
def test_mutated_layerkit_checkpoint(rel, tmp_path, saved_checkpoints, kind, mutation):
    path = fresh_path(tmp_path, ".h5")
    path.write_bytes(mutate(saved_checkpoints[kind], mutation))
    category = f"mutated layerkit {kind} checkpoint"
    model = rel.small_model("mse")
    before = rel.snapshot(model)
    _, error = rel.attempt(f"{category}: load_weights", lambda: model.load_weights(path))
    if error is not None:
        rel.assert_refusal(error, texts=(str(path),), context=f"load_weights({mutation})")
        rel.assert_unchanged(model, before, "a failed load_weights")
    _, error = rel.attempt(f"{category}: inspect", lambda: lk_inspect(str(path)))
    if error is not None:
        rel.assert_refusal(error, texts=(str(path),), context=f"inspect({mutation})")
    if kind == "model":
        _, error = rel.attempt(f"{category}: load_model", lambda: lk.load_model(path))
        if error is not None:
            rel.assert_refusal(error, texts=(str(path),), context=f"load_model({mutation})")
    path.unlink()


KERAS_SOURCES = {
    # name: (fixture files, the one mutated, model factory, examples)
    "keras3 .weights.h5": (["default_names.weights.h5"], 0, "default_names_model", 120),
    "legacy .h5": (["default_names.legacy.h5"], 0, "default_names_model", 120),
    ".keras archive": (["default_names.keras"], 0, "default_names_model", 120),
    "tf.keras 2 weights-only .h5": (["tfkeras2_mlp.weights_only.h5"], 0, "mlp_model", 40),
    "tf1 index": (
        ["tf1_mlp.ckpt.index", "tf1_mlp.ckpt.data-00000-of-00001", "tf1_mlp.ckpt.meta"],
        0,
        "mlp_model",
        80,
    ),
    "tf1 data shard": (
        ["tf1_mlp.ckpt.index", "tf1_mlp.ckpt.data-00000-of-00001", "tf1_mlp.ckpt.meta"],
        1,
        "mlp_model",
        30,
    ),
    "tf1 meta graph": (
        ["tf1_mlp.ckpt.index", "tf1_mlp.ckpt.data-00000-of-00001", "tf1_mlp.ckpt.meta"],
        2,
        "mlp_model",
        30,
    ),
}


def _keras_case(source: str):
    files, mutated, factory, examples = KERAS_SOURCES[source]

    @cfg(examples)
    @given(mutation=MUTATIONS)
    def run(rel, tmp_path, mutation):
        if not rel.FIXTURES.is_dir():
            pytest.skip(f"no fixtures at {rel.FIXTURES}")
        folder = fresh_path(tmp_path, "")
        folder.mkdir()
        for index, name in enumerate(files):
            data = (rel.FIXTURES / name).read_bytes()
            (folder / name).write_bytes(mutate(data, mutation) if index == mutated else data)
        target = folder / files[0]
        if files[0].endswith(".index"):
            target = folder / files[0][: -len(".index")]  # the checkpoint prefix
        model = getattr(rel, factory)()
        before = rel.snapshot(model)
        _, error = rel.attempt(
            f"mutated {source}: load_weights", lambda: model.load_weights(target)
        )
        if error is not None:
            rel.assert_refusal(error, texts=(str(target),), context=f"{source} {mutation}")
            rel.assert_unchanged(model, before, "a failed load_weights")
        _, error = rel.attempt(f"mutated {source}: inspect", lambda: lk_inspect(str(target)))
        if error is not None:
            rel.assert_refusal(error, texts=(str(target),), context=f"inspect {mutation}")
        shutil.rmtree(folder)

    return run


@pytest.mark.parametrize("source", list(KERAS_SOURCES))
def test_mutated_keras_and_tensorflow_files(rel, tmp_path, source):
    _keras_case(source)(rel, tmp_path)


# --------------------------------------------------------------------------------------
# mnist.load_data on random and mutated IDX files (and .npz archives)
# --------------------------------------------------------------------------------------

rng = np.random.default_rng(5)
MNIST_ARRAYS = {
    mnist.TRAIN_IMAGES: rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
    mnist.TRAIN_LABELS: rng.integers(0, 10, 6, dtype=np.uint8),
    mnist.TEST_IMAGES: rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
    mnist.TEST_LABELS: rng.integers(0, 10, 4, dtype=np.uint8),
}
del rng


def _offline_fetch(url, timeout):
    raise OSError(f"network disabled in tests ({url})")


@pytest.fixture(scope="module")
def offline_mnist(tmp_path_factory):
    """No download, no real home or data folder: only the folder given is searched."""
    patch = pytest.MonkeyPatch()
    patch.setenv("LAYERKIT_HOME", str(tmp_path_factory.mktemp("layerkit_home")))
    patch.delenv("LAYERKIT_DATA", raising=False)

    patch.setattr(mnist, "_fetch", _offline_fetch)
    yield
    patch.undo()


HEADER_EDITS = st.one_of(
    st.tuples(st.just("magic"), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("dim"), st.integers(0, 3), st.integers(0, 2**32 - 1)),
)


def edit_header(data: bytes, edit) -> bytes:
    out = bytearray(data)
    if edit[0] == "magic":
        out[0:4] = edit[1].to_bytes(4, "big")
    else:
        at = 4 + 4 * edit[1]
        if at + 4 <= len(out):
            out[at : at + 4] = edit[2].to_bytes(4, "big")
    return bytes(out)


def _check_mnist_result(result):
    (x_train, y_train), (x_test, y_test) = result
    for x, y in ((x_train, y_train), (x_test, y_test)):
        assert (x.dtype, y.dtype) == (np.uint8, np.uint8)
        assert (x.ndim, x.shape[1:], y.shape) == (3, (28, 28), (len(x),))
        assert y.size == 0 or y.max() < 10


@pytest.mark.usefixtures("offline_mnist")
@cfg(200)
@given(
    target=st.sampled_from(list(MNIST_ARRAYS)),
    compressed=st.booleans(),
    change=st.one_of(
        MUTATIONS,
        st.tuples(st.just("header"), HEADER_EDITS),
        st.tuples(st.just("random"), st.binary(max_size=2048)),
    ),
)
def test_mnist_load_data_with_mutated_idx_files(rel, tmp_path, target, compressed, change):
    folder = fresh_path(tmp_path, "")
    folder.mkdir()
    suffix = ".gz" if compressed else ""
    for name, array in MNIST_ARRAYS.items():
        mnist.write_idx(folder / name, array)
        raw = (folder / name).read_bytes()
        if name == target:
            if change[0] == "header":
                raw = edit_header(raw, change[1])
            elif change[0] == "random":
                raw = change[1]
            elif not compressed:
                raw = mutate(raw, change)
        (folder / name).unlink()
        if compressed:
            raw = gzip.compress(raw, mtime=0)
            if name == target and change[0] not in ("header", "random"):
                raw = mutate(raw, change)  # damage the gzip stream itself
        (folder / (name + suffix)).write_bytes(raw)
    mutated = folder / (target + suffix)
    result, error = rel.attempt(
        "mnist.load_data(mutated IDX files)", lambda: mnist.load_data(path=folder)
    )
    if error is None:
        _check_mnist_result(result)
    else:
        rel.assert_refusal(error, texts=(str(mutated),), context=f"{target}{suffix} {change}")
    shutil.rmtree(folder)


@pytest.fixture(scope="module")
def mnist_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        x_train=MNIST_ARRAYS[mnist.TRAIN_IMAGES],
        y_train=MNIST_ARRAYS[mnist.TRAIN_LABELS],
        x_test=MNIST_ARRAYS[mnist.TEST_IMAGES],
        y_test=MNIST_ARRAYS[mnist.TEST_LABELS],
    )
    return buffer.getvalue()


@pytest.mark.usefixtures("offline_mnist")
@cfg(120)
@given(mutation=MUTATIONS)
def test_mnist_load_data_with_mutated_npz(rel, tmp_path, mnist_npz, mutation):
    path = fresh_path(tmp_path, ".npz")
    path.write_bytes(mutate(mnist_npz, mutation))
    result, error = rel.attempt("mnist.load_data(mutated .npz)", lambda: mnist.load_data(path))
    if error is None:
        _check_mnist_result(result)
    else:
        rel.assert_refusal(error, texts=(str(path),), context=f"mnist.npz {mutation}")
    path.unlink()


def _npz_with_declared_shape(shape: tuple[int, ...]) -> bytes:
    """An .npz whose ``x_train.npy`` header declares ``shape`` over 6 images of data."""
    buffer = io.BytesIO()
    np.save(buffer, MNIST_ARRAYS[mnist.TRAIN_IMAGES])
    npy = buffer.getvalue()
    header_len = int.from_bytes(npy[8:10], "little")
    header = npy[10 : 10 + header_len].decode("latin1")
    header = header.replace("(6, 28, 28)", repr(shape)).rstrip()
    header = header.ljust(header_len - 1) + "\n"
    assert len(header) == header_len
    npy = npy[:10] + header.encode("latin1") + npy[10 + header_len :]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("x_train.npy", npy)
        for key, name in (
            ("y_train", mnist.TRAIN_LABELS),
            ("x_test", mnist.TEST_IMAGES),
            ("y_test", mnist.TEST_LABELS),
        ):
            part = io.BytesIO()
            np.save(part, MNIST_ARRAYS[name])
            zf.writestr(f"{key}.npy", part.getvalue())
    return out.getvalue()


def _npz_with_compression_method(method: int) -> bytes:
    """A stored .npz whose first member claims an unknown compression method."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: MNIST_ARRAYS[n] for k, n in zip(mnist.NPZ_KEYS, MNIST_ARRAYS)})
    data = bytearray(buffer.getvalue())
    data[8:10] = method.to_bytes(2, "little")  # local header of the first member
    central = data.find(b"PK\x01\x02")
    data[central + 10 : central + 12] = method.to_bytes(2, "little")
    return bytes(data)


def _idx_gz_with_count(count: int) -> bytes:
    header = (0x0803).to_bytes(4, "big") + count.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    return gzip.compress(header + bytes(784 * 2), mtime=0)


@pytest.mark.usefixtures("offline_mnist")
@pytest.mark.parametrize(
    ("name", "content", "file_name"),
    [
        pytest.param(
            "mnist.npz",
            lambda: _npz_with_declared_shape((10**11, 28, 28)),
            "mnist.npz",
            id="npz header declares 10**11 images",
        ),
        pytest.param(
            "mnist.npz",
            lambda: _npz_with_compression_method(99),
            "mnist.npz",
            id="npz member with unknown compression method",
        ),
        pytest.param(
            mnist.TRAIN_IMAGES + ".gz",
            lambda: _idx_gz_with_count(2**32 - 1),
            mnist.TRAIN_IMAGES + ".gz",
            id="gz IDX header declares 2**32-1 images",
        ),
        pytest.param(
            mnist.TRAIN_IMAGES + ".gz",
            lambda: _idx_gz_with_count(2**20),
            mnist.TRAIN_IMAGES + ".gz",
            id="gz IDX header declares 2**20 images",
        ),
    ],
)
def test_mnist_hostile_headers(rel, tmp_path, name, content, file_name):
    folder = tmp_path / "mnist"
    folder.mkdir()
    if name != "mnist.npz":
        for other, array in MNIST_ARRAYS.items():
            mnist.write_idx(folder / other, array)
        (folder / mnist.TRAIN_IMAGES).unlink()
    (folder / name).write_bytes(content())
    with rel.memory_guard() as memory:
        _, error = rel.attempt("mnist hostile headers", lambda: mnist.load_data(path=folder))
    rel.assert_refusal(error, texts=(str(folder / file_name),), context=name)
    assert memory["peak"] < 256 << 20, f"{memory['peak'] / 2**20:.0f} MiB allocated"


def test_mnist_random_folder_content_is_never_a_crash(rel, tmp_path):
    """A file where a folder is expected, a folder where a file is expected, and a path
    that is neither: FileNotFoundError or ValueError naming it, after searching offline."""
    patch = pytest.MonkeyPatch()
    patch.setenv("LAYERKIT_HOME", str(tmp_path / "home"))
    patch.delenv("LAYERKIT_DATA", raising=False)
    patch.setattr(mnist, "_fetch", _offline_fetch)
    try:
        odd = tmp_path / "odd"
        odd.mkdir()
        for name in mnist.FILE_NAMES:
            (odd / name).mkdir()  # folders named like the files
        plain = tmp_path / "plain.txt"
        plain.write_text("hello")
        for path in (odd, plain, tmp_path / "missing", odd / mnist.TRAIN_IMAGES):
            _, error = rel.attempt("mnist odd paths", lambda p=path: mnist.load_data(path=p))
            rel.assert_refusal(error, texts=(os.path.expanduser(str(path)),), context=str(path))
    finally:
        patch.undo()
