"""Data-parallel training over MPI: N ranks end where one process ends.

Each test launches ``mpiexec`` on ``mpi_worker.py`` (2 or 3 ranks; oversubscribing two
cores is fine) and compares what the ranks wrote with a single-process run, or checks how
the job ends when one rank fails.
"""

from __future__ import annotations

import itertools
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

import layerkit as lk


def load(directory, name: str, ranks: int) -> list:
    out = []
    for rank in range(ranks):
        with open(os.path.join(directory, f"{name}-rank{rank}.pkl"), "rb") as f:
            out.append(pickle.load(f))
    return out


def assert_ok(launch) -> None:
    assert launch.returncode == 0, f"mpiexec failed ({launch.returncode}):\n{launch.stderr}"


def drew_last(config: dict, ranks: int, rank: int) -> bool:
    """Whether ``rank`` has rows in the last batch of a worker configuration's epochs
    (80% of its samples train: the worker's ``validation_split=0.2``)."""
    samples = int(config["n"] * 0.8) if not config.get("validation") else config["n"]
    last = samples % config["batch"] or config["batch"]
    start, stop = lk.distributed.shard_bounds(last, ranks, rank)
    return stop > start


# --- without mpiexec ----------------------------------------------------------------------
def test_import_layerkit_does_not_import_mpi4py():
    code = "import sys, layerkit as lk; lk.distributed.shard_bounds; print('mpi4py' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_mpi_without_mpi4py_says_what_to_install():
    code = (
        "import sys; sys.modules['mpi4py'] = None\n"  # as if it were not installed
        "import layerkit as lk\n"
        "try:\n    lk.distributed.MPI()\nexcept ImportError as error:\n    print(error)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert 'pip install "layerkit[mpi]"' in done.stdout


@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_distribute_of_the_wrong_type_is_refused(method, fresh_session):
    model = lk.Sequential([lk.layers.Dense(2, input_dim=3)])
    model.compile(loss="mse")
    x, y = np.zeros((4, 3), "float32"), np.zeros((4, 2), "float32")
    with pytest.raises(TypeError, match=r"distribute=None or an lk.distributed.MPI\(\).*'mpi'"):
        getattr(model, method)(x, y, distribute="mpi")
    assert model.distribute is None


@pytest.mark.parametrize("rows", [0, 1, 2, 50, 64, 101])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_shard_bounds_follow_the_remainder_rule(rows, size):
    bounds = [lk.distributed.shard_bounds(rows, size, rank) for rank in range(size)]
    assert bounds[0][0] == 0
    assert bounds[-1][1] == rows
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))  # contiguous, rank order
    counts = [stop - start for start, stop in bounds]
    # the first rows % size ranks take one more row
    assert counts == [rows // size + (rank < rows % size) for rank in range(size)]


def test_shard_bounds_refuse_a_rank_outside_the_job():
    with pytest.raises(ValueError, match="rank=3"):
        lk.distributed.shard_bounds(10, 3, 3)


# --- the same numbers ---------------------------------------------------------------------
@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_n_ranks_end_with_the_weights_and_logs_of_one_process(ranks, run_mpi, worker, tmp_path):
    assert_ok(run_mpi(ranks, "equivalence", tmp_path))
    results = load(tmp_path, "equivalence", ranks)
    for name in worker.CONFIGS:
        reference = worker.train(name, None)
        for rank, result in enumerate(results):
            got = result[name]
            # Every rank holds bit-identical weights (one Allreduce result for all).
            for a, b in zip(got["weights"], results[0][name]["weights"]):
                np.testing.assert_array_equal(a, b, err_msg=f"{name}: rank {rank} drifted")
            for a, b in zip(got["weights"], reference["weights"]):
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-5, err_msg=name)
            assert set(got["history"]) == set(reference["history"])
            for key, values in reference["history"].items():
                np.testing.assert_allclose(got["history"][key], values, rtol=1e-6, err_msg=key)
            np.testing.assert_allclose(got["batch_losses"], reference["batch_losses"], rtol=1e-6)
            assert got["evaluate"].keys() == reference["evaluate"].keys()
            for key, value in reference["evaluate"].items():
                assert got["evaluate"][key] == pytest.approx(value, rel=1e-6), (name, key)
            if reference["random_state"] is not None and drew_last(
                worker.CONFIGS[name], ranks, rank
            ):
                # One process's generator state: every rank drew the global batch's masks.
                assert got["random_state"] == reference["random_state"], (name, rank)
    assert "Received: comm='world' of type str" in results[0]["comm_error"]


