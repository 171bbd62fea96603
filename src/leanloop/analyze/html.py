"""The HTML report: one self-contained file (inline CSS, inline SVG charts, no script, nothing fetched) that opens
offline in any browser.

Charts: cost per call stacked by component, cumulative cost, and cache hit rate per call. With more calls than a
chart has room for, neighbouring calls are grouped into one bar (costs added, hit rate weighted by prompt tokens);
the caption says so. Hovering a bar or point shows its numbers (SVG ``<title>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from leanloop.analyze.report import (
    COMPONENTS,
    CallRow,
    Report,
    Totals,
    cost_text,
    iso_time,
    short_run,
    short_source,
    unpriced_warning,
    usd_text,
)

__all__ = ["COLORS", "render_html"]

COLORS: dict[str, str] = {
    "input": "#4e79a7",
    "cache_write_5m": "#f28e2b",
    "cache_write_1h": "#e15759",
    "cache_read": "#76b7b2",
    "output": "#59a14f",
}
_WIDTH = 1100
_HEIGHT = 260
_LEFT = 70
_RIGHT = 20
_TOP = 16
_BOTTOM = 34
_MAX_BARS = 400
_MAX_TABLE_CALLS = 2000

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1160px;
color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5b6475;margin-bottom:16px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid #dde2ea;border-radius:8px;padding:10px 14px;min-width:140px}
.card b{display:block;font-size:20px}.card span{color:#5b6475;font-size:12px}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid #eef0f4;text-align:right;white-space:nowrap}
th:first-child,td:first-child,td.l,th.l{text-align:left}
th{background:#f6f7f9;font-weight:600}
.legend{display:flex;gap:16px;font-size:12px;margin:4px 0 0 70px}
.legend i{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.caption{color:#5b6475;font-size:12px;margin-left:70px}
.warn{color:#9a5b00}
svg text{font:11px system-ui,sans-serif;fill:#5b6475}
"""


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


@dataclass(frozen=True, slots=True)
class _Bar:
    label: str
    parts: tuple[float, ...]  # USD per component, in COMPONENTS order
    read: int
    prompt: int
    unpriced: bool  # a call in the bar has no price: ``parts`` leave it out

    @property
    def total(self) -> float:
        return sum(self.parts)

    @property
    def hit_rate(self) -> float:
        return self.read / self.prompt if self.prompt else 0.0


