"""The HTML report: one self-contained file (inline CSS, inline SVG charts, no script, nothing fetched) that opens
offline in any browser and fits a 1400-pixel screen without scrolling sideways.

From the top: what was spent, over which period, and the month at that rate; where the money went over time (cost
by component, cumulative cost, cache hit rate: per call, per day or per group of calls, in time order across all
files); what the cache misses cost and why (``explain``'s findings); then the tables: by kind, project, model, day,
run, the costliest calls. Hovering a bar or point shows its numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape

from leanloop.analyze.charts import COLORS, cost_bars, cumulative_chart, hit_rate_chart, stacked_chart
from leanloop.analyze.misses import Miss, MissReport, format_gap
from leanloop.analyze.projection import Projection
from leanloop.analyze.report import (
    COMPONENTS,
    CallRow,
    Report,
    RunTotals,
    Totals,
    cost_text,
    iso_time,
    parts_of,
    short_model,
    short_run,
    short_source,
    unpriced_warning,
    usd_text,
)
from leanloop.usage import Usage
from leanloop.wording import counted, plural

__all__ = ["COLORS", "render_html"]

_MAX_TABLE_CALLS = 500
_MAX_RUNS = 25
_MAX_MISSES = 15

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1240px;
padding:0 16px;color:#1d2330;background:#fff}
h1{font-size:24px;margin:0 0 2px}h2{font-size:18px;margin:34px 0 6px}
.sub{color:#5b6475;margin-bottom:14px}
.lead{font-size:16px;margin:10px 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px}
.card{border:1px solid #dde2ea;border-radius:8px;padding:10px 14px}
.card b{display:block;font-size:21px}.card span{color:#5b6475;font-size:12px}
.card.key{border-color:#4e79a7;background:#f5f8fc}
table{border-collapse:collapse;width:100%;font-size:13px;margin-top:4px}
th,td{padding:4px 8px;border-bottom:1px solid #eef0f4;text-align:right;white-space:nowrap}
td.l,th.l,td.w,th.w{text-align:left}td.w{white-space:normal;overflow-wrap:anywhere;min-width:12em}
th{background:#f6f7f9;font-weight:600}
.legend{display:flex;gap:18px;font-size:12px;margin:2px 0 0 76px;flex-wrap:wrap}
.legend i{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.caption,.note{color:#5b6475;font-size:12px}
.caption{margin-left:76px}
.warn{color:#9a5b00}
svg{display:block}
svg text{font:12px system-ui,sans-serif;fill:#5b6475}
svg text.axis{fill:#1d2330}
svg line.run{stroke:#9aa3b2;stroke-dasharray:3 3}
"""


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _row(cells: Sequence[str], classes: Sequence[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}{k}>{escape(c)}</{tag}>" for c, k in zip(cells, classes, strict=False)) + "</tr>"


def _table(
    head: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int = 1, wrap: tuple[int, ...] = ()
) -> str:
    """The first ``text_columns`` columns hold text (left-aligned; those in ``wrap`` wrap, long paths and
    sentences); the others numbers."""
    classes = [(" class=w" if i in wrap else " class=l") if i < text_columns else "" for i in range(len(head))]
    body = "".join(_row(r, classes) for r in rows)
    return "<table>" + _row(head, classes, "th") + body + "</table>"


def _totals_cells(totals: Totals) -> list[str]:
    usage = totals.usage
    tokens = [f"{getattr(usage, attribute):,}" for _, attribute, _ in COMPONENTS]
    return [f"{totals.calls:,}", *tokens, _pct(totals.hit_rate), cost_text(totals.cost)]


_TOTAL_HEAD = ("calls", "input", "write 5m", "write 1h", "read", "output", "hit rate", "cost")
# Calls and runs: the prompt as a whole (input + writes + reads) and the part read from the cache; the split of
# writes by TTL is in the totals tables.
_CALL_HEAD = ("call", "source", "time (UTC)", "model", "prompt", "cache read", "cache write", "output", "hit", "cost")
_RUN_HEAD = ("run", "project", "models", "first call (UTC)", "calls", "prompt", "output", "hit rate", "cost")


def _when(moment: float | None) -> str:
    return (iso_time(moment) or "-").replace("T", " ").rstrip("Z")


def _call_cells(row: CallRow) -> list[str]:
    usage = row.usage
    return [
        f"{short_run(row.run_id)} #{row.iteration}",
        short_source(row.source),
        _when(row.started_at),
        short_model(row.model),
        *_prompt_cells(usage),
        _pct(row.hit_rate),
        cost_text(row.cost),
    ]


def _run_cells(run: RunTotals) -> list[str]:
    totals = run.totals
    return [
        run.name,
        run.project,
        ", ".join(short_model(m) for m in sorted(run.models)),
        _when(run.first_at),
        f"{totals.calls:,}",
        f"{totals.usage.prompt_tokens:,}",
        f"{totals.usage.output_tokens:,}",
        _pct(totals.hit_rate),
        cost_text(totals.cost),
    ]


def _prompt_cells(usage: Usage) -> list[str]:
    return [
        f"{usage.prompt_tokens:,}",
        f"{usage.cache_read_tokens:,}",
        f"{usage.cache_write_tokens:,}",
        f"{usage.output_tokens:,}",
    ]


def _time_ordered(report: Report) -> list[CallRow]:
    """Every call across all files in time order; calls without a time after them, in the order read."""
    timed = sorted((r for r in report.calls if r.started_at is not None), key=lambda r: r.started_at or 0.0)
    return timed + [r for r in report.calls if r.started_at is None]


def _card(value: str, label: str, *, key: bool = False) -> str:
    return f'<div class="card{" key" if key else ""}"><b>{escape(value)}</b><span>{escape(label)}</span></div>'


def _lost(misses: MissReport, total: Decimal) -> tuple[str, str, bool]:
    """The card for what cache misses cost: never $0 for misses without a price."""
    if not misses.misses:
        return "none", "cache misses", False
    priced = len(misses.misses) - misses.unpriced_misses
    value = (usd_text(misses.lost_usd) + ("+?" if misses.unpriced_misses else "")) if priced else "unknown"
    share = f", {_pct(float(misses.lost_usd / total))} of spend" if total and priced else ""
    return value, f"lost to {plural(len(misses.misses), 'cache miss')}{share}", False


def _cards(report: Report, projection: Projection, misses: MissReport | None) -> str:
    totals = report.totals
    known = totals.cost.is_known
    total = totals.cost.priced_total
    rate = " (at --runs-per-day)" if projection.runs_per_day else " at this rate"
    figures: list[tuple[str | Decimal | None, str, bool]] = [
        (cost_text(totals.cost), f"spent on {plural(totals.calls, 'call')}", True),
        (projection.per_month(total) if known else None, f"projected for 30 days{rate}", True),
        (projection.per_day(total) if known else None, "per day", False),
        (projection.per_run(total) if known else None, f"per run ({plural(projection.period.runs, 'run')})", False),
        (_pct(totals.hit_rate), "cache hit rate (read / all input)", False),
    ]
    if misses is not None:
        figures.append(_lost(misses, total))
    cards = [
        _card(value if isinstance(value, str) else usd_text(value), label, key=key)
        for value, label, key in figures
        if value is not None
    ]
    return '<div class="cards">' + "".join(cards) + "</div>"


def _headline(report: Report, projection: Projection, misses: MissReport | None) -> list[str]:
    totals = report.totals
    period = projection.period
    month = projection.per_month(totals.cost.priced_total) if totals.cost.is_known else None
    lead = f"<b>{escape(cost_text(totals.cost))}</b> on {plural(totals.calls, 'model call')}"
    lead += f" in {plural(len(report.runs), 'run')}"
    if period.first_at is not None and period.last_at is not None:
        days = plural(period.days or 0, "calendar day")
        lead += f", {escape(_when(period.first_at))} to {escape(_when(period.last_at))} UTC ({days})"
    if month is not None:
        lead += f". At this rate, <b>{escape(usd_text(month))}</b> per 30 days."
    return [
        f'<p class="lead">{lead}</p>',
        _cards(report, projection, misses),
        f'<p class="note">30-day projection: {escape(projection.method)}.</p>',
    ]


def _legend(totals: Totals) -> str:
    items = "".join(
        f'<span><i style="background:{COLORS[attribute]}"></i>{escape(label)}</span>'
        for label, _, attribute in parts_of(totals)
    )
    return f'<div class="legend">{items}</div>'


def _charts(report: Report) -> list[str]:
    rows = _time_ordered(report)
    bars = cost_bars(rows)
    untimed = sum(1 for r in rows if r.started_at is None)
    order = f" {plural(untimed, 'call')} without a time come last." if untimed and untimed < len(rows) else ""
    unit = {"call": "call", "day": "day", "group": f"group of {bars.group:,} calls"}[bars.unit]
    return [
        f"<h2>Cost per {escape(unit)}, by component</h2>",
        stacked_chart(bars),
        _legend(report.totals),
        f'<div class="caption">Hover a bar for its numbers.{escape(order)}</div>',
        "<h2>Cumulative cost</h2>",
        cumulative_chart(rows),
        f"<h2>Cache hit rate per {escape(unit)}</h2>",
        hit_rate_chart(bars),
        '<div class="caption">cache read tokens / all input tokens (uncached input + cache writes + cache reads)'
        + (", weighted by prompt size" if bars.unit != "call" else "")
        + "</div>",
    ]


_MISS_HEAD = ("call", "cause", "why", "time (UTC)", "gap", "tokens lost", "USD lost")


def _miss_cells(miss: Miss) -> list[str]:
    return [
        f"{short_run(miss.run_id)} #{miss.iteration}",
        miss.cause,
        miss.detail,
        _when(miss.started_at),
        format_gap(miss.gap_s) if miss.gap_s is not None else "-",
        f"{miss.lost_tokens:,}",
        usd_text(miss.lost_usd) if miss.lost_usd is not None else "unknown",
    ]


def _misses(misses: MissReport | None, total: float) -> list[str]:
    if misses is None:
        return []
    if not misses.misses:
        return ["<h2>Cache misses: none</h2>", "<p>No call re-wrote or re-sent what an earlier call had cached.</p>"]
    head = [f"<h2>Cache misses: {escape(_lost(misses, Decimal(0))[0])} lost</h2>"]
    share = f" ({_pct(float(misses.lost_usd) / total)} of the spend)" if total else ""
    head.append(
        f"<p>{plural(len(misses.misses), 'call')} wrote or sent uncached what an earlier call had cached: "
        f"{misses.lost_tokens:,} tokens, {escape(usd_text(misses.lost_usd))}{escape(share)} more than reading them "
        "would have cost.</p>"
    )
    causes = [
        [cause, f"{t.calls:,}", f"{t.lost_tokens:,}", usd_text(t.lost_usd)] for cause, t in misses.by_cause.items()
    ]
    shown = sorted(misses.misses, key=lambda m: m.lost_usd or 0, reverse=True)[:_MAX_MISSES]
    more = len(misses.misses) - len(shown)
    return [
        *head,
        _table(("cause", "calls", "tokens lost", "USD lost"), causes),
        f"<h2>Costliest misses{f' (top {len(shown)} of {len(misses.misses):,})' if more else ''}</h2>",
        _table(_MISS_HEAD, [_miss_cells(m) for m in shown], 3, wrap=(2,)),
        '<p class="note">leanloop explain lists every miss (--format json).</p>' if more else "",
    ]


def _runs_shown(count: int) -> str:
    return f" (the {_MAX_RUNS} costliest of {count:,})" if count > _MAX_RUNS else ", costliest first"


def _tables(report: Report, top: int) -> list[str]:
    totals = report.totals
    total = totals.cost.priced_total
    kinds = [
        [
            label,
            f"{getattr(totals.usage, attr):,}",
            cost_text(totals.cost, getattr(totals.cost, cost_attr)),
            _pct(float(getattr(totals.cost, cost_attr) / total)) if total else "-",
        ]
        for label, attr, cost_attr in parts_of(totals)
    ]
    runs = sorted(report.runs.values(), key=lambda run: run.totals.cost.priced_total, reverse=True)
    run_rows = [_run_cells(run) for run in runs[:_MAX_RUNS]]
    parts = ["<h2>Tokens and cost by kind</h2>", _table(("kind", "tokens", "cost", "share of cost"), kinds)]
    if len(report.by_project) > 1:
        counts = report.runs_by_project()
        projects = sorted(report.by_project.items(), key=lambda item: -item[1].cost.priced_total)
        parts += [
            "<h2>By project</h2>",
            _table(
                ("project", "runs", *_TOTAL_HEAD),
                [[p, f"{counts.get(p, 0):,}", *_totals_cells(t)] for p, t in projects],
                wrap=(0,),
            ),
        ]
    parts += [
        "<h2>By model</h2>",
        _table(("model", *_TOTAL_HEAD), [[m, *_totals_cells(t)] for m, t in sorted(report.by_model.items())]),
        "<h2>By day (UTC)</h2>",
        _table(("day", *_TOTAL_HEAD), [[d, *_totals_cells(t)] for d, t in sorted(report.by_day.items())]),
        f"<h2>Runs{_runs_shown(len(runs))}</h2>",
        _table(_RUN_HEAD, run_rows, 3, wrap=(1,)),
        *_sessions(report),
        f"<h2>Costliest calls (top {min(top, len(report.calls))})</h2>",
        _table(_CALL_HEAD, [_call_cells(row) for row in report.costliest(top)], 2, wrap=(0, 1)),
    ]
    if len(report.calls) <= _MAX_TABLE_CALLS:
        rows = [_call_cells(row) for row in _time_ordered(report)]
        parts += ["<h2>All calls, in time order</h2>", _table(_CALL_HEAD, rows, 2, wrap=(0, 1))]
    return parts


def _sessions(report: Report) -> list[str]:
    """Sessions with their sub-agents (what Claude Code's total_cost_usd counts), when a session had any."""
    sessions = sorted(report.sessions.values(), key=lambda s: s.totals.cost.priced_total, reverse=True)
    if not any(session.sub_agents for session in sessions):
        return []
    rows = [[short_run(s.session_id), f"{len(s.runs):,}", *_totals_cells(s.totals)] for s in sessions[:_MAX_RUNS]]
    return [
        "<h2>Sessions with their sub-agents (as Claude Code counts them)</h2>",
        _table(("session", "runs", *_TOTAL_HEAD), rows),
    ]


def render_html(
    report: Report, *, title: str = "leanloop report", top: int = 10, misses: MissReport | None = None
) -> str:
    """The whole report as one HTML document; ``misses`` (from ``explain``) adds what the cache misses cost."""
    totals = report.totals
    files = [f for f in report.log.files if f.format]
    formats = ", ".join(sorted({f.format or "" for f in files})) or "no known format"
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<div class="sub">{plural(len(files), "file")} ({escape(formats)})</div>',
        *_headline(report, report.projection, misses),
        _unpriced(totals),
        *_charts(report),
        *_misses(misses, float(totals.cost.priced_total)),
        *_tables(report, top),
        _problems(report),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)


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
    items += [f"<li>skipped: {escape(counted(count, reason))}</li>" for reason, count in sorted(log.skipped.items())]
    return f"<h2>Import notes</h2><ul>{''.join(items)}</ul>"
