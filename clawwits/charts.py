"""Server-side SVG charts, pure: values in, SVG text out (no Django, no I/O, no JavaScript).

Guarantees:
- Every text that reaches the SVG (labels, titles, data attributes) is XML-escaped.
- One `<rect class="bar">` per point, in input order, even for zero values, so each day of a
  series is in the picture (and countable); each point's group carries its `<title>` tooltip.
- Axes start at zero and end at a "nice" number (1, 2 or 5 times a power of ten, times the
  tick count) at or above the largest value, so bars never overflow and ticks read well.
- Deterministic: the same input gives the same string. Coordinates are rounded to 0.1.
- Colours come from CSS classes (`bar`, `line`, `dot`, `grid`, `axis`), so the stylesheet
  themes the chart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 52, 14, 30
TICKS = 4
# Bars fill this share of their slot; the rest is the gap between days.
BAR_FILL = 0.7


@dataclass(frozen=True)
class Point:
    key: str  # machine value, written as data-key (e.g. the ISO day)
    label: str  # x-axis label; empty to leave this point unlabelled
    bar: int  # the bar's value (left axis)
    line: int  # the line's value (right axis)
    title: str  # tooltip


def nice_ceiling(value: int, *, ticks: int = TICKS) -> int:
    """The smallest `ticks * step` >= value with step 1, 2 or 5 times a power of ten (>= 1)."""
    if value <= 0:
        return ticks
    magnitude = 1
    while True:
        for step in (magnitude, 2 * magnitude, 5 * magnitude):
            if step * ticks >= value:
                return step * ticks
        magnitude *= 10


def _num(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _attr(value: str) -> str:
    return escape(value, quote=True)


def bars_with_line(
    points: Sequence[Point],
    *,
    title: str,
    number: Callable[[int], str] = str,
    chart_id: str = "chart",
) -> str:
    """Bars (left axis) with a line over them (right axis), one slot per point.

    `number` formats tick values (pass a locale-aware formatter); `chart_id` prefixes the ids
    of the SVG's own elements so two charts can share a page.
    """
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    bottom = TOP + plot_h
    bar_max = nice_ceiling(max((p.bar for p in points), default=0))
    line_max = nice_ceiling(max((p.line for p in points), default=0))
    slot = plot_w / max(len(points), 1)
    bar_w = slot * BAR_FILL

    def y_of(value: int, top: int) -> float:
        return bottom - plot_h * value / top

    parts = [
        f'<svg class="chart" id="{_attr(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{_attr(chart_id)}-title" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{_attr(chart_id)}-title">{escape(title)}</title>',
    ]
    for tick in range(TICKS + 1):
        y = _num(bottom - plot_h * tick / TICKS)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>'
            f'<text class="axis bar-axis" x="{LEFT - 6}" y="{y}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(number(bar_max * tick // TICKS))}</text>'
            f'<text class="axis line-axis" x="{WIDTH - RIGHT + 6}" y="{y}" '
            f'dominant-baseline="middle">{escape(number(line_max * tick // TICKS))}</text>'
        )
    line_points = []
    for index, point in enumerate(points):
        x = LEFT + slot * index + (slot - bar_w) / 2
        top = y_of(point.bar, bar_max)
        center = LEFT + slot * index + slot / 2
        line_points.append(f"{_num(center)},{_num(y_of(point.line, line_max))}")
        # The transparent full-height slot keeps the tooltip reachable on a zero-height bar.
        parts.append(
            f'<g class="point"><title>{escape(point.title)}</title>'
            f'<rect class="hit" x="{_num(LEFT + slot * index)}" y="{TOP}" width="{_num(slot)}" '
            f'height="{plot_h}"/>'
            f'<rect class="bar" x="{_num(x)}" y="{_num(top)}" width="{_num(bar_w)}" '
            f'height="{_num(bottom - top)}" data-key="{_attr(point.key)}" '
            f'data-bar="{point.bar}" data-line="{point.line}"/></g>'
        )
        if point.label:
            parts.append(
                f'<text class="axis x-axis" x="{_num(center)}" y="{HEIGHT - 10}" '
                f'text-anchor="middle">{escape(point.label)}</text>'
            )
    if line_points:
        parts.append(f'<polyline class="line" points="{" ".join(line_points)}"/>')
        for coords in line_points:
            cx, cy = coords.split(",")
            parts.append(f'<circle class="dot" cx="{cx}" cy="{cy}" r="2.5"/>')
    parts.append("</svg>")
    return "".join(parts)
