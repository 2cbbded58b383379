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
from layerkit.io.checkpoint import FORMAT_VERSION

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
    assert lines[0].startswith(f"format: layerkit v{FORMAT_VERSION} (model)")
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
    assert loss == {
        "class_name": "SparseCategoricalCrossentropy",
        "config": {
            "name": "sparse_categorical_crossentropy",
            "reduction": "sum_over_batch_size",
            "from_logits": True,
            "ignore_class": None,
        },
    }
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
    assert result.stdout.splitlines()[0].startswith(f"format: layerkit v{FORMAT_VERSION} (weights)")
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


# --- what a new user passes: damaged, misnamed and unbuilt files --------------------------
def _tf1_checkpoint(folder: Path) -> Path:
    import tf_bundle

    rng = np.random.default_rng(5)
    prefix = folder / "model.ckpt"
    tf_bundle.write_checkpoint(
        prefix,
        {
            "dense/kernel": rng.standard_normal((4, 3)).astype(np.float32),
            "dense/bias": rng.standard_normal(3).astype(np.float32),
        },
    )
    (folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt"\n')
    return prefix


def test_inspect_truncated_keras_archive_says_it_is_a_damaged_zip(tmp_path):
    import zipfile

    whole = tmp_path / "whole.keras"
    with zipfile.ZipFile(whole, "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Sequential"}))
        archive.writestr("model.weights.h5", bytes(range(256)) * 40)
    path = tmp_path / "model.keras"
    path.write_bytes(whole.read_bytes()[:3000])
    result = inspect(path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {path}: ")
    assert "truncated or damaged zip archive" in result.stderr
    assert "neither HDF5" not in result.stderr


def test_inspect_empty_file_says_it_is_empty(tmp_path):
    path = tmp_path / "model.h5"
    path.touch()
    result = inspect(path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {path}: ")
    assert "empty (0 bytes)" in result.stderr


def test_inspect_data_shard_reads_its_checkpoint_and_names_the_prefix(tmp_path):
    prefix = _tf1_checkpoint(tmp_path)
    result = inspect(f"{prefix}.data-00000-of-00001")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "format: tf1_checkpoint",
        f"checkpoint prefix: {prefix}",
        "layers:",
        "  dense",
    ]


def test_inspect_data_shard_without_its_index_says_to_pass_the_prefix(tmp_path):
    prefix = _tf1_checkpoint(tmp_path)
    Path(f"{prefix}.index").unlink()
    shard = f"{prefix}.data-00000-of-00001"
    result = inspect(shard)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {shard}: ")
    assert f"pass the checkpoint prefix {str(prefix)!r}" in result.stderr
    assert "without '.data-00000-of-00001'" in result.stderr


def test_inspect_folder_says_which_checkpoint_prefix_it_read(tmp_path):
    prefix = _tf1_checkpoint(tmp_path)
    result = inspect(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == f"checkpoint prefix: {prefix}"
    # Given the prefix itself there is nothing to resolve, so nothing to say.
    assert "checkpoint prefix" not in inspect(prefix).stdout


def test_inspect_unbuilt_model_says_why_no_layers_are_listed(tmp_path):
    model = lk.Sequential([lk.layers.Dense(4, name="dense")])
    path = model.save(tmp_path / "unbuilt.h5")
    result = inspect(path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == (
        "layers: none, the model was saved unbuilt (no weights yet): give it an Input "
        "layer, or build or fit it, before saving"
    )


def test_inspect_built_model_without_weights_does_not_blame_building(tmp_path):
    model = lk.Sequential([lk.layers.Input((3,)), lk.layers.Dropout(0.5, name="drop")])
    result = inspect(model.save(tmp_path / "no_weights.h5"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "layers: none with weights (its layers have no weights)"


def test_inspect_function_takes_bytes_and_pathlike_paths(tmp_path):
    from layerkit.__main__ import inspect as describe

    path = make_model(seed=3).save(tmp_path / "model.h5")
    expected = describe(str(path))
    assert "  hidden1 (Dense)" in expected
    assert describe(os.fsencode(path)) == expected
    assert describe(Path(path)) == expected
    prefix = _tf1_checkpoint(tmp_path)
    assert describe(os.fsencode(tmp_path)) == describe(str(tmp_path))
    assert describe(os.fsencode(prefix)).startswith("format: tf1_checkpoint\nlayers:")


def test_inspect_function_refuses_a_non_path_with_a_clear_type_error():
    from layerkit.__main__ import inspect as describe

    with pytest.raises(
        TypeError,
        match=r"Expected path to be a str, bytes or os\.PathLike\. "
        r"Received: path=3 of type int",
    ):
        describe(3)
