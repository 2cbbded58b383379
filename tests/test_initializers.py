"""Initializers: Keras 3 ranges and spreads, seeding, lookup and serialisation."""

from __future__ import annotations

import json

import numpy as np
import pytest

import layerkit as lk
from layerkit import initializers

SHAPE = (400, 200)  # fan_in 400, fan_out 200: 80,000 draws, enough for 2-3% on a std


def _std(values):
    return float(np.std(values.astype(np.float64)))


def test_glorot_uniform_limit_and_spread():
    w = initializers.GlorotUniform(seed=1)(SHAPE)
    limit = np.sqrt(6.0 / (400 + 200))
    assert w.dtype == np.float32
    assert w.shape == SHAPE
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.99 * limit
    assert _std(w) == pytest.approx(limit / np.sqrt(3.0), rel=0.02)
    assert abs(float(w.mean())) < 0.01 * limit


def test_he_uniform_limit():
    w = initializers.HeUniform(seed=2)(SHAPE)
    limit = np.sqrt(6.0 / 400)
    assert np.abs(w).max() <= limit
    assert _std(w) == pytest.approx(np.sqrt(2.0 / 400), rel=0.02)


@pytest.mark.parametrize(
    ("cls", "target_std"),
    [
        (initializers.GlorotNormal, np.sqrt(2.0 / 600)),
        (initializers.HeNormal, np.sqrt(2.0 / 400)),
        (initializers.LecunNormal, np.sqrt(1.0 / 400)),
    ],
)
def test_truncated_normals_have_the_target_std(cls, target_std):
    w = cls(seed=3)(SHAPE)
    assert _std(w) == pytest.approx(target_std, rel=0.03)
    # truncated at two standard deviations of the underlying (wider) normal
    assert np.abs(w).max() <= 2.0 * target_std / 0.87962566103423978 * (1 + 1e-6)


def test_random_normal_and_uniform_defaults():
    w = initializers.RandomNormal(seed=4)(SHAPE)
    assert _std(w) == pytest.approx(0.05, rel=0.02)
    u = initializers.RandomUniform(seed=4)(SHAPE)
    assert u.min() >= -0.05
    assert u.max() <= 0.05
    assert u.max() > 0.0499


def test_constants():
    assert np.array_equal(initializers.get("zeros")((2, 3)), np.zeros((2, 3)))
    assert np.array_equal(initializers.get("ones")((3,)), np.ones(3))
    assert np.array_equal(initializers.Constant(2.5)((2, 2)), np.full((2, 2), 2.5))


def test_variance_scaling_modes():
    w = initializers.VarianceScaling(scale=3.0, mode="fan_out", distribution="uniform", seed=0)(
        SHAPE
    )
    assert np.abs(w).max() <= np.sqrt(3 * 3.0 / 200)
    assert _std(w) == pytest.approx(np.sqrt(3.0 / 200), rel=0.02)
    w = initializers.VarianceScaling(
        scale=2.0, mode="fan_avg", distribution="untruncated_normal", seed=0
    )(SHAPE)
    assert _std(w) == pytest.approx(np.sqrt(2.0 / 300), rel=0.02)
    with pytest.raises(ValueError, match=r"mode='fan_x'"):
        initializers.VarianceScaling(mode="fan_x")
    with pytest.raises(ValueError, match=r"distribution='normalish'"):
        initializers.VarianceScaling(distribution="normalish")
    with pytest.raises(ValueError, match=r"scale=-1"):
        initializers.VarianceScaling(scale=-1)


def test_seeded_initializer_repeats_and_seeds_differ():
    init = initializers.GlorotUniform(seed=7)
    a, b = init((5, 4)), init((5, 4))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, initializers.GlorotUniform(seed=8)((5, 4)))


def test_global_seed_makes_unseeded_draws_reproducible():
    lk.utils.set_random_seed(11)
    a = initializers.get("glorot_uniform")((6, 3))
    b = initializers.get("glorot_uniform")((6, 3))
    lk.utils.set_random_seed(11)
    a2 = initializers.get("glorot_uniform")((6, 3))
    assert np.array_equal(a, a2)
    assert not np.array_equal(a, b)


def test_dtype_follows_floatx(float64):
    assert initializers.HeNormal(seed=0)((3, 3)).dtype == np.float64
    assert initializers.HeNormal(seed=0)((3, 3), dtype="float32").dtype == np.float32


def test_dense_uses_its_initializers(fresh_session):
    layer = lk.layers.Dense(
        4, kernel_initializer="ones", bias_initializer=initializers.Constant(0.5)
    )
    layer.build((None, 3))
    assert np.array_equal(layer.kernel.value, np.ones((3, 4)))
    assert np.array_equal(layer.bias.value, np.full(4, 0.5))


