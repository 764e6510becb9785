"""The HTML report: one self-contained file (inline CSS, charts as inline SVG, no scripts, no network).

    >>> from modelshield.reporting import render_html
    >>> page = render_html(report)  # doctest: +SKIP
    >>> "<svg" in page  # doctest: +SKIP
    True

Rendered with Jinja2 and autoescaping: model names, messages and evidence are untrusted text. Every value is
also stripped of control characters before it is escaped. Metrics, evidence and the configuration are shown as
tables (:mod:`modelshield.reporting._metrics`), with series that a chart draws left out; report.json keeps the
raw values. In descriptions and remedies, text between backticks is shown as code. Each finding lists the
requirements it is evidence for, and a compliance section shows a table per framework: covered or not, the
evidence (linked findings, checks that ran) and the gaps (:mod:`modelshield.reporting.compliance`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

import jinja2
from markupsafe import Markup, escape

from modelshield.findings import ATLAS_TECHNIQUES, CheckStatus, Finding, Report, Severity
from modelshield.reporting._metrics import Omitted, Pairs, Records, shape
from modelshield.reporting.compliance import ComplianceTable, RequirementCoverage, assess, load_table
from modelshield.reporting.interface import SEVERITY_COLOURS, printable
from modelshield.reporting.svg import render_bars, render_chart, render_examples

__all__ = ["SEVERITY_COLOURS", "STATUS_COLOURS", "render_html"]

#: Badge colours per check status; white text on each keeps a contrast of at least 4.5:1.
STATUS_COLOURS: dict[CheckStatus, str] = {
    CheckStatus.PASSED: "#2f855a",
    CheckStatus.FINDINGS: "#b35900",
    CheckStatus.SKIPPED: "#4a5568",
    CheckStatus.ERROR: "#8b0000",
}
_NO_FINDINGS_COLOUR = "#2f855a"


def _finalize(value: object) -> object:
    """Applied to every ``{{ expression }}`` before autoescaping: no control characters in the page."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return printable(value)
    return value


_CODE = re.compile(r"`([^`\n]+)`")


def _prose(value: str) -> Markup:
    """Text with its `code` spans as ``<code>`` elements; everything else escaped."""
    parts = _CODE.split(printable(value))
    return Markup("").join(Markup("<code>{}</code>").format(p) if i % 2 else escape(p) for i, p in enumerate(parts))


def _breakable(value: str) -> Markup:
    """A metric's name that may wrap after its underscores (``robust_accuracy_at_reference``)."""
    return Markup(str(escape(printable(value))).replace("_", "_<wbr>"))  # noqa: S704 - escaped first


@dataclass(frozen=True)
class _Shown:
    """A finding and what the page shows of it: metrics and evidence as tables, examples drawn."""

    finding: Finding
    metrics: Pairs
    evidence: Pairs
    examples: Markup
    compliance: tuple[tuple[str, tuple[str, ...]], ...]  # (framework's name, requirement ids) where any


@dataclass(frozen=True)
class _Requirement:
    """A requirement's row of a framework's compliance table: its coverage, and its findings with their anchors."""

    coverage: RequirementCoverage
    findings: tuple[tuple[int, Finding], ...]  # (the finding's number on the page, the finding)


def _label(table: ComplianceTable, key: str) -> str:
    framework = table.framework(key)
    return f"{framework.name} ({framework.version})"


def _shown(finding: Finding, table: ComplianceTable) -> _Shown:
    examples = finding.evidence.get("examples")
    drawn = (
        render_examples([e for e in examples if isinstance(e, Mapping)]) if isinstance(examples, list) else Markup("")
    )
    notes = {"examples": "drawn above, under Examples"} if drawn else {}
    return _Shown(
        finding=finding,
        metrics=shape(finding.metrics, finding.charts),
        evidence=shape(finding.evidence, finding.charts, drawn=notes),
        examples=drawn,
        compliance=tuple(
            (_label(table, key), ids) for key, ids in table.for_finding(finding.id, finding.check).items() if ids
        ),
    )


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("modelshield.reporting", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["chart"] = render_chart
    env.filters["prose"] = _prose
    env.filters["breakable"] = _breakable
    env.tests["omitted"] = lambda value: isinstance(value, Omitted)
    env.tests["pairs"] = lambda value: isinstance(value, Pairs)
    env.tests["records"] = lambda value: isinstance(value, Records)
    return env


def render_html(report: Report) -> str:
    """The report as one HTML page that needs nothing else: no network, no scripts, readable on a phone."""
    counts = report.counts()
    order = sorted(Severity, reverse=True)  # critical first
    summary = render_bars(
        "Findings by severity",
        [s.value for s in order],
        [counts[s.value] for s in order],
        [SEVERITY_COLOURS[s] for s in order],
    )
    worst = report.max_severity
    table = load_table()
    findings = report.sorted_findings()
    number = {id(f): i for i, f in enumerate(findings, start=1)}  # the page's anchors, #finding-N
    section = assess(report, table)
    compliance = [
        (
            coverage.framework,
            [_Requirement(r, tuple((number[id(f)], f) for f in r.findings)) for r in coverage.requirements],
            len(coverage.covered),
        )
        for coverage in section.frameworks
    ]
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            report=report,
            findings=[_shown(f, table) for f in findings],
            counts=counts,
            severities=order,
            colours={s.value: c for s, c in SEVERITY_COLOURS.items()},
            status_colours={s.value: c for s, c in STATUS_COLOURS.items()},
            summary=summary,
            atlas=ATLAS_TECHNIQUES,
            verdict=worst.value if worst else "none",
            verdict_colour=SEVERITY_COLOURS[worst] if worst else _NO_FINDINGS_COLOUR,
            config=shape(report.config),
            compliance=compliance,
            compliance_caveat=section.caveat,
            compliance_version=section.table_version,
        )
    )
