"""The agent loop: cached, capped, guarded, parallel and streamed by default, with a cost ledger per call.

    agent = Agent("claude-sonnet-4-6", system=SYSTEM, tools=[list_pods, read_pod_logs],
                  budget=Budget(usd=0.50, max_iterations=10))
    result = await agent.run("Why is checkout failing?")
    async for event in agent.stream("..."): ...

``run()`` drains ``stream()``; there is one path. Each iteration: check the limits against the worst case of the
next call -> call the model (always streamed; answer text is forwarded as it arrives, tool JSON never is) ->
record the call (usage, cost, cache verification, trace) -> decide the next step (finish, run tools, retry with
more room, resend, stop) -> run the turn's tools concurrently. Whatever stops the run, the transcript never ends
with an unanswered tool_use, and the returned ``RunResult.state`` resumes it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import operator
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, cast

import anthropic
import httpx2
from anthropic.resources.messages import AsyncMessages

from leanloop.cachesim import CacheSim, Plan, Prompt
from leanloop.errors import ConfigError
from leanloop.explain import CacheMiss, detect_miss, diff_prompts, lint_volatile
from leanloop.limits import Budget, CallEstimate, Go, LoopGuard, Spend
from leanloop.pricing import Cost, Pricing, default_pricing
from leanloop.request import Built, CachePolicy, RequestBuilder
from leanloop.tools import DEFAULT_MAX_RESULT_TOKENS, Tool, ToolOutcome, ToolUse, as_tool, run_tools
from leanloop.trace import BlockPrint, CallRecord, ToolCall, TraceWriter
from leanloop.turn import Finish, Resend, Retry, RunTools, StopRun, Turn, TurnBuilder, next_step
from leanloop.usage import Usage

__all__ = [
    "Agent",
    "CacheMissed",
    "CallFinished",
    "Event",
    "Finished",
    "Notice",
    "RunResult",
    "RunState",
    "Stop",
    "TextDelta",
    "ToolFinished",
    "ToolStarted",
]

logger = logging.getLogger("leanloop")

StopReason = Literal["end_turn", "budget", "max_iterations", "loop_guard", "refused", "error", "cancelled"]
_MODEL_MAX_OUTPUT = 64_000
_PER_MTOK = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Stop:
    """Why a run ended: ``reason`` is one of StopReason; ``detail`` says it for a human."""

    reason: StopReason
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True)
class RunState:
    """What ``Agent.run(resume=state)`` needs to continue a stopped run."""

    run_id: str
    messages: tuple[Mapping[str, Any], ...]
    iterations: int
    guard: LoopGuard | None


@dataclass(frozen=True)
class RunResult:
    """The outcome of a run: the answer, why it stopped, the transcript, every call, and what it all cost."""

    answer: str
    stop: Stop
    messages: list[Mapping[str, Any]]
    calls: list[CallRecord]
    usage: Usage
    cost: Cost
    tool_calls: int
    wall_s: float
    state: RunState
    notices: list[str] = field(default_factory=list[str])
    cache_misses: list[CacheMiss] = field(default_factory=list[CacheMiss])

    @property
    def ok(self) -> bool:
        return self.stop.reason == "end_turn"

    @property
    def iterations(self) -> int:
        return len(self.calls)

    @property
    def cache_hit_rate(self) -> float:
        """Share of all input tokens that were read from the cache."""
        total = self.usage.prompt_tokens
        return self.usage.cache_read_tokens / total if total else 0.0


# ---------------------------------------------------------------------------------------------------------------
# Events of ``Agent.stream``


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Text the model is writing, as it arrives."""

    text: str
    iteration: int


@dataclass(frozen=True, slots=True)
class ToolStarted:
    use: ToolUse
    iteration: int


@dataclass(frozen=True, slots=True)
class ToolFinished:
    outcome: ToolOutcome
    iteration: int


@dataclass(frozen=True, slots=True)
class CallFinished:
    """A model call ended; its ledger line."""

    record: CallRecord


