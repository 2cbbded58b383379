"""model.load_weights: selection by regex or list, renaming, all-or-nothing errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

import layerkit as lk

NAMES = ["hidden1", "hidden2", "hidden3", "hidden10", "out"]


# --- local helpers -------------------------------------------------------------------
def make_model(seed: int, units3: int = 16, names=NAMES, input_layer: bool = True):
    """20 -> hidden1 16 -> hidden2 16 -> hidden3 units3 -> hidden10 16 -> out 3."""
    lk.utils.set_random_seed(seed)
    sizes = [16, 16, units3, 16, 3]
    layers = [lk.layers.Input((20,))] if input_layer else []
    layers += [
        lk.layers.Dense(units, activation="relu" if name != names[-1] else None, name=name)
        for name, units in zip(names, sizes, strict=True)
    ]
    return lk.Sequential(layers)


def layer_values(model, name) -> list[np.ndarray]:
    return model.get_layer(name).get_weights()


def snapshot(model) -> dict[str, list[bytes]]:
    return {layer.name: [w.tobytes() for w in layer.get_weights()] for layer in model.layers}


@pytest.fixture
def source_file(tmp_path):
    source = make_model(seed=0)
    path = source.save_weights(tmp_path / "source.weights.h5")
    return source, path


def assert_layer_equal(model, name, source, source_name=None):
    wanted = layer_values(source, source_name or name)
    for got, want in zip(layer_values(model, name), wanted, strict=True):
        assert got.tobytes() == want.tobytes(), name


# --- selection -----------------------------------------------------------------------
def test_regex_uses_fullmatch_and_never_touches_hidden10(source_file):
    source, path = source_file
    target = make_model(seed=1)
    before = snapshot(target)
    pairs = target.load_weights(path, layers="hidden[123]")
    assert pairs == [("hidden1", "hidden1"), ("hidden2", "hidden2"), ("hidden3", "hidden3")]
    for name in ("hidden1", "hidden2", "hidden3"):
        assert_layer_equal(target, name, source)
        assert snapshot(target)[name] != before[name]
    after = snapshot(target)
    assert after["hidden10"] == before["hidden10"]
    assert after["out"] == before["out"]


def test_regex_single_name_is_not_a_prefix(source_file):
    source, path = source_file
    target = make_model(seed=1)
    before = snapshot(target)
    assert target.load_weights(path, layers="hidden1") == [("hidden1", "hidden1")]
    assert_layer_equal(target, "hidden1", source)
    after = snapshot(target)
    assert all(after[n] == before[n] for n in NAMES if n != "hidden1")


def test_regex_with_alternation(source_file):
    source, path = source_file
    target = make_model(seed=1)
    pairs = target.load_weights(path, layers=r"hidden\d+|out")
    assert [p[0] for p in pairs] == NAMES
    for name in NAMES:
        assert_layer_equal(target, name, source)


def test_list_of_names(source_file):
    source, path = source_file
    target = make_model(seed=1)
    before = snapshot(target)
    pairs = target.load_weights(path, layers=["out", "hidden10"])
    # Pairs follow the file's order.
    assert pairs == [("hidden10", "hidden10"), ("out", "out")]
    assert_layer_equal(target, "hidden10", source)
    assert_layer_equal(target, "out", source)
    after = snapshot(target)
    assert all(after[n] == before[n] for n in ("hidden1", "hidden2", "hidden3"))


def test_all_layers_by_default_and_from_a_full_checkpoint(tmp_path):
    source = make_model(seed=0)
    source.compile(optimizer="adam", loss="mse")
    path = source.save(tmp_path / "full.h5")
    target = make_model(seed=1)
    assert target.load_weights(path) == [(n, n) for n in NAMES]
    x = np.random.default_rng(0).normal(size=(8, 20)).astype(np.float32)
    np.testing.assert_array_equal(target.predict(x), source.predict(x))


# --- renaming ------------------------------------------------------------------------
def make_encoder_model(seed: int = 2):
    lk.utils.set_random_seed(seed)
    return lk.Sequential(
        [
            lk.layers.Input((20,)),
            lk.layers.Dense(16, activation="relu", name="encoder"),
            lk.layers.Dense(4, name="head"),
        ]
    )


@pytest.mark.parametrize(
    "rename",
    [
        pytest.param({"hidden1": "encoder"}, id="dict"),
        pytest.param(lambda name: "encoder" if name == "hidden1" else name, id="function"),
    ],
)
def test_rename_reuses_hidden1_as_encoder(source_file, rename):
    source, path = source_file
    target = make_encoder_model()
    head_before = [w.tobytes() for w in target.get_layer("head").get_weights()]
    pairs = target.load_weights(path, layers="hidden1", rename=rename)
    assert pairs == [("hidden1", "encoder")]
    assert_layer_equal(target, "encoder", source, "hidden1")
    assert [w.tobytes() for w in target.get_layer("head").get_weights()] == head_before


def test_rename_key_outside_selection_is_refused(source_file):
    _, path = source_file
    target = make_encoder_model()
    before = snapshot(target)
    with pytest.raises(ValueError, match="hidden2"):
        target.load_weights(
            path, layers="hidden1", rename={"hidden1": "encoder", "hidden2": "head"}
        )
    assert snapshot(target) == before


def test_two_file_layers_into_one_model_layer_is_refused(source_file):
    _, path = source_file
    target = make_model(seed=1)
    before = snapshot(target)
    with pytest.raises(ValueError, match="hidden2") as info:
        target.load_weights(path, layers="hidden[12]", rename=lambda name: "hidden1")
    assert "hidden1" in str(info.value)
    assert snapshot(target) == before


# --- errors, raised before anything changes ------------------------------------------
def test_pattern_matching_nothing_lists_file_names(source_file):
    _, path = source_file
    target = make_model(seed=1)
    before = snapshot(target)
    with pytest.raises(ValueError) as info:
        target.load_weights(path, layers="hidden")  # fullmatch: no layer is called 'hidden'
    message = str(info.value)
    assert "'hidden'" in message
    assert path in message
    for name in NAMES:
        assert repr(name) in message
    assert snapshot(target) == before


def test_list_with_name_not_in_file(source_file):
    _, path = source_file
    target = make_model(seed=1)
    before = snapshot(target)
    with pytest.raises(ValueError, match="hidden4") as info:
        target.load_weights(path, layers=["hidden1", "hidden4"])
    assert "hidden10" in str(info.value)  # the names in the file are listed
    assert snapshot(target) == before


def test_invalid_regex(source_file):
    _, path = source_file
    target = make_model(seed=1)
    with pytest.raises(ValueError, match=re.escape("hidden[12")):
        target.load_weights(path, layers="hidden[12")


def test_selected_layer_missing_from_model(source_file):
    _, path = source_file
    target = make_model(seed=1, names=["hidden1", "hidden2", "hidden3", "hidden4", "out"])
    before = snapshot(target)
    with pytest.raises(ValueError) as info:
        target.load_weights(path)  # hidden1..3 come first in the file and fit
    message = str(info.value)
    assert "'hidden10'" in message
    assert "hidden4" in message  # the model's layers are listed
    assert snapshot(target) == before


def test_shape_mismatch_names_layer_weight_and_both_shapes(source_file):
    _, path = source_file
    target = make_model(seed=1, units3=12)
    before = snapshot(target)
    with pytest.raises(ValueError) as info:
        target.load_weights(path, layers="hidden[13]")
    message = str(info.value)
    assert "hidden3" in message
    assert "kernel" in message
    assert "(16, 12)" in message  # the model's shape
    assert "(16, 16)" in message  # the file's shape
    assert snapshot(target) == before  # hidden1 (first, and fitting) was not restored


def test_skip_mismatch_warns_and_restores_the_rest(source_file):
    source, path = source_file
    target = make_model(seed=1, units3=12)
    before = snapshot(target)
    with pytest.warns(UserWarning, match=r"Skipping layer 'hidden(3|10)'") as record:
        pairs = target.load_weights(path, layers="hidden[0-9]+", skip_mismatch=True)
    # hidden3's kernel (16, 12) and hidden10's kernel (12, 16) do not fit.
    assert pairs == [("hidden1", "hidden1"), ("hidden2", "hidden2")]
    messages = [str(w.message) for w in record]
    assert any("'hidden3'" in m and "(16, 12)" in m for m in messages)
    assert any("'hidden10'" in m and "(12, 16)" in m for m in messages)
    assert_layer_equal(target, "hidden1", source)
    assert_layer_equal(target, "hidden2", source)
    after = snapshot(target)
    for name in ("hidden3", "hidden10", "out"):
        assert after[name] == before[name]


# --- unbuilt models ------------------------------------------------------------------
def test_loading_into_unbuilt_model_builds_it(source_file):
    source, path = source_file
    target = make_model(seed=1, input_layer=False)
    assert not target.built
    pairs = target.load_weights(path)
    assert len(pairs) == 5
    assert target.built
    assert target.input_shape == (None, 20)
    for name in NAMES:
        assert_layer_equal(target, name, source)
    x = np.random.default_rng(3).normal(size=(5, 20)).astype(np.float32)
    np.testing.assert_array_equal(target.predict(x), source.predict(x))


def test_unbuilt_model_without_first_layer_in_selection_is_refused(source_file):
    _, path = source_file
    target = make_model(seed=1, input_layer=False)
    with pytest.raises(ValueError, match="not built"):
        target.load_weights(path, layers="out")


def test_failed_load_leaves_unbuilt_model_unbuilt(source_file):
    _, path = source_file
    target = make_model(
        seed=1, input_layer=False, names=["hidden1", "hidden2", "hidden3", "hidden4", "out"]
    )
    with pytest.raises(ValueError, match="hidden10"):
        target.load_weights(path)
    # All or nothing: the failed call must not have built (and initialised) the model.
    assert not target.built
    assert target.weights == []
