"""The program that tests/distributed runs under ``mpiexec``: ``python mpi_worker.py MODE DIR``.

Each mode trains small models with ``distribute=lk.distributed.MPI()`` and pickles what
every rank ends with to ``DIR/<name>-rank<r>.pkl``; the tests compare those files with a
single-process run of the same :func:`train` (imported from this file, in the test
process) and with one another. No mode uses Dropout where the numbers are compared with
one process: its masks are drawn per rank.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys

import numpy as np

import layerkit as lk

# name -> how to train. Sizes are chosen so batches do not divide evenly among 2 or 3
# ranks and the last batch is partial; "tiny_batches" leaves some ranks without rows.
CONFIGS = {
    # Adam, 201 samples in batches of 50 (50 = 17 + 17 + 16 on 3 ranks, last batch of 1),
    # validation data, accuracy, and a batch callback (per-step reduced logs).
    "adam_uneven": dict(
        n=201, classes=4, batch=50, epochs=3, optimizer="adam", batch_logs=True, validation=True
    ),
    # SGD with momentum and global clipping that binds at about half the steps (it must
    # see the summed gradient), a frozen first layer served from the frozen-output cache,
    # regression, no shuffling.
    "sgd_frozen_cache": dict(
        n=100, classes=None, batch=16, epochs=3, optimizer="sgd_clip", shuffle=False, freeze=True
    ),
    # Batches of 2 on 3 ranks: one rank never has rows; 9 samples leave a batch of 1.
    # Plain SGD: unlike Adam or clipping, it shows any error in the gradient's scale.
    "tiny_batches": dict(n=9, classes=3, batch=2, epochs=2, optimizer="sgd"),
    # A graph: two inputs through one shared layer, two outputs with loss weights and
    # per-output metrics, the shared layer frozen and served from the frozen-output
    # cache at its two outputs (the frontier of the graph).
    "graph_shared_frozen": dict(
        n=90, classes=3, batch=16, epochs=3, optimizer="adam", graph=True, freeze="shared"
    ),
    # The same graph, everything trained (the shared layer's gradient sums its calls).
    "graph_shared": dict(n=90, classes=3, batch=16, epochs=2, optimizer="sgd", graph=True),
    # BatchNormalization: statistics of the global batch (summed over the ranks in the
    # forward and the backward), so the moving statistics and weights match one process.
    "batch_norm": dict(n=96, classes=3, batch=16, epochs=2, optimizer="adam", batch_norm=True),
    # Each random layer after the first hidden layer: 56 training samples (70 less the
    # validation split) in batches of 16 (6 + 5 + 5 rows on 3 ranks) and a last batch of
    # 8 (3 + 3 + 2): every rank must draw its rows' part of the global batch's masks.
    **{
        f"random_{kind}": dict(n=70, classes=3, batch=16, epochs=2, optimizer="adam", random=kind)
        for kind in ("dropout", "gaussian_noise", "gaussian_dropout", "alpha_dropout")
    },
    # Dropout in batches of 2 on 3 ranks (7 training samples): rank 2 never draws and
    # rank 1 skips the last batch (of 1); the next epochs must still draw one process's.
    "random_tiny_batches": dict(
        n=9, classes=3, batch=2, epochs=3, optimizer="sgd", random="dropout"
    ),
    # Weight penalties (their gradient added once over the ranks) and a max-norm
    # constraint (applied after the same update on every rank).
    "regularized": dict(n=90, classes=3, batch=16, epochs=2, optimizer="sgd", regularized=True),
    # Sample weights (and the weighted metrics, validation weights from the split) and
    # class weights: each rank weighs its rows, the loss stays sum(w * loss) / global batch.
    "sample_weighted": dict(
        n=90, classes=3, batch=16, epochs=2, optimizer="adam", weights="sample"
    ),
    "class_weighted": dict(n=90, classes=3, batch=16, epochs=2, optimizer="sgd", weights="class"),
    # One binary output with AUC: its four arrays of confusion counts summed over the ranks.
    "binary_auc": dict(n=90, classes=2, batch=16, epochs=2, optimizer="adam", binary=True),
    # Trained a little alone first; then rank 1 has other automatic layer names and an
    # optimizer state laid out (and counted) differently: fit must start it from rank 0's.
    "skewed_rank_1": dict(n=64, classes=3, batch=16, epochs=2, optimizer="adam", skew=True),
}


def make_data(n: int, classes: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)).astype("float32")
    if classes is None:
        return x, (x[:, :3] @ rng.normal(size=(3, 2))).astype("float32")
    return x, rng.integers(0, classes, n)


# The random layers of the "random_*" configurations, each at a rate that shows its masks.
RANDOM_LAYERS = {
    "dropout": lambda: lk.layers.Dropout(0.3, name="random"),
    "gaussian_noise": lambda: lk.layers.GaussianNoise(0.5, name="random"),
    "gaussian_dropout": lambda: lk.layers.GaussianDropout(0.3, name="random"),
    "alpha_dropout": lambda: lk.layers.AlphaDropout(0.3, name="random"),
}


def build(
    classes: int | None,
    dropout: float = 0.0,
    batch_norm: bool = False,
    regularized: bool = False,
    random: str | None = None,
) -> lk.Sequential:
    options = (
        {"kernel_regularizer": lk.regularizers.L1L2(0.01, 0.02), "kernel_constraint": "max_norm"}
        if regularized
        else {}
    )
    layers = [
        lk.layers.Input((12,)),
        lk.layers.Dense(16, activation="relu", name="hidden1", **options),
    ]
    if batch_norm:
        layers.append(lk.layers.BatchNormalization(momentum=0.9, name="bn"))
    if dropout:
        layers.append(lk.layers.Dropout(dropout, name="dropout"))
    if random:
        layers.append(RANDOM_LAYERS[random]())
    layers += [
        lk.layers.Dense(8, activation="tanh"),  # automatic names: "dense", "dense_1"...
        lk.layers.Dense(classes or 2),
    ]
    return lk.Sequential(layers)


def build_graph(classes: int) -> lk.Model:
    """Two inputs, a shared layer, two outputs (classes and a regression)."""
    a, b = lk.layers.Input((12,), name="a"), lk.layers.Input((12,), name="b")
    shared = lk.layers.Dense(10, activation="relu", name="shared")
    merged = lk.layers.concatenate([shared(a), shared(b)])
    hidden = lk.layers.Dense(8, activation="tanh", name="hidden")(merged)
    label = lk.layers.Dense(classes, name="label")(hidden)
    value = lk.layers.Dense(1, name="value")(merged)
    return lk.Model([a, b], [label, value])


def graph_data(x: np.ndarray, y: np.ndarray) -> tuple[list, list]:
    """Two inputs (x and a transform of it) and two targets (y and a regression)."""
    other = np.roll(x, 1, axis=1) * 0.5
    return [x, other], [y, (x[:, :1] - other[:, 1:2]).astype("float32")]


def optimizer(name: str) -> lk.optim.Optimizer:
    if name == "sgd_clip":
        return lk.optim.SGD(0.05, momentum=0.9, global_clipnorm=2.5)
    if name == "sgd":
        return lk.optim.SGD(0.1)
    return lk.optim.get(name)


def train(name: str, strategy) -> dict:
    """Trains configuration ``name``; returns weights, history, batch losses, evaluation."""
    config = CONFIGS[name]
    lk.utils.clear_session()
    lk.utils.set_random_seed(0)
    classes = config["classes"]
    x, y = make_data(config["n"], classes, seed=5)
    x_val, y_val = make_data(37, classes, seed=6)
    skewed = config.get("skew") and strategy is not None and strategy.rank == 1
    if skewed:
        lk.layers.Dense(3)  # takes an automatic name: this rank's layers are named otherwise
    if config.get("graph"):
        model = build_graph(classes)
        x, y = graph_data(x, y)
        x_val, y_val = graph_data(x_val, y_val)
        model.compile(
            optimizer=optimizer(config["optimizer"]),
            loss=[lk.losses.SparseCategoricalCrossentropy(from_logits=True), "mse"],
            loss_weights=[0.7, 0.3],
            metrics={"label": ["accuracy"], "value": ["mae"]},
        )
    elif config.get("binary"):
        model = build(1)
        y, y_val = (t.astype("float32").reshape(-1, 1) for t in (y, y_val))
        model.compile(
            optimizer=optimizer(config["optimizer"]),
            loss=lk.losses.BinaryCrossentropy(from_logits=True),
            metrics=[lk.metrics.AUC(from_logits=True, num_thresholds=50)],
        )
    else:
        model = build(
            classes,
            batch_norm=config.get("batch_norm", False),
            regularized=config.get("regularized", False),
            random=config.get("random"),
        )
        if classes is None:
            loss, metrics = "mse", ["mae"]
        else:
            loss = lk.losses.SparseCategoricalCrossentropy(from_logits=True)
            metrics = ["accuracy"]
        model.compile(
            optimizer=optimizer(config["optimizer"]),
            loss=loss,
            metrics=metrics,
            weighted_metrics=["accuracy"] if config.get("weights") else None,
        )
    weighting = {}
    if config.get("weights") == "sample":
        weighting["sample_weight"] = np.random.default_rng(7).uniform(0, 2, len(y))
    elif config.get("weights") == "class":
        weighting["class_weight"] = {0: 1.0, 1: 2.5, 2: 0.5}
    if config.get("freeze"):
        model.freeze(config["freeze"] if isinstance(config["freeze"], str) else "hidden1")
    if config.get("skew"):
        model.fit(x[:32], y[:32], batch_size=8, verbose=0)  # alone, on every rank
    if skewed:
        opt = model.optimizer  # rebuilt in two blocks, with another step count
        for table in (opt._slots, opt._slot_blocks, opt._slot_place, opt._plans):
            table.clear()
        opt._last_plan = (None, None)
        opt.build(model.weights[:2])
        opt.build(model.weights)
        opt.iterations = 99
    batch_losses: list[float] = []
    callbacks = []
    if config.get("batch_logs"):
        callbacks.append(
            lk.callbacks.LambdaCallback(
                on_train_batch_end=lambda batch, logs: batch_losses.append(logs["loss"])
            )
        )
    history = model.fit(
        x,
        y,
        batch_size=config["batch"],
        epochs=config["epochs"],
        shuffle=config.get("shuffle", True),
        validation_data=(x_val, y_val) if config.get("validation") else None,
        validation_split=0.0 if config.get("validation") else 0.2,
        cache_frozen=True if config.get("freeze") else "auto",
        callbacks=callbacks,
        verbose=0,
        distribute=strategy,
        **weighting,
    )
    val_weights = (
        np.random.default_rng(8).uniform(0, 2, len(y_val)) if config.get("weights") else None
    )
    evaluation = model.evaluate(
        x_val, y_val, batch_size=7, return_dict=True, distribute=strategy, sample_weight=val_weights
    )
    # The random layer's generator: one process's on every rank that drew in the last step.
    random_state = model.get_layer("random").training_state() if config.get("random") else None
    return {
        "weights": model.get_weights(),
        "history": history.history,
        "batch_losses": batch_losses,
        "evaluate": evaluation,
        "random_state": random_state,
    }


def dump(directory: str, name: str, rank: int, result) -> None:
    with open(os.path.join(directory, f"{name}-rank{rank}.pkl"), "wb") as f:
        pickle.dump(result, f)


# --- modes -------------------------------------------------------------------------------
def equivalence(strategy, directory: str) -> None:
    results = {name: train(name, strategy) for name in CONFIGS}
    try:
        lk.distributed.MPI(comm="world")
    except TypeError as error:
        results["comm_error"] = str(error)
    dump(directory, "equivalence", strategy.rank, results)


def checkpointed_model() -> tuple[lk.Sequential, np.ndarray, np.ndarray]:
    lk.utils.clear_session()
    lk.utils.set_random_seed(1)
    x, y = make_data(90, 3, seed=7)
    model = build(3, dropout=0.2)  # a resumed run must repeat the same masks on each rank
    model.compile(
        optimizer="adam",
        loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model, x, y


class CrashAt(lk.callbacks.Callback):
    """Raises on one rank at the end of one epoch (after the backup of that epoch)."""

    def __init__(self, rank: int, epoch: int) -> None:
        super().__init__()
        self.rank, self.epoch = rank, epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.model.distribute.rank == self.rank and epoch == self.epoch:
            raise RuntimeError(f"simulated failure on rank {self.rank} at epoch {epoch}")


def checkpoints(strategy, directory: str, crash: bool = False) -> None:
    """Four epochs with ModelCheckpoint, CSVLogger and BackupAndRestore; each rank works in
    its own folder, so a file written by any rank but 0 shows up. With ``crash``, rank 1
    fails at the end of epoch 1; running again resumes from rank 0's backup."""
    home = os.path.join(directory, f"rank{strategy.rank}")
    os.makedirs(home, exist_ok=True)
    os.chdir(home)
    model, x, y = checkpointed_model()
    callbacks = [
        lk.callbacks.BackupAndRestore("backup"),
        lk.callbacks.ModelCheckpoint("ckpt-{epoch}.h5", monitor="loss", verbose=1),
        lk.callbacks.CSVLogger("log.csv", append=True),
    ]
    if crash:
        callbacks.append(CrashAt(rank=1, epoch=1))
    history = model.fit(
        x, y, batch_size=16, epochs=4, callbacks=callbacks, verbose=0, distribute=strategy
    )
    result = {"weights": model.get_weights(), "history": history.history}
    # A callback that stops only on rank 1 must stop every rank at the same epoch.
    stopper = lk.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: setattr(
            model, "stop_training", strategy.rank == 1 and epoch == 1
        )
    )
    again = model.fit(x, y, batch_size=16, epochs=5, callbacks=[stopper], distribute=strategy)
    result["stopped_after"] = len(again.epoch)
    dump(directory, "checkpoints", strategy.rank, result)


