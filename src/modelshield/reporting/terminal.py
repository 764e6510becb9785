"""The terminal summary: target, findings worst first, check statuses, and a verdict line.

>>> from modelshield.reporting import render_terminal
>>> render_terminal(report)  # doctest: +SKIP
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from modelshield.findings import CheckStatus, Report, Severity

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


def render_terminal(report: Report, console: Console | None = None) -> None:
    """Print a compact summary of ``report``."""
    console = console or Console()
    target = report.target
    console.print(Text.assemble(("Target ", "bold"), (target.name, "bold cyan"), f"  ({target.model_format})"))
    if target.model_sha256:
        console.print(Text(f"model sha256 {target.model_sha256}", style="dim"))
    checks = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("check", "status", "time", "note"):
        checks.add_column(column)
    for run in report.checks:
        checks.add_row(
            run.name, Text(run.status.value, style=_STATUS[run.status]), f"{run.duration_s:.2f}s", Text(run.reason)
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
            cells: list[Text | str] = [
                Text(f.severity.value, style=SEVERITY_STYLE[f.severity]),
                Text(f.title),
                f.owasp.value if f.owasp else "",
            ]
            if wide:
                cells += [Text(f.id, style="dim"), ", ".join(f.atlas)]
            table.add_row(*cells)
        console.print(table)
    counts = report.counts()
    worst = report.max_severity
    line = Text.assemble(
        ("Verdict: ", "bold"),
        (worst.value if worst else "no findings", SEVERITY_STYLE[worst] if worst else "green"),
        "  (" + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ")" if report.findings else "",
        ("  AUDIT INCOMPLETE: a check failed to run" if not report.complete else "", "bold red"),
    )
    console.print(line)
