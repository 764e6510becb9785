"""The ``baseline`` check's judge on hand-made measurements: the generalisation-gap boundaries (accuracy gap and
the loss rule), the performance finding, and the settings each budget buys."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from modelshield.audit.checks.baseline import (
    BASELINE,
    GAP_THRESHOLDS,
    LOSS_GAP_LOW,
    BaselineMeasurement,
    BaselineSettings,
    TrainFit,
    gap_severity,
)
from modelshield.audit.interface import Budget
from modelshield.findings import Finding, Severity


def measurement(
    *, test_accuracy: float = 0.5, test_loss: float = 0.7, train: TrainFit | None = None
) -> BaselineMeasurement:
    return BaselineMeasurement(
        test_accuracy=test_accuracy,
        balanced_accuracy=0.5,
        expected_calibration_error=0.031,
        test_loss=test_loss,
        test_samples=400,
        recall=(0.75, 0.25, math.nan),
        label_names=("a", "b", "c"),
        train=train,
    )


def gap_finding(findings: Sequence[Finding]) -> Finding | None:
    return next((f for f in findings if f.id == "baseline.generalization-gap"), None)


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        (0.3, Severity.MEDIUM),
        (0.15, Severity.MEDIUM),  # at the medium limit
        (0.1499, Severity.LOW),
        (0.05, Severity.LOW),  # at the low limit
        (0.0499, None),
        (0.0, None),
    ],
)
def test_accuracy_gap_boundaries(gap: float, expected: Severity | None) -> None:
    # the same mean loss on both sides, so only the accuracy gap can raise the finding
    assert gap_severity(gap, train_loss=0.7, test_loss=0.7) is expected
    # through the judge, with exact arithmetic: test accuracy 0, train accuracy the gap
    finding = gap_finding(BASELINE.judge(measurement(test_accuracy=0.0, train=TrainFit(gap, 0.7, 400))))
    assert (finding.severity if finding else None) is expected
    if finding is not None:
        assert finding.metrics["accuracy_gap"] == gap
        assert finding.owasp is not None and finding.owasp.value == "ML04"


@pytest.mark.parametrize(
    ("train_loss", "test_loss", "expected"),
    [
        (0.05, 0.25, Severity.LOW),  # loss gap 0.2, test loss 5x: the confident fit of members alone
        (0.0, 0.1, Severity.LOW),  # at the loss-gap limit
        (0.0, 0.0999, None),  # just below it
        (0.2, 0.4, Severity.LOW),  # exactly twofold
        (0.2, 0.3999, None),  # gap 0.1999 but less than twofold
        (0.5, 0.9, None),  # a large gap, but not twofold
    ],
)
def test_loss_rule_boundaries(train_loss: float, test_loss: float, expected: Severity | None) -> None:
    assert gap_severity(0.0, train_loss=train_loss, test_loss=test_loss) is expected
    m = measurement(test_accuracy=0.8, test_loss=test_loss, train=TrainFit(0.8, train_loss, 400))
    finding = gap_finding(BASELINE.judge(m))
    assert (finding.severity if finding else None) is expected


def test_accuracy_gap_outranks_the_loss_rule() -> None:
    assert gap_severity(0.2, train_loss=0.0, test_loss=5.0) is Severity.MEDIUM
    assert gap_severity(0.06, train_loss=0.0, test_loss=5.0) is Severity.LOW


def test_thresholds_are_the_documented_ones() -> None:
    assert GAP_THRESHOLDS == ((0.15, Severity.MEDIUM), (0.05, Severity.LOW))
    assert LOSS_GAP_LOW == 0.1


def test_performance_finding_without_training_data() -> None:
    (finding,) = BASELINE.judge(measurement(test_accuracy=0.875))
    assert (finding.id, finding.severity, finding.check) == ("baseline.performance", Severity.INFO, "baseline")
    assert finding.title == "Clean test accuracy 87.5%"
    assert dict(finding.metrics) == {
        "test_accuracy": 0.875,
        "balanced_accuracy": 0.5,
        "expected_calibration_error": 0.031,
        "test_loss": 0.7,
        "test_samples": 400,
    }
    (chart,) = finding.charts
    assert chart.x == ("a", "b", "c") and chart.series["recall"][:2] == (0.75, 0.25)


def test_performance_finding_with_training_data_reports_the_fit() -> None:
    m = measurement(test_accuracy=0.75, test_loss=0.6, train=TrainFit(accuracy=0.875, loss=0.2, samples=300))
    performance, gap = BASELINE.judge(m)
    assert performance.metrics["train_accuracy"] == 0.875
    assert performance.metrics["accuracy_gap"] == 0.125
    assert performance.metrics["train_samples"] == 300
    assert gap.severity is Severity.LOW
    assert dict(gap.metrics) == {"accuracy_gap": 0.125, "loss_gap": 0.39999999999999997, "train_loss": 0.2,
                                 "test_loss": 0.6}  # fmt: skip


def test_budgets_buy_todays_figures() -> None:
    assert dict(BASELINE.budgets) == {
        Budget.QUICK: BaselineSettings(samples=1000),
        Budget.STANDARD: BaselineSettings(samples=5000),
        Budget.THOROUGH: BaselineSettings(samples=50_000),
    }
