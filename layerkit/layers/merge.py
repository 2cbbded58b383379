"""Merge layers: several inputs, one output, as Keras 3's ``keras.layers.merging``.

``Concatenate``, ``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``, ``Minimum``
and ``Dot``, with the functional helpers ``concatenate``, ``add``, ... ``dot``.

The multi-input protocol (:class:`MergeLayer`):

* ``build(input_shapes)``: a list of shapes, batch axis first; checks that they can be
  merged (with Keras's messages) and records ``input_shape`` (that list) and
  ``output_shape``.
* ``compute_output_shape(input_shapes) -> Shape``: checks and returns the output shape.
* ``forward(inputs, training) -> (y, backward)``: ``inputs`` is a list of arrays.
  ``backward(dy, need_dx) -> list[np.ndarray] | None`` returns one gradient per input,
  each of that input's shape, or None when ``need_dx`` is false (merge layers have no
  weights, so there is nothing else to do).
* ``layer(inputs)`` on a list of arrays computes at once and returns a new array.

Unlike single-input layers, a merge layer keeps no per-layer buffers: ``forward`` allocates
its output at every call, and ``backward`` captures only what that call needs (the inputs
for ``Multiply`` and ``Dot``, a one-byte code per element and step for ``Maximum`` /
``Minimum``). One layer can therefore be called several times in one step (a shared layer)
and each call's backward still sees its own values.

Ownership of gradients: ``backward`` may overwrite ``dy`` and may return it, or views of
it, as gradients; no two returned gradients share memory (``Add`` hands ``dy`` to its first
input and copies to the others; ``Concatenate`` returns disjoint slices of ``dy``). A
caller that accumulates gradients may thus write into each returned array.

Elementwise layers (``Add`` ... ``Minimum``) broadcast as Keras 3 does: an input of lower
rank gets axes of size 1 inserted after its batch axis, then numpy broadcasting applies;
batch sizes must be equal. ``Maximum`` / ``Minimum`` fold left to right like Keras and
split a tie between the two operands of each step, as torch's autograd does, so with three
equal inputs the gradients are 1/4, 1/4 and 1/2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import backend
from ..validation import check_flag, check_integer
from .base import Layer, Shape, register_layer

MergeBackward = Callable[[np.ndarray, bool], "list[np.ndarray] | None"]


# --- helpers --------------------------------------------------------------------------------


def _aligned(x: np.ndarray, ndim: int) -> np.ndarray:
    """``x`` with axes of size 1 inserted after the batch axis up to rank ``ndim`` (a view)."""
    if x.ndim == ndim:
        return x
    return x.reshape(x.shape[0], *(1,) * (ndim - x.ndim), *x.shape[1:])


def _sum_to(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sums ``g`` over the axes that broadcasting stretched to reach it from ``shape``."""
    if g.shape == shape:
        return g
    axes = tuple(i for i, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _distinct(grads: list[np.ndarray]) -> list[np.ndarray]:
    """Copies each gradient that may share memory with an earlier one (Add's ``dy``)."""
    for i, g in enumerate(grads):
        if any(np.may_share_memory(g, h) for h in grads[:i]):
            grads[i] = g.copy()
    return grads


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape}"
    return f"{value!r:.200}"


# --- the base class -------------------------------------------------------------------------


