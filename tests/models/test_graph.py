"""The symbolic record of layer calls and the graph walk (the first step of the Functional
API): ``lk.layers.Input``, layer calls on symbolic tensors, ``map_graph``, and
``Sequential`` started with the tensor of an ``Input``.

Where Keras 3 is the reference (output shapes of symbolic calls, ``model.layers`` order),
the same builder code (``BUILDERS``, written against a ``layers`` namespace that both
``keras.layers`` and ``lk.layers`` provide) runs in ONE Keras subprocess for this module
(``KERAS_BACKEND=torch``) and here on layerkit.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from keras_process import IMPORT_KERAS, run_keras

import layerkit as lk
from layerkit.layers import Dense, Input, InputLayer
from layerkit.models.graph import map_graph
from layerkit.models.node import Node, SymbolicTensor

# --- builders shared with Keras ------------------------------------------------------------

# Each graph builder takes the layers namespace ``L`` and returns (inputs, outputs); every
# layer is named, so that both sides agree without depending on automatic names.
BUILDERS = r'''
def wide_and_deep(L):
    wide = L.Input((5,), name="wide_input")
    deep = L.Input((6,), name="deep_input")
    h1 = L.Dense(30, activation="relu", name="hidden1")(deep)
    h2 = L.Dense(30, activation="relu", name="hidden2")(h1)
    concat = L.concatenate([wide, h2], name="concatenate")
    out = L.Dense(1, name="output")(concat)
    return [wide, deep], [out]


def wide_and_deep_swapped(L):
    (wide, deep), outputs = wide_and_deep(L)
    return [deep, wide], outputs


def two_outputs(L):
    wide = L.Input((5,), name="wide_input")
    deep = L.Input((6,), name="deep_input")
    h1 = L.Dense(30, activation="relu", name="hidden1")(deep)
    h2 = L.Dense(30, activation="relu", name="hidden2")(h1)
    concat = L.concatenate([wide, h2], name="concatenate")
    main = L.Dense(1, name="main_output")(concat)
    aux = L.Dense(1, name="aux_output")(h2)
    return [wide, deep], [main, aux]


def siamese(L):
    left = L.Input((4,), name="left")
    right = L.Input((4,), name="right")
    encoder = L.Dense(3, activation="tanh", name="encoder")
    merged = L.subtract([encoder(left), encoder(right)], name="difference")
    out = L.Dense(1, name="output")(merged)
    return [left, right], [out]


def diamond(L):
    x = L.Input((4,), name="x")
    stem = L.Dense(4, name="stem")(x)
    branch1 = L.Dense(4, name="branch1")(stem)
    branch2 = L.Dense(4, name="branch2b")(L.Dense(4, name="branch2a")(stem))
    out = L.Dense(1, name="output")(L.add([branch1, branch2], name="add"))
    return [x], [out]


def shared_at_two_depths(L):
    # the shared layer's first call is shallower than its second
    a = L.Input((4,), name="a")
    b = L.Input((4,), name="b")
    shared = L.Dense(4, name="shared")
    pre = L.Dense(4, name="pre")(b)
    post = L.Dense(4, name="post")(shared(pre))
    out = L.add([shared(a), post], name="add")
    return [a, b], [out]


def output_feeds_output(L):
    x = L.Input((4,), name="x")
    h1 = L.Dense(8, name="hidden1")(x)
    h2 = L.Dense(8, name="hidden2")(h1)
    out = L.Dense(1, name="output")(h2)
    return [x], [h1, out]


GRAPHS = {
    "wide_and_deep": wide_and_deep,
    "wide_and_deep_swapped": wide_and_deep_swapped,
    "two_outputs": two_outputs,
    "siamese": siamese,
    "diamond": diamond,
    "shared_at_two_depths": shared_at_two_depths,
    "output_feeds_output": output_feeds_output,
}


def shape_calls(L):
    """Symbolic calls of every layer kind; returns {case: output tensor}."""
    x = L.Input((4,), name="x")
    x2 = L.Input((4,), name="x2")
    col = L.Input((1,), name="col")
    v = L.Input((6,), name="v")
    m = L.Input((2, 3), name="m")
    m2 = L.Input((5, 3), name="m2")
    t = L.Input((2, 4), name="t")
    return {
        "dense": L.Dense(3, name="dense")(x),
        "dense_3d": L.Dense(5, name="dense_3d")(m),
        "dropout": L.Dropout(0.5, name="dropout")(m),
        "flatten": L.Flatten(name="flatten")(m),
        "activation": L.Activation("tanh", name="activation")(x),
        "reshape": L.Reshape((3, 2), name="reshape")(v),
        "reshape_infer": L.Reshape((-1, 2), name="reshape_infer")(m),
        "concatenate": L.concatenate([x, v, col], name="concatenate"),
        "concatenate_axis1": L.Concatenate(axis=1, name="concatenate_axis1")([m, m2]),
        "add": L.add([x, x2], name="add"),
        "add_broadcast": L.add([x, col], name="add_broadcast"),
        "add_rank": L.add([x, t], name="add_rank"),
        "subtract": L.subtract([x, x2], name="subtract"),
        "multiply": L.multiply([x, x2, col], name="multiply"),
        "average": L.average([t, x], name="average"),
        "maximum": L.maximum([x, x2, x], name="maximum"),
        "minimum": L.minimum([col, x], name="minimum"),
        "dot": L.dot([x, x2], axes=1, name="dot"),
        "dot_3d": L.dot([m, m2], axes=(2, 2), name="dot_3d"),
        "dot_normalize": L.Dot(axes=-1, normalize=True, name="dot_normalize")([m, m]),
    }
'''

KERAS_SCRIPT = r"""
import json, sys, warnings
{import_keras}
warnings.simplefilter("ignore")
namespace = {}
exec(sys.argv[1], namespace)
L = keras.layers
info = {"keras_version": keras.__version__, "backend": keras.backend.backend()}
info["shapes"] = {k: list(t.shape) for k, t in namespace["shape_calls"](L).items()}
info["layers"] = {}
for name, build in namespace["GRAPHS"].items():
    inputs, outputs = build(L)
    info["layers"][name] = [layer.name for layer in keras.Model(inputs, outputs).layers]
