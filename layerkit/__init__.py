"""layerkit: a Keras-like neural-network framework on numpy.

Example:
    >>> import layerkit as lk
    >>> model = lk.Sequential([lk.layers.Dense(10, activation="softmax", input_dim=784)])
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
"""

from . import (
    activations,
    backend,
    callbacks,
    constraints,
    datasets,
    distributed,
    initializers,
    io,
    layers,
    losses,
    metrics,
    models,
    optim,
    optimizers,
    regularizers,
    testing,
    utils,
    wrappers,
)
from .layers import Input
from .models import Model, Sequential, load_model
from .version import __version__

__all__ = [
    "Input",
    "Model",
    "Sequential",
    "__version__",
    "activations",
    "backend",
    "callbacks",
    "constraints",
    "datasets",
    "distributed",
    "initializers",
    "io",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "models",
    "optim",
    "optimizers",
    "regularizers",
    "testing",
    "utils",
    "wrappers",
]
