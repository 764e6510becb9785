"""The HTML report: one self-contained file (inline CSS, charts as inline SVG, no scripts, no network).

    >>> from modelshield.reporting import render_html
    >>> page = render_html(report)  # doctest: +SKIP

Rendered with Jinja2 and autoescaping: model names, messages and evidence are untrusted text.
"""

from __future__ import annotations

import json
from functools import cache

import jinja2

from modelshield.findings import ATLAS_TECHNIQUES, Report, Severity
from modelshield.reporting.svg import render_bars, render_chart

__all__ = ["SEVERITY_COLOURS", "render_html"]

SEVERITY_COLOURS = {
    Severity.CRITICAL: "#8b0000",
    Severity.HIGH: "#c0392b",
    Severity.MEDIUM: "#b35900",
    Severity.LOW: "#2b6cb0",
    Severity.INFO: "#4a5568",
}


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("modelshield.reporting", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["chart"] = render_chart
    env.filters["pretty"] = lambda value: json.dumps(dict(value), indent=1, ensure_ascii=False, default=str)
    env.filters["number"] = _number
    return env


def _number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def render_html(report: Report) -> str:
    """The report as one HTML page."""
    counts = report.counts()
    order = list(reversed(Severity))
    summary = render_bars(
        "Findings by severity",
        [s.value for s in order],
        [counts[s.value] for s in order],
        [SEVERITY_COLOURS[s] for s in order],
    )
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            report=report,
            findings=report.sorted_findings(),
            counts=counts,
            severities=order,
            colours={s.value: c for s, c in SEVERITY_COLOURS.items()},
            summary=summary,
            atlas=ATLAS_TECHNIQUES,
            verdict=report.max_severity.value if report.max_severity else "none",
        )
    )
