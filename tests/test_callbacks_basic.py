"""Basic callbacks: History, EarlyStopping, TerminateOnNaN, LambdaCallback, CSVLogger."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import layerkit as lk
from layerkit.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    History,
    LambdaCallback,
    TerminateOnNaN,
)
from layerkit.layers import Dense, Input


@pytest.fixture
def classifier(fresh_session):
    model = lk.Sequential(
        [Input((4,)), Dense(8, activation="tanh"), Dense(3, activation="softmax")]
    )
    model.compile(
        optimizer=lk.optim.SGD(0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


@pytest.fixture
def data(rng):
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
    return x, y


class Inject(Callback):
    """Puts a chosen value into the epoch logs (before the callbacks after it read them)
    and records the weights at the end of each epoch."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, list(values)
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]
        self.weights.append(self.model.get_weights())


# --- History -------------------------------------------------------------------------------------


def test_history_keys_and_lengths(classifier, data):
    x, y = data
    history = classifier.fit(
        x, y, batch_size=8, epochs=3, validation_data=(x[:10], y[:10]), verbose=0
    )
    assert isinstance(history, History)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in history.history.values())
    assert history.epoch == [0, 1, 2]
    assert classifier.history is history
    # the last val_ entries are the model's evaluation on the validation data at the end
    val_loss, val_acc = classifier.evaluate(x[:10], y[:10])
    assert history.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-6)
    assert history.history["val_accuracy"][-1] == pytest.approx(val_acc)
    assert all(0.0 <= a <= 1.0 for a in history.history["accuracy"])


def test_history_loss_is_the_mean_over_batches(fresh_session, rng):
    """Without shuffling and with a zero learning rate, the epoch loss is the data's loss."""
    model = lk.Sequential([Dense(2, input_dim=3)])
    model.compile(optimizer=lk.optim.SGD(0.0), loss="mse")
    x = rng.normal(size=(10, 3)).astype(np.float32)
    y = rng.normal(size=(10, 2)).astype(np.float32)
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    expected = float(np.mean((model.predict(x) - y) ** 2))
    assert history.history["loss"] == pytest.approx([expected, expected], rel=1e-5)


def test_history_with_validation_split(classifier, data):
    x, y = data
    history = classifier.fit(x, y, epochs=1, validation_split=0.25, verbose=0)
    val_loss, _ = classifier.evaluate(x[30:], y[30:])
    assert history.history["val_loss"][0] == pytest.approx(val_loss, rel=1e-6)


# --- EarlyStopping -------------------------------------------------------------------------------


def test_early_stopping_patience_on_loss(classifier, data):
    x, y = data
    values = [1.0, 0.8, 0.9, 0.85, 0.7, 0.6, 0.5, 0.4]
    stopper = EarlyStopping(monitor="score_loss", patience=2)
    history = classifier.fit(
        x, y, epochs=8, verbose=0, callbacks=[Inject("score_loss", values), stopper]
    )
    # best at epoch 1 (0.8); epochs 2 and 3 do not improve: stop at epoch 3
    assert len(history.history["loss"]) == 4
    assert stopper.stopped_epoch == 3
    assert stopper.best == 0.8
    assert stopper.best_epoch == 1


def test_early_stopping_auto_mode_is_max_for_accuracy(classifier, data):
    x, y = data
    values = [0.5, 0.6, 0.55, 0.54, 0.9, 0.95]
    stopper = EarlyStopping(monitor="val_accuracy", patience=2)
    assert stopper.mode == "max"
    history = classifier.fit(
        x,
        y,
        epochs=6,
        verbose=0,
        validation_data=(x, y),
        callbacks=[Inject("val_accuracy", values), stopper],
    )
    assert history.history["val_accuracy"] == [0.5, 0.6, 0.55, 0.54]
    assert stopper.best == 0.6
    assert EarlyStopping(monitor="val_loss").mode == "min"
    assert EarlyStopping(monitor="accuracy", mode="min").mode == "min"


