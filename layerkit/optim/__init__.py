"""Optimizers with Keras 3 defaults and update rules: SGD, RMSprop, Adagrad, Adadelta, Adam
(with amsgrad), AdamW, Adamax, Nadam, Lion, Ftrl, Lamb, Adafactor; Keras 3's base options
(``weight_decay``, ``use_ema``, ``gradient_accumulation_steps``, ``loss_scale_factor``,
clipping) on every one."""

from __future__ import annotations

from typing import Any

from ..registry import lookup
from . import schedules
from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam
from .adamax import Adamax
from .adamw import AdamW
from .base import Optimizer
from .ftrl import Ftrl
from .lamb import Lamb
from .lion import Lion
from .nadam import Nadam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "SGD",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Ftrl",
    "Lamb",
    "Lion",
    "Nadam",
    "Optimizer",
    "RMSprop",
    "get",
    "registered_optimizers",
    "schedules",
]

_BY_NAME: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
    "adadelta": Adadelta,
    "adam": Adam,
    "adamw": AdamW,
    "adamax": Adamax,
    "nadam": Nadam,
    "lion": Lion,
    "ftrl": Ftrl,
    "lamb": Lamb,
    "adafactor": Adafactor,
}


def registered_optimizers() -> dict[str, type[Optimizer]]:
    """The optimizer classes known by name (``{"adam": Adam, ...}``), a copy.

    Tests iterate over it, so a new optimizer joins the checkpoint round-trip matrix by
    being registered here.
    """
    return dict(_BY_NAME)


def get(identifier: str | Optimizer | dict) -> Optimizer:
    """Returns an optimizer for a name (``"adam"``), an instance, or a :func:`serialize` dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        return lookup(_BY_NAME, identifier, "optimizer", "optimizer")()
    if isinstance(identifier, dict) and isinstance(identifier.get("class_name"), str):
        cls = _BY_NAME.get(identifier["class_name"].lower())
        config = identifier.get("config", {})
        if cls is None or not isinstance(config, dict):
            raise ValueError(f"Unknown optimizer config. Received: {identifier!r:.200}")
        try:
            return cls.from_config(config)
        except TypeError as error:
            raise ValueError(f"Invalid optimizer config for {cls.__name__}: {error}") from None
    raise TypeError(
        "Expected an optimizer name or a layerkit optimizer. "
        f"Received: optimizer={identifier!r:.100} of type {type(identifier).__name__}"
    )


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}
