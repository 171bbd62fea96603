"""``leanloop report``, ``leanloop explain`` and ``leanloop whatif``: the analyzer's commands.

Each reads traces (files or directory trees, any supported format, detected from content) and streams the calls,
as they are read, into the pure code in ``report``, ``misses`` or ``whatif`` (a run at a time: nothing keeps a whole
log). Output (a table, json, csv, html) goes to stdout or ``--output``; notes about the import (skipped files,
unusable lines, unknown models) go to stderr, whatever the format. On a terminal, large inputs get a progress bar
(bytes read, calls processed).

A path that cannot be read is one warning line and the rest is imported; an import that finds no model call at all
is one line saying why, exit status 1. A bad price file (``LEANLOOP_PRICES``) is a ``ConfigError``, before any
file is read (``leanloop.cli.main`` prints it as one line, exit status 2).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable, Collection, Generator, Iterable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any, Protocol

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from leanloop.analyze import whatif as whatif_model
from leanloop.analyze.html import render_html
from leanloop.analyze.misses import MissFinder
from leanloop.analyze.render import print_import_log, print_misses, print_report, print_whatif
from leanloop.analyze.report import build_report, unpriced_warning, write_csv, write_json, write_json_listing
from leanloop.analyze.sources import FileCalls, ImportLog, count_lines, discover, iter_files
from leanloop.commands import checked_model, checked_number, checked_path
from leanloop.errors import ConfigError
from leanloop.pricing import Pricing, UnknownModelWarning, default_pricing
from leanloop.trace import CallRecord
from leanloop.wording import plural

__all__ = ["explain", "report", "whatif"]

_PROGRESS_BYTES = 32 << 20  # show a progress bar from this much input on
_PROGRESS_FILES = 200
_CALLS_PER_UPDATE = 256
_REFRESH_S = 0.1


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    html = "html"


class TextFormat(StrEnum):
    table = "table"
    json = "json"


# readable=False: an unreadable path is a warning and the rest is imported, not a refusal of the whole command.
# Strings, not Paths: an empty argument ("$UNSET") must be refused, and as a Path it would be the current directory.
Paths = Annotated[
    list[str],
    typer.Argument(help="Trace files or directories (e.g. ~/.claude/projects).", readable=False, metavar="PATH"),
]
Output = Annotated[
    str | None, typer.Option("--output", "-o", metavar="FILE", help="Write to this file instead of stdout.")
]


def _stderr() -> Console:
    """Notes on stderr: one line each, however narrow the terminal."""
    return Console(stderr=True, soft_wrap=True)


def _stdout() -> Console:
    """The terminal's width on a terminal; wide enough for every column when piped to a file."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def _warn(console: Console, message: str) -> None:
    console.print(f"leanloop: warning: {message}", style="yellow", markup=False, highlight=False)


