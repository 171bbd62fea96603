"""Where the money went: tokens and cost by kind, per call, per run, per model, per project and per day, and the
observed period with a 30-day projection (``projection``).

``build_report`` consumes CallRecords as a stream and keeps one small row per call (no message content), so its
memory grows with the number of calls, not with the size of the logs they came from. Costs are the ones each
record carries (every importer prices each request on its own, at its own time); they are only ever added up.

Cache hit rate is ``cache read / all input tokens`` (input + cache writes + cache reads). A call's project is its
Claude Code session's working directory (what names its directory under ``~/.claude/projects``), else the
directory of its file.

A call to a model without a price has an unknown cost, never $0: its cost is null (JSON) or empty (CSV), and a
total over it is null too, with ``cost_usd_priced`` (the priced part), ``unpriced_calls`` and ``unknown_models``.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any

from leanloop.analyze.projection import Period, Projection
from leanloop.analyze.sources import ImportLog
from leanloop.pricing import Cost
from leanloop.trace import CallRecord
from leanloop.usage import Usage
from leanloop.wording import plural

__all__ = [
    "COMPONENTS",
    "COST_PARTS",
    "CSV_COLUMNS",
    "CallRow",
    "Report",
    "RowCost",
    "RunTotals",
    "SessionTotals",
    "Totals",
    "build_report",
    "cost_text",
    "day_of",
    "hit_rate",
    "iso_time",
    "parts_of",
    "project_of",
    "session_of",
    "short_model",
    "short_run",
    "short_source",
    "unpriced_warning",
    "usd_text",
    "write_csv",
    "write_json",
    "write_json_listing",
]

# (label, Usage attribute, Cost attribute), in billing order.
COMPONENTS: tuple[tuple[str, str, str], ...] = (
    ("input", "input_tokens", "input"),
    ("cache write 5m", "cache_write_5m_tokens", "cache_write_5m"),
    ("cache write 1h", "cache_write_1h_tokens", "cache_write_1h"),
    ("cache read", "cache_read_tokens", "cache_read"),
    ("output", "output_tokens", "output"),
)
# What a cost is made of, in billing order: the token kinds, then web searches (a fee per search, counted in
# searches, not tokens). The parts add up to the total.
COST_PARTS: tuple[tuple[str, str, str], ...] = (*COMPONENTS, ("web search", "web_search_requests", "web_search"))


def hit_rate(usage: Usage) -> float:
    prompt = usage.prompt_tokens
    return usage.cache_read_tokens / prompt if prompt else 0.0


def iso_time(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def day_of(moment: float | None) -> str:
    """The UTC day of a timestamp, ``unknown`` without one."""
    return datetime.fromtimestamp(moment, tz=UTC).date().isoformat() if moment is not None else "unknown"


def short_model(model: str) -> str:
    """``claude-sonnet-4-5-20250929`` -> ``sonnet-4-5`` (tables only; JSON keeps the full id)."""
    head, _, tail = model.rpartition("-")
    if tail.isdigit() and len(tail) == 8:
        model = head
    return model.removeprefix("claude-")


def short_run(run_id: str) -> str:
    """A session uuid cut to its first 8 characters, keeping a sub-agent suffix."""
    head, slash, tail = run_id.partition("/")
    if len(head) == 36 and head.count("-") == 4:
        head = head[:8]
    return head + slash + tail


def short_source(source: str | None) -> str:
    """``/long/path/to/file.jsonl:27`` -> ``file.jsonl:27``."""
    return (source or "").rsplit("/", 1)[-1]


def usd_text(value: Decimal | float) -> str:
    return f"${value:,.4f}" if abs(value) < 100 else f"${value:,.2f}"


def cost_text(cost: Cost | RowCost, part: Decimal | float | None = None) -> str:
    """``cost`` (or a ``part`` of it) for people: ``$0.0123``, ``$0.0123 est.``, ``$0.0123+?`` when calls without a
    price are left out, ``unknown`` when nothing could be priced. Never $0 for an unknown cost."""
    value = cost.priced_total if part is None else part
    if cost.is_known:
        return usd_text(value) + (" est." if cost.estimated else "")
    return usd_text(value) + "+?" if cost.priced_total else "unknown"


def unpriced_warning(models: Iterable[str], calls: int | None = None) -> str:
    """One line naming the models without a price (and how many calls they made)."""
    count = f" ({plural(calls, 'call')})" if calls else ""
    return (
        f"no price known for {', '.join(sorted(models))}{count}: cost shown as unknown, totals exclude those calls "
        "(price a model in a file named by LEANLOOP_PRICES)"
    )


def parts_of(totals: Totals) -> tuple[tuple[str, str, str], ...]:
    """The cost parts to show for ``totals``: every token kind, and web searches when there were any."""
    searched = totals.usage.web_search_requests or totals.cost.web_search
    return COST_PARTS if searched else COMPONENTS


def _usage_dict(usage: Usage) -> dict[str, Any]:
    return {attribute: getattr(usage, attribute) for _, attribute, _ in COST_PARTS}


def _cost_dict(
    by_kind: dict[str, float], priced: float, cost: Cost | RowCost, *, calls: int, unpriced: int
) -> dict[str, Any]:
    """The JSON cost fields: nothing priced is null, never 0."""
    anything_priced = calls > unpriced
    data: dict[str, Any] = {
        "cost_usd": priced if cost.is_known else None,
        "cost_usd_by_kind": by_kind if anything_priced else None,
    }
    if not cost.is_known:
        data["cost_usd_priced"] = priced if anything_priced else None
        data["unpriced_calls"] = unpriced
        data["unknown_models"] = sorted(cost.unknown_models)
    if cost.estimated:
        data["cost_estimated"] = True
    return data


@dataclass(slots=True)
class Totals:
    """Calls, tokens by kind and cost by kind of a group of calls."""

    calls: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: Cost = field(default_factory=Cost)
    unpriced_calls: int = 0

    def add(self, usage: Usage, cost: Cost) -> None:
        self.calls += 1
        self.usage = self.usage + usage
        self.cost = self.cost + cost
        self.unpriced_calls += not cost.is_known

    def absorb(self, other: Totals) -> None:
        """Add a whole group's totals to these."""
        self.calls += other.calls
        self.usage = self.usage + other.usage
        self.cost = self.cost + other.cost
        self.unpriced_calls += other.unpriced_calls

    @property
    def hit_rate(self) -> float:
        return hit_rate(self.usage)

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            **_usage_dict(self.usage),
            **_cost_dict(
                {attribute: float(getattr(self.cost, attribute)) for _, _, attribute in COST_PARTS},
                float(self.cost.priced_total),
                self.cost,
                calls=self.calls,
                unpriced=self.unpriced_calls,
            ),
            "cache_hit_rate": round(self.hit_rate, 4),
        }


