"""Initializers against real Keras 3: exact values where the maths fixes them, the
statistics of a large draw otherwise, reproducibility, configs and export.

Random draws cannot match Keras bit for bit (Keras on torch uses torch's generator), so
each random initializer is checked three ways on a 300 x 400 draw (120,000 values): its
mean, std, min and max against the theory, against a Keras draw of the same shape, and
its support exactly (uniform and truncated bounds are never crossed).
"""

from __future__ import annotations

import inspect
import json
import math
import zipfile

import numpy as np
import pytest

import layerkit as lk
from layerkit import initializers

SHAPE = (300, 400)  # fan_in 300, fan_out 400, fan_avg 350
N = SHAPE[0] * SHAPE[1]
TRUNC = 0.87962566103423978  # std of a unit normal truncated at +-2
FANS = {"fan_in": 300, "fan_out": 400, "fan_avg": 350}


def _vs_case(scale, mode, distribution):
    """(name, config, (mean, std, bound)) of a VarianceScaling; bound None if unbounded."""
    variance = scale / FANS[mode]
    std = math.sqrt(variance)
    bound = {
        "uniform": math.sqrt(3 * variance),
        "truncated_normal": 2 * std / TRUNC,
        "untruncated_normal": None,
    }[distribution]
    config = {"scale": scale, "mode": mode, "distribution": distribution}
    return f"VarianceScaling-{mode}-{distribution}", "VarianceScaling", config, (0.0, std, bound)


RANDOM_CASES = [
    _vs_case(scale, mode, distribution)
    for scale, mode in ((2.0, "fan_in"), (0.5, "fan_out"), (3.0, "fan_avg"))
    for distribution in ("truncated_normal", "untruncated_normal", "uniform")
] + [
    ("LecunUniform", "LecunUniform", {}, (0.0, math.sqrt(1 / 300), math.sqrt(3 / 300))),
    ("LecunNormal", "LecunNormal", {}, (0.0, math.sqrt(1 / 300), 2 * math.sqrt(1 / 300) / TRUNC)),
    ("GlorotUniform", "GlorotUniform", {}, (0.0, math.sqrt(1 / 350), math.sqrt(3 / 350))),
    ("GlorotNormal", "GlorotNormal", {}, (0.0, math.sqrt(1 / 350), 2 * math.sqrt(1 / 350) / TRUNC)),
    ("HeUniform", "HeUniform", {}, (0.0, math.sqrt(2 / 300), math.sqrt(6 / 300))),
    ("HeNormal", "HeNormal", {}, (0.0, math.sqrt(2 / 300), 2 * math.sqrt(2 / 300) / TRUNC)),
    ("TruncatedNormal-default", "TruncatedNormal", {}, (0.0, 0.05 * TRUNC, 0.1)),
    (
        "TruncatedNormal-shifted",
        "TruncatedNormal",
        {"mean": 0.5, "stddev": 0.2},
        (0.5, 0.2 * TRUNC, 0.4),  # bound is the half-width around the mean
    ),
    ("RandomNormal", "RandomNormal", {"mean": -1.0, "stddev": 0.3}, (-1.0, 0.3, None)),
    ("RandomUniform", "RandomUniform", {"minval": -0.2, "maxval": 0.6}, (0.2, 0.8 / 12**0.5, 0.4)),
]


def _stats(values):
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std()), float(values.min()), float(values.max())


def _numpy(tensor) -> np.ndarray:
    # A torch tensor (the fixture's backend); keras.ops.convert_to_numpy warns on numpy 2.
    tensor = getattr(tensor, "value", tensor)  # a keras.Variable holds one
    return tensor.detach().cpu().numpy()


def _keras_draw(keras, class_name, config, shape, seed):
    init = getattr(keras.initializers, class_name)(**config, seed=seed)
    return _numpy(init(shape))


