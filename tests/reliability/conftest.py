"""Shared helpers for the reliability suite (``tests/reliability``).

Test modules are imported with ``--import-mode=importlib`` and cannot import one another
or this file, so the helpers are handed out by the session-scoped ``rel`` fixture.

Every hostile input, mutated file and property-based example that the suite tries is
counted by category and outcome. At the end of the session the counts are written to
``<pytest basetemp>/reliability_counts.json`` (and to ``$LAYERKIT_RELIABILITY_REPORT``
when that variable names a file) and printed in the terminal summary, so that
``docs/reliability.md`` can quote them.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import re
import resource
import signal
import tempfile
import time
import traceback
import types
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis.configuration
import numpy as np
import pytest
import tf_bundle

import layerkit as lk
from layerkit.io.crc32c import crc32c, mask

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "keras"

# Hypothesis writes caches to ./.hypothesis, some of them while test modules are being
# collected; every example database is off (``database=None``) and the caches go to the
# temporary folder, so a run leaves the checkout as it found it.
hypothesis.configuration.set_hypothesis_home_dir(
    Path(tempfile.gettempdir()) / f"layerkit-reliability-hypothesis-{os.getuid()}"
)

# Exceptions a caller may be told to expect: FormatError is a ValueError, and
# FileNotFoundError, PermissionError, IsADirectoryError are OSErrors.
DOCUMENTED = (ValueError, TypeError, OSError)

# category -> outcome -> count; outcomes are "accepted", "refused:<Type>" and
# "UNEXPECTED:<Type>" (an exception type no caller is told to expect).
COUNTS: dict[str, Counter] = defaultdict(Counter)
# Per-test wall-clock limits: a Python-level hang fails the test; a hang inside C code
# (HDF5, zlib) dumps every thread's stack and ends the run instead of blocking CI.
SOFT_TIMEOUT_S = 120
HARD_TIMEOUT_S = 240


class Hang(BaseException):
    """Raised by the watchdog. A BaseException, so that no ``except OSError`` or
    ``except Exception`` in the library can swallow it and turn it into a pass."""


def _on_alarm(signum, frame):
    raise Hang(f"the test ran longer than {SOFT_TIMEOUT_S} s (a hang?)")


@pytest.fixture(autouse=True)
def _watchdog():
    use_alarm = hasattr(signal, "SIGALRM")
    if use_alarm:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(SOFT_TIMEOUT_S)
    faulthandler.dump_traceback_later(HARD_TIMEOUT_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        if use_alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------


def record(category: str, outcome: str, n: int = 1) -> None:
    COUNTS[category][outcome] += n


def outcome_of(error: BaseException | None) -> str:
    if error is None:
        return "accepted"
    if isinstance(error, DOCUMENTED):
        return f"refused:{type(error).__name__}"
    return f"UNEXPECTED:{type(error).__name__}"


def _origin(error: BaseException) -> str:
    """Where ``error`` was raised, and the innermost layerkit line on the way."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    text = f"{Path(last.filename).name}:{last.lineno} in {last.name}"
    ours = [f for f in frames if f"{os.sep}layerkit{os.sep}" in f.filename]
    if ours and ours[-1] is not last:
        f = ours[-1]
        text += f", via layerkit/{f.filename.split(os.sep + 'layerkit' + os.sep, 1)[1]}"
        text += f":{f.lineno} in {f.name}"
    return text


def describe(error: BaseException | None) -> str:
    if error is None:
        return "no error"
    origin = getattr(error, "_reliability_origin", "?")
    return f"{type(error).__name__}: {str(error)[:300]} [raised at {origin}]"


def attempt(category: str, call: Callable[[], Any]) -> tuple[Any, Exception | None]:
    """Runs ``call``; returns ``(result, None)`` or ``(None, error)`` and counts the
    outcome under ``category``.

    Warnings are silenced here (the numerics tests check warnings themselves). The
    error's traceback is dropped after its origin is noted (``describe``), so that no
    frame keeps an HDF5 object, and hence its file, open into the next example."""
    error = None
    result = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = call()
        except Exception as exc:
            error = exc
    if error is not None:
        error._reliability_origin = _origin(error)
        error.__traceback__ = None
    record(category, outcome_of(error))
    return result, error


def _summary() -> dict[str, Any]:
    categories = {k: dict(sorted(v.items())) for k, v in sorted(COUNTS.items())}
    totals = {k: sum(v.values()) for k, v in categories.items()}
    unexpected = {
        k: {o: n for o, n in v.items() if o.startswith("UNEXPECTED")}
        for k, v in categories.items()
        if any(o.startswith("UNEXPECTED") for o in v)
    }
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "total_examples": sum(totals.values()),
        "per_category_totals": totals,
        "per_category_outcomes": categories,
        "unexpected_exception_types": unexpected,
    }


