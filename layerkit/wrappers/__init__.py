"""scikit-learn estimators around layerkit models (Keras 3's ``keras.wrappers``).

``SKLearnClassifier``, ``SKLearnRegressor`` and ``SKLearnTransformer`` are loaded on first
use, so ``import layerkit`` does not import scikit-learn; without it, using them raises an
ImportError that names the extra: ``pip install 'layerkit[sklearn]'``.

Example:
    >>> from sklearn.model_selection import cross_val_score
    >>> classifier = lk.wrappers.SKLearnClassifier(build, fit_kwargs={"epochs": 5})
    >>> cross_val_score(classifier, x, y, cv=3)
"""

from __future__ import annotations

from typing import Any

__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import sklearn_wrapper

        return getattr(sklearn_wrapper, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
