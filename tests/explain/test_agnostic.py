from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from modelshield.errors import InvalidParameterError
from modelshield.explain.agnostic import SamplingShap
from modelshield.models.interface import Classifier

USED = (0, 3)  # the features the black box of the logistic_box fixture reads


def _exact_interventional_shap(
    clf: Classifier, x: NDArray[np.float32], background: NDArray[np.float32]
) -> NDArray[np.float64]:
    """The oracle: Shapley values of v(S) = mean_b f(x_S, b_rest), by enumerating every coalition: (f, k)."""
    f = x.shape[0]
    value: dict[frozenset[int], NDArray[np.float64]] = {}
    for size in range(f + 1):
        for subset in itertools.combinations(range(f), size):
            mask = np.zeros(f, dtype=bool)
            mask[list(subset)] = True
            value[frozenset(subset)] = clf.predict_proba(np.where(mask, x, background)).mean(axis=0)
    phi = np.zeros((f, len(value[frozenset()])))
    for i in range(f):
        others = [j for j in range(f) if j != i]
        for size in range(f):
            weight = math.factorial(size) * math.factorial(f - size - 1) / math.factorial(f)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                phi[i] += weight * (value[s | {i}] - value[s])
    return phi


def test_local_accuracy_is_exact(logistic_box: Callable[[], Any], make_data: Callable[..., Any]) -> None:
    x, _ = make_data(100)
    result = SamplingShap(logistic_box(), background=x[:20], max_queries=20_000).explain(x[50:55])
    np.testing.assert_allclose(result.values.sum(axis=1) + result.expected_value, result.model_output, atol=1e-12)
    assert np.abs(result.values).max() > 0.05


def test_unused_features_get_exactly_nothing(logistic_box: Callable[[], Any], make_data: Callable[..., Any]) -> None:
    x, _ = make_data(200)
    result = SamplingShap(logistic_box(), background=x[:25], max_queries=50_000, seed=1).explain(x[100:110])
    unused = [j for j in range(6) if j not in USED]
    assert np.abs(result.values[:, unused, :]).max() < 1e-12
    importance = result.importance[:, 1]
    assert set(np.argsort(-importance)[:2].tolist()) == set(USED)
    assert importance[list(USED)].min() > 0.01


def test_converges_to_the_exact_shapley_values(make_data: Callable[..., Any]) -> None:
    from .conftest import CountingClassifier

    x, _ = make_data(100, features=4)

    def fn(rows: NDArray[np.float32]) -> NDArray[np.float64]:  # interactions, so that permutations matter
        z = 3.0 * (rows[:, 0] * rows[:, 1] + np.sin(rows[:, 2]) - 0.5 * rows[:, 3] * rows[:, 0])
        p = 1.0 / (1.0 + np.exp(-z.astype(np.float64)))
        return np.stack([1.0 - p, p], axis=1)

    clf = CountingClassifier(fn, input_shape=(4,), n_classes=2)
    background = x[:8]
    result = SamplingShap(clf, background=background, max_queries=10**6, max_permutations=200).explain(x[20:23])
    for row in range(3):
        exact = _exact_interventional_shap(clf, x[20 + row], background)
        np.testing.assert_allclose(result.values[row], exact, atol=0.02)
        assert np.abs(exact).max() > 0.05


@pytest.mark.parametrize("budget", [161, 500, 1_234, 5_000, 20_000])
def test_never_exceeds_the_budget(budget: int, logistic_box: Callable[[], Any], make_data: Callable[..., Any]) -> None:
    x, _ = make_data(100)
    clf = logistic_box()
    background = x[:10]
    explainer = SamplingShap(clf, background=background, max_queries=budget)
    result = explainer.explain(x[50:52])
    assert clf.rows_seen == result.queries == clf.queries
    assert result.queries <= budget
    assert result.queries == explainer.cost(2, result.permutations)
    assert result.permutations >= 1
    # as many antithetic pairs as fit (or one permutation when a pair does not)
    assert explainer.cost(2, result.permutations + 2) > budget or result.permutations == explainer.max_permutations


