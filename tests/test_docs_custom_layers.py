"""The examples of docs/custom_layers.md run and do what the page says."""

from __future__ import annotations

import pathlib
import re

import numpy as np

PAGE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "custom_layers.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def test_the_monte_carlo_dropout_example_predicts_differently_each_time(fresh_session):
    code = _blocks()[0].replace(
        "# ... compile, fit; then average many stochastic predictions:",
        "model.compile(optimizer='sgd', loss='sparse_categorical_crossentropy')",
    )
    code = code.replace("for _ in range(100)", "for _ in range(5)")
    namespace = {"np": np, "x_test": np.random.default_rng(0).random((3, 784), dtype=np.float32)}
    exec(code, namespace)
    model = namespace["model"]
    first, second = model.predict(namespace["x_test"]), model.predict(namespace["x_test"])
    assert not np.array_equal(first, second)
    np.testing.assert_allclose(namespace["probabilities"].sum(axis=1), 1.0, rtol=1e-5)


def test_the_scale_layer_example_passes_the_gradient_check(fresh_session):
    namespace: dict = {}
    exec(_blocks()[1] + "\n" + _blocks()[2], namespace)
    assert set(namespace["report"]) == {"input", "w"}
    assert max(namespace["report"].values()) < 1e-7
