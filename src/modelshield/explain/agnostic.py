"""Permutation-sampling SHAP for black boxes: only ``predict_proba`` queries, under a hard query budget.

    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from modelshield.models import SklearnClassifier
    >>> from modelshield.explain.agnostic import SamplingShap
    >>> x = np.random.default_rng(0).normal(size=(100, 3)); y = (x[:, 0] > 0).astype(int)
    >>> clf = SklearnClassifier(LogisticRegression().fit(x, y))
    >>> result = SamplingShap(clf, background=x[:10], max_queries=2_000, seed=0).explain(x[:2])
    >>> result.values.shape, result.queries <= 2_000
    ((2, 3, 2), True)

The value of a coalition ``S`` of features for row ``x`` is the interventional expectation ``v(S) = mean_b
f(x_S, b_{¬S})`` over the background rows ``b``. For each sampled permutation of the features the marginal
contributions along the chain ``∅ ⊂ {π1} ⊂ … ⊂ all`` are added up (Štrumbelj and Kononenko 2014; shap's
``PermutationExplainer``); permutations come in antithetic pairs (a permutation and its reverse). Every chain sums
to ``f(x) − v(∅)``, so local accuracy holds exactly for any number of permutations.

Query cost, counted per input row the model answers: ``B`` for ``v(∅)`` (once), one per explained row for
``f(x)``, and ``(f − 1)·B`` per permutation and row for the inner coalitions (``f`` features, ``B`` background
rows). The explainer spends at most ``max_queries``: it takes as many permutations per row as fit, and refuses up
front a budget that does not fit one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield.errors import InvalidParameterError
from modelshield.explain.interface import check_targets, mean_abs_importance
from modelshield.models.interface import Classifier

__all__ = ["SamplingShap", "SamplingShapResult"]

_MAX_VALUES = 1 << 22  # input values per model call that the hybrid inputs of a chunk of permutations may hold


@dataclass(frozen=True)
class SamplingShapResult:
    """Estimated SHAP values of the class probabilities for ``n`` rows of ``f`` features (flattened), ``k`` classes.

    ``values``: ``(n, f, k)``; ``stderr``: ``(n, f, k)``, the standard error of each estimate over the permutation
    pairs (NaN with a single pair); ``expected_value``: ``(k,)``, the mean probability over the background;
    ``values.sum(axis=1) + expected_value`` equals the model's probabilities (:attr:`model_output`, exactly).
    ``permutations`` is the number per row; ``queries`` the model inputs spent, all told.
    """

    values: NDArray[np.float64]
    stderr: NDArray[np.float64]
    expected_value: NDArray[np.float64]
    model_output: NDArray[np.float64]
    permutations: int
    queries: int
    max_queries: int
    background_size: int

    @property
    def importance(self) -> NDArray[np.float64]:
        """``(f, k)``: global importance, the mean |SHAP value| over the rows."""
        return mean_abs_importance(self.values)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary: method, budget and spending, base values and global importances."""
        return {
            "method": "permutation_shap",
            "output": "probability",
            "rows": int(self.values.shape[0]),
            "features": int(self.values.shape[1]),
            "permutations_per_row": self.permutations,
            "background_size": self.background_size,
            "queries": self.queries,
            "max_queries": self.max_queries,
            "expected_value": [float(v) for v in self.expected_value],
            "importance": [[float(v) for v in row] for row in self.importance],
        }


