"""lk.wrappers: layerkit models as scikit-learn estimators, run through scikit-learn's own
estimator checks and model-selection tools, and compared with Keras 3's wrappers.

Checks that do not run: ``check_classifier_data_not_an_array`` and
``check_regressor_data_not_an_array`` need pandas (not a dependency; scikit-learn skips
them), and ``check_array_api_input`` needs ``SCIPY_ARRAY_API=1`` and an array-API library
(the wrappers take numpy arrays, as Keras's). Every other check of scikit-learn's suite
runs and passes, ``check_fit_idempotent`` and ``check_estimators_pickle`` included (the
estimators are given a ``random_state``).
"""

from __future__ import annotations

import io
import pickle
import pickletools
import sys
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    RandomizedSearchCV,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import layerkit as lk
from layerkit.wrappers import SKLearnClassifier, SKLearnRegressor, SKLearnTransformer


def build(X, y, loss="categorical_crossentropy", out="softmax", hidden=(16,), learning_rate=0.01):
    """Keras's test builder: the output size from ``y`` (one-hot for the classifier)."""
    layers = [lk.layers.Input((X.shape[1],))]
    layers += [lk.layers.Dense(units, activation="relu") for units in hidden]
    layers.append(lk.layers.Dense(y.shape[1] if y.ndim > 1 else 1, activation=out))
    model = lk.Sequential(layers)
    model.compile(lk.optim.Adam(learning_rate), loss)
    return model


QUIET = {"epochs": 5, "verbose": 0}
REGRESSION = {"loss": "mse", "out": "linear"}


@parametrize_with_checks(
    [
        SKLearnClassifier(build, fit_kwargs=QUIET, random_state=0),
        SKLearnRegressor(build, model_kwargs=REGRESSION, fit_kwargs=QUIET, random_state=0),
        SKLearnTransformer(build, model_kwargs=REGRESSION, fit_kwargs=QUIET, random_state=0),
    ]
)
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fits of 1 sample, 1 feature...
        check(estimator)


@pytest.fixture
def classification():
    return make_classification(
        n_samples=240, n_features=8, n_informative=5, n_classes=3, random_state=0
    )


@pytest.fixture
def regression():
    x, y = make_regression(n_samples=200, n_features=6, noise=5.0, random_state=0)
    return x, y / y.std()


def test_a_clone_keeps_every_parameter(classification):
    """scikit-learn's clone round-trips get_params, fit_kwargs included: each fold of
    cross_validate trains for the epochs asked (Keras 3's clone drops fit_kwargs)."""
    x, y = classification
    fit_kwargs = {"epochs": 4, "batch_size": 16, "verbose": 0}
    estimator = SKLearnClassifier(
        build, model_kwargs={"hidden": (12,)}, fit_kwargs=fit_kwargs, random_state=3
    )
    copy = clone(estimator)
    assert copy.get_params() == estimator.get_params()
    assert copy.fit_kwargs is not fit_kwargs  # a deep copy, as scikit-learn makes
    result = cross_validate(estimator, x, y, cv=3, return_estimator=True)
    assert [fold.epoch_ for fold in result["estimator"]] == [4, 4, 4]
    assert [len(fold.history_["loss"]) for fold in result["estimator"]] == [4, 4, 4]
    # fit's keyword arguments take precedence for that fit only; the dict is not changed.
    estimator.fit(x, y, epochs=2)
    assert estimator.epoch_ == 2
    assert fit_kwargs == {"epochs": 4, "batch_size": 16, "verbose": 0}


def test_callbacks_in_fit_kwargs_survive_clones(classification, tmp_path):
    """A TensorBoard in fit_kwargs, already used once: cross_val_score's clones copy its
    settings (not its model or files) and every fold logs its epochs into the run."""
    from tensorboard.backend.event_processing import plugin_event_accumulator

    x, y = classification
    tensorboard = lk.callbacks.TensorBoard(tmp_path / "logs")
    estimator = SKLearnClassifier(
        build, fit_kwargs={"epochs": 2, "verbose": 0, "callbacks": [tensorboard]}, random_state=0
    ).fit(x, y)
    assert tensorboard.model is estimator.model_
    scores = cross_val_score(estimator, x, y, cv=3)
    assert scores.shape == (3,)
    accumulator = plugin_event_accumulator.EventAccumulator(str(tmp_path / "logs" / "train"))
    accumulator.Reload()
    steps = [e.step for e in accumulator.Tensors("epoch_loss")]
    assert sorted(steps) == [0, 0, 0, 0, 1, 1, 1, 1]  # the first fit, then 3 folds
    restored = pickle.loads(pickle.dumps(estimator))
    assert restored.fit_kwargs["callbacks"][0].log_dir == tensorboard.log_dir


