"""Inline SVG charts for the HTML report: stacked cost bars, a cumulative line over time, a hit-rate line.

Pure presentation: each chart is a string of SVG with its axes, tick labels and a hover tooltip (``<title>``) on
every bar or point. The x axis is what the bars are: calls (numbered in time order, runs marked), days, or groups
of neighbouring calls when there are too many for one bar each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from leanloop.analyze.report import COST_PARTS, CallRow, short_run, usd_text
from leanloop.wording import plural

__all__ = ["COLORS", "MAX_BARS", "Bars", "cost_bars", "cumulative_chart", "hit_rate_chart", "stacked_chart"]

COLORS: dict[str, str] = {
    "input": "#4e79a7",
    "cache_write_5m": "#f28e2b",
    "cache_write_1h": "#e15759",
    "cache_read": "#76b7b2",
    "output": "#59a14f",
    "web_search": "#b07aa1",
}
MAX_BARS = 400
_MIN_DAYS = 3  # from this many calendar days on, many calls are shown per day
_WIDTH = 1180
_HEIGHT = 290
_LEFT = 76
_RIGHT = 18
_TOP = 30  # room for run labels
_BOTTOM = 50  # tick labels and the axis caption
_PLOT_W = _WIDTH - _LEFT - _RIGHT
_PLOT_H = _HEIGHT - _TOP - _BOTTOM
_CHAR_PX = 7  # about one character of a 12 px label
_MIN_LABEL_CHARS = 5
_MAX_POINTS = 1500
_DAY = 86_400.0
_TIME_STEPS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400, 2 * 86_400, 7 * 86_400, 30 * 86_400)


@dataclass(frozen=True, slots=True)
class _Bar:
    label: str  # for the tooltip
    parts: tuple[float, ...]  # USD per component, in COST_PARTS order
    read: int
    prompt: int
    unpriced: bool  # a call in the bar has no price: ``parts`` leave it out
    calls: int
    run: str | None = None  # per-call bars: the run, to mark where runs start

    @property
    def total(self) -> float:
        return sum(self.parts)

    @property
    def hit_rate(self) -> float | None:
        return self.read / self.prompt if self.prompt else None


@dataclass(frozen=True)
class Bars:
    """What the bars of the cost and hit-rate charts stand for, with their x ticks."""

    bars: list[_Bar]
    unit: str  # "call", "day" or "group"
    group: int  # calls per bar for "group"
    ticks: list[tuple[int, str]]  # (bar index, label)
    caption: str  # the x axis

    @property
    def per(self) -> str:
        """What one bar is, for titles: ``call``, ``day``, ``101 calls``."""
        return f"{self.group:,} calls" if self.unit == "group" else self.unit


def _bar(label: str, rows: Sequence[CallRow], run: str | None = None) -> _Bar:
    parts = tuple(sum(getattr(r.cost, attr) for r in rows) for _, _, attr in COST_PARTS)
    read = sum(r.usage.cache_read_tokens for r in rows)
    prompt = sum(r.usage.prompt_tokens for r in rows)
    return _Bar(label, parts, read, prompt, any(not r.cost.is_known for r in rows), len(rows), run)


def _nice_step(count: int, ticks: int = 10) -> int:
    """1, 2, 5, 10, 20, 50, ... so that ``count`` items get about ``ticks`` labels."""
    raw = max(count / ticks, 1)
    scale = 10 ** math.floor(math.log10(raw))
    return next(int(step * scale) for step in (1, 2, 5, 10) if step * scale >= raw)


def _day_key(moment: float) -> int:
    return int(moment // _DAY)


def _date_label(day: int, *, with_year: bool = False) -> str:
    moment = datetime.fromtimestamp(day * _DAY, tz=UTC)
    return moment.strftime("%b %d %Y" if with_year else "%b %d")


def cost_bars(rows: Sequence[CallRow]) -> Bars:
    """One bar per call (``rows`` in time order); with more calls than ``MAX_BARS``, one per calendar day when the
    calls span a few days, else one per group of neighbouring calls."""
    if len(rows) <= MAX_BARS:
        bars = [_bar(f"call {i}: {short_run(r.run_id)} #{r.iteration}", [r], r.run_id) for i, r in enumerate(rows, 1)]
        step = _nice_step(len(rows))
        ticks = [(i - 1, f"{i:,}") for i in range(1, len(rows) + 1) if i == 1 or i % step == 0]
        return Bars(bars, "call", 1, ticks, "calls, numbered in time order (dashed lines: a new run starts)")
    timed = [r.started_at for r in rows if r.started_at is not None]
    days = _day_key(max(timed)) - _day_key(min(timed)) + 1 if timed else 0
    if len(timed) == len(rows) and _MIN_DAYS <= days <= MAX_BARS:
        return _day_bars(rows)
    size = -(-len(rows) // MAX_BARS)
    bars = [
        _bar(f"calls {start + 1:,}-{min(start + size, len(rows)):,}", rows[start : start + size])
        for start in range(0, len(rows), size)
    ]
    step = _nice_step(len(rows))
    ticks = [(min(n // size, len(bars) - 1), f"{n:,}") for n in range(step, len(rows) + 1, step)]
    return Bars(bars, "group", size, [(0, "1"), *ticks], f"calls, in time order ({size:,} per bar)")


def _day_bars(rows: Sequence[CallRow]) -> Bars:
    by_day: dict[int, list[CallRow]] = {}
    for row in rows:
        by_day.setdefault(_day_key(row.started_at or 0.0), []).append(row)
    first, last = min(by_day), max(by_day)
    years = datetime.fromtimestamp(first * _DAY, tz=UTC).year != datetime.fromtimestamp(last * _DAY, tz=UTC).year
    bars = [_bar(_date_label(day, with_year=True), by_day.get(day, [])) for day in range(first, last + 1)]
    step = _nice_step(len(bars), 12)
    ticks = [(i, _date_label(first + i, with_year=years)) for i in range(0, len(bars), step)]
    return Bars(bars, "day", 1, ticks, "day (UTC), idle days included")


def _money_scale(value: float) -> tuple[float, list[tuple[float, str]]]:
    """The top of a dollar axis for values up to ``value``, and its ticks: round steps (1, 2, 2.5 or 5 x 10^k),
    3 to 6 of them, labelled with as many decimals as they need (``$62.5``, ``$0.025``)."""
    if value <= 0:
        value = 1.0
    scale = 10 ** math.floor(math.log10(value / 6))
    step = next(m * scale for m in (1, 2, 2.5, 5, 10, 20) if value / (m * scale) <= 6)
    count = math.ceil(value / step - 1e-9)
    values = [step * k for k in range(count + 1)]
    decimals = next((d for d in range(7) if all(abs(round(v, d) - v) < 1e-9 * max(step, 1e-9) for v in values)), 6)
    decimals = max(decimals, 2) if step < 1 else decimals  # cents, as money is written
    return values[-1], [(v, f"${v:,.{decimals}f}") for v in values]


def _y(value: float, top: float) -> float:
    return _TOP + (1 - (value / top if top else 0.0)) * _PLOT_H


def _frame(
    y_ticks: Sequence[tuple[float, str]], top: float, x_ticks: Sequence[tuple[float, str]], caption: str
) -> list[str]:
    """Grid lines with y labels, the baseline, x tick marks with labels, and the x axis caption."""
    out: list[str] = []
    for value, label in y_ticks:
        y = _y(value, top)
        out.append(f'<line x1="{_LEFT}" x2="{_LEFT + _PLOT_W}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef0f4"/>')
        out.append(f'<text x="{_LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    base = _TOP + _PLOT_H
    out.append(f'<line x1="{_LEFT}" x2="{_LEFT + _PLOT_W}" y1="{base}" y2="{base}" stroke="#9aa3b2"/>')
    for x, label in x_ticks:
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 5}" stroke="#9aa3b2"/>')
        out.append(f'<text x="{x:.1f}" y="{base + 18}" text-anchor="middle">{escape(label)}</text>')
    middle = _LEFT + _PLOT_W / 2
    out.append(f'<text class="axis" x="{middle:.0f}" y="{_HEIGHT - 8}" text-anchor="middle">{escape(caption)}</text>')
    return out


def _svg(body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {_HEIGHT}" width="100%" role="img" '
        f'aria-label="{escape(title)}">' + "".join(body) + "</svg>"
    )


def _bar_x(index: int, count: int) -> float:
    """The centre of bar ``index`` of ``count``."""
    return _LEFT + (index + 0.5) * _PLOT_W / max(count, 1)


def _run_marks(bars: Sequence[_Bar]) -> list[str]:
    """A dashed line where each run starts (per-call bars), labelled where the run is wide enough for it."""
    starts = [i for i, bar in enumerate(bars) if bar.run is not None and (i == 0 or bars[i - 1].run != bar.run)]
    if len(starts) < 2:
        return []
    out: list[str] = []
    step = _PLOT_W / max(len(bars), 1)
    for i, end in zip(starts, [*starts[1:], len(bars)], strict=True):
        x = _LEFT + i * step
        if i:
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP - 4}" y2="{_TOP + _PLOT_H}" class="run"/>')
        room = int((end - i) * step / _CHAR_PX) - 1
        label = short_run(bars[i].run or "")
        if room >= _MIN_LABEL_CHARS:
            text = label if len(label) <= room else label[: room - 1] + "…"
            out.append(f'<text x="{x + 3:.1f}" y="{_TOP - 8}"><title>{escape(label)}</title>{escape(text)}</text>')
    return out


def stacked_chart(bars: Bars) -> str:
    """Cost per bar, segments in billing order."""
    top, money = _money_scale(max((b.total for b in bars.bars), default=0.0))
    step = _PLOT_W / max(len(bars.bars), 1)
    width = max(step * 0.8, 0.6)
    x_ticks = [(_bar_x(i, len(bars.bars)), label) for i, label in bars.ticks]
    body = _frame(money, top, x_ticks, bars.caption)
    body += _run_marks(bars.bars)
    for index, bar in enumerate(bars.bars):
        x = _LEFT + index * step + (step - width) / 2
        y = float(_TOP + _PLOT_H)
        calls = f" ({plural(bar.calls, 'call')})" if bars.unit != "call" else ""
        tip = f"{bar.label}{calls}: {usd_text(bar.total)}{'+?' if bar.unpriced else ''}"
        for (label, _, attribute), value in zip(COST_PARTS, bar.parts, strict=True):
            if value <= 0:
                continue
            height = value / top * _PLOT_H
            y -= height
            body.append(
                f'<rect x="{x:.2f}" y="{y:.2f}" width="{width:.2f}" height="{height:.2f}" '
                f'fill="{COLORS[attribute]}"><title>{escape(tip)} - {label} {usd_text(value)}</title></rect>'
            )
    return _svg(body, f"cost per {bars.per} by component")


def hit_rate_chart(bars: Bars) -> str:
    """Cache hit rate per bar; the line breaks where a run starts and at bars without calls."""
    y_ticks = [(k / 4, f"{25 * k}%") for k in range(5)]
    x_ticks = [(_bar_x(i, len(bars.bars)), label) for i, label in bars.ticks]
    body = _frame(y_ticks, 1.0, x_ticks, bars.caption)
    body += _run_marks(bars.bars)
    segments: list[list[tuple[float, float, str]]] = [[]]
    for index, bar in enumerate(bars.bars):
        rate = bar.hit_rate
        new_run = index > 0 and bar.run is not None and bars.bars[index - 1].run != bar.run
        if rate is None or new_run:
            segments.append([])
        if rate is None:
            continue
        tip = f"{bar.label}: {100 * rate:.1f}% of {bar.prompt:,} prompt tokens read from the cache"
        segments[-1].append((_bar_x(index, len(bars.bars)), _y(rate, 1.0), tip))
    for points in segments:
        body.append(_polyline(points, "#3f8f8a", dots=len(bars.bars) <= MAX_BARS))
    return _svg(body, f"cache hit rate per {bars.per}")


def _polyline(points: Sequence[tuple[float, float, str]], color: str, *, dots: bool) -> str:
    if not points:
        return ""
    line = " ".join(f"{x:.2f},{y:.2f}" for x, y, _ in points)
    parts = [f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>']
    if dots:
        parts.extend(
            f'<circle cx="{x:.2f}" cy="{y:.2f}" r="3" fill="{color}"><title>{escape(tip)}</title></circle>'
            for x, y, tip in points
            if tip
        )
    return "".join(parts)


def _time_ticks(start: float, end: float) -> list[tuple[float, str]]:
    """About 8 round times between ``start`` and ``end`` (UTC), labelled at the step's precision."""
    span = max(end - start, 1.0)
    step = next((s for s in _TIME_STEPS if span / s <= 8), _TIME_STEPS[-1])
    first = math.ceil(start / step) * step
    ticks: list[tuple[float, str]] = []
    moment = first
    previous_day = None
    while moment <= end:
        when = datetime.fromtimestamp(moment, tz=UTC)
        if step >= _DAY:
            label = when.strftime("%b %d")
        else:
            day = when.date()
            label = when.strftime("%b %d %H:%M" if day != previous_day else "%H:%M")
            previous_day = day
        ticks.append((moment, label))
        moment += step
    return ticks