@contextmanager
def _quiet_unknown_models() -> Generator[None]:
    """Models without a price are named once, by ``_checked``, from the result (not once per pricing table)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownModelWarning)
        yield


def _paths(given: list[str]) -> list[Path]:
    return [path for text in given if (path := checked_path(text, "PATH")) is not None]


def _files(paths: list[Path], log: ImportLog) -> list[Path]:
    try:
        return discover(paths, log)
    except ConfigError as error:
        raise typer.BadParameter(str(error)) from None  # the message names the path


def _checked(
    paths: list[Path], log: ImportLog, console: Console, *, calls: int, unknown: Collection[str], unpriced: int | None
) -> None:
    """Warn about unreadable paths and models without a price; exit 1 when the import found no model call."""
    for path, reason in log.unreadable.items():
        _warn(console, f"cannot read {path}: {reason} (skipped)")
    if not calls:
        if log.problem_count:  # which lines were unusable, with file and line number
            print_import_log(log, console)
        reason = log.why_no_calls(count_lines(log.files))
        console.print(
            f"leanloop: no model calls found in {_some([str(path) for path in paths])} ({reason})",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(1)
    if unknown:
        _warn(console, unpriced_warning(unknown, unpriced))


class _Bar:
    """What the commands tell the progress bar: bytes read (``on_bytes``) and calls processed (``call``)."""

    def __init__(self, progress: Progress | None = None, task: TaskID | None = None) -> None:
        self._progress = progress
        self._task = task
        self._calls = 0
        self._refreshed = 0.0
        self.on_bytes: Callable[[int], None] | None = self._bytes if progress is not None else None

    def _bytes(self, count: int) -> None:
        assert self._progress is not None
        assert self._task is not None
        self._progress.update(self._task, advance=count, calls=self._calls)
        self._refresh()

    def call(self) -> None:
        self._calls += 1
        if self._progress is not None and not self._calls % _CALLS_PER_UPDATE:
            assert self._task is not None
            self._progress.update(self._task, calls=self._calls)
            self._refresh()

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._progress is not None and now - self._refreshed >= _REFRESH_S:
            self._refreshed = now
            self._progress.refresh()


@contextmanager
def _progress(files: list[Path], console: Console) -> Generator[_Bar]:
    """A progress bar on stderr for large inputs (and only on a terminal): bytes read, and calls processed (which
    is where explain and whatif spend their time)."""
    total = sum(path.stat().st_size for path in files)
    show = console.is_terminal and (total >= _PROGRESS_BYTES or len(files) >= _PROGRESS_FILES)
    if not show:
        yield _Bar()
        return
    columns = (
        TextColumn(f"reading {plural(len(files), 'file')}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[calls]:,} calls"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True, auto_refresh=False) as progress:
        yield _Bar(progress, progress.add_task("read", total=total, calls=0))


class _Consumer(Protocol):
    """Takes the calls as they are read, and learns when the runs read so far are complete."""

    def add(self, record: CallRecord) -> object: ...

    def end_runs(self) -> None: ...


def _records(units: Iterable[FileCalls], bar: _Bar, *consumers: _Consumer) -> Iterator[CallRecord]:
    for unit in units:
        for record in unit.calls:
            for consumer in consumers:
                consumer.add(record)
            bar.call()
            yield record
        for consumer in consumers:
            consumer.end_runs()


def _stream(paths: list[Path], log: ImportLog, console: Console, pricing: Pricing, consumer: _Consumer) -> int:
    """Read every call into ``consumer`` (explain, whatif), with message contents; returns how many there were."""
    files = _files(paths, log)
    calls = 0
    with _quiet_unknown_models(), _progress(files, console) as bar:
        units = iter_files(paths, log, content=True, pricing=pricing, on_bytes=bar.on_bytes, files=files)
        for _ in _records(units, bar, consumer):
            calls += 1
    return calls


def _refuse_overwriting(output: Path | None, paths: list[Path], files: list[Path]) -> None:
    """``-o`` naming one of the inputs would replace the user's log with the report."""
    if output is None:
        return
    target = output.expanduser().resolve()
    if any(target == path.expanduser().resolve() for path in [*paths, *files]):
        raise typer.BadParameter(
            f"{output} is one of the input files: writing the report would replace it", param_hint="--output"
        )


@contextmanager
def _opened(output: Path | None) -> Generator[IO[str]]:
    if output is None:
        yield sys.stdout
        return
    try:
        file = output.open("w", encoding="utf-8", newline="")
    except OSError as error:
        raise typer.BadParameter(f"{output}: {error.strerror}", param_hint="--output") from None
    with file:
        yield file


def _write(text: str, output: Path | None) -> None:
    with _opened(output) as file:
        file.write(text)


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


RunsPerDay = Annotated[
    float | None,
    typer.Option(
        "--runs-per-day",
        metavar="N",
        help="Project the month at this many runs a day (mean cost per run x N x 30) instead of the observed rate.",
    ),
]


def _checked_volume(runs_per_day: float | None) -> float | None:
    return checked_number(runs_per_day, "--runs-per-day", minimum=0, above=True)


def report(  # noqa: PLR0917 - a command: one parameter per option
    given: Paths,
    output_format: Annotated[ReportFormat, typer.Option("--format", "-f", help="Output format.")] = ReportFormat.table,
    output_given: Output = None,
    top: Annotated[int, typer.Option(min=1, metavar="N", help="How many of the costliest calls to list.")] = 10,
    all_calls: Annotated[bool, typer.Option("--all-calls", help="List every call in the table.")] = False,
    runs_per_day: RunsPerDay = None,
) -> None:
    """Where the money went: tokens and cost by kind per call and per run, by model, by project and by day, cache
    hit rate, the costliest calls, and a 30-day projection. Reads leanloop traces, Claude Code logs
    (~/.claude/projects), OpenHands trajectories, API recordings and the emulator's --log."""
    paths = _paths(given)
    output = checked_path(output_given, "--output")
    runs_per_day = _checked_volume(runs_per_day)
    stderr = _stderr()
    pricing = default_pricing()
    log = ImportLog()
    files = _files(paths, log)
    _refuse_overwriting(output, paths, files)
    html = output_format is ReportFormat.html
    misses = MissFinder(pricing=pricing)  # the html report shows the cache misses too: it needs message contents
    with _quiet_unknown_models(), _progress(files, stderr) as bar:
        units = iter_files(paths, log, content=html, pricing=pricing, on_bytes=bar.on_bytes, files=files)
        result = build_report(_records(units, bar, *((misses,) if html else ())), log)
    result.runs_per_day = runs_per_day
    totals = result.totals
    _checked(paths, log, stderr, calls=totals.calls, unknown=totals.cost.unknown_models, unpriced=totals.unpriced_calls)
    if output_format is ReportFormat.table:
        if output is None:
            print_report(result, _stdout(), top=top, all_calls=all_calls)
        else:
            with _opened(output) as file:
                print_report(result, Console(file=file, width=160), top=top, all_calls=all_calls)
    elif output_format in (ReportFormat.json, ReportFormat.csv):
        with _opened(output) as file:
            if output_format is ReportFormat.json:
                write_json(result, file, top=top)
            else:
                write_csv(result, file)
    else:
        with _quiet_unknown_models():
            missed = misses.result()
        _write(render_html(result, title=_title(paths), top=top, misses=missed), output)
    print_import_log(log, stderr)


