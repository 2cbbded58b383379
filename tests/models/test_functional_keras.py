"""The Functional API (``lk.Model`` on a graph of layers) against real Keras 3 (PyTorch
backend): the wide & deep model with one and two outputs, a siamese model with a shared
layer, inputs and targets as lists or dicts, and the names Keras gives to layers, outputs,
History keys and ``evaluate`` results.

Each test builds the same tiny model in both frameworks, copies Keras's initial weights
into layerkit (``set_weights`` takes Keras's ``get_weights`` order: the layers of
``model.layers``, by decreasing depth), and compares predictions (rtol 1e-5) and, after
3 epochs of SGD without shuffling, weights and History (rtol 1e-4). Real Keras is imported
once for the session by the ``keras`` fixture. The Keras facts asserted here are written
up, with the code that shows them, in ``docs/notes/keras_functional_facts.md``.
"""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk

N = 48  # 3 batches of 16
BATCH = 16
EPOCHS = 3
LR = 0.01

WIDE_DEEP_LAYERS = [
    "deep_input",
    "hidden1",
    "wide_input",
    "hidden2",
    "concatenate",
    "output",
    "aux_output",
]
# Keras sorts the logs by name (keras.src.utils.python_utils.pythonify_logs); per-output
# names are "<output layer>_loss" and "<output layer>_<metric>".
TWO_OUTPUT_HISTORY_KEYS = [
    "aux_output_loss",
    "aux_output_mse",
    "loss",
    "output_loss",
    "output_mae",
    "val_aux_output_loss",
    "val_aux_output_mse",
    "val_loss",
    "val_output_loss",
    "val_output_mae",
]
# evaluate() as a list: the total, the per-output losses in output order, then the metrics
# sorted by name (keras.src.trainers.trainer.Trainer._flatten_metrics_in_order).
TWO_OUTPUT_EVALUATE_ORDER = [
    "loss",
    "output_loss",
    "aux_output_loss",
    "aux_output_mse",
    "output_mae",
]


# --------------------------------------------------------------------------- helpers


def _data(rng: np.random.Generator, n: int = N) -> dict[str, np.ndarray]:
    def f32(*shape):
        return rng.normal(size=shape).astype(np.float32)

    return {"wide": f32(n, 5), "deep": f32(n, 6), "y": f32(n, 1), "y_aux": f32(n, 1)}


def _wide_deep(api, layers, outputs: str):
    """The wide & deep graph in ``api`` (keras or layerkit); ``outputs`` is "one" (a tensor),
    "list_of_one" or "two"."""
    wide = layers.Input((5,), name="wide_input")
    deep = layers.Input((6,), name="deep_input")
    h1 = layers.Dense(30, activation="relu", name="hidden1")(deep)
    h2 = layers.Dense(30, activation="relu", name="hidden2")(h1)
    c = layers.concatenate([wide, h2])
    out = layers.Dense(1, name="output")(c)
    if outputs == "one":
        return api.Model([wide, deep], out)
    if outputs == "list_of_one":
        return api.Model([wide, deep], [out])
    aux = layers.Dense(1, name="aux_output")(h2)
    return api.Model([wide, deep], [out, aux])


def _keras_wide_deep(keras, outputs: str):
    keras.utils.clear_session()  # auto names restart: the merge layer is "concatenate"
    keras.utils.set_random_seed(0)
    return _wide_deep(keras, keras.layers, outputs)


def _lk_twin(keras_model, outputs: str):
    model = _wide_deep(lk, lk.layers, outputs)
    model.set_weights(keras_model.get_weights())
    return model


def _siamese(api, layers):
    shared = layers.Dense(4, name="shared")
    a = layers.Input((3,), name="a")
    b = layers.Input((3,), name="b")
    sa, sb = shared(a), shared(b)
    out = layers.Dense(1, activation="sigmoid", name="same")(layers.concatenate([sa, sb]))
    return api.Model([a, b], out), shared, (sa, sb)


def _assert_weights_close(ours, theirs, rtol=1e-4, atol=1e-6):
    ours, theirs = ours.get_weights(), theirs.get_weights()
    assert len(ours) == len(theirs)
    for i, (w_ours, w_theirs) in enumerate(zip(ours, theirs)):
        assert w_ours.shape == w_theirs.shape, i
        np.testing.assert_allclose(w_ours, w_theirs, rtol=rtol, atol=atol, err_msg=f"weight {i}")


