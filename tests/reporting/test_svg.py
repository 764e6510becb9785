"""The SVG charts: grouped bars, line charts, axes and legends, y_range, and robustness to any numbers."""

from __future__ import annotations

import math
import re
from xml.etree import ElementTree

from hypothesis import given, settings
from hypothesis import strategies as st

from modelshield.findings import Chart
from modelshield.reporting.svg import PALETTE, render_bars, render_chart

NS = {"svg": "http://www.w3.org/2000/svg"}


def parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)


def texts(root: ElementTree.Element) -> list[str]:
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]


def numbers(svg: str) -> list[float]:
    """Every numeric attribute value (coordinates and sizes)."""
    values = re.findall(r'\b(?:x|y|x1|x2|y1|y2|cx|cy|r|width|height)="([^"]*)"', svg)
    values += [v for points in re.findall(r'points="([^"]*)"', svg) for v in re.split(r"[ ,]", points)]
    return [float(v) for v in values]


def test_grouped_bars_with_legend_and_y_range() -> None:
    chart = Chart(
        "Recall",
        "bar",
        x=("cat", "dog", "eel"),
        series={"clean": (0.9, 1.0, 0.5), "attacked": (0.1, 1.7, -0.2)},
        x_label="class",
        y_label="recall",
        y_range=(0.0, 1.0),
    )
    root = parse(render_chart(chart))
    bars = root.findall("svg:rect", NS)
    legend, data = bars[:2], bars[2:]
    assert [b.attrib["fill"] for b in legend] == list(PALETTE[:2])
    assert len(data) == 6
    assert [b.attrib["fill"] for b in data] == [PALETTE[0]] * 3 + [PALETTE[1]] * 3
    labels = texts(root)
    for label in ("Recall", "clean", "attacked", "cat", "dog", "eel", "class", "recall", "0", "0.4", "1"):
        assert label in labels, label
    assert "1.2" not in labels  # the axis ends at y_range, not at the data's 1.7
    # 1.7 and -0.2 are drawn at the edges of the plot: no bar reaches outside the [0, 1] band
    heights = {float(b.attrib["height"]) for b in data}
    full = max(heights)
    assert float(data[4].attrib["height"]) == full  # 1.7 clipped to 1.0, as tall as the 1.0 bar
    assert float(data[5].attrib["height"]) == 0.0  # -0.2 clipped to 0
    assert data[0].find("svg:title", NS).text == "clean, cat: 0.9"  # type: ignore[union-attr]


def test_one_series_needs_no_legend() -> None:
    root = parse(render_chart(Chart("c", "bar", x=("a",), series={"only": (2.0,)})))
    assert len(root.findall("svg:rect", NS)) == 1
    assert "only" not in texts(root)


def test_line_chart_with_numeric_axis() -> None:
    chart = Chart("Accuracy", "line", x=(0.0, 0.5, 1.0), series={"PGD": (1.0, 0.5, 0.0), "FGSM": (1.0, 0.7, 0.4)})
    root = parse(render_chart(chart))
    lines = root.findall("svg:polyline", NS)
    assert [line.attrib["stroke"] for line in lines] == list(PALETTE[:2])
    points = [tuple(map(float, p.split(","))) for p in lines[0].attrib["points"].split()]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    assert xs == sorted(xs) and ys == sorted(ys)  # left to right, falling accuracy goes down the page
    assert len(root.findall("svg:circle", NS)) == 6
    assert {"0", "0.2", "0.4", "0.6", "0.8", "1"} <= set(texts(root))  # x ticks


def test_missing_values_break_the_line() -> None:
    chart = Chart("c", "line", x=(1, 2, 3, 4), series={"s": (1.0, math.nan, 3.0, 4.0)})
    root = parse(render_chart(chart))
    assert [len(p.attrib["points"].split()) for p in root.findall("svg:polyline", NS)] == [1, 2]


def test_line_chart_with_categories() -> None:
    chart = Chart("c", "line", x=("low", "mid", "high"), series={"TPR": (0.4, 0.2, 0.05)})
    root = parse(render_chart(chart))
    assert {"low", "mid", "high"} <= set(texts(root))
    assert len(root.find("svg:polyline", NS).attrib["points"].split()) == 3  # type: ignore[union-attr]


def test_text_is_escaped_and_cleaned() -> None:
    svg = render_chart(Chart("<b>&\x00", "bar", x=("<i>",), series={"<s>": (1.0,), "t": (2.0,)}))
    root = parse(svg)
    assert "<b>" not in svg and "&lt;i&gt;" in svg
    assert root.find("svg:title", NS).text == "<b>&\ufffd"  # type: ignore[union-attr]


def test_long_labels_are_cut() -> None:
    root = parse(render_chart(Chart("t", "bar", x=("a" * 50,), series={"s": (1.0,)})))
    assert "a" * 11 + "…" in texts(root)  # the axis label is cut
    assert root.find("svg:rect/svg:title", NS).text == f"s, {'a' * 50}: 1"  # type: ignore[union-attr]


def test_severity_bars() -> None:
    svg = render_bars("Findings", ["critical", "low"], [2, 0], ["#8b0000", "#2b6cb0"])
    root = parse(svg)
    widths = [float(r.attrib["width"]) for r in root.findall("svg:rect", NS)]
    assert widths[0] > 0 and widths[1] == 0
    assert texts(root) == ["critical", "2", "low", "0"]


_floats = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-10, 10)


@st.composite
def charts(draw: st.DrawFn) -> Chart:
    n = draw(st.integers(0, 12))
    x = draw(st.lists(_floats, min_size=n, max_size=n) | st.lists(st.text(max_size=20), min_size=n, max_size=n))
    names = draw(st.lists(st.text(max_size=30), max_size=8, unique=True))
    series = {name: tuple(draw(st.lists(_floats, min_size=n, max_size=n))) for name in names}
    y_range = draw(st.none() | st.tuples(_floats, _floats))
    return Chart(
        draw(st.text(max_size=40)),
        draw(st.sampled_from(["bar", "line"])),
        x=tuple(x),
        series=series,
        x_label=draw(st.text(max_size=20)),
        y_label=draw(st.text(max_size=20)),
        y_range=y_range,
    )


@settings(max_examples=150, deadline=None)
@given(charts())
def test_any_chart_renders_to_finite_well_formed_svg(chart: Chart) -> None:
    svg = str(render_chart(chart))
    parse(svg)
    assert all(math.isfinite(v) for v in numbers(svg)), svg
    assert all(v >= 0 for v in numbers(svg) if v)  # sizes and coordinates stay in the viewBox quadrant


def test_examples_render_images_as_pixel_grids_and_records_as_tables() -> None:
    from modelshield.reporting.svg import render_examples

    image = render_examples(
        [{"label": "3 -> 8", "clean": [[0.0, 1.0], [0.5, 0.2]], "adversarial": [[0.1, 0.9], [0.5, 0.3]]}]
    )
    assert image.count("<rect") == 2 * (4 + 1) and "3 -&gt; 8" in image and "rgb(255,255,255)" in image
    table = render_examples([{"label": "#1 <b>", "changes": [["age", "40", "41"]]}])
    assert "<table>" in table and "&lt;b&gt;" in table and "<td>41</td>" in table
    assert render_examples([{"label": "nothing"}]) == ""
