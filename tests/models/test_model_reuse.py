"""The Keras chapter's reuse idioms: feature extractors that share a model's layers,
a Sequential built from another model's layers, models called as layers, clone_model."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk


def _mlp(name="base"):
    return lk.Sequential(
        [
            lk.layers.Input((8,)),
            lk.layers.Dense(6, activation="relu", name="hidden1"),
            lk.layers.Dense(4, activation="relu", name="hidden2"),
            lk.layers.Dense(3, name="outputs"),
        ],
        name=name,
    )


def test_a_feature_extractor_shares_the_layers_of_a_sequential(fresh_session, rng):
    base = _mlp()
    extractor = lk.Model(base.inputs, base.get_layer("hidden2").output)
    assert extractor.get_layer("hidden1") is base.get_layer("hidden1")
    x = rng.normal(size=(5, 8)).astype("float32")
    h = np.maximum(x @ base.get_weights()[0] + base.get_weights()[1], 0)
    h = np.maximum(h @ base.get_weights()[2] + base.get_weights()[3], 0)
    np.testing.assert_allclose(extractor.predict(x), h, rtol=1e-5, atol=1e-6)
    # Training the base changes the extractor (same weights).
    base.compile(optimizer="sgd", loss="mse")
    base.fit(x, rng.normal(size=(5, 3)), epochs=2, verbose=0)
    assert not np.allclose(extractor.predict(x), h)


def test_a_sequential_of_another_models_layers_shares_them_and_builds_late(fresh_session, rng):
    model_a = _mlp("model_a")
    model_b = lk.Sequential(model_a.layers[:-1])
    assert not model_b.built  # as Keras: built at build() or first call
    model_b.add(lk.layers.Dense(1, activation="sigmoid", name="new_output"))
    model_b.compile(optimizer="sgd", loss="binary_crossentropy")
    before = model_a.get_layer("hidden1").get_weights()[0].copy()
    x = rng.normal(size=(16, 8))
    model_b.fit(x, rng.integers(0, 2, size=(16, 1)), epochs=1, verbose=0)
    assert model_b.get_layer("hidden1") is model_a.get_layer("hidden1")
    assert not np.array_equal(before, model_a.get_layer("hidden1").get_weights()[0])


def test_a_model_called_as_a_layer_keeps_its_weights_shared(fresh_session, rng):
    base = _mlp()
    extractor = lk.Model(base.inputs, base.get_layer("hidden2").output)
    inputs = lk.layers.Input((8,))
    outputs = lk.layers.Dense(2, name="top")(extractor(inputs))
    model = lk.Model(inputs, outputs)
    assert model.get_layer("hidden2") is base.get_layer("hidden2")
    x = rng.normal(size=(4, 8)).astype("float32")
    top = model.get_layer("top").get_weights()
    np.testing.assert_allclose(
        model.predict(x), extractor.predict(x) @ top[0] + top[1], rtol=1e-5, atol=1e-6
    )
    seq_outputs = base(lk.layers.Input((8,)))
    assert seq_outputs.shape == (None, 3)


def test_clone_model_has_the_same_names_and_fresh_weights(fresh_session, rng):
    base = _mlp()
    clone = lk.models.clone_model(base)
    assert [layer.name for layer in clone.layers] == [layer.name for layer in base.layers]
    assert clone.name == base.name
    assert clone.built
    assert not clone.compiled
    assert all(a is not b for a, b in zip(clone.layers, base.layers))
    assert not np.allclose(clone.get_weights()[0], base.get_weights()[0])
    clone.set_weights(base.get_weights())
    x = rng.normal(size=(3, 8))
    np.testing.assert_allclose(clone.predict(x), base.predict(x), rtol=1e-6)


def test_clone_of_a_graph_with_a_shared_layer_shares_its_clone(fresh_session, rng):
    shared = lk.layers.Dense(4, name="shared")
    a, b = lk.layers.Input((3,), name="a"), lk.layers.Input((3,), name="b")
    model = lk.Model(
        [a, b], lk.layers.Dense(1, name="same")(lk.layers.concatenate([shared(a), shared(b)]))
    )
    clone = lk.models.clone_model(model)
    assert [layer.name for layer in clone.layers] == ["a", "b", "shared", "concatenate", "same"]
    assert len(clone.weights) == 4
    clone.set_weights(model.get_weights())
    x = [rng.normal(size=(2, 3)), rng.normal(size=(2, 3))]
    np.testing.assert_allclose(clone.predict(x), model.predict(x), rtol=1e-6)
    kept = lk.models.clone_model(model, clone_function=lambda layer: layer)
    assert kept.get_layer("shared") is shared


def test_clone_model_refuses_what_it_cannot_copy(fresh_session):
    class Sub(lk.Model):
        def __init__(self):
            super().__init__()
            self.dense = lk.layers.Dense(2)

        def call(self, inputs, training=None):
            return self.dense(inputs)

    with pytest.raises(ValueError, match="subclassed"):
        lk.models.clone_model(Sub())
    with pytest.raises(TypeError, match="Expected a layerkit model"):
        lk.models.clone_model("model")
    with pytest.raises(TypeError, match="must return a layer"):
        lk.models.clone_model(_mlp(), clone_function=lambda layer: None)


def test_a_model_inside_a_sequential_says_how_to_write_it(fresh_session):
    with pytest.raises(TypeError, match="functional model instead"):
        lk.Sequential([_mlp(), lk.layers.Dense(1)])
