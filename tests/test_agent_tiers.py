"""The agent with model tiers: oversized tool results condensed by the cheap model in concurrent side calls (the
head + tail cut when one fails), compaction summaries by the cheap model, and the route hook whose switches are
priced first. Side calls are budgeted, in the ledger and the cost, not in the iterations; the trace shows them and
never a gateway key."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from leanloop.agent import Agent, CacheMissed, CallFinished, Compacted, Event, Notice, RunResult
from leanloop.emulator import create_app
from leanloop.emulator.policies import Reply
from leanloop.emulator.serving import async_client
from leanloop.history import NOTE_PREFIX, Compaction
from leanloop.limits import Budget
from leanloop.testing import FunctionModel, call, emulated_client, say, turn
from leanloop.tiers import RESULT_SUMMARY_SYSTEM, Step, Switch, Tiers
from leanloop.trace import read_trace
from test_agent_compaction import parts_read

pytestmark = pytest.mark.anyio
SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"
SYSTEM = "You read service logs with the tools and find the cause of the failure. " * 150


def dump(part: int) -> str:
    """Dump a whole log file.

    Args:
        part: Which file.
    """
    return "\n".join(f"12:00:{n % 60:02d} svc-{part} request {n} failed: upstream timeout" for n in range(1500))


def small(part: int) -> str:
    """Read a short status line.

    Args:
        part: Which service.
    """
    return f"svc-{part}: degraded " + "ok " * 900


def dumps_then_answer(calls: int, parallel: int = 1) -> Callable[[Mapping[str, Any]], Reply]:
    def answer(request: Mapping[str, Any]) -> Reply:
        done = sum(1 for m in request["messages"] if m["role"] == "assistant")
        if done >= calls:
            return say("svc-0 times out upstream")
        return turn(*(call("dump", part=done * parallel + k) for k in range(parallel)))

    return answer


def summarizer(text: str = "Every request of this service failed with an upstream timeout.") -> FunctionModel:
    def answer(request: Mapping[str, Any]) -> Reply:
        assert request["system"] in (RESULT_SUMMARY_SYSTEM,) or "summarise" in request["system"].lower()
        assert "tools" not in request
        return say(text)

    return FunctionModel(answer)


async def events_of(
    agent: Agent, task: str = "Why does checkout fail?", **kwargs: Any
) -> tuple[list[Event], RunResult]:
    events = [event async for event in agent.stream(task, **kwargs)]
    return events, events[-1].result  # type: ignore[union-attr]


def results_sent(request: Mapping[str, Any]) -> list[str]:
    return [
        b["content"]
        for m in request["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_result"
    ]


async def test_an_oversized_result_is_condensed_by_the_cheap_model(tmp_path: Path) -> None:
    main, cheap = FunctionModel(dumps_then_answer(1)), summarizer()
    client = emulated_client({SONNET: main, HAIKU: cheap})
    agent = Agent(SONNET, system=SYSTEM, tools=[dump], client=client, tiers=Tiers(), trace=tmp_path / "t.jsonl")
    events, result = await events_of(agent)
    assert result.ok
    [sent] = results_sent(main.requests[1])
    assert sent.startswith("[dump returned about ") and "condensed by claude-haiku-4-5" in sent
    assert sent.endswith("Every request of this service failed with an upstream timeout.")
    assert "12:00:00 svc-0 request 0" in cheap.requests[0]["messages"][0]["content"]  # the full output, not a cut
    side = [r for r in result.calls if r.notes.get("side_call") == "tool_result_summary"]
    assert len(side) == 1 and side[0].model == HAIKU and side[0].iteration == 1
    assert side[0].run_id == result.state.run_id + "/side"
    assert result.iterations == 2 and len(result.calls) == 3
    assert result.cost.total == sum((r.cost.total for r in result.calls), Decimal(0))
    assert side[0].cost.total > 0
    ledger = [(r.iteration, r.model, r.notes.get("side_call")) for r in result.calls]
    finished = [e.record for e in events if isinstance(e, CallFinished)]
    assert [(r.iteration, r.model, r.notes.get("side_call")) for r in finished] == ledger  # as it happened
    trace = read_trace(tmp_path / "t.jsonl")
    assert [r.notes.get("side_call") for r in trace.records] == [None, "tool_result_summary", None]
    full = [e for e in trace.events if e.get("kind") == "tool_output"]
    assert full and full[0]["output"] == dump(0)  # the full output goes to the trace
    end = next(e for e in trace.events if e.get("kind") == "run_end")
    assert (end["iterations"], end["side_calls"]) == (2, 1)


async def test_the_results_of_one_turn_are_condensed_concurrently() -> None:
    in_flight, most = 0, 0

    async def slow_summary(request: Mapping[str, Any]) -> Reply:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return say("condensed")

    main = FunctionModel(dumps_then_answer(1, parallel=3))
    agent = Agent(SONNET, system=SYSTEM, tools=[dump], client=emulated_client({SONNET: main, HAIKU: slow_summary}))
    agent.tiers = Tiers()
    result = await agent.run("go")
    assert result.ok
    assert most == 3
    assert all("condensed by claude-haiku-4-5" in r for r in results_sent(main.requests[1]))


async def test_a_failed_summary_falls_back_to_the_head_and_tail_cut() -> None:
    def broken(request: Mapping[str, Any]) -> Reply:
        raise RuntimeError("the summariser is down")

    main = FunctionModel(dumps_then_answer(1))
    client = emulated_client({SONNET: main, HAIKU: FunctionModel(broken)})
    events, result = await events_of(Agent(SONNET, system=SYSTEM, tools=[dump], client=client, tiers=Tiers()))
    assert result.ok
    [sent] = results_sent(main.requests[1])
    assert "tokens cut from the middle of this result" in sent
    failed = [e.message for e in events if isinstance(e, Notice) and "side call failed" in e.message]
    assert len(failed) == 1 and "the summariser is down" in failed[0] and "head and tail" in failed[0]
    assert result.notices[-1] == failed[0]  # kept in the result too, for code that only looks at run()


async def test_results_under_the_threshold_and_errors_are_not_condensed() -> None:
    def answer(request: Mapping[str, Any]) -> Reply:
        done = sum(1 for m in request["messages"] if m["role"] == "assistant")
        return turn(call("small", part=1), call("small", part="x")) if done == 0 else say("done")

    main, cheap = FunctionModel(answer), summarizer()
    client = emulated_client({SONNET: main, HAIKU: cheap})
    result = await Agent(SONNET, system=SYSTEM, tools=[small], client=client, tiers=Tiers()).run("go")
    assert result.ok
    assert cheap.requests == []
    assert len(result.calls) == result.iterations == 2


async def test_side_calls_are_budgeted_but_are_not_iterations() -> None:
    main, cheap = FunctionModel(dumps_then_answer(2)), summarizer()
    client = emulated_client({SONNET: main, HAIKU: cheap})
    agent = Agent(SONNET, system=SYSTEM, tools=[dump], client=client, tiers=Tiers())
    result = await agent.run("go", budget=Budget(max_iterations=3))
    assert result.ok  # 3 conversation calls and 2 side calls under max_iterations=3
    assert result.iterations == 3 and len(result.calls) == 5


async def test_a_side_call_the_budget_cannot_afford_is_not_made() -> None:
    main, cheap = FunctionModel(dumps_then_answer(1)), summarizer()
    client = emulated_client({SONNET: main, HAIKU: cheap})
    agent = Agent(SONNET, system=SYSTEM, tools=[dump], client=client, tiers=Tiers())
    events, result = await events_of(agent, budget=Budget(max_input_tokens=30_000))
    assert cheap.requests == []
    refused = [e.message for e in events if isinstance(e, Notice) and "side call failed" in e.message]
    assert refused and "max_input_tokens" in refused[0]
    assert "tokens cut from the middle of this result" in results_sent(main.requests[1])[0]
    assert result.usage.prompt_tokens <= 30_000


async def test_a_usd_budget_needs_a_price_for_the_cheap_model() -> None:
    agent = Agent(SONNET, client=FunctionModel(dumps_then_answer(0)).client(), tiers=Tiers(cheap="claude-unknown-1"))
    with pytest.raises(Exception, match="needs a price for model 'claude-unknown-1'"):
        await agent.run("go", budget=Budget(usd=1))


def reader(turns: int) -> Callable[[Mapping[str, Any]], Reply]:
    def answer(request: Mapping[str, Any]) -> Reply:
        done = parts_read(request)
        return say("done") if done >= turns else turn(call("small", part=done))

    return answer


async def test_compaction_summaries_are_written_by_the_cheap_model() -> None:
    main, cheap = FunctionModel(reader(30)), summarizer("They read 20 services; all were degraded.")
    client = emulated_client({SONNET: main, HAIKU: cheap})
    compaction = Compaction(trigger_tokens=20_000, strategy="drop_turns")
    agent = Agent(SONNET, system=SYSTEM, tools=[small], client=client, compaction=compaction, tiers=Tiers())
    events, result = await events_of(agent)
    assert result.ok
    compacted = [e for e in events if isinstance(e, Compacted)]
    assert compacted and all(e.summarized_by == HAIKU for e in compacted)
    side = [r for r in result.calls if r.notes.get("side_call") == "compaction_summary"]
    assert [r.iteration for r in side] == [e.iteration for e in compacted]
    note = json.dumps(main.requests[compacted[0].iteration - 1]["messages"][1])
    assert NOTE_PREFIX in note and "A summary of them by claude-haiku-4-5" in note and "all were degraded" in note
    assert not [e for e in events if isinstance(e, CacheMissed)]


def route_at(iteration: int, answer: str | Switch) -> Callable[[Step], str | Switch | None]:
    return lambda step: answer if step.iteration == iteration else None


async def test_a_switch_that_does_not_pay_off_is_refused_and_priced() -> None:
    main = FunctionModel(reader(6))
    client = emulated_client({SONNET: main, HAIKU: FunctionModel(reader(6))})
    tiers = Tiers(route=route_at(4, "claude-opus-4-6"))  # dearer: it never pays off
    events, result = await events_of(Agent(SONNET, system=SYSTEM, tools=[small], client=client, tiers=tiers))
    assert result.ok
    assert {r.model for r in result.calls} == {SONNET}
    refused = [e.message for e in events if isinstance(e, Notice) and "model switch" in e.message]
    assert len(refused) == 1 and refused[0].startswith("model switch refused")
    assert "claude-sonnet-4-6 -> claude-opus-4-6 rewrites ~" in refused[0]


async def test_a_forced_switch_moves_the_conversation_and_is_not_a_cache_miss() -> None:
    main, cheap = FunctionModel(reader(6)), FunctionModel(reader(6))
    client = emulated_client({SONNET: main, HAIKU: cheap})
    tiers = Tiers(route=route_at(4, Switch(HAIKU, force=True)))
    events, result = await events_of(Agent(SONNET, system=SYSTEM, tools=[small], client=client, tiers=tiers))
    assert result.ok
    assert [r.model for r in result.calls] == [SONNET] * 3 + [HAIKU] * 4
    switch = result.calls[3].notes["model_switch"]
    assert (switch["from"], switch["forced"]) == (SONNET, True) and switch["rewrite_tokens"] > 2_000
    assert not [e for e in events if isinstance(e, CacheMissed)]
    made = [e.message for e in events if isinstance(e, Notice) and "model switch" in e.message]
    assert len(made) == 1 and made[0].startswith("model switch (forced)")


async def test_a_resumed_run_continues_on_the_model_the_conversation_was_moved_to() -> None:
    main, cheap = FunctionModel(reader(6)), FunctionModel(reader(6))
    client = emulated_client({SONNET: main, HAIKU: cheap})
    tiers = Tiers(route=route_at(2, Switch(HAIKU, force=True)))
    agent = Agent(SONNET, system=SYSTEM, tools=[small], client=client, tiers=tiers)
    first = await agent.run("go", budget=Budget(max_iterations=3))
    assert first.stop.reason == "max_iterations"
    assert [r.model for r in first.calls] == [SONNET, HAIKU, HAIKU]
    assert first.state.model == HAIKU
    events, resumed = await events_of(agent, None, resume=first.state)
    assert resumed.ok
    assert {r.model for r in resumed.calls} == {HAIKU}  # where its cache is, not back to the agent's model
    assert resumed.calls[0].usage.cache_read_tokens > 0
    assert not [e for e in events if isinstance(e, CacheMissed)]
    assert resumed.state.model == HAIKU


async def test_a_switch_that_pays_off_is_made() -> None:
    """Early in a long run, Haiku's lower prices repay the rewrite of a small prompt within the calls left."""
    main, cheap = FunctionModel(reader(6)), FunctionModel(reader(6))
    client = emulated_client({SONNET: main, HAIKU: cheap})
    tiers = Tiers(route=route_at(2, HAIKU))
    events, result = await events_of(Agent(SONNET, system=SYSTEM, tools=[small], client=client, tiers=tiers))
    assert result.ok
    assert [r.model for r in result.calls] == [SONNET] + [HAIKU] * 6
    made = [e.message for e in events if isinstance(e, Notice) and "model switch" in e.message]
    assert made and made[0].startswith("model switch: ") and "it pays off after" in made[0]


