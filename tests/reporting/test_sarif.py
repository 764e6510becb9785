"""SARIF 2.1.0: valid against the official schema, and shaped the way GitHub code scanning reads it."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from modelshield import __version__
from modelshield.findings import Finding, OwaspMl, Report, Severity
from modelshield.reporting import render_sarif
from modelshield.reporting.sarif import SARIF_SCHEMA, _uri, sarif_log

# RFC 3986 URI-reference: only these characters, '%' only as an escape, and no scheme-like first segment unless it
# is a scheme. jsonschema checks format "uri-reference" only with an optional package, so it is checked here.
_URI_CHARS = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*$")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def assert_uri_reference(uri: str) -> None:
    assert uri, "empty URI"
    assert _URI_CHARS.match(uri), uri
    assert not _BAD_ESCAPE.search(uri), uri
    first_segment = uri.split("/", 1)[0]
    if ":" in first_segment:
        assert _SCHEME.match(uri), f"{uri!r} would be read as having a scheme"


def sarif(report: Report) -> dict[str, Any]:
    return json.loads(render_sarif(report))  # type: ignore[no-any-return]


def test_validates_against_the_sarif_2_1_0_schema(report: Report, sarif_validator: jsonschema.Validator) -> None:
    log = sarif(report)
    errors = sorted(sarif_validator.iter_errors(log), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    assert log["$schema"] == SARIF_SCHEMA
    assert log["version"] == "2.1.0"


def test_the_validator_does_catch_invalid_sarif(report: Report, sarif_validator: jsonschema.Validator) -> None:
    log = sarif(report)
    log["runs"][0]["results"][0]["level"] = "critical"
    assert not sarif_validator.is_valid(log)
    log = sarif(report)
    log["runs"][0]["tool"]["driver"]["rules"][0]["properties"]["tags"] = ["security", "security"]
    assert not sarif_validator.is_valid(log)


def test_one_rule_per_distinct_finding_id(report_factory: Callable[..., Report]) -> None:
    again = Finding(
        id="evasion.low-robustness", check="evasion", title="Again", severity=Severity.LOW, description="", location="b"
    )
    report = report_factory(extra=(again,))
    run = sarif(report)["runs"][0]
    rules, results = run["tool"]["driver"]["rules"], run["results"]
    assert [r["id"] for r in rules] == list(dict.fromkeys(f.id for f in report.sorted_findings()))
    assert len(results) == len(report.findings)
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    (rule,) = [r for r in rules if r["id"] == "evasion.low-robustness"]
    assert rule["properties"]["security-severity"] == "9.5"  # the worst finding of that id


@pytest.mark.parametrize(
    ("severity", "level", "score"),
    [
        (Severity.CRITICAL, "error", "9.5"),
        (Severity.HIGH, "error", "8.0"),
        (Severity.MEDIUM, "warning", "5.5"),
        (Severity.LOW, "note", "3.0"),
        (Severity.INFO, "note", "0.0"),
    ],
)
def test_level_and_security_severity_follow_severity(
    report_factory: Callable[..., Report], severity: Severity, level: str, score: str
) -> None:
    finding = Finding(id="only.one", check="c", title="T", severity=severity, description="D")
    run = sarif(report_factory(findings=(finding,)))["runs"][0]
    (rule,) = run["tool"]["driver"]["rules"]
    (result,) = run["results"]
    assert result["level"] == level
    assert rule["defaultConfiguration"]["level"] == level
    assert rule["properties"]["security-severity"] == score
    assert 0.0 <= float(score) <= 10.0


def test_rules_describe_and_tag_the_finding(report: Report) -> None:
    rules = {r["id"]: r for r in sarif(report)["runs"][0]["tool"]["driver"]["rules"]}
    rule = rules["evasion.low-robustness"]
    assert rule["name"] == "EvasionLowRobustness"
    assert rule["shortDescription"]["text"] == "Robust accuracy falls to 3% at eps=8/255"
    assert rule["fullDescription"]["text"] == "PGD-20 drives accuracy from 98% to 3%."
    assert rule["properties"]["tags"] == ["security", "machine-learning", "OWASP-ML01", "AML.T0015", "AML.T0043"]
    assert "Adversarially train the model" in rule["help"]["text"]
    assert rule["help"]["markdown"].startswith("**Remediation:** Adversarially train")
    assert "MITRE ATLAS AML.T0015: Evade AI Model" in rule["help"]["markdown"]
    assert "OWASP ML Top 10 ML01: Input Manipulation Attack" in rule["help"]["text"]
    for rule in rules.values():  # never an empty text: code scanning shows these
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"] and rule["help"]["text"]


def test_duplicate_atlas_ids_give_unique_tags(
    report_factory: Callable[..., Report], sarif_validator: jsonschema.Validator
) -> None:
    finding = Finding(
        id="a.b", check="a", title="T", severity=Severity.HIGH, description="", atlas=("AML.T0015", "AML.T0015")
    )
    log = sarif(report_factory(findings=(finding,)))
    sarif_validator.validate(log)
    assert log["runs"][0]["tool"]["driver"]["rules"][0]["properties"]["tags"].count("AML.T0015") == 1


def test_results_for_code_scanning(report: Report) -> None:
    results = {r["ruleId"]: r for r in sarif(report)["runs"][0]["results"]}
    evasion = results["evasion.low-robustness"]
    message = "Robust accuracy falls to 3% at eps=8/255. PGD-20 drives accuracy from 98% to 3%."
    assert evasion["message"]["text"] == message
    assert evasion["properties"]["metrics"] == {"clean_accuracy": 0.98, "robust_accuracy": 0.03, "queries": 12000}
    assert evasion["properties"]["severity"] == "critical"
    assert results["baseline.generalization-gap"]["properties"]["metrics"]["nan_metric"] is None
    assert results["poisoning.label-flip"]["message"]["text"] == "5% flipped labels cost 12 points of accuracy"
    for result in results.values():
        (location,) = result["locations"]
        assert "region" not in location["physicalLocation"]
        assert_uri_reference(location["physicalLocation"]["artifactLocation"]["uri"])
        assert re.fullmatch(r"[0-9a-f]{64}", result["partialFingerprints"]["modelshieldFinding/v1"])


def test_locations_fall_back_to_the_model_file_then_the_target(report_factory: Callable[..., Report]) -> None:
    def uris(report: Report) -> dict[str, str]:
        return {
            r["ruleId"]: r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in sarif(report)["runs"][0]["results"]
        }

    report = report_factory()
    assert uris(report)["integrity.code-on-load"] == "models/model.pkl"  # the finding's own, relative
    assert uris(report)["inversion.class-leak"] == "file:///C:/models/digits%20cnn.pt"
    assert uris(report)["baseline.performance"] == "file:///tmp/cache/model.safetensors"  # the model file
    no_path = report_factory(target=dataclasses.replace(report.target, model_path=None))
    assert uris(no_path)["baseline.performance"] == "zoo%3A%3Cdigits%3E"  # the target's name, encoded


@pytest.mark.parametrize(
    ("location", "uri"),
    [
        ("models/model.pkl", "models/model.pkl"),
        ("models\\model.pkl", "models/model.pkl"),
        ("model dir/modèle.pkl", "model%20dir/mod%C3%A8le.pkl"),
        ("100%.pkl", "100%25.pkl"),
        ("/tmp/a b.pkl", "file:///tmp/a%20b.pkl"),
        ("C:\\models\\m.pt", "file:///C:/models/m.pt"),
        ("zoo:digits-cnn", "zoo%3Adigits-cnn"),
        ("http://127.0.0.1:8080/v2/models/m x", "http://127.0.0.1:8080/v2/models/m%20x"),
        ("s3://bucket/model%2Fv1.pt", "s3://bucket/model%2Fv1.pt"),
        ("https://host/a%zz", "https://host/a%25zz"),
    ],
)
def test_locations_become_uri_references(location: str, uri: str) -> None:
    assert _uri(location) == uri
    assert_uri_reference(uri)


def test_fingerprints_are_stable_and_distinguish_locations(report_factory: Callable[..., Report]) -> None:
    def fingerprints(report: Report) -> list[str]:
        return [r["partialFingerprints"]["modelshieldFinding/v1"] for r in sarif(report)["runs"][0]["results"]]

    report = report_factory()
    assert fingerprints(report) == fingerprints(report_factory())
    assert len(set(fingerprints(report))) == len(report.findings)
    retrained = report_factory(target=dataclasses.replace(report.target, model_sha256="d" * 64), seed=99)
    assert fingerprints(retrained) == fingerprints(report)  # same rule, check and file: the same alert
    moved = report_factory(target=dataclasses.replace(report.target, model_path="elsewhere/model.safetensors"))
    assert fingerprints(moved) != fingerprints(report)


def test_tool_and_invocation(report: Report, report_factory: Callable[..., Report]) -> None:
    run = sarif(report)["runs"][0]
    assert run["tool"]["driver"]["name"] == "modelshield"
    assert run["tool"]["driver"]["version"] == __version__
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False
    assert invocation["startTimeUtc"] == "2026-11-22T10:00:00Z"  # 11:00+01:00, in UTC as SARIF requires
    (note,) = invocation["toolExecutionNotifications"]
    assert note["level"] == "error"
    assert note["message"]["text"] == "Check boom failed: RuntimeError: <kaput>"
    assert run["automationDetails"]["id"] == "modelshield/zoo:<digits>/"
    assert run["properties"]["seed"] == 7
    complete = report_factory(checks=report.checks[:2], started_at="2026-11-22T10:00:00")
    (invocation,) = sarif(complete)["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is True
    assert "startTimeUtc" not in invocation  # a time without a zone is not claimed to be UTC


def test_no_findings_is_an_empty_valid_run(
    report_factory: Callable[..., Report], sarif_validator: jsonschema.Validator
) -> None:
    log = sarif(report_factory(findings=()))
    sarif_validator.validate(log)
    assert log["runs"][0]["results"] == []
    assert log["runs"][0]["tool"]["driver"]["rules"] == []


def test_output_is_deterministic(report: Report, report_factory: Callable[..., Report]) -> None:
    assert render_sarif(report) == render_sarif(report_factory())


def test_sarif_log_serves_other_finding_lists(sarif_validator: jsonschema.Validator) -> None:
    findings = [
        Finding(
            id="pickle.dangerous-call",
            check="scan",
            title="os.system",
            severity=Severity.CRITICAL,
            description="",
            owasp=OwaspMl.ML06,
            location="sub/evil.pkl",
        )
    ]
    log = sarif_log(findings, default_location="sub", complete=True, automation_id="modelshield/scan/")
    sarif_validator.validate(log)
    assert log["runs"][0]["invocations"][0] == {"executionSuccessful": True, "toolExecutionNotifications": []}


# -- --source-root: results that a dashboard can map onto the repository ---------------------------------------------
class _Payload:
    def __reduce__(self) -> tuple[object, ...]:
        import os

        return (os.system, ("true",))


def _scan_sarif(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    from modelshield.cli import main

    assert main(["scan", *argv, "--format", "sarif"]) == 1
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    import pickle
    import zipfile

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "evil name.pkl").write_bytes(pickle.dumps(_Payload()))
    with zipfile.ZipFile(tmp_path / "models" / "bundle.zip", "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(_Payload()))
    return tmp_path


def test_scanned_files_are_named_relative_to_the_source_root(
    repo: Path, capsys: pytest.CaptureFixture[str], sarif_validator: jsonschema.Validator
) -> None:
    log = _scan_sarif([str(repo / "models"), "--source-root", str(repo)], capsys)
    assert not list(sarif_validator.iter_errors(log))
    run = log["runs"][0]
    assert run["originalUriBaseIds"] == {"SRCROOT": {"uri": repo.as_uri() + "/"}}
    located = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: r["locations"][0] for r in run["results"]
    }
    assert set(located) == {"models/bundle.zip", "models/evil%20name.pkl"}
    for location in located.values():
        assert location["physicalLocation"]["artifactLocation"]["uriBaseId"] == "SRCROOT"
        assert_uri_reference(location["physicalLocation"]["artifactLocation"]["uri"])
    member = located["models/bundle.zip"]["logicalLocations"][0]  # the archive, with its member named
    assert member["name"] == "archive/data.pkl" and member["kind"] == "resource"
    assert "logicalLocations" not in located["models/evil%20name.pkl"]


def test_the_source_root_defaults_to_the_current_directory_and_outside_it_paths_stay_absolute(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo / "models")
    run = _scan_sarif(["evil name.pkl"], capsys)["runs"][0]
    (result,) = run["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "evil%20name.pkl",
        "uriBaseId": "SRCROOT",
    }
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"] == (repo / "models").as_uri() + "/"
    elsewhere = repo / "elsewhere"
    elsewhere.mkdir()
    run = _scan_sarif([str(repo / "models" / "evil name.pkl"), "--source-root", str(elsewhere)], capsys)["runs"][0]
    artifact = run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": (repo / "models" / "evil name.pkl").as_uri()}  # no base to map it to: as it was


def test_an_audit_names_its_model_file_relative_to_the_source_root(
    report_factory: Callable[..., Report], tmp_path: Path, sarif_validator: jsonschema.Validator
) -> None:
    report = report_factory()
    model = tmp_path / "models" / "net.onnx"
    report = dataclasses.replace(report, target=dataclasses.replace(report.target, model_path=str(model)))
    log = json.loads(render_sarif(report, source_root=tmp_path))
    assert not list(sarif_validator.iter_errors(log))
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"].get("uriBaseId")
        for r in log["runs"][0]["results"]
        if r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "models/net.onnx"
    }
    assert uris == {"SRCROOT"}
