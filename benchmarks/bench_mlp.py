"""Side-by-side benchmark of layerkit against PyTorch, scikit-learn, plain numpy and the
matrix-product floor, on the seed MLP (784-300-50-50-50-50-10, ReLU, Adam, batch 64), and
against real Keras 3 (PyTorch backend, an optional peer) on the classic Keras MNIST example
(784-512-512-10, Dropout 0.2, RMSprop, batch 128, validation every epoch).

Each measurement runs in its own process (numpy's and PyTorch's thread pools slow each
other down when they share one), implementations alternate within each round, and the
tables report medians over the rounds and ratios to layerkit measured in the same run.

Run:
    python benchmarks/bench_mlp.py                    # everything, 3 rounds
    python benchmarks/bench_mlp.py --rounds 5 --only train transfer
    python benchmarks/bench_mlp.py --only example --example-epochs 20   # as Keras runs it
    LAYERKIT_BASELINE=/path/to/older/checkout python benchmarks/bench_mlp.py --only train
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc

import numpy as np
from _stats import med, paired_ratio

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = (784, 300, 50, 50, 50, 50, 10)


# --- data ------------------------------------------------------------------------------
def load(n_train: int | None = None):
    sys.path.insert(0, os.path.dirname(HERE))
    from layerkit.datasets import mnist

    data = os.environ.get("LAYERKIT_DATA") or os.path.join(HERE, "..", "..", "shared", "data")
    (x, y), (xt, yt) = mnist.load_data(os.path.join(data, "mnist"))
    x = (x.reshape(len(x), -1).astype(np.float32) / np.float32(255))[:n_train]
    xt = xt.reshape(len(xt), -1).astype(np.float32) / np.float32(255)
    return x, y[:n_train].astype(np.int64), xt, yt.astype(np.int64)


# --- workers: each returns a dict of measurements ---------------------------------------
def throughput(run, samples: int, repeats: int = 3) -> float:
    """Samples per second of ``run()``: the median of ``repeats`` timed calls after one
    untimed call (which allocates what the steady state reuses)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return samples / statistics.median(times)


