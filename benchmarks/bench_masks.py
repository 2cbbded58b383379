"""What drawing the random layers' masks costs: the 16-bit-lane draw layerkit uses now
against the float32 uniform per element it used before.

Two measurements, in this process, the two implementations alternating within each round:

* ``mask``: one training forward and backward of a random layer on a 128 x 512 float32
  batch (the hidden layer of the classic Keras MNIST example), with the layer itself
  (``new``) and with the former draw (``old``: ``rng.random(float32)``, compare, scale,
  multiply), for Dropout(0.2) and AlphaDropout(0.2);
* ``torch``: the same forward and backward of ``torch.nn.functional.dropout`` (and
  ``alpha_dropout``) through autograd, PyTorch's bar, when torch is installed;
* ``step`` (with ``--step``): one ``train_on_batch`` of that example (784-512-512-10,
  Dropout 0.2 after each hidden layer, RMSprop, batch 128) with the two Dropouts.

Each figure is the median over rounds of the median of ``--repeats`` calls; ratios
new/old are the median (and range) of the per-round ratios (see ``_stats.py``).

Run:
    python benchmarks/bench_masks.py                 # masks only, 7 rounds
    python benchmarks/bench_masks.py --step --threads 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np
from _stats import med, paired_ratio

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPE = (128, 512)
RATE = 0.2
SELU_ALPHA_P = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946


def layer_classes():
    """The former Dropout and AlphaDropout (a float32 uniform per element), as layers."""
    import layerkit as lk

    class OldDropout(lk.layers.Dropout):
        def _active(self, x):
            keep = self._buffer("uniform", x.shape, x.dtype)
            self._rng.random(dtype=x.dtype, out=keep)
            np.greater_equal(keep, self.rate, out=keep, casting="unsafe")
            keep *= 1.0 / (1.0 - self.rate)
            y = self._buffer("y", x.shape)
            np.multiply(x, keep, out=y)
            return self._times(y, keep)

    class OldAlphaDropout(lk.layers.AlphaDropout):
        def _active(self, x):
            rate, alpha_p = self.rate, SELU_ALPHA_P
            a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
            b = -a * alpha_p * rate
            keep = self._buffer("uniform", x.shape, x.dtype)
            self._rng.random(dtype=x.dtype, out=keep)
            np.greater_equal(keep, x.dtype.type(rate), out=keep, casting="unsafe")
            y = self._buffer("y", x.shape)
            np.multiply(x, keep, out=y)
            y -= x.dtype.type(alpha_p) * keep
            y *= x.dtype.type(a)
            y += x.dtype.type(a * alpha_p + b)
            keep *= x.dtype.type(a)
            return self._times(y, keep)

    return {
        "Dropout": (lk.layers.Dropout, OldDropout),
        "AlphaDropout": (lk.layers.AlphaDropout, OldAlphaDropout),
    }


def time_calls(call, repeats: int) -> float:
    """The median seconds of ``call()`` over ``repeats`` calls, after two untimed ones."""
    call()
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def mask_call(layer, x: np.ndarray, dy: np.ndarray):
    def call():
        _, backward = layer.forward(x, training=True)
        backward(dy.copy(), True)

    return call


def torch_call(name: str, x: np.ndarray, dy: np.ndarray):
    """PyTorch's dropout of the same batch, forward and backward (None without torch)."""
    try:
        import torch
    except ImportError:
        return None
    function = {"Dropout": torch.nn.functional.dropout}.get(name)
    function = function or torch.nn.functional.alpha_dropout
    inputs = torch.from_numpy(x.copy()).requires_grad_()
    upstream = torch.from_numpy(dy)

    def call():
        inputs.grad = None
        function(inputs, RATE, training=True).backward(upstream)

    return call


def step_call(dropout_class):
    import layerkit as lk

    lk.utils.set_random_seed(0)
    model = lk.Sequential(
        [
            lk.layers.Input((784,)),
            lk.layers.Dense(512, activation="relu"),
            dropout_class(RATE),
            lk.layers.Dense(512, activation="relu"),
            dropout_class(RATE),
            lk.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    data = np.random.default_rng(0)
    x = data.random((128, 784), dtype=np.float32)
    y = data.integers(0, 10, 128)
    return lambda: model.train_on_batch(x, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--step", action="store_true", help="also time a training step")
    parser.add_argument("--threads", type=int, default=None, help="BLAS and PyTorch threads")
    args = parser.parse_args()
    if args.threads is not None:
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.threads)
        except ImportError:
            print("threadpoolctl is not installed: --threads ignored", file=sys.stderr)
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass  # no PyTorch row
    sys.path.insert(0, os.path.dirname(HERE))
    classes = layer_classes()
    data = np.random.default_rng(0)
    x = data.standard_normal(SHAPE, dtype=np.float32)
    dy = data.standard_normal(SHAPE, dtype=np.float32)
    calls = {}
    for name, (new, old) in classes.items():
        calls[f"{name} new"] = mask_call(new(RATE, seed=0), x, dy)
        calls[f"{name} old"] = mask_call(old(RATE, seed=0), x, dy)
        theirs = torch_call(name, x, dy)
        if theirs is not None:
            calls[f"{name} torch"] = theirs
    if args.step:
        calls["step new"] = step_call(classes["Dropout"][0])
        calls["step old"] = step_call(classes["Dropout"][1])
    results: dict[str, list] = {key: [] for key in calls}
    for _ in range(args.rounds):
        for key, call in calls.items():
            results[key].append({"seconds": time_calls(call, args.repeats)})
    print(
        f"numpy {np.__version__}, Python {platform.python_version()}, {platform.machine()}; "
        f"{args.rounds} rounds of {args.repeats} calls; batch {SHAPE[0]} x {SHAPE[1]} float32"
    )
    print(
        f"{'what':<38} {'old (us)':>10} {'new (us)':>10}  new/old (range)"
        f"  {'torch (us)':>10}  new/torch (range)"
    )
    rows = [(name, f"{name}({RATE}) forward + backward") for name in classes]
    if args.step:
        rows.append(("step", "MNIST MLP train_on_batch"))
    for key, label in rows:
        old, new = med(results[f"{key} old"]) * 1e6, med(results[f"{key} new"]) * 1e6
        ratio, low, high = paired_ratio(results, f"{key} new", f"{key} old")
        line = f"{label:<38} {old:>10.1f} {new:>10.1f}  {ratio:.2f}x ({low:.2f}-{high:.2f})"
        if f"{key} torch" in results:
            theirs = med(results[f"{key} torch"]) * 1e6
            ratio, low, high = paired_ratio(results, f"{key} new", f"{key} torch")
            line += f"  {theirs:>10.1f}  {ratio:.2f}x ({low:.2f}-{high:.2f})"
        print(line)


if __name__ == "__main__":
    main()
