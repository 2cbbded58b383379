"""Pretraining on an auxiliary task: a siamese "same digit?" network, then few labels.

Hands-On ML, chapter 11: when labels for the real task are scarce, train a network on an
auxiliary task for which labelled data is easy to get, and reuse its lower layers. Here:

1. A siamese network learns whether two MNIST training images show the same digit. One
   encoder (784-100-100-100, ELU, He initialization) is applied to both images (a shared
   layer: one set of weights, the two calls' gradients summed); a sigmoid reads
   ``|a - b|`` of the two codes. The balanced pairs come from training images 0-54999,
   drawn with a seeded generator (half the pairs show the same digit).
2. The encoder's layers (the same layer objects) get a new 10-way softmax on top and are
   trained on 100 labelled images per digit (from images 55000-59999, with 20 more per
   digit for early stopping): first frozen (only the output trains, on the encoder's
   features computed once by the frozen-output cache), then fine-tuned (all layers
   trainable, a 10x lower learning rate).
3. The same classifier trained from scratch on the same 1000 labels.

Prints a Markdown table of the test accuracies (mean and range over ``--seeds``), the
pretraining time, and the time of the frozen phase with and without the frozen-output
cache (same seed, same numbers), then as its last line
``scratch=0.xxxx frozen=0.xxxx fine_tuned=0.xxxx cached_speedup=N.Nx``.

Run:
    python examples/pretrain_auxiliary.py            # 3 seeds, about 2 min on 2 cores
    python examples/pretrain_auxiliary.py --quick    # a smoke test: 1 seed, 1 epoch each
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import at_least, check_input
from mnist_mlp import load_mnist

import layerkit as lk

PRETRAIN_IMAGES = 55000  # images 0..54999 make the pairs; the labelled few come after
ENCODER = (("encoder1", 100), ("encoder2", 100), ("encoder3", 100))
ROWS = (
    ("scratch", "same classifier from scratch"),
    ("frozen", "reused encoder frozen, new output"),
    ("fine_tuned", "then fine-tuned (all layers, lr / 10)"),
)


# --- data ---------------------------------------------------------------------------
def few_labels(x, y, per_class: int, val_per_class: int, rng, start: int = PRETRAIN_IMAGES):
    """``per_class`` images of each digit from ``x[start:]`` for training, and the next
    ``val_per_class`` of each digit for validation (early stopping)."""
    x, y = x[start:], y[start:].astype(np.int64)
    train, val = [], []
    for digit in range(10):
        chosen = rng.permutation(np.flatnonzero(y == digit))
        train.append(chosen[:per_class])
        val.append(chosen[per_class : per_class + val_per_class])
    train, val = rng.permutation(np.concatenate(train)), np.concatenate(val)
    return (x[train], y[train]), (x[val], y[val])


def make_pairs(y, count: int, rng):
    """``count`` index pairs into ``y``, half of the same digit (two different images),
    half of two different digits (the second digit uniform among the other nine); the
    labels are 1.0 for "same" and 0.0 for "different", shuffled."""
    y = y.astype(np.int64)
    by_digit = [np.flatnonzero(y == d) for d in range(10)]
    first = rng.integers(0, len(y), size=count)
    same = np.zeros(count, dtype=bool)
    same[: count // 2] = True
    rng.shuffle(same)
    second_digit = np.where(same, y[first], (y[first] + rng.integers(1, 10, size=count)) % 10)
    second = np.empty(count, dtype=np.int64)
    for digit in range(10):
        rows = np.flatnonzero(second_digit == digit)
        pool = by_digit[digit]
        second[rows] = pool[rng.integers(0, len(pool), size=len(rows))]
    # A "same" pair must be two images, not one image twice: redraw those (rare).
    while np.any(clash := same & (second == first)):
        rows = np.flatnonzero(clash)
        for row in rows:
            pool = by_digit[y[first[row]]]
            second[row] = pool[rng.integers(0, len(pool))]
    return first, second, same.astype("float32")[:, None]


# --- models -------------------------------------------------------------------------
def encoder_layers() -> list:
    return [
        lk.layers.Dense(units, activation="elu", kernel_initializer="he_normal", name=name)
        for name, units in ENCODER
    ]


def siamese(layers: list) -> lk.Model:
    """Both images through the same ``layers``; a sigmoid on ``|code_a - code_b|``."""
    image_a = lk.layers.Input((784,), name="image_a")
    image_b = lk.layers.Input((784,), name="image_b")
    code_a, code_b = image_a, image_b
    for layer in layers:  # one layer object, two calls: shared weights
        code_a, code_b = layer(code_a), layer(code_b)
    # |a - b| = max(a - b, b - a), with the merge layers (layerkit has no Lambda layer).
    distance = lk.layers.maximum(
        [lk.layers.subtract([code_a, code_b]), lk.layers.subtract([code_b, code_a])],
        name="abs_difference",
    )
    same = lk.layers.Dense(1, activation="sigmoid", name="same_digit")(distance)
    return lk.Model([image_a, image_b], same, name="siamese")


def classifier(layers: list, name: str) -> lk.Sequential:
    """``layers`` (reused objects share their weights) and a new 10-way output."""
    output = lk.layers.Dense(10, activation="softmax", name="digit")
    return lk.Sequential([lk.layers.Input((784,)), *layers, output], name=name)


def compile_classifier(model, learning_rate: float = 1e-3):
    model.compile(
        optimizer=lk.optim.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


# --- training -----------------------------------------------------------------------
def train_classifier(model, train, val, epochs: int, cache, patience: int = 10) -> float:
    """Fits on the few labels with early stopping on the validation set; returns seconds."""
    stop = lk.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True
    )
    start = time.perf_counter()
    model.fit(
        *train,
        batch_size=32,
        epochs=epochs,
        validation_data=val,
        callbacks=[stop],
        verbose=0,
        cache_frozen=cache,
    )
    return time.perf_counter() - start


def test_accuracy(model, test) -> float:
    return float(model.evaluate(*test, batch_size=1024, return_dict=True)["accuracy"])


def reuse_study(reused: list, seed: int, train, val, test, epochs: int) -> dict:
    """The three rows for one seed. ``reused`` are the pretrained layers: the same
    objects make two classifiers, one for the uncached timing run of the frozen phase,
    one that goes on to fine-tuning (the frozen phase leaves them unchanged).

    Returns the test accuracies by row and the frozen phase's seconds without and with
    the cache (the two frozen runs start alike and give the same numbers).
    """
    result = {}
    # From scratch: the same architecture, fresh weights.
    lk.utils.set_random_seed(seed)
    scratch = compile_classifier(classifier(make_fresh_like(reused), "scratch"))
    train_classifier(scratch, train, val, epochs, cache=False)
    result["scratch"] = test_accuracy(scratch, test)
    # Frozen, twice from the same start: without the cache (timing only), then with it.
    frozen_seconds = {}
    for cache in (False, True):
        lk.utils.set_random_seed(seed)
        model = compile_classifier(classifier(reused, f"reused_cache_{cache}"))
        frozen = model.freeze("(?!digit$).*")  # every reused layer; only the output trains
        frozen_seconds[cache] = train_classifier(model, train, val, epochs, cache=cache)
        if not cache:
            uncached = test_accuracy(model, test)
    result["frozen"] = test_accuracy(model, test)
    if abs(result["frozen"] - uncached) > 2e-3:
        # Only float32 rounding differs (see layerkit/models/frozen_cache.py); it can at
        # most move an early stop by an epoch.
        print(f"note: frozen phase, cached {result['frozen']:.4f} vs uncached {uncached:.4f}")
    # Fine-tuning: the cached run's model goes on with everything trainable, lr / 10.
    model.unfreeze(frozen)
    model.optimizer.learning_rate = 1e-4
    train_classifier(model, train, val, epochs, cache=False)
    result["fine_tuned"] = test_accuracy(model, test)
    result["frozen_s"], result["cached_s"] = frozen_seconds[False], frozen_seconds[True]
    return result


def make_fresh_like(layers: list) -> list:
    """New, untrained layers with the configs (names, sizes, activations) of ``layers``."""
    return [type(layer).from_config(layer.get_config()) for layer in layers]


def pretrain(x, y, seed: int, pairs: int, epochs: int) -> tuple[list, float, float]:
    """Trains the siamese network on ``pairs`` pairs of ``x``; returns its encoder
    layers, the seconds it took and its accuracy on 10% held-out pairs."""
    lk.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    first, second, same = make_pairs(y, pairs, rng)
    layers = encoder_layers()
    model = siamese(layers)
    model.compile(optimizer=lk.optim.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(
        [x[first], x[second]], same, batch_size=64, epochs=epochs, validation_split=0.1, verbose=0
    )
    seconds = time.perf_counter() - start
    return layers, seconds, float(history.history["val_accuracy"][-1])


# --- the report ---------------------------------------------------------------------
def print_table(results: list[dict], title: str, pretrain_seconds: list[float]) -> None:
    """The Markdown table (mean and min-max of each row over the seeds), the timings and
    the summary line."""
    seeds = len(results)
    print(f"\n{title}\n")
    print(f"| setup | test accuracy (mean of {seeds}) | min-max |")
    print("|---|---|---|")
    for key, name in ROWS:
        values = np.array([r[key] for r in results])
        print(f"| {name} | {values.mean():.4f} | {values.min():.4f}-{values.max():.4f} |")
    plain = np.mean([r["frozen_s"] for r in results])
    cached = np.mean([r["cached_s"] for r in results])
    print(
        f"\npretraining: {np.mean(pretrain_seconds):.1f} s per seed; frozen phase: "
        f"{plain:.2f} s with cache_frozen=False, {cached:.2f} s with cache_frozen=True "
        f"({plain / cached:.1f}x)"
    )
    means = " ".join(f"{key}={np.mean([r[key] for r in results]):.4f}" for key, _ in ROWS)
    print(f"{means} cached_speedup={plain / cached:.1f}x")


FULL = {"seeds": 3, "epochs": 100, "per_class": 100}
QUICK = {"seeds": 1, "epochs": 1}


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="folder holding the MNIST files")
    parser.add_argument("--seeds", type=at_least(1), help="runs (default 3; --quick: 1)")
    parser.add_argument(
        "--epochs",
        type=at_least(1),
        help="max epochs of each classifier phase, early stopping (default 100; --quick: 1)",
    )
    parser.add_argument(
        "--per-class", type=at_least(1), help="labelled images per digit (default 100)"
    )


def resolve(args: argparse.Namespace, full: dict, quick: dict) -> None:
    """Fills the options not given: ``quick``'s values with ``--quick`` (where it has
    one), else ``full``'s. An option given on the command line always wins."""
    for name, value in full.items():
        if getattr(args, name) is None:
            setattr(args, name, quick.get(name, value) if args.quick else value)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_arguments(parser)
    parser.add_argument(
        "--pairs", type=at_least(2), help="pretraining pairs (default 50000; --quick: 4000)"
    )
    parser.add_argument(
        "--pretrain-epochs", type=at_least(1), help="siamese epochs (default 3; --quick: 1)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test: 1 seed, 4000 pairs, 1 epoch each (options given still apply)",
    )
    args = parser.parse_args(argv)
    check_input(parser, "--data", args.data)
    resolve(
        args,
        {**FULL, "pairs": 50_000, "pretrain_epochs": 3},
        {**QUICK, "pairs": 4000, "pretrain_epochs": 1},
    )
    seeds, pairs, epochs = args.seeds, args.pairs, args.epochs
    pretrain_epochs = args.pretrain_epochs
    (x, y), test = load_mnist(args.data, quick=False)
    results, pretrain_seconds = [], []
    for seed in range(seeds):
        layers, seconds, pair_accuracy = pretrain(
            x[:PRETRAIN_IMAGES], y[:PRETRAIN_IMAGES], seed, pairs, pretrain_epochs
        )
        pretrain_seconds.append(seconds)
        train, val = few_labels(x, y, args.per_class, 20, np.random.default_rng(1000 + seed))
        result = reuse_study(layers, seed, train, val, test, epochs)
        results.append(result)
        print(
            f"seed {seed}: pretraining {seconds:.1f} s, held-out pair accuracy "
            f"{pair_accuracy:.4f}; test accuracy scratch {result['scratch']:.4f}, "
            f"frozen {result['frozen']:.4f}, fine-tuned {result['fine_tuned']:.4f}",
            flush=True,
        )
    title = (
        f"Siamese pretraining ({pairs} pairs, {pretrain_epochs} epochs), then "
        f"{args.per_class} labels per digit, MNIST test accuracy:"
    )
    print_table(results, title, pretrain_seconds)
    return results


if __name__ == "__main__":
    main()
