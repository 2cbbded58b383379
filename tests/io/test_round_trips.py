"""Checkpoint round trips (issue 19): every optimizer and every option that changes its
state, through every way of saving and resuming, bit-exact.

The matrix (``test_matrix_*``) has three axes:

- **optimizer variant**, derived, never listed: every class of
  ``lk.optim.registered_optimizers()`` with its defaults, then one variant per entry of
  ``OPTION_VALUES`` that its constructor (or a base class it forwards ``**kwargs`` to)
  accepts, then ``schedule`` (an ``ExponentialDecay`` learning rate) and ``lr_callback``
  (a callback halves ``optimizer.learning_rate`` at the end of epoch 0). A newly
  registered optimizer, or a new option in the table, joins the matrix by itself.
- **model state**: ``untrained`` (built and compiled), ``trained`` (2 epochs, with
  Dropout so the layer RNG is exercised), ``frozen`` (``hidden1`` frozen, then trained),
  ``uncompiled`` (built, never compiled; compiled with the variant after loading).
- **route**: ``model.save`` + ``lk.load_model`` as ``.h5`` and as ``.keras``;
  ``ModelCheckpoint``; ``BackupAndRestore`` after a kill at an epoch end and after a kill
  mid-epoch (``save_freq`` in batches); ``lk.io.save_keras`` + ``lk.io.load_keras``.

Every cell asserts bit-equal weights (``np.array_equal``), optimizer state and RNG states
after loading, then runs one more epoch on both models (the original continuing and the
restored one) and asserts the same again. ``save_keras`` carries weights only: after the
load both models are compiled with fresh identical optimizers and trained one epoch
without shuffling (neither the shuffling nor the Dropout RNG travels in a Keras file, so
those cells use a model without Dropout).

A kill is simulated by a callback raising :class:`Killed`; the run is then started again
on a fresh model built the same way, with the same ``BackupAndRestore`` folder and the
same arguments, and must end bit-equal to an uninterrupted run.

``test_case*`` are the focused scenarios of the issue's bug list (case 7 is elsewhere).
Real Keras 3 (PyTorch backend) is imported once, in-process, by the ``keras`` fixture,
and only in the few cells that need it.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import layerkit as lk
from layerkit.io.checkpoint import is_layerkit_checkpoint

SEED = 3
N_SAMPLES, BATCH = 30, 8
STEPS = 4  # ceil(30 / 8): the last batch has 6 samples
LR = 0.05
TRAIN_EPOCHS = 2  # the "trained" and "frozen" states
BACKUP_EPOCHS = 3  # the BackupAndRestore runs
KILL_EPOCH = 1  # the epoch kill: at the end of epoch 1, after its backup
# The mid-epoch kill: a backup every 3 batches (3 does not divide the 4 steps of an
# epoch), so backups follow global batches 3, 6, 9...; the kill follows epoch 1 batch 2,
# the 7th batch, one batch after the last backup: the resume starts mid-epoch.
BACKUP_EVERY = 3
KILL_BATCH = (1, 2)
LAYER_NAMES = ["hidden1", "drop", "hidden2", "out"]

# Option values that change an optimizer's state or update, applied to every registered
# optimizer whose constructor accepts the parameter. Clipping thresholds are small
# enough to clip the gradients of this model (test_matrix_option_is_exercised checks
# that every option changes something).
OPTION_VALUES: dict[str, Any] = {
    "momentum": 0.9,
    "nesterov": True,
    "centered": True,
    "amsgrad": True,
    "use_ema": True,
    "ema_overwrite_frequency": 2,
    "weight_decay": 0.004,
    "gradient_accumulation_steps": 2,
    "clipvalue": 0.02,
    "clipnorm": 0.05,
    "global_clipnorm": 0.05,
}
# Options that only act together with another one.
OPTION_REQUIRES: dict[str, dict[str, Any]] = {
    "nesterov": {"momentum": 0.9},
    "ema_overwrite_frequency": {"use_ema": True},
}


# --- data and models -------------------------------------------------------------------
def make_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N_SAMPLES, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 2] > 0).astype(np.int64)
    return x, y


X, Y = make_data()


def build(
    seed: int = SEED,
    *,
    dropout: bool = True,
    frozen: bool = False,
    change: str | None = None,
    input_name: str | None = "inputs",
) -> lk.Sequential:
    """The model of every cell, every layer named (a fresh model built the same way has
    the same names); ``change`` alters the architecture (case 3)."""
    lk.utils.set_random_seed(seed)
    Dense = lk.layers.Dense
    layers = [lk.layers.Input((4,), name=input_name), Dense(4, activation="relu", name="hidden1")]
    if dropout and change != "dropout_removed":
        layers.append(lk.layers.Dropout(0.25, name="drop"))
    if change == "widened_layer":
        layers.append(Dense(5, activation="relu", name="hidden2"))
    elif change == "renamed_layer":
        layers.append(Dense(3, activation="relu", name="hidden2b"))
    elif change != "removed_layer":
        layers.append(Dense(3, activation="relu", name="hidden2"))
    if change == "added_layer":
        layers.append(Dense(3, activation="relu", name="extra"))
    layers.append(Dense(2, name="out"))
    model = lk.Sequential(layers, name="roundtrip")
    if frozen:
        model.freeze("hidden1")
    return model


def loss():
    return lk.losses.SparseCategoricalCrossentropy(from_logits=True)


def fit(model, epochs: int = 1, callbacks=(), shuffle: bool = True):
    return model.fit(
        X,
        Y,
        batch_size=BATCH,
        epochs=epochs,
        verbose=0,
        shuffle=shuffle,
        callbacks=list(callbacks),
    )


# --- callbacks ------------------------------------------------------------------------
class Killed(Exception):
    """A simulated kill of the training process."""


class KillAt(lk.callbacks.Callback):
    """Raises Killed at the end of ``epoch`` or, with ``batch``, at the end of that batch
    of that epoch. Put it after BackupAndRestore: the backup of that moment is written."""

    def __init__(self, epoch: int, batch: int | None = None):
        super().__init__()
        self.epoch, self.batch, self._epoch = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.batch is not None and (self._epoch, batch) == (self.epoch, self.batch):
            raise Killed(f"killed after epoch {self.epoch} batch {self.batch}")

    def on_epoch_end(self, epoch, logs=None):
        if self.batch is None and epoch == self.epoch:
            raise Killed(f"killed at the end of epoch {epoch}")


class BatchLog(lk.callbacks.Callback):
    """Records (epoch, batch) for every batch trained, and the learning rate at the start
    of each epoch."""

    def __init__(self):
        super().__init__()
        self.batches: list[tuple] = []
        self.epoch_lr: list[tuple[int, float]] = []
        self._epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self.epoch_lr.append((epoch, float(self.model.optimizer.learning_rate)))

    def on_train_batch_begin(self, batch, logs=None):
        self.batches.append((self._epoch, batch))


class HalveLearningRate(lk.callbacks.Callback):
    """Sets ``optimizer.learning_rate`` to half its value at the end of epoch 0."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            optimizer = self.model.optimizer
            optimizer.learning_rate = optimizer.learning_rate * 0.5


