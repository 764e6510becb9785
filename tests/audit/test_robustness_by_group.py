"""Robustness per group of a sensitive feature (the evasion check's ``evasion.by-group.<feature>`` findings): the
bootstrap on hand-made outcomes, and ground truth on data built so that one group sits near the decision boundary
(and a control where the groups are alike: no finding)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelshield.audit import AuditOptions, Auditor
from modelshield.audit.checks.fairness import Grouping, robustness_by_group, robustness_severity
from modelshield.data.interface import Dataset, Feature, FeatureKind, Schema
from modelshield.errors import InvalidParameterError
from modelshield.findings import Finding, Severity
from modelshield.models import SklearnClassifier
from modelshield.target import Target

SCHEMA = Schema(
    features=(Feature("group", FeatureKind.BINARY, 0.0, 1.0), Feature("x1"), Feature("x2")),
    input_shape=(3,),
    label="approved",
)
TWO = Grouping(codes=np.zeros(0, np.int64), labels=("a", "b"), method="values", levels=np.array([0.0, 1.0]))


def outcomes(n: int, clean: float, robust: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` records, the first ``clean`` share right, the first ``robust`` share still right under attack."""
    correct = np.arange(n) < round(clean * n)
    return correct, np.arange(n) < round(robust * n)


@pytest.mark.parametrize(("loss_b", "expected"), [(0.15, Severity.INFO), (0.3, Severity.LOW), (0.45, Severity.MEDIUM)])
def test_the_gap_in_accuracy_lost_is_judged_at_its_intervals_lower_end(loss_b: float, expected: Severity) -> None:
    a = outcomes(400, 0.9, 0.8)  # group a loses 0.1
    b = outcomes(400, 0.9, 0.9 - loss_b)
    result = robustness_by_group(
        np.concatenate([a[0], b[0]]),
        np.concatenate([a[1], b[1]]),
        TWO,
        np.repeat([0, 1], 400),
        feature="group",
        eps="0.25",
        resamples=500,
        rng=np.random.default_rng(0),
    )
    assert [g.loss for g in result.groups] == pytest.approx([0.1, loss_b])
    gap = result.loss_difference
    assert gap.value == pytest.approx(loss_b - 0.1) and gap.interval[0] < gap.interval[1]
    # 400 records a group: the interval spans about 0.1 around the gap (a range's bootstrap leans upward)
    assert gap.interval[0] > gap.value - 0.1 and gap.interval[1] < gap.value + 0.1
    assert robustness_severity(result) is expected


def test_small_groups_are_shown_not_judged_and_bad_outcomes_are_refused() -> None:
    correct, robust = outcomes(50, 1.0, 0.5)
    result = robustness_by_group(correct, robust, TWO, np.array([0] * 40 + [1] * 10), feature="g", eps="0.25",
                                 resamples=100, rng=np.random.default_rng(0))  # fmt: skip
    assert [g.judged for g in result.groups] == [True, False]
    assert not result.loss_difference.measured and robustness_severity(result) is Severity.INFO
    with pytest.raises(InvalidParameterError, match="robustly correct without being correct"):
        robustness_by_group(np.zeros(4, bool), np.ones(4, bool), TWO, np.zeros(4, np.int64), feature="g", eps="1",
                            resamples=10, rng=np.random.default_rng(0))  # fmt: skip


def applicants(n: int, seed: int, *, near: float) -> Dataset:
    """Two groups (40% in group 1); approval is 1.5 x1 - x2 > 0 for both. Group 1's merit features have standard
    deviation ``near`` (group 0's: 1): with ``near`` < 1 its records sit closer to the decision boundary, so a small
    change flips more of them."""
    rng = np.random.default_rng(seed)
    group = (rng.random(n) < 0.4).astype(np.float32)
    x1, x2 = rng.normal(size=(2, n)).astype(np.float32) * np.where(group == 1, near, 1.0).astype(np.float32)
    y = (1.5 * x1 - x2 > 0).astype(np.int64)
    return Dataset(np.stack([group, x1, x2], axis=1), y, SCHEMA, label_names=("denied", "approved"), name="loans")


def by_group_finding(near: float) -> Finding:
    train, test = applicants(1500, 0, near=near), applicants(800, 1, near=near)
    model = LogisticRegression(max_iter=500).fit(train.x, train.y)
    target = Target("loans", SklearnClassifier(model), test, train=train, sensitive=("group",))
    report = Auditor(AuditOptions(checks=("evasion",), seed=0)).run(target)
    return next(f for f in report.findings if f.id == "evasion.by-group.group")


def test_a_group_near_the_boundary_loses_more_accuracy_under_attack() -> None:
    finding = by_group_finding(near=0.3)
    assert finding.severity >= Severity.LOW, finding.description
    groups = {g["group"]: g for g in finding.metrics["groups"]}  # type: ignore[union-attr, index]
    lost = {k: g["clean_accuracy"] - g["robust_accuracy"] for k, g in groups.items()}  # type: ignore[operator]
    assert lost["1"] > lost["0"] + 0.1, lost
    assert "Adversarial inputs take more accuracy from group '1' of 'group'" in finding.title


def test_groups_alike_give_no_finding() -> None:
    finding = by_group_finding(near=1.0)
    assert finding.severity is Severity.INFO, finding.description
    assert finding.title.startswith("No group of 'group' clearly loses more accuracy")
