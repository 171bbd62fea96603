"""The same recorded workload, re-priced under other caching strategies, through the cache simulator.

Every recorded call keeps its model, its prompt size, its output size and its time; only where the breakpoints go
(and, for two strategies, the model or the price list) changes. Each strategy's requests run through ``cachesim``
and are priced per request with ``pricing``.

What each call's prompt is made of:

- When the log holds the request's blocks (leanloop traces, API recordings: ``CallRecord.prefix``), those blocks,
  scaled to the recorded prompt size. Such runs share one cache per strategy (runs with the same tools and system
  prompt read each other's entries, as they would on the API).
- Otherwise (Claude Code, OpenHands): a head of system prompt + tools, then one block per call holding what the
  call added to the history (``prompts.GrowthPrompts``). The head's size is an estimate: the first prompt minus
  the estimated tokens of the messages it sent. Such results are marked as estimates.

Cache state before the log: a run whose first call read N tokens from the cache found them there; every caching
strategy starts with those N tokens cached, under its own TTL (a strategy cannot be blamed or credited for what
happened before).

Truncation re-runs each run with leanloop's history compaction (``truncation``) where a prompt passes the
trigger: from a run's first cut on, its prompts are the compacted history, through a cache of their own. It is a
row of the result only where it cut something (``WhatIf.truncation`` says why not, otherwise).

The Batch API (half price, results within 24 h) only suits calls nobody waits on. A log says when someone did
(Claude Code: a person at the terminal, and a sub-agent's session; OpenHands: a user in the loop): those calls
keep their price. For the others the log cannot tell, so the batch row prices them at batch rates as an upper
bound, not a recommendation: an agent loop's calls depend on each other, so n calls are n batches in a row.

Streamed (``WhatIfSimulation``): calls are simulated as they are read, a run's calls in the order the log lists
them; per open run only its cache state and the blocks of its current prompt are kept, and a run idle for two
hours (its cache long expired) is closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from leanloop.analyze.misses import CONTENT_CAUSES, cache_ttl, pair_miss
from leanloop.analyze.projection import Period, Projection
from leanloop.analyze.prompts import GrowthPrompts
from leanloop.analyze.truncation import TruncatedHistory, Truncation
from leanloop.cachesim import TTL, Block, CacheSim, Prompt, block_fingerprint
from leanloop.pricing import Cost, Pricing, default_pricing
from leanloop.tokens import TRAILING_PROMPT_TOKENS
from leanloop.trace import CallRecord
from leanloop.usage import Usage
from leanloop.wording import plural

__all__ = ["DEFAULT_SUMMARY_MODEL", "STRATEGIES", "StrategyCost", "WhatIf", "WhatIfSimulation", "whatif"]

DEFAULT_SUMMARY_MODEL = "claude-haiku-4-5"
STRATEGIES: dict[str, str] = {
    "as_recorded": "as recorded",
    "no_cache": "no caching",
    "system_tools": "system+tools only (5m)",
    "rolling_5m": "rolling cache 5m (leanloop default)",
    "rolling_1h": "rolling cache 1h",
    "cheaper_summary": "rolling 5m, final call on a cheaper model",
    "batch": "rolling 1h + Batch API where nobody waits",
    "truncation": "rolling 5m + history compaction",
}
_CACHING: dict[str, TTL] = {"system_tools": "5m", "rolling_5m": "5m", "rolling_1h": "1h"}
_SPACING_S = 10.0  # between calls whose log has no timestamps
_RUN_GAP_S = 86_400.0
_UNTIMED_EPOCH = 1e11  # runs without timestamps are placed far from any real one, a day apart
_IDLE_S = 2 * 3600.0  # a run idle this long has nothing left in any cache (the longest TTL is 1 h)
_IDLE_CHECK_EVERY = 512
_NOT_A_SUMMARY = frozenset({"tool_use", "max_tokens", "pause_turn"})  # a run cut off, not a final answer


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
    batch_calls: int = 0  # calls the log does not show anyone waited on: priced at batch rates in the batch row
    projection: Projection = field(default_factory=lambda: Projection(Period()))
    truncation: Truncation = field(default_factory=Truncation)  # a row only where it cut something

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

    def per_month(self, name: str) -> Decimal | None:
        """The strategy's cost for 30 days at the observed rate (or at ``--runs-per-day``); None when unknown."""
        cost = self.strategies[name].cost
        return self.projection.per_month(cost.priced_total) if cost.is_known else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, strategy in self.strategies.items():
            usage = strategy.usage
            month = self.per_month(name)
            out[name] = {
                "label": strategy.label,
                "prompt_tokens": usage.prompt_tokens,
                "input_tokens": usage.input_tokens,
                "cache_write_5m_tokens": usage.cache_write_5m_tokens,
                "cache_write_1h_tokens": usage.cache_write_1h_tokens,
                "cache_read_tokens": usage.cache_read_tokens,
                "output_tokens": usage.output_tokens,
                "cost_usd": strategy.cost.usd,
                "usd_per_month": float(month) if month is not None else None,
                "vs_recorded": None if (r := self.ratio(name)) is None else round(r, 4),
                "estimated": strategy.estimated,
            }
            if not strategy.cost.is_known:
                out[name]["unknown_models"] = sorted(strategy.cost.unknown_models)
        out["batch"]["upper_bound"] = True
        out["batch"]["batch_calls"] = self.batch_calls
        return {
            "calls": self.calls,
            "runs": self.runs,
            "summary_model": self.summary_model,
            "strategies": out,
            "projection": self.projection.to_dict(None),
            "truncation": self.truncation.to_dict(),
            "assumptions": self.assumptions,
        }


