"""The HTML report: self-contained, escaped, complete, readable on a phone and in dark mode."""

from __future__ import annotations

import re
from collections.abc import Callable
from xml.etree import ElementTree

import pytest

from modelshield.findings import ATLAS_TECHNIQUES, Chart, Finding, Report, Severity
from modelshield.reporting import render_html
from modelshield.reporting.html import SEVERITY_COLOURS, STATUS_COLOURS
from modelshield.reporting.svg import PALETTE

SVG_NS = "http://www.w3.org/2000/svg"


def luminance(colour: str) -> float:
    """WCAG relative luminance of ``#rrggbb``."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def css_variables(page: str) -> tuple[dict[str, str], dict[str, str]]:
    """The colour variables of the light and the dark scheme."""
    light = dict(
        re.findall(r"--(\w+): (#[0-9a-f]{6})", page.split("@media (prefers-color-scheme: dark)", maxsplit=1)[0])
    )
    dark_block = re.search(r"@media \(prefers-color-scheme: dark\) \{(.*?)\}\s*\}", page, re.S)
    assert dark_block, "no dark scheme"
    dark = dict(re.findall(r"--(\w+): (#[0-9a-f]{6})", dark_block.group(1)))
    return light, dark


def test_page_is_self_contained(report: Report) -> None:
    page = render_html(report)
    urls = set(re.findall(r"(?:https?:)?//[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    lowered = page.lower()
    for needle in ("<script", "<link", "<img", "<iframe", "@import", "url(", " src=", "<object", "<embed"):
        assert needle not in lowered, needle


def test_page_is_made_for_phones(report: Report) -> None:
    page = render_html(report)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in page
    assert ".scroll { overflow-x: auto;" in page
    # every outermost table scrolls on its own (tables nested in a cell scroll with it)
    outermost = re.sub(r"<td[^>]*><table.*?</table></td>", "", page, flags=re.S)
    tables = outermost.count("<table")
    assert tables >= 3 and outermost.count('<div class="scroll"><table') == tables


def test_untrusted_text_is_escaped(report: Report) -> None:
    page = render_html(report)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; gap" in page  # a finding title
    assert "&lt;/pre&gt;&lt;script&gt;" in page  # evidence
    assert "zoo:&lt;digits&gt;" in page  # the target's name
    assert "RuntimeError: &lt;kaput&gt;" in page  # a check's reason
    assert "&#34;quoted&#34; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert "<b>bold</b>" not in page


def test_control_characters_do_not_reach_the_page(report_factory: Callable[..., Report]) -> None:
    finding = Finding(id="a.b", check="a\x1b[31m", title="nul\x00 bell\x07", severity=Severity.LOW, description="")
    page = render_html(report_factory(extra=(finding,)))
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", page)
    assert "nul\ufffd bell\ufffd" in page


def test_header_shows_target_digest_and_verdict(report: Report) -> None:
    page = render_html(report)
    header = page.split("</header>")[0]
    assert "<h1>zoo:&lt;digits&gt;</h1>" in header
    assert "a" * 64 in header
    assert f'background:{SEVERITY_COLOURS[Severity.CRITICAL]}">critical</span>' in header
    assert "audit incomplete" in header
    for severity in Severity:
        assert f">{report.counts()[severity.value]} {severity.value}</span>" in header
    assert '<svg class="bars"' in header  # the severity summary


def test_metadata_and_checks(report: Report) -> None:
    page = render_html(report)
    for text in (
        "<th>seed</th><td>7</td>",
        "<th>budget</th><td>quick</td>",
        "<th>started</th><td>2026-11-22T11:00:00+01:00</td>",
        "<th>duration</th><td>2.25 s</td>",
        "numpy 2.1.0",
        "b" * 64,
        "c" * 64,
        "/tmp/cache/model.safetensors",
        "1×8×8",
    ):
        assert text in page, text
    for check in report.checks:
        assert f"<td>{check.name}</td>" in page
        assert f'background:{STATUS_COLOURS[check.status]}">{check.status.value}</span>' in page
    assert "needs the training data" in page


def test_findings_in_full_worst_first(report: Report) -> None:
    page = render_html(report)
    sections = re.findall(r'<section class="finding".*?</section>', page, re.S)
    assert len(sections) == len(report.findings)
    for section, finding in zip(sections, report.sorted_findings(), strict=True):
        assert f">{finding.severity.value}</span>" in section
        assert f"<code>{finding.id}</code>" in section
        if finding.owasp:
            assert f"OWASP ML Top 10: {finding.owasp.value} {finding.owasp.label}" in section
        for technique in finding.atlas:
            assert f"MITRE ATLAS: {technique} {ATLAS_TECHNIQUES[technique]}" in section
        assert section.count("<svg") == len(finding.charts)
    evasion = sections[0]
    assert "What to do:</strong> Adversarially train the model" in evasion
    assert "<th>queries</th><td>12,000</td>" in evasion
    assert "<th>robust_<wbr>accuracy</th><td>0.03</td>" in evasion  # long names may wrap after underscores
    assert "Evidence" in sections[1] and "os.system" in sections[1]
    assert "Location: <span" in sections[1]


def test_every_chart_is_an_accessible_scalable_svg(report: Report) -> None:
    page = render_html(report)
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 1 + sum(len(f.charts) for f in report.findings)
    for svg in svgs:
        root = ElementTree.fromstring(svg)  # well-formed XML
        assert root.tag == f"{{{SVG_NS}}}svg"
        assert re.fullmatch(r"0 0 \d+ \d+", root.attrib["viewBox"])
        assert root.attrib["role"] == "img"
        title = root.find(f"{{{SVG_NS}}}title")
        assert title is not None and title.text


def test_no_findings(report_factory: Callable[..., Report]) -> None:
    page = render_html(report_factory(findings=(), checks=()))
    assert "<p>No findings.</p>" in page
    assert ">none</span>" in page
    assert "audit incomplete" not in page


@pytest.mark.parametrize("colour", [*SEVERITY_COLOURS.values(), *STATUS_COLOURS.values()])
def test_badges_keep_white_text_readable(colour: str) -> None:
    assert contrast(colour, "#ffffff") >= 4.5  # WCAG AA for normal text


def test_text_colours_are_readable_in_both_schemes(report: Report) -> None:
    page = render_html(report)
    for scheme in css_variables(page):
        for background in (scheme["bg"], scheme["panel"]):
            assert contrast(scheme["fg"], background) >= 7.0
            assert contrast(scheme["muted"], background) >= 4.5


@pytest.mark.parametrize("colour", PALETTE)
def test_chart_colours_stand_out_in_both_schemes(report: Report, colour: str) -> None:
    for scheme in css_variables(render_html(report)):
        for background in (scheme["bg"], scheme["panel"]):
            assert contrast(colour, background) >= 3.0  # WCAG AA for graphics


def section(page: str, finding_id: str) -> str:
    """The HTML of the finding with ``finding_id``."""
    found: list[str] = [
        s for s in re.findall(r'<section class="finding".*?</section>', page, re.S) if f"<code>{finding_id}<" in s
    ]
    assert len(found) == 1, finding_id
    return found[0]


CURVE = Chart("Backdoor success against poison fraction", "line", x=(0.0, 1.0, 5.0),
              series={"attack success": (0.04, 0.65, 0.99), "clean accuracy": (0.98, 0.97, 0.97)})  # fmt: skip
NESTED = Finding(
    id="poisoning.backdoor",
    check="poisoning",
    title="Backdoor from poisoned training data",
    severity=Severity.MEDIUM,
    description="d",
    metrics={
        "fraction_needed": 0.05,
        "curve": [
            {"fraction": 0.0, "records": 0, "success_interval": [0.0264, 0.069]},
            {"fraction": 0.01, "records": 13, "success_interval": [0.5976, 0.6927]},
        ],
        "attacks": {"loss": {"auc": 0.5125, "supported": False}, "rmia <b>": {"auc": 0.5463, "supported": True}},
        "sanitiser": {"recall": 1.0, "detectors": ["spectral", "activation-clustering"], "removed": None},
        "success": [0.04, 0.65, 0.99],  # drawn by the chart
        "long": list(range(40)),
    },
    evidence={"examples": [{"label": "3 -> 8", "clean": [[0.0, 1.0]], "adversarial": [[1.0, 0.0]]}], "n": 3},
    charts=(CURVE,),
)


def test_nested_metrics_are_tables_not_json(report_factory: Callable[..., Report]) -> None:
    html = section(render_html(report_factory(extra=(NESTED,))), "poisoning.backdoor")
    assert "{&#34;" not in html and "[{" not in html and "&#34;:" not in html  # no JSON text
    # a list of records: a table with a column per key; lists of numbers in a cell
    assert "<th>fraction</th><th>records</th><th>success_<wbr>interval</th>" in html
    assert '<td data-label="records">13</td><td data-label="success_interval">0.5976, 0.6927</td>' in html
    # a mapping of records: a row per key (untrusted keys escaped)
    assert '<th scope="row">loss</th><td data-label="auc">0.5125</td><td data-label="supported">no</td>' in html
    assert '<th scope="row">rmia &lt;b&gt;</th>' in html
    # any other mapping: key/value rows under its name
    assert '<th colspan="2" class="group">sanitiser</th>' in html
    assert "<th>detectors</th><td>spectral, activation-clustering</td>" in html
    assert "<th>removed</th><td>none</td>" in html
    # a series the chart draws, and a long list: left out, with a note
    assert '<th>success</th><td><span class="muted">3 values, drawn in the chart “Backdoor success' in html
    assert '<th>long</th><td><span class="muted">40 values, in report.json</span>' in html


def test_evidence_and_configuration_are_tables(report_factory: Callable[..., Report]) -> None:
    page = render_html(report_factory(extra=(NESTED,), config={"settings": {"evasion": {"steps": 10}}, "seed": 7}))
    html = section(page, "poisoning.backdoor")
    evidence = html.split("<summary>Evidence</summary>")[1]
    assert '<th>examples</th><td><span class="muted">drawn above, under Examples</span>' in evidence
    assert "<th>n</th><td>3</td>" in evidence and "[[" not in evidence  # pixels are drawn, not dumped
    assert html.count("<svg") == 2  # the chart and the one example pair
    audit = page.split("<h2>Audit</h2>")[1].split("<h2>")[0]
    assert '<th colspan="2" class="group">settings</th>' in audit and "<th>steps</th><td>10</td>" in audit
    assert "<pre>" not in audit


def test_code_spans_in_prose_are_code(report_factory: Callable[..., Report]) -> None:
    finding = Finding(
        id="a.code",
        check="a",
        title="t",
        severity=Severity.LOW,
        description="Load it with `torch.load(f, weights_only=True)`; a lone ` stays.",
        remediation="Run `modelshield harden --defense <x>` and then `<script>alert(1)</script>`.",
    )
    html = section(render_html(report_factory(extra=(finding,))), "a.code")
    assert "<code>torch.load(f, weights_only=True)</code>; a lone ` stays." in html
    assert "Run <code>modelshield harden --defense &lt;x&gt;</code> and then" in html
    assert "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>." in html
    assert "<script" not in html and "`modelshield" not in html