def layerkit_model(sizes, frozen=0, optimizer="adam", graph=False):
    """The MLP as a Sequential, or (``graph``) as the same layers in an ``lk.Model``."""
    import layerkit as lk

    layers = [lk.layers.Input((sizes[0],))]
    for i, units in enumerate(sizes[1:-1]):
        layers.append(lk.layers.Dense(units, activation="relu", name=f"hidden{i + 1}"))
    layers.append(lk.layers.Dense(sizes[-1], name="outputs"))
    if graph:
        h = layers[0]
        for layer in layers[1:]:
            h = layer(h)
        model = lk.Model(layers[0], h)
    else:
        model = lk.Sequential(layers)
    if frozen:
        model.freeze(f"hidden[1-{frozen}]")
    model.compile(
        optimizer=lk.optim.Adam(1e-3) if optimizer == "adam" else lk.optim.SGD(0.01),
        loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def work_layerkit(task, args):
    import layerkit as lk

    lk.utils.set_random_seed(0)
    x, y, xt, _ = load(args.get("n"))
    if task == "memory":  # tracemalloc slows allocation: never in a timed run
        # Everything allocated after the dataset: model, optimizer state, training buffers.
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        # numba's import and the compiled Adam kernel (loaded at its first call): a fixed
        # cost per process, reported apart; a one-step fit of a tiny model triggers it.
        tiny = layerkit_model((784, 10))
        tiny.fit(x[:64], y[:64], batch_size=64, epochs=1, verbose=0)
        del tiny
        fixed = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        model = layerkit_model(SIZES)
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        return {"peak_extra_bytes": peak, "kernel_bytes": fixed}
    if task == "train":
        model = layerkit_model(
            args.get("sizes", SIZES),
            optimizer=args.get("optimizer", "adam"),
            graph=args.get("graph", False),
        )
        model.fit(x[:256], y[:256], batch_size=64, epochs=1, verbose=0)  # warm-up
        start = time.perf_counter()
        model.fit(x, y, batch_size=args.get("batch", 64), epochs=1, verbose=0)
        return {"seconds": time.perf_counter() - start}
    if task in ("transfer", "transfer_cached"):
        model = layerkit_model((784, 300, 50, 50, 20, 10), frozen=3)
        start = time.perf_counter()
        model.fit(x, y, batch_size=64, epochs=5, verbose=0, cache_frozen=task == "transfer_cached")
        return {"seconds": time.perf_counter() - start}
    if task == "predict":
        model = layerkit_model(SIZES)
        run = functools.partial(model.predict, xt)
        return {
            f"batch{batch}": throughput(functools.partial(run, batch_size=batch), len(xt))
            for batch in (32, 1024)
        }
    raise ValueError(task)


def work_torch(task, args):
    import torch

    torch.manual_seed(0)
    x, y, xt, _ = load(args.get("n"))

    def model_of(sizes):
        layers = []
        for i in range(len(sizes) - 2):
            layers += [torch.nn.Linear(sizes[i], sizes[i + 1]), torch.nn.ReLU()]
        layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
        return torch.nn.Sequential(*layers)

    def train(model, inputs, labels, epochs, batch, params):
        optimizer = torch.optim.Adam(params, lr=1e-3, eps=1e-7)
        loss_fn = torch.nn.CrossEntropyLoss()
        n = len(inputs)
        for _ in range(epochs):
            order = torch.randperm(n)
            for lo in range(0, n, batch):
                idx = order[lo : lo + batch]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(inputs[idx]), labels[idx])
                loss.backward()
                optimizer.step()

    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    if task == "train":
        model = model_of(args.get("sizes", SIZES))
        train(model, X[:256], Y[:256], 1, 64, model.parameters())
        start = time.perf_counter()
        train(model, X, Y, 1, args.get("batch", 64), model.parameters())
        return {"seconds": time.perf_counter() - start}
    if task in ("transfer", "transfer_cached"):
        model = model_of((784, 300, 50, 50, 20, 10))
        frozen, head = model[:6], model[6:]
        for p in frozen.parameters():
            p.requires_grad_(False)
        start = time.perf_counter()
        if task == "transfer_cached":
            with torch.no_grad():
                features = frozen(X)
            train(head, features, Y, 5, 64, head.parameters())
        else:
            train(model, X, Y, 5, 64, head.parameters())
        return {"seconds": time.perf_counter() - start}
    if task == "predict":
        model = model_of(SIZES).eval()
        XT = torch.from_numpy(xt)

        def predict(batch):  # outputs kept, as predict keeps them
            return torch.cat([model(XT[lo : lo + batch]) for lo in range(0, len(XT), batch)])

        with torch.no_grad():
            return {
                f"batch{batch}": throughput(functools.partial(predict, batch), len(XT))
                for batch in (32, 1024)
            }
    raise ValueError(task)


def work_sklearn(task, args):
    from sklearn.neural_network import MLPClassifier

    if task != "train":
        raise ValueError(task)
    x, y, _, _ = load(args.get("n"))
    model = MLPClassifier(
        hidden_layer_sizes=SIZES[1:-1],
        batch_size=64,
        max_iter=1,
        learning_rate_init=1e-3,
        shuffle=True,
        random_state=0,
        tol=0,
        n_iter_no_change=1000,
    )
    import warnings

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y)
    return {"seconds": time.perf_counter() - start}


def work_numpy(task, args):
    """A plain hand-written numpy MLP with Adam, temporaries everywhere (the usual way)."""
    if task != "train":
        raise ValueError(task)
    x, y, _, _ = load(args.get("n"))
    rng = np.random.default_rng(0)
    sizes = args.get("sizes", SIZES)
    W = [
        rng.normal(0, np.sqrt(2 / a), (a, b)).astype(np.float32)
        for a, b in itertools.pairwise(sizes)
    ]
    B = [np.zeros(b, np.float32) for b in sizes[1:]]
    params = W + B
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    start = time.perf_counter()
    order = rng.permutation(len(x))
    for t, lo in enumerate(range(0, len(x), 64), start=1):
        idx = order[lo : lo + 64]
        h = [x[idx]]
        for i in range(len(W)):
            z = h[-1] @ W[i] + B[i]
            h.append(np.maximum(z, 0) if i < len(W) - 1 else z)
        p = np.exp(h[-1] - h[-1].max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(idx)), y[idx]] -= 1
        d = p / len(idx)
        grads_w, grads_b = [None] * len(W), [None] * len(W)
        for i in reversed(range(len(W))):
            grads_w[i] = h[i].T @ d
            grads_b[i] = d.sum(0)
            if i:
                d = (d @ W[i].T) * (h[i] > 0)
        for k, (param, g) in enumerate(zip(params, grads_w + grads_b)):
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g * g
            alpha = 1e-3 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
            param -= alpha * m[k] / (np.sqrt(v[k]) + 1e-7)
    return {"seconds": time.perf_counter() - start}


