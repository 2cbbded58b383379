"""Optimizer state in Keras 3's layout: the ``optimizer/vars/<i>`` datasets of a ``.keras``
archive's ``model.weights.h5`` and the optimizer entry of its ``compile_config``.

Keras 3 saves ``optimizer.variables`` in the order it created them: ``iteration`` (int32,
its ``_iterations``: the calls of ``apply``), ``learning_rate`` (float32; absent when the
rate is a schedule), then ``add_optimizer_variables`` groups over the trainable weights in
model order: the base options' (``average`` for ``use_ema``, then ``gradient_accumulator``),
then the update rule's, each group weight by weight and, within a weight, slot by slot
(Adam: ``kernel_momentum, kernel_velocity, bias_momentum, ...``, then the ``velocity_hat``
group for AMSGrad), then scalars such as Nadam's momentum cache. Keras matches them by
position only, so the order is the format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..parameter import Parameter
from .base import Optimizer

__all__ = ["from_keras_config", "keras_config", "keras_variables", "load_keras_variables"]


def _groups(optimizer: Optimizer) -> tuple[tuple[str, ...], ...]:
    base = tuple((s,) for s in optimizer.base_slot_names)
    return base + optimizer.keras_slot_groups()


def keras_config(optimizer: Optimizer) -> dict[str, Any]:
    """The optimizer as Keras 3 serialises it in ``compile_config``: its config with
    Keras's keys only (tf.keras 2's ``decay``, which Keras 3 ignores, left out)."""
    config = {k: v for k, v in optimizer.get_config().items() if k != "decay"}
    learning_rate = config["learning_rate"]
    if isinstance(learning_rate, dict):  # a schedule, serialised as Keras's
        config["learning_rate"] = {
            "module": "keras.optimizers.schedules",
            "class_name": learning_rate["class_name"],
            "config": learning_rate["config"],
            "registered_name": None,
        }
    return {
        "module": "keras.optimizers",
        "class_name": type(optimizer).__name__,
        "config": config,
        "registered_name": None,
    }


def from_keras_config(spec: dict[str, Any]) -> Optimizer:
    """The optimizer of a Keras 3 ``compile_config["optimizer"]`` entry (``{"module",
    "class_name", "config", "registered_name"}``), by its registered name.

    Raises:
        ValueError: not such an entry, an optimizer layerkit does not have, or an option
            it does not take (the message names them).
    """
    from . import get  # the registry imports this module's neighbours

    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise ValueError(
            f"Expected a Keras optimizer entry with a 'config' dict. Received: {spec!r:.200}"
        )
    config = dict(spec["config"])
    learning_rate = config.get("learning_rate")
    if isinstance(learning_rate, dict):
        config["learning_rate"] = {
            "class_name": learning_rate.get("class_name"),
            "config": learning_rate.get("config", {}),
        }
    return get({"class_name": spec.get("class_name"), "config": config})


def keras_variables(optimizer: Optimizer, parameters: Sequence[Parameter]) -> list[np.ndarray]:
    """``optimizer.variables`` as Keras 3 would hold them for ``parameters`` (the model's
    trainable weights, in model order), in Keras's definitions (:meth:`Optimizer.slots`).

    Parameters the optimizer has no state for yet get its initial state, as Keras's
    ``build`` gives them; the optimizer itself is not changed.
    """
    arrays: list[np.ndarray] = [np.asarray(optimizer._iterations, dtype=np.int32)]
    if optimizer.schedule is None:
        arrays.append(np.asarray(optimizer.learning_rate, dtype=np.float32))
    slots = {p.name: _slots(optimizer, p) for p in parameters}
    for group in _groups(optimizer):
        for p in parameters:
            for slot in group:
                arrays.append(_to_keras(optimizer, slot, p, slots[p.name][slot]))
    arrays.extend(optimizer.keras_extra_variables(parameters))
    return arrays


def _slots(optimizer: Optimizer, p: Parameter) -> dict[str, np.ndarray]:
    """The state of ``p`` in Keras's definitions: built, loaded but not built yet, or
    the initial state."""
    if p.name in optimizer._slots:
        return optimizer.slots(p.name)
    pending = optimizer._pending_state.get(p.name)
    if pending is not None:
        return {k: np.asarray(v) * optimizer._scale(k) for k, v in pending.items()}
    shapes = {s: p.shape for s in optimizer.slot_names + optimizer.base_slot_names}
    shapes.update({s: optimizer.slot_shape(s, p) for s in optimizer.shaped_slot_names})
    return {
        s: np.full(shape, optimizer.slot_initial_value(s), p.dtype) for s, shape in shapes.items()
    }


def _to_keras(optimizer: Optimizer, slot: str, p: Parameter, value: np.ndarray) -> np.ndarray:
    if slot in optimizer.shaped_slot_names and value.shape == () and p.value.ndim < 2:
        return np.zeros((), np.int32)  # Keras's placeholder for an unfactored weight
    return np.asarray(value, dtype=p.dtype)


def load_keras_variables(
    optimizer: Optimizer, parameters: Sequence[Parameter], arrays: Sequence[Any]
) -> None:
    """Sets the optimizer's state from Keras 3's ``optimizer.variables`` for ``parameters``
    (the inverse of :func:`keras_variables`).

    ``arrays`` may be numpy arrays or h5py datasets (a ``.keras`` archive's
    ``optimizer/vars/<i>``): their count, shapes and dtypes are checked before any is
    read, then the iteration count and learning rate, and only then is anything changed.
    The learning rate is set from the file unless the optimizer follows a schedule.

    Raises:
        ValueError: a count, shape, dtype or value that does not fit, naming the variable.
    """
    expected = keras_variables(optimizer, parameters)
    if len(arrays) != len(expected):
        raise ValueError(
            f"Expected {len(expected)} Keras optimizer variables for {type(optimizer).__name__} "
            f"on {len(parameters)} weights. Received: {len(arrays)} variables."
        )
    for i, (got, want) in enumerate(zip(arrays, expected, strict=True)):
        shape, dtype = tuple(np.shape(got)), np.dtype(getattr(got, "dtype", np.float64))
        if shape != want.shape:
            raise ValueError(
                f"Keras optimizer variable {i}: expected shape {want.shape}, received {shape}."
            )
        kind = np.integer if i == 0 else np.number
        if not np.issubdtype(dtype, kind) or np.issubdtype(dtype, np.complexfloating):
            raise ValueError(
                f"Keras optimizer variable {i}: expected {'an integer' if i == 0 else 'a real'} "
                f"array, received dtype {dtype}."
            )
    arrays = [np.asarray(a) for a in arrays]
    iterations = int(arrays[0])
    if iterations < 0:
        raise ValueError(f"Keras optimizer iterations: expected >= 0. Received: {iterations}")
    position, learning_rate = 1, None
    if optimizer.schedule is None:
        learning_rate, position = float(arrays[1]), 2
        if not np.isfinite(learning_rate) or learning_rate < 0:
            raise ValueError(
                "Keras optimizer learning_rate: expected a finite, non-negative rate. "
                f"Received: {learning_rate!r}"
            )
    slots: dict[str, dict[str, np.ndarray]] = {p.name: {} for p in parameters}
    for group in _groups(optimizer):
        for p in parameters:
            for slot in group:
                value = arrays[position]
                if slot in optimizer.shaped_slot_names and p.value.ndim < 2:
                    value = np.zeros((), p.dtype)  # Keras's int placeholder: no state
                slots[p.name][slot] = value
                position += 1
    optimizer.build(parameters)
    optimizer.load_state_dict({"iterations": iterations, "slots": slots, "form": "keras"})
    if learning_rate is not None:
        optimizer.learning_rate = learning_rate
