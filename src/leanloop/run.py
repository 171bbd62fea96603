"""One run of an Agent: its state, and the decisions the loop asks of it (the next request, whether to compact,
where a route sends the call, the limits, what a finished turn asks for, how a side call is budgeted and recorded).
Decisions are plain methods over the state; the only I/O is the trace file. ``leanloop.agent`` makes the calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import operator
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

import anthropic

from leanloop.cachesim import CacheSim, Plan, Prompt, prompt_from_request
from leanloop.errors import ConfigError
from leanloop.events import Compacted, RunResult, RunState, Stop, StopReason
from leanloop.explain import CacheMiss
from leanloop.history import Compaction, Cut, Sizes, apply, plan
from leanloop.limits import TOKEN_MARGIN, CallEstimate, Go, Halt, Spend, Wait, estimate_call, most_prompt_tokens
from leanloop.models import max_output_tokens
from leanloop.pricing import Cost
from leanloop.redaction import redact_text
from leanloop.request import Built, RequestBuilder
from leanloop.tiers import (
    Step,
    compaction_summarizer,
    decide,
    requested_switch,
    result_summary_request,
    summarized_result,
    switch_estimate,
    wants_summary,
)
from leanloop.tokens import count_text
from leanloop.tools import ToolOutcome, ToolUse, cap_text
from leanloop.trace import BlockPrint, CallRecord, ToolCall, TraceWriter
from leanloop.transcript import answer_pending_tools, append_user, check_start, merge_assistant
from leanloop.turn import (
    Compact,
    Finish,
    NextStep,
    Nudge,
    Resend,
    Retry,
    RunTools,
    StopRun,
    Turn,
    TurnBuilder,
    next_step,
)
from leanloop.usage import Usage
from leanloop.verify import SentCall, check_after_cut, check_next_call, check_shared_prefix

if TYPE_CHECKING:
    from leanloop.agent import Agent

__all__ = ["Call", "Memory", "Run"]

logger = logging.getLogger("leanloop")

_SIDE_RUN = "/side"  # side calls' run id suffix: their own prompt, so reports keep them apart from the conversation
_TASK_CONTEXT_TOKENS = 1000  # how much of the task a tool-result summary request carries
_NUDGE = "Please continue."


@dataclass
class Memory:
    """What an Agent's runs pass on to the next: the latest call (a new run's first call is checked against its
    tools + system prefix), the largest real/estimated token ratios seen (on whole prompts, for sizing them; on
    content the budget had to estimate, for its margin), the context windows the API reported, the tools + system
    blocks its requests were built with (a run does not serialise, hash and count them again), and the warnings
    already logged."""

    last_call: SentCall | None = None
    token_scale: float | None = None
    token_margin: float = TOKEN_MARGIN
    windows: dict[str, int] = field(default_factory=dict[str, int])  # context windows the API reported
    heads: dict[str, Any] = field(default_factory=dict[str, Any])  # the tools + system blocks built, by model
    logged: set[str] = field(default_factory=set[str])

    def warn(self, message: str) -> None:
        """Log a warning once per Agent (1,000 runs with the same volatile prompt are one log line, not 1,000).
        Numbers are ignored when comparing: a prompt's size or a timestamp changes from run to run."""
        key = re.sub(r"\d[\d,.:]*", "#", message)
        if key not in self.logged:
            self.logged.add(key)
            logger.warning("leanloop: %s", message)


def _secrets_of(client: anthropic.AsyncAnthropic) -> list[str]:
    """The credentials a client was given (a gateway's key need not look like an Anthropic key): the trace redacts
    them wherever they appear."""
    values = (getattr(client, "api_key", None), getattr(client, "auth_token", None))
    return [value for value in values if isinstance(value, str) and value]


@dataclass
class Call:
    """A model call in progress: the conversation's (``built`` is its request), or a side call (``built`` None)."""

    kwargs: dict[str, Any]
    go: Go
    iteration: int
    deadline: float | None
    builder: TurnBuilder
    started_wall: float
    started: float
    built: Built | None = None
    request_id: str | None = None


