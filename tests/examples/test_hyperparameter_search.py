"""examples/hyperparameter_search.py runs end to end in ``--quick`` mode: scikit-learn's
RandomizedSearchCV over SKLearnClassifier candidates, the best one retrained with
TensorBoard logs and drawn with plot_model; the same seed prints the same figures.

The example runs as a subprocess, as a user runs it, on MNIST given by ``--data`` (never
a download); the tests skip when MNIST is absent.
"""

from __future__ import annotations

import re

from example_runs import mnist_folder, needs_mnist, run

ROW = re.compile(
    r"^\| (?P<rank>\d+) \| (?P<hidden>\d+) \| (?P<neurons>\d+) \| (?P<rate>[0-9.e+-]+) "
    r"\| (?P<mean>[0-9.]+) ± (?P<std>[0-9.]+) \| [0-9.]+ \|$"
)
LAST = re.compile(r"^best_cv_accuracy=(?P<cv>[0-9.]+) test_accuracy=(?P<test>[0-9.]+)$")


def quick(tmp_path, name: str):
    result = run(
        "hyperparameter_search.py",
        "--quick",
        "--data",
        mnist_folder(),
        "--seed",
        "3",
        "--plot",
        tmp_path / name / "best.png",
        "--logdir",
        tmp_path / name / "logs",
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result.stdout


def figures(stdout: str):
    rows = [ROW.match(line) for line in stdout.splitlines()]
    rows = [m.groupdict() for m in rows if m]
    last = LAST.match(stdout.splitlines()[-1])
    assert last, stdout
    return rows, {k: float(v) for k, v in last.groupdict().items()}


@needs_mnist
def test_quick_search_ranks_candidates_and_writes_plot_and_logs(tmp_path):
    from tensorboard.backend.event_processing import plugin_event_accumulator
    from tensorboard.util import tensor_util

    first = quick(tmp_path, "a")
    rows, last = figures(first)
    assert [int(r["rank"]) for r in rows] == [1, 2, 3]  # 3 candidates, best first
    means = [float(r["mean"]) for r in rows]
    assert means == sorted(means, reverse=True)
    assert last["cv"] == means[0]
    assert 0.1 <= last["test"] <= 1.0
    for r in rows:
        assert 0 <= int(r["hidden"]) <= 3
        assert 1e-4 <= float(r["rate"]) <= 1e-2
    assert (tmp_path / "a" / "best.png").read_bytes().startswith(b"\x89PNG")
    accumulator = plugin_event_accumulator.EventAccumulator(str(tmp_path / "a" / "logs" / "train"))
    accumulator.Reload()
    accuracy = accumulator.Tensors("epoch_accuracy")
    assert [e.step for e in accuracy] == [0, 1]  # --quick: 2 epochs
    assert all(0.0 <= tensor_util.make_ndarray(e.tensor_proto) <= 1.0 for e in accuracy)
    # The same seed: the same candidates, fold scores and test accuracy.
    second = quick(tmp_path, "b")
    rows_b, last_b = figures(second)
    assert rows_b == rows
    assert last_b == last


def test_a_log_folder_that_is_a_file_is_refused_before_training(tmp_path):
    (tmp_path / "taken").write_text("")
    result = run("hyperparameter_search.py", "--logdir", tmp_path / "taken", cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "error: --logdir: expected a folder, got a file." in result.stderr
    assert "candidates" not in result.stdout
