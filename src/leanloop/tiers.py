"""Model tiers: the strong model runs the conversation, a cheap model does side work, and a switch is priced first.

Caches are per model (API-FACTS 1.4, 1.5, 12.5): the first call of a conversation on another model finds none of it
cached and writes the whole prompt at that model's write price, where staying would have read it at the current
model's read price. On a 100K-token prompt that is $0.125 on Haiku 4.5 instead of $0.03 on Sonnet 4.6, so a
"cheap" switch often costs more than it saves. leanloop therefore keeps the conversation on one model and sends
cheap work to side calls with their own short, stable prompt, which never touch the conversation's cache:

(a) a tool result over ``summarize_results_over`` tokens is summarised by the cheap model
    (``result_summary_request``) instead of being cut to its head and tail;
(b) compaction summaries (``leanloop.history``) are written by the cheap model (``compaction_summarizer``);
(c) an optional ``route(step)`` hook may move the conversation to another model. leanloop prices the switch
    (``switch_estimate``) and refuses one that is predicted not to pay off within the calls left, unless the hook
    returns ``Switch(model, force=True)`` (``decide``).

Everything here is pure; the agent makes the calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from leanloop.cachesim import CacheSim, Prompt
from leanloop.errors import ConfigError, UnknownPriceError
from leanloop.history import Compaction
from leanloop.models import context_window
from leanloop.pricing import Pricing, default_pricing
from leanloop.tokens import count_text
from leanloop.tools import DEFAULT_MAX_RESULT_TOKENS, cap_text
from leanloop.usage import Usage

__all__ = [
    "DEFAULT_CHEAP_MODEL",
    "DEFAULT_HORIZON",
    "RESULT_SUMMARY_SYSTEM",
    "Route",
    "RouteDecision",
    "Step",
    "Switch",
    "SwitchEstimate",
    "Tiers",
    "compaction_summarizer",
    "decide",
    "requested_switch",
    "result_summary_request",
    "summarized_result",
    "switch_estimate",
    "wants_summary",
]

DEFAULT_CHEAP_MODEL = "claude-haiku-4-5"
DEFAULT_HORIZON = 100  # calls looked ahead for a break-even when the run has no iteration cap
RESULT_SUMMARY_SYSTEM = (
    "You condense the output of a tool that an AI agent called, so that the agent can read the result in a "
    "fraction of its length. Keep everything the agent may act on: exact names, paths, ids, numbers, error "
    "messages, and the lines that answer what the call was for; say what kind of output it was and how it was "
    "organised. Leave out repetition and boilerplate. Never invent content. Write plain text with no preamble."
)
_SUMMARY_MARGIN_TOKENS = 2000


# ---------------------------------------------------------------------------------------------------------------
# What a model switch costs


@dataclass(frozen=True)
class SwitchEstimate:
    """The next call on the ``current`` model and on the ``candidate``, and when moving pays for itself.

    ``rewrite_tokens`` were cached on the current model and must be written (or sent) again on the candidate.
    ``break_even_calls`` is the number of consecutive calls on the candidate after which the move has cost less in
    all than staying would have (1: the very first call is already cheaper); None when that does not happen within
    ``horizon`` calls.
    """

    current: str
    candidate: str
    current_usd: Decimal
    candidate_usd: Decimal
    rewrite_tokens: int
    break_even_calls: int | None
    horizon: int

    def pays_off_within(self, calls: int) -> bool:
        return self.break_even_calls is not None and self.break_even_calls <= calls

    def describe(self) -> str:
        when = (
            f"it pays off after {self.break_even_calls} call{'s' * (self.break_even_calls != 1)}"
            if self.break_even_calls is not None
            else f"it does not pay off within {self.horizon} calls"
        )
        return (
            f"{self.current} -> {self.candidate} rewrites ~{self.rewrite_tokens:,} cached tokens: the next call costs "
            f"${self.candidate_usd:.4f} instead of ${self.current_usd:.4f}; {when}"
        )


def _later_call_cost(
    prompt: Prompt, sim: CacheSim, pricing: Pricing, growth: int, output: int
) -> Callable[[int], Decimal]:
    """The cost of call ``k`` (k >= 1) after ``prompt`` on the same model: each call adds ``growth`` tokens, reads
    what the previous one cached at its rolling breakpoint and writes the rest (none of it below the minimum)."""
    minimum, tail, cached = sim.min_tokens(prompt.model), prompt.tail_tokens, bool(prompt.breakpoints)

    def cost(k: int) -> Decimal:
        previous, total = prompt.total_tokens + (k - 1) * growth, prompt.total_tokens + k * growth
        read = previous - tail if cached and previous - tail >= minimum else 0
        written = total - tail - read if cached and total - tail >= minimum else 0
        usage = Usage(input_tokens=total - read - written, cache_write_5m_tokens=written, cache_read_tokens=read)
        return pricing.cost(prompt.model, usage.with_output(output)).total

    return cost


def switch_estimate(
    sim: CacheSim,
    current: Prompt,
    candidate: Prompt,
    *,
    start: float,
    pricing: Pricing | None = None,
    output_tokens: int = 500,
    growth_tokens: int = 0,
    horizon: int = DEFAULT_HORIZON,
) -> SwitchEstimate:
    """Price the next call on ``current.model`` and on ``candidate.model``, and find the break-even.

    ``current`` and ``candidate`` are the same request built for each model (``RequestBuilder.build(messages,
    model=...)``: token counts and cacheable minimums differ between models). ``sim`` is the run's cache mirror; it
    is only asked (``plan``), never changed, so a candidate warmed earlier in the run is priced warm. Later calls
    are assumed to add ``growth_tokens`` each (in the current model's tokens) and answer in ``output_tokens``.
    """
    pricing = pricing or default_pricing()
    for model in (current.model, candidate.model):
        if pricing.prices(model) is None:
            raise UnknownPriceError(f"no price known for {model!r}: a switch to or from it cannot be priced")
    if growth_tokens < 0 or output_tokens < 0 or horizon < 1:
        raise ConfigError("switch_estimate: growth_tokens and output_tokens must be >= 0 and horizon >= 1")
    stay = sim.plan(current, start=start).result.usage.with_output(output_tokens)
    move = sim.plan(candidate, start=start).result.usage.with_output(output_tokens)
    stay_usd = pricing.cost(current.model, stay).total
    move_usd = pricing.cost(candidate.model, move).total
    ratio = candidate.total_tokens / current.total_tokens if current.total_tokens else 1.0
    stay_later = _later_call_cost(current, sim, pricing, growth_tokens, output_tokens)
    move_later = _later_call_cost(candidate, sim, pricing, round(growth_tokens * ratio), output_tokens)
    stayed, moved, calls = stay_usd, move_usd, 1
    while moved > stayed and calls < horizon:
        stayed += stay_later(calls)
        moved += move_later(calls)
        calls += 1
    return SwitchEstimate(
        current=current.model,
        candidate=candidate.model,
        current_usd=stay_usd,
        candidate_usd=move_usd,
        rewrite_tokens=max(0, stay.cache_read_tokens - move.cache_read_tokens),
        break_even_calls=calls if moved <= stayed else None,
        horizon=horizon,
    )


# ---------------------------------------------------------------------------------------------------------------
# The routing policy


@dataclass(frozen=True, slots=True)
class Step:
    """What a ``route`` hook sees before a call: the 1-based iteration, the model the conversation is on, the
    prompt's size, the calls the iteration cap leaves (None: no cap), and the transcript (read-only)."""

    iteration: int
    model: str
    prompt_tokens: int
    calls_left: int | None
    messages: Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Switch:
    """A route's answer: move the conversation to ``model``; ``force`` moves it even when it will not pay off."""

    model: str
    force: bool = False


Route = Callable[[Step], "str | Switch | None"]


@dataclass(frozen=True)
class Tiers:
    """Which cheap model does side work, and when.

    ``summarize_results_over``: a tool result over this many tokens is summarised by ``cheap`` into at most
    ``result_summary_tokens`` (None: results are cut to head + tail as without tiers). ``summarize_compactions``:
    compactions that drop turns leave a summary by ``cheap`` instead of a bare note (unless ``Compaction`` names
    its own ``summarize_with``). ``route``: called before each call; returns the model the conversation should
    move to (a model id or a ``Switch``), or None to stay. A move lasts until a route moves it again.
    """

    cheap: str = DEFAULT_CHEAP_MODEL
    summarize_results_over: int | None = DEFAULT_MAX_RESULT_TOKENS
    result_summary_tokens: int = 800
    summarize_compactions: bool = True
    route: Route | None = None

    def __post_init__(self) -> None:
        cheap = cast(object, self.cheap)
        if not isinstance(cheap, str) or not cheap.strip():
            raise ConfigError(f"Tiers(cheap={cheap!r}): a model id, e.g. {DEFAULT_CHEAP_MODEL!r}")
        for name in ("summarize_results_over", "result_summary_tokens"):
            value = cast(object, getattr(self, name))
            if value is None and name == "summarize_results_over":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"Tiers({name}={value!r}): a whole number of tokens, at least 1")
        route = cast(object, self.route)
        if route is not None and not callable(route):
            raise ConfigError(f"Tiers(route={route!r}): a function of a Step returning a model id, a Switch or None")