@dataclass(frozen=True, slots=True)
class CacheMissed:
    """A call wrote (or sent uncached) what it should have read; ``miss.reason`` says why."""

    iteration: int
    miss: CacheMiss


@dataclass(frozen=True, slots=True)
class Notice:
    """Something worth a warning: volatile content in the prefix, a prompt below the cacheable minimum."""

    message: str


@dataclass(frozen=True, slots=True)
class Finished:
    result: RunResult


Event = TextDelta | ToolStarted | ToolFinished | CallFinished | CacheMissed | Notice | Finished


class Agent:
    """A Claude agent loop. Every argument but ``model`` has a production default.

    ``client`` is an ``anthropic.AsyncAnthropic`` (the emulator plugs in through its base_url or http_client).
    ``cache=False`` sends no breakpoints; ``loop_guard=None`` disables the guard. ``trace`` appends one JSONL line
    per call to that file. ``params`` go to every request as they are (temperature, tool_choice, thinking, ...).
    """

    def __init__(
        self,
        model: str,
        *,
        system: str | Sequence[Mapping[str, Any]] | None = None,
        tools: Sequence[Any] = (),
        budget: Budget | None = None,
        client: anthropic.AsyncAnthropic | None = None,
        max_tokens: int = 4096,
        cache: CachePolicy | bool = True,
        loop_guard: LoopGuard | int | None = 3,
        tool_timeout: float = 60.0,
        max_concurrent_tools: int = 16,
        tool_result_max_tokens: int = DEFAULT_MAX_RESULT_TOKENS,
        trace: str | Path | None = None,
        pricing: Pricing | None = None,
        params: Mapping[str, Any] | None = None,
        max_pause_turns: int = 3,
    ) -> None:
        _check_arguments(locals())
        self.model = model
        self.system = system
        self.tools = _tools_by_name(tools)
        self.budget = budget or Budget()
        self.max_tokens = max_tokens
        self.cache = CachePolicy() if cache is True else (cache or CachePolicy(enabled=False))
        self.loop_guard = LoopGuard(loop_guard) if isinstance(loop_guard, int) else loop_guard
        self.tool_timeout = tool_timeout
        self.max_concurrent_tools = max_concurrent_tools
        self.tool_result_max_tokens = tool_result_max_tokens
        self.trace = Path(trace) if trace is not None else None
        self.pricing = pricing or default_pricing()
        self.params = dict(params or {})
        self.max_pause_turns = max_pause_turns
        self._client = client
        self._linted: tuple[str, list[str]] = ("", [])

    def lint_findings(self) -> list[str]:
        """Volatile content (clock times, dates, UUIDs, random ids) in the system prompt and tool definitions."""
        system = self.system
        texts = (
            [("system.0", system)]
            if isinstance(system, str)
            else [(f"system.{i}", str(b.get("text", ""))) for i, b in enumerate(system or [])]
        )
        texts += [(f"tool {name}", str(tool.definition)) for name, tool in self.tools.items()]
        key = str(texts)
        if key != self._linted[0]:  # the system prompt may be a list the caller edits between runs
            self._linted = (key, [str(f) for where, text in texts for f in lint_volatile(text, where)])
        return list(self._linted[1])

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        if self._client is None:
            self._client = anthropic.AsyncAnthropic()
        return self._client

    async def run(
        self,
        task: str | Sequence[Mapping[str, Any]] | None = None,
        *,
        resume: RunState | None = None,
        budget: Budget | None = None,
        spend: Spend | None = None,
    ) -> RunResult:
        """Run to the end and return the result. Stops (budget, guard, API errors) are results, not exceptions."""
        result: RunResult | None = None
        async for event in self.stream(task, resume=resume, budget=budget, spend=spend):
            if isinstance(event, Finished):
                result = event.result
        assert result is not None
        return result

    async def stream(
        self,
        task: str | Sequence[Mapping[str, Any]] | None = None,
        *,
        resume: RunState | None = None,
        budget: Budget | None = None,
        spend: Spend | None = None,
    ) -> AsyncIterator[Event]:
        """Run, yielding events as they happen; the last one is ``Finished`` with the ``RunResult``."""
        run = _Run(self, task, resume, spend or Spend(budget or self.budget))
        stop: StopRun | None = None
        try:
            for message in run.lint():
                yield Notice(message)
            while stop is None:
                planned = run.plan_call()  # limits checked against the worst case of the next call
                if isinstance(planned, StopRun):
                    stop = planned
                    break
                async for event in self._call_model(run, *planned):
                    yield event
                step = run.after_turn()  # finish, run tools, retry with more room, resend, or stop
                if isinstance(step, RunTools):
                    stop = run.check_tools(step.uses)  # loop guard and max_tool_calls
                    if stop is None:
                        async for event in self._run_tools(run, step.uses):
                            yield event
                elif isinstance(step, Finish):
                    stop = StopRun("end_turn", "the model finished its answer")
                elif isinstance(step, StopRun):
                    stop = step
        except (anthropic.APIError, httpx2.TransportError) as error:  # after the SDK's retries, or mid-stream
            stop = StopRun("error", _describe_api_error(error))
        except BaseException as error:  # cancelled, the caller stopped iterating, or a bug: leave a readable trace
            interrupted = isinstance(error, asyncio.CancelledError | GeneratorExit | KeyboardInterrupt)
            run.close(StopRun("cancelled" if interrupted else "error", repr(error)))
            raise
        yield Finished(run.close(stop))

    async def _call_model(self, run: _Run, built: Built, go: Go) -> AsyncIterator[Event]:
        for notice in built.notices:
            yield Notice(notice)
        started_wall, started = time.time(), time.perf_counter()
        builder = TurnBuilder(started)
        request_id: str | None = None
        try:
            response = await self.client.messages.create(**built.kwargs, stream=True)
            request_id = response.response.headers.get("request-id")
            async with response:
                async for raw in response:
                    text = builder.add(raw)
                    if text:
                        yield TextDelta(text, run.iteration)
        except (anthropic.APIError, httpx2.TransportError):
            if builder.turn.usage is None:  # nothing was billed: no ledger line, free the reservation
                run.spend.release(go)
                raise
            run.record_call(
                built,
                go=go,
                turn=builder.finish(),
                started_wall=started_wall,
                started=started,
                request_id=request_id,
                failed=True,
            )
            raise
        record, miss = run.record_call(
            built, go=go, turn=builder.finish(), started_wall=started_wall, started=started, request_id=request_id
        )
        yield CallFinished(record)
        if miss is not None:
            yield CacheMissed(record.iteration, miss)

    async def _run_tools(self, run: _Run, uses: list[ToolUse]) -> AsyncIterator[Event]:
        iteration = run.iteration
        for use in uses:
            yield ToolStarted(use, iteration)
        wall_left = run.spend.remaining_wall_s()
        outcomes = await run_tools(
            uses,
            self.tools,
            max_concurrency=self.max_concurrent_tools,
            seconds=self.tool_timeout if wall_left is None else max(0.001, min(self.tool_timeout, wall_left)),
            max_result_tokens=self.tool_result_max_tokens,
        )
        run.add_tool_results(outcomes)
        for outcome in outcomes:
            yield ToolFinished(outcome, iteration)


