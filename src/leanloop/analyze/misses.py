"""Why the cache missed: every call that wrote (or sent uncached) what the call before it had cached, with its
likely cause and what it cost.

A conversation's next request extends the previous one, so what the previous call of the same run read or wrote
is expected to be read (``leanloop.explain.detect_miss``). When a call reads less, the cause is, in this order:

- ``model switch``: caches are per model.
- ``compaction``: the history was summarised or truncated (a compaction marker in the log, or a prompt that
  shrank): only what comes before the rewritten part can be read.
- ``ttl expired``: the gap since the previous call (whose reads and writes refresh the entry) exceeded its TTL;
  the TTL is taken from what the previous call wrote (5m when it wrote 5m entries, 1h when only 1h ones).
- ``concurrent``: sent before the previous response started streaming, when its entries were not readable yet.
- ``resumed``: a Claude Code session resumed or continued in a new process just before the call (the metadata
  Claude Code writes when a process ends, then a new prompt), with nothing else in the log to explain the miss: the
  new process rebuilt its system prompt and tools, or the cache was evicted meanwhile.
- ``prefix changed``: a block before the breakpoint differs (which block, and before/after when the log has the
  text; for Claude Code logs, which hold no system prompt or tool definitions, a change there is inferred).
- ``lookback``: more than 20 blocks since the previous breakpoint; the new breakpoint could not find the entry.
- ``unknown``: none of the above is visible in the log.

The first call of a run is checked against the latest earlier run of the same kind (a Claude Code session of the
same project, or a recorded run with the same layout of tools and system blocks) on the same model whose cache was
still live: it should have read that run's system prompt and tools.

Calls are streamed (``MissFinder``): a run's calls are taken in the order the log lists them (out-of-order times
give no gap), and only the previous call of each open run is kept.

Tokens lost are the ones that should have been read; dollars lost are the call's cost minus its cost had those
tokens been read (taken from 1h writes first, then 5m writes, then uncached input: the prefix is written before
the tail), priced like the call itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any, cast

from leanloop.analyze.changes import change_from_dict, change_to_dict
from leanloop.analyze.report import short_run
from leanloop.cachesim import LOOKBACK_POSITIONS, TTL_SECONDS
from leanloop.explain import PrefixChange, detect_miss, diff_prints
from leanloop.pricing import Cost, Pricing, default_pricing
from leanloop.tokens import TRAILING_PROMPT_TOKENS
from leanloop.trace import BlockPrint, CallRecord
from leanloop.usage import Usage

__all__ = [
    "CAUSES",
    "CONTENT_CAUSES",
    "CauseTotals",
    "Miss",
    "MissFinder",
    "MissReport",
    "cache_ttl",
    "find_misses",
    "format_gap",
    "pair_miss",
    "run_misses",
]

CAUSES: tuple[str, ...] = (
    "model switch",
    "compaction",
    "ttl expired",
    "concurrent",
    "resumed",
    "prefix changed",
    "lookback",
    "unknown",
)
# Causes that are a property of the workload (the content changed), not of how it was cached.
CONTENT_CAUSES = frozenset({"compaction", "resumed", "prefix changed", "unknown"})
_SHRINK = 0.7  # a prompt under 70 % of the previous one was compacted or truncated


def format_gap(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass(frozen=True, slots=True)
class Miss:
    """One call that failed to read what the previous call of its run had cached."""

    run_id: str
    index: int  # position of the call in its run, in time order
    iteration: int
    model: str
    started_at: float | None
    source: str | None
    cause: str
    detail: str
    expected_read_tokens: int
    read_tokens: int
    lost_tokens: int
    lost_usd: Decimal | None
    gap_s: float | None = None
    change: PrefixChange | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "iteration": self.iteration,
            "model": self.model,
            "started_at": datetime.fromtimestamp(self.started_at, tz=UTC).isoformat() if self.started_at else None,
            "source": self.source,
            "cause": self.cause,
            "detail": self.detail,
            "expected_read_tokens": self.expected_read_tokens,
            "read_tokens": self.read_tokens,
            "lost_tokens": self.lost_tokens,
            "lost_usd": float(self.lost_usd) if self.lost_usd is not None else None,
            "gap_s": round(self.gap_s, 3) if self.gap_s is not None else None,
            "prefix_change": change_to_dict(self.change) if self.change else None,
        }


@dataclass
class CauseTotals:
    calls: int = 0
    lost_tokens: int = 0
    lost_usd: Decimal = Decimal(0)
    unpriced_calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"calls": self.calls, "lost_tokens": self.lost_tokens, "lost_usd": float(self.lost_usd)}
        if self.unpriced_calls:
            data["unpriced_calls"] = self.unpriced_calls
        return data


@dataclass
class MissReport:
    calls: int
    runs: int
    misses: list[Miss] = field(default_factory=list[Miss])
    total_cost: Cost = field(default_factory=Cost)

    @property
    def by_cause(self) -> dict[str, CauseTotals]:
        totals: dict[str, CauseTotals] = {}
        for miss in self.misses:
            entry = totals.setdefault(miss.cause, CauseTotals())
            entry.calls += 1
            entry.lost_tokens += miss.lost_tokens
            if miss.lost_usd is None:
                entry.unpriced_calls += 1
            else:
                entry.lost_usd += miss.lost_usd
        return {cause: totals[cause] for cause in CAUSES if cause in totals}

    @property
    def lost_usd(self) -> Decimal:
        return sum((m.lost_usd for m in self.misses if m.lost_usd is not None), Decimal(0))

    @property
    def lost_tokens(self) -> int:
        return sum(m.lost_tokens for m in self.misses)

    @property
    def unpriced_misses(self) -> int:
        """Misses of a model without a price: ``lost_usd`` leaves them out."""
        return sum(1 for m in self.misses if m.lost_usd is None)

    def to_dict(self, *, listed: bool = True) -> dict[str, Any]:
        """The JSON summary; ``listed=False`` leaves out ``calls_that_missed`` (to stream it separately)."""
        data: dict[str, Any] = {
            "calls": self.calls,
            "runs": self.runs,
            "misses": len(self.misses),
            "lost_tokens": self.lost_tokens,
            "lost_usd": float(self.lost_usd),
            "total_cost_usd": self.total_cost.usd,
            **({"unknown_models": sorted(self.total_cost.unknown_models)} if not self.total_cost.is_known else {}),
            "by_cause": {cause: totals.to_dict() for cause, totals in self.by_cause.items()},
        }
        if listed:
            data["calls_that_missed"] = [miss.to_dict() for miss in self.misses]
        return data


def cache_ttl(previous: Usage, known: str) -> str:
    """The TTL that governs what ``previous`` left cached: 5m if it wrote any 5m entry, 1h if only 1h ones."""
    if previous.cache_write_5m_tokens:
        return "5m"
    if previous.cache_write_1h_tokens:
        return "1h"
    return known


def _lost_usd(record: CallRecord, lost: int, pricing: Pricing) -> Decimal | None:
    usage = record.usage
    from_1h = min(lost, usage.cache_write_1h_tokens)
    from_5m = min(lost - from_1h, usage.cache_write_5m_tokens)
    from_input = min(lost - from_1h - from_5m, usage.input_tokens)
    read = replace(  # the same call (output, searches, speed, region, tier) had those tokens been read
        usage,
        input_tokens=usage.input_tokens - from_input,
        cache_write_5m_tokens=usage.cache_write_5m_tokens - from_5m,
        cache_write_1h_tokens=usage.cache_write_1h_tokens - from_1h,
        cache_read_tokens=usage.cache_read_tokens + from_1h + from_5m + from_input,
    )
    at = datetime.fromtimestamp(record.started_at, tz=UTC) if record.started_at is not None else None
    actual = pricing.cost(record.model, usage, at=at)
    better = pricing.cost(record.model, read, at=at)
    if not actual.is_known:
        return None
    return actual.priced_total - better.priced_total


def _events(record: CallRecord) -> Sequence[str]:
    events: Any = record.notes.get("events")
    return [str(e) for e in cast(list[Any], events)] if isinstance(events, list) else []


def _compaction(previous: CallRecord, record: CallRecord) -> str | None:
    if "compaction" in _events(record) or record.notes.get("compaction") or record.notes.get("compacted"):
        return "the conversation was compacted before this call"
    if record.usage.prompt_tokens < _SHRINK * previous.usage.prompt_tokens:
        return (
            f"the prompt shrank from {previous.usage.prompt_tokens:,} to {record.usage.prompt_tokens:,} tokens "
            "(history compacted or truncated)"
        )
    return None


def _change(previous: CallRecord, record: CallRecord) -> PrefixChange | None:
    noted = record.notes.get("prefix_change")
    if isinstance(noted, Mapping):
        return change_from_dict(noted)  # pyright: ignore[reportUnknownArgumentType]
    if previous.prefix and record.prefix:
        return diff_prints(previous.prefix, record.prefix)
    return None


def _describe(change: PrefixChange) -> str:
    if change.cause == "changed":  # a recorded hash: the log does not keep the text
        return f"{change.path} changed (the log has its hash, not its text)"
    return change.describe()


def _cause(
    previous: CallRecord, record: CallRecord, gap: float | None, ttl: str
) -> tuple[str, str, PrefixChange | None]:
    if record.model != previous.model:
        return "model switch", f"{previous.model} -> {record.model}: caches are per model", None
    compacted = _compaction(previous, record)
    if compacted:
        return "compaction", compacted, None
    if gap is not None and gap >= TTL_SECONDS[ttl]:
        return "ttl expired", f"{format_gap(gap)} after the previous call; its cache lives {ttl}", None
    if gap is not None and previous.ttft_s is not None and gap < previous.ttft_s:
        return "concurrent", "sent before the previous response started streaming: its entries were not readable", None
    change = _change(previous, record)
    if change is not None:
        return "prefix changed", _describe(change), change
    if previous.prefix and record.prefix and len(record.prefix) - len(previous.prefix) > LOOKBACK_POSITIONS:
        added = len(record.prefix) - len(previous.prefix)
        return "lookback", f"{added} blocks since the previous call: more than the 20-block lookback", None
    if record.notes.get("format") == "claude_code":
        return _unlogged_change(_events(record))
    return "unknown", "nothing in the log explains it (an early eviction, or a change the log does not record)", None


def _unlogged_change(events: Sequence[str]) -> tuple[str, str, None]:
    """A Claude Code call that read less though its messages only grew: the system prompt or the tools (which the
    log does not hold) changed, or the cache was evicted. A slash command run just before (``/mcp``) changed them;
    a session resumed in a new Claude Code process most likely did."""
    commands = [e for e in events if e.startswith("/")]
    ran = f" ({', '.join(commands)} ran just before)" if commands else ""
    if commands and "resumed" not in events:
        detail = f"the messages only grew, so the system prompt or tool definitions changed{ran}; the log does not "
        return "prefix changed", detail + "contain them", None
    detail = (
        "the messages only grew, so the system prompt or tool definitions changed, or the cache was evicted; the log "
        "does not contain them"
    )
    if "resumed" not in events:
        return "prefix changed", detail, None
    return (
        "resumed",
        f"{detail}. The session was resumed just before this call{ran} (Claude Code's session-end lines, then a new "
        "prompt): a new Claude Code process, which rebuilds its system prompt and tools (date, git status, "
        "CLAUDE.md, MCP servers), is the likely cause",
        None,
    )


def _gap(previous: CallRecord, record: CallRecord) -> float | None:
    """Seconds between two calls; None without both times, or when the log lists them out of time order."""
    if record.started_at is None or previous.started_at is None or record.started_at < previous.started_at:
        return None
    return record.started_at - previous.started_at


def pair_miss(
    previous: CallRecord, record: CallRecord, *, index: int, ttl: str, min_tokens: int, pricing: Pricing
) -> Miss | None:
    """The miss of ``record``, the call after ``previous`` in the same run (``index``: its position), if any."""
    gap = _gap(previous, record)
    found = detect_miss(previous.usage, record.usage, gap_s=gap or 0.0, ttl=ttl, tolerance=min_tokens - 1)
    if found is None:
        return None
    cacheable = record.usage.cache_write_tokens + max(record.usage.input_tokens - TRAILING_PROMPT_TOKENS, 0)
    lost = min(found.lost_tokens, cacheable)  # the tail that opens the assistant turn is never cached
    if lost < min_tokens:
        return None
    cause, detail, change = _cause(previous, record, gap, ttl)
    return _miss(record, index, cause, detail, found.expected_read_tokens, lost, pricing, gap=gap, change=change)


def _miss(  # noqa: PLR0917 - the fields of a Miss that depend on how it was found
    record: CallRecord,
    index: int,
    cause: str,
    detail: str,
    expected: int,
    lost: int,
    pricing: Pricing,
    *,
    gap: float | None,
    change: PrefixChange | None = None,
) -> Miss:
    return Miss(
        run_id=record.run_id,
        index=index,
        iteration=record.iteration,
        model=record.model,
        started_at=record.started_at,
        source=record.source,
        cause=cause,
        detail=detail,
        expected_read_tokens=expected,
        read_tokens=record.usage.cache_read_tokens,
        lost_tokens=lost,
        lost_usd=_lost_usd(record, lost, pricing),
        gap_s=gap,
        change=change,
    )


def run_misses(calls: Sequence[CallRecord], *, min_tokens: int = 512, pricing: Pricing | None = None) -> list[Miss]:
    """The misses of one run, whose calls are given in time order."""
    pricing = pricing or default_pricing()
    misses: list[Miss] = []
    ttl = "5m"
    for index, (previous, record) in enumerate(pairwise(calls), 1):
        ttl = cache_ttl(previous.usage, ttl)
        miss = pair_miss(previous, record, index=index, ttl=ttl, min_tokens=min_tokens, pricing=pricing)
        if miss is not None:
            misses.append(miss)
    return misses


@dataclass(slots=True)
class _OpenRun:
    """A run being read: its first call (for the check against earlier runs), the call before, the TTL in force."""

    first: CallRecord
    previous: CallRecord
    calls: int = 1
    ttl: str = "5m"


@dataclass(frozen=True, slots=True)
class _RunEnds:
    """What the check across runs keeps of a finished run."""

    run_id: str
    group: tuple[str, ...]
    first: CallRecord
    last_at: float
    last_model: str
    last_cached: int
    last_ttl: str
    last_head: tuple[BlockPrint, ...]


def _head_prints(record: CallRecord) -> tuple[BlockPrint, ...]:
    return tuple(b for b in record.prefix if b.path.startswith(("tools", "system")))


def _group(record: CallRecord) -> tuple[str, ...] | None:
    """Runs whose first call could have found the previous run's system prompt and tools cached: Claude Code main
    sessions of one project; recorded runs with the same layout of tools and system blocks."""
    if record.notes.get("format") == "claude_code":
        project = record.notes.get("project")
        return ("claude_code", str(project)) if project and "/" not in record.run_id else None
    head = _head_prints(record)
    return ("prefix", *(b.path for b in head)) if head else None


def _head_estimate(record: CallRecord) -> int:
    """The system prompt + tools of a call whose log has no blocks: its prompt minus its estimated messages."""
    messages = record.notes.get("message_tokens")
    return max(record.usage.prompt_tokens - messages, 0) if isinstance(messages, int) else 0


class MissFinder:
    """``find_misses`` as a stream: ``add`` each call (a run's calls in time order), ``end_runs`` when the runs
    read so far are complete (at the end of a file), ``result`` at the end. Keeps one call per open run and a small
    summary per finished run."""

    def __init__(self, *, min_tokens: int = 512, pricing: Pricing | None = None) -> None:
        self.min_tokens = min_tokens
        self.pricing = pricing or default_pricing()
        self._open: dict[str, _OpenRun] = {}
        self._ended: list[_RunEnds] = []
        self._runs: set[str] = set()
        self._calls = 0
        self._total = Cost()
        self._misses: list[Miss] = []

    def add(self, record: CallRecord) -> Miss | None:
        self._calls += 1
        self._total += record.cost
        run = self._open.get(record.run_id)
        if run is None:
            self._open[record.run_id] = _OpenRun(record, record)
            self._runs.add(record.run_id)
            return None
        run.ttl = cache_ttl(run.previous.usage, run.ttl)
        miss = pair_miss(
            run.previous, record, index=run.calls, ttl=run.ttl, min_tokens=self.min_tokens, pricing=self.pricing
        )
        run.previous = record
        run.calls += 1
        if miss is not None:
            self._misses.append(miss)
        return miss

    def end_runs(self) -> None:
        for run in self._open.values():
            group = _group(run.first)
            last = run.previous
            if group is None or last.started_at is None or run.first.started_at is None:
                continue
            cached = last.usage.cache_read_tokens + last.usage.cache_write_tokens
            ttl = cache_ttl(last.usage, run.ttl)
            self._ended.append(
                _RunEnds(
                    run.first.run_id, group, run.first, last.started_at, last.model, cached, ttl, _head_prints(last)
                )
            )
        self._open.clear()

    def result(self) -> MissReport:
        self.end_runs()
        misses = [*self._misses, *self._across_runs()]
        return MissReport(calls=self._calls, runs=len(self._runs), misses=misses, total_cost=self._total)

    def _across_runs(self) -> list[Miss]:
        """The first call of each run, against the earlier-started run of its group (same model) that ended last,
        when that run's cache was still live."""
        found: list[Miss] = []
        latest: dict[tuple[Any, ...], _RunEnds] = {}  # per group and model: the run that ended last so far
        for later in sorted(self._ended, key=lambda e: e.first.started_at or 0.0):
            first = later.first
            before = latest.get((*later.group, first.model))
            if before is not None:
                gap = max((first.started_at or 0.0) - before.last_at, 0.0)
                miss = self._cold_start(before, first, gap) if gap < TTL_SECONDS[before.last_ttl] else None
                if miss is not None:
                    found.append(miss)
            key = (*later.group, later.last_model)
            if key not in latest or latest[key].last_at < later.last_at:
                latest[key] = later
        return found

    def _cold_start(self, before: _RunEnds, first: CallRecord, gap: float) -> Miss | None:
        if before.last_head:
            expected = min(sum(b.tokens for b in before.last_head), before.last_cached)
        else:
            expected = min(_head_estimate(first), before.last_cached)
        usage = first.usage
        cacheable = usage.cache_write_tokens + max(usage.input_tokens - TRAILING_PROMPT_TOKENS, 0)
        lost = min(expected - usage.cache_read_tokens, cacheable)
        if lost < self.min_tokens:
            return None
        when = f"{format_gap(gap)} after run {short_run(before.run_id)} (same model) ended"
        change = diff_prints(before.last_head, _head_prints(first)) if before.last_head else None
        if change is not None:
            detail = f"{_describe(change)}: {when}, whose cache held them"
            cause = "prefix changed"
        elif before.last_head:
            cause, detail = "unknown", f"the same tools and system prompt as {when}, but they were not read"
        else:
            cause = "prefix changed"
            detail = (
                f"the system prompt or tool definitions differ from the previous session of this project ({when}; "
                "CLAUDE.md, MCP servers, settings or the date), or the cache was evicted; the log does not contain "
                "them"
            )
        return _miss(first, 0, cause, detail, expected, lost, self.pricing, gap=gap, change=change)


def find_misses(records: Iterable[CallRecord], *, min_tokens: int = 512, pricing: Pricing | None = None) -> MissReport:
    """Every call that read at least ``min_tokens`` fewer tokens than the previous call of its run had cached (or,
    for the first call of a run, than an earlier run with the same system prompt and tools left cached)."""
    finder = MissFinder(min_tokens=min_tokens, pricing=pricing)
    for record in records:
        finder.add(record)
    return finder.result()