def _assert_history_close(ours: dict, theirs: dict, rtol=1e-4):
    assert list(ours) == list(theirs)
    for key in theirs:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=rtol, atol=1e-6, err_msg=key)


def _compile_and_fit(model, x, y, **options):
    model.compile(optimizer=lk.optim.SGD(LR), **options)
    model.fit(x, y, verbose=0)


FIT = {"batch_size": BATCH, "epochs": EPOCHS, "shuffle": False, "verbose": 0}


# --------------------------------------------------------------------------- names


def test_layers_names_and_weight_order_match_keras(keras, fresh_session):
    theirs = _keras_wide_deep(keras, "two")
    ours = _lk_twin(theirs, "two")
    assert [layer.name for layer in theirs.layers] == WIDE_DEEP_LAYERS
    assert [layer.name for layer in ours.layers] == WIDE_DEEP_LAYERS
    # Keras 3.15 has no input_names; the input tensors carry the InputLayer names
    assert not hasattr(theirs, "input_names")
    assert [t.name for t in theirs.inputs] == ["wide_input", "deep_input"]
    assert ours.input_names == ["wide_input", "deep_input"]
    assert theirs.output_names == ["output", "aux_output"]
    assert ours.output_names == ["output", "aux_output"]
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    assert [w.path for w in theirs.weights][:2] == ["hidden1/kernel", "hidden1/bias"]
    assert ours.get_layer("hidden2") is ours.layers[3]
    assert ours.count_params() == theirs.count_params() == 1207


def test_model_is_also_in_lk_models():
    assert lk.models.Model is lk.Model


# --------------------------------------------------------------------------- one output


def test_wide_deep_single_output_predict_and_sgd_match_keras(keras, fresh_session, rng):
    data = _data(rng)
    x = [data["wide"], data["deep"]]
    theirs = _keras_wide_deep(keras, "one")
    ours = _lk_twin(theirs, "one")
    expected = theirs.predict(x, batch_size=BATCH, verbose=0)
    got = ours.predict(x, batch_size=BATCH)
    assert isinstance(got, np.ndarray)
    assert got.shape == expected.shape == (N, 1)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)

    theirs.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
    ours.compile(optimizer=lk.optim.SGD(LR), loss="mse")
    h_theirs = theirs.fit(x, data["y"], **FIT).history
    h_ours = ours.fit(x, data["y"], **FIT).history
    assert list(h_theirs) == ["loss"]
    _assert_history_close(h_ours, h_theirs)
    _assert_weights_close(ours, theirs)