def test_early_stopping_min_delta(classifier, data):
    x, y = data
    values = [1.0, 0.99, 0.98, 0.5, 0.4]
    stopper = EarlyStopping(monitor="m_loss", patience=2, min_delta=0.05)
    history = classifier.fit(
        x, y, epochs=5, verbose=0, callbacks=[Inject("m_loss", values), stopper]
    )
    assert len(history.history["loss"]) == 3  # 0.99 and 0.98 are not 0.05 better than 1.0
    assert stopper.best == 1.0


def test_early_stopping_restores_the_best_weights(classifier, data):
    x, y = data
    values = [0.9, 0.4, 0.7, 0.8, 0.6, 0.3]
    inject = Inject("val_loss", values)
    stopper = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    history = classifier.fit(x, y, epochs=6, verbose=0, callbacks=[inject, stopper])
    assert len(history.history["loss"]) == 5  # epochs 2, 3, 4 do not beat 0.4
    assert stopper.best_epoch == 1
    final = classifier.get_weights()
    for restored, best in zip(final, inject.weights[1], strict=True):
        np.testing.assert_array_equal(restored, best)
    assert not np.array_equal(final[0], inject.weights[-1][0])


def test_early_stopping_without_restore_keeps_the_last_weights(classifier, data):
    x, y = data
    inject = Inject("val_loss", [0.9, 0.4, 0.7, 0.8, 0.6, 0.3])
    classifier.fit(
        x, y, epochs=6, verbose=0, callbacks=[inject, EarlyStopping(monitor="val_loss", patience=3)]
    )
    for final, last in zip(classifier.get_weights(), inject.weights[-1], strict=True):
        np.testing.assert_array_equal(final, last)


def test_early_stopping_missing_monitor_warns(classifier, data):
    x, y = data
    with pytest.warns(UserWarning, match=r"val_loss"):
        history = classifier.fit(x, y, epochs=2, verbose=0, callbacks=[EarlyStopping()])
    assert len(history.history["loss"]) == 2


def test_early_stopping_bad_arguments():
    with pytest.raises(ValueError, match=r"mode='largest'"):
        EarlyStopping(mode="largest")
    with pytest.raises(ValueError, match=r"patience=-1"):
        EarlyStopping(patience=-1)


# --- TerminateOnNaN ------------------------------------------------------------------------------


