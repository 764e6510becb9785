"""Renderers of a Report: terminal, JSON (with its JSON Schema), self-contained HTML, and SARIF 2.1.0.

    >>> from modelshield.reporting import OutputFormat, render_json
    >>> [f.value for f in OutputFormat]
    ['text', 'json', 'sarif', 'html']

The renderers load on first use (``import modelshield.reporting`` imports none of them, nor Jinja2 or rich).
Renderers only read a :class:`~modelshield.findings.Report` (or, in :mod:`~modelshield.reporting.scan`, a scan
report); they never recompute what it says.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Each name's module, imported on first use: a command that writes JSON does not import Jinja2 or rich.
_HOME = {
    "REPORT_SCHEMA_PATH": "json",
    "SCAN_SCHEMA_PATH": "json",
    "OutputFormat": "interface",
    "ScanResults": "scan",
    "load_report_schema": "json",
    "load_scan_schema": "json",
    "render_html": "html",
    "render_json": "json",
    "render_sarif": "sarif",
    "render_scan_json": "scan",
    "render_scan_sarif": "scan",
    "render_scan_text": "scan",
    "render_terminal": "terminal",
    "write_reports": "files",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
