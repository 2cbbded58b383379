"""Validation of user arrays at the edge of ``fit``, ``evaluate`` and ``predict``.

Inputs are checked and cast to the float type once here, never per batch. Every error
names the argument, what was received and what was expected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..validation import check_number, check_sample_weight, numeric_array, to_float
from .disk import DiskArray, is_array_like


def check_int(value: Any, argument: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"Expected an integer {argument}. Received: {argument}={value!r}")
    if value < minimum:
        raise ValueError(f"Expected {argument} >= {minimum}. Received: {argument}={value!r}")
    return int(value)


def as_inputs(x: Any, argument: str = "x", input_shape: tuple | None = None) -> np.ndarray:
    """Returns ``x`` as a C-contiguous float array of the default float type.

    A 1-D array is read as one feature per sample, as Keras 2 did.

    Raises:
        TypeError: for non-numeric data (objects, strings, complex numbers) or ``None``.
        ValueError: for scalars, empty arrays, NaN or infinite values, or a feature shape
            different from the model's ``input_shape``.
    """
    if x is None:
        raise TypeError(f"Expected an array for {argument}. Received: {argument}=None")
    if is_array_like(x):  # on disk: checked now from its metadata, read batch by batch
        return DiskArray.inputs(x, argument, input_shape)
    array = numeric_array(x, argument)
    if array.shape[0] == 0 or array.size == 0:
        raise ValueError(
            f"Expected a non-empty {argument}. Received: {argument}.shape={array.shape}"
        )
    one_dimensional = array.ndim == 1
    if one_dimensional:
        array = array.reshape(-1, 1)
    if input_shape is not None:
        expected = tuple(input_shape[1:])
        if array.shape[1:] != expected:
            if one_dimensional:
                raise ValueError(
                    f"Invalid {argument}: a 1-D array of {len(array)} values is read as "
                    f"{len(array)} samples of one feature, but the model expects samples "
                    f"of shape {expected}. For one sample, pass {argument}[None] "
                    f"(shape (1, {len(array)}))."
                )
            if len(expected) == 1 and array.ndim == 2:
                raise ValueError(
                    f"Invalid {argument}: expected {expected[0]} features, "
                    f"received {array.shape[1]} ({argument}.shape={array.shape})."
                )
            raise ValueError(
                f"Invalid {argument}: expected samples of shape {expected}, "
                f"received {array.shape[1:]} ({argument}.shape={array.shape})."
            )
    return to_float(array, argument)


def check_same_length(x: np.ndarray, y: np.ndarray, x_name: str = "x", y_name: str = "y") -> None:
    if len(x) != len(y):
        raise ValueError(
            f"{x_name} and {y_name} must have the same number of samples. "
            f"Received: {x_name} has {len(x)}, {y_name} has {len(y)}."
        )


def check_batch_size(batch_size: Any) -> int:
    return 32 if batch_size is None else check_int(batch_size, "batch_size", 1)


def check_verbose(verbose: Any) -> int:
    """0, 1 or 2; ``"auto"`` is 1, as in Keras 3 (``fit`` prints Keras's per-epoch lines
    instead of a progress bar when the output is not a terminal)."""
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, float):
        raise ValueError(f"Expected verbose in 'auto', 0, 1, 2. Received: verbose={verbose!r}")
    return int(verbose)


def _one_array(value: Any) -> Any:
    """``[array]`` stands for ``array`` for a model with one input or output (as Keras);
    a nested Python list of numbers is data, not a list of arrays."""
    if (
        isinstance(value, (list, tuple))
        and len(value) == 1
        and (isinstance(value[0], np.ndarray) or is_array_like(value[0]))
    ):
        return value[0]
    return value


def _by_position(value: Any, names: list[str], argument: str, what: str) -> list[tuple[Any, str]]:
    """``value`` (a dict by name, a list in order, or one array) as ``(entry, argument
    name)`` pairs in the model's order of ``what`` (``inputs`` or ``outputs``)."""
    n = len(names)
    if isinstance(value, dict):
        unknown = [key for key in value if key not in names]
        if unknown:
            raise ValueError(
                f"Invalid {argument}: keys {unknown} are not names of the model's {what} {names}."
            )
        return [(value.get(name), f"{argument}[{name!r}]") for name in names]
    if n == 1:
        return [(_one_array(value), argument)]
    if not isinstance(value, (list, tuple)) or len(value) != n:
        received = (
            f"a list of {len(value)}" if isinstance(value, (list, tuple)) else type(value).__name__
        )
        raise ValueError(
            f"Invalid {argument}: the model has {n} {what} {names}; pass a list of {n} arrays "
            f"in that order or a dict keyed by those names. Received: {received}"
        )
    return [(v, f"{argument}[{i}]") for i, v in enumerate(value)]


