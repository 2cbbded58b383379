"""BatchNormalization through Keras files: Keras's bn_mlp fixture loads and predicts as
Keras did (tests/io/test_keras_functional.py), and a layerkit model with BatchNormalization
saved as .keras loads in real Keras 3 with the same predictions and moving statistics."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk


@pytest.mark.parametrize("options", [{}, {"center": False, "momentum": 0.9, "epsilon": 0.01}])
def test_a_trained_batch_norm_model_saved_as_keras_loads_in_keras(
    keras, fresh_session, rng, tmp_path, options
):
    model = lk.Sequential(
        [
            lk.layers.Input((6,)),
            lk.layers.Dense(5, use_bias=False, name="dense"),
            lk.layers.BatchNormalization(name="bn", **options),
            lk.layers.Activation("elu"),
            lk.layers.Dense(2, name="out"),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    x = rng.normal(loc=2.0, size=(64, 6)).astype("float32")
    model.fit(x, rng.normal(size=(64, 2)), epochs=3, batch_size=16, verbose=0)
    bn = model.get_layer("bn")
    assert not np.allclose(bn.moving_mean.value, 0.0)  # the statistics moved
    path = model.save(tmp_path / "bn.keras")
    theirs = keras.models.load_model(path)
    np.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x), rtol=1e-5, atol=1e-6)
    keras_bn = theirs.get_layer("bn")
    np.testing.assert_array_equal(keras_bn.moving_mean.numpy(), bn.moving_mean.value)
    np.testing.assert_array_equal(keras_bn.moving_variance.numpy(), bn.moving_variance.value)
    assert keras_bn.center == bn.center
    assert keras_bn.momentum == pytest.approx(bn.momentum)
    assert [w.path for w in theirs.non_trainable_weights] == [
        "bn/moving_mean",
        "bn/moving_variance",
    ]
    # And back: layerkit reads the archive Keras can read, with the same statistics.
    again = lk.io.load_keras(path)
    np.testing.assert_array_equal(
        again.get_layer("bn").moving_variance.value, bn.moving_variance.value
    )
