"""Merge layers: shapes and errors, finite-difference gradients (float64) w.r.t. every
input, shared-layer safety, and values and gradients against real Keras 3.

All Keras work runs in ONE subprocess for this module (``KERAS_BACKEND=torch``), which
computes each case's output and, through torch autograd, the gradients of
``sum(y * r)`` w.r.t. every input, in float32 and in float64.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from keras_process import IMPORT_KERAS, run_keras

import layerkit as lk
from layerkit.layers import (
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    MergeLayer,
    Minimum,
    Multiply,
    Subtract,
)

KERAS_SCRIPT = r"""
import json, sys, warnings
folder = sys.argv[1]
{import_keras}
import torch
import numpy as np

warnings.simplefilter("ignore")
job = json.load(open(f"{folder}/job.json"))
arrays = dict(np.load(f"{folder}/job.npz"))
out, info = {}, {"keras_version": keras.__version__, "backend": keras.backend.backend()}

info["cases"] = {}
for name, case in job["cases"].items():
    for dtype in ("float32", "float64"):
        layer = getattr(keras.layers, case["cls"])(**case["kwargs"], dtype=dtype)
        xs = [
            torch.tensor(arrays[f"{name}.x{i}"].astype(dtype), requires_grad=True)
            for i in range(case["n"])
        ]
        y = layer(xs)
        (y * torch.tensor(arrays[f"{name}.r"].astype(dtype))).sum().backward()
        out[f"{name}.{dtype}.y"] = y.detach().cpu().numpy()
        for i, x in enumerate(xs):
            grad = torch.zeros_like(x) if x.grad is None else x.grad
            out[f"{name}.{dtype}.g{i}"] = grad.cpu().numpy()
    symbolic = [[None, *arrays[f"{name}.x{i}"].shape[1:]] for i in range(case["n"])]
    layer = getattr(keras.layers, case["cls"])(**case["kwargs"])
    config = layer.get_config()
    info["cases"][name] = {
        "output_shape": list(layer.compute_output_shape([tuple(s) for s in symbolic])),
        "config": {k: v for k, v in config.items() if k not in ("name", "dtype", "trainable")},
    }

info["errors"] = {}
for name, (cls, kwargs, shapes) in job["errors"].items():
    try:
        getattr(keras.layers, cls)(**kwargs).build([tuple(s) for s in shapes])
        info["errors"][name] = None
    except ValueError as error:
        info["errors"][name] = str(error)