def work_floor(task, args):
    """The matrix products of one training epoch alone, with preallocated outputs."""
    if task != "train":
        raise ValueError(task)
    sizes = args.get("sizes", SIZES)
    n, batch = args.get("n") or 60000, args.get("batch", 64)
    rng = np.random.default_rng(0)
    W = [rng.normal(size=(a, b)).astype(np.float32) for a, b in itertools.pairwise(sizes)]
    xb = rng.random((batch, sizes[0]), dtype=np.float32)
    acts = [xb] + [np.empty((batch, b), np.float32) for b in sizes[1:]]
    grads = [np.empty_like(w) for w in W]
    dxs = [np.empty((batch, a), np.float32) for a in sizes[:-1]]
    steps = -(-n // batch)
    start = time.perf_counter()
    for _ in range(steps):
        for i, w in enumerate(W):
            np.matmul(acts[i], w, out=acts[i + 1])
        d = acts[-1]
        for i in reversed(range(len(W))):
            np.matmul(acts[i].T, d, out=grads[i])
            if i:
                np.matmul(d, W[i].T, out=dxs[i])
                d = dxs[i]
    return {"seconds": time.perf_counter() - start}


# --- the classic Keras MNIST example (keras-io mnist_mlp) --------------------------------
EXAMPLE_SIZES = (784, 512, 512, 10)


def example_model(lib):
    """784-512-512-10, Dropout 0.2, RMSprop, as the Keras example writes it; ``lib`` is
    ``layerkit`` or ``keras``, whose APIs agree here."""
    layers = lib.layers
    model = lib.Sequential(
        [
            layers.Input((784,)),
            layers.Dense(512, activation="relu"),
            layers.Dropout(0.2),
            layers.Dense(512, activation="relu"),
            layers.Dropout(0.2),
            layers.Dense(10, activation="softmax"),
        ]
    )
    optimizer = lib.optimizers.RMSprop() if hasattr(lib, "optimizers") else lib.optim.RMSprop()
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


def work_example(lib_name: str, args):
    """``epochs`` epochs of the example (batch 128, validation on the test set every
    epoch, verbose=0), after a one-batch warm-up fit; seconds of the timed fit."""
    if lib_name == "keras":
        os.environ.setdefault("KERAS_BACKEND", "torch")
        import keras as lib

        lib.utils.set_random_seed(0)
    else:
        import layerkit as lib

        lib.utils.set_random_seed(0)
        if lib_name == "layerkit-numpy":
            lib.backend.set_kernels("numpy")
    x, y, xt, yt = load(args.get("n"))
    eye = np.eye(10, dtype=np.float32)
    y, yt = eye[y], eye[yt]
    model = example_model(lib)
    model.fit(x[:128], y[:128], batch_size=128, epochs=1, verbose=0)  # warm-up
    start = time.perf_counter()
    history = model.fit(
        x,
        y,
        batch_size=128,
        epochs=args.get("epochs", 2),
        verbose=0,
        validation_data=(xt, yt),
    )
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "val_accuracy": float(history.history["val_accuracy"][-1])}