def test_refuses_a_budget_too_small_before_any_query(
    logistic_box: Callable[[], Any], make_data: Callable[..., Any]
) -> None:
    x, _ = make_data(100)
    clf = logistic_box()
    explainer = SamplingShap(clf, background=x[:10], max_queries=160)  # one permutation for 2 rows needs 10+2+100·…
    assert explainer.cost(2, 1) == 10 + 2 + 2 * 5 * 10
    with pytest.raises(InvalidParameterError, match="cannot pay for one permutation"):
        SamplingShap(clf, background=x[:10], max_queries=explainer.cost(2, 1) - 1).explain(x[50:52])
    assert clf.rows_seen == 0
    SamplingShap(clf, background=x[:10], max_queries=explainer.cost(2, 1)).explain(x[50:52])
    assert clf.rows_seen == explainer.cost(2, 1)


def test_antithetic_pairs_give_standard_errors(logistic_box: Callable[[], Any], make_data: Callable[..., Any]) -> None:
    x, _ = make_data(100)
    result = SamplingShap(logistic_box(), background=x[:10], max_queries=100_000, max_permutations=9).explain(x[:2])
    assert result.permutations == 8
    assert np.all(np.isfinite(result.stderr))
    single = SamplingShap(logistic_box(), background=x[:10], max_queries=200, max_permutations=9).explain(x[:2])
    assert single.permutations == 1
    assert np.all(np.isnan(single.stderr))


def test_attribute_and_summary(logistic_box: Callable[[], Any], make_data: Callable[..., Any]) -> None:
    x, _ = make_data(100)
    explainer = SamplingShap(logistic_box(), background=x[:10], max_queries=10_000, seed=3)
    full = explainer.explain(x[:3])
    picked = explainer.attribute(x[:3], [1, 0, 1])
    np.testing.assert_array_equal(picked[0], full.values[0, :, 1])
    np.testing.assert_array_equal(picked[1], full.values[1, :, 0])
    summary = json.loads(json.dumps(full.to_dict()))
    assert summary["queries"] == full.queries
    assert summary["max_queries"] == 10_000


def test_parameter_errors(logistic_box: Callable[[], Any], make_data: Callable[..., Any]) -> None:
    x, _ = make_data(20)
    with pytest.raises(InvalidParameterError, match="max_queries"):
        SamplingShap(logistic_box(), background=x, max_queries=0)
    with pytest.raises(InvalidParameterError, match="background set is empty"):
        SamplingShap(logistic_box(), background=x[:0], max_queries=100)


def test_image_shaped_inputs(make_data: Callable[..., Any]) -> None:
    from .conftest import CountingClassifier

    def top_left(rows: NDArray[np.float32]) -> NDArray[np.float64]:
        p = 1.0 / (1.0 + np.exp(-2.0 * rows[:, 0, 0].astype(np.float64)))
        return np.stack([1.0 - p, p], axis=1)

    x, _ = make_data(50, features=4)
    images = x.reshape(50, 2, 2)
    explainer = SamplingShap(
        CountingClassifier(top_left, input_shape=(2, 2), n_classes=2), background=images[:5], max_queries=5_000
    )
    picked = explainer.attribute(images[10:13], [1, 1, 1])
    assert picked.shape == (3, 2, 2)
    assert np.abs(picked[:, 1:, :]).max() < 1e-12  # only the top-left value is read
    assert np.abs(picked[:, 0, 1]).max() < 1e-12
    assert np.abs(picked[:, 0, 0]).min() > 0.0


def test_chunked_queries_give_the_same_estimate(
    monkeypatch: pytest.MonkeyPatch, logistic_box: Callable[[], Any], make_data: Callable[..., Any]
) -> None:
    from modelshield.explain import agnostic

    x, _ = make_data(100)
    whole = SamplingShap(logistic_box(), background=x[:10], max_queries=20_000, seed=4).explain(x[:3])
    monkeypatch.setattr(agnostic, "_MAX_VALUES", 1)  # one permutation per model call
    clf = logistic_box()
    chunked = SamplingShap(clf, background=x[:10], max_queries=20_000, seed=4).explain(x[:3])
    np.testing.assert_allclose(chunked.values, whole.values, atol=1e-12)
    assert chunked.queries == whole.queries == clf.rows_seen
