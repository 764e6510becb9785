"""Exact TreeSHAP (path-dependent) for scikit-learn tree ensembles, in numpy.

    >>> import numpy as np
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> from modelshield.models import SklearnClassifier
    >>> from modelshield.explain.tree import TreeShap
    >>> x = np.random.default_rng(0).normal(size=(200, 4)); y = (x[:, 0] + x[:, 3] > 0).astype(int)
    >>> clf = SklearnClassifier(RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(x, y))
    >>> result = TreeShap(clf).explain(x[:5])
    >>> result.values.shape, bool(np.allclose(result.model_output, clf.estimator.predict_proba(x[:5])))
    ((5, 4, 2), True)

The algorithm is the ``tree_path_dependent`` TreeSHAP of Lundberg et al. (2018, 2020): the Shapley values of the
game ``v(S) = E[f(x) | x_S]`` where the expectation follows the tree's training covers. For one leaf with value
``v`` reached through the unique features ``U`` (``d = |U|``), the game is a product: ``v · Π_{j∈S} o_j ·
Π_{j∈U∖S} z_j``, with ``o_j`` one when ``x`` satisfies every split on ``j`` along the path and ``z_j`` the product
of the cover ratios of those splits. Its Shapley value for ``i ∈ U`` is ``v (o_i − z_i) Σ_k w_k [t^k] Π_{j≠i}
(z_j + o_j t)`` with ``w_k = k!(d−k−1)!/d!``: the polynomial ``Π_j (z_j + o_j t)`` is what the paper's EXTEND
builds and dividing one factor out is its UNWIND. Here the leaves of all trees are grouped by ``d`` and each group
is processed for a batch of rows at once: numpy work ``O(rows · leaves · d²)`` per batch, with a Python loop of
``O(d²)`` steps per group, so a 150-tree depth-3 ensemble costs a few dozen numpy calls per batch.

Outputs explained (the model's raw output, as ``shap.TreeExplainer`` with ``model_output="raw"``):

- ``DecisionTreeClassifier``, ``RandomForestClassifier``, ``ExtraTreesClassifier``: class probabilities, one
  output per class.
- ``GradientBoostingClassifier``, ``HistGradientBoostingClassifier``: the decision function; for two classes one
  output, the log-odds of the second class, otherwise one raw score per class. Categorical splits of
  ``HistGradientBoostingClassifier`` and ``init`` estimators other than the prior are refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse

from modelshield.errors import InvalidParameterError
from modelshield.explain.interface import check_targets, mean_abs_importance
from modelshield.models.sklearn_classifier import SklearnClassifier

__all__ = ["TreeShap", "TreeShapResult"]

TreeOutput = Literal["probability", "log_odds", "raw_score"]

_SUPPORTED = (
    "DecisionTreeClassifier, ExtraTreeClassifier, RandomForestClassifier, ExtraTreesClassifier, "
    "GradientBoostingClassifier and HistGradientBoostingClassifier (numeric splits)"
)


@dataclass(frozen=True)
class TreeShapResult:
    """SHAP values of a tree ensemble for ``n`` rows of ``f`` features (inputs flattened) and ``k`` outputs.

    ``values``: ``(n, f, k)``; ``expected_value``: ``(k,)``, the cover-weighted mean output; for each row,
    ``values.sum(axis=1) + expected_value`` equals the model's output (:attr:`model_output`). ``output`` names
    what is explained; ``output_names`` the ``k`` columns (class labels, or ``"log-odds(<label>)"``).
    """

    values: NDArray[np.float64]
    expected_value: NDArray[np.float64]
    output: TreeOutput
    output_names: tuple[str, ...]
    model: str

    @property
    def model_output(self) -> NDArray[np.float64]:
        """``(n, k)``: the explained model output per row, rebuilt from the attributions (local accuracy)."""
        return np.asarray(self.values.sum(axis=1) + self.expected_value, dtype=np.float64)

    @property
    def importance(self) -> NDArray[np.float64]:
        """``(f, k)``: global importance, the mean |SHAP value| over the rows."""
        return mean_abs_importance(self.values)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary: the method, the outputs, the expected values and the global importances."""
        return {
            "method": "tree_shap_path_dependent",
            "model": self.model,
            "output": self.output,
            "output_names": list(self.output_names),
            "rows": int(self.values.shape[0]),
            "features": int(self.values.shape[1]),
            "expected_value": [float(v) for v in self.expected_value],
            "importance": {name: [float(v) for v in self.importance[:, j]] for j, name in enumerate(self.output_names)},
        }


