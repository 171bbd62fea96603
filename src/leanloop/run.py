"""One run of an Agent: its state, and the decisions the loop asks of it (the next request, the limits, what a
finished turn asks for). Decisions are plain methods over the state; the only I/O is the trace file.
``leanloop.agent`` makes the calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import operator
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from leanloop.cachesim import CacheSim, Plan
from leanloop.errors import ConfigError
from leanloop.events import RunResult, RunState, Stop, StopReason
from leanloop.explain import CacheMiss
from leanloop.limits import CallEstimate, Go, Halt, Spend, Wait, estimate_call
from leanloop.pricing import Cost
from leanloop.request import Built, RequestBuilder
from leanloop.tools import ToolOutcome, ToolUse
from leanloop.trace import BlockPrint, CallRecord, ToolCall, TraceWriter
from leanloop.transcript import answer_pending_tools, append_user, check_start, merge_assistant
from leanloop.turn import Finish, NextStep, Nudge, Resend, Retry, RunTools, StopRun, Turn, TurnBuilder, next_step
from leanloop.usage import Usage
from leanloop.verify import SentCall, check_next_call, check_shared_prefix

if TYPE_CHECKING:
    from leanloop.agent import Agent

__all__ = ["Call", "Memory", "Run"]

logger = logging.getLogger("leanloop")

_MODEL_MAX_OUTPUT = 64_000
# Until a call has shown how the API counts this agent's prompts, assume up to 30 % more tokens than estimated: the
# estimator is within 10 % on ordinary text, and tokenizers of different Claude generations differ by about 30 %.
_FIRST_CALL_TOKEN_MARGIN = 1.3
_NUDGE = "Please continue."


@dataclass
class Memory:
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


@dataclass
class Call:
    """A model call in progress."""

    built: Built
    go: Go
    iteration: int
    deadline: float | None
    builder: TurnBuilder
    started_wall: float
    started: float
    request_id: str | None = None


class Run:
    def __init__(
        self,
        agent: Agent,
        memory: Memory,
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

    def start_call(self, built: Built, go: Go) -> Call:
        left = self.spend.remaining_wall_s()
        deadline = None if left is None else asyncio.get_running_loop().time() + left
        started = time.perf_counter()
        return Call(built, go, self.iteration, deadline, TurnBuilder(started), time.time(), started)

    def finish_call(self, call: Call) -> tuple[CallRecord, CacheMiss | None]:
        """Record a call whose response ended normally."""
        self.turn = call.builder.finish()
        return self._record(call, self.turn, failed=False)

    def fail_call(self, call: Call) -> None:
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

    def _record(self, call: Call, turn: Turn, *, failed: bool) -> tuple[CallRecord, CacheMiss | None]:
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