_NO_USD = 0.0


def _float(value: Decimal) -> float:
    return float(value) if value else _NO_USD


@dataclass(frozen=True, slots=True)
class RowCost:
    """One call's cost, compact (floats; the report's totals are summed exactly, in Decimal, as calls stream in)."""

    input: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    output: float
    web_search: float
    total: float
    unknown_models: frozenset[str]
    estimated: bool

    @classmethod
    def of(cls, cost: Cost) -> RowCost:
        return cls(
            _float(cost.input),
            _float(cost.cache_write_5m),
            _float(cost.cache_write_1h),
            _float(cost.cache_read),
            _float(cost.output),
            _float(cost.web_search),
            _float(cost.priced_total),
            cost.unknown_models,
            cost.estimated,
        )

    @property
    def is_known(self) -> bool:
        return not self.unknown_models

    @property
    def priced_total(self) -> float:
        """The same name as ``Cost.priced_total``: what could be priced."""
        return self.total

    def to_dict(self) -> dict[str, Any]:
        by_kind = {attribute: getattr(self, attribute) for _, _, attribute in COST_PARTS}
        return _cost_dict(by_kind, self.total, self, calls=1, unpriced=int(not self.is_known))


@dataclass(slots=True)
class CallRow:
    """What the report keeps of one call (a few hundred bytes: no content, shared strings, float costs)."""

    run_id: str
    iteration: int
    model: str
    started_at: float | None
    usage: Usage
    cost: RowCost
    stop_reason: str | None
    message_id: str | None
    source: str | None
    project: str

    @classmethod
    def of(cls, record: CallRecord) -> CallRow:
        return cls(
            run_id=sys.intern(record.run_id),
            iteration=record.iteration,
            model=sys.intern(record.model),
            started_at=record.started_at,
            usage=record.usage,
            cost=RowCost.of(record.cost),
            stop_reason=sys.intern(record.stop_reason) if record.stop_reason else None,
            message_id=record.message_id,
            source=record.source,
            project=sys.intern(project_of(record)),
        )

    @property
    def hit_rate(self) -> float:
        return hit_rate(self.usage)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "project": self.project,
            "iteration": self.iteration,
            "model": self.model,
            "started_at": iso_time(self.started_at),
            **_usage_dict(self.usage),
            **self.cost.to_dict(),
            "cache_hit_rate": round(self.hit_rate, 4),
            "stop_reason": self.stop_reason,
            "message_id": self.message_id,
            "source": self.source,
        }


