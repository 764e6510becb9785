from __future__ import annotations

import json

import pytest

from modelshield.errors import InvalidParameterError
from modelshield.findings import (
    Chart,
    CheckRun,
    CheckStatus,
    Finding,
    FindingsAboveThresholdError,
    OwaspMl,
    Report,
    Severity,
    TargetInfo,
)


def make_finding(severity: Severity = Severity.LOW, **kw: object) -> Finding:
    fields: dict[str, object] = {
        "id": "test.example",
        "check": "test",
        "title": "Example",
        "severity": severity,
        "description": "An example finding.",
        "owasp": OwaspMl.ML01,
        "atlas": ("AML.T0015",),
        "metrics": {"accuracy": 0.5},
    }
    fields.update(kw)
    return Finding(**fields)  # type: ignore[arg-type]


def make_report(*findings: Finding) -> Report:
    return Report(
        target=TargetInfo(
            name="t",
            model_format="onnx",
            model_sha256="0" * 64,
            n_classes=2,
            input_shape=(3,),
            classifier="X",
            white_box=False,
        ),
        findings=findings,
        checks=(CheckRun("test", CheckStatus.FINDINGS, 0.1),),
        seed=0,
        budget="quick",
        started_at="2026-01-01T00:00:00+00:00",
        duration_s=0.5,
        versions={"modelshield": "0"},
    )


def test_severity_is_ordered() -> None:
    assert Severity.INFO < Severity.LOW < Severity.MEDIUM < Severity.HIGH < Severity.CRITICAL
    assert max([Severity.LOW, Severity.CRITICAL, Severity.MEDIUM]) is Severity.CRITICAL
    assert Severity.parse(" High ") is Severity.HIGH


def test_unknown_severity_names_the_choices() -> None:
    with pytest.raises(InvalidParameterError, match="Unknown severity 'severe'") as err:
        Severity.parse("severe")
    assert "critical" in err.value.remedy


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", "Bad Id"), ("atlas", ("T0015",)), ("severity", "extreme"), ("owasp", "ML11")],
)
def test_finding_rejects_malformed_fields(field: str, value: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - InvalidParameterError or the enum's ValueError
        make_finding(**{field: value})


def test_finding_is_immutable_and_round_trips() -> None:
    f = make_finding(charts=(Chart("c", "line", x=(0.0, 0.1), series={"a": (1.0, 0.5)}),))
    with pytest.raises(TypeError):
        f.metrics["accuracy"] = 1.0  # type: ignore[index]
    assert Finding.from_dict(json.loads(json.dumps(f.to_dict()))) == f


def test_chart_series_must_match_x() -> None:
    with pytest.raises(InvalidParameterError, match="has 1 values for 2 x values"):
        Chart("c", "bar", x=("a", "b"), series={"s": (1.0,)})


def test_report_summary_order_and_threshold() -> None:
    report = make_report(make_finding(Severity.LOW, id="a.low"), make_finding(Severity.HIGH, id="a.high"))
    assert report.max_severity is Severity.HIGH
    assert [f.id for f in report.sorted_findings()] == ["a.high", "a.low"]
    assert report.counts() == {"info": 0, "low": 1, "medium": 0, "high": 1, "critical": 0}
    report.raise_for_severity(Severity.CRITICAL)
    with pytest.raises(FindingsAboveThresholdError) as err:
        report.raise_for_severity("medium")
    assert [f.id for f in err.value.findings] == ["a.high"]


def test_report_round_trips_through_json() -> None:
    report = make_report(make_finding(metrics={"nan": float("nan"), "n": 3}))
    again = Report.from_json(report.to_json())
    assert again.to_dict() == report.to_dict()
    assert again.findings[0].metrics["nan"] is None  # NaN is not JSON; it becomes null


def test_findings_and_reports_pickle_for_worker_processes() -> None:
    import pickle

    f = make_finding(charts=(Chart("c", "bar", x=("a",), series={"s": (1.0,)}),))
    report = make_report(f)
    again = pickle.loads(pickle.dumps(report))
    assert again == report
    assert again.findings[0].metrics["accuracy"] == 0.5
    with pytest.raises(TypeError):
        again.findings[0].metrics["accuracy"] = 1.0  # type: ignore[index]
