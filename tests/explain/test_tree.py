from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from modelshield.errors import InvalidParameterError
from modelshield.explain.tree import TreeShap
from modelshield.models import SklearnClassifier

USED = (0, 3)  # the features the labels of make_data depend on (tests/explain/conftest.py)

MODELS: dict[str, Callable[[], Any]] = {
    "tree": lambda: DecisionTreeClassifier(max_depth=6, random_state=0),
    "forest": lambda: RandomForestClassifier(n_estimators=25, max_depth=7, random_state=0),
    "extra": lambda: ExtraTreesClassifier(n_estimators=20, max_depth=6, random_state=0),
    "gbm": lambda: GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0),
    "hgb": lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
}


def _model_output(estimator: Any, x: np.ndarray) -> np.ndarray:
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(x), dtype=np.float64).reshape(len(x), -1)
    return np.asarray(estimator.predict_proba(x), dtype=np.float64)


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_local_accuracy(name: str, classes: int, make_data: Callable[..., Any]) -> None:
    x, y = make_data(400, classes=classes)
    estimator = MODELS[name]().fit(x, y)
    result = TreeShap(SklearnClassifier(estimator)).explain(x[:60])
    k = 1 if classes == 2 and name in ("gbm", "hgb") else classes
    assert result.values.shape == (60, 6, k)
    np.testing.assert_allclose(result.model_output, _model_output(estimator, x[:60]), atol=1e-9, rtol=0)
    assert np.abs(result.values).max() > 0.01  # the check above is not satisfied by zeros


@pytest.mark.parametrize("name", sorted(MODELS))
def test_unused_features_get_nothing_and_used_rank_first(name: str, make_data: Callable[..., Any]) -> None:
    x, y = make_data(800)
    estimator = MODELS[name]().fit(x, y)
    importance = TreeShap(SklearnClassifier(estimator)).explain(x[:200]).importance[:, -1]
    assert set(np.argsort(-importance)[:2].tolist()) == set(USED)
    unused = np.delete(importance, USED)
    assert unused.max() < 0.15 * importance[list(USED)].min()


@pytest.mark.parametrize(("name", "classes"), [("gbm", 2), ("forest", 2), ("forest", 3), ("hgb", 2), ("hgb", 3)])
def test_equals_shap_tree_explainer(name: str, classes: int, make_data: Callable[..., Any]) -> None:
    shap = pytest.importorskip("shap")
    x, y = make_data(400, classes=classes)
    estimator = MODELS[name]().fit(x, y)
    ours = TreeShap(SklearnClassifier(estimator)).explain(x[:80])
    explainer = shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")
    theirs = np.asarray(explainer.shap_values(x[:80]), dtype=np.float64).reshape(ours.values.shape)
    np.testing.assert_allclose(ours.values, theirs, atol=1e-6, rtol=0)
    expected = np.asarray(explainer.expected_value, dtype=np.float64).reshape(-1)
    np.testing.assert_allclose(ours.expected_value, expected, atol=1e-6, rtol=0)


def test_attribute_picks_the_target_class(make_data: Callable[..., Any]) -> None:
    x, y = make_data(300)
    gbm = TreeShap(SklearnClassifier(MODELS["gbm"]().fit(x, y)))
    values = gbm.explain(x[:10]).values[:, :, 0]
    np.testing.assert_array_equal(gbm.attribute(x[:10], np.ones(10, int)), values)
    np.testing.assert_array_equal(gbm.attribute(x[:10], np.zeros(10, int)), -values)
    forest = TreeShap(SklearnClassifier(MODELS["forest"]().fit(x, y)))
    full = forest.explain(x[:4]).values
    picked = forest.attribute(x[:4], [0, 1, 1, 0])
    np.testing.assert_array_equal(picked[1], full[1, :, 1])
    np.testing.assert_array_equal(picked[3], full[3, :, 0])


def test_batches_give_the_same_values(make_data: Callable[..., Any]) -> None:
    x, y = make_data(300)
    clf = SklearnClassifier(MODELS["forest"]().fit(x, y))
    whole = TreeShap(clf).explain(x[:30]).values
    tiny = TreeShap(clf, max_cells=1).explain(x[:30]).values  # one row per batch
    np.testing.assert_array_equal(whole, tiny)