# Mid-epoch backups: 100 samples in batches of 15 (8 + 7 rows on 2 ranks; the last batch
# of 10), so 7 steps an epoch, backed up every 4 batches (counted across epochs). The
# interrupted run stops on every rank at global batch 13 (epoch 1, step 5), after the
# backup of global batch 12 (epoch 1, 5 steps done): the resumed run starts at step 5.
MID_EPOCH = dict(n=100, batch=15, epochs=3, save_freq=4, stop_after=13)


class StopAtBatch(lk.callbacks.Callback):
    """Raises on every rank at the end of the ``after``-th batch of the run (from 1)."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after, self.batches = after, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.batches == self.after:
            rank = self.model.distribute.rank
            raise RuntimeError(f"simulated stop on rank {rank} after batch {self.after}")


class StepRecorder(lk.callbacks.Callback):
    """Records, per (epoch, step): the optimizer's steps when it begins, and the global
    running logs and the weights when it ends."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch, self.began, self.ended = None, [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.began.append((self.epoch, batch, self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        self.ended.append((self.epoch, batch, dict(logs), self.model.get_weights()))


def mid_epoch(strategy, directory: str, mode: str) -> dict:
    """``mid_epoch``: an uninterrupted run with BackupAndRestore(save_freq=4);
    ``mid_epoch_interrupted``: the same, stopped at global batch 13 on every rank;
    ``mid_epoch_resumed``: the same arguments again (resumes from rank 0's backup).
    Dumps what each rank ends with; with ``strategy=None`` (one process, in the test)
    returns it instead."""
    config = MID_EPOCH
    lk.utils.clear_session()
    lk.utils.set_random_seed(3)
    x, y = make_data(config["n"], 3, seed=9)
    # Dropout: each rank draws its shard's part (8 and 7 rows) of the global batch's
    # masks, from the generator every rank shares: a backup holds it, for any ranks.
    model = build(3, dropout=0.3)
    model.compile(
        optimizer="adam",
        loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    backup = os.path.join(directory, "backup")  # rank 0 alone reads and writes it
    recorder = StepRecorder()
    callbacks = [lk.callbacks.BackupAndRestore(backup, save_freq=config["save_freq"]), recorder]
    if mode == "mid_epoch_interrupted":
        callbacks.append(StopAtBatch(config["stop_after"]))
    history = model.fit(
        x,
        y,
        batch_size=config["batch"],
        epochs=config["epochs"],
        callbacks=callbacks,
        verbose=0,
        distribute=strategy,
    )
    result = {
        "weights": model.get_weights(),
        "epochs": history.epoch,
        "history": history.history,
        "began": recorder.began,
        "ended": recorder.ended,
    }
    if strategy is not None:
        dump(directory, mode, strategy.rank, result)
    return result


def fail(strategy, how: str) -> None:
    """Breaks one rank in the middle of an epoch: ``raise``, ``kill`` or ``mismatch``."""
    lk.utils.set_random_seed(0)
    x, y = make_data(3000, 3, seed=8)
    if how == "mismatch" and strategy.rank == 1:
        x, y = x[:-1], y[:-1]  # different data on one rank: refused before training
    model = build(3)
    model.compile(optimizer="adam", loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True))

    def on_batch_end(batch, logs):
        if batch == 3 and strategy.rank == strategy.size - 1:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise ValueError(f"simulated error on rank {strategy.rank} at batch {batch}")

    callback = lk.callbacks.LambdaCallback(on_train_batch_end=on_batch_end)
    model.fit(x, y, batch_size=8, epochs=50, callbacks=[callback], distribute=strategy)
    print(f"rank {strategy.rank} finished training", flush=True)  # must never be reached


def main() -> None:
    mode, directory = sys.argv[1], os.path.abspath(sys.argv[2])
    strategy = lk.distributed.MPI()
    if mode == "equivalence":
        equivalence(strategy, directory)
    elif mode in ("checkpoints", "interrupted", "resumed"):
        checkpoints(strategy, directory, crash=mode == "interrupted")
    elif mode in ("mid_epoch", "mid_epoch_interrupted", "mid_epoch_resumed"):
        mid_epoch(strategy, directory, mode)
    elif mode in ("raise", "kill", "mismatch"):
        fail(strategy, mode)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
