"""The same recorded workload, re-priced under other caching strategies, through the cache simulator.

Every recorded call keeps its model, its prompt size, its output size and its time; only where the breakpoints go
(and, for two strategies, the model or the price list) changes. Each strategy's requests run through ``cachesim``
in time order and are priced per request with ``pricing``.

What each call's prompt is made of:

- When the log holds the request's blocks (leanloop traces, API recordings: ``CallRecord.prefix``), those blocks,
  scaled to the recorded prompt size.
- Otherwise (Claude Code, OpenHands): a head of system prompt + tool definitions, then one block per call holding
  what the call added to the history (``prompts.growth_prompts``). The head's size is an estimate: the first
  prompt minus the estimated tokens of the messages it sent. Such results are marked as estimates.

Cache state before the log: a run whose first call read N tokens from the cache found them there; every caching
strategy starts with those N tokens cached (a strategy cannot be blamed or credited for what happened before).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from leanloop.analyze.misses import CONTENT_CAUSES, run_misses
from leanloop.analyze.prompts import iter_growth_prompts
from leanloop.cachesim import TTL, Block, CacheSim, Prompt, block_fingerprint
from leanloop.pricing import Cost, Pricing, default_pricing
from leanloop.tokens import TRAILING_PROMPT_TOKENS
from leanloop.trace import CallRecord
from leanloop.usage import Usage

__all__ = ["DEFAULT_SUMMARY_MODEL", "STRATEGIES", "StrategyCost", "WhatIf", "whatif"]

DEFAULT_SUMMARY_MODEL = "claude-haiku-4-5"
STRATEGIES: dict[str, str] = {
    "as_recorded": "as recorded",
    "no_cache": "no caching",
    "system_tools": "system+tools only (5m)",
    "rolling_5m": "rolling cache 5m (leanloop default)",
    "rolling_1h": "rolling cache 1h",
    "cheaper_summary": "rolling 5m, final call on a cheaper model",
    "batch": "rolling 1h + Batch API for non-interactive calls",
}
_SPACING_S = 10.0  # between calls whose log has no timestamps
_RUN_GAP_S = 86_400.0


@dataclass
class StrategyCost:
    name: str
    label: str
    usage: Usage = field(default_factory=Usage)
    cost: Cost = field(default_factory=Cost)
    estimated: bool = False

    def add(self, usage: Usage, cost: Cost) -> None:
        self.usage = self.usage + usage
        self.cost = self.cost + cost


@dataclass
class WhatIf:
    calls: int
    runs: int
    strategies: dict[str, StrategyCost]
    assumptions: list[str]
    summary_model: str

    @property
    def recorded(self) -> StrategyCost:
        return self.strategies["as_recorded"]

    @property
    def unknown_models(self) -> frozenset[str]:
        """Models without a price, in any strategy: costs that include them are unknown."""
        return frozenset[str]().union(*(s.cost.unknown_models for s in self.strategies.values()))

    def ratio(self, name: str) -> float | None:
        base = self.recorded.cost
        other = self.strategies[name].cost
        if not base.is_known or not other.is_known or not base.priced_total:
            return None
        return float(other.priced_total / base.priced_total)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, strategy in self.strategies.items():
            usage = strategy.usage
            out[name] = {
                "label": strategy.label,
                "prompt_tokens": usage.prompt_tokens,
                "input_tokens": usage.input_tokens,
                "cache_write_5m_tokens": usage.cache_write_5m_tokens,
                "cache_write_1h_tokens": usage.cache_write_1h_tokens,
                "cache_read_tokens": usage.cache_read_tokens,
                "output_tokens": usage.output_tokens,
                "cost_usd": strategy.cost.usd,
                "vs_recorded": None if (r := self.ratio(name)) is None else round(r, 4),
                "estimated": strategy.estimated,
            }
            if not strategy.cost.is_known:
                out[name]["unknown_models"] = sorted(strategy.cost.unknown_models)
        return {
            "calls": self.calls,
            "runs": self.runs,
            "summary_model": self.summary_model,
            "strategies": out,
            "assumptions": self.assumptions,
        }


@dataclass
class _Run:
    """One run, ready to simulate: its calls and times, and how to make their unmarked prompts (one at a time:
    a prompt holds the whole history, so a long run's prompts are never all kept)."""

    calls: list[CallRecord]
    prompts: Callable[[], Iterator[Prompt]]
    head_blocks: int | None  # synthetic prompts: how many head blocks; None: find system/tools blocks by path
    warm: Prompt | None
    times: list[float]
    estimated: bool


def _at(record: CallRecord) -> datetime | None:
    return datetime.fromtimestamp(record.started_at, tz=UTC) if record.started_at is not None else None


def _print_block(path: str, digest: str, tokens: int) -> Block:
    try:
        fingerprint = bytes.fromhex(digest)
    except ValueError:
        fingerprint = block_fingerprint(path, digest)
    return Block(path=path, fingerprint=fingerprint, tokens=tokens)


def _recorded_prompts(calls: Sequence[CallRecord]) -> Iterator[Prompt]:
    """The recorded blocks of each call. A block keeps the size it had when first seen; the new blocks of a call
    are scaled so its prompt adds up to the recorded prompt size (block sizes are often estimates)."""
    sizes: dict[tuple[str, str], int] = {}
    for record in calls:
        total = record.usage.prompt_tokens
        tail = min(TRAILING_PROMPT_TOKENS, total)
        new = [b for b in record.prefix if (b.path, b.hash) not in sizes]
        known = sum(sizes.get((b.path, b.hash), 0) for b in record.prefix)
        room = total - tail - known
        if room < 0:  # smaller than the blocks it shares with earlier calls: scale this call on its own
            factor = (total - tail) / max(sum(b.tokens for b in record.prefix), 1)
            sizing = {(b.path, b.hash): round(b.tokens * factor) for b in record.prefix}
        else:
            estimated = sum(b.tokens for b in new)
            factor = room / estimated if estimated else 1.0
            sizes.update({(b.path, b.hash): round(b.tokens * factor) for b in new})
            sizing = sizes
        blocks = [_print_block(b.path, b.hash, sizing[(b.path, b.hash)]) for b in record.prefix]
        tail = max(total - sum(b.tokens for b in blocks), 0)
        yield Prompt(model=record.model, blocks=tuple(blocks), tail_tokens=tail)


def _head_end(prompt: Prompt) -> int | None:
    ends = [i for i, b in enumerate(prompt.blocks) if b.path.startswith(("tools", "system"))]
    return ends[-1] if ends else None


def _warm_prompt(prompt: Prompt, cached: int) -> Prompt | None:
    """The leading blocks of ``prompt`` that fit in ``cached`` tokens (read by the first call), marked to cache."""
    fit = [i for i, tokens in enumerate(prompt.prefix_tokens) if tokens <= cached and prompt.blocks[i].tokens]
    if not cached or not fit:
        return None
    last = fit[-1]
    head = Prompt(prompt.model, prompt.blocks[: last + 1], tail_tokens=0)
    return head.with_marks({last: "1h"})


def _head_tokens(calls: Sequence[CallRecord]) -> tuple[int, str]:
    first = calls[0]
    total = first.usage.prompt_tokens
    messages = first.notes.get("message_tokens")
    if isinstance(messages, int):
        return max(total - messages, 0), "the first prompt minus the estimated tokens of its messages"
    cached = first.usage.cache_read_tokens + first.usage.cache_write_tokens
    return min(cached, total), "what the first call cached (the log holds no message text)"


def _rewrites(calls: Sequence[CallRecord], pricing: Pricing) -> dict[int, int]:
    """Calls whose recorded miss came from changed content (any strategy would have missed there too), with how
    many leading tokens they could still read."""
    misses = run_misses(calls, pricing=pricing)
    return {m.index: m.read_tokens for m in misses if m.cause in CONTENT_CAUSES}


def _shape(calls: list[CallRecord], clock: float, notes: set[str], pricing: Pricing) -> _Run:
    timed = all(c.started_at is not None for c in calls)
    times = [c.started_at or 0.0 for c in calls] if timed else [clock + _SPACING_S * i for i in range(len(calls))]
    if not timed:
        notes.add(f"calls without timestamps are spaced {_SPACING_S:.0f} s apart")
    first_read = calls[0].usage.cache_read_tokens
    if all(c.prefix for c in calls):
        estimated = any(bool(c.notes.get("prefix_estimated")) for c in calls)
        if estimated:
            notes.add("block sizes of recorded requests are estimated from their text, scaled to the recorded total")
        warm = _warm_prompt(next(_recorded_prompts(calls[:1])), first_read)
        return _Run(calls, lambda: _recorded_prompts(calls), None, warm, times, estimated)
    head, how = _head_tokens(calls)
    notes.add(f"system prompt + tools size per run estimated as {how}")
    cached = min(first_read, head)
    blocks = [("head.cached", cached), ("head", head - cached)] if cached else [("head", head)]
    history = [max(c.usage.prompt_tokens - head - TRAILING_PROMPT_TOKENS, 0) for c in calls]
    models = [c.model for c in calls]
    rewrites = _rewrites(calls, pricing)
    salt = f"{calls[0].run_id}."

    def prompts() -> Iterator[Prompt]:
        return iter_growth_prompts(models, blocks, history, head_salt=salt, history_salt=salt, rewrites=rewrites)

    warm = _warm_prompt(next(prompts()), first_read)
    return _Run(calls, prompts, len(blocks), warm, times, True)


def _marks(strategy: str, prompt: Prompt, head_end: int | None, previous_blocks: int) -> dict[int, TTL]:
    if strategy == "no_cache":
        return {}
    if strategy == "system_tools":
        return {head_end: "5m"} if head_end is not None else {}
    ttl: TTL = "1h" if strategy == "rolling_1h" else "5m"
    marks: dict[int, TTL] = {}
    if head_end is not None:
        marks[head_end] = ttl
    if 0 < previous_blocks <= len(prompt.blocks):  # where the previous request ended: read it even past 20 blocks
        marks[previous_blocks - 1] = ttl
    marks[len(prompt.blocks) - 1] = ttl
    return marks


def _simulate(strategy: str, runs: Sequence[_Run], summary_model: str) -> list[tuple[CallRecord, str, Usage]]:
    """Every call of every run, in time order, through one cache: (call, model sent to, simulated usage)."""
    sim = CacheSim()
    order = sorted((t, r, i) for r, run in enumerate(runs) for i, t in enumerate(run.times))
    prompts = [run.prompts() for run in runs]
    previous = [0] * len(runs)
    out: list[tuple[CallRecord, str, Usage]] = []
    for start, r, i in order:
        run = runs[r]
        record, prompt = run.calls[i], next(prompts[r])
        if i == 0 and run.warm is not None and strategy != "no_cache":
            sim.request(run.warm, start=start - 1.0)
        if strategy == "cheaper_summary" and i == len(run.calls) - 1:
            prompt = Prompt(summary_model, prompt.blocks, prompt.auto_ttl, prompt.tail_tokens)
        head_end = run.head_blocks - 1 if run.head_blocks is not None else _head_end(prompt)
        marked = prompt.with_marks(_marks(strategy, prompt, head_end, previous[r]))
        previous[r] = len(prompt.blocks)
        usage = sim.request(marked, start=start).usage
        out.append((record, prompt.model, usage.with_output(record.usage.output_tokens)))
    return out


def _price(
    name: str, simulated: Sequence[tuple[CallRecord, str, Usage]], pricing: Pricing, estimated: bool
) -> StrategyCost:
    result = StrategyCost(name, STRATEGIES[name], estimated=estimated and name != "no_cache")
    for record, model, usage in simulated:
        batch = name == "batch" and record.notes.get("interactive") is not True
        at = _at(record)
        result.add(usage, pricing.cost(model, usage, batch=batch, at=at))
    return result


def whatif(
    records: Iterable[CallRecord], *, summary_model: str = DEFAULT_SUMMARY_MODEL, pricing: Pricing | None = None
) -> WhatIf:
    """Re-price ``records`` under every strategy in ``STRATEGIES``."""
    pricing = pricing or default_pricing()
    by_run: dict[str, list[CallRecord]] = {}
    recorded = StrategyCost("as_recorded", STRATEGIES["as_recorded"])
    for record in records:
        by_run.setdefault(record.run_id, []).append(record)
        recorded.add(record.usage, record.cost)
        recorded.estimated = recorded.estimated or record.cost.estimated
    notes: set[str] = set()
    runs: list[_Run] = []
    clock = max((r.started_at or 0.0 for calls in by_run.values() for r in calls), default=0.0) + _RUN_GAP_S
    for calls in by_run.values():
        if all(c.started_at is not None for c in calls):
            calls.sort(key=lambda c: c.started_at or 0.0)
        runs.append(_shape(calls, clock, notes, pricing))
        clock = max(clock, runs[-1].times[-1]) + _RUN_GAP_S
    strategies = {"as_recorded": recorded}
    estimated = any(run.estimated for run in runs)
    simulated: dict[str, list[tuple[CallRecord, str, Usage]]] = {}
    for name in STRATEGIES:
        if name == "as_recorded":
            continue
        # batch uses rolling_1h's breakpoints: the same simulation, priced differently
        key = "rolling_1h" if name == "batch" else name
        if key not in simulated:
            simulated[key] = _simulate(key, runs, summary_model)
        strategies[name] = _price(name, simulated[key], pricing, estimated)
    return WhatIf(
        calls=sum(len(r.calls) for r in runs),
        runs=len(runs),
        strategies=strategies,
        assumptions=sorted(notes) + _fixed_notes(runs, summary_model),
        summary_model=summary_model,
    )


def _fixed_notes(runs: Sequence[_Run], summary_model: str) -> list[str]:
    notes: list[str] = []
    warm = [run for run in runs if run.warm is not None]
    if warm:
        tokens = sum(run.calls[0].usage.cache_read_tokens for run in warm)
        notes.append(
            f"{len(warm)} run(s) found {tokens:,} tokens already cached by their first call: every caching "
            "strategy starts with them cached"
        )
    calls = [c for run in runs for c in run.calls]
    interactive = sum(1 for c in calls if c.notes.get("interactive") is True)
    notes.append(
        f"cheaper_summary: the last call of each run goes to {summary_model} (a model switch: it cannot read the "
        "other model's cache)"
    )
    notes.append(
        f"batch: {len(calls) - interactive} of {len(calls)} calls are not interactive and priced at Batch API "
        "rates (half price; the price data has batch rates only from 2026-10-14, earlier calls get the documented "
        "50 % off); batches may take up to 24 h and their cache hits are best effort"
    )
    return notes
