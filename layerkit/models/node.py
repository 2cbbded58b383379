"""Symbolic tensors and the calls that make them: the record a graph of layers is made of.

``lk.layers.Input((784,))`` returns a :class:`SymbolicTensor`: a shape with a batch axis of
``None``, a dtype and a name, and no values. Calling a layer on symbolic tensors computes
nothing: it builds the layer for their shapes if needed and records a :class:`Node` (the
layer, the tensors it was called on, the tensors it returned); each output tensor points
back at its node. Walking back from a model's outputs through the nodes finds the whole
graph (see :mod:`layerkit.models.graph`), as in Keras 3 (``keras/src/ops/node.py``).

Example:
    >>> x = lk.layers.Input(shape=(784,), name="pixels")
    >>> h = lk.layers.Dense(300, activation="relu", name="hidden1")(x)
    >>> h
    <SymbolicTensor shape=(None, 300), dtype=float32, name=hidden1/output>
    >>> h.node.layer.name, h.node.inputs[0] is x
    ('hidden1', True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..layers.base import Layer

Shape = tuple  # (None, int, ...)


class SymbolicTensor:
    """A placeholder for the batches that will flow along one edge of a graph.

    Attributes:
        shape: batch axis first, ``None`` for the batch (``(None, 784)``).
        dtype: the float type of the values.
        name: ``"<layer>/output"`` (``"<layer>/output_<i>"`` for a layer's later calls),
            or the input's name.
        node: the :class:`Node` that returned it.
        index: its position among that node's outputs.
    """

    __slots__ = ("dtype", "index", "name", "node", "shape")

    def __init__(self, shape: Shape, dtype: str, name: str, node: Node, index: int = 0) -> None:
        self.shape = tuple(shape)
        self.dtype, self.name, self.node, self.index = dtype, name, node, index

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<SymbolicTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, *args: Any, **kwargs: Any):
        # numpy would otherwise make a 0-d object array and fail somewhere far away.
        raise TypeError(
            f"{self!r} is symbolic: it has no values. Symbolic tensors are made by "
            "lk.layers.Input and layer calls to describe a model; pass them to "
            "lk.Model(inputs, outputs), and call the model on arrays."
        )

    def __bool__(self) -> bool:
        raise TypeError(
            f"{self!r} is symbolic: it has no truth value (Python control flow on a value "
            "cannot be recorded in a graph of layers)."
        )


class Node:
    """One call of a layer on symbolic tensors.

    Attributes:
        layer: the layer called.
        inputs: the tensors it was called on (empty for an InputLayer's node).
        outputs: the tensors it returned.
        listed: whether the layer was called on a list (a merge layer), so the call is
            replayed with a list even of one tensor.
        index: the call's position among the layer's calls (0 for the first).
    """

    __slots__ = ("index", "inputs", "layer", "listed", "outputs")

    def __init__(
        self,
        layer: Layer,
        inputs: list[SymbolicTensor],
        output_shapes: list[Shape],
        listed: bool = False,
    ) -> None:
        self.layer, self.inputs, self.listed = layer, list(inputs), listed
        self.index = len(layer._inbound_nodes)
        layer._inbound_nodes.append(self)
        suffix = "" if self.index == 0 else f"_{self.index}"
        many = len(output_shapes) > 1
        self.outputs = [
            SymbolicTensor(
                shape,
                layer.dtype,
                f"{layer.name}/output{suffix}" + (f"_{i}" if many else ""),
                self,
                i,
            )
            for i, shape in enumerate(output_shapes)
        ]

    @property
    def parents(self) -> list[Node]:
        """The nodes whose outputs this call takes, in argument order."""
        return [t.node for t in self.inputs]

    def __repr__(self) -> str:
        ins = ", ".join(t.name for t in self.inputs)
        return f"<Node {self.layer.name}({ins})>"


def is_symbolic(value: Any) -> bool:
    """Whether ``value`` is a symbolic tensor or a non-empty list/tuple of them."""
    if isinstance(value, SymbolicTensor):
        return True
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(v, SymbolicTensor) for v in value)
    )


def mixed_symbolic(value: Any) -> bool:
    """A list holding symbolic tensors and arrays together (always a mistake)."""
    return (
        isinstance(value, (list, tuple))
        and any(isinstance(v, SymbolicTensor) for v in value)
        and not all(isinstance(v, SymbolicTensor) for v in value)
    )
