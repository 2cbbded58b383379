"""lk.callbacks.TensorBoard: event files that TensorBoard itself reads, with Keras 3's tags,
steps and values.

Every file is read back through TensorBoard's own stack: the event multiplexer and data
provider its server uses, and its graph plugin for the model's structure. Keras 3's
TensorBoard callback needs TensorFlow's ``tf.summary``; the comparison test runs the real
callback with a recording stand-in for ``tf.summary`` (put in ``sys.modules`` only for that
fit) and checks that layerkit writes the same tags at the same steps with the same values.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

import layerkit as lk

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --- reading back with TensorBoard ------------------------------------------------------------
def provider(log_dir):
    """TensorBoard's server-side view of ``log_dir``: the multiplexer and data provider."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(log_dir))
    multiplexer.Reload()
    return data_provider.MultiplexerDataProvider(
        multiplexer, str(log_dir)
    ), context.RequestContext()


def read_scalars(log_dir) -> dict[str, dict[str, list[tuple[int, float]]]]:
    data, ctx = provider(log_dir)
    scalars = data.read_scalars(ctx, experiment_id="", plugin_name="scalars", downsample=10**6)
    return {
        run: {tag: [(p.step, p.value) for p in points] for tag, points in tags.items()}
        for run, tags in scalars.items()
    }


def read_tensors(log_dir, plugin: str) -> dict[str, dict[str, list[tuple[int, np.ndarray]]]]:
    data, ctx = provider(log_dir)
    tensors = data.read_tensors(ctx, experiment_id="", plugin_name=plugin, downsample=10**6)
    return {
        run: {tag: [(p.step, p.numpy) for p in points] for tag, points in tags.items()}
        for run, tags in tensors.items()
    }


def read_images(log_dir) -> dict[tuple[str, str, int], np.ndarray]:
    """The Images tab's data: ``(run, tag, step) -> uint8 pixels`` decoded from the PNG,
    checked against the width and height stored beside it."""
    from matplotlib.image import imread

    data, ctx = provider(log_dir)
    sequences = data.read_blob_sequences(
        ctx, experiment_id="", plugin_name="images", downsample=10**6
    )
    images = {}
    for run, tags in sequences.items():
        for tag, points in tags.items():
            for point in points:
                width, height, encoded = (
                    data.read_blob(ctx, blob_key=v.blob_key) for v in point.values
                )
                pixels = np.round(imread(io.BytesIO(encoded), format="png") * 255).astype(np.uint8)
                assert pixels.shape == (int(height), int(width))
                images[(run, tag, point.step)] = pixels
    return images


def conceptual_graph(log_dir) -> dict[str, list[str]]:
    """What TensorBoard's Graphs tab draws: node name -> its inputs, from the graph
    plugin's own handler (``graph_impl``, conceptual graph of run ``train``, tag ``keras``)."""
    from google.protobuf import text_format
    from tensorboard.compat.proto import graph_pb2
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.graph import graphs_plugin

    data, ctx = provider(log_dir)
    plugin = graphs_plugin.GraphsPlugin(
        base_plugin.TBContext(data_provider=data, logdir=str(log_dir))
    )
    info = plugin.info_impl(ctx, "")
    assert info["train"]["tags"]["keras"]["conceptual_graph"] is True
    body, mime = plugin.graph_impl(ctx, "train", "keras", True, "")
    assert mime == "text/x-protobuf"
    graph = text_format.Parse(body, graph_pb2.GraphDef())
    return {node.name: list(node.input) for node in graph.node}


