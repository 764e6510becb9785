from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import ArrayLike, NDArray

from modelshield.errors import InvalidParameterError
from modelshield.explain.interface import Explainer
from modelshield.explain.stability import attribution_stability
from modelshield.models import Bounds


class Weighted:
    """Attributions x · w: they move with x only as much as the noise does."""

    def __init__(self, weights: NDArray[np.float64]) -> None:
        self.weights = weights

    def attribute(self, x: ArrayLike, target: ArrayLike) -> NDArray[np.float64]:
        return np.asarray(x, dtype=np.float64) * self.weights


class Random:
    """Attributions that ignore the input: a fresh random draw per call."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def attribute(self, x: ArrayLike, target: ArrayLike) -> NDArray[np.float64]:
        return self.rng.normal(size=np.shape(x))


def test_stable_attributions_score_high() -> None:
    x = np.random.default_rng(0).uniform(1.0, 2.0, size=(30, 8))
    explainer = Weighted(np.array([8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]) * 10)
    assert isinstance(explainer, Explainer)
    result = attribution_stability(explainer, x, target=np.zeros(30, int), noise_scale=1e-3, top_k=3)
    assert result.mean_spearman > 0.99
    assert result.mean_top_k == 1.0
    assert result.spearman.shape == result.top_k.shape == (30,)


def test_unstable_attributions_score_low() -> None:
    x = np.random.default_rng(0).normal(size=(30, 8))
    result = attribution_stability(Random(1), x, target=np.zeros(30, int), noise_scale=1e-3, top_k=3, repeats=4)
    assert abs(result.mean_spearman) < 0.2
    assert result.mean_top_k < 0.6


def test_noise_level_matters_and_bounds_clip() -> None:
    x = np.random.default_rng(0).uniform(0.0, 1.0, size=(40, 6))
    explainer = Weighted(np.ones(6))  # ranks follow the input values, so large noise reshuffles them
    small = attribution_stability(explainer, x, target=np.zeros(40, int), noise_scale=1e-3, top_k=2, seed=1)
    large = attribution_stability(
        explainer, x, target=np.zeros(40, int), noise_scale=0.5, top_k=2, seed=1, bounds=Bounds(0.0, 1.0)
    )
    assert small.mean_spearman > large.mean_spearman + 0.2
    assert small.mean_top_k > large.mean_top_k


def test_constant_attributions_give_nan_rank_correlation() -> None:
    x = np.zeros((5, 4))
    result = attribution_stability(Weighted(np.ones(4)), x, target=np.zeros(5, int), noise_scale=1e-9, top_k=1)
    assert np.all(np.isnan(result.spearman))  # the clean attributions are all zero: their ranks say nothing
    assert np.isnan(result.mean_spearman)
    summary = json.loads(json.dumps(result.to_dict()))
    assert summary["mean_spearman"] is None
    assert summary["k"] == 1


def test_with_a_real_explainer(make_data: Callable[..., Any]) -> None:
    from sklearn.ensemble import GradientBoostingClassifier

    from modelshield.explain.tree import TreeShap
    from modelshield.models import SklearnClassifier

    x, y = make_data(400)
    explainer = TreeShap(SklearnClassifier(GradientBoostingClassifier(n_estimators=30, random_state=0).fit(x, y)))
    result = attribution_stability(explainer, x[:20], target=y[:20], noise_scale=0.01, top_k=2)
    assert result.mean_top_k > 0.8
    assert -1.0 <= result.mean_spearman <= 1.0


def test_parameter_errors() -> None:
    x = np.ones((3, 4))
    with pytest.raises(InvalidParameterError, match="noise_scale"):
        attribution_stability(Weighted(np.ones(4)), x, target=[0, 0, 0], noise_scale=0.0)
    with pytest.raises(InvalidParameterError, match="top_k"):
        attribution_stability(Weighted(np.ones(4)), x, target=[0, 0, 0], noise_scale=0.1, top_k=5)
    with pytest.raises(InvalidParameterError, match="attribute"):
        attribution_stability(object(), x, target=[0, 0, 0], noise_scale=0.1)  # type: ignore[arg-type]
