"""The agent loop: cached, capped, guarded, parallel and streamed by default, with a cost ledger per call.

    agent = Agent("claude-sonnet-4-6", system=SYSTEM, tools=[list_pods, read_pod_logs],
                  budget=Budget(usd=0.50, max_iterations=10))
    result = await agent.run("Why is checkout failing?")
    async for event in agent.stream("..."): ...

``run()`` drains ``stream()``; there is one path. Each iteration: build the next request from the transcript ->
check the limits against the worst case of that call (waiting while other runs' calls on a shared budget hold the
money) -> call the model (always streamed; answer text is forwarded as it arrives, tool JSON never is) -> record
the call (usage, cost, cache verification, trace) -> decide the next step (finish, run tools, retry with more
room, resend, nudge, stop) -> run the turn's tools concurrently. Whatever stops the run, the transcript never ends
with an unanswered tool_use, and the returned ``RunResult.state`` resumes it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import operator
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import anthropic
import httpx2

from leanloop.cachesim import CacheSim, Plan
from leanloop.checks import check_agent_arguments, tools_by_name
from leanloop.errors import BudgetExceeded, ConfigError, RunError
from leanloop.explain import CacheMiss, lint_volatile
from leanloop.limits import Budget, CallEstimate, Go, Halt, LoopGuard, Spend, Wait, estimate_call
from leanloop.pricing import Cost, Pricing, default_pricing
from leanloop.request import Built, CachePolicy, RequestBuilder
from leanloop.tools import DEFAULT_MAX_RESULT_TOKENS, ToolOutcome, ToolUse, iter_tools
from leanloop.trace import BlockPrint, CallRecord, ToolCall, TraceWriter
from leanloop.transcript import answer_pending_tools, append_user, check_start, merge_assistant
from leanloop.turn import Finish, NextStep, Nudge, Resend, Retry, RunTools, StopRun, Turn, TurnBuilder, next_step
from leanloop.usage import Usage
from leanloop.verify import SentCall, check_next_call, check_shared_prefix

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
    "TurnDiscarded",
]

logger = logging.getLogger("leanloop")

StopReason = Literal["end_turn", "budget", "max_iterations", "loop_guard", "refused", "error", "cancelled"]
_MODEL_MAX_OUTPUT = 64_000
# Until a call has shown how the API counts this agent's prompts, assume up to 30 % more tokens than estimated: the
# estimator is within 10 % on ordinary text, and tokenizers of different Claude generations differ by about 30 %.
_FIRST_CALL_TOKEN_MARGIN = 1.3
_NUDGE = "Please continue."
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Stop:
    """Why a run ended: ``reason`` is one of StopReason; ``detail`` says it for a human; ``cap`` names the Budget
    field that stopped it (``usd``, ``max_iterations``, ``max_wall_seconds``, ...) when a limit did."""

    reason: StopReason
    detail: str
    cap: str | None = None

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True)
class RunState:
    """What ``Agent.run(resume=state)`` needs to continue a stopped run. Resuming never changes it (resume it twice
    to branch). ``finished`` is True when the model had given its answer: resuming then needs a new task."""

    run_id: str
    messages: tuple[Mapping[str, Any], ...]
    iterations: int
    guard: LoopGuard | None
    finished: bool = False
    last_call: SentCall | None = field(default=None, repr=False, compare=False)  # for cache verification
    token_scale: float | None = None  # how the API's token counts compared with the estimates, as calibrated


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

    def raise_for_stop(self) -> RunResult:
        """This result if the model finished its answer; else raise what stopped the run, with this result as the
        exception's ``partial``: ``BudgetExceeded`` (with its ``cap``) for a budget or max_iterations stop,
        ``RunError`` for the others (loop_guard, refused, error)."""
        if self.ok:
            return self
        message = f"the run stopped: {self.stop}"
        if self.stop.reason in ("budget", "max_iterations"):
            raise BudgetExceeded(message, cap=self.stop.cap or self.stop.reason, partial=self)
        raise RunError(message, partial=self)


# ---------------------------------------------------------------------------------------------------------------
# Events of ``Agent.stream``


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Text the model is writing, as it arrives."""

    text: str
    iteration: int