async def test_a_switch_to_a_model_without_a_price_is_refused() -> None:
    main = FunctionModel(reader(3))
    tiers = Tiers(route=route_at(2, "claude-unknown-1"))
    events, result = await events_of(Agent(SONNET, system=SYSTEM, tools=[small], client=main.client(), tiers=tiers))
    assert result.ok
    assert [e.message for e in events if isinstance(e, Notice) and "claude-unknown-1" in e.message] == [
        "model switch to claude-unknown-1 refused: no price known for 'claude-unknown-1', so it cannot be priced"
    ]


async def test_the_trace_never_holds_the_clients_key(tmp_path: Path) -> None:
    """A gateway key has no vendor shape: it is redacted because it is the key the client was given."""
    key = "gw.live.Xq7Lm2Pz9Rt4Vb8Nc3"

    def leak(part: int) -> str:
        """Show the connection settings.

        Args:
            part: Which service.
        """
        return f"connected to the gateway as {key}\n" * 2000  # over the cap: the full output goes to the trace

    def answer(request: Mapping[str, Any]) -> Reply:
        return turn(call("leak", part=1)) if len(request["messages"]) == 1 else say(f"the key was {key}")

    client = async_client(create_app({SONNET: FunctionModel(answer)}), api_key=key, max_retries=0)
    result = await Agent(SONNET, tools=[leak], client=client, trace=tmp_path / "t.jsonl").run("go")
    assert result.ok
    written = (tmp_path / "t.jsonl").read_text()
    assert key not in written
    assert "[REDACTED]" in written
