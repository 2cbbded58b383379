"""Hostile graph checkpoints: a saved ``lk.Model`` whose ``model_config`` (Keras 3's
functional form) was rewritten to hold cycles, dangling references, absurd sizes,
values of the wrong type, or random damage.

The property, for ``lk.load_model`` on the rewritten file and for ``lk.Model.from_config``
on the rewritten config: the call either works, and then (when the mutation is harmless)
the model predicts what the original did, or it raises a documented exception
(``lk.io.FormatError`` naming the file for ``load_model``; ValueError or TypeError for
``from_config``) whose message names the problem; within a time bound, without
MemoryError and without the resident memory growing by more than a few MiB.

Cases that layerkit mishandles today are kept, marked ``xfail(strict=True)`` with the
reason, so that the fix turns them into failures to unmark.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import random
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import layerkit as lk
from layerkit.io.checkpoint import seal

CALL_S = 2.0  # one load_model or from_config of a small mutated graph
LARGE_S = 5.0  # graphs of 10_000 layers, calls of 100_000 tensors
MEMORY_LIMIT = 64 << 20  # resident memory growth allowed while refusing a file
# ... plus this much per byte of model_config: parsing JSON into Python objects costs
# ~6 bytes per byte of text, and load_model holds about two copies (~12).
MEMORY_PER_CONFIG_BYTE = 16
_unique = itertools.count()


# --------------------------------------------------------------------------------------
# Time bound
# --------------------------------------------------------------------------------------


class TooSlow(BaseException):
    """Raised by :func:`deadline`: a BaseException, so that no ``except Exception`` in
    the library turns it into a refusal (and ``rel.attempt`` does not count it)."""


@contextlib.contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """Interrupts the block (a Python-level loop) after ``seconds`` and fails it if it
    ran longer; the conftest watchdog's alarm is put back afterwards."""
    use_timer = hasattr(signal, "setitimer")
    start = time.monotonic()
    if use_timer:
        previous = signal.getsignal(signal.SIGALRM)
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)

        def on_alarm(signum, frame):
            raise TooSlow(f"{what} took longer than {seconds} s (a quadratic loop, a hang?)")

        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        elapsed = time.monotonic() - start
        if use_timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            if remaining:
                signal.setitimer(signal.ITIMER_REAL, max(remaining - elapsed, 0.01))
    if elapsed > seconds:
        raise TooSlow(f"{what} took {elapsed:.2f} s, more than {seconds} s")


# --------------------------------------------------------------------------------------
# The victim: two inputs, a shared Dense, concatenate, two outputs
# --------------------------------------------------------------------------------------


def victim_graph() -> lk.Model:
    lk.utils.set_random_seed(11)
    a = lk.layers.Input((4,), name="in_a")
    b = lk.layers.Input((4,), name="in_b")
    shared = lk.layers.Dense(3, activation="relu", name="shared")
    merged = lk.layers.concatenate([shared(a), shared(b)], name="cat")
    out1 = lk.layers.Dense(2, name="out1")(merged)
    out2 = lk.layers.Dense(1, activation="sigmoid", name="out2")(merged)
    model = lk.Model([a, b], [out1, out2], name="victim_graph")
    model.compile(optimizer=lk.optim.Adam(learning_rate=0.01), loss=["mse", "mse"])
    return model


class GraphEnv:
    """The saved, trained victim; its stored config; what it predicts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        model = victim_graph()
        rng = np.random.default_rng(3)
        self.x = [rng.normal(size=(6, 4)).astype(np.float32) for _ in range(2)]
        y = [rng.normal(size=(6, 2)).astype(np.float32), rng.random((6, 1)).astype(np.float32)]
        model.fit(self.x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)  # one step
        assert model.optimizer.iterations == 1
        self.model = model
        self.file = Path(model.save(folder / "graph.h5"))
        with h5py.File(self.file, "r") as f:
            text = f.attrs["model_config"]
        self.text = text.decode() if isinstance(text, bytes) else text
        self.config = json.loads(self.text)
        self.expected = [np.asarray(p) for p in model.predict(self.x, verbose=0)]
        self.weights = {
            layer.name: layer.get_weights() for layer in model.layers if layer.get_weights()
        }

    def config_copy(self) -> dict[str, Any]:
        return copy.deepcopy(self.config)

    def write(self, text: str) -> Path:
        """A copy of the checkpoint whose ``model_config`` is ``text``, re-sealed as a
        deliberate attacker would. Large attributes need HDF5's dense attribute storage,
        hence the ``latest`` upper bound."""
        path = self.folder / f"mutated_{next(_unique)}.h5"
        shutil.copyfile(self.file, path)
        os.chmod(path, 0o644)
        with h5py.File(path, "r+", libver=("earliest", "latest")) as f:
            del f.attrs["model_config"]
            f.attrs["model_config"] = text
        seal(str(path))
        return path


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> GraphEnv:
    return GraphEnv(tmp_path_factory.mktemp("graph_configs"))


def test_the_victim_graph_round_trips(rel, env):
    """The unmutated file loads and predicts what was saved (the baseline of every case)."""
    model, error = rel.attempt("graph configs: baseline", lambda: lk.load_model(env.file))
    assert error is None, rel.describe(error)
    assert [layer.name for layer in model.layers] == [
        "in_a",
        "in_b",
        "shared",
        "cat",
        "out1",
        "out2",
    ]
    assert model.optimizer.iterations == 1
    _assert_same_predictions(env, model, "the unmutated file")
    layer_names = [spec["name"] for spec in env.config["layers"]]
    assert layer_names == ["in_a", "in_b", "shared", "cat", "out1", "out2"]
    assert len(env.config["layers"][2]["inbound_nodes"]) == 2  # the shared Dense


# --------------------------------------------------------------------------------------
# Running one mutated config both ways
# --------------------------------------------------------------------------------------


def _assert_same_predictions(env: GraphEnv, model, context: str) -> None:
    predicted, error = (None, None)
    with deadline(CALL_S, f"predict ({context})"):
        predicted, error = _quiet(lambda: model.predict(env.x, verbose=0))
    assert error is None, f"{context}: loaded, but predict fails: {error!r:.300}"
    assert isinstance(predicted, list), (
        f"{context}: predict returns {type(predicted).__name__}, expected a list of 2 arrays"
    )
    assert len(predicted) == 2, f"{context}: predict returns {len(predicted)} arrays, not 2"
    for i, (got, want) in enumerate(zip(predicted, env.expected)):
        assert got.shape == want.shape, f"{context}: output {i} has shape {got.shape}"
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=context)


def _quiet(call: Callable[[], Any]) -> tuple[Any, Exception | None]:
    """``call()`` without counting it (predict on an accepted model)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return call(), None
        except Exception as error:
            return None, error


