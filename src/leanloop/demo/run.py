"""The demo's runs: the log-triage task with leanloop, the same task naive and with caching only, and the runaway
incident naive against leanloop. Rendering lives in ``demo.cli``; this module only runs and measures.

Every emulated run gets its own emulator, so no run reads a cache entry another one wrote. API time is the
emulator's modeled time (its latency model), so the comparison means something even though nothing sleeps.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic

from leanloop.agent import Agent, Event, Finished, RunResult
from leanloop.cachesim import min_cacheable_tokens
from leanloop.demo.analyst import SYSTEM_PROMPT, TRIAGE_TASK, analyst_policy, incident_task, stubborn_policy
from leanloop.demo.logs import LogTools
from leanloop.demo.naive import naive_loop
from leanloop.demo.snapshot import SnapshotInfo, generate_snapshot
from leanloop.emulator import Emulator, create_app
from leanloop.emulator.policies import Policy
from leanloop.emulator.serving import async_client
from leanloop.limits import Budget
from leanloop.pricing import Cost, default_pricing
from leanloop.trace import CallRecord
from leanloop.usage import Usage
from leanloop.wording import plural

__all__ = ["DemoReport", "RunSummary", "perfect_cache_floor", "run_demo"]

INCIDENT_MAX_ITERATIONS = 100


@dataclass(frozen=True)
class RunSummary:
    """One run of the comparison: its calls and how it ended. ``api_s`` is modeled time on the emulator."""

    name: str
    calls: list[CallRecord]
    stop: str
    detail: str = ""
    api_s: float = 0.0
    cap: str | None = None  # the Budget field that stopped it, when one did

    @property
    def finished(self) -> bool:
        """Whether the run did the task (the model gave its answer): only then is its cost comparable."""
        return self.stop == "end_turn"

    @property
    def usage(self) -> Usage:
        return sum((c.usage for c in self.calls), Usage())

    @property
    def cost(self) -> Cost:
        return sum((c.cost for c in self.calls), Cost())

    @property
    def cache_hit_rate(self) -> float:
        usage = self.usage
        return usage.cache_read_tokens / usage.prompt_tokens if usage.prompt_tokens else 0.0

    def to_dict(self) -> dict[str, Any]:
        usage = self.usage
        return {
            "cost_usd": self.cost.usd,
            "iterations": len(self.calls),
            "stop": self.stop,
            "detail": self.detail,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_hit_rate": round(self.cache_hit_rate, 4),
            "api_seconds": round(self.api_s, 3),
            "calls": [
                {
                    "iteration": c.iteration,
                    "model": c.model,
                    "input_tokens": c.usage.input_tokens,
                    "cache_write_tokens": c.usage.cache_write_tokens,
                    "cache_read_tokens": c.usage.cache_read_tokens,
                    "output_tokens": c.usage.output_tokens,
                    "cost_usd": c.cost.usd,
                }
                for c in self.calls
            ],
        }


def perfect_cache_floor(calls: list[CallRecord]) -> Decimal:
    """The least the calls could cost under the API's cache rules: every prompt token is written once and read on
    every later call, as soon as the prompt reaches the model's minimum cacheable length (below it nothing can be
    cached, so it is paid at the input rate). Prompts are those actually sent (input + cache write + cache read).
    """
    total, cached = Decimal(0), 0
    for call in calls:
        prompt = call.usage.prompt_tokens
        prices = default_pricing().prices(call.model, prompt_tokens=prompt)
        if prices is None:
            continue
        cacheable = prompt >= min_cacheable_tokens(call.model)
        read = min(cached, prompt)
        fresh_rate = prices.cache_write_5m if cacheable else prices.input
        total += (
            (prompt - read) * fresh_rate + read * prices.cache_read + call.usage.output_tokens * prices.output
        ) / (Decimal(1_000_000))
        cached = prompt if cacheable else cached
    return total


@dataclass
class DemoReport:
    source: str
    model: str
    live: bool
    result: RunResult
    ledger: list[CallRecord] = field(default_factory=list[CallRecord])
    runs: dict[str, RunSummary] = field(default_factory=dict[str, RunSummary])
    incident: dict[str, RunSummary] = field(default_factory=dict[str, RunSummary])
    incident_source: str = ""

    @property
    def floor_usd(self) -> Decimal:
        return perfect_cache_floor(self.result.calls)

    def vs_naive(self, name: str) -> float | None:
        """The run's cost over the naive loop's; None unless both did the task (a run a budget stopped early is not
        cheaper, it is unfinished)."""
        run, naive = self.runs[name], self.runs["naive"]
        return _ratio(run, naive) if run.finished and naive.finished else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "model": self.model,
            "live_api": self.live,
            "answer": self.result.answer,
            "stop": {"reason": self.result.stop.reason, "detail": self.result.stop.detail},
            "perfect_cache_floor_usd": float(self.floor_usd),
            "cost_vs_floor": float(self.result.cost.total / self.floor_usd) if self.floor_usd else None,
            "runs": {name: run.to_dict() for name, run in self.runs.items()},
            "incident": {
                "source": self.incident_source,
                **{
                    name: {k: v for k, v in run.to_dict().items() if k != "calls"}
                    for name, run in self.incident.items()
                },
            },
            "leanloop_vs_naive": self.vs_naive("leanloop"),
            # Both stopped on purpose (by the guard, by the iteration cap): their costs compare.
            "incident_leanloop_vs_naive": _ratio(self.incident["leanloop"], self.incident["naive"]),
        }


def _ratio(a: RunSummary, b: RunSummary) -> float | None:
    """``a``'s cost over ``b``'s (None when ``b`` cost nothing)."""
    return float(a.cost.total / b.cost.total) if b.cost.total else None


def _emulated(policy: Policy, model: str) -> tuple[anthropic.AsyncAnthropic, Emulator]:
    app = create_app({model: policy})
    return async_client(app, max_retries=0), Emulator.of(app)


def _modeled(calls: list[CallRecord], emulator: Emulator | None) -> list[CallRecord]:
    """The calls with the emulator's modeled latency instead of the (near zero) real one."""
    if emulator is None:
        return calls
    served = {c.message_id: c for c in emulator.calls if c.message_id}
    return [
        replace(c, ttft_s=served[c.message_id].ttft_s, latency_s=served[c.message_id].duration_s)
        if c.message_id in served
        else c
        for c in calls
    ]