def _like(usage: Usage, recorded: Usage) -> Usage:
    """A strategy's usage of a recorded call: its own prompt tokens, and the call's output, web searches, speed,
    region and service tier (none of which caching changes)."""
    return replace(
        usage,
        output_tokens=recorded.output_tokens,
        web_search_requests=recorded.web_search_requests,
        speed=recorded.speed,
        inference_geo=recorded.inference_geo,
        service_tier=recorded.service_tier,
    )


def _at(record: CallRecord) -> datetime | None:
    return datetime.fromtimestamp(record.started_at, tz=UTC) if record.started_at is not None else None


def _print_block(path: str, digest: str, tokens: int) -> Block:
    try:
        fingerprint = bytes.fromhex(digest)
    except ValueError:
        fingerprint = block_fingerprint(path, digest)
    return Block(path=path, fingerprint=fingerprint, tokens=tokens)


class _RecordedPrompts:
    """The recorded blocks of each call. A block keeps the size it had when first seen; the new blocks of a call
    are scaled so its prompt adds up to the recorded prompt size (block sizes are often estimates)."""

    def __init__(self) -> None:
        self._sizes: dict[tuple[str, str], int] = {}

    def next(self, record: CallRecord) -> Prompt:
        sizes = self._sizes
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
        return Prompt(model=record.model, blocks=tuple(blocks), tail_tokens=tail)


def _head_end(prompt: Prompt) -> int | None:
    ends = [i for i, b in enumerate(prompt.blocks) if b.path.startswith(("tools", "system"))]
    return ends[-1] if ends else None


def _warm_prompt(prompt: Prompt, cached: int, ttl: TTL, head_end: int | None) -> Prompt | None:
    """The leading blocks of ``prompt`` that fit in ``cached`` tokens (read by the first call), marked to cache
    under ``ttl`` (at their end, and at the end of the head when it fits too)."""
    fit = [i for i, tokens in enumerate(prompt.prefix_tokens) if tokens <= cached and prompt.blocks[i].tokens]
    if not cached or not fit:
        return None
    last = fit[-1]
    head = Prompt(prompt.model, prompt.blocks[: last + 1], tail_tokens=0)
    marks: dict[int, TTL] = {last: ttl}
    if head_end is not None and head_end < last:
        marks[head_end] = ttl
    return head.with_marks(marks)


def _marks(strategy: str, prompt: Prompt, head_end: int | None, previous_blocks: int) -> dict[int, TTL]:
    ttl = _CACHING[strategy]
    if strategy == "system_tools":
        return {head_end: ttl} if head_end is not None else {}
    marks: dict[int, TTL] = {}
    if head_end is not None:
        marks[head_end] = ttl
    if 0 < previous_blocks <= len(prompt.blocks):  # where the previous request ended: read it even past 20 blocks
        marks[previous_blocks - 1] = ttl
    marks[len(prompt.blocks) - 1] = ttl
    return marks


