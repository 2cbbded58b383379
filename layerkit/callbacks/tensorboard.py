"""TensorBoard: training curves, weight histograms and the model's graph as event files.

The files are written with the ``tensorboard`` package's own event-file writer
(``tensorboard.summary.writer.event_file_writer.EventFileWriter``, the one PyTorch's
``SummaryWriter`` uses): it needs no TensorFlow, frames each record with TensorBoard's
checksums, and is maintained with the reader. The summaries are the ones TensorFlow 2
writes for Keras (tensor summaries tagged with the ``scalars``, ``histograms``,
``text`` and ``graph_keras_model`` plugins), built with the package's ``*_pb`` helpers,
so TensorBoard shows a layerkit run as it shows a Keras one.
"""

from __future__ import annotations

import json
import os
import struct
import time
import warnings
import zlib
from numbers import Real
from typing import Any

import numpy as np

from ..distributed import is_chief
from .base import Callback

_INSTALL_HINT = "pip install 'layerkit[tensorboard]' (or tensorboard)"
DEFAULT_BUCKET_COUNT = 30  # tf.summary.histogram's default


def _tensorboard():
    """The pieces of the ``tensorboard`` package the writer needs, or an ImportError
    that names the extra."""
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.histogram import metadata as histogram_metadata
        from tensorboard.plugins.image import metadata as image_metadata
        from tensorboard.plugins.scalar.summary_v2 import scalar_pb
        from tensorboard.plugins.text.summary_v2 import text_pb
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        from tensorboard.util import tensor_util
    except ImportError as error:
        raise ImportError(
            f"lk.callbacks.TensorBoard needs the tensorboard package: {_INSTALL_HINT}. ({error})"
        ) from error
    return {
        "Event": event_pb2.Event,
        "Summary": summary_pb2.Summary,
        "SummaryMetadata": summary_pb2.SummaryMetadata,
        "histogram_metadata": histogram_metadata,
        "image_metadata": image_metadata,
        "scalar_pb": scalar_pb,
        "text_pb": text_pb,
        "EventFileWriter": EventFileWriter,
        "tensor_util": tensor_util,
    }


