"""Streaming data under MPI: arrays on disk, generators and PyDatasets train on N ranks
to the weights of one process, and each rank reads only its shard of each global batch
of an array on disk.

This file is also the worker: ``mpiexec -n N python test_streaming_parallel.py KIND DIR``.
"""

from __future__ import annotations

import os
import pickle
import sys

import numpy as np
import pytest

N, FEATURES, CLASSES, BATCH, EPOCHS = 70, 5, 3, 16, 2
KINDS = ("disk", "disk-shuffled", "disk-batch-shuffled", "generator", "pydataset")


class CountingArray:
    """An array-like over an h5py dataset that records the rows each read returns."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        self.shape, self.dtype, self.chunks = dataset.shape, dataset.dtype, dataset.chunks
        self.rows: list[int] = []

    def __getitem__(self, index):
        if isinstance(index, slice):
            self.rows.extend(range(*index.indices(self.shape[0])))
        return self.dataset[index]


def make_data(directory: str):
    import h5py

    rng = np.random.default_rng(7)
    x = rng.normal(size=(N, FEATURES)).astype("float32")
    y = rng.integers(0, CLASSES, size=N)
    path = os.path.join(directory, "data.h5")
    if not os.path.exists(path):
        with h5py.File(path + ".tmp", "w") as f:
            f.create_dataset("x", data=x, chunks=(8, FEATURES))
        os.replace(path + ".tmp", path)
    return x, y, path


def train(kind: str, directory: str, strategy) -> dict:
    import h5py

    import layerkit as lk

    x, y, path = make_data(directory)
    lk.utils.clear_session()
    lk.utils.set_random_seed(1)
    model = lk.Sequential(
        [
            lk.layers.Input((FEATURES,)),
            lk.layers.Dense(6, activation="relu"),
            lk.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    model.compile(lk.optim.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    counted = None

    class Batches(lk.utils.PyDataset):
        def __len__(self):
            return -(-N // BATCH)

        def __getitem__(self, i):
            return x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH]

    def batches():
        for _ in range(EPOCHS):
            for lo in range(0, N, BATCH):
                yield x[lo : lo + BATCH], y[lo : lo + BATCH]

    with h5py.File(path, "r") as f:
        common = dict(epochs=EPOCHS, verbose=0, distribute=strategy)
        if kind.startswith("disk"):
            counted = CountingArray(f["x"])
            shuffle = {"disk": False, "disk-shuffled": True, "disk-batch-shuffled": "batch"}[kind]
            history = model.fit(counted, y, batch_size=BATCH, shuffle=shuffle, **common)
        elif kind == "generator":
            history = model.fit(batches(), steps_per_epoch=-(-N // BATCH), **common)
        else:
            history = model.fit(Batches(), shuffle=False, **common)
    return {
        "weights": model.get_weights(),
        "history": history.history,
        "rows": None if counted is None else counted.rows,
    }


def shard_rows(rank: int, ranks: int, order) -> list[int]:
    """The rows a rank should read in an epoch: its share of every global batch."""
    import layerkit as lk

    rows = []
    for lo in range(0, N, BATCH):
        hi = min(N, lo + BATCH)
        first, stop = lk.distributed.shard_bounds(hi - lo, ranks, rank)
        rows.extend(order[lo + first : lo + stop])
    return rows


def main() -> None:
    import layerkit as lk

    kind, directory = sys.argv[1], sys.argv[2]
    strategy = lk.distributed.MPI()
    result = train(kind, directory, strategy)
    with open(os.path.join(directory, f"{kind}-rank{strategy.rank}.pkl"), "wb") as f:
        pickle.dump(result, f)


# --- the tests ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_streaming_on_ranks_gives_the_one_process_numbers(run_mpi_script, tmp_path, kind):
    ranks = 2
    reference = train(kind, str(tmp_path), None)
    launch = run_mpi_script(ranks, [os.path.abspath(__file__), kind, tmp_path], tmp_path, 120)
    assert launch.returncode == 0, f"mpiexec failed ({launch.returncode}):\n{launch.stderr}"
    results = []
    for rank in range(ranks):
        with open(tmp_path / f"{kind}-rank{rank}.pkl", "rb") as f:
            results.append(pickle.load(f))
    for rank, result in enumerate(results):
        for key, values in reference["history"].items():
            np.testing.assert_allclose(result["history"][key], values, rtol=1e-5, err_msg=key)
        for ours, theirs in zip(result["weights"], reference["weights"]):
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6, err_msg=f"rank {rank}")
    if not kind.startswith("disk"):
        return
    # The ranks together read every row once per epoch, nothing more.
    read = [sorted(r["rows"]) for r in results]
    assert sorted(read[0] + read[1]) == sorted(list(range(N)) * EPOCHS)
    if kind == "disk":  # in order: exactly the shard of each batch
        for rank in range(ranks):
            assert read[rank] == sorted(shard_rows(rank, ranks, np.arange(N)) * EPOCHS)


if __name__ == "__main__":
    main()