def test_to_dict_is_json(make_data: Callable[..., Any]) -> None:
    x, y = make_data(300)
    result = TreeShap(SklearnClassifier(MODELS["hgb"]().fit(x, y))).explain(x[:20])
    summary = json.loads(json.dumps(result.to_dict()))
    assert summary["output"] == "log_odds"
    assert summary["rows"] == 20
    assert len(summary["importance"]["log-odds(1)"]) == 6


def test_refuses_models_it_cannot_explain(make_data: Callable[..., Any]) -> None:
    x, y = make_data(200)
    with pytest.raises(InvalidParameterError, match="does not support LogisticRegression"):
        TreeShap(SklearnClassifier(LogisticRegression().fit(x, y)))
    categorical = np.column_stack([x[:, :5], (x[:, 5] > 0).astype(np.float32)])
    hgb = HistGradientBoostingClassifier(max_iter=5, categorical_features=[5]).fit(categorical, (x[:, 5] > 0))
    with pytest.raises(InvalidParameterError, match="categorical splits"):
        TreeShap(SklearnClassifier(hgb))
    gbm = GradientBoostingClassifier(n_estimators=5, init=LogisticRegression()).fit(x, y)
    with pytest.raises(InvalidParameterError, match="init"):
        TreeShap(SklearnClassifier(gbm))
    with pytest.raises(InvalidParameterError, match="SklearnClassifier"):
        TreeShap(object())  # type: ignore[arg-type]


def _path_dependent_value(tree: Any, x: np.ndarray, subset: frozenset[int]) -> np.ndarray:
    """E[f(x) | x_S] as the paper's EXPVALUE: follow x on features in S, else average the children by cover."""
    t = tree.tree_

    def walk(node: int) -> np.ndarray:
        if t.children_left[node] < 0:
            value = t.value[node, 0]
            return value / value.sum()
        left, right = t.children_left[node], t.children_right[node]
        if t.feature[node] in subset:
            return walk(left if x[t.feature[node]] <= t.threshold[node] else right)
        cover = t.weighted_n_node_samples
        return (cover[left] * walk(left) + cover[right] * walk(right)) / cover[node]

    return walk(0)


def test_equals_brute_force_shapley_values_without_shap(make_data: Callable[..., Any]) -> None:
    """A second implementation as the oracle: every coalition of 5 features, enumerated (no shap needed)."""
    import itertools
    import math

    x, y = make_data(300, features=5)
    tree = DecisionTreeClassifier(max_depth=6, random_state=0).fit(x, y)
    ours = TreeShap(SklearnClassifier(tree)).explain(x[:4]).values
    for row in range(4):
        value = {
            frozenset(s): _path_dependent_value(tree, x[row], frozenset(s))
            for size in range(6)
            for s in itertools.combinations(range(5), size)
        }
        for i in range(5):
            others = [j for j in range(5) if j != i]
            phi = sum(
                math.factorial(len(s)) * math.factorial(4 - len(s)) / math.factorial(5)
                * (value[frozenset(s) | {i}] - value[frozenset(s)])
                for size in range(5)
                for s in itertools.combinations(others, size)
            )  # fmt: skip
            np.testing.assert_allclose(ours[row, i], phi, atol=1e-12)
    assert np.abs(ours).max() > 0.05


def test_image_shaped_inputs_are_flattened(make_data: Callable[..., Any]) -> None:
    x, y = make_data(300, features=4)
    clf = SklearnClassifier(MODELS["forest"]().fit(x, y), input_shape=(2, 2))
    explainer = TreeShap(clf)
    images = x[:5].reshape(5, 2, 2)
    assert explainer.explain(images).values.shape == (5, 4, 2)
    picked = explainer.attribute(images, y[:5])
    assert picked.shape == (5, 2, 2)
    np.testing.assert_allclose(
        picked.reshape(5, -1).sum(axis=1) + explainer.expected_value[y[:5]],
        clf.predict_proba(images)[np.arange(5), y[:5]],
        atol=1e-6,
    )
