"""BatchNormalization: the same models as real Keras 3 (predictions, five training steps
with Adam and SGD, moving statistics, ``training=True`` calls, a frozen layer), float64
finite-difference gradients through batch and moving statistics, freezing and the
frozen-output cache, configs, save / load, and bad arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest

import layerkit as lk
from layerkit.layers import BatchNormalization

# Keras's numpy conversion on the PyTorch backend, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

STEPS = 5
# float32 against Keras: Keras computes the batch variance as E[x^2] - E[x]^2 in float32,
# layerkit from float64 sums, and Adam's alpha in float32; after five steps the weights
# differ by a few 1e-6 (measured: <= 3e-6), the predictions by <= 1e-5.
WEIGHTS_TOL = {"rtol": 1e-4, "atol": 2e-5}
PREDICT_TOL = {"rtol": 1e-4, "atol": 5e-5}

BN_CASES = {
    "defaults": {},
    "no-center-no-scale": {"center": False, "scale": False, "momentum": 0.9, "epsilon": 1e-2},
    "scale-only": {"center": False, "momentum": 0.9, "epsilon": 1e-2},
}
# Learning rates are powers of two: Keras keeps them in float32 variables.
OPTIMIZERS = {
    "adam": (lambda k: k.optimizers.Adam(2**-6), lambda: lk.optim.Adam(2**-6)),
    "sgd": (lambda k: k.optimizers.SGD(2**-3), lambda: lk.optim.SGD(2**-3)),
}


# --- local helpers -------------------------------------------------------------------
def make_data(rng, n: int = 32, dtype="float32"):
    x = (rng.normal(size=(n, 20)) * 1.5 + 0.5).astype(dtype)
    y = rng.integers(0, 3, size=n).astype(np.int64)
    return x, y


def stack(module, bn_kwargs, bn_name="bn"):
    """Input(20) -> Dense(16, no bias) -> BN -> elu -> Dense(3, softmax), in ``module``
    (``keras`` or ``lk``)."""
    layers = module.layers
    return [
        layers.Input((20,)),
        layers.Dense(16, use_bias=False, name="hidden"),
        layers.BatchNormalization(name=bn_name, **bn_kwargs),
        layers.Activation("elu", name="elu"),
        layers.Dense(3, activation="softmax", name="out"),
    ]


def keras_and_layerkit(keras, bn_kwargs, optimizer, rng, frozen=False):
    """The same model in Keras and layerkit, with Keras's weights, the BN's set to
    random values (so that inference differs from training), compiled alike."""
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential(stack(keras, bn_kwargs))
    ours = lk.Sequential(stack(lk, bn_kwargs))
    bn = theirs.get_layer("bn")
    values = [rng.normal(size=w.shape).astype("float32") for w in bn.weights]
    values[-1] = np.abs(values[-1]) + 0.5  # a variance
    bn.set_weights(values)
    ours.set_weights(theirs.get_weights())
    if frozen:
        theirs.get_layer("bn").trainable = False
        ours.get_layer("bn").trainable = False
    make_keras, make_ours = OPTIMIZERS[optimizer]
    theirs.compile(optimizer=make_keras(keras), loss="sparse_categorical_crossentropy")
    ours.compile(optimizer=make_ours(), loss="sparse_categorical_crossentropy")
    return theirs, ours


def to_numpy(keras, value):
    return np.asarray(keras.ops.convert_to_numpy(value))


def assert_weights_close(theirs, ours, **tol):
    names = [p.name for p in ours.weights]
    for name, a, b in zip(names, theirs.get_weights(), ours.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, err_msg=name, **tol)


def bn_model(bn_kwargs=None, units=6, activation="tanh", frozen=None, seed=0):
    lk.utils.set_random_seed(seed)
    model = lk.Sequential(
        [
            lk.layers.Input((20,)),
            lk.layers.Dense(units, use_bias=False, name="hidden1"),
            lk.layers.BatchNormalization(name="bn", **(bn_kwargs or {})),
            lk.layers.Activation(activation, name="act"),
            lk.layers.Dense(8, activation="relu", name="hidden2"),
            lk.layers.Dense(3, name="out"),
        ]
    )
    model.compile(
        optimizer=lk.optim.Adam(0.01),
        loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    if frozen:
        model.freeze(frozen)
    return model


def bn_weights(model, name="bn"):
    return {p.name.split("/")[-1]: p.numpy() for p in model.get_layer(name).weights}


# --- against Keras ---------------------------------------------------------------------
def test_weight_names_order_and_kinds_match_keras(keras, fresh_session, rng):
    theirs, ours = keras_and_layerkit(keras, {}, "adam", rng)
    assert [p.name for p in ours.weights] == [
        w.path.split("/", 1)[1] for w in theirs.weights
    ]  # Keras's paths start with the model's name
    assert [p.name for p in ours.get_layer("bn").weights] == [
        "bn/gamma",
        "bn/beta",
        "bn/moving_mean",
        "bn/moving_variance",
    ]
    assert [p.name for p in ours.trainable_weights] == [
        w.path.split("/", 1)[1] for w in theirs.trainable_weights
    ]
    assert [p.name for p in ours.non_trainable_weights] == [
        w.path.split("/", 1)[1] for w in theirs.non_trainable_weights
    ]
    moving = ours.get_layer("bn").weights[2:]
    assert all(p.statistic and not p.trainable for p in moving)
    assert ours.count_params() == theirs.count_params()
    # Without center / scale, only the statistics remain, as in Keras.
    theirs, ours = keras_and_layerkit(keras, BN_CASES["no-center-no-scale"], "sgd", rng)
    assert [p.name for p in ours.get_layer("bn").weights] == [
        "bn/moving_mean",
        "bn/moving_variance",
    ]
    assert [w.name for w in theirs.get_layer("bn").weights] == ["moving_mean", "moving_variance"]


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("case", sorted(BN_CASES))
def test_training_steps_match_keras(case, optimizer, keras, fresh_session, rng):
    theirs, ours = keras_and_layerkit(keras, BN_CASES[case], optimizer, rng)
    x, y = make_data(rng)
    x_test, _ = make_data(rng, 16)
    start = ours.get_layer("bn").get_weights()
    np.testing.assert_allclose(
        ours.predict(x_test), theirs.predict(x_test, verbose=0), rtol=1e-5, atol=1e-6
    )
    for step in range(STEPS):
        theirs_loss = float(to_numpy(keras, theirs.train_on_batch(x, y)))
        ours_loss = float(ours.train_on_batch(x, y))
        assert ours_loss == pytest.approx(theirs_loss, rel=1e-5, abs=1e-6), step
        assert_weights_close(theirs, ours, **WEIGHTS_TOL)
    # The moving statistics moved (the comparison above covers their values).
    moving = ours.get_layer("bn").get_weights()[-2:]
    assert not np.allclose(moving[0], start[-2])
    assert not np.allclose(moving[1], start[-1])
    np.testing.assert_allclose(
        ours.predict(x_test), theirs.predict(x_test, verbose=0), **PREDICT_TOL
    )
    # A training call normalises with the batch and moves the statistics, in both.
    np.testing.assert_allclose(
        ours(x_test, training=True),
        to_numpy(keras, theirs(x_test, training=True)),
        **PREDICT_TOL,
    )
    assert_weights_close(theirs, ours, **WEIGHTS_TOL)


def test_moving_statistics_follow_keras_formula(keras, fresh_session, rng):
    """moving = moving * momentum + batch * (1 - momentum), the batch variance biased."""
    theirs, ours = keras_and_layerkit(keras, {"momentum": 0.9}, "sgd", rng)
    x, y = make_data(rng)
    before = ours.get_layer("bn").get_weights()
    h = x.astype(np.float64) @ ours.get_layer("hidden").get_weights()[0].astype(np.float64)
    ours.train_on_batch(x, y)
    theirs.train_on_batch(x, y)
    after = ours.get_layer("bn").get_weights()
    np.testing.assert_allclose(after[2], 0.9 * before[2] + 0.1 * h.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after[3], 0.9 * before[3] + 0.1 * h.var(0), rtol=1e-5, atol=1e-6)
    for a, b in zip(after[2:], theirs.get_layer("bn").get_weights()[2:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_frozen_layer_matches_keras(optimizer, keras, fresh_session, rng):
    """trainable=False: inference mode in training too, statistics and gamma/beta fixed."""
    theirs, ours = keras_and_layerkit(keras, {}, optimizer, rng, frozen=True)
    x, y = make_data(rng)
    start = ours.get_layer("bn").get_weights()
    for step in range(STEPS):
        theirs_loss = float(to_numpy(keras, theirs.train_on_batch(x, y)))
        assert float(ours.train_on_batch(x, y)) == pytest.approx(theirs_loss, rel=1e-5), step
    assert_weights_close(theirs, ours, **WEIGHTS_TOL)
    for a, b in zip(ours.get_layer("bn").get_weights(), start, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ours(x, training=True), ours(x), rtol=0, atol=0)
    np.testing.assert_allclose(
        ours(x, training=True), to_numpy(keras, theirs(x, training=True)), **PREDICT_TOL
    )


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_rank3_inputs_and_axes_match_keras(axis, keras, fresh_session, rng):
    x = rng.normal(size=(8, 4, 5)).astype("float32") * 2 + 1
    theirs = keras.layers.BatchNormalization(axis=axis, momentum=0.8)
    ours = BatchNormalization(axis=axis, momentum=0.8)
    theirs.build(x.shape)
    ours.build((None, 4, 5))
    values = [rng.normal(size=w.shape).astype("float32") for w in theirs.weights]
    values[-1] = np.abs(values[-1]) + 0.5
    theirs.set_weights(values)
    ours.set_weights(values)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.weights]
    np.testing.assert_allclose(ours(x), to_numpy(keras, theirs(x)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        ours(x, training=True), to_numpy(keras, theirs(x, training=True)), rtol=1e-5, atol=1e-5
    )
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_large_offsets_keep_the_variance(fresh_session, rng):
    """float64 sums keep the batch variance of float32 inputs with a large mean (Keras's
    float32 E[x^2] - E[x]^2 cancels to noise, even to NaN, there)."""
    x = (1000 + 0.05 * rng.normal(size=(64, 3))).astype("float32")
    layer = BatchNormalization()
    layer.build((None, 3))
    x64 = x.astype(np.float64)
    expected = (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-3)
    np.testing.assert_allclose(layer(x, training=True), expected, rtol=0, atol=1e-3)
    np.testing.assert_allclose(layer.moving_variance.value, 0.99 + 0.01 * x64.var(0), rtol=1e-6)


def test_keras_file_with_batch_normalization_loads(keras, fresh_session, rng, tmp_path):
    theirs, _ = keras_and_layerkit(keras, {"momentum": 0.9}, "adam", rng)
    x, y = make_data(rng)
    theirs.fit(x, y, batch_size=8, epochs=1, verbose=0)
    theirs.save(tmp_path / "bn.keras")
    loaded = lk.load_model(tmp_path / "bn.keras")
    assert [p.name for p in loaded.get_layer("bn").weights] == [
        "bn/gamma",
        "bn/beta",
        "bn/moving_mean",
        "bn/moving_variance",
    ]
    for a, b in zip(loaded.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(a, to_numpy(keras, b))
    assert loaded.get_layer("bn").momentum == 0.9
    np.testing.assert_allclose(
        loaded.predict(x), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


# --- gradients -------------------------------------------------------------------------
GRAD_CASES = {
    "defaults": {},
    "no-center": {"center": False},
    "no-scale": {"scale": False},
    "neither": {"center": False, "scale": False},
}


@pytest.mark.parametrize("training", [True, False], ids=["batch-stats", "moving-stats"])
@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_layer_gradients_match_finite_differences(
    case, training, float64, fresh_session, rng, numeric_grad
):
    layer = BatchNormalization(momentum=0.7, **GRAD_CASES[case])
    layer.build((None, 3, 4))  # rank 3: the statistics are over the batch and axis 1
    for p in layer.weights:
        p.assign(rng.normal(size=p.shape))
    layer.moving_variance.assign(np.abs(layer.moving_variance.value) + 0.5)
    x = rng.normal(size=(5, 3, 4)) * 2 + 1
    r = rng.normal(size=x.shape)
    y, backward = layer.forward(x, training=training)
    assert y.dtype == np.float64
    dx = np.array(backward(r.copy(), True), copy=True)
    grads = {p.name: p.grad.copy() for p in layer.trainable_weights}
    # Training-mode outputs do not depend on the moving statistics, which each call moves.
    moving = [p.numpy() for p in layer.weights if p.statistic]

    def f():
        out, _ = layer.forward(x, training=training)
        return float(np.sum(out * r))

    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-8)
    for p in layer.trainable_weights:
        np.testing.assert_allclose(
            grads[p.name], numeric_grad(f, p.value), rtol=1e-6, atol=1e-8, err_msg=p.name
        )
    if not training:
        for a, p in zip(moving, [p for p in layer.weights if p.statistic], strict=True):
            np.testing.assert_array_equal(a, p.value)
    if training:  # the batch statistics make the input gradient sum to zero per feature
        np.testing.assert_allclose(dx.sum(axis=(0, 1)), 0, atol=1e-10)


def test_model_gradients_through_batch_statistics(float64, fresh_session, rng, numeric_grad):
    """compute_gradients through a trainable BN: every sample's loss depends on the
    whole batch. It runs a training forward, which moves the moving statistics."""
    model = bn_model({"momentum": 0.9})
    x, y = make_data(rng, 7, "float64")
    bn = model.get_layer("bn")
    before = [bn.moving_mean.numpy(), bn.moving_variance.numpy()]
    h = x @ model.get_layer("hidden1").kernel.value
    loss, pairs = model.compute_gradients(x, y)
    np.testing.assert_allclose(bn.moving_mean.value, 0.9 * before[0] + 0.1 * h.mean(0))
    np.testing.assert_allclose(bn.moving_variance.value, 0.9 * before[1] + 0.1 * h.var(0))
    names = [p.name for _, p in pairs]
    assert names == [p.name for p in model.trainable_weights]
    assert "bn/moving_mean" not in names
    assert "bn/gamma" in names

    def f():  # the training loss ignores the moving statistics, which every call moves
        return model.compute_gradients(x, y)[0]

    assert f() == pytest.approx(loss, rel=1e-12)
    for grad, p in pairs:
        if p.name.startswith(("hidden1", "bn")):
            np.testing.assert_allclose(
                grad, numeric_grad(f, p.value), rtol=1e-6, atol=1e-9, err_msg=p.name
            )
    # The batch statistics matter: the same gradient with the moving statistics
    # (a frozen layer) is a different one.
    bn.trainable = False
    _, frozen_pairs = model.compute_gradients(x, y)
    kernel = dict((p.name, g) for g, p in frozen_pairs)["hidden1/kernel"]
    assert not np.allclose(kernel, dict((p.name, g) for g, p in pairs)["hidden1/kernel"])


def test_model_gradients_through_a_frozen_layer(float64, fresh_session, rng, numeric_grad):
    model = bn_model(frozen="bn")
    bn = model.get_layer("bn")
    bn.set_weights(
        [rng.normal(size=w.shape) for w in bn.get_weights()[:3]]
        + [np.abs(rng.normal(size=bn.moving_variance.shape)) + 0.5]
    )
    start = bn.get_weights()
    x, y = make_data(rng, 7, "float64")
    loss, pairs = model.compute_gradients(x, y)
    names = [p.name for _, p in pairs]
    assert not any(name.startswith("bn/") for name in names)
    for a, b in zip(bn.get_weights(), start, strict=True):
        np.testing.assert_array_equal(a, b)  # nothing moved

    def f():
        return model.compute_gradients(x, y)[0]

    # The frozen layer computes the inference function: the loss is evaluate's.
    assert loss == pytest.approx(model.evaluate(x, y, batch_size=len(x), verbose=0), rel=1e-12)
    grad = dict((p.name, g) for g, p in pairs)["hidden1/kernel"]
    kernel = model.get_layer("hidden1").kernel
    np.testing.assert_allclose(grad, numeric_grad(f, kernel.value), rtol=1e-6, atol=1e-9)


# --- freezing and the frozen-output cache -----------------------------------------------
def test_frozen_layer_stays_put_in_fit(fresh_session, rng):
    model = bn_model(frozen="bn")
    x, y = make_data(rng, 96)
    start = bn_weights(model)
    kernel = model.get_layer("hidden1").get_weights()[0]
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    for name, value in bn_weights(model).items():
        np.testing.assert_array_equal(value, start[name], err_msg=name)
    assert not np.allclose(model.get_layer("hidden1").get_weights()[0], kernel)
    np.testing.assert_array_equal(model(x, training=True), model(x))
    assert model.get_layer("bn").deterministic
    # Unfrozen again, it trains and its statistics move.
    model.unfreeze("bn")
    assert not model.get_layer("bn").deterministic
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for name, value in bn_weights(model).items():
        assert not np.allclose(value, start[name]), name


def test_statistics_get_no_optimizer_state(fresh_session, rng):
    model = bn_model()
    x, y = make_data(rng, 32)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert set(model.optimizer.slots("bn/gamma")) == set(model.optimizer.slots("hidden1/kernel"))
    kept = set(model.optimizer.state_dict()["slots"])
    assert {"bn/gamma", "bn/beta", "hidden1/kernel"} <= kept
    assert not kept & {"bn/moving_mean", "bn/moving_variance"}


@pytest.mark.parametrize("cache_frozen", [True, "auto"])
def test_cache_through_a_frozen_layer_gives_the_same_weights(cache_frozen, fresh_session, rng):
    x, y = make_data(rng, 96)
    results = []
    for mode in (cache_frozen, False):
        model = bn_model(frozen="hidden1|bn")
        calls = [0]
        original = model.get_layer("bn").forward

        def forward(inputs, training=False, original=original, calls=calls):
            calls[0] += 1
            return original(inputs, training)

        model.get_layer("bn").forward = forward
        history = model.fit(
            x[:80],
            y[:80],
            batch_size=16,
            epochs=3,
            verbose=0,
            validation_data=(x[80:], y[80:]),
            cache_frozen=mode,
        )
        results.append((model, history.history, calls[0]))
    (cached, cached_history, cached_calls), (plain, plain_history, plain_calls) = results
    for a, b in zip(cached.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    for key in plain_history:
        np.testing.assert_allclose(cached_history[key], plain_history[key], rtol=1e-5)
    assert cached_calls < plain_calls  # computed once for the cache, not at every step
    start = bn_model(frozen="hidden1|bn")
    for name, value in bn_weights(cached).items():
        np.testing.assert_array_equal(value, bn_weights(start)[name], err_msg=name)


def test_trainable_statistics_in_the_frozen_bottom_block_the_cache(fresh_session, rng):
    """A trainable BN without gamma / beta has nothing to train, but still normalises
    with the batch and moves its statistics: cache_frozen=True must refuse to cache."""
    x, y = make_data(rng, 64)
    bn_kwargs = {"center": False, "scale": False}
    model = bn_model(bn_kwargs, frozen="hidden1")
    assert model.get_layer("bn").trainable
    assert not model.get_layer("bn").deterministic
    blocked = r"cannot cache through layer 'bn' \(BatchNormalization\)"
    with pytest.raises(ValueError, match=blocked):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, cache_frozen=True)
    # "auto" trains as without the cache, statistics moving.
    auto = bn_model(bn_kwargs, frozen="hidden1")
    auto.fit(x, y, batch_size=16, epochs=2, verbose=0, cache_frozen="auto")
    plain = bn_model(bn_kwargs, frozen="hidden1")
    plain.fit(x, y, batch_size=16, epochs=2, verbose=0, cache_frozen=False)
    for a, b in zip(auto.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert not np.allclose(bn_weights(plain)["moving_mean"], 0)


# --- configs and files -----------------------------------------------------------------
def test_config_round_trip_and_keras_keys(keras, fresh_session):
    kwargs = {
        "axis": 1,
        "momentum": 0.9,
        "epsilon": 1e-2,
        "center": False,
        "scale": True,
        "gamma_initializer": "random_normal",
        "moving_variance_initializer": "ones",
    }
    layer = BatchNormalization(**kwargs)
    layer.build((None, 4, 5))
    config = layer.get_config()
    theirs = keras.layers.BatchNormalization(**kwargs).get_config()
    # Keras also has regularizers, constraints and renorm options, which layerkit lacks.
    assert set(config) <= set(theirs)
    assert set(theirs) - set(config) <= {
        "beta_regularizer",
        "gamma_regularizer",
        "beta_constraint",
        "gamma_constraint",
        "renorm",
        "renorm_clipping",
        "renorm_momentum",
    }
    for key in ("axis", "momentum", "epsilon", "center", "scale", "synchronized"):
        assert config[key] == theirs[key], key
    json.dumps(config)
    again = lk.layers.deserialize(lk.layers.serialize(layer))
    assert type(again) is BatchNormalization
    assert again.get_config() == config
    again = BatchNormalization.from_config(config)
    assert again.get_config() == config


def test_model_config_round_trip(fresh_session, rng):
    model = bn_model({"momentum": 0.8, "epsilon": 1e-2})
    x, y = make_data(rng, 32)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    clone = lk.Sequential.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))


def test_save_and_load_resume_exactly(fresh_session, rng, tmp_path):
    x, y = make_data(rng, 96)
    reference = bn_model({"momentum": 0.9})
    reference.fit(x, y, batch_size=16, epochs=3, verbose=0)

    first = bn_model({"momentum": 0.9})
    first.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = first.save(tmp_path / "bn.h5")
    loaded = lk.load_model(path)
    for a, b in zip(loaded.get_weights(), first.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # moving statistics included
    assert [p.name for p in loaded.non_trainable_weights] == [
        "bn/moving_mean",
        "bn/moving_variance",
    ]
    np.testing.assert_array_equal(loaded.predict(x), first.predict(x))
    lk.utils.set_random_seed(987654)  # the checkpoint's generator state must win
    loaded.fit(x, y, batch_size=16, epochs=2, verbose=0)
    names = [p.name for p in reference.weights]
    for name, a, b in zip(names, loaded.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=name)


def test_frozen_flag_survives_save_and_load(fresh_session, rng, tmp_path):
    model = bn_model(frozen="bn")
    loaded = lk.load_model(model.save(tmp_path / "frozen.h5"))
    assert not loaded.get_layer("bn").trainable
    assert loaded.get_layer("bn").deterministic


# --- bad arguments ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"momentum": 1.5}, ValueError, r"momentum in \[0, 1\]"),
        ({"momentum": -0.1}, ValueError, "momentum"),
        ({"momentum": "high"}, TypeError, "momentum"),
        ({"epsilon": 0}, ValueError, "epsilon > 0"),
        ({"epsilon": -1e-3}, ValueError, "epsilon"),
        ({"center": "yes"}, TypeError, "center='yes'"),
        ({"scale": 1}, TypeError, "scale=1"),
        ({"synchronized": None}, TypeError, "synchronized"),
        ({"axis": 1.5}, TypeError, "axis"),
        ({"axis": [1]}, TypeError, "axis"),
        ({"gamma_initializer": "no_such_thing"}, ValueError, "gamma_initializer"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        BatchNormalization(**kwargs)


@pytest.mark.parametrize(
    ("axis", "match"), [(0, "axis=0 is the batch axis"), (2, "axis=2"), (-3, "axis=-3")]
)
def test_axes_that_are_not_feature_axes_are_refused_at_build(axis, match, fresh_session):
    with pytest.raises(ValueError, match=match):
        lk.Sequential([lk.layers.Input((4,)), BatchNormalization(axis=axis)])


def test_momentum_bounds_are_inclusive(fresh_session, rng):
    """momentum=1 keeps the statistics, momentum=0 replaces them with the batch's."""
    x = rng.normal(size=(16, 3)).astype("float32")
    for momentum, expected in ((1.0, np.zeros(3)), (0.0, x.mean(0))):
        layer = BatchNormalization(momentum=momentum)
        layer.build((None, 3))
        layer(x, training=True)
        np.testing.assert_allclose(layer.moving_mean.value, expected, rtol=1e-5, atol=1e-7)