def test_outputs_as_a_list_of_one_predict_one_array(keras, fresh_session, rng):
    data = _data(rng, 10)
    x = [data["wide"], data["deep"]]
    theirs = _keras_wide_deep(keras, "list_of_one")
    ours = _lk_twin(theirs, "list_of_one")
    expected = theirs.predict(x, verbose=0)
    assert isinstance(expected, np.ndarray)  # Keras unwraps the list of one
    assert theirs.output_names == ["output"]
    got = ours.predict(x)
    assert isinstance(got, np.ndarray)
    assert got.shape == (10, 1)
    assert ours.output_names == ["output"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- two outputs


@pytest.mark.parametrize(
    "spelling",
    ["lists", "dicts"],
)
def test_two_outputs_history_and_evaluate_match_keras(keras, fresh_session, rng, spelling):
    data = _data(rng, 40)  # validation_split 0.2: the last 8 rows, 2 training batches
    x, y = [data["wide"], data["deep"]], [data["y"], data["y_aux"]]
    if spelling == "lists":
        options = {
            "loss": ["mse", "mse"],
            "loss_weights": [0.9, 0.1],
            "metrics": [["mae"], ["mse"]],
        }
    else:
        options = {
            "loss": {"output": "mse", "aux_output": "mse"},
            "loss_weights": {"output": 0.9, "aux_output": 0.1},
            "metrics": {"output": ["mae"], "aux_output": ["mse"]},
        }
    theirs = _keras_wide_deep(keras, "two")
    ours = _lk_twin(theirs, "two")
    theirs.compile(optimizer=keras.optimizers.SGD(LR), **options)
    ours.compile(optimizer=lk.optim.SGD(LR), **options)

    fit = dict(FIT, validation_split=0.2)
    h_theirs = theirs.fit(x, y, **fit).history
    h_ours = ours.fit(x, y, **fit).history
    assert list(h_theirs) == TWO_OUTPUT_HISTORY_KEYS
    assert list(h_ours) == TWO_OUTPUT_HISTORY_KEYS
    _assert_history_close(h_ours, h_theirs)
    _assert_weights_close(ours, theirs)

    e_theirs = theirs.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
    e_ours = ours.evaluate(x, y, batch_size=BATCH, return_dict=True)
    assert sorted(e_theirs) == sorted(e_ours) == sorted(TWO_OUTPUT_EVALUATE_ORDER)
    for key in e_theirs:
        np.testing.assert_allclose(e_ours[key], e_theirs[key], rtol=1e-4, err_msg=key)

    # per-output losses are unweighted, "loss" is the weighted sum
    p_out, p_aux = ours.predict(x, batch_size=BATCH)
    mse_out = np.mean((p_out.astype(np.float64) - data["y"]) ** 2)
    mse_aux = np.mean((p_aux.astype(np.float64) - data["y_aux"]) ** 2)
    np.testing.assert_allclose(e_ours["output_loss"], mse_out, rtol=1e-5)
    np.testing.assert_allclose(e_ours["aux_output_loss"], mse_aux, rtol=1e-5)
    np.testing.assert_allclose(e_ours["aux_output_mse"], mse_aux, rtol=1e-5)
    np.testing.assert_allclose(e_ours["loss"], 0.9 * mse_out + 0.1 * mse_aux, rtol=1e-5)
    np.testing.assert_allclose(e_theirs["loss"], 0.9 * mse_out + 0.1 * mse_aux, rtol=1e-4)


def test_two_outputs_evaluate_list_in_keras_order(keras, fresh_session, rng):
    data = _data(rng, 32)
    x, y = [data["wide"], data["deep"]], [data["y"], data["y_aux"]]
    options = {
        "loss": ["mse", "mse"],
        "loss_weights": [0.9, 0.1],
        "metrics": {"output": ["mae"], "aux_output": ["mse"]},
    }
    theirs = _keras_wide_deep(keras, "two")
    ours = _lk_twin(theirs, "two")
    theirs.compile(optimizer=keras.optimizers.SGD(LR), **options)
    ours.compile(optimizer=lk.optim.SGD(LR), **options)
    as_dict = theirs.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
    l_theirs = theirs.evaluate(x, y, batch_size=BATCH, verbose=0)
    np.testing.assert_allclose(l_theirs, [as_dict[k] for k in TWO_OUTPUT_EVALUATE_ORDER], rtol=1e-6)
    l_ours = ours.evaluate(x, y, batch_size=BATCH)
    assert isinstance(l_ours, list)
    np.testing.assert_allclose(l_ours, l_theirs, rtol=1e-5)


def test_two_outputs_predict_a_list_of_arrays(keras, fresh_session, rng):
    data = _data(rng, 10)
    x = [data["wide"], data["deep"]]
    theirs = _keras_wide_deep(keras, "two")
    ours = _lk_twin(theirs, "two")
    expected = theirs.predict(x, verbose=0)
    got = ours.predict(x)
    assert isinstance(expected, list)
    assert isinstance(got, list)
    assert len(got) == 2
    for g, e in zip(got, expected):
        assert g.shape == e.shape == (10, 1)
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_one_loss_name_applies_to_each_output_with_weight_one(keras, fresh_session, rng):
    data = _data(rng)
    x, y = [data["wide"], data["deep"]], [data["y"], data["y_aux"]]
    theirs = _keras_wide_deep(keras, "two")
    ours = _lk_twin(theirs, "two")
    theirs.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
    ours.compile(optimizer=lk.optim.SGD(LR), loss="mse")
    h_theirs = theirs.fit(x, y, **FIT).history
    h_ours = ours.fit(x, y, **FIT).history
    assert list(h_theirs) == ["aux_output_loss", "loss", "output_loss"]
    _assert_history_close(h_ours, h_theirs)
    _assert_weights_close(ours, theirs)
    e_ours = ours.evaluate(x, y, batch_size=BATCH, return_dict=True)
    np.testing.assert_allclose(
        e_ours["loss"], e_ours["output_loss"] + e_ours["aux_output_loss"], rtol=1e-5
    )


def test_loss_dict_missing_an_output_is_refused_as_keras_does(keras, fresh_session, rng):
    data = _data(rng, 8)
    x, y = [data["wide"], data["deep"]], [data["y"], data["y_aux"]]
    theirs = _keras_wide_deep(keras, "two")
    theirs.compile(optimizer="sgd", loss={"output": "mse"})  # Keras refuses at fit
    with pytest.raises(ValueError, match="aux_output"):
        theirs.fit(x, y, verbose=0)
    ours = _lk_twin(theirs, "two")
    with pytest.raises(ValueError, match="aux_output"):  # at compile or at fit
        _compile_and_fit(ours, x, y, loss={"output": "mse"})


def test_flat_metrics_list_for_two_outputs_is_refused_as_keras_does(keras, fresh_session, rng):
    data = _data(rng, 8)
    x, y = [data["wide"], data["deep"]], [data["y"], data["y_aux"]]
    theirs = _keras_wide_deep(keras, "two")
    theirs.compile(optimizer="sgd", loss=["mse", "mse"], metrics=["mae"])
    with pytest.raises(ValueError, match="metrics"):
        theirs.fit(x, y, verbose=0)
    ours = _lk_twin(theirs, "two")
    with pytest.raises(ValueError, match="metrics"):  # at compile or at fit
        _compile_and_fit(ours, x, y, loss=["mse", "mse"], metrics=["mae"])


# --------------------------------------------------------------------------- dicts


def test_dict_inputs_in_swapped_order_and_dict_targets_match_keras(keras, fresh_session, rng):
    data = _data(rng)
    x_list = [data["wide"], data["deep"]]
    x_dict = {"deep_input": data["deep"], "wide_input": data["wide"]}  # not the input order
    y_dict = {"aux_output": data["y_aux"], "output": data["y"]}
    theirs = _keras_wide_deep(keras, "two")
    ours = _lk_twin(theirs, "two")
    for got, expected in zip(ours.predict(x_dict), theirs.predict(x_list, verbose=0)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    for got, expected in zip(ours.predict(x_dict), ours.predict(x_list)):
        np.testing.assert_array_equal(got, expected)

    options = {"loss": ["mse", "mse"], "loss_weights": [0.9, 0.1]}
    theirs.compile(optimizer=keras.optimizers.SGD(LR), **options)
    ours.compile(optimizer=lk.optim.SGD(LR), **options)
    h_theirs = theirs.fit(x_dict, y_dict, **FIT).history
    h_ours = ours.fit(x_dict, y_dict, **FIT).history
    assert list(h_theirs) == ["aux_output_loss", "loss", "output_loss"]
    _assert_history_close(h_ours, h_theirs)
    _assert_weights_close(ours, theirs)


# --------------------------------------------------------------------------- shared layer


def test_siamese_shared_layer_matches_keras(keras, fresh_session, rng):
    n = N
    xa = rng.normal(size=(n, 3)).astype(np.float32)
    xb = rng.normal(size=(n, 3)).astype(np.float32)
    y = rng.integers(0, 2, size=(n, 1)).astype(np.float32)
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    theirs, k_shared, (k_sa, _) = _siamese(keras, keras.layers)
    ours, shared, (sa, _) = _siamese(lk, lk.layers)

    names = ["a", "b", "shared", "concatenate", "same"]
    assert [layer.name for layer in theirs.layers] == names
    assert [layer.name for layer in ours.layers] == names
    # the shared layer's weights once; its output is the first call's
    assert len(theirs.weights) == len(ours.weights) == 4
    assert k_shared.output is k_sa
    assert shared.output is sa
    assert ours.count_params() == theirs.count_params() == 25

    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(
        ours.predict([xa, xb]), theirs.predict([xa, xb], verbose=0), rtol=1e-5, atol=1e-6
    )
    # the shared kernel's gradient is the sum over both calls: SGD steps show it
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    ours.compile(optimizer=lk.optim.SGD(0.1), loss="binary_crossentropy")
    h_theirs = theirs.fit([xa, xb], y, **FIT).history
    h_ours = ours.fit([xa, xb], y, **FIT).history
    _assert_history_close(h_ours, h_theirs)
    _assert_weights_close(ours, theirs)
    np.testing.assert_allclose(
        ours.predict([xa, xb]), theirs.predict([xa, xb], verbose=0), rtol=1e-4, atol=1e-6
    )
