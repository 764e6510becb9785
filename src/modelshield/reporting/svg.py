"""Small, dependency-free SVG charts for the HTML report: bar charts (grouped series) and line charts.

    >>> from modelshield.findings import Chart
    >>> from modelshield.reporting.svg import render_chart
    >>> svg = render_chart(Chart("Recall", "bar", x=("a", "b"), series={"recall": (0.9, 0.5)}, y_range=(0, 1)))
    >>> svg.startswith("<svg")
    True

Every text is escaped and stripped of control characters; sizes are in a ``viewBox`` so charts scale with the
page; each chart carries a ``<title>`` for screen readers. Values that are not finite are left out, values
outside ``y_range`` are drawn at its edge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from modelshield.findings import Chart
from modelshield.reporting.interface import printable

__all__ = ["PALETTE", "render_bars", "render_chart", "render_examples"]

#: Series colours: distinguishable with the common colour-vision deficiencies (mostly Okabe-Ito hues), and
#: each at least 3:1 against both the light and the dark page background.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#B0589F", "#6B7B8C", "#8C6D00")

_W = 640  # viewBox width
_LEFT, _RIGHT = 60, 16  # room for the y tick labels and the y label
_PLOT_H = 220
_LEGEND_ROW = 18
_LIMIT = 1e300  # larger magnitudes are clamped so that differences stay finite


def _text(value: object, limit: int | None = None) -> str:
    """Escaped, printable text, cut to ``limit`` characters with an ellipsis."""
    text = printable(str(value))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return str(escape(text))


def _fmt(value: float) -> str:
    return f"{value + 0.0:.3g}"  # no "-0"


def _clamp(value: float) -> float:
    return max(-_LIMIT, min(_LIMIT, value))


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values from ``low`` to ``high`` (1, 2, 2.5 or 5 times a power of ten apart)."""
    span = high - low
    if not span > 0 or not math.isfinite(span):
        return [low]
    raw = span / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), span)
    if not step > 0:
        return [low, high]
    ratio = low / step
    if not math.isfinite(ratio):
        return [low, high]
    first = math.ceil(ratio) * step
    ticks: list[float] = []
    tick = first
    while tick <= high + step * 1e-9 and len(ticks) <= 2 * count:
        ticks.append(min(max(tick, low), high))  # float error must not push a tick off the axis
        tick = first + len(ticks) * step
    return ticks or [low, high]


def _y_range(chart: Chart, *, include_zero: bool) -> tuple[float, float]:
    """``chart.y_range`` when usable, else the data's range (from zero for bars, padded for lines)."""
    if chart.y_range is not None:
        low, high = (_clamp(v) for v in chart.y_range)
        if math.isfinite(low) and math.isfinite(high) and high > low:
            return low, high
    values = [_clamp(v) for series in chart.series.values() for v in series if math.isfinite(v)]
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    if include_zero:
        low, high = min(low, 0.0), max(high, 0.0)
    elif high > low:
        pad = (high - low) * 0.05
        low, high = low - pad, high + pad
    if high <= low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    return low, high


@dataclass(frozen=True)
class _Frame:
    """Where the plot area lies in the viewBox, and the y scale."""

    top: float
    height: float
    low: float
    high: float

    @property
    def bottom(self) -> float:
        return self.top + self.height

    @property
    def width(self) -> float:
        return _W - _LEFT - _RIGHT

    def y(self, value: float) -> float:
        clipped = min(max(_clamp(value), self.low), self.high)
        return self.bottom - self.height * (clipped - self.low) / (self.high - self.low)


def _legend(names: Sequence[str], top: float) -> tuple[list[str], float]:
    """Legend entries in rows under the title (only for two or more series); returns them and the next free y."""
    if len(names) < 2:
        return [], top
    parts: list[str] = []
    x, y = float(_LEFT), top
    for i, name in enumerate(names):
        label = _text(name, 28)
        width = 22 + 7 * min(len(name), 28)
        if x + width > _W - _RIGHT and x > _LEFT:
            x, y = float(_LEFT), y + _LEGEND_ROW
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14:.1f}" y="{y + 9:.1f}">{label}</text>')
        x += width
    return parts, y + _LEGEND_ROW + 4


