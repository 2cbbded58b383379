"""The textbook transfer study: digits 0-4 to digits 5-9 with 100 images per digit.

A base MLP (the seed architecture) is trained on digits 0-4. Its layers are then reused to
classify digits 5-9 from only 100 training images per digit (30 per digit for validation):

1. all hidden layers frozen, a new softmax output;
2. hidden1-3 frozen, a new hidden4 and output;
3. row 2 with the frozen-output cache (same numbers, less time);
4. row 2, then hidden2-3 unfrozen and training continued;
5. all reused layers trainable (fine-tuning);
6. the same architecture trained from scratch on the 500 images.

Prints a Markdown table averaged over ``--seeds`` runs, and as its last line
``best_transfer_accuracy=0.9xxx cached_speedup=N.Nx``.

Run: ``python examples/transfer_digits.py`` (``--quick`` for a smoke test).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from _common import at_least, check_input, prepare_output
from mnist_mlp import HIDDEN, load_mnist

import layerkit as lk

ROWS = (
    "all hidden layers frozen, new output (cached)",
    "hidden1-3 frozen, new hidden4 + output",
    "row 2 with the frozen-output cache",
    "row 2, then hidden2-3 unfrozen",
    "hidden1-3 fine-tuned, new hidden4 + output",
    "same architecture from scratch",
)


def split_digits(x, y, digits, per_class=None, rng=None, offset=0):
    """Samples of ``digits`` relabelled 0..4; ``per_class`` picks that many of each."""
    keep = np.isin(y, digits)
    x, y = x[keep], y[keep].astype(np.int64) - digits[0]
    if per_class is None:
        return x, y
    chosen = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[offset : offset + per_class] for c in range(5)]
    )
    return x[chosen], y[chosen]


def compile_model(model, learning_rate=1e-3):
    model.compile(
        optimizer=lk.optim.Adam(learning_rate),
        loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def early_stopping(patience=20):
    return [
        lk.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    ]


def train_base(data, seed: int, epochs: int, path: str) -> None:
    lk.utils.set_random_seed(seed)
    (x, y), _ = data
    x04, y04 = split_digits(x, y, (0, 1, 2, 3, 4))
    layers = [lk.layers.Input((784,))]
    layers += [
        lk.layers.Dense(u, activation="relu", kernel_initializer="he_normal", name=n)
        for n, u in HIDDEN
    ]
    layers.append(lk.layers.Dense(5, name="outputs"))
    base = compile_model(lk.Sequential(layers))
    base.fit(
        x04,
        y04,
        batch_size=64,
        epochs=epochs,
        validation_split=0.1,
        verbose=0,
        callbacks=early_stopping(3),
    )
    base.save(path)


def head_model(top_hidden: int, hidden4_units: int = 50) -> lk.Sequential:
    """The reused hidden1..top_hidden (seed shapes), then a new hidden4 (if top_hidden
    is 3) and a new 5-way output."""
    layers = [lk.layers.Input((784,))]
    layers += [lk.layers.Dense(u, activation="relu", name=n) for n, u in HIDDEN[:top_hidden]]
    if top_hidden == 3:
        layers.append(
            lk.layers.Dense(
                hidden4_units, activation="relu", kernel_initializer="he_normal", name="new_hidden4"
            )
        )
    layers.append(lk.layers.Dense(5, name="new_outputs"))
    return compile_model(lk.Sequential(layers))


def run_seed(data, seed: int, base_epochs: int, epochs: int, folder: str) -> tuple[list, object]:
    """Runs the six rows for one seed; returns [(accuracy, seconds)] and row 5's History."""
    base_path = os.path.join(folder, f"base-{seed}.h5")
    train_base(data, seed, base_epochs, base_path)
    (x, y), (x_test, y_test) = data
    rng = np.random.default_rng(seed)
    x_small, y_small = split_digits(x, y, (5, 6, 7, 8, 9), 100, rng)
    rng = np.random.default_rng(seed)  # same permutation: validation follows the training picks
    x_val, y_val = split_digits(x, y, (5, 6, 7, 8, 9), 30, rng, offset=100)
    x_test, y_test = split_digits(x_test, y_test, (5, 6, 7, 8, 9))

    def fit(model, cache=False, epochs=epochs):
        start = time.perf_counter()
        model.fit(
            x_small,
            y_small,
            batch_size=32,
            epochs=epochs,
            verbose=0,
            validation_data=(x_val, y_val),
            callbacks=early_stopping(),
            cache_frozen=cache,
        )
        return time.perf_counter() - start

    def accuracy(model):
        return model.evaluate(x_test, y_test, batch_size=1024, return_dict=True)["accuracy"]

    results = []
    # 1. every reused hidden layer frozen, new output
    lk.utils.set_random_seed(seed)
    model = head_model(5)
    model.load_weights(base_path, layers="hidden[1-5]")
    model.freeze("hidden[1-5]")
    seconds = fit(model, cache=True)
    results.append((accuracy(model), seconds))
    # 2 and 3. hidden1-3 frozen, with and without the cache (same seed: same numbers)
    for cache in (False, True):
        lk.utils.set_random_seed(seed)
        model = head_model(3)
        model.load_weights(base_path, layers="hidden[123]")
        model.freeze("hidden[123]")
        seconds = fit(model, cache=cache)
        results.append((accuracy(model), seconds))
    # 4. continue row 3's model with hidden2-3 unfrozen, at a lower learning rate
    model.unfreeze("hidden[23]")
    model.optimizer.learning_rate = 1e-4
    seconds += fit(model)
    results.append((accuracy(model), seconds))
    # 5. fine-tune everything reused
    lk.utils.set_random_seed(seed)
    model = head_model(3)
    model.load_weights(base_path, layers="hidden[123]")
    seconds = fit(model)
    results.append((accuracy(model), seconds))
    fine_tuning_history = model.history
    # 6. from scratch
    lk.utils.set_random_seed(seed)
    model = head_model(3)
    seconds = fit(model)
    results.append((accuracy(model), seconds))
    return results, fine_tuning_history


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder holding the MNIST files")
    parser.add_argument("--seeds", type=at_least(1), default=3, help="runs to average (default 3)")
    parser.add_argument(
        "--epochs", type=at_least(1), default=200, help="max epochs per transfer row"
    )
    parser.add_argument(
        "--base-epochs", type=at_least(1), default=20, help="epochs of the base model"
    )
    parser.add_argument("--quick", action="store_true", help="one seed, few epochs")
    parser.add_argument(
        "--plot",
        default=None,
        help="write the training curves of row 5 (fine-tuning), first seed, to this PNG",
    )
    args = parser.parse_args(argv)
    check_input(parser, "--data", args.data)
    prepare_output(parser, "--plot", args.plot, plot=True)
    seeds, epochs, base_epochs = args.seeds, args.epochs, args.base_epochs
    if args.quick:
        seeds, epochs, base_epochs = 1, 5, 1
    data = load_mnist(args.data, quick=False)
    with tempfile.TemporaryDirectory() as folder:
        outcomes = [run_seed(data, 1000 + s, base_epochs, epochs, folder) for s in range(seeds)]
    runs = np.array([results for results, _ in outcomes])  # (seeds, rows, 2)
    mean = runs.mean(axis=0)
    print(f"\n| row | setup | test accuracy on 5-9 (mean of {seeds}) | min-max | time (s) |")
    print("|---|---|---|---|---|")
    for i, name in enumerate(ROWS):
        low, high = runs[:, i, 0].min(), runs[:, i, 0].max()
        print(f"| {i + 1} | {name} | {mean[i, 0]:.4f} | {low:.4f}-{high:.4f} | {mean[i, 1]:.2f} |")
    best = mean[:5, 0].max()
    speedup = mean[1, 1] / mean[2, 1]
    if args.plot:  # the curves of the best row (fine-tuning) for the first seed
        lk.utils.plot_history(outcomes[0][1], args.plot)
    print(f"best_transfer_accuracy={best:.4f} cached_speedup={speedup:.1f}x")


if __name__ == "__main__":
    main()
