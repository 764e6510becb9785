"""Small, dependency-free charts for the HTML report: bar charts (grouped series) and line charts, as inline SVG.

    >>> from modelshield.findings import Chart
    >>> from modelshield.reporting.svg import render_chart
    >>> figure = render_chart(Chart("Recall", "bar", x=("a", "b"), series={"recall": (0.9, 0.5)}, y_range=(0, 1)))
    >>> figure.startswith('<figure class="chart"><figcaption>Recall</figcaption>')
    True

A chart is a ``<figure>``: its title and legend are HTML (they wrap and keep the page's font size on a phone),
the plot an ``<svg>`` sized by its ``viewBox`` so that it scales with the page, with a ``<title>`` for screen
readers. Every text is escaped and stripped of control characters, and laid out to stay inside the plot: long
category labels are turned or cut, axis labels cut to the width there is.

The y axis: ``y_range`` is the range the values can take; when the data fill no more than its lower half, the
axis ends at the first round value above the largest one instead (a true-positive rate of 0.03 is not drawn on a
0-1 axis). Without ``y_range`` the axis follows the data (from zero for bars). Values that are not finite are
left out, values outside the axis are drawn at its edge.
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

_W = 400  # viewBox width: 12-unit text reads at about 10 CSS px in a phone's 390 px, 15 px at the page's widest
_RIGHT = 12
_TOP = 28  # room for the y axis label above the plot
_PLOT_H = 180
_CHAR = 7.2  # estimated width of one character of 12-unit text
_TICK_GAP = 6
_ROTATED = 0.7071  # cos 45°: labels too long for their slot are turned by 45°
_MAX_LABEL = 18  # characters of a category label at most
_LIMIT = 1e300  # larger magnitudes are clamped so that differences stay finite


def _text(value: object, limit: int | None = None) -> str:
    """Escaped, printable text, cut to ``limit`` characters with an ellipsis."""
    text = printable(str(value))
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return str(escape(text))


def _width(text: str) -> float:
    return _CHAR * len(text)


def _fmt(value: float) -> str:
    """A tick value: whole numbers in full with thousands separators (``2,500``), others to 3 significant digits."""
    value += 0.0  # no "-0"
    if value == round(value) and abs(value) < 1e7:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _clamp(value: float) -> float:
    return max(-_LIMIT, min(_LIMIT, value))


def _step(low: float, high: float, count: int = 5) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about ``count`` ticks from ``low`` to ``high``."""
    span = high - low
    raw = span / count
    if not raw > 0 or not math.isfinite(raw):
        return span
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), span)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values from ``low`` to ``high``."""
    span = high - low
    if not span > 0 or not math.isfinite(span):
        return [low]
    step = _step(low, high, count)
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
    """The y axis: ``chart.y_range``, ending lower when the data fill no more than its lower half; else the data's
    range (from zero for bars, padded for lines)."""
    values = [_clamp(v) for series in chart.series.values() for v in series if math.isfinite(v)]
    if chart.y_range is not None:
        low, high = (_clamp(v) for v in chart.y_range)
        if math.isfinite(low) and math.isfinite(high) and high > low:
            top = max(values, default=low)
            if low < top <= low + (high - low) / 2:
                step = _step(low, top)
                if step > 0 and math.isfinite(step):
                    high = min(high, low + math.ceil((top - low) / step - 1e-9) * step)
            return low, high
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

    left: float
    low: float
    high: float
    top: float = _TOP
    height: float = _PLOT_H

    @property
    def bottom(self) -> float:
        return self.top + self.height

    @property
    def right(self) -> float:
        return _W - _RIGHT

    @property
    def width(self) -> float:
        return self.right - self.left

    def y(self, value: float) -> float:
        clipped = min(max(_clamp(value), self.low), self.high)
        return self.bottom - self.height * (clipped - self.low) / (self.high - self.low)


def _log_ticks(low: float, high: float) -> list[float]:
    """Whole powers of ten between ``low`` and ``high`` (given as base-10 logarithms)."""
    ticks = [float(k) for k in range(math.ceil(low - 1e-9), math.floor(high + 1e-9) + 1)]
    return ticks if len(ticks) >= 2 else _ticks(low, high)


def _tick_label(tick: float, log: bool) -> str:
    return _fmt(10.0**tick) if log else _fmt(tick)


def _y_axis(chart: Chart, low: float, high: float, *, log: bool) -> tuple[_Frame, list[str]]:
    """The frame, its left edge set by the longest y tick label, and the grid lines, y ticks and y axis label."""
    ticks = _log_ticks(low, high) if log else _ticks(low, high)
    labels = [_tick_label(t, log) for t in ticks]
    frame = _Frame(left=_TICK_GAP * 2 + max(_width(label) for label in labels), low=low, high=high)
    parts = []
    for tick, label in zip(ticks, labels, strict=True):
        y = frame.y(tick)
        parts.append(f'<line x1="{frame.left:.1f}" x2="{frame.right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{frame.left - _TICK_GAP:.1f}" y="{y + 4:.1f}" text-anchor="end">{_text(label)}</text>')
    if chart.y_label:  # above the plot, where it has the chart's width
        parts.append(f'<text x="2" y="{_TOP - 10}">{_text(chart.y_label, int((_W - 4) / _CHAR))}</text>')
    parts.append(
        f'<line x1="{frame.left:.1f}" x2="{frame.left:.1f}" y1="{frame.top:.1f}" y2="{frame.bottom:.1f}" '
        f'class="axis"/><line x1="{frame.left:.1f}" x2="{frame.right}" y1="{frame.bottom:.1f}" '
        f'y2="{frame.bottom:.1f}" class="axis"/>'
    )
    return frame, parts


def _category_labels(
    labels: Sequence[object], centres: Sequence[float], slot: float, y: float
) -> tuple[list[str], float]:
    """Labels under evenly spaced categories: level when they fit their slot, else turned by 45° (and cut where
    they would leave the chart on the left); every k-th only when slots are narrower than a line of text.
    Returns the labels and the height they take below ``y``."""
    every = max(1, math.ceil(16 / slot)) if slot > 0 else 1
    shown = range(0, len(labels), every)
    texts = [printable(str(labels[i])) for i in shown]
    if all(_width(t) <= slot * every - 4 for t in texts):
        parts = [
            f'<text x="{centres[i]:.1f}" y="{y + 12:.1f}" text-anchor="middle">{_text(labels[i])}</text>' for i in shown
        ]
        return parts, 18.0
    parts, longest = [], 0
    for i in shown:
        room = int((centres[i] - 4) / (_CHAR * _ROTATED))  # the turned label ends at the category's centre
        limit = max(1, min(_MAX_LABEL, room))
        longest = max(longest, min(len(printable(str(labels[i]))), limit))
        x, top = centres[i] + 4, y + 8
        parts.append(
            f'<text x="{x:.1f}" y="{top:.1f}" text-anchor="end" transform="rotate(-45 {x:.1f} {top:.1f})">'
            f"{_text(labels[i], limit)}</text>"
        )
    return parts, 14 + longest * _CHAR * _ROTATED


def _bars(chart: Chart, frame: _Frame) -> tuple[list[str], float]:
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
            x = frame.left + g * slot + slot * 0.1 + s * width
            parts.append(
                f'<rect x="{x:.1f}" y="{min(top, base):.1f}" width="{width:.1f}" height="{abs(base - top):.1f}" '
                f'fill="{colour}"><title>{_text(name)}, {_text(chart.x[g])}: {_text(_fmt(value))}</title></rect>'
            )
    centres = [frame.left + (g + 0.5) * slot for g in range(groups)]
    labels, height = _category_labels(chart.x, centres, slot, frame.bottom)
    return parts + labels, height


def _numeric_x(values: Sequence[float | str]) -> list[float] | None:
    """The x values as numbers, or None when they are categories."""
    if any(isinstance(v, str | bool) for v in values):
        return None
    return [float(v) for v in values]


def _x_ticks(low: float, high: float, frame: _Frame, *, log: bool) -> list[str]:
    """Tick labels under a numeric x axis, moved in where one would leave the chart."""
    parts = []
    for tick in _log_ticks(low, high) if log else _ticks(low, high):
        label = _tick_label(tick, log)
        x = frame.left + frame.width * (tick - low) / (high - low)
        half = _width(label) / 2
        x = min(max(x, half + 1), _W - half - 1)
        parts.append(f'<text x="{x:.1f}" y="{frame.bottom + 16:.1f}" text-anchor="middle">{_text(label)}</text>')
    return parts


def _lines(chart: Chart, frame: _Frame, *, log: bool = False) -> tuple[list[str], float]:
    parts: list[str] = []
    numeric = _numeric_x(chart.x)
    height = 18.0
    if numeric is not None and any(math.isfinite(v) for v in numeric):
        finite = [_clamp(v) for v in numeric if math.isfinite(v)]
        x_low, x_high = min(finite), max(finite)
        if x_high == x_low:  # one x value: put it in the middle
            pad = abs(x_low) * 0.1 or 0.5
            x_low, x_high = x_low - pad, x_high + pad
        span = x_high - x_low
        xs = [frame.left + frame.width * (_clamp(v) - x_low) / span if math.isfinite(v) else math.nan for v in numeric]
        parts += _x_ticks(x_low, x_high, frame, log=log)
    else:  # categories, evenly spaced
        slot = frame.width / max(len(chart.x), 1)
        xs = [frame.left + (i + 0.5) * slot for i in range(len(chart.x))]
        labels, height = _category_labels(chart.x, xs, slot, frame.bottom)
        parts += labels
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
    return parts, height


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


def _legend(names: Sequence[str]) -> str:
    """The series' names beside their colours (only for two or more series), as an HTML list."""
    if len(names) < 2:
        return ""
    entries = "".join(
        f'<li><span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>{_text(name)}</li>'
        for i, name in enumerate(names)
    )
    return f'<ul class="legend">{entries}</ul>'


