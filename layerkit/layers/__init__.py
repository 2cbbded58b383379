"""Layers: ``Dense``, ``BatchNormalization``, ``Activation``, ``Dropout``, ``Flatten``, ``Reshape``,
``InputLayer`` / ``Input``, and the merge layers (``Concatenate``, ``Add``, ``Subtract``,
``Multiply``, ``Average``, ``Maximum``, ``Minimum``, ``Dot``) with their functional helpers."""

from .activation import Activation
from .activation_layers import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .base import Layer, deserialize, layer_class, register_layer, serialize
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten
from .input_layer import Input, InputLayer
from .merge import (
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    MergeLayer,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    dot,
    maximum,
    minimum,
    multiply,
    subtract,
)
from .noise import AlphaDropout, GaussianDropout, GaussianNoise
from .normalization import BatchNormalization
from .preprocessing import Normalization, Rescaling
from .reshape import Reshape

__all__ = [
    "ELU",
    "Activation",
    "Add",
    "AlphaDropout",
    "Average",
    "BatchNormalization",
    "Concatenate",
    "Dense",
    "Dot",
    "Dropout",
    "Flatten",
    "GaussianDropout",
    "GaussianNoise",
    "Input",
    "InputLayer",
    "Layer",
    "LeakyReLU",
    "Maximum",
    "MergeLayer",
    "Minimum",
    "Multiply",
    "Normalization",
    "PReLU",
    "ReLU",
    "Rescaling",
    "Reshape",
    "Softmax",
    "Subtract",
    "add",
    "average",
    "concatenate",
    "deserialize",
    "dot",
    "layer_class",
    "maximum",
    "minimum",
    "multiply",
    "register_layer",
    "serialize",
    "subtract",
]
