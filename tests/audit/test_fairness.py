"""The ``fairness`` check: a bias injected by construction is reported, and its figures equal fairlearn's on the
same predictions; the same data without the bias gives no finding above info; the bootstrap intervals cover the
truth; unknown sensitive columns are refused (library and CLI); a target without sensitive features is skipped
with the reason; a tiny group is shown but not judged; the judge's thresholds at their boundaries."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from modelshield.audit import AuditOptions, Auditor
from modelshield.audit.checks.fairness import (
    FAIRNESS,
    Disparity,
    FairnessMeasurement,
    FeatureFairness,
    GroupFigures,
    group_rates,
    grouping_of,
    measure_feature,
    membership_by_group,
    membership_severity,
    severity_of,
)
from modelshield.audit.interface import Budget, CheckContext
from modelshield.cli import main
from modelshield.data.interface import Dataset, Feature, FeatureKind, Schema
from modelshield.errors import InvalidInputError
from modelshield.findings import CheckStatus, Finding, Severity
from modelshield.models import SklearnClassifier
from modelshield.target import Target

SCHEMA = Schema(
    features=(Feature("group", FeatureKind.BINARY, 0.0, 1.0), Feature("x1"), Feature("x2")),
    input_shape=(3,),
    label="approved",
)
LABELS = ("denied", "approved")
DISPARITIES = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
)


def loans(n: int, seed: int, *, bias: float) -> Dataset:
    """Applicants in two groups (40% in group 1) with two merit features; approval depends on merit and, with
    ``bias`` > 0, on the group too: group 1's log-odds are lowered by ``bias``."""
    rng = np.random.default_rng(seed)
    group = (rng.random(n) < 0.4).astype(np.float32)
    x1, x2 = rng.normal(size=(2, n)).astype(np.float32)
    logit = 1.5 * x1 - x2 - bias * group
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return Dataset(x=np.stack([group, x1, x2], axis=1), y=y, schema=SCHEMA, label_names=LABELS, name="loans")


def loan_target(seed: int, *, bias: float, sensitive: tuple[str, ...] = ("group",)) -> Target:
    train, test = loans(1500, seed, bias=bias), loans(800, seed + 1000, bias=bias)
    model = LogisticRegression(max_iter=500).fit(train.x, train.y)
    return Target("loans", SklearnClassifier(model), test, train=train, sensitive=sensitive)


def run(target: Target, seed: int = 0) -> list[Finding]:
    context = CheckContext(target=target, budget=Budget.QUICK, seed=seed, rng=np.random.default_rng(seed))
    return FAIRNESS.run(context)


# -- a bias by construction, against fairlearn --------------------------------------------------------------------
def test_an_injected_bias_is_reported_with_fairlearns_figures() -> None:
    target = loan_target(0, bias=2.0)
    context = CheckContext(target=target, budget=Budget.QUICK, seed=0, rng=np.random.default_rng(0))
    measurement = FAIRNESS.measure(context, FAIRNESS.settings(Budget.QUICK))
    finding, membership = FAIRNESS.judge(measurement)
    assert (finding.id, membership.id) == ("fairness.group", "fairness.group.membership")
    assert finding.severity >= Severity.MEDIUM
    assert finding.metrics["demographic_parity_ratio_interval"][1] < 0.8  # type: ignore[index]
    assert finding.metrics["positive_class"] == "approved"

    fairlearn = pytest.importorskip("fairlearn.metrics")
    test = target.test
    pred = target.classifier.predict(test.x)
    groups = test.x[:, 0]
    (figures,) = measurement.features
    for name in DISPARITIES:
        theirs = float(getattr(fairlearn, name)(test.y, pred, sensitive_features=groups))
        ours = getattr(figures, name).value
        assert ours == pytest.approx(theirs, abs=1e-12), name
        assert finding.metrics[name] == round(theirs, 4)
    frame = fairlearn.MetricFrame(
        metrics={"selection_rate": fairlearn.selection_rate, "accuracy": lambda y, p: float(np.mean(y == p))},
        y_true=test.y,
        y_pred=pred,
        sensitive_features=groups,
    )
    for group in figures.groups:
        row = frame.by_group.loc[float(group.label)]
        assert group.selection_rate[0] == pytest.approx(row["selection_rate"], abs=1e-12)
        assert group.accuracy == pytest.approx(row["accuracy"], abs=1e-12)
    assert figures.accuracy_difference.value == pytest.approx(frame.difference()["accuracy"], abs=1e-12)


