"""Regressions between two reports: severity changes, metrics judged against their intervals, findings gone."""

from __future__ import annotations

from modelshield.audit.diff import diff_reports
from modelshield.findings import CheckRun, CheckStatus, Finding, JSONValue, Report, Severity, TargetInfo


def _finding(fid: str, severity: Severity = Severity.INFO, **metrics: JSONValue) -> Finding:
    return Finding(id=fid, check=fid.partition(".")[0], title=fid, severity=severity, description="d", metrics=metrics)


def _report(*findings: Finding, sha: str = "00" * 32, checks: tuple[str, ...] = ("baseline", "membership")) -> Report:
    return Report(
        target=TargetInfo("zoo:t", "skops", sha, 2, (4,), "SklearnClassifier", False),
        findings=findings,
        checks=tuple(CheckRun(c, CheckStatus.PASSED, 0.1) for c in checks),
        seed=0,
        budget="quick",
        started_at="2026-01-01T00:00:00+00:00",
        duration_s=1.0,
        versions={"modelshield": "0"},
    )


def _leak(tpr: float, low: float, high: float, severity: Severity = Severity.INFO) -> Finding:
    return _finding("membership.leakage", severity, **{"tpr_at_0.1%_fpr": tpr, "tpr_at_0.1%_fpr_interval": [low, high]})


def test_the_same_report_has_no_regression() -> None:
    report = _report(_leak(0.01, 0.0, 0.02), _finding("baseline.performance", test_accuracy=0.9))
    diff = diff_reports(report, report)
    assert not diff.regressed
    assert {f.change for f in diff.findings} == {"same"}
    assert diff.metrics == ()
    assert diff.notes == ()


def test_a_new_or_worse_finding_is_a_regression_and_a_gone_one_is_not() -> None:
    old = _report(_finding("baseline.gap", Severity.LOW), _finding("membership.old", Severity.HIGH))
    new = _report(_finding("baseline.gap", Severity.HIGH), _finding("baseline.new", Severity.MEDIUM))
    changes = {f.id: f for f in diff_reports(old, new).findings}
    assert (changes["baseline.gap"].change, changes["baseline.gap"].regression) == ("worse", True)
    assert (changes["baseline.new"].change, changes["baseline.new"].regression) == ("new", True)
    assert (changes["membership.old"].change, changes["membership.old"].regression) == ("gone", False)
    better = {f.id: f.change for f in diff_reports(new, old).findings}
    assert better["baseline.gap"] == "better"


def test_a_new_info_finding_is_no_regression() -> None:
    assert not diff_reports(_report(), _report(_finding("signature.verified"))).regressed


def test_a_metric_is_a_regression_only_beyond_its_interval() -> None:
    old = _report(_leak(0.01, 0.0, 0.02))
    within = diff_reports(old, _report(_leak(0.015, 0.005, 0.03)))
    (change,) = within.metrics
    assert (change.worse, change.judged, change.beyond_noise, change.regression) == (True, True, False, False)
    beyond = diff_reports(old, _report(_leak(0.2, 0.15, 0.25)))
    (change,) = beyond.metrics
    assert change.regression
    assert beyond.regressed
    assert change.to_dict()["old_interval"] == [0.0, 0.02]


def test_a_metric_without_an_interval_is_shown_but_not_judged() -> None:
    old = _report(_finding("baseline.performance", test_accuracy=0.95, test_samples=100))
    new = _report(_finding("baseline.performance", test_accuracy=0.5, test_samples=120))
    diff = diff_reports(old, new)
    (change,) = diff.metrics  # test_samples: a count, no direction, left out
    assert (change.metric, change.worse, change.judged, change.regression) == ("test_accuracy", True, False, False)
    assert not diff.regressed


def test_table_rows_keep_the_direction_of_their_metric() -> None:
    old = _report(_finding("evasion.robust-accuracy", robust_accuracy={"0.1": 0.9, "0.25": 0.7}))
    new = _report(_finding("evasion.robust-accuracy", robust_accuracy={"0.1": 0.95, "0.25": 0.5}))
    changes = {m.metric: m.worse for m in diff_reports(old, new).metrics}
    assert changes == {"robust_accuracy[0.1]": False, "robust_accuracy[0.25]": True}


def test_notes_for_other_models_and_checks_that_did_not_run() -> None:
    old = _report(_finding("membership.leakage", Severity.LOW))
    new = _report(sha="11" * 32, checks=("baseline",))
    diff = diff_reports(old, new)
    assert any("different models" in n for n in diff.notes)
    (gone,) = diff.findings
    assert "did not run" in gone.note
    assert diff.to_dict()["regressed"] is False