def _bars(calls: Sequence[CallRow]) -> tuple[list[_Bar], int]:
    """One bar per call, or per group of neighbouring calls when there are more than ``_MAX_BARS``."""
    size = max(1, -(-len(calls) // _MAX_BARS))
    bars: list[_Bar] = []
    for start in range(0, len(calls), size):
        group = calls[start : start + size]
        parts = tuple(sum(getattr(c.cost, attr) for c in group) for _, _, attr in COMPONENTS)
        first = group[0]
        label = f"calls {start + 1}-{start + len(group)}" if size > 1 else f"{first.run_id[:12]} #{first.iteration}"
        read = sum(c.usage.cache_read_tokens for c in group)
        prompt = sum(c.usage.prompt_tokens for c in group)
        bars.append(_Bar(label, parts, read, prompt, unpriced=any(not c.cost.is_known for c in group)))
    return bars, size


def _nice_ceiling(value: float) -> float:
    """The smallest 1/2/2.5/5 x 10^k at or above ``value``."""
    if value <= 0:
        return 1.0
    scale = 1.0
    while scale * 10 < value:
        scale *= 10
    while scale > value:
        scale /= 10
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * scale + 1e-15:
            return step * scale
    return 10 * scale  # pragma: no cover


def _frame(ticks: Sequence[tuple[float, str]], y_of: float, x_label: str) -> list[str]:
    """Axes, horizontal grid lines with labels, and the x-axis caption."""
    plot_w = _WIDTH - _LEFT - _RIGHT
    out: list[str] = []
    for value, label in ticks:
        y = _TOP + (1 - value / y_of) * (_HEIGHT - _TOP - _BOTTOM) if y_of else _HEIGHT - _BOTTOM
        out.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef0f4"/>')
        out.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    base = _HEIGHT - _BOTTOM
    out.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{base}" y2="{base}" stroke="#9aa3b2"/>')
    out.append(f'<text x="{_LEFT + plot_w / 2:.0f}" y="{_HEIGHT - 8}" text-anchor="middle">{escape(x_label)}</text>')
    return out


def _svg(body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {_HEIGHT}" width="100%" role="img" '
        f'aria-label="{escape(title)}">' + "".join(body) + "</svg>"
    )


def _money_ticks(top: float) -> list[tuple[float, str]]:
    return [(top * k / 4, usd_text(top * k / 4)) for k in range(5)]


def _stacked_cost_chart(bars: Sequence[_Bar]) -> str:
    """Cost per call, one stacked bar per call, segments in billing order."""
    top = _nice_ceiling(max((b.total for b in bars), default=0.0))
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    step = plot_w / max(len(bars), 1)
    width = max(step * 0.8, 0.6)
    body = _frame(_money_ticks(top), top, "calls, in time order")
    for index, bar in enumerate(bars):
        x = _LEFT + index * step + (step - width) / 2
        y = float(_TOP + plot_h)
        tip = f"{bar.label}: {usd_text(bar.total)}{'+?' if bar.unpriced else ''}"
        for (label, _, attribute), value in zip(COMPONENTS, bar.parts, strict=True):
            if value <= 0:
                continue
            height = value / top * plot_h
            y -= height
            body.append(
                f'<rect x="{x:.2f}" y="{y:.2f}" width="{width:.2f}" height="{height:.2f}" '
                f'fill="{COLORS[attribute]}"><title>{escape(tip)} - {label} {usd_text(value)}</title></rect>'
            )
    return _svg(body, "cost per call by component")


def _cumulative_cost_chart(bars: Sequence[_Bar]) -> str:
    totals: list[float] = []
    tips: list[str] = []
    running = 0.0
    unpriced = False
    for bar in bars:
        running += bar.total
        unpriced = unpriced or bar.unpriced
        totals.append(running)
        tips.append(f"{bar.label}: {usd_text(running)}{'+?' if unpriced else ''} so far")
    top = _nice_ceiling(running)
    body = _frame(_money_ticks(top), top, "calls, in time order")
    body.append(_polyline(totals, top, "#4e79a7", tips))
    return _svg(body, "cumulative cost")


def _hit_rate_chart(bars: Sequence[_Bar]) -> str:
    rates = [bar.hit_rate for bar in bars]
    ticks = [(k / 4, f"{25 * k}%") for k in range(5)]
    body = _frame(ticks, 1.0, "calls, in time order")
    tips = [f"{b.label}: {_pct(b.hit_rate)} of {b.prompt:,} prompt tokens read from cache" for b in bars]
    body.append(_polyline(rates, 1.0, "#76b7b2", tips))
    return _svg(body, "cache hit rate per call")


def _polyline(values: Sequence[float], top: float, color: str, tips: Sequence[str]) -> str:
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    step = plot_w / max(len(values), 1)
    points = [(_LEFT + (i + 0.5) * step, _TOP + (1 - (v / top if top else 0)) * plot_h) for i, v in enumerate(values)]
    line = " ".join(f"{x:.2f},{y:.2f}" for x, y in points)
    parts = [f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>']
    if len(points) <= _MAX_BARS:
        parts.extend(
            f'<circle cx="{x:.2f}" cy="{y:.2f}" r="3" fill="{color}"><title>{escape(tip)}</title></circle>'
            for (x, y), tip in zip(points, tips, strict=True)
        )
    return "".join(parts)


def _legend() -> str:
    items = "".join(
        f'<span><i style="background:{COLORS[attribute]}"></i>{escape(label)}</span>'
        for label, _, attribute in COMPONENTS
    )
    return f'<div class="legend">{items}</div>'


def _is_text(cell: str) -> bool:
    return any(ch.isalpha() for ch in cell.removesuffix(" est."))


def _row(cells: Sequence[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}{' class=l' if _is_text(c) else ''}>{escape(c)}</{tag}>" for c in cells) + "</tr>"


def _totals_cells(totals: Totals) -> list[str]:
    usage = totals.usage
    tokens = [f"{getattr(usage, attribute):,}" for _, attribute, _ in COMPONENTS]
    return [f"{totals.calls:,}", *tokens, _pct(totals.hit_rate), cost_text(totals.cost)]


_TOTAL_HEAD = ("calls", "input", "write 5m", "write 1h", "read", "output", "hit rate", "cost")
_CALL_HEAD = ("call", "time (UTC)", "model", "input", "write 5m", "write 1h", "read", "output", "hit", "cost", "source")


def _call_cells(row: CallRow) -> list[str]:
    usage = row.usage
    return [
        f"{short_run(row.run_id)} #{row.iteration}",
        (iso_time(row.started_at) or "-").replace("T", " ").rstrip("Z"),
        row.model,
        *(f"{getattr(usage, attribute):,}" for _, attribute, _ in COMPONENTS),
        _pct(row.hit_rate),
        cost_text(row.cost),
        short_source(row.source),
    ]


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return '<div class="scroll"><table>' + _row(head, "th") + "".join(_row(r) for r in rows) + "</table></div>"


def _chart_calls(report: Report) -> list[CallRow]:
    if all(row.started_at is not None for row in report.calls):
        return sorted(report.calls, key=lambda row: row.started_at or 0.0)
    return list(report.calls)


def render_html(report: Report, *, title: str = "leanloop report", top: int = 10) -> str:
    """The whole report as one HTML document."""
    totals = report.totals
    calls = _chart_calls(report)
    bars, group = _bars(calls)
    grouped = f" Each bar groups {group:,} neighbouring calls." if group > 1 else ""
    files = [f for f in report.log.files if f.format]
    cards = [
        (cost_text(totals.cost), "total cost"),
        (f"{totals.calls:,}", "model calls"),
        (f"{len(report.runs):,}", "runs"),
        (_pct(totals.hit_rate), "cache hit rate (read / all input)"),
        (f"{totals.usage.prompt_tokens:,}", "input tokens (all kinds)"),
        (f"{totals.usage.output_tokens:,}", "output tokens"),
    ]
    kinds = [
        [label, f"{getattr(totals.usage, attr):,}", cost_text(totals.cost, getattr(totals.cost, cost_attr))]
        for label, attr, cost_attr in COMPONENTS
    ]
    runs = sorted(report.runs.values(), key=lambda run: run.totals.cost.priced_total, reverse=True)
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<div class="sub">{len(files):,} file{"" if len(files) == 1 else "s"}: '
        + escape(", ".join(sorted({f.format or "" for f in files})) or "no known format")
        + "</div>",
        '<div class="cards">'
        + "".join(f"<div class=card><b>{escape(v)}</b><span>{escape(k)}</span></div>" for v, k in cards)
        + "</div>",
        _unpriced(totals),
        "<h2>Cost per call, by component</h2>",
        _stacked_cost_chart(bars),
        _legend(),
        f'<div class="caption">Hover a bar for its numbers.{grouped}</div>',
        "<h2>Cumulative cost</h2>",
        _cumulative_cost_chart(bars),
        "<h2>Cache hit rate per call</h2>",
        _hit_rate_chart(bars),
        '<div class="caption">cache read tokens / all input tokens (uncached input + cache writes + cache reads)'
        + (", weighted by prompt size within a group" if group > 1 else "")
        + "</div>",
        "<h2>Tokens and cost by kind</h2>",
        _table(("kind", "tokens", "cost"), kinds),
        "<h2>By model</h2>",
        _table(("model", *_TOTAL_HEAD), [[m, *_totals_cells(t)] for m, t in sorted(report.by_model.items())]),
        "<h2>By day (UTC)</h2>",
        _table(("day", *_TOTAL_HEAD), [[d, *_totals_cells(t)] for d, t in sorted(report.by_day.items())]),
        "<h2>Runs</h2>",
        _table(
            ("run", "models", *_TOTAL_HEAD),
            [[r.run_id, ", ".join(sorted(r.models)), *_totals_cells(r.totals)] for r in runs],
        ),
        f"<h2>Costliest calls (top {top})</h2>",
        _table(_CALL_HEAD, [_call_cells(row) for row in report.costliest(top)]),
    ]
    if len(report.calls) <= _MAX_TABLE_CALLS:
        parts += ["<h2>All calls</h2>", _table(_CALL_HEAD, [_call_cells(row) for row in report.calls])]
    parts.append(_problems(report))
    parts.append("</body></html>")
    return "\n".join(parts)


def _unpriced(totals: Totals) -> str:
    if not totals.unpriced_calls:
        return ""
    return f'<p class="warn">{escape(unpriced_warning(totals.cost.unknown_models, totals.unpriced_calls))}</p>'


def _problems(report: Report) -> str:
    log = report.log
    if not log.problem_count and not log.skipped:
        return ""
    items = [f"<li class=warn>{escape(str(p))}</li>" for p in log.problems[:200]]
    if log.problem_count > len(items):
        items.append(f"<li>... {log.problem_count - len(items):,} more</li>")
    items += [f"<li>skipped: {count:,} {escape(reason)}</li>" for reason, count in sorted(log.skipped.items())]
    return f"<h2>Import notes</h2><ul>{''.join(items)}</ul>"