def _log_ticks(low: float, high: float) -> list[float]:
    """Whole powers of ten between ``low`` and ``high`` (given as base-10 logarithms)."""
    ticks = [float(k) for k in range(math.ceil(low - 1e-9), math.floor(high + 1e-9) + 1)]
    return ticks if len(ticks) >= 2 else _ticks(low, high)


def _tick_label(tick: float, log: bool) -> str:
    return _fmt(10.0**tick) if log else _fmt(tick)


def _axes(chart: Chart, frame: _Frame, *, log: bool = False) -> list[str]:
    """Grid lines, y ticks, both axes and their labels."""
    parts = []
    for tick in _log_ticks(frame.low, frame.high) if log else _ticks(frame.low, frame.high):
        y = frame.y(tick)
        parts.append(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_text(_tick_label(tick, log))}</text>')
    parts.append(
        f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{frame.top:.1f}" y2="{frame.bottom:.1f}" class="axis"/>'
        f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{frame.bottom:.1f}" y2="{frame.bottom:.1f}" class="axis"/>'
    )
    if chart.x_label:
        parts.append(
            f'<text x="{_LEFT + frame.width / 2:.1f}" y="{frame.bottom + 40:.1f}" text-anchor="middle">'
            f"{_text(chart.x_label, 80)}</text>"
        )
    if chart.y_label:
        middle = frame.top + frame.height / 2
        parts.append(
            f'<text x="14" y="{middle:.1f}" text-anchor="middle" transform="rotate(-90 14 {middle:.1f})">'
            f"{_text(chart.y_label, 40)}</text>"
        )
    return parts


def _category_labels(labels: Sequence[object], centres: Sequence[float], y: float) -> list[str]:
    step = max(1, math.ceil(len(labels) / 16))  # at most 16 labels, so that they do not overlap
    return [
        f'<text x="{centres[i]:.1f}" y="{y:.1f}" text-anchor="middle">{_text(labels[i], 12)}</text>'
        for i in range(0, len(labels), step)
    ]


def _bars(chart: Chart, frame: _Frame) -> list[str]:
    groups, n_series = len(chart.x), max(len(chart.series), 1)
    slot = frame.width / max(groups, 1)
    width = slot * 0.8 / n_series
    base = frame.y(min(max(0.0, frame.low), frame.high))
    parts = []
    for s, (name, values) in enumerate(chart.series.items()):
        colour = PALETTE[s % len(PALETTE)]
        for g, value in enumerate(values):
            if not math.isfinite(value):
                continue
            top = frame.y(value)
            x = _LEFT + g * slot + slot * 0.1 + s * width
            parts.append(
                f'<rect x="{x:.1f}" y="{min(top, base):.1f}" width="{width:.1f}" height="{abs(base - top):.1f}" '
                f'fill="{colour}"><title>{_text(name)}, {_text(chart.x[g])}: {_text(_fmt(value))}</title></rect>'
            )
    centres = [_LEFT + (g + 0.5) * slot for g in range(groups)]
    return parts + _category_labels(chart.x, centres, frame.bottom + 16)


def _numeric_x(values: Sequence[float | str]) -> list[float] | None:
    """The x values as numbers, or None when they are categories."""
    if any(isinstance(v, str | bool) for v in values):
        return None
    return [float(v) for v in values]


