"""The terminal summary: target, findings worst first, check statuses, and a verdict line.

>>> from modelshield.reporting import render_terminal
>>> render_terminal(report)  # doctest: +SKIP
>>> render_terminal(report, details=True)  # doctest: +SKIP

With ``details``, each finding follows in full: description, what to do, and its metrics as tables (nested values
as tables, series that a chart draws left out, as in the HTML report). Before the verdict, a table gives the
compliance mapping per framework: requirements covered, and the gaps (:mod:`modelshield.reporting.compliance`;
the HTML and JSON reports have the evidence).
"""

from __future__ import annotations

import re

from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from modelshield.findings import CheckStatus, Finding, Report, Severity
from modelshield.reporting._metrics import Omitted, Pairs, Records, Shown, shape
from modelshield.reporting.compliance import assess
from modelshield.reporting.interface import printable

__all__ = ["SEVERITY_STYLE", "render_terminal"]

SEVERITY_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
_STATUS = {
    CheckStatus.PASSED: "green",
    CheckStatus.FINDINGS: "yellow",
    CheckStatus.SKIPPED: "dim",
    CheckStatus.ERROR: "bold red",
}


def _text(value: str, style: str = "") -> Text:
    """Untrusted text as a rich Text: no markup parsed, no control characters (terminal escapes) printed."""
    return Text(printable(value), style=style)


_CODE = re.compile(r"`([^`\n]+)`")


def _prose(value: str) -> Text:
    """Untrusted text with its `code` spans in bold, without the backticks."""
    parts = _CODE.split(printable(value))
    return Text.assemble(*((part, "bold") if i % 2 else part for i, part in enumerate(parts)))


def _cell(value: str | Omitted) -> Text:
    return _text(value.note, "dim italic") if isinstance(value, Omitted) else _text(value)


def _shown(console: Console, value: Shown, width: int) -> list[RenderableType]:
    """A shaped metric (:mod:`modelshield.reporting._metrics`) in ``width`` columns: key/value rows, each nested
    table under its key; records as a table where it fits, else one block of key/value rows per record."""
    if isinstance(value, str | Omitted):
        return [_cell(value)]
    if isinstance(value, Records):
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for column in ("", *value.columns) if value.names else value.columns:
            table.add_column(_text(column))
        for i, row in enumerate(value.rows):
            name = [_text(value.names[i], "bold")] if value.names else []
            table.add_row(*name, *(Group(*_shown(console, cell, width)) for cell in row))
        if Measurement.get(console, console.options, table).maximum <= width:
            return [table]
        blocks = Pairs(tuple((value.names[i] if value.names else f"#{i + 1}", Pairs(tuple(zip(value.columns, row,
                       strict=True)))) for i, row in enumerate(value.rows)))  # fmt: skip
        return _shown(console, blocks, width)
    out: list[RenderableType] = []
    flat: Table | None = None
    for key, cell in value.rows:
        if isinstance(cell, str | Omitted):
            if flat is None:
                flat = Table(show_header=False, box=None, pad_edge=False)
                flat.add_column(overflow="fold")
                flat.add_column(overflow="fold")
                out.append(flat)
            flat.add_row(_text(key, "bold"), _cell(cell))
        else:
            flat = None
            out += [_text(key, "bold"), Padding(Group(*_shown(console, cell, width - 2)), (0, 0, 0, 2), expand=False)]
    return out


def _details(console: Console, finding: Finding) -> None:
    console.print()
    console.print(
        Text.assemble((finding.severity.value, SEVERITY_STYLE[finding.severity]), " ", _text(finding.title, "bold"))
    )
    console.print(_text(f"{finding.id} from check {finding.check}", "dim"), overflow="fold")
    if finding.description:
        console.print(_prose(finding.description))
    if finding.remediation:
        console.print(Text.assemble(("What to do: ", "bold"), _prose(finding.remediation)))
    if finding.metrics:
        console.print(*_shown(console, shape(finding.metrics, finding.charts), console.width))
    if finding.charts:
        titles = "; ".join(chart.title for chart in finding.charts)
        console.print(_text(f"Charts in the HTML report: {titles}", "dim"))


def _compliance(console: Console, report: Report) -> None:
    """Per framework: requirements covered of those in scope, and the ids of the gaps."""
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("compliance", overflow="fold")
    table.add_column("covered", no_wrap=True)
    table.add_column("gaps", overflow="fold")
    for coverage in assess(report).frameworks:
        framework = coverage.framework
        table.add_row(
            Text(f"{framework.name} ({framework.version})"),
            f"{len(coverage.covered)}/{len(coverage.requirements)}",
            Text(", ".join(r.requirement.id for r in coverage.gaps) or "none"),
        )
    console.print(table)
    console.print(Text("Compliance mapping: evidence for an assessor, not a certification.", style="dim"))


def render_terminal(report: Report, console: Console | None = None, *, details: bool = False) -> None:
    """Print a compact summary of ``report``: target and digests, checks, findings worst first, verdict; with
    ``details``, each finding in full (description, what to do, metrics) before the verdict."""
    console = console or Console()
    target = report.target
    console.print(
        Text.assemble(("Target ", "bold"), _text(target.name, "bold cyan"), _text(f"  ({target.model_format})"))
    )
    for name, digest in (("model", target.model_sha256), ("train", target.train_sha256), ("test", target.test_sha256)):
        if digest:
            console.print(_text(f"{name:<5} sha256 {digest}", "dim"), overflow="fold")
    checks = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("check", "status", "time", "note"):
        checks.add_column(column, overflow="fold")
    for run in report.checks:
        checks.add_row(
            _text(run.name),
            Text(run.status.value, style=_STATUS[run.status]),
            f"{run.duration_s:.2f}s",
            _text(run.reason),
        )
    console.print(checks)
    if report.findings:
        wide = console.width >= 120  # the finding id and ATLAS ids only where they fit
        table = Table(show_header=True, header_style="bold", expand=False)
        table.add_column("severity", no_wrap=True)
        table.add_column("finding", overflow="fold")
        table.add_column("OWASP", no_wrap=True)
        if wide:
            table.add_column("id", overflow="fold")
            table.add_column("ATLAS", overflow="fold")
        for f in report.sorted_findings():
            cells = [
                Text(f.severity.value, style=SEVERITY_STYLE[f.severity]),
                _text(f.title),
                Text(f.owasp.value if f.owasp else ""),
            ]
            if wide:
                cells += [_text(f.id, "dim"), Text(", ".join(f.atlas))]
            table.add_row(*cells)
        console.print(table)
        if details:
            for finding in report.sorted_findings():
                _details(console, finding)
    _compliance(console, report)
    counts = report.counts()
    worst = report.max_severity
    tally = ", ".join(f"{counts[s.value]} {s.value}" for s in sorted(Severity, reverse=True) if counts[s.value])
    console.print(
        Text.assemble(
            ("Verdict: ", "bold"),
            (worst.value if worst else "no findings", SEVERITY_STYLE[worst] if worst else "green"),
            f"  ({tally})" if tally else "",
            ("  AUDIT INCOMPLETE: a check failed to run" if not report.complete else "", "bold red"),
        )
    )
