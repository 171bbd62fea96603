"""The agent loop against the emulator, through the official SDK: the main paths, every stop, and streaming."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from leanloop.agent import (
    Agent,
    CacheMissed,
    CallFinished,
    Finished,
    Notice,
    RunResult,
    TextDelta,
    ToolFinished,
    ToolStarted,
)
from leanloop.emulator import Emulator, Faults, ManualClock, create_app
from leanloop.emulator.faults import Fault, FaultRule
from leanloop.emulator.policies import Reply
from leanloop.emulator.serving import async_client
from leanloop.limits import Budget
from leanloop.testing import FunctionModel, ScriptedModel, call, say, turn
from leanloop.trace import read_trace

pytestmark = pytest.mark.anyio
MODEL = "claude-sonnet-4-6"
LONG_SYSTEM = "You are an on-call SRE assistant. Read logs with the tools, then explain the failure briefly. " * 110


def lookup(key: str) -> str:
    """Look up a key.

    Args:
        key: What to look up.
    """
    return f"value of {key}: " + "the quick brown fox jumps over the lazy dog " * 40


def assert_valid_transcript(messages: list[Mapping[str, Any]]) -> None:
    """Every tool_use is answered exactly once, by the next message, with tool_result blocks first."""
    for index, message in enumerate(messages):
        content = message["content"]
        uses = [b["id"] for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
        if not uses:
            continue
        assert index + 1 < len(messages), "the transcript ends with an unanswered tool_use"
        reply = messages[index + 1]["content"]
        results = [b["tool_use_id"] for b in reply if b.get("type") == "tool_result"]
        assert results == uses
        assert all(b.get("type") == "tool_result" for b in reply[: len(results)])


async def test_tool_loop_finishes_with_answer_ledger_and_valid_transcript() -> None:
    model = ScriptedModel(
        turn("Looking.", call("lookup", key="a"), call("lookup", key="b")),
        turn(call("lookup", key="c")),
        say("The answer is 42."),
    )
    agent = Agent(MODEL, system=LONG_SYSTEM, tools=[lookup], client=model.client())
    result = await agent.run("Find it")
    model.assert_done()
    assert result.ok
    assert result.stop.reason == "end_turn"
    assert result.answer == "The answer is 42."
    assert result.iterations == 3
    assert result.tool_calls == 3
    assert [c.iteration for c in result.calls] == [1, 2, 3]
    assert result.cost.total == sum(c.cost.total for c in result.calls) > 0
    assert_valid_transcript(result.messages)
    # parallel calls of one turn: all results in one user message, in tool_use order
    first_results = result.messages[2]["content"]
    assert [b["content"].split(":")[0] for b in first_results] == ["value of a", "value of b"]


async def test_cache_reads_on_every_call_after_the_first_and_breakpoints_are_placed() -> None:
    model = ScriptedModel(*[turn(call("lookup", key=str(i))) for i in range(4)], say("done"))
    agent = Agent(MODEL, system=LONG_SYSTEM, tools=[lookup], client=model.client())
    result = await agent.run("go")
    reads = [c.usage.cache_read_tokens for c in result.calls]
    writes = [c.usage.cache_write_tokens for c in result.calls]
    assert reads[0] == 0 and writes[0] > 2048
    assert all(r > 0 for r in reads[1:])
    # each call reads everything the previous one cached: the cached prefix only extends
    for before, after in zip(result.calls, result.calls[1:], strict=False):
        assert after.usage.cache_read_tokens == before.usage.cache_read_tokens + before.usage.cache_write_tokens
    assert result.cache_hit_rate > 0.6
    assert not result.cache_misses
    sent = model.requests[1]
    assert sent["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "5m"}
    assert "cache_control" not in sent["tools"][-1]  # tools alone are below the minimum: no slot spent on them
    assert sent["messages"][-1]["content"][-1]["cache_control"]["type"] == "ephemeral"
    marks = json.dumps(sent).count('"cache_control"')
    assert marks <= 4


async def test_one_hour_ttl_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENABLE_PROMPT_CACHING_1H", "1")
    model = ScriptedModel(turn(call("lookup", key="x")), say("done"))
    result = await Agent(MODEL, system=LONG_SYSTEM, tools=[lookup], client=model.client()).run("go")
    for request in model.requests:
        ttls = {m["ttl"] for m in _marks(request)}
        assert ttls == {"1h"}
    assert result.calls[0].usage.cache_write_1h_tokens > 0
    assert result.calls[0].usage.cache_write_5m_tokens == 0


async def test_automatic_caching_counts_as_a_slot_and_works_with_one_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENABLE_PROMPT_CACHING_1H", "1")
    model = ScriptedModel(*[turn(call("lookup", key=str(i))) for i in range(3)], say("done"))
    auto = {"cache_control": {"type": "ephemeral"}}
    agent = Agent(MODEL, system=LONG_SYSTEM, tools=[lookup], client=model.client(), params=auto)
    result = await agent.run("go")
    assert result.ok, result.stop
    for request in model.requests:
        assert len(_marks(request)) <= 4  # the explicit marks and the top-level one
        assert request["cache_control"] == {"type": "ephemeral"}
    assert all(c.usage.cache_read_tokens > 0 for c in result.calls[1:])


def _marks(value: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        if "cache_control" in value:
            found.append(value["cache_control"])
        for item in value.values():
            found += _marks(item)
    elif isinstance(value, list):
        for item in value:
            found += _marks(item)
    return found


async def test_small_prompt_spends_no_breakpoint_and_says_so_once() -> None:
    model = ScriptedModel(turn(call("lookup", key="x")), say("done"))
    events = [e async for e in Agent(MODEL, system="Be brief.", client=model.client(), tools=[lookup]).stream("go")]
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert len([n for n in notices if "minimum cacheable length" in n]) == 1
    assert _marks(model.requests[0]) == []


async def test_stream_forwards_answer_text_never_tool_json_and_run_drains_it() -> None:
    model = ScriptedModel(turn("Checking the pods now.", call("lookup", key="secret-json-key")), say("All good."))
    agent = Agent(MODEL, system=LONG_SYSTEM, tools=[lookup], client=model.client())
    events = [e async for e in agent.stream("go")]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Checking the pods now.All good."
    assert "secret-json-key" not in text
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("TextDelta") < kinds.index("CallFinished") < kinds.index("ToolStarted")
    assert kinds.index("ToolStarted") < kinds.index("ToolFinished")
    assert isinstance(events[-1], Finished)
    assert next(e for e in events if isinstance(e, ToolStarted)).use.input == {"key": "secret-json-key"}


async def test_parallel_tools_run_concurrently_in_order() -> None:
    async def slow_async(name: str) -> str:
        """Wait, then echo.

        Args:
            name: Echoed back.
        """
        await asyncio.sleep(0.2)
        return name

    def slow_sync(name: str) -> str:
        """Block, then echo.

        Args:
            name: Echoed back.
        """
        time.sleep(0.2)
        return name

    model = ScriptedModel(
        turn(
            *[call("slow_async", name=f"a{i}") for i in range(4)], *[call("slow_sync", name=f"s{i}") for i in range(4)]
        ),
        say("done"),
    )
    agent = Agent(MODEL, tools=[slow_async, slow_sync], client=model.client())
    started = time.perf_counter()
    result = await agent.run("go")
    elapsed = time.perf_counter() - started
    assert elapsed < 0.6  # eight 0.2 s tools, sequentially 1.6 s
    contents = [b["content"] for b in result.messages[2]["content"]]
    assert contents == [f"a{i}" for i in range(4)] + [f"s{i}" for i in range(4)]


async def test_tool_errors_timeouts_bad_arguments_and_unknown_tools_become_is_error_results() -> None:
    def broken(path: str) -> str:
        """Always fails.

        Args:
            path: Ignored.
        """
        raise PermissionError(f"permission denied: {path}")

    async def hangs() -> str:
        """Never returns."""
        await asyncio.sleep(10)
        return "late"

    model = ScriptedModel(
        turn(call("broken", path="x.log"), call("hangs"), call("lookup", wrong=1), call("nope")),
        say("done"),
    )
    agent = Agent(MODEL, tools=[broken, hangs, lookup], client=model.client(undeclared_tools="serve"), tool_timeout=0.2)
    result = await agent.run("go")
    results = result.messages[2]["content"]
    assert all(r["is_error"] for r in results)
    assert results[0]["content"] == "permission denied: x.log"
    assert "timed out after 0.2 s" in results[1]["content"]
    assert "invalid arguments" in results[2]["content"] and "key" in results[2]["content"]
    assert "unknown tool 'nope'" in results[3]["content"]
    assert result.ok


async def test_loop_guard_stops_the_repeated_failing_call() -> None:
    def read_pod_logs(namespace: str, pod: str) -> str:
        """Read logs.

        Args:
            namespace: Namespace.
            pod: Pod.
        """
        raise PermissionError(f"permission denied: {namespace}/{pod}.log")

    stubborn = FunctionModel(lambda request: turn(call("read_pod_logs", namespace="payments", pod="ledger")))
    agent = Agent(MODEL, system=LONG_SYSTEM, tools=[read_pod_logs], client=stubborn.client())
    result = await agent.run("read the ledger logs")
    assert result.stop.reason == "loop_guard"
    assert "read_pod_logs" in result.stop.detail and "permission denied" in result.stop.detail
    assert result.iterations == 4  # three failures, then the repeat is refused without running it
    assert result.tool_calls == 3
    told = [b["content"] for m in result.messages if m["role"] == "user" for b in m["content"] if isinstance(b, dict)]
    assert sum("has now failed 3 times" in str(c) for c in told) == 1
    assert_valid_transcript(result.messages)


async def test_budget_usd_is_never_crossed_and_stops_before_the_call() -> None:
    stubborn = FunctionModel(lambda request: turn("More.", call("lookup", key=str(len(request["messages"])))))
    agent = Agent(MODEL, system=LONG_SYSTEM, tools=[lookup], client=stubborn.client(), max_tokens=2000)
    result = await agent.run("go", budget=Budget(usd=0.05, max_iterations=200))
    assert result.stop.reason == "budget"
    assert "usd" in result.stop.detail
    assert result.cost.total <= 0.05
    assert_valid_transcript(result.messages)
    lowered = [r["max_tokens"] for r in stubborn.requests]
    assert lowered[-1] <= 2000


async def test_max_iterations_then_resume_continues_the_same_run() -> None:
    steps = [turn(call("lookup", key=str(i))) for i in range(5)]
    model = ScriptedModel(*steps, say("finished"))
    agent = Agent(MODEL, system=LONG_SYSTEM, tools=[lookup], client=model.client())
    first = await agent.run("go", budget=Budget(max_iterations=2))
    assert first.stop.reason == "max_iterations"
    assert first.iterations == 2
    assert_valid_transcript(first.messages)
    second = await agent.run(resume=first.state, budget=Budget(max_iterations=10))
    model.assert_done()
    assert second.ok and second.answer == "finished"
    assert second.state.run_id == first.state.run_id
    assert [c.iteration for c in second.calls] == [3, 4, 5, 6]
    assert second.messages[: len(first.messages)] == first.messages
    assert second.calls[0].usage.cache_read_tokens > 0  # resuming within the TTL reads the cached prefix


async def test_max_tool_calls_stops_and_answers_the_pending_calls() -> None:
    model = ScriptedModel(turn(call("lookup", key="a"), call("lookup", key="b"), call("lookup", key="c")))
    result = await Agent(MODEL, tools=[lookup], client=model.client()).run("go", budget=Budget(max_tool_calls=2))
    assert result.stop.reason == "budget"
    assert "max_tool_calls" in result.stop.detail
    assert_valid_transcript(result.messages)
    assert all("not executed" in b["content"] for b in result.messages[-1]["content"])


async def test_token_caps_and_wall_time() -> None:
    model = FunctionModel(lambda request: turn(call("lookup", key="k")))
    agent = Agent(MODEL, tools=[lookup], client=model.client())
    by_input = await agent.run("go", budget=Budget(max_input_tokens=3000))
    assert by_input.stop.reason == "budget" and "max_input_tokens" in by_input.stop.detail
    assert by_input.usage.prompt_tokens <= 3000
    by_output = await agent.run("go", budget=Budget(max_output_tokens=200))
    assert by_output.usage.output_tokens <= 200
    by_wall = await agent.run("go", budget=Budget(max_wall_seconds=0.3, max_iterations=None))
    assert by_wall.stop.reason == "budget" and "max_wall_seconds" in by_wall.stop.detail


async def test_truncated_tool_call_is_never_run_and_is_retried_with_more_room() -> None:
    ran: list[str] = []

    def write_report(body: str) -> str:
        """Write a report.

        Args:
            body: The report.
        """
        ran.append(body)
        return "saved"

    model = ScriptedModel(
        turn(call("write_report", body="word " * 300)),
        turn(call("write_report", body="word " * 300)),
        say("done"),
    )
    result = await Agent(MODEL, tools=[write_report], client=model.client(), max_tokens=100).run("go")
    assert result.calls[0].stop_reason == "max_tokens"
    assert model.requests[1]["max_tokens"] == 200 or model.requests[1]["max_tokens"] > 100
    assert len(ran) <= 1  # the cut call never ran
    assert_valid_transcript(result.messages)


async def test_other_stop_reasons() -> None:
    refused = ScriptedModel(Reply([{"type": "text", "text": "I can't help with that."}], "refusal"))
    result = await Agent(MODEL, client=refused.client()).run("go")
    assert result.stop.reason == "refused"
    window = ScriptedModel(Reply([{"type": "text", "text": "…"}], "model_context_window_exceeded"))
    result = await Agent(MODEL, client=window.client()).run("go")
    assert result.stop.reason == "error" and "context window" in result.stop.detail
    paused = ScriptedModel(Reply([{"type": "text", "text": "working"}], "pause_turn"), say("resumed and done"))
    result = await Agent(MODEL, client=paused.client()).run("go")
    assert result.ok and result.answer == "resumed and done"
    assert paused.requests[1]["messages"][-1]["role"] == "assistant"
    weird = ScriptedModel(Reply([{"type": "text", "text": "?"}], "brand_new_reason"))
    result = await Agent(MODEL, client=weird.client()).run("go")
    assert result.stop.reason == "error" and "brand_new_reason" in result.stop.detail


async def test_scripted_model_fails_loudly_on_an_unexpected_call() -> None:
    model = ScriptedModel(turn(call("lookup", key="a")))
    result = await Agent(MODEL, tools=[lookup], client=model.client()).run("go")
    assert result.stop.reason == "error"
    assert "unexpected call #2" in result.stop.detail
    with pytest.raises(AssertionError, match="unexpected call"):
        model.assert_done()
    unused = ScriptedModel(say("a"), say("b"))
    await Agent(MODEL, client=unused.client()).run("go")
    with pytest.raises(AssertionError, match="1 of 2 scripted steps were never used"):
        unused.assert_done()


async def test_transient_errors_are_retried_by_the_sdk_and_exhaustion_stops_with_error() -> None:
    policy = ScriptedModel(turn(call("lookup", key="a")), say("done"))
    app = create_app({MODEL: policy}, faults=[FaultRule(Fault("overloaded", retry_after=0.01), nth=frozenset({1}))])
    result = await Agent(MODEL, tools=[lookup], client=async_client(app, max_retries=2)).run("go")
    assert result.ok
    assert len(Emulator.of(app).calls) == 3  # the overloaded attempt, then two calls

    always = Faults(rules=[FaultRule(Fault("overloaded", retry_after=0.01), nth=frozenset({2, 3, 4, 5}))])
    app = create_app({MODEL: ScriptedModel(turn(call("lookup", key="a")), say("x"))}, faults=always)
    result = await Agent(MODEL, tools=[lookup], client=async_client(app, max_retries=1)).run("go")
    assert result.stop.reason == "error"
    assert "Overloaded" in result.stop.detail or "529" in result.stop.detail
    assert result.iterations == 1 and result.cost.total > 0  # what was spent is kept
    assert_valid_transcript(result.messages)


async def test_mid_stream_error_stops_with_error_and_keeps_the_ledger() -> None:
    app = create_app(
        {MODEL: ScriptedModel(turn(call("lookup", key="a")), say("x"))},
        faults=[FaultRule(Fault("overloaded_midstream"), nth=frozenset({2}))],
    )
    result = await Agent(MODEL, tools=[lookup], client=async_client(app, max_retries=2)).run("go")
    assert result.stop.reason == "error"
    assert result.iterations == 2
    assert_valid_transcript(result.messages)


async def test_cache_miss_names_the_changed_block() -> None:
    system = [{"type": "text", "text": LONG_SYSTEM}]

    def change_system(note: str) -> str:
        """Mutates the agent's system prompt, as a careless app would.

        Args:
            note: Appended.
        """
        system[0] = {"type": "text", "text": LONG_SYSTEM + f" Current time: 12:00:0{note}."}
        return "ok"

    model = ScriptedModel(turn(call("change_system", note="1")), turn(call("lookup", key="a")), say("done"))
    agent = Agent(MODEL, system=system, tools=[change_system, lookup], client=model.client())
    events = [e async for e in agent.stream("go")]
    misses = [e for e in events if isinstance(e, CacheMissed)]
    assert len(misses) == 1
    assert misses[0].iteration == 2
    assert misses[0].miss.change is not None
    assert misses[0].miss.change.path == "system.0"
    assert "Current time" in misses[0].miss.reason


async def test_ttl_expiry_is_reported_as_a_miss() -> None:
    clock = ManualClock()

    def wait_six_minutes() -> str:
        """Takes a long time."""
        clock.advance(360)
        return "done waiting"

    model = ScriptedModel(turn(call("wait_six_minutes")), say("done"))
    app = create_app({MODEL: model}, clock=clock)
    agent = Agent(MODEL, system=LONG_SYSTEM, tools=[wait_six_minutes], client=async_client(app, max_retries=0))
    result = await agent.run("go")
    assert result.calls[1].usage.cache_read_tokens == 0
    assert len(result.cache_misses) == 1


async def test_volatile_system_prompt_is_flagged_before_the_first_call() -> None:
    model = ScriptedModel(say("hi"))
    system = LONG_SYSTEM + " Session 3f2b1c9e-1234-4abc-9def-0123456789ab started 2026-12-03T12:03:07Z."
    events = [e async for e in Agent(MODEL, system=system, client=model.client()).stream("go")]
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert any("uuid" in n for n in notices)
    assert any("timestamp" in n for n in notices)
    assert isinstance(events[0], Notice)


async def test_oversized_tool_result_is_cut_and_the_full_output_goes_to_the_trace(tmp_path: Path) -> None:
    def dump() -> str:
        """Dump everything."""
        return "\n".join(f"line {i}: ERROR something failed badly at component-{i % 7}" for i in range(3000))

    model = ScriptedModel(turn(call("dump")), say("done"))
    trace = tmp_path / "run.jsonl"
    agent = Agent(MODEL, tools=[dump], client=model.client(), tool_result_max_tokens=1000, trace=trace)
    result = await agent.run("go")
    shown = result.messages[2]["content"][0]["content"]
    assert "tokens cut from the middle" in shown
    assert shown.startswith("line 0:") and shown.rstrip().endswith(
        "line 2999: ERROR something failed badly at component-3"
    )
    events = read_trace(trace).events
    full = [e for e in events if e["kind"] == "tool_output"]
    assert len(full) == 1 and full[0]["output"].count("\n") == 2999
    assert result.calls[0].tool_calls[0].truncated


async def test_trace_has_every_call_and_no_secret(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    key = "sk-ant-api03-" + "Zz9" * 20
    model = ScriptedModel(turn(call("lookup", key="a")), say("done"))
    app = create_app({MODEL: model})
    agent = Agent(MODEL, system=LONG_SYSTEM, tools=[lookup], client=async_client(app, api_key=key), trace=trace)
    result = await agent.run("go")
    text = trace.read_text()
    assert "Zz9Zz9" not in text
    read = read_trace(trace)
    assert [r.usage for r in read.records] == [c.usage for c in result.calls]
    assert read.records[0].tool_calls[0].name == "lookup"
    assert [e["kind"] for e in read.events] == ["run_start", "run_end"]
    assert read.events[-1]["stop"] == "end_turn"


async def test_cancelling_the_run_cancels_running_tools() -> None:
    state = {"started": 0, "cancelled": 0}
    both_started = asyncio.Event()

    async def long_job(n: int) -> str:
        """Runs long.

        Args:
            n: Which.
        """
        state["started"] += 1
        if state["started"] == 2:
            both_started.set()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            state["cancelled"] += 1
            raise
        return "done"

    model = ScriptedModel(turn(call("long_job", n=1), call("long_job", n=2)), say("x"))
    task = asyncio.ensure_future(Agent(MODEL, tools=[long_job], client=model.client()).run("go"))
    await asyncio.wait_for(both_started.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert state["cancelled"] == 2


async def test_call_records_carry_the_ledger() -> None:
    model = ScriptedModel(turn(call("lookup", key="a")), say("done"))
    events = [e async for e in Agent(MODEL, system=LONG_SYSTEM, tools=[lookup], client=model.client()).stream("go")]
    records = [e.record for e in events if isinstance(e, CallFinished)]
    first = records[0]
    assert first.model == MODEL
    assert first.ttft_s is not None and first.latency_s is not None and first.latency_s >= first.ttft_s
    assert first.stop_reason == "tool_use"
    assert first.message_id and first.message_id.startswith("msg_")
    assert first.request_id
    assert first.prefix and first.prefix[0].path == "tools.0"
    assert dict(first.breakpoints)
    assert first.predicted is not None
    assert first.predicted.cache_write_tokens == first.usage.cache_write_tokens  # the emulator is cachesim
    finished = [e for e in events if isinstance(e, ToolFinished)]
    assert finished[0].iteration == first.iteration == 1


def test_bad_configuration_is_named() -> None:
    from leanloop.errors import ConfigError

    with pytest.raises(ConfigError, match="model"):
        Agent("")
    with pytest.raises(ConfigError, match="without a handler"):
        Agent(MODEL, tools=[{"name": "x", "input_schema": {}}])
    with pytest.raises(ConfigError, match="usd"):
        Budget(usd=-1)


async def test_usd_budget_needs_a_known_price() -> None:
    from leanloop.errors import ConfigError

    agent = Agent("claude-unknown-9", client=ScriptedModel(say("x")).client("claude-unknown-9"))
    with pytest.raises(ConfigError, match="needs a price"):
        await agent.run("go", budget=Budget(usd=1))


def result_of(events: list[Any]) -> RunResult:
    return next(e.result for e in events if isinstance(e, Finished))


async def test_connection_dropped_mid_stream_stops_with_error_and_a_result() -> None:
    app = create_app(
        {MODEL: ScriptedModel(turn(call("lookup", key="a")), say("x"))},
        faults=[FaultRule(Fault("disconnect", after_events=3), nth=frozenset({2}))],
    )
    result = await Agent(MODEL, tools=[lookup], client=async_client(app, max_retries=2)).run("go")
    assert result.stop.reason == "error"
    assert "connection" in result.stop.detail.lower() or "disconnected" in result.stop.detail.lower()
    assert result.iterations >= 1 and result.cost.total > 0
    assert_valid_transcript(result.messages)


async def test_a_model_that_never_stops_is_capped_by_default() -> None:
    endless = FunctionModel(lambda request: turn(call("lookup", key=str(len(request["messages"])))))
    result = await Agent(MODEL, tools=[lookup], client=endless.client()).run("go")
    assert result.stop.reason == "max_iterations"
    assert result.iterations == 50
    assert_valid_transcript(result.messages)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"params": {"temperature": 0.5}}, r"'temperature'.*not a parameter of messages.create"),
        ({"params": {"model": "x"}}, "through Agent's own arguments"),
        ({"cache": "yes"}, r"Agent\(cache=...\)"),
        ({"budget": 5}, r"Agent\(budget=...\)"),
        ({"system": 5}, r"Agent\(system=...\)"),
        ({"max_concurrent_tools": 0}, "max_concurrent_tools"),
        ({"tool_timeout": -1}, "tool_timeout"),
        ({"tool_result_max_tokens": 0}, "tool_result_max_tokens"),
        ({"max_tokens": 2.5}, "max_tokens"),
    ],
)
def test_bad_agent_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    from leanloop.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        Agent(MODEL, **kwargs)


def test_duplicate_tool_names_are_an_error() -> None:
    from leanloop.errors import ConfigError
    from leanloop.tools import tool

    with pytest.raises(ConfigError, match="two tools are named 'lookup'"):
        Agent(MODEL, tools=[lookup, tool(name="lookup")(lambda: "x")])


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (b"bytes", "a string or a non-empty list of content blocks"),
        ([], "a string or a non-empty list of content blocks"),
        ("   ", "the task is empty"),
        ([{"role": "user", "content": "hi"}], "not messages"),
    ],
)
async def test_bad_tasks_are_named(task: Any, message: str) -> None:
    from leanloop.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        await Agent(MODEL, client=ScriptedModel().client()).run(task)


async def test_resume_needs_a_state_and_a_task_once_finished() -> None:
    from leanloop.errors import ConfigError

    model = ScriptedModel(say("done"), say("and more"))
    agent = Agent(MODEL, client=model.client())
    finished = await agent.run("go")
    with pytest.raises(ConfigError, match="expected the RunState"):
        await agent.run(resume="garbage")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="finished with the model's answer"):
        await agent.run(resume=finished.state)
    more = await agent.run("one more thing", resume=finished.state)
    assert more.answer == "and more"
    model.assert_done()


async def test_a_stop_quoting_a_tool_error_shows_no_credential(tmp_path: Path) -> None:
    key = "sk-ant-api03-" + "Qq7" * 20

    def fetch(url: str) -> str:
        """Fetch a URL.

        Args:
            url: Where.
        """
        raise PermissionError(f"403 from {url} with key={key}")

    model = ScriptedModel(*[turn(call("fetch", url="https://x.test"))] * 4)
    agent = Agent(MODEL, tools=[fetch], client=async_client(create_app({MODEL: model}), api_key=key))
    result = await agent.run("go")
    assert result.stop.reason == "loop_guard"
    assert "403 from https://x.test" in result.stop.detail
    assert "Qq7Qq7" not in str(result.stop)