@dataclass(frozen=True, slots=True)
class TurnDiscarded:
    """The turn of ``iteration`` was cut by max_tokens and is asked again with more room: the ``text`` it streamed
    is not part of the answer (a UI should take it back). Its cost stays in the ledger."""

    iteration: int
    text: str


@dataclass(frozen=True, slots=True)
class ToolStarted:
    use: ToolUse
    iteration: int


@dataclass(frozen=True, slots=True)
class ToolFinished:
    """One tool call ended (sent as each one does; the transcript keeps tool_use order)."""

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


Event = TextDelta | TurnDiscarded | ToolStarted | ToolFinished | CallFinished | CacheMissed | Notice | Finished


class Agent:
    """A Claude agent loop. Every argument but ``model`` has a production default.

    ``client`` is an ``anthropic.AsyncAnthropic`` (the emulator plugs in through its base_url or http_client).
    ``cache=False`` sends no breakpoints; ``loop_guard=None`` disables the guard (a ``LoopGuard`` given is the
    template each run starts from). ``trace`` appends one JSONL line per call to that file. ``params`` go to every
    request as they are (temperature, tool_choice, thinking, speed, ...).
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
        check_agent_arguments(locals())
        self.model = model
        self.system = system
        self.tools = tools_by_name(tools)
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
        self._own_client: tuple[object, anthropic.AsyncAnthropic] | None = None
        self._linted: tuple[str, list[str]] = ("", [])
        self._memory = _Memory()

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
        """The client given to the Agent; else one it made for the running event loop (an SDK client's connections
        belong to the loop that opened them, and ``run_sync`` runs each call on a loop of its own)."""
        if self._client is not None:
            return self._client
        loop = _running_loop()
        if self._own_client is None or self._own_client[0] is not loop:
            self._own_client = (loop, anthropic.AsyncAnthropic())
        return self._own_client[1]

    async def run(
        self,
        task: str | Sequence[Mapping[str, Any]] | None = None,
        *,
        history: Sequence[Mapping[str, Any]] | None = None,
        resume: RunState | None = None,
        budget: Budget | None = None,
        spend: Spend | None = None,
    ) -> RunResult:
        """Run to the end and return the result. Stops (budget, guard, API errors) are results, not exceptions
        (``result.raise_for_stop()`` turns them into exceptions).

        ``history`` continues a conversation given as plain messages (checked: roles alternate, every tool_use has
        its result); ``resume`` continues a run from its ``RunState``. ``task`` is the new user turn.
        """
        result: RunResult | None = None
        async for event in self.stream(task, history=history, resume=resume, budget=budget, spend=spend):
            if isinstance(event, Finished):
                result = event.result
        assert result is not None
        return result

    def run_sync(
        self,
        task: str | Sequence[Mapping[str, Any]] | None = None,
        *,
        history: Sequence[Mapping[str, Any]] | None = None,
        resume: RunState | None = None,
        budget: Budget | None = None,
        spend: Spend | None = None,
    ) -> RunResult:
        """``run()`` for code that is not async. Called inside a running event loop (a Jupyter cell, an async web
        framework), the run goes on a worker thread with a loop of its own, and this call blocks until it ends.

        Each call runs on a new event loop. Without ``client=`` the Agent makes an SDK client for it and closes it
        after; a real ``AsyncAnthropic`` you pass keeps connections that belong to the loop that opened them, so
        give ``run_sync`` a client per call, or none (the emulator's in-process clients work on any loop).
        """

        async def main() -> RunResult:
            try:
                return await self.run(task, history=history, resume=resume, budget=budget, spend=spend)
            finally:
                own, loop = self._own_client, _running_loop()
                if own is not None and own[0] is loop:
                    self._own_client = None
                    await own[1].close()

        if _running_loop() is None:
            return asyncio.run(main())
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="leanloop-run") as pool:
            return pool.submit(asyncio.run, main()).result()

    async def stream(
        self,
        task: str | Sequence[Mapping[str, Any]] | None = None,
        *,
        history: Sequence[Mapping[str, Any]] | None = None,
        resume: RunState | None = None,
        budget: Budget | None = None,
        spend: Spend | None = None,
    ) -> AsyncIterator[Event]:
        """Run, yielding events as they happen; the last one is ``Finished`` with the ``RunResult``."""
        spend = spend or Spend(budget or self.budget)
        run = _Run(self, self._memory, task=task, history=history, resume=resume, spend=spend)
        stop: StopRun | None = None
        try:
            for message in run.lint():
                yield Notice(message)
            while stop is None:
                planned = await run.plan_call()  # limits checked against the worst case of the next call
                if isinstance(planned, StopRun):
                    stop = planned
                    break
                async with contextlib.aclosing(self._call_model(run, *planned)) as call:
                    async for event in call:
                        yield event
                step = run.after_turn()  # finish, run tools, retry with more room, resend, nudge, or stop
                stop = run.stop_after(step)  # the answer, a stop, or the loop guard / max_tool_calls on the tools
                if isinstance(step, RunTools) and stop is None:
                    async with contextlib.aclosing(self._run_tools(run, step.uses)) as tools:
                        async for event in tools:
                            yield event
                elif isinstance(step, Retry):
                    yield TurnDiscarded(run.iteration, step.discarded)
        except (anthropic.APIError, httpx2.TransportError) as error:  # after the SDK's retries, or mid-stream
            stop = StopRun("error", _describe_api_error(error, run.client.max_retries))
        except _OutOfTime:
            stop = run.out_of_time()
        except BaseException as error:  # cancelled, the caller stopped iterating, or a bug: leave a readable trace
            interrupted = isinstance(error, asyncio.CancelledError | GeneratorExit | KeyboardInterrupt)
            run.close(StopRun("cancelled" if interrupted else "error", repr(error)))
            raise
        yield Finished(run.close(stop))

    async def _call_model(self, run: _Run, built: Built, go: Go) -> AsyncGenerator[Event]:
        call = run.start_call(built, go)
        try:
            for notice in built.notices:
                yield Notice(notice)
            response = await _within(call.deadline, run.client.messages.create(**built.kwargs, stream=True))
            call.request_id = response.response.headers.get("request-id")
            async with response:
                events = aiter(response)
                while (raw := await _within(call.deadline, anext(events, None))) is not None:
                    if text := call.builder.add(raw):
                        yield TextDelta(text, call.iteration)
        except BaseException:
            run.fail_call(call)  # what was billed goes to the ledger, else the reservation is freed
            raise
        record, miss = run.finish_call(call)
        yield CallFinished(record)
        if miss is not None:
            yield CacheMissed(record.iteration, miss)

    async def _run_tools(self, run: _Run, uses: list[ToolUse]) -> AsyncGenerator[Event]:
        iteration = run.iteration
        for use in uses:
            yield ToolStarted(use, iteration)
        outcomes: dict[int, ToolOutcome] = {}
        finished = iter_tools(
            uses,
            self.tools,
            max_concurrency=self.max_concurrent_tools,
            seconds=self.tool_timeout,
            max_result_tokens=self.tool_result_max_tokens,
            max_seconds=run.spend.remaining_wall_s(),
        )
        async with contextlib.aclosing(finished):
            async for index, outcome in finished:
                outcomes[index] = outcome
                yield ToolFinished(outcome, iteration)
        run.add_tool_results([outcomes[index] for index in range(len(uses))])


@dataclass
class _Memory:
    """What an Agent's runs pass on to the next: the latest call (a new run's first call is checked against its
    tools + system prefix), the largest real/estimated prompt token ratio seen, and the warnings already logged."""

    last_call: SentCall | None = None
    token_scale: float | None = None
    logged: set[str] = field(default_factory=set[str])

    def warn(self, message: str) -> None:
        """Log a warning once per Agent (1,000 runs with the same volatile prompt are one log line, not 1,000).
        Numbers are ignored when comparing: a prompt's size or a timestamp changes from run to run."""
        key = re.sub(r"\d[\d,.:]*", "#", message)
        if key not in self.logged:
            self.logged.add(key)
            logger.warning("leanloop: %s", message)


