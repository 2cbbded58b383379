"""Data-parallel training on one machine: 1 process with 2 BLAS threads against 2 MPI ranks
with 1 BLAS thread each, on the seed MLP (784-300-50-50-50-50-10, ReLU, Adam, batch 64,
one epoch of the 60,000 MNIST training images), with the time spent in the gradient
Allreduce. Prints Markdown tables of medians.

Each measurement runs in its own process (or ``mpiexec`` job) with its BLAS thread count
set in that command's environment only. Needs ``pip install "layerkit[mpi]"``.

Run:
    python benchmarks/bench_distributed.py                 # 3 rounds
    python benchmarks/bench_distributed.py --rounds 5 --oversubscribed
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SIZES = (784, 300, 50, 50, 50, 50, 10)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# --- workers -----------------------------------------------------------------------------
def load(n: int | None):
    import numpy as np

    from layerkit.datasets import mnist

    data = os.environ.get("LAYERKIT_DATA") or os.path.join(ROOT, "..", "shared", "data")
    (x, y), _ = mnist.load_data(os.path.join(data, "mnist"))
    x = x.reshape(len(x), -1).astype(np.float32) / np.float32(255)
    return x[:n], y[:n].astype(np.int64)


def seed_mlp():
    import layerkit as lk

    layers = [lk.layers.Input((SIZES[0],))]
    for i, units in enumerate(SIZES[1:-1]):
        layers.append(lk.layers.Dense(units, activation="relu", name=f"hidden{i + 1}"))
    layers.append(lk.layers.Dense(SIZES[-1], name="outputs"))
    model = lk.Sequential(layers)
    model.compile(
        optimizer=lk.optim.Adam(1e-3),
        loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def work_train(args: dict) -> dict | None:
    """One timed epoch (after a short warm-up), distributed when run under mpiexec."""
    import layerkit as lk

    strategy = lk.distributed.MPI() if args.get("distributed") else None
    lk.utils.set_random_seed(0)
    x, y = load(args.get("n"))
    batch = args.get("batch", 64)
    model = seed_mlp()
    model.fit(x[:512], y[:512], batch_size=batch, epochs=1, verbose=0, distribute=strategy)
    spent_before = strategy.allreduce_seconds if strategy else 0.0
    steps_before = strategy.allreduce_steps if strategy else 0
    if strategy:
        strategy.barrier()  # start the clocks together
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, distribute=strategy)
    seconds = time.perf_counter() - start
    steps = -(-len(x) // batch)
    out = {"seconds": seconds, "steps": steps, "allreduce_seconds": 0.0}
    if strategy:
        assert strategy.allreduce_steps - steps_before == steps
        spent = strategy.allreduce_seconds - spent_before
        # The slowest rank sets the pace: report the epoch time of the slowest and the
        # Allreduce time of the one that waited least (the transfer, not the waiting).
        everyone = strategy.comm.allgather((seconds, spent))
        out.update(
            seconds=max(s for s, _ in everyone), allreduce_seconds=min(a for _, a in everyone)
        )
        if not strategy.is_chief:
            return None
    return out


def work_allreduce(args: dict) -> dict | None:
    """The Allreduce alone, over a buffer the size of the seed MLP's gradients."""
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    size = sum(a * b + b for a, b in itertools.pairwise(SIZES))
    grads = np.ones(size, np.float32)
    times = []
    for i in range(args.get("repeats", 300)):
        comm.Barrier()
        start = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, grads, op=MPI.SUM)
        if i >= 20:  # warm-up
            times.append(time.perf_counter() - start)
    if comm.Get_rank():
        return None
    return {"median": statistics.median(times), "elements": size}


