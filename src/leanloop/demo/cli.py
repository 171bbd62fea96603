"""``leanloop demo``: a log-triage agent on real input, its ledger, and what leanloop saved.

With ANTHROPIC_API_KEY set (and no ``--emulator``) the main run uses the real API; the side-by-side comparison and
the runaway incident always run on the emulator, so the demo never spends more than that one run.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, Any

import anthropic
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from leanloop.agent import CallFinished, Event, Notice, TextDelta, ToolStarted
from leanloop.commands import checked_model, checked_number, checked_path
from leanloop.demo.logs import LogTools
from leanloop.demo.run import DemoReport, RunSummary, run_demo
from leanloop.errors import ConfigError
from leanloop.pricing import Cost
from leanloop.trace import CallRecord
from leanloop.usage import Usage
from leanloop.wording import plural

__all__ = ["demo", "ledger_table"]


def ledger_table(calls: list[CallRecord], title: str = "Ledger") -> Table:
    """The per-iteration ledger: iteration, model, input, cache write, cache read, output, cost, latency; totals."""
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for column in ["#", "model", "input", "cache write", "cache read", "output", "cost", "latency"]:
        table.add_column(column, justify="left" if column == "model" else "right")
    for call in calls:
        u = call.usage
        latency = f"{call.latency_s:.2f} s" if call.latency_s is not None else "-"
        table.add_row(
            str(call.iteration),
            call.model,
            f"{u.input_tokens:,}",
            f"{u.cache_write_tokens:,}",
            f"{u.cache_read_tokens:,}",
            f"{u.output_tokens:,}",
            str(call.cost),
            latency,
        )
    if calls:
        total = sum((c.usage for c in calls), Usage())
        cost = sum((c.cost for c in calls), Cost())
        latency = sum(c.latency_s or 0.0 for c in calls)
        table.add_section()
        table.add_row(
            "total",
            "",
            f"{total.input_tokens:,}",
            f"{total.cache_write_tokens:,}",
            f"{total.cache_read_tokens:,}",
            f"{total.output_tokens:,}",
            str(cost),
            f"{latency:.2f} s",
        )
    return table


class _Live:
    """Prints the run as it happens: streamed text, then one ledger line per call."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.line_open = False
        self.tools: list[str] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self.console.print(event.text, end="", markup=False, highlight=False)
            self.line_open = True
        elif isinstance(event, CallFinished):
            self._end_line()
            u, r = event.record.usage, event.record
            self.console.print(
                f"  [bold]#{r.iteration}[/] in {u.input_tokens:,} · write {u.cache_write_tokens:,} · read "
                f"{u.cache_read_tokens:,} · out {u.output_tokens:,} · [green]{r.cost}[/]",
                highlight=False,
            )
        elif isinstance(event, ToolStarted):
            self.console.print(
                f"    → {event.use.name}({_short(event.use.input)})", style="cyan", markup=False, highlight=False
            )
        elif isinstance(event, Notice):
            self._end_line()
            self.console.print(f"  ! {event.message}", style="yellow", markup=False, highlight=False)

    def _end_line(self) -> None:
        if self.line_open:
            self.console.print()
            self.line_open = False


def _short(arguments: Any) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in dict(arguments).items())
    return text if len(text) < 70 else text[:67] + "..."


_LABELS = {"naive": "naive (no cache, no guard)", "cache_only": "caching only", "leanloop": "leanloop default"}


def _comparison(report: DemoReport) -> Table:
    """The three runs side by side. A run that did not finish the task gets no ratio: it is not cheaper, it is
    unfinished (``_unfinished`` says what stopped it)."""
    table = Table(
        title="The same task, three ways (emulator, modeled API time)", box=box.SIMPLE_HEAD, title_justify="left"
    )
    for column in ("loop", "cost", "vs naive", "cache hit", "iterations", "API time"):
        table.add_column(column, justify="left" if column == "loop" else "right")
    for name, run in report.runs.items():
        ratio = report.vs_naive(name)
        table.add_row(
            _LABELS[name],
            str(run.cost),
            f"{ratio:.2f}x" if ratio is not None else "-",
            f"{run.cache_hit_rate:.0%}" if run.calls else "-",
            str(len(run.calls)),
            f"{run.api_s:.1f} s",
        )
    return table


def _unfinished(report: DemoReport, budget: float) -> list[str]:
    """A line for each run of the comparison that stopped before the model gave its answer, saying what stopped
    it and when (a budget too small for the first call stops the run before it: no call, no cost, no answer)."""
    lines: list[str] = []
    for name, run in report.runs.items():
        if run.finished:
            continue
        calls = len(run.calls)
        when = "before its first call" if not calls else f"after {plural(calls, 'call')}"
        if run.stop == "budget" and run.cap == "usd":
            more = " (that call alone could cost more)" if not calls else ""
            why = f"--budget {_dollars(budget)} stopped it {when}{more}: raise --budget"
        else:
            why = f"stopped by {f'the {run.cap} budget' if run.stop == 'budget' and run.cap else run.stop} {when}"
        lines.append(f"  {_LABELS[name]} did not finish the task: {why}")
    return lines


def _incident(report: DemoReport) -> Table:
    table = Table(
        title="Runaway incident: a model that retries a permission-denied read forever",
        box=box.SIMPLE_HEAD,
        title_justify="left",
    )
    for column in ("loop", "iterations", "cost", "stopped by"):
        table.add_column(column, justify="left" if column in ("loop", "stopped by") else "right")
    naive: RunSummary = report.incident["naive"]
    guarded: RunSummary = report.incident["leanloop"]
    table.add_row("naive", str(len(naive.calls)), str(naive.cost), naive.stop)
    table.add_row("leanloop", str(len(guarded.calls)), str(guarded.cost), escape(f"{guarded.stop}: {guarded.detail}"))
    return table


