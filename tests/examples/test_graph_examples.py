"""The pretraining examples (functional graphs, shared layers, the frozen-output cache)
run end to end in ``--quick`` mode and print their table with sane numbers.

Each example runs as a subprocess, as a user runs it, on MNIST given by ``--data`` (never
a download); the tests skip when MNIST is absent. Each quick run takes a few seconds.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from example_runs import mnist_folder, needs_mnist, run

ROWS = (
    "same classifier from scratch",
    "reused encoder frozen, new output",
    "then fine-tuned (all layers, lr / 10)",
)
EXAMPLES = ("pretrain_auxiliary.py", "pretrain_autoencoder.py")
ROW = re.compile(
    r"^\| (?P<name>[^|]+) \| (?P<mean>[0-9.]+) \| (?P<low>[0-9.]+)-(?P<high>[0-9.]+) \|$"
)
SUMMARY = re.compile(
    r"^scratch=(?P<scratch>[0-9.]+) frozen=(?P<frozen>[0-9.]+) "
    r"fine_tuned=(?P<fine_tuned>[0-9.]+) cached_speedup=(?P<speedup>[0-9.]+)x$"
)
TIMES = re.compile(
    r"^pretraining: (?P<pretrain>[0-9.]+) s per seed; frozen phase: (?P<plain>[0-9.]+) s "
    r"with cache_frozen=False, (?P<cached>[0-9.]+) s with cache_frozen=True"
)


def assert_refused(result: subprocess.CompletedProcess, message: str) -> None:
    """An argparse error (status 2, usage and the message), before any training."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("usage: ")
    assert f"error: {message}" in result.stderr
    assert "Traceback" not in result.stderr
    assert "seed 0:" not in result.stdout


def quick_run(example: str, tmp_path, *extra) -> subprocess.CompletedProcess:
    result = run(example, "--quick", "--data", mnist_folder(), *extra, cwd=tmp_path, timeout=90)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result


def parse_table(stdout: str) -> dict[str, tuple[float, float, float]]:
    rows = {}
    for line in stdout.splitlines():
        match = ROW.match(line)
        if match:
            rows[match["name"]] = tuple(float(match[k]) for k in ("mean", "low", "high"))
    return rows


@needs_mnist
@pytest.mark.parametrize("example", EXAMPLES)
def test_quick_run_prints_the_table_with_sane_numbers(tmp_path, example):
    result = quick_run(example, tmp_path)
    lines = result.stdout.splitlines()
    assert "| setup | test accuracy (mean of 1) | min-max |" in lines
    assert "|---|---|---|" in lines
    rows = parse_table(result.stdout)
    assert list(rows) == list(ROWS)
    for name, (mean, low, high) in rows.items():
        assert 0.0 <= low <= mean <= high <= 1.0, name
        assert low == high == mean, name  # one seed: no range
    # Even one epoch on 1000 labels beats chance (10%) clearly.
    assert rows[ROWS[0]][0] > 0.3
    times = next(TIMES.match(line) for line in lines if TIMES.match(line))
    assert float(times["pretrain"]) > 0
    assert float(times["plain"]) > 0
    assert float(times["cached"]) > 0
    summary = SUMMARY.match(lines[-1])
    assert summary, lines[-1]
    assert float(summary["scratch"]) == pytest.approx(rows[ROWS[0]][0], abs=1e-4)
    assert float(summary["frozen"]) == pytest.approx(rows[ROWS[1]][0], abs=1e-4)
    assert float(summary["fine_tuned"]) == pytest.approx(rows[ROWS[2]][0], abs=1e-4)
    assert float(summary["speedup"]) > 0
    assert "note: frozen phase" not in result.stdout  # cached and uncached runs agree


@needs_mnist
def test_quick_auxiliary_run_is_reproducible(tmp_path):
    first = parse_table(quick_run("pretrain_auxiliary.py", tmp_path).stdout)
    second = parse_table(quick_run("pretrain_auxiliary.py", tmp_path).stdout)
    assert first == second


@needs_mnist
def test_options_given_with_quick_override_its_settings(tmp_path):
    result = quick_run("pretrain_auxiliary.py", tmp_path, "--pairs", "2000", "--seeds", "2")
    assert "Siamese pretraining (2000 pairs, 1 epochs)" in result.stdout
    assert "| setup | test accuracy (mean of 2) | min-max |" in result.stdout
    assert list(parse_table(result.stdout)) == list(ROWS)
    assert "seed 1:" in result.stdout


@pytest.mark.parametrize(
    ("example", "option", "value"),
    [
        ("pretrain_auxiliary.py", "--seeds", "0"),
        ("pretrain_auxiliary.py", "--pairs", "1"),
        ("pretrain_auxiliary.py", "--epochs", "0"),
        ("pretrain_autoencoder.py", "--seeds", "0"),
        ("pretrain_autoencoder.py", "--pretrain-epochs", "0"),
    ],
)
def test_bad_counts_are_refused_before_training(tmp_path, example, option, value):
    result = run(example, option, value, cwd=tmp_path)
    minimum = 2 if option == "--pairs" else 1
    assert_refused(
        result, f"argument {option}: expected an integer >= {minimum}. Received: {value}"
    )


def test_a_dropout_rate_of_one_or_more_is_refused(tmp_path):
    result = run("pretrain_autoencoder.py", "--noise", "1", cwd=tmp_path)
    assert_refused(result, "argument --noise: expected a rate in [0, 1). Received: 1.0")


@needs_mnist
def test_autoencoder_is_denoising_by_default_and_plain_with_noise_zero(tmp_path):
    denoising = quick_run("pretrain_autoencoder.py", tmp_path).stdout
    assert "Autoencoder pretraining (denoising (Dropout 0.5), 6000 unlabelled images" in denoising
    plain = quick_run("pretrain_autoencoder.py", tmp_path, "--noise", "0").stdout
    assert "Autoencoder pretraining (plain, 6000 unlabelled images, 1 epochs)" in plain
    assert list(parse_table(plain)) == list(ROWS)
    # The from-scratch row does not depend on the pretraining: same seed, same number.
    assert parse_table(plain)[ROWS[0]] == parse_table(denoising)[ROWS[0]]


@pytest.mark.parametrize("example", EXAMPLES)
def test_a_missing_data_folder_is_refused(tmp_path, example):
    missing = tmp_path / "nonexistent"
    result = run(example, "--quick", "--data", missing, cwd=tmp_path)
    assert_refused(result, f"--data: no such file or folder. Received: {str(missing)!r}")
