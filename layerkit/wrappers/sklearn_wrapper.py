"""``SKLearnClassifier``, ``SKLearnRegressor``, ``SKLearnTransformer``: a layerkit model as a
scikit-learn estimator, with Keras 3's constructor (``keras/src/wrappers/sklearn_wrapper.py``).

What differs from Keras 3, on purpose:

- a clone keeps every parameter: Keras's ``__sklearn_clone__`` drops ``fit_kwargs``, so
  ``cross_val_score`` and the searches train each fold for one epoch whatever was asked;
- ``fit`` never changes the dict passed as ``fit_kwargs`` (Keras updates it in place with
  the keyword arguments of each ``fit`` call);
- a model passed as an instance is copied with its compile settings and fresh weights
  (Keras's ``clone_model`` copy is uncompiled, so its own check refuses it);
- ``warm_start=True`` continues training the fitted model (a no-op in Keras);
- the classifier gives the model class indices instead of one-hot rows when its loss is
  sparse (``sparse_categorical_crossentropy``) or its output has one unit (a sigmoid),
  has ``predict_proba``, and a binary ``decision_function`` of shape ``(n,)`` (the
  log-odds of the second class), as scikit-learn expects;
- ``random_state`` (an addition, last, default None as Keras's behaviour) seeds
  initialisation, shuffling and dropout of each ``fit`` without touching the
  process-wide seed, so searches are reproducible;
- ``history_`` is the dict of per-epoch lists (Keras stores the History object, which its
  own ``epoch_`` cannot read).

Pickling stores fitted models as the bytes of layerkit's HDF5 checkpoint (``model.save``),
read back with ``lk.load_model`` and its checks; no layer object is ever pickled.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
    from sklearn.base import clone as sklearn_clone
    from sklearn.utils.multiclass import type_of_target
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as error:  # pragma: no cover - the sklearn extra is installed in tests
    raise ImportError(
        "lk.wrappers needs scikit-learn: pip install 'layerkit[sklearn]' (or scikit-learn). "
        f"({error})"
    ) from error

from .. import losses as losses_module
from .. import random as lk_random
from ..models.cloning import clone_model
from ..models.model import Model

__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"]

_CHECKPOINT = "model.h5"


# --- models as bytes (pickling) -------------------------------------------------------------
class _SavedModel:
    """A layerkit model stored as the bytes of its HDF5 checkpoint (what pickling keeps)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __getstate__(self):
        return self.data

    def __setstate__(self, data) -> None:
        if not isinstance(data, bytes):
            raise TypeError(
                "Expected the bytes of a layerkit checkpoint in a pickled wrapper. "
                f"Received: {type(data).__name__}"
            )
        self.data = data


def _model_to_bytes(model: Model, include_optimizer: bool = True) -> bytes:
    with tempfile.TemporaryDirectory(prefix="layerkit-sklearn-") as folder:
        path = os.path.join(folder, _CHECKPOINT)
        model.save(path, include_optimizer=include_optimizer)
        with open(path, "rb") as f:
            return f.read()


def _model_from_bytes(data: bytes) -> Model:
    from ..io.checkpoint import load_model

    with tempfile.TemporaryDirectory(prefix="layerkit-sklearn-") as folder:
        path = os.path.join(folder, _CHECKPOINT)
        with open(path, "wb") as f:
            f.write(data)
        return load_model(path)  # the checkpoint reader's checks refuse a malformed file


@contextlib.contextmanager
def _seeded(random_state: Any) -> Iterator[None]:
    """Draws initialisation, shuffling and dropout from ``random_state`` inside the block,
    and gives the process-wide generator back afterwards, as it was."""
    if random_state is None:
        yield
        return
    if isinstance(random_state, np.random.RandomState):
        seed = int(random_state.randint(0, 2**31 - 1))
    elif isinstance(random_state, np.random.Generator):
        seed = int(random_state.integers(0, 2**63 - 1))
    elif isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        seed = int(random_state)
    else:
        raise ValueError(
            "Expected random_state to be None, a non-negative int, a numpy RandomState or "
            f"Generator. Received: random_state={random_state!r:.100}"
        )
    if seed < 0:
        raise ValueError(f"Expected a non-negative random_state. Received: random_state={seed}")
    saved = lk_random._global_rng
    lk_random._global_rng = np.random.default_rng(seed)
    try:
        yield
    finally:
        lk_random._global_rng = saved


