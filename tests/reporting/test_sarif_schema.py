"""SARIF output validates against the official SARIF 2.1.0 JSON Schema (OASIS), shipped with the tests."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from modelshield.findings import Report
from modelshield.reporting import render_sarif
from modelshield.reporting.sarif import sarif_log
from modelshield.supply_chain.scan import scan_paths
from modelshield.testing.scan_corpus import write_corpus

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())
VALIDATOR = jsonschema.Draft4Validator(SCHEMA)


def test_audit_sarif_is_valid_sarif(report: Report) -> None:
    errors = [e.message for e in VALIDATOR.iter_errors(json.loads(render_sarif(report)))]
    assert errors == []


def test_scan_sarif_is_valid_sarif(tmp_path: Path) -> None:
    write_corpus(tmp_path, benign=False)
    findings = scan_paths([tmp_path], workers=1).findings
    log = sarif_log(findings, default_location=str(tmp_path), complete=True, automation_id="modelshield/scan/")
    errors = [e.message for e in VALIDATOR.iter_errors(json.loads(json.dumps(log)))]
    assert errors == []
    assert len(log["runs"][0]["results"]) == len(findings) > 0


def test_schema_file_is_the_official_one() -> None:
    import hashlib

    data = (Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_bytes()
    assert hashlib.sha256(data).hexdigest() == "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"
