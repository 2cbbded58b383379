"""The frozen-output cache: same numbers as without it, activation rules, invalidation."""

from __future__ import annotations

import numpy as np
import pytest

import layerkit as lk
import layerkit.models.trainer as trainer_module
from layerkit.models.frozen_cache import FrozenOutputCache


# --- local helpers -------------------------------------------------------------------
def make_data(n: int = 320, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20)).astype(np.float32)
    y = np.argmax(x[:, :3] + 0.3 * rng.normal(size=(n, 3)), axis=1).astype(np.int64)
    return x, y


def make_model(seed: int = 0, dropout_at: int | None = None, frozen="hidden[12]"):
    """Input(20) -> hidden1 16 -> hidden2 16 -> hidden3 8 -> out 3, optional Dropout
    inserted before position ``dropout_at`` of the computing layers."""
    lk.utils.set_random_seed(seed)
    layers = [
        lk.layers.Dense(16, activation="relu", name="hidden1"),
        lk.layers.Dense(16, activation="tanh", name="hidden2"),
        lk.layers.Dense(8, activation="relu", name="hidden3"),
        lk.layers.Dense(3, name="out"),
    ]
    if dropout_at is not None:
        layers.insert(dropout_at, lk.layers.Dropout(0.3, name="drop", seed=77))
    model = lk.Sequential([lk.layers.Input((20,)), *layers])
    model.compile(
        optimizer=lk.optim.Adam(learning_rate=0.01),
        loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    if frozen:
        model.freeze(frozen)
    return model


def train(cache_frozen, callbacks=None, epochs: int = 3, validation: bool = True, **kwargs):
    x, y = make_data()
    model = make_model(**kwargs)
    history = model.fit(
        x[:256],
        y[:256],
        batch_size=32,
        epochs=epochs,
        verbose=0,
        callbacks=callbacks or [],
        validation_data=(x[256:], y[256:]) if validation else None,
        cache_frozen=cache_frozen,
    )
    return model, history.history


def assert_same_training(a, b, atol=1e-5):
    (model_a, history_a), (model_b, history_b) = a, b
    for wa, wb in zip(model_a.get_weights(), model_b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=0, atol=atol)
    assert history_a.keys() == history_b.keys()
    for key in history_a:
        np.testing.assert_allclose(
            history_a[key], history_b[key], rtol=1e-5, atol=1e-6, err_msg=key
        )


@pytest.fixture
def caches(monkeypatch):
    """Records every FrozenOutputCache that fit creates."""
    created: list[FrozenOutputCache] = []

    class Recording(FrozenOutputCache):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.starts: list[int] = []
            created.append(self)

        def training_inputs(self):
            # In a stack, the cache's one slot is the index of the first layer to run.
            sources, features = super().training_inputs()
            self.starts.append(0 if sources is None else sources[0])
            return sources, features

    monkeypatch.setattr(trainer_module, "FrozenOutputCache", Recording)
    return created


def count_training_forwards(model, name: str) -> list[int]:
    """Counts calls of ``name``'s forward with training=True (training steps)."""
    layer = model.get_layer(name)
    calls = [0]
    original = layer.forward

    def forward(x, training=False, **kwargs):
        if training:
            calls[0] += 1
        return original(x, training, **kwargs)

    layer.forward = forward
    return calls


# --- same numbers ----------------------------------------------------------------------
def test_cached_and_uncached_training_agree(caches):
    cached = train(True)
    uncached = train(False)
    auto = train("auto")
    assert_same_training(cached, uncached)
    assert_same_training(auto, uncached)
    assert set(cached[1]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    # The frozen layers did not move, the others did.
    start = make_model()
    for name in ("hidden1", "hidden2"):
        for a, b in zip(
            cached[0].get_layer(name).get_weights(),
            start.get_layer(name).get_weights(),
            strict=True,
        ):
            assert np.array_equal(a, b)
    assert not np.allclose(
        cached[0].get_layer("out").get_weights()[0], start.get_layer("out").get_weights()[0]
    )
    # True and "auto" cached (once per fit), False did not.
    assert [c.computed for c in caches] == [1, 0, 1]
    assert set(caches[0].starts) == {2}
    assert set(caches[1].starts) == {0}


def test_validation_metrics_equal_with_and_without_cache():
    x, y = make_data()
    results = []
    for cache_frozen in (True, False):
        model = make_model()
        history = model.fit(
            x[:256],
            y[:256],
            batch_size=32,
            epochs=2,
            verbose=0,
            validation_split=0.25,
            cache_frozen=cache_frozen,
        )
        results.append((history.history, model.evaluate(x[256:], y[256:], return_dict=True)))
    (history_cached, with_cache), (history_plain, without_cache) = results
    for key in ("val_loss", "val_accuracy"):
        assert len(history_cached[key]) == 2
        np.testing.assert_allclose(history_cached[key], history_plain[key], rtol=1e-5)
    assert with_cache.keys() == without_cache.keys() == {"loss", "accuracy"}
    assert with_cache["loss"] == pytest.approx(without_cache["loss"], rel=1e-5)
    assert with_cache["accuracy"] == without_cache["accuracy"]


# --- when the cache is used ----------------------------------------------------------------
def test_auto_activates_when_bottom_layers_are_frozen(caches):
    x, y = make_data()
    model = make_model()
    bottom = count_training_forwards(model, "hidden1")
    top = count_training_forwards(model, "hidden3")
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, cache_frozen="auto")
    assert bottom[0] == 0  # hidden1 never ran in a training step
    assert top[0] == 2 * 10
    assert caches[-1].computed == 1
    assert set(caches[-1].starts) == {2}


def test_auto_inactive_when_cache_would_exceed_budget(caches):
    x, y = make_data()
    model = make_model()
    bottom = count_training_forwards(model, "hidden1")
    # 320 rows x 16 floats x 4 bytes = 20480 bytes needed.
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, cache_frozen="auto", cache_max_bytes=20479)
    assert bottom[0] == 2 * 10
    assert caches[-1].computed == 0
    assert set(caches[-1].starts) == {0}
    model = make_model()
    bottom = count_training_forwards(model, "hidden1")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, cache_frozen="auto", cache_max_bytes=20480)
    assert bottom[0] == 0
    assert caches[-1].computed == 1


