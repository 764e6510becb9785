"""Factories for the explainers' tests: data where the label depends on features 0 and 3 only."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from modelshield.models.interface import Classifier

USED = (0, 3)


@pytest.fixture
def make_data() -> Callable[..., tuple[NDArray[np.float32], NDArray[np.int64]]]:
    """``make_data(n, features=6, classes=2, seed=0)``: Gaussian inputs; the label is a function of x0 + x3."""

    def make(
        n: int = 600, *, features: int = 6, classes: int = 2, seed: int = 0
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        x = np.random.default_rng(seed).normal(size=(n, features)).astype(np.float32)
        score = 1.5 * x[:, USED[0]] - x[:, USED[1]]
        edges = np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1])
        return x, np.digitize(score, edges).astype(np.int64)

    return make


class CountingClassifier(Classifier):
    """A black box over ``fn`` (rows -> probabilities) that counts, on its own, every row it is asked about."""

    def __init__(
        self, fn: Callable[[NDArray[np.float32]], NDArray[np.float64]], input_shape: tuple[int, ...], n_classes: int
    ) -> None:
        super().__init__(n_classes=n_classes, input_shape=input_shape)
        self.fn = fn
        self.rows_seen = 0

    def _predict_proba(self, x: NDArray[np.float32]) -> NDArray[np.float64]:
        self.rows_seen += len(x)
        return self.fn(x)


@pytest.fixture
def logistic_box() -> Callable[[], CountingClassifier]:
    """A two-class black box p(1|x) = sigmoid(2·x0 − 3·x3) over 6 features: features 1, 2, 4, 5 unused."""

    def make() -> CountingClassifier:
        def fn(x: NDArray[np.float32]) -> NDArray[np.float64]:
            p = 1.0 / (1.0 + np.exp(-(2.0 * x[:, 0].astype(np.float64) - 3.0 * x[:, 3])))
            return np.stack([1.0 - p, p], axis=1)

        return CountingClassifier(fn, input_shape=(6,), n_classes=2)

    return make
