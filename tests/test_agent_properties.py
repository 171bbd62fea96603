"""Invariants of the loop on random workloads, on the emulator (hypothesis).

- spend never exceeds Budget(usd=...), for one run and for concurrent runs sharing one Spend;
- every tool_use is answered exactly once, whatever stopped the run;
- within a run, the cached prefix only ever extends (each call reads all the previous one cached).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leanloop.agent import Agent, RunResult
from leanloop.emulator.policies import Reply
from leanloop.limits import Budget, Spend
from leanloop.testing import FunctionModel, call

MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a careful operator. Use the tools, then answer. " * 180


def echo(text: str, repeat: int = 1) -> str:
    """Echo text back.

    Args:
        text: The text.
        repeat: How many times.
    """
    if text.startswith("fail"):
        raise RuntimeError("always fails")
    return text * repeat


turns = st.lists(
    st.tuples(
        st.integers(0, 4),  # tool calls in the turn
        st.integers(0, 400),  # words of text
        st.sampled_from(["ok", "fail", "big"]),
    ),
    min_size=1,
    max_size=8,
)


def policy_for(script: list[tuple[int, int, str]]) -> FunctionModel:
    def answer(request: Mapping[str, Any]) -> Reply:
        done = sum(1 for m in request["messages"] if m["role"] == "assistant")
        if done >= len(script):
            return Reply([{"type": "text", "text": "final answer " * 50}])
        calls, words, kind = script[done]
        blocks: list[dict[str, Any]] = [{"type": "text", "text": "word " * words}] if words else []
        repeat = 400 if kind == "big" else 1
        blocks += [call("echo", text=f"{kind}", repeat=repeat) for _ in range(calls)]
        return Reply(blocks) if blocks else Reply([{"type": "text", "text": "nothing to do"}])

    return FunctionModel(answer)


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


@given(script=turns, usd=st.decimals("0.002", "0.08", places=4), max_tokens=st.integers(200, 3000))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_spend_never_exceeds_the_budget(script: list[tuple[int, int, str]], usd: Decimal, max_tokens: int) -> None:
    model = policy_for(script)
    agent = Agent(MODEL, system=SYSTEM, tools=[echo], client=model.client(), max_tokens=max_tokens)
    result = asyncio.run(agent.run("go", budget=Budget(usd=float(usd), max_iterations=30)))
    assert result.cost.total <= usd
    assert_every_tool_use_answered_once(result)
    for before, after in zip(result.calls, result.calls[1:], strict=False):
        cached = before.usage.cache_read_tokens + before.usage.cache_write_tokens
        assert after.usage.cache_read_tokens >= cached  # the cached prefix only extends


@given(script=turns, usd=st.decimals("0.01", "0.2", places=3))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_concurrent_runs_sharing_one_spend_stay_under_it(script: list[tuple[int, int, str]], usd: Decimal) -> None:
    spend = Spend(Budget(usd=float(usd), max_iterations=200))

    async def many() -> list[RunResult]:
        agents = [Agent(MODEL, system=SYSTEM, tools=[echo], client=policy_for(script).client()) for _ in range(12)]
        return list(await asyncio.gather(*(a.run("go", spend=spend) for a in agents)))

    results = asyncio.run(many())
    assert sum(r.cost.total for r in results) <= usd
    assert spend.cost.total <= usd
