"""Release policies: reading TOML (every mistake one message naming the key and the fix), and judging reports."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from modelshield.audit.policy import ReleasePolicy
from modelshield.errors import FileFormatError
from modelshield.findings import CheckRun, CheckStatus, Finding, JSONValue, PolicyResult, Report, Severity, TargetInfo
from modelshield.reporting import load_report_schema

KEY = "ab" * 32


def _finding(fid: str, severity: Severity = Severity.INFO, **metrics: JSONValue) -> Finding:
    return Finding(id=fid, check=fid.partition(".")[0], title=fid, severity=severity, description="d", metrics=metrics)


@pytest.fixture
def make_report() -> Callable[..., Report]:
    def make(*findings: Finding, checks: tuple[CheckRun, ...] | None = None) -> Report:
        return Report(
            target=TargetInfo("zoo:t", "skops", "00" * 32, 2, (4,), "SklearnClassifier", False),
            findings=findings,
            checks=checks or tuple(CheckRun(c, CheckStatus.PASSED, 0.1) for c in ("baseline", "evasion")),
            seed=0,
            budget="quick",
            started_at="2026-01-01T00:00:00+00:00",
            duration_s=1.0,
            versions={"modelshield": "0"},
        )

    return make


def _error(text: str) -> str:
    with pytest.raises(FileFormatError) as info:
        ReleasePolicy.from_toml(text, source="policy.toml")
    return f"{info.value.message} || {info.value.cli_remedy}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('max_severity = "medium"', ["unknown key 'max_severity'", "Did you mean 'fail_on'", "fail_on, "]),
        ('fail_on = "severe"', ["fail_on", "info, low, medium, high, critical"]),
        ('[[rule]]\nfinding = "a.b"\nmetrc = "x"\nmin = 1', ["unknown key 'metrc' in [[rule]] #1", "'metric'"]),
        ('[[rule]]\nfinding = "a.b"\nmetric = "x"', ["[[rule]] #1", "min = ... or max = ..."]),
        ('[[rule]]\nfinding = "a.b"\ncheck = "a"\nmetric = "x"\nmin = 1', ["exactly one of finding"]),
        ('[[rule]]\ncheck = "a"\nmetric = "x"\nmin = 2\nmax = 1', ["min (2) is above max (1)"]),
        ('trusted_keys = ["abc"]', ["trusted_keys", "64 hex digits"]),
        ("fail_on = [", ["not valid TOML"]),
    ],
)
def test_a_bad_policy_is_one_message_naming_the_key_and_the_fix(text: str, expected: list[str]) -> None:
    message = _error(text)
    assert "policy.toml" in message
    assert "\n" not in message
    for part in expected:
        assert part in message


def test_a_policy_file_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="Cannot read the release policy"):
        ReleasePolicy.load(tmp_path / "missing.toml")
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(FileFormatError, match="not UTF-8"):
        ReleasePolicy.load(tmp_path / "binary.toml")


def test_the_severity_rule(make_report: Callable[..., Report]) -> None:
    policy = ReleasePolicy.from_toml('fail_on = "medium"')
    clean = policy.evaluate(make_report(_finding("baseline.performance", Severity.LOW)))
    assert clean.passed
    failed = policy.evaluate(make_report(_finding("signature.unsigned", Severity.MEDIUM)))
    assert not failed.passed
    (rule,) = failed.failed
    assert (rule.rule, rule.measured) == ("fail_on", "medium")
    assert "signature.unsigned (medium)" in rule.message


def test_an_incomplete_audit_fails_unless_the_policy_allows_it(make_report: Callable[..., Report]) -> None:
    checks = (CheckRun("evasion", CheckStatus.ERROR, 0.1, "boom"),)
    report = make_report(checks=checks)
    (rule,) = ReleasePolicy.from_toml("").evaluate(report).failed
    assert rule.rule == "require_complete"
    assert "evasion" in rule.message
    assert ReleasePolicy.from_toml("require_complete = false").evaluate(report).passed


RULES = """
[[rule]]
name = "robust"
finding = "evasion.robust-accuracy"
metric = "robust_accuracy"
at = 0.25
min = 0.7