def _lines(chart: Chart, frame: _Frame, *, log: bool = False) -> list[str]:
    parts: list[str] = []
    numeric = _numeric_x(chart.x)
    if numeric is not None and any(math.isfinite(v) for v in numeric):
        finite = [_clamp(v) for v in numeric if math.isfinite(v)]
        x_low, x_high = min(finite), max(finite)
        if x_high == x_low:  # one x value: put it in the middle
            pad = abs(x_low) * 0.1 or 0.5
            x_low, x_high = x_low - pad, x_high + pad
        span = x_high - x_low
        xs = [_LEFT + frame.width * (_clamp(v) - x_low) / span if math.isfinite(v) else math.nan for v in numeric]
        for tick in _log_ticks(x_low, x_high) if log else _ticks(x_low, x_high):
            x = _LEFT + frame.width * (tick - x_low) / span
            label = _text(_tick_label(tick, log))
            parts.append(f'<text x="{x:.1f}" y="{frame.bottom + 16:.1f}" text-anchor="middle">{label}</text>')
    else:  # categories, evenly spaced
        slot = frame.width / max(len(chart.x), 1)
        xs = [_LEFT + (i + 0.5) * slot for i in range(len(chart.x))]
        parts += _category_labels(chart.x, xs, frame.bottom + 16)
    for s, (name, values) in enumerate(chart.series.items()):
        colour = PALETTE[s % len(PALETTE)]
        segments: list[list[tuple[float, float]]] = [[]]
        for x, value in zip(xs, values, strict=True):
            if math.isfinite(x) and math.isfinite(value):
                segments[-1].append((x, frame.y(value)))
            elif segments[-1]:
                segments.append([])  # a gap in the line where a value is missing
        for segment in filter(None, segments):
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in segment)
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
            parts += [
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>{_text(name)}</title></circle>'
                for x, y in segment
            ]
    return parts


def _log10(value: float | str) -> float:
    return math.log10(value) if isinstance(value, float | int) and value > 0 else math.nan


def _to_log(chart: Chart) -> Chart:
    """The chart with every x, y value and the y range replaced by its base-10 logarithm (non-positive: missing)."""
    y_range = chart.y_range
    return Chart(
        title=chart.title,
        kind=chart.kind,
        x=tuple(_log10(v) for v in chart.x),
        series={name: tuple(_log10(v) for v in values) for name, values in chart.series.items()},
        x_label=chart.x_label,
        y_label=chart.y_label,
        y_range=(_log10(y_range[0]), _log10(y_range[1])) if y_range is not None else None,
    )


def render_chart(chart: Chart) -> Markup:
    """The chart as an inline ``<svg>`` element: a grouped bar chart, or a line chart with a numeric x axis
    (evenly spaced categories when ``x`` holds strings; log-log axes when ``chart.scale`` is ``"log"``)."""
    log = chart.scale == "log"
    if log:
        chart = _to_log(chart)
    parts = [f'<text x="{_W / 2}" y="20" text-anchor="middle" class="chart-title">{_text(chart.title, 90)}</text>']
    legend, top = _legend(list(chart.series), 34.0)
    parts += legend
    low, high = _y_range(chart, include_zero=chart.kind == "bar")
    frame = _Frame(top=top + 6, height=_PLOT_H, low=low, high=high)
    parts += _axes(chart, frame, log=log)
    parts += _bars(chart, frame) if chart.kind == "bar" else _lines(chart, frame, log=log)
    height = frame.bottom + (50 if chart.x_label else 28)
    return Markup(  # noqa: S704 - every text above went through _text()
        f'<svg class="chart" viewBox="0 0 {_W} {height:.0f}" role="img" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{_text(chart.title)}</title>{''.join(parts)}</svg>"
    )


