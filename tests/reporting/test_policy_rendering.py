"""A release policy's verdict in the SARIF and HTML reports (JSON: tests/audit/test_policy.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema

from modelshield.findings import PolicyResult, Report, RuleResult, TargetInfo
from modelshield.reporting import render_html, render_sarif

HOSTILE = "<script>alert(1)</script>\x1b[2J"


def _report(*rules: RuleResult) -> Report:
    return Report(
        target=TargetInfo("zoo:t", "skops", "00" * 32, 2, (4,), "SklearnClassifier", False, model_path="m.skops"),
        findings=(),
        checks=(),
        seed=0,
        budget="quick",
        started_at="2026-01-01T00:00:00+00:00",
        duration_s=1.0,
        versions={"modelshield": "0"},
        policy=PolicyResult(policy="policy.toml", sha256="ab" * 32, rules=rules),
    )


FAILED = RuleResult(rule=f"robust {HOSTILE}", passed=False, measured=0.65, bound=">= 0.7", message="too low")
PASSED = RuleResult(rule="fail_on", passed=True, measured=None, bound="no finding at or above high", message="ok")


def test_sarif_has_one_error_result_per_failed_rule_and_the_verdict() -> None:
    sarif = json.loads(render_sarif(_report(FAILED, PASSED)))
    (run,) = sarif["runs"]
    (result,) = run["results"]
    assert result["ruleId"] == "policy.rule-failed"
    assert result["level"] == "error"
    assert "measured 0.65, required >= 0.7" in result["message"]["text"]
    assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "policy.rule-failed"
    assert run["properties"]["policy"]["passed"] is False
    assert run["invocations"][0]["executionSuccessful"] is True  # the checks ran; the policy failed


def test_sarif_of_a_passed_policy_has_no_result() -> None:
    run = json.loads(render_sarif(_report(PASSED)))["runs"][0]
    assert run["results"] == []
    assert run["properties"]["policy"]["passed"] is True


def test_html_shows_the_policy_escaped() -> None:
    page = render_html(_report(FAILED, PASSED))
    assert "Release policy" in page
    assert "<script>alert" not in page
    assert "&lt;script&gt;" in page
    assert "\x1b" not in page
    assert "not measured" in page  # PASSED measured nothing
    assert "Release policy" not in render_html(dataclasses.replace(_report(), policy=None))


def test_sarif_with_a_policy_is_valid_sarif() -> None:
    schema = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())
    document = json.loads(render_sarif(_report(FAILED, PASSED)))
    assert [e.message for e in jsonschema.Draft4Validator(schema).iter_errors(document)] == []