@dataclass(slots=True)
class RunTotals:
    run_id: str
    source: str
    project: str = ""
    totals: Totals = field(default_factory=Totals)
    first_at: float | None = None
    last_at: float | None = None
    models: set[str] = field(default_factory=set[str])
    agent: dict[str, str] = field(default_factory=dict[str, str])  # a sub-agent's type and description
    session: str = ""  # the session the run belongs to: a Claude Code sub-agent's is its parent's

    @property
    def label(self) -> str:
        """What the run is, when its log says (a Claude Code sub-agent: ``general-purpose: Count lines``)."""
        return ": ".join(self.agent[key] for key in _AGENT_NOTES if key in self.agent)

    @property
    def name(self) -> str:
        """The run for tables: its short id, and its label."""
        return f"{short_run(self.run_id)} {self.label}".rstrip()

    def add(self, row: CallRow, cost: Cost) -> None:
        self.totals.add(row.usage, cost)
        self.models.add(row.model)
        if row.started_at is not None:
            self.first_at = row.started_at if self.first_at is None else min(self.first_at, row.started_at)
            self.last_at = row.started_at if self.last_at is None else max(self.last_at, row.started_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "project": self.project,
            "source": self.source,
            "models": sorted(self.models),
            "first_call_at": iso_time(self.first_at),
            "last_call_at": iso_time(self.last_at),
            **self.agent,
            **self.totals.to_dict(),
        }


_AGENT_NOTES = ("agent_type", "agent_description")


def _agent_of(record: CallRecord) -> dict[str, str]:
    return {key: str(record.notes[key]) for key in _AGENT_NOTES if key in record.notes}


def session_of(record: CallRecord) -> str:
    """The session a call belongs to: a Claude Code sub-agent's run (``<session>/agent-<id>``, ``/sidechain``) is
    part of the session that started it, whose cost Claude Code reports with it; any other run is its own."""
    if record.notes.get("format") == "claude_code":
        return record.run_id.partition("/")[0]
    return record.run_id


@dataclass(slots=True)
class SessionTotals:
    """A session with its sub-agents: what Claude Code's ``total_cost_usd`` counts."""

    session_id: str
    runs: list[str] = field(default_factory=list[str])
    totals: Totals = field(default_factory=Totals)

    @property
    def sub_agents(self) -> int:
        return sum(1 for run in self.runs if run != self.session_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "runs": self.runs,
            "sub_agents": self.sub_agents,
            **self.totals.to_dict(),
        }


def project_of(record: CallRecord) -> str:
    """Where a call belongs: a Claude Code session's working directory (what its project directory under
    ``~/.claude/projects`` encodes); for other logs, the directory of the file."""
    project = record.notes.get("project")
    if isinstance(project, str) and project:
        return project
    path = (record.source or "").rsplit(":", 1)[0]
    return path.rsplit("/", 1)[0] if "/" in path else "."