np.savez(f"{folder}/results.npz", **out)
json.dump(info, open(f"{folder}/results.json", "w"))
""".replace("{import_keras}", IMPORT_KERAS)

CLASSES = {
    "Add": Add,
    "Average": Average,
    "Concatenate": Concatenate,
    "Dot": Dot,
    "Maximum": Maximum,
    "Minimum": Minimum,
    "Multiply": Multiply,
    "Subtract": Subtract,
}

# name: (class, kwargs, input shapes, ties). Ties draw small integers, so many elements are
# equal between two or all three inputs; those cases are compared with Keras only.
CASES = {
    "concatenate_axis-1_3d": ("Concatenate", {"axis": -1}, [(3, 2, 4), (3, 2, 5)], False),
    "concatenate_axis1_3d": ("Concatenate", {"axis": 1}, [(3, 2, 4), (3, 5, 4)], False),
    "concatenate_three_2d": ("Concatenate", {}, [(3, 2), (3, 3), (3, 1)], False),
    "add_three": ("Add", {}, [(3, 4), (3, 4), (3, 4)], False),
    "add_broadcast_size1": ("Add", {}, [(3, 4), (3, 1)], False),
    "add_broadcast_rank": ("Add", {}, [(3, 4), (3, 2, 4)], False),
    "subtract": ("Subtract", {}, [(3, 4), (3, 4)], False),
    "subtract_broadcast": ("Subtract", {}, [(3, 2, 4), (3, 4)], False),
    "multiply_two": ("Multiply", {}, [(3, 4), (3, 4)], False),
    "multiply_three": ("Multiply", {}, [(3, 4), (3, 4), (3, 4)], False),
    "multiply_broadcast": ("Multiply", {}, [(3, 5, 1), (3, 4), (3, 5, 4)], False),
    "average_three": ("Average", {}, [(3, 4), (3, 4), (3, 4)], False),
    "average_broadcast": ("Average", {}, [(3, 1), (3, 2, 4)], False),
    "maximum_three": ("Maximum", {}, [(3, 4), (3, 4), (3, 4)], False),
    "minimum_three": ("Minimum", {}, [(3, 4), (3, 4), (3, 4)], False),
    "maximum_broadcast": ("Maximum", {}, [(3, 2, 4), (3, 4)], False),
    "maximum_ties": ("Maximum", {}, [(6, 5), (6, 5), (6, 5)], True),
    "maximum_ties_two": ("Maximum", {}, [(6, 5), (6, 5)], True),
    "maximum_ties_broadcast": ("Maximum", {}, [(6, 5), (6, 1), (6, 2, 5)], True),
    "minimum_ties": ("Minimum", {}, [(6, 5), (6, 5), (6, 5)], True),
    "dot_2d": ("Dot", {"axes": 1}, [(3, 5), (3, 5)], False),
    "dot_2d_negative": ("Dot", {"axes": -1}, [(3, 5), (3, 5)], False),
    "dot_2d_normalize": ("Dot", {"axes": 1, "normalize": True}, [(3, 5), (3, 5)], False),
    "dot_3d_axes2": ("Dot", {"axes": 2}, [(3, 2, 5), (3, 4, 5)], False),
    "dot_3d_axes12": ("Dot", {"axes": (1, 2)}, [(3, 5, 2), (3, 4, 5)], False),
    "dot_3d_axes21_normalize": (
        "Dot",
        {"axes": [2, 1], "normalize": True},
        [(3, 2, 5), (3, 5, 4)],
        False,
    ),
    "dot_3d_negative_pair": ("Dot", {"axes": (-1, -2)}, [(3, 2, 5), (3, 5, 4)], False),
    "dot_2d_3d": ("Dot", {"axes": (1, 2)}, [(3, 5), (3, 4, 5)], False),
    "dot_3d_2d_normalize": ("Dot", {"axes": (2, 1), "normalize": True}, [(3, 2, 5), (3, 5)], False),
    "dot_3d_axes1_normalize": (
        "Dot",
        {"axes": 1, "normalize": True},
        [(3, 4, 2), (3, 4, 3)],
        False,
    ),
}
SMOOTH = [name for name, case in CASES.items() if not case[3]]


def _case_arrays(name: str) -> tuple[list[np.ndarray], np.ndarray]:
    """The float64 inputs and cotangent r of a case (the same on both sides)."""
    cls, kwargs, shapes, ties = CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    if ties:
        xs = [rng.integers(0, 3, size=s).astype(np.float64) for s in shapes]
    else:
        xs = [rng.normal(size=s) for s in shapes]
    layer = CLASSES[cls](**kwargs)
    r = rng.normal(size=layer.compute_output_shape([x.shape for x in xs]))
    return xs, r


# name: (class, kwargs, shapes) that Keras refuses at build, with the message compared.
ERRORS = {
    "concatenate_middle": ("Concatenate", {}, [(None, 2, 3), (None, 4, 4)]),
    "concatenate_axis1": ("Concatenate", {"axis": 1}, [(None, 2, 3), (None, 4, 4)]),
    "concatenate_ranks": ("Concatenate", {}, [(None, 3), (None, 3, 1)]),
    "concatenate_batch": ("Concatenate", {}, [(2, 3), (4, 3)]),
    "add_incompatible": ("Add", {}, [(None, 3), (None, 4)]),
    "add_rank_incompatible": ("Add", {}, [(None, 4), (None, 4, 3)]),
    "add_batch": ("Add", {}, [(1, 3), (2, 3)]),
    "multiply_incompatible": ("Multiply", {}, [(None, 2, 3), (None, 3, 3)]),
    "maximum_incompatible": ("Maximum", {}, [(None, 3), (None, 3), (None, 2)]),
    "subtract_three": ("Subtract", {}, [(None, 3), (None, 3), (None, 3)]),
    "subtract_one": ("Subtract", {}, [(None, 3)]),
    "dot_three": ("Dot", {"axes": 1}, [(None, 3), (None, 3), (None, 3)]),
    "dot_incompatible": ("Dot", {"axes": 1}, [(None, 3), (None, 4)]),
    "dot_incompatible_pair": ("Dot", {"axes": (1, 2)}, [(None, 3, 2), (None, 4, 2)]),
}


# --- running Keras once ------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_merge")
    arrays, job = {}, {"cases": {}, "errors": ERRORS}
    for name, (cls, kwargs, shapes, _) in CASES.items():
        xs, r = _case_arrays(name)
        for i, x in enumerate(xs):
            arrays[f"{name}.x{i}"] = x
        arrays[f"{name}.r"] = r
        job["cases"][name] = {"cls": cls, "kwargs": kwargs, "n": len(shapes)}
    np.savez(folder / "job.npz", **arrays)
    (folder / "job.json").write_text(json.dumps(job))
    run_keras(KERAS_SCRIPT, str(folder), cwd=folder)
    return dict(np.load(folder / "results.npz")), json.loads((folder / "results.json").read_text())


def _layerkit_case(name: str, dtype: str):
    cls, kwargs, _, _ = CASES[name]
    xs, r = _case_arrays(name)
    with lk.backend.floatx_scope(dtype):
        layer = CLASSES[cls](**kwargs)
        xs = [x.astype(dtype) for x in xs]
        layer.build([(None, *x.shape[1:]) for x in xs])
        y, backward = layer.forward(xs, training=True)
        grads = backward((r.astype(dtype)), True)
    return layer, y, grads


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(CASES))
def test_values_and_gradients_match_keras(keras_results, fresh_session, name, dtype):
    numbers = keras_results[0]
    _, y, grads = _layerkit_case(name, dtype)
    expected = numbers[f"{name}.{dtype}.y"]
    # Keras 3.15 on torch computes ops.maximum / minimum / matmul of float64 tensors in
    # float32 (its type promotion reads torch.float64 as a weak type); only the other
    # layers' float64 runs can be compared at float64 precision.
    exact = dtype == "float64" and expected.dtype == np.float64
    assert exact or dtype == "float32" or CASES[name][0] in ("Maximum", "Minimum", "Dot")
    tolerance = {"rtol": 1e-12, "atol": 0} if exact else {"rtol": 1e-6, "atol": 1e-6}
    assert y.shape == expected.shape
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, expected, **tolerance)
    assert len(grads) == len(CASES[name][2])
    for i, g in enumerate(grads):
        expected = numbers[f"{name}.{dtype}.g{i}"]
        assert g.shape == expected.shape
        np.testing.assert_allclose(g, expected, **tolerance, err_msg=f"input {i}")


@pytest.mark.parametrize("name", list(CASES))
def test_output_shape_and_config_match_keras(keras_results, fresh_session, name):
    info = keras_results[1]["cases"][name]
    cls, kwargs, shapes, _ = CASES[name]
    layer = CLASSES[cls](**kwargs)
    layer.build([(None, *s[1:]) for s in shapes])
    assert list(layer.output_shape) == info["output_shape"]
    config = layer.get_config()
    for key, value in info["config"].items():
        assert json.loads(json.dumps(config[key])) == value, key
    assert set(config) - {"name", "trainable", "dtype"} == set(info["config"])


@pytest.mark.parametrize("name", list(ERRORS))
def test_shape_errors_match_keras(keras_results, fresh_session, name):
    cls, kwargs, shapes = ERRORS[name]
    message = keras_results[1]["errors"][name]
    assert message is not None, "Keras accepted these shapes"
    with pytest.raises(ValueError) as error:
        CLASSES[cls](**kwargs).build(shapes)
    assert str(error.value) == message


def test_ties_split_as_torch(keras_results, fresh_session):
    """Three equal inputs: the fold max(max(a, b), c) gives a and b 1/4 each, c 1/2."""
    a = np.array([[1.0, 2.0, 3.0]])
    b = np.array([[1.0, 0.0, 3.0]])
    c = a.copy()
    _, backward = Maximum().forward([a, b, c])
    ga, gb, gc = backward(np.ones((1, 3)), True)
    np.testing.assert_array_equal(ga, [[0.25, 0.5, 0.25]])
    np.testing.assert_array_equal(gb, [[0.25, 0.0, 0.25]])
    np.testing.assert_array_equal(gc, [[0.5, 0.5, 0.5]])
    _, backward = Minimum().forward([a, b])
    ga, gb = backward(np.ones((1, 3)), True)
    np.testing.assert_array_equal(ga, [[0.5, 0.0, 0.5]])
    np.testing.assert_array_equal(gb, [[0.5, 1.0, 0.5]])


def test_maximum_nan_passes_gradient_to_both_operands(fresh_session):
    """As torch: an unordered pair (a NaN) sends the whole gradient to both operands."""
    a = np.array([[1.0, np.nan, 3.0]])
    b = np.array([[1.0, 2.0, np.nan]])
    y, backward = Maximum().forward([a, b])
    np.testing.assert_array_equal(y, [[1.0, np.nan, np.nan]])
    ga, gb = backward(np.ones((1, 3)), True)
    np.testing.assert_array_equal(ga, [[0.5, 1.0, 1.0]])
    np.testing.assert_array_equal(gb, [[0.5, 1.0, 1.0]])


# --- finite differences (float64) ------------------------------------------------------------


@pytest.mark.parametrize("name", SMOOTH)
def test_gradients_match_finite_differences(name, float64, fresh_session, numeric_grad):
    cls, kwargs, _, _ = CASES[name]
    xs, r = _case_arrays(name)
    layer = CLASSES[cls](**kwargs)
    layer.build([(None, *x.shape[1:]) for x in xs])
    y, backward = layer.forward(xs, training=True)
    assert y.dtype == np.float64
    grads = [np.array(g, copy=True) for g in backward(r.copy(), True)]

    def f():
        out, _ = layer.forward(xs, training=True)
        return float(np.sum(out * r))

    for i, x in enumerate(xs):
        np.testing.assert_allclose(
            grads[i], numeric_grad(f, x), rtol=1e-6, atol=1e-8, err_msg=f"input {i}"
        )


def test_normalized_dot_of_tiny_vectors(float64, fresh_session, numeric_grad):
    """A norm below epsilon = 1e-7: Keras caps 1/norm at 1e7, so x -> x * 1e7 is linear
    there; the zero vector gets that finite gradient too (torch's autograd gives NaN)."""
    x = np.array([[3e-9, -4e-9, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 2.0]])
    z = np.array([[1.0, 2.0, 3.0], [1.0, -1.0, 2.0], [2.0, 1.0, 2.0]])
    r = np.array([[1.0], [2.0], [-1.0]])
    layer = Dot(axes=1, normalize=True)
    y, backward = layer.forward([x, z])
    unit_z = z / np.linalg.norm(z, axis=1, keepdims=True)
    np.testing.assert_allclose(y[:, 0], [(x[0] * 1e7) @ unit_z[0], 0.0, 8 / 9], rtol=1e-12)
    gx, gz = backward(r.copy(), True)
    assert np.isfinite(gx).all()
    assert np.isfinite(gz).all()
    np.testing.assert_allclose(gx[:2], r[:2] * unit_z[:2] * 1e7, rtol=1e-12)
    np.testing.assert_array_equal(gz[1], 0.0)

    def f():
        out, _ = layer.forward([x, z])
        return float(np.sum(out * r))

    np.testing.assert_allclose(gz, numeric_grad(f, z), rtol=1e-6, atol=1e-8)
    x_only_tiny = x[:1].copy()
    np.testing.assert_allclose(
        gx[:1],
        numeric_grad(
            lambda: float(layer.forward([x_only_tiny, z[:1]])[0].sum()), x_only_tiny, 1e-12
        ),
        rtol=1e-6,
    )


# --- the protocol: fresh outputs, shared layers, gradient ownership ----------------------------


@pytest.mark.parametrize("cls", ["Add", "Multiply", "Maximum", "Average", "Concatenate"])
def test_a_layer_called_twice_keeps_each_calls_values(cls, float64, fresh_session, rng):
    layer = CLASSES[cls]()
    a, b, c, d = (rng.normal(size=(3, 4)) for _ in range(4))
    y1, back1 = layer.forward([a, b])
    y1_before = y1.copy()
    y2, back2 = layer.forward([c, d])
    assert not np.shares_memory(y1, y2)
    np.testing.assert_array_equal(y1, y1_before)
    r = rng.normal(size=y1.shape)
    # the first call's backward, run after the second forward, still sees a and b
    first = [g.copy() for g in back1(r.copy(), True)]
    second = [g.copy() for g in back2(r.copy(), True)]
    reference = CLASSES[cls]()
    expected_first = reference.forward([a, b])[1](r.copy(), True)
    expected_second = reference.forward([c, d])[1](r.copy(), True)
    for got, expected in zip(first + second, list(expected_first) + list(expected_second)):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("cls", ["Add", "Average", "Maximum", "Multiply"])
def test_returned_gradients_never_share_memory(cls, fresh_session, rng):
    xs = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(3)]
    _, backward = CLASSES[cls]().forward(xs)
    grads = backward(rng.normal(size=(3, 4)).astype(np.float32), True)
    for i in range(len(grads)):
        for j in range(i):
            assert not np.shares_memory(grads[i], grads[j])