class EpochWeights(lk.callbacks.Callback):
    """Copies of the weights at each epoch end (or, with ``per_batch``, each batch end)."""

    def __init__(self, per_batch: bool = False):
        super().__init__()
        self.per_batch = per_batch
        self.snapshots: list[dict[str, np.ndarray]] = []

    def _take(self):
        self.snapshots.append({p.name: p.value.copy() for p in self.model.weights})

    def on_epoch_end(self, epoch, logs=None):
        if not self.per_batch:
            self._take()

    def on_train_batch_end(self, batch, logs=None):
        if self.per_batch:
            self._take()


# --- the optimizer variants, derived from the registry ---------------------------------
def registered_optimizers() -> dict[str, type]:
    registry = getattr(lk.optim, "registered_optimizers", None)
    return dict(registry()) if registry is not None else dict(lk.optim._BY_NAME)


def constructor_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """Keyword parameters of ``cls(...)``, following ``**kwargs`` up the base classes."""
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        for p in parameters:
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                found.setdefault(p.name, p)
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return found


@dataclasses.dataclass(frozen=True)
class Variant:
    registered_name: str
    cls: type
    option: str  # "default", an OPTION_VALUES key, "schedule" or "lr_callback"
    kwargs: tuple = ()

    @property
    def id(self) -> str:
        return f"{self.registered_name}-{self.option}"

    def make(self):
        if self.option == "schedule":
            lr = lk.optim.schedules.ExponentialDecay(LR, decay_steps=3, decay_rate=0.5)
        else:
            lr = LR
        return self.cls(learning_rate=lr, **dict(self.kwargs))

    def callbacks(self) -> list:
        return [HalveLearningRate()] if self.option == "lr_callback" else []

    def compile(self, model) -> None:
        model.compile(optimizer=self.make(), loss=loss(), metrics=["accuracy"])


def optimizer_variants() -> list[Variant]:
    variants, seen = [], set()
    for name, cls in registered_optimizers().items():
        if cls in seen:  # an alias
            continue
        seen.add(cls)
        parameters = constructor_parameters(cls)
        assert "learning_rate" in parameters, f"{cls.__name__} takes no learning_rate"
        variants.append(Variant(name, cls, "default"))
        for option, value in OPTION_VALUES.items():
            parameter = parameters.get(option)
            if parameter is None:
                continue
            if parameter.default is not inspect.Parameter.empty and parameter.default == value:
                continue  # the default already: nothing new
            kwargs = {k: v for k, v in OPTION_REQUIRES.get(option, {}).items() if k in parameters}
            kwargs[option] = value
            variants.append(Variant(name, cls, option, tuple(sorted(kwargs.items()))))
        variants.append(Variant(name, cls, "schedule"))
        variants.append(Variant(name, cls, "lr_callback"))
    return variants


