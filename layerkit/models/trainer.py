"""Training: ``compile``, ``fit`` and the one-batch methods (``evaluate`` and ``predict``
are in :mod:`layerkit.models.inference`).

A training step runs the model's plan (:mod:`layerkit.models.plan`): the forward calls,
the losses of the outputs, the backward calls down to the lowest trainable layers only,
and one optimizer update over the trainable parameters. The pass is chosen afresh at
every step from the layers' trainable flags: freezing takes effect at once, without
recompiling. Inputs and targets are lists inside (one array per model input and output),
adapted once from what the user passed (an array, a list, a dict by name).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import metrics as metrics_module
from .. import optim
from ..callbacks.base import CallbackList
from ..callbacks.history import History
from . import data
from .compiled import Objectives, keras_order
from .data import (
    as_input_list,
    as_target_list,
    check_batch_size,
    check_int,
    check_verbose,
)
from .epoch import EpochMixin
from .frozen_cache import FrozenOutputCache
from .inference import InferenceMixin
from .report import epoch_line, interactive
from .resume import EpochProgress, ResumeMixin
from .step import StepMixin
from .strategy import Strategy, check_strategy
from .stream import BatchStream, is_stream, unpack

# A stream (generator, PyDataset) in the resume signature: batches of at most this many
# rows, and without steps_per_epoch at most this many steps.
_STREAM_ROWS = 1 << 20


class Trainer(InferenceMixin, EpochMixin, StepMixin, ResumeMixin):
    """The training half of a model (Keras's ``Trainer``); ``Sequential`` inherits it."""

    def __init__(self) -> None:
        self.optimizer: optim.Optimizer | None = None
        self._objectives: Objectives | None = None
        self.compiled = False
        self.stop_training = False
        self.history: History | None = None
        self._epochs_done = 0
        self._last_epoch = -1  # index of the last epoch completed by the current fit
        self._resume_from_epoch: int | None = None  # set by BackupAndRestore
        # A mid-epoch backup: steps of that epoch already done and the running totals
        # (loss x rows, rows, each metric's total and count) at that point.
        self._resume_in_epoch: dict[str, Any] | None = None
        self._epoch_progress: EpochProgress | None = None  # while an epoch runs
        # (samples, batch size, shuffle) of the fit in progress: a mid-epoch backup is
        # resumed only into the same division into batches.
        self._fit_signature: tuple[int, int, bool] | None = None
        self._epoch_start_learning_rate: Any = None
        # The lk.distributed strategy of the fit or evaluate call in progress (else None):
        # callbacks ask lk.distributed.is_chief(model) before printing or saving.
        self.distribute: Strategy | None = None
        self._grad_spans: dict[int, tuple] = {}

    # --- compile --------------------------------------------------------------------
    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        metrics=None,
        loss_weights=None,
        weighted_metrics=None,
    ) -> None:
        """Configures training.

        Args:
            optimizer: a name (``"adam"``) or an ``lk.optim`` optimizer.
            loss: a name (``"sparse_categorical_crossentropy"``) or an ``lk.losses`` loss;
                for several outputs, a list (in output order) or a dict by output name
                (an output left out has no loss), or one loss for every output.
            metrics: a list of names (``"accuracy"``, ``"mae"``) or ``lk.metrics``
                objects; for several outputs, a dict by output name, a list of lists, or
                one list for every output.
            loss_weights: for several outputs, a list or dict of weights: the loss
                minimised is ``sum(weight * output loss)``.
            weighted_metrics: metrics (as ``metrics``) that weigh each sample by
                ``fit``'s / ``evaluate``'s ``sample_weight`` or ``class_weight``, as Keras
                (``metrics`` ignore the weights); one also in ``metrics`` is logged as
                ``weighted_<name>``.

        Example:
            >>> model.compile(optimizer="sgd", loss=["mse", "mse"], loss_weights=[0.9, 0.1])
        """
        optimizer = optim.get(optimizer)
        objectives = Objectives(loss, loss_weights, metrics, self._output_names(), weighted_metrics)
        self.optimizer, self._objectives = optimizer, objectives
        self.compiled = True
        if self.built:
            self._resolve_metrics()
            self.optimizer.build(self._optimized_weights())

    @property
    def losses(self) -> list[float]:
        """The weight penalties (``kernel_regularizer=...``) of the trainable weights,
        which training and ``evaluate`` add to the loss, as Keras's ``model.losses``.

        The output penalties (``activity_regularizer=``) depend on a batch: training and
        ``evaluate`` add them per batch; they are not listed here."""
        return [p.regularizer(p.value) for p in self.weights if p.regularizer and p.trainable]

    def _optimized_weights(self) -> list:
        """The weights an optimizer keeps state for: all but statistics (frozen layers'
        too, so that unfreezing resumes their state)."""
        return [p for p in self.weights if not p.statistic]

    @property
    def loss(self):
        """The loss (one output), or the list of losses per output; None before compile."""
        if self._objectives is None:
            return None
        single = self._objectives.single_loss
        return single if single is not None else list(self._objectives.losses)

    @property
    def _metric_specs(self) -> list:
        """The metrics as given to compile, for a one-output model."""
        return [] if self._objectives is None else self._objectives.metric_specs[0]

    @property
    def _metrics(self) -> list[metrics_module.Metric]:
        """Everything with a running total (per-output losses, then metrics), in log order."""
        return [] if self._objectives is None else self._objectives.states

    def _resolve_metrics(self) -> None:
        if self._objectives is not None:
            self._objectives.resolve(self._output_shapes())

    @property
    def metrics_names(self) -> list[str]:
        return ["loss"] if self._objectives is None else list(self._objectives.log_names)

    def _require_compiled(self, method: str) -> None:
        if not self.compiled:
            raise RuntimeError(
                f"You must call compile() before {method}(): the model has no loss or optimizer."
            )

    def _on_structure_change(self) -> None:
        self._forget_plan()
        if self._objectives is not None:
            self._objectives.unresolve()
            if self.built:
                self._resolve_metrics()

    # --- public training API --------------------------------------------------------
    @contextlib.contextmanager
    def _distributed(self, distribute, method: str) -> Iterator[Strategy | None]:
        """Checks ``distribute=``, sets ``self.distribute`` for the callbacks while
        ``method`` runs, and on MPI ends every rank if one raises."""
        strategy = check_strategy(distribute)
        previous, self.distribute = self.distribute, strategy
        # Layers that need the global batch's statistics (BatchNormalization).
        synced = (
            [layer for layer in self._stack if layer.synchronizes]
            if strategy is not None and self.built
            else []
        )
        for layer in synced:
            layer._strategy = strategy
        try:
            if strategy is None:
                yield None
            else:
                with strategy.guard(method):
                    yield strategy
        finally:
            self.distribute = previous
            for layer in synced:
                layer._strategy = None

    def _prepare_x(self, x, argument: str = "x") -> list[np.ndarray]:
        """The inputs as a list of validated arrays (one per model input); an unbuilt
        model is built for their shape."""
        if not self.built:
            return self._build_from_data(x, argument)
        return as_input_list(x, self._input_names(), self._input_shapes(), argument)

    def _build_from_data(self, x, argument: str) -> list[np.ndarray]:
        """Builds the model for the shape of the first data it sees (a stack)."""
        arrays = as_input_list(x, self._input_names(), None, argument)
        self.build((None, *arrays[0].shape[1:]))
        return arrays

    def _prepare_y(self, y, xs: list[np.ndarray], argument: str = "y", x_argument: str = "x"):
        objectives = self._objectives
        return as_target_list(
            y,
            self._output_names(),
            objectives.losses,
            self._output_shapes(),
            argument,
            (xs[0], x_argument),
        )

    def _prepare_weights(
        self, sample_weight, class_weight, targets: list, argument: str = "sample_weight"
    ) -> list | None:
        """Per-output sample weights from ``sample_weight`` or ``class_weight`` (or None)."""
        if class_weight is not None:
            if sample_weight is not None:
                raise ValueError(
                    "You cannot pass class_weight and sample_weight at the same time "
                    "(as Keras): fold the class weights into sample_weight."
                )
            losses = self._objectives.losses
            return data.class_weight_to_sample_weight(
                class_weight, data.in_memory(targets), losses[0], self._output_shapes()[0]
            )
        sample_weight = data.load_small(sample_weight)  # a weight column on disk: read
        return data.as_sample_weight_list(sample_weight, self._output_names(), targets, argument)

    def _stream(self, source, steps, steps_argument: str, argument: str, class_weight=None):
        """A generator or PyDataset as a :class:`BatchStream`; an unbuilt model is built
        from its first batch (and unbuilt again if that batch is refused)."""
        if steps is not None:
            steps = check_int(steps, steps_argument, 1)
        stream = BatchStream(
            source,
            lambda batch, where: self._standardize_batch(batch, where, class_weight),
            steps,
            argument,
        )
        was_built = self.built
        try:
            self._standardize_batch(stream.peek(), f"batch 0 of {argument}", class_weight)
        except BaseException:
            if not was_built:
                self.unbuild()
            raise
        self._resolve_metrics()
        return stream

    def _standardize_batch(self, batch, where: str, class_weight=None, targets: bool = True):
        """(inputs, targets, sample weights) of one batch tuple, checked as ``fit``
        checks arrays; the messages name the batch."""
        x, y, w = unpack(batch, where, targets)
        xs = self._prepare_x(x, f"x of {where}")
        if not targets:
            return xs, None, None
        ys = self._prepare_y(y, xs, f"y of {where}", f"x of {where}")
        return xs, ys, self._prepare_weights(w, class_weight, ys, f"sample_weight of {where}")

    def _prepare_xy(self, x, y) -> tuple[list[np.ndarray], list]:
        """Validates x and y; a model built here is unbuilt again if they are refused."""
        if y is None:
            raise TypeError("Expected targets y. Received: y=None")
        was_built = self.built
        xs = self._prepare_x(x)
        try:
            ys = self._prepare_y(y, xs)
        except BaseException:
            if not was_built:
                self.unbuild()
            raise
        self._resolve_metrics()
        return xs, ys

    def fit(
        self,
        x=None,
        y=None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: str | int = "auto",
        callbacks: list | None = None,
        validation_split: float = 0.0,
        validation_data: tuple | None = None,
        shuffle: bool = True,
        class_weight: dict | None = None,
        sample_weight=None,
        initial_epoch: int = 0,
        cache_frozen: bool | str = "auto",
        cache_max_bytes: int = FrozenOutputCache.DEFAULT_MAX_BYTES,
        distribute: Strategy | None = None,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        cache_dir: str | None = None,
    ) -> History:
        """Trains the model; returns a :class:`~layerkit.callbacks.History`.

        Args:
            x, y: training inputs and targets: arrays (one, a list or a dict by input
                name), arrays on disk (an ``h5py.Dataset``, a ``np.memmap``: read
                window by window, see ``docs/streaming.md``), or for ``x`` alone a
                generator / iterator of ``(x, y)`` or ``(x, y, sample_weight)`` batches
                or an ``lk.utils.PyDataset`` (then ``y`` is None).
            batch_size: samples per step (default 32); with ``distribute``, the global
                batch, split across the ranks.
            epochs: index of the last epoch (epochs run from ``initial_epoch``).
            verbose: 0 silent, 1 a progress bar per epoch (Keras's per-epoch lines when
                the output is not a terminal), 2 one line per epoch; ``"auto"`` is 1.
            callbacks: ``lk.callbacks`` instances.
            validation_split: fraction of the data, taken from the end before shuffling,
                held out for validation.
            validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, val_sample_weight)``;
                overrides ``validation_split``.
            shuffle: shuffle the training samples before each epoch; ``"batch"``
                (Keras) keeps the batches in order and shuffles the rows inside each.
                Arrays on disk are chunk-shuffled (blocks in a random order, rows
                shuffled within a window of blocks); a PyDataset's batches come in a
                shuffled order; a generator's as it yields them.
            class_weight: ``{class index: weight}`` (one output): each sample's loss is
                weighed by its class's weight, as Keras; every class in ``y`` needs one.
            sample_weight: one non-negative weight per sample (or a list / dict of them
                per output): the loss of a batch is ``sum(w * loss) / batch size`` (Keras
                3's ``"sum_over_batch_size"``), and ``weighted_metrics`` are weighted means.
            initial_epoch: epoch to start from (to resume a run).
            cache_frozen: ``"auto"``, ``True`` or ``False``: compute the frozen layers at
                the bottom of the model once and train only the layers above them.
            cache_max_bytes: memory budget of that cache in ``"auto"`` mode (1 GiB).
            distribute: ``None``, or an ``lk.Strategy()`` to train data-parallel
                on every rank of an ``mpiexec`` job: each rank passes the same data and
                arguments, ends with the same weights and logs as one process would, and
                only rank 0 prints and saves. An exception on any rank ends every rank.
            steps_per_epoch: batches per epoch from a generator or PyDataset (Keras's
                semantics: a generator goes on from where the previous epoch stopped);
                None: until the generator is exhausted, or the PyDataset's length.
            validation_steps: batches of a generator / PyDataset ``validation_data``.
            cache_dir: a folder for the frozen-output cache when it exceeds
                ``cache_max_bytes`` (a temporary HDF5 file, removed when ``fit`` ends);
                by default, next to the data of an ``h5py.Dataset`` / ``np.memmap``
                ``x``; in-memory data without ``cache_dir`` is not cached above the budget.

        Example:
            >>> history = model.fit(x, y, batch_size=64, epochs=5, validation_split=0.1)
            >>> history.history["val_loss"][-1]
            0.093
        """
        with self._distributed(distribute, "fit") as strategy:
            self._require_compiled("fit")
            batch_size = check_batch_size(batch_size)
            epochs = check_int(epochs, "epochs", 0)
            initial_epoch = check_int(initial_epoch, "initial_epoch", 0)
            verbose = check_verbose(verbose)
            if (
                isinstance(validation_split, bool)
                or not isinstance(validation_split, (int, float))
                or not 0.0 <= validation_split < 1.0
            ):
                raise ValueError(
                    "Expected validation_split in [0, 1). "
                    f"Received: validation_split={validation_split!r}"
                )
            # Keras: a bool or "batch" (a truthy value shuffles, as before).
            shuffle = "batch" if isinstance(shuffle, str) and shuffle == "batch" else bool(shuffle)
            if cache_frozen not in (True, False, "auto"):
                raise ValueError(
                    "Expected cache_frozen in True, False, 'auto'. "
                    f"Received: cache_frozen={cache_frozen!r}"
                )
            if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
                raise TypeError(
                    f"Expected a folder for cache_dir. Received: cache_dir={cache_dir!r}"
                )
            if cache_dir is not None and not os.path.isdir(cache_dir):
                raise FileNotFoundError(f"cache_dir={str(cache_dir)!r} is not an existing folder.")
            if is_stream(x):
                for name, value in (("y", y), ("sample_weight", sample_weight)):
                    if value is not None:
                        raise ValueError(
                            f"{name} must be None when x is a generator or a PyDataset: its "
                            f"batches hold them, as in Keras. Received: {name} of type "
                            f"{type(value).__name__}"
                        )
                if validation_split:
                    raise ValueError(
                        "validation_split needs arrays (as Keras); with a generator or a "
                        "PyDataset, pass validation_data. Received: "
                        f"validation_split={validation_split}"
                    )
                if cache_frozen is True:
                    raise ValueError(
                        "cache_frozen=True needs arrays (in memory or on disk): the batches "
                        "of a generator or a PyDataset cannot be matched to cached outputs."
                    )
                cache_frozen = False
                x = self._stream(x, steps_per_epoch, "steps_per_epoch", "x", class_weight)
                y = weights = None
            else:
                if steps_per_epoch is not None:
                    raise ValueError(
                        "steps_per_epoch is for a generator or a PyDataset x; with arrays an "
                        f"epoch is every batch. Received: steps_per_epoch={steps_per_epoch!r}"
                    )
                x, y = self._prepare_xy(x, y)
                weights = self._prepare_weights(sample_weight, class_weight, y)
            x_val = y_val = w_val = None
            if validation_data is not None and is_stream(validation_data):
                x_val = self._stream(
                    validation_data, validation_steps, "validation_steps", "validation_data"
                )
            elif validation_data is not None:
                if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (
                    2,
                    3,
                ):
                    raise ValueError(
                        "Expected validation_data=(x_val, y_val) or (x_val, y_val, "
                        f"val_sample_weight). Received: {type(validation_data).__name__}"
                        + (
                            f" of length {len(validation_data)}"
                            if isinstance(validation_data, (tuple, list))
                            else ""
                        )
                    )
                x_val = as_input_list(
                    validation_data[0],
                    self._input_names(),
                    self._input_shapes(),
                    "validation_data[0]",
                )
                y_val = self._prepare_y(
                    validation_data[1], x_val, "validation_data[1]", "validation_data[0]"
                )
                if len(validation_data) == 3:
                    w_val = self._prepare_weights(
                        validation_data[2], None, y_val, "validation_data[2]"
                    )
            elif validation_split:
                n = data.rows(x)
                split = int(n * (1.0 - validation_split))
                if split <= 0 or split >= n:
                    raise ValueError(
                        f"validation_split={validation_split} leaves no training or no validation "
                        f"samples out of {n}."
                    )
                x, x_val = data.row_range(x, 0, split), data.row_range(x, split, n)
                y, y_val = data.row_range(y, 0, split), data.row_range(y, split, n)
                if weights is not None:
                    weights, w_val = (
                        data.split_rows(weights, 0, split),
                        data.split_rows(weights, split, n),
                    )
            self._pack()
            self.optimizer.build(self._optimized_weights())
            streaming = isinstance(x, BatchStream)
            samples = _STREAM_ROWS * (x.steps or _STREAM_ROWS) if streaming else data.rows(x)

            steps = x.steps if streaming else math.ceil(samples / batch_size)
            history = History()
            callback_list = CallbackList(
                [*(callbacks or []), history],
                self,
                {"epochs": epochs, "steps": steps, "verbose": verbose, "batch_size": batch_size},
            )
            if verbose == 1 and not interactive():
                verbose = 2  # a progress bar needs a terminal: Keras's per-epoch lines
            # A stream's batches are counted in units of _STREAM_ROWS rows in the resume
            # signature (the checkpoint format counts samples and batches of arrays).
            self._fit_signature = (
                samples,
                _STREAM_ROWS if streaming else batch_size,
                shuffle if shuffle == "batch" else bool(shuffle),
            )
            if strategy is not None:
                # Ranks that disagree here would make different numbers of collective calls.
                strategy.check_same(
                    "fit",
                    samples=samples,
                    sample_shape=None if streaming else data.sample_shapes(x),
                    target_shape=None if streaming else data.sample_shapes(y),
                    sample_weights=None if weights is None else [w is not None for w in weights],
                    validation_samples=(
                        None
                        if x_val is None or isinstance(x_val, BatchStream)
                        else data.rows(x_val)
                    ),
                    batch_size=batch_size,
                    epochs=epochs,
                    initial_epoch=initial_epoch,
                    shuffle=bool(shuffle),
                    weight_shapes=[p.shape for p in self.weights],  # names may differ
                    trainable=[layer.trainable for layer in self._stack],
                    batch_callbacks=callback_list.wants_batch_hooks,
                )
            if strategy is not None and not streaming:
                self._check_synchronized_batches(strategy, samples, batch_size)
            cache = FrozenOutputCache(self, cache_frozen, cache_max_bytes, batch_size, cache_dir)
            try:
                return self._fit_epochs(
                    x,
                    y,
                    weights,
                    x_val,
                    y_val,
                    w_val,
                    batch_size,
                    epochs,
                    initial_epoch,
                    verbose,
                    shuffle,
                    cache,
                    callback_list,
                    history,
                    steps,
                    strategy,
                )
            finally:
                cache.release()  # also on errors: a cache on disk is removed

    def _fit_epochs(
        self,
        x,
        y,
        weights,
        x_val,
        y_val,
        w_val,
        batch_size,
        epochs,
        initial_epoch,
        verbose,
        shuffle,
        cache,
        callback_list,
        history,
        steps,
        strategy,
    ) -> History:
        """The epochs of :meth:`fit`, its arguments checked."""
        self.stop_training = False
        self._nan_warned = False
        self._last_epoch = initial_epoch - 1
        self._resume_from_epoch = self._resume_in_epoch = None
        chief = strategy is None or strategy.is_chief
        if chief:
            self._warn_about_setup(callback_list)
        callback_list.on_train_begin({})
        if strategy is not None:
            # After on_train_begin: BackupAndRestore restores on rank 0 only.
            strategy.broadcast_training_state(self)
        if self._resume_from_epoch is not None:
            initial_epoch = max(initial_epoch, self._resume_from_epoch)
        cache.prepare(
            None if isinstance(x, BatchStream) else x,
            None if isinstance(x_val, BatchStream) else x_val,
        )
        logs: dict[str, float] = {}
        for epoch in range(initial_epoch, epochs):
            if strategy is not None:
                strategy.spread_layer_states(self)
                resume = self._resume_in_epoch
                if resume is not None and resume["epoch"] == epoch:
                    # Layers with per-rank state get their own rank's from the backup
                    # (none built in: random layers draw by global row from rank 0's).
                    restored = strategy.restore_rank_layer_states(
                        self, resume.get("rank_layer_states")
                    )
                    if not restored and any(layer.training_state() for layer in self._stack):
                        warnings.warn(
                            "Resuming inside an epoch on another number of ranks: the "
                            "random layers' masks of this epoch differ from the "
                            "interrupted run's.",
                            UserWarning,
                            stacklevel=4,
                        )
            started = time.monotonic()
            if verbose == 2 and chief and epochs > 1:
                # Keras's per-epoch lines, also what verbose=1 prints when stdout is
                # not a terminal (logs of scripts under nohup or CI).
                print(f"Epoch {epoch + 1}/{epochs}", flush=True)
            self._epoch_start_learning_rate = self.optimizer._learning_rate
            callback_list.on_epoch_begin(epoch, {})
            resume = self._resume_in_epoch
            if resume is not None and resume["epoch"] == epoch:
                # The rate in force when the backup was taken, after the epoch's
                # schedule callbacks have run again from the epoch's starting rate.
                rate = resume.get("learning_rate_now")
                if rate is not None and self.optimizer.schedule is None:
                    self.optimizer.learning_rate = rate
            # A diverging run overflows: fit reports that once, as a NaN loss (below),
            # instead of numpy warning at every product.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                logs = self._train_epoch(
                    x,
                    y,
                    batch_size,
                    shuffle,
                    cache,
                    callback_list,
                    verbose,
                    epoch,
                    epochs,
                    strategy,
                    weights,
                )
            if isinstance(x, BatchStream) and x.stopped:
                self.stop_training = True  # the input ran out of data (warned)
                if not x.taken:  # an epoch without a batch is no epoch
                    break
            if isinstance(x_val, BatchStream):
                val_logs = self._evaluate_stream(x_val, strategy, callback_list)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            elif x_val is not None:
                val_sources, val_features = cache.validation_inputs()
                val_logs = self._evaluate_arrays(
                    val_sources,
                    val_features,
                    y_val,
                    batch_size,
                    strategy,
                    callback_list,
                    w_val,
                )
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            logs = keras_order(logs, len(self._output_names()) > 1)
            self._epochs_done += 1
            self._last_epoch = epoch
            callback_list.on_epoch_end(epoch, logs)
            if verbose == 2 and chief:
                # After the callbacks, as Keras's progress logger: the line shows the
                # learning_rate that ReduceLROnPlateau logs.
                print(epoch_line(steps, time.monotonic() - started, logs), flush=True)
            if strategy is not None:  # one rank's callback stopping stops every rank
                self.stop_training = strategy.any(self.stop_training)
            if self.stop_training:
                break
        if self._last_epoch >= initial_epoch:
            # As Keras after the last epoch: with use_ema, the trainable weights become
            # their moving average (a frozen layer's was never updated; a no-op without).
            self.optimizer.finalize_variable_values(
                [p for p in self._optimized_weights() if p.trainable]
            )
        callback_list.on_train_end(logs)
        self.history = history
        return history

    def train_on_batch(self, x, y, return_dict: bool = False):
        """Runs one training step on one batch; returns its loss (and metrics)."""
        self._require_compiled("train_on_batch")
        x, y = map(data.in_memory, self._prepare_xy(x, y))
        self._pack()
        self.optimizer.build(self._optimized_weights())
        value, per_output, out = self._step(None, x, y)
        return self._batch_result(value, per_output, y, out, return_dict, data.rows(x))

    def test_on_batch(self, x, y, return_dict: bool = False):
        """Returns the loss (and metrics) of one batch without training."""
        self._require_compiled("test_on_batch")
        x, y = map(data.in_memory, self._prepare_xy(x, y))
        logs = self._evaluate_arrays(None, x, y, data.rows(x))
        return logs if return_dict else (logs["loss"] if len(logs) == 1 else list(logs.values()))

    def _batch_result(self, value, per_output, y, out, return_dict, batch_rows):
        self._objectives.reset()
        self._objectives.update(y, out, per_output, batch_rows)
        logs = self._logs(value, 1)
        if return_dict:
            return logs
        return logs["loss"] if len(logs) == 1 else list(logs.values())

    def compute_gradients(self, x, y) -> tuple[float, list]:
        """Returns the batch loss and ``(gradient, parameter)`` pairs for the trainable
        parameters, without updating anything: the first half of a custom training step.

        Example:
            >>> loss, pairs = model.compute_gradients(x_batch, y_batch)
            >>> model.optimizer.apply_gradients([(np.clip(g, -1, 1), p) for g, p in pairs])
        """
        self._require_compiled("compute_gradients")
        x, y = map(data.in_memory, self._prepare_xy(x, y))
        self._pack()
        self.optimizer.build(self._optimized_weights())
        params = self._train_pass().params
        value, _, _ = self._step(None, x, y, update=False)
        return value, [(p.grad.copy(), p) for p in params]

    def reset_metrics(self) -> None:
        for metric in self._metrics:
            metric.reset_state()

    def _check_synchronized_batches(self, strategy: Strategy, samples: int, batch: int) -> None:
        """A trainable BatchNormalization sums statistics over the ranks at every step:
        every rank must hold rows of every batch, or the others would wait for it."""
        if not any(layer.synchronizes and layer._trainable for layer in self._stack):
            return
        last = samples % batch or batch
        smallest = min(batch, last, samples)
        if smallest < strategy.size:
            raise ValueError(
                f"With trainable BatchNormalization layers, every one of the {strategy.size} "
                f"ranks needs rows of every batch (their statistics are summed over the "
                f"ranks), but a batch of {smallest} rows leaves some rank without any. Use "
                f"batch_size >= {strategy.size} and a number of samples whose last batch "
                "has that many rows, or fewer ranks."
            )

    def _warn_about_setup(self, callback_list) -> None:
        """Warnings Keras gives (or should) before a fit that cannot do what is meant."""
        if not any(p.trainable for p in self.weights):
            warnings.warn(
                f"Model {self.name!r} has no trainable weights: fit() will change nothing "
                "(every layer is frozen). Unfreeze layers with model.unfreeze(pattern) or "
                "layer.trainable = True.",
                UserWarning,
                stacklevel=5,
            )
        plan = self._get_plan()
        for name, loss, slot in zip(self._output_names(), self._objectives.losses, plan.outputs):
            if loss is None or not loss.expects_probabilities:
                continue
            last = plan.producer.get(slot)
            layer = None if last is None else last.layer
            activation = getattr(getattr(layer, "activation", None), "name", None)
            expected = loss.probability_activation
            if activation not in (None, expected):
                where = "" if len(plan.outputs) == 1 else f" (output {name!r})"
                warnings.warn(
                    f"The loss {type(loss).__name__}{where} expects probabilities, but the "
                    f"last layer of model {self.name!r} ({layer.name!r}) has activation "
                    f"{activation!r}, not {expected!r}. If the model outputs logits, pass "
                    "from_logits=True to the loss.",
                    UserWarning,
                    stacklevel=5,
                )