@dataclass
class Report:
    totals: Totals
    by_model: dict[str, Totals]
    by_day: dict[str, Totals]
    runs: dict[str, RunTotals]
    calls: list[CallRow]
    log: ImportLog
    by_project: dict[str, Totals] = field(default_factory=dict[str, Totals])
    runs_per_day: float | None = None  # project the month at this volume instead of the observed rate

    def costliest(self, count: int = 10) -> list[CallRow]:
        return sorted(self.calls, key=lambda row: row.cost.priced_total, reverse=True)[:count]

    @property
    def projection(self) -> Projection:
        period = Period(runs=len(self.runs))
        for run in self.runs.values():
            for moment in (run.first_at, run.last_at):
                if moment is not None:
                    period.add(moment)
        period.calls = self.totals.calls
        return Projection(period, self.runs_per_day)

    @property
    def sessions(self) -> dict[str, SessionTotals]:
        """Each session with its sub-agents' runs, in the order the runs were first seen."""
        sessions: dict[str, SessionTotals] = {}
        for run in self.runs.values():
            session = sessions.setdefault(run.session, SessionTotals(run.session))
            session.runs.append(run.run_id)
            session.totals.absorb(run.totals)
        return sessions

    def runs_by_project(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for run in self.runs.values():
            counts[run.project] = counts.get(run.project, 0) + 1
        return counts

    def to_dict(self, *, top: int = 10, per_call: bool = True) -> dict[str, Any]:
        """The JSON report: totals at the top level (``calls``, ``input_tokens``, ..., ``cost_usd``), then detail."""
        data = self.totals.to_dict()
        cost = self.totals.cost
        data["projection"] = self.projection.to_dict(cost.priced_total if cost.is_known else None)
        data["runs"] = [run.to_dict() for run in self.runs.values()]
        data["sessions"] = [session.to_dict() for session in self.sessions.values()]
        data["by_model"] = {model: totals.to_dict() for model, totals in sorted(self.by_model.items())}
        data["by_day"] = {day: totals.to_dict() for day, totals in sorted(self.by_day.items())}
        runs = self.runs_by_project()
        data["by_project"] = {
            project: {"runs": runs.get(project, 0), **totals.to_dict()}
            for project, totals in sorted(self.by_project.items(), key=lambda item: -item[1].cost.priced_total)
        }
        data["costliest_calls"] = [row.to_dict() for row in self.costliest(top)]
        if per_call:
            data["per_call"] = [row.to_dict() for row in self.calls]
        data["import"] = self.log.to_dict()
        return data


def build_report(records: Iterable[CallRecord], log: ImportLog | None = None) -> Report:
    """Aggregate a stream of CallRecords (in any order; calls are listed per run, in time order)."""
    totals = Totals()
    by_model: dict[str, Totals] = {}
    by_day: dict[str, Totals] = {}
    by_project: dict[str, Totals] = {}
    runs: dict[str, RunTotals] = {}
    calls: list[CallRow] = []
    for record in records:
        row = CallRow.of(record)
        calls.append(row)
        totals.add(row.usage, record.cost)
        by_model.setdefault(row.model, Totals()).add(row.usage, record.cost)
        by_day.setdefault(day_of(row.started_at), Totals()).add(row.usage, record.cost)
        by_project.setdefault(row.project, Totals()).add(row.usage, record.cost)
        source = (row.source or "").rsplit(":", 1)[0]
        run = runs.get(row.run_id)
        if run is None:
            run = RunTotals(row.run_id, source, row.project, agent=_agent_of(record), session=session_of(record))
            runs[row.run_id] = run
        run.add(row, record.cost)
    order = {run_id: index for index, run_id in enumerate(runs)}
    calls.sort(key=lambda row: (order[row.run_id], row.started_at is None, row.started_at or 0.0, row.iteration))
    return Report(totals, by_model, by_day, runs, calls, log or ImportLog(), by_project)


CSV_COLUMNS: tuple[str, ...] = (
    "run_id",
    "project",
    "iteration",
    "started_at",
    "model",
    "input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "output_tokens",
    "web_search_requests",
    "cache_hit_rate",
    "input_usd",
    "cache_write_5m_usd",
    "cache_write_1h_usd",
    "cache_read_usd",
    "output_usd",
    "web_search_usd",
    "cost_usd",
    "unpriced",
    "cost_estimated",
    "stop_reason",
    "message_id",
    "source",
)


def _decimal_text(value: float) -> str:
    """``1.2e-05`` -> ``0.000012``: plain decimals a spreadsheet reads the same everywhere."""
    return f"{value:.12f}".rstrip("0").rstrip(".") or "0"


def _csv_rows(calls: Iterable[CallRow]) -> Iterator[list[Any]]:
    for row in calls:
        yield [
            row.run_id,
            row.project,
            row.iteration,
            iso_time(row.started_at) or "",
            row.model,
            *(getattr(row.usage, attribute) for _, attribute, _ in COST_PARTS),
            f"{row.hit_rate:.4f}",
            *(
                _decimal_text(getattr(row.cost, attribute)) if row.cost.is_known else ""
                for _, _, attribute in COST_PARTS
            ),
            _decimal_text(row.cost.priced_total) if row.cost.is_known else "",
            "" if row.cost.is_known else "yes",
            "yes" if row.cost.estimated else "",
            row.stop_reason or "",
            row.message_id or "",
            row.source or "",
        ]


def write_json(report: Report, file: IO[str], *, top: int = 10) -> None:
    """The JSON report (``Report.to_dict``), written call by call: a large report is never one big string."""
    head = report.to_dict(top=top, per_call=False)
    write_json_listing(head, "per_call", (row.to_dict() for row in report.calls), file)


def write_json_listing(head: dict[str, Any], key: str, items: Iterable[dict[str, Any]], file: IO[str]) -> None:
    """``head`` with ``key`` holding ``items``, as indented JSON written item by item (never one big string)."""
    text = json.dumps(head, indent=2, ensure_ascii=False)
    file.write((text[: -len("\n}")] + ",\n" if head else "{\n") + f"  {json.dumps(key)}: [")
    written = False
    for item in items:
        body = json.dumps(item, indent=2, ensure_ascii=False).replace("\n", "\n    ")
        file.write((",\n    " if written else "\n    ") + body)
        written = True
    file.write("\n  ]\n}\n" if written else "]\n}\n")


def write_csv(report: Report, file: IO[str]) -> None:
    """One row per call (an unknown model's costs are left empty, never 0, and ``unpriced`` says yes)."""
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_csv_rows(report.calls))