def compaction_summarizer(compaction: Compaction, tiers: Tiers | None) -> str | None:
    """The model that summarises what a compaction drops: the policy's own, else the cheap tier's, else none."""
    if compaction.summarize_with is not None:
        return compaction.summarize_with
    return tiers.cheap if tiers is not None and tiers.summarize_compactions else None


@dataclass(frozen=True)
class RouteDecision:
    """The model the next call uses, and why. ``notice`` is None when nothing worth saying happened."""

    model: str
    requested: str | None
    switched: bool
    forced: bool
    estimate: SwitchEstimate | None
    within: int | None = None  # the calls the switch had to pay off in

    @property
    def refused(self) -> bool:
        return self.requested is not None and not self.switched

    @property
    def notice(self) -> str | None:
        if self.requested is None or self.estimate is None:
            return None
        if self.refused:
            return f"model switch refused (it has to pay off within {self.within} calls): {self.estimate.describe()}"
        return f"model switch{' (forced)' if self.forced else ''}: {self.estimate.describe()}"


def requested_switch(answer: object) -> Switch | None:
    """A route's answer as a ``Switch`` (or None to stay). Anything else is a ``ConfigError`` naming it."""
    if answer is None or isinstance(answer, Switch):
        return answer
    if isinstance(answer, str) and answer.strip():
        return Switch(answer)
    raise ConfigError(f"Tiers(route=...) returned {answer!r}: return a model id, a Switch(model) or None")


