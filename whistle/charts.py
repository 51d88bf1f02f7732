"""Server-rendered SVG charts: no JavaScript, no external assets, nothing the CSP blocks.

The SVG is inline in the page. It carries no ``style`` attribute and no
``<style>`` element (``style-src 'self'`` would block both): colours come
from classes in ``static/style.css``. Text is escaped here; labels are the
caller's (already translated) words. Right-to-left pages get a mirrored
chart: labels on the right, bars growing to the left.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 640
ROW = 34
BAR = 22
PAD = 6


@dataclass(frozen=True)
class Bar:
    label: str
    value: int | None  # None: not shown (suppressed); drawn without a bar
    text: str  # what is written beside the bar: the number or "fewer than 5"


def bar_chart(title: str, bars: Sequence[Bar], rtl: bool = False, chart_id: str = "chart"
              ) -> Markup:
    """A horizontal bar chart as an inline ``<svg>``; bars scale to the largest shown value."""
    # A long label takes two lines rather than being cut off (issue 21): taller rows then.
    wrapped = [_wrap(b.label) for b in bars]
    row = ROW + (14 if any(len(lines) > 1 for lines in wrapped) else 0)
    height = PAD * 2 + row * max(1, len(bars))
    label_w = int(WIDTH * 0.42)
    value_w = 120
    bar_space = WIDTH - label_w - value_w - PAD * 4
    top = max((b.value for b in bars if b.value is not None), default=0)
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-labelledby="{escape(chart_id)}-title" '
        f'direction="ltr" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
    ]
    for i, b in enumerate(bars):
        y = PAD + i * row
        mid = y + row / 2
        length = 0 if not b.value or not top else max(2, round(bar_space * b.value / top))
        if rtl:
            label_x, label_anchor = WIDTH - PAD, "end"
            bar_end = WIDTH - label_w - PAD * 2
            bar_x = bar_end - length
            text_x, text_anchor = bar_x - PAD, "end"
        else:
            label_x, label_anchor = PAD, "start"
            bar_x = label_w + PAD * 2
            text_x, text_anchor = bar_x + length + PAD, "start"
        lines = wrapped[i]
        first = -0.6 * (len(lines) - 1)
        spans = "".join(
            f'<tspan x="{label_x}" dy="{first if n == 0 else 1.2}em">{escape(line)}</tspan>'
            for n, line in enumerate(lines))
        parts.append(
            f'<text class="chart-label" x="{label_x}" y="{mid:.1f}" text-anchor="{label_anchor}" '
            f'dominant-baseline="middle"><title>{escape(b.label)}</title>{spans}</text>')
        if length:
            parts.append(f'<rect class="chart-bar" x="{bar_x}" y="{y + (row - BAR) / 2:.1f}" '
                         f'width="{length}" height="{BAR}" rx="3"></rect>')
        css = "chart-value" if b.value is not None else "chart-value suppressed"
        parts.append(f'<text class="{css}" x="{text_x}" y="{mid:.1f}" '
                     f'text-anchor="{text_anchor}" dominant-baseline="middle">'
                     f'{escape(b.text)}</text>')
    parts.append("</svg>")
    # Safe markup: every string interpolated above went through escape(); the rest are numbers.
    return Markup("".join(parts))  # nosec B704


def _clip(label: str, limit: int = 31) -> str:
    return label if len(label) <= limit else label[:limit - 1] + "…"


def _wrap(label: str, limit: int = 31) -> list[str]:
    """One line, or two split at a space; only a label longer than two lines is cut."""
    if len(label) <= limit:
        return [label]
    cut = label.rfind(" ", 0, limit + 1)
    if cut <= 0:
        return [_clip(label, limit)]
    return [label[:cut], _clip(label[cut + 1:], limit)]


def breakdown_chart(title: str, cells: Sequence[object], label_of: Callable[[str], str],
                    small_text: str, hidden_text: str, rtl: bool = False,
                    chart_id: str = "chart") -> Markup:
    """A chart of a ``stats.Breakdown``'s cells: suppressed cells get words and no bar."""
    bars = []
    for cell in cells:
        key, count, reason = cell.key, cell.count, cell.reason  # type: ignore[attr-defined]
        text = str(count) if count is not None else (small_text if reason == "small"
                                                      else hidden_text)
        label = label_of(key)  # a Jinja macro returns escaped Markup: back to plain text
        label = label.unescape() if isinstance(label, Markup) else str(label)
        bars.append(Bar(label.strip(), count, text))
    return bar_chart(title, bars, rtl, chart_id)