VARIANTS = optimizer_variants()
DEFAULT_VARIANT = {v.cls: v for v in VARIANTS if v.option == "default"}
STATES = ("untrained", "trained", "frozen", "uncompiled")
TRAINED_STATES = ("trained", "frozen")


def cells(states, *, with_lr_callback: bool = True, routes=(None,)) -> list:
    params = []
    for route in routes:
        for state in states:
            for variant in VARIANTS:
                if variant.option == "lr_callback" and (
                    not with_lr_callback or state not in TRAINED_STATES
                ):
                    continue  # the callback acts during training, on the compiled optimizer
                parts = [route, state, variant.id] if route else [state, variant.id]
                args = (route, state, variant) if route else (state, variant)
                params.append(pytest.param(*args, id="-".join(parts)))
    return params


def prepared(state: str, variant: Variant, *, dropout: bool = True, callbacks=()) -> lk.Sequential:
    """A model in ``state``: compiled with ``variant`` unless uncompiled, trained
    ``TRAIN_EPOCHS`` epochs (with the variant's callbacks, then ``callbacks``) if trained."""
    model = build(dropout=dropout, frozen=state == "frozen")
    if state != "uncompiled":
        variant.compile(model)
    if state in TRAINED_STATES:
        fit(model, TRAIN_EPOCHS, [*variant.callbacks(), *callbacks])
    return model


# --- comparisons with precise messages -------------------------------------------------
def describe_difference(expected: np.ndarray, got: np.ndarray) -> str:
    if expected.shape != got.shape:
        return f"shape {got.shape}, expected {expected.shape}"
    if expected.dtype != got.dtype:
        return f"dtype {got.dtype}, expected {expected.dtype}"
    unequal = expected != got
    first = np.unravel_index(np.argmax(unequal), expected.shape) if expected.ndim else ()
    largest = float(np.max(np.abs(expected.astype(np.float64) - got.astype(np.float64))))
    return (
        f"{int(unequal.sum())} of {expected.size} elements differ, max |diff| {largest:.3g}; "
        f"at index {tuple(int(i) for i in first)}: expected {expected[first]!r}, "
        f"got {got[first]!r}"
    )


def assert_same_tree(expected, got, where: str) -> None:
    """Nested dicts / lists of arrays and scalars, compared exactly."""
    if isinstance(expected, dict):
        assert isinstance(got, dict), f"{where}: expected a dict, got {type(got).__name__}"
        missing = sorted(map(str, set(expected) - set(got)))
        extra = sorted(map(str, set(got) - set(expected)))
        assert not missing, f"{where}: missing keys {missing} (extra keys {extra})"
        assert not extra, f"{where}: extra keys {extra}"
        for key in expected:
            assert_same_tree(expected[key], got[key], f"{where}/{key}")
    elif isinstance(expected, (list, tuple)) and not isinstance(got, np.ndarray):
        assert isinstance(got, (list, tuple)), f"{where}: expected a list, got {got!r:.200}"
        assert len(got) == len(expected), (
            f"{where}: expected {len(expected)} items, got {got!r:.200}"
        )
        for i, (a, b) in enumerate(zip(expected, got, strict=True)):
            assert_same_tree(a, b, f"{where}[{i}]")
    elif isinstance(expected, np.ndarray) or isinstance(got, np.ndarray):
        a, b = np.asarray(expected), np.asarray(got)
        same = a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)
        assert same, f"{where} is not bit-equal: {describe_difference(a, b)}"
    else:
        assert expected == got, f"{where}: expected {expected!r}, got {got!r}"


def trees_equal(expected, got) -> bool:
    try:
        assert_same_tree(expected, got, "")
    except AssertionError:
        return False
    return True


def assert_same_weights(expected, got, stage: str) -> None:
    layers_e = [(layer.name, layer.trainable) for layer in expected.layers]
    layers_g = [(layer.name, layer.trainable) for layer in got.layers]
    assert layers_g == layers_e, (
        f"{stage}: layers (name, trainable) are {layers_g}, expected {layers_e}"
    )
    e = {p.name: p.value for p in expected.weights}
    g = {p.name: p.value for p in got.weights}
    assert list(g) == list(e), f"{stage}: weights are {list(g)}, expected {list(e)}"
    for name, value in e.items():
        same = value.dtype == g[name].dtype and np.array_equal(value, g[name])
        assert same, (
            f"{stage}: weight {name!r} is not bit-equal: {describe_difference(value, g[name])}"
        )


