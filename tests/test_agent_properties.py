"""Invariants of the loop on random workloads, on the emulator (hypothesis).

- spend never exceeds Budget(usd=...), for one run and for concurrent runs sharing one Spend, even when the API
  counts tokens differently from leanloop's estimator (0.8x to 1.3x) and its cache expires behind the agent's back
  (the emulator's clock jumps inside tools), so that the agent's mirror of the cache and the biller disagree;
- a shared budget is usable: runs that fit in it all run (none is refused because others' calls were in flight);
- every tool_use is answered exactly once, whatever stopped the run;
- within a run, with a cache that behaves, the cached prefix only ever extends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leanloop.agent import Agent, RunResult
from leanloop.emulator import ManualClock
from leanloop.emulator.policies import Reply
from leanloop.limits import Budget, Spend
from leanloop.pricing import default_pricing
from leanloop.testing import FunctionModel, call, emulated_client
from leanloop.tokens import Estimator

MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a careful operator. Use the tools, then answer. " * 180
PRICES = default_pricing().prices(MODEL)
assert PRICES is not None
PER_MTOK = Decimal(1_000_000)


class Scaled(Estimator):
    """The API's tokenizer, as the emulator counts: ``factor`` times leanloop's estimate."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def count_request(self, model: str, blocks: Sequence[tuple[str, Mapping[str, Any]]]) -> list[int]:
        return [max(1, round(count * self.factor)) for count in super().count_request(model, blocks)]


def echo_tool(clock: ManualClock) -> Any:
    def echo(text: str, repeat: int = 1, wait: int = 0) -> str:
        """Echo text back.

        Args:
            text: The text.
            repeat: How many times.
            wait: Seconds the work takes (the cache may expire meanwhile).
        """
        clock.advance(wait)
        if text.startswith("fail"):
            raise RuntimeError("always fails")
        return text * repeat

    return echo


turns = st.lists(
    st.tuples(
        st.integers(0, 4),  # tool calls in the turn
        st.integers(0, 400),  # words of text
        st.sampled_from(["ok", "fail", "big"]),
        st.sampled_from([0, 0, 200, 400, 4000]),  # seconds the tools take: 400 s expires a 5m entry
    ),
    min_size=1,
    max_size=8,
)
factors = st.sampled_from([0.8, 0.9, 1.0, 1.1, 1.2, 1.3])


def policy_for(script: list[tuple[int, int, str, int]]) -> FunctionModel:
    def answer(request: Mapping[str, Any]) -> Reply:
        done = sum(1 for m in request["messages"] if m["role"] == "assistant")
        if done >= len(script):
            return Reply([{"type": "text", "text": "final answer " * 50}])
        calls, words, kind, wait = script[done]
        blocks: list[dict[str, Any]] = [{"type": "text", "text": "word " * words}] if words else []
        repeat = 400 if kind == "big" else 1
        blocks += [call("echo", text=f"{kind}", repeat=repeat, wait=wait) for _ in range(calls)]
        return Reply(blocks) if blocks else Reply([{"type": "text", "text": "nothing to do"}])

    return FunctionModel(answer)


def agent_for(script: list[tuple[int, int, str, int]], factor: float, max_tokens: int, **kwargs: Any) -> Agent:
    clock = ManualClock()
    client = emulated_client({MODEL: policy_for(script)}, clock=clock, token_counter=Scaled(factor))
    return Agent(MODEL, system=SYSTEM, tools=[echo_tool(clock)], client=client, max_tokens=max_tokens, **kwargs)


def assert_every_tool_use_answered_once(result: RunResult) -> None:
    answered: list[str] = []
    asked: list[str] = []
    for message in result.messages:
        content = message["content"]
        if isinstance(content, list):
            asked += [b["id"] for b in content if b.get("type") == "tool_use"]
            answered += [b["tool_use_id"] for b in content if b.get("type") == "tool_result"]
    assert sorted(asked) == sorted(answered)
    assert len(set(answered)) == len(answered)


@given(script=turns, factor=factors, usd=st.decimals("0.002", "0.08", places=4), max_tokens=st.integers(200, 3000))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_spend_never_exceeds_the_budget(
    script: list[tuple[int, int, str, int]], factor: float, usd: Decimal, max_tokens: int
) -> None:
    agent = agent_for(script, factor, max_tokens)
    result = asyncio.run(agent.run("go", budget=Budget(usd=float(usd), max_iterations=30)))
    assert result.cost.total <= usd
    assert_every_tool_use_answered_once(result)


@given(script=turns, max_tokens=st.integers(200, 3000))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_cached_prefix_only_extends(script: list[tuple[int, int, str, int]], max_tokens: int) -> None:
    steady = [(calls, words, kind, 0) for calls, words, kind, _ in script]  # no expiry, exact token counts
    result = asyncio.run(agent_for(steady, 1.0, max_tokens).run("go", budget=Budget(max_iterations=30)))
    for before, after in zip(result.calls, result.calls[1:], strict=False):
        cached = before.usage.cache_read_tokens + before.usage.cache_write_tokens
        assert after.usage.cache_read_tokens >= cached


def bound_of(result: RunResult, max_tokens: int) -> tuple[Decimal, Decimal]:
    """What a run can cost at most (every prompt token written, at the write rate), and the largest reservation
    one of its calls can hold (its prompt as the agent over-estimates it, plus max_tokens of output)."""
    assert PRICES is not None
    run = sum(
        (c.usage.prompt_tokens * PRICES.cache_write_5m + c.usage.output_tokens * PRICES.output for c in result.calls),
        Decimal(0),
    )
    biggest = max((c.usage.prompt_tokens for c in result.calls), default=0)
    reservation = Decimal(biggest) * Decimal("1.7") * PRICES.cache_write_5m + max_tokens * PRICES.output
    return run / PER_MTOK, reservation / PER_MTOK


RUNS = 12


@given(script=turns, factor=factors, usd=st.decimals("0.01", "0.4", places=3), max_tokens=st.integers(200, 3000))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_concurrent_runs_sharing_one_spend_stay_under_it_and_use_it(
    script: list[tuple[int, int, str, int]], factor: float, usd: Decimal, max_tokens: int
) -> None:
    alone = asyncio.run(agent_for(script, factor, max_tokens, cache=False).run("go", budget=Budget(max_iterations=30)))
    run_bound, reservation = bound_of(alone, max_tokens)
    spend = Spend(Budget(usd=float(usd), max_iterations=RUNS * 30))

    async def many() -> list[RunResult]:
        agents = [agent_for(script, factor, max_tokens) for _ in range(RUNS)]
        runs = asyncio.gather(*(a.run("go", spend=spend) for a in agents))
        return list(await asyncio.wait_for(runs, timeout=120))  # no deadlock

    results = asyncio.run(many())
    assert sum(r.cost.total for r in results) <= usd
    assert spend.cost.total <= usd
    assert spend.reserved_usd == 0
    for result in results:
        assert_every_tool_use_answered_once(result)
    if usd >= RUNS * run_bound + reservation:  # room for every run, whatever the others hold in flight
        assert not [r.stop for r in results if r.stop.reason == "budget"]