def _awaited(record: CallRecord) -> bool:
    """The log shows someone waited on this call (its importer said so)."""
    return record.notes.get("interactive") is True


class _Rewrites:
    """Where a run's recorded prompt was rewritten: a call whose recorded miss came from changed content (any
    strategy would have missed there too) keeps only the tokens its read stopped at."""

    def __init__(self, pricing: Pricing) -> None:
        self._pricing = pricing
        self._previous: CallRecord | None = None
        self._ttl = "5m"
        self._index = 0

    def unchanged(self, record: CallRecord) -> int | None:
        """How many leading prompt tokens of ``record`` are the same as at the call before, when it was rewritten."""
        found: int | None = None
        if self._previous is not None:
            self._ttl = cache_ttl(self._previous.usage, self._ttl)
            miss = pair_miss(
                self._previous, record, index=self._index, ttl=self._ttl, min_tokens=512, pricing=self._pricing
            )
            if miss is not None and miss.cause in CONTENT_CAUSES:
                found = miss.read_tokens
        self._previous = record
        self._index += 1
        return found


class _SyntheticPrompts:
    """Prompts for a run whose log has no blocks: an estimated head, then what each call added to the history
    (rewritten from where a recorded rewrite left it unchanged)."""

    def __init__(self, first: CallRecord) -> None:
        messages = first.notes.get("message_tokens")
        total = first.usage.prompt_tokens
        if isinstance(messages, int):
            self.head = max(total - messages, 0)
            self.how = "the first prompt minus the estimated tokens of its messages"
        else:
            self.head = min(first.usage.cache_read_tokens + first.usage.cache_write_tokens, total)
            self.how = "what the first call cached (the log holds no message text)"
        cached = min(first.usage.cache_read_tokens, self.head)
        self.blocks = [("head.cached", cached), ("head", self.head - cached)] if cached else [("head", self.head)]
        self.head_blocks = len(self.blocks)
        self.salt = f"{first.run_id}."
        self._growth = GrowthPrompts(self.blocks, head_salt=self.salt, history_salt=self.salt)

    def next(self, record: CallRecord, unchanged: int | None) -> Prompt:
        return self._growth.next(record.model, _history_tokens(record, self.head), unchanged=unchanged)


def _history_tokens(record: CallRecord, head: int) -> int:
    """The tokens of a call's messages: its prompt less the head (system prompt + tools) and the answer's opening."""
    return max(record.usage.prompt_tokens - head - TRAILING_PROMPT_TOKENS, 0)


class _Truncated:
    """One run under the truncation strategy: its history compacted (``truncation.TruncatedHistory``) at every call,
    and from its first cut on its prompts made from token counts (``GrowthPrompts``) and sent through a cache of its
    own with rolling 5m breakpoints. Until then the run is what rolling_5m makes of it (its calls are priced as
    rolling_5m's), and what that leaves cached that a cut does not rewrite is the system prompt and tools: the
    cache starts with them, as the call before the cut left them."""

    def __init__(self, first: CallRecord, first_prompt: Prompt, synthetic: _SyntheticPrompts | None, at: int | None):
        if synthetic is not None:
            head, self._blocks, self._salt = synthetic.head, synthetic.blocks, synthetic.salt
        else:
            head_end = _head_end(first_prompt)
            head = first_prompt.prefix_tokens[head_end] if head_end is not None else 0
            self._blocks, self._salt = [("head", head)], f"{first.run_id}."
        self.head_end = len(self._blocks) - 1
        self.history = TruncatedHistory(head, truncate_at=at)
        self._growth: GrowthPrompts | None = None
        self._sim = CacheSim()
        self._previous_blocks = 0
        self._previous_output = 0
        self._previous_start: float | None = None

    def next(self, record: CallRecord, unchanged: int | None, start: float) -> tuple[Prompt | None, bool]:
        """The call's prompt under compaction (None until the first cut), and whether the history was cut just
        before it."""
        recorded = _history_tokens(record, self.history.head_tokens)
        step = self.history.next(record.model, recorded, self._previous_output)
        self._previous_output = record.usage.output_tokens
        previous, self._previous_start = self._previous_start, start
        if self._growth is None and not step.cut:
            return None, False
        fresh = self._growth is None
        if self._growth is None:  # a new history: the one before the cut is never read again
            self._growth = GrowthPrompts(self._blocks, head_salt=self._salt, history_salt=f"{self._salt}compacted.")
        if unchanged is not None and unchanged > self.history.head_tokens:  # where that is in the shorter history
            unchanged = max(unchanged - (recorded - step.history_tokens), self.history.head_tokens)
        prompt = self._growth.next(record.model, step.history_tokens, unchanged=None if fresh else unchanged)
        if fresh and previous is not None:  # the head, as rolling_5m's last call before the cut left it cached
            head = _warm_prompt(prompt, self.history.head_tokens, "5m", self.head_end)
            if head is not None:
                self._sim.request(head, start=previous)
        return prompt, step.cut

    def request(self, prompt: Prompt, start: float, recorded: Usage) -> Usage:
        marked = prompt.with_marks(_marks("rolling_5m", prompt, self.head_end, self._previous_blocks))
        self._previous_blocks = len(prompt.blocks)
        return _like(self._sim.request(marked, start=start).usage, recorded)


