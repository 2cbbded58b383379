"""Training from a file bigger than memory: one epoch of the classic MNIST MLP read from
an HDF5 file against the same rows in memory, the transfer model with its frozen-output
cache on disk against the cache in memory, and time per epoch against rows.

The MNIST training set is tiled to ``--rows`` rows (20 times: 1.2 million rows, float32,
~3.8 GB), written to an HDF5 file in ``--dir`` (removed at the end). Each measurement runs
in its own process, which reports its epoch time and its peak resident memory (``ru_maxrss``:
the in-memory runs hold the whole array, the disk runs only their windows).

Run:
    python benchmarks/bench_streaming.py                         # 1.2M rows: ~3.8 GB on disk
    python benchmarks/bench_streaming.py --rows 120000 --scaling 30000 60000 120000
    python benchmarks/bench_streaming.py --only disk --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from _stats import med, paired

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CHUNK_ROWS = 1024


# --- the data file ----------------------------------------------------------------------
def mnist_rows():
    sys.path.insert(0, ROOT)
    from layerkit.datasets import mnist

    data = os.environ.get("LAYERKIT_DATA") or os.path.join(ROOT, "..", "shared", "data")
    (x, y), _ = mnist.load_data(os.path.join(data, "mnist"))
    return (x.reshape(len(x), -1).astype(np.float32) / np.float32(255)), y.astype(np.int64)


def write_file(path: str, rows: int) -> None:
    """MNIST tiled to ``rows`` rows, written block by block (never all in memory)."""
    import h5py

    x, y = mnist_rows()
    with h5py.File(path, "w") as f:
        dx = f.create_dataset("x", (rows, x.shape[1]), "float32", chunks=(CHUNK_ROWS, x.shape[1]))
        dy = f.create_dataset("y", (rows,), "int64")
        for lo in range(0, rows, len(x)):
            hi = min(rows, lo + len(x))
            dx[lo:hi] = x[: hi - lo]
            dy[lo:hi] = y[: hi - lo]


# --- one measurement (in a child process) ---------------------------------------------------
def model(kind: str):
    import layerkit as lk

    lk.utils.set_random_seed(0)
    if kind == "mlp":  # Keras's mnist_mlp example
        m = lk.Sequential(
            [
                lk.layers.Input((784,)),
                lk.layers.Dense(512, activation="relu"),
                lk.layers.Dropout(0.2),
                lk.layers.Dense(512, activation="relu"),
                lk.layers.Dropout(0.2),
                lk.layers.Dense(10, activation="softmax"),
            ]
        )
        m.compile("rmsprop", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return m
    # the transfer model: a frozen 784-300-50 body under a trainable 50-10 head
    m = lk.Sequential(
        [
            lk.layers.Input((784,)),
            lk.layers.Dense(300, activation="relu", name="body1"),
            lk.layers.Dense(50, activation="relu", name="body2"),
            lk.layers.Dense(10, activation="softmax", name="head"),
        ]
    )
    m.freeze("body[12]")
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def child(args) -> dict:
    import h5py

    sys.path.insert(0, ROOT)
    f = h5py.File(args.file, "r")
    rows = args.rows
    y = f["y"][:rows]
    if args.source == "memory":
        x = f["x"][:rows]
    else:
        x = f["x"] if rows == f["x"].shape[0] else None
        if x is None:  # a prefix of the file: a view that reads only those rows
            from layerkit.models.disk import DiskArray

            x = DiskArray.inputs(f["x"], "x", None).view(0, rows)
    m = model(args.model)
    fit = dict(batch_size=128, epochs=1, verbose=0)
    if args.model == "transfer":
        fit["cache_frozen"] = True if args.source == "memory" else "auto"
        if args.source == "disk":
            fit["cache_max_bytes"] = 0  # the cache goes to a file next to the data
    start = time.perf_counter()
    history = m.fit(x, y, **fit)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loss": history.history["loss"][0],
    }


def measure(file: str, source: str, kind: str, rows: int) -> dict | None:
    command = [sys.executable, __file__, "--child", file, source, kind, str(rows)]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
    if done.returncode != 0:
        print(f"  {source} {kind} {rows}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the tables ---------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_200_000)
    parser.add_argument("--scaling", type=int, nargs="*", default=[60_000, 300_000, 1_200_000])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the file goes")
    parser.add_argument("--only", nargs="*", default=["disk", "cache", "scaling"])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        file, source, kind, rows = args.child
        ns = argparse.Namespace(file=file, source=source, model=kind, rows=int(rows))
        print(json.dumps(child(ns)))
        return
    rows = max([args.rows, *(r for r in args.scaling if "scaling" in args.only)])
    need = rows * 784 * 4
    free = shutil.disk_usage(args.dir).free
    if need * 1.3 > free:  # the file and the frozen cache beside it
        sys.exit(f"{args.dir} has {free / 1e9:.1f} GB free; the file needs {need / 1e9:.1f} GB.")
    folder = tempfile.mkdtemp(prefix="layerkit-bench-streaming-", dir=args.dir)
    file = os.path.join(folder, "mnist_tiled.h5")
    try:
        started = time.perf_counter()
        write_file(file, rows)
        print(f"wrote {rows:,} rows ({need / 1e9:.2f} GB) in {time.perf_counter() - started:.0f} s")
        print(f"{os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}\n")
        if "disk" in args.only or "cache" in args.only:
            print(
                "| model | rows | source | epoch (s) | rows/s | peak RSS MB | loss | disk/memory |"
            )
            print("|---|---|---|---|---|---|---|---|")
        for kind in [k for k, o in (("mlp", "disk"), ("transfer", "cache")) if o in args.only]:
            res = {"memory": [], "disk": []}
            for _ in range(args.rounds):
                for source in ("memory", "disk"):
                    res[source].append(measure(file, source, kind, args.rows))
            ratio = paired(
                [{"s": 1 / r["seconds"]} if r else None for r in res["disk"]],
                [{"s": 1 / r["seconds"]} if r else None for r in res["memory"]],
                "s",
            )
            for source in ("memory", "disk"):
                done = [r for r in res[source] if r]
                if not done:
                    continue
                speed = (
                    f"{ratio[0]:.2f}x ({ratio[1]:.2f}-{ratio[2]:.2f})" if source == "disk" else ""
                )
                label = (
                    "disk (cache on disk)" if kind == "transfer" and source == "disk" else source
                )
                print(
                    f"| {kind} | {args.rows:,} | {label} "
                    f"| {med(done):.2f} | {med(done, 'rows_per_s'):,.0f} "
                    f"| {med(done, 'peak_mb'):.0f} | {done[0]['loss']:.5f} | {speed} |"
                )
        if "scaling" in args.only:
            print("\n| rows | disk (s) | memory (s) | disk per 100k (s) | memory per 100k (s) |")
            print("|---|---|---|---|---|")
            for n in args.scaling:
                d = [measure(file, "disk", "mlp", n) for _ in range(args.rounds)]
                m = [measure(file, "memory", "mlp", n) for _ in range(args.rounds)]
                print(
                    f"| {n:,} | {med(d):.2f} | {med(m):.2f} | {med(d) / n * 1e5:.3f} "
                    f"| {med(m) / n * 1e5:.3f} |"
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
