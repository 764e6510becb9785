"""The ``fairness`` check: does the model treat the groups of a sensitive feature alike?

    >>> import numpy as np
    >>> from modelshield.audit.checks.fairness import FAIRNESS, group_rates
    >>> FAIRNESS.budgets["quick"].resamples, FAIRNESS.budgets["standard"].resamples
    (500, 1000)
    >>> y    = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    >>> pred = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    >>> rates = group_rates(y, pred, np.array([0, 0, 0, 0, 1, 1, 1, 1]), n_groups=2, n_classes=2)
    >>> rates.selection_rate[:, 0].tolist(), round(float(rates.demographic_parity_ratio), 3)
    ([0.75, 0.25], 0.333)

The target names its sensitive features (``Target(sensitive=("sex",))``, ``modelshield audit --sensitive sex``);
the check is skipped, with that reason, for a target that names none. A sensitive feature is one of the model's
inputs here: an attribute the model does not take (and the test data therefore lacks) is not supported yet.

**Groups.** A binary or categorical feature, or any feature with at most :data:`MAX_LEVELS` distinct values in
the test data, is grouped by its values; any other is cut into :data:`QUANTILE_BINS` bins at the test data's
quantiles (the finding says so and names the bins). Groups with fewer than :data:`MIN_GROUP_SIZE` test records
are shown but not judged: the disparities compare the other groups only.

**Figures**, on the model's predictions for the test data, per group: records, selection rate (the share
predicted as the positive class), true-positive rate, false-positive rate and accuracy; and across the judged
groups, as fairlearn defines them (``method="between_groups"``): the demographic-parity difference (largest minus
smallest selection rate) and ratio (smallest over largest), the equalized-odds difference (the larger of the
true-positive-rate and false-positive-rate differences) and ratio (the smaller of the two ratios), and the
accuracy difference. For a binary model the positive class is output 1 (fairlearn's ``pos_label=1``); for a
multi-class model each class is taken in turn as the positive one (one versus the rest) and the worst class is
reported, with its name. A rate a group cannot have (a true-positive rate without positive records) is left out
of that comparison. Two groups whose largest rate is 0 have a ratio of 1 (fairlearn: undefined).

**Intervals.** Each disparity has a 95% percentile-bootstrap interval, stratified by group (each group is
resampled to its own size, so every resample has every group): since the figures depend on a group's records only
through its confusion matrix, resampling a group's rows with replacement is drawing its confusion-matrix counts
from a multinomial with the observed cell shares, which is what :func:`bootstrap_rates` does, for all resamples
at once. Resamples per budget (:class:`FairnessSettings`): 500 quick, 1000 standard, 2000 thorough, seeded from
the check's generator.

**Judgement** (:meth:`FairnessCheck.judge`, one finding per sensitive feature): a disparity counts only when its
whole interval is past the threshold, so sampling noise alone is not reported. Demographic-parity ratio below 0.8
(the four-fifths rule of US employment practice) at the interval's upper end: medium; below 0.5: high
(:data:`PARITY_RATIO_THRESHOLDS`). Equalized-odds difference above 0.1 at the interval's lower end: medium; above
0.2: high (:data:`ODDS_DIFFERENCE_THRESHOLDS`). Accuracy difference above 0.1 at the lower end: low. Otherwise the
finding is info and carries the figures. Which disparity matters, and how much, depends on the use; the
thresholds are a common starting point, not a legal test. A difference or ratio of rates is a range (largest
minus smallest), so with no true disparity its interval still lies above 0 (below 1 for a ratio): the margins of
the thresholds, not the no-disparity value, are what the interval must clear.

**Privacy per group.** When the target has its training data and the model gives class scores, a loss-threshold
membership attack is run per group (members: the group's training records; non-members: its test records; at
most :data:`MEMBERSHIP_RECORDS` of each), and a second finding per feature, ``fairness.<feature>.membership``,
gives each group's attack AUC and the largest AUC difference between groups with a bootstrap interval: above 0.05
at the interval's lower end, low; above 0.1, medium (:data:`MEMBERSHIP_GAP_THRESHOLDS`).

**Robustness per group.** The evasion check, which attacks the records, reports for tabular targets that name
sensitive features how much accuracy the attack takes from each group (:func:`robustness_by_group`, the groups
made here), in a finding per feature, ``evasion.by-group.<feature>``: the largest difference in accuracy lost
between groups of at least :data:`MIN_GROUP_SIZE` attacked records, with a bootstrap interval; above 0.1 at the
interval's lower end, low; above 0.2, medium (:data:`ROBUSTNESS_GAP_THRESHOLDS`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from modelshield.audit.interface import Budget, Check, CheckContext
from modelshield.data.interface import Feature, FeatureKind
from modelshield.errors import InvalidParameterError
from modelshield.findings import Chart, Finding, JSONValue, OwaspMl, Severity
from modelshield.target import Target

__all__ = [
    "ACCURACY_DIFFERENCE_THRESHOLD",
    "CONFIDENCE",
    "FAIRNESS",
    "MAX_LEVELS",
    "MEMBERSHIP_GAP_THRESHOLDS",
    "MEMBERSHIP_RECORDS",
    "MIN_GROUP_SIZE",
    "ODDS_DIFFERENCE_THRESHOLDS",
    "PARITY_RATIO_THRESHOLDS",
    "QUANTILE_BINS",
    "ROBUSTNESS_GAP_THRESHOLDS",
    "Disparity",
    "FairnessCheck",
    "FairnessMeasurement",
    "FairnessSettings",
    "FeatureFairness",
    "GroupFigures",
    "GroupLeakage",
    "GroupRates",
    "GroupRobustness",
    "Grouping",
    "MembershipByGroup",
    "RobustnessByGroup",
    "bootstrap_rates",
    "confusion_by_group",
    "feature_finding_id",
    "group_rates",
    "grouping_of",
    "measure_feature",
    "membership_by_group",
    "membership_severity",
    "rates_from_confusion",
    "robustness_by_group",
    "robustness_severity",
    "severity_of",
]

#: Groups with fewer test records than this are reported, not judged.
MIN_GROUP_SIZE = 30
#: A feature with at most this many distinct values in the test data is grouped by value; others are binned.
MAX_LEVELS = 10
#: Quantile bins for a feature grouped by range.
QUANTILE_BINS = 4
#: Confidence of the bootstrap intervals.
CONFIDENCE = 0.95
#: Upper interval end of the demographic-parity ratio below which each severity applies (four-fifths rule: 0.8).
PARITY_RATIO_THRESHOLDS: tuple[tuple[float, Severity], ...] = ((0.5, Severity.HIGH), (0.8, Severity.MEDIUM))
#: Lower interval end of the equalized-odds difference above which each severity applies.
ODDS_DIFFERENCE_THRESHOLDS: tuple[tuple[float, Severity], ...] = ((0.2, Severity.HIGH), (0.1, Severity.MEDIUM))
#: Lower interval end of the accuracy difference above which the finding is low.
ACCURACY_DIFFERENCE_THRESHOLD: tuple[float, Severity] = (0.1, Severity.LOW)
#: Lower interval end of the difference in membership-attack AUC between groups above which each severity applies.
MEMBERSHIP_GAP_THRESHOLDS: tuple[tuple[float, Severity], ...] = ((0.1, Severity.MEDIUM), (0.05, Severity.LOW))
#: Lower interval end of the difference between groups in accuracy lost to the evasion attack above which each
#: severity applies (measured by the evasion check, which attacks the records).
ROBUSTNESS_GAP_THRESHOLDS: tuple[tuple[float, Severity], ...] = ((0.2, Severity.MEDIUM), (0.1, Severity.LOW))
#: Members (and non-members) per group that the per-group membership attack scores at most (a random subset).
MEMBERSHIP_RECORDS = 2000
_ATLAS_MEMBERSHIP = ("AML.T0024.000",)

_DISPARITIES = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "accuracy_difference",
)
_SLUG = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class FairnessSettings:
    """What a budget buys the fairness check."""

    resamples: int  # bootstrap resamples of each disparity's interval


_BUDGETS: Mapping[Budget, FairnessSettings] = MappingProxyType(
    {
        Budget.QUICK: FairnessSettings(resamples=500),
        Budget.STANDARD: FairnessSettings(resamples=1000),
        Budget.THOROUGH: FairnessSettings(resamples=2000),
    }
)


# -- the figures, vectorised over bootstrap resamples ------------------------------------------------------------


@dataclass(frozen=True)
class GroupRates:
    """Per-group rates and the disparities across groups, for one confusion table or a batch of them.

    With a batch of ``B`` resamples, ``G`` groups and ``C`` reported classes (1 for a binary model: output 1;
    else every class, one versus the rest): the rates have shape ``(B, G, C)`` (``accuracy``: ``(B, G)``) and the
    disparities shape ``(B,)``; without a batch dimension, one fewer. A rate a group cannot have is NaN; a
    disparity with fewer than two groups to compare is NaN. ``worst_class_*`` index the reported class whose
    disparity is the worst (the largest difference, the smallest ratio).
    """

    n: NDArray[np.float64]
    selection_rate: NDArray[np.float64]
    true_positive_rate: NDArray[np.float64]
    false_positive_rate: NDArray[np.float64]
    accuracy: NDArray[np.float64]
    demographic_parity_difference: NDArray[np.float64]
    demographic_parity_ratio: NDArray[np.float64]
    equalized_odds_difference: NDArray[np.float64]
    equalized_odds_ratio: NDArray[np.float64]
    accuracy_difference: NDArray[np.float64]
    worst_class_parity: NDArray[np.int64]
    worst_class_odds: NDArray[np.int64]


def _spread(values: NDArray[np.float64], axis: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Difference (max - min) and ratio (min / max) along ``axis``, NaNs left out; NaN with fewer than two values;
    a ratio of 1 when the largest value is 0 (all equal)."""
    valid = np.sum(~np.isnan(values), axis=axis)
    high = np.fmax.reduce(values, axis=axis)
    low = np.fmin.reduce(values, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(high > 0, low / np.where(high > 0, high, 1.0), 1.0)
    enough = valid >= 2
    return np.where(enough, high - low, np.nan), np.where(enough, ratio, np.nan)


def _worst(values: NDArray[np.float64], *, largest: bool) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The worst value over the last axis (NaNs left out) and its index."""
    filled = np.where(np.isnan(values), -np.inf if largest else np.inf, values)
    index = np.argmax(filled, axis=-1) if largest else np.argmin(filled, axis=-1)
    worst = np.take_along_axis(values, index[..., None], axis=-1)[..., 0]
    return worst, index.astype(np.int64)


def rates_from_confusion(confusion: NDArray[np.float64]) -> GroupRates:
    """:class:`GroupRates` from confusion counts of shape ``(..., G, k, k)`` (rows: true class, columns:
    predicted class), the groups compared being all ``G`` of them."""
    conf = np.asarray(confusion, dtype=np.float64)
    k = conf.shape[-1]
    n = conf.sum(axis=(-2, -1))
    predicted = conf.sum(axis=-2)  # (..., G, k): records predicted as each class
    actual = conf.sum(axis=-1)  # (..., G, k): records of each class
    hits = np.diagonal(conf, axis1=-2, axis2=-1)  # (..., G, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = np.where(n > 0, hits.sum(axis=-1) / n, np.nan)
        selection = np.where(n[..., None] > 0, predicted / n[..., None], np.nan)
        tpr = np.where(actual > 0, hits / actual, np.nan)
        negatives = n[..., None] - actual
        fpr = np.where(negatives > 0, (predicted - hits) / negatives, np.nan)
    if k == 2:  # binary: output 1 is the positive class
        selection, tpr, fpr = selection[..., 1:], tpr[..., 1:], fpr[..., 1:]
    group_axis = selection.ndim - 2
    dp_diff, dp_ratio = _spread(selection, group_axis)  # (..., C)
    tpr_diff, tpr_ratio = _spread(tpr, group_axis)
    fpr_diff, fpr_ratio = _spread(fpr, group_axis)
    eo_diff = np.fmax(tpr_diff, fpr_diff)
    eo_ratio = np.fmin(tpr_ratio, fpr_ratio)
    dp_diff_worst, _ = _worst(dp_diff, largest=True)
    dp_ratio_worst, parity_class = _worst(dp_ratio, largest=False)
    eo_diff_worst, odds_class = _worst(eo_diff, largest=True)
    eo_ratio_worst, _ = _worst(eo_ratio, largest=False)
    acc_diff, _ = _spread(accuracy, accuracy.ndim - 1)
    return GroupRates(
        n=n,
        selection_rate=selection,
        true_positive_rate=tpr,
        false_positive_rate=fpr,
        accuracy=accuracy,
        demographic_parity_difference=dp_diff_worst,
        demographic_parity_ratio=dp_ratio_worst,
        equalized_odds_difference=eo_diff_worst,
        equalized_odds_ratio=eo_ratio_worst,
        accuracy_difference=acc_diff,
        worst_class_parity=parity_class,
        worst_class_odds=odds_class,
    )


def confusion_by_group(
    y_true: NDArray[np.integer], y_pred: NDArray[np.integer], groups: NDArray[np.integer], n_groups: int, n_classes: int
) -> NDArray[np.float64]:
    """Confusion counts per group, shape ``(n_groups, n_classes, n_classes)``, from one ``bincount``."""
    cells = (np.asarray(groups) * n_classes + np.asarray(y_true)) * n_classes + np.asarray(y_pred)
    counts = np.bincount(cells.astype(np.int64), minlength=n_groups * n_classes * n_classes)
    return counts.reshape(n_groups, n_classes, n_classes).astype(np.float64)


def group_rates(
    y_true: NDArray[np.integer],
    y_pred: NDArray[np.integer],
    groups: NDArray[np.integer],
    *,
    n_groups: int,
    n_classes: int,
) -> GroupRates:
    """Per-group rates and disparities of predictions ``y_pred`` against labels ``y_true``, groups coded
    ``0..n_groups-1`` (every group compared)."""
    return rates_from_confusion(confusion_by_group(y_true, y_pred, groups, n_groups, n_classes))


def bootstrap_rates(confusion: NDArray[np.float64], resamples: int, rng: np.random.Generator) -> GroupRates:
    """:class:`GroupRates` of ``resamples`` stratified bootstrap resamples of the records behind ``confusion``
    (``(G, k, k)`` counts): each group's rows resampled with replacement to its own size, drawn as its
    confusion counts from a multinomial with the observed cell shares (the same distribution, without the rows)."""
    g, k, _ = confusion.shape
    flat = confusion.reshape(g, k * k)
    draws = np.empty((resamples, g, k * k), dtype=np.float64)
    for i in range(g):
        size = int(flat[i].sum())
        draws[:, i] = rng.multinomial(size, flat[i] / size, size=resamples) if size else 0.0
    return rates_from_confusion(draws.reshape(resamples, g, k, k))


# -- groups ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grouping:
    """How a feature's test records fall into groups: each record's group code and each group's label, and the
    rule that assigns other records (the training data's) to the same groups."""

    codes: NDArray[np.int64]
    labels: tuple[str, ...]
    method: str  # "values", or "N quantile bins"
    levels: NDArray[np.float64]  # by value: each group's value; by bin: the inner bin edges
    bins: NDArray[np.int64] | None = None  # by bin: the bin each group is (empty bins have no group)

    def assign(self, values: NDArray[np.floating]) -> NDArray[np.int64]:
        """The group of each of ``values``; -1 for a value that no group holds (one the test data lacks)."""
        values = np.asarray(values, dtype=np.float64)
        if self.bins is None:
            index = np.clip(np.searchsorted(self.levels, values), 0, len(self.levels) - 1)
            return np.where(self.levels[index] == values, index, -1).astype(np.int64)
        lookup = np.full(len(self.levels) + 1, -1, dtype=np.int64)
        lookup[self.bins] = np.arange(len(self.bins))
        return lookup[np.searchsorted(self.levels, values, side="right")]


def _value_label(value: float, feature: Feature) -> str:
    if feature.categories and float(value).is_integer() and 0 <= int(value) < len(feature.categories):
        return feature.categories[int(value)]
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def grouping_of(values: NDArray[np.floating], feature: Feature, *, bins: int = QUANTILE_BINS) -> Grouping:
    """Groups by value (binary, categorical, or at most :data:`MAX_LEVELS` distinct values), else by quantile bin."""
    values = np.asarray(values, dtype=np.float64)
    distinct, codes = np.unique(values, return_inverse=True)
    by_value = feature.kind in (FeatureKind.BINARY, FeatureKind.CATEGORICAL) or len(distinct) <= MAX_LEVELS
    if by_value:
        labels = tuple(_value_label(v, feature) for v in distinct)
        return Grouping(codes.astype(np.int64), labels, "values", distinct)
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    raw = np.searchsorted(edges, values, side="right")  # bin i holds [edges[i-1], edges[i])
    used, codes = np.unique(raw, return_inverse=True)
    bounds = np.concatenate([[values.min()], edges, [values.max()]])
    labels = tuple(
        f"[{bounds[i]:.4g}, {bounds[i + 1]:.4g}{']' if i + 1 == len(bounds) - 1 else ')'}" for i in used.tolist()
    )
    return Grouping(codes.astype(np.int64), labels, f"{len(used)} quantile bins", edges, used.astype(np.int64))


# -- the measurement ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupFigures:
    """One group's figures. The rates hold one value per reported class (binary: output 1 only); NaN where the
    group cannot have the rate (a true-positive rate without positive records)."""

    label: str
    n: int
    judged: bool  # at least MIN_GROUP_SIZE records: part of the disparities
    selection_rate: tuple[float, ...]
    true_positive_rate: tuple[float, ...]
    false_positive_rate: tuple[float, ...]
    accuracy: float


@dataclass(frozen=True)
class Disparity:
    """A disparity across groups, with its bootstrap interval (NaN when it cannot be measured)."""

    value: float
    interval: tuple[float, float]
    worst_class: str | None = None  # the class (one versus the rest) it is worst for; None for accuracy

    @property
    def measured(self) -> bool:
        return bool(np.isfinite(self.value))


@dataclass(frozen=True)
class GroupLeakage:
    """How well a loss-threshold membership attack tells one group's training records from its test records."""

    label: str
    members: int  # training records of the group scored (at most MEMBERSHIP_RECORDS)
    non_members: int  # test records of the group scored
    judged: bool  # at least MIN_GROUP_SIZE of each
    auc: float  # the attack's ROC AUC: 0.5 is chance


@dataclass(frozen=True)
class MembershipByGroup:
    """Membership leakage per group: each group's attack AUC and the largest difference between judged groups."""

    groups: tuple[GroupLeakage, ...]
    auc_difference: Disparity

    @property
    def judged(self) -> tuple[GroupLeakage, ...]:
        return tuple(g for g in self.groups if g.judged)


def _auc(member_loss: NDArray[np.float64], non_member_loss: NDArray[np.float64]) -> NDArray[np.float64]:
    """The loss attack's AUC (a member is guessed where the loss is low) along the last axis, ties counted half:
    the Mann-Whitney statistic from average ranks."""
    from scipy.stats import rankdata

    m, q = member_loss.shape[-1], non_member_loss.shape[-1]
    scores = -np.concatenate([member_loss, non_member_loss], axis=-1)
    ranks = rankdata(scores, axis=-1)[..., :m]
    return np.asarray((ranks.sum(axis=-1) - m * (m + 1) / 2.0) / (m * q), dtype=np.float64)


def _largest_difference(points: Sequence[float], boot: Sequence[NDArray[np.float64]], confidence: float) -> Disparity:
    """The largest difference between the groups' ``points``, with the percentile interval of the same difference
    over their bootstrap replicates (``boot``: one array of resamples per group); NaN with fewer than two groups."""
    if len(boot) < 2:
        nan = float("nan")
        return Disparity(nan, (nan, nan))
    point, _ = _spread(np.array(points), 0)
    spread, _ = _spread(np.stack(boot, axis=1), 1)
    return Disparity(float(point), _interval(spread, confidence))


def membership_by_group(
    member_loss: NDArray[np.floating],
    member_groups: NDArray[np.integer],
    non_member_loss: NDArray[np.floating],
    non_member_groups: NDArray[np.integer],
    labels: Sequence[str],
    *,
    resamples: int,
    rng: np.random.Generator,
    min_group_size: int = MIN_GROUP_SIZE,
    confidence: float = CONFIDENCE,
) -> MembershipByGroup:
    """Per group (codes ``0..len(labels)-1``; -1: no group), the AUC of the loss attack on its members (training
    records) against its non-members (test records), and the largest AUC difference between groups with at least
    ``min_group_size`` of each, with a bootstrap interval (members and non-members resampled within each group)."""
    member_loss = np.asarray(member_loss, dtype=np.float64)
    non_member_loss = np.asarray(non_member_loss, dtype=np.float64)
    groups: list[GroupLeakage] = []
    boot: list[NDArray[np.float64]] = []
    for g, label in enumerate(labels):
        members, non_members = member_loss[member_groups == g], non_member_loss[non_member_groups == g]
        if len(members) > MEMBERSHIP_RECORDS:
            members = rng.choice(members, MEMBERSHIP_RECORDS, replace=False)
        if len(non_members) > MEMBERSHIP_RECORDS:
            non_members = rng.choice(non_members, MEMBERSHIP_RECORDS, replace=False)
        judged = min(len(members), len(non_members)) >= min_group_size
        auc = float(_auc(members, non_members)) if len(members) and len(non_members) else float("nan")
        groups.append(GroupLeakage(label, len(members), len(non_members), judged, auc))
        if judged:
            resampled_members = members[rng.integers(0, len(members), size=(resamples, len(members)))]
            resampled_non = non_members[rng.integers(0, len(non_members), size=(resamples, len(non_members)))]
            boot.append(_auc(resampled_members, resampled_non))
    return MembershipByGroup(tuple(groups), _largest_difference([g.auc for g in groups if g.judged], boot, confidence))


@dataclass(frozen=True)
class GroupRobustness:
    """One group's accuracy on the attacked test records, before and under the evasion attack."""

    label: str
    n: int  # attacked test records of the group
    judged: bool  # at least MIN_GROUP_SIZE records
    clean_accuracy: float
    robust_accuracy: float

    @property
    def loss(self) -> float:
        """Accuracy the attack takes from the group."""
        return self.clean_accuracy - self.robust_accuracy


@dataclass(frozen=True)
class RobustnessByGroup:
    """Accuracy lost to the evasion attack per group of one sensitive feature, and the largest difference in that
    loss between judged groups (with its bootstrap interval)."""

    feature: str
    method: str  # "values" or "N quantile bins", as in the fairness finding
    eps: str  # the attack budget, as the evasion finding states it
    groups: tuple[GroupRobustness, ...]
    loss_difference: Disparity

    @property
    def judged(self) -> tuple[GroupRobustness, ...]:
        return tuple(g for g in self.groups if g.judged)


def robustness_by_group(
    correct: NDArray[np.bool_],
    robust: NDArray[np.bool_],
    grouping: Grouping,
    codes: NDArray[np.integer],
    *,
    feature: str,
    eps: str,
    resamples: int,
    rng: np.random.Generator,
    min_group_size: int = MIN_GROUP_SIZE,
    confidence: float = CONFIDENCE,
) -> RobustnessByGroup:
    """Per group (``codes`` index ``grouping.labels``; -1: no group), the accuracy of the attacked records before
    (``correct``) and under attack (``robust``: still correct), and the largest difference in accuracy lost
    between groups of at least ``min_group_size`` records, its interval from resampling records within each group."""
    correct = np.asarray(correct, dtype=bool)
    robust = np.asarray(robust, dtype=bool)
    if correct.shape != robust.shape or correct.shape != np.shape(codes):
        raise InvalidParameterError("correct, robust and codes must have one value per attacked record.")
    if np.any(robust & ~correct):
        raise InvalidParameterError("A record cannot be robustly correct without being correct.")
    lost = (correct & ~robust).astype(np.float64)  # a record whose right answer the attack took
    groups: list[GroupRobustness] = []
    boot: list[NDArray[np.float64]] = []
    for g, label in enumerate(grouping.labels):
        rows = np.flatnonzero(np.asarray(codes) == g)
        if len(rows) == 0:
            continue
        judged = len(rows) >= min_group_size
        groups.append(
            GroupRobustness(label, len(rows), judged, float(correct[rows].mean()), float(robust[rows].mean()))
        )
        if judged:
            boot.append(lost[rows][rng.integers(0, len(rows), size=(resamples, len(rows)))].mean(axis=1))
    difference = _largest_difference([g.loss for g in groups if g.judged], boot, confidence)
    return RobustnessByGroup(feature, grouping.method, eps, tuple(groups), difference)


def _gap_severity(gap: Disparity, thresholds: tuple[tuple[float, Severity], ...]) -> Severity:
    """The first severity whose threshold the gap's interval clears at its lower end; info when none is."""
    if gap.measured:
        for threshold, level in thresholds:
            if gap.interval[0] > threshold:
                return level
    return Severity.INFO


def robustness_severity(by_group: RobustnessByGroup) -> Severity:
    """The severity of a difference between groups in accuracy lost to attack (:data:`ROBUSTNESS_GAP_THRESHOLDS`)."""
    return _gap_severity(by_group.loss_difference, ROBUSTNESS_GAP_THRESHOLDS)


def membership_severity(leakage: MembershipByGroup) -> Severity:
    """The severity of a difference in membership leakage between groups (:data:`MEMBERSHIP_GAP_THRESHOLDS`)."""
    return _gap_severity(leakage.auc_difference, MEMBERSHIP_GAP_THRESHOLDS)


@dataclass(frozen=True)
class FeatureFairness:
    """The figures of one sensitive feature's groups."""

    feature: str
    method: str  # "values" or "N quantile bins"
    classes: tuple[str, ...]  # the reported positive classes (binary: output 1)
    groups: tuple[GroupFigures, ...]
    demographic_parity_difference: Disparity
    demographic_parity_ratio: Disparity
    equalized_odds_difference: Disparity
    equalized_odds_ratio: Disparity
    accuracy_difference: Disparity
    membership: MembershipByGroup | None = None  # leakage per group; None: not measured (the measurement says why)

    @property
    def judged(self) -> tuple[GroupFigures, ...]:
        return tuple(g for g in self.groups if g.judged)


@dataclass(frozen=True)
class FairnessMeasurement:
    """The fairness figures of each sensitive feature, on ``records`` test records."""

    features: tuple[FeatureFairness, ...]
    records: int
    resamples: int
    n_classes: int
    min_group_size: int = MIN_GROUP_SIZE
    confidence: float = CONFIDENCE
    membership_note: str = ""  # why membership leakage per group was not measured ("" when it was)

    def __post_init__(self) -> None:
        if not self.features:
            raise InvalidParameterError("A fairness measurement needs at least one sensitive feature.")


def _interval(values: NDArray[np.float64], confidence: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (float("nan"), float("nan"))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return (float(low), float(high))


def _tuple(values: NDArray[np.float64]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def measure_feature(
    feature: Feature,
    values: NDArray[np.floating],
    y_true: NDArray[np.integer],
    y_pred: NDArray[np.integer],
    class_names: Sequence[str],
    *,
    resamples: int,
    rng: np.random.Generator,
    min_group_size: int = MIN_GROUP_SIZE,
    confidence: float = CONFIDENCE,
    losses: tuple[NDArray[np.floating], NDArray[np.floating], NDArray[np.floating]] | None = None,
) -> FeatureFairness:
    """The figures of ``feature``'s groups (``values``: its value on each test record). With ``losses`` (the
    model's loss on each test record, the feature's value on each training record, and the loss there), the
    membership leakage per group too."""
    k = len(class_names)
    grouping = grouping_of(values, feature)
    confusion = confusion_by_group(y_true, y_pred, grouping.codes, len(grouping.labels), k)
    every = rates_from_confusion(confusion)
    judged = every.n >= min_group_size
    reported = tuple(class_names[1:]) if k == 2 else tuple(class_names)
    nan = float("nan")
    if int(judged.sum()) >= 2:
        point = rates_from_confusion(confusion[judged])
        boot = bootstrap_rates(confusion[judged], resamples, rng)
        parity_class: str | None = reported[int(point.worst_class_parity)]
        odds_class: str | None = reported[int(point.worst_class_odds)]

        def disparity(name: str, worst: str | None) -> Disparity:
            value = float(getattr(point, name))
            return Disparity(value, _interval(getattr(boot, name), confidence), worst)

    else:  # nothing to compare
        parity_class = odds_class = None

        def disparity(name: str, worst: str | None) -> Disparity:
            return Disparity(nan, (nan, nan), worst)

    groups = tuple(
        GroupFigures(
            label=label,
            n=int(every.n[i]),
            judged=bool(judged[i]),
            selection_rate=_tuple(every.selection_rate[i]),
            true_positive_rate=_tuple(every.true_positive_rate[i]),
            false_positive_rate=_tuple(every.false_positive_rate[i]),
            accuracy=float(every.accuracy[i]),
        )
        for i, label in enumerate(grouping.labels)
    )
    return FeatureFairness(
        feature=feature.name,
        method=grouping.method,
        classes=reported,
        groups=groups,
        demographic_parity_difference=disparity("demographic_parity_difference", parity_class),
        demographic_parity_ratio=disparity("demographic_parity_ratio", parity_class),
        equalized_odds_difference=disparity("equalized_odds_difference", odds_class),
        equalized_odds_ratio=disparity("equalized_odds_ratio", odds_class),
        accuracy_difference=disparity("accuracy_difference", None),
        membership=None
        if losses is None
        else membership_by_group(
            losses[2],
            grouping.assign(losses[1]),
            losses[0],
            grouping.codes,
            grouping.labels,
            resamples=resamples,
            rng=rng,
            min_group_size=min_group_size,
            confidence=confidence,
        ),
    )


# -- the judgement ---------------------------------------------------------------------------------------------


def severity_of(figures: FeatureFairness) -> tuple[Severity, tuple[str, ...]]:
    """The severity of one feature's disparities and, in words, each rule that set it (none: info)."""
    severity = Severity.INFO
    reasons: list[str] = []
    ratio = figures.demographic_parity_ratio
    if ratio.measured:
        for threshold, level in PARITY_RATIO_THRESHOLDS:
            if ratio.interval[1] < threshold:
                severity = max(severity, level)
                reasons.append(
                    f"the lowest selection rate is {ratio.value:.2f} times the highest (95% interval "
                    f"{ratio.interval[0]:.2f}-{ratio.interval[1]:.2f}), below {threshold:g} even at the interval's "
                    "upper end"
                )
                break
    odds = figures.equalized_odds_difference
    if odds.measured:
        for threshold, level in ODDS_DIFFERENCE_THRESHOLDS:
            if odds.interval[0] > threshold:
                severity = max(severity, level)
                reasons.append(
                    f"true- or false-positive rates differ by {odds.value:.2f} between groups (95% interval "
                    f"{odds.interval[0]:.2f}-{odds.interval[1]:.2f}), above {threshold:g} even at the interval's "
                    "lower end"
                )
                break
    accuracy = figures.accuracy_difference
    threshold, level = ACCURACY_DIFFERENCE_THRESHOLD
    if accuracy.measured and accuracy.interval[0] > threshold:
        severity = max(severity, level)
        reasons.append(
            f"accuracy differs by {accuracy.value:.2f} between groups (95% interval {accuracy.interval[0]:.2f}-"
            f"{accuracy.interval[1]:.2f}), above {threshold:g} even at the interval's lower end"
        )
    return severity, tuple(reasons)


def _loss(proba: NDArray[np.floating], y: NDArray[np.integer]) -> NDArray[np.float64]:
    """Cross-entropy of each record's true class."""
    p = np.asarray(proba, dtype=np.float64)[np.arange(len(y)), np.asarray(y)]
    return np.asarray(-np.log(np.clip(p, 1e-12, 1.0)), dtype=np.float64)


def _json_number(value: float, digits: int = 4) -> JSONValue:
    return round(value, digits) if np.isfinite(value) else None


def feature_finding_id(feature: str, index: int, taken: set[str], *, prefix: str = "fairness") -> str:
    """``prefix.<the feature's name as a slug>``; the slug gets ``-index`` when ``taken`` already holds it."""
    slug = _SLUG.sub("-", feature.lower()).strip("-_") or f"feature-{index}"
    if slug in taken:
        slug = f"{slug}-{index}"
    taken.add(slug)
    return f"{prefix}.{slug}"


def _rate_text(values: tuple[float, ...]) -> str:
    return "/".join("n/a" if not np.isfinite(v) else f"{v:.2f}" for v in values)


class FairnessCheck(Check[FairnessSettings, FairnessMeasurement]):
    """Selection rate, true- and false-positive rates and accuracy per group of each sensitive feature;
    demographic-parity and equalized-odds differences and ratios with bootstrap intervals."""

    name = "fairness"
    title = "Fairness across groups"
    description = (
        "Selection rate, error rates and accuracy per group of each sensitive feature (--sensitive); "
        "demographic-parity and equalized-odds differences and ratios with bootstrap intervals."
    )
    budgets: Mapping[Budget, FairnessSettings] = _BUDGETS

    def unmet(self, target: Target) -> list[str]:
        """Besides the usual requirements: the target must name at least one sensitive feature."""
        reasons = super().unmet(target)
        if not target.sensitive:
            reasons.append(
                "needs sensitive features to compare groups by (--sensitive COLUMN,...), and the target names none"
            )
        return reasons

    def measure(self, context: CheckContext, settings: FairnessSettings) -> FairnessMeasurement:
        """The model's predictions on the test data, grouped by each sensitive feature."""
        target = context.target
        if not target.sensitive:  # the runner skips such targets (unmet)
            raise InvalidParameterError(
                "The fairness check needs at least one sensitive feature.",
                remedy="Name the sensitive features: --sensitive COLUMN,... (or Target(sensitive=...)).",
            )
        test, train, classifier = target.test, target.train, target.classifier
        names = test.schema.names
        flat = test.flat()
        context.progress("predictions on the test data", 0, len(target.sensitive) + 1)
        y_pred = classifier.predict(test.x)
        note = ""
        # for the membership attack per group: the loss on each test record, the training inputs, their loss
        scored: tuple[NDArray[np.float64], NDArray[np.float32], NDArray[np.float64]] | None = None
        if train is None:
            note = "the target has no training data (the members)"
        elif classifier.label_only:
            note = f"{type(classifier).__name__} returns labels only, and the loss attack needs class scores"
        else:
            scored = (
                _loss(classifier.predict_proba(test.x), test.y),
                train.flat(),
                _loss(classifier.predict_proba(train.x), train.y),
            )
        features = []
        for step, name in enumerate(target.sensitive, start=1):
            index = names.index(name)
            losses = None if scored is None else (scored[0], scored[1][:, index], scored[2])
            features.append(
                measure_feature(
                    test.schema.features[index],
                    flat[:, index],
                    test.y,
                    y_pred,
                    test.label_names,
                    resamples=settings.resamples,
                    rng=context.rng,
                    losses=losses,
                )
            )
            context.progress(f"groups of {name}", step, len(target.sensitive) + 1)
        return FairnessMeasurement(
            features=tuple(features),
            records=len(test),
            resamples=settings.resamples,
            n_classes=test.n_classes,
            membership_note=note,
        )

    def judge(self, measurement: FairnessMeasurement) -> Sequence[Finding]:
        """One finding per sensitive feature, ``fairness.<feature>``, its severity from :func:`severity_of`."""
        taken: set[str] = set()
        findings = []
        for i, figures in enumerate(measurement.features):
            finding_id = feature_finding_id(figures.feature, i, taken)
            findings.append(self._finding(measurement, figures, finding_id))
            if figures.membership is not None:
                findings.append(self._membership_finding(measurement, figures, figures.membership, finding_id))
        return findings

    def _membership_finding(
        self, m: FairnessMeasurement, f: FeatureFairness, leakage: MembershipByGroup, finding_id: str
    ) -> Finding:
        severity = membership_severity(leakage)
        gap = leakage.auc_difference
        judged = leakage.judged
        per_group = "; ".join(
            f"{g.label}: AUC {g.auc:.3f} ({g.members} members, {g.non_members} non-members)"
            + ("" if g.judged else " (too small to judge)")
            for g in leakage.groups
        )
        metrics: dict[str, JSONValue] = {
            "feature": f.feature,
            "membership_auc_difference": _json_number(gap.value),
            "membership_auc_difference_interval": [_json_number(v) for v in gap.interval],
            "membership_auc": {g.label: _json_number(g.auc) for g in leakage.groups},
            "groups_judged": len(judged),
            "resamples": m.resamples,
        }
        if len(judged) < 2:
            title = f"Membership leakage per group of {f.feature!r} not compared: too few records per group"
            verdict = f"Fewer than two groups have {m.min_group_size} or more members and non-members."
        else:
            most = max(judged, key=lambda g: g.auc)
            least = min(judged, key=lambda g: g.auc)
            verdict = (
                f"The largest difference between groups is {gap.value:.3f} (95% bootstrap interval "
                f"{gap.interval[0]:.3f}-{gap.interval[1]:.3f}, {m.resamples} resamples)."
            )
            if severity is Severity.INFO:
                title = (
                    f"No group of {f.feature!r} clearly leaks more to membership inference (AUC {least.auc:.2f} "
                    f"to {most.auc:.2f})"
                )
                verdict += " No group leaks clearly more: a difference counts when its whole interval is above 0.05."
            else:
                title = (
                    f"Training records of group {most.label!r} of {f.feature!r} are easier to single out by "
                    f"membership inference (AUC {most.auc:.2f}, against {least.auc:.2f} for {least.label!r})"
                )
                verdict += (
                    f" Even at the interval's lower end it is above "
                    f"{next(t for t, s in MEMBERSHIP_GAP_THRESHOLDS if s is severity):g}: the model has memorised "
                    f"group {most.label!r} more than the others."
                )
        return Finding(
            id=f"{finding_id}.membership",
            check=self.name,
            title=title,
            severity=severity,
            description=(
                f"A loss-threshold membership attack (a record is guessed to be a training record when the model's "
                f"loss on it is low) per group of {f.feature!r}, training records against test records; AUC 0.5 is "
                f"chance. {per_group}. {verdict} The membership check measures the leakage overall."
            ),
            remediation=(
                "Look at how much training data the group has and how noisy its labels are (a small or noisy group "
                "is memorised more); regularise, stop early or train with differential privacy "
                "(`modelshield harden --defense dp-sgd`), then re-run this check."
            ),
            owasp=OwaspMl.ML04,  # membership inference, measured per group
            atlas=_ATLAS_MEMBERSHIP,
            metrics=metrics,
        )

    def _finding(self, m: FairnessMeasurement, f: FeatureFairness, finding_id: str) -> Finding:
        severity, reasons = severity_of(f)
        judged, small = f.judged, [g for g in f.groups if not g.judged]
        metrics: dict[str, JSONValue] = {"feature": f.feature, "grouping": f.method}
        for name in _DISPARITIES:
            d: Disparity = getattr(f, name)
            metrics[name] = _json_number(d.value)
            metrics[name + "_interval"] = [_json_number(v) for v in d.interval]
        metrics["positive_class"] = f.classes[0] if len(f.classes) == 1 else None
        metrics["worst_class"] = f.demographic_parity_ratio.worst_class if len(f.classes) > 1 else None
        metrics["groups_judged"] = len(judged)
        metrics["groups_too_small"] = len(small)
        metrics["records"] = m.records
        metrics["resamples"] = m.resamples
        groups: list[JSONValue] = [
            {
                "group": g.label,
                "n": g.n,
                "judged": g.judged,
                "selection_rate": {c: _json_number(v) for c, v in zip(f.classes, g.selection_rate, strict=True)},
                "true_positive_rate": {
                    c: _json_number(v) for c, v in zip(f.classes, g.true_positive_rate, strict=True)
                },
                "false_positive_rate": {
                    c: _json_number(v) for c, v in zip(f.classes, g.false_positive_rate, strict=True)
                },
                "accuracy": _json_number(g.accuracy),
            }
            for g in f.groups
        ]
        shown = f.classes.index(f.demographic_parity_ratio.worst_class or f.classes[0])
        chart = Chart(
            title=f"Rates per group of {f.feature}"
            + (f" (class {f.classes[shown]} as positive)" if len(f.classes) > 1 else ""),
            kind="bar",
            x=tuple(f"{g.label} (n={g.n})" for g in f.groups),
            series={
                "selection rate": tuple(g.selection_rate[shown] for g in f.groups),
                "true-positive rate": tuple(g.true_positive_rate[shown] for g in f.groups),
                "false-positive rate": tuple(g.false_positive_rate[shown] for g in f.groups),
                "accuracy": tuple(g.accuracy for g in f.groups),
            },
            y_range=(0.0, 1.0),
        )
        positive = (
            f"the positive class is {f.classes[0]!r} (output 1)"
            if len(f.classes) == 1
            else f"each of the {len(f.classes)} classes is taken in turn as the positive one and the worst is shown"
        )
        per_group = "; ".join(
            f"{g.label}: n={g.n}, selected {_rate_text(g.selection_rate)}, true-positive rate "
            f"{_rate_text(g.true_positive_rate)}, false-positive rate {_rate_text(g.false_positive_rate)}, "
            f"accuracy {g.accuracy:.2f}" + ("" if g.judged else " (too small to judge)")
            for g in f.groups
        )
        grouping = (
            "grouped by its values"
            if f.method == "values"
            else f"a continuous feature, cut into {f.method} of the test data"
        )
        small_text = (
            f" Groups with fewer than {m.min_group_size} records are shown but not judged: "
            f"{', '.join(g.label for g in small)}."
            if small
            else ""
        )
        privacy_text = (
            f" Membership leakage per group was not measured: {m.membership_note}." if m.membership_note else ""
        )
        dp, dpr = f.demographic_parity_difference, f.demographic_parity_ratio
        eo, eor, acc = f.equalized_odds_difference, f.equalized_odds_ratio, f.accuracy_difference
        if len(judged) < 2:
            figures_text = (
                f"Fewer than two groups have {m.min_group_size} or more test records, so the groups are not compared."
            )
        else:
            figures_text = (
                f"Across the {len(judged)} judged groups (95% bootstrap intervals, {m.resamples} resamples): "
                f"demographic-parity difference {dp.value:.3f} ({dp.interval[0]:.3f}-{dp.interval[1]:.3f}) and "
                f"ratio {dpr.value:.3f} ({dpr.interval[0]:.3f}-{dpr.interval[1]:.3f}); equalized-odds difference "
                f"{eo.value:.3f} ({eo.interval[0]:.3f}-{eo.interval[1]:.3f}) and ratio {eor.value:.3f} "
                f"({eor.interval[0]:.3f}-{eor.interval[1]:.3f}); accuracy difference {acc.value:.3f} "
                f"({acc.interval[0]:.3f}-{acc.interval[1]:.3f})."
            )
        if severity is Severity.INFO:
            verdict = (
                " No disparity is clear beyond sampling noise: a disparity counts when its whole interval is past "
                "the threshold (selection-rate ratio below 0.8, error-rate difference above 0.1, accuracy "
                "difference above 0.1)."
            )
            if len(judged) < 2:
                title = f"Groups of {f.feature!r} not compared: too few records per group"
            else:
                title = (
                    f"No clear disparity between groups of {f.feature!r} (selection-rate ratio {dpr.value:.2f}, "
                    f"error-rate difference {eo.value:.2f})"
                )
        else:
            verdict = " The model treats the groups differently: " + "; ".join(reasons) + "."
            title = (
                f"The model treats groups of {f.feature!r} differently (selection-rate ratio {dpr.value:.2f}, "
                f"error-rate difference {eo.value:.2f})"
            )
        return Finding(
            id=finding_id,
            check=self.name,
            title=title,
            severity=severity,
            description=(
                f"The model's predictions on {m.records} test records, by sensitive feature {f.feature!r} "
                f"({grouping}); {positive}. {per_group}. {figures_text}{verdict}{small_text}{privacy_text} Which "
                "disparity matters, and how much, depends on how the model is used."
            ),
            remediation=(
                "Find where the gap comes from: how each group is represented in the training data, whether its "
                "labels are as reliable, and which features stand in for the sensitive one. Then mitigate (more or "
                "reweighted data for the disadvantaged group, per-group decision thresholds, or training under a "
                "fairness constraint, as fairlearn's ThresholdOptimizer and ExponentiatedGradient do) and re-run "
                "this check. Decide with domain and legal experts which disparity matters for this use."
            ),
            # OWASP ML08 (Model Skewing) is an attacker skewing the training data; a disparity may come from that,
            # but far more often from the data and the design, and this check cannot tell which. No OWASP ML Top 10
            # category covers unfair outcomes as such, and no MITRE ATLAS technique either: both left empty.
            owasp=None,
            atlas=(),
            metrics=metrics,
            evidence={"groups": groups},
            charts=(chart,),
        )


FAIRNESS = FairnessCheck()