def cumulative_chart(rows: Sequence[CallRow]) -> str:
    """Cumulative cost against time (calls in time order); against call number when some calls have no time."""
    running = 0.0
    points: list[tuple[float, float]] = []
    for row in rows:
        running += row.cost.priced_total
        points.append((row.started_at or 0.0, running))
    timed = all(row.started_at is not None for row in rows) and rows and points[-1][0] > points[0][0]
    top, money = _money_scale(running)
    if timed:
        start, end = points[0][0], points[-1][0]

        def x_of(moment: float) -> float:
            return _LEFT + (moment - start) / (end - start) * _PLOT_W

        x_ticks = [(x_of(moment), label) for moment, label in _time_ticks(start, end)]
        caption = "time (UTC)"
        xs = [x_of(moment) for moment, _ in points]
        body_start = [(x_of(start), _y(0.0, top), "")]
    else:
        step = _nice_step(len(rows))
        xs = [_bar_x(i, len(rows)) for i in range(len(rows))]
        x_ticks = [(xs[i - 1], f"{i:,}") for i in range(1, len(rows) + 1) if i == 1 or i % step == 0]
        caption = "calls, in time order"
        body_start = []
    body = _frame(money, top, x_ticks, caption)
    every = max(1, -(-len(points) // _MAX_POINTS))
    chosen = [*range(0, len(points), every), len(points) - 1] if points else []
    line = body_start + [
        (xs[i], _y(points[i][1], top), f"call {i + 1:,}: {usd_text(points[i][1])} so far") for i in sorted(set(chosen))
    ]
    body.append(_polyline(line, "#4e79a7", dots=len(rows) <= MAX_BARS))
    return _svg(body, "cumulative cost")
