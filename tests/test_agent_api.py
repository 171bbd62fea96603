"""What users of other agent libraries expect: run_sync (also inside a running loop), a conversation given as
plain messages (history=), and stops as exceptions when wanted (raise_for_stop)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from leanloop.agent import Agent
from leanloop.errors import BudgetExceeded, ConfigError, RunError
from leanloop.limits import Budget
from leanloop.testing import FunctionModel, ScriptedModel, call, say, turn

MODEL = "claude-sonnet-4-6"


def lookup(key: str) -> str:
    """Look up a key.

    Args:
        key: What to look up.
    """
    return f"{key} = 42"


def test_run_sync_without_an_event_loop() -> None:
    model = ScriptedModel(turn(call("lookup", key="a")), say("a is 42"))
    result = Agent(MODEL, tools=[lookup], client=model.client()).run_sync("what is a?")
    assert result.ok and result.answer == "a is 42"
    model.assert_done()


@pytest.mark.anyio
async def test_run_sync_inside_a_running_loop_runs_on_a_worker_thread() -> None:
    model = ScriptedModel(turn(call("lookup", key="a")), say("a is 42"))
    agent = Agent(MODEL, tools=[lookup], client=model.client())
    result = agent.run_sync("what is a?")  # as in a Jupyter cell: the loop is running, asyncio.run would fail
    assert result.ok and result.answer == "a is 42"
    assert asyncio.get_running_loop().is_running()


HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "what is a?"},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"key": "a"}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a = 42"}]},
    {"role": "assistant", "content": "a is 42."},
]


@pytest.mark.anyio
async def test_history_continues_a_conversation_from_plain_messages() -> None:
    model = ScriptedModel(say("b is 7"))
    result = await Agent(MODEL, tools=[lookup], client=model.client()).run("and b?", history=HISTORY)
    assert result.ok and result.answer == "b is 7"
    sent = model.requests[0]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert result.messages[: len(HISTORY)] == HISTORY
    assert result.iterations == 1


@pytest.mark.anyio
async def test_history_ending_with_tool_results_takes_the_task_after_them_in_one_message() -> None:
    model = ScriptedModel(say("a is 42"))
    result = await Agent(MODEL, tools=[lookup], client=model.client()).run("be brief", history=HISTORY[:3])
    last = model.requests[0]["messages"][-1]
    assert last["role"] == "user"
    assert [b["type"] for b in last["content"]] == ["tool_result", "text"]
    assert result.ok
    alone = await Agent(MODEL, tools=[lookup], client=ScriptedModel(say("42")).client()).run(history=HISTORY[:3])
    assert alone.ok  # no task: the model answers the tool results


@pytest.mark.anyio
async def test_consecutive_messages_of_one_role_are_taken_as_the_api_takes_them() -> None:
    """The API merges them (a compacted transcript has the task, then the compaction's note, both the user's)."""
    history = [
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "c"},
    ]
    model = ScriptedModel(say("d"))
    result = await Agent(MODEL, client=model.client()).run("go on", history=history)
    assert result.ok
    assert [m["role"] for m in model.requests[0]["messages"]] == ["user", "user", "assistant", "user"]


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ([], "non-empty list of messages"),
        ([{"role": "assistant", "content": "hi"}], r"messages\[0\] has role 'assistant'"),
        (
            [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}],
            r"role 'system': a message's role is 'user' or 'assistant' \(the system prompt goes in Agent\(system=",
        ),
        ([{"role": "user", "content": ""}], "empty content"),
        ([{"content": "x"}], "'role' and 'content'"),
        (HISTORY[:2], "last message asks for tools"),
        (
            [*HISTORY[:2], {"role": "user", "content": "forgot the result"}],
            r"messages\[2\]: no tool_result for \['toolu_1'\]",
        ),
        (
            [
                *HISTORY[:2],
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "here"},
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"},
                    ],
                },
            ],
            "must come first",
        ),
        (
            [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}]}],
            r"unknown tool_use ids \['toolu_9'\]",
        ),
    ],
)
def test_bad_history_is_named(history: list[dict[str, Any]], message: str) -> None:
    agent = Agent(MODEL, tools=[lookup], client=ScriptedModel().client())
    with pytest.raises(ConfigError, match=message):
        agent.run_sync("go", history=history)


def test_history_needs_a_task_after_an_answer_and_not_with_resume() -> None:
    agent = Agent(MODEL, tools=[lookup], client=ScriptedModel(say("x")).client())
    with pytest.raises(ConfigError, match="ends with the model's answer"):
        agent.run_sync(history=HISTORY)
    finished = agent.run_sync("go")
    with pytest.raises(ConfigError, match="not both"):
        agent.run_sync("go", history=HISTORY, resume=finished.state)


def test_raise_for_stop_returns_a_finished_result_and_raises_the_others_with_the_partial_result() -> None:
    done = Agent(MODEL, client=ScriptedModel(say("fine")).client()).run_sync("go")
    assert done.raise_for_stop() is done
    endless = FunctionModel(lambda request: turn(call("lookup", key=str(len(request["messages"])))))
    capped = Agent(MODEL, tools=[lookup], client=endless.client()).run_sync("go", budget=Budget(max_iterations=2))
    with pytest.raises(BudgetExceeded) as budget:
        capped.raise_for_stop()
    assert budget.value.cap == "max_iterations" and budget.value.partial is capped
    spent = Agent(MODEL, tools=[lookup], client=endless.client(), max_tokens=2000).run_sync(
        "go", budget=Budget(usd=0.02)
    )
    with pytest.raises(BudgetExceeded) as usd:
        spent.raise_for_stop()
    assert usd.value.cap == "usd" and usd.value.partial is spent and spent.stop.cap == "usd"
    refused = Agent(MODEL, client=ScriptedModel(turn("no", stop_reason="refusal")).client()).run_sync("go")
    with pytest.raises(RunError, match="refused") as error:
        refused.raise_for_stop()
    assert not isinstance(error.value, BudgetExceeded) and error.value.partial is refused