def test_regressor_matches_keras_wrapper(keras, regression):
    """Same data, initial weights and optimizer (SGD, no shuffling): layerkit's and
    Keras 3's SKLearnRegressor predict the same numbers and score the same R²."""
    x, y = regression
    rng = np.random.default_rng(0)
    weights = [
        rng.normal(0, 0.3, (6, 10)).astype("float32"),
        np.zeros(10, "float32"),
        rng.normal(0, 0.3, (10, 1)).astype("float32"),
        np.zeros(1, "float32"),
    ]

    def lk_build(X, y):
        model = lk.Sequential(
            [lk.layers.Input((X.shape[1],)), lk.layers.Dense(10, "relu"), lk.layers.Dense(1)]
        )
        model.set_weights(weights)
        model.compile(lk.optim.SGD(0.05), "mse")
        return model

    def keras_build(X, y):
        model = keras.Sequential(
            [keras.Input((X.shape[1],)), keras.layers.Dense(10, "relu"), keras.layers.Dense(1)]
        )
        model.set_weights(weights)
        model.compile(keras.optimizers.SGD(0.05), "mse")
        return model

    fit = {"epochs": 3, "batch_size": 20, "shuffle": False, "verbose": 0}
    ours = SKLearnRegressor(lk_build, fit_kwargs=dict(fit)).fit(x, y)
    theirs = keras.wrappers.SKLearnRegressor(keras_build, fit_kwargs=dict(fit)).fit(x, y)
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x), atol=2e-5)
    assert ours.predict(x).shape == theirs.predict(x).shape == (200,)
    assert ours.score(x, y) == pytest.approx(theirs.score(x, y), abs=1e-5)
    np.testing.assert_allclose(ours.history_["loss"], theirs.history_.history["loss"], rtol=1e-5)


def test_classifier_matches_keras_wrapper(keras, classification):
    """Keras's interface: the builder gets one-hot targets (3 columns here), the model a
    categorical loss; predictions and the decision function agree with Keras's."""
    x, y = classification
    rng = np.random.default_rng(1)
    weights = [
        rng.normal(0, 0.3, (8, 12)).astype("float32"),
        np.zeros(12, "float32"),
        rng.normal(0, 0.3, (12, 3)).astype("float32"),
        np.zeros(3, "float32"),
    ]
    seen_targets = []

    def lk_build(X, y):
        seen_targets.append(y)
        model = lk.Sequential(
            [
                lk.layers.Input((X.shape[1],)),
                lk.layers.Dense(12, "relu"),
                lk.layers.Dense(y.shape[1], "softmax"),
            ]
        )
        model.set_weights(weights)
        model.compile(lk.optim.SGD(0.1), "categorical_crossentropy")
        return model

    def keras_build(X, y):
        model = keras.Sequential(
            [
                keras.Input((X.shape[1],)),
                keras.layers.Dense(12, "relu"),
                keras.layers.Dense(y.shape[1], "softmax"),
            ]
        )
        model.set_weights(weights)
        model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy")
        return model

    fit = {"epochs": 3, "batch_size": 24, "shuffle": False, "verbose": 0}
    ours = SKLearnClassifier(lk_build, fit_kwargs=dict(fit)).fit(x, y)
    theirs = keras.wrappers.SKLearnClassifier(keras_build, fit_kwargs=dict(fit)).fit(x, y)
    np.testing.assert_array_equal(seen_targets[0], np.eye(3)[y])
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_allclose(ours.decision_function(x), theirs.decision_function(x), atol=1e-5)
    np.testing.assert_allclose(ours.predict_proba(x), theirs.decision_function(x), atol=1e-5)
    np.testing.assert_array_equal(ours.predict(x), theirs.predict(x))
    assert ours.score(x, y) == theirs.score(x, y)


def test_grid_search_over_a_pipeline_is_reproducible(regression):
    """GridSearchCV over a Pipeline: each candidate's fold scores are those of fitting a
    clone with those parameters by hand (the search passes everything through)."""
    x, y = regression
    pipeline = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "net",
                SKLearnRegressor(
                    build, model_kwargs=REGRESSION, fit_kwargs={"verbose": 0}, random_state=7
                ),
            ),
        ]
    )
    grid = {
        "net__model_kwargs": [{**REGRESSION, "hidden": (8,)}, {**REGRESSION, "hidden": (16, 16)}],
        "net__fit_kwargs": [{"epochs": 2, "verbose": 0}, {"epochs": 6, "verbose": 0}],
    }
    folds = KFold(3)
    search = GridSearchCV(pipeline, grid, cv=folds).fit(x, y)
    for i, params in enumerate(search.cv_results_["params"]):
        by_hand = cross_val_score(clone(pipeline).set_params(**params), x, y, cv=folds)
        found = [search.cv_results_[f"split{k}_test_score"][i] for k in range(3)]
        np.testing.assert_allclose(found, by_hand, rtol=0, atol=0)
    # More epochs of the same network fit better: the search sees the epochs it was given.
    scores = dict(
        zip(map(str, search.cv_results_["params"]), search.cv_results_["mean_test_score"])
    )
    for kwargs in grid["net__model_kwargs"]:
        short = {"net__fit_kwargs": grid["net__fit_kwargs"][0], "net__model_kwargs": kwargs}
        long = {"net__fit_kwargs": grid["net__fit_kwargs"][1], "net__model_kwargs": kwargs}
        assert scores[str(long)] > scores[str(short)]
    assert search.best_params_["net__fit_kwargs"]["epochs"] == 6
    assert search.best_estimator_.predict(x).shape == (200,)