@pytest.fixture(scope="session", autouse=True)
def _write_counts(tmp_path_factory):
    yield
    if not COUNTS:
        return
    text = json.dumps(_summary(), indent=2)
    (tmp_path_factory.getbasetemp() / "reliability_counts.json").write_text(text)
    target = os.environ.get("LAYERKIT_RELIABILITY_REPORT")
    if target:
        Path(target).write_text(text)


def pytest_terminal_summary(terminalreporter):
    if not COUNTS:
        return
    summary = _summary()
    terminalreporter.write_sep("-", "reliability: examples tried per category")
    for category, total in summary["per_category_totals"].items():
        outcomes = ", ".join(
            f"{o}={n}" for o, n in summary["per_category_outcomes"][category].items()
        )
        terminalreporter.write_line(f"{category:<40} {total:>6}  ({outcomes})")
    terminalreporter.write_line(f"{'total':<40} {summary['total_examples']:>6}")


# --------------------------------------------------------------------------------------
# Models and their state
# --------------------------------------------------------------------------------------


def small_model(
    loss: str = "mse", built: bool = True, trained: bool = True, seed: int = 0
) -> lk.Sequential:
    """Input 4 -> Dense 3 "hidden1" -> Dense k "out", compiled with Adam and, when
    ``trained``, one optimizer step taken (so the optimizer has slots and iterations)."""
    outputs = {
        "mse": (2, None),
        "mae": (2, None),
        "binary_crossentropy": (1, "sigmoid"),
        "categorical_crossentropy": (3, "softmax"),
        "sparse_categorical_crossentropy": (3, "softmax"),
    }[loss]
    lk.utils.set_random_seed(seed)
    layers = [lk.layers.Input((4,))] if built else []
    layers += [
        lk.layers.Dense(3, activation="relu", name="hidden1"),
        lk.layers.Dense(outputs[0], activation=outputs[1], name="out"),
    ]
    model = lk.Sequential(layers, name="victim")
    model.compile(optimizer=lk.optim.Adam(learning_rate=0.01), loss=loss)
    if trained and built:
        x = np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4)
        model.train_on_batch(x, valid_targets(loss, 4))
    return model


def valid_targets(loss: str, n: int) -> np.ndarray:
    if loss in ("mse", "mae"):
        return np.linspace(-1, 1, 2 * n, dtype=np.float32).reshape(n, 2)
    if loss == "binary_crossentropy":
        return (np.arange(n) % 2).astype(np.float32).reshape(n, 1)
    if loss == "categorical_crossentropy":
        return np.eye(3, dtype=np.float32)[np.arange(n) % 3]
    return np.arange(n) % 3


def default_names_model() -> lk.Sequential:
    """The architecture of the ``default_names`` Keras fixtures (20-16-8-3)."""
    lk.utils.set_random_seed(1)
    model = lk.Sequential(
        [
            lk.layers.Input((20,)),
            lk.layers.Dense(16, activation="sigmoid", name="dense"),
            lk.layers.Dense(8, activation="relu", name="dense_1"),
            lk.layers.Dense(3, activation="softmax", name="dense_2"),
        ],
        name="default_names",
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def mlp_model() -> lk.Sequential:
    """The architecture of the ``seed_mlp``/``tfkeras2_mlp``/``tf1_mlp`` fixtures."""
    lk.utils.set_random_seed(2)
    layers: list = [lk.layers.Input((784,))]
    layers.append(lk.layers.Dense(300, activation="relu", name="hidden1"))
    layers += [lk.layers.Dense(50, activation="relu", name=f"hidden{i}") for i in range(2, 6)]
    layers.append(lk.layers.Dense(10, name="outputs"))
    model = lk.Sequential(layers, name="mlp")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def snapshot(model: lk.Sequential) -> dict[str, Any]:
    """Everything a failed call must leave as it was."""
    optimizer = model.optimizer
    state = optimizer.state_dict() if optimizer is not None else None
    return {
        "built": model.built,
        "input_shape": model.input_shape,
        "output_shape": model.output_shape,
        "layers": [(layer.name, layer.built, layer.trainable) for layer in model._layers],
        "weights": [w.copy() for w in model.get_weights()] if model.built else [],
        "weight_names": [p.name for p in model.weights],
        "iterations": None if optimizer is None else optimizer.iterations,
        "slots": None
        if state is None
        else {n: {s: a.copy() for s, a in d.items()} for n, d in state["slots"].items()},
        "epochs_done": model._epochs_done,
        "compiled": model.compiled,
    }


def assert_unchanged(model: lk.Sequential, before: dict[str, Any], context: str = "") -> None:
    after = snapshot(model)
    where = f" after {context}" if context else ""
    for key in ("built", "input_shape", "output_shape", "layers", "weight_names"):
        assert after[key] == before[key], (
            f"model {key} changed{where}: {before[key]} -> {after[key]}"
        )
    assert after["iterations"] == before["iterations"], f"optimizer.iterations changed{where}"
    assert after["epochs_done"] == before["epochs_done"], f"epochs done changed{where}"
    assert after["compiled"] == before["compiled"], f"compiled flag changed{where}"
    assert len(after["weights"]) == len(before["weights"])
    for name, a, b in zip(before["weight_names"], after["weights"], before["weights"]):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), f"weight {name} reshaped{where}"
        assert np.array_equal(a, b, equal_nan=True), f"weight {name} changed{where}"
    if before["slots"] is not None:
        assert sorted(after["slots"]) == sorted(before["slots"]), f"optimizer slots changed{where}"
        for name, slots in before["slots"].items():
            for slot, value in slots.items():
                assert np.array_equal(after["slots"][name][slot], value, equal_nan=True), (
                    f"optimizer slot {name}/{slot} changed{where}"
                )