class MergeLayer(Layer):
    """Base class of layers over a list of inputs; see the module docstring for the protocol.

    Subclasses write ``compute_output_shape`` (which validates) and ``forward``.
    """

    _list_message = "A merge layer should be called on a list of inputs"

    def _shape_list(self, input_shapes: Any) -> list[tuple]:
        if (
            not isinstance(input_shapes, (list, tuple))
            or not input_shapes
            or not all(isinstance(s, (list, tuple)) for s in input_shapes)
        ):
            raise ValueError(
                f"{self._list_message}. Received: input_shape={input_shapes!r:.200} "
                "(not a list of shapes)"
            )
        return [tuple(s) for s in input_shapes]

    def build(self, input_shapes: list[Shape]) -> None:
        """Checks that inputs of ``input_shapes`` (batch axis first) can be merged."""
        shapes = self._shape_list(input_shapes)
        self.output_shape = self.compute_output_shape(shapes)
        self.input_shape = shapes
        self.built = True

    def compute_output_shape(self, input_shapes: list[Shape]) -> Shape:
        raise NotImplementedError

    def forward(
        self, inputs: list[np.ndarray], training: bool = False
    ) -> tuple[np.ndarray, MergeBackward]:
        """Returns a newly allocated output and the backward function."""
        raise NotImplementedError

    def _arrays(self, inputs: Any) -> list[np.ndarray]:
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise ValueError(
                f"{self._list_message}. Received: inputs={_describe(inputs)} (not a list of arrays)"
            )
        return [np.asarray(x, dtype=self.dtype) for x in inputs]

    def __call__(self, inputs: Sequence, training: bool = False):
        """Computes the layer on a list of arrays and returns a new array; on a list of
        symbolic tensors records the call and returns the symbolic output."""
        from ..models.node import Node, is_symbolic, mixed_symbolic

        if mixed_symbolic(inputs):
            raise TypeError(
                f"Layer {self.name!r} was called on a list mixing symbolic tensors and "
                "arrays: pass all symbolic tensors (to describe a model) or all arrays."
            )
        if is_symbolic(inputs):
            if not isinstance(inputs, (list, tuple)):
                raise ValueError(f"{self._list_message}. Received: one tensor {inputs!r}")
            shapes = [t.shape for t in inputs]
            if not self.built:
                self.build(shapes)
            output_shape = self.compute_output_shape(shapes)
            return Node(self, list(inputs), [output_shape], listed=True).outputs[0]
        arrays = self._arrays(inputs)
        if any(x.ndim == 0 for x in arrays):
            raise ValueError(
                f"{self._list_message}, each with a batch axis. "
                f"Received shapes {[x.shape for x in arrays]}"
            )
        if not self.built:
            self.build([(None, *x.shape[1:]) for x in arrays])
        self.compute_output_shape([x.shape for x in arrays])  # the batch sizes too
        y, _ = self.forward(arrays, training=training)
        return y


# --- elementwise layers ---------------------------------------------------------------------


def _elementwise_shape(shape1: tuple, shape2: tuple) -> tuple:
    """Keras's broadcast of two sample shapes (right-aligned; None matches anything)."""
    if len(shape1) < len(shape2):
        return _elementwise_shape(shape2, shape1)
    if not shape2:
        return shape1
    output = list(shape1[: -len(shape2)])
    for i, j in zip(shape1[-len(shape2) :], shape2):
        if i is None or j is None:
            output.append(None)
        elif i == 1:
            output.append(j)
        elif j == 1 or i == j:
            output.append(i)
        else:
            raise ValueError(
                f"Inputs have incompatible shapes. Received shapes {shape1} and {shape2}"
            )
    return tuple(output)


class _Elementwise(MergeLayer):
    """Add, Subtract, Multiply, Average, Maximum, Minimum."""

    def compute_output_shape(self, input_shapes):
        shapes = self._shape_list(input_shapes)
        self._check_count(shapes)
        batch_sizes = {s[0] for s in shapes if s} - {None}
        if len(batch_sizes) > 1:
            raise ValueError(
                "Cannot merge tensors with different batch sizes. "
                f"Received tensors with shapes {shapes}"
            )
        output = shapes[0][1:]
        for shape in shapes[1:]:
            output = _elementwise_shape(output, shape[1:])
        return (batch_sizes.pop() if batch_sizes else None, *output)

    def _check_count(self, shapes: list[tuple]) -> None:
        pass

    def forward(self, inputs, training=False):
        ndim = max(x.ndim for x in inputs)
        xs = [_aligned(x, ndim) for x in inputs]
        y, backward_aligned = self._merge(xs)

        def backward(dy, need_dx=True):
            if not need_dx:
                return None
            grads = backward_aligned(dy)
            return _distinct(
                [_sum_to(g, x.shape).reshape(o.shape) for g, x, o in zip(grads, xs, inputs)]
            )

        return y, backward

    def _merge(self, xs: list[np.ndarray]) -> tuple[np.ndarray, Callable]:
        """Forward on inputs of equal rank; its backward returns the gradients before the
        broadcast axes are summed, and they may alias one another."""
        raise NotImplementedError