def test_randomized_search_reproducible_with_random_state(classification):
    x, y = classification

    def run():
        search = RandomizedSearchCV(
            SKLearnClassifier(build, fit_kwargs={"epochs": 3, "verbose": 0}, random_state=0),
            {
                "model_kwargs": [{"hidden": h} for h in ((8,), (16,), (16, 8))],
                "fit_kwargs": [{"epochs": e, "verbose": 0} for e in (2, 4)],
            },
            n_iter=3,
            cv=2,
            random_state=42,
        )
        return search.fit(x, y)

    first, second = run(), run()
    np.testing.assert_array_equal(
        first.cv_results_["mean_test_score"], second.cv_results_["mean_test_score"]
    )
    assert first.best_params_ == second.best_params_
    assert 0.5 < first.best_score_ <= 1.0  # 3 balanced classes: chance is 1/3


def test_pickle_holds_a_checkpoint_and_no_layer_objects(classification):
    x, y = classification
    estimator = SKLearnClassifier(build, fit_kwargs=QUIET, random_state=0).fit(x, y)
    data = pickle.dumps(estimator)
    assert b"layerkit checkpoint" in data  # the HDF5 checkpoint's header
    modules = {
        str(argument).rsplit(" ", 1)[0] if opcode.name == "GLOBAL" else str(argument)
        for opcode, argument, _ in pickletools.genops(io.BytesIO(data))
        if opcode.name in ("GLOBAL", "SHORT_BINUNICODE", "BINUNICODE")
        and str(argument).startswith("layerkit")
    }
    assert modules == {"layerkit.wrappers.sklearn_wrapper"}, modules
    text = data.decode("latin-1")
    assert "layerkit.layers" not in text
    assert "layerkit.models" not in text
    assert "layerkit.optim" not in text
    restored = pickle.loads(data)
    np.testing.assert_array_equal(restored.predict_proba(x), estimator.predict_proba(x))
    np.testing.assert_array_equal(restored.predict(x), estimator.predict(x))
    assert restored.history_ == estimator.history_
    assert [p.name for p in restored.model_.weights] == [p.name for p in estimator.model_.weights]
    # The original keeps its live model.
    assert isinstance(estimator.model_, lk.Sequential)


def test_a_tampered_pickle_is_refused_by_the_checkpoint_reader(classification):
    x, y = classification
    estimator = SKLearnClassifier(build, fit_kwargs=QUIET, random_state=0).fit(x, y)
    data = pickle.dumps(estimator)
    start = data.index(b"layerkit checkpoint")
    # Damage the checkpoint's bytes (past its header), keeping the pickle well-formed.
    damaged = bytearray(data)
    for i in range(start + 2000, start + 2400):
        damaged[i] ^= 0xFF
    with pytest.raises((ValueError, OSError)):
        pickle.loads(bytes(damaged))


def test_warm_start_continues_and_survives_pickling(regression):
    x, y = regression
    estimator = SKLearnRegressor(
        build, model_kwargs=REGRESSION, warm_start=True, fit_kwargs={"epochs": 2, "verbose": 0}
    )
    estimator.fit(x, y)
    first_model = estimator.model_
    restored = pickle.loads(pickle.dumps(estimator))
    estimator.fit(x, y)
    restored.fit(x, y)
    assert estimator.model_ is first_model  # continued, not rebuilt
    assert estimator.model_.optimizer.iterations == 2 * 2 * 7  # two fits of 2 epochs x 7 steps
    np.testing.assert_array_equal(restored.predict(x), estimator.predict(x))


def test_a_compiled_model_instance_is_copied_with_fresh_weights(regression):
    x, y = regression
    template = build(x, y[:, None], **REGRESSION)
    before = template.get_weights()
    estimator = SKLearnRegressor(template, fit_kwargs={"epochs": 2, "verbose": 0}).fit(x, y)
    for kept, now in zip(before, template.get_weights()):
        np.testing.assert_array_equal(kept, now)  # the template is never trained
    assert estimator.model_ is not template
    assert estimator.model_.optimizer.get_config() == template.optimizer.get_config()
    assert type(estimator.model_.loss) is type(template.loss)
    fresh = estimator.model_.get_weights()[0]
    assert not np.allclose(fresh, before[0])  # new initial weights, then training
    assert clone(estimator).model is template  # a clone shares the (untrained) template