_PARAMS = frozenset(inspect.signature(AsyncMessages.create).parameters) - {"self"}
_OWN_PARAMS = frozenset({"model", "max_tokens", "messages", "system", "tools", "stream"})


def _positive(name: str, value: object, kind: type = float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok or (kind is int and not isinstance(value, int)):
        raise ConfigError(f"Agent({name}={value!r}): must be a positive {'whole number' if kind is int else 'number'}")


def _check_arguments(given: Mapping[str, Any]) -> None:
    """Bad arguments are named at construction, not discovered as a traceback in the middle of a run."""
    model, system, params = given["model"], given["system"], given["params"]
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"Agent(model={model!r}): a model id is required, e.g. 'claude-sonnet-4-6'")
    if system is not None and not isinstance(system, str | list | tuple):
        raise ConfigError(f"Agent(system=...): a string or a list of text blocks, got {type(system).__name__}")
    for name, kind in (
        ("max_tokens", int),
        ("max_concurrent_tools", int),
        ("tool_result_max_tokens", int),
        ("tool_timeout", float),
        ("max_pause_turns", int),
    ):
        _positive(name, given[name], kind)
    checks = (
        ("budget", Budget),
        ("cache", CachePolicy | bool),
        ("loop_guard", LoopGuard | int | None),
        ("pricing", Pricing | None),
    )
    for name, expected in checks:
        if given[name] is not None and not isinstance(given[name], expected):
            raise ConfigError(f"Agent({name}=...): expected {expected}, got {type(given[name]).__name__}")
    for key in cast(Mapping[str, Any], params or {}):
        if key in _OWN_PARAMS:
            raise ConfigError(f"Agent(params={{{key!r}: ...}}): set {key} through Agent's own arguments")
        if key not in _PARAMS:
            raise ConfigError(
                f"Agent(params={{{key!r}: ...}}): not a parameter of messages.create in anthropic "
                f"{anthropic.__version__} (it has: {', '.join(sorted(_PARAMS - _OWN_PARAMS))})"
            )