def test_multi_class_disparities_are_the_worst_class_one_versus_the_rest() -> None:
    fairlearn = pytest.importorskip("fairlearn.metrics")
    rng = np.random.default_rng(3)
    n, k = 900, 3
    groups = rng.integers(0, 3, n)
    y = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < 0.6 + 0.1 * groups, y, rng.integers(0, k, n))
    rates = group_rates(y, pred, groups, n_groups=3, n_classes=k)
    for name, worst in (
        ("demographic_parity_difference", max),
        ("demographic_parity_ratio", min),
        ("equalized_odds_difference", max),
        ("equalized_odds_ratio", min),
    ):
        per_class = [float(getattr(fairlearn, name)(y == c, pred == c, sensitive_features=groups)) for c in range(k)]
        assert float(getattr(rates, name)) == pytest.approx(worst(per_class), abs=1e-12), name


# -- no bias, no finding -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_without_the_bias_there_is_no_finding_above_info(seed: int) -> None:
    finding, membership = run(loan_target(seed, bias=0.0), seed)
    assert finding.severity is Severity.INFO, finding.description
    assert membership.severity is Severity.INFO, membership.description
    assert finding.metrics["groups_judged"] == 2
    assert finding.title.startswith("No clear disparity")


# -- the intervals cover the truth ----------------------------------------------------------------------------
def test_bootstrap_intervals_cover_the_true_disparities() -> None:
    """Two groups of 300 with known true- and false-positive rates, half of each group positive: the true
    demographic-parity difference is 0.5 * |0.2 + 0.05| and the equalized-odds difference max(0.2, 0.05)."""
    tpr, fpr = np.array([0.8, 0.6]), np.array([0.2, 0.15])
    true_dp = abs(0.5 * (tpr[0] + fpr[0]) - 0.5 * (tpr[1] + fpr[1]))
    true_eo = max(abs(tpr[0] - tpr[1]), abs(fpr[0] - fpr[1]))
    feature = Feature("group", FeatureKind.BINARY)
    covered = np.zeros(2, dtype=int)
    runs = 40
    for i in range(runs):
        rng = np.random.default_rng(100 + i)
        groups = np.repeat([0, 1], 300)
        y = (rng.random(600) < 0.5).astype(np.int64)
        pred = (rng.random(600) < np.where(y == 1, tpr[groups], fpr[groups])).astype(np.int64)
        figures = measure_feature(feature, groups.astype(float), y, pred, LABELS, resamples=500, rng=rng)
        for j, (disparity, truth) in enumerate(
            ((figures.demographic_parity_difference, true_dp), (figures.equalized_odds_difference, true_eo))
        ):
            covered[j] += disparity.interval[0] <= truth <= disparity.interval[1]
    assert (covered / runs >= 0.85).all(), covered


# -- groups ---------------------------------------------------------------------------------------------------
def biased_predictions(sizes: tuple[int, ...], selection: tuple[float, ...], seed: int = 0) -> tuple[NDArray, ...]:
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(len(sizes)), sizes)
    y = rng.integers(0, 2, len(groups))
    pred = (rng.random(len(groups)) < np.asarray(selection)[groups]).astype(np.int64)
    return groups, y, pred


def test_a_tiny_group_is_shown_but_not_judged() -> None:
    # group 2 has 10 records, all selected: judged, it would make the demographic-parity ratio tiny
    groups, y, pred = biased_predictions((200, 200, 10), (0.5, 0.5, 1.0))
    figures = measure_feature(
        Feature("region", FeatureKind.CATEGORICAL, categories=("north", "south", "islands")),
        groups.astype(float),
        y,
        pred,
        LABELS,
        resamples=200,
        rng=np.random.default_rng(0),
    )
    assert [(g.label, g.n, g.judged) for g in figures.groups] == [
        ("north", 200, True),
        ("south", 200, True),
        ("islands", 10, False),
    ]
    assert figures.groups[2].selection_rate == (1.0,)
    two = group_rates(y[groups < 2], pred[groups < 2], groups[groups < 2], n_groups=2, n_classes=2)
    assert figures.demographic_parity_ratio.value == pytest.approx(float(two.demographic_parity_ratio))
    measurement = FairnessMeasurement(features=(figures,), records=len(y), resamples=200, n_classes=2)
    (finding,) = FAIRNESS.judge(measurement)
    assert finding.severity is Severity.INFO
    assert finding.metrics["groups_too_small"] == 1
    assert "not judged: islands" in finding.description


