"""Cost and tasks done per day, drawn on the server as SVG (no script, nothing to download).

`days` takes the view's totals per local day (view.py keeps them as notes come and go) for the
chart's days; `cost_chart` draws them beside the daily budget. Both are pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from markupsafe import Markup, escape

from .view import DayTotal

CHART_DAYS = 14


@dataclass(frozen=True)
class Day:
    day: date
    cost_usd: float
    done: int


def days(per_day: Mapping[date, DayTotal], today: date, n: int = CHART_DAYS) -> list[Day]:
    """The last `n` days up to `today`, each with its cost and tasks done (by completed_at)."""
    figures = []
    for i in range(n - 1, -1, -1):
        day = today - timedelta(days=i)
        total = per_day.get(day, DayTotal())
        figures.append(Day(day, total.cost_micro / 1e6, total.done))
    return figures


def _finite(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else 0.0


def cost_chart(
    figures: list[Day], budget_usd: float, width: int = 560, height: int = 160
) -> Markup:
    """Bars of cost per day, the number done above each, and the daily budget as a line."""
    pad_left, pad_bottom, pad_top = 44, 22, 16
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    budget = _finite(budget_usd)
    top = max([_finite(d.cost_usd) for d in figures] + [budget, 0.01])
    slot = plot_w / max(1, len(figures))
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="cost and tasks done per day" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="4" y="{pad_top + 4}" class="axis">${top:.2f}</text>',
        f'<text x="4" y="{pad_top + plot_h}" class="axis">$0</text>',
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width - 8}" '
        f'y2="{pad_top + plot_h}" class="base"/>',
    ]
    for i, day in enumerate(figures):
        value = _finite(day.cost_usd)
        bar_h = plot_h * value / top
        x = pad_left + i * slot + slot * 0.15
        y = pad_top + plot_h - bar_h
        label = escape(f"{day.day:%a %d %b}: ${value:.2f}, {day.done} done")
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{bar_h:.1f}" '
            f'class="bar"><title>{label}</title></rect>'
        )
        if day.done:
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{y - 3:.1f}" class="done" '
                f'text-anchor="middle">{day.done}</text>'
            )
        if i % 2 == 0 or len(figures) <= 7:
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{height - 6}" class="axis" '
                f'text-anchor="middle">{day.day:%d}</text>'
            )
    if budget:
        y = pad_top + plot_h - plot_h * budget / top
        parts.append(
            f'<line x1="{pad_left}" y1="{y:.1f}" x2="{width - 8}" y2="{y:.1f}" class="budget">'
            f"<title>daily budget ${budget:.2f}</title></line>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value in it is a number or escaped


def today_local(now: datetime) -> date:
    return now.astimezone().date()