# --- saving and resuming ------------------------------------------------------------------
def test_rank_0_alone_saves_and_a_resumed_run_ends_as_an_uninterrupted_one(run_mpi, tmp_path):
    full, broken = tmp_path / "full", tmp_path / "broken"
    full.mkdir()
    broken.mkdir()
    launch = run_mpi(2, "checkpoints", full)
    assert_ok(launch)
    # Verbose callbacks print on rank 0 only: one line per save, not one per rank.
    assert launch.stdout.count(": saving model to ") == 4
    ranks = load(full, "checkpoints", 2)
    for a, b in zip(ranks[0]["weights"], ranks[1]["weights"]):
        np.testing.assert_array_equal(a, b)
    assert ranks[0]["history"] == ranks[1]["history"]
    # Rank 0 wrote every file, atomically (no temporaries left); rank 1 wrote nothing.
    assert sorted(os.listdir(full / "rank0")) == [
        "backup", "ckpt-1.h5", "ckpt-2.h5", "ckpt-3.h5", "ckpt-4.h5", "log.csv"
    ]  # fmt: skip
    assert os.listdir(full / "rank0" / "backup") == []  # deleted when fit ended normally
    assert os.listdir(full / "rank1") == []
    assert (full / "rank0" / "log.csv").read_text().count("\n") == 1 + 4
    saved = lk.load_model(full / "rank0" / "ckpt-4.h5").get_weights()
    for a, b in zip(saved, ranks[0]["weights"]):
        np.testing.assert_array_equal(a, b)
    # One rank's callback stopping training stops every rank after the same epoch.
    assert [r["stopped_after"] for r in ranks] == [2, 2]

    # Rank 1 fails after epoch 2: every rank ends, promptly, and the backup survives.
    interrupted = run_mpi(2, "interrupted", broken, timeout=60)
    assert interrupted.returncode != 0
    assert "simulated failure on rank 1 at epoch 1" in interrupted.stderr
    assert "rank 1 of 2 raised in fit()" in interrupted.stderr
    assert interrupted.seconds < 30
    assert os.listdir(broken / "rank0" / "backup") == ["backup.h5"]
    assert not (broken / "checkpoints-rank0.pkl").exists()

    # Started again, it resumes from rank 0's backup and ends with the same weights.
    assert_ok(run_mpi(2, "resumed", broken))
    resumed = load(broken, "checkpoints", 2)
    for rank in range(2):
        for a, b in zip(resumed[rank]["weights"], ranks[0]["weights"]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        for key, values in ranks[0]["history"].items():
            np.testing.assert_allclose(resumed[rank]["history"][key], values[2:], rtol=1e-6)
    assert os.listdir(broken / "rank1") == []


def test_a_run_killed_inside_an_epoch_resumes_from_its_mid_epoch_backup(run_mpi, worker, tmp_path):
    # BackupAndRestore(save_freq=4) over 7 steps an epoch; every rank stops at global
    # batch 13 (epoch 1, step 5), after the backup of batch 12 (epoch 1, 5 steps done).
    config = worker.MID_EPOCH
    steps = -(-config["n"] // config["batch"])
    assert steps % config["save_freq"] != 0
    stop_epoch, stop_step = divmod(config["stop_after"] - 1, steps)
    backed_up = config["stop_after"] // config["save_freq"] * config["save_freq"]
    backup_epoch, steps_done = divmod(backed_up, steps)
    assert (stop_epoch, backup_epoch) == (1, 1)
    assert 0 < steps_done <= stop_step < steps  # mid-epoch, and a step lost after it
    full, broken = tmp_path / "full", tmp_path / "broken"
    full.mkdir()
    broken.mkdir()
    assert_ok(run_mpi(2, "mid_epoch", full))
    ranks = load(full, "mid_epoch", 2)
    reference = ranks[0]
    assert os.listdir(full / "backup") == []  # deleted when fit ended normally
    # With Dropout, the two ranks end where one process ends, step by step.
    alone = worker.mid_epoch(None, str(full), "mid_epoch")
    assert_same_run(reference, alone, atol=1e-5)

    interrupted = run_mpi(2, "mid_epoch_interrupted", broken, timeout=60)
    assert interrupted.returncode != 0
    # Each rank raises; the first to abort has printed its traceback (the other may not).
    stopped = f"simulated stop on rank [01] after batch {config['stop_after']}\n"
    assert re.search(stopped, interrupted.stderr)
    assert re.search("rank [01] of 2 raised in fit", interrupted.stderr)
    assert interrupted.seconds < 30
    assert not (broken / "mid_epoch_interrupted-rank0.pkl").exists()
    assert os.listdir(broken / "backup") == ["backup.h5"]
    # The backup holds the running totals of both ranks (8 + 7 rows a batch), summed
    # before the save: those of the uninterrupted run after the same step.
    position = lk.io.checkpoint.read_snapshot(broken / "backup" / "backup.h5").position
    in_epoch = position["epoch_in_progress"]
    assert (in_epoch["epoch"], in_epoch["steps_done"]) == (backup_epoch, steps_done)
    assert position["iterations"] == backed_up
    assert in_epoch["seen"] == steps_done * config["batch"]
    running = {(e, s): logs for e, s, logs, _ in reference["ended"]}[(backup_epoch, steps_done - 1)]
    assert in_epoch["loss_total"] / in_epoch["seen"] == pytest.approx(running["loss"], rel=1e-6)
    [(correct, count)] = in_epoch["metrics"]
    assert (correct / count, count) == (pytest.approx(running["accuracy"]), in_epoch["seen"])

    # Started again with the same arguments: it continues inside epoch 1.
    assert_ok(run_mpi(2, "mid_epoch_resumed", broken))
    resumed = load(broken, "mid_epoch_resumed", 2)
    assert os.listdir(broken / "backup") == []
    after = {(e, s): (logs, w) for e, s, logs, w in reference["ended"]}
    for rank, got in enumerate(resumed):
        # (a) bit-identical weights on both ranks, those of the uninterrupted run.
        for a, b, c in zip(got["weights"], resumed[0]["weights"], reference["weights"]):
            np.testing.assert_array_equal(a, b, err_msg=f"rank {rank} drifted")
            np.testing.assert_allclose(a, c, rtol=0, atol=1e-5)
        for a, b in zip(ranks[rank]["weights"], reference["weights"]):
            np.testing.assert_array_equal(a, b)
        # (b) the interrupted epoch's loss and accuracy (5 backed-up steps + 2 new ones),
        # and the epoch after it, as in the uninterrupted run.
        assert got["epochs"] == list(range(backup_epoch, config["epochs"]))
        assert set(got["history"]) == set(reference["history"]) == {"loss", "accuracy"}
        for key, values in reference["history"].items():
            np.testing.assert_allclose(
                got["history"][key], values[backup_epoch:], rtol=1e-6, err_msg=key
            )
        # (c) the first batch trained is the one after the backup: epoch 1, step 5, after
        # 12 optimizer steps; it ends with the uninterrupted run's weights and running logs.
        assert got["began"][0] == (backup_epoch, steps_done, backed_up)
        assert len(got["began"]) == config["epochs"] * steps - backed_up
        for epoch, step, logs, weights in got["ended"]:
            want_logs, want_weights = after[(epoch, step)]
            assert logs == pytest.approx(want_logs, rel=1e-6), (rank, epoch, step)
            for a, b in zip(weights, want_weights):
                np.testing.assert_array_equal(a, b, err_msg=f"rank {rank}, {epoch}/{step}")


@pytest.mark.parametrize(("before", "after"), [(2, 3), (3, 1)])
def test_a_mid_epoch_backup_resumes_on_another_number_of_ranks(
    before, after, run_mpi, worker, tmp_path
):
    # Every rank draws the global batch's Dropout masks from one generator state, so the
    # backup's (rank 0's) resumes the interrupted epoch with any number of ranks.
    interrupted = run_mpi(before, "mid_epoch_interrupted", tmp_path, timeout=60)
    assert interrupted.returncode != 0
    assert os.listdir(tmp_path / "backup") == ["backup.h5"]
    resumed_run = run_mpi(after, "mid_epoch_resumed", tmp_path)
    assert_ok(resumed_run)
    assert "masks of this epoch differ" not in resumed_run.stderr
    alone = worker.mid_epoch(None, str(tmp_path / "alone"), "mid_epoch")
    config = worker.MID_EPOCH
    backed_up = config["stop_after"] // config["save_freq"] * config["save_freq"]
    steps = -(-config["n"] // config["batch"])
    for got in load(tmp_path, "mid_epoch_resumed", after):
        assert got["began"][0] == (*divmod(backed_up, steps), backed_up)
        assert_same_run(got, alone, atol=1e-5)


def assert_same_run(got: dict, reference: dict, atol: float) -> None:
    """``got`` (of :func:`mid_epoch`, perhaps resumed) ends each step it ran, and the
    run, with ``reference``'s weights and running logs."""
    after = {(e, s): (logs, w) for e, s, logs, w in reference["ended"]}
    assert got["ended"]
    for epoch, step, logs, weights in got["ended"]:
        want_logs, want_weights = after[(epoch, step)]
        assert logs == pytest.approx(want_logs, rel=1e-6), (epoch, step)
        for a, b in zip(weights, want_weights, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=f"{epoch}/{step}")
    for a, b in zip(got["weights"], reference["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)
    first = got["epochs"][0]
    for key, values in reference["history"].items():
        np.testing.assert_allclose(got["history"][key], values[first:], rtol=1e-6, err_msg=key)


# --- faults -------------------------------------------------------------------------------
def test_an_error_on_one_rank_ends_every_rank_promptly(run_mpi, tmp_path):
    launch = run_mpi(3, "raise", tmp_path, timeout=60)
    assert launch.returncode != 0
    assert "ValueError: simulated error on rank 2 at batch 3" in launch.stderr
    assert "rank 2 of 3 raised in fit()" in launch.stderr
    assert "finished training" not in launch.stdout
    assert launch.seconds < 30


def test_a_killed_rank_ends_the_job(run_mpi, tmp_path):
    # MPICH's mpiexec sees a rank die by a signal and kills the others ("BAD TERMINATION").
    launch = run_mpi(3, "kill", tmp_path, timeout=60)
    assert launch.returncode != 0
    assert "finished training" not in launch.stdout
    assert launch.seconds < 30


def test_ranks_with_different_data_are_refused_before_training(run_mpi, tmp_path):
    launch = run_mpi(2, "mismatch", tmp_path, timeout=60)
    assert launch.returncode != 0
    assert "needs the same samples on every rank" in launch.stderr
    assert "samples=3000 on rank 0 but 2999 on rank 1" in launch.stderr
    assert launch.seconds < 30
