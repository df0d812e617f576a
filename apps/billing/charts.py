"""Bar charts drawn on the server as inline SVG: no script library, readable without
JavaScript, printable. Every label and value is escaped; each bar carries its label and value
(`data-label`, `data-value`, and a <title> tooltip) so tests and screen readers can read it."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 28, 44  # room for the value axis, the title and the labels
TICKS = 4
MAX_LABELS = 16  # more bars than this: label every n-th one, the tooltips name them all


def _px(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _nice_top(value: Decimal) -> Decimal:
    """The axis' top: `value` rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return Decimal(1)
    power = Decimal(10) ** (value.adjusted())
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def bar_chart(series: Sequence[tuple[str, Decimal]], *, title: str, unit: str = "", chart_id: str = "") -> SafeString:
    """An SVG bar chart of `series` ((label, value) pairs, in order), negative values below the
    axis. An empty series draws the axes and says so."""
    plot_w, plot_h = Decimal(WIDTH - LEFT - RIGHT), Decimal(HEIGHT - TOP - BOTTOM)
    values = [Decimal(v) for _, v in series]
    high = _nice_top(max([v for v in values if v > 0], default=Decimal(0)))
    low = -_nice_top(-min(values)) if values and min(values) < 0 else Decimal(0)
    span = high - low

    def y(value: Decimal) -> Decimal:
        return TOP + plot_h * (high - value) / span

    parts = [format_html('<svg xmlns="http://www.w3.org/2000/svg" class="bar-chart" role="img" viewBox="0 0 {} {}" '
                         'width="100%" aria-label="{}"{}>', WIDTH, HEIGHT, title,
                         format_html(' id="{}"', chart_id) if chart_id else ""),
             format_html('<text class="chart-title" x="{}" y="16">{}</text>', LEFT, title)]
    for n in range(TICKS + 1):
        value = low + span * n / TICKS
        parts.append(format_html('<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                                 '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
                                 LEFT, WIDTH - RIGHT, _px(y(value)), _px(y(value)), LEFT - 6, _px(y(value) + 4),
                                 f"{value.normalize():f}"))
    zero = y(Decimal(0))
    parts.append(format_html('<line class="axis" x1="{}" x2="{}" y1="{}" y2="{}"/>', LEFT, WIDTH - RIGHT,
                             _px(zero), _px(zero)))
    if not series:
        parts.append(format_html('<text class="empty" x="{}" y="{}" text-anchor="middle">No data</text>',
                                 WIDTH // 2, TOP + (HEIGHT - TOP - BOTTOM) // 2))
    slot = plot_w / max(len(series), 1)
    every = -(-len(series) // MAX_LABELS) or 1
    for i, ((label, _), value) in enumerate(zip(series, values, strict=True)):
        x = LEFT + slot * i + slot / 10
        top, bottom = (y(value), zero) if value >= 0 else (zero, y(value))
        parts.append(format_html(
            '<rect class="bar{}" x="{}" y="{}" width="{}" height="{}" data-label="{}" data-value="{}">'
            '<title>{}: {} {}</title></rect>', " negative" if value < 0 else "", _px(x), _px(top),
            _px(slot * 8 / 10), _px(bottom - top), label, value, label, value, unit))
        if i % every == 0:
            # Many bars: slanted labels, so that ids and dates do not run into each other.
            cx, cy = _px(x + slot * 4 / 10), HEIGHT - BOTTOM + 14
            slant = format_html(' transform="rotate(-25 {} {})"', cx, cy) if len(series) > 8 else ""
            parts.append(format_html('<text class="label" x="{}" y="{}" text-anchor="{}"{}>{}</text>', cx, cy,
                                     "end" if slant else "middle", slant, label))
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(parts))