@pytest.mark.parametrize(("label", "class_name", "config", "theory"), RANDOM_CASES)
def test_random_draws_match_theory_and_keras(keras, label, class_name, config, theory):
    mean, std, bound = theory
    ours = getattr(initializers, class_name)(**config, seed=5)(SHAPE)
    theirs = _keras_draw(keras, class_name, config, SHAPE, seed=5)
    assert ours.dtype == theirs.dtype == np.float32
    assert ours.shape == theirs.shape == SHAPE
    (m1, s1, lo1, hi1), (m2, s2, lo2, hi2) = _stats(ours), _stats(theirs)
    # The standard error of a mean is std / sqrt(N) = std / 346: 5 of them.
    assert abs(m1 - mean) < 5 * std / math.sqrt(N)
    assert abs(m1 - m2) < 7 * std / math.sqrt(N)
    # The standard error of a std is at most about 0.3% here.
    assert s1 == pytest.approx(std, rel=0.01)
    assert s1 == pytest.approx(s2, rel=0.015)
    if bound is None:  # a normal: 120,000 draws reach beyond 3.5 std on each side
        assert lo1 < mean - 3.5 * std
        assert hi1 > mean + 3.5 * std
        assert lo2 < mean - 3.5 * std
        assert hi2 > mean + 3.5 * std
        return
    low, high = np.float32(mean - bound), np.float32(mean + bound)
    # layerkit's support exactly; both reach within 1% of its ends.
    assert low <= lo1
    assert hi1 <= high
    assert lo1 < mean - 0.99 * bound
    assert hi1 > mean + 0.99 * bound
    assert lo2 < mean - 0.99 * bound
    assert hi2 > mean + 0.99 * bound
    if "runcated" in label or class_name in ("LecunNormal", "GlorotNormal", "HeNormal"):
        # Keras's torch backend keeps the first of 4 normals inside +-2 std, or the first
        # one when all 4 are outside (probability 0.0455**4 each): a handful may cross.
        outside = np.count_nonzero((theirs < low) | (theirs > high))
        assert outside <= 5
    else:
        assert low <= lo2
        assert hi2 <= high


@pytest.mark.parametrize("distribution", ["truncated_normal", "untruncated_normal", "uniform"])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
def test_higher_rank_fans_as_keras(keras, mode, distribution):
    """A (3, 3, 20, 40) kernel: receptive field 9, fan_in 180, fan_out 360, as compute_fans."""
    from keras.src.initializers.random_initializers import compute_fans

    shape = (3, 3, 20, 40)
    for s in (shape, (7,), (), (5, 6), (2, 3, 4)):
        assert initializers._fans(s) == compute_fans(s)
    init = initializers.VarianceScaling(1.5, mode, distribution, seed=2)
    w = init(shape)
    n = {"fan_in": 180, "fan_out": 360, "fan_avg": 270}[mode]
    config = {"scale": 1.5, "mode": mode, "distribution": distribution}
    theirs = _keras_draw(keras, "VarianceScaling", config, shape, seed=2)
    assert _stats(w)[1] == pytest.approx(math.sqrt(1.5 / n), rel=0.02)  # 14,400 draws
    assert _stats(w)[1] == pytest.approx(_stats(theirs)[1], rel=0.03)


def test_fans_below_one_use_one():
    """Keras divides by max(1, fan): a scalar has fans 1, so the limit is sqrt(3 scale)."""
    init = initializers.VarianceScaling(4.0, "fan_in", "uniform", seed=0)
    w = init(())
    assert w.shape == ()
    assert abs(float(w)) <= math.sqrt(12.0)


# --- deterministic ones: exact values ---------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (6, 2)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_identity_exact(keras, shape, gain):
    ours = initializers.Identity(gain)(shape)
    theirs = _numpy(keras.initializers.Identity(gain)(shape))
    assert ours.dtype == np.float32
    assert np.array_equal(ours, gain * np.eye(*shape, dtype=np.float32))
    assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("shape", [(300, 40), (40, 300), (64, 64), (3, 3, 8, 16), (2, 5, 7)])
