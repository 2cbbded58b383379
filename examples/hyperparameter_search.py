"""Hyper-parameter search with scikit-learn: RandomizedSearchCV over an MLP on MNIST.

The search of Hands-On Machine Learning, chapter 10: the number of hidden layers, the
neurons per layer and the learning rate of an MLP, drawn at random and scored by k-fold
cross-validation. The model is wrapped for scikit-learn with ``lk.wrappers.SKLearnClassifier``
(Keras 3's interface: a function building a compiled model from ``X``, ``y`` and
``model_kwargs``), so ``RandomizedSearchCV`` clones, trains and scores it as any other
estimator. The best candidate is then retrained on all the training rows and tested; its
diagram (``--plot``) and TensorBoard logs (``--logdir``) can be written.

Prints the candidates ranked as a Markdown table, then as its last line
``best_cv_accuracy=0.9xxx test_accuracy=0.9xxx``. A run with the same ``--seed`` draws the
same candidates and prints the same figures.

Run: ``python examples/hyperparameter_search.py`` (``--quick`` for a smoke test: a few
hundred images, 3 candidates, 2 epochs, 2 folds).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _common import at_least, check_input, prepare_output
from mnist_mlp import load_mnist
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.model_selection import RandomizedSearchCV

import layerkit as lk
from layerkit.wrappers import SKLearnClassifier


def build_model(X, y, n_hidden=1, n_neurons=30, learning_rate=3e-3):
    """A compiled MLP for ``X``'s features and ``y``'s classes (``y`` is one-hot)."""
    model = lk.Sequential([lk.layers.Input((X.shape[1],))])
    for i in range(n_hidden):
        model.add(
            lk.layers.Dense(
                n_neurons, activation="relu", kernel_initializer="he_normal", name=f"hidden{i + 1}"
            )
        )
    model.add(lk.layers.Dense(y.shape[1], activation="softmax", name="output"))
    model.compile(
        optimizer=lk.optim.Adam(learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class KwargsDistribution:
    """Draws ``model_kwargs`` dicts for the search, each key from its own list (uniformly)
    or scipy distribution: the Keras-3-style wrapper takes the builder's arguments as one
    dict, and scikit-learn samples anything that has ``rvs``."""

    def __init__(self, **spaces) -> None:
        self.spaces = spaces

    def rvs(self, random_state=None) -> dict:
        seed = None if random_state is None else int(random_state.randint(2**31))
        rng = np.random.default_rng(seed)
        drawn = {}
        for name, space in self.spaces.items():
            if hasattr(space, "rvs"):
                value = space.rvs(random_state=int(rng.integers(2**31)))
                drawn[name] = float(value)
            else:
                drawn[name] = space[int(rng.integers(len(space)))]
        return drawn


# Hands-On ML's ranges (its learning rates suit SGD; Adam's are ten times smaller).
SPACE = {
    "n_hidden": [0, 1, 2, 3],
    "n_neurons": list(range(1, 101)),
    "learning_rate": loguniform(1e-4, 1e-2),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder holding the MNIST files")
    parser.add_argument("--quick", action="store_true", help="a few hundred images, 3 candidates")
    parser.add_argument("--seed", type=at_least(0), default=42, help="seed of the whole run")
    parser.add_argument(
        "--candidates", type=at_least(1), default=10, help="candidates drawn (default 10)"
    )
    parser.add_argument("--epochs", type=at_least(1), default=10, help="epochs per fit")
    parser.add_argument("--folds", type=at_least(2), default=3, help="cross-validation folds")
    parser.add_argument(
        "--train-rows", type=at_least(10), default=10000, help="training images used"
    )
    parser.add_argument("--plot", metavar="PATH", help="write the best model's diagram")
    parser.add_argument("--logdir", metavar="DIR", help="TensorBoard logs of the final fit")
    args = parser.parse_args(argv)
    check_input(parser, "--data", args.data)
    prepare_output(parser, "--plot", args.plot, plot=True)
    if args.logdir is not None and os.path.exists(args.logdir) and not os.path.isdir(args.logdir):
        parser.error(f"--logdir: expected a folder, got a file. Received: {args.logdir!r}")
    if args.quick:
        args.candidates, args.epochs, args.folds, args.train_rows = 3, 2, 2, 600

    (x_train, y_train), (x_test, y_test) = load_mnist(args.data, quick=args.quick)
    rng = np.random.default_rng(args.seed)
    rows = rng.permutation(len(x_train))[: args.train_rows]
    x_train, y_train = x_train[rows], y_train[rows]
    if args.quick:
        x_test, y_test = x_test[:500], y_test[:500]

    classifier = SKLearnClassifier(
        build_model,
        fit_kwargs={"epochs": args.epochs, "batch_size": 32, "verbose": 0},
        random_state=args.seed,
    )
    search = RandomizedSearchCV(
        classifier,
        {"model_kwargs": KwargsDistribution(**SPACE)},
        n_iter=args.candidates,
        cv=args.folds,
        random_state=args.seed,
        refit=False,
    )
    started = time.perf_counter()
    search.fit(x_train, y_train)
    results = search.cv_results_
    seconds = time.perf_counter() - started
    print(f"{args.candidates} candidates x {args.folds} folds in {seconds:.1f} s")
    print("\n| rank | n_hidden | n_neurons | learning_rate | cv accuracy | fit time (s) |")
    print("|---|---|---|---|---|---|")
    for i in np.argsort(results["rank_test_score"], kind="stable"):
        kwargs = results["params"][i]["model_kwargs"]
        print(
            f"| {results['rank_test_score'][i]} | {kwargs['n_hidden']} | {kwargs['n_neurons']} "
            f"| {kwargs['learning_rate']:.2e} | {results['mean_test_score'][i]:.4f} "
            f"± {results['std_test_score'][i]:.4f} | {results['mean_fit_time'][i]:.2f} |"
        )

    # The best candidate, trained on every training row (with a validation tenth for
    # TensorBoard's validation curves), then tested.
    best = clone(classifier).set_params(model_kwargs=search.best_params_["model_kwargs"])
    callbacks = [lk.callbacks.TensorBoard(args.logdir, histogram_freq=1)] if args.logdir else []
    best.fit(x_train, y_train, callbacks=callbacks, validation_split=0.1)
    test_accuracy = best.score(x_test, y_test)
    print(f"\nbest: {search.best_params_['model_kwargs']}")
    if args.plot:
        lk.utils.plot_model(best.model_, args.plot, show_shapes=True, show_layer_names=True)
        print(f"diagram of the best model: {args.plot}")
    if args.logdir:
        print(f"TensorBoard logs: tensorboard --logdir {args.logdir}")
    print(f"best_cv_accuracy={search.best_score_:.4f} test_accuracy={test_accuracy:.4f}")


if __name__ == "__main__":
    main()
