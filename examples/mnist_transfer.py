"""Reuse hidden1-3 of the trained MNIST MLP in a new model, frozen, and train the rest.

Run ``examples/mnist_mlp.py`` first (it writes ``mnist_mlp.h5``), then:
    python examples/mnist_transfer.py --model mnist_mlp.h5

Steps: build a new model whose hidden1-3 have the saved shapes, plus a new hidden4 (20
units) and a new output layer; restore hidden1-3 with ``load_weights(layers="hidden[123]")``;
train with hidden1-2 frozen; then freeze hidden3 too and train with and without the
frozen-output cache, printing accuracy and time for each.
"""

from __future__ import annotations

import argparse
import time

from _common import at_least, check_input, prepare_output
from mnist_mlp import load_mnist

import layerkit as lk


def build_transfer_model() -> lk.Sequential:
    return lk.Sequential(
        [
            lk.layers.Input((784,)),
            lk.layers.Dense(300, activation="relu", name="hidden1"),
            lk.layers.Dense(50, activation="relu", name="hidden2"),
            lk.layers.Dense(50, activation="relu", name="hidden3"),
            lk.layers.Dense(20, activation="relu", kernel_initializer="he_normal", name="hidden4"),
            lk.layers.Dense(10, name="outputs"),
        ],
        name="mnist_transfer",
    )


def new_model(path: str) -> lk.Sequential:
    model = build_transfer_model()
    restored = model.load_weights(path, layers="hidden[123]")
    print("restored:", ", ".join(f"{src} -> {dst}" for src, dst in restored))
    return model


def train(model, data, epochs: int, cache_frozen) -> tuple[float, float]:
    (x_train, y_train), (x_test, y_test) = data
    model.compile(
        optimizer=lk.optim.Adam(1e-3),
        loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0, cache_frozen=cache_frozen)
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, y_test, batch_size=1024)
    return accuracy, seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist_mlp.h5", help="model saved by mnist_mlp.py")
    parser.add_argument("--data", default=None, help="folder holding the MNIST files")
    parser.add_argument("--epochs", type=at_least(1), default=5, help="epochs (default 5)")
    parser.add_argument("--quick", action="store_true", help="a few thousand samples, one epoch")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--plot", default=None, help="write the training curves to this PNG")
    args = parser.parse_args(argv)
    check_input(parser, "--model", args.model)
    check_input(parser, "--data", args.data)
    prepare_output(parser, "--plot", args.plot, plot=True)
    epochs = 1 if args.quick else args.epochs
    data = load_mnist(args.data, args.quick)

    lk.utils.set_random_seed(args.seed)
    model = new_model(args.model)
    print("frozen:", model.freeze("hidden[12]"))
    accuracy, seconds = train(model, data, epochs, cache_frozen=False)
    print(f"hidden1-2 frozen: test accuracy {accuracy:.4f} in {seconds:.1f} s")

    results = {}
    for cache in (False, True):
        lk.utils.set_random_seed(args.seed)
        model = new_model(args.model)
        model.freeze("hidden[123]")
        results[cache] = train(model, data, epochs, cache_frozen=cache)
        label = "with" if cache else "without"
        print(
            f"hidden1-3 frozen, {label} the frozen-output cache: test accuracy "
            f"{results[cache][0]:.4f} in {results[cache][1]:.1f} s"
        )
        if args.plot and cache:
            lk.utils.plot_history(model.history, args.plot)
    speedup = results[False][1] / results[True][1]
    print(f"cached_speedup={speedup:.1f}x test_accuracy={results[True][0]:.4f}")


if __name__ == "__main__":
    main()
