"""The agent loop: cached, capped, guarded, parallel and streamed by default, with a cost ledger per call.

    agent = Agent("claude-sonnet-4-6", system=SYSTEM, tools=[list_pods, read_pod_logs],
                  budget=Budget(usd=0.50, max_iterations=10))
    result = await agent.run("Why is checkout failing?")
    async for event in agent.stream("..."): ...

``run()`` drains ``stream()``; there is one path. Each iteration: build the next request from the transcript (near
the model's context window, compact the history first; a route hook may move the conversation to another model) ->
check the limits against the worst case of that call (waiting while other runs' calls on a shared budget hold the
money) -> call the model (always streamed; answer text is forwarded as it arrives, tool JSON never is) -> record
the call (usage, cost, cache verification, trace) -> decide the next step (finish, run tools, retry with more
room, compact, resend, nudge, stop) -> run the turn's tools concurrently (a cheap model may condense big results).
Whatever stops the run, the transcript never ends with an unanswered tool_use, and ``RunResult.state`` resumes it.

Side calls (a summary written by a cheap model, outside the conversation) are checked against the budget before
they are sent and recorded after, like any call; they are in the ledger (``notes["side_call"]``, run id
``<run>/side``) and in the cost, not in the iterations.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import httpx2

from leanloop.checks import check_agent_arguments, check_credentials, check_run_arguments, tools_by_name
from leanloop.events import (
    CacheMissed,
    CallFinished,
    Compacted,
    Event,
    Finished,
    Notice,
    RunResult,
    RunState,
    Stop,
    TextDelta,
    ToolFinished,
    ToolStarted,
    TurnDiscarded,
)
from leanloop.explain import lint_volatile
from leanloop.history import Compaction, summary_request
from leanloop.limits import Budget, Go, LoopGuard, Spend
from leanloop.pricing import Pricing, default_pricing
from leanloop.request import Built, CachePolicy
from leanloop.run import Call, Memory, Run
from leanloop.tiers import Tiers
from leanloop.tools import DEFAULT_MAX_RESULT_TOKENS, ToolOutcome, ToolUse, iter_tools
from leanloop.trace import CallRecord
from leanloop.turn import (
    Compact,
    Retry,
    RunTools,
    StopRun,
)

__all__ = [
    "Agent",
    "CacheMissed",
    "CallFinished",
    "Compacted",
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

_AUTOMATIC_COMPACTION = Compaction()  # acts only near the model's context window
# The API's 400s for a request over the context window (its wording, as recorded in issues against it): the
# prompt's real token count and the window, which the agent then believes over its own table.
_OVER_THE_WINDOW = (
    re.compile(r"prompt is too long: (?P<prompt>\d+) tokens > (?P<window>\d+) maximum"),
    re.compile(r"input length and `max_tokens` exceed context limit: (?P<prompt>\d+) \+ \d+ > (?P<window>\d+)"),
)
_T = TypeVar("_T")


class Agent:
    """A Claude agent loop. Every argument but ``model`` has a production default.

    ``client`` is an ``anthropic.AsyncAnthropic`` (the emulator plugs in through its base_url or http_client); without
    one, the SDK's credentials from the environment (``ANTHROPIC_API_KEY``, ...), checked when the Agent is made.
    ``cache=False`` sends no breakpoints; ``loop_guard=None`` disables the guard (a ``LoopGuard`` given is the
    template each run starts from). ``compaction`` keeps a long run inside the context window (by default it acts
    only near it, and when the API says the prompt no longer fits); None turns it off. ``tiers`` hands side work to
    a cheap model (condensing big tool results, writing compaction summaries) and may route the conversation.
    ``trace`` appends one JSONL line per call to that file (its missing folders are made). ``params`` go to every
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
        compaction: Compaction | None = _AUTOMATIC_COMPACTION,
        tiers: Tiers | None = None,
    ) -> None:
        check_agent_arguments(locals())
        self.model = model
        self.system = system
        self.tools = tools_by_name(tools)
        check_credentials(client)
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
        self.compaction = compaction
        self.tiers = tiers
        self._client = client
        self._own_client: tuple[object, anthropic.AsyncAnthropic] | None = None
        self._linted: tuple[tuple[tuple[str, str], ...], list[str]] = ((), [])
        self._memory = Memory()

    def lint_findings(self) -> list[str]:
        """Volatile content (clock times, dates, UUIDs, random ids) in the system prompt and tool definitions."""
        system = self.system
        texts = (
            [("system.0", system)]
            if isinstance(system, str)
            else [(f"system.{i}", str(b.get("text", ""))) for i, b in enumerate(system or [])]
        )
        texts += [(f"tool {name}", str(tool.definition)) for name, tool in self.tools.items()]
        key = tuple(texts)  # compared text by text: the same system prompt object is equal at once
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

        ``history`` continues a conversation given as plain messages (checked as the API checks it: every tool_use has
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
        check_run_arguments(budget, spend)
        spend = spend or Spend(budget or self.budget)
        run = Run(self, self._memory, task=task, history=history, resume=resume, spend=spend)
        stop: StopRun | None = None
        try:
            for message in run.lint():
                yield Notice(message)
            while stop is None:
                async with contextlib.aclosing(self._prepare(run)) as preparing:  # build; compact, route if due
                    async for event in preparing:
                        yield event
                planned = await run.plan_call()  # limits checked against the worst case of the next call
                if isinstance(planned, StopRun):
                    stop = planned
                    break
                async with contextlib.aclosing(self._call_model(run, *planned)) as call:
                    async for event in call:
                        yield event
                step = run.after_turn()  # finish, run tools, retry with more room, compact, resend, nudge, stop
                stop = run.stop_after(step)  # the answer, a stop, or the loop guard / max_tool_calls on the tools
                if isinstance(step, RunTools) and stop is None:
                    async with contextlib.aclosing(self._run_tools(run, step.uses)) as tools:
                        async for event in tools:
                            yield event
                elif isinstance(step, Retry | Compact) and step.discarded is not None:
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

    async def _prepare(self, run: Run) -> AsyncGenerator[Event]:
        """Build the next request. Near the context window (or after the API said the prompt did not fit), compact
        the history first, with a summary of the dropped turns by the cheap model if one is set; then let the
        route hook, if any, move the conversation to another model."""
        run.next_request()
        cut = run.compaction_due()
        if run.next.notice is not None:
            yield Notice(run.next.notice)
            run.next.notice = None
        if cut is not None:
            summary: str | None = None
            if cut.drops and cut.summarize_with is not None:
                request = summary_request(run.messages, cut)
                side = await self._side_call(run, "compaction_summary", request, run.next_iteration)
                for event in side.events("the dropped turns are replaced by a note", run):
                    yield event
                summary = side.text
            compacted = run.compact(cut, summary)
            yield Notice(compacted.message)
            yield compacted
        notice = run.route()
        if notice is not None:
            yield Notice(notice)

    async def _call_model(self, run: Run, built: Built, go: Go) -> AsyncGenerator[Event]:
        call = run.start_call(built.kwargs, go, run.iteration, built)
        try:
            for notice in built.notices:
                yield Notice(notice)
            async with contextlib.aclosing(_stream_turn(run.client, call)) as texts:
                async for text in texts:
                    yield TextDelta(text, call.iteration)
        except anthropic.BadRequestError as error:
            found = next((m for m in (p.search(str(error.message)) for p in _OVER_THE_WINDOW) if m), None)
            if found is None:
                run.fail_call(call)
                raise
            run.reject(call, int(found["prompt"]), int(found["window"]))  # not billed: compact, send it again
            return
        except BaseException:
            run.fail_call(call)  # what was billed goes to the ledger, else the reservation is freed
            raise
        record, miss = run.finish_call(call)
        yield CallFinished(record)
        if miss is not None:
            yield CacheMissed(record.iteration, miss)

    async def _side_call(self, run: Run, kind: str, request: dict[str, Any], iteration: int) -> _Side:
        """One call to a (cheap) model outside the conversation, checked against the budget and recorded. A failure
        (refused by the budget, an API error, out of time) is a ``_Side`` without text, saying why."""
        go = await run.reserve_side(request)
        if isinstance(go, str):
            return _Side(kind, None, None, go)
        call = run.start_call({**request, "max_tokens": go.max_tokens}, go, iteration)
        try:
            async with contextlib.aclosing(_stream_turn(run.client, call)) as texts:
                async for _ in texts:
                    pass
        except (anthropic.APIError, httpx2.TransportError, _OutOfTime) as error:
            why = "out of time" if isinstance(error, _OutOfTime) else _describe_api_error(error, run.client.max_retries)
            return _Side(kind, None, run.record_side(kind, call, failed=True), why)
        except BaseException:
            run.record_side(kind, call, failed=True)
            raise
        record = run.record_side(kind, call, failed=False)
        text = call.builder.turn.text.strip() or None
        return _Side(kind, text, record, None if text else "the model returned no text")

    async def _run_tools(self, run: Run, uses: list[ToolUse]) -> AsyncGenerator[Event]:
        """Run the turn's tools concurrently; with tiers, each oversized result is condensed by the cheap model in
        a side call started as soon as that tool finishes."""
        iteration = run.iteration
        for use in uses:
            yield ToolStarted(use, iteration)
        outcomes: dict[int, ToolOutcome] = {}
        condensing: dict[int, asyncio.Future[_Side]] = {}
        finished = iter_tools(
            uses,
            self.tools,
            max_concurrency=self.max_concurrent_tools,
            seconds=self.tool_timeout,
            max_result_tokens=self.tool_result_max_tokens,
            max_seconds=run.spend.remaining_wall_s(),
        )
        try:
            async with contextlib.aclosing(finished):
                async for index, outcome in finished:
                    outcomes[index] = outcome
                    yield ToolFinished(outcome, iteration)
                    request = run.result_summary_request(outcome)
                    if request is not None:
                        side = self._side_call(run, "tool_result_summary", request, iteration)
                        condensing[index] = asyncio.ensure_future(side)
            for index, pending in condensing.items():
                side = await pending
                cut = "cut to its head and tail" if outcomes[index].truncated else "sent as the tool returned it"
                for event in side.events(f"the result is {cut}", run):
                    yield event
                outcomes[index] = run.condensed(outcomes[index], side.text)
        finally:
            if condensing:
                for pending in condensing.values():
                    pending.cancel()
                await asyncio.gather(*condensing.values(), return_exceptions=True)
        run.add_tool_results([outcomes[index] for index in range(len(uses))])


@dataclass(frozen=True, slots=True)
class _Side:
    """How a side call went: its text (None if it failed), its ledger line (None if it was never sent), and why it
    failed."""

    kind: str
    text: str | None
    record: CallRecord | None
    failure: str | None

    def events(self, fallback: str, run: Run) -> list[Event]:
        """The events to yield for this side call; a failure is also kept in the run's notices."""
        events: list[Event] = [CallFinished(self.record)] if self.record is not None else []
        if self.failure is not None:
            events.append(
                Notice(run.note(f"{self.kind.replace('_', ' ')} side call failed ({self.failure}): {fallback}"))
            )
        return events


class _OutOfTime(Exception):
    """The run's max_wall_seconds ran out during a model call."""


async def _stream_turn(client: anthropic.AsyncAnthropic, call: Call) -> AsyncGenerator[str]:
    """Send ``call`` streamed, feed its events to its TurnBuilder, and yield answer text as it arrives."""
    response = await _within(call.deadline, client.messages.create(**call.kwargs, stream=True))
    call.request_id = response.response.headers.get("request-id")
    add = call.builder.add
    async with response:
        if call.deadline is None:  # no wall-time cap: nothing to cut off, no timer per event
            async for raw in response:
                if text := add(raw):
                    yield text
            return
        events = aiter(response)
        while (raw := await _within(call.deadline, anext(events, None))) is not None:
            if text := add(raw):
                yield text


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
