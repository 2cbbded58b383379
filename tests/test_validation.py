"""The shared checks of numeric options: numpy scalars accepted, clear errors otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit.validation import check_integer, check_number, prediction_pair


@pytest.mark.parametrize("value", [0.5, np.float32(0.5), np.float64(0.5), np.float16(0.5)])
def test_check_number_accepts_python_and_numpy_floats(value):
    result = check_number(value, "rate", minimum=0.0, maximum=1.0, exclusive_maximum=True)
    assert result == 0.5
    assert type(result) is float


@pytest.mark.parametrize("value", [2, np.int64(2), np.uint8(2)])
def test_check_number_accepts_integers(value):
    assert check_number(value, "scale") == 2.0


@pytest.mark.parametrize("value", ["0.5", True, np.bool_(True), None, [0.5], np.array([0.5])])
def test_check_number_refuses_non_numbers(value):
    with pytest.raises(TypeError, match=r"Expected a number for rate. Received: rate="):
        check_number(value, "rate")


@pytest.mark.parametrize(
    ("kwargs", "value", "expected"),
    [
        ({"minimum": 0.0, "maximum": 1.0, "exclusive_maximum": True}, 1.0, r"rate in \[0, 1\)"),
        ({"minimum": 0.0, "exclusive_minimum": True}, 0, r"rate > 0"),
        ({"minimum": 0.0}, -1, r"rate >= 0"),
        ({"maximum": 1.0, "exclusive_maximum": True}, 1.0, r"rate < 1"),
        ({}, float("nan"), r"a finite rate"),
        ({"minimum": 0.0}, np.float32("inf"), r"rate >= 0"),
    ],
)
def test_check_number_ranges(kwargs, value, expected):
    with pytest.raises(ValueError, match=expected + r". Received: rate="):
        check_number(value, "rate", **kwargs)


def test_check_integer():
    assert check_integer(np.int64(3), "units", minimum=1) == 3
    assert type(check_integer(np.int64(3), "units")) is int
    with pytest.raises(TypeError, match=r"units=3.0"):
        check_integer(3.0, "units")
    with pytest.raises(TypeError, match=r"units=True"):
        check_integer(True, "units")
    with pytest.raises(ValueError, match=r"units >= 1. Received: units=0"):
        check_integer(0, "units", minimum=1)


def test_prediction_pair_matches_keras_ranks():
    y, p = prediction_pair([1, 0], np.zeros((2, 1), np.float64))
    assert (y.shape, p.shape, y.dtype, p.dtype) == ((2, 1), (2, 1), np.float64, np.float64)
    y, p = prediction_pair(np.zeros((2, 3, 1)), np.zeros((2, 3)))
    assert (y.shape, p.shape) == ((2, 3), (2, 3))
    y, p = prediction_pair([[1.0]], [[2.0]])  # lists become the default float type
    assert p.dtype == np.float32
