"""The one model interface every attack, defense and check talks to.

    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from modelshield.models import SklearnClassifier
    >>> x = np.random.default_rng(0).normal(size=(40, 3)); y = (x[:, 0] > 0).astype(int)
    >>> clf = SklearnClassifier(LogisticRegression().fit(x, y), input_shape=(3,))
    >>> clf.predict_proba(x[:5]).shape, clf.queries
    ((5, 2), 5)

A :class:`Classifier` maps a batch ``x`` of shape ``(n, *input_shape)`` to class probabilities ``(n, n_classes)``.
Every adapter validates its input, predicts in batches, and counts the queries it answered, so attacks can
report what they spent. White-box adapters (:class:`GradientClassifier`) add logits and loss gradients;
label-only adapters (:attr:`Classifier.label_only`, a served model that answers labels) give one-hot rows.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield.errors import InvalidInputError, InvalidParameterError, ModelError

__all__ = ["Bounds", "Classifier", "FloatArray", "GradientClassifier", "IntArray"]

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class Bounds:
    """The valid input range: ``low`` and ``high`` are scalars or arrays broadcastable to the input shape.

    Images use one range for all pixels (``Bounds(0.0, 1.0)``); tabular models one range per feature.
    """

    low: float | NDArray[np.float32]
    high: float | NDArray[np.float32]

    def __post_init__(self) -> None:
        low = np.asarray(self.low, dtype=np.float32)
        high = np.asarray(self.high, dtype=np.float32)
        if low.shape != high.shape:
            raise InvalidParameterError(f"Bounds low and high differ in shape: {low.shape} vs {high.shape}.")
        if np.any(low > high) or not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise InvalidParameterError("Bounds must be finite with low <= high everywhere.")
        object.__setattr__(self, "low", float(low) if low.ndim == 0 else low)
        object.__setattr__(self, "high", float(high) if high.ndim == 0 else high)

    def clip(self, x: NDArray[np.floating]) -> FloatArray:
        """``x`` clipped into the range, as float32."""
        return np.asarray(np.clip(x, self.low, self.high), dtype=np.float32)

    def contains(self, x: NDArray[np.floating], *, atol: float = 0.0) -> bool:
        """True when every value of ``x`` lies within the range (with tolerance ``atol``)."""
        return bool(np.all(x >= np.asarray(self.low) - atol) and np.all(x <= np.asarray(self.high) + atol))


class Classifier(ABC):
    """A classifier over inputs of a fixed shape, seen as a function from inputs to class probabilities.

    Subclasses implement :meth:`_predict_proba` for one batch; this class validates, batches and counts.
    """

    def __init__(
        self,
        *,
        n_classes: int,
        input_shape: tuple[int, ...],
        clip_values: Bounds | None = None,
        batch_size: int = 256,
    ) -> None:
        if n_classes < 2:
            raise InvalidParameterError(f"n_classes must be at least 2, got {n_classes}.")
        if not input_shape or any(int(d) < 1 for d in input_shape):
            raise InvalidParameterError(f"input_shape must be a non-empty tuple of positive sizes, got {input_shape}.")
        if batch_size < 1:
            raise InvalidParameterError(f"batch_size must be positive, got {batch_size}.")
        self._n_classes = int(n_classes)
        self._input_shape = tuple(int(d) for d in input_shape)
        self._clip_values = clip_values
        self.batch_size = int(batch_size)
        self._queries = 0
        self._lock = threading.Lock()

    # -- description -------------------------------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        return self._n_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input, without the batch dimension."""
        return self._input_shape

    @property
    def clip_values(self) -> Bounds | None:
        """The valid input range, or None when inputs are unbounded."""
        return self._clip_values

    @property
    def white_box(self) -> bool:
        """True when the adapter exposes gradients (:class:`GradientClassifier`)."""
        return False

    @property
    def label_only(self) -> bool:
        """True when the model releases only its predicted label, no class scores: :meth:`predict_proba` then gives
        one-hot rows, which attacks and checks that read scores must not use."""
        return False

    # -- query accounting --------------------------------------------------------------------------------------
    @property
    def queries(self) -> int:
        """Inputs answered since creation or the last :meth:`reset_queries` (one per row of a batch)."""
        return self._queries

    def reset_queries(self) -> int:
        """Set the query counter to zero and return the count it had."""
        with self._lock:
            spent, self._queries = self._queries, 0
        return spent

    def _count(self, n: int) -> None:
        with self._lock:
            self._queries += n

    # -- prediction --------------------------------------------------------------------------------------------
    def validate_input(self, x: ArrayLike) -> FloatArray:
        """``x`` as a float32 array of shape ``(n, *input_shape)``; a single input gets its batch axis added.

        Raises :class:`InvalidInputError` naming the expected and the actual shape, or non-finite values.
        """
        arr = np.asarray(x)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise InvalidInputError(
                f"Model input must be numeric, got an array of dtype {arr.dtype}.",
                remedy="Encode categorical or text features as numbers before predicting.",
            )
        if arr.shape == self._input_shape:
            arr = arr[np.newaxis]
        if arr.ndim != len(self._input_shape) + 1 or arr.shape[1:] != self._input_shape:
            raise InvalidInputError(
                f"Model input has shape {arr.shape}; expected (n, {', '.join(map(str, self._input_shape))}).",
                remedy="Reshape the data to the model's input shape, or check that data and model belong together.",
            )
        arr = arr.astype(np.float32, copy=False)
        if not np.all(np.isfinite(arr)):
            raise InvalidInputError(
                "Model input contains NaN or infinite values.", remedy="Impute or drop missing values first."
            )
        return arr

    def predict_proba(self, x: ArrayLike) -> FloatArray:
        """Class probabilities, shape ``(n, n_classes)``, rows summing to 1; predicted in batches."""
        arr = self.validate_input(x)
        if len(arr) == 0:
            return np.empty((0, self._n_classes), dtype=np.float32)
        out = np.concatenate(
            [
                self._checked(self._predict_proba(arr[i : i + self.batch_size]))
                for i in range(0, len(arr), self.batch_size)
            ]
        )
        self._count(len(arr))
        return out

    def predict(self, x: ArrayLike) -> IntArray:
        """Predicted class indices, shape ``(n,)``."""
        return np.asarray(np.argmax(self.predict_proba(x), axis=1), dtype=np.int64)

    def accuracy(self, x: ArrayLike, y: ArrayLike) -> float:
        """Fraction of ``x`` classified as ``y``."""
        labels = np.asarray(y)
        pred = self.predict(x)
        if labels.shape != pred.shape:
            raise InvalidInputError(f"Got {len(pred)} inputs but labels of shape {labels.shape}.")
        return float(np.mean(pred == labels)) if len(pred) else float("nan")

    def _checked(self, proba: NDArray[np.floating]) -> FloatArray:
        proba = np.asarray(proba, dtype=np.float32)
        if proba.ndim != 2 or proba.shape[1] != self._n_classes:
            raise ModelError(
                f"The model returned an output of shape {proba.shape}; expected (batch, {self._n_classes}).",
                remedy="Check n_classes and that the adapter reads the model's probability output.",
            )
        if not np.all(np.isfinite(proba)):
            raise ModelError("The model returned NaN or infinite probabilities.")
        return proba

    @abstractmethod
    def _predict_proba(self, x: FloatArray) -> NDArray[np.floating]:
        """Probabilities for one validated batch of at most ``batch_size`` inputs."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_classes={self._n_classes}, input_shape={self._input_shape}, "
            f"clip_values={self._clip_values})"
        )


class GradientClassifier(Classifier):
    """A white-box classifier: it also gives logits and gradients of the loss with respect to its input."""

    @property
    def white_box(self) -> bool:
        return True

    @abstractmethod
    def logits(self, x: ArrayLike) -> FloatArray:
        """Pre-softmax scores, shape ``(n, n_classes)``."""

    @abstractmethod
    def loss_gradient(self, x: ArrayLike, y: ArrayLike) -> FloatArray:
        """Gradient of each input's own loss for label ``y`` with respect to that input; shape of ``x``."""
