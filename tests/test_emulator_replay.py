"""emulator.replay: recorded assistant turns played back through the official SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import pytest

from leanloop.emulator import ReplayPolicy, Reply, async_client, create_app, finisher, load_trajectory
from leanloop.errors import ConfigError

pytestmark = pytest.mark.anyio

MODEL = "claude-haiku-4-5"


async def test_replays_a_recorded_parallel_tool_turn_with_its_ids(shared_data: Path) -> None:
    cassette = shared_data / "anthropic-recordings" / "test_multiple_parallel_tool_calls.yaml"
    client = async_client(create_app({MODEL: ReplayPolicy.from_file(cassette)}))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Who is the youngest?"}]
    tools: Any = [{"name": "retrieve_entity_info", "input_schema": {"type": "object"}}]
    first = await client.messages.create(model=MODEL, max_tokens=4096, messages=messages, tools=tools)  # type: ignore[arg-type]
    tool_ids = [b.id for b in first.content if b.type == "tool_use"]
    assert tool_ids == [
        "toolu_0167cfEnoQaPviGdVXA95zcu",
        "toolu_01EEe2V5HD1Ac4rKiUR4HD2T",
        "toolu_01XFyAjstT3966qvRynZyVPo",
        "toolu_013mnQZbgtK2oe3Mo3XKJsx3",
    ]
    assert first.stop_reason == "tool_use"
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": i, "content": "ok"} for i in tool_ids]}
    )
    second = await client.messages.create(model=MODEL, max_tokens=4096, messages=messages, tools=tools)  # type: ignore[arg-type]
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text"
    assert "Daisy" in second.content[0].text


def test_reads_streamed_recordings(shared_data: Path) -> None:
    turns = load_trajectory(shared_data / "anthropic-recordings" / "test_anthropic_native_tool_search_streaming.yaml")
    assert len(turns) == 2
    assert [b["type"] for b in turns[0].content] == [
        "text",
        "server_tool_use",
        "tool_search_tool_result",
        "text",
        "tool_use",
    ]
    assert turns[0].content[4]["input"] == {"from_currency": "USD", "to_currency": "EUR"}
    assert turns[0].stop_reason == "tool_use"
    assert turns[1].content[0]["text"].startswith("The current exchange rate")


def test_reads_a_conversation_and_a_list_of_responses(tmp_path: Path) -> None:
    conversation = tmp_path / "run.json"
    conversation.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "bye"},
                    {"role": "assistant", "content": [{"type": "text", "text": "Bye."}]},
                ]
            }
        )
    )
    assert [t.content for t in load_trajectory(conversation)] == [
        [{"type": "text", "text": "Hello!"}],
        [{"type": "text", "text": "Bye."}],
    ]
    responses = tmp_path / "responses.jsonl"
    message = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "x"}],
        "stop_reason": "max_tokens",
    }
    responses.write_text(json.dumps(message) + "\n")
    assert load_trajectory(responses) == [Reply([{"type": "text", "text": "x"}], "max_tokens")]


def test_after_the_last_turn() -> None:
    turns = [Reply([{"type": "text", "text": "one"}])]
    past_end = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "one"}]}
    assert ReplayPolicy(turns)(past_end) == finisher(past_end)
    assert ReplayPolicy(turns, after_last="repeat")(past_end) == turns[0]
    with pytest.raises(ConfigError, match="1 recorded turns; turn 2"):
        ReplayPolicy(turns, after_last="error")(past_end)


def test_bad_trajectories(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one"):
        ReplayPolicy([])
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(ConfigError, match="no assistant turns"):
        load_trajectory(empty)
    with pytest.raises(ConfigError, match="cannot read"):
        load_trajectory(tmp_path / "absent.json")


async def test_replay_past_the_end_with_error_is_a_500() -> None:
    policy = ReplayPolicy([Reply([{"type": "text", "text": "one"}])], after_last="error")
    client = async_client(create_app({MODEL: policy}))
    messages: list[Any] = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "b"},
    ]
    with pytest.raises(anthropic.InternalServerError, match="recorded turns"):
        await client.messages.create(model=MODEL, max_tokens=10, messages=messages)


async def play(client: anthropic.AsyncAnthropic, turns: int, tools: Any) -> list[list[str]]:
    """Run ``turns`` tool turns, answering every call; the tool_use ids of each turn."""
    messages: list[Any] = [{"role": "user", "content": "Who is the youngest?"}]
    seen: list[list[str]] = []
    for _ in range(turns):
        reply = await client.messages.create(model=MODEL, max_tokens=4096, messages=messages, tools=tools)
        ids = [b.id for b in reply.content if b.type == "tool_use"]
        seen.append(ids)
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": i} for i in ids]})
    return seen


async def test_a_repeated_turn_gets_fresh_tool_use_ids(shared_data: Path) -> None:
    cassette = shared_data / "anthropic-recordings" / "test_multiple_parallel_tool_calls.yaml"
    (calls, _) = load_trajectory(cassette)
    policy = ReplayPolicy([calls], after_last="repeat")
    tools: Any = [{"name": "retrieve_entity_info", "input_schema": {"type": "object"}}]
    seen = await play(async_client(create_app({MODEL: policy}), max_retries=0), 3, tools)
    assert seen[0] == [b["id"] for b in calls.content if b["type"] == "tool_use"]  # the first time: as recorded
    every = [i for ids in seen for i in ids]
    assert len(every) == len(set(every)) == 12  # the repeats got fresh ids, so no turn was a 400