def assert_same_optimizer(expected, got, stage: str) -> None:
    oe, og = expected.optimizer, got.optimizer
    if oe is None:
        assert og is None, f"{stage}: the model should be uncompiled, it has {og!r}"
        return
    assert og is not None, (
        f"{stage}: the restored model has no optimizer; the original has {type(oe).__name__}"
    )
    assert type(og) is type(oe), (
        f"{stage}: optimizer {type(og).__name__}, expected {type(oe).__name__}"
    )
    config_e, config_g = oe.get_config(), og.get_config()
    differing = {
        k: (config_e.get(k), config_g.get(k))
        for k in set(config_e) | set(config_g)
        if config_e.get(k) != config_g.get(k)
    }
    assert not differing, (
        f"{stage}: optimizer config differs as {{key: (expected, got)}}: {differing}"
    )
    assert og.iterations == oe.iterations, (
        f"{stage}: optimizer iterations {og.iterations}, expected {oe.iterations}"
    )
    assert og.learning_rate == oe.learning_rate, (
        f"{stage}: learning rate {og.learning_rate!r}, expected {oe.learning_rate!r}"
    )
    assert_same_tree(oe.state_dict(), og.state_dict(), f"{stage}: optimizer state_dict()")


def assert_same_rng(expected, got, stage: str) -> None:
    for le, lg in zip(expected.layers, got.layers, strict=True):
        assert lg.training_state() == le.training_state(), (
            f"{stage}: layer {le.name!r} training state (its RNG) differs from the original's"
        )
    shuffle_e = expected.training_position()["shuffle_rng"]
    shuffle_g = got.training_position()["shuffle_rng"]
    assert shuffle_g == shuffle_e, f"{stage}: the shuffling generator's state differs"


def assert_same_state(expected, got, stage: str, *, optimizer=True, rng=True) -> None:
    assert_same_weights(expected, got, stage)
    if optimizer:
        assert_same_optimizer(expected, got, stage)
    if rng:
        assert_same_rng(expected, got, stage)


def load_or_fail(path, what: str):
    try:
        return lk.load_model(path)
    except Exception as error:
        pytest.fail(
            f"lk.load_model({Path(path).name}) refused a file layerkit itself wrote "
            f"({what}): {type(error).__name__}: {error}"
        )


# --- real Keras, imported once --------------------------------------------------------
def keras_twin(keras, dropout: bool = True):
    """A Keras model with the same layers as :func:`build`."""
    layers = [keras.Input((4,)), keras.layers.Dense(4, activation="relu", name="hidden1")]
    if dropout:
        layers.append(keras.layers.Dropout(0.25, name="drop"))
    layers += [
        keras.layers.Dense(3, activation="relu", name="hidden2"),
        keras.layers.Dense(2, name="out"),
    ]
    return keras.Sequential(layers, name="roundtrip")


def assert_keras_predicts_like(keras_model, model, what: str) -> None:
    np.testing.assert_allclose(
        np.asarray(keras_model.predict(X, verbose=0)),
        model.predict(X),
        rtol=1e-5,
        atol=1e-6,
        err_msg=f"Keras and layerkit predict different numbers for {what}",
    )


# ======================================================================================
# The matrix
# ======================================================================================
KERAS_CHECKED_OPTIONS = ("default", "schedule")  # real Keras opens these .keras files


@pytest.mark.parametrize(("route", "state", "variant"), cells(STATES, routes=(".h5", ".keras")))
def test_matrix_save_and_load_model(tmp_path, request, route, state, variant):
    model = prepared(state, variant)
    path = model.save(tmp_path / f"model{route}")
    what = f"model.save({route}) of a {state} model, optimizer {variant.id}"
    if route == ".keras" and state == "trained" and variant.option in KERAS_CHECKED_OPTIONS:
        keras = request.getfixturevalue("keras")
        assert zipfile.is_zipfile(path), f"{what}: not a zip archive, so not a Keras 3 file"
        assert_keras_predicts_like(keras.models.load_model(path), model, what)
    loaded = load_or_fail(path, what)
    assert_same_state(model, loaded, f"after lk.load_model({route})")
    if state == "uncompiled":
        variant.compile(model)
        variant.compile(loaded)
    fit(model)
    fit(loaded)
    assert_same_state(model, loaded, f"after one more epoch on both ({route})")


@pytest.mark.parametrize(("state", "variant"), cells(TRAINED_STATES))
def test_matrix_model_checkpoint(tmp_path, state, variant):
    recorder = EpochWeights()
    checkpoint = lk.callbacks.ModelCheckpoint(str(tmp_path / "ckpt-{epoch}.h5"))
    model = prepared(state, variant, callbacks=[checkpoint, recorder])
    names = sorted(n for n in os.listdir(tmp_path) if n.endswith(".h5"))
    assert names == ["ckpt-1.h5", "ckpt-2.h5"], f"ModelCheckpoint wrote {names}"
    what = f"ModelCheckpoint of a {state} model, optimizer {variant.id}"
    first = load_or_fail(tmp_path / "ckpt-1.h5", what)
    for name, value in recorder.snapshots[0].items():
        got = {p.name: p.value for p in first.weights}[name]
        assert np.array_equal(got, value), (
            f"ckpt-1.h5 does not hold the weights of the end of epoch 1: {name!r}: "
            f"{describe_difference(value, got)}"
        )
    loaded = load_or_fail(tmp_path / "ckpt-2.h5", what)
    if model.optimizer.use_ema:
        # As Keras: the last epoch's checkpoint is written before fit ends and the
        # weights become their moving average; it holds the epoch's own weights.
        for name, value in recorder.snapshots[1].items():
            got = {p.name: p.value for p in loaded.weights}[name]
            assert np.array_equal(got, value), (
                f"ckpt-2.h5: {name!r}: {describe_difference(value, got)}"
            )
        return
    assert_same_state(model, loaded, "ckpt-2.h5 loaded, against the model at the end of fit")
    fit(model)
    fit(loaded)
    assert_same_state(model, loaded, "after one more epoch on both (ModelCheckpoint)")