def test_a_continuous_feature_is_cut_into_quantile_bins() -> None:
    rng = np.random.default_rng(0)
    age = rng.uniform(18, 80, 800)
    y = rng.integers(0, 2, 800)
    pred = (rng.random(800) < np.where(age < 40, 0.2, 0.6)).astype(np.int64)  # the young are rarely selected
    figures = measure_feature(Feature("age"), age, y, pred, LABELS, resamples=300, rng=rng)
    assert figures.method == "4 quantile bins"
    assert [g.n for g in figures.groups] == [200, 200, 200, 200]
    assert figures.groups[0].label.startswith("[18.") and figures.groups[-1].label.endswith("]")
    grouping = grouping_of(age, Feature("age"))  # training records fall into the same bins, outliers at the ends
    assert (grouping.assign(age) == grouping.codes).all()
    assert grouping.assign(np.array([0.0, 100.0])).tolist() == [0, 3]
    by_value = grouping_of(np.array([0.0, 1.0, 2.0, 1.0]), Feature("region"))
    assert by_value.assign(np.array([2.0, 5.0, 0.0])).tolist() == [2, -1, 0]  # a value the test data lacks: none
    measurement = FairnessMeasurement(features=(figures,), records=800, resamples=300, n_classes=2)
    (finding,) = FAIRNESS.judge(measurement)
    assert finding.severity >= Severity.MEDIUM
    assert "4 quantile bins" in finding.description


def test_fewer_than_two_judged_groups_are_not_compared() -> None:
    groups, y, pred = biased_predictions((300, 12), (0.5, 0.0))
    figures = measure_feature(
        Feature("group", FeatureKind.BINARY),
        groups.astype(float),
        y,
        pred,
        LABELS,
        resamples=100,
        rng=np.random.default_rng(0),
    )
    assert math.isnan(figures.demographic_parity_ratio.value)
    (finding,) = FAIRNESS.judge(FairnessMeasurement(features=(figures,), records=312, resamples=100, n_classes=2))
    assert finding.severity is Severity.INFO
    assert finding.metrics["demographic_parity_ratio"] is None
    assert "not compared" in finding.title


# -- privacy per group -------------------------------------------------------------------------------------------
def test_a_group_the_model_memorises_leaks_more_to_membership_inference() -> None:
    """Group 1's labels are noisy: a forest that fits every training record memorises them, so its loss separates
    group 1's training records from its test records far better than group 0's."""
    from sklearn.ensemble import RandomForestClassifier

    def noisy(n: int, seed: int) -> Dataset:
        clean = loans(n, seed, bias=0.0)
        rng = np.random.default_rng(seed + 7)
        flip = (clean.x[:, 0] == 1) & (rng.random(n) < 0.3)
        return Dataset(x=clean.x, y=np.where(flip, 1 - clean.y, clean.y), schema=SCHEMA, label_names=LABELS)

    train, test = noisy(1000, 0), noisy(800, 1)
    model = RandomForestClassifier(n_estimators=30, random_state=0).fit(train.x, train.y)
    target = Target("forest", SklearnClassifier(model), test, train=train, sensitive=("group",))
    _, membership = run(target)
    assert membership.severity >= Severity.LOW, membership.description
    auc = membership.metrics["membership_auc"]
    assert auc["1"] > auc["0"] + 0.05  # type: ignore[index,operator]
    assert membership.owasp is not None and membership.owasp.value == "ML04"


def test_membership_by_group_is_info_when_the_groups_leak_alike() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat([0, 1], 400)
    member_loss = rng.exponential(0.5, 800)  # members: lower loss, alike in both groups
    non_member_loss = rng.exponential(0.8, 800)
    leakage = membership_by_group(member_loss, groups, non_member_loss, groups, ("a", "b"), resamples=300, rng=rng)
    assert membership_severity(leakage) is Severity.INFO
    assert all(0.55 < g.auc < 0.7 for g in leakage.groups)
    leaky = membership_by_group(
        np.where(groups == 1, member_loss / 4, member_loss), groups, non_member_loss, groups, ("a", "b"),
        resamples=300, rng=rng,
    )  # fmt: skip
    assert membership_severity(leaky) >= Severity.LOW
    assert leaky.groups[1].auc > leaky.groups[0].auc


def test_without_training_data_membership_per_group_is_not_measured_and_says_why() -> None:
    target = loan_target(0, bias=0.0)
    (finding,) = run(Target("loans", target.classifier, target.test, sensitive=("group",)))
    assert "Membership leakage per group was not measured: the target has no training data" in finding.description


