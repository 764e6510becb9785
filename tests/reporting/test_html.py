"""The HTML report: self-contained, escaped, complete, readable on a phone and in dark mode."""

from __future__ import annotations

import re
from collections.abc import Callable
from xml.etree import ElementTree

import pytest

from modelshield.findings import ATLAS_TECHNIQUES, Finding, Report, Severity
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
    tables = page.count("<table>")
    assert tables >= 3 and page.count('<div class="scroll"><table>') == tables  # every table scrolls on its own


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
    assert "<th>robust_accuracy</th><td>0.03</td>" in evasion
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