def _backup_run(backup_dir: Path, state: str, variant: Variant, kill: str, extra=()):
    model = build(frozen=state == "frozen")
    variant.compile(model)
    if kill == "mid_epoch":
        backup = lk.callbacks.BackupAndRestore(backup_dir, save_freq=BACKUP_EVERY)
    else:
        backup = lk.callbacks.BackupAndRestore(backup_dir)
    fit(model, BACKUP_EPOCHS, [*variant.callbacks(), backup, *extra])
    return model


EXPECTED_RESUMED_BATCHES = {
    # Killed at the end of epoch 1: the resumed fit trains epoch 2 only.
    "epoch_end": [(2, b) for b in range(STEPS)],
    # Killed after epoch 1 batch 2, last backup after epoch 1 batch 1 (global batch 6).
    "mid_epoch": [(1, b) for b in range(2, STEPS)] + [(2, b) for b in range(STEPS)],
}


@pytest.mark.parametrize(
    ("route", "state", "variant"), cells(TRAINED_STATES, routes=("epoch_end", "mid_epoch"))
)
def test_matrix_backup_and_restore_after_kill(tmp_path, route, state, variant):
    reference = _backup_run(tmp_path / "reference", state, variant, route)
    kill = KillAt(*KILL_BATCH) if route == "mid_epoch" else KillAt(KILL_EPOCH)
    with pytest.raises(Killed):
        _backup_run(tmp_path / "backup", state, variant, route, [kill])
    log = BatchLog()
    try:
        resumed = _backup_run(tmp_path / "backup", state, variant, route, [log])
    except Exception as error:
        pytest.fail(
            f"the resumed fit (kill at {route}, {state}, {variant.id}) failed: "
            f"{type(error).__name__}: {error}"
        )
    expected = EXPECTED_RESUMED_BATCHES[route]
    assert log.batches == expected, (
        f"the resumed fit trained (epoch, batch) {log.batches}; expected {expected}, "
        "the batches after the last backup"
    )
    assert_same_state(reference, resumed, f"after resuming from a kill at {route}")
    fit(reference)
    fit(resumed)
    assert_same_state(reference, resumed, "after one more epoch on both (BackupAndRestore)")


@pytest.mark.parametrize(("state", "variant"), cells(STATES, with_lr_callback=False))
def test_matrix_save_keras_and_load_keras(tmp_path, state, variant):
    model = prepared(state, variant, dropout=False)
    loaded = lk.io.load_keras(lk.io.save_keras(model, tmp_path / "model.keras"))
    assert_same_weights(model, loaded, "after lk.io.save_keras + lk.io.load_keras")
    variant.compile(model)
    variant.compile(loaded)
    fit(model, shuffle=False)
    fit(loaded, shuffle=False)
    assert_same_state(
        model, loaded, "after compiling both afresh and one more epoch (save_keras)", rng=False
    )


@pytest.mark.parametrize(
    "variant", [pytest.param(v, id=v.id) for v in VARIANTS if v.option != "default"]
)
def test_matrix_option_is_exercised(variant):
    """Each variant trains differently from its optimizer's defaults (weights or state),
    so that the matrix really tests the option."""
    base = prepared("trained", DEFAULT_VARIANT[variant.cls])
    other = prepared("trained", variant)
    same_weights = all(
        np.array_equal(a, b) for a, b in zip(base.get_weights(), other.get_weights(), strict=True)
    )
    same_state = trees_equal(base.optimizer.state_dict(), other.optimizer.state_dict())
    assert not (same_weights and same_state), (
        f"{variant.id}: training with {dict(variant.kwargs) or variant.option} gives the same "
        "weights and optimizer state as the defaults: the option is inert in this matrix "
        "(adjust OPTION_VALUES)"
    )


# ======================================================================================
# The cases, one focused test each
# ======================================================================================
def _plain_sgd(state: str) -> lk.Sequential:
    model = build(frozen=state == "frozen")
    optimizer = lk.optim.SGD(clipvalue=0.5) if state == "clipvalue" else "sgd"
    model.compile(optimizer=optimizer, loss=loss(), metrics=["accuracy"])
    if state != "untrained":
        fit(model, TRAIN_EPOCHS)
    return model