# --------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------


def names_argument(message: str, *arguments: str) -> bool:
    """Whether ``message`` names one of ``arguments`` as a word (``x``, ``x.shape``,
    ``x=``, ``validation_data[1]``), not as part of another word."""
    for argument in arguments:
        pattern = rf"(?<![A-Za-z0-9_]){re.escape(argument)}(?![A-Za-z0-9_])"
        if re.search(pattern, message):
            return True
    return False


def assert_refusal(
    error: BaseException | None,
    *,
    arguments: tuple[str, ...] = (),
    texts: tuple[str, ...] = (),
    context: str = "",
) -> None:
    """``error`` is a documented exception whose message names one of ``arguments``
    (as a word) and contains every one of ``texts`` (file paths, object names)."""
    prefix = f"{context}: " if context else ""
    assert error is not None, f"{prefix}expected a refusal, the call succeeded"
    assert isinstance(error, DOCUMENTED), (
        f"{prefix}undocumented exception type (expected ValueError, TypeError or OSError): "
        f"{describe(error)}"
    )
    message = str(error)
    if arguments:
        assert names_argument(message, *arguments), (
            f"{prefix}the message does not name the argument {' or '.join(arguments)}: "
            f"{describe(error)}"
        )
    for text in texts:
        assert text in message, f"{prefix}the message does not mention {text!r}: {describe(error)}"


# --------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Resets the process's peak resident size (Linux >= 4.0); False if it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


@contextlib.contextmanager
def memory_guard(extra_bytes: int = 512 << 20) -> Iterator[dict[str, int]]:
    """Caps the address space at its current size plus ``extra_bytes``, so that a
    reader trying to allocate gigabytes fails at once instead of filling the machine,
    and measures how much the resident memory grew at its peak inside the block
    (``stats["peak"]``, bytes; 0 where /proc cannot tell).

    Resident memory, not tracemalloc: numpy reports even allocations that fail to
    tracemalloc, and a lazily allocated, never touched array costs nothing."""
    stats: dict[str, int] = {"peak": 0}
    limit_set = False
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if os.path.exists("/proc/self/statm"):
        wanted = _address_space() + extra_bytes
        if hard == resource.RLIM_INFINITY or wanted < hard:
            resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
            limit_set = True
    measured = _reset_peak_rss()
    baseline = _status_kib("VmRSS") if measured else None
    try:
        yield stats
    finally:
        if limit_set:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        if baseline is not None:
            stats["peak"] = max(0, (_status_kib("VmHWM") or 0) - baseline) * 1024


# --------------------------------------------------------------------------------------
# The fixture
# --------------------------------------------------------------------------------------


class _Helpers(types.SimpleNamespace):
    def __repr__(self) -> str:  # keeps hypothesis's falsifying-example reports short
        return "rel"


@pytest.fixture(scope="session")
def rel() -> types.SimpleNamespace:
    """Helpers shared by the reliability tests."""
    return _Helpers(
        FIXTURES=FIXTURES,
        DOCUMENTED=DOCUMENTED,
        record=record,
        attempt=attempt,
        describe=describe,
        outcome_of=outcome_of,
        small_model=small_model,
        valid_targets=valid_targets,
        default_names_model=default_names_model,
        mlp_model=mlp_model,
        snapshot=snapshot,
        assert_unchanged=assert_unchanged,
        names_argument=names_argument,
        assert_refusal=assert_refusal,
        memory_guard=memory_guard,
        bundle_entry=tf_bundle.bundle_entry,
        write_tf1_checkpoint=lambda prefix, variables, overrides: tf_bundle.write_checkpoint(
            prefix, variables, overrides=overrides
        ),
        mask=mask,
        crc32c=crc32c,
    )