def _api_seconds(emulator: Emulator) -> float:
    return sum(call.duration_s or 0.0 for call in emulator.calls)


async def _agent_run(
    agent: Agent, task: str, budget: Budget, on_event: Callable[[Event], None] | None = None
) -> RunResult:
    result: RunResult | None = None
    async for event in agent.stream(task, budget=budget):
        if on_event is not None:
            on_event(event)
        if isinstance(event, Finished):
            result = event.result
    assert result is not None
    return result


async def run_demo(
    *,
    logs: Path | None,
    model: str,
    budget_usd: float,
    trace: Path | None,
    live_client: anthropic.AsyncAnthropic | None,
    on_event: Callable[[Event], None] | None = None,
) -> DemoReport:
    with tempfile.TemporaryDirectory(prefix="leanloop-demo-") as scratch:
        snapshot = generate_snapshot(Path(scratch) / "cluster")
        tools = LogTools.for_directory(logs) if logs is not None else LogTools(snapshot.root)
        source = f"--logs {logs}" if logs is not None else _describe(snapshot)
        budget = Budget(usd=budget_usd, max_iterations=30)
        common: Mapping[str, Any] = {"system": SYSTEM_PROMPT, "tools": tools.tools()}

        client, emulator = (live_client, None) if live_client else _emulated(analyst_policy, model)
        agent = Agent(model, client=client, trace=trace, **common)
        result = await _agent_run(agent, TRIAGE_TASK, budget, on_event)
        main_api_s = _api_seconds(emulator) if emulator else sum(c.latency_s or 0.0 for c in result.calls)
        report = DemoReport(source, model, live_client is not None, result, _modeled(result.calls, emulator))

        report.runs["naive"] = await _naive(model, analyst_policy, tools.tools(), TRIAGE_TASK, auto_cache=False)
        report.runs["cache_only"] = await _naive(model, analyst_policy, tools.tools(), TRIAGE_TASK, auto_cache=True)
        if emulator is not None:
            report.runs["leanloop"] = _summary(result, main_api_s)
        else:  # the live run is shown above; the side-by-side is always on the emulator, same task
            client, emulator = _emulated(analyst_policy, model)
            emulated = await _agent_run(Agent(model, client=client, **common), TRIAGE_TASK, budget)
            report.runs["leanloop"] = _summary(emulated, _api_seconds(emulator))

        report.incident = await _incident(model, snapshot)
        # The incident needs a log the agent may not read: it always runs on the generated snapshot.
        unreadable = f"{snapshot.unreadable.namespace}/{snapshot.unreadable.pod}"
        report.incident_source = f"{_describe(snapshot)}, where {unreadable} cannot be read"
        if logs is None:
            report.source = report.incident_source
        return report


def _summary(result: RunResult, api_s: float) -> RunSummary:
    stop = result.stop
    return RunSummary("leanloop", result.calls, stop.reason, stop.detail, api_s, stop.cap)


def _describe(snapshot: SnapshotInfo) -> str:
    pods, namespaces = plural(len(snapshot.pods), "pod"), plural(len(snapshot.namespaces), "namespace")
    return f"generated cluster snapshot: {pods} in {namespaces}"


async def _naive(model: str, policy: Policy, tools: list[Any], task: str, *, auto_cache: bool) -> RunSummary:
    client, emulator = _emulated(policy, model)
    run = await naive_loop(
        client,
        model=model,
        system=SYSTEM_PROMPT,
        tools=tools,
        task=task,
        max_iterations=INCIDENT_MAX_ITERATIONS,
        auto_cache=auto_cache,
    )
    name = "cache_only" if auto_cache else "naive"
    return RunSummary(name, run.calls, run.stop, "", _api_seconds(emulator))


async def _incident(model: str, snapshot: SnapshotInfo) -> dict[str, RunSummary]:
    """A model that retries the permission-denied read forever: naive (100 iterations) against leanloop."""
    target = snapshot.unreadable
    task = incident_task(target.namespace, target.pod)
    tools = LogTools(snapshot.root).tools()
    naive = await _naive(model, stubborn_policy, tools, task, auto_cache=False)
    client, emulator = _emulated(stubborn_policy, model)
    agent = Agent(model, client=client, system=SYSTEM_PROMPT, tools=tools)
    guarded = await _agent_run(agent, task, Budget(max_iterations=INCIDENT_MAX_ITERATIONS))
    leanloop = _summary(guarded, _api_seconds(emulator))
    return {"naive": naive, "leanloop": leanloop}