@pytest.mark.parametrize("state", ["trained", "clipvalue", "untrained", "frozen"])
def test_case1_plain_sgd_load_model(tmp_path, state):
    model = _plain_sgd(state)
    loaded = load_or_fail(model.save(tmp_path / "b.h5"), f"compile(optimizer='sgd'), {state}")
    assert_same_state(model, loaded, "plain SGD after lk.load_model")
    fit(model)
    fit(loaded)
    assert_same_state(model, loaded, "plain SGD after one more epoch on both")


def test_case1_plain_sgd_backup_and_restore_resumes(tmp_path):
    def run(folder, extra=()):
        model = build()
        model.compile(optimizer="sgd", loss=loss())
        fit(model, BACKUP_EPOCHS, [lk.callbacks.BackupAndRestore(folder), *extra])
        return model

    reference = run(tmp_path / "reference")
    with pytest.raises(Killed):
        run(tmp_path / "backup", [KillAt(KILL_EPOCH)])
    log = BatchLog()
    try:
        resumed = run(tmp_path / "backup", [log])
    except lk.io.FormatError as error:
        pytest.fail(f"a killed plain-SGD run cannot resume: {error}")
    assert log.batches == EXPECTED_RESUMED_BATCHES["epoch_end"], log.batches
    assert_same_state(reference, resumed, "plain SGD resumed by BackupAndRestore")


def _halve_at_epoch_0(holder: dict):
    def on_epoch_end(epoch, logs=None):
        if epoch == 0:
            optimizer = holder["model"].optimizer
            optimizer.learning_rate = optimizer.learning_rate * 0.5

    return lk.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)


LR_CHANGERS = {
    # Reduces once, at the end of epoch 1 (min_delta makes every later epoch a plateau;
    # min_lr stops it after one reduction, so a fresh callback in the resumed run agrees).
    "reduce_lr_on_plateau": lambda holder: lk.callbacks.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=1, min_delta=1e9, min_lr=LR * 0.5
    ),
    "lambda_callback": _halve_at_epoch_0,
}


@pytest.mark.parametrize("changer", list(LR_CHANGERS))
def test_case2_backup_keeps_learning_rate_changed_during_training(tmp_path, changer):
    def run(folder, holder, extra=()):
        model = holder["model"] = build()
        model.compile(optimizer=lk.optim.SGD(LR, momentum=0.9), loss=loss())
        # The changer comes first, so each epoch's backup includes its change.
        callbacks = [LR_CHANGERS[changer](holder), lk.callbacks.BackupAndRestore(folder)]
        fit(model, 4, [*callbacks, *extra])
        return model

    reference = run(tmp_path / "reference", {})
    killed = {}
    with pytest.raises(Killed):
        run(tmp_path / "backup", killed, [KillAt(1)])  # killed after epoch 2
    lr_at_kill = killed["model"].optimizer.learning_rate
    assert lr_at_kill == LR * 0.5, f"{changer} did not halve the learning rate: {lr_at_kill}"
    log = BatchLog()
    resumed = run(tmp_path / "backup", {}, [log])
    assert log.epoch_lr[:1] == [(2, lr_at_kill)], (
        f"the run resumed with (epoch, learning rate) {log.epoch_lr[:1]}; it was killed "
        f"after epoch 2 at learning rate {lr_at_kill} (the compile call's was {LR})"
    )
    assert resumed.optimizer.learning_rate == reference.optimizer.learning_rate == lr_at_kill
    assert_same_state(reference, resumed, f"resumed after {changer} changed the learning rate")


@pytest.mark.parametrize(
    "change",
    ["added_layer", "widened_layer", "removed_layer", "renamed_layer", "dropout_removed"],
)
def test_case3_backup_refuses_changed_architecture(tmp_path, change):
    folder = tmp_path / "backup"
    original = build()
    original.compile(optimizer=lk.optim.Adam(LR), loss=loss())
    with pytest.raises(Killed):
        fit(original, BACKUP_EPOCHS, [lk.callbacks.BackupAndRestore(folder), KillAt(KILL_EPOCH)])
    files_before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert files_before, "the killed run left no backup"

    changed = build(change=change)
    changed.compile(optimizer=lk.optim.Adam(LR), loss=loss())
    weights_before = {p.name: p.value.copy() for p in changed.weights}
    state_before = changed.optimizer.state_dict()
    position_before = changed.training_position()
    log = BatchLog()
    with pytest.raises(ValueError) as info:  # lk.io.FormatError is a ValueError
        fit(changed, BACKUP_EPOCHS, [lk.callbacks.BackupAndRestore(folder), log])
    names = {
        "added_layer": ["extra"],
        "widened_layer": ["hidden2"],
        "removed_layer": ["hidden2"],
        "renamed_layer": ["hidden2", "hidden2b"],
        "dropout_removed": ["drop"],
    }[change]
    message = str(info.value)
    assert any(name in message for name in names), (
        f"the refusal should name {' or '.join(map(repr, names))}: {message}"
    )
    assert log.batches == [], f"training ran batches {log.batches} before the refusal"
    for p in changed.weights:
        assert np.array_equal(p.value, weights_before[p.name]), f"the refusal changed {p.name!r}"
    assert_same_tree(state_before, changed.optimizer.state_dict(), "optimizer state after refusal")
    assert changed.training_position() == position_before, "the refusal changed the position"
    files_after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert files_after == files_before, "the refusal changed the backup folder"


