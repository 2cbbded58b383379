"""``lk.utils.PyDataset``: Keras 3's interface (``__len__``, ``__getitem__``,
``on_epoch_end``, ``workers`` / ``use_multiprocessing`` / ``max_queue_size``) and its
prefetching threads."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import layerkit as lk


class Squares(lk.utils.PyDataset):
    def __init__(self, n_batches=5, **kwargs):
        super().__init__(**kwargs)
        self.n_batches = n_batches
        self.started: list[int] = []
        self.lock = threading.Lock()

    def __len__(self):
        return self.n_batches

    def __getitem__(self, i):
        with self.lock:
            self.started.append(i)
        x = np.full((4, 2), i, np.float32)
        return x, x.sum(axis=1, keepdims=True)


def test_defaults_are_keras_and_are_checked(keras):
    ours, theirs = Squares(), keras.utils.PyDataset()
    assert (ours.workers, ours.use_multiprocessing, ours.max_queue_size) == (
        theirs.workers,
        theirs.use_multiprocessing,
        theirs.max_queue_size,
    )
    with pytest.raises(ValueError, match=r"Expected workers >= 1. Received: workers=0"):
        Squares(workers=0)
    with pytest.raises(ValueError, match="max_queue_size"):
        Squares(max_queue_size=True)


def test_subclass_without_super_init_gets_the_defaults():
    class Bare(lk.utils.PyDataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return np.ones((2, 1), np.float32), np.ones((2, 1), np.float32)

    bare = Bare()
    assert (bare.workers, bare.use_multiprocessing, bare.max_queue_size) == (1, False, 10)
    assert bare.num_batches == 1
    with pytest.raises(NotImplementedError, match="must implement __len__"):
        len(lk.utils.PyDataset())


def test_threads_fetch_ahead_within_max_queue_size():
    dataset = Squares(n_batches=8, workers=2, max_queue_size=3)
    model = lk.Sequential([lk.layers.Input((2,)), lk.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.build((None, 2))
    ahead: list[int] = []

    class Watch(lk.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 1:  # batches 1..3 are fetched while step 0 runs
                deadline = time.monotonic() + 5
                while len(dataset.started) < 5 and time.monotonic() < deadline:
                    time.sleep(0.001)
            # (the first call is fit's look at batch 0, to check it against the model)
            ahead.append(len(dataset.started) - 1 - (batch + 1))

    model.fit(dataset, epochs=1, shuffle=False, verbose=0, callbacks=[Watch()])
    assert ahead[1] >= 2  # fetched before the step needed them
    assert max(ahead) <= 3  # never more than max_queue_size ahead
    assert dataset.started[0] == 0
    assert sorted(dataset.started[1:]) == list(range(8))