def _check_task(task: object, resume: object) -> None:
    if resume is not None and not isinstance(resume, RunState):
        raise ConfigError(
            f"Agent.run(resume=...): expected the RunState of an earlier result, got {type(resume).__name__}"
        )
    if task is None:
        if resume is None:
            raise ConfigError("Agent.run: give a task, or resume= a RunState from an earlier result")
        last: Mapping[str, Any] = resume.messages[-1] if resume.messages else {}
        content: Any = last.get("content")
        pending = isinstance(content, list) and any(
            isinstance(b, Mapping) and cast(Mapping[str, Any], b).get("type") == "tool_use"
            for b in cast(list[Any], content)
        )
        if last.get("role") == "assistant" and not pending:
            raise ConfigError(
                "Agent.run(resume=...): that run finished with the model's answer; give a new task to go on"
            )
        return
    if isinstance(task, str):
        if not task.strip():
            raise ConfigError("Agent.run(task=''): the task is empty")
        return
    blocks = cast(list[Any], task) if isinstance(task, list | tuple) else None
    if not blocks or not all(isinstance(b, Mapping) and "type" in b for b in blocks):
        if blocks and all(isinstance(b, Mapping) and "role" in b for b in blocks):
            raise ConfigError("Agent.run(task=[...]): give the user's content blocks, not messages (role/content)")
        raise ConfigError(
            f"Agent.run(task=...): a string or a non-empty list of content blocks like {{'type': 'text', 'text': ...}},"
            f" got {type(cast(Any, task)).__name__}"
        )


def _tools_by_name(tools: Sequence[Any]) -> dict[str, Tool]:
    by_name: dict[str, Tool] = {}
    for made in (as_tool(t) for t in tools):
        if made.name in by_name:
            raise ConfigError(f"two tools are named {made.name!r}: tool names must be unique")
        by_name[made.name] = made
    return by_name


def _describe_api_error(error: anthropic.APIError | httpx2.TransportError) -> str:
    if isinstance(error, httpx2.TransportError):  # the connection broke while the response streamed in
        return f"{type(error).__name__} while streaming the response (the SDK does not retry a stream): {error}"
    status = getattr(error, "status_code", None)
    if status == 200:  # an error event inside a response that had started: the SDK does not retry those
        return f"{type(error).__name__} in the response stream (not retried by the SDK): {error.message}"
    return f"{type(error).__name__}{f' ({status})' if status else ''} after the SDK's retries: {error.message}"


# ---------------------------------------------------------------------------------------------------------------
# One run's state. Decisions are plain methods over it; the only I/O is the trace file.


