"""Small, dependency-free SVG charts for the HTML report: bar charts (grouped series) and line charts.

    >>> from modelshield.findings import Chart
    >>> from modelshield.reporting.svg import render_chart
    >>> svg = render_chart(Chart("Recall", "bar", x=("a", "b"), series={"recall": (0.9, 0.5)}, y_range=(0, 1)))
    >>> svg.startswith("<svg")
    True

Every text is escaped; sizes are in a ``viewBox`` so charts scale with the page.
"""

from __future__ import annotations

import math

from markupsafe import Markup, escape

from modelshield.findings import Chart

__all__ = ["PALETTE", "render_bars", "render_chart"]

# Colour-blind-safe (Okabe-Ito), readable on light and dark backgrounds.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")

_W, _H = 640, 320
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 36, 64


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 10) for i in range(int((high - first) / step + 1e-9) + 1)]


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _range(chart: Chart) -> tuple[float, float]:
    if chart.y_range is not None:
        return chart.y_range
    values = [v for series in chart.series.values() for v in series if math.isfinite(v)]
    low, high = min(values, default=0.0), max(values, default=1.0)
    low = min(low, 0.0)
    return (low, high if high > low else low + 1.0)


def _frame(chart: Chart, low: float, high: float) -> tuple[list[str], float, float]:
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    parts = [
        f'<text x="{_W / 2}" y="20" text-anchor="middle" class="chart-title">{escape(chart.title)}</text>',
    ]
    for tick in _ticks(low, high):
        y = _TOP + plot_h * (1 - (tick - low) / (high - low))
        parts.append(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(_fmt(tick))}</text>')
    parts.append(
        f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{_TOP + plot_h}" class="axis"/>'
        f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_TOP + plot_h}" y2="{_TOP + plot_h}" class="axis"/>'
    )
    if chart.x_label:
        parts.append(f'<text x="{_LEFT + plot_w / 2}" y="{_H - 8}" text-anchor="middle">{escape(chart.x_label)}</text>')
    if chart.y_label:
        parts.append(
            f'<text x="14" y="{_TOP + plot_h / 2}" text-anchor="middle" '
            f'transform="rotate(-90 14 {_TOP + plot_h / 2})">{escape(chart.y_label)}</text>'
        )
    return parts, plot_w, plot_h


def _legend(chart: Chart) -> list[str]:
    if len(chart.series) < 2:
        return []
    parts = []
    x = _LEFT
    for i, name in enumerate(chart.series):
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="{_H - 26}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{_H - 17}">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return parts


def _wrap(chart: Chart, parts: list[str]) -> Markup:
    body = "".join(parts)
    return Markup(  # noqa: S704 - every text above went through escape()
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(chart.title)}</title>{body}</svg>"
    )


def _bar(chart: Chart) -> Markup:
    low, high = _range(chart)
    parts, plot_w, plot_h = _frame(chart, low, high)
    groups, n_series = len(chart.x), max(len(chart.series), 1)
    slot = plot_w / max(groups, 1)
    width = slot * 0.8 / n_series
    for s, (name, values) in enumerate(chart.series.items()):
        colour = PALETTE[s % len(PALETTE)]
        for g, value in enumerate(values):
            if not math.isfinite(value):
                continue
            top = _TOP + plot_h * (1 - (min(max(value, low), high) - low) / (high - low))
            base = _TOP + plot_h * (1 - (max(0.0, low) - low) / (high - low))
            x = _LEFT + g * slot + slot * 0.1 + s * width
            parts.append(
                f'<rect x="{x:.1f}" y="{min(top, base):.1f}" width="{width:.1f}" height="{abs(base - top):.1f}" '
                f'fill="{colour}"><title>{escape(name)} {escape(str(chart.x[g]))}: {escape(_fmt(value))}</title></rect>'
            )
    step = max(1, math.ceil(groups / 20))  # at most 20 category labels
    for g in range(0, groups, step):
        x = _LEFT + (g + 0.5) * slot
        parts.append(
            f'<text x="{x:.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle">{escape(str(chart.x[g])[:14])}</text>'
        )
    return _wrap(chart, parts + _legend(chart))


def _line(chart: Chart) -> Markup:
    low, high = _range(chart)
    parts, plot_w, plot_h = _frame(chart, low, high)
    xs = [float(v) for v in chart.x]
    x_low, x_high = (min(xs), max(xs)) if xs else (0.0, 1.0)
    span = x_high - x_low or 1.0

    def px(v: float) -> float:
        return _LEFT + plot_w * (v - x_low) / span

    for tick in _ticks(x_low, x_high):
        parts.append(
            f'<text x="{px(tick):.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle">{escape(_fmt(tick))}</text>'
        )
    for s, values in enumerate(chart.series.values()):
        colour = PALETTE[s % len(PALETTE)]
        points = [
            (px(x), _TOP + plot_h * (1 - (min(max(y, low), high) - low) / (high - low)))
            for x, y in zip(xs, values, strict=True)
            if math.isfinite(y)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in points]
    return _wrap(chart, parts + _legend(chart))


def render_chart(chart: Chart) -> Markup:
    """The chart as an inline ``<svg>`` element."""
    if chart.kind == "line" and all(isinstance(v, int | float) for v in chart.x):
        return _line(chart)
    return _bar(chart)


def render_bars(title: str, labels: list[str], values: list[int], colours: list[str]) -> Markup:
    """A compact horizontal bar per label (the severity summary at the top of the report)."""
    height = 22 * len(labels) + 8
    top = max(values, default=0) or 1
    rows = []
    for i, (label, value, colour) in enumerate(zip(labels, values, colours, strict=True)):
        y = 4 + 22 * i
        width = 420 * value / top
        rows.append(
            f'<text x="0" y="{y + 14}">{escape(label)}</text>'
            f'<rect x="80" y="{y + 2}" width="{width:.1f}" height="16" fill="{colour}"/>'
            f'<text x="{86 + width:.1f}" y="{y + 14}">{value}</text>'
        )
    return Markup(  # noqa: S704 - labels are escaped, numbers are ints
        f'<svg class="bars" viewBox="0 0 540 {height}" role="img" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{''.join(rows)}</svg>"
    )