def _load(rel, env: GraphEnv, category: str, text: str, seconds: float = CALL_S):
    path = env.write(text)
    allowed = MEMORY_LIMIT + MEMORY_PER_CONFIG_BYTE * len(text)
    with rel.memory_guard() as memory, deadline(seconds, f"load_model ({category})"):
        model, error = rel.attempt(
            f"graph configs: {category}: load_model", lambda: lk.load_model(path)
        )
    assert memory["peak"] < allowed, (
        f"{category}: load_model grew the resident memory by {memory['peak'] >> 20} MiB "
        f"for a model_config of {len(text) >> 10} KiB"
    )
    return path, model, error


def _from_config(rel, category: str, text: str, seconds: float = CALL_S):
    try:
        config = json.loads(text)
    except (ValueError, RecursionError):
        return None, None, False  # not JSON: only the file path can be tried
    with rel.memory_guard() as memory, deadline(seconds, f"from_config ({category})"):
        model, error = rel.attempt(
            f"graph configs: {category}: from_config", lambda: lk.Model.from_config(config)
        )
    assert memory["peak"] < MEMORY_LIMIT, (
        f"{category}: from_config grew the resident memory by {memory['peak'] >> 20} MiB"
    )
    return model, error, True


def _says_something(message: str, path: Path | None = None) -> bool:
    """More than the file's name and a prefix: at least a few words of explanation."""
    rest = message.replace(str(path), "") if path is not None else message
    return len(rest.split()) >= 3


def _check_load_refused(rel, error, path: Path, texts: tuple[str, ...], context: str) -> None:
    rel.assert_refusal(error, texts=(str(path), *texts), context=context)
    assert isinstance(error, lk.io.FormatError), (
        f"{context}: load_model refused with {type(error).__name__}, expected "
        f"lk.io.FormatError: {rel.describe(error)}"
    )
    assert _says_something(str(error), path), f"{context}: the message says nothing: {error}"


def _check_config_refused(rel, error, texts: tuple[str, ...], context: str) -> None:
    rel.assert_refusal(error, texts=texts, context=context)
    assert isinstance(error, (ValueError, TypeError)), (
        f"{context}: from_config refused with {type(error).__name__}: {rel.describe(error)}"
    )
    assert _says_something(str(error)), f"{context}: the message says nothing: {error}"


def _same_as_victim(env: GraphEnv, model, context: str) -> None:
    """A model built by from_config, given the victim's weights, predicts what it did."""
    for name, weights in env.weights.items():
        model.get_layer(name).set_weights(weights)
    _assert_same_predictions(env, model, context)


# --------------------------------------------------------------------------------------
# The mutations
# --------------------------------------------------------------------------------------

# The victim's config lists: 0 in_a, 1 in_b, 2 shared (two calls), 3 cat, 4 out1, 5 out2.
IN_A, IN_B, SHARED, CAT, OUT1, OUT2 = range(6)


def _tensor(history: Any) -> dict[str, Any]:
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": [None, 4], "dtype": "float32", "keras_history": history},
    }


def _history(c: dict, layer: int, call: int = 0, arg: int = 0) -> dict:
    """The ``config`` dict holding ``keras_history`` of one argument of one call."""
    args = c["layers"][layer]["inbound_nodes"][call]["args"]
    tensors = args[0] if len(args) == 1 and isinstance(args[0], list) else args
    return tensors[arg]["config"]


def _set_history(layer: int, value: Any, call: int = 0, arg: int = 0):
    def mutate(c: dict) -> dict:
        _history(c, layer, call, arg)["keras_history"] = value
        return c

    return mutate


def _set(path: tuple, value: Any):
    """Sets ``c[path[0]][path[1]]...`` (a missing value deletes the key)."""

    def mutate(c: dict) -> dict:
        target = c
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = copy.deepcopy(value)
        return c

    return mutate


_DELETE = object()


