"""The HTML report: one self-contained file (inline CSS, charts as inline SVG, no scripts, no network).

    >>> from modelshield.reporting import render_html
    >>> page = render_html(report)  # doctest: +SKIP
    >>> "<svg" in page  # doctest: +SKIP
    True

Rendered with Jinja2 and autoescaping: model names, messages and evidence are untrusted text. Every value is
also stripped of control characters before it is escaped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import cache

import jinja2
from markupsafe import Markup

from modelshield.findings import ATLAS_TECHNIQUES, CheckStatus, Report, Severity
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


def _number(value: object) -> str:
    """A metric for people: integers with thousands separators, floats to four significant digits."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _pretty(value: Mapping[str, object]) -> str:
    """Evidence as indented JSON text (escaped by the template like any other text)."""
    return json.dumps(dict(value), indent=1, ensure_ascii=False, default=str)


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
    env.filters["examples"] = render_examples
    env.filters["pretty"] = _pretty
    env.filters["number"] = _number
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
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            report=report,
            findings=report.sorted_findings(),
            counts=counts,
            severities=order,
            colours={s.value: c for s, c in SEVERITY_COLOURS.items()},
            status_colours={s.value: c for s, c in STATUS_COLOURS.items()},
            summary=summary,
            atlas=ATLAS_TECHNIQUES,
            verdict=worst.value if worst else "none",
            verdict_colour=SEVERITY_COLOURS[worst] if worst else _NO_FINDINGS_COLOUR,
            config=json.dumps(dict(report.config), indent=1, ensure_ascii=False, default=str),
        )
    )
