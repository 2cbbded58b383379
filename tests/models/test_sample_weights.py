"""``fit(sample_weight=..., class_weight=...)``, ``evaluate(sample_weight=...)`` and
``compile(weighted_metrics=...)`` against real Keras 3: the same model from copied
weights gives the same History, evaluate figures and weights; bad weights are refused
before anything changes; a mid-epoch resume with weights is bit-exact."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk


def _pair(keras, rng, head="softmax", units=3, loss="sparse_categorical_crossentropy", **compile):
    theirs = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(6, activation="tanh"),
            keras.layers.Dense(units, activation=head),
        ]
    )
    ours = lk.Sequential(
        [
            lk.layers.Input((4,)),
            lk.layers.Dense(6, activation="tanh"),
            lk.layers.Dense(units, activation=head),
        ]
    )
    ours.set_weights(
        [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in theirs.get_weights()]
    )
    theirs.set_weights(ours.get_weights())
    for model, api in ((ours, lk), (theirs, keras)):
        model.compile(optimizer=api.optimizers.SGD(0.2), loss=loss, **compile)
    return ours, theirs


def _same_history(ours, theirs, rtol=1e-5):
    assert set(ours) == set(theirs)
    for key in theirs:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=rtol, atol=1e-7, err_msg=key)


def _same_weights(ours, theirs):
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.fixture
def data(rng):
    x = rng.normal(size=(30, 4)).astype("float32")
    y = rng.integers(0, 3, size=30)
    w = rng.uniform(0.0, 2.0, size=30).astype("float32")
    return x, y, w


def test_sample_weight_trains_and_evaluates_as_keras(keras, fresh_session, rng, data):
    x, y, w = data
    ours, theirs = _pair(keras, rng, metrics=["accuracy"], weighted_metrics=["accuracy"])
    expected = theirs.evaluate(x, y, batch_size=8, sample_weight=w, verbose=0, return_dict=True)
    found = ours.evaluate(x, y, batch_size=8, sample_weight=w, return_dict=True)
    assert set(found) == set(expected) == {"loss", "accuracy", "weighted_accuracy"}
    for key, value in expected.items():
        np.testing.assert_allclose(found[key], value, rtol=1e-6, err_msg=key)
    kwargs = dict(batch_size=8, epochs=3, shuffle=False, verbose=0, validation_data=(x, y, w))
    _same_history(
        ours.fit(x, y, sample_weight=w, **kwargs).history,
        theirs.fit(x, y, sample_weight=w, **kwargs).history,
    )
    _same_weights(ours, theirs)
    # The loss is sum(w * loss) / batch size, Keras 3's "sum_over_batch_size".
    p = ours.predict(x)
    per_sample = -np.log(p[np.arange(30), y])
    np.testing.assert_allclose(
        ours.evaluate(x, y, batch_size=30, sample_weight=w)[0],
        (w * per_sample).sum() / 30,
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    ("head", "units", "loss", "labels"),
    [
        ("softmax", 3, "sparse_categorical_crossentropy", "sparse"),
        ("softmax", 3, "categorical_crossentropy", "onehot"),
        ("sigmoid", 1, "binary_crossentropy", "binary"),
    ],
)
def test_class_weight_trains_as_keras(keras, fresh_session, rng, data, head, units, loss, labels):
    x, y, _ = data
    if labels == "onehot":
        y = np.eye(3, dtype="float32")[y]
        class_weight = {0: 1.0, 1: 3.0, 2: 0.5}
    elif labels == "binary":
        y = (y > 0).astype("float32").reshape(-1, 1)
        class_weight = {0: 2.5, 1: 0.4}
    else:
        class_weight = {0: 1.0, 1: 3.0, 2: 0.5}
    ours, theirs = _pair(keras, rng, head, units, loss, weighted_metrics=["accuracy"])
    kwargs = dict(batch_size=8, epochs=2, shuffle=False, verbose=0, class_weight=class_weight)
    _same_history(ours.fit(x, y, **kwargs).history, theirs.fit(x, y, **kwargs).history)
    _same_weights(ours, theirs)


def test_per_output_sample_weights_of_a_graph_as_keras(keras, fresh_session, rng, data):
    x, y, w = data
    r = rng.normal(size=(30, 1)).astype("float32")
    w2 = rng.uniform(0.0, 1.0, size=30).astype("float32")

    def build(api):
        inputs = api.Input((4,))
        h = api.layers.Dense(5, activation="relu", name="h")(inputs)
        cls = api.layers.Dense(3, activation="softmax", name="cls")(h)
        reg = api.layers.Dense(1, name="reg")(h)
        model = api.Model(inputs, [cls, reg])
        model.compile(
            optimizer=api.optimizers.SGD(0.1),
            loss=["sparse_categorical_crossentropy", "mse"],
            loss_weights=[1.0, 0.5],
            weighted_metrics=[["accuracy"], ["mae"]],
        )
        return model

    ours, theirs = build(lk), build(keras)
    ours.set_weights(
        [rng.normal(scale=0.5, size=v.shape).astype("float32") for v in ours.get_weights()]
    )
    theirs.set_weights(ours.get_weights())
    weights = [w, w2]  # Keras 3 wants the structure of y
    kwargs = dict(batch_size=8, epochs=2, shuffle=False, verbose=0)
    _same_history(
        ours.fit(x, [y, r], sample_weight=weights, **kwargs).history,
        theirs.fit(x, [y, r], sample_weight=weights, **kwargs).history,
    )
    _same_weights(ours, theirs)


def test_zero_weights_drop_samples_and_unit_weights_change_nothing(fresh_session, rng, data):
    x, y, _ = data

    def run(**weights):
        lk.utils.set_random_seed(5)
        model = lk.Sequential([lk.layers.Input((4,)), lk.layers.Dense(3, activation="softmax")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        history = model.fit(x, y, batch_size=10, epochs=2, shuffle=False, verbose=0, **weights)
        return history.history["loss"], model.get_weights()

    plain, unit = run(), run(sample_weight=np.ones(30))
    np.testing.assert_allclose(plain[0], unit[0], rtol=1e-6)
    for a, b in zip(plain[1], unit[1]):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    # class_weight of 1 everywhere is the same as none.
    same = run(class_weight={0: 1.0, 1: 1.0, 2: 1.0})
    np.testing.assert_allclose(plain[0], same[0], rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sample_weight": np.ones(29)}, ValueError, r"sample_weight of shape \(30,\)"),
        ({"sample_weight": np.r_[np.ones(29), -1.0]}, ValueError, r"sample_weight\[29\]=-1.0"),
        ({"sample_weight": np.r_[np.nan, np.ones(29)]}, ValueError, r"sample_weight\[0\]=nan"),
        ({"sample_weight": "heavy"}, TypeError, "sample_weight"),
        ({"class_weight": {0: 1.0, 1: 2.0}}, ValueError, r"no weight for the classes \[2\]"),
        ({"class_weight": {0: 1.0, 1: 2.0, 2: 1.0, 7: 1.0}}, ValueError, "class 7"),
        ({"class_weight": {0: 1.0, 1: -2.0, 2: 1.0}}, ValueError, r"class_weight\[1\]"),
        ({"class_weight": [1.0, 2.0, 3.0]}, TypeError, "dict"),
        (
            {"class_weight": {0: 1.0, 1: 1.0, 2: 1.0}, "sample_weight": np.ones(30)},
            ValueError,
            "at the same time",
        ),
        (
            {"validation_data": (np.ones((4, 4)), np.zeros(4), np.ones(3))},
            ValueError,
            "validation_data",
        ),
    ],
)
def test_bad_weights_are_refused_and_change_nothing(fresh_session, data, kwargs, error, match):
    x, y, _ = data
    model = lk.Sequential([lk.layers.Input((4,)), lk.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(error, match=match):
        model.fit(x, y, epochs=1, verbose=0, **kwargs)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0


def test_class_weight_needs_one_output(fresh_session, data):
    x, y, _ = data
    inputs = lk.Input((4,))
    model = lk.Model(
        inputs, [lk.layers.Dense(3, name="a")(inputs), lk.layers.Dense(3, name="b")(inputs)]
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="single output"):
        model.fit(x, [y, y], class_weight={0: 1.0, 1: 1.0, 2: 1.0}, verbose=0)


class _KillAfter(lk.callbacks.Callback):
    def __init__(self, epoch: int, batch: int):
        super().__init__()
        self.at, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


def test_mid_epoch_resume_with_sample_weights_is_bit_exact(fresh_session, tmp_path, data):
    x, y, w = data

    def build():
        lk.utils.set_random_seed(11)
        model = lk.Sequential(
            [lk.layers.Input((4,)), lk.layers.Dense(3, activation="softmax", name="out")]
        )
        model.compile(
            optimizer="adam", loss="sparse_categorical_crossentropy", weighted_metrics=["accuracy"]
        )
        return model

    kwargs = dict(batch_size=4, epochs=3, sample_weight=w, verbose=0)
    unbroken = build()
    expected = unbroken.fit(x, y, **kwargs).history
    backup = lk.callbacks.BackupAndRestore(tmp_path / "b", save_freq=3)
    with pytest.raises(KeyboardInterrupt):
        build().fit(x, y, callbacks=[backup, _KillAfter(1, 4)], **kwargs)
    resumed = build()
    history = resumed.fit(
        x, y, callbacks=[lk.callbacks.BackupAndRestore(tmp_path / "b", save_freq=3)], **kwargs
    )
    assert history.history["loss"][-1] == expected["loss"][-1]
    assert history.history["accuracy"][-1] == expected["accuracy"][-1]
    for a, b in zip(resumed.get_weights(), unbroken.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weighted_metrics_survive_save_and_load(fresh_session, tmp_path, data):
    x, y, w = data
    model = lk.Sequential([lk.layers.Input((4,)), lk.layers.Dense(3, activation="softmax")])
    model.compile(
        optimizer="sgd",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        weighted_metrics=["accuracy"],
    )
    model.fit(x, y, sample_weight=w, epochs=1, verbose=0)
    model.save(tmp_path / "m.h5")
    again = lk.load_model(tmp_path / "m.h5")
    assert again.metrics_names == ["loss", "accuracy", "weighted_accuracy"]
    np.testing.assert_allclose(
        again.evaluate(x, y, sample_weight=w), model.evaluate(x, y, sample_weight=w), rtol=1e-7
    )