def test_case3_backup_resumes_when_only_the_input_layer_name_differs(tmp_path):
    """An unnamed Input gets a new automatic name in each model of a process (a notebook
    running the script again); it has no weights and is not a difference: Keras resumes."""
    folder = tmp_path / "backup"

    def run(extra=()):
        model = build(input_name=None)
        model.compile(optimizer=lk.optim.Adam(LR), loss=loss())
        fit(model, BACKUP_EPOCHS, [lk.callbacks.BackupAndRestore(folder), *extra])
        return model

    reference = build(input_name=None)
    reference.compile(optimizer=lk.optim.Adam(LR), loss=loss())
    fit(reference, BACKUP_EPOCHS)
    with pytest.raises(Killed):
        run([KillAt(KILL_EPOCH)])
    log = BatchLog()
    resumed = run([log])
    assert log.batches == EXPECTED_RESUMED_BATCHES["epoch_end"], log.batches
    assert_same_state(reference, resumed, "resumed into a model with another Input name")


def test_case4_adam_fit_4_equals_fit_2_save_load_fit_2(tmp_path):
    straight = build()
    straight.compile(optimizer=lk.optim.Adam(LR), loss=loss())
    fit(straight, 4)
    half = build()
    half.compile(optimizer=lk.optim.Adam(LR), loss=loss())
    fit(half, 2)
    loaded = load_or_fail(half.save(tmp_path / "half.h5"), "Adam after 2 epochs")
    assert_same_state(half, loaded, "Adam after save + load")
    fit(loaded, 2)
    assert_same_state(straight, loaded, "Adam: fit 4 against fit 2 + save + load + fit 2")


@pytest.mark.parametrize(
    "variant", [pytest.param(v, id=v.id) for v in VARIANTS if v.option != "lr_callback"]
)
def test_case4_state_dict_round_trip_in_memory(variant):
    first = prepared("trained", variant, dropout=False)
    second = build(dropout=False)
    second.set_weights(first.get_weights())
    variant.compile(second)
    second.optimizer.load_state_dict(first.optimizer.state_dict())
    assert_same_tree(
        first.optimizer.state_dict(),
        second.optimizer.state_dict(),
        "opt2.load_state_dict(opt1.state_dict()): opt2.state_dict()",
    )
    first.train_on_batch(X[:BATCH], Y[:BATCH])
    second.train_on_batch(X[:BATCH], Y[:BATCH])
    assert_same_weights(first, second, "one step each after opt2.load_state_dict(...)")
    assert_same_optimizer(first, second, "one step each after opt2.load_state_dict(...)")


def test_case5_model_save_keras_is_a_keras_archive_that_resumes(tmp_path, keras):
    model = prepared("trained", DEFAULT_VARIANT[lk.optim.Adam])
    path = model.save(tmp_path / "my_model.keras")
    assert zipfile.is_zipfile(path), "model.save('my_model.keras') did not write a zip archive"
    assert not is_layerkit_checkpoint(path)
    from_keras = keras.models.load_model(path)
    assert [layer.name for layer in from_keras.layers] == LAYER_NAMES
    assert_keras_predicts_like(from_keras, model, "model.save('my_model.keras')")
    loaded = load_or_fail(path, "model.save('my_model.keras')")
    assert_same_state(model, loaded, "lk.load_model('my_model.keras')")
    fit(model)
    fit(loaded)
    assert_same_state(model, loaded, "one more epoch after lk.load_model('my_model.keras')")


@pytest.mark.parametrize("writer", ["save_weights", "model_checkpoint"])
def test_case5_weights_h5_is_keras_layout(tmp_path, keras, writer):
    checkpoint = lk.callbacks.ModelCheckpoint(
        str(tmp_path / "ckpt-{epoch}.weights.h5"), save_weights_only=True
    )
    model = prepared("trained", DEFAULT_VARIANT[lk.optim.Adam], callbacks=[checkpoint])
    if writer == "save_weights":
        path = model.save_weights(tmp_path / "x.weights.h5")
    else:
        path = tmp_path / f"ckpt-{TRAIN_EPOCHS}.weights.h5"
    assert not is_layerkit_checkpoint(path), f"{writer} wrote a layerkit checkpoint"
    keras_model = keras_twin(keras)
    keras_model.load_weights(str(path))
    assert_keras_predicts_like(keras_model, model, f"{Path(path).name} written by {writer}")
    again = build()  # layerkit reads its own Keras-layout file back, bit-equal
    again.load_weights(path)
    assert_same_weights(model, again, f"layerkit load_weights of {Path(path).name}")


