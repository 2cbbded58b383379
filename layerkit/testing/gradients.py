"""``check_gradients``: a layer's backward against central finite differences, in float64.

A layer's backward is the part of a custom layer most often wrong, and wrong gradients
train badly rather than fail. This check rebuilds the layer in float64 (from its config,
with the same weights), feeds a random upstream gradient ``g`` and compares the input and
weight gradients of ``sum(layer(x) * g)`` with central differences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..layers.base import Layer, layer_class


def _float64_copy(layer: Layer) -> Layer:
    config = dict(layer.get_config())
    config["dtype"] = "float64"
    copy = layer_class(type(layer).__name__).from_config(config)
    return copy


def numeric_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``d f() / d x`` by central differences, perturbing ``x`` in place, one element at
    a time, and restoring it (so ``x`` can be a weight's live value array)."""
    grad = np.zeros(x.shape, dtype=np.float64)
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("numeric_gradient needs a contiguous x (it perturbs x in place).")
    flat_grad = grad.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        plus = f()
        flat[i] = original - eps
        minus = f()
        flat[i] = original
        flat_grad[i] = (plus - minus) / (2 * eps)
    return grad


def check_gradients(
    layer: Layer,
    x: np.ndarray | Sequence[np.ndarray],
    *,
    training: bool = False,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    seed: int = 0,
) -> dict[str, float]:
    """Checks ``layer``'s gradients with respect to its inputs and weights.

    Args:
        layer: a layer (built or not; a registered class, so that it can be copied in
            float64 from its config). The layer itself is not changed.
        x: a batch of inputs (a list of arrays for a merge layer).
        training: run the forward in training mode (random layers replay the same draws
            for every difference).
        eps: the step of the central differences.
        rtol, atol: the tolerances of the comparison.
        seed: of the random upstream gradient.

    Returns:
        The largest absolute difference for the input(s) and for each weight, by name.

    Raises:
        AssertionError: a gradient differs from its finite differences; the message names
            the input or weight and the worst entry.

    Example:
        >>> lk.testing.check_gradients(MyLayer(8), np.random.rand(4, 5))
        {'input': 3.1e-10, 'kernel': 2.2e-10}
    """
    many = isinstance(x, (list, tuple))
    inputs = [np.array(a, dtype=np.float64) for a in (x if many else [x])]
    copy = _float64_copy(layer)
    shapes = [(None, *a.shape[1:]) for a in inputs]
    copy.build(shapes if many else shapes[0])
    if layer.built:
        for ours, theirs in zip(copy.weights, layer.weights):
            ours.value[...] = theirs.value
    rng = np.random.default_rng(seed)
    state = copy.training_state()
    statistics = [(p, p.value.copy()) for p in copy.weights if p.statistic]

    def run(arrays):
        if state:
            copy.load_training_state(state)  # the same random draws every time
        for p, value in statistics:
            p.value[...] = value  # layers that update statistics while training
        return copy.forward(arrays if many else arrays[0], training)

    y, backward = run(inputs)
    y = np.array(y, copy=True)
    upstream = rng.normal(size=y.shape)
    analytic = backward(upstream.copy(), True)
    analytic_inputs = list(analytic) if many else [analytic]
    analytic_weights = {p.name.split("/", 1)[1]: p.grad.copy() for p in copy.weights if p.trainable}

    def loss() -> float:
        out, _ = run(inputs)
        return float(np.sum(out * upstream))

    def numeric(array: np.ndarray) -> np.ndarray:
        return numeric_gradient(loss, array, eps)

    report: dict[str, float] = {}
    checks: list[tuple[str, np.ndarray, np.ndarray]] = []
    for i, (array, grad) in enumerate(zip(inputs, analytic_inputs)):
        checks.append(("input" if not many else f"input {i}", np.asarray(grad), numeric(array)))
    for p in copy.weights:
        name = p.name.split("/", 1)[1]
        if name in analytic_weights:
            checks.append((name, analytic_weights[name], numeric(p.value)))
    for name, got, expected in checks:
        if got.shape != expected.shape:
            raise AssertionError(
                f"{type(layer).__name__} {name}: the backward returned shape {got.shape}, "
                f"expected {expected.shape}."
            )
        difference = np.abs(got - expected)
        report[name] = float(difference.max()) if difference.size else 0.0
        bad = difference > atol + rtol * np.abs(expected)
        if np.any(bad):
            worst = np.unravel_index(np.argmax(difference - rtol * np.abs(expected)), got.shape)
            raise AssertionError(
                f"{type(layer).__name__} {name}: the backward gives {got[worst]:.8g} at "
                f"{tuple(int(i) for i in worst)}, finite differences {expected[worst]:.8g} "
                f"({int(bad.sum())} of {bad.size} entries beyond rtol={rtol}, atol={atol})."
            )
    return report