@dataclass
class _Held:
    """The latest call of a run, whose cheaper_summary price waits until it is known whether it was the last."""

    record: CallRecord
    prompt: Prompt
    start: float
    head_end: int | None
    usage: Usage
    cost: Cost


class _Run:
    """One run being simulated under every strategy."""

    def __init__(self, first: CallRecord, sims: dict[str, CacheSim] | None, clock: float, pricing: Pricing) -> None:
        self.synthetic = None if first.prefix else _SyntheticPrompts(first)
        self.recorded = _RecordedPrompts() if first.prefix else None
        self.rewrites = _Rewrites(pricing)
        self.sims = sims if sims is not None else {name: CacheSim() for name in _CACHING}
        self.previous_blocks = dict.fromkeys(_CACHING, 0)
        self.clock = clock
        self.calls = 0
        self.held: _Held | None = None
        self.truncated: _Truncated | None = None  # made with the first prompt
        self.compacted = False  # the truncation strategy cut this run's history

    def prompt(self, record: CallRecord, unchanged: int | None) -> tuple[Prompt, int | None]:
        if self.synthetic is not None:
            return self.synthetic.next(record, unchanged), self.synthetic.head_blocks - 1
        assert self.recorded is not None
        prompt = self.recorded.next(record)
        return prompt, _head_end(prompt)

    def request(self, strategy: str, prompt: Prompt, head_end: int | None, start: float, recorded: Usage) -> Usage:
        """The call under ``strategy``'s breakpoints, through its cache."""
        marked = prompt.with_marks(_marks(strategy, prompt, head_end, self.previous_blocks[strategy]))
        self.previous_blocks[strategy] = len(prompt.blocks)
        return _like(self.sims[strategy].request(marked, start=start).usage, recorded)

    def start(self, record: CallRecord) -> float:
        if record.started_at is not None and record.started_at >= self.clock:
            self.clock = record.started_at
        elif self.calls:
            self.clock += _SPACING_S
        return self.clock


