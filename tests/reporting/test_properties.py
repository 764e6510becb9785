"""Any findings at all (random text with Unicode and HTML, random metrics and charts) render everywhere: to
schema-valid JSON that round-trips, to valid SARIF, to HTML without an unescaped tag, and to the terminal."""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from modelshield.findings import Chart, Finding, OwaspMl, Report, Severity
from modelshield.reporting import render_html, render_json, render_sarif, render_terminal

_nasty = st.sampled_from(
    ["<script>alert(1)</script>", "<SCRIPT src=//x>", "</pre>", "&amp;", '"', "'", "[bold]", "[/x]", "\x1b[2J"]
)
_text = st.lists(st.text(max_size=20) | _nasty, max_size=4).map("".join)
_json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | _text
_json = st.recursive(
    _json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3), max_leaves=8
)


@st.composite
def _charts(draw: st.DrawFn, *, finite: bool) -> Chart:
    n = draw(st.integers(0, 6))
    numbers = st.floats(allow_nan=not finite, allow_infinity=not finite)
    x = draw(st.lists(numbers, min_size=n, max_size=n) | st.lists(_text, min_size=n, max_size=n))
    names = draw(st.lists(_text, max_size=3, unique=True))
    y_range = draw(st.none() | st.tuples(numbers, numbers))
    return Chart(
        draw(_text),
        draw(st.sampled_from(["bar", "line"])),
        x=tuple(x),
        series={name: tuple(draw(st.lists(numbers, min_size=n, max_size=n))) for name in names},
        x_label=draw(_text),
        y_label=draw(_text),
        y_range=y_range,
    )


def _findings(*, finite_charts: bool) -> st.SearchStrategy[Finding]:
    return st.builds(
        Finding,
        id=st.from_regex(r"[a-z0-9][a-z0-9_.\-]{0,20}", fullmatch=True),
        check=_text,
        title=_text,
        severity=st.sampled_from(list(Severity)),
        description=_text,
        remediation=_text,
        owasp=st.none() | st.sampled_from(list(OwaspMl)),
        atlas=st.lists(st.from_regex(r"AML\.T\d{4}(\.\d{3})?", fullmatch=True), max_size=3).map(tuple),
        metrics=st.dictionaries(_text, _json, max_size=4),
        evidence=st.dictionaries(_text, _json, max_size=3),
        location=st.none() | _text,
        charts=st.lists(_charts(finite=finite_charts), max_size=2).map(tuple),
    )


@settings(max_examples=60, deadline=None)
@given(findings=st.lists(_findings(finite_charts=False), max_size=5))
def test_any_findings_render_everywhere(
    report_factory: Callable[..., Report],
    report_validator: jsonschema.Validator,
    sarif_validator: jsonschema.Validator,
    findings: list[Finding],
) -> None:
    report = report_factory(findings=tuple(findings))

    report_validator.validate(json.loads(render_json(report)))

    sarif = json.loads(render_sarif(report))
    sarif_validator.validate(sarif)
    assert len(sarif["runs"][0]["results"]) == len(findings)

    page = render_html(report)
    assert "<script" not in page.lower()
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", page)
    page.encode("utf-8")  # writable as UTF-8: no lone surrogates
    for svg in re.findall(r"<svg.*?</svg>", page, re.S):
        ElementTree.fromstring(svg)

    buffer = io.StringIO()
    render_terminal(report, Console(file=buffer, width=100, color_system=None))
    assert "\x1b" not in buffer.getvalue()


@settings(max_examples=60, deadline=None)
@given(findings=st.lists(_findings(finite_charts=True), max_size=5))
def test_any_report_round_trips_through_json(
    report_factory: Callable[..., Report],
    findings: list[Finding],
    without_compliance: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    report = report_factory(findings=tuple(findings))
    text = render_json(report)
    again = Report.from_json(text)
    assert again.to_dict() == without_compliance(json.loads(text))
    assert render_json(again) == text


def test_a_chart_with_a_missing_value_round_trips(report_factory: Callable[..., Report]) -> None:
    chart = Chart("c", "line", x=(1.0, 2.0), series={"s": (1.0, math.nan)})
    finding = Finding(id="a.b", check="a", title="t", severity=Severity.LOW, description="", charts=(chart,))
    again = Report.from_json(render_json(report_factory(findings=(finding,))))
    values = again.findings[0].charts[0].series["s"]
    assert values[0] == 1.0 and math.isnan(values[1])
