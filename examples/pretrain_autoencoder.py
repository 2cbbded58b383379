"""Unsupervised pretraining: a stacked autoencoder's encoder reused with few labels.

Hands-On ML, chapters 11 and 17: when most of the data is unlabelled, train an
autoencoder on all of it and reuse its encoder for the supervised task.

1. A stacked denoising autoencoder 784-300-150-300-784 (SELU, LeCun initialization, a
   sigmoid output and binary cross-entropy on the pixels) learns to reconstruct all
   60000 MNIST training images, without their labels, from inputs with half their pixels
   dropped (``Dropout(0.5)`` on the input, as the book's denoising autoencoder;
   ``--noise 0`` for a plain autoencoder, whose near-perfect reconstructions make codes
   no better than the pixels for a linear output on few labels).
2. Its encoder (784-300-150, the same layer objects) gets a new 10-way softmax and is
   trained on 100 labelled images per digit (from images 55000-59999, with 20 more per
   digit for early stopping; the same picks as ``pretrain_auxiliary.py``): first frozen
   (only the output trains, on the codes computed once by the frozen-output cache), then
   fine-tuned (all layers trainable, a 10x lower learning rate).
3. The same classifier (784-300-150-10) trained from scratch on the same 1000 labels.

Prints a Markdown table of the test accuracies (mean and range over ``--seeds``), the
pretraining time, and the time of the frozen phase with and without the frozen-output
cache (same seed, same numbers), then as its last line
``scratch=0.xxxx frozen=0.xxxx fine_tuned=0.xxxx cached_speedup=N.Nx``.

Run:
    python examples/pretrain_autoencoder.py          # 3 seeds, about 5 min on 2 cores
    python examples/pretrain_autoencoder.py --quick  # a smoke test: 1 seed, 1 epoch each
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import at_least, check_input
from mnist_mlp import load_mnist
from pretrain_auxiliary import (
    FULL,
    QUICK,
    common_arguments,
    few_labels,
    print_table,
    resolve,
    reuse_study,
)

import layerkit as lk

ENCODER = (("encoder1", 300), ("encoder2", 150))
DECODER = (("decoder1", 300),)


def dense(units: int, name: str, activation: str = "selu") -> lk.layers.Dense:
    return lk.layers.Dense(
        units, activation=activation, kernel_initializer="lecun_normal", name=name
    )


def pretrain(x, seed: int, epochs: int, noise: float = 0.0) -> tuple[list, float, float]:
    """Trains the autoencoder on the images ``x`` (no labels); returns its encoder
    layers, the seconds it took and the reconstruction MSE on 10% held-out images.
    ``noise`` > 0 makes it a denoising autoencoder: a Dropout of that rate on its input
    (in training only; the reused encoder has no Dropout)."""
    lk.utils.set_random_seed(seed)
    encoder = [dense(units, name) for name, units in ENCODER]
    decoder = [dense(units, name) for name, units in DECODER]
    decoder.append(dense(784, "reconstruction", activation="sigmoid"))
    corrupt = [lk.layers.Dropout(noise, name="noise")] if noise > 0 else []
    autoencoder = lk.Sequential(
        [lk.layers.Input((784,)), *corrupt, *encoder, *decoder], name="autoencoder"
    )
    autoencoder.compile(optimizer=lk.optim.Adam(1e-3), loss="binary_crossentropy", metrics=["mse"])
    start = time.perf_counter()
    history = autoencoder.fit(x, x, batch_size=128, epochs=epochs, validation_split=0.1, verbose=0)
    seconds = time.perf_counter() - start
    return encoder, seconds, float(history.history["val_mse"][-1])


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_arguments(parser)
    parser.add_argument(
        "--pretrain-epochs", type=at_least(1), help="autoencoder epochs (default 5; --quick: 1)"
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=0.5,
        help="denoising: the rate of a Dropout on the autoencoder's input (default 0.5; "
        "0: a plain autoencoder)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test: 1 seed, the autoencoder on 6000 images, 1 epoch each (options "
        "given still apply)",
    )
    args = parser.parse_args(argv)
    check_input(parser, "--data", args.data)
    if not 0.0 <= args.noise < 1.0:
        parser.error(f"argument --noise: expected a rate in [0, 1). Received: {args.noise}")
    resolve(args, {**FULL, "pretrain_epochs": 5}, {**QUICK, "pretrain_epochs": 1})
    seeds, pretrain_epochs, epochs = args.seeds, args.pretrain_epochs, args.epochs
    (x, y), test = load_mnist(args.data, quick=False)
    unlabelled = x[:6000] if args.quick else x
    results, pretrain_seconds = [], []
    for seed in range(seeds):
        layers, seconds, mse = pretrain(unlabelled, seed, pretrain_epochs, args.noise)
        pretrain_seconds.append(seconds)
        train, val = few_labels(x, y, args.per_class, 20, np.random.default_rng(1000 + seed))
        result = reuse_study(layers, seed, train, val, test, epochs)
        results.append(result)
        print(
            f"seed {seed}: pretraining {seconds:.1f} s, held-out reconstruction MSE "
            f"{mse:.4f}; test accuracy scratch {result['scratch']:.4f}, "
            f"frozen {result['frozen']:.4f}, fine-tuned {result['fine_tuned']:.4f}",
            flush=True,
        )
    kind = f"denoising (Dropout {args.noise:g})" if args.noise > 0 else "plain"
    title = (
        f"Autoencoder pretraining ({kind}, {len(unlabelled)} unlabelled images, "
        f"{pretrain_epochs} epochs), then {args.per_class} labels per digit, MNIST test accuracy:"
    )
    print_table(results, title, pretrain_seconds)
    return results


if __name__ == "__main__":
    main()