def _layer_config(layer: int, key: str, value: Any):
    return _set(("layers", layer, "config", key), value)


def _both_input_shapes(shape: list):
    def mutate(c: dict) -> dict:
        for i in (IN_A, IN_B):
            c["layers"][i]["config"]["shape"] = list(shape)
        return c

    return mutate


def _rename(layer: int, name: str):
    def mutate(c: dict) -> dict:
        c["layers"][layer]["name"] = name
        c["layers"][layer]["config"]["name"] = name
        return c

    return mutate


def _add_layer(spec: dict):
    def mutate(c: dict) -> dict:
        c["layers"].append(copy.deepcopy(spec))
        return c

    return mutate


def _dense_spec(name: str, source: str, called: bool = True, units: int = 2) -> dict:
    return {
        "class_name": "Dense",
        "config": {"name": name, "units": units},
        "name": name,
        "inbound_nodes": [{"args": [_tensor([source, 0, 0])], "kwargs": {}}] if called else [],
    }


def _fan_out(n: int):
    """``cat`` called on ``n`` tensors (the shared layer's first call, repeated)."""

    def mutate(c: dict) -> dict:
        first = _tensor(["shared", 0, 0])
        c["layers"][CAT]["inbound_nodes"][0]["args"] = [[first] * n]
        return c

    return mutate