def as_input_list(
    x: Any, names: list[str], shapes: list[tuple] | None, argument: str = "x"
) -> list[np.ndarray]:
    """The model's inputs as a list of validated arrays in input order, from one array,
    a list in order, or a dict keyed by input name; all with the same number of rows."""
    pairs = _by_position(x, names, argument, "inputs")
    arrays = []
    for i, (value, where) in enumerate(pairs):
        if value is None:
            raise TypeError(f"Expected an array for {where} (input {names[i]!r}). Received: None")
        arrays.append(as_inputs(value, where, None if shapes is None else shapes[i]))
    for (_, where), array in zip(pairs[1:], arrays[1:]):
        check_same_length(arrays[0], array, pairs[0][1], where)
    return arrays


def as_target_list(
    y: Any,
    names: list[str],
    losses: list,
    shapes: list[tuple],
    argument: str = "y",
    x: tuple[np.ndarray, str] | None = None,
) -> list[np.ndarray | None]:
    """The targets as a list in output order (None for an output without a loss),
    each checked by its output's loss against the output's shape, and against the
    number of rows of ``x`` (an array and its argument name)."""
    if y is None:
        raise TypeError(f"Expected targets {argument}. Received: {argument}=None")
    pairs = _by_position(y, names, argument, "outputs")
    targets: list[np.ndarray | None] = []
    for (value, where), loss, shape, name in zip(pairs, losses, shapes, names):
        if loss is None:
            targets.append(None)
            continue
        if value is None:
            raise ValueError(
                f"Missing targets for output {name!r} (it has a loss). Received: {where}=None"
            )
        # Lengths first: cheap, and it spares scanning a huge y that cannot fit anyway.
        if x is not None and (
            (isinstance(value, np.ndarray) and value.ndim > 0)
            or isinstance(value, (list, tuple))
            or is_array_like(value)
        ):
            check_same_length(x[0], value, x[1], where)
        if is_array_like(value):
            target = DiskArray.targets(value, where, loss, shape)
        else:
            target = loss.check_targets(value, shape, where)
        if x is not None:
            check_same_length(x[0], target, x[1], where)
        targets.append(target)
    return targets


def rows(arrays: list) -> int:
    """The number of samples of a list of arrays (Nones skipped)."""
    return next(len(a) for a in arrays if a is not None)


def split_rows(arrays: list, lo: int, hi: int) -> list:
    """Rows ``lo:hi`` of each array (None stays None); read for an array on disk."""
    return [None if a is None else a[lo:hi] for a in arrays]


def row_range(arrays: list, lo: int, hi: int) -> list:
    """Rows ``lo:hi`` of each array, an array on disk as a view (nothing read)."""
    return [
        None if a is None else a.view(lo, hi) if isinstance(a, DiskArray) else a[lo:hi]
        for a in arrays
    ]


def in_memory(arrays: list) -> list:
    """The arrays with those on disk read whole (one batch: ``train_on_batch``)."""
    return [a[0 : len(a)] if isinstance(a, DiskArray) else a for a in arrays]