def test_auto_inactive_when_bottom_layer_trainable(caches):
    x, y = make_data()
    model = make_model(frozen="hidden[23]")  # hidden1 trainable: nothing to cache
    bottom = count_training_forwards(model, "hidden1")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, cache_frozen="auto")
    assert bottom[0] == 10
    assert caches[-1].computed == 0


def test_true_without_frozen_bottom_is_an_error():
    x, y = make_data()
    model = make_model(frozen="hidden3")
    before = [w.tobytes() for w in model.get_weights()]
    with pytest.raises(ValueError, match="frozen"):
        model.fit(x, y, epochs=1, verbose=0, cache_frozen=True)
    assert [w.tobytes() for w in model.get_weights()] == before


def test_invalid_cache_arguments():
    x, y = make_data()
    model = make_model()
    with pytest.raises(ValueError, match="cache_frozen"):
        model.fit(x, y, verbose=0, cache_frozen="yes")
    with pytest.raises(ValueError, match="cache_max_bytes"):
        model.fit(x, y, verbose=0, cache_max_bytes=-1)


# --- Dropout ---------------------------------------------------------------------------
def test_true_with_dropout_inside_frozen_run_explains_why():
    x, y = make_data()
    model = make_model(dropout_at=1)  # hidden1, drop, hidden2 (frozen), hidden3, out
    before = [w.tobytes() for w in model.get_weights()]
    with pytest.raises(ValueError) as info:
        model.fit(x, y, epochs=1, verbose=0, cache_frozen=True)
    message = str(info.value)
    assert "'drop'" in message
    assert "Dropout" in message
    assert "training" in message
    assert [w.tobytes() for w in model.get_weights()] == before


def test_auto_with_dropout_inside_frozen_run_trains_correctly(caches):
    cached = train("auto", dropout_at=1)
    uncached = train(False, dropout_at=1)
    assert_same_training(cached, uncached)
    # Only hidden1 (below the Dropout) was cached.
    assert caches[0].computed == 1
    assert set(caches[0].starts) == {1}


def test_true_with_dropout_above_frozen_run(caches):
    """Dropout between the frozen layers and the first trainable one (the usual transfer
    learning head) is above the frozen run: caching below it changes nothing."""
    cached = train(True, dropout_at=2)  # hidden1, hidden2 (frozen), drop, hidden3, out
    uncached = train(False, dropout_at=2)
    assert_same_training(cached, uncached)
    assert set(caches[0].starts) == {2}


# --- invalidation ------------------------------------------------------------------------
class Meddler(lk.callbacks.Callback):
    """Changes the frozen part of the model at given training steps."""

    def __init__(self, hook: str, actions: dict[int, str], weights_file: str | None = None):
        super().__init__()
        self.hook, self.actions, self.weights_file = hook, actions, weights_file
        self.step = 0

    def _act(self):
        self.step += 1
        action = self.actions.get(self.step)
        if action == "set_weights":
            layer = self.model.get_layer("hidden1")
            layer.set_weights([w * 0.5 + 0.01 for w in layer.get_weights()])
        elif action == "load_weights":
            self.model.load_weights(self.weights_file, layers="hidden2")
        elif action == "unfreeze":
            self.model.unfreeze("hidden1")
        elif action == "freeze":
            self.model.freeze("hidden1")

    def on_train_batch_begin(self, batch, logs=None):
        if self.hook == "batch_begin":
            self._act()

    def on_train_batch_end(self, batch, logs=None):
        if self.hook == "batch_end":
            self._act()

    def on_epoch_begin(self, epoch, logs=None):
        if self.hook == "epoch_begin":
            self._act()


@pytest.fixture
def other_weights(tmp_path):
    return make_model(seed=42, frozen=None).save_weights(tmp_path / "other.h5")


ACTIONS = {
    "set_weights": {5: "set_weights"},
    "load_weights": {3: "load_weights"},
    "unfreeze": {12: "unfreeze"},
    "mixed": {3: "set_weights", 9: "unfreeze", 14: "freeze", 20: "load_weights"},
}


@pytest.mark.parametrize("hook", ["batch_end", "epoch_begin", "batch_begin"])
@pytest.mark.parametrize("scenario", list(ACTIONS))
def test_changes_to_frozen_layers_invalidate_the_cache(caches, other_weights, hook, scenario):
    actions = ACTIONS[scenario]
    if hook == "epoch_begin":  # steps count epochs here
        actions = {2: actions[min(actions)]}
    runs = {}
    for cache_frozen in (True, False):
        meddler = Meddler(hook, actions, other_weights)
        runs[cache_frozen] = train(cache_frozen, callbacks=[meddler])
    assert_same_training(runs[True], runs[False])
    if scenario in ("set_weights", "load_weights"):
        assert caches[0].computed == 2  # computed at the start, recomputed once
    # Sanity: the change did matter.
    undisturbed = train(False)
    assert not np.allclose(
        undisturbed[0].get_weights()[-2], runs[False][0].get_weights()[-2], atol=1e-4
    )