def _render(report: DemoReport, console: Console, budget: float) -> None:
    result = report.result
    console.print()
    timing = "modeled latency" if not report.live else "latency"
    console.print(ledger_table(report.ledger, title=f"Ledger of the leanloop run ({report.model}, {timing})"))
    console.print(f"  stopped: {result.stop}", markup=False, highlight=False)
    floor = report.floor_usd
    if floor:
        console.print(
            f"  cost {result.cost} · cache hit rate {result.cache_hit_rate:.0%} · perfect-cache floor ${floor:.4f} "
            f"({result.cost.total / floor:.2f}x) · {plural(result.tool_calls, 'tool call')}",
            highlight=False,
        )
    console.print()
    console.print(_comparison(report))
    unfinished = _unfinished(report, budget)
    for line in unfinished:
        console.print(line, markup=False, highlight=False)
    if unfinished:
        console.print()
    console.print(_incident(report))
    ratio = report.incident["leanloop"].cost.total / report.incident["naive"].cost.total
    console.print(f"  the guard stopped the incident at {ratio:.1%} of the naive loop's cost", highlight=False)
    if report.incident_source != report.source:
        console.print(f"  the incident runs on the {report.incident_source}", markup=False, highlight=False)


def _checked_logs(logs: Path | None) -> Path | None:
    """``--logs`` when it is a directory holding at least one log file the agent can read as text."""
    if logs is None:
        return None
    if not logs.is_dir():
        raise typer.BadParameter(f"{logs} is not a directory", param_hint="--logs")
    found = LogTools.for_directory(logs).check_logs()
    if not found:
        raise typer.BadParameter(
            f"{logs} holds no log file (a .log, .txt or suffix-less file, in the folder or in one folder per "
            "namespace)",
            param_hint="--logs",
        )
    problems = [problem for problem in found.values() if problem is not None]
    if len(problems) == len(found):
        shown = ", ".join(problems[:3]) + (f" and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise typer.BadParameter(
            f"none of the {plural(len(found), 'log file')} in {logs} can be read as text: {shown}",
            param_hint="--logs",
        )
    return logs


def _checked_trace(trace: Path | None) -> Path | None:
    """``--trace`` when it can be written now: refused before the demo prints or runs anything."""
    if trace is None:
        return None
    if not trace.parent.is_dir():
        raise typer.BadParameter(f"the folder {trace.parent} does not exist: create it first", param_hint="--trace")
    if trace.is_dir():
        raise typer.BadParameter(f"{trace} is a directory: name a file in it", param_hint="--trace")
    try:
        with trace.open("a", encoding="utf-8"):  # the run appends to it, as this does
            pass
    except OSError as error:
        raise typer.BadParameter(f"{trace}: cannot open for writing ({error.strerror})", param_hint="--trace") from None
    return trace


def demo(
    *,
    logs: Annotated[
        str | None,
        typer.Option(metavar="DIR", help="A directory of logs: <ns>/<pod>.log, or a flat folder (one namespace)."),
    ] = None,
    model: Annotated[str, typer.Option(metavar="MODEL", help="Model id.")] = "claude-sonnet-4-6",
    budget: Annotated[float, typer.Option(metavar="USD", help="USD budget of the main run.")] = 0.50,
    trace: Annotated[str | None, typer.Option(metavar="FILE", help="Write the main run's JSONL trace here.")] = None,
    emulator: Annotated[
        bool, typer.Option("--emulator", help="Use the emulator even if ANTHROPIC_API_KEY is set.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as JSON.")] = False,
) -> None:
    """Triage logs with a Claude agent: the ledger, the same task naive and cached, and a runaway incident."""
    log_dir = _checked_logs(checked_path(logs, "--logs"))
    checked_number(budget, "--budget", minimum=0, above=True)
    checked_model(model, "--model")
    trace_file = _checked_trace(checked_path(trace, "--trace"))
    live = bool(os.environ.get("ANTHROPIC_API_KEY", "").strip()) and not emulator
    console = Console(stderr=as_json)
    where = "the emulator (no API key needed)"
    if live:
        where = (
            f"the API at {os.environ['ANTHROPIC_BASE_URL']}" if os.environ.get("ANTHROPIC_BASE_URL") else "the real API"
        )
    if not as_json:
        console.print(f"[bold]leanloop demo[/] · {model} on {where} · budget {_dollars(budget)}\n", soft_wrap=True)
    try:
        report = asyncio.run(
            run_demo(
                logs=log_dir,
                model=model,
                budget_usd=budget,
                trace=trace_file,
                live_client=anthropic.AsyncAnthropic() if live else None,
                on_event=None if as_json else _Live(console),
            )
        )
    except ConfigError as error:
        raise typer.BadParameter(str(error)) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        console.print(f"[dim]input: {escape(report.source)}[/]")
        _render(report, console, budget)
    if report.result.stop.reason == "error":  # the comparisons ran, but the run the user asked for failed
        raise typer.Exit(code=1)


def _dollars(amount: float) -> str:
    """``$0.5``, ``$0.001``, ``$0.000000001``: the amount as given, never in exponent notation."""
    return "$" + (f"{amount:,.10f}".rstrip("0").rstrip(".") or "0")
