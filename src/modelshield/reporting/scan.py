"""Renderers of a scan (``modelshield scan``): a terminal table, JSON (with its JSON Schema), and SARIF 2.1.0.

    >>> from modelshield.reporting.scan import render_scan_json, render_scan_sarif, render_scan_text
    >>> from modelshield.supply_chain.scan import scan_paths  # doctest: +SKIP
    >>> report = scan_paths(["models/"])  # doctest: +SKIP
    >>> render_scan_text(report)  # doctest: +SKIP
    >>> sarif = render_scan_sarif(report, default_location="models/")  # doctest: +SKIP

The reporting layer does not import the scanner: it renders anything shaped like a scan report, as the
:class:`ScanResults` protocol describes (``supply_chain.scan.ScanReport`` is one). Its JSON is the report's own
``to_dict()``, which ``schemas/scan.schema.json`` describes; nothing is recomputed here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from modelshield.findings import Finding, JSONValue, Severity
from modelshield.reporting.interface import printable

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

__all__ = ["ScanResults", "ScannedFile", "render_scan_json", "render_scan_sarif", "render_scan_text", "scan_summary"]

_AUTOMATION_ID = "modelshield/scan/"  # code scanning keeps one analysis per category


class ScannedFile(Protocol):
    """The scan of one file, as the renderers read it."""

    @property
    def path(self) -> str: ...

    @property
    def findings(self) -> tuple[Finding, ...]: ...


class ScanResults(Protocol):
    """A scan of several files, as the renderers read it (``supply_chain.scan.ScanReport`` keeps it)."""

    @property
    def files(self) -> Sequence[ScannedFile]: ...

    @property
    def findings(self) -> tuple[Finding, ...]: ...

    @property
    def duration_s(self) -> float: ...

    @property
    def max_severity(self) -> Severity | None: ...

    def to_dict(self) -> Mapping[str, JSONValue]:
        """The scan as plain JSON data, following ``schemas/scan.schema.json``."""
        ...


def render_scan_json(report: ScanResults) -> str:
    """The scan as indented JSON, valid against :func:`~modelshield.reporting.json.load_scan_schema`."""
    return json.dumps(report.to_dict(), indent=2, allow_nan=False)


def render_scan_sarif(report: ScanResults, *, default_location: str, source_root: str | Path | None = None) -> str:
    """The scan as a SARIF 2.1.0 log; ``default_location`` stands for findings without a location, and the
    scanned files are named relative to ``source_root`` when they lie under it."""
    from modelshield.reporting.sarif import sarif_log

    log = sarif_log(
        report.findings,
        default_location=default_location,
        complete=True,
        automation_id=_AUTOMATION_ID,
        files=[f.path for f in report.files],
        source_root=source_root,
    )
    return json.dumps(log, indent=2, allow_nan=False)


def render_scan_text(report: ScanResults, console: Console | None = None) -> None:
    """Print the findings worst first (severity, location, title), then a one-line summary."""
    from rich.console import Console  # rich only for the table: JSON and SARIF output never import it
    from rich.table import Table
    from rich.text import Text

    from modelshield.reporting.terminal import SEVERITY_STYLE

    console = console or Console()
    if report.findings:
        table = Table(show_header=True, header_style="bold")
        for column in ("severity", "location", "finding"):
            table.add_column(column, overflow="fold")
        for finding in sorted(report.findings, key=lambda f: -f.severity.rank):
            table.add_row(
                Text(finding.severity.value, style=SEVERITY_STYLE[finding.severity]),
                Text(printable(finding.location or "")),  # member names come from the scanned files
                Text(printable(finding.title)),
            )
        console.print(table)
    console.print(scan_summary(report), highlight=False, markup=False)


def scan_summary(report: ScanResults) -> str:
    """The one-line summary: files scanned, time, number of findings and the worst severity."""
    worst = report.max_severity
    return (
        f"{len(report.files)} file(s) scanned in {report.duration_s:.2f}s; "
        f"{len(report.findings)} finding(s); worst: {worst.value if worst else 'none'}"
    )