@pytest.mark.parametrize("gain", [1.0, 1.7])
def test_orthogonal_is_orthogonal(keras, shape, gain):
    ours = initializers.Orthogonal(gain, seed=4)(shape)
    theirs = _numpy(keras.initializers.Orthogonal(gain, seed=4)(shape))
    assert ours.shape == theirs.shape == shape
    assert ours.dtype == np.float32
    for w in (ours, theirs):
        flat = w.reshape(-1, shape[-1]).astype(np.float64)
        # Tall: orthonormal columns; wide: orthonormal rows. Both scaled by gain.
        gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
        assert np.abs(gram - gain**2 * np.eye(len(gram))).max() < 1e-5
        # k orthonormal vectors: the squares sum to gain**2 k, exactly.
        k = min(flat.shape)
        rms = math.sqrt(float(np.mean(flat**2)))
        assert rms == pytest.approx(gain * math.sqrt(k / flat.size), rel=1e-5)
    expected_std = gain * math.sqrt(k / flat.size)
    # Q is made unique by the signs of R's diagonal, so it is uniformly distributed:
    # its mean over many entries is near 0 (a plain QR biases the diagonal positive).
    assert abs(_stats(ours)[0]) < 5 * expected_std / math.sqrt(flat.size)


def test_orthogonal_is_the_signed_q_of_a_seeded_normal():
    q, r = np.linalg.qr(np.random.default_rng(9).normal(size=(6, 4)))
    expected = (q * np.sign(np.diag(r))).T  # (4, 6) is wide: the transpose
    assert np.allclose(initializers.Orthogonal(2.0, seed=9)((4, 6)), 2.0 * expected, atol=1e-6)


# --- reproducibility --------------------------------------------------------------------------
SEEDED = [
    lambda seed: initializers.VarianceScaling(2.0, "fan_avg", "untruncated_normal", seed=seed),
    lambda seed: initializers.VarianceScaling(0.3, "fan_out", "uniform", seed=seed),
    lambda seed: initializers.VarianceScaling(seed=seed),
    lambda seed: initializers.LecunUniform(seed=seed),
    lambda seed: initializers.TruncatedNormal(0.1, 0.3, seed=seed),
    lambda seed: initializers.Orthogonal(seed=seed),
]


@pytest.mark.parametrize("make", SEEDED)
def test_same_seed_same_values(make):
    a = make(3)((20, 30))
    assert np.array_equal(a, make(3)((20, 30)))
    init = make(3)
    assert np.array_equal(init((20, 30)), init((20, 30)))  # a seeded one repeats, as Keras
    assert not np.array_equal(a, make(4)((20, 30)))


@pytest.mark.parametrize("make", SEEDED)
def test_global_seed_makes_unseeded_reproducible(make):
    lk.utils.set_random_seed(21)
    first, second = make(None)((20, 30)), make(None)((20, 30))
    lk.utils.set_random_seed(21)
    assert np.array_equal(first, make(None)((20, 30)))
    assert np.array_equal(second, make(None)((20, 30)))
    assert not np.array_equal(first, second)


def test_seeded_dense_kernels_repeat(fresh_session):
    def kernel(init):
        layer = lk.layers.Dense(7, kernel_initializer=init)
        layer.build((None, 5))
        return layer.kernel.value

    for name in ("orthogonal", "lecun_uniform", "truncated_normal"):
        lk.utils.set_random_seed(8)
        a = kernel(name)
        lk.utils.set_random_seed(8)
        assert np.array_equal(a, kernel(name))


# --- configs against Keras --------------------------------------------------------------------
CONFIGURED = {
    "VarianceScaling": initializers.VarianceScaling(0.7, "fan_out", "uniform", seed=3),
    "LecunUniform": initializers.LecunUniform(seed=11),
    "TruncatedNormal": initializers.TruncatedNormal(mean=0.2, stddev=0.4, seed=1),
    "Orthogonal": initializers.Orthogonal(gain=1.5, seed=2),
    "Identity": initializers.Identity(gain=3.0),
    "GlorotNormal": initializers.GlorotNormal(seed=4),
    "RandomUniform": initializers.RandomUniform(-0.1, 0.3, seed=6),
    "Constant": initializers.Constant(0.25),
    "Zeros": initializers.Zeros(),
}
# Keras 3.x added these (default None: the fans computed here); configs without them
# load in every Keras 3.
LATER_KERAS_KEYS = {"input_axes", "output_axes"}


