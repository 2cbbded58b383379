"""The plan engine on graphs: shared layers, fan-out, outputs read by other layers,
frozen parts, the frozen-output cache at a graph's frontier, subclassed models, and
configs and checkpoints of graphs (the Keras numbers are in test_functional_keras.py)."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk


def _loss_of(model, x, y):
    def loss():
        result = model.evaluate(x, y, batch_size=1 << 20)
        return float(result[0] if isinstance(result, list) else result)

    return loss


def _check_weight_gradients(model, x, y, numeric_grad, rtol=1e-5, atol=1e-7):
    """Every trainable weight's gradient (compute_gradients) against central differences."""
    model.compile(optimizer="sgd", loss=model._test_loss)
    _, pairs = model.compute_gradients(x, y)
    assert pairs
    loss = _loss_of(model, x, y)
    for grad, parameter in pairs:
        expected = numeric_grad(loss, parameter.value)
        np.testing.assert_allclose(grad, expected, rtol=rtol, atol=atol, err_msg=parameter.name)
    return pairs


def _siamese(units=4, features=3):
    shared = lk.layers.Dense(units, activation="tanh", name="shared")
    a = lk.layers.Input((features,), name="a")
    b = lk.layers.Input((features,), name="b")
    merged = lk.layers.concatenate([shared(a), shared(b)])
    out = lk.layers.Dense(1, activation="sigmoid", name="same")(merged)
    return lk.Model([a, b], out), shared


def test_a_shared_layer_gets_the_sum_of_its_calls_gradients(
    float64, fresh_session, rng, numeric_grad
):
    model, shared = _siamese()
    model._test_loss = "binary_crossentropy"
    x = [rng.normal(size=(6, 3)), rng.normal(size=(6, 3))]
    y = rng.integers(0, 2, size=(6, 1)).astype("float64")
    pairs = _check_weight_gradients(model, x, y, numeric_grad)
    assert [p.name for _, p in pairs] == [
        "shared/kernel",
        "shared/bias",
        "same/kernel",
        "same/bias",
    ]
    assert len(shared._inbound_nodes) == 2


def test_a_tensor_read_by_several_calls_sums_their_gradients(
    float64, fresh_session, rng, numeric_grad
):
    x_in = lk.layers.Input((4,))
    h = lk.layers.Dense(5, activation="relu", name="h")(x_in)
    left = lk.layers.Dense(3, activation="tanh", name="left")(h)
    right = lk.layers.Dense(3, activation="sigmoid", name="right")(h)
    out = lk.layers.Dense(2, name="out")(lk.layers.add([left, right, lk.layers.Dense(3)(h)]))
    model = lk.Model(x_in, out)
    model._test_loss = "mse"
    _check_weight_gradients(model, rng.normal(size=(7, 4)), rng.normal(size=(7, 2)), numeric_grad)


def test_an_output_read_by_another_layer_is_not_fused(float64, fresh_session, rng, numeric_grad):
    # 'probs' is an output (with a loss that would fuse with its softmax) and feeds 'aux'.
    x_in = lk.layers.Input((4,))
    probs = lk.layers.Dense(3, activation="softmax", name="probs")(x_in)
    aux = lk.layers.Dense(1, name="aux")(probs)
    model = lk.Model(x_in, [probs, aux])
    model._test_loss = ["categorical_crossentropy", "mse"]
    x = rng.normal(size=(5, 4))
    y = [np.eye(3)[rng.integers(0, 3, 5)], rng.normal(size=(5, 1))]
    _check_weight_gradients(model, x, y, numeric_grad)
    step = model._train_pass()
    assert step.fused == (None, None)


def test_frozen_layers_of_a_graph_pass_gradients_to_trainable_ones_below(
    float64, fresh_session, rng, numeric_grad
):
    model, _ = _siamese()
    model.get_layer("same").trainable = False
    model._test_loss = "binary_crossentropy"
    x = [rng.normal(size=(6, 3)), rng.normal(size=(6, 3))]
    y = rng.integers(0, 2, size=(6, 1)).astype("float64")
    pairs = _check_weight_gradients(model, x, y, numeric_grad)
    assert [p.name for _, p in pairs] == ["shared/kernel", "shared/bias"]


