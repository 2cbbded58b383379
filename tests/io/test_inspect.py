"""``python -m layerkit inspect PATH``: what a checkpoint holds, and clear errors."""

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

REPO_ROOT = Path(lk.__file__).resolve().parents[1]


# --- local helpers -------------------------------------------------------------------
def inspect(path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "layerkit", "inspect", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def make_model(seed: int = 0) -> lk.Sequential:
    lk.utils.set_random_seed(seed)
    return lk.Sequential(
        [
            lk.layers.Input((20,)),
            lk.layers.Dense(16, activation="relu", name="hidden1"),
            lk.layers.Dropout(0.2, name="drop"),
            lk.layers.Dense(8, activation="relu", name="hidden2"),
            lk.layers.Dense(3, name="out"),
        ]
    )


def make_data(n: int = 200):
    rng = np.random.default_rng(4)
    return rng.normal(size=(n, 20)).astype(np.float32), rng.integers(0, 3, n)


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    x, y = make_data()
    model = make_model()
    model.compile(
        optimizer=lk.optim.Adam(learning_rate=0.003),
        loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.freeze("hidden1")
    model.fit(x, y, batch_size=50, epochs=3, verbose=0)
    path = model.save(tmp_path_factory.mktemp("inspect") / "trained.h5")
    return path, inspect(path)


def test_inspect_lists_layers_shapes_dtypes_and_frozen_flag(trained_checkpoint):
    _path, result = trained_checkpoint
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("format: layerkit v1 (model)")
    assert f"layerkit {lk.__version__}" in lines[0]
    start = lines.index("layers:")
    assert lines[start + 1 : start + 10] == [
        "  hidden1 (Dense)  [frozen]",
        "    kernel: shape=(20, 16) dtype=float32",
        "    bias: shape=(16,) dtype=float32",
        "  hidden2 (Dense)",
        "    kernel: shape=(16, 8) dtype=float32",
        "    bias: shape=(8,) dtype=float32",
        "  out (Dense)",
        "    kernel: shape=(8, 3) dtype=float32",
        "    bias: shape=(3,) dtype=float32",
    ]
    assert "drop" not in result.stdout  # no weights, not listed
    assert result.stdout.count("[frozen]") == 1


def test_inspect_shows_compile_optimizer_and_training_position(trained_checkpoint):
    _, result = trained_checkpoint
    assert result.returncode == 0, result.stderr
    lines = {
        line.split(":", 1)[0]: line.split(":", 1)[1].strip()
        for line in result.stdout.splitlines()
        if not line.startswith(" ")
    }
    loss = json.loads(lines["loss"])
    assert loss == {"class_name": "SparseCategoricalCrossentropy", "config": {"from_logits": True}}
    assert json.loads(lines["metrics"]) == ["accuracy"]
    name, config = lines["optimizer"].split(" ", 1)
    assert name == "Adam"
    config = json.loads(config)
    assert config["learning_rate"] == 0.003
    assert config["beta_1"] == 0.9
    # 3 epochs x 4 steps of 50 samples; state for all 6 weights (frozen ones kept).
    assert lines["optimizer state"] == "iterations=12, 6 parameters"
    assert lines["training position"] == "epochs_done=3, steps=12"


def test_inspect_weights_file_float64(tmp_path):
    with lk.backend.floatx_scope("float64"):
        model = make_model(seed=1)
    path = model.save_weights(tmp_path / "w64.h5")
    result = inspect(path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("format: layerkit v1 (weights)")
    assert "    kernel: shape=(20, 16) dtype=float64" in result.stdout
    assert "    bias: shape=(3,) dtype=float64" in result.stdout
    assert "[frozen]" not in result.stdout
    assert "optimizer" not in result.stdout
    assert "training position" not in result.stdout


def _random_bytes(tmp_path) -> Path:
    path = tmp_path / "noise.h5"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    return path


def _plain_hdf5(tmp_path) -> Path:
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["table"] = np.arange(6.0)
    return path


def _truncated(tmp_path) -> Path:
    good = make_model(seed=2).save(tmp_path / "good.h5")
    data = Path(good).read_bytes()
    path = tmp_path / "truncated.h5"
    path.write_bytes(data[: len(data) // 2])
    return path


def _missing(tmp_path) -> Path:
    return tmp_path / "does_not_exist.h5"


def _folder(tmp_path) -> Path:
    path = tmp_path / "a_folder"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    "make_bad",
    [
        pytest.param(_missing, id="missing"),
        pytest.param(_random_bytes, id="random_bytes"),
        pytest.param(_plain_hdf5, id="plain_hdf5"),
        pytest.param(_truncated, id="truncated"),
        pytest.param(_folder, id="folder"),
    ],
)
def test_inspect_bad_path_fails_with_message_naming_it(tmp_path, make_bad):
    path = make_bad(tmp_path)
    result = inspect(path)
    assert result.returncode != 0
    assert result.stdout == ""
    assert str(path) in result.stderr
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