def decide(answer: object, step: Step, estimate: SwitchEstimate | None) -> RouteDecision:
    """Carry out a route's ``answer`` for ``step``, given the ``estimate`` of that switch (None if there is none to
    price: no switch asked, or the same model). A switch that does not pay off within the calls left (within the
    estimate's horizon when the run has no cap) is refused unless forced."""
    wanted = requested_switch(answer)
    if wanted is None or wanted.model == step.model:
        return RouteDecision(step.model, None, False, False, None)
    if estimate is None or estimate.candidate != wanted.model or estimate.current != step.model:
        raise ConfigError(f"decide: the estimate must price {step.model} -> {wanted.model}")
    within = step.calls_left if step.calls_left is not None else estimate.horizon
    if wanted.force or estimate.pays_off_within(within):
        return RouteDecision(wanted.model, wanted.model, True, wanted.force, estimate, within)
    return RouteDecision(step.model, wanted.model, False, False, estimate, within)


# ---------------------------------------------------------------------------------------------------------------
# Summarising an oversized tool result on the cheap model


def wants_summary(tiers: Tiers | None, tokens: int) -> bool:
    """Is a tool result of ``tokens`` tokens summarised by the cheap model rather than cut?"""
    return tiers is not None and tiers.summarize_results_over is not None and tokens > tiers.summarize_results_over


def result_summary_request(
    tiers: Tiers, *, tool: str, arguments: Mapping[str, Any], text: str, task: str | None = None
) -> dict[str, Any]:
    """The kwargs of ``client.messages.create`` for the side call that condenses one tool result.

    The system prompt never changes and the call has no tools: it shares nothing with the conversation, so it
    cannot disturb its cache. The output is capped to what fits the cheap model's window (head and tail kept).
    """
    budget = context_window(tiers.cheap) - tiers.result_summary_tokens - _SUMMARY_MARGIN_TOKENS
    shown, _ = cap_text(text, max(1, budget - count_text(task or "")))
    call = json.dumps(dict(arguments), ensure_ascii=False, sort_keys=True)
    words = max(50, int(tiers.result_summary_tokens * 0.6))
    context = f"<task>\n{task}\n</task>\n\n" if task else ""
    prompt = (
        f"{context}<call>{tool} {call}</call>\n\n<output>\n{shown}\n</output>\n\n"
        f"Condense this output for the agent, in at most {words} words."
    )
    return {
        "model": tiers.cheap,
        "max_tokens": tiers.result_summary_tokens,
        "system": RESULT_SUMMARY_SYSTEM,
        "messages": [{"role": "user", "content": prompt}],
    }


def summarized_result(summary: str, *, tool: str, tokens: int, model: str) -> str:
    """The tool_result content the conversation gets instead of the full output."""
    return (
        f"[{tool} returned about {tokens:,} tokens, condensed by {model}. Call it again with a narrower request if "
        f"you need the exact text.]\n\n{summary.strip()}"
    )