class _OutOfTime(Exception):
    """The run's max_wall_seconds ran out during a model call."""


async def _within(deadline: float | None, step: Awaitable[_T]) -> _T:
    """``await step``, cut off at ``deadline`` (event loop time) when there is one."""
    if deadline is None:
        return await step
    scope = asyncio.timeout_at(deadline)
    try:
        async with scope:
            return await step
    except TimeoutError:
        if scope.expired():
            raise _OutOfTime from None
        raise


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _describe_api_error(error: anthropic.APIError | httpx2.TransportError, max_retries: int) -> str:
    if isinstance(error, httpx2.TransportError):  # the connection broke while the response streamed in
        return f"{type(error).__name__} while streaming the response (the SDK does not retry a stream): {error}"
    status: int | None = getattr(error, "status_code", None)
    message = error.message
    if status == 200:  # an error event inside a response that had started: the SDK does not retry those
        return f"{type(error).__name__} in the response stream (not retried by the SDK): {message}"
    response = getattr(error, "response", None)
    told_not_to = response is not None and response.headers.get("x-should-retry") == "false"
    retryable = status is None or status in (408, 409, 429) or status >= 500  # None: the connection failed
    if not retryable:
        how = ""
    elif told_not_to:
        how = " (the server said not to retry)"
    elif max_retries <= 0:
        how = " (the client does not retry: max_retries=0)"
    else:
        how = f" after the SDK's {max_retries} retries"
    return f"{type(error).__name__}{f' ({status})' if status else ''}{how}: {message}"