@pytest.mark.parametrize("class_name", list(CONFIGURED))
def test_config_keys_and_defaults_are_keras(keras, class_name):
    ours = CONFIGURED[class_name]
    config = ours.get_config()
    keras_cls = getattr(keras.initializers, class_name)
    keras_default = keras_cls().get_config()
    keras_params = inspect.signature(keras_cls.__init__).parameters
    assert set(config) <= set(keras_params)
    missing = set(keras_default) - set(config)
    assert missing <= LATER_KERAS_KEYS
    assert all(keras_default[key] is None for key in missing)
    # Keras's defaults are ours.
    default_config = type(ours)().get_config()
    for key, param in keras_params.items():
        if key in default_config:
            assert default_config[key] == param.default, key
    # Keras builds the same initializer from our config, and reports the same values.
    theirs = keras_cls.from_config(json.loads(json.dumps(config)))
    for key, value in config.items():
        assert getattr(theirs, "_init_seed" if key == "seed" else key) == value, key
    if class_name != "Identity":  # Keras's Identity.get_config drops its gain ({})
        assert {k: v for k, v in theirs.get_config().items() if k in config} == config


@pytest.mark.parametrize("class_name", list(CONFIGURED))
def test_layerkit_config_round_trip(class_name):
    ours = CONFIGURED[class_name]
    again = type(ours).from_config(json.loads(json.dumps(ours.get_config())))
    assert again.get_config() == ours.get_config()
    via_name = initializers.get(json.loads(json.dumps(initializers.serialize(ours))))
    assert type(via_name) is type(ours)
    assert via_name.get_config() == ours.get_config()
    assert np.array_equal(via_name((6, 4)), ours((6, 4)))


def test_keras_reads_our_lowercase_distribution(keras):
    init = initializers.VarianceScaling(distribution="Normal")
    assert init.distribution == "truncated_normal"
    keras_init = keras.initializers.VarianceScaling(distribution="Normal")
    assert keras_init.distribution == init.distribution


# --- export: a Dense with each initializer, loaded by Keras ----------------------------------
def test_dense_with_each_initializer_exports_and_loads_in_keras(keras, tmp_path, fresh_session):
    names = list(CONFIGURED)
    model = lk.Sequential(
        [lk.layers.Input((12,))]
        + [
            lk.layers.Dense(12, kernel_initializer=CONFIGURED[n], name=f"d_{n.lower()}")
            for n in names
        ]
        + [lk.layers.Dense(3, kernel_initializer="identity", bias_initializer="ones", name="out")]
    )
    path = lk.io.save_keras(model, tmp_path / "inits.keras")
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    dense = {
        layer["config"]["name"]: layer["config"]
        for layer in config["config"]["layers"]
        if layer["class_name"] == "Dense"
    }
    for n in names:
        spec = dense[f"d_{n.lower()}"]["kernel_initializer"]
        assert spec["class_name"] == n
        theirs = keras.initializers.deserialize(spec)
        assert type(theirs) is getattr(keras.initializers, n)
        assert spec["config"] == CONFIGURED[n].get_config()
        # Keras draws from the same distribution: same std on a large shape.
        if n not in ("Zeros", "Constant", "Identity"):
            ours_std = _stats(CONFIGURED[n](SHAPE))[1]
            theirs_std = _stats(_numpy(theirs(SHAPE)))[1]
            assert ours_std == pytest.approx(theirs_std, rel=0.015), n
    out_init = keras.initializers.deserialize(dense["out"]["kernel_initializer"])
    assert type(out_init) is keras.initializers.Identity

    loaded = keras.saving.load_model(path)
    for n in names:
        layer = loaded.get_layer(f"d_{n.lower()}")
        assert type(layer.kernel_initializer) is getattr(keras.initializers, n)
        assert np.array_equal(_numpy(layer.kernel), model.get_layer(f"d_{n.lower()}").kernel.value)
    x = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)
    assert np.allclose(_numpy(loaded(x)), model.predict(x, verbose=0), atol=1e-5)

    # And layerkit reads the same initializers back from the file.
    again = lk.io.load_keras(path)
    for n in names:
        init = again.get_layer(f"d_{n.lower()}").kernel_initializer
        assert type(init) is type(CONFIGURED[n])
        assert init.get_config() == CONFIGURED[n].get_config()


