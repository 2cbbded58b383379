"""The classic backpropagation examples, with layerkit doing the calculus.

(a) Regression of a constant: x ~ N(1, 0.1), target 10, model ``x * A``, L2 loss,
    SGD(0.02), one sample per step; A approaches 10 (least squares gives about 9.8).
(b) Classification of two Gaussians, N(-1, 1) labelled 0 and N(3, 1) labelled 1, by one
    sigmoid unit trained on logits; the decision boundary approaches 1, their midpoint.
(c) Fitting y = 3x on five points from w = 2.269, b = 1.01 with plain gradient descent.

Run: ``python examples/backprop_basics.py``
"""

from __future__ import annotations

import numpy as np

import layerkit as lk


def regression(seed: int = 0) -> float:
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
    for step in range(200):
        i = rng.integers(100)
        loss = model.train_on_batch(x[i : i + 1], y[i : i + 1])
        if (step + 1) % 25 == 0:
            a = model.get_layer("A").kernel.value.ravel()
            print(f"Step #{step + 1} A = {np.array2string(a, precision=2)}  Loss = {loss:.3g}")
    return float(model.get_layer("A").kernel.value[0, 0])


def classification(seed: int = 0) -> tuple[float, float]:
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
    for step in range(1400):
        i = rng.integers(100)
        loss = model.train_on_batch(x[i : i + 1], y[i : i + 1])
        if (step + 1) % 200 == 0:
            w, b = (v.ravel()[0] for v in model.get_layer("unit").get_weights())
            print(f"Step #{step + 1} A = [{w:.2f}] b = [{b:.2f}]  Loss = {loss:.3g}")
    w, b = (float(v.ravel()[0]) for v in model.get_layer("unit").get_weights())
    accuracy = float(np.mean((model.predict(x) > 0) == (y > 0.5)))
    return -b / w, accuracy


def line_fit() -> tuple[float, float]:
    x = np.array([1, 3, 4, 8, 10], dtype="float32")[:, None]
    y = 3 * x
    model = lk.Sequential([lk.layers.Dense(1, input_dim=1, name="line")])
    model.set_weights([np.array([[2.269]]), np.array([1.01])])
    model.compile(optimizer=lk.optim.SGD(0.01), loss="mse")
    for epoch in range(2000):
        loss = model.train_on_batch(x, y)
        if (epoch + 1) % 400 == 0:
            w, b = (v.ravel()[0] for v in model.get_weights())
            print(f"Epoch #{epoch + 1} w = {w:.4f} b = {b:.4f}  Loss = {loss:.3g}")
    w, b = (float(v.ravel()[0]) for v in model.get_weights())
    return w, b


def main() -> None:
    lk.utils.set_random_seed(0)
    print("(a) regression: x * A towards 10")
    a = regression()
    print(f"final A = {a:.3f}\n")
    print("(b) classification of N(-1, 1) vs N(3, 1)")
    boundary, accuracy = classification()
    print(f"decision boundary = {boundary:.3f}, accuracy = {accuracy:.2f}\n")
    print("(c) fit y = 3x")
    w, b = line_fit()
    print(f"final w = {w:.4f}, b = {b:.4f}")


if __name__ == "__main__":
    main()
