"""Terminal tables (rich) for ``report``, ``explain`` and ``whatif``. Presentation only: the numbers are computed
in ``report``, ``misses`` and ``whatif``.

Tables fit an 80-column terminal: number columns never wrap nor get cut (a narrow terminal gets fewer of them),
text columns (ids, models, strategies) wrap instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from rich import box
from rich.console import Console
from rich.table import Table

from leanloop.analyze.misses import MissReport, format_gap
from leanloop.analyze.report import (
    COMPONENTS,
    CallRow,
    Report,
    Totals,
    cost_text,
    iso_time,
    parts_of,
    short_model,
    short_run,
    short_source,
    usd_text,
)
from leanloop.analyze.sources import UNKNOWN_FORMAT, ImportLog
from leanloop.analyze.whatif import WhatIf
from leanloop.wording import counted, plural

__all__ = ["print_import_log", "print_misses", "print_report", "print_whatif"]

_MAX_CALL_ROWS = 50
_MAX_RUN_ROWS = 20
_MAX_PROBLEMS = 10


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _when(moment: float | None) -> str:
    text = iso_time(moment)
    return text[5:16].replace("T", " ") if text else "-"


def _moment(moment: float) -> str:
    return (iso_time(moment) or "")[:16].replace("T", " ")


def _table(title: str, columns: Iterable[str], left: int = 1) -> Table:
    """The first ``left`` columns hold text (they wrap when the terminal is narrow); the others hold numbers
    (they never wrap nor get cut)."""
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        title_justify="left",
        title_style="bold",
        caption_justify="left",
        padding=(0, 1),
        pad_edge=False,
    )
    for index, column in enumerate(columns):
        if index < left:
            table.add_column(column, overflow="fold")
        else:
            table.add_column(column, justify="right", no_wrap=True)
    return table


_HEADERS = {
    "input_tokens": "input",
    "cache_write_5m_tokens": "write5m",
    "cache_write_1h_tokens": "write1h",
    "cache_write_tokens": "write",
    "cache_read_tokens": "read",
    "output_tokens": "output",
    "prompt_tokens": "prompt",
}
_NARROW_KINDS = ("prompt_tokens", "cache_write_tokens", "output_tokens")  # the hit rate stands for the reads
_WIDE = 120  # below this console width, tables show fewer token columns and no time or source


@dataclass(frozen=True)
class _Layout:
    """Which token kinds get a column (kinds that are 0 in every call are left out; a narrow terminal gets all
    input, writes and output) and whether times and sources fit."""

    kinds: tuple[str, ...]
    wide: bool

    @classmethod
    def of(cls, totals: Totals, console: Console) -> _Layout:
        if console.width < _WIDE:
            return cls(_NARROW_KINDS, wide=False)
        kinds = tuple(a for _, a, _ in COMPONENTS if getattr(totals.usage, a) or a == "input_tokens")
        return cls(kinds, wide=True)

    def total_columns(self) -> tuple[str, ...]:
        return ("calls", *(_HEADERS[k] for k in self.kinds), "hit", "cost")

    def totals_cells(self, totals: Totals) -> list[str]:
        tokens = [f"{getattr(totals.usage, k):,}" for k in self.kinds]
        return [f"{totals.calls:,}", *tokens, _pct(totals.hit_rate), cost_text(totals.cost)]

    def call_columns(self) -> tuple[str, ...]:
        head = ("call", "UTC", "model") if self.wide else ("call", "model")
        return (*head, *(_HEADERS[k] for k in self.kinds), "hit", "cost", *(("source",) if self.wide else ()))

    def call_cells(self, row: CallRow) -> list[str]:
        head = [f"{short_run(row.run_id)} #{row.iteration}"]
        if self.wide:
            head.append(_when(row.started_at))
        head.append(short_model(row.model))
        tokens = [f"{getattr(row.usage, k):,}" for k in self.kinds]
        tail = [short_source(row.source)] if self.wide else []
        return [*head, *tokens, _pct(row.hit_rate), cost_text(row.cost), *tail]


def _excluded(totals: Totals) -> str:
    """What a total leaves out: calls to models without a price."""
    if not totals.unpriced_calls:
        return ""
    models = ", ".join(sorted(totals.cost.unknown_models))
    return f"excludes {plural(totals.unpriced_calls, 'unpriced call')}: {models}"


def print_report(report: Report, console: Console, *, top: int = 10, all_calls: bool = False) -> None:
    totals = report.totals
    files = [f for f in report.log.files if f.format]
    formats = sorted({f.format or "" for f in files})
    excluded = f" ({_excluded(totals)})" if totals.unpriced_calls else ""
    console.print(
        f"[bold]{plural(totals.calls, 'call')}[/] in {plural(len(report.runs), 'run')} from "
        f"{plural(len(files), 'file')} ({', '.join(formats) or 'no known format'}): "
        f"[bold]{cost_text(totals.cost)}[/]{excluded}, cache hit rate {_pct(totals.hit_rate)} (read / all input)"
    )
    if not totals.calls:
        return
    _print_projection(report, console)
    layout = _Layout.of(totals, console)
    console.print(_kinds_table(totals))
    groups = [("By model", "model", report.by_model), ("By day (UTC)", "day", report.by_day)]
    if len(report.by_project) > 1:
        groups.append(("By project", "project", report.by_project))
    for title, column, group in groups:
        table = _table(title, (column, *layout.total_columns()))
        rows = sorted(group.items(), key=lambda item: -item[1].cost.priced_total if column == "project" else 0)
        for key, totals_ in rows if column == "project" else sorted(group.items()):
            table.add_row(short_model(key) if column == "model" else key, *layout.totals_cells(totals_))
        console.print(table)
    console.print(_runs_table(report, layout))
    if any(session.sub_agents for session in report.sessions.values()):
        console.print(_sessions_table(report, layout))
    listed = all_calls or len(report.calls) <= _MAX_CALL_ROWS
    if listed:
        table = _table("Calls", layout.call_columns(), left=3 if layout.wide else 2)
        for row in report.calls:
            table.add_row(*layout.call_cells(row))
        console.print(table)
    if not listed or len(report.calls) > top:
        table = _table(f"Costliest calls (top {top})", layout.call_columns(), left=3 if layout.wide else 2)
        for row in report.costliest(top):
            table.add_row(*layout.call_cells(row))
        console.print(table)


def _print_projection(report: Report, console: Console) -> None:
    """The observed period, cost per day and per run, and the month at that rate (with how it was projected)."""
    projection = report.projection
    period = projection.period
    cost = report.totals.cost
    if not cost.is_known:
        return
    total = cost.priced_total
    if period.first_at is not None and period.last_at is not None:
        span = f"{_moment(period.first_at)} to {_moment(period.last_at)} UTC"
        console.print(f"Observed: {span}, {plural(period.days or 0, 'calendar day')}, {plural(period.runs, 'run')}")
    per_day, per_run, month = projection.per_day(total), projection.per_run(total), projection.per_month(total)
    if per_run is not None:
        parts = [f"{usd_text(per_run)} per run (mean)"]
        if per_day is not None:
            parts.append(f"{usd_text(per_day)} per day")
        console.print(", ".join(parts))
    if month is not None:
        console.print(f"[bold]Projected 30 days: {usd_text(month)}[/] ({projection.method})", highlight=False)
    else:
        console.print(f"No 30-day projection: {projection.method}", highlight=False)


def _kinds_table(totals: Totals) -> Table:
    table = _table("Tokens and cost by kind", ("kind", "tokens", "cost", "share of cost"))
    total = totals.cost.priced_total
    for label, attribute, cost_attribute in parts_of(totals):
        part: Decimal = getattr(totals.cost, cost_attribute)
        share = _pct(float(part / total)) if total else "-"
        table.add_row(label, f"{getattr(totals.usage, attribute):,}", cost_text(totals.cost, part), share)
    table.add_row("total", f"{totals.usage.prompt_tokens + totals.usage.output_tokens:,}", cost_text(totals.cost), "")
    if totals.unpriced_calls:
        table.caption = f"+?: the cost {_excluded(totals)}"
    return table


def _runs_table(report: Report, layout: _Layout) -> Table:
    runs = sorted(report.runs.values(), key=lambda run: run.totals.cost.priced_total, reverse=True)
    head = ("run", "first UTC") if layout.wide else ("run",)
    table = _table("Runs (costliest first)", (*head, *layout.total_columns()), left=len(head))
    for run in runs[:_MAX_RUN_ROWS]:
        first = (_when(run.first_at),) if layout.wide else ()
        table.add_row(run.name, *first, *layout.totals_cells(run.totals))
    if len(runs) > _MAX_RUN_ROWS:
        table.caption = f"{len(runs) - _MAX_RUN_ROWS:,} more runs: --format json or csv lists them all"
    return table


def _sessions_table(report: Report, layout: _Layout) -> Table:
    """Sessions with their sub-agents' runs: the totals Claude Code shows (its total_cost_usd counts both)."""
    sessions = sorted(report.sessions.values(), key=lambda s: s.totals.cost.priced_total, reverse=True)
    table = _table(
        "Sessions with their sub-agents (as Claude Code counts them)", ("session", "runs", *layout.total_columns())
    )
    for session in sessions[:_MAX_RUN_ROWS]:
        table.add_row(short_run(session.session_id), f"{len(session.runs):,}", *layout.totals_cells(session.totals))
    if len(sessions) > _MAX_RUN_ROWS:
        table.caption = f"{len(sessions) - _MAX_RUN_ROWS:,} more sessions: --format json lists them all"
    return table


