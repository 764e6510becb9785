"""The charts: grouped bars, line charts, axes and legends, the y axis from y_range and the data, labels that stay
inside the chart, and robustness to any numbers."""

from __future__ import annotations

import math
import re
from xml.etree import ElementTree

from hypothesis import given, settings
from hypothesis import strategies as st

from modelshield.findings import Chart
from modelshield.reporting.svg import PALETTE, render_bars, render_chart

NS = {"svg": "http://www.w3.org/2000/svg"}
SVG = "{http://www.w3.org/2000/svg}svg"


def parse(markup: str) -> ElementTree.Element:
    """The ``<svg>`` element of a rendered chart (the figure around it is well-formed XML too)."""
    root = ElementTree.fromstring(markup)
    return root if root.tag == SVG else next(root.iter(SVG))


def figure(markup: str) -> ElementTree.Element:
    root = ElementTree.fromstring(markup)
    assert root.tag == "figure" and root.attrib["class"] == "chart"
    return root


def legend(markup: str) -> list[tuple[str, str]]:
    """The legend's entries: (series name, swatch colour)."""
    entries = figure(markup).findall("ul/li")
    return [("".join(li.itertext()), li.find("span").attrib["style"].removeprefix("background:")) for li in entries]  # type: ignore[union-attr]


def ticks(root: ElementTree.Element) -> list[float]:
    """The y axis's tick values (right-aligned labels left of the plot)."""
    return [
        float((t.text or "").replace(",", ""))
        for t in root.iter("{http://www.w3.org/2000/svg}text")
        if t.attrib.get("text-anchor") == "end" and "transform" not in t.attrib
    ]


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
    markup = render_chart(chart)
    root = parse(markup)
    assert legend(markup) == [("clean", PALETTE[0]), ("attacked", PALETTE[1])]
    assert figure(markup).findtext("figcaption") == "Recall"
    data = root.findall("svg:rect", NS)
    assert len(data) == 6
    assert [b.attrib["fill"] for b in data] == [PALETTE[0]] * 3 + [PALETTE[1]] * 3
    labels = texts(root)
    for label in ("cat", "dog", "eel", "class", "recall", "0", "0.4", "1"):
        assert label in labels, label
    assert "1.2" not in labels  # the axis ends at y_range, not at the data's 1.7
    # 1.7 and -0.2 are drawn at the edges of the plot: no bar reaches outside the [0, 1] band
    heights = {float(b.attrib["height"]) for b in data}
    full = max(heights)
    assert float(data[4].attrib["height"]) == full  # 1.7 clipped to 1.0, as tall as the 1.0 bar
    assert float(data[5].attrib["height"]) == 0.0  # -0.2 clipped to 0
    assert data[0].find("svg:title", NS).text == "clean, cat: 0.9"  # type: ignore[union-attr]


def test_one_series_needs_no_legend() -> None:
    markup = render_chart(Chart("c", "bar", x=("a",), series={"only": (2.0,)}))
    assert len(parse(markup).findall("svg:rect", NS)) == 1
    assert legend(markup) == [] and "only" not in texts(parse(markup))


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
    markup = render_chart(Chart("<b>&\x00", "bar", x=("<i>",), series={"<s>": (1.0,), "t": (2.0,)}))
    root = parse(markup)
    assert "<b>" not in markup and "<s>" not in markup and "&lt;i&gt;" in markup and "&lt;s&gt;" in markup
    assert root.find("svg:title", NS).text == "<b>&\ufffd"  # type: ignore[union-attr]
    assert figure(markup).findtext("figcaption") == "<b>&\ufffd"


def test_long_labels_are_cut() -> None:
    root = parse(render_chart(Chart("t", "bar", x=("a" * 50,), series={"s": (1.0,)})))
    assert "a" * 17 + "…" in texts(root)  # the axis label is cut
    assert root.find("svg:rect/svg:title", NS).text == f"s, {'a' * 50}: 1"  # type: ignore[union-attr]


def test_titles_and_legends_are_page_text_in_full() -> None:
    """Titles and series names wrap with the page and keep its font size on a phone: HTML, not SVG, and not cut."""
    title = "Similarity of each class's reconstruction to its training mean (overall mean removed), per class"
    names = [f"series number {i} with a long name" for i in range(8)]
    markup = render_chart(Chart(title, "line", x=(1.0, 2.0), series=dict.fromkeys(names, (0.1, 0.2))))
    assert figure(markup).findtext("figcaption") == title
    assert [name for name, _ in legend(markup)] == names
    assert [colour for _, colour in legend(markup)] == [PALETTE[i % len(PALETTE)] for i in range(8)]
    assert title not in texts(parse(markup)) and not set(names) & set(texts(parse(markup)))