def _calls(layer: int, n: int):
    def mutate(c: dict) -> dict:
        nodes = c["layers"][layer]["inbound_nodes"]
        c["layers"][layer]["inbound_nodes"] = (nodes * (n // len(nodes) + 1))[:n]
        return c

    return mutate


def _nested(path: tuple, depth: int, kind: str = "list"):
    """Replaces the value at ``path`` by JSON nested ``depth`` deep (spliced into the
    text: the json module cannot write it)."""
    marker = "@@NESTED@@"
    text = "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth

    def mutate(c: dict) -> str:
        _set(path, marker)(c)
        return json.dumps(c).replace(json.dumps(marker), text)

    return mutate


def _text(text: str):
    return lambda c: text


def _reverse_layers(c: dict) -> dict:
    c["layers"] = c["layers"][::-1]
    return c


def _tf2_calls(c: dict) -> dict:
    """tf.keras 2's form of inbound_nodes: ``[[layer, call, tensor, kwargs], ...]``."""
    for spec in c["layers"]:
        calls = []
        for node in spec["inbound_nodes"]:
            args = node["args"]
            tensors = args[0] if len(args) == 1 and isinstance(args[0], list) else args
            calls.append([[*t["config"]["keras_history"], {}] for t in tensors])
        spec["inbound_nodes"] = calls
    return c


def _tensor_metadata_lies(c: dict) -> dict:
    for spec in c["layers"]:
        for node in spec["inbound_nodes"]:
            for arg in node["args"]:
                for t in arg if isinstance(arg, list) else [arg]:
                    t["config"]["shape"] = [None, 999]
                    t["config"]["dtype"] = "int8"
    return c


def _double_until_huge(c: dict) -> dict:
    """out2 (None, 1) feeds 40 Concatenates of a tensor with itself: (None, 2**40), no
    new weights, and the second output is now 4 TiB per sample."""
    previous = "out2"
    for i in range(40):
        name = f"double{i}"
        c["layers"].append(
            {
                "class_name": "Concatenate",
                "config": {"name": name, "axis": -1},
                "name": name,
                "inbound_nodes": [
                    {"args": [[_tensor([previous, 0, 0]), _tensor([previous, 0, 0])]], "kwargs": {}}
                ],
            }
        )
        previous = name
    c["output_layers"][1] = [previous, 0, 0]
    return c


def _chain(n: int, reverse: bool = False) -> Callable[[dict], dict]:
    """A graph of ``n`` Dense(1) layers in a chain (listed last to first when
    ``reverse``), replacing the victim's."""

    def mutate(c: dict) -> dict:
        layers = [_dense_spec(f"d{i}", "x" if i == 0 else f"d{i - 1}", units=1) for i in range(n)]
        if reverse:
            layers.reverse()
        source = {
            "class_name": "InputLayer",
            "config": {"name": "x", "shape": [4]},
            "name": "x",
            "inbound_nodes": [],
        }
        return {
            "name": "chain",
            "layers": [source, *layers],
            "input_layers": [["x", 0, 0]],
            "output_layers": [[f"d{n - 1}", 0, 0]],
        }

    return mutate


REFUSE, SAME, EITHER = "refuse", "same", "either"

# name: (mutation, load_model's expected outcome, from_config's, texts a refusal names)
CASES: dict[str, tuple[Callable, str, str, tuple[str, ...]]] = {
    # --- harmless: load and predict as before -----------------------------------------
    "unchanged": (lambda c: c, SAME, SAME, ()),
    "layers listed in reverse order": (_reverse_layers, SAME, SAME, ()),
    "tf.keras 2 form of the calls": (_tf2_calls, SAME, SAME, ()),
    "tensor shape and dtype metadata lie": (_tensor_metadata_lies, SAME, SAME, ()),
    "a call's kwargs are not empty": (
        _set(("layers", SHARED, "inbound_nodes", 0, "kwargs"), {"training": True}),
        SAME,
        SAME,
        (),
    ),
    "unknown top-level key": (_set(("extra",), {"anything": [1, 2]}), SAME, SAME, ()),
    "model name changed": (_set(("name",), "another_name"), SAME, SAME, ()),
    "model name is a number": (_set(("name",), 5), SAME, SAME, ()),
    "output_names of the wrong length": (
        _set(("output_names",), ["only_one"]),
        REFUSE,
        REFUSE,
        ("output_names",),
    ),
    # --- cycles and references --------------------------------------------------------
    "cycle: shared reads out1": (_set_history(SHARED, ["out1", 0, 0]), REFUSE, REFUSE, ("cycle",)),
    "cycle: a layer reads itself": (
        _set_history(SHARED, ["shared", 1, 0], call=1),
        REFUSE,
        REFUSE,
        ("cycle",),
    ),
    "cycle: cat reads out2": (_set_history(CAT, ["out2", 0, 0], arg=1), REFUSE, REFUSE, ("cycle",)),
    "unknown layer referenced": (_set_history(OUT1, ["ghost", 0, 0]), REFUSE, REFUSE, ("ghost",)),
    "unknown call referenced": (_set_history(OUT1, ["cat", 1, 0]), REFUSE, REFUSE, ("cat",)),
    "unknown call of an InputLayer": (
        _set_history(SHARED, ["in_a", 1, 0]),
        REFUSE,
        REFUSE,
        ("in_a",),
    ),
    "unknown tensor index": (_set_history(OUT1, ["cat", 0, 1]), REFUSE, REFUSE, ("cat",)),
    "negative call index": (_set_history(OUT1, ["cat", -1, 0]), REFUSE, REFUSE, ("keras_history",)),
    "negative tensor index": (
        _set_history(OUT1, ["cat", 0, -1]),
        REFUSE,
        REFUSE,
        ("keras_history",),
    ),
    "call index 2**80": (_set_history(OUT1, ["cat", 2**80, 0]), REFUSE, REFUSE, ("cat",)),
    "tensor index 2**63": (_set_history(OUT1, ["cat", 0, 2**63]), REFUSE, REFUSE, ("cat",)),
    "call index is a string": (
        _set_history(OUT1, ["cat", "0", 0]),
        REFUSE,
        REFUSE,
        ("keras_history",),
    ),
    "call index is a float": (
        _set_history(OUT1, ["cat", 0.0, 0]),
        REFUSE,
        REFUSE,
        ("keras_history",),
    ),
    "call index is a bool": (
        _set_history(OUT1, ["cat", True, 0]),
        REFUSE,
        REFUSE,
        ("keras_history",),
    ),
    "call index is NaN": (
        _set_history(OUT1, ["cat", float("nan"), 0]),
        REFUSE,
        REFUSE,
        ("keras_history",),
    ),
    "layer name in history is a list": (
        _set_history(OUT1, [["cat"], 0, 0]),
        REFUSE,
        REFUSE,
        ("keras_history",),
    ),
    "keras_history is a dict": (_set_history(OUT1, {"cat": 0}), REFUSE, REFUSE, ("keras_history",)),
    "keras_history is null": (_set_history(OUT1, None), REFUSE, REFUSE, ("keras_history",)),
    "keras_history of 2 entries": (
        _set_history(OUT1, ["cat", 0]),
        REFUSE,
        REFUSE,
        ("keras_history",),
    ),
    "keras_history of 4 entries": (
        _set_history(OUT1, ["cat", 0, 0, 0]),
        REFUSE,
        REFUSE,
        ("keras_history",),
    ),
    "argument is not a tensor": (
        _set(("layers", OUT1, "inbound_nodes", 0, "args"), [5]),
        REFUSE,
        REFUSE,
        ("out1",),
    ),
    "argument of another class": (
        _set(("layers", OUT1, "inbound_nodes", 0, "args", 0, "class_name"), "Evil"),
        REFUSE,
        REFUSE,
        ("out1",),
    ),
    "tensor config is a list": (
        _set(("layers", OUT1, "inbound_nodes", 0, "args", 0, "config"), [1]),
        REFUSE,
        REFUSE,
        ("out1",),
    ),
    "args is a string": (
        _set(("layers", OUT1, "inbound_nodes", 0, "args"), "cat"),
        REFUSE,
        REFUSE,
        ("args",),
    ),
    "args is a dict": (
        _set(("layers", OUT1, "inbound_nodes", 0, "args"), {"0": 1}),
        REFUSE,
        REFUSE,
        ("args",),
    ),
    "args is missing": (
        _set(("layers", OUT1, "inbound_nodes", 0, "args"), _DELETE),
        REFUSE,
        REFUSE,
        ("args",),
    ),
    "args is empty": (
        _set(("layers", OUT1, "inbound_nodes", 0, "args"), []),
        REFUSE,
        REFUSE,
        ("out1",),
    ),
    "a call is a string": (
        _set(("layers", OUT1, "inbound_nodes", 0), "cat"),
        REFUSE,
        REFUSE,
        ("out1",),
    ),
    "inbound_nodes is a dict": (
        _set(("layers", OUT1, "inbound_nodes"), {"0": []}),
        REFUSE,
        REFUSE,
        ("inbound_nodes",),
    ),
    "inbound_nodes is a string": (
        _set(("layers", OUT1, "inbound_nodes"), "cat"),
        REFUSE,
        REFUSE,
        ("inbound_nodes",),
    ),
    "Dense called on two tensors": (
        _set(
            ("layers", OUT1, "inbound_nodes", 0, "args"),
            [_tensor(["cat", 0, 0]), _tensor(["cat", 0, 0])],
        ),
        REFUSE,
        REFUSE,
        ("out1",),
    ),
    # --- structure ----------------------------------------------------------------------
    "InputLayer with an inbound call": (
        _set(
            ("layers", IN_A, "inbound_nodes"), [{"args": [_tensor(["in_b", 0, 0])], "kwargs": {}}]
        ),
        REFUSE,
        REFUSE,
        ("in_a",),
    ),
    "a layer never called": (
        _add_layer(_dense_spec("orphan", "in_a", called=False)),
        REFUSE,
        REFUSE,
        ("orphan",),
    ),
    "a layer without inbound_nodes": (
        _set(("layers", OUT2, "inbound_nodes"), _DELETE),
        REFUSE,
        REFUSE,
        ("out2",),
    ),
    # A called layer the outputs do not need: from_config may drop it; the file holds
    # no weights for it.
    "an extra layer the outputs do not use": (
        _add_layer(_dense_spec("extra", "in_a")),
        REFUSE,
        EITHER,
        ("extra",),
    ),
    "duplicate layer names": (_rename(SHARED, "in_a"), REFUSE, REFUSE, ("in_a",)),
    "duplicate layer spec": (
        lambda c: {**c, "layers": [*c["layers"], c["layers"][OUT1]]},
        REFUSE,
        REFUSE,
        ("out1",),
    ),
    "spec name differs from its config's": (
        _set(("layers", SHARED, "name"), "other"),
        REFUSE,
        REFUSE,
        ("other",),
    ),
    "spec name is a list": (
        _set(("layers", SHARED, "name"), ["shared"]),
        REFUSE,
        REFUSE,
        ("shared",),
    ),
    "layer name walks up a path": (_rename(SHARED, "../shared"), REFUSE, REFUSE, ("../shared",)),
    "layer name of 100000 characters": (_rename(OUT2, "n" * 100_000), REFUSE, REFUSE, ("out2",)),
    "layer name is empty": (_rename(OUT2, ""), REFUSE, REFUSE, ("name",)),
    "missing input_layers": (_set(("input_layers",), _DELETE), REFUSE, REFUSE, ("input_layers",)),
    "missing output_layers": (
        _set(("output_layers",), _DELETE),
        REFUSE,
        REFUSE,
        ("output_layers",),
    ),
    # Neither: the loader takes it for a Sequential config (which fails on the merge).
    "missing input_layers and output_layers": (
        lambda c: {k: v for k, v in c.items() if k not in ("input_layers", "output_layers")},
        REFUSE,
        REFUSE,
        (),
    ),
    "input_layers is empty": (_set(("input_layers",), []), REFUSE, REFUSE, ("input_layers",)),
    "output_layers is empty": (_set(("output_layers",), []), REFUSE, REFUSE, ("output_layers",)),
    "output_layers is a dict": (
        _set(("output_layers",), {"a": ["out1", 0, 0]}),
        REFUSE,
        REFUSE,
        ("output_layers",),
    ),
    "output_layers is a string": (
        _set(("output_layers",), "out1"),
        REFUSE,
        REFUSE,
        ("output_layers",),
    ),
    "output_layers of 1001 tensors": (
        _set(("output_layers",), [["out1", 0, 0]] * 1001),
        REFUSE,
        REFUSE,
        ("output_layers",),
    ),
    "output_layers names an unknown call": (
        _set(("output_layers", 1), ["out2", 5, 0]),
        REFUSE,
        REFUSE,
        ("output_layers", "out2"),
    ),
    "output is an InputLayer only": (
        _set(("output_layers",), [["in_a", 0, 0]]),
        REFUSE,
        REFUSE,
        ("in_b",),
    ),
    "output is the only input": (
        lambda c: {**c, "input_layers": [["in_a", 0, 0]], "output_layers": ["in_a", 0, 0]},
        REFUSE,
        EITHER,
        ("shared",),
    ),
    "input_layers names a Dense": (
        _set(("input_layers", 0), ["shared", 0, 0]),
        REFUSE,
        REFUSE,
        ("shared",),
    ),
    "input listed twice": (
        _set(("input_layers",), [["in_a", 0, 0], ["in_a", 0, 0]]),
        REFUSE,
        REFUSE,
        ("in_a",),
    ),
    "an input left out": (_set(("input_layers",), [["in_a", 0, 0]]), REFUSE, REFUSE, ("in_b",)),
    "layers is empty": (_set(("layers",), []), REFUSE, REFUSE, ("layers",)),
    "layers is a dict": (_set(("layers",), {"in_a": {}}), REFUSE, REFUSE, ()),  # see below
    "a layer spec is a number": (_set(("layers", CAT), 7), REFUSE, REFUSE, ()),
    "the config is a list": (lambda c: [c], REFUSE, REFUSE, ("dict",)),
    "the config is null": (lambda c: None, REFUSE, REFUSE, ()),
    "the config is not JSON": (_text("{'layers': [}"), REFUSE, REFUSE, ("model_config",)),
    # --- classes and layer configs --------------------------------------------------------
    "unknown class name": (
        _set(("layers", SHARED, "class_name"), "Evil"),
        REFUSE,
        REFUSE,
        ("Evil",),
    ),
    "class name Lambda": (
        _set(("layers", SHARED, "class_name"), "Lambda"),
        REFUSE,
        REFUSE,
        ("Lambda",),
    ),
    "class name os.system": (
        _set(("layers", SHARED, "class_name"), "os.system"),
        REFUSE,
        REFUSE,
        ("os.system",),
    ),
    "class name Functional": (
        _set(("layers", OUT1, "class_name"), "Functional"),
        REFUSE,
        REFUSE,
        ("Functional",),
    ),
    "class name is a number": (
        _set(("layers", SHARED, "class_name"), 5),
        REFUSE,
        REFUSE,
        ("class",),
    ),
    "class name is a dict": (
        _set(("layers", SHARED, "class_name"), {"a": 1}),
        REFUSE,
        REFUSE,
        ("class",),
    ),
    "class name missing": (
        _set(("layers", SHARED, "class_name"), _DELETE),
        REFUSE,
        REFUSE,
        ("class",),
    ),
    "Dense turned into an InputLayer": (
        _set(("layers", SHARED, "class_name"), "InputLayer"),
        REFUSE,
        REFUSE,
        ("shape",),
    ),
    "Concatenate turned into a Dense": (
        _set(("layers", CAT, "class_name"), "Dense"),
        REFUSE,
        REFUSE,
        ("units",),
    ),
    "layer config is a list": (
        _set(("layers", SHARED, "config"), [1]),
        REFUSE,
        REFUSE,
        ("config",),
    ),
    "layer config is null": (_set(("layers", SHARED, "config"), None), REFUSE, REFUSE, ("config",)),
    "unknown layer argument": (_layer_config(SHARED, "evil", 1), REFUSE, REFUSE, ("evil",)),
    "units 2**40": (_layer_config(SHARED, "units", 2**40), REFUSE, REFUSE, ("weights",)),
    "units 2**40 on an output": (_layer_config(OUT1, "units", 2**40), REFUSE, REFUSE, ("weights",)),
    "units 0": (_layer_config(SHARED, "units", 0), REFUSE, REFUSE, ("units",)),
    "units -3": (_layer_config(SHARED, "units", -3), REFUSE, REFUSE, ("units",)),
    "units is a string": (_layer_config(SHARED, "units", "3"), REFUSE, REFUSE, ("units",)),
    "units is a float": (_layer_config(SHARED, "units", 3.5), REFUSE, REFUSE, ("units",)),
    "units is a bool": (_layer_config(SHARED, "units", True), REFUSE, REFUSE, ("units",)),
    "units is a list": (_layer_config(SHARED, "units", [3]), REFUSE, REFUSE, ("units",)),
    "units is null": (_layer_config(SHARED, "units", None), REFUSE, REFUSE, ("units",)),
    "activation os.system": (
        _layer_config(SHARED, "activation", "os.system"),
        REFUSE,
        REFUSE,
        ("os.system",),
    ),
    "input shape 2**40": (_both_input_shapes([2**40]), REFUSE, REFUSE, ("weights",)),
    "input shape 2**31 x 2**31": (_both_input_shapes([2**31, 2**31]), REFUSE, REFUSE, ("weights",)),
    "input shapes differ for the shared layer": (
        _layer_config(IN_B, "shape", [5]),
        REFUSE,
        REFUSE,
        ("shared",),
    ),
    "input shape -1": (_layer_config(IN_A, "shape", [-1]), REFUSE, REFUSE, ("shape",)),
    "input shape is a string": (_layer_config(IN_A, "shape", "4"), REFUSE, REFUSE, ("shape",)),
    "input shape holds null": (_layer_config(IN_A, "shape", [None]), REFUSE, REFUSE, ("shape",)),
    "input shape is a dict": (_layer_config(IN_A, "shape", {"0": 4}), REFUSE, REFUSE, ("shape",)),
    "concatenate axis 5": (_layer_config(CAT, "axis", 5), REFUSE, REFUSE, ("axis",)),
    "concatenate axis 2**70": (_layer_config(CAT, "axis", 2**70), REFUSE, REFUSE, ("axis",)),
    "concatenate axis is a string": (_layer_config(CAT, "axis", "x"), REFUSE, REFUSE, ("axis",)),
    # --- sizes: fan-out, calls, nesting -----------------------------------------------------
    "concatenate of 1001 tensors": (_fan_out(1001), REFUSE, REFUSE, ("cat",)),
    "concatenate of 100000 tensors": (_fan_out(100_000), REFUSE, REFUSE, ("cat", "100000")),
    "a layer called 1001 times": (_calls(SHARED, 1001), REFUSE, REFUSE, ("inbound_nodes",)),
    "keras_history nested 100000 deep": (
        _nested(
            ("layers", OUT1, "inbound_nodes", 0, "args", 0, "config", "keras_history"), 100_000
        ),
        REFUSE,
        REFUSE,
        ("model_config",),
    ),
    "keras_history nested 800 deep": (
        _nested(("layers", OUT1, "inbound_nodes", 0, "args", 0, "config", "keras_history"), 800),
        REFUSE,
        REFUSE,
        ("keras_history",),
    ),
    "output_layers nested 800 deep": (
        _nested(("output_layers",), 800),
        REFUSE,
        REFUSE,
        ("output_layers",),
    ),
    "a layer spec nested 800 deep": (_nested(("layers", CAT), 800), REFUSE, REFUSE, ()),
    "units nested 800 deep in dicts": (
        _nested(("layers", SHARED, "config", "units"), 800, "dict"),
        REFUSE,
        REFUSE,
        ("units",),
    ),
    "class name nested 800 deep": (
        _nested(("layers", SHARED, "class_name"), 800),
        REFUSE,
        REFUSE,
        (),
    ),
    "input shape nested 800 deep": (
        _nested(("layers", IN_A, "config", "shape"), 800),
        REFUSE,
        REFUSE,
        ("shape",),
    ),
    # Ignored fields may hold anything.
    "kwargs nested 800 deep": (
        _nested(("layers", OUT1, "inbound_nodes", 0, "kwargs"), 800, "dict"),
        SAME,
        SAME,
        (),
    ),
}

LARGE_CASES: dict[str, tuple[Callable, str, str, tuple[str, ...]]] = {
    "10000 layers in a chain": (_chain(9_999), REFUSE, EITHER, ("d9998",)),
    "10001 layers": (_chain(10_000), REFUSE, REFUSE, ("10000",)),
}


def _run_case(rel, env: GraphEnv, name: str, case, seconds: float = CALL_S) -> None:
    mutate, load_expect, config_expect, texts = case
    result = mutate(env.config_copy())
    text = result if isinstance(result, str) else json.dumps(result)

    path, model, error = _load(rel, env, "cases", text, seconds)
    context = f"{name}: load_model"
    if load_expect == REFUSE:
        _check_load_refused(rel, error, path, texts, context)
    elif load_expect == SAME:
        assert error is None, f"{context}: a harmless mutation was refused: {rel.describe(error)}"
        _assert_same_predictions(env, model, context)
    elif error is not None:
        _check_load_refused(rel, error, path, (), context)

    model, error, tried = _from_config(rel, "cases", text, seconds)
    if not tried:
        return
    context = f"{name}: from_config"
    if config_expect == REFUSE:
        _check_config_refused(rel, error, texts, context)
    elif config_expect == SAME:
        assert error is None, f"{context}: a harmless mutation was refused: {rel.describe(error)}"
        _same_as_victim(env, model, context)
    elif error is not None:
        _check_config_refused(rel, error, (), context)


@pytest.mark.parametrize("name", list(CASES))
def test_mutated_graph_config(rel, env, name):
    _run_case(rel, env, name, CASES[name])


@pytest.mark.parametrize("name", list(LARGE_CASES))
def test_mutated_graph_config_of_many_layers(rel, env, name):
    _run_case(rel, env, name, LARGE_CASES[name], LARGE_S)


# --------------------------------------------------------------------------------------
# What layerkit mishandles today
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["load_model", "from_config"])
def test_layers_listed_last_to_first_are_checked_quickly(rel, env, operation):
    # The same chain listed first to last: ~0.3 s to check, ~1 s to build.
    text = json.dumps(_chain(5_000, reverse=True)(env.config_copy()))
    if operation == "load_model":
        path, _, error = _load(rel, env, "layers listed last to first", text, REVERSED_S)
        _check_load_refused(rel, error, path, ("d4999",), "reversed chain: load_model")
    else:
        _, error, _ = _from_config(rel, "layers listed last to first", text, REVERSED_S)
        assert error is None, rel.describe(error)


REVERSED_S = 2.5

# The loader's first pass over the layers (checkpoint._check_against_config) asks for the
# class of each spec, and of anything that is not a dict it asks for class None.
SPEC_MESSAGE_CASES = {
    # name: (mutation, what the message should name)
    "a layer spec is a number": (_set(("layers", CAT), 7), "layers[3]"),
    "a layer spec is a list": (_set(("layers", CAT), ["Concatenate"]), "layers[3]"),
    "layers is a dict": (_set(("layers",), {"in_a": {}}), "list of layers"),
}


@pytest.mark.parametrize("name", list(SPEC_MESSAGE_CASES))
def test_layer_spec_of_the_wrong_type_is_named(rel, env, name):
    mutate, named = SPEC_MESSAGE_CASES[name]
    path, _, error = _load(rel, env, "spec messages", json.dumps(mutate(env.config_copy())))
    _check_load_refused(rel, error, path, (named,), f"{name}: load_model")


def test_graph_declaring_huge_activations_is_refused_or_predicts(rel, env):
    text = json.dumps(_double_until_huge(env.config_copy()))
    path, model, error = _load(rel, env, "huge activations", text)
    if error is not None:
        _check_load_refused(rel, error, path, (), "huge activations: load_model")
        return
    with rel.memory_guard(), deadline(LARGE_S, "predict (huge activations)"):
        _, error = rel.attempt(
            "graph configs: huge activations: predict", lambda: model.predict(env.x, verbose=0)
        )
    assert not isinstance(error, MemoryError), (
        f"load_model accepted a graph whose predict raises MemoryError: {rel.describe(error)}"
    )


NAMES_CASES = {
    # name: (key, value)
    "input_names holding numbers": ("input_names", [1, 2]),
    "output_names holding a dict and a list": ("output_names", [{}, []]),
    "input_names with a duplicate": ("input_names", ["a", "a"]),
    "output_names with a duplicate": ("output_names", ["y", "y"]),
}


@pytest.mark.parametrize("name", list(NAMES_CASES))
def test_malformed_input_or_output_names_are_refused(rel, env, name):
    key, value = NAMES_CASES[name]
    text = json.dumps(_set((key,), value)(env.config_copy()))
    path, _, error = _load(rel, env, "io names", text)
    _check_load_refused(rel, error, path, (key,), f"{name}: load_model")
    _, error, _ = _from_config(rel, "io names", text)
    _check_config_refused(rel, error, (key,), f"{name}: from_config")


# --------------------------------------------------------------------------------------
# Random mutations (seeded)
# --------------------------------------------------------------------------------------

NAMES = ["in_a", "in_b", "shared", "cat", "out1", "out2", "ghost"]
VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    7,
    2**31,
    2**40,
    2**63,
    10**30,
    0.5,
    float("nan"),
    float("inf"),
    "",
    "x",
    "../x",
    "Dense",
    "InputLayer",
    "Concatenate",
    "__keras_tensor__",
    "relu",
    [],
    {},
    [0],
    [None, 4],
    ["in_a", 0, 0],
    ["cat", 1, 0],
    {"a": 1},
    *NAMES,
]


