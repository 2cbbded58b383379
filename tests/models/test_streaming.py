"""Streaming inputs to ``fit``, ``evaluate`` and ``predict``: arrays on disk (h5py,
np.memmap), generators and ``lk.utils.PyDataset``.

Each kind trains with the numbers of the equivalent in-memory arrays (and of real Keras
3 for generators and PyDatasets); bad batches are refused with a message naming the
batch, the model keeps the weights of the last step, and a mid-epoch backup resumes at
the right batch."""

from __future__ import annotations

import os
import re
import warnings

import h5py
import numpy as np
import pytest

import layerkit as lk
from layerkit.models import disk

N, FEATURES, CLASSES, BATCH = 90, 6, 3, 16


@pytest.fixture
def xy(rng):
    x = rng.normal(size=(N, FEATURES)).astype("float32")
    y = rng.integers(0, CLASSES, size=N)
    return x, y


@pytest.fixture
def h5(tmp_path, xy):
    """The data in an HDF5 file, chunked by 8 rows (so chunk-shuffling has blocks)."""
    x, y = xy
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f.create_dataset("x", data=x, chunks=(8, FEATURES))
        f.create_dataset("y", data=y, chunks=(8,))
        f.create_dataset("x64", data=x.astype("float64"), chunks=(8, FEATURES))
    f = h5py.File(tmp_path / "data.h5", "r")
    yield f
    f.close()


