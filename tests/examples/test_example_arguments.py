"""The examples' command lines: every bad argument is refused before any training.

Each example runs as a subprocess, as a user runs it. Most cases stop at argument
checking and take well under a second; the MNIST ones pass ``--data`` (never a download)
and skip when MNIST is absent.
"""

from __future__ import annotations

import importlib.util
import subprocess

import pytest
from example_runs import EXAMPLES, mnist_folder, needs_mnist, run

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
STARTED_TRAINING = ("Epoch 1/", "(a) regression", "Model:")


def assert_refused(result: subprocess.CompletedProcess, message: str) -> None:
    """An argparse error (status 2, usage and the message), before any training."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("usage: ")
    assert f"error: {message}" in result.stderr
    assert "Traceback" not in result.stderr
    for marker in STARTED_TRAINING:
        assert marker not in result.stdout


def load_common():
    spec = importlib.util.spec_from_file_location("examples_common", EXAMPLES / "_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- backprop_basics.py -------------------------------------------------------------------
def test_backprop_basics_help_describes_quick_and_plot_and_runs_nothing():
    result = run("backprop_basics.py", "--help")
    assert result.returncode == 0, result.stderr
    assert "--quick" in result.stdout
    assert "--plot PATH" in result.stdout
    assert "(a) regression" not in result.stdout


def test_backprop_basics_refuses_unknown_arguments():
    assert_refused(run("backprop_basics.py", "--epochs", "3"), "unrecognized arguments")


def test_backprop_basics_quick_runs_a_quarter_of_the_steps():
    result = run("backprop_basics.py", "--quick")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Step #50 A = " in result.stdout  # 200 // 4 steps of (a)
    assert "Step #75 " not in result.stdout
    assert "Epoch #500 w = " in result.stdout  # 2000 // 4 epochs of (c)
    assert lines[-1].startswith("final w = ")


def test_backprop_basics_plot_writes_a_png_creating_its_folder(tmp_path):  # test extra
    path = tmp_path / "new" / "folder" / "losses.png"
    result = run("backprop_basics.py", "--quick", "--plot", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("final w = ")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_backprop_basics_plot_without_matplotlib_is_refused_before_running(tmp_path):
    # A matplotlib that cannot be imported, first on the path, stands for its absence.
    hidden = tmp_path / "no_matplotlib" / "matplotlib"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('matplotlib is hidden')\n")
    result = run("backprop_basics.py", "--plot", tmp_path / "losses.png", path=hidden.parent)
    assert_refused(result, "--plot needs matplotlib: pip install 'layerkit[plot]'")


# --- output paths, checked before training -----------------------------------------------
@pytest.mark.parametrize(
    ("example", "option"),
    [
        ("mnist_mlp.py", "--out"),
        ("mnist_mlp.py", "--plot"),
        ("mnist_transfer.py", "--plot"),
        ("transfer_digits.py", "--plot"),
        ("backprop_basics.py", "--plot"),
    ],
)
def test_an_existing_folder_as_output_is_refused_before_training(tmp_path, example, option):
    args = [option, tmp_path]
    if example == "mnist_transfer.py":
        (tmp_path / "model.h5").touch()
        args += ["--model", tmp_path / "model.h5"]
    result = run(example, "--quick", *args, cwd=tmp_path)
    expected = (
        f"{option}: expected a file to write, got an existing folder. Received: {str(tmp_path)!r}"
    )
    assert_refused(result, expected)


def test_an_output_below_a_file_is_refused_before_training(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    result = run("mnist_mlp.py", "--quick", "--out", tmp_path / "taken" / "m.h5", cwd=tmp_path)
    assert_refused(result, f"--out: {str(tmp_path / 'taken')!r} is a file, expected a folder")


def test_prepare_output_creates_missing_folders_and_checks_the_image_type(tmp_path):
    import argparse

    common = load_common()
    parser = argparse.ArgumentParser(prog="example")
    target = tmp_path / "a" / "b" / "model.h5"
    common.prepare_output(parser, "--out", str(target))
    assert target.parent.is_dir()
    assert not target.exists()  # nothing written yet: only the folder is made
    common.prepare_output(parser, "--out", None)  # no option, nothing to check
    if HAS_MATPLOTLIB:
        common.prepare_output(parser, "--plot", str(tmp_path / "c" / "p.png"), plot=True)
        assert (tmp_path / "c").is_dir()
        with pytest.raises(SystemExit):
            common.prepare_output(parser, "--plot", str(tmp_path / "p.nosuchtype"), plot=True)


# --- inputs and numbers ------------------------------------------------------------------
@pytest.mark.parametrize("example", ["mnist_mlp.py", "mnist_transfer.py", "transfer_digits.py"])
def test_a_missing_data_folder_is_refused_not_replaced_by_other_data(tmp_path, example):
    missing = tmp_path / "nonexistent"
    args = ["--data", missing]
    if example == "mnist_transfer.py":
        (tmp_path / "model.h5").touch()
        args += ["--model", tmp_path / "model.h5"]
    result = run(example, "--quick", *args, cwd=tmp_path)
    assert_refused(result, f"--data: no such file or folder. Received: {str(missing)!r}")


def test_mnist_transfer_refuses_a_missing_model_before_loading_data(tmp_path):
    result = run("mnist_transfer.py", "--quick", "--model", tmp_path / "absent.h5", cwd=tmp_path)
    missing = str(tmp_path / "absent.h5")
    assert_refused(result, f"--model: no such file or folder. Received: {missing!r}")


@pytest.mark.parametrize(
    ("example", "option", "value"),
    [
        ("transfer_digits.py", "--seeds", "0"),
        ("transfer_digits.py", "--epochs", "0"),
        ("transfer_digits.py", "--base-epochs", "-1"),
        ("mnist_mlp.py", "--epochs", "0"),
        ("mnist_transfer.py", "--epochs", "0"),
    ],
)
def test_counts_below_one_are_refused(tmp_path, example, option, value):
    result = run(example, option, value, cwd=tmp_path)
    assert_refused(result, f"argument {option}: expected an integer >= 1. Received: {value}")


def test_transfer_digits_help_says_what_plot_writes():
    result = run("transfer_digits.py", "--help")
    assert result.returncode == 0, result.stderr
    help_text = " ".join(result.stdout.split())
    assert "training curves of row 5 (fine-tuning)" in help_text
    assert "bar chart" not in help_text


@needs_mnist
def test_distributed_without_mpiexec_says_it_runs_on_one_rank(tmp_path):
    pytest.importorskip("mpi4py")
    result = run(
        "mnist_mlp.py",
        "--distributed",
        "--quick",
        "--data",
        mnist_folder(),
        "--out",
        tmp_path / "m.h5",
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "--distributed, but this process is the only rank (not started by mpiexec?)" in (
        result.stderr
    )
    assert "1 rank with test_accuracy=" in result.stdout
    assert "1 ranks" not in result.stdout
    assert "trained 1 epoch in " in result.stdout