class WhatIfSimulation:
    """``whatif`` as a stream: ``add`` each call, ``end_runs`` when the runs read so far are complete (at the end of a
    file), ``result`` at the end."""

    def __init__(
        self,
        *,
        summary_model: str = DEFAULT_SUMMARY_MODEL,
        pricing: Pricing | None = None,
        runs_per_day: float | None = None,
        truncate_at: int | None = None,
    ) -> None:
        self.summary_model = summary_model
        self.pricing = pricing or default_pricing()
        self.runs_per_day = runs_per_day
        self.truncate_at = truncate_at
        self.truncation = Truncation()
        self.strategies = {name: StrategyCost(name, label) for name, label in STRATEGIES.items()}
        self.notes: set[str] = set()
        self.period = Period()
        self.batch_calls = 0
        self.warm_runs = 0
        self.warm_tokens = 0
        self.estimated = False
        self._open: dict[str, _Run] = {}
        self._shared = {name: CacheSim() for name in _CACHING}  # for runs with recorded blocks and real times
        self._untimed = 0
        self._runs: set[str] = set()
        self._latest = 0.0
        self._since_check = 0

    def add(self, record: CallRecord) -> None:
        recorded = self.strategies["as_recorded"]
        recorded.add(record.usage, record.cost)
        recorded.estimated = recorded.estimated or record.cost.estimated
        self.period.add(record.started_at)
        run = self._open.get(record.run_id) or self._open_run(record)
        start = run.start(record)
        unchanged = run.rewrites.unchanged(record)
        prompt, head_end = run.prompt(record, unchanged)
        if run.truncated is None:
            run.truncated = _Truncated(record, prompt, run.synthetic, self.truncate_at)
        shorter = run.truncated.next(record, unchanged, start)
        if run.calls == 0:
            self._warm(run, record, prompt, head_end, start)
        usage_of = {name: run.request(name, prompt, head_end, start, record.usage) for name in _CACHING}
        at = _at(record)
        cost_of = {name: self.pricing.cost(prompt.model, usage, at=at) for name, usage in usage_of.items()}
        for name, usage in usage_of.items():
            self.strategies[name].add(usage, cost_of[name])
        self._truncate(run, record, shorter, start, (usage_of["rolling_5m"], cost_of["rolling_5m"]))
        plain = _like(Usage(input_tokens=prompt.total_tokens), record.usage)
        self.strategies["no_cache"].add(plain, self.pricing.cost(prompt.model, plain, at=at))
        batch = not _awaited(record)
        self.batch_calls += batch
        hour = usage_of["rolling_1h"]
        self.strategies["batch"].add(hour, self.pricing.cost(prompt.model, hour, batch=batch, at=at))
        self._hold(run, _Held(record, prompt, start, head_end, usage_of["rolling_5m"], cost_of["rolling_5m"]))
        run.calls += 1
        self._close_idle(start)

    def _truncate(
        self,
        run: _Run,
        record: CallRecord,
        shorter: tuple[Prompt | None, bool],
        start: float,
        rolling: tuple[Usage, Cost],
    ) -> None:
        """The call under the truncation strategy (its prompt, and whether the history was cut just before it):
        rolling_5m's until the run's history is first cut."""
        assert run.truncated is not None
        prompt, cut = shorter
        self.truncation.saw(run.truncated.history, cut=cut, first=cut and not run.compacted)
        if prompt is None:
            self.strategies["truncation"].add(*rolling)
            return
        run.compacted = True
        usage = run.truncated.request(prompt, start, record.usage)
        self.strategies["truncation"].add(usage, self.pricing.cost(prompt.model, usage, at=_at(record)))

    @property
    def open_runs(self) -> int:
        """Runs whose simulation state is kept (the others were idle long enough to be closed)."""
        return len(self._open)

    def _close_idle(self, now: float) -> None:
        """Close the runs idle for longer than any cache entry lives (all of theirs have expired): a log of many
        sessions keeps only the ones still going. One that resumes later is simulated from there as a new run."""
        self._latest = max(self._latest, now)
        self._since_check += 1
        if self._since_check < _IDLE_CHECK_EVERY:
            return
        self._since_check = 0
        idle = [run_id for run_id, run in self._open.items() if run.clock < self._latest - _IDLE_S]
        for run_id in idle:
            self._final_call(self._open.pop(run_id))

    def _open_run(self, record: CallRecord) -> _Run:
        timed = record.started_at is not None
        clock = record.started_at if record.started_at is not None else _UNTIMED_EPOCH + _RUN_GAP_S * self._untimed
        if not timed:
            self._untimed += 1
            self.notes.add(f"calls without timestamps are spaced {_SPACING_S:.0f} s apart")
        sims = self._shared if record.prefix and timed else None
        run = _Run(record, sims, clock, self.pricing)
        if run.synthetic is not None:
            self.notes.add(f"system prompt + tools size per run estimated as {run.synthetic.how}")
            self.estimated = True
        elif record.notes.get("prefix_estimated"):
            self.notes.add(
                "block sizes of recorded requests are estimated from their text, scaled to the recorded total"
            )
            self.estimated = True
        self._open[record.run_id] = run
        if record.run_id not in self._runs:
            self._runs.add(record.run_id)
            self.period.runs += 1
        return run

    def _warm(self, run: _Run, record: CallRecord, prompt: Prompt, head_end: int | None, start: float) -> None:
        cached = record.usage.cache_read_tokens
        if not cached:
            return
        self.warm_runs += 1
        self.warm_tokens += cached
        for name, ttl in _CACHING.items():
            warm = _warm_prompt(prompt, cached, ttl, head_end)
            if warm is not None:
                run.sims[name].request(warm, start=start - 1.0)

    def _hold(self, run: _Run, call: _Held) -> None:
        """cheaper_summary is rolling_5m but for a run's final call: price the call before this one as rolling_5m."""
        if run.held is not None:
            self.strategies["cheaper_summary"].add(run.held.usage, run.held.cost)
        run.held = call

    def end_runs(self) -> None:
        for run in self._open.values():
            self._final_call(run)
        self._open.clear()

    def _final_call(self, run: _Run) -> None:
        """The run's final call on the cheaper model, when it is a final answer after earlier calls (a one-call run
        is not a summary; a run that stopped on a tool call was cut off). A model switch: nothing of the other
        model's cache can be read."""
        held = run.held
        if held is None:
            return
        summary = self.strategies["cheaper_summary"]
        record = held.record
        if run.calls < 2 or record.stop_reason in _NOT_A_SUMMARY or record.model == self.summary_model:
            summary.add(held.usage, held.cost)
            return
        prompt = Prompt(self.summary_model, held.prompt.blocks, held.prompt.auto_ttl, held.prompt.tail_tokens)
        marked = prompt.with_marks(_marks("rolling_5m", prompt, held.head_end, len(prompt.blocks)))
        usage = _like(run.sims["rolling_5m"].predict(marked, start=held.start).usage, record.usage)
        summary.add(usage, self.pricing.cost(self.summary_model, usage, at=_at(record)))

    def result(self) -> WhatIf:
        self.end_runs()
        for name, strategy in self.strategies.items():
            if name not in ("as_recorded", "no_cache"):
                strategy.estimated = self.estimated
        strategies = dict(self.strategies)
        truncation = strategies.pop("truncation")
        if self.truncation.triggered:  # its token counts are leanloop's estimates of what a cut leaves
            strategies["truncation"] = replace(truncation, label=self.truncation.label, estimated=True)
        return WhatIf(
            calls=self.period.calls,
            runs=self.period.runs,
            strategies=strategies,
            assumptions=sorted(self.notes) + self._fixed_notes(),
            summary_model=self.summary_model,
            batch_calls=self.batch_calls,
            projection=Projection(self.period, self.runs_per_day),
            truncation=self.truncation,
        )

    def _fixed_notes(self) -> list[str]:
        notes: list[str] = []
        if self.warm_runs:
            notes.append(
                f"{plural(self.warm_runs, 'run')} found {self.warm_tokens:,} tokens already cached by their first "
                "call: every caching strategy starts with them cached, under its own TTL"
            )
        notes.append(
            f"cheaper_summary: the final answer of each run of 2 or more calls goes to {self.summary_model} (a "
            "model switch: it cannot read the other model's cache)"
        )
        calls = self.period.calls
        awaited = calls - self.batch_calls
        if not self.batch_calls:
            notes.append(
                f"batch: someone waited on {_of_calls(calls, calls)} (an interactive session, or a sub-agent "
                "its session waited for): the Batch API does not apply, the row is rolling_1h"
            )
        else:
            known = f"{awaited:,} were awaited and keep their price; " if awaited else ""
            notes.append(
                f"batch: an upper bound, not a recommendation. The log cannot tell whether anyone waited on "
                f"{_of_calls(self.batch_calls, calls)} ({known}those are priced at Batch API rates: half "
                "price). Only calls nobody waits on can be batched, with results in up to 24 h each; an agent "
                "loop's calls depend on each other, so a run of n calls is n batches in a row"
            )
        notes.append(self.truncation.note())
        return notes


def _of_calls(part: int, calls: int) -> str:
    """``3 of the 5 calls``, ``every one of the 5 calls``, ``the only call``."""
    if calls == 1:
        return "the only call"
    return f"{'every one' if part == calls else f'{part:,}'} of the {calls:,} calls"


def whatif(
    records: Iterable[CallRecord],
    *,
    summary_model: str = DEFAULT_SUMMARY_MODEL,
    pricing: Pricing | None = None,
    runs_per_day: float | None = None,
    truncate_at: int | None = None,
) -> WhatIf:
    """Re-price ``records`` under every strategy in ``STRATEGIES`` (truncation only where it cuts something)."""
    simulation = WhatIfSimulation(
        summary_model=summary_model, pricing=pricing, runs_per_day=runs_per_day, truncate_at=truncate_at
    )
    for record in records:
        simulation.add(record)
    return simulation.result()
