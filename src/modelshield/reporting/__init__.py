"""Renderers of a Report: terminal, JSON (with its JSON Schema), self-contained HTML, and SARIF 2.1.0.

    >>> from modelshield.reporting import OutputFormat, render_json
    >>> [f.value for f in OutputFormat]
    ['text', 'json', 'sarif', 'html']

Renderers only read a :class:`~modelshield.findings.Report` (or, in :mod:`~modelshield.reporting.scan`, a scan
report); they never recompute what it says.
"""

from __future__ import annotations

from modelshield.reporting.files import write_reports
from modelshield.reporting.html import render_html
from modelshield.reporting.interface import OutputFormat
from modelshield.reporting.json import (
    REPORT_SCHEMA_PATH,
    SCAN_SCHEMA_PATH,
    load_report_schema,
    load_scan_schema,
    render_json,
)
from modelshield.reporting.sarif import render_sarif
from modelshield.reporting.scan import ScanResults, render_scan_json, render_scan_sarif, render_scan_text
from modelshield.reporting.terminal import render_terminal

__all__ = [
    "REPORT_SCHEMA_PATH",
    "SCAN_SCHEMA_PATH",
    "OutputFormat",
    "ScanResults",
    "load_report_schema",
    "load_scan_schema",
    "render_html",
    "render_json",
    "render_sarif",
    "render_scan_json",
    "render_scan_sarif",
    "render_scan_text",
    "render_terminal",
    "write_reports",
]