def _fold(op: Callable, xs: list[np.ndarray]) -> np.ndarray:
    """``op(op(x0, x1), x2)...`` into a new array, in place after the first step."""
    if len(xs) == 1:
        return np.array(xs[0], copy=True)
    y = op(xs[0], xs[1])
    for x in xs[2:]:
        y = op(y, x, out=y) if np.broadcast_shapes(y.shape, x.shape) == y.shape else op(y, x)
    return y


@register_layer
class Add(_Elementwise):
    """Elementwise sum of the inputs: ``y = x0 + x1 + ...``; each gradient is ``dy``."""

    def _merge(self, xs):
        def backward(dy):
            return [dy] * len(xs)

        return _fold(np.add, xs), backward


@register_layer
class Subtract(_Elementwise):
    """``y = x0 - x1`` on exactly two inputs; the gradients are ``dy`` and ``-dy``."""

    def _check_count(self, shapes):
        if len(shapes) != 2:
            raise ValueError(
                "A `Subtract` layer should be called on exactly 2 inputs. "
                f"Received: input_shape={shapes}"
            )

    def _merge(self, xs):
        self._check_count([x.shape for x in xs])

        def backward(dy):
            return [dy, np.negative(dy)]

        return np.subtract(xs[0], xs[1]), backward


@register_layer
class Multiply(_Elementwise):
    """Elementwise product: ``y = x0 * x1 * ...``; ``dL/dx_i = dy * prod_{j != i} x_j``.

    The backward follows the left fold ``((x0 * x1) * x2)...`` as autograd does; it keeps
    references to the inputs and recomputes the partial products (none for two inputs).
    """

    def _merge(self, xs):
        def backward(dy):
            prefixes = [xs[0]]
            for x in xs[1:-1]:
                prefixes.append(prefixes[-1] * x)
            grads = [None] * len(xs)
            running = dy  # dL/d(prefix k)
            for k in range(len(xs) - 1, 0, -1):
                grads[k] = np.multiply(running, prefixes[k - 1])
                running = _sum_to(np.multiply(running, xs[k]), prefixes[k - 1].shape)
            grads[0] = running
            return grads

        return _fold(np.multiply, xs), backward


@register_layer
class Average(_Elementwise):
    """Elementwise mean: ``y = (x0 + ... + x_{n-1}) / n``; each gradient is ``dy / n``."""

    def _merge(self, xs):
        n = len(xs)
        y = _fold(np.add, xs)
        np.divide(y, n, out=y)

        def backward(dy):
            return [np.divide(dy, n)] * n

        return y, backward


# Codes of one Maximum / Minimum step between the running result a and the next input b:
# 0 unordered (a NaN), 1 b wins, 2 a wins, 3 tie. What each operand's gradient is
# multiplied by, as torch's maximum / minimum backward (a NaN passes the gradient to both).
_FIRST_SHARE = np.array([1.0, 0.0, 1.0, 0.5])
_SECOND_SHARE = np.array([1.0, 1.0, 0.0, 0.5])