def _nodes(value: Any, path: tuple = ()) -> Iterator[tuple]:
    """Every (container, key) in a JSON tree, the root's children first."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (value, key)
            yield from _nodes(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield (value, i)
            yield from _nodes(child, (*path, i))


def _mutate_once(rng: random.Random, config: dict) -> str:
    nodes = list(_nodes(config))
    container, key = rng.choice(nodes)
    value = container[key]
    op = rng.randrange(9)
    if op == 0:
        container[key] = copy.deepcopy(rng.choice(VALUES))
    elif op == 1:  # another part of the tree, out of place
        other, other_key = rng.choice(nodes)
        container[key] = copy.deepcopy(other[other_key])
    elif op == 2:
        del container[key]
    elif op == 3 and isinstance(container, list):
        container.insert(key, copy.deepcopy(value))
    elif op == 4 and isinstance(container, list) and len(container) > 1:
        j = rng.randrange(len(container))
        container[key], container[j] = container[j], container[key]
    elif op == 5 and isinstance(value, int) and not isinstance(value, bool):
        container[key] = rng.choice([value + 1, value - 1, -value, value * 2**32, value + 2**40])
    elif op == 6 and isinstance(value, str):
        container[key] = rng.choice(NAMES + [value + "_", value.upper()])
    elif op == 7:
        container[key] = [value]
    else:
        container[key] = {"config": value}
    return f"op {op} at {key!r}"


SEEDS = range(6)
PER_SEED = 25


@pytest.mark.parametrize("seed", SEEDS)
def test_random_mutations_of_the_graph_config(rel, env, seed):
    rng = random.Random(seed)
    for example in range(PER_SEED):
        config = env.config_copy()
        done = [_mutate_once(rng, config) for _ in range(rng.choice([1, 1, 2, 3]))]
        text = json.dumps(config)
        context = f"seed {seed} example {example} ({'; '.join(done)})"

        path, model, error = _load(rel, env, "random mutations", text)
        if error is not None:
            _check_load_refused(rel, error, path, (), f"{context}: load_model")
        else:
            _check_accepted(rel, env, model, config, f"{context}: load_model")

        model, error, _ = _from_config(rel, "random mutations", text)
        if error is not None:
            _check_config_refused(rel, error, (), f"{context}: from_config")
        else:
            assert isinstance(model, lk.Model), f"{context}: from_config returned {model!r:.100}"


def _check_accepted(rel, env: GraphEnv, model, config: dict, context: str) -> None:
    """An accepted mutation: the same graph predicts as before; another graph (a valid
    config the mutation happened to write) predicts or refuses its inputs cleanly."""
    same, error = _quiet(lambda: model.get_config() == env.config)
    assert error is None, f"{context}: the loaded model has no config: {error!r}"
    if same:
        _assert_same_predictions(env, model, context)
        return
    with rel.memory_guard(), deadline(CALL_S, f"predict ({context})"):
        _, error = rel.attempt(
            "graph configs: random mutations: predict", lambda: model.predict(env.x, verbose=0)
        )
    assert error is None or isinstance(error, (ValueError, TypeError)), (
        f"{context}: loaded, then predict raised {rel.describe(error)}"
    )


# --------------------------------------------------------------------------------------
# Layer dtypes a Dense cannot compute in
# --------------------------------------------------------------------------------------

BAD_DTYPES = ["int8", "int32", "bool", "complex64", "object", "str", "datetime64"]


@pytest.mark.parametrize("dtype", BAD_DTYPES)
def test_layer_dtype_a_dense_cannot_compute_in_is_refused(rel, env, dtype):
    text = json.dumps(_layer_config(SHARED, "dtype", dtype)(env.config_copy()))
    path, model, error = _load(rel, env, "layer dtypes", text)
    if error is not None:
        _check_load_refused(rel, error, path, ("dtype",), f"dtype {dtype}: load_model")
    else:
        _assert_same_predictions(env, model, f"dtype {dtype}: load_model")
    _, error, _ = _from_config(rel, "layer dtypes", text)
    _check_config_refused(rel, error, ("dtype",), f"dtype {dtype}: from_config")
