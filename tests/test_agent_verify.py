"""Cache verification on the first call of a run: a resumed run against the state it resumes, a new run against
the agent's previous run (the shared tools + system prefix), with the changed block named and shown."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest

from leanloop.agent import Agent, CacheMissed
from leanloop.emulator import ManualClock, create_app
from leanloop.emulator.serving import async_client
from leanloop.testing import FunctionModel, call, say

pytestmark = pytest.mark.anyio
MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a careful operator. Use the tools, then answer briefly and precisely. " * 120


def handler(q: str) -> str:
    return "r" * 10


def alpha(description: str = "Alpha tool.") -> tuple[dict[str, Any], Any]:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    return {"name": "alpha", "description": description + " Looks things up." * 700, "input_schema": schema}, handler


def one_tool_call_then_answer(request: Mapping[str, Any]) -> Any:
    done = sum(1 for m in request["messages"] if m["role"] == "assistant")
    return call("alpha", q="x") if done % 2 == 0 else say("done")


async def test_a_resumed_run_on_a_changed_tool_names_the_tool_with_before_and_after() -> None:
    client = FunctionModel(one_tool_call_then_answer).client()
    first = await Agent(MODEL, system="sys", tools=[alpha()], client=client).run("go")
    changed = Agent(MODEL, system="sys", tools=[alpha("Alpha tool, v2.")], client=client)
    events = [e async for e in changed.stream("again", resume=first.state)]
    misses = [e for e in events if isinstance(e, CacheMissed)]
    assert misses and misses[0].iteration == first.iterations + 1  # the resumed run's first call
    change = misses[0].miss.change
    assert change is not None and change.path == "tools.0"
    assert change.before is not None and change.after is not None and "v2" in change.after
    assert "tools.0 changed" in misses[0].miss.reason


async def test_a_resumed_run_on_another_model_says_the_model_switched() -> None:
    other = "claude-opus-4-8"
    both = create_app({MODEL: one_tool_call_then_answer, other: one_tool_call_then_answer})
    client = async_client(both, max_retries=0)
    first = await Agent(MODEL, system=SYSTEM, tools=[alpha()], client=client).run("go")
    resumed = await Agent(other, system=SYSTEM, tools=[alpha()], client=client).run("again", resume=first.state)
    assert resumed.cache_misses
    assert resumed.cache_misses[0].reason.startswith(f"model switched from {MODEL} to {other}")


async def test_a_new_run_compares_its_prefix_with_the_previous_run(caplog: pytest.LogCaptureFixture) -> None:
    system = [{"type": "text", "text": SYSTEM + " Version 1."}]
    agent = Agent(MODEL, system=system, tools=[alpha()], client=FunctionModel(one_tool_call_then_answer).client())
    first = await agent.run("go")
    assert not first.cache_misses
    unchanged = await agent.run("go on")
    assert not unchanged.cache_misses and unchanged.calls[0].usage.cache_read_tokens > 0
    system[0] = {"type": "text", "text": SYSTEM + " Version 2."}  # an app that edits the system prompt per run
    with caplog.at_level(logging.WARNING, logger="leanloop"):
        edited = await agent.run("and again")
    assert len(edited.cache_misses) == 1
    change = edited.cache_misses[0].change
    assert change is not None and change.path == "system.0"
    assert change.before is not None and "1" in change.before and change.after is not None and "2" in change.after
    assert any("system.0 changed" in r.getMessage() for r in caplog.records)


async def test_a_new_run_that_finds_the_prefix_evicted_says_so() -> None:
    clock = ManualClock()
    client = async_client(create_app({MODEL: one_tool_call_then_answer}, clock=clock), max_retries=0)
    agent = Agent(MODEL, system=SYSTEM, tools=[alpha()], client=client)
    await agent.run("go")
    clock.advance(400)  # the emulator's cache expired, but by the real clock the prefix is within its TTL
    later = await agent.run("later")
    assert later.calls[0].usage.cache_read_tokens == 0
    assert len(later.cache_misses) == 1
    assert later.cache_misses[0].change is None and "evicted early" in later.cache_misses[0].reason


async def test_concurrent_first_calls_are_not_misses() -> None:
    import asyncio

    agent = Agent(MODEL, system=SYSTEM, tools=[alpha()], client=FunctionModel(one_tool_call_then_answer).client())
    results = await asyncio.gather(*(agent.run(f"task {i}") for i in range(4)))
    assert all(not r.cache_misses for r in results)


async def test_warnings_that_repeat_every_run_are_logged_once_per_agent(caplog: pytest.LogCaptureFixture) -> None:
    agent = Agent(
        MODEL,
        system="Be brief. Session started 2026-12-03T12:03:07Z.",
        client=FunctionModel(lambda request: say("ok")).client(),
    )
    with caplog.at_level(logging.WARNING, logger="leanloop"):
        results = [await agent.run(f"task {i}") for i in range(5)]
    logged = [r.getMessage() for r in caplog.records]
    assert sum("timestamp" in m for m in logged) == 1
    assert sum("minimum cacheable length" in m for m in logged) == 1
    for result in results:  # every run still reports them
        assert any("timestamp" in n for n in result.notices)
        assert any("minimum cacheable length" in n for n in result.notices)


async def test_a_miss_on_a_rotated_credential_logs_no_credential(caplog: pytest.LogCaptureFixture) -> None:
    def system(key: str) -> list[dict[str, str]]:
        return [{"type": "text", "text": SYSTEM + f" Call the API with sk-ant-api03-{key * 30}."}]

    prompt = system("A")
    agent = Agent(MODEL, system=prompt, tools=[alpha()], client=FunctionModel(one_tool_call_then_answer).client())
    await agent.run("go")
    prompt[:] = system("B")  # the app put a fresh key in the prompt
    with caplog.at_level(logging.WARNING, logger="leanloop"):
        edited = await agent.run("again")
    assert edited.cache_misses and "system.0 changed" in edited.cache_misses[0].reason
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "system.0 changed" in logged and "AAAA" not in logged and "BBBB" not in logged
    assert not any("AAAA" in n or "BBBB" in n for n in edited.notices)  # the volatile-content lint quotes it too