class _Extremum(_Elementwise):
    _op: Callable
    _beats: Callable  # _beats(a, b): a wins the step

    def _merge(self, xs):
        codes, shapes = [], [xs[0].shape]
        y = xs[0]
        for x in xs[1:]:
            code = self._beats(x, y).view(np.int8)  # b wins: 1
            code = code + 2 * self._beats(y, x).view(np.int8)  # a wins: 2
            code += 3 * np.equal(y, x).view(np.int8)  # tie: 3
            codes.append(code)
            y = self._op(y, x)
            shapes.append(y.shape)
        if len(xs) == 1:
            y = np.array(y, copy=True)

        def backward(dy):
            first, second = _FIRST_SHARE.astype(dy.dtype), _SECOND_SHARE.astype(dy.dtype)
            grads = [None] * len(xs)
            running = dy
            for k in range(len(xs) - 1, 0, -1):
                code = codes[k - 1]
                grads[k] = np.multiply(running, second[code])
                running = _sum_to(np.multiply(running, first[code]), shapes[k - 1])
            grads[0] = running
            return grads

        return y, backward


@register_layer
class Maximum(_Extremum):
    """Elementwise maximum of the inputs; the gradient goes to the larger input of each
    step of the fold, split in half on a tie (see the module docstring)."""

    _op = np.maximum
    _beats = np.greater


@register_layer
class Minimum(_Extremum):
    """Elementwise minimum of the inputs; ties split as in :class:`Maximum`."""

    _op = np.minimum
    _beats = np.less


# --- Concatenate ----------------------------------------------------------------------------


@register_layer
class Concatenate(MergeLayer):
    """Joins the inputs along ``axis``; every other axis must match.

    Args:
        axis: the axis to concatenate on (batch axis included in the count, so -1 or 1
            for ``(batch, features)`` inputs).
    """

    _list_message = "A `Concatenate` layer should be called on a list of at least 1 input"

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = check_integer(axis, "axis")

    def _axis_for(self, rank: int, shapes: list[tuple]) -> int:
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"Invalid axis for Concatenate: axis={self.axis} is out of range for inputs "
                f"of rank {rank}. Received: input_shape={shapes}"
            )
        return self.axis % rank

    def compute_output_shape(self, input_shapes):
        shapes = self._shape_list(input_shapes)
        ranks = {len(s) for s in shapes}
        mismatch = ValueError(
            "A `Concatenate` layer requires inputs with matching shapes except for the "
            f"concatenation axis. Received: input_shape={shapes}"
        )
        if len(ranks) != 1:
            raise mismatch
        axis = self._axis_for(ranks.pop(), shapes)
        output = list(shapes[0])
        for i in range(len(output)):
            if i == axis:
                sizes = [s[i] for s in shapes]
                output[i] = None if None in sizes else sum(sizes)
                continue
            sizes = {s[i] for s in shapes} - {None}
            if len(sizes) > 1:
                raise mismatch
            output[i] = sizes.pop() if sizes else None
        return tuple(output)

    def forward(self, inputs, training=False):
        axis = self.axis % inputs[0].ndim
        ends = np.cumsum([x.shape[axis] for x in inputs]).tolist()
        y = np.concatenate(inputs, axis=axis)

        def backward(dy, need_dx=True):
            if not need_dx:
                return None
            before = (slice(None),) * axis
            return [dy[(*before, slice(end - x.shape[axis], end))] for x, end in zip(inputs, ends)]

        return y, backward

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


# --- Dot ------------------------------------------------------------------------------------


def _check_axes(axes: Any) -> int | tuple[int, int]:
    def is_int(value):
        return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))

    if is_int(axes):
        return int(axes)
    if not isinstance(axes, (list, tuple)):
        raise TypeError(
            "Invalid type for argument `axes`: it should be a list or an int. "
            f"Received: axes={axes!r}"
        )
    if len(axes) != 2:
        raise ValueError(
            "Invalid format for argument `axes`: it should contain two elements. "
            f"Received: axes={axes!r}"
        )
    if not (is_int(axes[0]) and is_int(axes[1])):
        raise ValueError(
            "Invalid format for argument `axes`: list elements should be integers. "
            f"Received: axes={axes!r}"
        )
    return (int(axes[0]), int(axes[1]))