def histogram_buckets(values: np.ndarray, bucket_count: int = DEFAULT_BUCKET_COUNT) -> np.ndarray:
    """TensorBoard's histogram of ``values``: a ``(bucket_count, 3)`` float64 array of
    ``(left edge, right edge, count)`` rows, as ``tf.summary.histogram`` computes it.

    The range ``[min, max]`` is cut into ``bucket_count`` equal buckets; a value falls in
    bucket ``floor((v - min) / width)``, the maximum in the last one. When every value is
    the same, all edges are that value and the last bucket holds the count. Non-finite
    values are left out (they have no bucket). Counting is one ``bincount``, so a large
    kernel costs O(n) memory, not O(n x buckets).
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        return np.zeros((bucket_count, 3))
    low, high = float(data.min()), float(data.max())
    if high == low:
        counts = np.zeros(bucket_count)
        counts[-1] = data.size
        edges = np.full(bucket_count, low)
        return np.stack([edges, edges, counts], axis=1)
    width = (high - low) / bucket_count
    index = np.minimum(np.floor((data - low) / width).astype(np.int64), bucket_count - 1)
    counts = np.bincount(index, minlength=bucket_count).astype(np.float64)
    edges = np.linspace(low, high, bucket_count + 1)
    return np.stack([edges[:-1], edges[1:], counts], axis=1)


def weight_image(values: np.ndarray) -> np.ndarray | None:
    """A weight as Keras's ``write_images`` shows it, or None (shapes it cannot show): a
    bias as one column, a kernel with its longer axis across (transposed when taller
    than wide), values mapped to grey levels as ``tf.summary.image`` maps floats: those in
    ``[0, 1]`` scaled by 255.5 and truncated, those outside clipped to black or white."""
    image = np.squeeze(np.asarray(values, dtype=np.float64))
    if image.ndim == 1:
        image = image[:, None]
    elif image.ndim == 2:
        if image.shape[0] > image.shape[1]:
            image = image.T
    else:
        return None
    image = np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(image * 255.5, 0, 255).astype(np.uint8)


def png(pixels: np.ndarray) -> bytes:
    """``pixels`` (``uint8``, ``(height, width)``) as a grayscale PNG file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    height, width = pixels.shape
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels], axis=1)  # filter 0
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def _scalar(value: Any) -> float | None:
    """``value`` as a float when it is a real number (not a bool), else None."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        return None
    return float(value)


class _RunWriter:
    """One folder of a run (``train/`` or ``validation/``): one event file, summaries
    by tag and step."""

    def __init__(self, folder: str, tb: dict) -> None:
        self._tb = tb
        # flush_secs=1: the writer's thread puts what is queued on disk within a second,
        # so a run killed mid-epoch still leaves its batch scalars readable.
        self._writer = tb["EventFileWriter"](folder, max_queue_size=100, flush_secs=1)

    def _write(self, summary, step: int) -> None:
        event = self._tb["Event"](wall_time=time.time(), step=int(step), summary=summary)
        self._writer.add_event(event)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self._write(self._tb["scalar_pb"](tag, np.float32(value)), step)

    def histogram(self, tag: str, values: np.ndarray, step: int) -> None:
        tb = self._tb
        tensor = tb["tensor_util"].make_tensor_proto(histogram_buckets(values), dtype=np.float64)
        summary = tb["Summary"]()
        summary.value.add(
            tag=tag,
            metadata=tb["histogram_metadata"].create_summary_metadata(
                display_name=None, description=None
            ),
            tensor=tensor,
        )
        self._write(summary, step)

    def image(self, tag: str, pixels: np.ndarray, step: int) -> None:
        """One grayscale image (``uint8``, ``(height, width)``) as ``tf.summary.image``
        stores it: a string tensor ``[width, height, png]``."""
        tb = self._tb
        height, width = pixels.shape
        strings = np.array([str(width).encode(), str(height).encode(), png(pixels)], dtype=object)
        summary = tb["Summary"]()
        summary.value.add(
            tag=tag,
            metadata=tb["image_metadata"].create_summary_metadata(
                display_name=None, description=None
            ),
            tensor=tb["tensor_util"].make_tensor_proto(strings),
        )
        self._write(summary, step)

    def text(self, tag: str, text: str, step: int) -> None:
        self._write(self._tb["text_pb"](tag, text), step)

    def keras_model(self, tag: str, config_json: str, step: int) -> None:
        """The model's config as TensorBoard's graph plugin reads Keras models (the
        ``graph_keras_model`` plugin, content ``b"1"``, a string tensor of JSON)."""
        tb = self._tb
        metadata = tb["SummaryMetadata"]()
        metadata.plugin_data.plugin_name = "graph_keras_model"
        metadata.plugin_data.content = b"1"
        tensor = tb["tensor_util"].make_tensor_proto(
            np.array(config_json.encode("utf-8"), dtype=object)
        )
        summary = tb["Summary"]()
        summary.value.add(tag=tag, metadata=metadata, tensor=tensor)
        self._write(summary, step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class TensorBoard(Callback):
    """Writes logs that TensorBoard reads: ``tensorboard --logdir logs``.

    As Keras 3, ``log_dir`` holds one run with two folders of event files:

    - ``train/``: ``epoch_<name>`` for every training loss and metric and
      ``epoch_learning_rate``, per epoch; ``batch_<name>`` every ``update_freq``
      batches; weight histograms ``<weight path>/histogram`` (and images
      ``<weight path>/image``), the path as Keras 3 names it (``sequential/dense/kernel``
      in a Sequential, ``dense/kernel`` in a graph); the model's graph (tag ``keras``,
      drawn by the Graphs tab) and its summary as text (``model_summary``);
    - ``validation/``: ``epoch_<name>`` of the validation figures, and
      ``evaluation_<name>_vs_iterations`` at the optimizer's step count after each
      evaluation (``model.evaluate(callbacks=[...])`` too).

    Steps are epochs (from 0) for epoch summaries and batches counted across epochs
    (from 1) for batch summaries.

    Args:
        log_dir: the run's folder (created if needed). Do not share it with another
            callback.
        histogram_freq: write a histogram of every weight every this many epochs
            (the first epoch included); 0 for none.
        write_graph: write the model's structure at the start of training (the
            Graphs tab draws its layers and connections; the Text tab shows
            ``model.summary()``).
        write_images: with ``histogram_freq``, also write each bias and kernel as a
            grey image (the Images tab), as Keras does.
        write_steps_per_second: also log training steps per second (``epoch_`` and,
            with batch updates, ``batch_steps_per_second``).
        update_freq: ``"epoch"``, ``"batch"`` (every batch) or an integer: the batch
            summaries are written every this many batches, counted across epochs.
            Batch values are the running means of the epoch so far, as in Keras.
        profile_batch: checked as Keras checks it, then ignored with a warning:
            layerkit has no profiler.
        embeddings_freq: must be 0 (layerkit has no Embedding layer).
        embeddings_metadata: must be None.

    Raises:
        ImportError: when the ``tensorboard`` package is missing, naming the extra
            ``layerkit[tensorboard]``.
        ValueError: an argument outside the values above, naming it.

    Unlike Keras 3, the epoch and evaluation summaries are written whatever
    ``update_freq``: Keras leaves the last batch's ``record_if`` in force, so it drops
    them unless the epoch's last batch count is a multiple of ``update_freq``.

    In a distributed ``fit`` only rank 0 writes (the logs and weights are the same on
    every rank). Everything written is on disk at the end of each epoch (and within a
    second for batch summaries), so a run that crashes leaves readable files.

    Example:
        >>> tensorboard = lk.callbacks.TensorBoard("logs/run_1", histogram_freq=1)
        >>> model.fit(x, y, epochs=10, validation_split=0.1, callbacks=[tensorboard])
        >>> # then: tensorboard --logdir logs
    """

    def __init__(
        self,
        log_dir: str | os.PathLike = "logs",
        histogram_freq: int = 0,
        write_graph: bool = True,
        write_images: bool = False,
        write_steps_per_second: bool = False,
        update_freq: str | int = "epoch",
        profile_batch: int | tuple[int, int] | str = 0,
        embeddings_freq: int = 0,
        embeddings_metadata: Any = None,
    ) -> None:
        super().__init__()
        self._tb = _tensorboard()  # first: a missing package is the error to report
        if isinstance(log_dir, bytes):
            log_dir = os.fsdecode(log_dir)
        if not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(log_dir):
            raise ValueError(
                f"Expected log_dir to be a non-empty path. Received: log_dir={log_dir!r:.100}"
            )
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = _count(histogram_freq, "histogram_freq")
        self.write_graph = bool(write_graph)
        self.write_images = bool(write_images)
        self.write_steps_per_second = bool(write_steps_per_second)
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch":
            if isinstance(update_freq, str):
                raise ValueError(
                    "Expected update_freq to be 'epoch', 'batch' or a positive integer. "
                    f"Received: update_freq={update_freq!r}"
                )
            update_freq = _count(update_freq, "update_freq")
            if update_freq == 0:
                raise ValueError(
                    "Expected update_freq to be 'epoch', 'batch' or a positive integer. "
                    "Received: update_freq=0"
                )
        self.update_freq = update_freq
        if _profile_range(profile_batch) != (0, 0):
            # As Keras on JAX without Python 3.12: a warning, and training goes on (the
            # Hands-On ML notebooks pass profile_batch=(100, 200)).
            warnings.warn(
                "lk.callbacks.TensorBoard cannot profile (layerkit has no profiler); "
                f"profile_batch={profile_batch!r} is ignored.",
                UserWarning,
                stacklevel=2,
            )
        self.profile_batch = 0
        if embeddings_freq:
            raise ValueError(
                "layerkit has no Embedding layer, so there are no embeddings to visualise. "
                f"Received: embeddings_freq={embeddings_freq!r} (must be 0)"
            )
        if embeddings_metadata is not None:
            raise ValueError(
                "layerkit has no Embedding layer. "
                f"Received: embeddings_metadata={embeddings_metadata!r:.100} (must be None)"
            )
        self._train_dir = os.path.join(self.log_dir, "train")
        self._val_dir = os.path.join(self.log_dir, "validation")
        self._writers: dict[str, _RunWriter] = {}
        self._active = False  # between on_train_begin and on_train_end on rank 0
        self._global_train_batch = 0
        self._batch_started = 0.0
        self._epoch_started = 0.0
        self._epoch_iterations = 0
        # Batch hooks only when needed: they make fit build batch logs at every step.
        if self.update_freq != "epoch":
            self.on_train_batch_end = self._on_train_batch_end
        if self.write_steps_per_second and self.update_freq != "epoch":
            self.on_train_batch_begin = self._on_train_batch_begin

    def __getstate__(self) -> dict:
        # Copies (scikit-learn's clone of fit_kwargs={"callbacks": [...]}) and pickles
        # take the settings, not the open files or the model of the last fit.
        state = dict(self.__dict__)
        state.update(_writers={}, _active=False, model=None, _tb=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._tb = _tensorboard()

    # --- writers --------------------------------------------------------------------
    def _writer(self, which: str) -> _RunWriter:
        # Created on first use, as Keras: a fit without validation has no validation/.
        if which not in self._writers:
            folder = self._train_dir if which == "train" else self._val_dir
            self._writers[which] = _RunWriter(folder, self._tb)
        return self._writers[which]

    def _flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def _close(self) -> None:
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.close()

    # --- hooks ----------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._close()  # a previous fit that raised left its writers open
        self._active = is_chief(self.model)
        self._global_train_batch = 0
        if not self._active:
            return
        train = self._writer("train")
        if self.write_graph:
            self._write_model(train)
        train.flush()

    def on_train_end(self, logs=None):
        self._active = False
        self._close()

    def on_epoch_begin(self, epoch, logs=None):
        if self._active and self.write_steps_per_second:
            self._epoch_started = time.perf_counter()
            self._epoch_iterations = self.model.optimizer.iterations

    def _on_train_batch_begin(self, batch, logs=None):
        self._batch_started = time.perf_counter()

    def _on_train_batch_end(self, batch, logs=None):
        if not self._active:
            return
        self._global_train_batch += 1
        step = self._global_train_batch
        if step % self.update_freq:
            return
        train = self._writer("train")
        if self.write_steps_per_second:
            elapsed = time.perf_counter() - self._batch_started
            if elapsed > 0:
                train.scalar("batch_steps_per_second", 1.0 / elapsed, step)
        for name, value in (logs or {}).items():
            number = _scalar(value)
            if number is not None:
                train.scalar(f"batch_{name}", number, step)

    def on_test_end(self, logs=None):
        if not is_chief(self.model) or not logs or self.model.optimizer is None:
            return
        standalone = not self._active  # model.evaluate(callbacks=[tensorboard])
        validation = self._writer("validation")
        step = self.model.optimizer.iterations
        for name, value in logs.items():
            number = _scalar(value)
            if number is not None:
                validation.scalar(f"evaluation_{name}_vs_iterations", number, step)
        if standalone:
            self._close()
        else:
            validation.flush()

    def on_epoch_end(self, epoch, logs=None):
        if not self._active:
            return
        logs = dict(logs or {})
        train_logs = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val_logs = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        train_logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        if self.write_steps_per_second:
            elapsed = time.perf_counter() - self._epoch_started
            steps = self.model.optimizer.iterations - self._epoch_iterations
            if elapsed > 0:
                train_logs["steps_per_second"] = steps / elapsed
        for which, values in (("train", train_logs), ("validation", val_logs)):
            numbers = {k: n for k, v in values.items() if (n := _scalar(v)) is not None}
            if numbers:
                writer = self._writer(which)
                for name, number in numbers.items():
                    writer.scalar(f"epoch_{name}", number, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            train = self._writer("train")
            prefix = _weight_prefix(self.model)
            for layer in self.model.layers:
                for weight in layer.weights:
                    train.histogram(f"{prefix}{weight.name}/histogram", weight.value, epoch)
                    if self.write_images:
                        image = weight_image(weight.value)
                        if image is not None:
                            train.image(f"{prefix}{weight.name}/image", image, epoch)
        self._flush()  # an epoch's summaries survive a crash in the next one

    # --- the model's structure --------------------------------------------------------
    def _write_model(self, train: _RunWriter) -> None:
        model = self.model
        try:
            config = {"class_name": _class_name(model), "config": model.get_config()}
            text = json.dumps(config, default=_json_default)
        except (TypeError, ValueError, AttributeError) as error:
            # As Keras: a model that cannot be described does not stop training.
            warnings.warn(
                f"TensorBoard: model {model.name!r} cannot be written as a graph: {error}",
                UserWarning,
                stacklevel=3,
            )
        else:
            train.keras_model("keras", text, 0)
        lines: list[str] = []
        model.summary(print_fn=lines.append)
        # Indented by four spaces: the Text tab renders Markdown, this keeps the table.
        summary = "\n".join("    " + line for line in "\n".join(lines).splitlines())
        train.text("model_summary", summary, 0)


def _weight_prefix(model) -> str:
    """What Keras 3 puts before ``layer/weight`` in a weight's path: a Sequential builds
    its layers in its own name scope (``sequential/dense/kernel``), a graph does not."""
    from ..models.sequential import Sequential

    return f"{model.name}/" if isinstance(model, Sequential) else ""


def _class_name(model) -> str:
    from ..models.sequential import Sequential

    # The names TensorBoard's graph plugin knows (Keras's): a graph is "Functional".
    return "Sequential" if isinstance(model, Sequential) else "Functional"


def _json_default(value: Any):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _profile_range(profile_batch: Any) -> tuple[int, int]:
    """Keras's reading of ``profile_batch``: an int, a pair, or ``"start,stop"``."""
    message = (
        "Expected profile_batch to be a non-negative integer or a pair of positive "
        f"integers (start, stop). Received: profile_batch={profile_batch!r}"
    )
    value = profile_batch
    if isinstance(value, str):
        try:
            value = [int(part) for part in value.split(",")]
        except ValueError:
            raise ValueError(message) from None
        value = value[0] if len(value) == 1 else value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        start = stop = int(value)
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        start, stop = (int(v) for v in value)
    else:
        raise ValueError(message)
    if start < 0 or stop < start:
        raise ValueError(message)
    return start, stop


def _count(value: Any, argument: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"Expected {argument} to be a non-negative integer. Received: {argument}={value!r}"
        )
    if value < 0:
        raise ValueError(
            f"Expected {argument} to be a non-negative integer. Received: {argument}={value!r}"
        )
    return int(value)