class _Run:
    def __init__(self, agent: Agent, task: Any, resume: RunState | None, spend: Spend) -> None:
        _check_task(task, resume)
        if spend.budget.usd is not None and agent.pricing.prices(agent.model) is None:
            raise ConfigError(
                f"Budget(usd=...) needs a price for model {agent.model!r}: add it to a price override file"
            )
        self.agent = agent
        self.spend = spend
        self.run_id = resume.run_id if resume else uuid.uuid4().hex[:12]
        self.messages: list[Mapping[str, Any]] = list(resume.messages) if resume else []
        self.first_iteration = resume.iterations if resume else 0
        self.guard = resume.guard if resume and resume.guard else agent.loop_guard
        if task is not None:
            self.messages.append({"role": "user", "content": task})
        self.builder = RequestBuilder(
            model=agent.model,
            system=agent.system,
            tools=list(agent.tools.values()),
            cache=agent.cache,
            params=agent.params,
        )
        self.mirror = CacheSim()  # what we expect the API's cache to do, for the budget's worst case
        self.cache_plan: Plan | None = None
        self.records: list[CallRecord] = []
        self.notices: list[str] = []
        self.misses: list[CacheMiss] = []
        self.answer = ""
        self.turn: Turn | None = None
        self.turn_recorded = False
        self.go: Go | None = None
        self.retry_max_tokens: int | None = None
        self.pauses = 0
        self.previous: tuple[Prompt, Usage, float] | None = None
        self.token_scale = 1.0
        self.estimated_prompt_tokens = 0
        self.print_blocks: list[object] = []
        self.prints: list[BlockPrint] = []
        self.started = time.perf_counter()
        self.writer = TraceWriter(agent.trace) if agent.trace else None
        if self.writer:
            self.writer.write_event(
                "run_start",
                run_id=self.run_id,
                model=agent.model,
                started_at=time.time(),
                budget=asdict(spend.budget),
                resumed=resume is not None,
            )

    @property
    def iteration(self) -> int:
        """The number of the call in progress, or of the last call once it is recorded (1-based, across resumes)."""
        return self.first_iteration + len(self.records) + (0 if self.turn_recorded else 1)

    def lint(self) -> list[str]:
        """Volatile content in the cached prefix (system prompt, tool definitions), found before the first call."""
        if not self.agent.cache.enabled or self.records:
            return []
        found = self.agent.lint_findings()
        self.notices += found
        for message in found:
            logger.warning("leanloop: %s", message)
        return found

    def plan_call(self) -> tuple[Built, Go] | StopRun:
        max_tokens = self.retry_max_tokens or self.agent.max_tokens
        built = self.builder.build(self.messages, max_tokens=max_tokens)
        decision = self.spend.check_before_call(self._estimate(built.prompt, max_tokens))
        if not isinstance(decision, Go):
            reason = "max_iterations" if decision.cap == "max_iterations" else "budget"
            return StopRun(reason, f"{decision.cap}: {decision.reason}")
        if decision.max_tokens != max_tokens:
            built = replace(built, kwargs={**built.kwargs, "max_tokens": decision.max_tokens})
        self.go = decision
        self.turn_recorded = False
        self.notices += built.notices
        for notice in built.notices:
            logger.warning("leanloop: %s", notice)
        self.estimated_prompt_tokens = built.prompt.total_tokens
        return built, decision

    def _estimate(self, prompt: Prompt, max_tokens: int) -> CallEstimate:
        self.cache_plan = self.mirror.plan(prompt, start=time.monotonic())
        predicted = self.cache_plan.result.usage
        scale = Decimal(str(self.token_scale))
        tokens = math.ceil(prompt.total_tokens * self.token_scale)
        prices = self.agent.pricing.prices(prompt.model, prompt_tokens=tokens)
        if prices is None:
            return CallEstimate(tokens, Decimal(0), Decimal(0), Decimal(0), max_tokens)
        fresh = (
            predicted.input_tokens * prices.input
            + predicted.cache_write_5m_tokens * prices.cache_write_5m
            + predicted.cache_write_1h_tokens * prices.cache_write_1h
            + predicted.cache_read_tokens * prices.cache_read
        )
        one_hour = self.agent.cache.effective_ttl() == "1h"
        worst_rate = max(prices.input, prices.cache_write_1h if one_hour else prices.cache_write_5m)
        return CallEstimate(
            prompt_tokens=tokens,
            prompt_usd=fresh * scale / _PER_MTOK,
            prompt_usd_if_missed=tokens * worst_rate / _PER_MTOK,
            output_usd_per_token=prices.output / _PER_MTOK,
            max_tokens=max_tokens,
        )

    def _prefix_prints(self, prompt: Prompt) -> tuple[BlockPrint, ...]:
        """One BlockPrint per block, re-using those of blocks shared (by identity) with the previous request."""
        blocks = prompt.blocks
        flags = list(map(operator.is_, self.print_blocks, blocks))
        kept = flags.index(False) if False in flags else len(flags)
        del self.print_blocks[kept:], self.prints[kept:]
        self.print_blocks += blocks[kept:]
        self.prints += [BlockPrint(b.path, b.fingerprint.hex()[:16], b.tokens) for b in blocks[kept:]]
        return tuple(self.prints)

    def record_call(
        self,
        built: Built,
        *,
        go: Go,
        turn: Turn,
        started_wall: float,
        started: float,
        request_id: str | None,
        failed: bool = False,
    ) -> tuple[CallRecord, CacheMiss | None]:
        self.turn = turn
        usage = turn.usage or Usage()
        model = built.prompt.model
        cost = self.agent.pricing.cost(model, usage)
        self.spend.record_call(go, usage, cost)
        latency = time.perf_counter() - started
        plan = self.cache_plan
        if plan is None:
            plan = self.mirror.plan(built.prompt, start=time.monotonic() - latency)
        predicted = self.mirror.apply(plan).usage
        self.cache_plan = None
        if usage.prompt_tokens and self.estimated_prompt_tokens:
            self.token_scale = max(1.0, usage.prompt_tokens / self.estimated_prompt_tokens)
        miss = self._verify(built.prompt, usage, started_wall) if not failed else None
        record = CallRecord(
            model=model,
            usage=usage,
            cost=cost,
            iteration=self.iteration,
            run_id=self.run_id,
            started_at=started_wall,
            ttft_s=turn.ttft_s,
            latency_s=latency,
            stop_reason="error" if failed else turn.stop_reason,
            prefix=self._prefix_prints(built.plain),
            breakpoints=built.breakpoints,
            message_id=turn.message_id,
            request_id=request_id,
            predicted=predicted,
            notes={"cache_miss": miss.reason} if miss else {},
        )
        self.records.append(record)
        self.turn_recorded = True
        if self.writer:
            self.writer.write_call(record)
        return record, miss

    def _verify(self, prompt: Prompt, usage: Usage, started_wall: float) -> CacheMiss | None:
        """Did this call read what the previous one cached? If not, name the block that changed."""
        previous, self.previous = self.previous, (prompt, usage, started_wall)
        if previous is None or not self.agent.cache.enabled:
            return None
        old_prompt, old_usage, old_start = previous
        ttl = self.agent.cache.effective_ttl()
        miss = detect_miss(old_usage, usage, gap_s=started_wall - old_start, ttl=ttl)
        if miss is None:
            return None
        change = diff_prompts(old_prompt, prompt)
        if change is not None:
            miss = CacheMiss(miss.expected_read_tokens, miss.actual_read_tokens, change, change.describe())
        self.misses.append(miss)
        logger.warning(
            "leanloop: cache miss at iteration %d (%d tokens not read): %s",
            self.iteration,
            miss.lost_tokens,
            miss.reason,
        )
        return miss

    def after_turn(self) -> Finish | RunTools | Retry | Resend | StopRun:
        """Decide what the finished turn asks for, and update the transcript accordingly."""
        turn, go = self.turn, self.go
        assert turn is not None
        assert go is not None
        step = next_step(
            turn,
            max_tokens=go.max_tokens,
            retried=self.retry_max_tokens is not None,
            lowered_by=go.lowered_by,
            pauses=self.pauses,
            max_pauses=self.agent.max_pause_turns,
            model_max_tokens=_MODEL_MAX_OUTPUT,
        )
        if isinstance(step, Retry):
            self.retry_max_tokens = step.max_tokens  # the cut turn is dropped; its cost stays in the ledger
            return step
        self.retry_max_tokens = None
        self.pauses = self.pauses + 1 if isinstance(step, Resend) else 0
        content = turn.without_truncated_tools()
        if content:
            self.messages.append({"role": "assistant", "content": content})
        if isinstance(step, Finish | StopRun):
            self.answer = turn.text
        return step

    def check_tools(self, uses: list[ToolUse]) -> StopRun | None:
        if self.guard is not None:
            for use in uses:
                repeated = self.guard.blocked(use.name, use.input)
                if repeated is not None:
                    return StopRun("loop_guard", repeated)
        halt = self.spend.check_tool_calls(len(uses))
        if halt is not None:
            return StopRun("budget", f"{halt.cap}: {halt.reason}")
        self.spend.record_tool_calls(len(uses))
        return None

    def add_tool_results(self, outcomes: list[ToolOutcome]) -> None:
        blocks: list[dict[str, Any]] = []
        for outcome in outcomes:
            block = outcome.to_block()
            notice = self.guard.observe(outcome.use.name, outcome.use.input, outcome.error) if self.guard else None
            if notice:
                block["content"] = f"{block['content']}\n\n{notice}"
            blocks.append(block)
            if outcome.truncated and self.writer:
                self.writer.write_event(
                    "tool_output",
                    run_id=self.run_id,
                    iteration=self.iteration,
                    tool_use_id=outcome.use.id,
                    name=outcome.use.name,
                    output=outcome.full_text,
                )
        self.messages.append({"role": "user", "content": blocks})
        calls = tuple(ToolCall(o.use.name, o.use.id, o.duration_s, o.is_error, o.truncated) for o in outcomes)
        if self.records:
            self.records[-1] = replace(self.records[-1], tool_calls=calls)
        if self.writer:
            self.writer.write_event(
                "tools",
                run_id=self.run_id,
                iteration=self.records[-1].iteration if self.records else self.iteration,
                tool_calls=[asdict(c) for c in calls],
            )

    def _answer_pending_tools(self, stop: StopRun) -> None:
        """Never leave a tool_use unanswered: the API rejects such a transcript, and resume needs a valid one."""
        if not self.messages or self.messages[-1].get("role") != "assistant":
            return
        content = self.messages[-1].get("content")
        blocks = cast(list[Mapping[str, Any]], content) if isinstance(content, list) else []
        pending = [b for b in blocks if b.get("type") == "tool_use"]
        if pending:
            note = f"not executed: the run stopped ({stop.reason}: {stop.detail})"
            self.messages.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": b["id"], "content": note, "is_error": True}
                        for b in pending
                    ],
                }
            )

    def close(self, stop: StopRun) -> RunResult:
        self._answer_pending_tools(stop)
        usage = sum((r.usage for r in self.records), Usage())
        cost = sum((r.cost for r in self.records), Cost())
        result = RunResult(
            answer=self.answer,
            stop=Stop(cast(StopReason, stop.reason), stop.detail),
            messages=list(self.messages),
            calls=list(self.records),
            usage=usage,
            cost=cost,
            tool_calls=sum(len(r.tool_calls) for r in self.records),
            wall_s=time.perf_counter() - self.started,
            state=RunState(self.run_id, tuple(self.messages), self.first_iteration + len(self.records), self.guard),
            notices=list(self.notices),
            cache_misses=list(self.misses),
        )
        if self.writer:
            self.writer.write_event(
                "run_end",
                run_id=self.run_id,
                stop=stop.reason,
                detail=stop.detail,
                iterations=len(self.records),
                usage=usage.to_dict(),
                cost=cost.to_dict(),
                wall_s=result.wall_s,
            )
            self.writer.close()
            self.writer = None
        return result
