"""Several runs of one Agent: each run has its own loop guard, and runs sharing a Spend share its money fairly."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from leanloop.agent import Agent
from leanloop.emulator import create_app
from leanloop.emulator.faults import Fault, FaultRule
from leanloop.emulator.serving import async_client
from leanloop.limits import Budget, LoopGuard, Spend
from leanloop.testing import FunctionModel, call, say

pytestmark = pytest.mark.anyio
MODEL = "claude-sonnet-4-6"


def read(path: str) -> str:
    """Read a file.

    Args:
        path: The file.
    """
    raise PermissionError(f"permission denied: {path}")


def fails_then_gives_up(times: int) -> FunctionModel:
    def answer(request: Mapping[str, Any]) -> Any:
        done = sum(1 for m in request["messages"] if m["role"] == "assistant")
        return call("read", path="/x") if done < times else say("gave up")

    return FunctionModel(answer)


async def test_a_new_run_does_not_inherit_the_previous_runs_failures() -> None:
    agent = Agent(MODEL, tools=[read], client=fails_then_gives_up(10).client())
    first = await agent.run("read /x")
    assert first.stop.reason == "loop_guard"
    second = await agent.run("a brand-new task")
    assert second.calls, second.stop  # the first call of a new run is never refused by an old run's failures
    assert second.tool_calls == 3 and second.stop.reason == "loop_guard"


async def test_concurrent_runs_of_one_agent_count_their_own_failures() -> None:
    agent = Agent(MODEL, tools=[read], client=fails_then_gives_up(2).client())
    results = await asyncio.gather(*(agent.run(f"task {i}") for i in range(3)))
    assert [r.stop.reason for r in results] == ["end_turn"] * 3  # two failures each, under the 3 that trip the guard
    assert all(r.tool_calls == 2 for r in results)


async def test_resume_keeps_its_own_runs_guard_and_the_agents_template_stays_clean() -> None:
    template = LoopGuard(repeats=3)
    agent = Agent(MODEL, tools=[read], client=fails_then_gives_up(10).client(), loop_guard=template)
    first = await agent.run("read /x", budget=Budget(max_iterations=3))  # three failures, the model was told
    assert first.stop.reason == "max_iterations"
    resumed = await agent.run(resume=first.state, budget=Budget(max_iterations=5))
    assert resumed.stop.reason == "loop_guard" and resumed.iterations == 1  # the repeat is refused at once
    again = await agent.run(resume=first.state, budget=Budget(max_iterations=5))
    assert again.stop.reason == "loop_guard" and again.iterations == 1  # the state is not changed by a resume
    assert template == LoopGuard(repeats=3)


async def test_a_cancelled_call_frees_its_reservation() -> None:
    spend = Spend(Budget(usd=0.10))
    app = create_app(
        {MODEL: lambda request: say("hi")},
        faults=[FaultRule(Fault("slow_first_byte", delay=5.0), nth=frozenset({1, 2}))],
    )
    agent = Agent(MODEL, client=async_client(app, max_retries=0))
    for _ in range(2):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(agent.run("go", spend=spend), timeout=0.2)
    assert spend.reserved_usd == 0
    result = await agent.run("go again", spend=spend)
    assert result.ok, result.stop


async def test_a_consumer_that_stops_iterating_frees_the_reservation() -> None:
    spend = Spend(Budget(usd=0.10))
    agent = Agent(MODEL, client=FunctionModel(lambda request: say("a long answer " * 50)).client())
    stream = agent.stream("go", spend=spend)
    async for _ in stream:  # the first event is the call's first text: leave in the middle of the call
        break
    await stream.aclose()
    assert spend.reserved_usd == 0
    assert (await agent.run("go", spend=spend)).ok


def look(k: str) -> str:
    """Look something up.

    Args:
        k: The key.
    """
    return "data " * 400


def calls_then_done(name: str, times: int, **arguments: Any) -> FunctionModel:
    def answer(request: Mapping[str, Any]) -> Any:
        done = sum(1 for m in request["messages"] if m["role"] == "assistant")
        return call(name, **arguments) if done < times else say("done")

    return FunctionModel(answer)


SYSTEM = "You are a meticulous SRE assistant. Follow the runbook exactly. " * 200  # ~2.6K tokens


async def test_runs_sharing_a_spend_wait_for_calls_in_flight_instead_of_stopping() -> None:
    spend = Spend(Budget(usd=0.20, max_iterations=None))
    client = calls_then_done("look", 3, k="a").client()
    agents = [Agent(MODEL, system=SYSTEM, tools=[look], client=client) for _ in range(10)]
    results = await asyncio.gather(*(a.run("go", spend=spend) for a in agents))
    # Each run costs about $0.0125 and each call's reservation is ~$0.08 (4,096 output tokens): all runs fit, but
    # only two calls' reservations at a time.
    assert [r.stop.reason for r in results] == ["end_turn"] * 10, {r.stop.detail for r in results}
    assert spend.cost.total <= Decimal("0.20")
    assert spend.reserved_usd == 0


async def test_runs_sharing_a_spend_stop_only_when_it_is_spent() -> None:
    spend = Spend(Budget(usd=0.03, max_iterations=None))
    client = calls_then_done("look", 3, k="a").client()
    agents = [Agent(MODEL, system=SYSTEM, tools=[look], client=client, max_tokens=1024) for _ in range(10)]
    results = await asyncio.gather(*(a.run("go", spend=spend) for a in agents))
    assert spend.cost.total <= Decimal("0.03")
    stopped = [r for r in results if r.stop.reason == "budget"]
    assert stopped
    for result in stopped:  # spent, not held: with no call in flight the next one would not have fit either
        found = re.search(r"spent \$(?P<spent>[\d.]+).* could cost \$(?P<prompt>[\d.]+)", result.stop.detail)
        assert found is not None, result.stop.detail
        smallest_answer = Decimal(64) * Decimal(15) / 1_000_000  # min_output_tokens at Sonnet 4.6's $15/MTok
        rounding = Decimal("0.0001")  # the detail shows 4 decimals
        assert Decimal(found["spent"]) + Decimal(found["prompt"]) + smallest_answer + rounding > Decimal("0.03")
    # The budget was used, not refused while held (one call alone is $0.011); what is left is about one new run's
    # first prompt with the 1.3x margin of content never counted by the API.
    assert spend.cost.total >= Decimal("0.03") * Decimal("0.5")