def test_concatenate_gradients_are_disjoint_slices(fresh_session, rng):
    xs = [rng.normal(size=(2, 3, k)) for k in (1, 2, 3)]
    _, backward = Concatenate().forward(xs)
    dy = rng.normal(size=(2, 3, 6))
    grads = backward(dy, True)
    np.testing.assert_array_equal(np.concatenate(grads, axis=-1), dy)
    for i in range(3):
        for j in range(i):
            assert not np.shares_memory(grads[i], grads[j])


@pytest.mark.parametrize("cls", list(CLASSES))
def test_backward_without_dx_returns_none(cls, fresh_session, rng):
    layer = CLASSES[cls](axes=1) if cls == "Dot" else CLASSES[cls]()
    y, backward = layer.forward([rng.normal(size=(2, 3)) for _ in range(2)])
    assert backward(rng.normal(size=y.shape), False) is None


def test_call_casts_builds_and_returns_a_new_array(fresh_session):
    layer = Add()
    x = np.ones((2, 3))
    y = layer([x])
    assert y.dtype == np.float32
    assert not np.shares_memory(y, x)
    assert layer.built
    assert layer.input_shape == [(None, 3)]
    assert layer.output_shape == (None, 3)
    np.testing.assert_array_equal(layer([x, 2 * x]), 3 * x)