def test_the_frozen_shared_encoder_is_cached_for_both_inputs(fresh_session, rng):
    def run(cache):
        lk.utils.clear_session()
        lk.utils.set_random_seed(3)
        model, shared = _siamese(units=8, features=5)
        shared.trainable = False
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        data = np.random.default_rng(5)
        x = [data.normal(size=(64, 5)), data.normal(size=(64, 5))]
        y = data.integers(0, 2, size=(64, 1))
        history = model.fit(
            x, y, batch_size=16, epochs=3, verbose=0, cache_frozen=cache, validation_split=0.25
        )
        return model, history.history

    cached, h_cached = run(True)
    plain, h_plain = run(False)
    for a, b in zip(cached.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key in h_plain:
        np.testing.assert_allclose(h_cached[key], h_plain[key], rtol=1e-5, err_msg=key)
    # The frontier: the shared encoder's two outputs.
    from layerkit.models.frozen_cache import FrozenOutputCache

    cache = FrozenOutputCache(cached, True, 1 << 30, 16)
    cache.prepare([np.zeros((4, 5), "float32")] * 2, None)
    sources, arrays = cache.training_inputs()
    assert len(sources) == 2
    assert [a.shape for a in arrays] == [(4, 8), (4, 8)]


def test_cache_frozen_true_names_a_dropout_that_blocks_it(fresh_session, rng):
    x_in = lk.layers.Input((4,))
    h = lk.layers.Dense(8, name="h", trainable=False)(lk.layers.Dropout(0.5)(x_in))
    model = lk.Model(x_in, lk.layers.Dense(1, name="out")(h))
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="cannot cache through layer 'dropout'"):
        model.fit(rng.normal(size=(8, 4)), rng.normal(size=(8, 1)), verbose=0, cache_frozen=True)


def test_freezing_a_graph_takes_effect_without_recompiling(fresh_session, rng):
    model, shared = _siamese()
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    x = [rng.normal(size=(8, 3)), rng.normal(size=(8, 3))]
    y = rng.integers(0, 2, size=(8, 1))
    before = shared.get_weights()
    assert model.freeze("shared") == ["shared"]
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(before, shared.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.unfreeze("shared")
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(before[0], shared.get_weights()[0])


class WideAndDeep(lk.Model):
    def __init__(self, units=8, **kwargs):
        super().__init__(**kwargs)
        self.hidden = lk.layers.Dense(units, activation="relu", name="hidden")
        self.main = lk.layers.Dense(1, name="main")

    def call(self, inputs, training=None):
        wide, deep = inputs
        return self.main(lk.layers.concatenate([wide, self.hidden(deep)]))


def test_a_subclassed_model_is_traced_into_a_graph_and_trains(fresh_session, rng):
    model = WideAndDeep()
    assert [layer.name for layer in model.layers] == ["hidden", "main"]
    assert not model.built
    model.compile(optimizer="sgd", loss="mse")
    x = [rng.normal(size=(32, 2)), rng.normal(size=(32, 3))]
    y = rng.normal(size=(32, 1))
    first = model.evaluate(x, y)
    model.fit(x, y, epochs=5, verbose=0)
    assert model.built
    assert model.evaluate(x, y) < first
    assert "concatenate" in [layer.name for layer in model.layers]
    np.testing.assert_allclose(model.predict(x), model(x), rtol=1e-6)


def test_tracing_a_call_that_needs_values_names_the_line(fresh_session):
    class Branchy(lk.Model):
        def __init__(self):
            super().__init__()
            self.dense = lk.layers.Dense(2)

        def call(self, inputs, training=None):
            if inputs:  # Python control flow on a value: cannot be traced
                return self.dense(inputs)
            return inputs

    with pytest.raises(TypeError, match=r"line \d+ .*if inputs:"):
        Branchy().build((None, 3))


def test_config_round_trip_rebuilds_the_same_graph(fresh_session, rng):
    model, _ = _siamese()
    config = model.get_config()
    assert config["input_layers"] == [["a", 0, 0], ["b", 0, 0]]
    assert config["output_layers"] == ["same", 0, 0]
    shared_spec = next(spec for spec in config["layers"] if spec["name"] == "shared")
    assert [
        call["args"][0]["config"]["keras_history"] for call in shared_spec["inbound_nodes"]
    ] == [
        ["a", 0, 0],
        ["b", 0, 0],
    ]
    lk.utils.clear_session()
    clone = lk.Model.from_config(config)
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    clone.set_weights(model.get_weights())
    x = [rng.normal(size=(4, 3)), rng.normal(size=(4, 3))]
    np.testing.assert_allclose(clone.predict(x), model.predict(x), rtol=1e-6)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda c: c["layers"][2]["inbound_nodes"][0]["args"][0]["config"].update(
                keras_history=["nowhere", 0, 0]
            ),
            "unknown layer 'nowhere'",
        ),
        (
            lambda c: c["layers"][2]["inbound_nodes"][0]["args"][0]["config"].update(
                keras_history=["a", 5, 0]
            ),
            "refers to call 5",
        ),
        (lambda c: c["layers"][2].update(class_name="Conv9D"), "Unknown layer class"),
        (
            lambda c: c["layers"][2]["inbound_nodes"][0]["args"][0]["config"].update(
                keras_history=["same", 0, 0]
            ),
            "cycle",
        ),
        (lambda c: c.update(output_layers=["ghost", 0, 0]), "unknown layer 'ghost'"),
        (lambda c: c["layers"][2]["config"].update(units=2**40), "weights"),
        (lambda c: c["layers"].append(dict(c["layers"][2])), "two layers are named"),
    ],
)
def test_a_malformed_graph_config_is_refused_before_building(fresh_session, damage, message):
    model, _ = _siamese()
    config = model.get_config()
    damage(config)
    with pytest.raises(ValueError, match=message):
        lk.Model.from_config(config)