def render_chart(chart: Chart) -> Markup:
    """The chart as a ``<figure>``: title and legend in HTML, the plot an inline ``<svg>`` (a grouped bar chart,
    or a line chart with a numeric x axis: evenly spaced categories when ``x`` holds strings, log-log axes when
    ``chart.scale`` is ``"log"``)."""
    log = chart.scale == "log"
    plotted = _to_log(chart) if log else chart
    low, high = _y_range(plotted, include_zero=plotted.kind == "bar")
    frame, parts = _y_axis(plotted, low, high, log=log)
    drawn, below = _bars(plotted, frame) if plotted.kind == "bar" else _lines(plotted, frame, log=log)
    parts += drawn
    height = frame.bottom + below
    if chart.x_label:
        height += 6
        parts.append(
            f'<text x="{frame.left + frame.width / 2:.1f}" y="{height + 8:.1f}" text-anchor="middle">'
            f"{_text(chart.x_label, int(_W / _CHAR) - 2)}</text>"
        )
        height += 16
    return Markup(  # noqa: S704 - every text above went through _text()
        f'<figure class="chart"><figcaption>{_text(chart.title)}</figcaption>{_legend(list(chart.series))}'
        f'<svg class="chart" viewBox="0 0 {_W} {math.ceil(height + 4)}" role="img" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{_text(chart.title)}</title>{''.join(parts)}</svg></figure>"
    )