def render_bars(title: str, labels: Sequence[str], values: Sequence[int], colours: Sequence[str]) -> Markup:
    """A compact horizontal bar per label, with its value (the severity summary at the top of the report)."""
    height = 22 * len(labels) + 8
    top = max(values, default=0) or 1
    rows = []
    for i, (label, value, colour) in enumerate(zip(labels, values, colours, strict=True)):
        y = 4 + 22 * i
        width = 400 * value / top
        rows.append(
            f'<text x="0" y="{y + 14}">{_text(label, 12)}</text>'
            f'<rect x="80" y="{y + 2}" width="{width:.1f}" height="16" fill="{escape(colour)}"/>'
            f'<text x="{86 + width:.1f}" y="{y + 14}">{int(value)}</text>'
        )
    return Markup(  # noqa: S704 - labels and colours are escaped, values are ints
        f'<svg class="bars" viewBox="0 0 540 {height}" role="img" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{_text(title)}</title>{''.join(rows)}</svg>"
    )


def _grey(value: object) -> str:
    level = round(255 * _clamp(float(value) if isinstance(value, int | float) else 0.0))
    return f"rgb({level},{level},{level})"


def _image(pixels: Sequence[Sequence[object]], x0: float, y0: float, size: float) -> list[str]:
    rows = len(pixels)
    cols = max((len(r) for r in pixels), default=0)
    cell = size / max(rows, cols, 1)
    out = [f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{size:.1f}" height="{size:.1f}" fill="none" stroke="#888"/>']
    for i, row in enumerate(pixels):
        for j, value in enumerate(row):
            out.append(
                f'<rect x="{x0 + j * cell:.2f}" y="{y0 + i * cell:.2f}" width="{cell + 0.05:.2f}" '
                f'height="{cell + 0.05:.2f}" fill="{_grey(value)}"/>'
            )
    return out


def render_examples(examples: Sequence[Mapping[str, object]]) -> Markup:
    """Adversarial examples beside their clean inputs: image pairs (``clean``/``adversarial`` as 2-D grey levels in
    [0, 1]) drawn as pixel grids, or, for records, a table of the features the attack changed (``changes``).
    Image pairs may carry a ``caption`` saying what the two sides are (default: clean and adversarial)."""
    images = [
        e
        for e in examples
        if isinstance(e.get("clean"), list | tuple) and isinstance(e.get("adversarial"), list | tuple)
    ]
    if images:
        size, gap, per_row = 72.0, 14.0, 4
        parts: list[str] = []
        for k, example in enumerate(images):
            col, row = k % per_row, k // per_row
            x0, y0 = col * (2 * size + 3 * gap), row * (size + 40)
            parts += _image(example["clean"], x0, y0 + 4, size)  # type: ignore[arg-type]
            parts += _image(example["adversarial"], x0 + size + gap / 2, y0 + 4, size)  # type: ignore[arg-type]
            parts.append(f'<text x="{x0:.1f}" y="{y0 + size + 20:.1f}">{_text(example.get("label", ""), 30)}</text>')
        width = min(len(images), per_row) * (2 * size + 3 * gap)
        height = ((len(images) - 1) // per_row + 1) * (size + 40)
        caption = _text(images[0].get("caption") or "Clean inputs (left) and adversarial examples (right)", 120)
        return Markup(  # noqa: S704 - numbers are formatted, text goes through _text()
            f'<svg class="examples" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{caption}</title>'
            f"{''.join(parts)}</svg>"
        )
    rows = []
    for example in examples:
        changes = example.get("changes")
        if not isinstance(changes, list | tuple):
            continue
        label = _text(example.get("label", ""), 60)
        for change in changes:
            if isinstance(change, list | tuple) and len(change) == 3:
                feature, before, after = change
                rows.append(f"<tr><td>{label}</td><td>{_text(feature, 40)}</td><td>{_text(before, 20)}</td>"
                            f"<td>{_text(after, 20)}</td></tr>")  # fmt: skip
                label = ""
    if not rows:
        return Markup("")
    return Markup(  # noqa: S704 - every cell went through _text()
        '<div class="scroll"><table><tr><th>example</th><th>feature</th><th>clean</th><th>adversarial</th></tr>'
        + "".join(rows)
        + "</table></div>"
    )
