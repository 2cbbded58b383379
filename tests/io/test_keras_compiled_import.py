"""A ``.keras`` archive Keras saved compiled loads compiled in layerkit, with Keras's
optimizer state: training continues with Keras's numbers."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

OPTIMIZERS = {
    "adam": lambda api: api.optimizers.Adam(0.01),
    "sgd-nesterov": lambda api: api.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "rmsprop": lambda api: api.optimizers.RMSprop(0.01),
}


@pytest.fixture
def data(rng):
    return rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 3, size=64)


def _keras_model(keras, optimizer, frozen=False):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(5, activation="relu", name="h", trainable=not frozen),
            keras.layers.Dense(3, activation="softmax", name="o"),
        ]
    )
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=2)],
    )
    return model


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("frozen", [False, True])
def test_training_continues_where_keras_stopped(keras, fresh_session, tmp_path, data, name, frozen):
    x, y = data
    theirs = _keras_model(keras, OPTIMIZERS[name](keras), frozen)
    theirs.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    theirs.save(tmp_path / "k.keras")
    ours = lk.load_model(tmp_path / "k.keras")
    assert ours.compiled
    assert ours.optimizer.iterations == 4
    assert ours.metrics_names == ["loss", "accuracy", "sparse_top_k_categorical_accuracy"]
    h_theirs = theirs.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
    h_ours = ours.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h_ours["loss"], h_theirs["loss"], rtol=1e-6)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_an_uncompiled_keras_model_stays_uncompiled(keras, tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.save(tmp_path / "plain.keras")
    assert not lk.load_model(tmp_path / "plain.keras").compiled


def test_an_untranslatable_loss_loads_uncompiled_with_a_warning(keras, tmp_path, data):
    x, y = data

    @keras.saving.register_keras_serializable(package="tests")
    def my_loss(y_true, y_pred):
        return keras.ops.mean(keras.ops.square(y_pred))

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="o")])
    model.compile(optimizer="adam", loss=my_loss)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "custom.keras")
    with pytest.warns(UserWarning, match="loaded uncompiled"):
        ours = lk.load_model(tmp_path / "custom.keras")
    assert not ours.compiled
    np.testing.assert_allclose(ours.predict(x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