class PoisonWeights(Callback):
    """Sets every weight to NaN at the end of training batch ``at``."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.at:
            self.model.set_weights([np.full_like(w, np.nan) for w in self.model.get_weights()])


def test_terminate_on_nan_stops_at_the_first_nan_batch(fresh_session, rng, capsys):
    model = lk.Sequential([Dense(1, input_dim=2)])
    model.compile(optimizer=lk.optim.SGD(0.01), loss="mse")
    x = rng.normal(size=(40, 2)).astype(np.float32)
    y = rng.normal(size=(40, 1)).astype(np.float32)
    batches = []
    recorder = LambdaCallback(
        on_train_batch_end=lambda batch, logs: batches.append((batch, logs["loss"]))
    )
    with pytest.warns(RuntimeWarning, match=r"nan"):
        history = model.fit(
            x,
            y,
            batch_size=4,
            epochs=3,
            shuffle=False,
            verbose=0,
            callbacks=[PoisonWeights(at=2), recorder, TerminateOnNaN()],
        )
    # batches 0, 1, 2 are finite; batch 3 sees NaN weights and training stops there
    assert [b for b, _ in batches] == [0, 1, 2, 3]
    assert all(np.isfinite(loss) for _, loss in batches[:3])
    assert np.isnan(batches[3][1])
    assert model.stop_training is True
    assert len(history.history["loss"]) == 1
    assert "Batch 3: Invalid loss" in capsys.readouterr().out


def test_without_terminate_on_nan_training_continues(fresh_session, rng):
    model = lk.Sequential([Dense(1, input_dim=2)])
    model.compile(optimizer=lk.optim.SGD(0.01), loss="mse")
    x = rng.normal(size=(8, 2)).astype(np.float32)
    y = rng.normal(size=(8, 1)).astype(np.float32)
    with pytest.warns(RuntimeWarning, match=r"TerminateOnNaN"):
        history = model.fit(
            x, y, batch_size=4, epochs=2, verbose=0, callbacks=[PoisonWeights(at=0)]
        )
    assert len(history.history["loss"]) == 2
    assert np.isnan(history.history["loss"][-1])


# --- LambdaCallback ------------------------------------------------------------------------------


def test_lambda_callback_hooks_are_called(classifier, data):
    x, y = data
    events = []
    callback = LambdaCallback(
        on_train_begin=lambda logs: events.append(("train_begin",)),
        on_epoch_begin=lambda epoch, logs: events.append(("epoch_begin", epoch)),
        on_train_batch_begin=lambda batch, logs: events.append(("batch_begin", batch)),
        on_train_batch_end=lambda batch, logs: events.append(("batch_end", batch, sorted(logs))),
        on_epoch_end=lambda epoch, logs: events.append(("epoch_end", epoch)),
        on_train_end=lambda logs: events.append(("train_end",)),
    )
    classifier.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[callback])
    per_epoch = [
        ("batch_begin", 0),
        ("batch_end", 0, ["accuracy", "loss"]),
        ("batch_begin", 1),
        ("batch_end", 1, ["accuracy", "loss"]),
        ("batch_begin", 2),
        ("batch_end", 2, ["accuracy", "loss"]),
    ]
    assert events == [
        ("train_begin",),
        ("epoch_begin", 0),
        *per_epoch,
        ("epoch_end", 0),
        ("epoch_begin", 1),
        *per_epoch,
        ("epoch_end", 1),
        ("train_end",),
    ]


def test_lambda_callback_batch_logs_are_running_means(fresh_session, rng):
    model = lk.Sequential([Dense(1, input_dim=2)])
    model.compile(optimizer=lk.optim.SGD(0.0), loss="mse")
    x = rng.normal(size=(12, 2)).astype(np.float32)
    y = rng.normal(size=(12, 1)).astype(np.float32)
    losses = []
    model.fit(
        x,
        y,
        batch_size=4,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[LambdaCallback(on_train_batch_end=lambda b, logs: losses.append(logs["loss"]))],
    )
    per_sample = ((model.predict(x) - y) ** 2).ravel()
    expected = [per_sample[: 4 * (k + 1)].mean() for k in range(3)]
    assert losses == pytest.approx(expected, rel=1e-5)


def test_lambda_callback_unknown_hook():
    with pytest.raises(ValueError, match=r"on_batch_finish"):
        LambdaCallback(on_batch_finish=print)


def test_non_callback_is_rejected(classifier, data):
    x, y = data
    with pytest.raises(TypeError, match=r"Callback"):
        classifier.fit(x, y, epochs=1, verbose=0, callbacks=[lambda: None])


# --- CSVLogger -----------------------------------------------------------------------------------


def test_csv_logger_header_and_rows(classifier, data, tmp_path):
    x, y = data
    path = tmp_path / "log.csv"
    history = classifier.fit(
        x, y, epochs=3, verbose=0, validation_data=(x, y), callbacks=[CSVLogger(path)]
    )
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(rows) == 4
    assert [row[0] for row in rows[1:]] == ["0", "1", "2"]
    for epoch, row in enumerate(rows[1:]):
        for key, cell in zip(rows[0][1:], row[1:], strict=True):
            assert float(cell) == pytest.approx(history.history[key][epoch], rel=1e-9)


def test_csv_logger_append_writes_one_header(classifier, data, tmp_path):
    x, y = data
    path = tmp_path / "log.csv"
    classifier.fit(x, y, epochs=2, verbose=0, callbacks=[CSVLogger(path)])
    classifier.fit(x, y, epochs=1, verbose=0, callbacks=[CSVLogger(path, append=True)])
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,accuracy,loss"
    assert len(lines) == 4
    assert sum(line.startswith("epoch") for line in lines) == 1


def test_csv_logger_separator(classifier, data, tmp_path):
    x, y = data
    path = tmp_path / "log.tsv"
    classifier.fit(x, y, epochs=1, verbose=0, callbacks=[CSVLogger(path, separator="\t")])
    assert path.read_text().splitlines()[0] == "epoch\taccuracy\tloss"
