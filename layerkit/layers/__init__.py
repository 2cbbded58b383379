"""Layers: ``Dense``, ``Activation``, ``Dropout``, ``Flatten``, ``InputLayer`` / ``Input``."""

from .activation import Activation
from .base import Layer, deserialize, layer_class, register_layer, serialize
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten
from .input_layer import Input, InputLayer

__all__ = [
    "Activation",
    "Dense",
    "Dropout",
    "Flatten",
    "Input",
    "InputLayer",
    "Layer",
    "deserialize",
    "layer_class",
    "register_layer",
    "serialize",
]