x = keras.Input((4,))
merge = L.Concatenate()
y = merge([x, L.Dense(2)(x)])
info["merge_input_is_list"] = isinstance(merge.input, list)
info["merge_output_is_tensor"] = merge.output is y
keras.utils.clear_session()
info["input_names"] = [L.Input((2,))._keras_history[0].name for _ in range(2)]
keras.utils.clear_session()
info["input_names_after_clear"] = L.Input((2,))._keras_history[0].name
print("RESULT " + json.dumps(info))
""".replace("{import_keras}", IMPORT_KERAS)

_BUILDERS: dict = {}
exec(BUILDERS, _BUILDERS)
GRAPHS = _BUILDERS["GRAPHS"]
shape_calls = _BUILDERS["shape_calls"]


@pytest.fixture(scope="module")
def keras_info(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_graph")
    result = run_keras(KERAS_SCRIPT, BUILDERS, cwd=folder)
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


# --- helpers ---------------------------------------------------------------------------------


def names(layers) -> list[str]:
    return [layer.name for layer in layers]


def check_topological(graph) -> None:
    """Every node once, after its parents; depths consistent; output sinks at depth 0."""
    position = {id(node): i for i, node in enumerate(graph.nodes)}
    assert len(position) == len(graph.nodes), "a node is listed twice"
    for node in graph.nodes:
        for parent in node.parents:
            assert position[id(parent)] < position[id(node)], (parent, node)
            assert graph.depth[parent] >= graph.depth[node] + 1, (parent, node)
    assert set(graph.depth) == set(graph.nodes)
    consumed = {id(parent) for node in graph.nodes for parent in node.parents}
    for output in graph.outputs:
        assert output.node in graph.depth
        if id(output.node) not in consumed:
            assert graph.depth[output.node] == 0, output.name
    for tensor in graph.inputs:
        assert tensor.node in graph.depth
    # each layer of the nodes once in layers, and nothing else
    assert len({id(layer) for layer in graph.layers}) == len(graph.layers)
    assert {id(n.layer) for n in graph.nodes} == {id(layer) for layer in graph.layers}


def wide_and_deep_tensors():
    wide = Input((5,), name="wide_input")
    deep = Input((6,), name="deep_input")
    h1 = Dense(30, name="hidden1")(deep)
    h2 = Dense(30, name="hidden2")(h1)
    out = Dense(1, name="output")(lk.layers.concatenate([wide, h2]))
    return wide, deep, h1, h2, out


# --- 1. Input -------------------------------------------------------------------------------


def test_input_returns_a_symbolic_tensor_with_shape_dtype_and_name(fresh_session):
    x = Input((784,), name="pixels")
    assert isinstance(x, SymbolicTensor)
    assert x.shape == (None, 784)
    assert x.ndim == 2
    assert x.dtype == "float32"
    assert x.name == "pixels"
    image = Input((28, 28), dtype="float64")
    assert image.shape == (None, 28, 28)
    assert image.dtype == "float64"
    assert Input(3).shape == (None, 3)
    with lk.backend.floatx_scope("float64"):
        assert Input((2,)).dtype == "float64"
    assert "shape=(None, 784)" in repr(x)
    assert "pixels" in repr(x)


def test_input_names_are_automatic_and_restart_after_clear_session(fresh_session, keras_info):
    first, second = Input((2,)), Input((2,))
    assert [first.name, second.name] == ["input_layer", "input_layer_1"]
    assert [first.node.layer.name, second.node.layer.name] == keras_info["input_names"]
    lk.utils.clear_session()
    again = Input((2,))
    assert again.name == "input_layer" == keras_info["input_names_after_clear"]


def test_input_tensor_belongs_to_an_input_layer_whose_output_it_is(fresh_session):
    x = Input((4,), name="features")
    layer = x.node.layer
    assert isinstance(layer, InputLayer)
    assert layer.name == "features"
    assert layer.output is x
    assert x.node.inputs == []
    assert x.node.parents == []
    assert x.node.outputs == [x]
    assert x.index == 0
    assert layer.shape == (4,)


def test_input_with_invalid_shapes_raises(fresh_session):
    with pytest.raises(ValueError):
        Input((0,))
    with pytest.raises(ValueError):
        Input((4, -1))
    with pytest.raises(TypeError):
        Input(object())


def test_symbolic_tensor_has_no_values_or_truth_value(fresh_session):
    x = Input((4,))
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(x)
    with pytest.raises(TypeError, match="symbolic"):
        np.array([x], dtype=np.float32)
    with pytest.raises(TypeError, match="symbolic"):
        bool(x)
    with pytest.raises(TypeError, match="symbolic"):
        x.name if x else None
    h = Dense(2)(x)
    with pytest.raises(TypeError, match="symbolic"):
        bool(h)


# --- 2. layer calls on symbolic tensors ----------------------------------------------------


def test_symbolic_output_shapes_match_keras(fresh_session, keras_info):
    tensors = shape_calls(lk.layers)
    assert set(tensors) == set(keras_info["shapes"])
    for case, tensor in tensors.items():
        assert isinstance(tensor, SymbolicTensor), case
        assert list(tensor.shape) == keras_info["shapes"][case], case
        assert tensor.node.layer.name == case
        assert tensor.node.layer.output_shape == tensor.shape, case


def test_symbolic_call_records_a_node(fresh_session):
    x = Input((4,), name="x")
    layer = Dense(3, name="hidden")
    h = layer(x)
    assert isinstance(h.node, Node)
    assert h.node.layer is layer
    assert h.node.inputs == [x]
    assert h.node.parents == [x.node]
    assert h.node.outputs == [h]
    assert h.index == 0
    assert h.node.index == 0
    assert h.name == "hidden/output"
    assert h.dtype == "float32"
    assert "hidden" in repr(h.node)


def test_symbolic_call_builds_the_layer(fresh_session):
    dense = Dense(3, name="hidden")
    assert not dense.built
    assert dense.weights == []
    dense(Input((4,)))
    assert dense.built
    assert dense.input_shape == (None, 4)
    assert dense.output_shape == (None, 3)
    assert [w.shape for w in dense.get_weights()] == [(4, 3), (3,)]
    assert dense.count_params() == 15
    # the built layer computes on arrays as before
    y = dense(np.ones((2, 4), np.float32))
    kernel, bias = dense.get_weights()
    np.testing.assert_allclose(y, np.ones((2, 4)) @ kernel + bias, rtol=1e-6)

    merge = lk.layers.Concatenate()
    merge([Input((2,)), Input((3,))])
    assert merge.built
    assert merge.input_shape == [(None, 2), (None, 3)]
    assert merge.output_shape == (None, 5)


def test_layer_input_and_output_are_the_first_call(fresh_session):
    x = Input((4,), name="x")
    dense = Dense(3)
    h = dense(x)
    assert dense.input is x
    assert dense.output is h
    x2 = Input((4,))
    dense(x2)
    assert dense.input is x
    assert dense.output is h
    flatten = lk.layers.Flatten()
    f = flatten(Input((2, 2)))
    assert flatten.output is f


def test_merge_layer_input_is_a_list(fresh_session, keras_info):
    a, b = Input((2,)), Input((3,))
    merge = lk.layers.Concatenate()
    y = merge([a, b])
    assert keras_info["merge_input_is_list"]
    assert isinstance(merge.input, list)
    assert merge.input[0] is a
    assert merge.input[1] is b
    assert y.node.inputs == [a, b]
    assert y.node.listed


def test_merge_layer_output_is_the_tensor_as_in_keras(fresh_session, keras_info):
    a, b = Input((2,)), Input((3,))
    merge = lk.layers.Concatenate()
    y = merge([a, b])
    assert keras_info["merge_output_is_tensor"]
    # Keras returns the output tensor itself (one output), not a list of it
    assert merge.output is y


def test_shared_layer_records_two_nodes_and_one_set_of_weights(fresh_session):
    left, right = Input((4,), name="left"), Input((4,), name="right")
    encoder = Dense(3, name="encoder")
    assert not encoder.built
    a, b = encoder(left), encoder(right)
    assert a is not b
    assert a.node is not b.node
    assert a.node.layer is encoder
    assert b.node.layer is encoder
    assert (a.node.index, b.node.index) == (0, 1)
    assert a.node.inputs == [left]
    assert b.node.inputs == [right]
    assert a.name == "encoder/output"
    assert b.name == "encoder/output_1"
    assert a.shape == b.shape == (None, 3)
    assert len(encoder.weights) == 2
    assert [w.shape for w in encoder.get_weights()] == [(4, 3), (3,)]
    assert encoder.input is left
    assert encoder.output is a


def test_shared_merge_layer_records_two_nodes(fresh_session):
    x, y, z = Input((2,)), Input((2,)), Input((2,))
    add = lk.layers.Add()
    first, second = add([x, y]), add([y, z])
    assert first.node is not second.node
    assert (first.node.index, second.node.index) == (0, 1)
    assert second.node.inputs == [y, z]
    assert add.input == [x, y]


def test_built_layer_called_on_another_shape_raises(fresh_session):
    dense = Dense(3, name="encoder")
    dense(Input((4,)))
    with pytest.raises(ValueError) as error:
        dense(Input((5,)))
    message = str(error.value)
    assert "encoder" in message
    assert "(None, 4)" in message
    assert "(None, 5)" in message
    assert len(dense._inbound_nodes) == 1  # nothing recorded
    # a layer built by an array call checks symbolic calls too
    eager = Dense(2, name="eager")
    eager(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match=r"eager.*\(None, 3\).*\(None, 6\)"):
        eager(Input((6,)))


def test_single_input_layer_on_a_list_raises_suggesting_a_merge_layer(fresh_session):
    a, b = Input((4,)), Input((4,))
    dense = Dense(3, name="hidden")
    with pytest.raises(TypeError, match="merge layer") as error:
        dense([a, b])
    assert "hidden" in str(error.value)
    assert not dense._inbound_nodes


def test_merge_layer_on_tensors_and_arrays_raises(fresh_session):
    a = Input((4,))
    with pytest.raises(TypeError, match="mixing"):
        lk.layers.add([a, np.ones((2, 4), np.float32)])
    with pytest.raises(TypeError):
        lk.layers.Concatenate()([np.ones((2, 4), np.float32), a])


def test_merge_layer_on_one_tensor_raises(fresh_session):
    with pytest.raises(ValueError, match="list"):
        lk.layers.Add()(Input((4,)))


def test_never_called_layer_has_no_input_or_output(fresh_session):
    dense = Dense(3, name="lonely")
    with pytest.raises(AttributeError, match="lonely"):
        dense.output
    with pytest.raises(AttributeError, match="lonely"):
        dense.input
    # an array call is not a symbolic call
    dense(np.ones((2, 4), np.float32))
    with pytest.raises(AttributeError):
        dense.output


# --- 3. map_graph -----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(GRAPHS))
def test_layers_order_matches_keras(fresh_session, keras_info, name):
    inputs, outputs = GRAPHS[name](lk.layers)
    graph = map_graph(inputs, outputs)
    assert names(graph.layers) == keras_info["layers"][name]
    assert graph.inputs == tuple(inputs)
    assert graph.outputs == tuple(outputs)
    check_topological(graph)


def test_wide_and_deep_layers_and_nodes(fresh_session):
    wide, deep, _h1, _h2, out = wide_and_deep_tensors()
    graph = map_graph([wide, deep], [out])
    expected = ["deep_input", "hidden1", "wide_input", "hidden2", "concatenate", "output"]
    assert names(graph.layers) == expected
    assert len(graph.nodes) == 6
    assert graph.depth[out.node] == 0
    assert graph.depth[deep.node] == 4
    assert graph.depth[wide.node] == 2
    check_topological(graph)
    # the other order of inputs: the same layers, the inputs as given
    swapped = map_graph([deep, wide], [out])
    assert names(swapped.layers) == expected
    assert swapped.inputs == (deep, wide)
    check_topological(swapped)
    # tuples work as lists
    assert names(map_graph((wide, deep), (out,)).layers) == expected


def test_two_outputs(fresh_session):
    inputs, (main, aux) = GRAPHS["two_outputs"](lk.layers)
    graph = map_graph(inputs, [main, aux])
    assert graph.depth[main.node] == 0
    assert graph.depth[aux.node] == 0
    assert graph.outputs == (main, aux)
    check_topological(graph)
    assert set(names(map_graph(inputs, [aux, main]).layers)) == set(names(graph.layers))


def test_siamese_shared_encoder_appears_once_with_two_nodes(fresh_session):
    (left, right), (out,) = GRAPHS["siamese"](lk.layers)
    graph = map_graph([left, right], [out])
    assert names(graph.layers).count("encoder") == 1
    encoder_nodes = [n for n in graph.nodes if n.layer.name == "encoder"]
    assert len(encoder_nodes) == 2
    assert {id(n.inputs[0]) for n in encoder_nodes} == {id(left), id(right)}
    assert len(graph.nodes) == 6
    check_topological(graph)


def test_diamond_visits_the_shared_tensor_once(fresh_session):
    (x,), (out,) = GRAPHS["diamond"](lk.layers)
    graph = map_graph([x], [out])
    assert [n.layer.name for n in graph.nodes].count("stem") == 1
    assert len(graph.nodes) == 7
    stem = next(n for n in graph.nodes if n.layer.name == "stem")
    assert graph.depth[stem] == 4  # the longer branch
    check_topological(graph)


def test_deep_chain_of_2000_layers_is_walked_without_recursion(fresh_session):
    x = Input((1,), name="x")
    h = x
    for i in range(2000):
        h = Dense(1, name=f"d{i}")(h)
    start = time.perf_counter()
    graph = map_graph([x], [h])
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0
    assert names(graph.layers) == ["x", *(f"d{i}" for i in range(2000))]
    assert [n.layer.name for n in graph.nodes] == names(graph.layers)
    assert graph.depth[x.node] == 2000
    assert graph.depth[h.node] == 0
    check_topological(graph)


def test_graph_from_an_intermediate_output(fresh_session):
    _wide, deep, _h1, h2, _out = wide_and_deep_tensors()
    graph = map_graph([deep], [h2])
    assert names(graph.layers) == ["deep_input", "hidden1", "hidden2"]
    check_topological(graph)


def test_disconnected_graph_raises_naming_the_missing_input(fresh_session):
    wide, deep, _h1, _h2, out = wide_and_deep_tensors()
    with pytest.raises(ValueError, match=r"(?i)disconnected") as error:
        map_graph([deep], [out])
    assert "wide_input" in str(error.value)
    with pytest.raises(ValueError, match=r"(?i)disconnected") as error:
        map_graph([wide], [out])
    assert "deep_input" in str(error.value)


def test_input_not_from_input_raises(fresh_session):
    wide, _deep, h1, _h2, out = wide_and_deep_tensors()
    with pytest.raises(ValueError, match="Input") as error:
        map_graph([wide, h1], [out])
    assert "hidden1" in str(error.value)


def test_input_given_twice_raises(fresh_session):
    x = Input((4,), name="x")
    out = Dense(1)(x)
    with pytest.raises(ValueError, match="once"):
        map_graph([x, x], [out])


def test_unused_input_raises_naming_it(fresh_session):
    x = Input((4,), name="x")
    extra = Input((4,), name="extra")
    out = Dense(1)(x)
    with pytest.raises(ValueError, match="extra"):
        map_graph([x, extra], [out])


def test_two_layers_with_one_name_raise_naming_it(fresh_session):
    x = Input((4,), name="x")
    h = Dense(4, name="twin")(x)
    out = Dense(1, name="twin")(h)
    with pytest.raises(ValueError, match="twin"):
        map_graph([x], [out])
    # an input named like a layer
    y = Input((4,), name="clash")
    with pytest.raises(ValueError, match="clash"):
        map_graph([y], [Dense(1, name="clash")(y)])


def test_non_tensor_inputs_or_outputs_raise_type_error(fresh_session):
    x = Input((4,), name="x")
    out = Dense(1)(x)
    with pytest.raises(TypeError, match="inputs"):
        map_graph([np.ones((2, 4))], [out])
    with pytest.raises(TypeError, match="outputs"):
        map_graph([x], [np.ones((2, 1))])
    with pytest.raises(TypeError):
        map_graph([x], [None])
    with pytest.raises(TypeError):
        map_graph([x.node.layer], [out])  # the InputLayer, not its tensor


def test_empty_inputs_or_outputs_raise(fresh_session):
    x = Input((4,), name="x")
    out = Dense(1)(x)
    with pytest.raises(ValueError, match="inputs"):
        map_graph([], [out])
    with pytest.raises(ValueError, match="outputs"):
        map_graph([x], [])


def test_cycle_is_refused(fresh_session):
    # layer calls cannot make a cycle; rewire a recorded call to make one
    x = Input((4,), name="x")
    h1 = Dense(4, name="first")(x)
    h2 = Dense(4, name="second")(h1)
    h1.node.inputs[0] = h2
    with pytest.raises(ValueError, match="cycle"):
        map_graph([x], [h2])


def test_map_graph_changes_nothing(fresh_session):
    wide, deep, h1, h2, out = wide_and_deep_tensors()
    before = [(t.node, list(t.node.inputs)) for t in (wide, deep, h1, h2, out)]
    first = map_graph([wide, deep], [out])
    second = map_graph([wide, deep], [out])
    assert first.nodes == second.nodes
    assert first.layers == second.layers
    assert [(t.node, list(t.node.inputs)) for t in (wide, deep, h1, h2, out)] == before


# --- 4. Sequential with Input ---------------------------------------------------------


def test_sequential_accepts_the_tensor_of_an_input(fresh_session):
    model = lk.Sequential([Input((4,), name="features"), Dense(3, name="out")])
    assert model.built
    assert model.input_shape == (None, 4)
    assert model.output_shape == (None, 3)
    assert names(model.layers) == ["out"]
    assert not any(isinstance(layer, InputLayer) for layer in model.layers)
    assert model.count_params() == 15
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    y = model.predict(x)
    kernel, bias = model.get_layer("out").get_weights()
    assert y.shape == (5, 3)
    np.testing.assert_allclose(y, x @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_sequential_add_accepts_the_tensor_of_an_input(fresh_session):
    model = lk.Sequential()
    model.add(Input((4,)))
    assert model.built
    assert model.input_shape == (None, 4)
    model.add(Dense(2, name="out"))
    assert model.output_shape == (None, 2)
    assert names(model.layers) == ["out"]
    assert model.predict(np.ones((3, 4), np.float32)).shape == (3, 2)


def test_sequential_with_input_not_first_raises(fresh_session):
    with pytest.raises(ValueError, match="first"):
        lk.Sequential([Dense(3), Input((4,))])
    model = lk.Sequential([Input((4,)), Dense(3)])
    with pytest.raises(ValueError, match="first"):
        model.add(Input((3,)))


def test_sequential_refuses_other_symbolic_tensors(fresh_session):
    h = Dense(3)(Input((4,)))
    with pytest.raises(TypeError, match="Layer"):
        lk.Sequential([h])