# -- the judge at its thresholds -----------------------------------------------------------------------------------
def figures_with(*, ratio_high: float = 1.0, odds_low: float = 0.0, accuracy_low: float = 0.0) -> FeatureFairness:
    group = GroupFigures("a", 100, True, (0.5,), (0.5,), (0.5,), 0.5)
    return FeatureFairness(
        feature="group",
        method="values",
        classes=("approved",),
        groups=(group, GroupFigures("b", 100, True, (0.5,), (0.5,), (0.5,), 0.5)),
        demographic_parity_difference=Disparity(0.1, (0.0, 0.2), "approved"),
        demographic_parity_ratio=Disparity(ratio_high - 0.05, (ratio_high - 0.1, ratio_high), "approved"),
        equalized_odds_difference=Disparity(odds_low + 0.05, (odds_low, odds_low + 0.1), "approved"),
        equalized_odds_ratio=Disparity(0.9, (0.8, 1.0), "approved"),
        accuracy_difference=Disparity(accuracy_low + 0.05, (accuracy_low, accuracy_low + 0.1)),
    )


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, Severity.INFO),
        ({"ratio_high": 0.81}, Severity.INFO),
        ({"ratio_high": 0.79}, Severity.MEDIUM),
        ({"ratio_high": 0.49}, Severity.HIGH),
        ({"odds_low": 0.09}, Severity.INFO),
        ({"odds_low": 0.11}, Severity.MEDIUM),
        ({"odds_low": 0.21}, Severity.HIGH),
        ({"accuracy_low": 0.11}, Severity.LOW),
        ({"accuracy_low": 0.11, "odds_low": 0.11}, Severity.MEDIUM),
    ],
)
def test_severity_thresholds(kwargs: dict[str, float], expected: Severity) -> None:
    severity, reasons = severity_of(figures_with(**kwargs))
    assert severity is expected
    assert bool(reasons) is (expected is not Severity.INFO)


# -- what the target and the CLI accept --------------------------------------------------------------------------
def test_an_unknown_sensitive_feature_is_refused_naming_the_features() -> None:
    with pytest.raises(InvalidInputError) as err:
        loan_target(0, bias=0.0, sensitive=("gender",))
    assert "'gender'" in str(err.value)
    assert "group, x1, x2" in str(err.value)


def test_a_target_without_sensitive_features_is_skipped_with_the_reason() -> None:
    report = Auditor(AuditOptions(checks=("fairness",))).run(loan_target(0, bias=2.0, sensitive=()))
    (check,) = report.checks
    assert check.status is CheckStatus.SKIPPED
    assert "sensitive features" in check.reason and "--sensitive" in check.reason
    assert report.findings == ()


@pytest.mark.parametrize(("bias", "passed"), [(2.0, False), (0.0, True)])
def test_a_release_policy_bounds_the_parity_ratio(bias: float, passed: bool) -> None:
    from modelshield.audit.policy import ReleasePolicy

    policy = ReleasePolicy.from_toml(
        'fail_on = "critical"\n[[rule]]\ncheck = "fairness"\nmetric = "demographic_parity_ratio"\nmin = 0.8\n'
    )
    report = Auditor(AuditOptions(checks=("fairness",))).run(loan_target(0, bias=bias))
    (rule,) = [r for r in policy.evaluate(report).rules if "demographic_parity_ratio" in r.rule]
    assert rule.passed is passed, rule.message


def test_fairness_runs_in_a_plain_audit() -> None:
    assert FAIRNESS.default
    assert "fairness" in [c.name for c in Auditor(AuditOptions()).registry.select(None)]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    from skops.io import dump

    train, test = loans(1500, 0, bias=2.0), loans(800, 1, bias=2.0)
    dump(LogisticRegression(max_iter=500).fit(train.x, train.y), tmp_path / "model.skops")
    frame = pd.DataFrame(test.x, columns=list(SCHEMA.names)).assign(approved=test.y)
    frame.to_csv(tmp_path / "test.csv", index=False)
    return {"model": tmp_path / "model.skops", "data": tmp_path / "test.csv"}


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """Standard error of a refused command: one line, ``error: ...``, no traceback."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    return err


def audit(model: Path, data: Path, *extra: str) -> list[str]:
    return ["audit", "--model", str(model), "--data", str(data), "--label", "approved", "--checks", "fairness",
            "--format", "json", *extra]  # fmt: skip


def test_cli_sensitive_reports_the_disparity(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(audit(files["model"], files["data"], "--sensitive", "group", "--fail-on", "medium")) == 1
    report = json.loads(capsys.readouterr().out)
    (finding,) = report["findings"]
    assert finding["id"] == "fairness.group"
    assert finding["severity"] in ("medium", "high")


@pytest.mark.parametrize(
    ("sensitive", "expected"),
    [("gender", "'gender' is not a feature"), ("group,", "names an empty column")],
)
def test_cli_refuses_bad_sensitive_columns_before_loading_the_model(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], sensitive: str, expected: str
) -> None:
    missing = tmp_path / "no-such-model.skops"  # never read: the columns are checked first
    assert main(audit(missing, files["data"], "--sensitive", sensitive)) == 2
    line = one_error_line(capsys)
    assert expected in line
    if sensitive == "gender":
        assert "group, x1, x2" in line
