"""The JSON report and the JSON Schema it follows (shipped in the package).

>>> from modelshield.reporting.json import load_report_schema
>>> load_report_schema()["$schema"]
'https://json-schema.org/draft/2020-12/schema'
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from modelshield.findings import Finding, JSONValue, Report
from modelshield.reporting.compliance import ComplianceTable, assess, finding_compliance, load_table

__all__ = ["REPORT_SCHEMA_PATH", "SCAN_SCHEMA_PATH", "load_report_schema", "load_scan_schema", "render_json"]

REPORT_SCHEMA_PATH = Path(__file__).parent / "schemas" / "report.schema.json"
SCAN_SCHEMA_PATH = Path(__file__).parent / "schemas" / "scan.schema.json"


def render_json(report: Report) -> str:
    """The report as indented JSON (``Report.to_json``); NaN and infinities become ``null``. A release policy's
    verdict, when one judged the report, is under ``policy`` (absent otherwise).

    Each finding carries, beside ``owasp`` and ``atlas``, the requirements it is evidence for under
    ``compliance`` (framework key -> requirement ids), and the report a ``compliance`` section per framework
    (:func:`modelshield.reporting.compliance.assess`). Both come from the shipped table at render time;
    ``Report.from_json`` reads the report back without them.
    """
    table = load_table()
    data = report.to_dict()
    data["findings"] = [_with_compliance(f, table) for f in report.sorted_findings()]
    data["compliance"] = assess(report, table).to_dict()
    return json.dumps(data, indent=2, sort_keys=False, allow_nan=False)


def _with_compliance(finding: Finding, table: ComplianceTable) -> JSONValue:
    mapping: dict[str, JSONValue] = {k: list(v) for k, v in finding_compliance(finding, table).items()}
    return {**finding.to_dict(), "compliance": mapping}


@cache
def _schema_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def load_report_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``report.json``, as a fresh dict."""
    schema: dict[str, Any] = json.loads(_schema_text(REPORT_SCHEMA_PATH))
    return schema


def load_scan_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``modelshield scan --format json``, as a fresh dict."""
    schema: dict[str, Any] = json.loads(_schema_text(SCAN_SCHEMA_PATH))
    return schema
