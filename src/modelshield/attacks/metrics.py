"""Metrics of privacy attacks that stay honest at low false-positive rates.

    >>> import numpy as np
    >>> from modelshield.attacks.metrics import roc_summary
    >>> rng = np.random.default_rng(0)
    >>> scores = np.r_[rng.normal(1, 1, 5000), rng.normal(0, 1, 5000)]
    >>> labels = np.r_[np.ones(5000, bool), np.zeros(5000, bool)]
    >>> s = roc_summary(scores, labels)
    >>> round(s.auc, 2), s.at_fpr[0].fpr_target, s.at_fpr[0].supported
    (0.75, 0.001, True)

Carlini et al. (2022) showed that the area under the ROC curve hides what matters for privacy: whether *some*
records are identified with near certainty. So every membership-style attack reports the true-positive rate at
fixed low false-positive rates (0.1% and 1%), each with Clopper–Pearson intervals, and says whether the data can
support the figure at all: measuring a 0.1% false-positive rate needs thousands of non-members (with ``n``
non-members and none flagged, the 95% upper bound on the false-positive rate is about ``3.7 / n``).

Scores are "higher means more likely a member". Ties are resolved conservatively (a threshold flags every record
whose score is at least the threshold), so a constant score never looks informative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield.errors import InvalidInputError, InvalidParameterError

__all__ = [
    "LOW_FPRS",
    "RocSummary",
    "TprAtFpr",
    "clopper_pearson",
    "epsilon_lower_bound",
    "roc_curve",
    "roc_summary",
    "tpr_key",
]

#: The false-positive rates every privacy attack reports its true-positive rate at.
LOW_FPRS: tuple[float, ...] = (0.001, 0.01)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) two-sided interval for a binomial proportion ``k / n``."""
    from scipy.stats import beta

    if n <= 0 or not 0 <= k <= n:
        raise InvalidParameterError(f"clopper_pearson needs 0 <= k <= n and n > 0, got k={k}, n={n}.")
    if not 0 < confidence < 1:
        raise InvalidParameterError(f"confidence must lie in (0, 1), got {confidence}.")
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def _check(scores: ArrayLike, labels: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if s.shape != y.shape:
        raise InvalidInputError(f"{s.size} scores for {y.size} membership labels; they must match one to one.")
    if y.dtype != np.bool_:
        if not np.isin(y, (0, 1)).all():
            raise InvalidInputError("Membership labels must be booleans or 0/1 (1 = member).")
        y = y.astype(bool)
    if np.isnan(s).any():
        raise InvalidInputError(
            f"{int(np.isnan(s).sum())} membership scores are NaN.",
            remedy="Check the attack's inputs: a NaN score usually means a NaN model output or a zero variance.",
        )
    n_pos = int(y.sum())
    if n_pos in (0, y.size):
        raise InvalidInputError("Membership metrics need both members and non-members among the records.")
    return s, y


def roc_curve(
    scores: ArrayLike, labels: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """``(fpr, tpr, thresholds)`` at every distinct score, from the strictest threshold (+inf) down.

    Point ``i`` flags the records with ``score >= thresholds[i]``; the first point flags nothing.
    """
    s, y = _check(scores, labels)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(~y_sorted)
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]  # last index of each run of equal scores
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    tpr = np.r_[0.0, tp[last] / n_pos]
    fpr = np.r_[0.0, fp[last] / n_neg]
    thresholds = np.r_[np.inf, s_sorted[last]]
    return fpr, tpr, thresholds


@dataclass(frozen=True)
class TprAtFpr:
    """The true-positive rate at the strictest threshold whose false-positive rate is at most ``fpr_target``."""

    fpr_target: float
    tpr: float
    tpr_interval: tuple[float, float]  # Clopper–Pearson, 95%
    fpr: float  # the false-positive rate actually reached (<= fpr_target)
    fpr_upper: float  # its 95% upper bound: what the data can vouch for
    threshold: float
    supported: bool  # True when the data can bound the false-positive rate by fpr_target at all

    def to_dict(self) -> dict[str, float | bool | list[float]]:
        return {
            "fpr_target": self.fpr_target,
            "tpr": self.tpr,
            "tpr_interval": list(self.tpr_interval),
            "fpr": self.fpr,
            "fpr_upper": self.fpr_upper,
            "threshold": self.threshold,
            "supported": self.supported,
        }


@dataclass(frozen=True)
class RocSummary:
    """AUC, best balanced accuracy, membership advantage and TPR at each of :data:`LOW_FPRS`."""

    auc: float
    accuracy: float  # best balanced accuracy over thresholds
    advantage: float  # max(TPR - FPR) over thresholds (Yeom et al. 2018)
    at_fpr: tuple[TprAtFpr, ...]
    n_members: int
    n_non_members: int

    def tpr_at(self, fpr: float) -> TprAtFpr:
        for point in self.at_fpr:
            if math.isclose(point.fpr_target, fpr):
                return point
        raise KeyError(f"No TPR was computed at FPR {fpr}; computed at {[p.fpr_target for p in self.at_fpr]}.")

    @property
    def min_supported_fpr(self) -> float:
        """The smallest false-positive rate these non-members can bound (95%, no false positive seen)."""
        return clopper_pearson(0, self.n_non_members)[1]

    def metrics(self) -> dict[str, float]:
        """AUC, advantage, best balanced accuracy and the TPR at each low FPR (``"tpr_at_0.1%_fpr"``, ...)."""
        out = {"auc": self.auc, "advantage": self.advantage, "accuracy": self.accuracy}
        for point in self.at_fpr:
            out[tpr_key(point.fpr_target)] = point.tpr
        return out


def tpr_key(fpr: float) -> str:
    """The metric name of the true-positive rate at false-positive rate ``fpr``: ``tpr_key(0.001)`` is
    ``"tpr_at_0.1%_fpr"``."""
    return f"tpr_at_{fpr:.1%}_fpr"


def _tpr_at(
    fpr: NDArray[np.float64],
    tpr: NDArray[np.float64],
    thresholds: NDArray[np.float64],
    target: float,
    n_pos: int,
    n_neg: int,
) -> TprAtFpr:
    i = int(np.flatnonzero(fpr <= target + 1e-12)[-1])  # the point flagging nothing always qualifies
    tp = round(tpr[i] * n_pos)
    fp = round(fpr[i] * n_neg)
    return TprAtFpr(
        fpr_target=target,
        tpr=float(tpr[i]),
        tpr_interval=clopper_pearson(tp, n_pos),
        fpr=float(fpr[i]),
        fpr_upper=clopper_pearson(fp, n_neg)[1],
        threshold=float(thresholds[i]),
        supported=clopper_pearson(0, n_neg)[1] <= target,
    )


def roc_summary(scores: ArrayLike, labels: ArrayLike, fprs: Sequence[float] = LOW_FPRS) -> RocSummary:
    """The privacy-attack metrics of membership scores ``scores`` for records whose membership is ``labels``."""
    for f in fprs:
        if not 0 < f < 1:
            raise InvalidParameterError(f"False-positive rates must lie in (0, 1), got {f}.")
    s, y = _check(scores, labels)
    fpr, tpr, thresholds = roc_curve(s, y)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return RocSummary(
        auc=float(np.trapezoid(tpr, fpr)),
        accuracy=float(np.max((tpr + 1.0 - fpr) / 2.0)),
        advantage=float(np.max(tpr - fpr)),
        at_fpr=tuple(_tpr_at(fpr, tpr, thresholds, f, n_pos, n_neg) for f in fprs),
        n_members=n_pos,
        n_non_members=n_neg,
    )


def epsilon_lower_bound(
    true_positives: int,
    n_positives: int,
    false_positives: int,
    n_negatives: int,
    *,
    delta: float,
    confidence: float = 0.95,
) -> float:
    """A lower bound on ε that holds with the given confidence, from one membership test's outcome.

    An (ε, δ)-DP mechanism forces ``TPR <= exp(ε) FPR + δ`` and ``1 - FPR <= exp(ε) (1 - TPR) + δ`` for any test
    (Kairouz et al. 2015). With Clopper–Pearson bounds (a lower bound on TPR, an upper bound on FPR, each at
    one-sided level ``(1 + confidence) / 2``), the larger of the two implied values of ε is a lower bound on the
    true ε. The test's threshold must be chosen without looking at these outcomes (on held-out canaries), or the
    bound is optimistic. Returns 0 when the outcome proves nothing.
    """
    if not 0 <= delta < 1:
        raise InvalidParameterError(f"delta must lie in [0, 1), got {delta}.")
    # Each one-sided bound holds with probability (1 + confidence) / 2, so both hold together with `confidence`.
    tpr_low = clopper_pearson(true_positives, n_positives, confidence)[0]
    fpr_high = clopper_pearson(false_positives, n_negatives, confidence)[1]
    bounds = [0.0]
    if tpr_low - delta > 0 and fpr_high > 0:
        bounds.append(math.log((tpr_low - delta) / fpr_high))
    if 1 - delta - fpr_high > 0 and 1 - tpr_low > 0:
        bounds.append(math.log((1 - delta - fpr_high) / (1 - tpr_low)))
    return max(bounds)
