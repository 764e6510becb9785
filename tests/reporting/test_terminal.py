"""The terminal summary: what it shows, in what order, and that untrusted text cannot drive the terminal."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from rich.console import Console

from modelshield.findings import CheckRun, CheckStatus, Finding, Report, Severity
from modelshield.reporting import render_terminal


def render(report: Report, *, width: int = 140, colour: bool = False) -> str:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        color_system="truecolor" if colour else None,
        force_terminal=colour,
        legacy_windows=False,
    )
    render_terminal(report, console)
    return buffer.getvalue()


def test_summary_shows_target_digests_checks_findings_and_verdict(report: Report) -> None:
    text = render(report)
    lines = text.splitlines()
    assert lines[0] == "Target zoo:<digits>  (safetensors)"
    assert lines[1:4] == [f"model sha256 {'a' * 64}", f"train sha256 {'b' * 64}", f"test  sha256 {'c' * 64}"]
    for check in report.checks:
        assert check.name in text
    for status in ("findings", "skipped", "error", "passed"):
        assert status in text
    assert "needs the training data" in text
    assert "RuntimeError: <kaput>" in text
    positions = [text.index(f.title[:20]) for f in report.sorted_findings()]
    assert positions == sorted(positions)  # worst first
    assert "AML.T0024.000" in text  # ATLAS ids where the terminal is wide enough
    assert lines[-1] == (
        "Verdict: critical  (2 critical, 2 high, 2 medium, 2 low, 2 info)  AUDIT INCOMPLETE: a check failed to run"
    )


def test_verdict_without_findings(report_factory: Callable[..., Report]) -> None:
    text = render(report_factory(findings=(), checks=(CheckRun("baseline", CheckStatus.PASSED, 0.1),)))
    assert text.splitlines()[-1] == "Verdict: no findings"


@pytest.mark.parametrize("width", [40, 80])
def test_narrow_terminals(report: Report, width: int) -> None:
    text = render(report, width=width)
    assert all(len(line) <= width for line in text.splitlines())
    assert "AML.T0024.000" not in text  # left out where it does not fit
    assert "Verdict: critical" in text


def test_severity_is_coloured(report: Report) -> None:
    text = render(report, colour=True)
    assert "\x1b[" in text
    plain = render(report)
    assert "\x1b" not in plain


def test_markup_and_escapes_in_untrusted_text_are_inert(report_factory: Callable[..., Report]) -> None:
    hostile = Finding(
        id="a.b", check="a", title="[bold red]fake[/] [/oops] \x1b]0;pwned\x07", severity=Severity.HIGH, description=""
    )
    report = report_factory(
        extra=(hostile,),
        checks=(CheckRun("[/bad]check\x1b[2J", CheckStatus.ERROR, 0.0, "[link=file:///etc]x[/link]"),),
    )
    text = render(report)
    assert "[bold red]fake[/] [/oops]" in text
    assert "[/bad]check" in text
    assert "[link=file:///etc]x[/link]" in text
    assert "\x1b" not in text and "\x07" not in text
