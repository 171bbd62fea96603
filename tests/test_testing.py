"""leanloop.testing: the doubles fail loudly, and assert_done reports every failure with the request it was on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from leanloop.agent import Agent
from leanloop.testing import FunctionModel, ScriptedModel, UnexpectedCall, call, say, turn

pytestmark = pytest.mark.anyio
MODEL = "claude-sonnet-4-6"


def lookup(key: str) -> str:
    """Look up a key.

    Args:
        key: What to look up.
    """
    return f"{key} = 42"


def expects_the_result(request: Mapping[str, Any]) -> Any:
    last = request["messages"][-1]["content"][0]
    assert last["content"] == "a = 7", f"expected the tool's result, got {last['content']!r}"
    return say("done")


async def test_a_scripted_step_whose_own_check_fails_makes_assert_done_fail() -> None:
    model = ScriptedModel(turn(call("lookup", key="a")), expects_the_result)
    result = await Agent(MODEL, tools=[lookup], client=model.client()).run("go")
    assert result.stop.reason == "error"
    with pytest.raises(AssertionError, match=r"request #2 failed.*expected the tool's result, got 'a = 42'"):
        model.assert_done()


async def test_a_function_model_records_its_failures_and_has_assert_done() -> None:
    def model(request: Mapping[str, Any]) -> Any:
        if len(request["messages"]) > 1:
            raise ValueError("no second call expected")
        return call("lookup", key="a")

    double = FunctionModel(model)
    result = await Agent(MODEL, tools=[lookup], client=double.client()).run("go")
    assert result.stop.reason == "error"
    with pytest.raises(AssertionError, match=r"request #2 failed in the model double: ValueError: no second call"):
        double.assert_done()
    healthy = FunctionModel(lambda request: say("fine"))
    assert (await Agent(MODEL, client=healthy.client()).run("go")).ok
    healthy.assert_done()


async def test_an_unexpected_call_is_still_an_unexpected_call() -> None:
    model = ScriptedModel(turn(call("lookup", key="a")))
    await Agent(MODEL, tools=[lookup], client=model.client()).run("go")
    with pytest.raises(UnexpectedCall, match="unexpected call #2"):
        model.assert_done()


async def test_a_function_model_may_return_a_list_of_blocks_for_parallel_calls() -> None:
    def model(request: Mapping[str, Any]) -> Any:
        if len(request["messages"]) == 1:
            return ["Looking both up.", call("lookup", key="a"), call("lookup", key="b")]
        return say("done")

    double = FunctionModel(model)
    result = await Agent(MODEL, tools=[lookup], client=double.client()).run("go")
    assert result.ok and result.tool_calls == 2
    assert [b["type"] for b in result.messages[1]["content"]] == ["text", "tool_use", "tool_use"]
    double.assert_done()


async def test_a_function_model_returning_something_else_names_what_it_must_return() -> None:
    double = FunctionModel(lambda request: 5)  # type: ignore[arg-type, return-value]
    result = await Agent(MODEL, client=double.client()).run("go")
    assert result.stop.reason == "error"
    with pytest.raises(AssertionError, match=r"must return a Reply, text, a block, or a list of blocks.*got int"):
        double.assert_done()


async def test_a_step_may_mix_say_and_call_in_one_turn() -> None:
    model = ScriptedModel([say("checking"), call("lookup", key="a")], turn(say("done"), stop_reason="end_turn"))
    result = await Agent("claude-sonnet-4-6", tools=[lookup], client=model.client()).run("go")
    model.assert_done()
    assert result.answer == "done"
    first = model.requests[1]["messages"][1]["content"]
    assert [b["type"] for b in first] == ["text", "tool_use"]


@pytest.mark.parametrize("name", ["claude-haiku-4-5", "claude-opus-4-6", "claude-sonnet-4-5"])
async def test_a_double_serves_the_model_the_agent_asks_for(name: str) -> None:
    model = ScriptedModel(say("hi"))
    result = await Agent(name, client=model.client()).run("go")
    model.assert_done()
    assert result.stop.reason == "end_turn" and result.calls[0].model.startswith(name)


async def test_a_double_named_for_one_model_answers_no_other() -> None:
    model = ScriptedModel(say("hi"))
    result = await Agent("claude-haiku-4-5", client=model.client("claude-sonnet-4-6")).run("go")
    assert result.stop.reason == "error" and "claude-haiku-4-5" in result.stop.detail


def test_turn_names_a_block_it_cannot_take() -> None:
    with pytest.raises(TypeError, match="turn\\(\\): a block is text, say"):
        turn(5)  # pyright: ignore[reportArgumentType]