def test_functional_helpers_compute_at_once(fresh_session, rng):
    a, b, c = (rng.normal(size=(2, 3)).astype(np.float32) for _ in range(3))
    layers = lk.layers
    np.testing.assert_array_equal(layers.add([a, b, c]), Add()([a, b, c]))
    np.testing.assert_array_equal(layers.subtract([a, b]), a - b)
    np.testing.assert_array_equal(layers.multiply([a, b]), a * b)
    np.testing.assert_allclose(layers.average([a, b]), (a + b) / 2)
    np.testing.assert_array_equal(layers.maximum([a, b, c]), np.maximum(np.maximum(a, b), c))
    np.testing.assert_array_equal(layers.minimum([a, b]), np.minimum(a, b))
    np.testing.assert_array_equal(layers.concatenate([a, b], axis=0), np.concatenate([a, b]))
    np.testing.assert_allclose(layers.dot([a, b], axes=1), np.sum(a * b, axis=1, keepdims=True))
    cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(layers.dot([a, b], 1, normalize=True)[:, 0], cosine, rtol=1e-6)
    assert layers.add([a, b], name="total") is not None
    assert lk.layers.Add().name == "add_2"  # the helpers made add and add_1


# --- arguments and shapes ----------------------------------------------------------------------


def test_output_shapes(fresh_session):
    assert Concatenate(axis=1).compute_output_shape([(None, 2, 3), (None, 4, 3)]) == (None, 6, 3)
    assert Concatenate().compute_output_shape([(None, None), (None, 4)]) == (None, None)
    assert Add().compute_output_shape([(None, 4), (None, 2, 4)]) == (None, 2, 4)
    assert Add().compute_output_shape([(5, 1), (None, 4)]) == (5, 4)
    assert Dot(axes=(1, 2)).compute_output_shape([(None, 3), (None, 4, 3)]) == (None, 4)
    assert Dot(axes=1).compute_output_shape([(None, 3), (None, 3)]) == (None, 1)


