"""The terminal summary: target, findings worst first, check statuses, and a verdict line.

>>> from modelshield.reporting import render_terminal
>>> render_terminal(report)  # doctest: +SKIP
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from modelshield.findings import CheckStatus, Report, Severity
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


def render_terminal(report: Report, console: Console | None = None) -> None:
    """Print a compact summary of ``report``: target and digests, checks, findings worst first, verdict."""
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