def _l2_normalize(x: np.ndarray, axis: int) -> tuple[np.ndarray, Callable]:
    """Keras's ``normalize``: ``x * min(1 / sqrt(sum(x**2)), 1 / epsilon)`` along ``axis``.

    Where the cap applies (a norm below epsilon, a zero vector included) the factor is a
    constant and the gradient is ``g / epsilon``; torch's autograd gives NaN for a zero
    vector there (``0 * inf``), layerkit the finite value.
    """
    cap = 1.0 / backend.epsilon()
    with np.errstate(divide="ignore"):
        rsqrt = 1.0 / np.sqrt(np.sum(np.square(x), axis=axis, keepdims=True))
    inv = np.minimum(rsqrt, cap).astype(x.dtype, copy=False)
    xn = x * inv

    def backward(gn):
        # d inv / d x = -x * rsqrt**3 where the cap is off (half of it on a tie, as torch)
        share = np.where(rsqrt < cap, 1.0, np.where(rsqrt == cap, 0.5, 0.0))
        with np.errstate(invalid="ignore", over="ignore"):
            coefficient = np.where(
                share > 0, -share * rsqrt**3 * np.sum(gn * x, axis=axis, keepdims=True), 0.0
            )
        return (gn * inv + x * coefficient.astype(x.dtype, copy=False)).astype(x.dtype, copy=False)

    return xn, backward


