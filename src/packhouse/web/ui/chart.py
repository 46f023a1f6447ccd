"""A small bar chart of downloads per day, drawn on the server as SVG (no script, no
style attribute: the page's CSP holds; colours come from the stylesheet's classes)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 600, 120, 18


def daily_bars(days: Sequence[tuple[str, int]], label: str) -> Markup:
    top = max((n for _, n in days), default=0)
    scale = (HEIGHT - 2 * PAD) / top if top else 0.0
    step = (WIDTH - 2 * PAD) / max(len(days), 1)
    bars = []
    for i, (day, n) in enumerate(days):
        h = n * scale
        x = PAD + i * step
        y = HEIGHT - PAD - h
        bars.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}"'
            f' height="{max(h, 0.5 if n else 0):.1f}"><title>{escape(day)}: {n}</title></rect>'
        )
    first = escape(days[0][0]) if days else ""
    last = escape(days[-1][0]) if days else ""
    svg = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' aria-label="{escape(label)}">'
        f'<line class="axis" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}"'
        f' y2="{HEIGHT - PAD}"/>'
        + "".join(bars)
        + f'<text class="tick" x="{PAD}" y="{HEIGHT - 4}">{first}</text>'
        f'<text class="tick end" x="{WIDTH - PAD}" y="{HEIGHT - 4}">{last}</text>'
        f'<text class="tick" x="{PAD}" y="{PAD - 6}">max {top}/day</text>'
        "</svg>"
    )
    return Markup(svg)  # noqa: S704 (built from numbers and escaped text)