# ---------------------------------------------------------------------------------------------------------------
# One run's state. Decisions are plain methods over it; the only I/O is the trace file.


@dataclass
class _Call:
    """A model call in progress."""

    built: Built
    go: Go
    iteration: int
    deadline: float | None
    builder: TurnBuilder
    started_wall: float
    started: float
    request_id: str | None = None


class _Run:
    def __init__(
        self,
        agent: Agent,
        memory: _Memory,
        *,
        task: Any,
        history: Sequence[Mapping[str, Any]] | None,
        resume: RunState | None,
        spend: Spend,
    ) -> None:
        if resume is not None and not isinstance(cast(object, resume), RunState):
            raise ConfigError(
                f"Agent.run(resume=...): expected the RunState of an earlier result, got {type(resume).__name__}"
            )
        check_start(task, history, resume.messages if resume else None, finished=bool(resume and resume.finished))
        if spend.budget.usd is not None and agent.pricing.prices(agent.model) is None:
            raise ConfigError(
                f"Budget(usd=...) needs a price for model {agent.model!r}: add it to a price override file"
            )
        self.agent = agent
        self.memory = memory
        self.spend = spend
        self.client = agent.client
        self.model = agent.model
        self.run_id = resume.run_id if resume else uuid.uuid4().hex[:12]
        self.messages: list[Mapping[str, Any]] = list(resume.messages if resume else history or [])
        self.first_iteration = resume.iterations if resume else 0
        # Each run counts its own failures: a fresh guard, or a copy of the resumed run's (a state may be resumed twice)
        template = resume.guard if resume and resume.guard else agent.loop_guard
        self.guard = (template.copy() if resume and resume.guard else template.fresh()) if template else None
        if task is not None:
            append_user(self.messages, task)  # after the tool results of a resumed run: one user message
        self.builder = RequestBuilder(
            model=agent.model,
            system=agent.system,
            tools=list(agent.tools.values()),
            cache=agent.cache,
            params=agent.params,
        )
        self.speed = "fast" if agent.params.get("speed") == "fast" else None
        self.inference_geo = cast(str | None, agent.params.get("inference_geo"))
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
        self.nudged = False
        self.previous: SentCall | None = resume.last_call if resume else None  # this conversation's last call
        self.shared: SentCall | None = None if resume else memory.last_call
        self.token_scale = (resume.token_scale if resume else None) or memory.token_scale
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
            self.memory.warn(message)
        return found

    def next_request(self, max_tokens: int) -> Built:
        """The next request, built from the transcript (the place to shorten the history or choose the model)."""
        return self.builder.build(self.messages, max_tokens=max_tokens, model=self.model)

    async def plan_call(self) -> tuple[Built, Go] | StopRun:
        max_tokens = self.retry_max_tokens or self.agent.max_tokens
        built = self.next_request(max_tokens)
        decision = self.spend.check_before_call(self._estimate(built, max_tokens))
        while isinstance(decision, Wait):  # other runs' calls in flight hold the money: wait for one to settle
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.spend.settled(decision.since), self.spend.remaining_wall_s())
            decision = self.spend.check_before_call(self._estimate(built, max_tokens))
        if isinstance(decision, Halt):
            reason = "max_iterations" if decision.cap == "max_iterations" else "budget"
            return StopRun(reason, f"{decision.cap}: {decision.reason}", decision.cap)
        if decision.max_tokens != max_tokens:
            built = replace(built, kwargs={**built.kwargs, "max_tokens": decision.max_tokens})
        self.go = decision
        self.turn_recorded = False
        self.notices += built.notices
        for notice in built.notices:
            self.memory.warn(notice)
        return built, decision

    def _estimate(self, built: Built, max_tokens: int) -> CallEstimate:
        prompt = built.prompt
        self.cache_plan = self.mirror.plan(prompt, start=time.monotonic())
        scale = self.token_scale or _FIRST_CALL_TOKEN_MARGIN
        tokens = math.ceil(prompt.total_tokens * scale)
        prices = self.agent.pricing.prices(
            prompt.model, prompt_tokens=tokens, speed=self.speed, inference_geo=self.inference_geo
        )
        if prices is None:
            return CallEstimate(tokens, Decimal(0), Decimal(0), Decimal(0), max_tokens)
        return estimate_call(
            prompt.total_tokens,
            self.cache_plan.result.usage,
            prices,
            max_tokens=max_tokens,
            token_scale=scale,
            longest_ttl=max((ttl for _, ttl in built.breakpoints), key=("5m", "1h").index, default=None),
        )

    def start_call(self, built: Built, go: Go) -> _Call:
        left = self.spend.remaining_wall_s()
        deadline = None if left is None else asyncio.get_running_loop().time() + left
        started = time.perf_counter()
        return _Call(built, go, self.iteration, deadline, TurnBuilder(started), time.time(), started)

    def finish_call(self, call: _Call) -> tuple[CallRecord, CacheMiss | None]:
        """Record a call whose response ended normally."""
        self.turn = call.builder.finish()
        return self._record(call, self.turn, failed=False)

    def fail_call(self, call: _Call) -> None:
        """Settle a call that was cut off (API error, cancelled, out of time, the caller stopped iterating): what
        the API billed goes to the ledger; a call that reported no usage was not billed, and only frees its
        reservation."""
        turn = call.builder.finish()
        if turn.usage is None:
            self.spend.release(call.go)
        else:
            self._record(call, turn, failed=True)

    def _prefix_prints(self, built: Built) -> tuple[BlockPrint, ...]:
        """One BlockPrint per block, re-using those of blocks shared (by identity) with the previous request."""
        blocks = built.plain.blocks
        flags = list(map(operator.is_, self.print_blocks, blocks))
        kept = flags.index(False) if False in flags else len(flags)
        del self.print_blocks[kept:], self.prints[kept:]
        self.print_blocks += blocks[kept:]
        self.prints += [BlockPrint(b.path, b.fingerprint.hex()[:16], b.tokens) for b in blocks[kept:]]
        return tuple(self.prints)

    def _record(self, call: _Call, turn: Turn, *, failed: bool) -> tuple[CallRecord, CacheMiss | None]:
        usage = turn.usage or Usage()
        prompt = call.built.prompt
        cost = self.agent.pricing.cost(prompt.model, usage)
        self.spend.record_call(call.go, usage, cost)
        latency = time.perf_counter() - call.started
        plan = self.cache_plan or self.mirror.plan(prompt, start=time.monotonic() - latency)
        predicted = self.mirror.apply(plan).usage
        self.cache_plan = None
        if usage.prompt_tokens and prompt.total_tokens:  # keep the largest ratio seen: never assume fewer tokens
            ratio = max(1.0, usage.prompt_tokens / prompt.total_tokens)
            self.token_scale = max(self.token_scale or 1.0, ratio)
            self.memory.token_scale = max(self.memory.token_scale or 1.0, ratio)
        miss = None if failed else self._verify(SentCall(prompt, usage, call.started_wall, time.time()))
        record = CallRecord(
            model=prompt.model,
            usage=usage,
            cost=cost,
            iteration=call.iteration,
            run_id=self.run_id,
            started_at=call.started_wall,
            ttft_s=turn.ttft_s,
            latency_s=latency,
            stop_reason="error" if failed else turn.stop_reason,
            prefix=self._prefix_prints(call.built),
            breakpoints=call.built.breakpoints,
            message_id=turn.message_id,
            request_id=call.request_id,
            predicted=predicted,
            notes={"cache_miss": miss.reason} if miss else {},
        )
        self.records.append(record)
        self.turn_recorded = True
        if self.writer:
            self.writer.write_call(record)
        return record, miss

    def _verify(self, sent: SentCall) -> CacheMiss | None:
        """Did this call read what was cached before it (by this conversation, or by the agent's previous run)?"""
        previous, shared, self.previous, self.shared = self.previous, self.shared, sent, None
        self.memory.last_call = sent
        if not self.agent.cache.enabled:
            return None
        if previous is not None:
            miss = check_next_call(previous, sent, ttl=self.agent.cache.effective_ttl())
        elif shared is not None:
            miss = check_shared_prefix(shared, sent)
        else:
            return None
        if miss is None:
            return None
        self.misses.append(miss)
        lost, reason = miss.lost_tokens, miss.reason
        logger.warning("leanloop: cache miss at iteration %d (%d tokens not read): %s", self.iteration, lost, reason)
        return miss

    def after_turn(self) -> NextStep:
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
            nudged=self.nudged,
        )
        self.retry_max_tokens = step.max_tokens if isinstance(step, Retry) else None
        self.pauses = self.pauses + 1 if isinstance(step, Resend) else 0
        self.nudged = isinstance(step, Nudge)
        if isinstance(step, Nudge):  # an empty turn is not sent back (that would not help): ask once to go on
            append_user(self.messages, [{"type": "text", "text": _NUDGE}])
        elif turn.stop_reason != "max_tokens":  # a cut turn is dropped (resume asks again); its cost stays
            content = turn.without_truncated_tools()
            if content:
                merge_assistant(self.messages, content)  # a paused turn's continuation joins it
        if isinstance(step, Finish | StopRun):
            self.answer = turn.text
        return step

    def stop_after(self, step: NextStep) -> StopRun | None:
        """Whether the run ends after this step: the model's answer, a stop, or tools it may not run."""
        if isinstance(step, Finish):
            return StopRun("end_turn", "the model finished its answer")
        if isinstance(step, StopRun):
            return step
        return self._check_tools(step.uses) if isinstance(step, RunTools) else None

    def _check_tools(self, uses: list[ToolUse]) -> StopRun | None:
        if self.guard is not None:
            for use in uses:
                repeated = self.guard.blocked(use.name, use.input)
                if repeated is not None:
                    return StopRun("loop_guard", repeated)
        halt = self.spend.check_tool_calls(len(uses))
        if halt is not None:
            return StopRun("budget", f"{halt.cap}: {halt.reason}", halt.cap)
        self.spend.record_tool_calls(len(uses))
        return None

    def add_tool_results(self, outcomes: list[ToolOutcome]) -> None:
        blocks: list[dict[str, Any]] = []
        for outcome in outcomes:
            block = outcome.to_block()
            notice = self.guard.observe(outcome.use.name, outcome.use.input, outcome.error) if self.guard else None
            if notice:
                content = block["content"]
                text = {"type": "text", "text": notice}
                block["content"] = f"{content}\n\n{notice}" if isinstance(content, str) else [*content, text]
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

    def out_of_time(self) -> StopRun:
        cap = self.spend.budget.max_wall_seconds
        detail = f"max_wall_seconds: the model call was cut off when the run reached max_wall_seconds={cap:g}"
        return StopRun("budget", detail, "max_wall_seconds")

    def close(self, stop: StopRun) -> RunResult:
        answer_pending_tools(self.messages, f"not executed: the run stopped ({stop.reason}: {stop.detail})")
        usage = sum((r.usage for r in self.records), Usage())
        cost = sum((r.cost for r in self.records), Cost())
        state = RunState(
            self.run_id,
            tuple(self.messages),
            self.first_iteration + len(self.records),
            self.guard,
            finished=stop.reason in ("end_turn", "refused"),
            last_call=self.previous,
            token_scale=self.token_scale,
        )
        result = RunResult(
            answer=self.answer,
            stop=Stop(cast(StopReason, stop.reason), stop.detail, stop.cap),
            messages=list(self.messages),
            calls=list(self.records),
            usage=usage,
            cost=cost,
            tool_calls=sum(len(r.tool_calls) for r in self.records),
            wall_s=time.perf_counter() - self.started,
            state=state,
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
