"""report.json: what render_json writes, the JSON Schema it follows, and the schema's strictness."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import modelshield
from modelshield.findings import REPORT_SCHEMA_VERSION, Chart, Finding, Report, Severity
from modelshield.reporting import REPORT_SCHEMA_PATH, render_json
from modelshield.reporting.json import load_report_schema


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = load_report_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"] == {"const": REPORT_SCHEMA_VERSION}


def test_schema_ships_inside_the_package() -> None:
    package = Path(modelshield.__file__).parent
    assert REPORT_SCHEMA_PATH.is_file()
    assert REPORT_SCHEMA_PATH.is_relative_to(package)
    assert load_report_schema() is not load_report_schema()  # a fresh dict each time: callers may change it


def test_json_is_the_reports_own_serialisation(
    report: Report, without_compliance: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    text = render_json(report)
    assert without_compliance(json.loads(text)) == json.loads(report.to_json())
    assert "NaN" not in text and "Infinity" not in text


def test_json_validates_against_the_schema(report: Report, report_validator: jsonschema.Validator) -> None:
    report_validator.validate(json.loads(render_json(report)))


def test_json_round_trips(report: Report, without_compliance: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    text = render_json(report)
    again = Report.from_json(text)
    assert again.to_dict() == without_compliance(json.loads(text))
    assert render_json(again) == text


def test_summary_agrees_with_the_findings(report: Report) -> None:
    data = json.loads(render_json(report))
    severities = [f["severity"] for f in data["findings"]]
    assert data["summary"]["counts"] == {s.value: severities.count(s.value) for s in Severity}
    assert data["summary"]["max_severity"] == "critical"
    assert data["summary"]["complete"] is False  # the "boom" check failed
    ranks = [Severity(s).rank for s in severities]
    assert ranks == sorted(ranks, reverse=True)  # worst first
    assert [f["id"] for f in data["findings"][:4]] == [  # then by check and id
        "evasion.low-robustness",
        "integrity.code-on-load",
        "extraction.high-fidelity",
        "membership.high-advantage",
    ]
    assert data["findings"][3]["metrics"] == {"tpr_at_1pct_fpr": 0.4, "auc": 0.81}


def test_non_finite_numbers_become_null(report: Report, report_validator: jsonschema.Validator) -> None:
    data = json.loads(render_json(report))
    (gap,) = [f for f in data["findings"] if f["id"] == "baseline.generalization-gap"]
    assert gap["metrics"]["nan_metric"] is None
    chart = Chart("c", "line", x=(0.0, float("nan")), series={"s": (float("inf"), 1.0)})
    finding = Finding(id="a.b", check="a", title="t", severity=Severity.LOW, description="", charts=(chart,))
    report = dataclasses.replace(report, findings=(finding,))
    data = json.loads(render_json(report))
    report_validator.validate(data)
    assert data["findings"][0]["charts"][0]["x"] == [0.0, None]
    assert data["findings"][0]["charts"][0]["series"] == {"s": [None, 1.0]}


def test_a_report_without_findings_or_checks_is_valid(
    report_factory: Callable[..., Report], report_validator: jsonschema.Validator
) -> None:
    data = json.loads(render_json(report_factory(findings=(), checks=())))
    report_validator.validate(data)
    assert data["summary"] == {
        "counts": {"info": 0, "low": 0, "medium": 0, "high": 0, "critical": 0},
        "max_severity": None,
        "complete": True,
    }


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


_MISSING = object()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("findings", 0, "severity"), "severe"),
        (("findings", 0, "severity"), "Critical"),
        (("findings", 0, "owasp"), "ML11"),
        (("findings", 0, "atlas"), ["T0015"]),
        (("findings", 0, "atlas"), ["AML.T15"]),
        (("findings", 0, "id"), "Not A Rule Id"),
        (("findings", 0, "metrics"), [1, 2]),
        (("findings", 0, "unexpected"), 1),
        (("findings", 0, "charts", 0, "kind"), "pie"),
        (("findings", 0, "charts", 0, "y_range"), [0.0]),
        (("checks", 0, "status"), "exploded"),
        (("checks", 0, "duration_s"), -1.0),
        (("target", "model_sha256"), "xyz"),
        (("target", "n_classes"), 1),
        (("target", "input_shape"), []),
        (("target", "colour"), "red"),
        (("summary", "max_severity"), "worst"),
        (("summary", "counts", "severe"), 1),
        (("seed",), -1),
        (("budget",), "infinite"),
        (("schema_version",), "0.9"),
        (("tool",), "other"),
        (("versions", "numpy"), 2),
        (("started_at",), "yesterday"),
        (("extra",), 1),
        (("findings", 0, "title"), _MISSING),
        (("target",), _MISSING),
        (("versions", "modelshield"), _MISSING),
    ],
)
def test_schema_rejects_malformed_reports(
    report: Report, report_validator: jsonschema.Validator, path: tuple[Any, ...], value: Any
) -> None:
    data = json.loads(render_json(report))
    broken = copy.deepcopy(data)
    if value is _MISSING:
        node: Any = broken
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    else:
        _set(broken, path, value)
    report_validator.validate(data)
    assert not report_validator.is_valid(broken)