def print_import_log(log: ImportLog, console: Console) -> None:
    """Unusable lines (with file and line number) and what was skipped, on the given console."""
    skipped_files = [f for f in log.files if not f.format and not f.sidecar]
    for source in skipped_files[:_MAX_PROBLEMS]:
        console.print(f"[dim]skipped {source.path}: {source.note or 'unknown format'}[/]")
    if len(skipped_files) > _MAX_PROBLEMS:
        more = counted(len(skipped_files) - _MAX_PROBLEMS, "more file(s) of unknown format")
        console.print(f"[dim]... and {more}[/]")
    if log.problem_count:
        console.print(f"[yellow]{plural(log.problem_count, 'unusable line')} (skipped, the import went on):[/]")
        for problem in log.problems[:_MAX_PROBLEMS]:
            console.print(f"  [yellow]{problem}[/]")
        if log.problem_count > _MAX_PROBLEMS:
            console.print(f"  ... {log.problem_count - _MAX_PROBLEMS:,} more (--format json lists the first 1,000)")
    for reason, count in sorted(log.skipped.items()):
        if reason != UNKNOWN_FORMAT:
            console.print(f"[dim]not model calls: {counted(count, reason)}[/]")
    if log.repeated_paths:
        console.print(f"[dim]read once: {plural(log.repeated_paths, 'file')} named more than once[/]")


