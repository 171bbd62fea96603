"""The loop's handling of each turn, beyond the happy path: discarded text on a max_tokens retry, an empty
end_turn, pause_turn continuations, resuming with a new task or after a cut turn, tool results (errors capped,
content blocks, each one reported as it finishes), and how API errors are described."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping
from typing import Any

import pytest

from leanloop.agent import Agent, TextDelta, ToolFinished, TurnDiscarded
from leanloop.emulator import create_app
from leanloop.emulator.faults import Fault, FaultRule
from leanloop.emulator.policies import Reply
from leanloop.emulator.serving import async_client
from leanloop.limits import Budget
from leanloop.testing import FunctionModel, ScriptedModel, call, say, turn

pytestmark = pytest.mark.anyio
MODEL = "claude-sonnet-4-6"


def write(path: str, body: str) -> str:
    """Write a file.

    Args:
        path: Where.
        body: What.
    """
    return "written"


def long_call_then_done(request: Mapping[str, Any]) -> Reply:
    done = sum(1 for m in request["messages"] if m["role"] == "assistant")
    return turn("Writing the file now.", call("write", path="/a", body="lorem " * 300)) if done == 0 else say("done")


async def test_a_retried_turn_tells_the_stream_its_text_is_discarded() -> None:
    agent = Agent(MODEL, tools=[write], max_tokens=200, client=FunctionModel(long_call_then_done).client())
    events = [e async for e in agent.stream("go")]
    kinds = [type(e).__name__ for e in events]
    discarded = [e for e in events if isinstance(e, TurnDiscarded)]
    assert len(discarded) == 1
    assert discarded[0].iteration == 1 and discarded[0].text == "Writing the file now."
    first_text = kinds.index("TextDelta")
    assert first_text < kinds.index("TurnDiscarded") < max(i for i, k in enumerate(kinds) if k == "TextDelta")
    shown = "".join(e.text for e in events if isinstance(e, TextDelta) and e.iteration > 1)
    assert shown.startswith("Writing the file now.")  # the retry streams it again, as iteration 2


async def test_resume_after_a_turn_cut_twice_asks_again() -> None:
    model = FunctionModel(long_call_then_done)
    agent = Agent(MODEL, tools=[write], max_tokens=100, client=model.client())
    first = await agent.run("go")
    assert first.stop.reason == "error" and "twice" in first.stop.detail
    assert first.messages[-1]["role"] == "user"  # the cut turn is not kept: nothing half-written to resume from
    bigger = Agent(MODEL, tools=[write], max_tokens=2000, client=model.client())
    resumed = await bigger.run(resume=first.state)
    assert resumed.ok and resumed.answer == "done"


async def test_an_empty_end_turn_gets_one_nudge() -> None:
    model = ScriptedModel(turn(call("write", path="/a", body="x")), Reply([], "end_turn"), say("All written."))
    result = await Agent(MODEL, tools=[write], client=model.client()).run("go")
    model.assert_done()
    assert result.ok and result.answer == "All written."
    nudged = model.requests[2]["messages"][-1]
    assert [b["type"] for b in nudged["content"]] == ["tool_result", "text"]  # results first, then the nudge
    assert nudged["content"][-1]["text"] == "Please continue."


async def test_an_empty_end_turn_twice_is_not_a_success() -> None:
    model = FunctionModel(lambda request: Reply([], "end_turn"))
    result = await Agent(MODEL, client=model.client()).run("go")
    assert not result.ok
    assert result.stop.reason == "error" and "empty end_turn" in result.stop.detail
    assert len(model.requests) == 2


async def test_pause_turn_continuations_join_the_paused_assistant_message() -> None:
    parts = iter(["part 1", "part 2"])

    def pause_then_done(request: Mapping[str, Any]) -> Reply:
        part = next(parts, None)
        return Reply([{"type": "text", "text": part}], "pause_turn") if part else say("final")

    model = FunctionModel(pause_then_done)
    result = await Agent(MODEL, client=model.client()).run("go")
    assert result.ok
    roles = [m["role"] for m in model.requests[-1]["messages"]]
    assert roles == ["user", "assistant"]
    assert [b["text"] for b in result.messages[-1]["content"]] == ["part 1", "part 2", "final"]


async def test_resuming_with_a_new_task_after_tool_results_sends_one_user_message() -> None:
    model = ScriptedModel(turn(call("write", path="/a", body="x")), say("done"))
    agent = Agent(MODEL, tools=[write], client=model.client())
    first = await agent.run("go", budget=Budget(max_iterations=1))
    assert first.stop.reason == "max_iterations"
    resumed = await agent.run("and then stop", resume=first.state)
    last = model.requests[-1]["messages"][-1]
    assert [b["type"] for b in last["content"]] == ["tool_result", "text"]
    roles = [m["role"] for m in resumed.messages]
    assert all(a != b for a, b in itertools.pairwise(roles))


def boom() -> str:
    """Fails loudly."""
    raise RuntimeError("stack trace line\n" * 30_000)


async def test_tool_errors_are_capped_like_results_and_the_full_text_goes_to_the_trace(tmp_path: Any) -> None:
    from leanloop.trace import read_trace

    trace = tmp_path / "run.jsonl"
    model = ScriptedModel(turn(call("boom")), say("done"))
    agent = Agent(MODEL, tools=[boom], client=model.client(), tool_result_max_tokens=1000, trace=trace)
    result = await agent.run("go")
    block = result.messages[2]["content"][0]
    assert block["is_error"] and "tokens cut from the middle" in block["content"]
    assert len(block["content"]) < 10_000
    assert result.calls[1].usage.prompt_tokens < 3000
    full = [e for e in read_trace(trace).events if e["kind"] == "tool_output"]
    assert len(full) == 1 and full[0]["output"].count("stack trace line") == 30_000


def chart(title: str) -> list[dict[str, Any]]:
    """Draw a chart.

    Args:
        title: Its title.
    """
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    return [
        {"type": "text", "text": f"chart: {title}"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
    ]


def as_list(numbers: str) -> list[dict[str, Any]]:
    """Some data that merely looks like a list of dicts.

    Args:
        numbers: Ignored.
    """
    return [{"type": "row", "value": 1}]


async def test_tools_may_return_content_blocks_and_a_str_stays_a_str() -> None:
    model = ScriptedModel(
        turn(call("chart", title="errors"), call("as_list", numbers="1"), call("write", path="a", body="b")), say("ok")
    )
    result = await Agent(MODEL, tools=[chart, as_list, write], client=model.client()).run("go")
    blocks, data, text = result.messages[2]["content"]
    assert [b["type"] for b in blocks["content"]] == ["text", "image"]
    assert blocks["content"][1]["source"]["media_type"] == "image/png"
    assert data["content"] == '[{"type":"row","value":1}]'  # not content blocks: JSON text
    assert text["content"] == "written"
    sent = model.requests[1]["messages"][2]["content"][0]
    assert isinstance(sent["content"], list) and sent["content"][1]["type"] == "image"


async def test_tool_finished_is_sent_as_each_tool_completes() -> None:
    async def nap(seconds: float) -> str:
        """Sleep.

        Args:
            seconds: How long.
        """
        await asyncio.sleep(seconds)
        return f"slept {seconds}"

    model = ScriptedModel(turn(call("nap", seconds=0.4), call("nap", seconds=0.05)), say("done"))
    agent = Agent(MODEL, tools=[nap], client=model.client())
    finished: list[tuple[str, float]] = []
    started = time.perf_counter()
    result = None
    async for event in agent.stream("go"):
        if isinstance(event, ToolFinished):
            finished.append((str(event.outcome.content), time.perf_counter() - started))
        result = event
    assert [name for name, _ in finished] == ["slept 0.05", "slept 0.4"]  # the quick one first, at once
    assert finished[0][1] < 0.3
    assert result is not None
    contents = [b["content"] for b in result.result.messages[2]["content"]]  # type: ignore[union-attr]
    assert contents == ["slept 0.4", "slept 0.05"]  # the transcript keeps tool_use order


async def test_api_errors_say_whether_anything_was_retried() -> None:
    unknown = await Agent("claude-opus-4-8", client=ScriptedModel(say("x")).client(MODEL)).run("go")
    assert unknown.stop.reason == "error" and "(404)" in unknown.stop.detail
    assert "retr" not in unknown.stop.detail  # a 404 is never retried
    crashed = await Agent(MODEL, client=FunctionModel(lambda request: 1 / 0).client()).run("go")
    assert "(500) (the server said not to retry)" in crashed.stop.detail
    overloaded = [FaultRule(Fault("overloaded", retry_after=0.01), nth=frozenset({1, 2, 3}))]
    for retries, said in ((0, "(the client does not retry: max_retries=0)"), (2, "after the SDK's 2 retries")):
        client = async_client(create_app({MODEL: lambda request: say("x")}, faults=overloaded), max_retries=retries)
        result = await Agent(MODEL, client=client).run("go")
        assert f"(529) {said}" in result.stop.detail or f"(529){said}" in result.stop.detail, result.stop.detail


async def test_a_stop_on_a_cap_names_the_cap_once() -> None:
    endless = FunctionModel(lambda request: turn(call("write", path="/a", body=str(len(request["messages"])))))
    agent = Agent(MODEL, tools=[write], client=endless.client())
    capped = await agent.run("go", budget=Budget(max_iterations=2))
    assert str(capped.stop) == "max_iterations: reached max_iterations=2"
    by_tokens = await agent.run("go", budget=Budget(max_input_tokens=10))
    assert by_tokens.stop.reason == "budget" and by_tokens.stop.cap == "max_input_tokens"
    assert str(by_tokens.stop).startswith("budget: max_input_tokens: the next prompt")