@register_layer
class Dot(MergeLayer):
    """Dot product of two inputs along one axis of each, sample by sample (Keras's
    ``batch_dot``).

    With inputs ``x`` of shape ``(batch, *xs)`` and ``y`` of shape ``(batch, *ys)`` and
    ``axes=(i, j)`` (``xs[i-1] == ys[j-1]``), the output has the axes of ``x`` without ``i``
    followed by those of ``y`` without the batch axis and ``j``; two 2-D inputs give
    ``(batch, 1)``. ``y[b, ...] = sum_k x[b, ..k..] * y[b, ..k..]``.

    Args:
        axes: an int (the same axis of both inputs; negative counts from the end) or a pair.
            The batch axis 0 cannot be used.
        normalize: L2-normalise both inputs along their axes first, so the output is the
            cosine similarity.
    """

    _list_message = "A `Dot` layer should be called on a list of 2 inputs"

    def __init__(self, axes: int | tuple[int, int], normalize: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.axes = _check_axes(axes)
        self.normalize = check_flag(normalize, "normalize")

    def _resolved_axes(self, rank1: int, rank2: int) -> tuple[int, int]:
        if isinstance(self.axes, int):
            return (self.axes % rank1, self.axes % rank2) if self.axes < 0 else (self.axes,) * 2
        return self.axes[0] % rank1, self.axes[1] % rank2

    def compute_output_shape(self, input_shapes):
        shapes = self._shape_list(input_shapes)
        if len(shapes) != 2:
            raise ValueError(f"{self._list_message}. Received: input_shape={shapes}")
        shape1, shape2 = shapes
        if len(shape1) < 2 or len(shape2) < 2:
            raise ValueError(
                "Cannot do batch_dot on inputs with rank < 2. "
                f"Received inputs with shapes {shape1} and {shape2}."
            )
        if shape1[0] is not None and shape2[0] is not None and shape1[0] != shape2[0]:
            raise ValueError(
                "Cannot do batch_dot on inputs with different batch sizes. "
                f"Received inputs with shapes {shape1} and {shape2}."
            )
        raw = (self.axes, self.axes) if isinstance(self.axes, int) else self.axes
        if not (-len(shape1) <= raw[0] < len(shape1) and -len(shape2) <= raw[1] < len(shape2)):
            raise ValueError(
                f"Invalid axes for Dot: axes={self.axes} is out of range for inputs of shapes "
                f"{shape1} and {shape2}."
            )
        a1, a2 = self._resolved_axes(len(shape1), len(shape2))
        if a1 == 0 or a2 == 0:
            raise ValueError(
                "Cannot perform batch_dot over axis 0. If your inputs are not batched, add a "
                "dummy batch dimension to your inputs using keras.ops.expand_dims(x, 0)"
            )
        d1, d2 = shape1[a1], shape2[a2]
        if d1 is not None and d2 is not None and d1 != d2:
            raise ValueError(
                f"Incompatible input shapes: axis values {d1} (at axis {a1}) != {d2} "
                f"(at axis {a2}). Full input shapes: {shape1}, {shape2}"
            )
        output = [*shape1[:a1], *shape1[a1 + 1 :], *shape2[1:a2], *shape2[a2 + 1 :]]
        return tuple(output) if len(output) > 1 else (output[0], 1)

    def forward(self, inputs, training=False):
        x, y = inputs
        a1, a2 = self._resolved_axes(x.ndim, y.ndim)
        if self.normalize:
            x, x_back = _l2_normalize(x, a1)
            y, y_back = _l2_normalize(y, a2)
        # (batch, P, k) @ (batch, k, Q): x's axis moved last, y's first after the batch
        xt, yt = np.moveaxis(x, a1, -1), np.moveaxis(y, a2, 1)
        batch, k = x.shape[0], x.shape[a1]
        x3, y3 = xt.reshape(batch, -1, k), yt.reshape(batch, k, -1)
        out = np.matmul(x3, y3)
        out_shape = (batch, *xt.shape[1:-1], *yt.shape[2:])
        if len(out_shape) == 1:
            out_shape = (batch, 1)
        out = out.reshape(out_shape)

        def backward(dy, need_dx=True):
            if not need_dx:
                return None
            d3 = dy.reshape(batch, x3.shape[1], y3.shape[2])
            dx = np.moveaxis(np.matmul(d3, y3.transpose(0, 2, 1)).reshape(xt.shape), -1, a1)
            dy_ = np.moveaxis(np.matmul(x3.transpose(0, 2, 1), d3).reshape(yt.shape), 1, a2)
            if self.normalize:
                dx, dy_ = x_back(dx), y_back(dy_)
            return [dx, dy_]

        return out, backward

    def get_config(self):
        config = super().get_config()
        config["axes"] = self.axes if isinstance(self.axes, int) else list(self.axes)
        config["normalize"] = self.normalize
        return config


# --- functional helpers ---------------------------------------------------------------------


def concatenate(inputs: Sequence, axis: int = -1, **kwargs: Any) -> np.ndarray:
    """``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def add(inputs: Sequence, **kwargs: Any) -> np.ndarray:
    """``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def subtract(inputs: Sequence, **kwargs: Any) -> np.ndarray:
    """``Subtract(**kwargs)(inputs)``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs: Sequence, **kwargs: Any) -> np.ndarray:
    """``Multiply(**kwargs)(inputs)``."""
    return Multiply(**kwargs)(inputs)


def average(inputs: Sequence, **kwargs: Any) -> np.ndarray:
    """``Average(**kwargs)(inputs)``."""
    return Average(**kwargs)(inputs)


def maximum(inputs: Sequence, **kwargs: Any) -> np.ndarray:
    """``Maximum(**kwargs)(inputs)``."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs: Sequence, **kwargs: Any) -> np.ndarray:
    """``Minimum(**kwargs)(inputs)``."""
    return Minimum(**kwargs)(inputs)


def dot(
    inputs: Sequence, axes: int | tuple[int, int] = -1, normalize: bool = False, **kwargs: Any
) -> np.ndarray:
    """``Dot(axes=axes, normalize=normalize, **kwargs)(inputs)``."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
