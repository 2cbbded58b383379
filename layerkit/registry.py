"""Looking things up by name: the one place that turns ``"adam"`` into ``Adam()``.

Losses, optimizers, initializers, activations and metrics all accept a name; each keeps a
table of known names and calls :func:`lookup`, so unknown names get the same clear error
(what was received, under which argument, and every name that would have worked).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def lookup(table: Mapping[str, Any], name: str, kind: str, argument: str) -> Any:
    """Returns ``table[name.lower()]``.

    Raises:
        ValueError: ``Unknown <kind>: expected one of [...]. Received: <argument>=<name>``.
    """
    try:
        return table[name.lower()]
    except KeyError:
        raise ValueError(
            f"Unknown {kind}: expected one of {sorted(table)}. Received: {argument}={name!r}"
        ) from None


def get_object(
    identifier: Any,
    base: type,
    classes: Mapping[str, type],
    by_name: Mapping[str, type],
    kind: str,
    argument: str,
) -> Any:
    """None, an instance of ``base``, a name in ``by_name`` (made with its defaults), or a
    ``{"class_name", "config"}`` dict of one of ``classes`` (made from its config): the
    one lookup of the option objects (regularizers, constraints) layers take.

    Raises:
        ValueError: an unknown name or a malformed config; TypeError: anything else.
    """
    if identifier is None or isinstance(identifier, base):
        return identifier
    if isinstance(identifier, str):
        return lookup(by_name, identifier, kind, argument)()
    if isinstance(identifier, dict) and identifier.get("class_name") in classes:
        config = identifier.get("config") or {}
        if not isinstance(config, dict):
            raise ValueError(f"Invalid {kind} config. Received: {argument}={identifier!r:.200}")
        try:
            return classes[identifier["class_name"]].from_config(config)
        except TypeError as error:
            raise ValueError(f"Invalid {kind} config for {argument}: {error}") from None
    raise TypeError(
        f"Expected a {kind} name, object or None. "
        f"Received: {argument}={identifier!r:.100} of type {type(identifier).__name__}"
    )


_MODEL_CLASSES: dict[str, type] = {}


def register_model(name: str):
    """Class decorator: the model class a stored config called ``name`` is built with
    (``"Sequential"``, ``"Functional"``). ``io`` builds models through this table, so it
    never imports ``layerkit.models``."""

    def register(cls: type) -> type:
        _MODEL_CLASSES[name] = cls
        return cls

    return register


def model_class(name: str) -> type:
    """The model class registered as ``name``; ValueError otherwise."""
    if name not in _MODEL_CLASSES:
        raise ValueError(f"Unknown model class {name!r}: expected one of {sorted(_MODEL_CLASSES)}.")
    return _MODEL_CLASSES[name]
