"""limits: the budget arithmetic before each call, reservations, and the loop guard."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leanloop.errors import ConfigError
from leanloop.limits import Budget, CallEstimate, Go, Halt, LoopGuard, Spend, Wait
from leanloop.pricing import Cost
from leanloop.usage import Usage

PER_TOKEN = Decimal("0.000015")  # $15 / MTok output


def estimate(
    prompt_usd: str = "0.01", max_tokens: int = 1000, prompt_tokens: int = 3000, if_missed: str | None = None
) -> CallEstimate:
    """A call's worst case: its prompt costs ``if_missed`` if the cache misses (by default, the same)."""
    missed = Decimal(if_missed or prompt_usd)
    return CallEstimate(prompt_tokens, Decimal(prompt_usd), missed, PER_TOKEN, max_tokens)


def test_room_is_lowered_to_what_is_left() -> None:
    spend = Spend(Budget(usd=0.02))
    go = spend.check_before_call(estimate())
    assert isinstance(go, Go)
    assert go.max_tokens == 666  # (0.02 - 0.01) / 0.000015
    assert go.lowered_by == "usd"


def test_halt_when_not_even_a_minimal_answer_fits() -> None:
    spend = Spend(Budget(usd=0.0105))
    halt = spend.check_before_call(estimate())
    assert isinstance(halt, Halt)
    assert halt.cap == "usd"
    assert "no room for an answer" in halt.reason


def test_reservations_stop_concurrent_runs_from_overshooting_together() -> None:
    spend = Spend(Budget(usd=0.05))
    decisions = [spend.check_before_call(estimate()) for _ in range(5)]
    granted = [d for d in decisions if isinstance(d, Go)]
    worst = sum((d.reserved_usd for d in granted), Decimal(0))
    assert worst <= Decimal("0.05")
    # what is left is only held by calls in flight, not spent: wait for them instead of stopping
    assert isinstance(decisions[-1], Wait)
    assert "calls in flight" in decisions[-1].reason
    for go in granted:
        spend.record_call(go, Usage(output_tokens=10), Cost(output=Decimal("0.001")))
    assert spend.reserved_usd == 0
    assert isinstance(spend.check_before_call(estimate()), Go)


def test_truly_exhausted_is_a_halt_even_with_calls_in_flight() -> None:
    spend = Spend(Budget(usd=0.03))
    first = spend.check_before_call(estimate())
    assert isinstance(first, Go)
    spend.record_call(None, Usage(output_tokens=10), Cost(output=Decimal("0.02")))  # another run spent it
    decision = spend.check_before_call(estimate())
    assert isinstance(decision, Halt) and decision.cap == "usd"  # even if the call in flight cost nothing


def test_a_reservation_is_freed_exactly_once() -> None:
    spend = Spend(Budget(usd=0.05))
    go = spend.check_before_call(estimate())
    other = spend.check_before_call(estimate())
    assert isinstance(go, Go) and isinstance(other, Go)
    spend.release(go)
    spend.release(go)  # twice: no-op
    spend.record_call(go, Usage(), Cost())  # after release: counts the call, frees nothing more
    assert spend.reserved_usd == other.reserved_usd
    spend.record_call(other, Usage(), Cost())
    spend.release(other)
    assert spend.reserved_usd == 0


def test_token_caps_count_calls_in_flight_too() -> None:
    spend = Spend(Budget(max_input_tokens=5000, max_iterations=3))
    first = spend.check_before_call(estimate(prompt_tokens=3000))
    assert isinstance(first, Go)
    assert isinstance(spend.check_before_call(estimate(prompt_tokens=3000)), Wait)  # 6,000 if both ran
    spend.record_call(first, Usage(input_tokens=3000), Cost())
    assert isinstance(spend.check_before_call(estimate(prompt_tokens=3000)), Halt)


@pytest.mark.anyio
async def test_settled_wakes_a_waiting_run_when_a_call_settles() -> None:
    spend = Spend(Budget(usd=0.03))
    go = spend.check_before_call(estimate())
    wait = spend.check_before_call(estimate())
    assert isinstance(go, Go) and isinstance(wait, Wait)
    waiter = asyncio.ensure_future(spend.settled(wait.since))
    await asyncio.sleep(0)
    assert not waiter.done()
    spend.record_call(go, Usage(output_tokens=10), Cost(output=Decimal("0.0001")))
    await asyncio.wait_for(waiter, 1)
    assert isinstance(spend.check_before_call(estimate()), Go)
    await spend.settled(wait.since)  # already settled since then: returns at once