def test_case5_h5_stays_layerkit_checkpoint(tmp_path):
    checkpoint = lk.callbacks.ModelCheckpoint(str(tmp_path / "ckpt-{epoch}.h5"))
    model = prepared("trained", DEFAULT_VARIANT[lk.optim.Adam], callbacks=[checkpoint])
    for path in (
        model.save(tmp_path / "x.h5"),
        model.save_weights(tmp_path / "w.h5"),
        tmp_path / "ckpt-1.h5",
    ):
        assert is_layerkit_checkpoint(path), f"{Path(path).name} is not a layerkit checkpoint"


@pytest.mark.parametrize(
    ("pattern", "weights_only"),
    [
        pytest.param("not/yet/ckpt-{epoch}.h5", False, id="model"),
        pytest.param("not/yet/ckpt-{epoch}.h5", True, id="weights_only"),
        pytest.param("run-{epoch}/ckpt.h5", False, id="epoch_in_folder"),
    ],
)
def test_case6_model_checkpoint_creates_missing_folder(tmp_path, pattern, weights_only):
    checkpoint = lk.callbacks.ModelCheckpoint(
        str(tmp_path / pattern), save_weights_only=weights_only
    )
    model = build()
    DEFAULT_VARIANT[lk.optim.Adam].compile(model)
    history = fit(model, TRAIN_EPOCHS, [checkpoint])
    assert history.epoch == [0, 1]
    for epoch in (1, 2):
        assert (tmp_path / pattern.format(epoch=epoch)).is_file(), pattern.format(epoch=epoch)
    last = tmp_path / pattern.format(epoch=TRAIN_EPOCHS)
    if weights_only:
        again = build()
        again.load_weights(last)
        assert_same_weights(model, again, f"{last.name} (weights only)")
    else:
        assert_same_state(model, load_or_fail(last, pattern), f"{last.name}")


def test_case8_model_checkpoint_save_freq_in_batches(tmp_path):
    recorder = EpochWeights(per_batch=True)
    checkpoint = lk.callbacks.ModelCheckpoint(
        str(tmp_path / "ckpt-{epoch}-{batch}.h5"), save_freq=BACKUP_EVERY
    )
    prepared("trained", DEFAULT_VARIANT[lk.optim.Adam], callbacks=[checkpoint, recorder])
    # 2 epochs of 4 batches, a save every 3 batches: after global batches 3 and 6, i.e.
    # epoch 1 batch 3 and epoch 2 batch 2 ({epoch} and {batch} count from 1, as Keras).
    names = sorted(n for n in os.listdir(tmp_path) if n.endswith(".h5"))
    assert names == ["ckpt-1-3.h5", "ckpt-2-2.h5"], f"ModelCheckpoint wrote {names}"
    for name, global_batch in (("ckpt-1-3.h5", 3), ("ckpt-2-2.h5", 6)):
        loaded = load_or_fail(tmp_path / name, "ModelCheckpoint(save_freq=3)")
        assert loaded.optimizer.iterations == global_batch, (
            f"{name}: iterations {loaded.optimizer.iterations}, expected {global_batch}"
        )
        for weight, value in recorder.snapshots[global_batch - 1].items():
            got = {p.name: p.value for p in loaded.weights}[weight]
            assert np.array_equal(got, value), (
                f"{name} does not hold the weights after global batch {global_batch}: "
                f"{weight!r}: {describe_difference(value, got)}"
            )


@pytest.mark.parametrize("callback", ["ModelCheckpoint", "BackupAndRestore"])
@pytest.mark.parametrize("save_freq", ["batch", 2.5])
def test_case8_save_freq_must_be_epoch_or_int(tmp_path, callback, save_freq):
    cls = getattr(lk.callbacks, callback)
    target = str(tmp_path / ("m.h5" if callback == "ModelCheckpoint" else "backup"))
    with pytest.raises(ValueError, match="save_freq"):
        cls(target, save_freq=save_freq)


def test_case8_backup_save_freq_in_batches_resumes_mid_epoch(tmp_path):
    def run(folder, extra=()):
        model = build()
        model.compile(optimizer=lk.optim.Adam(LR), loss=loss(), metrics=["accuracy"])
        backup = lk.callbacks.BackupAndRestore(folder, save_freq=BACKUP_EVERY)
        fit(model, BACKUP_EPOCHS, [backup, *extra])
        return model

    reference = run(tmp_path / "reference")
    with pytest.raises(Killed):
        run(tmp_path / "backup", [KillAt(*KILL_BATCH)])
    assert any((tmp_path / "backup").iterdir()), "the killed run left no backup"
    log = BatchLog()
    resumed = run(tmp_path / "backup", [log])
    expected = EXPECTED_RESUMED_BATCHES["mid_epoch"]
    assert log.batches == expected, (
        f"the resumed fit trained (epoch, batch) {log.batches}; expected {expected}: "
        "the last backup followed epoch 1 batch 1"
    )
    assert resumed.optimizer.iterations == reference.optimizer.iterations == BACKUP_EPOCHS * STEPS
    assert_same_state(reference, resumed, "resumed mid-epoch, against an uninterrupted run")