@pytest.mark.parametrize(
    ("layer", "shapes", "match"),
    [
        (Add(), (None, 3), r"should be called on a list of inputs\. Received: input_shape"),
        (Add(), [], r"list of inputs"),
        (Concatenate(), [(None, 3, 2)], None),
        (Concatenate(axis=3), [(None, 3, 2), (None, 3, 2)], r"axis=3 is out of range"),
        (Dot(axes=0), [(None, 3), (None, 3)], r"Cannot perform batch_dot over axis 0"),
        (Dot(axes=3), [(None, 3), (None, 3)], r"axes=3 is out of range"),
        (Dot(axes=1), [(None,), (None, 3)], r"rank < 2"),
        (Dot(axes=1), [(2, 3), (4, 3)], r"different batch sizes"),
    ],
)
def test_bad_shapes(fresh_session, layer, shapes, match):
    if match is None:
        layer.build(shapes)  # a single input is allowed, as Keras 3
        return
    with pytest.raises(ValueError, match=match):
        layer.build(shapes)


def test_call_checks_inputs(fresh_session):
    with pytest.raises(ValueError, match=r"list of inputs\. Received: inputs=array of shape"):
        Add()(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"different batch sizes"):
        Add()([np.ones((2, 3)), np.ones((3, 3))])
    with pytest.raises(ValueError, match=r"matching shapes except for the concatenation axis"):
        Concatenate()([np.ones((2, 3)), np.ones((3, 3))])
    with pytest.raises(ValueError, match=r"exactly 2 inputs"):
        Subtract()([np.ones((2, 3))] * 3)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"axes": "1"}, TypeError, r"should be a list or an int\. Received: axes='1'"),
        ({"axes": (1, 2, 3)}, ValueError, r"two elements\. Received: axes=\(1, 2, 3\)"),
        ({"axes": (1.0, 2)}, ValueError, r"should be integers\. Received: axes=\(1.0, 2\)"),
        ({"axes": 1, "normalize": 1}, TypeError, r"normalize=1"),
    ],
)
def test_bad_dot_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Dot(**kwargs)


def test_bad_concatenate_axis():
    with pytest.raises(TypeError, match=r"axis=1.5"):
        Concatenate(axis=1.5)


def test_numpy_integer_arguments(fresh_session):
    layer = Dot(axes=(np.int64(1), np.int32(2)))
    assert layer.get_config()["axes"] == [1, 2]
    assert Concatenate(axis=np.int64(1)).get_config()["axis"] == 1
    json.dumps(layer.get_config())


@pytest.mark.parametrize(
    "layer",
    [Concatenate(axis=1), Add(), Subtract(), Multiply(), Average(), Maximum(), Minimum(),
     Dot(axes=(1, 2), normalize=True), Dot(axes=-1)],
)  # fmt: skip
def test_config_round_trip(layer):
    assert isinstance(layer, MergeLayer)
    again = lk.layers.deserialize(json.loads(json.dumps(lk.layers.serialize(layer))))
    assert type(again) is type(layer)
    assert again.get_config() == layer.get_config()