def work_steps(args: dict) -> dict:
    """Compute time per training step against batch size, one process."""
    import layerkit as lk

    lk.utils.set_random_seed(0)
    x, y = load(12800)
    out = {}
    for batch in args["batches"]:
        model = seed_mlp()
        model.fit(x[:1024], y[:1024], batch_size=batch, epochs=1, verbose=0)
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        out[str(batch)] = (time.perf_counter() - start) / -(-len(x) // batch)
    return out


WORKERS = {"train": work_train, "allreduce": work_allreduce, "steps": work_steps}


# --- driver ------------------------------------------------------------------------------
def find_mpiexec() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    path = beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")
    if path is None:
        raise SystemExit('No mpiexec next to Python or on PATH: pip install "layerkit[mpi]"')
    return path


def run(task: str, args: dict, ranks: int = 0, threads: int | None = 1) -> dict:
    """Runs a worker with ``threads`` BLAS threads (None: unset), under ``mpiexec -n
    ranks`` when ``ranks`` > 0; the thread count goes in this command's environment only."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    for name in THREAD_VARIABLES:
        env.pop(name, None)
        if threads is not None:
            env[name] = str(threads)
    command = [sys.executable, os.path.abspath(__file__), "--worker", task, json.dumps(args)]
    if ranks:
        command = [find_mpiexec(), "-n", str(ranks), *command]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{task} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--oversubscribed",
        action="store_true",
        help="also 2 ranks with BLAS threads left unset (slow: one round, 6,000 samples)",
    )
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        out = WORKERS[options.worker[0]](json.loads(options.worker[1]))
        if out is not None:
            print(json.dumps(out))
        return

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"# layerkit data-parallel benchmark, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{platform.machine()}, {os.cpu_count()} cores, load average {load:.2f} at the start, "
        f"{options.rounds} rounds (medians)"
    )
    if load > 0.5:
        print(
            "(other work is running: BLAS threads that wait for a busy core spin, so the "
            "2-thread figures suffer most)"
        )
    setups = [
        ("1 process, 2 BLAS threads", {}, 0, 2),
        ("1 process, 1 BLAS thread", {}, 0, 1),
        ("2 ranks x 1 BLAS thread", {"distributed": True}, 2, 1),
    ]
    results: dict[str, list[dict]] = {label: [] for label, *_ in setups}
    for _ in range(options.rounds):
        for label, args, ranks, threads in setups:  # alternate: drift hits all alike
            results[label].append(run("train", args, ranks, threads))
    if options.oversubscribed:
        label = "2 ranks, BLAS threads unset (6,000 samples)"
        setups.append((label, {}, 2, None))
        results[label] = [run("train", {"distributed": True, "n": 6000}, 2, None)]

    base = statistics.median(r["seconds"] for r in results[setups[0][0]])
    print("\n## One epoch of the seed MLP (60,000 samples, batch 64, Adam)\n")
    print("| setup | seconds per epoch | ms per step | of which Allreduce (ms) | speed-up |")
    print("|---|---|---|---|---|")
    for label, *_ in setups:
        runs = results[label]
        seconds = statistics.median(r["seconds"] for r in runs)
        step = statistics.median(r["seconds"] / r["steps"] for r in runs) * 1e3
        reduce = statistics.median(r["allreduce_seconds"] / r["steps"] for r in runs) * 1e3
        scaled = seconds * 60000 / 6000 if "6,000" in label else seconds
        print(f"| {label} | {scaled:.2f} | {step:.2f} | {reduce:.3f} | {base / scaled:.2f}x |")

    alone = statistics.median(run("allreduce", {}, 2, 1)["median"] for _ in range(options.rounds))
    print(
        f"\nAllreduce of the 258,710 float32 gradients (1.03 MB) alone, 2 ranks on this "
        f"machine (shared memory): {alone * 1e6:.0f} us. The Allreduce time in the table "
        "also holds waiting for the slower rank."
    )

    batches = [16, 32, 64, 128, 256, 512]
    steps = [run("steps", {"batches": batches}, 0, 1) for _ in range(options.rounds)]
    print("\n## Compute time per step against batch size (1 process, 1 BLAS thread)\n")
    print("| batch | ms per step | us per sample |")
    print("|---|---|---|")
    compute = {}
    for batch in batches:
        compute[batch] = statistics.median(s[str(batch)] for s in steps)
        print(f"| {batch} | {compute[batch] * 1e3:.3f} | {compute[batch] * 1e6 / batch:.1f} |")
    print_network_model(compute)


# --- a model of N machines ---------------------------------------------------------------
# Assumed one-way latency of a small message: TCP over 1 and 10 Gbit/s Ethernet, RDMA at 100.
NETWORKS = {"1 Gbit/s": (1e9, 50e-6), "10 Gbit/s": (10e9, 20e-6), "100 Gbit/s": (100e9, 5e-6)}
GRADIENT_BYTES = 258_710 * 4


def ring_allreduce(ranks: int, nbytes: float, bits_per_second: float, latency: float) -> float:
    """Seconds for a ring Allreduce: 2(N-1) rounds, each moving nbytes / N per link."""
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) * latency + 2 * (ranks - 1) / ranks * nbytes * 8 / bits_per_second


def print_network_model(compute: dict[int, float]) -> None:
    """Step time of N machines from the measured compute time t(b) = a + c b (a line
    through the measurements from batch 64 up) and a ring Allreduce over the network.
    Strong scaling: the global batch B is split, so each machine computes B / N rows."""
    points = [(b, t) for b, t in compute.items() if b >= 64]
    mean_b = statistics.fmean(b for b, _ in points)
    mean_t = statistics.fmean(t for _, t in points)
    c = sum((b - mean_b) * (t - mean_t) for b, t in points) / sum(
        (b - mean_b) ** 2 for b, _ in points
    )
    a = mean_t - c * mean_b
    print(f"\n## A model of N machines (fit: t(b) = {a * 1e3:.2f} ms + b x {c * 1e6:.1f} us)\n")
    print(f"Step time in ms for the global batch of 64 (1 machine: {(a + c * 64) * 1e3:.2f} ms):\n")
    print("| network | N | Allreduce | step | speed-up | efficiency |")
    print("|---|---|---|---|---|---|")
    for name, (bandwidth, latency) in NETWORKS.items():
        for ranks in (2, 4, 8):
            reduce = ring_allreduce(ranks, GRADIENT_BYTES, bandwidth, latency)
            step = a + c * 64 / ranks + reduce
            speedup = (a + c * 64) / step
            print(
                f"| {name} | {ranks} | {reduce * 1e3:.3f} | {step * 1e3:.3f} | "
                f"{speedup:.2f}x | {speedup / ranks:.0%} |"
            )
    print("\nSmallest global batch for 80% efficiency; models m times the seed MLP's")
    print("258,710 parameters (compute per sample and gradient bytes both x m):\n")
    print("| network | N | m = 1 | m = 10 | m = 100 | m -> infinity |")
    print("|---|---|---|---|---|---|")
    for name, (bandwidth, latency) in NETWORKS.items():
        for ranks in (2, 4, 8):
            cells = []
            for m in (1, 10, 100, None):
                if m is None:  # a and latency negligible: B = 4 x 2(N-1) x 32 bits / (bw c/P)
                    batch = 4 * 2 * (ranks - 1) * 32 / bandwidth / (c / 258_710)
                else:
                    reduce = ring_allreduce(ranks, GRADIENT_BYTES * m, bandwidth, latency)
                    # (a + c m B) / (N a + c m B + N reduce) >= 0.8, solved for B
                    batch = (0.8 * ranks * (a + reduce) - a) / (0.2 * c * m)
                cells.append(f"{max(batch, ranks):,.0f}")
            print(f"| {name} | {ranks} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