def test_keras_aliases_load(tmp_path):
    """Keras still reads OrthogonalInitializer / IdentityInitializer; so does load_keras."""
    from layerkit.io import keras_model

    assert isinstance(
        keras_model._initializer(
            {"class_name": "OrthogonalInitializer", "config": {"gain": 2.0, "seed": 1}}, "zeros"
        ),
        initializers.Orthogonal,
    )
    identity = keras_model._initializer({"class_name": "Identity", "config": {}}, "zeros")
    assert isinstance(identity, initializers.Identity)
    assert identity.gain == 1.0


# --- validation -------------------------------------------------------------------------------
def test_shapes_they_cannot_fill(keras):
    with pytest.raises(ValueError, match=r"rank 2 or more.*shape=\(5,\) of rank 1"):
        initializers.Orthogonal()((5,))
    with pytest.raises(ValueError, match=r"2-D shapes.*shape=\(2, 3, 4\) of rank 3"):
        initializers.Identity()((2, 3, 4))
    with pytest.raises(ValueError, match=r"shape=\(5,\)"):
        initializers.Identity()((5,))
    # Keras refuses the same shapes.
    with pytest.raises(ValueError):
        keras.initializers.Orthogonal()((5,))
    with pytest.raises(ValueError):
        keras.initializers.Identity()((2, 3, 4))
    layer = lk.layers.Dense(3, bias_initializer="identity")
    with pytest.raises(ValueError, match=r"Identity.*shape=\(3,\)"):
        layer.build((None, 4))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"stddev >= 0.*stddev=-0.1"):
        initializers.TruncatedNormal(stddev=-0.1)
    with pytest.raises(TypeError, match=r"mean='0'"):
        initializers.TruncatedNormal(mean="0")
    with pytest.raises(ValueError, match=r"gain=nan"):
        initializers.Orthogonal(gain=float("nan"))
    with pytest.raises(TypeError, match=r"gain='2'"):
        initializers.Identity(gain="2")
    with pytest.raises(TypeError, match=r"seed=0.5"):
        initializers.Orthogonal(seed=0.5)
    with pytest.raises(ValueError, match=r"seed >= 0.*seed=-2"):
        initializers.LecunUniform(seed=-2)
    with pytest.raises(ValueError, match=r"mode='FAN_IN'"):
        initializers.VarianceScaling(mode="FAN_IN")  # Keras does not lower-case mode either
    with pytest.raises(ValueError, match=r"distribution='gamma'"):
        initializers.VarianceScaling(distribution="gamma")
    with pytest.raises(TypeError, match=r"distribution=3"):
        initializers.VarianceScaling(distribution=3)
    with pytest.raises(ValueError, match=r"scale > 0.*scale=0"):
        initializers.VarianceScaling(scale=0.0)
    with pytest.raises(ValueError, match=r"empty shape"):
        initializers.Orthogonal()((0, 3))


def test_numpy_scalars_become_python_numbers():
    init = initializers.Orthogonal(gain=np.float32(2.0), seed=np.int64(1))
    assert init.get_config() == {"gain": 2.0, "seed": 1}
    assert all(type(v) in (int, float) for v in init.get_config().values())
    init = initializers.TruncatedNormal(np.float64(0.5), np.float32(0.25))
    assert init.get_config() == {"mean": 0.5, "stddev": 0.25, "seed": None}
    assert initializers.Identity(np.int32(3)).gain == 3.0
