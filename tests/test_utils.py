"""lk.utils.to_categorical: one-hot values, integral floats, and what it refuses."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk

to_categorical = lk.utils.to_categorical


def test_one_hot_values():
    np.testing.assert_array_equal(to_categorical([1, 0, 2]), np.eye(3)[[1, 0, 2]])
    out = to_categorical(np.array([[1], [0]]), num_classes=4)  # a trailing 1 is dropped
    assert out.shape == (2, 4)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.eye(4)[[1, 0]])
    assert to_categorical([[0, 1], [1, 1]]).shape == (2, 2, 2)


def test_integral_floats_work_as_in_keras():
    np.testing.assert_array_equal(to_categorical([0.0, 1.0]), [[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(
        to_categorical(np.array([2.0, 0.0], np.float32), 3), np.eye(3)[[2, 0]]
    )


@pytest.mark.parametrize("num_classes", [np.int64(3), np.int32(3), np.uint8(3), 3])
def test_numpy_integer_num_classes(num_classes):
    np.testing.assert_array_equal(to_categorical([0, 2], num_classes), np.eye(3)[[0, 2]])


def test_fractional_labels_say_the_values_are_wrong():
    """Not "the dtype is wrong": the labels must be whole numbers; show one that is not."""
    with pytest.raises(ValueError, match=r"whole numbers.*Received: 0.5 \(1 of 2 labels"):
        to_categorical([0.5, 1.0])
    with pytest.raises(ValueError, match=r"Received: 2.25 \(2 of 3"):
        to_categorical(np.array([0.0, 2.25, 1.5]))
    with pytest.raises(ValueError, match=r"NaN or infinity"):
        to_categorical([0.0, np.nan])


def test_other_refusals():
    with pytest.raises(TypeError, match=r"dtype <U1"):
        to_categorical(["a", "b"])
    with pytest.raises(TypeError, match=r"dtype bool"):
        to_categorical([True, False])
    with pytest.raises(ValueError, match=r"non-negative.*-1"):
        to_categorical([0, -1])
    with pytest.raises(ValueError, match=r"below num_classes=2.*label 2"):
        to_categorical([0, 2], num_classes=2)
    with pytest.raises(TypeError, match=r"num_classes=3.0"):
        to_categorical([0, 1], num_classes=3.0)
    with pytest.raises(ValueError, match=r"num_classes >= 1.*num_classes=0"):
        to_categorical([0], num_classes=0)
