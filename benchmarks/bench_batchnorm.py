"""Side-by-side benchmark of layerkit's BatchNormalization against PyTorch eager (CPU) on
an MNIST MLP with batch normalisation after each hidden Dense layer:

    784 -> Dense(300, no bias) -> BN -> relu -> Dense(100, no bias) -> BN -> relu -> 10

one training epoch (60,000 samples, batch 64, Adam 1e-3). PyTorch uses
``nn.BatchNorm1d(momentum=0.01, eps=1e-3)``, the same numbers as Keras's (and layerkit's)
``momentum=0.99, epsilon=1e-3``, and Adam with Keras's ``epsilon=1e-7``.

Each measurement runs in its own process, implementations alternate within each round,
and the table reports medians over the rounds and ratios to PyTorch measured in the same
round (the machine's speed drifts; pairs from one round are steadier than medians).
``layerkit-nobn`` is the same MLP with biases and no BatchNormalization: what the two
BN layers cost on top of it.

Run:
    LAYERKIT_DATA=../shared/data python benchmarks/bench_batchnorm.py --rounds 3
    python benchmarks/bench_batchnorm.py --rounds 3 --threads 1   # on a busy machine
    python benchmarks/bench_batchnorm.py --profile        # cProfile of one layerkit epoch
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
from _stats import med, paired_ratio

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = (784, 300, 100, 10)
BATCH = 64
TARGET = 0.6  # layerkit's epoch at most this fraction of PyTorch's


# --- data ------------------------------------------------------------------------------
def load(n_train: int | None = None):
    sys.path.insert(0, os.path.dirname(HERE))
    from layerkit.datasets import mnist

    data = os.environ.get("LAYERKIT_DATA") or os.path.join(HERE, "..", "..", "shared", "data")
    (x, y), _ = mnist.load_data(os.path.join(data, "mnist"))
    x = (x.reshape(len(x), -1).astype(np.float32) / np.float32(255))[:n_train]
    return x, y[:n_train].astype(np.int64)


# --- workers: each returns a dict of measurements ---------------------------------------
def layerkit_model(batchnorm: bool = True):
    import layerkit as lk

    layers = [lk.layers.Input((SIZES[0],))]
    for i, units in enumerate(SIZES[1:-1]):
        if batchnorm:
            layers += [
                lk.layers.Dense(units, use_bias=False, name=f"hidden{i + 1}"),
                lk.layers.BatchNormalization(name=f"bn{i + 1}"),
                lk.layers.Activation("relu", name=f"relu{i + 1}"),
            ]
        else:
            layers.append(lk.layers.Dense(units, activation="relu", name=f"hidden{i + 1}"))
    layers.append(lk.layers.Dense(SIZES[-1], name="outputs"))
    model = lk.Sequential(layers)
    model.compile(
        optimizer=lk.optim.Adam(1e-3),
        loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def work_layerkit(args):
    import layerkit as lk

    lk.utils.set_random_seed(0)
    x, y = load(args.get("n"))
    model = layerkit_model(args.get("batchnorm", True))
    model.fit(x[:256], y[:256], batch_size=BATCH, epochs=1, verbose=0)  # warm-up
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    return {"seconds": time.perf_counter() - start}


def work_torch(args):
    import torch

    torch.manual_seed(0)
    x, y = load(args.get("n"))
    layers = []
    for a, b in itertools.pairwise(SIZES[:-1]):
        layers += [
            torch.nn.Linear(a, b, bias=False),
            torch.nn.BatchNorm1d(b, momentum=0.01, eps=1e-3),
            torch.nn.ReLU(),
        ]
    layers.append(torch.nn.Linear(SIZES[-2], SIZES[-1]))
    model = torch.nn.Sequential(*layers).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    X, Y = torch.from_numpy(x), torch.from_numpy(y)

    def epoch(inputs, labels):
        order = torch.randperm(len(inputs))
        for lo in range(0, len(inputs), BATCH):
            idx = order[lo : lo + BATCH]
            if len(idx) < 2:  # BatchNorm1d refuses a batch of one in training
                continue
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs[idx]), labels[idx])
            loss.backward()
            optimizer.step()

    epoch(X[:256], Y[:256])  # warm-up
    start = time.perf_counter()
    epoch(X, Y)
    return {"seconds": time.perf_counter() - start}


WORKERS = {
    "layerkit": work_layerkit,
    "torch": work_torch,
    "layerkit-nobn": lambda args: work_layerkit({**args, "batchnorm": False}),
}


def profile_layerkit(top: int) -> None:
    """cProfile of one layerkit epoch (after the warm-up), top functions by own time."""
    import cProfile
    import pstats

    import layerkit as lk

    lk.utils.set_random_seed(0)
    x, y = load()
    model = layerkit_model()
    model.fit(x[:256], y[:256], batch_size=BATCH, epochs=1, verbose=0)
    profiler = cProfile.Profile()
    profiler.enable()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    profiler.disable()
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


# --- driver ----------------------------------------------------------------------------
def run_worker(impl: str, args: dict, threads: int | None = None) -> dict | None:
    command = [sys.executable, os.path.abspath(__file__), "--worker", impl, json.dumps(args)]
    env = dict(os.environ)
    if threads:  # numpy's OpenBLAS and PyTorch's OpenMP pools alike
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        print(f"  {impl} failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def available(module: str) -> bool:
    return (
        subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode
        == 0
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, default=None, help="training samples (60,000)")
    parser.add_argument("--profile", action="store_true", help="cProfile one layerkit epoch")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="BLAS / OpenMP threads per worker (default: as the environment says); on a "
        "busy machine, spinning thread pools make every figure meaningless: use 1",
    )
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        impl, args = options.worker
        print(json.dumps(WORKERS[impl](json.loads(args))))
        return
    if options.profile:
        profile_layerkit(options.top)
        return

    impls = ["layerkit", "layerkit-nobn"]
    if available("torch"):
        impls.append("torch")
    else:
        print("(skipped peer, not installed: torch)")
    print(
        f"# BatchNormalization benchmark, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
        f"{options.rounds} rounds (medians), "
        f"threads per worker: {options.threads or 'as the environment says'}"
    )
    args = {"n": options.n}
    results: dict[str, list] = {impl: [] for impl in impls}
    for _ in range(options.rounds):
        for impl in impls:  # alternate: drift in machine speed hits everyone alike
            results[impl].append(run_worker(impl, args, options.threads))
    n = options.n or 60000
    print(
        f"\n## One training epoch, MLP {'-'.join(map(str, SIZES))} with BatchNormalization "
        f"after each hidden Dense ({n:,} samples, batch {BATCH}, Adam)\n"
    )
    reference = "torch" if "torch" in impls else "layerkit"
    print(f"| implementation | seconds per epoch | ratio to {reference} (same round) |")
    print("|---|---|---|")
    for impl in impls:
        ratio, low, high = paired_ratio(results, impl, reference)
        print(f"| {impl} | {med(results[impl]):.3f} | {ratio:.2f}x ({low:.2f}-{high:.2f}) |")
    ratio, low, high = paired_ratio(results, "layerkit-nobn", "layerkit")
    print(f"\nlayerkit without BN / with BN: {ratio:.2f}x ({low:.2f}-{high:.2f})")
    if "torch" in impls:
        ratio, low, high = paired_ratio(results, "layerkit", "torch")
        verdict = "meets" if ratio <= TARGET else "misses"
        print(
            f"layerkit / PyTorch: {ratio:.2f}x ({low:.2f}-{high:.2f}): {verdict} the target "
            f"of {TARGET}x"
        )


if __name__ == "__main__":
    main()