def test_by_default_the_worst_case_assumes_the_cache_misses() -> None:
    read = estimate(if_missed="0.03")  # $0.01 with the predicted cache reads, $0.03 if the cache missed
    halt = Spend(Budget(usd=0.0305)).check_before_call(read)
    assert isinstance(halt, Halt) and "Budget(strict=False) would send it" in halt.reason
    assert isinstance(Spend(Budget(usd=0.0305, strict=True)).check_before_call(read), Halt)
    trusting = Spend(Budget(usd=0.0305, strict=False)).check_before_call(read)
    assert isinstance(trusting, Go)  # trusts the predicted reads: may overshoot if the cache was evicted


def test_iteration_input_output_and_tool_caps() -> None:
    spend = Spend(Budget(max_iterations=1, max_input_tokens=5000, max_output_tokens=1500, max_tool_calls=2))
    first = spend.check_before_call(estimate())
    assert isinstance(first, Go)
    spend.record_call(first, Usage(input_tokens=3000, output_tokens=1000), Cost())
    halt = spend.check_before_call(estimate())
    assert isinstance(halt, Halt) and halt.cap == "max_iterations"
    spend = Spend(Budget(max_input_tokens=5000))
    spend.record_call(None, Usage(input_tokens=3000), Cost())
    halt = spend.check_before_call(estimate())
    assert isinstance(halt, Halt) and halt.cap == "max_input_tokens"
    spend = Spend(Budget(max_output_tokens=1500))
    spend.record_call(None, Usage(output_tokens=1000), Cost())
    go = spend.check_before_call(estimate())
    assert isinstance(go, Go) and go.max_tokens == 500 and go.lowered_by == "max_output_tokens"
    spend = Spend(Budget(max_tool_calls=2))
    assert spend.check_tool_calls(2) is None
    spend.record_tool_calls(2)
    halt = spend.check_tool_calls(1)
    assert halt is not None and halt.cap == "max_tool_calls"


def test_a_side_call_is_spent_but_is_not_an_iteration() -> None:
    """A side call (a summary by the cheap model) costs money and tokens, checked and recorded like any call, but
    does not use up max_iterations, neither in flight nor once recorded."""
    spend = Spend(Budget(usd=0.05, max_iterations=1, max_output_tokens=3000))
    side = spend.check_before_call(estimate(max_tokens=500), side_call=True)
    assert isinstance(side, Go) and side.side_call
    main = spend.check_before_call(estimate())  # the side call in flight holds money, not the one iteration
    assert isinstance(main, Go)
    assert main.max_tokens == 1000
    spend.record_call(side, Usage(input_tokens=3000, output_tokens=500), Cost(output=Decimal("0.0075")))
    assert spend.iterations == 0
    assert spend.usage.output_tokens == 500 and spend.cost.total == Decimal("0.0075")
    spend.record_call(main, Usage(output_tokens=10), Cost(output=Decimal("0.001")))
    assert spend.iterations == 1
    assert isinstance(spend.check_before_call(estimate()), Halt)  # max_iterations
    again = spend.check_before_call(estimate(max_tokens=500), side_call=True)
    assert isinstance(again, Go)  # a side call still fits the money left
    spend.release(again)


def test_wall_clock_cap() -> None:
    now = [0.0]
    spend = Spend(Budget(max_wall_seconds=10), clock=lambda: now[0])
    assert isinstance(spend.check_before_call(estimate()), Go)
    now[0] = 10.5
    halt = spend.check_before_call(estimate())
    assert isinstance(halt, Halt) and halt.cap == "max_wall_seconds"
    assert spend.remaining_wall_s() == 0