@dataclass
class _Next:
    """What is known about the next conversation call before it is made."""

    built: Built | None = None  # its request, once built
    halt: StopRun | None = None  # it cannot be made: the history no longer fits
    compact: bool = False  # the API said the prompt did not fit: compact whatever the estimate says
    rejected: tuple[int, int] | None = None  # a 400 "prompt is too long" for it: (its tokens, the maximum)
    rewrite: str | None = None  # it rewrites the cache on purpose: "compaction" or "model switch"
    notes: dict[str, Any] = field(default_factory=dict[str, Any])  # for its record: a compaction, a model switch
    notice: str | None = None  # for the user, before it: why no compaction is made although it is due


def _check_priced(agent: Agent, policy: Compaction | None) -> None:
    """A USD budget needs a price for every model the run may call: the agent's and its side calls' models."""
    condenses = agent.tiers is not None and agent.tiers.summarize_results_over is not None
    side = {policy and policy.summarize_with, agent.tiers.cheap if agent.tiers and condenses else None}
    for model in sorted({agent.model, *(m for m in side if m)}):
        if agent.pricing.prices(model) is None:
            raise ConfigError(f"Budget(usd=...) needs a price for model {model!r}: add it to a price override file")


class Run:
    """The state of one run of an Agent, and the decisions the loop asks of it."""

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
        self.policy = agent.compaction and replace(
            agent.compaction, summarize_with=compaction_summarizer(agent.compaction, agent.tiers)
        )
        self.tiers = agent.tiers
        if spend.budget.usd is not None:
            _check_priced(agent, self.policy)
        self.agent = agent
        self.memory = memory
        self.spend = spend
        self.client = agent.client
        self.model = (resume.model if resume else None) or agent.model  # a routed conversation stays where it went
        self.run_id = resume.run_id if resume else uuid.uuid4().hex[:12]
        self.messages: list[Mapping[str, Any]] = list(resume.messages if resume else history or [])
        self.first_iteration = resume.iterations if resume else 0
        # Each run counts its own failures: a fresh guard, or a copy of the resumed run's (a state may be resumed twice)
        fresh = agent.loop_guard.fresh() if agent.loop_guard else None
        self.guard = resume.guard.copy() if resume and resume.guard else fresh
        if task is not None:
            append_user(self.messages, task)  # after the tool results of a resumed run: one user message
        self.builders: dict[str, RequestBuilder] = {}  # one per model: each keeps what it computed for the history
        self.next = _Next()
        self.forced = False  # the latest cut was forced: if the resend does not fit either, stop
        # the latest cut could not get under the trigger (the newest turns alone are bigger), and the run said it waits
        self.cut_short = self.said_waiting = False
        self.windows = {**memory.windows, **(resume.windows if resume else {})}  # as the API reported them
        self.task_text: str | None = None  # the start of the task, for side calls that need the context
        self.ledger: list[CallRecord] = []  # every call in order, side calls included
        self.last_main = -1  # where the latest conversation call is in the ledger
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
        self.token_margin = max(memory.token_margin, (resume.token_margin if resume else None) or TOKEN_MARGIN)
        self.print_blocks: list[object] = []
        self.prints: list[BlockPrint] = []
        self.started = time.perf_counter()
        self.writer = self._open_trace(resumed=resume is not None)

    def _open_trace(self, *, resumed: bool) -> TraceWriter | None:
        if self.agent.trace is None:
            return None
        writer = TraceWriter(self.agent.trace, secrets=_secrets_of(self.client))
        writer.write_event(
            "run_start",
            run_id=self.run_id,
            model=self.model,
            started_at=time.time(),
            budget=asdict(self.spend.budget),
            resumed=resumed,
        )
        return writer

    @property
    def iteration(self) -> int:
        """The number of the call in progress, or of the last call once it is recorded (1-based, across resumes)."""
        return self.first_iteration + len(self.records) + (0 if self.turn_recorded else 1)

    @property
    def next_iteration(self) -> int:
        """The number the next conversation call will have."""
        return self.first_iteration + len(self.records) + 1

    def redacted(self, text: str) -> str:
        """``text`` without a credential (the client's own, or one by its shape): for what is printed and logged,
        which quotes tool errors, API errors and prompts."""
        return redact_text(text, _secrets_of(self.client))

    def note(self, message: str) -> str:
        """Keep a notice for ``RunResult.notices``, redacted; returns it as kept (to yield or log)."""
        message = self.redacted(message)
        self.notices.append(message)
        return message

    def lint(self) -> list[str]:
        """Volatile content in the cached prefix (system prompt, tool definitions), found before the first call."""
        if not self.agent.cache.enabled or self.records:
            return []
        found = [self.note(message) for message in self.agent.lint_findings()]
        for message in found:
            self.memory.warn(message)
        return found

    def _builder(self, model: str) -> RequestBuilder:
        if model not in self.builders:
            agent = self.agent
            tools = list(agent.tools.values())
            self.builders[model] = RequestBuilder(
                model=model,
                system=agent.system,
                tools=tools,
                cache=agent.cache,
                params=agent.params,
                heads=self.memory.heads,
            )
        return self.builders[model]

    def next_request(self) -> Built:
        """Build the next request from the transcript, for the model the conversation is on."""
        max_tokens = self.retry_max_tokens or self.agent.max_tokens
        self.next.built = self._builder(self.model).build(self.messages, max_tokens=max_tokens, model=self.model)
        return self.next.built

    def compaction_due(self) -> Cut | None:
        """The cut to make before the next call: its prompt is over the trigger, or the API said it did not fit.
        Checking costs nothing until the prompt is near the window: only then is the history measured."""
        built, policy = self.next.built, self.policy
        forced, self.next.compact = self.next.compact, False
        if built is None or policy is None:
            return None
        max_tokens, window, scale = built.kwargs["max_tokens"], self.windows.get(self.model), self.token_scale or 1.0
        if not forced and built.plain.total_tokens * scale <= policy.trigger_for(self.model, max_tokens, window=window):
            return None
        sizes = Sizes.from_prompt(built.plain, messages=len(self.messages), scale=scale)
        cut = plan(self.messages, sizes, policy, model=self.model, max_tokens=max_tokens, force=forced, window=window)
        if cut is not None and not forced and cut.tokens_after > cut.trigger_tokens:
            # The task and the newest turns alone are over the trigger: the next call would cut again, and every call
            # after it. One cut makes what room it can; then the run waits for the API to say the prompt does not fit.
            if self.cut_short:
                self._say_waiting(cut, policy)
                return None
            self.cut_short = True
        elif cut is not None:
            self.cut_short = False
        self.forced = forced and cut is not None
        if cut is None and forced:
            self.next.halt = StopRun(
                "error",
                f"the conversation no longer fits {self.model}'s context window, and compaction cannot cut it: the "
                f"task and the newest {policy.keep_recent_turns} turns alone are about {sizes.total:,} tokens",
            )
        return cut

    def _say_waiting(self, cut: Cut, policy: Compaction) -> None:
        if self.said_waiting:
            return
        self.said_waiting = True
        message = (
            f"history compaction waits: the task and the newest {policy.keep_recent_turns} turns alone are about "
            f"{cut.tokens_after:,} tokens, above the {cut.trigger_tokens:,}-token trigger, and a cut that cannot get "
            "under it would be made again on every call (each one rewriting the conversation to the cache); the next "
            "cut comes when one can get under the trigger, or when the API says the prompt does not fit"
        )
        self.next.notice = self.note(message)
        logger.info("leanloop: %s", message)

    def compact(self, cut: Cut, summary: str | None) -> Compacted:
        """Carry out ``cut``: the transcript, the next request rebuilt, its record's note, the trace line. The
        next call rewrites the conversation to the cache, and verification expects that."""
        self.messages = apply(self.messages, cut, summary=summary)
        self.next_request()
        summarized_by = cut.summarize_with if summary is not None else None
        facts = {
            "tokens_before": cut.tokens_before,
            "tokens_after": cut.tokens_after,
            "cleared": len(cut.cleared),
            "dropped_turns": cut.dropped_turns,
            "rewrite_tokens": cut.rewrite_tokens,
            "summarized_by": summarized_by,
            "forced": self.forced,
        }
        self.next.notes["compacted"] = facts
        self.next.rewrite = "compaction"
        message = self.note(("the API said the prompt did not fit; " if self.forced else "") + cut.describe())
        logger.info("leanloop: %s", message)
        if self.writer:
            self.writer.write_event("compaction", run_id=self.run_id, iteration=self.next_iteration, **facts)
        return Compacted(self.next_iteration, cut, self.forced, summarized_by, message)

    def route(self) -> str | None:
        """Ask the route hook where the next call goes; price a switch and make it only if it pays off in time
        (or is forced). Returns the notice saying what was decided, if anything was asked."""
        route, built = self.tiers and self.tiers.route, self.next.built
        if route is None or built is None:
            return None
        cap = self.spend.budget.max_iterations
        calls_left = None if cap is None else max(0, cap - self.spend.iterations)
        tokens = math.ceil(built.plain.total_tokens * (self.token_scale or 1.0))
        step = Step(self.next_iteration, self.model, tokens, calls_left, tuple(self.messages))
        answer = route(step)
        wanted = requested_switch(answer)
        if wanted is None or wanted.model == self.model:
            return None
        unpriced = [m for m in (self.model, wanted.model) if self.agent.pricing.prices(m) is None]
        if unpriced:
            return f"model switch to {wanted.model} refused: no price known for {unpriced[0]!r}, so it cannot be priced"
        candidate = self._builder(wanted.model).build(
            self.messages, max_tokens=built.kwargs["max_tokens"], model=wanted.model
        )
        pricing, now = self.agent.pricing, time.monotonic()
        estimate = switch_estimate(
            self.mirror, built.prompt, candidate.prompt, start=now, pricing=pricing, **self._pace()
        )
        decision = decide(answer, step, estimate)
        if decision.switched:
            self.model, self.next.built, self.next.rewrite = decision.model, candidate, "model switch"
            self.next.notes["model_switch"] = {
                "from": estimate.current,
                "forced": decision.forced,
                "rewrite_tokens": estimate.rewrite_tokens,
                "break_even_calls": estimate.break_even_calls,
            }
        return decision.notice

    def _pace(self) -> dict[str, int]:
        """How much each call has answered and added to the prompt so far, on average (for pricing a switch)."""
        calls = self.records
        if not calls:
            return {"output_tokens": 500, "growth_tokens": 0}
        output = sum(c.usage.output_tokens for c in calls) // len(calls)
        growth = (calls[-1].usage.prompt_tokens - calls[0].usage.prompt_tokens) // max(1, len(calls) - 1)
        return {"output_tokens": output, "growth_tokens": max(0, growth)}

    async def _decide(self, check: Callable[[], Go | Halt | Wait]) -> Go | Halt:
        """``check``'s answer; while other runs' calls in flight on a shared budget hold the money, wait for one to
        settle and check again."""
        decision = check()
        while isinstance(decision, Wait):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.spend.settled(decision.since), self.spend.remaining_wall_s())
            decision = check()
        return decision

    async def plan_call(self) -> tuple[Built, Go] | StopRun:
        if self.next.halt is not None:
            return self.next.halt
        built = self.next.built
        assert built is not None
        max_tokens = built.kwargs["max_tokens"]
        estimate = functools.partial(self._estimate, built, max_tokens)
        decision = await self._decide(lambda: self.spend.check_before_call(estimate()))
        if isinstance(decision, Halt):
            reason = "max_iterations" if decision.cap == "max_iterations" else "budget"
            detail = decision.reason if reason == decision.cap else f"{decision.cap}: {decision.reason}"
            return StopRun(reason, detail, decision.cap)
        if decision.max_tokens != max_tokens:
            built = replace(built, kwargs={**built.kwargs, "max_tokens": decision.max_tokens})
        self.go = decision
        self.turn_recorded = False
        for notice in built.notices:
            self.memory.warn(self.note(notice))
        return built, decision

    def _estimate(self, built: Built, max_tokens: int) -> CallEstimate:
        prompt, previous = built.prompt, self.previous
        self.cache_plan = self.mirror.plan(prompt, start=time.monotonic())
        sent = (previous.prompt, previous.usage.prompt_tokens) if previous is not None else None
        tokens = most_prompt_tokens(prompt, margin=self.token_margin, sent=sent)
        if self.spend.budget.usd is None:  # nothing to price it against
            return CallEstimate.unpriced(tokens, max_tokens)
        prices = self.agent.pricing.prices(
            prompt.model, prompt_tokens=tokens, speed=self.speed, inference_geo=self.inference_geo
        )
        if prices is None:
            return CallEstimate.unpriced(tokens, max_tokens)
        return estimate_call(
            tokens,
            self.cache_plan.result.usage,
            prices,
            max_tokens=max_tokens,
            longest_ttl=max((ttl for _, ttl in built.breakpoints), key=("5m", "1h").index, default=None),
        )

    async def reserve_side(self, request: Mapping[str, Any]) -> Go | str:
        """Check a side call against the budget (its whole prompt is new: nothing of it is cached) and reserve its
        worst case; or say why it cannot be made."""
        model, max_tokens = str(request["model"]), int(request["max_tokens"])
        prompt = prompt_from_request(request)
        most = most_prompt_tokens(prompt, margin=self.token_margin)  # all of it is new to the cheap model
        prices = self.agent.pricing.prices(model, prompt_tokens=most)
        estimate = (
            CallEstimate.unpriced(most, max_tokens)
            if prices is None
            else estimate_call(
                most, Usage(input_tokens=prompt.total_tokens), prices, max_tokens=max_tokens, longest_ttl=None
            )
        )
        decision = await self._decide(lambda: self.spend.check_before_call(estimate, side_call=True))
        if isinstance(decision, Halt):
            return f"the budget has no room for it: {decision.cap}: {decision.reason}"
        return decision

    def record_side(self, kind: str, call: Call, *, failed: bool) -> CallRecord | None:
        """Settle a side call: its ledger line (in the cost, not an iteration); None if it was never billed."""
        turn = call.builder.finish()
        if turn.usage is None:
            self.spend.release(call.go)
            return None
        model = str(call.kwargs["model"])
        cost = self.agent.pricing.cost(model, turn.usage)
        self.spend.record_call(call.go, turn.usage, cost)
        record = CallRecord(
            model=model,
            usage=turn.usage,
            cost=cost,
            iteration=call.iteration,
            run_id=self.run_id + _SIDE_RUN,
            started_at=call.started_wall,
            ttft_s=turn.ttft_s,
            latency_s=time.perf_counter() - call.started,
            stop_reason="error" if failed else turn.stop_reason,
            message_id=turn.message_id,
            request_id=call.request_id,
            notes={"side_call": kind},
        )
        self.ledger.append(record)
        if self.writer:
            self.writer.write_call(record)
        return record

    def result_summary_request(self, outcome: ToolOutcome) -> dict[str, Any] | None:
        """The side call that condenses this tool result, if it is text over the tiers' threshold."""
        tiers = self.tiers
        if tiers is None or tiers.summarize_results_over is None or outcome.is_error:
            return None
        if not isinstance(outcome.content, str):
            return None  # content blocks are sent as they are
        text = outcome.full_text or outcome.content
        if len(text) <= tiers.summarize_results_over:  # a token is at least one character: no need to count
            return None
        if not wants_summary(tiers, count_text(text)):
            return None
        if self.task_text is None:
            first = self.messages[0]["content"] if self.messages else ""
            task = first if isinstance(first, str) else " ".join(str(b.get("text", "")) for b in first)
            self.task_text = cap_text(task, _TASK_CONTEXT_TOKENS)[0]
        name, arguments = outcome.use.name, outcome.use.input
        return result_summary_request(tiers, tool=name, arguments=arguments, text=text, task=self.task_text)

    def condensed(self, outcome: ToolOutcome, summary: str | None) -> ToolOutcome:
        """The outcome the model sees: the cheap model's summary (the full output goes to the trace), or as it was."""
        if summary is None or self.tiers is None:
            return outcome
        full = outcome.full_text or str(outcome.content)
        content = summarized_result(summary, tool=outcome.use.name, tokens=count_text(full), model=self.tiers.cheap)
        return replace(outcome, content=content, full_text=full)

    def start_call(self, kwargs: dict[str, Any], go: Go, iteration: int, built: Built | None = None) -> Call:
        left = self.spend.remaining_wall_s()
        deadline = None if left is None else asyncio.get_running_loop().time() + left
        started = time.perf_counter()
        return Call(kwargs, go, iteration, deadline, TurnBuilder(started), time.time(), started, built)

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

    def reject(self, call: Call, tokens: int, maximum: int) -> None:
        """The API refused the prompt as over the context window (not billed). Believe its count and its window:
        the next cut is planned with them."""
        self.spend.release(call.go)
        self.cache_plan = None
        self.windows[self.model] = self.memory.windows[self.model] = maximum
        estimated = call.built.plain.total_tokens if call.built else 0
        self._calibrate(tokens, estimated)
        self._widen_margin(tokens, estimated)
        self.next.rejected = (tokens, maximum)

    def _calibrate(self, real: int, estimated: int) -> None:
        """Keep the largest ratio of the API's token count to the estimate seen: never assume fewer tokens."""
        if real and estimated:
            ratio = max(1.0, real / estimated)
            self.token_scale = max(self.token_scale or 1.0, ratio)
            self.memory.token_scale = max(self.memory.token_scale or 1.0, ratio)

    def _widen_margin(self, real: int, estimated: int) -> None:
        """Content the API counted at more than the budget's margin times its estimate widens the margin."""
        if real > 0 and estimated > 0 and real > estimated * self.token_margin:
            self.token_margin = max(self.token_margin, real / estimated)
            self.memory.token_margin = max(self.memory.token_margin, self.token_margin)

    def _learn_counts(self, prompt: Prompt, usage: Usage) -> None:
        """What this call's usage teaches about the estimator: the whole prompt's ratio (for sizing prompts) and,
        for the budget's margin, the ratio on the content that had to be estimated (what the previous call of the
        conversation had not sent; all of it when this prompt does not extend that call's)."""
        self._calibrate(usage.prompt_tokens, prompt.total_tokens)
        previous = self.previous
        if previous is not None and previous.usage.prompt_tokens > 0 and prompt.extends(previous.prompt):
            real = usage.prompt_tokens - previous.usage.prompt_tokens
            self._widen_margin(real, prompt.total_tokens - previous.prompt.total_tokens)
        else:
            self._widen_margin(usage.prompt_tokens, prompt.total_tokens)

    def _prefix_prints(self, built: Built) -> tuple[BlockPrint, ...]:
        """One BlockPrint per block, re-using those of blocks shared (by identity) with the previous request."""
        blocks, known = built.plain.blocks, len(self.print_blocks)
        if known and known <= len(blocks) and blocks[known - 1] is self.print_blocks[-1]:
            kept = known  # a PromptBuilder rebuilds every block after the first change: the rest are the same too
        else:
            flags = list(map(operator.is_, self.print_blocks, blocks))
            kept = flags.index(False) if False in flags else len(flags)
        del self.print_blocks[kept:], self.prints[kept:]
        self.print_blocks += blocks[kept:]
        self.prints += [BlockPrint(b.path, b.fingerprint.hex()[:16], b.tokens) for b in blocks[kept:]]
        return tuple(self.prints)

    def _record(self, call: Call, turn: Turn, *, failed: bool) -> tuple[CallRecord, CacheMiss | None]:
        assert call.built is not None
        usage = turn.usage or Usage()
        prompt = call.built.prompt
        cost = self.agent.pricing.cost(prompt.model, usage)
        self.spend.record_call(call.go, usage, cost)
        latency = time.perf_counter() - call.started
        plan = self.cache_plan or self.mirror.plan(prompt, start=time.monotonic() - latency)
        predicted = self.mirror.apply(plan).usage
        self.cache_plan = None
        self._learn_counts(prompt, usage)
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
            notes={**self.next.notes, **({"cache_miss": miss.reason} if miss else {})},
        )
        self.next.notes = {}
        self.records.append(record)
        self.last_main = len(self.ledger)
        self.ledger.append(record)
        self.turn_recorded = True
        if self.writer:
            self.writer.write_call(record)
        return record, miss

    def _verify(self, sent: SentCall) -> CacheMiss | None:
        """Did this call read what was cached before it (by this conversation, or by the agent's previous run)?"""
        previous, shared, self.previous, self.shared = self.previous, self.shared, sent, None
        rewrite, self.next.rewrite = self.next.rewrite, None
        self.memory.last_call = sent
        if not self.agent.cache.enabled or rewrite == "model switch":  # a new model has none of it cached
            return None
        if previous is not None and rewrite == "compaction":  # only the tools + system prefix is still cached
            miss = check_after_cut(previous, sent)
        elif previous is not None:
            miss = check_next_call(previous, sent, ttl=self.agent.cache.effective_ttl())
        elif shared is not None:
            miss = check_shared_prefix(shared, sent)
        else:
            return None
        if miss is None:
            return None
        self.misses.append(miss)
        lost, reason = miss.lost_tokens, self.redacted(miss.reason)  # it quotes the changed text: a rotating token?
        logger.warning("leanloop: cache miss at iteration %d (%d tokens not read): %s", self.iteration, lost, reason)
        return miss

    def after_turn(self) -> NextStep:
        """Decide what the finished turn asks for, and update the transcript accordingly."""
        if self.next.rejected is not None:
            return self._rejected()
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
            model_max_tokens=max_output_tokens(self.model),
            nudged=self.nudged,
            can_compact=self.policy is not None and not self.forced,
        )
        self.retry_max_tokens = step.max_tokens if isinstance(step, Retry) else None
        self.pauses = self.pauses + 1 if isinstance(step, Resend) else 0
        self.nudged = isinstance(step, Nudge)
        self.next.compact, self.forced = isinstance(step, Compact), False
        if isinstance(step, Nudge):  # an empty turn is not sent back (that would not help): ask once to go on
            append_user(self.messages, [{"type": "text", "text": _NUDGE}])
        elif turn.stop_reason != "max_tokens" and not isinstance(step, Compact):
            # a turn cut by max_tokens or the window is dropped (resume, or the resend after the cut, asks again);
            # its cost stays
            content = turn.without_truncated_tools()
            if content:
                merge_assistant(self.messages, content)  # a paused turn's continuation joins it
        if isinstance(step, Finish | StopRun):
            self.answer = turn.text
        return step

    def _rejected(self) -> NextStep:
        """The API refused the prompt as too long: compact and send it again, once."""
        assert self.next.rejected is not None
        (tokens, maximum), self.next.rejected = self.next.rejected, None
        if self.policy is not None and not self.forced:
            self.next.compact = True
            return Compact()
        why = "compaction is off (Agent(compaction=None))" if self.policy is None else "even after a compaction"
        detail = f"the prompt ({tokens:,} tokens) does not fit {self.model}'s context window ({maximum:,}): {why}"
        return StopRun("error", detail)

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
        calls = tuple(ToolCall.of(o, _secrets_of(self.client)) for o in outcomes)
        if self.records:
            self.records[-1] = self.ledger[self.last_main] = self.records[-1].with_tool_calls(calls)
        if self.writer:
            self.writer.write_event(
                "tools",
                run_id=self.run_id,
                iteration=self.records[-1].iteration if self.records else self.iteration,
                tool_calls=[c.to_dict() for c in calls],
            )

    def out_of_time(self) -> StopRun:
        cap = self.spend.budget.max_wall_seconds
        detail = f"max_wall_seconds: the model call was cut off when the run reached max_wall_seconds={cap:g}"
        return StopRun("budget", detail, "max_wall_seconds")

    def close(self, stop: StopRun) -> RunResult:
        stop = replace(stop, detail=self.redacted(stop.detail))  # it quotes tool errors, and it is printed
        answer_pending_tools(self.messages, f"not executed: the run stopped ({stop.reason}: {stop.detail})")
        usage = sum((r.usage for r in self.ledger), Usage())
        cost = sum((r.cost for r in self.ledger), Cost())
        state = RunState(
            self.run_id,
            tuple(self.messages),
            self.first_iteration + len(self.records),
            self.guard,
            finished=stop.reason in ("end_turn", "refused"),
            last_call=self.previous,
            token_scale=self.token_scale,
            token_margin=self.token_margin,
            model=self.model if self.model != self.agent.model else None,
            windows=dict(self.windows),
        )
        result = RunResult(
            answer=self.answer,
            stop=Stop(cast(StopReason, stop.reason), stop.detail, stop.cap),
            messages=list(self.messages),
            calls=list(self.ledger),
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
                side_calls=len(self.ledger) - len(self.records),
                usage=usage.to_dict(),
                cost=cost.to_dict(),
                wall_s=result.wall_s,
            )
            self.writer.close()
            self.writer = None
        return result