def load_small(value: Any) -> Any:
    """An array-like (a 1-D weight column on disk) read into memory; else ``value``."""
    if isinstance(value, dict):
        return {k: load_small(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and any(is_array_like(v) for v in value):
        return [load_small(v) for v in value]
    if is_array_like(value) and not isinstance(value, DiskArray):
        return np.asarray(value[0 : value.shape[0]])
    return value


def sample_shapes(arrays: list) -> list:
    return [None if a is None else tuple(a.shape[1:]) for a in arrays]


class BatchGatherer:
    """Gathers the rows of a batch into reused buffers: one per input (or cached
    feature) array and one per target, reallocated only when the batch size changes."""

    def __init__(self, targets: list) -> None:
        self.targets = targets
        self._features: list | None = None  # the list the buffers were made for
        self._rows = -1
        self._x: list[np.ndarray] = []
        self._y: list = []

    def take(self, features: list[np.ndarray], order, lo: int, hi: int) -> tuple[list, list]:
        if order is None:
            return [a[lo:hi] for a in features], split_rows(self.targets, lo, hi)
        n = hi - lo
        if features is not self._features or n != self._rows:
            self._features, self._rows = features, n
            self._x = [np.empty((n, *a.shape[1:]), a.dtype) for a in features]
            self._y = [
                None if t is None else np.empty((n, *t.shape[1:]), t.dtype) for t in self.targets
            ]
        idx = order[lo:hi]
        # mode="clip" (the indices are a permutation, always in range) spares numpy a
        # copy of out= that mode="raise" makes: ~25% of the gather.
        for a, out in zip(features, self._x):
            np.take(a, idx, axis=0, out=out, mode="clip")
        for t, out in zip(self.targets, self._y):
            if t is not None:
                np.take(t, idx, axis=0, out=out, mode="clip")
        return self._x, self._y


# --- sample and class weights ---------------------------------------------------------
def as_sample_weight_list(
    sample_weight: Any, names: list[str], targets: list, argument: str = "sample_weight"
) -> list[np.ndarray | None] | None:
    """Per-output sample weights (1-D float arrays, or None), or None without weights.

    One array weighs every output (Keras 3); a list (output order) or a dict by output
    name gives each output its own.
    """
    if sample_weight is None:
        return None
    n = rows(targets)
    if isinstance(sample_weight, dict) or (
        isinstance(sample_weight, (list, tuple))
        and len(names) > 1
        and len(sample_weight) == len(names)
        and all(w is None or np.ndim(w) >= 1 for w in sample_weight)
    ):
        if isinstance(sample_weight, dict):
            unknown = [key for key in sample_weight if key not in names]
            if unknown:
                raise ValueError(
                    f"{argument} has keys {unknown} that are not output names. The model's "
                    f"outputs are {names}."
                )
            entries = [sample_weight.get(name) for name in names]
            where = [f"{argument}[{name!r}]" for name in names]
        else:
            entries = list(sample_weight)
            where = [f"{argument}[{i}]" for i in range(len(names))]
        return [
            None if w is None or t is None else check_sample_weight(w, n, label)
            for w, t, label in zip(entries, targets, where)
        ]
    weights = check_sample_weight(sample_weight, n, argument)
    return [None if t is None else weights for t in targets]


def class_weight_to_sample_weight(
    class_weight: Any, targets: list, loss, output_shape: tuple
) -> list[np.ndarray]:
    """Keras's ``class_weight``: each sample weighed by its class's weight (one output).

    The class of a sample is its label (sparse targets), its one-hot column (categorical)
    or its rounded 0/1 target (one binary output).

    Raises:
        ValueError: several outputs, keys that are not classes of the output, or labels
            whose class has no weight (named).
    """
    if not isinstance(class_weight, dict):
        raise TypeError(
            "Expected class_weight as a dict {class index: weight}. "
            f"Received: class_weight={class_weight!r:.100} of type {type(class_weight).__name__}"
        )
    present = [t for t in targets if t is not None]
    if len(targets) != 1 or len(present) != 1:
        raise ValueError(
            "class_weight is only supported for models with a single output (as Keras); "
            "pass sample_weight per output instead."
        )
    y = present[0]
    if getattr(loss, "sparse_targets", False):
        labels = y.reshape(len(y), -1)[:, 0]
        n_classes = output_shape[-1] if output_shape and output_shape[-1] else None
    elif y.ndim == 2 and y.shape[1] > 1:
        labels, n_classes = np.argmax(y, axis=1), y.shape[1]
    else:  # one binary (or regression) output: the rounded target
        labels, n_classes = np.round(y.reshape(len(y), -1)[:, 0]), 2
    weights: dict[int, float] = {}
    for key, value in class_weight.items():
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer, float)):
            raise TypeError(
                f"Expected integer class indices as keys. Received: class_weight key {key!r}"
            )
        if int(key) != key or key < 0 or (n_classes is not None and key >= n_classes):
            expected = "a non-negative integer" if n_classes is None else f"in 0..{n_classes - 1}"
            raise ValueError(
                f"class_weight names class {key!r}, which is not a class of the model's "
                f"output (expected {expected})."
            )
        weights[int(key)] = check_number(value, f"class_weight[{key!r}]", minimum=0.0)
    classes = np.unique(labels).astype(np.int64)
    missing = [int(c) for c in classes if int(c) not in weights]
    if missing:
        raise ValueError(
            f"class_weight has no weight for the classes {missing[:10]}"
            f"{' ...' if len(missing) > 10 else ''} found in y. Give every class a weight "
            f"(1.0 leaves it as it is). Received keys: {sorted(weights)}"
        )
    table = np.zeros(int(classes.max()) + 1 if classes.size else 1, dtype=np.float64)
    for key, value in weights.items():
        if key < table.size:
            table[key] = value
    return [table[labels.astype(np.int64)].astype(backend.floatx())]
