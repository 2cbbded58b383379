"""layerkit's Functional API against PyTorch eager on two multi-input graphs: one training
epoch of each.

- **wide & deep** (Hands-On ML ch. 10): a wide input of 5 features and a deep input of 6
  -> Dense 30 relu -> Dense 30 relu, concatenated with the wide input, -> Dense 1; MSE,
  SGD (learning rate 0.01), 11,610 random samples (California housing's training-set
  size), batch 32.
- **siamese "same digit?"**: two 784-pixel MNIST images through one shared encoder
  (784-100-100, relu) applied to both, the two codes concatenated, -> Dense 1 sigmoid;
  binary cross-entropy, Adam (1e-3, epsilon 1e-7), 30,000 pairs (a same-digit partner
  drawn for half of them, a random image for the rest: ~55% positives), batch 64.

Both sides do the same work: the same layer sizes, the same batch size and number of
steps, the same optimizer and hyper-parameters, the data shuffled once per epoch, and the
batch gathered by index each step. PyTorch runs eagerly on the CPU with as many threads
as cores, with the usual loop (randperm, index tensors, zero_grad / backward / step).

As in bench_mlp.py, each measurement runs in its own process, implementations alternate
within each round, and the table reports medians over the rounds and paired ratios
(layerkit / PyTorch measured in the same round).

Run:
    LAYERKIT_DATA=../shared/data python benchmarks/bench_graphs.py              # 3 rounds
    python benchmarks/bench_graphs.py --rounds 5 --only siamese
    python benchmarks/bench_graphs.py --profile siamese    # cProfile of one layerkit epoch
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
from _stats import med, paired

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ("wide_deep", "siamese")
TITLES = {
    "wide_deep": "wide & deep (5 + 6 inputs, 30-30 relu, concat, 1), 11,610 samples, "
    "batch 32, MSE, SGD",
    "siamese": "siamese (2 x 784, shared 784-100-100 relu, concat, 1 sigmoid), 30,000 "
    "pairs, batch 64, BCE, Adam",
}
WIDE_DEEP = {"n": 11610, "wide": 5, "deep": 6, "hidden": 30, "batch": 32, "lr": 0.01}
SIAMESE = {"n": 30000, "pixels": 784, "hidden": 100, "batch": 64, "lr": 1e-3}


# --- data (identical for both implementations: numpy, seeded) ---------------------------
def wide_deep_data():
    rng = np.random.default_rng(0)
    n = WIDE_DEEP["n"]
    xa = rng.normal(size=(n, WIDE_DEEP["wide"])).astype(np.float32)
    xb = rng.normal(size=(n, WIDE_DEEP["deep"])).astype(np.float32)
    y = rng.normal(size=(n, 1)).astype(np.float32)
    return xa, xb, y


def siamese_data():
    """30,000 pairs of MNIST training images: half get a partner of the same digit, the
    rest a random image (so ~55% of the labels are 1)."""
    sys.path.insert(0, os.path.dirname(HERE))
    from layerkit.datasets import mnist

    data = os.environ.get("LAYERKIT_DATA") or os.path.join(HERE, "..", "..", "shared", "data")
    (x, labels), _ = mnist.load_data(os.path.join(data, "mnist"))
    x = x.reshape(len(x), -1).astype(np.float32) / np.float32(255)
    rng = np.random.default_rng(0)
    n = SIAMESE["n"]
    left = rng.integers(0, len(x), n)
    same = rng.random(n) < 0.5
    by_digit = [np.flatnonzero(labels == d) for d in range(10)]
    right = rng.integers(0, len(x), n)
    for i in np.flatnonzero(same):
        pool = by_digit[labels[left[i]]]
        right[i] = pool[rng.integers(len(pool))]
    y = (labels[left] == labels[right]).astype(np.float32).reshape(-1, 1)
    return x[left], x[right], y


# --- layerkit --------------------------------------------------------------------------
def layerkit_setup(model_name):
    import layerkit as lk

    lk.utils.set_random_seed(0)
    if model_name == "wide_deep":
        xa, xb, y = wide_deep_data()
        wide = lk.layers.Input((WIDE_DEEP["wide"],), name="wide_input")
        deep = lk.layers.Input((WIDE_DEEP["deep"],), name="deep_input")
        h = lk.layers.Dense(WIDE_DEEP["hidden"], activation="relu", name="hidden1")(deep)
        h = lk.layers.Dense(WIDE_DEEP["hidden"], activation="relu", name="hidden2")(h)
        out = lk.layers.Dense(1, name="output")(lk.layers.concatenate([wide, h]))
        model = lk.Model([wide, deep], out)
        model.compile(optimizer=lk.optim.SGD(WIDE_DEEP["lr"]), loss="mse")
        return model, [xa, xb], y, WIDE_DEEP["batch"]
    xa, xb, y = siamese_data()
    a = lk.layers.Input((SIAMESE["pixels"],), name="left")
    b = lk.layers.Input((SIAMESE["pixels"],), name="right")
    encoder = lk.Sequential(
        [
            lk.layers.Input((SIAMESE["pixels"],)),
            lk.layers.Dense(SIAMESE["hidden"], activation="relu", name="enc1"),
            lk.layers.Dense(SIAMESE["hidden"], activation="relu", name="enc2"),
        ],
        name="encoder",
    )
    merged = lk.layers.concatenate([encoder(a), encoder(b)])
    out = lk.layers.Dense(1, activation="sigmoid", name="same")(merged)
    model = lk.Model([a, b], out)
    model.compile(optimizer=lk.optim.Adam(SIAMESE["lr"]), loss="binary_crossentropy")
    return model, [xa, xb], y, SIAMESE["batch"]


def work_layerkit(model_name, args):
    model, x, y, batch = layerkit_setup(model_name)
    model.fit([v[:256] for v in x], y[:256], batch_size=batch, epochs=1, verbose=0)  # warm-up
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return {"seconds": time.perf_counter() - start}


# --- PyTorch ---------------------------------------------------------------------------
def work_torch(model_name, args):
    import torch
    from torch import nn

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)

    if model_name == "wide_deep":

        class WideAndDeep(nn.Module):
            def __init__(self):
                super().__init__()
                hidden = WIDE_DEEP["hidden"]
                self.deep = nn.Sequential(
                    nn.Linear(WIDE_DEEP["deep"], hidden),
                    nn.ReLU(),
                    nn.Linear(hidden, hidden),
                    nn.ReLU(),
                )
                self.output = nn.Linear(WIDE_DEEP["wide"] + hidden, 1)

            def forward(self, wide, deep):
                return self.output(torch.cat([wide, self.deep(deep)], dim=1))

        xa, xb, y = wide_deep_data()
        model = WideAndDeep()
        optimizer = torch.optim.SGD(model.parameters(), lr=WIDE_DEEP["lr"])
        loss_fn = nn.MSELoss()
        batch = WIDE_DEEP["batch"]
    else:

        class Siamese(nn.Module):
            def __init__(self):
                super().__init__()
                pixels, hidden = SIAMESE["pixels"], SIAMESE["hidden"]
                self.encoder = nn.Sequential(
                    nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
                )
                self.head = nn.Sequential(nn.Linear(2 * hidden, 1), nn.Sigmoid())

            def forward(self, left, right):
                codes = torch.cat([self.encoder(left), self.encoder(right)], dim=1)
                return self.head(codes)

        xa, xb, y = siamese_data()
        model = Siamese()
        optimizer = torch.optim.Adam(model.parameters(), lr=SIAMESE["lr"], eps=1e-7)
        loss_fn = nn.BCELoss()
        batch = SIAMESE["batch"]

    XA, XB, Y = torch.from_numpy(xa), torch.from_numpy(xb), torch.from_numpy(y)

    def epoch(n):
        model.train()
        order = torch.randperm(n)
        for lo in range(0, n, batch):
            idx = order[lo : lo + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(XA[idx], XB[idx]), Y[idx])
            loss.backward()
            optimizer.step()

    epoch(256)  # warm-up, as the layerkit side
    start = time.perf_counter()
    epoch(len(Y))
    return {"seconds": time.perf_counter() - start}


WORKERS = {"layerkit": work_layerkit, "torch": work_torch}


# --- profile ---------------------------------------------------------------------------
def profile(model_name, top):
    import cProfile
    import pstats

    model, x, y, batch = layerkit_setup(model_name)
    model.fit([v[:256] for v in x], y[:256], batch_size=batch, epochs=1, verbose=0)
    profiler = cProfile.Profile()
    profiler.enable()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
    print(f"# cProfile of one layerkit epoch: {TITLES[model_name]}\n")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


# --- driver ----------------------------------------------------------------------------
def run_worker(impl, model_name, args):
    command = [sys.executable, os.path.abspath(__file__), "--worker", impl, model_name]
    command.append(json.dumps(args))
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(
            f"  {impl}/{model_name} failed: {done.stderr.strip().splitlines()[-1:]}",
            file=sys.stderr,
        )
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def torch_available():
    done = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
    return done.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=MODELS, default=list(MODELS))
    parser.add_argument("--profile", choices=MODELS, help="cProfile one layerkit epoch")
    parser.add_argument("--top", type=int, default=25, help="rows of the profile")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        impl, model_name, args = options.worker
        print(json.dumps(WORKERS[impl](model_name, json.loads(args))))
        return
    if options.profile:
        profile(options.profile, options.top)
        return

    impls = ["layerkit", *(["torch"] if torch_available() else [])]
    versions = ""
    if "torch" in impls:
        done = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.__version__)"],
            capture_output=True,
            text=True,
        )
        versions = f", torch {done.stdout.strip()}"
    print(
        f"# layerkit graph benchmark, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}{versions}, "
        f"{options.rounds} rounds (medians)"
    )
    if "torch" not in impls:
        print("(PyTorch not installed: layerkit only)")

    results = {m: {impl: [] for impl in impls} for m in options.only}
    for _ in range(options.rounds):
        for model_name in options.only:
            for impl in impls:  # alternate: drift in machine speed hits both alike
                results[model_name][impl].append(run_worker(impl, model_name, {}))

    sys.stderr.flush()
    print("\n## Seconds per training epoch\n")
    print("| model | layerkit (s) | PyTorch eager (s) | layerkit / PyTorch (same round) |")
    print("|---|---|---|---|")
    for model_name in options.only:
        res = results[model_name]
        lk_s = med(res["layerkit"])
        if "torch" in impls:
            torch_s = med(res["torch"])
            ratio, low, high = paired(res["layerkit"], res["torch"])
            cells = f"{torch_s:.3f} | {ratio:.2f}x ({low:.2f}-{high:.2f})"
        else:
            cells = "- | -"
        print(f"| {TITLES[model_name]} | {lk_s:.3f} | {cells} |")
    print("\nPer round (seconds, layerkit / PyTorch):")
    for model_name in options.only:
        res = results[model_name]
        rounds = zip(*(res[impl] for impl in impls))
        cells = ", ".join(
            " / ".join("failed" if r is None else f"{r['seconds']:.3f}" for r in pair)
            for pair in rounds
        )
        print(f"- {model_name}: {cells}")
    failed = sum(r is None for m in results.values() for runs in m.values() for r in runs)
    if failed:
        print(f"\n({failed} runs failed and are left out of the medians and ratios)")


if __name__ == "__main__":
    main()
