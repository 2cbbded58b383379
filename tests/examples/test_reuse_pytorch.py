"""``examples/reuse_pytorch.py`` runs end to end in ``--quick`` mode, from a PyTorch
``torch.save`` file and (``--no-torch``) from layerkit's own safetensors writer, and its
layerkit twin reproduces the source's logits.

The example runs as a subprocess, as a user runs it, on MNIST given by ``--data`` (never
a download); the MNIST tests skip when MNIST is absent.
"""

from __future__ import annotations

import re

import pytest
from example_runs import mnist_folder, needs_mnist, run

SUMMARY = re.compile(
    r"^source=(?P<source>\S+) source_accuracy_0_4=(?P<source_accuracy>[0-9.]+) "
    r"max_logit_difference=(?P<difference>[0-9.e+-]+) "
    r"transfer_accuracy_5_9=(?P<transfer>[0-9.]+)$"
)


@needs_mnist
@pytest.mark.parametrize(
    ("without_torch", "source", "file"),
    [(False, "pytorch", "mlp04.pt"), (True, "layerkit-safetensors", "mlp04.safetensors")],
    ids=["torch.save", "without-torch"],
)
def test_quick_run_reuses_the_lower_layers(tmp_path, without_torch, source, file):
    hide = None
    if without_torch:  # a `torch` that cannot be imported, first on the path
        hide = tmp_path / "no_torch"
        (hide / "torch").mkdir(parents=True)
        (hide / "torch" / "__init__.py").write_text("raise ImportError('no torch here')\n")
    result = run(
        "reuse_pytorch.py",
        "--quick",
        "--data",
        mnist_folder(),
        cwd=tmp_path,
        timeout=120,
        path=hide,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert f"written to {file}" in lines[0]
    assert "restored by order: 0 -> hidden1, 1 -> bn1, 3 -> hidden2, 5 -> outputs" in lines
    assert "restored [('0', 'hidden1'), ('1', 'bn1'), ('3', 'hidden2')], frozen " in result.stdout
    summary = SUMMARY.match(lines[-1])
    assert summary, lines[-1]
    assert summary["source"] == source
    assert float(summary["source_accuracy"]) > 0.9  # one epoch on digits 0-4
    # float32 against float32: PyTorch's and layerkit's sums differ in rounding only.
    assert float(summary["difference"]) < 1e-4
    if source != "pytorch":
        assert float(summary["difference"]) == 0.0  # the same code computed both
    assert 0.3 < float(summary["transfer"]) <= 1.0  # chance is 0.2
    assert "BatchNormalization" not in result.stderr  # eps and momentum match: no warning


def test_a_bad_epoch_count_is_refused_before_training(tmp_path):
    result = run("reuse_pytorch.py", "--epochs", "0", cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "error: argument --epochs: expected an integer >= 1. Received: 0" in result.stderr
    assert result.stdout == ""