def test_save_and_load_model_of_a_graph_resume_exactly(fresh_session, rng, tmp_path):
    def build():
        lk.utils.clear_session()
        lk.utils.set_random_seed(1)
        model, _ = _siamese()
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        return model

    x = [rng.normal(size=(40, 3)), rng.normal(size=(40, 3))]
    y = rng.integers(0, 2, size=(40, 1))
    straight = build()
    straight.fit(x, y, batch_size=8, epochs=4, verbose=0)
    first = build()
    first.fit(x, y, batch_size=8, epochs=2, verbose=0)
    first.save(tmp_path / "siamese.h5")
    resumed = lk.load_model(tmp_path / "siamese.h5")
    assert isinstance(resumed, lk.Model)
    assert not isinstance(resumed, lk.Sequential)
    resumed.fit(x, y, batch_size=8, epochs=4, initial_epoch=2, verbose=0)
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_two_output_compile_survives_a_checkpoint(fresh_session, rng, tmp_path):
    x_in = lk.layers.Input((3,))
    h = lk.layers.Dense(4, name="h")(x_in)
    model = lk.Model(x_in, [lk.layers.Dense(1, name="o1")(h), lk.layers.Dense(1, name="o2")(h)])
    model.compile(
        optimizer="sgd",
        loss=["mse", "mae"],
        loss_weights=[0.7, 0.3],
        metrics={"o1": ["mae"], "o2": []},
    )
    x, y = rng.normal(size=(16, 3)), [rng.normal(size=(16, 1)), rng.normal(size=(16, 1))]
    expected = model.evaluate(x, y, return_dict=True)
    model.save(tmp_path / "two.h5")
    loaded = lk.load_model(tmp_path / "two.h5")
    assert loaded.evaluate(x, y, return_dict=True) == pytest.approx(expected, rel=1e-6)
    assert list(expected) == ["loss", "o1_loss", "o1_mae", "o2_loss"]


def test_summary_of_a_graph_has_a_connected_to_column(fresh_session):
    model, _ = _siamese()
    lines = []
    model.summary(print_fn=lines.append)
    text = lines[0]
    assert "Connected to" in text
    shared_row = next(line for line in text.splitlines() if line.startswith("shared (Dense)"))
    assert "a[0][0]" in shared_row
    assert any(line.strip() == "b[0][0]" for line in text.splitlines())
    assert "shared[1][0]" in text


def test_a_wrong_number_of_inputs_says_what_the_model_takes(fresh_session, rng):
    model, _ = _siamese()
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    with pytest.raises(ValueError, match=r"has 2 inputs \['a', 'b'\]"):
        model.fit(rng.normal(size=(4, 3)), np.zeros((4, 1)), verbose=0)
    with pytest.raises(ValueError, match=r"keys \['c'\] are not names"):
        model.predict({"a": np.zeros((1, 3)), "c": np.zeros((1, 3))})
