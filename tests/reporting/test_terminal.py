"""The terminal summary: what it shows, in what order, and that untrusted text cannot drive the terminal."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from rich.console import Console

from modelshield.findings import Chart, CheckRun, CheckStatus, Finding, Report, Severity
from modelshield.reporting import render_terminal


def render(report: Report, *, width: int = 140, colour: bool = False, details: bool = False) -> str:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        color_system="truecolor" if colour else None,
        force_terminal=colour,
        legacy_windows=False,
    )
    render_terminal(report, console, details=details)
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


NESTED = Finding(
    id="membership.leakage",
    check="membership",
    title="Membership inference singles out 1.9% of training records",
    severity=Severity.LOW,
    description="Best attack rmia on 1347 members.",
    remediation="Train with differential privacy (`modelshield harden --defense dp-sgd`).",
    metrics={
        "auc": 0.5463,
        "attacks": {
            name: {"auc": 0.51, "tpr_at_0.1%_fpr_interval": [0.0, 0.0041], "supported": False, "members": 1347}
            for name in ("loss", "population", "rmia")
        },
        "roc": [0.001, 0.01, 0.1, 1.0],
        "recipe": {"attack": "rmia (pooled)", "members": 10776},
    },
    charts=(
        Chart(
            "Membership inference ROC", "line", x=(0.001, 0.01, 0.1, 1.0), series={"chance": (0.001, 0.01, 0.1, 1.0)}
        ),
    ),
)


def test_details_show_each_finding_with_its_metrics_as_tables(report_factory: Callable[..., Report]) -> None:
    text = render(report_factory(findings=(NESTED,)), details=True)
    assert "Best attack rmia on 1347 members." in text
    assert "What to do: Train with differential privacy (modelshield harden --defense dp-sgd)." in text  # no backticks
    assert "{" not in text and "[0.0" not in text  # no JSON
    lines = text.splitlines()
    header = next(line for line in lines if "auc" in line and "members" in line)
    assert header.split() == ["auc", "tpr_at_0.1%_fpr_interval", "supported", "members"]  # a records table
    assert any(line.split() == ["rmia", "0.51", "0,", "0.0041", "no", "1,347"] for line in lines)
    assert any(line.split()[:2] == ["roc", "4"] and "drawn in the chart" in line for line in lines)
    assert "members  10,776" in text  # a nested mapping, under its name
    assert "Charts in the HTML report: Membership inference ROC" in text
    assert lines[-1].startswith("Verdict: low")


def test_details_fit_a_narrow_terminal(report_factory: Callable[..., Report]) -> None:
    text = render(report_factory(findings=(NESTED,)), width=60, details=True)
    assert all(len(line) <= 60 for line in text.splitlines())
    assert "  loss" in [line.rstrip() for line in text.splitlines()]  # too wide for the terminal: a block per record
    assert "{" not in text


def test_details_are_off_by_default(report: Report) -> None:
    assert "What to do" not in render(report)
    assert "What to do: Adversarially train the model" in render(report, details=True)