@pytest.mark.parametrize(
    ("model", "error", "message"),
    [
        (
            lambda X, y: lk.Sequential([lk.layers.Input((6,)), lk.layers.Dense(1)]),
            RuntimeError,
            "must be compiled",
        ),
        (lambda X, y: "not a model", TypeError, "Received: 'not a model'"),
        (42, TypeError, "Received: model=42"),
    ],
)
def test_bad_models_are_refused(regression, model, error, message):
    x, y = regression
    estimator = SKLearnRegressor(model)
    with pytest.raises(error, match=message):
        estimator.fit(x, y)
    assert not hasattr(estimator, "model_")


def test_classifier_label_encodings_and_losses(classification):
    """String labels; a sparse loss (class indices) trains as the categorical one
    (one-hot rows) does, to float32 rounding; a single sigmoid unit for two classes."""
    x, y = classification
    labels = np.array(["cat", "dog", "emu"])[y]
    categorical = SKLearnClassifier(build, fit_kwargs=QUIET, random_state=5).fit(x, labels)
    sparse = SKLearnClassifier(
        build,
        model_kwargs={"loss": "sparse_categorical_crossentropy"},
        fit_kwargs=QUIET,
        random_state=5,
    ).fit(x, labels)
    np.testing.assert_array_equal(categorical.classes_, ["cat", "dog", "emu"])
    np.testing.assert_allclose(sparse.predict_proba(x), categorical.predict_proba(x), atol=1e-5)
    assert set(categorical.predict(x)) <= {"cat", "dog", "emu"}
    np.testing.assert_allclose(categorical.predict_proba(x).sum(axis=1), 1.0, rtol=1e-5)

    binary_x, binary_y = x[y < 2], y[y < 2]

    def sigmoid(X, y):
        return build(X, y[:, :1], loss="binary_crossentropy", out="sigmoid")

    binary = SKLearnClassifier(sigmoid, fit_kwargs=QUIET, random_state=5).fit(binary_x, binary_y)
    p = binary.model_.predict(binary_x, verbose=0)[:, 0]
    np.testing.assert_allclose(binary.predict_proba(binary_x)[:, 1], p, rtol=1e-6)
    decision = binary.decision_function(binary_x)
    assert decision.shape == (len(binary_x),)
    np.testing.assert_allclose(decision, np.log(p / (1 - p)), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(binary.predict(binary_x), (p > 0.5).astype(int))
    assert binary.score(binary_x, binary_y) > 0.7
    with pytest.raises(ValueError, match="one output unit, which fits 2 classes"):
        SKLearnClassifier(sigmoid, fit_kwargs=QUIET).fit(x, y)


def test_transformer_in_pipelines(classification, regression):
    """A frozen encoder (trained beforehand on (X, codes)) feeding a logistic regression,
    as Keras's docs show; and a transformer trained inside a Pipeline on the pipeline's y."""
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LinearRegression

    x, y = classification

    def encoder(X, y):
        inputs = lk.layers.Input((X.shape[1],))
        code = lk.layers.Dense(y.shape[1], activation="tanh", name="code")(inputs)
        model = lk.Model(inputs, code)
        model.compile(lk.optim.Adam(0.01), "mse")
        return model

    codes = SKLearnTransformer(encoder, fit_kwargs=QUIET, random_state=0).fit(x, x[:, :4])
    out = codes.transform(x)
    assert out.shape == (240, 4)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, codes.model_.predict(x.astype("float32"), verbose=0))
    pipeline = make_pipeline(FrozenEstimator(codes), LogisticRegression(max_iter=500)).fit(x, y)
    np.testing.assert_array_equal(pipeline[:-1].transform(x), out)  # frozen: not refitted
    assert pipeline.score(x, y) > 0.5  # 3 classes: chance is 1/3

    xr, yr = regression
    stacked = make_pipeline(
        StandardScaler(),
        SKLearnTransformer(build, model_kwargs=REGRESSION, fit_kwargs=QUIET, random_state=0),
        LinearRegression(),
    ).fit(xr, yr)
    net = stacked[1]
    assert net.n_features_in_ == 6
    assert net.transform(stacked[0].transform(xr)).shape == (200, 1)
    assert stacked.score(xr, yr) > 0.5


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.delitem(sys.modules, "layerkit.wrappers.sklearn_wrapper")
    monkeypatch.delattr(lk.wrappers, "sklearn_wrapper")
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.base", None)
    with pytest.raises(ImportError, match=r"layerkit\[sklearn\]"):
        lk.wrappers.SKLearnClassifier