def mlp(seed=3, weights=None):
    lk.utils.clear_session()  # the same layer names (a backup is matched by name)
    lk.utils.set_random_seed(seed)
    model = lk.Sequential(
        [
            lk.layers.Input((FEATURES,)),
            lk.layers.Dense(7, activation="relu"),
            lk.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    if weights is not None:
        model.set_weights(weights)
    model.compile(lk.optim.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def same_weights(a, b, atol=0.0):
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(u, v, rtol=0, atol=atol)


def batches_of(x, y, w=None, batch=BATCH, order=None):
    order = np.arange(len(x)) if order is None else order
    for lo in range(0, len(x), batch):
        idx = order[lo : lo + batch]
        yield (x[idx], y[idx]) if w is None else (x[idx], y[idx], w[idx])


class Batches(lk.utils.PyDataset):
    def __init__(self, x, y, batch=BATCH, w=None, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.w, self.batch = x, y, w, batch
        self.epochs_ended = 0
        self.calls: list[int] = []

    def __len__(self):
        return -(-len(self.x) // self.batch)

    def __getitem__(self, i):
        self.calls.append(i)
        rows = slice(i * self.batch, (i + 1) * self.batch)
        if self.w is None:
            return self.x[rows], self.y[rows]
        return self.x[rows], self.y[rows], self.w[rows]

    def on_epoch_end(self):
        self.epochs_ended += 1


# --- arrays on disk -------------------------------------------------------------------
@pytest.mark.parametrize("shuffle", [False, "batch"])
@pytest.mark.parametrize("where", ["h5py", "h5py-float64", "memmap"])
def test_arrays_on_disk_train_as_arrays_in_memory(tmp_path, xy, h5, shuffle, where, monkeypatch):
    x, y = xy
    # Small windows: several per epoch, read ahead by the thread, batches across windows.
    monkeypatch.setattr(disk, "WINDOW_BYTES", 40 * FEATURES * 4)
    if where == "memmap":
        mm = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.float32, x.shape)
        mm[:] = x
        mm.flush()
        x_disk = np.load(tmp_path / "x.npy", mmap_mode="r")
        y_disk = y
    else:
        x_disk, y_disk = h5["x64" if where.endswith("float64") else "x"], h5["y"]
    ours, reference = mlp(), mlp()
    h = ours.fit(x_disk, y_disk, batch_size=BATCH, epochs=3, shuffle=shuffle, verbose=0)
    r = reference.fit(x, y, batch_size=BATCH, epochs=3, shuffle=shuffle, verbose=0)
    assert h.history == r.history
    same_weights(ours, reference)
    assert ours.evaluate(x_disk, y_disk, batch_size=32) == reference.evaluate(x, y, batch_size=32)
    np.testing.assert_array_equal(ours.predict(x_disk), reference.predict(x))


def test_shuffle_batch_is_keras_within_batch_shuffle(xy):
    """shuffle="batch": each batch holds the same rows as unshuffled, in another order."""
    rng = np.random.default_rng(0)
    order = disk.batch_shuffled_order(rng, N, BATCH)
    for lo in range(0, N, BATCH):
        assert sorted(order[lo : lo + BATCH]) == list(range(lo, min(N, lo + BATCH)))
    assert not np.array_equal(order, np.arange(N))


def test_chunk_shuffled_order_reads_whole_blocks_per_window():
    order, windows = disk.chunk_shuffled_order(np.random.default_rng(1), 1000, 64, 256)
    assert sorted(order) == list(range(1000))  # every row once per epoch
    assert windows[0] == (0, 256)
    assert windows[-1][1] == 1000
    for lo, hi in windows:
        blocks = set(order[lo:hi] // 64)
        assert len(blocks) <= 4  # the window holds whole blocks only
        assert sum(min(1000, (b + 1) * 64) - b * 64 for b in blocks) == hi - lo


def test_chunk_shuffled_fit_is_the_training_on_that_order(xy, h5, monkeypatch):
    """shuffle=True on disk: the model sees the chunk-shuffled order drawn from its
    shuffling generator, with the numbers of in-memory batches in that order."""
    x, y = xy
    monkeypatch.setattr(disk, "WINDOW_BYTES", 24 * FEATURES * 4)  # 3 blocks of 8 rows
    ours = mlp()
    state = ours._shuffle_rng.bit_generator.state
    ours.fit(h5["x"], y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    order, _ = disk.chunk_shuffled_order(rng, N, 8, 24)
    assert not np.array_equal(order, np.arange(N))
    reference = mlp()
    reference.fit(batches_of(x, y, order=order), epochs=1, verbose=0)
    same_weights(ours, reference)


def test_disk_data_with_validation_split_and_sample_weight(xy, h5, rng):
    x, y = xy
    w = rng.uniform(0.1, 2.0, size=N).astype("float32")
    ours, reference = mlp(), mlp()
    args = dict(batch_size=BATCH, epochs=2, validation_split=0.25, shuffle=False, verbose=0)
    h = ours.fit(h5["x"], h5["y"], sample_weight=w, **args)
    r = reference.fit(x, y, sample_weight=w, **args)
    assert h.history == r.history
    same_weights(ours, reference)


def test_disk_input_of_wrong_shape_is_refused_before_reading(tmp_path):
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["x"] = np.zeros((10, FEATURES + 1), np.float32)
        f["s"] = np.array([b"a"] * 10)
        model = mlp()
        before = model.get_weights()
        with pytest.raises(ValueError, match=r"Invalid x: expected samples of shape \(6,\)"):
            model.fit(f["x"], np.zeros(10), verbose=0)
        with pytest.raises(TypeError, match="Expected numeric data for x"):
            model.fit(f["s"], np.zeros(10), verbose=0)
        with pytest.raises(ValueError, match="same number of samples"):
            model.fit(f["x"][:, :FEATURES], np.zeros(9), verbose=0)
        same_weights(model, mlp(weights=before))


def test_nan_on_disk_is_refused_naming_the_row(tmp_path, xy):
    x, y = xy
    x = x.copy()
    x[70, 2] = np.nan
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f["x"] = x
        model = mlp()
        with pytest.raises(ValueError, match="x") as error:
            model.fit(f["x"], y, batch_size=BATCH, shuffle=False, verbose=0)
        assert "row 70 of x on disk" in "".join(error.value.__notes__)


def test_class_weight_and_single_batches_from_disk(xy, h5):
    x, y = xy
    weights = {0: 0.5, 1: 2.0, 2: 1.0}
    ours, reference = mlp(), mlp()
    h = ours.fit(h5["x"], h5["y"], class_weight=weights, shuffle=False, verbose=0)
    r = reference.fit(x, y, class_weight=weights, shuffle=False, verbose=0)
    assert h.history == r.history
    assert ours.train_on_batch(h5["x"], h5["y"]) == reference.train_on_batch(x, y)
    assert ours.test_on_batch(h5["x"], h5["y"]) == reference.test_on_batch(x, y)
    np.testing.assert_array_equal(ours(h5["x"]), reference(x))


def test_file_closed_mid_epoch_gives_a_clear_error_and_keeps_the_weights(tmp_path, xy):
    x, y = xy
    path = tmp_path / "gone.h5"
    with h5py.File(path, "w") as f:
        f["x"] = x
    f = h5py.File(path, "r")

    class CloseAt(lk.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 2:
                f.close()  # the file goes away under the epoch

    model = mlp()
    old = disk.WINDOW_BYTES
    disk.WINDOW_BYTES = BATCH * FEATURES * 4  # a window per batch: step 3 reads
    try:
        with pytest.raises(Exception) as error:
            model.fit(f["x"], y, batch_size=BATCH, shuffle=False, verbose=0, callbacks=[CloseAt()])
    finally:
        disk.WINDOW_BYTES = old
    note = "".join(error.value.__notes__)
    # Step 3's window may have been read ahead while step 2 ran (the thread races the
    # close): the first failed read is step 3's or step 4's; the note says which.
    found = re.search(r"while reading the rows of step (\d) from disk", note)
    assert found is not None, note
    step = int(found.group(1))
    assert step in (3, 4)
    assert f"the model holds the weights after step {step - 1}" in note
    reference = mlp()
    rows = (step - 1) * BATCH
    reference.fit(x[:rows], y[:rows], batch_size=BATCH, shuffle=False, verbose=0)
    same_weights(model, reference)  # the steps before the error, nothing more


# --- generators -------------------------------------------------------------------------
def keras_pair(keras, rng):
    theirs = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(7, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    ours = mlp()
    ours.set_weights(
        [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in theirs.get_weights()]
    )
    theirs.set_weights(ours.get_weights())
    for model, api in ((ours, lk), (theirs, keras)):
        model.compile(
            api.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"]
        )
    return ours, theirs


def test_generator_trains_as_keras_with_steps_per_epoch(keras, rng, xy):
    """With steps_per_epoch, the generator goes on across epochs (Keras's semantics)."""
    x, y = xy

    def endless():
        while True:
            yield from batches_of(x, y)

    ours, theirs = keras_pair(keras, rng)
    h = ours.fit(endless(), steps_per_epoch=4, epochs=3, verbose=0)
    t = theirs.fit(endless(), steps_per_epoch=4, epochs=3, verbose=0)
    for key in t.history:
        np.testing.assert_allclose(h.history[key], t.history[key], rtol=1e-5, err_msg=key)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert ours.optimizer.iterations == 12


def test_generator_running_out_warns_as_keras_and_stops(keras, rng, xy):
    x, y = xy
    ours, theirs = keras_pair(keras, rng)
    with pytest.warns(UserWarning, match="ran out of data"):
        h = ours.fit(batches_of(x, y), steps_per_epoch=4, epochs=3, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = theirs.fit(batches_of(x, y), steps_per_epoch=4, epochs=3, verbose=0)
    # 6 batches: 4 in epoch 1, 2 in epoch 2 (as Keras), then layerkit stops; Keras goes
    # on to a third epoch on the batch it peeked at the start, which layerkit does not.
    assert len(h.history["loss"]) == 2
    np.testing.assert_allclose(h.history["loss"], t.history["loss"][:2], rtol=1e-5)
    assert ours.optimizer.iterations == 6


def test_generator_without_steps_is_one_pass_per_epoch(keras, rng, xy):
    x, y = xy
    ours, theirs = keras_pair(keras, rng)
    h = ours.fit(batches_of(x, y), epochs=1, verbose=0)
    t = theirs.fit(batches_of(x, y), epochs=1, verbose=0)
    np.testing.assert_allclose(h.history["loss"], t.history["loss"], rtol=1e-5)
    assert ours.optimizer.iterations == 6

    class Reader:  # an iterable: iterated afresh each epoch
        def __iter__(self):
            return batches_of(x, y)

    again, reference = keras_pair(keras, np.random.default_rng(99))[0], None
    reference = keras_pair(keras, np.random.default_rng(99))[0]
    g = again.fit(Reader(), epochs=2, verbose=0)
    r = reference.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    assert g.history == r.history
    same_weights(again, reference)
    with pytest.warns(UserWarning, match="ran out of data"):  # a generator object is spent
        h = mlp().fit(batches_of(x, y), epochs=3, verbose=0)
    assert len(h.history["loss"]) == 1


def test_generator_evaluate_predict_and_validation_data(xy):
    x, y = xy
    model = mlp()
    h = model.fit(
        batches_of(x, y),
        epochs=1,
        validation_data=batches_of(x[:40], y[:40], batch=10),
        validation_steps=3,
        verbose=0,
    )
    expected = model.evaluate(x[:30], y[:30], batch_size=10, return_dict=True)
    assert h.history["val_loss"][0] == pytest.approx(expected["loss"], rel=1e-6)
    assert model.evaluate(batches_of(x, y, batch=32), return_dict=True) == model.evaluate(
        x, y, batch_size=32, return_dict=True
    )
    np.testing.assert_array_equal(
        model.predict(xb for xb, _ in batches_of(x, y)), model.predict(x, batch_size=BATCH)
    )
    np.testing.assert_array_equal(model.predict(batches_of(x, y), steps=2), model.predict(x[:32]))


def test_multi_input_output_generator_with_sample_weights(rng):
    a = rng.normal(size=(40, 3)).astype("float32")
    b = rng.normal(size=(40, 2)).astype("float32")
    t1, t2 = rng.normal(size=(40, 1)).astype("float32"), rng.integers(0, 2, size=(40, 1))
    w = rng.uniform(0.1, 2.0, size=40).astype("float32")

    def build():
        lk.utils.set_random_seed(5)
        ia, ib = lk.Input((3,), name="a"), lk.Input((2,), name="b")
        h = lk.layers.Dense(4, activation="tanh")(lk.layers.Concatenate()([ia, ib]))
        out1 = lk.layers.Dense(1, name="reg")(h)
        out2 = lk.layers.Dense(1, activation="sigmoid", name="cls")(h)
        model = lk.Model([ia, ib], [out1, out2])
        model.compile("sgd", ["mse", "binary_crossentropy"], metrics=[["mae"], ["accuracy"]])
        return model

    def gen():
        for lo in range(0, 40, 10):
            rows = slice(lo, lo + 10)
            yield {"a": a[rows], "b": b[rows]}, [t1[rows], t2[rows]], w[rows]

    ours, reference = build(), build()
    h = ours.fit(gen(), epochs=1, verbose=0)
    r = reference.fit([a, b], [t1, t2], sample_weight=w, batch_size=10, shuffle=False, verbose=0)
    assert h.history == r.history
    same_weights(ours, reference)


def test_multi_input_output_arrays_on_disk(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(disk, "WINDOW_BYTES", 200)  # several windows
    a = rng.normal(size=(40, 3)).astype("float32")
    b = rng.normal(size=(40, 2)).astype("float32")
    t1, t2 = rng.normal(size=(40, 1)).astype("float32"), rng.integers(0, 2, size=(40, 1))

    def build():
        lk.utils.set_random_seed(5)
        ia, ib = lk.Input((3,), name="a"), lk.Input((2,), name="b")
        h = lk.layers.Dense(4, activation="tanh")(lk.layers.Concatenate()([ia, ib]))
        out1 = lk.layers.Dense(1, name="reg")(h)
        out2 = lk.layers.Dense(1, activation="sigmoid", name="cls")(h)
        model = lk.Model([ia, ib], [out1, out2])
        model.compile("adam", ["mse", "binary_crossentropy"], metrics=[["mae"], ["accuracy"]])
        return model

    with h5py.File(tmp_path / "multi.h5", "w") as f:
        for name, value in (("a", a), ("b", b), ("t1", t1), ("t2", t2)):
            f.create_dataset(name, data=value, chunks=(4, value.shape[1]))
        ours, reference = build(), build()
        args = dict(batch_size=8, epochs=2, shuffle="batch", verbose=0)
        h = ours.fit({"a": f["a"], "b": f["b"]}, {"reg": f["t1"], "cls": f["t2"]}, **args)
        r = reference.fit({"a": a, "b": b}, {"reg": t1, "cls": t2}, **args)
        assert h.history == r.history
        same_weights(ours, reference)
        for u, v in zip(ours.predict([f["a"], f["b"]]), reference.predict([a, b])):
            np.testing.assert_array_equal(u, v)


def test_inconsistent_batch_is_refused_naming_it(xy):
    x, y = xy

    def gen():
        yield x[:16], y[:16]
        yield x[16:32], y[16:32]
        yield x[32:48, :4], y[32:48]

    model = mlp()
    with pytest.raises(ValueError, match=r"x of batch 2 of x.*expected 6 features, received 4"):
        model.fit(gen(), epochs=1, verbose=0)
    reference = mlp()
    reference.fit(x[:32], y[:32], batch_size=16, shuffle=False, verbose=0)
    same_weights(model, reference)  # the steps before the bad batch


def test_generator_that_raises_says_where(xy):
    x, y = xy

    def gen():
        yield x[:16], y[:16]
        raise OSError("network share gone")

    model = mlp()
    with pytest.raises(OSError, match="network share gone") as error:
        model.fit(gen(), epochs=1, verbose=0)
    assert "generator passed as x for step 2" in "".join(error.value.__notes__)


def test_y_with_a_generator_and_validation_split_are_refused(xy):
    x, y = xy
    model = mlp()
    with pytest.raises(ValueError, match="y must be None when x is a generator"):
        model.fit(batches_of(x, y), y, verbose=0)
    with pytest.raises(ValueError, match="validation_split needs arrays"):
        model.fit(batches_of(x, y), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="steps_per_epoch is for a generator"):
        model.fit(x, y, steps_per_epoch=2, verbose=0)
    with pytest.raises(ValueError, match="expected a tuple"):
        model.fit(iter([x[:4]]), verbose=0)
    assert model.optimizer.iterations == 0


def test_backup_resumes_a_generator_at_the_right_batch(tmp_path, xy):
    """A generator that fails mid-epoch; the rerun (a fresh generator) resumes after the
    last backup and ends with the weights of an uninterrupted run."""
    x, y = xy

    def gen(fail_at=None):
        for epoch in range(3):
            for i, batch in enumerate(batches_of(x, y)):
                if (epoch, i) == fail_at:
                    raise RuntimeError("disk read error")
                yield batch

    reference = mlp()
    reference.fit(gen(), steps_per_epoch=6, epochs=3, verbose=0)
    model = mlp()
    backup = lk.callbacks.BackupAndRestore(tmp_path, save_freq=2)
    with pytest.raises(RuntimeError, match="disk read error"):
        model.fit(gen(fail_at=(1, 3)), steps_per_epoch=6, epochs=3, verbose=0, callbacks=[backup])
    resumed = mlp(seed=11)  # other initial weights: the backup restores them
    seen = []

    class Log(lk.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(batch)

    # The rerun's reader starts at the epoch being resumed (the epochs before it are
    # done); the batches of that epoch before the backup are skipped, not trained on.
    def from_epoch_1():
        for _epoch in range(1, 3):
            yield from batches_of(x, y)

    backup = lk.callbacks.BackupAndRestore(tmp_path, save_freq=2)
    resumed.fit(from_epoch_1(), steps_per_epoch=6, epochs=3, verbose=0, callbacks=[backup, Log()])
    assert seen[:4] == [2, 3, 4, 5]  # epoch 1 resumed after the backup at step 2
    same_weights(resumed, reference, atol=1e-6)


# --- PyDataset ----------------------------------------------------------------------------
def test_pydataset_trains_as_keras(keras, rng, xy):
    x, y = xy
    ours, theirs = keras_pair(keras, rng)

    class KerasBatches(keras.utils.PyDataset):
        def __len__(self):
            return -(-N // BATCH)

        def __getitem__(self, i):
            return x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH]

    h = ours.fit(Batches(x, y), epochs=2, shuffle=False, verbose=0)
    t = theirs.fit(KerasBatches(), epochs=2, shuffle=False, verbose=0)
    for key in t.history:
        np.testing.assert_allclose(h.history[key], t.history[key], rtol=1e-5, err_msg=key)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_pydataset_with_fewer_steps_goes_on_across_epochs_as_keras(keras, rng, xy):
    x, y = xy
    ours, theirs = keras_pair(keras, rng)

    class KerasBatches(keras.utils.PyDataset):
        def __len__(self):
            return -(-N // BATCH)

        def __getitem__(self, i):
            return x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH]

    dataset = Batches(x, y)
    h = ours.fit(dataset, steps_per_epoch=2, epochs=3, shuffle=False, verbose=0)
    t = theirs.fit(KerasBatches(), steps_per_epoch=2, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(h.history["loss"], t.history["loss"], rtol=1e-5)
    assert dataset.calls[1:] == [0, 1, 2, 3, 4, 5]  # after fit's look at batch 0
    assert dataset.epochs_ended == 3


@pytest.mark.parametrize("workers", [1, 3])
def test_pydataset_prefetch_gives_the_numbers_of_arrays(xy, workers):
    x, y = xy
    dataset = Batches(x, y, workers=workers, max_queue_size=2)
    ours, reference = mlp(), mlp()
    h = ours.fit(dataset, epochs=2, shuffle=False, verbose=0)
    r = reference.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    assert h.history == r.history
    same_weights(ours, reference)
    assert dataset.epochs_ended == 2


def test_pydataset_shuffle_permutes_batches_reproducibly(xy):
    x, y = xy
    runs = []
    for _ in range(2):
        dataset = Batches(x, y)
        model = mlp()
        model.fit(dataset, epochs=2, shuffle=True, verbose=0)
        runs.append((dataset.calls, model.get_weights()))
    calls = runs[0][0][1:]  # the first call built the model
    assert sorted(calls[:6]) == list(range(6))
    assert calls[:6] != list(range(6))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_pydataset_shorter_than_steps_or_multiprocessing_is_refused(xy):
    x, y = xy
    model = mlp()
    with pytest.raises(ValueError, match=r"PyDataset of 6 batches.*steps=7"):
        model.fit(Batches(x, y), steps_per_epoch=7, verbose=0)
    with pytest.raises(NotImplementedError, match="use_multiprocessing"):
        model.fit(Batches(x, y, use_multiprocessing=True), verbose=0)
    assert model.optimizer.iterations == 0


# --- the frozen-output cache on disk -----------------------------------------------------------
def transfer(seed=4):
    lk.utils.set_random_seed(seed)
    model = lk.Sequential(
        [
            lk.layers.Input((FEATURES,)),
            lk.layers.Dense(16, activation="relu", name="frozen1"),
            lk.layers.Dense(8, activation="relu", name="frozen2"),
            lk.layers.Dense(CLASSES, activation="softmax", name="head"),
        ]
    )
    model.freeze("frozen[12]")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("source", ["memory", "h5py"])
def test_frozen_cache_on_disk_gives_the_in_memory_numbers(tmp_path, xy, h5, source):
    x, y = xy
    folder = tmp_path / "cache"
    folder.mkdir()
    seen: list[str] = []

    class Watch(lk.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.extend(os.listdir(folder))

    x_in = x if source == "memory" else h5["x"]
    ours, reference = transfer(), transfer()
    args = dict(batch_size=BATCH, epochs=2, validation_split=0.2, verbose=0)
    h = ours.fit(x_in, y, cache_max_bytes=0, cache_dir=folder, callbacks=[Watch()], **args)
    # The reference: the same data with the cache in memory (data on disk is
    # chunk-shuffled, in memory permuted: each run against its own kind).
    r = reference.fit(x_in, y, cache_frozen=True, **args)
    assert reference._fit_signature is not None
    assert h.history == r.history
    same_weights(ours, reference)
    assert seen
    assert all(name.endswith(".h5") for name in seen)
    assert os.listdir(folder) == []  # removed at the end


def test_frozen_cache_next_to_the_data_is_removed_on_error(tmp_path, h5):
    class Boom(lk.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            files = [n for n in os.listdir(tmp_path) if n.startswith(".layerkit-frozen")]
            assert len(files) == 1  # beside data.h5
            raise KeyboardInterrupt

    model = transfer()
    with pytest.raises(KeyboardInterrupt):
        model.fit(h5["x"], h5["y"], cache_max_bytes=0, callbacks=[Boom()], verbose=0)
    assert [n for n in os.listdir(tmp_path) if n.startswith(".layerkit")] == []


def test_cache_dir_must_exist(xy, tmp_path):
    x, y = xy
    model = transfer()
    with pytest.raises(FileNotFoundError, match="cache_dir="):
        model.fit(x, y, cache_dir=tmp_path / "missing", verbose=0)