def render_bars(title: str, labels: Sequence[str], values: Sequence[int], colours: Sequence[str]) -> Markup:
    """A compact horizontal bar per label, with its value (the severity summary at the top of the report)."""
    height = 22 * len(labels) + 8
    top = max(values, default=0) or 1
    rows = []
    for i, (label, value, colour) in enumerate(zip(labels, values, colours, strict=True)):
        y = 4 + 22 * i
        width = 260 * value / top
        rows.append(
            f'<text x="0" y="{y + 14}">{_text(label, 10)}</text>'
            f'<rect x="76" y="{y + 2}" width="{width:.1f}" height="16" fill="{escape(colour)}"/>'
            f'<text x="{82 + width:.1f}" y="{y + 14}">{int(value)}</text>'
        )
    return Markup(  # noqa: S704 - labels and colours are escaped, values are ints
        f'<svg class="bars" viewBox="0 0 {_W} {height}" role="img" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{_text(title)}</title>{''.join(rows)}</svg>"
    )


def _grey(value: object) -> str:
    level = round(255 * _clamp(float(value) if isinstance(value, int | float) else 0.0))
    level = min(max(level, 0), 255)
    return f"rgb({level},{level},{level})"


def _image(pixels: Sequence[Sequence[object]], x0: float, size: float) -> list[str]:
    rows = len(pixels)
    cols = max((len(r) for r in pixels), default=0)
    cell = size / max(rows, cols, 1)
    out = [f'<rect x="{x0:.1f}" y="0" width="{size:.1f}" height="{size:.1f}" fill="none" stroke="#888"/>']
    for i, row in enumerate(pixels):
        for j, value in enumerate(row):
            out.append(
                f'<rect x="{x0 + j * cell:.2f}" y="{i * cell:.2f}" width="{cell + 0.05:.2f}" '
                f'height="{cell + 0.05:.2f}" fill="{_grey(value)}"/>'
            )
    return out


def render_examples(examples: Sequence[Mapping[str, object]]) -> Markup:
    """Adversarial examples beside their clean inputs: image pairs (``clean``/``adversarial`` as 2-D grey levels in
    [0, 1]) drawn as pixel grids, each pair a small figure with its ``label`` that wraps to the page's width; or,
    for records, a table of the features the attack changed (``changes``). Image pairs may carry a ``caption``
    saying what the two sides are (default: clean and adversarial)."""
    images = [
        e
        for e in examples
        if isinstance(e.get("clean"), list | tuple) and isinstance(e.get("adversarial"), list | tuple)
    ]
    if images:
        size, gap = 72.0, 6.0
        figures = []
        for example in images:
            label = _text(example.get("label", ""), 40)
            pair = _image(example["clean"], 0.0, size) + _image(example["adversarial"], size + gap, size)  # type: ignore[arg-type]
            figures.append(
                f'<figure><svg viewBox="0 0 {2 * size + gap:.0f} {size:.0f}" role="img" '
                f'xmlns="http://www.w3.org/2000/svg"><title>{label}</title>{"".join(pair)}</svg>'
                f"<figcaption>{label}</figcaption></figure>"
            )
        caption = _text(images[0].get("caption") or "Clean inputs (left) and adversarial examples (right)")
        return Markup(  # noqa: S704 - numbers are formatted, text goes through _text()
            f'<p class="muted">{caption}</p><div class="examples">{"".join(figures)}</div>'
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