@pytest.mark.parametrize(
    "bad", [{"usd": 0}, {"usd": -1}, {"max_iterations": 0}, {"max_tool_calls": True}, {"min_output_tokens": 0}]
)
def test_bad_budgets_are_named(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        Budget(**bad)  # type: ignore[arg-type]


@given(
    budget=st.decimals("0.001", "1", places=4),
    calls=st.lists(st.tuples(st.decimals("0", "0.05", places=5), st.integers(1, 8000), st.floats(0, 1)), max_size=40),
)
@settings(max_examples=200, deadline=None)
def test_spend_never_exceeds_the_budget(budget: Decimal, calls: list[tuple[Decimal, int, float]]) -> None:
    """Whatever each call's prompt costs and whatever share of max_tokens it really writes."""
    spend = Spend(Budget(usd=float(budget)))
    for prompt_usd, max_tokens, share in calls:
        decision = spend.check_before_call(CallEstimate(1000, prompt_usd, prompt_usd, PER_TOKEN, max_tokens))
        if isinstance(decision, Halt):
            break
        output = int(decision.max_tokens * share)
        spend.record_call(decision, Usage(output_tokens=output), Cost(input=prompt_usd, output=output * PER_TOKEN))
    assert spend.cost.total <= Decimal(str(float(budget)))


def test_loop_guard_tells_once_then_blocks() -> None:
    guard = LoopGuard(repeats=3)
    args = {"pod": "ledger"}
    assert guard.observe("read", args, "permission denied") is None
    assert guard.observe("read", args, "permission denied") is None
    assert guard.blocked("read", args) is None
    notice = guard.observe("read", args, "permission denied")
    assert notice is not None and "failed 3 times" in notice
    assert guard.blocked("read", {"pod": "ledger"}) is not None
    assert guard.blocked("read", {"pod": "other"}) is None
    assert guard.observe("read", args, "permission denied") is None  # told once only


def test_loop_guard_resets_on_success_or_a_different_error() -> None:
    guard = LoopGuard(repeats=2)
    guard.observe("f", {}, "boom")
    guard.observe("f", {}, None)
    assert guard.observe("f", {}, "boom") is None
    assert guard.observe("f", {}, "other") is None
    assert guard.observe("f", {}, "other") is not None
    with pytest.raises(ConfigError):
        LoopGuard(repeats=0)


@pytest.mark.parametrize(
    "bad",
    [
        {"usd": float("nan")},
        {"usd": float("inf")},
        {"max_iterations": 2.5},
        {"max_output_tokens": "10"},
        {"max_wall_seconds": -1},
        {"max_input_tokens": 0},
    ],
)
def test_budget_rejects_nan_fractions_and_strings(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        Budget(**bad)  # type: ignore[arg-type]


def test_estimate_call_prices_the_most_tokens_and_a_miss_at_the_write_rate() -> None:
    from leanloop.limits import estimate_call
    from leanloop.pricing import ModelPrices

    prices = ModelPrices(*(Decimal(v) for v in ("3", "15", "3.75", "6", "0.3")))
    predicted = Usage(input_tokens=100, cache_read_tokens=900)  # the simulator's split of the 1,000 estimated
    worst = estimate_call(1300, predicted, prices, max_tokens=100, longest_ttl="1h")
    assert worst.prompt_tokens == 1300
    assert worst.prompt_usd_if_missed == Decimal(1300 * 6) / 1_000_000  # written at the 1h rate
    assert worst.prompt_usd == (100 * Decimal(3) + 900 * Decimal("0.3")) * Decimal("1.3") / 1_000_000
    assert estimate_call(1000, predicted, prices, max_tokens=100).prompt_usd_if_missed == Decimal("0.00375")
    unmarked = estimate_call(1000, predicted, prices, max_tokens=100, longest_ttl=None)
    assert unmarked.prompt_usd_if_missed == Decimal("0.003")  # no breakpoint: nothing is written, input rate


def test_an_output_cap_below_a_minimal_answer_says_so() -> None:
    spend = Spend(Budget(max_output_tokens=1))
    decision = spend.check_before_call(estimate())
    assert isinstance(decision, Halt) and decision.cap == "max_output_tokens"
    assert decision.reason == "0 of max_output_tokens=1 used, leaving no room for an answer of 64 tokens"


def _conversation(*turns: str) -> dict[str, object]:
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(turns)]
    return {"model": "claude-sonnet-4-6", "system": "Be brief. " * 50, "messages": messages}


def test_the_most_prompt_tokens_of_a_first_call_allow_the_margin_on_every_block() -> None:
    from leanloop.cachesim import prompt_from_request
    from leanloop.limits import most_prompt_tokens

    prompt = prompt_from_request(_conversation("go"))
    exact = sum(math.ceil(b.tokens * 1.3) for b in prompt.blocks) + math.ceil(prompt.tail_tokens * 1.3)
    assert most_prompt_tokens(prompt, margin=1.3) == exact >= math.ceil(prompt.total_tokens * 1.3)


def test_what_the_previous_call_sent_is_known_and_only_new_content_is_estimated() -> None:
    from leanloop.cachesim import prompt_from_request
    from leanloop.limits import most_prompt_tokens

    sent = prompt_from_request(_conversation("go"))
    later = prompt_from_request(_conversation("go", 'JSON: {"a": [1, 2]}', "ok"))
    new = later.blocks[len(sent.blocks) :]
    assert len(new) == 2
    expected = 5000 + sum(math.ceil(b.tokens * 1.3) for b in new)
    assert most_prompt_tokens(later, margin=1.3, sent=(sent, 5000)) == expected  # not 5000 * the ratio seen
    assert most_prompt_tokens(sent, margin=1.3, sent=(sent, 5000)) == 5000  # the same prompt again (a retry)
    assert most_prompt_tokens(later, margin=1.3, sent=(sent, 0)) == most_prompt_tokens(later, margin=1.3)  # no count
    edited = prompt_from_request(_conversation("go!", "JSON", "ok"))  # not an extension: all of it is estimated
    assert most_prompt_tokens(edited, margin=1.3, sent=(sent, 5000)) == most_prompt_tokens(edited, margin=1.3)
