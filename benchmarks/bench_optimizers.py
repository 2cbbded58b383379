"""Optimizer step alone: layerkit's fused (numba) updates against its numpy fallback and
PyTorch's ``foreach`` and ``fused`` implementations, on the 784x300 kernel and on the
whole seed MLP (784-300-50-50-50-50-10, 258,710 weights in 12 arrays).

Each implementation runs in its own process (PyTorch's thread pool and numpy's must not
share one), implementations alternate within each round, and the table reports medians
over the rounds of microseconds per step. Every step first copies a fixed gradient in
(the numpy fallback uses the gradient buffer as scratch); the copy's own time, measured
alike, is subtracted.

Run:
    python benchmarks/bench_optimizers.py                  # 3 rounds
    python benchmarks/bench_optimizers.py --rounds 5 --only adam rmsprop
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
from _stats import med

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = (784, 300, 50, 50, 50, 50, 10)
SHAPES = {
    "784x300": [(784, 300)],
    "MLP": [s for a, b in itertools.pairwise(SIZES) for s in ((a, b), (b,))],
}
# name: (layerkit constructor, PyTorch constructor or None, does PyTorch have fused=)
OPTIMIZERS = {
    "sgd": ("SGD(0.01)", "SGD(p, lr=0.01)", True),
    "sgd_momentum": ("SGD(0.01, momentum=0.9)", "SGD(p, lr=0.01, momentum=0.9)", True),
    "sgd_nesterov": (
        "SGD(0.01, momentum=0.9, nesterov=True)",
        "SGD(p, lr=0.01, momentum=0.9, nesterov=True)",
        True,
    ),
    "rmsprop": ("RMSprop()", "RMSprop(p, lr=0.001, alpha=0.9, eps=1e-7)", False),
    "adagrad": (
        "Adagrad()",
        "Adagrad(p, lr=0.001, initial_accumulator_value=0.1, eps=1e-7)",
        True,
    ),
    "adadelta": ("Adadelta()", "Adadelta(p, lr=0.001, rho=0.95, eps=1e-7)", False),
    "adam": ("Adam()", "Adam(p, lr=0.001, eps=1e-7)", True),
    "adamw": ("AdamW()", "AdamW(p, lr=0.001, eps=1e-7, weight_decay=0.004)", True),
    "adamax": ("Adamax()", "Adamax(p, lr=0.001, eps=1e-7)", False),
    "nadam": ("Nadam()", "NAdam(p, lr=0.001, eps=1e-7)", False),
    "lion": ("Lion()", None, False),
}


def _timed(step, refresh, repeats=7, number=None):
    """Median microseconds of ``step()`` net of ``refresh()`` (called before each step)."""

    def run(n, with_step):
        start = time.perf_counter()
        for _ in range(n):
            refresh()
            if with_step:
                step()
        return (time.perf_counter() - start) / n

    for _ in range(5):
        refresh()
        step()
    number = number or max(20, int(0.05 / max(run(5, True), 1e-6)))
    gross = sorted(run(number, True) for _ in range(repeats))[repeats // 2]
    copy = sorted(run(number, False) for _ in range(repeats))[repeats // 2]
    return (gross - copy) * 1e6


def work_layerkit(kernels: str, names) -> dict:
    sys.path.insert(0, os.path.dirname(HERE))
    import layerkit as lk
    from layerkit.parameter import Parameter, pack

    lk.backend.set_kernels(kernels)
    rng = np.random.default_rng(0)
    result = {}
    for name, (shapes_name, shapes) in itertools.product(names, SHAPES.items()):
        parameters = tuple(
            Parameter(f"p{i}", rng.standard_normal(s).astype(np.float32) * 0.05)
            for i, s in enumerate(shapes)
        )
        pack(parameters, np.dtype(np.float32))  # as a model's arena: one flat run
        grads = rng.standard_normal(parameters[0].arena.grads.shape).astype(np.float32)
        optimizer = eval("lk.optim." + OPTIMIZERS[name][0])  # a fixed table above
        arena = parameters[0].arena.grads
        result[f"{name}/{shapes_name}"] = _timed(
            lambda o=optimizer, p=parameters: o.apply(p),
            lambda a=arena, g=grads: np.copyto(a, g),
        )
    return result


def work_torch(mode: str, names) -> dict:
    import torch

    torch.manual_seed(0)
    result = {}
    for name, (shapes_name, shapes) in itertools.product(names, SHAPES.items()):
        spec, fused_exists = OPTIMIZERS[name][1], OPTIMIZERS[name][2]
        if spec is None or (mode == "fused" and not fused_exists):
            continue
        p = [torch.nn.Parameter(torch.randn(s) * 0.05) for s in shapes]
        grads = [torch.randn(s) for s in shapes]
        for q, g in zip(p, grads):
            q.grad = g.clone()
        head, _, rest = spec.partition("(")
        optimizer = eval(f"torch.optim.{head}({rest[:-1]}, {mode}=True)")

        def refresh(p=p, grads=grads):
            torch._foreach_copy_([q.grad for q in p], grads)

        try:
            result[f"{name}/{shapes_name}"] = _timed(optimizer.step, refresh)
        except RuntimeError as error:  # a fused kernel missing on this build's CPU
            print(f"torch {mode} {name}: {error}", file=sys.stderr)
    return result


WORKERS = {
    "layerkit": lambda names: work_layerkit("numba", names),
    "layerkit-numpy": lambda names: work_layerkit("numpy", names),
    "torch-foreach": lambda names: work_torch("foreach", names),
    "torch-fused": lambda names: work_torch("fused", names),
}


def run_worker(impl: str, names) -> dict | None:
    command = [sys.executable, os.path.abspath(__file__), "--worker", impl, json.dumps(names)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  {impl} failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=list(OPTIMIZERS))
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        impl, names = options.worker
        print(json.dumps(WORKERS[impl](json.loads(names))))
        return
    has_numba = subprocess.run([sys.executable, "-c", "import numba"]).returncode == 0
    has_torch = subprocess.run([sys.executable, "-c", "import torch"]).returncode == 0
    impls = ["layerkit"] if has_numba else []
    impls += ["layerkit-numpy"] + (["torch-foreach", "torch-fused"] if has_torch else [])
    print(
        f"# optimizer step, {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, "
        f"{os.cpu_count()} cores, numpy {np.__version__}, {options.rounds} rounds (medians, "
        "microseconds per step)"
    )
    if not has_numba:
        print("(numba not installed: the fused column is missing)")
    results = {impl: [] for impl in impls}
    for _ in range(options.rounds):
        for impl in impls:
            results[impl].append(run_worker(impl, options.only))
    print()
    print(
        "| optimizer | weights | " + " | ".join(impls) + " | numpy / fused | torch best / fused |"
    )
    print("|---|---|" + "---|" * (len(impls) + 2))
    for name, shapes_name in itertools.product(options.only, SHAPES):
        key = f"{name}/{shapes_name}"
        times = {impl: med([r for r in results[impl] if r and key in r], key) for impl in impls}
        cells = " | ".join("-" if np.isnan(t) else f"{t:.0f}" for t in times.values())
        fused = times.get("layerkit", float("nan"))
        torch_best = min(
            (t for i, t in times.items() if i.startswith("torch") and not np.isnan(t)),
            default=float("nan"),
        )
        ratios = [times["layerkit-numpy"] / fused, torch_best / fused]
        ratio_cells = " | ".join("-" if np.isnan(r) else f"{r:.2f}x" for r in ratios)
        print(f"| {name} | {shapes_name} | {cells} | {ratio_cells} |")


if __name__ == "__main__":
    main()
