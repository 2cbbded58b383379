"""The classic backpropagation examples, with layerkit doing the calculus.

(a) Regression of a constant: x ~ N(1, 0.1), target 10, model ``x * A``, L2 loss,
    SGD(0.02), one sample per step; A approaches 10 (least squares gives about 9.8).
(b) Classification of two Gaussians, N(-1, 1) labelled 0 and N(3, 1) labelled 1, by one
    sigmoid unit trained on logits; the decision boundary approaches 1, their midpoint.
(c) Fitting y = 3x on five points from w = 2.269, b = 1.01 with plain gradient descent.

Run: ``python examples/backprop_basics.py`` (``--quick`` for a quarter of the steps,
``--plot PATH`` for the three loss curves).
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import prepare_output

import layerkit as lk

STEPS = {"regression": 200, "classification": 1400, "line_fit": 2000}


def regression(seed: int = 0, steps: int = STEPS["regression"]) -> tuple[float, list[float]]:
    """Returns the final A and the loss at each step."""
    rng = np.random.default_rng(seed)
    x = rng.normal(1.0, 0.1, size=(100, 1)).astype("float32")
    y = np.full((100, 1), 10.0, dtype="float32")
    model = lk.Sequential(
        [
            lk.layers.Dense(
                1,
                use_bias=False,
                input_dim=1,
                kernel_initializer=lk.initializers.RandomNormal(stddev=1.0, seed=seed),
                name="A",
            )
        ]
    )
    model.compile(optimizer=lk.optim.SGD(0.02), loss="mse")
    losses = []
    for step in range(steps):
        i = rng.integers(100)
        losses.append(model.train_on_batch(x[i : i + 1], y[i : i + 1]))
        if (step + 1) % (steps // 8) == 0:
            a = np.array2string(model.get_layer("A").kernel.value.ravel(), precision=2)
            print(f"Step #{step + 1} A = {a}  Loss = {losses[-1]:.3g}")
    return float(model.get_layer("A").kernel.value[0, 0]), losses


def classification(
    seed: int = 0, steps: int = STEPS["classification"]
) -> tuple[float, float, list[float]]:
    """Returns the decision boundary, the training accuracy and the loss at each step."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(-1, 1, 50), rng.normal(3, 1, 50)]).astype("float32")[:, None]
    y = np.concatenate([np.zeros(50), np.ones(50)]).astype("float32")[:, None]
    model = lk.Sequential(
        [
            lk.layers.Dense(
                1,
                input_dim=1,
                name="unit",
                kernel_initializer=lk.initializers.RandomNormal(stddev=1.0, seed=seed),
            )
        ]
    )
    model.compile(optimizer=lk.optim.SGD(0.05), loss=lk.losses.BinaryCrossentropy(from_logits=True))
    losses = []
    for step in range(steps):
        i = rng.integers(100)
        losses.append(model.train_on_batch(x[i : i + 1], y[i : i + 1]))
        if (step + 1) % (steps // 7) == 0:
            w, b = (v.ravel()[0] for v in model.get_layer("unit").get_weights())
            print(f"Step #{step + 1} A = [{w:.2f}] b = [{b:.2f}]  Loss = {losses[-1]:.3g}")
    w, b = (float(v.ravel()[0]) for v in model.get_layer("unit").get_weights())
    accuracy = float(np.mean((model.predict(x) > 0) == (y > 0.5)))
    return -b / w, accuracy, losses


def line_fit(steps: int = STEPS["line_fit"]) -> tuple[float, float, list[float]]:
    """Returns the final w and b and the loss at each epoch (one full batch each)."""
    x = np.array([1, 3, 4, 8, 10], dtype="float32")[:, None]
    y = 3 * x
    model = lk.Sequential([lk.layers.Dense(1, input_dim=1, name="line")])
    model.set_weights([np.array([[2.269]]), np.array([1.01])])
    model.compile(optimizer=lk.optim.SGD(0.01), loss="mse")
    losses = []
    for epoch in range(steps):
        losses.append(model.train_on_batch(x, y))
        if (epoch + 1) % (steps // 5) == 0:
            w, b = (v.ravel()[0] for v in model.get_weights())
            print(f"Epoch #{epoch + 1} w = {w:.4f} b = {b:.4f}  Loss = {losses[-1]:.3g}")
    w, b = (float(v.ravel()[0]) for v in model.get_weights())
    return w, b, losses


def plot_losses(curves: dict[str, list[float]], path: str) -> None:
    """Writes one panel per exercise: its loss at each step, on a log scale."""
    import matplotlib  # here, not at the top: the exercises run without it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4), squeeze=False)
    for axis, (title, losses) in zip(axes[0], curves.items()):
        axis.plot(range(1, len(losses) + 1), losses, linewidth=0.8)
        axis.set_yscale("log")
        axis.set_xlabel("step")
        axis.set_ylabel("training loss")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the steps")
    parser.add_argument(
        "--plot", default=None, metavar="PATH", help="write the three loss curves to this PNG"
    )
    args = parser.parse_args(argv)
    prepare_output(parser, "--plot", args.plot, plot=True)
    steps = {name: n // 4 if args.quick else n for name, n in STEPS.items()}

    lk.utils.set_random_seed(0)
    print("(a) regression: x * A towards 10")
    a, regression_losses = regression(steps=steps["regression"])
    print(f"final A = {a:.3f}\n")
    print("(b) classification of N(-1, 1) vs N(3, 1)")
    boundary, accuracy, classification_losses = classification(steps=steps["classification"])
    print(f"decision boundary = {boundary:.3f}, accuracy = {accuracy:.2f}\n")
    print("(c) fit y = 3x")
    w, b, line_losses = line_fit(steps=steps["line_fit"])
    if args.plot:
        plot_losses(
            {
                "(a) regression: MSE": regression_losses,
                "(b) classification: cross-entropy": classification_losses,
                "(c) fit y = 3x: MSE": line_losses,
            },
            args.plot,
        )
    print(f"final w = {w:.4f}, b = {b:.4f}")


if __name__ == "__main__":
    main()
