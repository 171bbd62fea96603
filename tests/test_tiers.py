"""tiers: what a model switch costs (hand-computed from the published prices), when leanloop refuses one, and the
side calls of the cheap model."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from leanloop.cachesim import CacheSim, Prompt, UnknownMinimumWarning, prompt_from_request
from leanloop.errors import ConfigError, UnknownPriceError
from leanloop.history import Compaction
from leanloop.request import CachePolicy, RequestBuilder
from leanloop.tiers import (
    RESULT_SUMMARY_SYSTEM,
    Step,
    Switch,
    SwitchEstimate,
    Tiers,
    compaction_summarizer,
    decide,
    result_summary_request,
    summarized_result,
    switch_estimate,
    wants_summary,
)

SONNET, HAIKU, OPUS = "claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6"
MTOK = Decimal(1_000_000)


def transcript(turns: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Why does checkout fail?"}]
    for n in range(turns):
        messages.append(
            {"role": "assistant", "content": [{"type": "tool_use", "id": f"t{n}", "name": "read", "input": {}}]}
        )
        messages.append(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{n}", "content": "log " * 2000}]}
        )
    return messages


def prompts(turns: int, current: str, candidate: str) -> tuple[Prompt, Prompt]:
    builder = RequestBuilder(model=current, system="You triage logs. " * 300, tools=[], cache=CachePolicy())
    messages = transcript(turns)
    return builder.build(messages, max_tokens=1024).prompt, builder.build(
        messages, max_tokens=1024, model=candidate
    ).prompt


def warm(current: Prompt) -> CacheSim:
    sim = CacheSim()
    sim.request(current, start=0.0)
    return sim


def test_the_next_call_on_a_cold_model_writes_the_whole_prompt() -> None:
    current, candidate = prompts(40, SONNET, HAIKU)
    sim = warm(current)
    entries = len(sim)
    estimate = switch_estimate(sim, current, candidate, start=10.0, output_tokens=500)
    cached = current.total_tokens - 3  # all but the 3 tokens that open the assistant turn
    assert candidate.total_tokens == current.total_tokens  # same tokenizer generation
    # Sonnet 4.6 reads at $0.30, inputs at $3 and outputs at $15; Haiku 4.5 writes at $1.25, inputs $1, outputs $5.
    assert estimate.current_usd == (cached * Decimal("0.30") + 3 * 3 + 500 * 15) / MTOK
    assert estimate.candidate_usd == (cached * Decimal("1.25") + 3 * 1 + 500 * 5) / MTOK
    assert estimate.rewrite_tokens == cached
    assert len(sim) == entries  # only asked, never changed
    assert "claude-sonnet-4-6 -> claude-haiku-4-5 rewrites ~" in estimate.describe()


def test_break_even_counts_the_calls_until_the_cheaper_reads_repay_the_rewrite() -> None:
    current, candidate = prompts(40, SONNET, HAIKU)
    estimate = switch_estimate(warm(current), current, candidate, start=10.0, output_tokens=500, growth_tokens=2000)
    # By hand: after the switch call, each call reads the previous prompt and writes the 2,000 new tokens.
    prompt = current.total_tokens
    stayed, moved, calls = estimate.current_usd, estimate.candidate_usd, 1
    while moved > stayed:
        previous, prompt = prompt - 3, prompt + 2000
        stayed += (previous * Decimal("0.30") + 2000 * Decimal("3.75") + 3 * 3 + 500 * 15) / MTOK
        moved += (previous * Decimal("0.10") + 2000 * Decimal("1.25") + 3 * 1 + 500 * 5) / MTOK
        calls += 1
    assert calls == estimate.break_even_calls == 4
    assert estimate.pays_off_within(4)
    assert not estimate.pays_off_within(3)


def test_a_dearer_model_never_pays_off() -> None:
    current, candidate = prompts(40, SONNET, OPUS)
    estimate = switch_estimate(warm(current), current, candidate, start=10.0, growth_tokens=2000, horizon=50)
    assert estimate.break_even_calls is None
    assert estimate.describe().endswith("it does not pay off within 50 calls")


def test_a_candidate_warmed_earlier_is_priced_warm() -> None:
    current, candidate = prompts(40, SONNET, HAIKU)
    sim = warm(current)
    sim.request(candidate, start=1.0)  # the run was on Haiku a moment ago, with this very prefix
    estimate = switch_estimate(sim, current, candidate, start=10.0)
    assert estimate.rewrite_tokens == 0
    assert estimate.break_even_calls == 1


def test_a_switch_after_the_cache_expired_costs_nothing_extra() -> None:
    current, candidate = prompts(40, SONNET, HAIKU)
    estimate = switch_estimate(warm(current), current, candidate, start=600.0)  # 10 minutes later: both cold
    assert estimate.rewrite_tokens == 0
    assert estimate.break_even_calls == 1


def test_the_new_tokenizer_is_counted() -> None:
    """Opus 5.5 counts about 30 % more tokens for the same text: its prompt is built, not assumed."""
    current, candidate = prompts(40, SONNET, "claude-opus-5-5")
    assert candidate.total_tokens > 1.25 * current.total_tokens
    estimate = switch_estimate(warm(current), current, candidate, start=10.0, output_tokens=0)
    assert estimate.candidate_usd == ((candidate.total_tokens - 3) * Decimal(5) + 3 * 4) / MTOK


def test_an_unpriced_model_cannot_be_priced() -> None:
    with pytest.warns(UnknownMinimumWarning, match="nope-tiers"):  # a model no table knows: warned once
        current, candidate = prompts(2, SONNET, "claude-nope-tiers-1")
    with pytest.raises(UnknownPriceError, match="'claude-nope-tiers-1'"):
        switch_estimate(warm(current), current, candidate, start=10.0)
    with pytest.raises(ConfigError, match="horizon >= 1"):
        switch_estimate(warm(current), current, prompts(2, SONNET, HAIKU)[1], start=10.0, horizon=0)


# ---------------------------------------------------------------------------------------------------------------
# Routing


def estimate(break_even: int | None, current: str = SONNET, candidate: str = HAIKU) -> SwitchEstimate:
    return SwitchEstimate(current, candidate, Decimal("0.03"), Decimal("0.12"), 99_000, break_even, 100)


def step(calls_left: int | None = 10, model: str = SONNET) -> Step:
    return Step(iteration=3, model=model, prompt_tokens=99_000, calls_left=calls_left, messages=())


def test_no_answer_or_the_same_model_stays() -> None:
    for answer in (None, SONNET, Switch(SONNET, force=True)):
        decision = decide(answer, step(), None)
        assert (decision.model, decision.switched, decision.refused, decision.notice) == (SONNET, False, False, None)


def test_a_switch_that_pays_off_within_the_calls_left_is_made() -> None:
    decision = decide(HAIKU, step(calls_left=10), estimate(4))
    assert (decision.model, decision.switched, decision.refused) == (HAIKU, True, False)
    assert decision.notice == f"model switch: {estimate(4).describe()}"


def test_a_switch_that_does_not_pay_off_in_time_is_refused_unless_forced() -> None:
    late = decide(HAIKU, step(calls_left=3), estimate(4))
    assert (late.model, late.refused) == (SONNET, True)
    assert late.notice is not None
    assert late.notice.startswith("model switch refused (it has to pay off within 3 calls): ")
    never = decide(Switch(HAIKU), step(calls_left=None), estimate(None))
    assert never.refused
    assert "within 100 calls" in (never.notice or "")
    forced = decide(Switch(HAIKU, force=True), step(calls_left=3), estimate(None))
    assert (forced.model, forced.switched, forced.forced) == (HAIKU, True, True)
    assert (forced.notice or "").startswith("model switch (forced): ")


def test_a_bad_route_answer_is_named() -> None:
    with pytest.raises(ConfigError, match=r"Tiers\(route=...\) returned 42"):
        decide(42, step(), None)
    with pytest.raises(ConfigError, match="the estimate must price claude-sonnet-4-6 -> claude-haiku-4-5"):
        decide(HAIKU, step(), None)
    with pytest.raises(ConfigError, match="the estimate must price"):
        decide(HAIKU, step(), estimate(1, candidate=OPUS))


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"cheap": ""}, "cheap=''"),
        ({"summarize_results_over": 0}, "summarize_results_over=0"),
        ({"result_summary_tokens": 2.5}, "result_summary_tokens=2.5"),
        ({"route": "haiku"}, "route='haiku'"),
    ],
)
def test_bad_tiers_are_named(arguments: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        Tiers(**arguments)


# ---------------------------------------------------------------------------------------------------------------
# Side calls of the cheap model


def test_which_results_are_summarised() -> None:
    assert not wants_summary(None, 50_000)
    assert not wants_summary(Tiers(summarize_results_over=None), 50_000)
    assert not wants_summary(Tiers(), 8000)
    assert wants_summary(Tiers(), 8001)


def test_result_summary_request_is_a_stable_side_call() -> None:
    tiers = Tiers(result_summary_tokens=600)
    request = result_summary_request(
        tiers, tool="read_log", arguments={"pod": "api-7"}, text="ERROR timeout\n" * 3000, task="Why does it fail?"
    )
    assert request["model"] == HAIKU
    assert request["system"] == RESULT_SUMMARY_SYSTEM
    assert request["max_tokens"] == 600
    assert "tools" not in request
    text = request["messages"][0]["content"]
    assert text.startswith('<task>\nWhy does it fail?\n</task>\n\n<call>read_log {"pod": "api-7"}</call>')
    assert "ERROR timeout" in text


def test_result_summary_request_fits_the_cheap_window() -> None:
    request = result_summary_request(Tiers(), tool="dump", arguments={}, text="word " * 400_000)
    prompt = prompt_from_request(request)
    assert prompt.total_tokens < 200_000 - 800
    assert "tokens cut from the middle" in request["messages"][0]["content"]


def test_a_side_call_leaves_the_conversation_cache_alone() -> None:
    """Even on the same model as the conversation: a different system prompt is a different prefix."""
    current, _ = prompts(40, SONNET, HAIKU)
    sim = warm(current)
    side = result_summary_request(Tiers(cheap=SONNET), tool="read", arguments={}, text="log " * 20_000)
    sim.request(prompt_from_request(side), start=5.0)
    assert sim.predict(current, start=10.0).usage.cache_read_tokens == current.total_tokens - 3


def test_summarized_result_says_what_it_stands_for() -> None:
    text = summarized_result("  3 timeouts in payments-api.  ", tool="read_log", tokens=41_230, model=HAIKU)
    assert text.startswith("[read_log returned about 41,230 tokens, condensed by claude-haiku-4-5.")
    assert text.endswith("]\n\n3 timeouts in payments-api.")


def test_who_summarises_compactions() -> None:
    assert compaction_summarizer(Compaction(summarize_with=OPUS), Tiers()) == OPUS
    assert compaction_summarizer(Compaction(), Tiers()) == HAIKU
    assert compaction_summarizer(Compaction(), Tiers(summarize_compactions=False)) is None
    assert compaction_summarizer(Compaction(), None) is None
