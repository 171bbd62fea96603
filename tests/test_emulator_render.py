"""emulator.render: output tokens, max_tokens cuts in text and in tool JSON, and partial JSON like the SDK's."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jiter import from_json

from leanloop.emulator import Reply, async_client, create_app
from leanloop.emulator.render import (
    END_OF_TURN_TOKENS,
    TOOL_PARAMETER_TOKENS,
    TOOL_USE_TOKENS,
    parse_partial_json,
    render,
)
from leanloop.tokens import count_text

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
TEXT = "The database refused new connections from 02:14 on, because the pool grew past max_connections."
TOOL = {"type": "tool_use", "name": "read_log", "input": {"path": "/var/log/app/error.log", "lines": 200}}
ids = (f"toolu_01{i:022d}" for i in itertools.count())


def new_id() -> str:
    return next(ids)


def test_whole_reply_counts_text_and_tool_json_plus_framing() -> None:
    rendered = render(Reply([{"type": "text", "text": TEXT}, TOOL]), 4096, new_id)
    framing = TOOL_USE_TOKENS + 2 * TOOL_PARAMETER_TOKENS  # two input fields
    tool_tokens = count_text("read_log") + count_text(json.dumps(TOOL["input"])) + framing
    assert rendered.output_tokens == count_text(TEXT) + tool_tokens + END_OF_TURN_TOKENS
    assert rendered.stop_reason == "tool_use"
    tool = rendered.content[1]
    assert tool["input"] == TOOL["input"]
    assert tool["id"].startswith("toolu_01")
    assert tool["caller"] == {"type": "direct"}


def test_cut_in_the_middle_of_text() -> None:
    rendered = render(Reply([{"type": "text", "text": TEXT}, TOOL]), 8, new_id)
    assert rendered.stop_reason == "max_tokens"
    assert rendered.output_tokens == 8
    (block,) = rendered.content
    assert TEXT.startswith(block["text"])
    assert 0 < count_text(block["text"]) <= 8
    assert "".join(d["text"] for d in rendered.blocks[0].deltas) == block["text"]


def test_cut_in_the_middle_of_tool_json() -> None:
    budget = count_text(TEXT) + count_text("read_log") + TOOL_USE_TOKENS + 6
    rendered = render(Reply([{"type": "text", "text": TEXT}, TOOL]), budget, new_id)
    assert rendered.stop_reason == "max_tokens"
    assert rendered.output_tokens == budget
    tool = rendered.blocks[1]
    streamed = "".join(d["partial_json"] for d in tool.deltas)
    assert tool.deltas[0]["partial_json"] == ""
    assert json.dumps(TOOL["input"]).startswith(streamed)
    with pytest.raises(json.JSONDecodeError):
        json.loads(streamed)
    assert tool.block["input"] == from_json(streamed.encode(), partial_mode=True)


def test_no_room_for_a_tool_call_drops_it() -> None:
    rendered = render(Reply([{"type": "text", "text": "Hi."}, TOOL]), count_text("Hi.") + 2, new_id)
    assert [b["type"] for b in rendered.content] == ["text"]
    assert rendered.stop_reason == "max_tokens"


def test_max_tokens_zero_returns_nothing() -> None:
    rendered = render(Reply([{"type": "text", "text": TEXT}]), 0, new_id)
    assert rendered.content == []
    assert rendered.output_tokens == 0
    assert rendered.stop_reason == "max_tokens"


def test_ending_the_turn_costs_tokens_even_for_an_empty_answer() -> None:
    rendered = render(Reply([]), 100, new_id)
    assert rendered.output_tokens == END_OF_TURN_TOKENS == 3  # an empty end_turn is billed 2-3 tokens
    assert rendered.stop_reason == "end_turn"
    answer = Reply([{"type": "text", "text": "Django"}])  # recorded: billed 4 output tokens
    assert render(answer, 100, new_id).output_tokens == count_text("Django") + END_OF_TURN_TOKENS == 4
    # No room left to end the turn: the API stops at max_tokens.
    tight = render(answer, count_text("Django"), new_id)
    assert (tight.stop_reason, tight.output_tokens) == ("max_tokens", count_text("Django"))


def test_a_stop_sequence_ends_the_turn_before_it() -> None:
    reply = Reply([{"type": "text", "text": "Answer: 42\n\nHuman: and now?"}, TOOL])
    rendered = render(reply, 4096, new_id, stop_sequences=["STOP", "\n\nHuman:"])
    assert [b["text"] for b in rendered.content] == ["Answer: 42"]
    assert (rendered.stop_reason, rendered.stop_sequence) == ("stop_sequence", "\n\nHuman:")
    assert rendered.output_tokens == count_text("Answer: 42") + count_text("\n\nHuman:")
    first = render(reply, 4096, new_id, stop_sequences=["42", "Answer"])
    assert (first.content, first.stop_sequence) == ([], "Answer")  # the earliest one wins
    untouched = render(reply, 4096, new_id, stop_sequences=["nowhere"])
    assert (untouched.stop_reason, untouched.stop_sequence) == ("tool_use", None)


def test_running_out_of_context_window_is_its_own_stop_reason() -> None:
    rendered = render(Reply([{"type": "text", "text": TEXT}]), 4096, new_id, context_left=5)
    assert (rendered.stop_reason, rendered.output_tokens) == ("model_context_window_exceeded", 5)
    roomy = render(Reply([{"type": "text", "text": TEXT}]), 5, new_id, context_left=4096)
    assert roomy.stop_reason == "max_tokens"


def test_thinking_is_signed_billed_and_omitted_on_request() -> None:
    from leanloop.emulator.thinking import sign, signature_matches

    thought = {"type": "thinking", "thinking": "First read the log, then answer."}
    reply = Reply([thought, {"type": "text", "text": "Done."}])
    shown = render(reply, 4096, new_id)
    block = shown.content[0]
    assert block["thinking"] == thought["thinking"]
    assert block["signature"] == sign(thought["thinking"])
    assert shown.thinking_tokens == count_text(thought["thinking"])
    assert shown.output_tokens == shown.thinking_tokens + count_text("Done.") + END_OF_TURN_TOKENS
    hidden = render(reply, 4096, new_id, omit_thinking=True)
    assert hidden.content[0]["thinking"] == ""
    assert signature_matches("", hidden.content[0]["signature"])
    assert hidden.output_tokens == shown.output_tokens  # billed all the same
    assert [d["type"] for d in hidden.blocks[0].deltas] == ["signature_delta"]
    assert not signature_matches("edited", block["signature"])
    assert signature_matches("anything", "EqQBCkgIARAB")  # a real (foreign) signature cannot be checked


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=120, deadline=None)
@given(value=st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_partial_json_matches_the_sdk_parser_at_every_cut(value: dict[str, Any]) -> None:
    text = json.dumps(value, ensure_ascii=False)
    atoms = re.findall(r"\\u[0-9a-fA-F]{4}|\\.|\w+|\s+|.", text, flags=re.DOTALL)
    cut = 0
    for atom in atoms:
        cut += len(atom)
        prefix = text[:cut]
        assert parse_partial_json(prefix) == from_json(prefix.encode(), partial_mode=True), prefix
    assert parse_partial_json(text) == value


async def test_pre_warm_with_max_tokens_zero_writes_the_cache() -> None:
    client = async_client(create_app())
    system: Any = [{"type": "text", "text": "Rules of the house. " * 600, "cache_control": {"type": "ephemeral"}}]
    warm = await client.messages.create(
        model=MODEL, max_tokens=0, system=system, messages=[{"role": "user", "content": "-"}]
    )
    assert warm.content == []
    assert warm.stop_reason == "max_tokens"
    assert warm.usage.output_tokens == 0
    assert warm.usage.cache_creation_input_tokens


@settings(max_examples=40, deadline=None)
@given(
    max_tokens=st.integers(min_value=1, max_value=90),
    text=st.text(min_size=1, max_size=200),
    tool_input=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)
def test_any_cut_parses_and_stream_agrees_with_non_stream(
    max_tokens: int, text: str, tool_input: dict[str, Any]
) -> None:
    reply = Reply([{"type": "text", "text": text}, {"type": "tool_use", "name": "act", "input": tool_input}])
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": max_tokens, "messages": [{"role": "user", "content": "-"}]}
    kwargs["tools"] = [{"name": "act", "input_schema": {"type": "object"}}]

    async def check() -> None:
        plain = await async_client(create_app({MODEL: lambda r: reply}, seed=3)).messages.create(**kwargs)
        async with async_client(create_app({MODEL: lambda r: reply}, seed=3)).messages.stream(**kwargs) as stream:
            streamed = await stream.get_final_message()
        assert [b.model_dump() for b in plain.content] == [b.model_dump() for b in streamed.content]
        assert plain.usage.output_tokens == streamed.usage.output_tokens <= max_tokens
        assert plain.stop_reason == streamed.stop_reason
        if plain.stop_reason == "max_tokens":
            assert plain.usage.output_tokens == max_tokens

    asyncio.run(check())