# --- models ---------------------------------------------------------------------------------
def small_data(n=40, features=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64")
    return x, y


def small_model(learning_rate=0.1) -> lk.Sequential:
    model = lk.Sequential(
        [
            lk.layers.Input((4,)),
            lk.layers.Dense(3, activation="relu", name="dense"),
            lk.layers.Dense(2, activation="softmax", name="dense_1"),
        ],
        name="sequential",
    )
    model.compile(lk.optim.SGD(learning_rate), "sparse_categorical_crossentropy", ["accuracy"])
    return model


def wide_and_deep() -> lk.Model:
    wide = lk.layers.Input((5,), name="wide_input")
    deep = lk.layers.Input((6,), name="deep_input")
    hidden1 = lk.layers.Dense(8, activation="relu", name="hidden1")(deep)
    hidden2 = lk.layers.Dense(8, activation="relu", name="hidden2")(hidden1)
    output = lk.layers.Dense(1, name="output")(lk.layers.concatenate([wide, hidden2]))
    model = lk.Model([wide, deep], output)
    model.compile("sgd", "mse")
    return model


# --- Keras 3's callback, with a recording tf.summary -------------------------------------------
class RecordingSummary:
    """What Keras's TensorBoard callback calls on ``tensorflow.summary``, recorded as
    ``(run folder, tag, step) -> value`` with TF's default-writer and record_if rules."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str, int], np.ndarray] = {}
        self._writer = None
        self._condition = True
        module = types.ModuleType("tensorflow.summary")
        module.create_file_writer = self._create_file_writer
        module.record_if = self._record_if
        module.scalar = self._write
        module.histogram = self._write
        module.image = self._write
        self.module = module

    def _create_file_writer(self, folder):
        recorder = self

        class Writer:
            @contextlib.contextmanager
            def as_default(self, step=None):
                previous = recorder._writer
                recorder._writer = os.path.basename(folder)
                try:
                    yield
                finally:
                    recorder._writer = previous

            def flush(self):
                pass

            def close(self):
                pass

        return Writer()

    @contextlib.contextmanager
    def _record_if(self, condition):
        previous, self._condition = self._condition, condition
        try:
            yield
        finally:
            self._condition = previous

    def _write(self, name, data, step=None):
        condition = self._condition() if callable(self._condition) else self._condition
        if self._writer is None or not condition:
            return False
        value = np.asarray(data.numpy() if hasattr(data, "numpy") else data, dtype=np.float64)
        self.records[(self._writer, name, int(np.asarray(step)))] = value
        return True


def test_same_tags_steps_and_values_as_keras(keras, tmp_path, monkeypatch):
    """The real Keras 3 callback on the same model, weights, data and optimizer: every
    (run, tag, step) it writes, layerkit writes, with the same value; the histograms are
    of the same weights."""
    x, y = small_data()
    model = small_model()
    k_model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, activation="relu", name="dense"),
            keras.layers.Dense(2, activation="softmax", name="dense_1"),
        ],
        name="sequential",
    )
    k_model.set_weights(model.get_weights())
    k_model.compile(
        keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    recording = RecordingSummary()
    monkeypatch.setitem(sys.modules, "tensorflow", types.SimpleNamespace(summary=recording.module))
    monkeypatch.setitem(sys.modules, "tensorflow.summary", recording.module)
    # Every batch: with update_freq=N, Keras's record_if left from the last batch also
    # drops its epoch and evaluation summaries unless that batch's count is a multiple of N
    # (layerkit writes them whatever N).
    arguments = {"batch_size": 10, "epochs": 3, "validation_split": 0.25, "shuffle": False}
    k_model.fit(
        x,
        y,
        verbose=0,
        callbacks=[
            keras.callbacks.TensorBoard(
                str(tmp_path / "keras"),
                histogram_freq=2,
                write_graph=False,
                write_images=True,
                update_freq="batch",
            )
        ],
        **arguments,
    )
    monkeypatch.undo()
    log_dir = tmp_path / "layerkit"
    model.fit(
        x,
        y,
        verbose=0,
        callbacks=[
            lk.callbacks.TensorBoard(
                log_dir, histogram_freq=2, write_images=True, update_freq="batch"
            )
        ],
        **arguments,
    )
    scalars = read_scalars(log_dir)
    histograms = read_tensors(log_dir, "histograms")
    images = read_images(log_dir)
    expected = recording.records
    # 9 batches x 2 + 3 epochs x (3 train + 2 validation + 2 evaluation)
    # + 2 epochs x 4 weights x (histogram + image).
    assert len(expected) == 18 + 21 + 16
    ours = {
        (run, tag, step): value
        for run, tags in scalars.items()
        for tag, points in tags.items()
        for step, value in points
    }
    our_histograms = {
        (run, tag, step): value
        for run, tags in histograms.items()
        for tag, points in tags.items()
        for step, value in points
    }
    assert set(ours) | set(our_histograms) | set(images) == set(expected)
    worst = 0.0
    for key, value in expected.items():
        if key in ours:
            worst = max(worst, abs(ours[key] - float(value)))
        elif key in images:  # Keras passes [1, height, width, 1] floats to tf.summary.image,
            # which converts them to bytes with convert_image_dtype(saturate=True).
            assert value.shape[0] == value.shape[-1] == 1
            grey = np.clip(value[0, :, :, 0] * 255.5, 0, 255).astype(np.uint8)
            np.testing.assert_array_equal(images[key], grey)
        else:  # Keras recorded the weight itself: layerkit's buckets are of the same values
            buckets = our_histograms[key]
            assert buckets.shape == (30, 3)
            assert buckets[:, 2].sum() == value.size
            np.testing.assert_allclose(buckets[0, 0], value.min(), rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(buckets[-1, 1], value.max(), rtol=1e-6, atol=1e-7)
    assert worst < 1e-5, worst


def test_epoch_scalars_histograms_and_summary_read_back(tmp_path, fresh_session):
    x, y = small_data(60)
    model = small_model()
    log_dir = tmp_path / "logs"
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=3,
        validation_split=0.2,
        verbose=0,
        callbacks=[lk.callbacks.TensorBoard(log_dir, histogram_freq=1)],
    )
    assert sorted(os.listdir(log_dir)) == ["train", "validation"]
    scalars = read_scalars(log_dir)
    train, validation = scalars["train"], scalars["validation"]
    assert set(train) == {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"}
    for name in ("loss", "accuracy"):
        assert [s for s, _ in train[f"epoch_{name}"]] == [0, 1, 2]
        np.testing.assert_allclose(
            [v for _, v in train[f"epoch_{name}"]], history.history[name], rtol=1e-6
        )
        np.testing.assert_allclose(
            [v for _, v in validation[f"epoch_{name}"]], history.history[f"val_{name}"], rtol=1e-6
        )
        # After each validation pass, at the optimizer's step count (3 steps an epoch).
        points = validation[f"evaluation_{name}_vs_iterations"]
        assert [s for s, _ in points] == [3, 6, 9]
        np.testing.assert_allclose(
            [v for _, v in points], history.history[f"val_{name}"], rtol=1e-6
        )
    np.testing.assert_allclose([v for _, v in train["epoch_learning_rate"]], [0.1] * 3, rtol=1e-7)
    histograms = read_tensors(log_dir, "histograms")["train"]
    assert set(histograms) == {f"sequential/{p.name}/histogram" for p in model.weights}
    for weight in model.weights:  # the last histogram is of the final weights
        steps = histograms[f"sequential/{weight.name}/histogram"]
        assert [s for s, _ in steps] == [0, 1, 2]
        buckets = steps[-1][1]
        assert buckets[:, 2].sum() == weight.value.size
        assert buckets[0, 0] == pytest.approx(float(weight.value.min()), rel=1e-6)
        assert buckets[-1, 1] == pytest.approx(float(weight.value.max()), rel=1e-6)
    text = read_tensors(log_dir, "text")["train"]["model_summary"]
    assert [s for s, _ in text] == [0]
    summary = text[0][1].item().decode()
    lines = []
    model.summary(print_fn=lines.append)
    assert summary.splitlines() == ["    " + line for line in "\n".join(lines).splitlines()]
    graph = conceptual_graph(log_dir)
    assert graph == {
        "sequential/input_layer": [],
        "sequential/dense": ["sequential/input_layer"],
        "sequential/dense_1": ["sequential/dense"],
    }


def test_histogram_buckets_are_tensorboards(rng):
    from tensorboard.plugins.histogram.summary_v2 import histogram_pb
    from tensorboard.util import tensor_util

    from layerkit.callbacks.tensorboard import histogram_buckets

    for data in (
        rng.normal(size=(50, 7)).astype("float32"),
        rng.integers(-3, 4, size=200),
        np.full(9, 0.25),
        np.zeros(0),
        np.array([1.0, 2.0]),
    ):
        expected = tensor_util.make_ndarray(histogram_pb("t", data).value[0].tensor)
        np.testing.assert_array_equal(histogram_buckets(data), expected)


def test_batch_summaries_every_update_freq(tmp_path, fresh_session):
    x, y = small_data(50)
    seen: list[dict] = []
    model = small_model()
    recorder = lk.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(dict(logs))
    )
    model.fit(
        x,
        y,
        batch_size=10,
        epochs=2,
        verbose=0,
        callbacks=[recorder, lk.callbacks.TensorBoard(tmp_path / "every3", update_freq=3)],
    )
    train = read_scalars(tmp_path / "every3")["train"]
    # Batches counted across epochs from 1: 3, 6, 9 of 10.
    for name in ("loss", "accuracy"):
        assert [s for s, _ in train[f"batch_{name}"]] == [3, 6, 9]
        np.testing.assert_allclose(
            [v for _, v in train[f"batch_{name}"]], [seen[s - 1][name] for s in (3, 6, 9)]
        )
    model.fit(
        x,
        y,
        batch_size=25,
        epochs=2,
        verbose=0,
        callbacks=[lk.callbacks.TensorBoard(tmp_path / "batch", update_freq="batch")],
    )
    train = read_scalars(tmp_path / "batch")["train"]
    assert [s for s, _ in train["batch_loss"]] == [1, 2, 3, 4]
    assert [s for s, _ in train["epoch_loss"]] == [0, 1]
    model.fit(
        x,
        y,
        batch_size=25,
        epochs=1,
        verbose=0,
        callbacks=[
            lk.callbacks.TensorBoard(
                tmp_path / "speed", update_freq="batch", write_steps_per_second=True
            )
        ],
    )
    train = read_scalars(tmp_path / "speed")["train"]
    assert [s for s, _ in train["batch_steps_per_second"]] == [1, 2]
    assert [s for s, _ in train["epoch_steps_per_second"]] == [0]
    assert all(v > 0 for _, v in train["batch_steps_per_second"] + train["epoch_steps_per_second"])
    assert not os.path.exists(tmp_path / "batch" / "validation")  # no validation data


def test_graph_model_drawn_by_tensorboard(tmp_path, fresh_session, rng):
    model = wide_and_deep()
    x = {"wide_input": rng.normal(size=(8, 5)), "deep_input": rng.normal(size=(8, 6))}
    model.fit(
        x,
        rng.normal(size=(8, 1)),
        epochs=1,
        verbose=0,
        callbacks=[lk.callbacks.TensorBoard(tmp_path, histogram_freq=1)],
    )
    graph = conceptual_graph(tmp_path)
    assert graph == {
        "functional/deep_input": [],
        "functional/hidden1": ["functional/deep_input"],
        "functional/wide_input": [],
        "functional/hidden2": ["functional/hidden1"],
        "functional/concatenate": ["functional/wide_input", "functional/hidden2"],
        "functional/output": ["functional/concatenate"],
    }
    histograms = read_tensors(tmp_path, "histograms")["train"]
    assert set(histograms) == {f"{p.name}/histogram" for p in model.weights}  # as Keras: no prefix


def test_evaluate_alone_writes_evaluation_scalars(tmp_path, fresh_session):
    x, y = small_data(30)
    model = small_model()
    model.fit(x, y, batch_size=10, epochs=1, verbose=0)
    result = model.evaluate(
        x, y, return_dict=True, callbacks=[lk.callbacks.TensorBoard(tmp_path, write_graph=False)]
    )
    scalars = read_scalars(tmp_path)
    assert list(scalars) == ["validation"]
    assert scalars["validation"]["evaluation_loss_vs_iterations"] == [
        (3, pytest.approx(result["loss"], rel=1e-6))
    ]


def test_a_crash_mid_epoch_leaves_readable_files(tmp_path):
    """A process killed in its second epoch (os._exit: no cleanup, no close) leaves the
    first epoch's summaries and the second epoch's batches so far on disk."""
    script = tmp_path / "crash.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, sys, time
            sys.path.insert(0, {ROOT!r})
            import numpy as np
            import layerkit as lk

            lk.utils.set_random_seed(0)
            x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
            y = (x[:, 0] > 0).astype("int64")
            model = lk.Sequential([lk.layers.Input((4,)), lk.layers.Dense(2, activation="softmax")])
            model.compile("sgd", "sparse_categorical_crossentropy")

            def crash(batch, logs):
                if model.optimizer.iterations == 6:  # epoch 2, batch 2 of 4
                    time.sleep(1.5)  # the writer's thread flushes every second
                    os._exit(3)

            model.fit(x, y, batch_size=10, epochs=3, validation_data=(x, y), verbose=0,
                      callbacks=[lk.callbacks.TensorBoard({str(tmp_path / "logs")!r},
                                                          update_freq=1),
                                 lk.callbacks.LambdaCallback(on_train_batch_end=crash)])
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 3, result.stderr[-2000:]
    scalars = read_scalars(tmp_path / "logs")
    assert [s for s, _ in scalars["train"]["epoch_loss"]] == [0]
    assert [s for s, _ in scalars["validation"]["epoch_loss"]] == [0]
    assert [s for s, _ in scalars["train"]["batch_loss"]] == [1, 2, 3, 4, 5, 6]


def test_an_exception_mid_epoch_then_a_new_fit(tmp_path, fresh_session):
    x, y = small_data(40)
    model = small_model()
    tensorboard = lk.callbacks.TensorBoard(tmp_path)

    def fail(epoch, logs):
        if epoch == 1:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        model.fit(
            x,
            y,
            epochs=3,
            verbose=0,
            callbacks=[lk.callbacks.LambdaCallback(on_epoch_begin=fail), tensorboard],
        )
    assert [s for s, _ in read_scalars(tmp_path)["train"]["epoch_loss"]] == [0]
    # The same callback in the next fit: the stale writer is closed, a new file started.
    model.fit(x, y, epochs=2, verbose=0, callbacks=[tensorboard])
    files = os.listdir(tmp_path / "train")
    assert len(files) == 2
    assert all(f.startswith("events.out.tfevents.") for f in files)
    # Both files are read (in file-name order, which need not be the order written).
    assert sorted(s for s, _ in read_scalars(tmp_path)["train"]["epoch_loss"]) == [0, 0, 1]


def test_missing_tensorboard_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboard.summary.writer.event_file_writer", None)
    with pytest.raises(ImportError, match=r"layerkit\[tensorboard\]"):
        lk.callbacks.TensorBoard(tmp_path / "logs")
    assert not os.path.exists(tmp_path / "logs")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"update_freq": "often"}, "update_freq='often'"),
        ({"update_freq": 0}, "update_freq=0"),
        ({"update_freq": 2.5}, "update_freq=2.5"),
        ({"histogram_freq": -1}, "histogram_freq=-1"),
        ({"histogram_freq": True}, "histogram_freq=True"),
        ({"profile_batch": "2,x"}, "profile_batch='2,x'"),
        ({"profile_batch": (5, 2)}, "profile_batch=(5, 2)"),
        ({"profile_batch": -1}, "profile_batch=-1"),
        ({"embeddings_freq": 1}, "embeddings_freq=1"),
        ({"log_dir": ""}, "log_dir=''"),
    ],
)
def test_bad_arguments_are_refused_before_writing(tmp_path, arguments, message):
    arguments = {"log_dir": tmp_path / "logs", **arguments}
    with pytest.raises(ValueError, match=re.escape("Received: " + message)) as error:
        lk.callbacks.TensorBoard(**arguments)
    assert "expected" in str(error.value).lower() or "must be" in str(error.value)
    assert not os.path.exists(tmp_path / "logs")


def test_profile_batch_is_accepted_with_a_warning(tmp_path):
    """Hands-On ML passes profile_batch=(100, 200): training runs, without a profile."""
    with pytest.warns(UserWarning, match=r"profile_batch=\(100, 200\) is ignored"):
        tensorboard = lk.callbacks.TensorBoard(tmp_path, profile_batch=(100, 200))
    x, y = small_data(20)
    small_model().fit(x, y, epochs=1, verbose=0, callbacks=[tensorboard])
    assert [s for s, _ in read_scalars(tmp_path)["train"]["epoch_loss"]] == [0]


def test_only_rank_zero_writes_under_mpi(tmp_path):
    """Two MPI ranks train together with one TensorBoard each on one folder: one event
    file per folder (rank 0's), holding the logs both ranks agree on."""
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.isfile(mpiexec):
        pytest.fail(f"No mpiexec next to {sys.executable}: pip install -e '.[test,mpi]'")
    script = tmp_path / "ranks.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, sys
            sys.path.insert(0, {ROOT!r})
            import numpy as np
            import layerkit as lk

            strategy = lk.distributed.MPI()
            lk.utils.set_random_seed(0)
            x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
            y = (x[:, 0] > 0).astype("int64")
            model = lk.Sequential([lk.layers.Input((4,)), lk.layers.Dense(2, activation="softmax")])
            model.compile("sgd", "sparse_categorical_crossentropy")
            history = model.fit(x, y, batch_size=10, epochs=2, validation_split=0.25, verbose=0,
                                distribute=strategy, callbacks=[lk.callbacks.TensorBoard(
                                    {str(tmp_path / "logs")!r}, histogram_freq=1, update_freq=2)])
            with open({str(tmp_path)!r} + f"/history{{strategy.rank}}.json", "w") as f:
                json.dump(history.history, f)
            """
        )
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    result = subprocess.run(
        [mpiexec, "-n", "2", sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for folder in ("train", "validation"):
        assert len(os.listdir(tmp_path / "logs" / folder)) == 1
    with open(tmp_path / "history0.json") as f:
        history = json.load(f)
    scalars = read_scalars(tmp_path / "logs")
    np.testing.assert_allclose(
        [v for _, v in scalars["train"]["epoch_loss"]], history["loss"], rtol=1e-6
    )
    np.testing.assert_allclose(
        [v for _, v in scalars["validation"]["epoch_loss"]], history["val_loss"], rtol=1e-6
    )
    assert [s for s, _ in scalars["train"]["batch_loss"]] == [2, 4, 6]  # of 6 batches
    assert (
        len(
            read_tensors(tmp_path / "logs", "histograms")["train"][
                "sequential/dense/kernel/histogram"
            ]
        )
        == 2
    )
