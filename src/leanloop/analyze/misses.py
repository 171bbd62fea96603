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
- ``prefix changed``: a block before the breakpoint differs (which block, and before/after when the log has the
  text; for Claude Code logs, which hold no system prompt or tool definitions, a change there is inferred).
- ``lookback``: more than 20 blocks since the previous breakpoint; the new breakpoint could not find the entry.
- ``unknown``: none of the above is visible in the log.

Tokens lost are the ones that should have been read; dollars lost are the call's cost minus its cost had those
tokens been read (taken from 1h writes first, then 5m writes, then uncached input: the prefix is written before
the tail), priced like the call itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any, cast

from leanloop.analyze.changes import change_from_dict, change_to_dict
from leanloop.cachesim import LOOKBACK_POSITIONS, TTL_SECONDS
from leanloop.explain import PrefixChange, detect_miss, diff_prints
from leanloop.pricing import Cost, Pricing, default_pricing
from leanloop.tokens import TRAILING_PROMPT_TOKENS
from leanloop.trace import CallRecord
from leanloop.usage import Usage

__all__ = ["CAUSES", "CONTENT_CAUSES", "CauseTotals", "Miss", "MissReport", "find_misses", "format_gap", "run_misses"]

CAUSES: tuple[str, ...] = (
    "model switch",
    "compaction",
    "ttl expired",
    "concurrent",
    "prefix changed",
    "lookback",
    "unknown",
)
# Causes that are a property of the workload (the content changed), not of how it was cached.
CONTENT_CAUSES = frozenset({"compaction", "prefix changed", "unknown"})
_SHRINK = 0.7  # a prompt under 70 % of the previous one was compacted or truncated


def format_gap(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass(frozen=True)
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "runs": self.runs,
            "misses": len(self.misses),
            "lost_tokens": self.lost_tokens,
            "lost_usd": float(self.lost_usd),
            "total_cost_usd": self.total_cost.usd,
            **({"unknown_models": sorted(self.total_cost.unknown_models)} if not self.total_cost.is_known else {}),
            "by_cause": {cause: totals.to_dict() for cause, totals in self.by_cause.items()},
            "calls_that_missed": [miss.to_dict() for miss in self.misses],
        }


def _ttl(previous: Usage, known: str) -> str:
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
    read = Usage(
        input_tokens=usage.input_tokens - from_input,
        cache_write_5m_tokens=usage.cache_write_5m_tokens - from_5m,
        cache_write_1h_tokens=usage.cache_write_1h_tokens - from_1h,
        cache_read_tokens=usage.cache_read_tokens + from_1h + from_5m + from_input,
        output_tokens=usage.output_tokens,
        split_estimated=usage.split_estimated,
        speed=usage.speed,
        inference_geo=usage.inference_geo,
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
    if "compaction" in _events(record) or record.notes.get("compaction"):
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
        return "prefix changed", change.describe(), change
    if previous.prefix and record.prefix and len(record.prefix) - len(previous.prefix) > LOOKBACK_POSITIONS:
        added = len(record.prefix) - len(previous.prefix)
        return "lookback", f"{added} blocks since the previous call: more than the 20-block lookback", None
    if record.notes.get("format") == "claude_code":
        commands = [e for e in _events(record) if e.startswith("/")]
        hint = f" ({', '.join(commands)} ran just before)" if commands else ""
        return (
            "prefix changed",
            f"the messages only grew, so the system prompt or tool definitions changed{hint}; the log does not "
            "contain them",
            None,
        )
    return "unknown", "nothing in the log explains it (an early eviction, or a change the log does not record)", None


def find_misses(records: Iterable[CallRecord], *, min_tokens: int = 512, pricing: Pricing | None = None) -> MissReport:
    """Every call that read at least ``min_tokens`` fewer tokens than the previous call of its run had cached."""
    pricing = pricing or default_pricing()
    runs: dict[str, list[CallRecord]] = {}
    total = Cost()
    count = 0
    for record in records:
        runs.setdefault(record.run_id, []).append(record)
        total += record.cost
        count += 1
    report = MissReport(calls=count, runs=len(runs), total_cost=total)
    for calls in runs.values():
        if all(c.started_at is not None for c in calls):
            calls.sort(key=lambda c: c.started_at or 0.0)
        report.misses.extend(run_misses(calls, min_tokens=min_tokens, pricing=pricing))
    return report


def run_misses(calls: Sequence[CallRecord], *, min_tokens: int = 512, pricing: Pricing | None = None) -> list[Miss]:
    """The misses of one run, whose calls are given in time order."""
    pricing = pricing or default_pricing()
    misses: list[Miss] = []
    ttl = "5m"
    for index, (previous, record) in enumerate(pairwise(calls), 1):
        ttl = _ttl(previous.usage, ttl)
        gap = (
            record.started_at - previous.started_at
            if record.started_at is not None and previous.started_at is not None
            else None
        )
        found = detect_miss(previous.usage, record.usage, gap_s=gap or 0.0, ttl=ttl, tolerance=min_tokens - 1)
        if found is None:
            continue
        cacheable = record.usage.cache_write_tokens + max(record.usage.input_tokens - TRAILING_PROMPT_TOKENS, 0)
        lost = min(found.lost_tokens, cacheable)  # the tail that opens the assistant turn is never cached
        if lost < min_tokens:
            continue
        cause, detail, change = _cause(previous, record, gap, ttl)
        misses.append(
            Miss(
                run_id=record.run_id,
                index=index,
                iteration=record.iteration,
                model=record.model,
                started_at=record.started_at,
                source=record.source,
                cause=cause,
                detail=detail,
                expected_read_tokens=found.expected_read_tokens,
                read_tokens=record.usage.cache_read_tokens,
                lost_tokens=lost,
                lost_usd=_lost_usd(record, lost, pricing),
                gap_s=gap,
                change=change,
            )
        )
    return misses
