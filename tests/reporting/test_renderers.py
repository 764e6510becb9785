"""Renderers: schema-valid JSON, well-formed SARIF 2.1.0, self-contained and escaped HTML, terminal summary."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from modelshield.findings import Finding, OwaspMl, Report, Severity
from modelshield.reporting import (
    load_report_schema,
    render_html,
    render_json,
    render_sarif,
    render_terminal,
    write_reports,
)
from modelshield.reporting.svg import render_chart

VALIDATOR = jsonschema.Draft202012Validator(load_report_schema(), format_checker=jsonschema.FormatChecker())


def test_schema_is_a_valid_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(load_report_schema())


def test_json_validates_and_round_trips(report: Report) -> None:
    text = render_json(report)
    VALIDATOR.validate(json.loads(text))
    assert Report.from_json(text).to_dict() == report.to_dict()


@pytest.mark.parametrize(
    ("path", "value"),
    [(("findings", 0, "severity"), "severe"), (("target", "model_sha256"), "xyz"), (("seed",), -1), (("extra",), 1)],
)
def test_schema_rejects_malformed_reports(report: Report, path: tuple[object, ...], value: object) -> None:
    data = json.loads(render_json(report))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert not VALIDATOR.is_valid(data)


def test_sarif_structure(report: Report) -> None:
    sarif = json.loads(render_sarif(report))
    assert sarif["version"] == "2.1.0"
    (run,) = sarif["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [f.id for f in report.sorted_findings()]
    for result in run["results"]:
        rule = rules[result["ruleIndex"]]
        assert rule["id"] == result["ruleId"]
        assert result["level"] in {"error", "warning", "note"}
        assert result["message"]["text"]
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert re.fullmatch(r"[0-9a-f]{64}", result["partialFingerprints"]["modelshieldFinding/v1"])
        assert 0.0 <= float(rule["properties"]["security-severity"]) <= 10.0
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels["evasion.low-robustness"] == "error"
    assert levels["baseline.generalization-gap"] == "warning"
    assert levels["baseline.performance"] == "note"
    uris = {r["ruleId"]: r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]}
    assert uris["integrity.code-on-load"] == "models/model.pkl"
    assert uris["baseline.performance"] == "file:///tmp/cache/model.safetensors"
    assert run["invocations"][0]["executionSuccessful"] is False
    assert "kaput" in run["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]


def test_html_is_self_contained_and_escaped(report: Report) -> None:
    page = render_html(report)
    assert '<meta name="viewport"' in page
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert" in page
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert page.count("<svg") == 3  # summary + line chart + bar chart
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):
        ElementTree.fromstring(svg)  # well-formed XML


def test_chart_text_is_escaped() -> None:
    from modelshield.findings import Chart

    svg = render_chart(Chart("<b>&", "bar", x=("<i>",), series={"<s>": (1.0,)}))
    ElementTree.fromstring(str(svg))
    assert "<b>" not in svg and "&lt;i&gt;" in svg


def test_terminal_summary(report: Report) -> None:
    buffer = io.StringIO()
    render_terminal(report, Console(file=buffer, width=140, color_system=None))
    text = buffer.getvalue()
    assert "zoo:<digits>" in text
    assert "Verdict: critical" in text
    assert "AUDIT INCOMPLETE" in text


def test_write_reports_atomically(report: Report, tmp_path: Path) -> None:
    out = tmp_path / "nested" / "report"
    paths = write_reports(report, out)
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.sarif"]
    assert json.loads(paths["json"].read_text())["seed"] == 7
    assert oct(paths["json"].stat().st_mode & 0o777) != oct(0o600)  # readable like any file written with open()


_text = st.text(max_size=60)
_findings = st.builds(
    Finding,
    id=st.from_regex(r"[a-z][a-z0-9_.\-]{0,20}", fullmatch=True),
    check=st.text(min_size=1, max_size=20),
    title=st.text(min_size=1, max_size=60),
    severity=st.sampled_from(list(Severity)),
    description=_text,
    remediation=_text,
    owasp=st.none() | st.sampled_from(list(OwaspMl)),
    atlas=st.lists(st.from_regex(r"AML\.T\d{4}(\.\d{3})?", fullmatch=True), max_size=3).map(tuple),
    metrics=st.dictionaries(st.text(max_size=10), st.floats() | st.integers() | _text | st.none(), max_size=4),
    evidence=st.dictionaries(st.text(max_size=10), _text, max_size=3),
    location=st.none() | _text,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(st.lists(_findings, max_size=5))
def test_any_findings_render_everywhere(report_factory: Callable[..., Report], findings: list[Finding]) -> None:
    report = report_factory(extra=tuple(findings))
    VALIDATOR.validate(json.loads(render_json(report)))
    sarif = json.loads(render_sarif(report))
    assert len(sarif["runs"][0]["results"]) == len(report.findings)
    page = render_html(report)
    assert "<script" not in page.lower()