def _some(names: list[str]) -> str:
    """The first three names, and how many more."""
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _title(paths: list[Path]) -> str:
    return "leanloop report: " + _some([path.name or str(path) for path in paths])


def explain(
    given: Paths,
    output_format: Annotated[TextFormat, typer.Option("--format", "-f", help="Output format.")] = TextFormat.table,
    min_tokens: Annotated[
        int,
        typer.Option(
            min=1, metavar="TOKENS", help="Report a call when it read at least this many tokens fewer than expected."
        ),
    ] = 512,
    limit: Annotated[int, typer.Option(min=1, metavar="N", help="How many calls to list in the table.")] = 50,
) -> None:
    """Why the cache missed: each call that wrote what an earlier call had cached, or read much less than the call
    before, with its likely cause (TTL expired, model switch, prefix changed, compaction) and what it cost."""
    paths = _paths(given)
    stderr = _stderr()
    pricing = default_pricing()
    log = ImportLog()
    finder = MissFinder(min_tokens=min_tokens, pricing=pricing)
    calls = _stream(paths, log, stderr, pricing, finder)
    with _quiet_unknown_models():
        result = finder.result()
    _checked(paths, log, stderr, calls=calls, unknown=result.total_cost.unknown_models, unpriced=None)
    if output_format is TextFormat.json:
        head = {**result.to_dict(listed=False), "import": log.to_dict()}
        write_json_listing(head, "calls_that_missed", (miss.to_dict() for miss in result.misses), sys.stdout)
    else:
        print_misses(result, _stdout(), limit=limit)
    print_import_log(log, stderr)


def whatif(
    given: Paths,
    output_format: Annotated[TextFormat, typer.Option("--format", "-f", help="Output format.")] = TextFormat.table,
    summary_model: Annotated[
        str, typer.Option(metavar="MODEL", help="The cheaper model for the final summarising call.")
    ] = whatif_model.DEFAULT_SUMMARY_MODEL,
    runs_per_day: RunsPerDay = None,
    truncate_at: Annotated[
        int | None,
        typer.Option(
            "--truncate-at",
            min=1,
            metavar="TOKENS",
            help="The truncation strategy compacts the history when a prompt passes this many tokens (default: "
            "leanloop's automatic trigger, 80% of the context window, at most 160,000).",
        ),
    ] = None,
) -> None:
    """The recorded workload re-priced under other strategies: no caching, system+tools only, rolling cache
    (5m, 1h), a cheaper model for the final call, Batch API where nobody waits (an upper bound), history compaction
    (where it cuts anything); with $/month."""
    paths = _paths(given)
    runs_per_day = _checked_volume(runs_per_day)
    checked_model(summary_model, "--summary-model")
    stderr = _stderr()
    pricing = default_pricing()
    log = ImportLog()
    simulation = whatif_model.WhatIfSimulation(
        summary_model=summary_model, pricing=pricing, runs_per_day=runs_per_day, truncate_at=truncate_at
    )
    calls = _stream(paths, log, stderr, pricing, simulation)
    with _quiet_unknown_models():
        result = simulation.result()
    _checked(paths, log, stderr, calls=calls, unknown=result.unknown_models, unpriced=None)
    if output_format is TextFormat.json:
        _write(_dump({**result.to_dict(), "import": log.to_dict()}), None)
    else:
        print_whatif(result, _stdout())
    print_import_log(log, stderr)