def work_example_floor(args):
    """The example's matrix products alone: training (forward and backward, batch 128) and
    the validation forward pass, per epoch, with preallocated outputs."""
    rng = np.random.default_rng(0)
    sizes, batch, epochs = EXAMPLE_SIZES, 128, args.get("epochs", 2)
    W = [rng.normal(size=(a, b)).astype(np.float32) for a, b in itertools.pairwise(sizes)]
    xb = rng.random((batch, sizes[0]), dtype=np.float32)
    acts = [xb] + [np.empty((batch, b), np.float32) for b in sizes[1:]]
    grads = [np.empty_like(w) for w in W]
    dxs = [np.empty((batch, a), np.float32) for a in sizes[:-1]]
    start = time.perf_counter()
    for _ in range(epochs):
        for _ in range(-(-60000 // batch)):
            for i, w in enumerate(W):
                np.matmul(acts[i], w, out=acts[i + 1])
            d = acts[-1]
            for i in reversed(range(len(W))):
                np.matmul(acts[i].T, d, out=grads[i])
                if i:
                    np.matmul(d, W[i].T, out=dxs[i])
                    d = dxs[i]
        for _ in range(-(-10000 // batch)):
            for i, w in enumerate(W):
                np.matmul(acts[i], w, out=acts[i + 1])
    return {"seconds": time.perf_counter() - start}


def _layerkit_numpy(task, args):
    """layerkit with the optimizer's numpy fallback (``lk.backend.set_kernels("numpy")``)."""
    import layerkit as lk

    lk.backend.set_kernels("numpy")
    return work_layerkit(task, args)


def _example_worker(impl):
    def work(task, args):
        if task != "example":
            raise ValueError(task)
        return work_example_floor(args) if impl == "floor" else work_example(impl, args)

    return work


WORKERS = {
    "layerkit": work_layerkit,
    # The same epoch with the optimizer's numpy fallback: what the fused updates save.
    "layerkit-numpy": _layerkit_numpy,
    # The same epoch with plain SGD: what the rest of the step costs without Adam's update.
    "layerkit-sgd": lambda task, args: work_layerkit(task, {**args, "optimizer": "sgd"}),
    # The same layers as an lk.Model graph: one engine, so within a few % of Sequential.
    "layerkit-graph": lambda task, args: work_layerkit(task, {**args, "graph": True}),
    "torch": work_torch,
    "sklearn": work_sklearn,
    "numpy": work_numpy,
    "floor": work_floor,
}
EXAMPLE_WORKERS = {
    f"example-{impl}": _example_worker(impl)
    for impl in ("layerkit", "layerkit-numpy", "keras", "floor")
}
WORKERS.update(EXAMPLE_WORKERS)
PEER_MODULES = {
    "torch": "torch",
    "sklearn": "sklearn",
    "keras": "keras",
    "example-keras": "keras",
}


# --- driver ----------------------------------------------------------------------------
def lk_kernels() -> str:
    """The optimizer path a worker takes (``lk.backend.kernels()``), asked in a subprocess."""
    code = "import layerkit as lk; print(lk.backend.kernels())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return f"kernels: {done.stdout.strip() or 'unknown'}"


BASELINE = os.environ.get("LAYERKIT_BASELINE")  # another checkout, for before/after


def run_worker(impl: str, task: str, args: dict) -> dict | None:
    script = os.path.abspath(__file__)
    if impl == "layerkit-baseline":  # the other checkout's own worker and package
        script, impl = os.path.join(BASELINE, "benchmarks", "bench_mlp.py"), "layerkit"
    command = [sys.executable, script, "--worker", impl, task, json.dumps(args)]
    env = dict(os.environ)
    if script != os.path.abspath(__file__):
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [BASELINE, env.get("PYTHONPATH")]))
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        print(f"  {impl}/{task} failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def available(impl: str) -> bool:
    module = PEER_MODULES.get(impl)
    if module is None:
        return True
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "torch")}
    check = [sys.executable, "-c", f"import {module}"]
    return subprocess.run(check, capture_output=True, env=env).returncode == 0


def measure(impls, task, args, rounds):
    """{impl: [result of round 1, round 2, ...]}; a failed run is ``None``."""
    results = {impl: [] for impl in impls}
    for _ in range(rounds):
        for impl in impls:  # alternate: drift in machine speed hits everyone alike
            results[impl].append(run_worker(impl, task, args))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only",
        nargs="*",
        default=["train", "example", "transfer", "predict", "memory", "scaling", "batchnorm"],
    )
    parser.add_argument(
        "--example-epochs", type=int, default=2, help="epochs of the Keras example (Keras: 20)"
    )
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        impl, task, args = options.worker
        print(json.dumps(WORKERS[impl](task, json.loads(args))))
        return

    peers = [p for p in ("torch", "sklearn") if available(p)]
    skipped = [p for p in ("torch", "sklearn") if p not in peers]
    print(
        f"# layerkit benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, "
        f"{os.cpu_count()} cores, numpy {np.__version__}, {options.rounds} rounds (medians)"
    )
    if skipped:
        print(f"(skipped peers, not installed: {', '.join(skipped)})")

    if "train" in options.only:
        impls = ["layerkit", "layerkit-numpy", "layerkit-graph", "floor", "layerkit-sgd"]
        impls += ["numpy", *peers]
        if BASELINE:
            impls.insert(2, "layerkit-baseline")
        res = measure(impls, "train", {}, options.rounds)
        lk_time = med(res["layerkit"], "seconds")
        print("\n## One training epoch of the seed MLP (60,000 samples, batch 64, Adam)\n")
        print("| implementation | seconds per epoch | ratio to layerkit (same round) |")
        print("|---|---|---|")
        for impl in impls:
            t = med(res[impl], "seconds")
            ratio, low, high = paired_ratio(res, impl, "layerkit")
            print(f"| {impl} | {t:.3f} | {ratio:.2f}x ({low:.2f}-{high:.2f}) |")
        ratio, low, high = paired_ratio(res, "layerkit", "floor")
        print(
            f"\nlayerkit / matrix-product floor: {ratio:.2f}x (median of the {options.rounds} "
            f"rounds, range {low:.2f}-{high:.2f}; ratio of the medians "
            f"{lk_time / med(res['floor'], 'seconds'):.2f}x)"
        )
        ratio, low, high = paired_ratio(res, "layerkit", "layerkit-numpy")
        print(f"fused optimizer updates / numpy fallback: {ratio:.2f}x ({low:.2f}-{high:.2f})")
        if "torch" in peers:
            ratio, low, high = paired_ratio(res, "layerkit", "torch")
            print(f"layerkit / PyTorch: {ratio:.2f}x ({low:.2f}-{high:.2f})")
        ratio, low, high = paired_ratio(res, "layerkit-sgd", "floor")
        print(f"layerkit with plain SGD / floor: {ratio:.2f}x ({low:.2f}-{high:.2f})")
        ratio, low, high = paired_ratio(res, "layerkit-graph", "layerkit")
        print(f"lk.Model graph / Sequential: {ratio:.3f}x ({low:.3f}-{high:.3f})")
        if BASELINE:
            ratio, low, high = paired_ratio(res, "layerkit", "layerkit-baseline")
            print(f"Sequential now / at {BASELINE}: {ratio:.3f}x ({low:.3f}-{high:.3f})")

    if "example" in options.only:
        impls = ["example-layerkit", "example-layerkit-numpy", "example-floor"]
        impls += ["example-keras"] if available("example-keras") else []
        args = {"epochs": options.example_epochs}
        res = measure(impls, "example", args, options.rounds)
        print(
            f"\n## The Keras MNIST example (784-512-512-10, Dropout 0.2, RMSprop, batch 128, "
            f"validation every epoch), {options.example_epochs} epochs\n"
        )
        print("| implementation | seconds | per epoch | ratio to layerkit | val accuracy |")
        print("|---|---|---|---|---|")
        for impl in impls:
            t = med(res[impl], "seconds")
            ratio, low, high = paired_ratio(res, impl, "example-layerkit")
            accuracy = med(res[impl], "val_accuracy") if impl != "example-floor" else None
            print(
                f"| {impl[8:]} | {t:.2f} | {t / options.example_epochs:.2f} | "
                f"{ratio:.2f}x ({low:.2f}-{high:.2f}) | "
                f"{'-' if accuracy is None else f'{accuracy:.4f}'} |"
            )
        ratio, low, high = paired_ratio(res, "example-layerkit", "example-floor")
        print(f"\nlayerkit / its matrix-product floor: {ratio:.2f}x ({low:.2f}-{high:.2f})")
        if "example-keras" in impls:
            ratio, low, high = paired_ratio(res, "example-layerkit", "example-keras")
            print(f"layerkit / Keras 3 (torch backend): {ratio:.2f}x ({low:.2f}-{high:.2f})")

    if "batchnorm" in options.only:
        # The MLP with BatchNormalization after each hidden Dense, against nn.BatchNorm1d:
        # benchmarks/bench_batchnorm.py measures it (same rules: own processes, rounds).
        script = os.path.join(HERE, "bench_batchnorm.py")
        print("\n## BatchNormalization (benchmarks/bench_batchnorm.py)\n", flush=True)
        subprocess.run([sys.executable, script, "--rounds", str(options.rounds)], check=False)

    if "memory" in options.only:
        mem = measure(["layerkit"], "memory", {}, 1)["layerkit"]
        if mem[0] is not None:
            # numpy reports its allocations to tracemalloc; the float32 dataset was allocated
            # before tracing started, so it is added to both sides. The model, its Adam
            # state and everything fit allocates are traced.
            dataset = 60000 * 784 * 4 + 60000 * 8
            weights = sum(a * b + b for a, b in itertools.pairwise(SIZES)) * 4
            minimum = dataset + 3 * weights + 64 * sum(SIZES) * 4 * 2  # + Adam m, v; 1 batch
            used = dataset + mem[0]["peak_extra_bytes"]
            print(
                f"\nPeak memory while training: {used / 2**20:.1f} MiB against a minimum of "
                f"{minimum / 2**20:.1f} MiB (float32 dataset + weights + Adam state + one "
                f"batch of activations and gradients): {used / minimum:.2f}x"
            )
            kernel = mem[0].get("kernel_bytes", 0)
            print(
                f"Before training, once per process ({lk_kernels()}; numba's import and "
                f"compiled kernels when numba): {kernel / 2**20:.1f} MiB"
            )

    if "transfer" in options.only:
        impls = ["layerkit", *(["torch"] if "torch" in peers else [])]
        print("\n## Transfer model (hidden1-3 frozen, then 20 and 10 units), 5 epochs\n")
        print("| implementation | uncached (s) | cached (s) | cache speed-up |")
        print("|---|---|---|---|")
        plain = measure(impls, "transfer", {}, options.rounds)
        cached = measure(impls, "transfer_cached", {}, options.rounds)
        for impl in impls:
            a, b = med(plain[impl], "seconds"), med(cached[impl], "seconds")
            print(f"| {impl} | {a:.2f} | {b:.2f} | {a / b:.1f}x |")
        if "torch" in impls:
            ratio, low, high = paired_ratio(cached, "layerkit", "torch")
            print(f"\nlayerkit cached / PyTorch cached: {ratio:.2f}x ({low:.2f}-{high:.2f})")

    if "predict" in options.only:
        impls = ["layerkit", *(["torch"] if "torch" in peers else [])]
        res = measure(impls, "predict", {}, options.rounds)
        print("\n## predict over the 10,000 test images (samples per second)\n")
        print("| implementation | batch 32 | batch 1024 |")
        print("|---|---|---|")
        for impl in impls:
            print(
                f"| {impl} | {med(res[impl], 'batch32'):,.0f} | "
                f"{med(res[impl], 'batch1024'):,.0f} |"
            )
        if "torch" in impls:
            for key in ("batch32", "batch1024"):
                ratio, low, high = paired_ratio(res, "layerkit", "torch", key)
                print(
                    f"\nlayerkit / PyTorch throughput, {key}: {ratio:.2f}x ({low:.2f}-{high:.2f})"
                )

    if "scaling" in options.only:
        impls = ["layerkit", *(["torch"] if "torch" in peers else [])]
        print(
            "\n## Scaling: seconds per epoch of 10,000 samples, seed MLP with hidden1 = W "
            "(784-W-50-50-50-50-10)\n"
        )
        header = " | ".join(impls)
        print(f"| W | batch | {header} | layerkit per step (ms) | layerkit / torch |")
        print("|---|---|" + "---|" * (len(impls) + 2))
        for width in (300, 1000, 3000):
            for batch in (32, 64, 256, 1024):
                args = {"n": 10000, "sizes": (784, width, *SIZES[2:]), "batch": batch}
                res = measure(impls, "train", args, options.rounds)
                times = [med(res[i], "seconds") for i in impls]
                per_step = times[0] / -(-10000 // batch) * 1e3
                ratio = "-"
                if "torch" in impls:
                    r, low, high = paired_ratio(res, "layerkit", "torch")
                    ratio = f"{r:.2f}x ({low:.2f}-{high:.2f})"
                cells = " | ".join(f"{t:.3f}" for t in times)
                print(f"| {width} | {batch} | {cells} | {per_step:.2f} | {ratio} |")
        print("\nLinearity in the number of samples (seed MLP, batch 64):\n")
        print("| samples | layerkit (s) | per 10,000 samples (s) |")
        print("|---|---|---|")
        sizes = (15000, 30000, 60000)
        runs: dict[int, list] = {n: [] for n in sizes}
        for _ in range(options.rounds):  # sizes alternate too, so drift hits them alike
            for n in sizes:
                runs[n].append(run_worker("layerkit", "train", {"n": n}))
        for n in sizes:
            t = med(runs[n], "seconds")
            print(f"| {n:,} | {t:.3f} | {t / n * 10000:.3f} |")


if __name__ == "__main__":
    main()