def _check_model(model: Any, source: str) -> Model:
    if not isinstance(model, Model):
        raise TypeError(
            f"Expected {source} to give a layerkit model. Received: {model!r:.100} of type "
            f"{type(model).__name__}"
        )
    if not model.compiled or model.loss is None or model.optimizer is None:
        raise RuntimeError(
            f"The model from {source} must be compiled, with a loss and an optimizer: "
            "call model.compile(optimizer=..., loss=...) before returning it."
        )
    return model


class SKLBase(BaseEstimator):
    """The part the three wrappers share: building, fitting, predicting, cloning, pickling.

    Args:
        model: a compiled layerkit model (copied with fresh weights before each ``fit``,
            unless ``warm_start`` continues a fitted one), or a callable returning one,
            called as ``model(X=X, y=y, **model_kwargs)`` with the training arrays (for
            the classifier, ``y`` one-hot encoded, so ``y.shape[1]`` is the number of
            classes).
        warm_start: reuse the fitted model's weights (and optimizer state) in the next
            ``fit`` instead of starting again.
        model_kwargs: keyword arguments for ``model`` when it is a callable.
        fit_kwargs: keyword arguments for ``model.fit`` (``epochs``, ``batch_size``,
            ``verbose``, ``callbacks``...); those given to ``fit`` itself take
            precedence.
        random_state: None (draw from layerkit's process-wide generator, as Keras), or a
            seed making each ``fit`` reproducible.

    Attributes:
        model_: the fitted model.
        history_: the per-epoch logs of the last ``fit`` (``{"loss": [...], ...}``).
        n_features_in_: the number of input features seen in ``fit``.
    """

    def __init__(
        self,
        model: Model | Callable[..., Model],
        warm_start: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        fit_kwargs: dict[str, Any] | None = None,
        random_state: int | None = None,
    ) -> None:
        # Stored as given: scikit-learn's get_params/clone require it.
        self.model = model
        self.warm_start = warm_start
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs
        self.random_state = random_state

    # --- scikit-learn protocol ------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags

    def __sklearn_clone__(self):
        """A new unfitted estimator with every parameter (``fit_kwargs`` included). A model
        given as an instance is shared, not copied: ``fit`` never trains it."""
        params = {}
        for name, value in self.get_params(deep=False).items():
            params[name] = value if isinstance(value, Model) else sklearn_clone(value, safe=False)
        return type(self)(**params)

    @property
    def epoch_(self) -> int:
        """The number of epochs the last ``fit`` ran."""
        history = getattr(self, "history_", None) or {}
        return len(next(iter(history.values()), []))

    # --- pickling -------------------------------------------------------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: self keeps its live models
        for key in ("model", "model_"):
            value = state.get(key)
            if isinstance(value, Model):
                state[key] = _SavedModel(_model_to_bytes(value, include_optimizer=True))
        return state

    def __setstate__(self, state) -> None:
        state = dict(state)
        for key in ("model", "model_"):
            value = state.get(key)
            if isinstance(value, _SavedModel):
                state[key] = _model_from_bytes(value.data)
        super().__setstate__(state)

    # --- fitting --------------------------------------------------------------------------
    def _new_model(self, X: np.ndarray, y: np.ndarray) -> Model:
        if isinstance(self.model, Model):
            template = _check_model(self.model, "model")
            # A compiled copy (loss, metrics, optimizer settings, fresh optimizer state)...
            copy = _model_from_bytes(_model_to_bytes(template, include_optimizer=False))
            # ...with freshly initialised weights, as Keras's clone_model gives.
            copy.set_weights(clone_model(copy).get_weights())
            return copy
        if not callable(self.model):
            raise TypeError(
                "Expected model to be a compiled layerkit model or a callable returning "
                f"one. Received: model={self.model!r:.100} of type {type(self.model).__name__}"
            )
        return _check_model(self.model(X=X, y=y, **(self.model_kwargs or {})), "model(X, y)")

    def _validate(self, X, y="no_validation", reset: bool = True):
        raise NotImplementedError

    def _fit_targets(self, y: np.ndarray, model: Model) -> np.ndarray:
        return y

    def fit(self, X, y, **kwargs) -> SKLBase:
        """Trains a model on ``X`` (``(n_samples, n_features)``) and ``y``; returns self.

        Keyword arguments go to ``model.fit`` and override ``fit_kwargs``.
        """
        X, y = self._validate(X, y, reset=True)
        encoded = self._encode_targets(y)
        with _seeded(self.random_state):
            if self.warm_start and hasattr(self, "model_"):
                model = self.model_
            else:
                model = self._new_model(X, encoded)
            arguments = {**(self.fit_kwargs or {}), **kwargs}
            history = model.fit(X, self._fit_targets(encoded, model), **arguments)
        self.model_ = model
        self.history_ = {key: list(values) for key, values in history.history.items()}
        return self

    def _encode_targets(self, y: np.ndarray) -> np.ndarray:
        return y

    def _raw_predict(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = self._validate(X, reset=False)
        return np.asarray(self.model_.predict(X, verbose=0))


def _float_data(estimator, X, y, reset: bool, **check):
    """``X`` as float32 (and ``y`` checked) by scikit-learn's own validation, which also
    records ``n_features_in_`` and gives its standard messages (``y=None``, NaN...)."""
    if isinstance(y, str) and y == "no_validation":
        return validate_data(estimator, X, reset=reset, dtype=np.float32)
    return validate_data(estimator, X, y, reset=reset, dtype=np.float32, **check)


class SKLearnClassifier(ClassifierMixin, SKLBase):
    """A layerkit classifier as a scikit-learn estimator (Keras 3's ``SKLearnClassifier``).

    The labels (any values: ints, strings...) become ``classes_`` (sorted); the model
    builder receives them one-hot encoded (``y.shape[1]`` classes), as in Keras. ``fit``
    trains on one-hot rows for a categorical loss, and on class indices when the loss is
    sparse (``sparse_categorical_crossentropy``) or the output has a single unit (binary,
    sigmoid). ``predict`` returns labels: the most probable class, or for one unit, the
    second class where the output exceeds 0.5 (0 for logits).

    See :class:`SKLBase` for the arguments.

    Example:
        >>> def build(X, y, hidden=30, learning_rate=1e-3):
        ...     model = lk.Sequential([lk.layers.Input((X.shape[1],)),
        ...                            lk.layers.Dense(hidden, activation="relu"),
        ...                            lk.layers.Dense(y.shape[1], activation="softmax")])
        ...     model.compile(lk.optim.Adam(learning_rate), "categorical_crossentropy")
        ...     return model
        >>> classifier = SKLearnClassifier(build, fit_kwargs={"epochs": 5, "verbose": 0})
        >>> classifier.fit(x_train, y_train).score(x_test, y_test)
        0.93
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # A small network trained for a few epochs may not reach scikit-learn's bar for
        # its toy data sets (as Keras declares).
        tags.classifier_tags.poor_score = True
        return tags

    def _validate(self, X, y="no_validation", reset: bool = True):
        return _float_data(self, X, y, reset)

    def _encode_targets(self, y: np.ndarray) -> np.ndarray:
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind not in ("binary", "multiclass"):
            raise ValueError(
                "SKLearnClassifier supports binary and multiclass targets (one label per "
                f"sample). Received: y of type {kind!r}"
            )
        self.classes_, indices = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                "A classifier needs at least 2 classes in y to train. Received: 1 class "
                f"({self.classes_[0]!r})"
            )
        one_hot = np.zeros((len(indices), len(self.classes_)), dtype=np.float32)
        one_hot[np.arange(len(indices)), indices] = 1.0
        return one_hot

    def _fit_targets(self, one_hot: np.ndarray, model: Model) -> np.ndarray:
        indices = np.argmax(one_hot, axis=1)
        units = _output_units(model)
        if units == 1:
            if len(self.classes_) != 2:
                raise ValueError(
                    f"The model has one output unit, which fits 2 classes; y has "
                    f"{len(self.classes_)}. Give the last layer y.shape[1] units."
                )
            return indices.astype(np.float32)[:, None]
        if units is not None and units != len(self.classes_):
            raise ValueError(
                f"The model's output has {units} units; y has {len(self.classes_)} classes "
                f"{list(self.classes_)[:10]}. Give the last layer y.shape[1] units."
            )
        if isinstance(model.loss, losses_module.SparseCategoricalCrossentropy):
            return indices
        return one_hot

    def _logits(self) -> bool:
        return bool(getattr(self.model_.loss, "from_logits", False))

    def predict_proba(self, X) -> np.ndarray:
        """The probability of each class, ``(n_samples, n_classes)``, in ``classes_`` order."""
        raw = self._raw_predict(X)
        raw = raw.reshape(raw.shape[0], -1)
        if raw.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-raw[:, 0])) if self._logits() else raw[:, 0]
            return np.stack([1.0 - p, p], axis=1)
        if self._logits():
            shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
            return shifted / shifted.sum(axis=1, keepdims=True)
        return raw

    def decision_function(self, X) -> np.ndarray:
        """The model's outputs, ``(n_samples, n_classes)``; for two classes, as
        scikit-learn expects, one score per sample, positive for ``classes_[1]``: the
        log-odds ``log(p1 / p0)`` (the logit itself for a one-unit logit output)."""
        raw = self._raw_predict(X)
        raw = raw.reshape(raw.shape[0], -1)
        if len(self.classes_) != 2:
            return raw
        if raw.shape[1] == 1:
            if self._logits():
                return raw[:, 0]
            p = np.clip(raw[:, 0].astype(np.float64), 1e-12, 1 - 1e-12)
            return np.log(p) - np.log1p(-p)
        if self._logits():
            return raw[:, 1] - raw[:, 0]
        p = np.clip(raw.astype(np.float64), 1e-12, None)
        return np.log(p[:, 1]) - np.log(p[:, 0])

    def predict(self, X) -> np.ndarray:
        """The most probable class of each sample, as a label from ``classes_``."""
        raw = self._raw_predict(X)
        raw = raw.reshape(raw.shape[0], -1)
        if raw.shape[1] == 1:
            index = (raw[:, 0] > (0.0 if self._logits() else 0.5)).astype(np.int64)
        else:
            index = np.argmax(raw, axis=1)
        return self.classes_[index]


class SKLearnRegressor(RegressorMixin, SKLBase):
    """A layerkit regressor as a scikit-learn estimator (Keras 3's ``SKLearnRegressor``).

    ``y`` of shape ``(n,)`` or ``(n, outputs)``; ``predict`` returns the same shape.
    ``score`` is R². See :class:`SKLBase` for the arguments.

    Example:
        >>> def build(X, y, n_hidden=1, n_neurons=30, learning_rate=3e-3):
        ...     model = lk.Sequential([lk.layers.Input((X.shape[1],))])
        ...     for _ in range(n_hidden):
        ...         model.add(lk.layers.Dense(n_neurons, activation="relu"))
        ...     model.add(lk.layers.Dense(1))
        ...     model.compile(lk.optim.SGD(learning_rate), "mse")
        ...     return model
        >>> search = RandomizedSearchCV(SKLearnRegressor(build, fit_kwargs={"epochs": 20}),
        ...                             {"model_kwargs": [{"n_hidden": h} for h in (1, 2, 3)]})
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        tags.target_tags.multi_output = True
        return tags

    def _validate(self, X, y="no_validation", reset: bool = True):
        return _float_data(self, X, y, reset, multi_output=True, y_numeric=True)

    def _encode_targets(self, y: np.ndarray) -> np.ndarray:
        self._target_ndim = y.ndim
        return np.asarray(y, dtype=np.float32)

    def predict(self, X) -> np.ndarray:
        raw = self._raw_predict(X)
        # float64, as scikit-learn's regressors return (and its checks require).
        raw = raw.astype(np.float64)
        if getattr(self, "_target_ndim", 2) == 1 and raw.ndim == 2 and raw.shape[1] == 1:
            return raw[:, 0]
        return raw


class SKLearnTransformer(TransformerMixin, SKLBase):
    """A layerkit model as a scikit-learn transformer (Keras 3's ``SKLearnTransformer``):
    ``fit`` trains it on ``(X, y)``, ``transform`` returns its outputs (an encoder's
    codes, say) for the next step of a ``Pipeline``. See :class:`SKLBase`."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # always float32 out
        tags.target_tags.multi_output = True
        tags.target_tags.required = True  # the model trains on (X, y)
        return tags

    def _validate(self, X, y="no_validation", reset: bool = True):
        return _float_data(self, X, y, reset, multi_output=True, y_numeric=True)

    def _encode_targets(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float32)

    def transform(self, X) -> np.ndarray:
        """The model's outputs for ``X``."""
        return self._raw_predict(X)


def _output_units(model: Model) -> int | None:
    shape = model.output_shape
    if isinstance(shape, list) or shape is None or len(shape) != 2:
        return None
    return shape[-1]
