"""A framework-neutral description of weights read from another framework's file.

Readers (``keras_files``, ``tf1_checkpoint``, ``pytorch``, ``safetensors``) turn foreign
files into a list of :class:`StoredLayer`, in model order, so that a single loader can
map them onto layerkit layers without knowing where they came from.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["FormatError", "StoredLayer"]


class FormatError(ValueError):
    """A file is not what it claims to be, or is unsafe to read.

    The message names the file and the offending object inside it.
    """


@dataclasses.dataclass
class StoredLayer:
    """The weights of one layer as stored in a file.

    Attributes:
        name: the layer name as stored in the file.
        weights: arrays fully read into memory, ordered as Keras orders them
            (``"kernel"`` then ``"bias"`` for a Dense layer).
        class_name: the layer class (e.g. ``"Dense"``) when the file records it.
        origin: ``"pytorch"`` for PyTorch files (``torch.save``, ``.safetensors``), whose
            module names (``fc1``, ``0``) rarely match layerkit's: loading may then map
            them onto the model's layers by order.
    """

    name: str
    weights: dict[str, np.ndarray]
    class_name: str | None = None
    origin: str | None = None

    def __repr__(self) -> str:
        # The default repr would print every array; shapes are what one wants to see.
        shapes = ", ".join(f"{k}: {tuple(v.shape)} {v.dtype}" for k, v in self.weights.items())
        return f"StoredLayer(name={self.name!r}, class_name={self.class_name!r}, {{{shapes}}})"