class SamplingShap:
    """Model-agnostic SHAP by antithetic permutation sampling against a background set.

    ``background``: ``(B, *input_shape)`` reference rows (a few dozen is usual; cost grows linearly with ``B``).
    ``max_queries``: the most model inputs one :meth:`explain` call may spend. ``max_permutations`` caps the
    permutations per row (rounded down to pairs when there are at least two); ``seed`` fixes the sampling.
    """

    def __init__(
        self,
        classifier: Classifier,
        *,
        background: ArrayLike,
        max_queries: int,
        max_permutations: int = 64,
        seed: int = 0,
    ) -> None:
        if not isinstance(classifier, Classifier):
            raise InvalidParameterError(f"SamplingShap needs a Classifier, got {type(classifier).__name__}.")
        if max_queries < 1:
            raise InvalidParameterError(f"max_queries must be positive, got {max_queries}.")
        if max_permutations < 1:
            raise InvalidParameterError(f"max_permutations must be positive, got {max_permutations}.")
        bg = classifier.validate_input(background)
        if len(bg) == 0:
            raise InvalidParameterError("The background set is empty.", remedy="Pass a few dozen reference rows.")
        self.classifier = classifier
        self.background = bg
        self.max_queries = int(max_queries)
        self.max_permutations = int(max_permutations)
        self.seed = int(seed)

    def cost(self, n_rows: int, permutations: int) -> int:
        """Model inputs that explaining ``n_rows`` rows with ``permutations`` permutations each spends."""
        n_features = int(np.prod(self.classifier.input_shape))
        b = len(self.background)
        return b + n_rows + n_rows * permutations * (n_features - 1) * b

    def explain(self, x: ArrayLike) -> SamplingShapResult:
        """Estimated SHAP values for the rows of ``x``; raises :class:`InvalidParameterError` before any query when
        ``max_queries`` does not pay for one permutation per row."""
        clf = self.classifier
        arr = clf.validate_input(x)
        n, b = len(arr), len(self.background)
        n_features = int(np.prod(clf.input_shape))
        per_perm = n * (n_features - 1) * b
        fixed = b + n
        needed = self.cost(n, 1)
        if self.max_queries < needed:
            raise InvalidParameterError(
                f"max_queries={self.max_queries} cannot pay for one permutation per row: {n} rows of {n_features} "
                f"features against {b} background rows need at least {needed} queries.",
                remedy="Raise max_queries, or explain fewer rows, or use a smaller background set.",
            )
        perms = (
            self.max_permutations
            if per_perm == 0
            else min(self.max_permutations, (self.max_queries - fixed) // per_perm)
        )
        if perms >= 2:
            perms -= perms % 2  # antithetic pairs
        rng = np.random.default_rng(self.seed)
        spent = 0

        def query(batch: NDArray[np.float32]) -> NDArray[np.float64]:
            nonlocal spent
            if spent + len(batch) > self.max_queries:  # pragma: no cover - the plan above keeps within budget
                raise AssertionError("query plan exceeded max_queries")
            spent += len(batch)
            return np.asarray(clf.predict_proba(batch), dtype=np.float64)

        flat_bg = self.background.reshape(b, n_features)
        base = query(self.background).mean(axis=0)  # v(∅), (k,)
        full = query(arr)  # v(all) = f(x), (n, k)
        k = base.shape[0]
        values = np.zeros((n, n_features, k))
        stderr = np.full((n, n_features, k), np.nan)
        for row in range(n):
            samples = np.empty((perms, n_features, k))
            order = _permutations(rng, n_features, perms)
            xrow = arr[row].reshape(n_features)
            if n_features > 1:
                # coalition masks along each chain, inner steps 1..f-1: (perms, f-1, f); hybrid inputs built a few
                # permutations at a time, so memory stays near _MAX_VALUES input values whatever the budget
                ranks = np.argsort(order, axis=1)  # position of each feature in its permutation
                steps = np.arange(1, n_features)
                chunk = max(1, _MAX_VALUES // ((n_features - 1) * b * n_features))
                inner = np.empty((perms, n_features - 1, k))
                for p0 in range(0, perms, chunk):
                    masks = ranks[p0 : p0 + chunk, None, :] < steps[None, :, None]
                    hybrid = np.where(masks[:, :, None, :], xrow, flat_bg[None, None, :, :])  # (c, f-1, B, f)
                    batch = hybrid.reshape(-1, *clf.input_shape).astype(np.float32)
                    inner[p0 : p0 + chunk] = query(batch).reshape(len(masks), n_features - 1, b, k).mean(axis=2)
            else:
                inner = np.empty((perms, 0, k))
            chain = np.concatenate(
                [np.broadcast_to(base, (perms, 1, k)), inner, np.broadcast_to(full[row], (perms, 1, k))], axis=1
            )
            gains = np.diff(chain, axis=1)  # (perms, f, k): gain of adding order[:, j]
            np.put_along_axis(samples, order[:, :, None], gains, axis=1)
            values[row] = samples.mean(axis=0)
            if perms >= 2:
                pairs = samples.reshape(perms // 2, 2, n_features, k).mean(axis=1) if perms % 2 == 0 else samples
                if len(pairs) >= 2:
                    stderr[row] = pairs.std(axis=0, ddof=1) / np.sqrt(len(pairs))
        return SamplingShapResult(
            values=values,
            stderr=stderr,
            expected_value=base,
            model_output=full,
            permutations=perms,
            queries=spent,
            max_queries=self.max_queries,
            background_size=b,
        )

    def attribute(self, x: ArrayLike, target: ArrayLike) -> NDArray[np.float64]:
        """Estimated SHAP values of class ``target[i]``'s probability for row ``i``; shape of ``x``."""
        arr = self.classifier.validate_input(x)
        classes = check_targets(target, len(arr), self.classifier.n_classes)
        values = self.explain(arr).values
        return np.asarray(values[np.arange(len(arr)), :, classes].reshape(arr.shape), dtype=np.float64)


def _permutations(rng: np.random.Generator, n_features: int, count: int) -> NDArray[np.int64]:
    """``count`` permutations of the features; with two or more, antithetic pairs (each followed by its reverse)."""
    if count < 2:
        return rng.permutation(n_features)[None, :].astype(np.int64)
    half = np.stack([rng.permutation(n_features) for _ in range(count // 2)])
    return np.stack([half, half[:, ::-1]], axis=1).reshape(count, n_features).astype(np.int64)
