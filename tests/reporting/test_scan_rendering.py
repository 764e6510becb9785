"""Scan reports rendered by reporting/scan.py: JSON valid against its schema, SARIF against the official schema,
and a terminal table that prints no control characters from the scanned files."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import jsonschema
from rich.console import Console

from modelshield.reporting import load_scan_schema, render_scan_json, render_scan_sarif, render_scan_text
from modelshield.supply_chain.scan import ScanReport, scan_paths
from modelshield.testing.scan_corpus import call_v2

SARIF_SCHEMA_FILE = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"


def _report(tmp_path: Path) -> ScanReport:
    (tmp_path / "clean.pkl").write_bytes(b"\x80\x02}q\x00.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("evil\x1b[2J.pkl", call_v2("os", "system"))  # a terminal escape in a member name
    (tmp_path / "bundle.zip").write_bytes(buffer.getvalue())
    return scan_paths([tmp_path], workers=1)


def test_json_is_the_report_and_follows_the_schema(tmp_path: Path) -> None:
    report = _report(tmp_path)
    data = json.loads(render_scan_json(report))
    jsonschema.Draft202012Validator(load_scan_schema()).validate(data)
    assert data == json.loads(json.dumps(report.to_dict()))
    assert data["summary"]["counts"]["critical"] == 1


def test_sarif_is_valid_and_names_each_finding(tmp_path: Path) -> None:
    report = _report(tmp_path)
    sarif = json.loads(render_scan_sarif(report, default_location=str(tmp_path)))
    validator = jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA_FILE.read_text()))
    assert [e.message for e in validator.iter_errors(sarif)] == []
    (result,) = sarif["runs"][0]["results"]
    assert result["ruleId"] == "pickle.dangerous-call"
    assert sarif["runs"][0]["automationDetails"]["id"] == "modelshield/scan/"


def test_text_lists_findings_worst_first_without_control_characters(tmp_path: Path) -> None:
    report = _report(tmp_path)
    out = io.StringIO()
    render_scan_text(report, Console(file=out, width=200, force_terminal=True))
    text = out.getvalue()
    assert "\x1b[2J" not in text
    assert "evil\ufffd[2J.pkl" in text
    assert "Loading runs os.system" in text
    assert "2 file(s) scanned" in text
    assert "worst: critical" in text