def test_small_values_get_an_axis_of_their_own() -> None:
    """A true-positive rate of a few percent is not drawn on a 0-1 axis: the axis ends at a round value above it."""
    small = render_chart(Chart("TPR", "bar", x=("loss", "rmia"), series={"TPR": (0.0097, 0.0497)}, y_range=(0, 1)))
    assert ticks(parse(small)) == [0, 0.01, 0.02, 0.03, 0.04, 0.05]
    bar = max(float(r.attrib["height"]) for r in parse(small).findall("svg:rect", NS))
    assert bar > 0.95 * 180  # the larger bar nearly fills the plot
    # data above half the range keep the range: accuracies stay on 0-1
    full = render_chart(Chart("acc", "line", x=(0.0, 1.0), series={"acc": (0.98, 0.6)}, y_range=(0, 1)))
    assert ticks(parse(full))[-1] == 1
    # the range still bounds the axis: values past it are drawn at its edge
    over = render_chart(Chart("c", "bar", x=("a",), series={"s": (0.3,)}, y_range=(0, 0.2)))
    assert ticks(parse(over))[-1] == 0.2


def test_long_category_labels_are_turned_and_kept_inside() -> None:
    names = ("loss", "population", "lira-online", "lira-offline", "rmia", "label-only")
    root = parse(render_chart(Chart("TPR", "bar", x=names, series={"TPR": (0.1,) * 6})))
    labels = [t for t in root.iter("{http://www.w3.org/2000/svg}text") if t.text in names]
    assert [t.text for t in labels] == list(names)  # none cut: they fit when turned
    assert all(t.attrib["transform"].startswith("rotate(-45") for t in labels)
    short = parse(render_chart(Chart("c", "bar", x=("0", "1", "2"), series={"s": (1.0, 2.0, 3.0)})))
    assert not any("transform" in t.attrib for t in short.iter("{http://www.w3.org/2000/svg}text"))


def test_tick_labels_are_round_numbers_in_full() -> None:
    root = parse(render_chart(Chart("q", "line", x=(84.0, 674.0, 2696.0), series={"f": (0.5, 0.7, 0.9)})))
    labels = texts(root)
    assert "1,000" in labels and "2,000" in labels  # not "1e+03"
    width = float(root.attrib["viewBox"].split()[2])
    for t in root.iter("{http://www.w3.org/2000/svg}text"):
        assert 0 <= float(t.attrib["x"]) <= width


def test_severity_bars() -> None:
    svg = render_bars("Findings", ["critical", "low"], [2, 0], ["#8b0000", "#2b6cb0"])
    root = parse(svg)
    widths = [float(r.attrib["width"]) for r in root.findall("svg:rect", NS)]
    assert widths[0] > 0 and widths[1] == 0
    assert texts(root) == ["critical", "2", "low", "0"]
    assert root.attrib["viewBox"].startswith("0 0 400 ")  # 12-unit text at about 11 px in a phone's 390 px


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
    markup = str(render_chart(chart))
    figure(markup)
    svg = ElementTree.tostring(parse(markup), encoding="unicode")
    assert all(math.isfinite(v) for v in numbers(svg)), svg
    assert all(v >= 0 for v in numbers(svg) if v)  # sizes and coordinates stay in the viewBox quadrant


def test_examples_render_images_as_pixel_grids_and_records_as_tables() -> None:
    from modelshield.reporting.svg import render_examples

    image = render_examples(
        [{"label": "3 -> 8", "clean": [[0.0, 1.0], [0.5, 0.2]], "adversarial": [[0.1, 0.9], [0.5, 0.3]]}]
    )
    assert image.count("<rect") == 2 * (4 + 1) and "3 -&gt; 8" in image and "rgb(255,255,255)" in image
    # each pair is a small figure whose caption is page text, so that the pairs wrap on a phone
    pairs = ElementTree.fromstring(f"<div>{image}</div>").findall("div[@class='examples']/figure")
    assert [p.findtext("figcaption") for p in pairs] == ["3 -> 8"]
    table = render_examples([{"label": "#1 <b>", "changes": [["age", "40", "41"]]}])
    assert "<table>" in table and "&lt;b&gt;" in table and "<td>41</td>" in table
    assert render_examples([{"label": "nothing"}]) == ""