@pytest.mark.parametrize(
    "name",
    [
        "zeros",
        "ones",
        "random_normal",
        "random_uniform",
        "glorot_uniform",
        "glorot_normal",
        "he_uniform",
        "he_normal",
        "lecun_normal",
        "variance_scaling",
        "lecun_uniform",
        "truncated_normal",
        "orthogonal",
        "identity",
    ],
)
def test_lookup_and_serialise_round_trip(name):
    init = initializers.get(name)
    spec = initializers.serialize(init)
    assert spec == name or spec["class_name"] == name
    assert type(initializers.get(initializers.serialize(init))) is type(init)


def test_serialise_keeps_the_configuration():
    spec = initializers.serialize(initializers.RandomNormal(mean=1.0, stddev=0.5, seed=3))
    again = initializers.get(spec)
    assert (again.mean, again.stddev, again.seed) == (1.0, 0.5, 3)
    assert np.array_equal(again((3, 2)), initializers.RandomNormal(1.0, 0.5, seed=3)((3, 2)))


def test_unknown_initializer_name():
    with pytest.raises(ValueError, match=r"Unknown initializer.*'glorot_sideways'"):
        initializers.get("glorot_sideways")
    with pytest.raises(ValueError, match=r"glorot_sideways"):
        lk.layers.Dense(2, kernel_initializer="glorot_sideways")


def test_bad_seed_type():
    with pytest.raises(TypeError, match=r"seed=1.5"):
        initializers.GlorotUniform(seed=1.5)


@pytest.mark.parametrize(
    ("alias", "cls"),
    [
        ("zeros", initializers.Zeros),
        ("ones", initializers.Ones),
        ("constant", initializers.Constant),
        ("random_normal", initializers.RandomNormal),
        ("random_uniform", initializers.RandomUniform),
        ("variance_scaling", initializers.VarianceScaling),
        ("glorot_uniform", initializers.GlorotUniform),
        ("glorot_normal", initializers.GlorotNormal),
        ("he_uniform", initializers.HeUniform),
        ("he_normal", initializers.HeNormal),
        ("lecun_normal", initializers.LecunNormal),
        ("lecun_uniform", initializers.LecunUniform),
        ("truncated_normal", initializers.TruncatedNormal),
        ("orthogonal", initializers.Orthogonal),
        ("identity", initializers.Identity),
    ],
)
def test_snake_case_names_are_the_classes(alias, cls):
    """As in Keras 3: lk.initializers.he_normal(seed=0) is HeNormal(seed=0)."""
    assert getattr(initializers, alias) is cls
    assert type(initializers.get(alias)) is cls


def test_alias_usage():
    init = initializers.glorot_uniform(seed=3)
    assert np.array_equal(init((4, 2)), initializers.GlorotUniform(seed=3)((4, 2)))
    layer = lk.layers.Dense(2, kernel_initializer=initializers.he_normal(seed=1))
    layer.build((None, 3))
    assert np.array_equal(layer.kernel.value, initializers.HeNormal(seed=1)((3, 2)))
    assert np.array_equal(initializers.constant(1.5)((2,)), [1.5, 1.5])


def test_numpy_scalar_options():
    init = initializers.RandomNormal(mean=np.float32(1.0), stddev=np.float64(0.5), seed=np.int64(3))
    assert (init.mean, init.stddev, init.seed) == (1.0, 0.5, 3)
    assert all(type(v) in (int, float) for v in init.get_config().values())
    json.dumps(initializers.serialize(init))  # numpy scalars would not serialise
    assert initializers.Constant(np.float32(2.5)).value == 2.5
    assert initializers.RandomUniform(np.int64(-1), np.float32(1.0)).minval == -1.0
    assert initializers.VarianceScaling(scale=np.float32(2.0)).scale == 2.0
    assert initializers.GlorotUniform(seed=np.uint8(5)).get_config() == {"seed": 5}


def test_bad_numeric_options():
    with pytest.raises(TypeError, match=r"value='1'"):
        initializers.Constant("1")
    with pytest.raises(ValueError, match=r"stddev >= 0.*stddev=-0.1"):
        initializers.RandomNormal(stddev=-0.1)
    with pytest.raises(ValueError, match=r"minval=inf"):
        initializers.RandomUniform(minval=float("inf"))
    with pytest.raises(ValueError, match=r"scale=0"):
        initializers.VarianceScaling(scale=0)
    with pytest.raises(ValueError, match=r"seed >= 0.*seed=-1"):
        initializers.HeNormal(seed=-1)