[[rule]]
finding = "membership.leakage"
metric = "tpr_at_0.1%_fpr"
max = 0.01
"""


def test_metric_rules_measure_table_rows_and_dotted_names(make_report: Callable[..., Report]) -> None:
    report = make_report(
        _finding("evasion.robust-accuracy", robust_accuracy={"0.1": 0.9, "0.25": 0.65}),
        _finding("membership.leakage", **{"tpr_at_0.1%_fpr": 0.004}),
    )
    result = ReleasePolicy.from_toml(RULES).evaluate(report)
    robust, membership = result.rules[1:]
    assert (robust.rule, robust.passed, robust.measured, robust.bound) == ("robust", False, 0.65, ">= 0.7")
    assert "does not meet" in robust.message
    assert (membership.passed, membership.measured, membership.bound) == (True, 0.004, "<= 0.01")
    assert membership.rule == "membership.leakage tpr_at_0.1%_fpr <= 0.01"


@pytest.mark.parametrize(
    ("findings", "why"),
    [
        ((), "the report has no finding evasion.robust-accuracy"),
        ((_finding("evasion.robust-accuracy", clean_accuracy=0.9),), "has no metric 'robust_accuracy'"),
        ((_finding("evasion.robust-accuracy", robust_accuracy={"0.1": 0.9}),), "has no row 0.25"),
        ((_finding("evasion.robust-accuracy", robust_accuracy=0.9),), "not a table"),
        ((_finding("evasion.robust-accuracy", robust_accuracy={"0.25": None}),), "not a number"),
    ],
)
def test_a_metric_rule_with_nothing_to_measure_fails_and_says_why(
    make_report: Callable[..., Report], findings: tuple[Finding, ...], why: str
) -> None:
    (rule,) = ReleasePolicy.from_toml(RULES).evaluate(make_report(*findings)).rules[1:2]
    assert not rule.passed
    assert rule.measured is None
    assert why in rule.message
    assert "fails" in rule.message


def test_a_skipped_check_is_named_when_its_finding_is_missing(make_report: Callable[..., Report]) -> None:
    checks = (CheckRun("membership", CheckStatus.SKIPPED, 0.0, "needs training data"),)
    (_, rule) = ReleasePolicy.from_toml(RULES).evaluate(make_report(checks=checks)).rules[1:]
    assert "the membership check was skipped: needs training data" in rule.message


def test_a_check_rule_holds_every_finding_to_the_bound(make_report: Callable[..., Report]) -> None:
    policy = ReleasePolicy.from_toml('[[rule]]\ncheck = "baseline"\nmetric = "accuracy_gap"\nmax = 0.1')
    report = make_report(
        _finding("baseline.performance", accuracy_gap=0.02),
        _finding("baseline.generalization-gap", Severity.LOW, accuracy_gap=0.15),
        _finding("baseline.other"),  # no such metric: not held to it
    )
    (rule,) = policy.evaluate(report).rules[1:]
    assert (rule.passed, rule.measured) == (False, 0.15)
    assert policy.evaluate(make_report(_finding("baseline.performance", accuracy_gap=0.02))).passed
    (absent,) = policy.evaluate(make_report(_finding("baseline.other"))).rules[1:]
    assert not absent.passed


def test_the_signature_rules(make_report: Callable[..., Report]) -> None:
    signed = make_report(_finding("signature.verified"))
    unsigned = make_report(_finding("signature.unsigned", Severity.MEDIUM))
    required = ReleasePolicy.from_toml("require_signature = true")
    assert required.evaluate(signed).passed
    assert not required.evaluate(unsigned).passed
    assert not required.evaluate(make_report()).passed  # no signature check at all
    trusted = ReleasePolicy.from_toml(f'trusted_keys = ["sha256:{KEY.upper()}"]')
    assert trusted.evaluate(signed, signer=KEY).passed
    assert not trusted.evaluate(signed, signer="cd" * 32).passed
    (unknown,) = trusted.evaluate(signed).failed  # verified, but by which key is not known: fails closed
    assert "with which key" in unknown.message
    assert not trusted.evaluate(unsigned, signer=None).passed


def test_the_result_round_trips_through_report_json_and_its_schema(make_report: Callable[..., Report]) -> None:
    import dataclasses

    report = make_report(_finding("evasion.robust-accuracy", robust_accuracy={"0.25": 0.65}))
    result = ReleasePolicy.from_toml(RULES, source="policy.toml").evaluate(report)
    assert len(result.sha256) == 64
    judged = dataclasses.replace(report, policy=result)
    data = json.loads(judged.to_json())
    jsonschema.Draft202012Validator(load_report_schema()).validate(data)
    assert data["policy"]["passed"] is False
    assert [r["passed"] for r in data["policy"]["rules"]] == [True, False, False]
    assert Report.from_json(judged.to_json()).policy == result
    assert "policy" not in json.loads(report.to_json())  # no policy, no key: earlier reports are unchanged
    assert PolicyResult.from_dict(result.to_dict()) == result
