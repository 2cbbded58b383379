"""Freezing layers: selection, training effects, gradients, optimizer state, summary."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk


# --- local helpers -------------------------------------------------------------------
def make_data(n: int = 256, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20)).astype(np.float32)
    y = np.argmax(x[:, :3] + 0.3 * rng.normal(size=(n, 3)), axis=1).astype(np.int64)
    return x, y


def make_model(seed: int = 0, names=("hidden1", "hidden2", "out"), compile_model=True):
    """20 -> 16 -> 8 -> 3, no Dropout (deterministic steps)."""
    lk.utils.set_random_seed(seed)
    sizes = [16, 8, 3][-len(names) :] if len(names) <= 3 else [16] * (len(names) - 1) + [3]
    layers = [lk.layers.Input((20,))]
    for i, (name, units) in enumerate(zip(names, sizes, strict=True)):
        last = i == len(names) - 1
        layers.append(lk.layers.Dense(units, activation=None if last else "tanh", name=name))
    model = lk.Sequential(layers)
    if compile_model:
        model.compile(
            optimizer=lk.optim.Adam(learning_rate=0.01),
            loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    return model


def layer_bytes(model, name) -> list[bytes]:
    return [w.tobytes() for w in model.get_layer(name).get_weights()]


def all_bytes(model) -> dict[str, list[bytes]]:
    return {layer.name: layer_bytes(model, layer.name) for layer in model.layers}


def changed(before: dict, after: dict) -> set[str]:
    """Names of layers for which EVERY weight array changed."""
    return {n for n in before if all(a != b for a, b in zip(before[n], after[n], strict=True))}


def unchanged(before: dict, after: dict) -> set[str]:
    return {n for n in before if before[n] == after[n]}


# --- selection -----------------------------------------------------------------------
def test_freeze_and_unfreeze_return_changed_names():
    model = make_model(compile_model=False)
    assert model.freeze("hidden[12]") == ["hidden1", "hidden2"]
    assert [layer.trainable for layer in model.layers] == [False, False, True]
    assert model.unfreeze("hidden2") == ["hidden2"]
    assert [layer.trainable for layer in model.layers] == [False, True, True]
    assert model.freeze(["out", "hidden2"]) == ["hidden2", "out"]  # model order
    assert [layer.trainable for layer in model.layers] == [False, False, False]
    assert model.unfreeze(".*") == ["hidden1", "hidden2", "out"]
    assert all(layer.trainable for layer in model.layers)


def test_freeze_uses_fullmatch():
    model = make_model(names=("hidden1", "hidden10", "out"), compile_model=False)
    assert model.freeze("hidden1") == ["hidden1"]
    assert model.get_layer("hidden10").trainable


def test_freeze_pattern_matching_nothing_is_an_error():
    model = make_model(compile_model=False)
    with pytest.raises(ValueError) as info:
        model.freeze("hidden")
    message = str(info.value)
    assert "'hidden'" in message
    assert "hidden1" in message
    assert "hidden2" in message
    assert "out" in message
    assert all(layer.trainable for layer in model.layers)
    with pytest.raises(ValueError, match="hidden7"):
        model.unfreeze(["hidden1", "hidden7"])
    with pytest.raises(ValueError, match="regular expression"):
        model.freeze("hidden[")
    assert all(layer.trainable for layer in model.layers)


def test_trainable_and_non_trainable_weights():
    model = make_model(compile_model=False)
    model.freeze("hidden2")
    assert [p.name for p in model.trainable_weights] == [
        "hidden1/kernel",
        "hidden1/bias",
        "out/kernel",
        "out/bias",
    ]
    assert [p.name for p in model.non_trainable_weights] == ["hidden2/kernel", "hidden2/bias"]
    assert all(not p.trainable for p in model.non_trainable_weights)
    assert all(p.trainable for p in model.trainable_weights)
    model.unfreeze("hidden2")
    assert len(model.trainable_weights) == 6
    assert model.non_trainable_weights == []


def test_summary_counts_trainable_and_frozen_params():
    model = make_model(compile_model=False)
    model.freeze("hidden1")
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    # hidden1: 20*16+16 = 336; hidden2: 16*8+8 = 136; out: 8*3+3 = 27.
    assert "Total params: 499 " in text
    assert "Trainable params: 163 " in text
    assert "Non-trainable params: 336 " in text
    row = next(line for line in text.splitlines() if line.startswith("hidden1 (Dense)"))
    assert row.rstrip().endswith("frozen")
    assert "336" in row
    assert not any(line.startswith("hidden2") and "frozen" in line for line in text.splitlines())
    model.unfreeze("hidden1")
    lines.clear()
    model.summary(print_fn=lines.append)
    assert "Trainable params: 499 " in lines[0]
    assert "Non-trainable params: 0 " in lines[0]


# --- training ------------------------------------------------------------------------
def test_fit_leaves_frozen_weights_bitwise_unchanged():
    x, y = make_data()
    model = make_model()
    model.freeze("hidden[12]")
    before = all_bytes(model)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, cache_frozen=False)
    after = all_bytes(model)
    assert unchanged(before, after) == {"hidden1", "hidden2"}
    assert changed(before, after) == {"out"}


def test_gradients_reach_trainable_layer_below_a_frozen_one():
    x, y = make_data()
    model = make_model()
    model.freeze("hidden2")
    loss, pairs = model.compute_gradients(x[:64], y[:64])
    assert [p.name for _, p in pairs] == [
        "hidden1/kernel",
        "hidden1/bias",
        "out/kernel",
        "out/bias",
    ]
    grads = {p.name: g for g, p in pairs}
    assert np.linalg.norm(grads["hidden1/kernel"]) > 1e-4
    assert np.linalg.norm(grads["hidden1/bias"]) > 1e-5
    # Freezing hidden2 does not change the gradient that flows through it.
    reference = make_model()
    ref_loss, ref_pairs = reference.compute_gradients(x[:64], y[:64])
    ref_grads = {p.name: g for g, p in ref_pairs}
    assert set(ref_grads) == {
        "hidden1/kernel",
        "hidden1/bias",
        "hidden2/kernel",
        "hidden2/bias",
        "out/kernel",
        "out/bias",
    }
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    for name, g in grads.items():
        np.testing.assert_allclose(g, ref_grads[name], rtol=1e-5, atol=1e-7)

    before = all_bytes(model)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    after = all_bytes(model)
    assert unchanged(before, after) == {"hidden2"}
    assert changed(before, after) == {"hidden1", "out"}


def test_gradients_match_finite_differences_through_frozen_layer():
    x, y = make_data(16)
    with lk.backend.floatx_scope("float64"):
        model = make_model()
        model.freeze("hidden2")
        _, pairs = model.compute_gradients(x, y)
        grad = {p.name: g for g, p in pairs}["hidden1/bias"]
        bias = model.get_layer("hidden1").bias
        numeric = np.zeros_like(grad)
        for i in range(bias.size):
            original = bias.value[i]
            bias.value[i] = original + 1e-6
            plus = model.evaluate(x, y)
            bias.value[i] = original - 1e-6
            minus = model.evaluate(x, y)
            bias.value[i] = original
            numeric[i] = (plus - minus) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_freezing_between_fits_takes_effect_without_recompile():
    x, y = make_data()
    model = make_model()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    model.freeze("hidden1")
    before = all_bytes(model)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    after = all_bytes(model)
    assert unchanged(before, after) == {"hidden1"}
    assert changed(before, after) == {"hidden2", "out"}
    model.unfreeze("hidden1")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert changed(after, all_bytes(model)) == {"hidden1", "hidden2", "out"}


def test_freezing_all_layers_trains_nothing():
    x, y = make_data(64)
    model = make_model()
    model.freeze(".*")
    before = all_bytes(model)
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert all_bytes(model) == before
    assert history.history["loss"][0] == pytest.approx(history.history["loss"][1], rel=1e-6)
    assert model.optimizer.iterations == 0


def test_optimizer_keeps_slots_across_freeze_and_unfreeze():
    x, y = make_data()
    model = make_model()
    opt = model.optimizer
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    kept = {
        name: {k: v.copy() for k, v in opt.slots(name).items()}
        for name in ("hidden1/kernel", "hidden2/kernel")
    }
    assert np.abs(kept["hidden1/kernel"]["momentum"]).sum() > 0

    model.freeze("hidden1")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    for slot, array in kept["hidden1/kernel"].items():
        assert np.array_equal(opt.slots("hidden1/kernel")[slot], array), slot
    assert not np.array_equal(
        opt.slots("hidden2/kernel")["momentum"], kept["hidden2/kernel"]["momentum"]
    )

    # After unfreeze the next update continues from the kept moments (Adam by hand).
    model.unfreeze("hidden1")
    m0 = opt.slots("hidden1/kernel")["momentum"].astype(np.float64)
    v0 = opt.slots("hidden1/kernel")["velocity"].astype(np.float64)
    w0 = model.get_layer("hidden1").kernel.numpy().astype(np.float64)
    xb, yb = x[:32], y[:32]
    _, pairs = model.compute_gradients(xb, yb)
    g = {p.name: grad for grad, p in pairs}["hidden1/kernel"].astype(np.float64)
    t = opt.iterations + 1
    model.train_on_batch(xb, yb)
    m = m0 + (g - m0) * (1 - opt.beta_1)
    v = v0 + (g * g - v0) * (1 - opt.beta_2)
    alpha = 0.01 * np.sqrt(1 - opt.beta_2**t) / (1 - opt.beta_1**t)
    expected = w0 - alpha * m / (np.sqrt(v) + opt.epsilon)
    np.testing.assert_allclose(opt.slots("hidden1/kernel")["momentum"], m, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(opt.slots("hidden1/kernel")["velocity"], v, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(
        model.get_layer("hidden1").kernel.value, expected, rtol=1e-5, atol=1e-7
    )
    # Fresh moments would have given a clearly different step.
    fresh = w0 - alpha * ((1 - opt.beta_1) * g) / (np.sqrt((1 - opt.beta_2) * g * g) + opt.epsilon)
    assert np.abs(fresh - expected).max() > 1e-4


def test_trainable_flag_in_constructor_and_config():
    lk.utils.set_random_seed(0)
    model = lk.Sequential(
        [
            lk.layers.Input((20,)),
            lk.layers.Dense(4, name="frozen_base", trainable=False),
            lk.layers.Dense(3, name="head"),
        ]
    )
    assert model.get_layer("frozen_base").get_config()["trainable"] is False
    clone = lk.Sequential.from_config(model.get_config())
    assert [layer.trainable for layer in clone.layers] == [False, True]
    assert [p.name for p in clone.trainable_weights] == ["head/kernel", "head/bias"]