def print_misses(result: MissReport, console: Console, *, limit: int = 50) -> None:
    console.print(
        f"[bold]{len(result.misses):,} of {plural(result.calls, 'call')}[/] missed the cache they should have read: "
        f"{result.lost_tokens:,} tokens, [bold]{usd_text(result.lost_usd)}{'+?' if result.unpriced_misses else ''}[/] "
        f"lost (of {cost_text(result.total_cost)} spent)"
    )
    if not result.misses:
        return
    causes = _table("Lost per cause", ("cause", "calls", "tokens lost", "USD lost"))
    for cause, totals in result.by_cause.items():
        usd = usd_text(totals.lost_usd) + (f" (+{totals.unpriced_calls} unpriced)" if totals.unpriced_calls else "")
        causes.add_row(cause, f"{totals.calls:,}", f"{totals.lost_tokens:,}", usd)
    console.print(causes)
    table = _table("Calls that missed", ("call", "model", "gap", "expected", "read", "lost", "USD", "cause"), left=2)
    table.columns[-1].justify = "left"
    shown = sorted(result.misses, key=lambda m: m.lost_tokens, reverse=True)[:limit]
    for miss in shown:
        table.add_row(
            f"{short_run(miss.run_id)} #{miss.iteration}",
            short_model(miss.model),
            format_gap(miss.gap_s) if miss.gap_s is not None else "-",
            f"{miss.expected_read_tokens:,}",
            f"{miss.read_tokens:,}",
            f"{miss.lost_tokens:,}",
            usd_text(miss.lost_usd) if miss.lost_usd is not None else "unknown",
            miss.cause,
        )
    if len(result.misses) > limit:
        table.caption = f"{len(result.misses) - limit:,} more: --format json lists them all"
    console.print(table)
    for miss in shown:
        console.print(
            f"[bold]{short_run(miss.run_id)} #{miss.iteration}[/] ({short_source(miss.source)}): "
            f"[bold]{miss.cause}[/]: {miss.detail}",
            highlight=False,
        )


def _strategy_label(result: WhatIf, name: str, *, wide: bool) -> str:
    """``name: label (estimate)`` on a wide terminal; ``name*`` (estimate) or ``name^`` (upper bound) otherwise."""
    strategy = result.strategies[name]
    bound = name == "batch" and result.batch_calls > 0
    estimate = strategy.estimated and name != "as_recorded"
    if not wide:
        return name + ("*" if estimate else "") + ("^" if bound else "")
    marks = [mark for mark, on in (("upper bound", bound), ("estimate", estimate)) if on]
    return f"{name}: {strategy.label}" + (f" ({', '.join(marks)})" if marks else "")


def print_whatif(result: WhatIf, console: Console) -> None:
    """One row per strategy, with $/month at the observed rate (or at --runs-per-day) when there is one. A narrow
    terminal gets names without labels (estimates marked *, an upper bound ^), and no prompt nor output column (they
    are the same under every strategy, give or take the simulated tail)."""
    console.print(
        f"[bold]{plural(result.calls, 'call')}[/] in {plural(result.runs, 'run')}, re-priced under each strategy"
    )
    wide = console.width >= _WIDE
    monthly = result.projection.available
    tokens = ("prompt", "write", "read", "output") if wide else ("write", "read")
    month = ("$/month",) if monthly else ()
    table = _table("Strategies", ("strategy", *tokens, "cost", *month, "vs recorded"))
    for name, strategy in result.strategies.items():
        usage = strategy.usage
        ratio = result.ratio(name)
        per_month = result.per_month(name)
        counts = (usage.prompt_tokens, usage.cache_write_tokens, usage.cache_read_tokens, usage.output_tokens)
        table.add_row(
            _strategy_label(result, name, wide=wide),
            *(f"{n:,}" for n in (counts if wide else counts[1:3])),
            cost_text(strategy.cost),
            *((usd_text(per_month) if per_month is not None else "unknown",) if monthly else ()),
            f"{ratio:.2f}x" if ratio is not None else "-",
        )
    if not wide:
        marks = ["* estimate"] if any(s.estimated for s in result.strategies.values()) else []
        table.caption = "  ".join(marks + (["^ upper bound (see batch below)"] if result.batch_calls else []))
    console.print(table)
    console.print(f"- $/month: {result.projection.method}")
    for note in result.assumptions:
        console.print(f"- {note}")
