"""Invariants of the loop on random workloads, on the emulator (hypothesis).

- spend never exceeds Budget(usd=...), for one run and for concurrent runs sharing one Spend, even when the API
  counts tokens differently from leanloop's estimator (0.8x to 1.3x, and differently again on code, JSON and CJK
  than on prose, so a later prompt of another composition has another real/estimated ratio than the first) and its
  cache expires behind the agent's back (the emulator's clock jumps inside tools), so that the agent's mirror of
  the cache and the biller disagree;
- a shared budget is usable: runs that fit in it all run (none is refused because others' calls were in flight);
- every tool_use is answered exactly once, whatever stopped the run;
- within a run, with a cache that behaves, the cached prefix only ever extends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
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


class Skewed(Estimator):
    """A tokenizer that disagrees with leanloop's estimator by content: a block that is mostly code, JSON or CJK
    (over a fifth of its characters neither ASCII letters nor spaces) counts ``dense`` times the estimate, any
    other block ``prose`` times. Marks are not content: ``cache_control`` is not counted."""

    def __init__(self, prose: float, dense: float) -> None:
        super().__init__()
        self.prose, self.dense = prose, dense

    def count_request(self, model: str, blocks: Sequence[tuple[str, Mapping[str, Any]]]) -> list[int]:
        counts = super().count_request(model, blocks)
        return [max(1, round(count * self._factor(block))) for count, (_, block) in zip(counts, blocks, strict=True)]

    def _factor(self, block: Mapping[str, Any]) -> float:
        text = json.dumps({k: v for k, v in block.items() if k != "cache_control"}, ensure_ascii=False)
        dense = sum(1 for ch in text if not (ch.isascii() and (ch.isalpha() or ch == " ")))
        return self.dense if dense > len(text) / 5 else self.prose


# What the echo tool returns for each kind of call, and how many times over: tool results of every composition.
PAYLOADS = {
    "ok": ("ok", 1),
    "big": ("big", 400),
    "prose": ("The checkout service began timing out shortly after the deploy at three. ", 30),
    "code": ("def retry(call, n=3):\n    for i in range(n):\n        if (r := call()).ok:\n            return r\n", 25),
    "json": ('{"pod":"checkout-7f9c","restarts":17,"ready":false,"ratio":0.25,"tags":["eu-1","p99"]}', 25),
    "cjk": ("支付服务在凌晨三点开始超时，日志显示连接池已耗尽。", 40),
}
KINDS = ["json", "cjk", "code", "prose", "big", "ok", "fail"]  # hypothesis favours the first: the hard cases


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
        st.lists(st.sampled_from(KINDS), min_size=1, max_size=3).map("+".join),  # each call of the turn: the next kind
        st.sampled_from([0, 0, 200, 400, 4000]),  # seconds the tools take: 400 s expires a 5m entry
    ),
    min_size=1,
    max_size=8,
)
factors = st.sampled_from([1.0, 0.8, 0.9, 1.1, 1.2, 1.3])  # the API's count / the estimate, on prose
dense_factors = st.sampled_from([1.3, 1.2, 1.1, 1.0, 0.9, 0.8])  # and on code, JSON and CJK


def policy_for(script: list[tuple[int, int, str, int]]) -> FunctionModel:
    def answer(request: Mapping[str, Any]) -> Reply:
        done = sum(1 for m in request["messages"] if m["role"] == "assistant")
        if done >= len(script):
            return Reply([{"type": "text", "text": "final answer " * 300}])
        calls, words, kinds, wait = script[done]
        blocks: list[dict[str, Any]] = [{"type": "text", "text": "word " * words}] if words else []
        for index in range(calls):
            kind = kinds.split("+")[index % len(kinds.split("+"))]
            text, repeat = PAYLOADS.get(kind, ("fail", 1))
            blocks.append(call("echo", text=text, repeat=repeat, wait=wait))
        return Reply(blocks) if blocks else Reply([{"type": "text", "text": "nothing to do"}])

    return FunctionModel(answer)


def agent_for(
    script: list[tuple[int, int, str, int]],
    factor: float,
    max_tokens: int,
    *,
    dense: float | None = None,
    **kwargs: Any,
) -> Agent:
    """An agent on the emulator whose tokenizer counts ``factor`` times the estimate on prose and ``dense`` times
    (default: the same) on code, JSON and CJK."""
    clock = ManualClock()
    counter = Skewed(factor, factor if dense is None else dense)
    client = emulated_client({MODEL: policy_for(script)}, clock=clock, token_counter=counter)
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


def cap_for(target: Decimal | tuple[int, float], script: list[tuple[int, int, str, int]], **agent: Any) -> Decimal:
    """A budget: ``target`` itself, or for ``(back, share)`` one that runs out inside a call of the unbudgeted run
    (``back`` calls before its last; the later, the more content the budget had to estimate): what the calls
    before it cost, plus its prompt, plus ``share`` of its output. There the worst case is tight."""
    if isinstance(target, Decimal):
        return target
    back, share = target
    free = agent_for(script, **agent)
    calls = asyncio.run(free.run("go", budget=Budget(max_iterations=30))).calls
    at = len(calls) - 1 - back % len(calls)
    before = sum((c.cost.total for c in calls[:at]), Decimal(0))
    return (before + calls[at].cost.total - calls[at].cost.output * Decimal(1 - share)).quantize(Decimal("0.000001"))


budgets = st.one_of(st.tuples(st.integers(0, 30), st.floats(0, 1)), st.decimals("0.002", "0.08", places=4))


@given(
    script=turns,
    factor=factors,
    dense=dense_factors,
    cached=st.booleans(),
    usd=budgets,
    max_tokens=st.integers(200, 3000),
)
# Found by this property: the worst case scaled the whole prompt by the ratio seen on the first (prose) prompt; the
# third prompt, with tool results, counted a little more per estimated token, and spend ended $0.0000003 over.
@example(
    script=[(4, 0, "big", 200), (0, 289, "ok", 0)],
    factor=1.2,
    dense=1.2,
    cached=True,
    usd=Decimal("0.045"),
    max_tokens=293,
)
# A tokenizer exact on prose and 1.3x on JSON and CJK: the first call showed a ratio of 1.0, the tool results counted
# 1.3x, the cache expired while the tools ran, and the old worst case let spend reach $0.0442 of $0.042.
@example(
    script=[(3, 0, "json+cjk", 400), (0, 400, "ok", 0)],
    factor=1.0,
    dense=1.3,
    cached=True,
    usd=Decimal("0.042"),
    max_tokens=900,
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_spend_never_exceeds_the_budget(
    *,
    script: list[tuple[int, int, str, int]],
    factor: float,
    dense: float,
    cached: bool,
    usd: Decimal | tuple[int, float],
    max_tokens: int,
) -> None:
    """Budgets drawn at random, and budgets that run out inside a given call (where the worst case is tight), with
    the cache on (expiring behind the agent's back) or off (the worst case is then the bill, token for token)."""
    cap = cap_for(usd, script, factor=factor, max_tokens=max_tokens, dense=dense, cache=cached)
    agent = agent_for(script, factor, max_tokens, dense=dense, cache=cached)
    result = asyncio.run(agent.run("go", budget=Budget(usd=float(cap), max_iterations=30)))
    assert result.cost.total <= cap
    assert_every_tool_use_answered_once(result)


@pytest.mark.parametrize("share", [0.0, 0.3, 0.6, 0.9])
@pytest.mark.parametrize(("prose", "dense"), [(1.0, 1.3), (0.8, 1.2)])
def test_tool_results_counted_higher_than_the_first_prompt_never_take_spend_over(
    prose: float, dense: float, share: float
) -> None:
    """The first prompt (prose) shows one real/estimated ratio, the JSON and CJK tool results after it have a
    higher one; the budget runs out inside the last call, where it is tight (cache off: the worst case is the
    bill). Scaling the whole prompt by the first ratio overshot here by up to $0.0025."""
    script = [(3, 0, "json+cjk", 0), (0, 400, "ok", 0)]
    agent = {"factor": prose, "dense": dense, "max_tokens": 900, "cache": False}
    cap = cap_for((0, share), script, **agent)
    result = asyncio.run(agent_for(script, **agent).run("go", budget=Budget(usd=float(cap), max_iterations=30)))
    assert result.cost.total <= cap


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


@given(
    script=turns,
    factor=factors,
    dense=dense_factors,
    usd=st.decimals("0.01", "0.4", places=3),
    max_tokens=st.integers(200, 3000),
)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_concurrent_runs_sharing_one_spend_stay_under_it_and_use_it(
    script: list[tuple[int, int, str, int]], factor: float, dense: float, usd: Decimal, max_tokens: int
) -> None:
    alone = agent_for(script, factor, max_tokens, dense=dense, cache=False)
    alone_result = asyncio.run(alone.run("go", budget=Budget(max_iterations=30)))
    run_bound, reservation = bound_of(alone_result, max_tokens)
    spend = Spend(Budget(usd=float(usd), max_iterations=RUNS * 30))

    async def many() -> list[RunResult]:
        agents = [agent_for(script, factor, max_tokens, dense=dense) for _ in range(RUNS)]
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
