"""Keras-shaped alias of :mod:`layerkit.optim` (``from layerkit.optimizers import Adam``)."""

from .optim import *  # noqa: F403
from .optim import __all__, get, schedules  # noqa: F401