@dataclass(frozen=True)
class _Tree:
    """One tree as flat arrays; ``value`` is ``(nodes, k)``, already scaled by the tree's weight in the ensemble."""

    left: NDArray[np.int64]
    right: NDArray[np.int64]
    feature: NDArray[np.int64]
    threshold: NDArray[np.float64]
    cover: NDArray[np.float64]
    value: NDArray[np.float64]


@dataclass(frozen=True)
class _LeafGroup:
    """All leaves whose paths test ``d`` distinct features: ``(L, d)`` features, bounds and zero fractions."""

    feature: NDArray[np.int64]
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    zero: NDArray[np.float64]
    value: NDArray[np.float64]  # (L, k)


class TreeShap:
    """Exact path-dependent TreeSHAP for the tree ensemble inside a :class:`SklearnClassifier`.

    The ensemble is read once, at construction. ``max_cells`` bounds the working memory of one batch
    (rows × leaves × path length, in float64 numbers); rows are processed in batches under it. The default keeps a
    batch within the CPU caches, which is faster than larger batches.
    """

    def __init__(self, classifier: SklearnClassifier, *, max_cells: int = 250_000) -> None:
        if not isinstance(classifier, SklearnClassifier):
            raise InvalidParameterError(
                f"TreeShap explains a SklearnClassifier, got {type(classifier).__name__}.",
                remedy="Wrap the fitted estimator: SklearnClassifier(estimator); for other models use "
                "modelshield.explain.agnostic.SamplingShap.",
            )
        if max_cells < 1:
            raise InvalidParameterError(f"max_cells must be positive, got {max_cells}.")
        self.classifier = classifier
        self.max_cells = int(max_cells)
        estimator = classifier.estimator
        self._model = type(estimator).__name__
        self._n_features = int(np.prod(classifier.input_shape))
        trees, offset, output, names = _read_ensemble(estimator, classifier.class_labels)
        self._output: TreeOutput = output
        self._names = names
        self._groups, leaf_mean = _leaf_groups(trees, len(names))
        self._expected = offset + leaf_mean

    @property
    def expected_value(self) -> NDArray[np.float64]:
        """``(k,)``: the cover-weighted mean output of the ensemble (the SHAP base value)."""
        return self._expected.copy()

    def explain(self, x: ArrayLike) -> TreeShapResult:
        """SHAP values of every output for the rows of ``x`` (shape ``(n, *input_shape)``)."""
        arr = self.classifier.validate_input(x).reshape(-1, self._n_features)  # float32, as scikit-learn compares
        values = np.zeros((len(arr), self._n_features, len(self._names)), dtype=np.float64)
        xs = arr.astype(np.float64)
        for group in self._groups:
            n_leaves, depth = group.feature.shape
            rows = max(1, self.max_cells // max(1, n_leaves * (depth + 1)))
            for start in range(0, len(xs), rows):
                values[start : start + rows] += _group_shap(xs[start : start + rows], group, self._n_features)
        return TreeShapResult(
            values=values,
            expected_value=self._expected.copy(),
            output=self._output,
            output_names=self._names,
            model=self._model,
        )

    def attribute(self, x: ArrayLike, target: ArrayLike) -> NDArray[np.float64]:
        """SHAP values for class ``target[i]`` of row ``i``, shape of ``x``. For a two-class boosted model the
        single log-odds output is read as class 1's and negated for class 0."""
        arr = self.classifier.validate_input(x)
        classes = check_targets(target, len(arr), self.classifier.n_classes)
        values = self.explain(arr).values
        rows = np.arange(len(arr))
        if values.shape[2] == 1:
            picked = values[:, :, 0] * np.where(classes == 1, 1.0, -1.0)[:, None]
        else:
            picked = values[rows, :, classes]
        return np.asarray(picked.reshape(arr.shape), dtype=np.float64)


# -- reading the ensembles -------------------------------------------------------------------------------------
def _read_ensemble(
    estimator: Any, labels: tuple[str, ...]
) -> tuple[list[_Tree], NDArray[np.float64], TreeOutput, tuple[str, ...]]:
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.tree import BaseDecisionTree

    if getattr(estimator, "n_outputs_", 1) != 1:
        raise InvalidParameterError("TreeShap explains single-output classifiers; this one has several outputs.")
    if isinstance(estimator, BaseDecisionTree) and hasattr(estimator, "predict_proba"):
        return [_sklearn_tree(estimator.tree_, 1.0, proba=True)], np.zeros(len(labels)), "probability", labels
    if isinstance(estimator, RandomForestClassifier | ExtraTreesClassifier):
        weight = 1.0 / len(estimator.estimators_)
        trees = [_sklearn_tree(t.tree_, weight, proba=True) for t in estimator.estimators_]
        return trees, np.zeros(len(labels)), "probability", labels
    if isinstance(estimator, GradientBoostingClassifier):
        return _gradient_boosting(estimator, labels)
    if isinstance(estimator, HistGradientBoostingClassifier):
        return _hist_gradient_boosting(estimator, labels)
    raise InvalidParameterError(
        f"TreeShap does not support {type(estimator).__name__}; it supports {_SUPPORTED}.",
        remedy="Use modelshield.explain.agnostic.SamplingShap, which needs only predict_proba.",
    )


def _sklearn_tree(tree: Any, weight: float, *, proba: bool, column: int = 0, k: int = 0) -> _Tree:
    raw = np.asarray(tree.value, dtype=np.float64)[:, 0, :]  # (nodes, classes) or (nodes, 1)
    if proba:
        totals = raw.sum(axis=1, keepdims=True)
        value = weight * raw / np.where(totals > 0, totals, 1.0)
    else:  # one regression tree of a boosted ensemble, feeding output `column` of `k`
        value = np.zeros((len(raw), k))
        value[:, column] = weight * raw[:, 0]
    return _Tree(
        left=np.asarray(tree.children_left, dtype=np.int64),
        right=np.asarray(tree.children_right, dtype=np.int64),
        feature=np.asarray(tree.feature, dtype=np.int64),
        threshold=np.asarray(tree.threshold, dtype=np.float64),
        cover=np.asarray(tree.weighted_n_node_samples, dtype=np.float64),
        value=value,
    )


def _gradient_boosting(
    estimator: Any, labels: tuple[str, ...]
) -> tuple[list[_Tree], NDArray[np.float64], TreeOutput, tuple[str, ...]]:
    from sklearn.dummy import DummyClassifier

    init = estimator.init_
    if not (isinstance(init, str) and init == "zero") and not (
        isinstance(init, DummyClassifier) and init.strategy == "prior"
    ):
        raise InvalidParameterError(
            f"TreeShap explains GradientBoostingClassifier with the default prior (or 'zero') init, not "
            f"{type(init).__name__}: another init estimator adds an output the trees do not explain.",
            remedy="Use modelshield.explain.agnostic.SamplingShap for this model.",
        )
    k = estimator.estimators_.shape[1]
    trees = [
        _sklearn_tree(est.tree_, float(estimator.learning_rate), proba=False, column=c, k=k)
        for stage in estimator.estimators_
        for c, est in enumerate(stage)
    ]
    # The init's raw output is a constant: read it as decision_function minus the trees, on one row.
    probe = np.zeros((1, int(estimator.n_features_in_)), dtype=np.float32)
    decision = np.asarray(estimator.decision_function(probe), dtype=np.float64).reshape(k)
    offset = decision - sum(_predict_tree(t, probe.astype(np.float64))[0] for t in trees)
    return trees, offset, *_boosted_outputs(k, labels)


def _hist_gradient_boosting(
    estimator: Any, labels: tuple[str, ...]
) -> tuple[list[_Tree], NDArray[np.float64], TreeOutput, tuple[str, ...]]:
    # scikit-learn keeps the fitted trees in `_predictors` (a list per iteration of TreePredictor, whose `nodes`
    # record array has value, count, feature_idx, num_threshold, left, right, is_leaf, is_categorical) and the
    # constant start in `_baseline_prediction`: private names, checked here so a change fails loudly.
    predictors = getattr(estimator, "_predictors", None)
    baseline = getattr(estimator, "_baseline_prediction", None)
    if predictors is None or baseline is None:
        raise InvalidParameterError(
            "This scikit-learn version keeps HistGradientBoosting trees where TreeShap cannot read them.",
            remedy="Use modelshield.explain.agnostic.SamplingShap for this model.",
        )
    k = len(predictors[0])
    trees = []
    for stage in predictors:
        for column, predictor in enumerate(stage):
            nodes = predictor.nodes
            if np.any(nodes["is_categorical"][nodes["is_leaf"] == 0]):
                raise InvalidParameterError(
                    "TreeShap does not support categorical splits of HistGradientBoostingClassifier.",
                    remedy="Use modelshield.explain.agnostic.SamplingShap for this model.",
                )
            leaf = nodes["is_leaf"].astype(bool)
            value = np.zeros((len(nodes), k))
            value[:, column] = nodes["value"]  # leaf values already carry the learning rate
            trees.append(
                _Tree(
                    left=np.where(leaf, -1, nodes["left"].astype(np.int64)),
                    right=np.where(leaf, -1, nodes["right"].astype(np.int64)),
                    feature=np.where(leaf, -2, nodes["feature_idx"].astype(np.int64)),
                    threshold=nodes["num_threshold"].astype(np.float64),
                    cover=nodes["count"].astype(np.float64),
                    value=value,
                )
            )
    offset = np.asarray(baseline, dtype=np.float64).reshape(k)
    return trees, offset, *_boosted_outputs(k, labels)


def _boosted_outputs(k: int, labels: tuple[str, ...]) -> tuple[TreeOutput, tuple[str, ...]]:
    if k == 1:
        return "log_odds", (f"log-odds({labels[1]})",)
    return "raw_score", labels


def _predict_tree(tree: _Tree, x: NDArray[np.float64]) -> NDArray[np.float64]:
    """The tree's (scaled) leaf value for each row: ``(n, k)``."""
    node = np.zeros(len(x), dtype=np.int64)
    while True:
        inner = tree.left[node] >= 0
        if not inner.any():
            return tree.value[node]
        f = tree.feature[node[inner]]
        go_left = x[np.flatnonzero(inner), f] <= tree.threshold[node[inner]]
        node[inner] = np.where(go_left, tree.left[node[inner]], tree.right[node[inner]])


# -- the leaf decomposition ------------------------------------------------------------------------------------
def _leaf_groups(trees: list[_Tree], k: int) -> tuple[list[_LeafGroup], NDArray[np.float64]]:
    """Every leaf as (unique path features, their bounds and zero fractions, value), grouped by path length;
    and the cover-weighted mean output (the sum over leaves of value × product of all zero fractions)."""
    by_depth: dict[int, list[tuple[list[int], list[float], list[float], list[float], NDArray[np.float64]]]] = {}
    mean = np.zeros(k)
    for tree in trees:
        # (node, {feature: [low, high, zero fraction]}) — an explicit stack, no recursion limit on deep trees
        stack: list[tuple[int, dict[int, list[float]]]] = [(0, {})]
        while stack:
            node, bounds = stack.pop()
            if tree.left[node] < 0:
                feats = sorted(bounds)
                zeros = [bounds[f][2] for f in feats]
                mean += tree.value[node] * math.prod(zeros)
                entry = (feats, [bounds[f][0] for f in feats], [bounds[f][1] for f in feats], zeros, tree.value[node])
                by_depth.setdefault(len(feats), []).append(entry)
                continue
            f, thr, cover = int(tree.feature[node]), float(tree.threshold[node]), tree.cover[node]
            for child, is_left in ((int(tree.left[node]), True), (int(tree.right[node]), False)):
                low, high, frac = bounds.get(f, [-np.inf, np.inf, 1.0])
                ratio = float(tree.cover[child] / cover) if cover > 0 else 0.0
                child_bounds = dict(bounds)
                child_bounds[f] = (
                    [low, min(high, thr), frac * ratio] if is_left else [max(low, thr), high, frac * ratio]
                )
                stack.append((child, child_bounds))
    groups = [
        _LeafGroup(
            feature=np.array([e[0] for e in entries], dtype=np.int64).reshape(len(entries), depth),
            low=np.array([e[1] for e in entries], dtype=np.float64).reshape(len(entries), depth),
            high=np.array([e[2] for e in entries], dtype=np.float64).reshape(len(entries), depth),
            zero=np.array([e[3] for e in entries], dtype=np.float64).reshape(len(entries), depth),
            value=np.array([e[4] for e in entries], dtype=np.float64),
        )
        for depth, entries in sorted(by_depth.items())
        if depth > 0  # a leaf reached without a split (a one-node tree) only moves the expected value
    ]
    return groups, mean


def _group_shap(x: NDArray[np.float64], group: _LeafGroup, n_features: int) -> NDArray[np.float64]:
    """``(n, f, k)``: the SHAP values that one group's leaves contribute for the rows ``x``.

    Arrays keep the path position or polynomial degree first, so each step works on contiguous ``(n, L)`` planes.
    """
    n = len(x)
    n_leaves, depth = group.feature.shape
    xv = x.T[group.feature.T]  # (d, L, n)
    one = ((xv > group.low.T[:, :, None]) & (xv <= group.high.T[:, :, None])).astype(np.float64).transpose(0, 2, 1)
    zero = np.ascontiguousarray(group.zero.T)  # (d, L)
    # coefficients of Π_j (z_j + o_j t), lowest power first: (d+1, n, L)
    poly = np.zeros((depth + 1, n, n_leaves))
    poly[0] = 1.0
    for j in range(depth):
        # degrees j+1 .. 1 from the top down, so each reads the old value below it
        for m in range(j + 1, 0, -1):
            poly[m] *= zero[j]
            poly[m] += poly[m - 1] * one[j]
        poly[0] *= zero[j]
    weights = [1.0 / (depth * math.comb(depth - 1, m)) for m in range(depth)]
    contrib = np.empty((depth, n, n_leaves))
    for i in range(depth):
        z = zero[i]  # (L,)
        # divide (z + t) out where o_i = 1: synthetic division from the top coefficient down, summing w_m q_m
        q = poly[depth].copy()
        with_one = weights[depth - 1] * q
        for m in range(depth - 1, 0, -1):
            q = poly[m] - z * q
            with_one += weights[m - 1] * q
        # divide the constant z out where o_i = 0 (z = 0 there makes the factor (o_i - z_i) zero too)
        without = sum(weights[m] * poly[m] for m in range(depth)) / np.where(z > 0, z, 1.0)
        o = one[i]
        contrib[i] = (o - z) * np.where(o > 0, with_one, without)
    # scatter (L·d) contributions per row into features, times each leaf's value per output
    scatter = sparse.csr_matrix(
        (np.ones(n_leaves * depth), (np.arange(n_leaves * depth), group.feature.reshape(-1))),
        shape=(n_leaves * depth, n_features),
    )
    flat = contrib.transpose(1, 2, 0).reshape(n, n_leaves * depth)  # (n, L·d), leaf-major as in `scatter`
    out = np.empty((n, n_features, group.value.shape[1]))
    for c in range(group.value.shape[1]):
        weighted = flat * np.repeat(group.value[:, c], depth)[None, :]
        out[:, :, c] = np.asarray((scatter.T @ weighted.T).T)
    return out
