"""model.save / lk.load_model: round trips, exact resume in a new process, bad files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import layerkit as lk
from layerkit.io.checkpoint import seal

REPO_ROOT = Path(lk.__file__).resolve().parents[1]


# --- local helpers -------------------------------------------------------------------
def make_data(n: int = 300, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20)).astype(np.float32)
    w = rng.normal(size=(20, 3))
    y = np.argmax(x @ w + 0.5 * rng.normal(size=(n, 3)), axis=1).astype(np.int64)
    return x, y


def make_model(seed: int = 0, dropout: bool = True, input_layer: bool = True) -> lk.Sequential:
    lk.utils.set_random_seed(seed)
    layers = []
    if input_layer:
        layers.append(lk.layers.Input((20,)))
    layers.append(lk.layers.Dense(16, activation="relu", name="hidden1"))
    if dropout:
        layers.append(lk.layers.Dropout(0.25, name="drop"))
    layers += [
        lk.layers.Dense(8, activation="relu", name="hidden2"),
        lk.layers.Dense(3, name="out"),
    ]
    return lk.Sequential(layers, name="mlp")


def compile_adam(model: lk.Sequential, learning_rate=0.01) -> None:
    model.compile(
        optimizer=lk.optim.Adam(learning_rate=learning_rate, beta_1=0.85, epsilon=1e-6),
        loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert result.returncode == 0, f"subprocess failed:\n{result.stdout}\n{result.stderr}"
    return result


def bitwise_snapshot(model: lk.Sequential) -> list[bytes]:
    return [w.tobytes() for w in model.get_weights()]


# --- round trips ---------------------------------------------------------------------
def test_round_trip_restores_predictions_config_and_compiled_state(tmp_path):
    x, y = make_data()
    model = make_model()
    compile_adam(model)
    model.freeze("hidden2")
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    path = model.save(tmp_path / "model.h5")
    assert path == str((tmp_path / "model.h5").resolve())

    loaded = lk.load_model(path)

    # Architecture and weights.
    assert loaded.get_config() == model.get_config()
    assert [layer.name for layer in loaded.layers] == ["hidden1", "drop", "hidden2", "out"]
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        assert a.dtype == b.dtype == np.float32
        assert np.array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    # Trainable flags.
    assert [layer.trainable for layer in loaded.layers] == [True, True, False, True]
    assert [p.name for p in loaded.non_trainable_weights] == ["hidden2/kernel", "hidden2/bias"]
    assert [p.name for p in loaded.trainable_weights] == [
        "hidden1/kernel",
        "hidden1/bias",
        "out/kernel",
        "out/bias",
    ]
    # Compiled state: loss, metrics, optimizer and its hyper-parameters.
    assert loaded.compiled
    assert type(loaded.loss) is lk.losses.SparseCategoricalCrossentropy
    assert loaded.loss.from_logits is True
    assert loaded.metrics_names == model.metrics_names == ["loss", "accuracy"]
    assert type(loaded.optimizer) is lk.optim.Adam
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.learning_rate == 0.01
    assert loaded.optimizer.beta_1 == 0.85
    assert loaded.optimizer.epsilon == 1e-6
    steps = int(np.ceil(300 / 32))
    assert model.optimizer.iterations == 2 * steps
    assert loaded.optimizer.iterations == 2 * steps
    # Every optimizer slot, including the frozen layer's.
    names = [p.name for p in model.weights]
    assert len(names) == 6
    for name in names:
        saved, restored = model.optimizer.slots(name), loaded.optimizer.slots(name)
        assert set(restored) == {"momentum", "velocity"}
        for slot in ("momentum", "velocity"):
            assert np.array_equal(saved[slot], restored[slot]), (name, slot)
    assert np.abs(loaded.optimizer.slots("hidden1/kernel")["momentum"]).sum() > 0
    # Training position and the same evaluation numbers.
    assert loaded.training_position()["epochs_done"] == 2
    assert loaded.training_position()["shuffle_rng"] == model.training_position()["shuffle_rng"]
    assert loaded.evaluate(x, y, return_dict=True) == model.evaluate(x, y, return_dict=True)


def test_round_trip_with_learning_rate_schedule(tmp_path):
    x, y = make_data(100)
    model = make_model(dropout=False)
    schedule = lk.optim.schedules.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.5)
    model.compile(optimizer=lk.optim.Adam(schedule), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=25, epochs=1, verbose=0)
    loaded = lk.load_model(model.save(tmp_path / "sched.h5"))
    restored = loaded.optimizer.schedule
    assert isinstance(restored, lk.optim.schedules.ExponentialDecay)
    assert restored.get_config() == schedule.get_config()
    assert loaded.optimizer.iterations == 4
    assert loaded.optimizer.learning_rate == pytest.approx(0.05 * 0.5 ** (4 / 3), rel=1e-12)
    assert loaded.optimizer.learning_rate == model.optimizer.learning_rate
    assert type(loaded.loss) is lk.losses.SparseCategoricalCrossentropy
    assert loaded.loss.from_logits is False


@pytest.mark.parametrize(
    "optimizer",
    [
        pytest.param(lambda: lk.optim.SGD(0.05, momentum=0.7, nesterov=True), id="sgd"),
        pytest.param(lambda: lk.optim.RMSprop(0.01, rho=0.8, momentum=0.3), id="rmsprop"),
        pytest.param(lambda: lk.optim.Adagrad(0.02, clipnorm=1.5), id="adagrad"),
        pytest.param(lambda: lk.optim.Adadelta(1.0, clipvalue=0.5), id="adadelta"),
    ],
)
def test_round_trip_other_optimizers_and_metric_objects(tmp_path, optimizer):
    x, y = make_data(96)
    y_onehot = lk.utils.to_categorical(y, 3)
    model = make_model(dropout=False)
    model.compile(
        optimizer=optimizer(),
        loss=lk.losses.CategoricalCrossentropy(from_logits=True),
        metrics=[lk.metrics.CategoricalAccuracy(name="cacc"), "mae"],
    )
    model.fit(x, y_onehot, batch_size=32, epochs=2, verbose=0)
    loaded = lk.load_model(model.save(tmp_path / "opt.h5"))
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 6
    assert loaded.metrics_names == ["loss", "cacc", "mae"]
    assert type(loaded.loss) is lk.losses.CategoricalCrossentropy
    assert loaded.loss.from_logits is True
    for p in model.weights:
        saved = model.optimizer.slots(p.name)
        assert set(loaded.optimizer.slots(p.name)) == set(saved)
        for slot, array in saved.items():
            assert np.array_equal(loaded.optimizer.slots(p.name)[slot], array), (p.name, slot)
    assert loaded.evaluate(x, y_onehot, return_dict=True) == model.evaluate(
        x, y_onehot, return_dict=True
    )
    # One more step from the same state gives the same weights.
    model.train_on_batch(x[:32], y_onehot[:32])
    loaded.train_on_batch(x[:32], y_onehot[:32])
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_save_uncompiled_model(tmp_path):
    x, _ = make_data(50)
    model = make_model(seed=3)
    loaded = lk.load_model(model.save(tmp_path / "plain.h5"))
    assert not loaded.compiled
    assert loaded.optimizer is None
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    with pytest.raises(RuntimeError, match="compile"):
        loaded.fit(x, np.zeros(50, dtype=np.int64), verbose=0)


def test_save_unbuilt_declared_model(tmp_path):
    model = make_model(input_layer=False, dropout=False)
    assert not model.built
    loaded = lk.load_model(model.save(tmp_path / "unbuilt.h5"))
    assert not loaded.built
    assert loaded.get_config() == model.get_config()
    assert [layer.name for layer in loaded.layers] == ["hidden1", "hidden2", "out"]
    assert [layer.units for layer in loaded.layers] == [16, 8, 3]
    # It still builds and computes once it sees data.
    x, _ = make_data(10)
    assert loaded.predict(x).shape == (10, 3)
    assert loaded.get_layer("hidden1").kernel.shape == (20, 16)


def test_save_unbuilt_compiled_model(tmp_path):
    model = make_model(input_layer=False, dropout=False)
    model.compile(optimizer=lk.optim.SGD(0.03, momentum=0.5), loss="mse", metrics=["mae"])
    loaded = lk.load_model(model.save(tmp_path / "unbuilt_compiled.h5"))
    assert loaded.compiled
    assert not loaded.built
    assert type(loaded.optimizer) is lk.optim.SGD
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert type(loaded.loss) is lk.losses.MeanSquaredError
    assert loaded.optimizer.iterations == 0
    x, _ = make_data(40)
    history = loaded.fit(x, np.zeros((40, 3), np.float32), batch_size=20, verbose=0)
    assert loaded.optimizer.iterations == 2
    assert np.isfinite(history.history["loss"][0])
    assert loaded.metrics_names == ["loss", "mae"]


def test_save_weights_load_weights_round_trip(tmp_path):
    x, y = make_data(100)
    source = make_model(seed=0)
    compile_adam(source)
    source.fit(x, y, epochs=1, verbose=0)
    path = source.save_weights(tmp_path / "w.h5")
    with h5py.File(path, "r") as f:
        assert f.attrs["kind"] == "weights"
        assert "optimizer" not in f
        assert sorted(f["weights"]) == ["hidden1", "hidden2", "out"]
    target = make_model(seed=7)
    assert not np.array_equal(target.get_weights()[0], source.get_weights()[0])
    pairs = target.load_weights(path)
    assert pairs == [("hidden1", "hidden1"), ("hidden2", "hidden2"), ("out", "out")]
    for a, b in zip(source.get_weights(), target.get_weights(), strict=True):
        assert np.array_equal(a, b)
    np.testing.assert_array_equal(target.predict(x), source.predict(x))


def test_save_weights_of_unbuilt_model_is_refused(tmp_path):
    model = make_model(input_layer=False)
    with pytest.raises(ValueError, match="not built"):
        model.save_weights(tmp_path / "w.h5")
    assert not (tmp_path / "w.h5").exists()


# --- exact resume in a new process -----------------------------------------------------
RESUME_CODE = """
import json, numpy as np, layerkit as lk
lk.utils.set_random_seed(987654)          # a different seed: the checkpoint must win
data = np.load({data!r})
model = lk.load_model({ckpt!r})
history = model.fit(data["x"], data["y"], batch_size=32, epochs=1, verbose=0)
model.save({out!r})
print(json.dumps(history.history))
"""


def _scheduled(use_schedule: bool):
    if use_schedule:
        return lk.optim.schedules.ExponentialDecay(0.02, decay_steps=5, decay_rate=0.7)
    return 0.01


@pytest.mark.parametrize("use_schedule", [False, True], ids=["constant_lr", "exponential_decay"])
def test_resume_in_new_process_matches_unbroken_run(tmp_path, use_schedule):
    x, y = make_data()
    np.savez(tmp_path / "data.npz", x=x, y=y)

    first = make_model(seed=11)
    compile_adam(first, _scheduled(use_schedule))
    first.fit(x, y, batch_size=32, epochs=1, verbose=0)
    ckpt = first.save(tmp_path / "epoch1.h5")

    reference = make_model(seed=11)
    compile_adam(reference, _scheduled(use_schedule))
    ref_history = reference.fit(x, y, batch_size=32, epochs=2, verbose=0)

    out = tmp_path / "resumed.h5"
    result = run_python(
        RESUME_CODE.format(data=str(tmp_path / "data.npz"), ckpt=ckpt, out=str(out))
    )
    history = json.loads(result.stdout.strip().splitlines()[-1])

    resumed = lk.load_model(out)
    for ref, got in zip(reference.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    # The resumed epoch is the unbroken run's second epoch, loss and accuracy included.
    assert history["loss"][0] == pytest.approx(ref_history.history["loss"][1], abs=1e-6)
    assert history["accuracy"][0] == pytest.approx(ref_history.history["accuracy"][1])
    steps = int(np.ceil(300 / 32))
    assert resumed.optimizer.iterations == reference.optimizer.iterations == 2 * steps
    assert resumed.optimizer.learning_rate == pytest.approx(reference.optimizer.learning_rate)
    for p in reference.weights:
        for slot, array in reference.optimizer.slots(p.name).items():
            np.testing.assert_allclose(
                resumed.optimizer.slots(p.name)[slot], array, rtol=1e-5, atol=1e-7
            )
    assert resumed.training_position()["epochs_done"] == 2


# --- bad files ---------------------------------------------------------------------
def _save_reference(tmp_path) -> str:
    x, y = make_data(64)
    model = make_model(dropout=False)
    compile_adam(model)
    model.fit(x, y, epochs=1, verbose=0)
    return model.save(tmp_path / "good.h5")


def _load_model(path):
    return lk.load_model(path)


def _load_weights(path):
    return make_model(seed=5, dropout=False).load_weights(path)


LOADERS = [
    pytest.param(_load_model, id="load_model"),
    pytest.param(_load_weights, id="load_weights"),
]


@pytest.mark.parametrize("loader", LOADERS)
def test_missing_file(tmp_path, loader):
    path = tmp_path / "nothing_here.h5"
    with pytest.raises(FileNotFoundError) as info:
        loader(path)
    assert str(path) in str(info.value)


def _random_bytes(tmp_path) -> Path:
    path = tmp_path / "random.h5"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return path


def _truncated(tmp_path) -> Path:
    data = Path(_save_reference(tmp_path)).read_bytes()
    path = tmp_path / "truncated.h5"
    path.write_bytes(data[: len(data) // 2])
    return path


def _plain_hdf5(tmp_path) -> Path:
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(12.0).reshape(3, 4)
    return path


BAD_FILES = [
    pytest.param(_random_bytes, id="random_bytes"),
    pytest.param(_truncated, id="truncated"),
    pytest.param(_plain_hdf5, id="plain_hdf5"),
]


@pytest.mark.parametrize("make_bad", BAD_FILES)
@pytest.mark.parametrize("loader", LOADERS)
def test_bad_file_raises_format_error_naming_path(tmp_path, make_bad, loader):
    path = make_bad(tmp_path)
    with pytest.raises(lk.io.FormatError) as info:
        loader(path)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value)


def test_bad_file_leaves_model_unchanged(tmp_path):
    model = make_model(seed=5, dropout=False)
    before = bitwise_snapshot(model)
    with pytest.raises(lk.io.FormatError):
        model.load_weights(_truncated(tmp_path))
    assert bitwise_snapshot(model) == before


def _edit_attr_json(path: str, key: str, edit) -> None:
    with h5py.File(path, "r+") as f:
        value = json.loads(f.attrs[key])
        f.attrs[key] = json.dumps(edit(value))

    seal(path)  # re-sealed, as a deliberate attacker would


def test_unknown_layer_class_is_refused(tmp_path):
    path = _save_reference(tmp_path)

    def to_lambda(config):
        config["layers"][2]["class_name"] = "Lambda"
        config["layers"][2]["config"]["function"] = "lambda x: __import__('os').system('x')"
        return config

    _edit_attr_json(path, "model_config", to_lambda)
    with pytest.raises(ValueError, match="Lambda"):
        lk.load_model(path)


def test_newer_format_version_is_refused(tmp_path):
    path = _save_reference(tmp_path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 99
    seal(path)  # re-sealed, as a deliberate attacker would
    with pytest.raises(lk.io.FormatError, match="99") as info:
        lk.load_model(path)
    assert path in str(info.value)


def _external_target(tmp_path) -> str:
    other = tmp_path / "elsewhere.h5"
    with h5py.File(other, "w") as f:
        f["weights/hidden1/kernel"] = np.full((20, 16), 7.0, np.float32)
        f["weights/hidden1/bias"] = np.full((16,), 7.0, np.float32)
    return str(other)


@pytest.mark.parametrize("where", ["group", "dataset", "soft"])
@pytest.mark.parametrize("loader", LOADERS)
def test_links_in_place_of_weights_are_refused(tmp_path, where, loader):
    path = _save_reference(tmp_path)
    other = _external_target(tmp_path)
    with h5py.File(path, "r+") as f:
        if where == "group":
            del f["weights/hidden1"]
            f["weights/hidden1"] = h5py.ExternalLink(other, "/weights/hidden1")
        elif where == "dataset":
            del f["weights/hidden1/kernel"]
            f["weights/hidden1/kernel"] = h5py.ExternalLink(other, "/weights/hidden1/kernel")
        else:
            f["stash/kernel"] = np.full((20, 16), 7.0, np.float32)
            del f["weights/hidden1/kernel"]
            f["weights/hidden1/kernel"] = h5py.SoftLink("/stash/kernel")
    seal(path)  # re-sealed, as a deliberate attacker would
    with pytest.raises(lk.io.FormatError, match="link") as info:
        loader(path)
    assert path in str(info.value)
    assert "hidden1" in str(info.value)


@pytest.mark.parametrize("link_at", ["optimizer/hidden1", "optimizer/hidden1/kernel/momentum"])
def test_external_link_in_optimizer_state_is_refused(tmp_path, link_at):
    path = _save_reference(tmp_path)
    other = tmp_path / "foreign_state.h5"
    with h5py.File(other, "w") as f:
        for weight, shape in (("kernel", (20, 16)), ("bias", (16,))):
            for slot in ("momentum", "velocity"):
                f[f"optimizer/hidden1/{weight}/{slot}"] = np.full(shape, 42.0, np.float32)
    with h5py.File(path, "r+") as f:
        del f[link_at]
        f[link_at] = h5py.ExternalLink(str(other), "/" + link_at)
    seal(path)  # re-sealed, as a deliberate attacker would
    with pytest.raises(lk.io.FormatError, match="link") as info:
        lk.load_model(path)
    assert path in str(info.value)
    model = make_model(seed=5, dropout=False)
    compile_adam(model)
    model.build((None, 20))
    with pytest.raises(lk.io.FormatError, match="link"):
        lk.io.restore_training_state(model, path)


# --- format version 1 (before slot_form) -----------------------------------------------
def _rewrite_as_version_1(path, optimizer) -> None:
    """What layerkit wrote before format version 2: no slot_form, slots in Keras's
    definitions (stored slot x slot_scale: for Adam m and v, not m/(1-beta_1) and
    v/(1-beta_2)), no group for a parameter without slots (plain SGD)."""
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 1
        group = f["optimizer"]
        del group.attrs["slot_form"]
        for name in json.loads(group.attrs["parameter_names"]):
            slots = group[name]
            for slot in list(slots):
                value = slots[slot][...]
                del slots[slot]
                slots[slot] = (value * optimizer.slot_scale(slot)).astype(value.dtype)
        for layer in list(group):  # drop the groups left empty
            for weight in list(group[layer]):
                if not len(group[layer][weight]):
                    del group[layer][weight]
            if not len(group[layer]):
                del group[layer]
    seal(str(path))


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda: lk.optim.Adam(learning_rate=0.01, beta_1=0.8, beta_2=0.99),
        lambda: lk.optim.SGD(learning_rate=0.05),
        lambda: lk.optim.SGD(learning_rate=0.05, momentum=0.9),
    ],
    ids=["adam", "sgd", "sgd_momentum"],
)
def test_format_version_1_checkpoint_loads(tmp_path, make_optimizer):
    x, y = make_data(64)
    model = make_model(dropout=False)
    model.compile(
        optimizer=make_optimizer(), loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "v1.h5"
    model.save(path)
    _rewrite_as_version_1(path, model.optimizer)
    with h5py.File(path) as f:
        assert f.attrs["format_version"] == 1
        if not model.optimizer.slot_names:
            assert list(f["optimizer"]) == []  # plain SGD: no group at all
    for loaded in (lk.load_model(path), make_model(dropout=False)):
        if not loaded.compiled:  # BackupAndRestore's path: into the script's model
            loaded.compile(
                optimizer=make_optimizer(),
                loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
            loaded.fit(x[:16], y[:16], batch_size=16, epochs=1, verbose=0)
            lk.io.checkpoint.restore_training_state(loaded, path)
        assert loaded.optimizer.iterations == model.optimizer.iterations
        for a, b in zip(loaded.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)
        for p in model.weights:
            saved, restored = model.optimizer.slots(p.name), loaded.optimizer.slots(p.name)
            assert sorted(restored) == sorted(saved) == sorted(model.optimizer.slot_names)
            for slot in saved:  # float32 rounding of the rescaling, both ways
                np.testing.assert_allclose(restored[slot], saved[slot], rtol=2e-7, atol=0)


@pytest.mark.parametrize(
    "layers",
    [
        lambda: [lk.layers.Input((4,)), lk.layers.Dense(3), lk.layers.PReLU(), lk.layers.Dense(2)],
        lambda: [
            lk.layers.Input((6,)),
            lk.layers.Reshape((2, 3)),
            lk.layers.Dense(2),
            lk.layers.Flatten(),
            lk.layers.Dense(1),
        ],
    ],
    ids=["prelu", "reshape"],
)
def test_layers_that_own_weights_or_change_shapes_load_back(layers, tmp_path, fresh_session):
    # The loader plans every layer's weights from the config (layer.weight_shapes), not
    # only Dense's: a PReLU's alpha or a Reshape before a Dense was refused as a mismatch.
    model = lk.Sequential(layers())
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).random((8, *model.input_shape[1:]), dtype=np.float32)
    model.fit(x, np.zeros((8, *model.output_shape[1:]), np.float32), verbose=0)
    loaded = lk.load_model(model.save(tmp_path / "m.h5"))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
