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

from modelshield.findings import Report

__all__ = ["REPORT_SCHEMA_PATH", "SCAN_SCHEMA_PATH", "load_report_schema", "load_scan_schema", "render_json"]

REPORT_SCHEMA_PATH = Path(__file__).parent / "schemas" / "report.schema.json"
SCAN_SCHEMA_PATH = Path(__file__).parent / "schemas" / "scan.schema.json"


def render_json(report: Report) -> str:
    """The report as indented JSON (``Report.to_json``); NaN and infinities become ``null``. A release policy's
    verdict, when one judged the report, is under ``policy`` (absent otherwise)."""
    return report.to_json(indent=2)


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
