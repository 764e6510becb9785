"""Black-box adapter for scikit-learn: any fitted estimator (or Pipeline) with ``predict_proba``.

    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from modelshield.models import SklearnClassifier
    >>> x, y = load_iris(return_X_y=True)
    >>> clf = SklearnClassifier(LogisticRegression(max_iter=500).fit(x, y))
    >>> clf.n_classes, clf.input_shape
    (3, (4,))

Inputs of any shape are flattened to ``(n, features)`` before they reach the estimator, so an image-shaped
``input_shape`` works with estimators trained on flattened pixels. :attr:`SklearnClassifier.class_labels` names
the classes (the estimator's ``classes_``) in the order of the probability columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelshield.errors import InvalidInputError, InvalidParameterError, ModelError
from modelshield.models.interface import Bounds, Classifier, FloatArray

__all__ = ["SklearnClassifier"]


class SklearnClassifier(Classifier):
    """A fitted scikit-learn classifier; ``input_shape`` defaults to ``(n_features_in_,)``."""

    def __init__(
        self,
        estimator: Any,
        *,
        input_shape: tuple[int, ...] | None = None,
        clip_values: Bounds | None = None,
        batch_size: int = 4096,
    ) -> None:
        if not callable(getattr(estimator, "predict_proba", None)):
            raise InvalidParameterError(
                f"{type(estimator).__name__} has no predict_proba.",
                remedy="Use a probabilistic classifier (or wrap it, e.g. in CalibratedClassifierCV).",
            )
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            raise InvalidParameterError(
                f"{type(estimator).__name__} is not fitted (it has no classes_).", remedy="Call fit() first."
            )
        n_features = getattr(estimator, "n_features_in_", None)
        if input_shape is None:
            if n_features is None:
                raise InvalidParameterError(
                    f"Cannot tell the input shape of {type(estimator).__name__}.", remedy="Pass input_shape."
                )
            input_shape = (int(n_features),)
        size = int(np.prod(input_shape))
        if n_features is not None and size != int(n_features):
            raise InvalidInputError(
                f"The model takes {n_features} features; the data has {size} (inputs of shape {tuple(input_shape)}).",
                remedy="Pass data with the features the model was trained on, in the same order; in a table, every "
                "column but the label column is a feature.",
            )
        super().__init__(
            n_classes=len(classes), input_shape=input_shape, clip_values=clip_values, batch_size=batch_size
        )
        self.estimator = estimator
        self.classes_ = np.asarray(classes)

    @property
    def class_labels(self) -> tuple[str, ...]:
        """The estimator's classes, in the order of its probability columns, as text (``2.0`` as ``"2"``)."""
        return tuple(_label_text(c) for c in self.classes_.tolist())

    def _predict_proba(self, x: FloatArray) -> NDArray[np.floating]:
        try:
            proba = self.estimator.predict_proba(x.reshape(len(x), -1))
        except Exception as exc:  # estimators raise ValueError, AttributeError, ... on misuse
            raise ModelError(f"{type(self.estimator).__name__}.predict_proba failed: {exc}") from exc
        return np.asarray(proba, dtype=np.float32)


def _label_text(value: object) -> str:
    """A class label as text, the way data files name it: whole floats without their ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
