"""emulator.contract and emulator.thinking: the answer keeps what the request's settings promise, whatever the policy
returned (forced tool calls, structured output, stop sequences, tool_choice none, no parallel calls, thinking), a
policy's impossible answer is a clear 500, and speed / inference_geo reach usage and the bill."""

from __future__ import annotations

from typing import Any

import anthropic
import pydantic
import pytest

from leanloop.emulator import Emulator, Reply, Scenario, async_client, create_app, finisher
from leanloop.emulator.scenario import Step
from leanloop.emulator.schema import example_of, fits
from leanloop.pricing import cost

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
USER: Any = [{"role": "user", "content": "Who is Ada?"}]
PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 1},
        "tags": {"type": "array", "items": {"type": "string"}},
        "kind": {"enum": ["human", "robot"]},
    },
    "required": ["name", "age", "kind"],
}
TOOLS: Any = [
    {"type": "web_search_20250305", "name": "web_search"},
    {"name": "read", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}},
    {"name": "record_person", "input_schema": PERSON_SCHEMA},
]
READ = {"type": "tool_use", "name": "read", "input": {"path": "a.log"}}


def client_for(policy: Any = finisher, model: str = MODEL, **options: Any) -> anthropic.AsyncAnthropic:
    return async_client(create_app({model: policy}, **options), max_retries=0)


def tool_calls(message: Any) -> list[Any]:
    return [b for b in message.content if b.type == "tool_use"]


@pytest.mark.parametrize(
    ("tool_choice", "name", "expected"),
    [
        ({"type": "tool", "name": "record_person"}, "record_person", {"name": "example", "age": 1, "kind": "human"}),
        ({"type": "any"}, "read", {}),  # the first custom tool; the server tool is not one the emulator can call
    ],
)
@pytest.mark.parametrize("policy", [finisher, lambda request: "Plain words, no call.", lambda request: "Done."])
async def test_a_forced_tool_choice_always_gets_a_tool_call(
    tool_choice: Any, name: str, expected: dict[str, Any], policy: Any
) -> None:
    client = client_for(policy)
    for stream in (False, True):
        kwargs: Any = {"model": MODEL, "max_tokens": 500, "messages": USER, "tools": TOOLS, "tool_choice": tool_choice}
        if stream:
            async with client.messages.stream(**kwargs) as events:
                message = await events.get_final_message()
        else:
            message = await client.messages.create(**kwargs)
        assert message.stop_reason == "tool_use"
        assert [b.type for b in message.content] == ["tool_use"]  # no text before a forced call
        (call,) = tool_calls(message)
        assert (call.name, call.input) == (name, expected)


async def test_a_forced_call_keeps_the_policys_own_call_and_drops_its_text() -> None:
    app = create_app({MODEL: lambda request: [{"type": "text", "text": "Reading."}, READ]})
    client = async_client(app, max_retries=0)
    message = await client.messages.create(
        model=MODEL, max_tokens=500, messages=USER, tools=TOOLS, tool_choice={"type": "any"}
    )
    assert [(b.type, getattr(b, "input", None)) for b in message.content] == [("tool_use", {"path": "a.log"})]
    assert Emulator.of(app).calls[-1].notes == (
        "dropped the text before the tool call: tool_choice forces a tool call",
    )


async def test_a_scenario_step_of_text_answers_a_forced_call_with_a_generated_one() -> None:
    scenario = Scenario([Step(None, Reply([{"type": "text", "text": "Ada is a person."}]))])
    message = await client_for(scenario).messages.create(
        model=MODEL, max_tokens=500, messages=USER, tools=TOOLS, tool_choice={"type": "tool", "name": "record_person"}
    )
    (call,) = tool_calls(message)
    assert fits(call.input, PERSON_SCHEMA)


class Person(pydantic.BaseModel):
    name: str
    age: int
    email: str | None = None


async def test_structured_output_is_json_that_fits_the_schema() -> None:
    client = client_for()
    parsed = await client.messages.parse(model=MODEL, max_tokens=500, messages=USER, output_format=Person)
    assert isinstance(parsed.parsed_output, Person)
    fmt: Any = {"format": {"type": "json_schema", "schema": PERSON_SCHEMA}}
    message = await client.messages.create(model=MODEL, max_tokens=500, messages=USER, output_config=fmt)
    block = message.content[0]
    assert block.type == "text"
    import json

    assert fits(json.loads(block.text), PERSON_SCHEMA)


async def test_structured_output_keeps_a_policy_answer_that_already_fits() -> None:
    answer = '{"name": "Ada", "age": 36, "kind": "human"}'
    fmt: Any = {"format": {"type": "json_schema", "schema": PERSON_SCHEMA}}
    message = await client_for(lambda request: answer).messages.create(
        model=MODEL, max_tokens=500, messages=USER, output_config=fmt
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == answer


@pytest.mark.parametrize("stream", [False, True])
async def test_stop_sequences_cut_the_text(stream: bool) -> None:
    client = client_for(lambda request: "Ada Lovelace.\n\nHuman: and Babbage?")
    kwargs: Any = {"model": MODEL, "max_tokens": 500, "messages": USER, "stop_sequences": ["\n\nHuman:"]}
    if stream:
        async with client.messages.stream(**kwargs) as events:
            text = "".join([t async for t in events.text_stream])
            message = await events.get_final_message()
        assert text == "Ada Lovelace."
    else:
        message = await client.messages.create(**kwargs)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Ada Lovelace."
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "\n\nHuman:")


async def test_tool_choice_none_and_no_parallel_calls_are_kept_and_noted() -> None:
    two_reads = [{"type": "text", "text": "Reading both."}, READ, {**READ, "input": {"path": "b.log"}}]
    app = create_app({MODEL: lambda request: two_reads})
    client = async_client(app, max_retries=0)
    none = await client.messages.create(
        model=MODEL, max_tokens=500, messages=USER, tools=TOOLS, tool_choice={"type": "none"}
    )
    assert [b.type for b in none.content] == ["text"]
    assert none.stop_reason == "end_turn"
    assert Emulator.of(app).calls[-1].notes == ("dropped 2 tool call(s): tool_choice is none",)
    single = await client.messages.create(
        model=MODEL,
        max_tokens=500,
        messages=USER,
        tools=TOOLS,
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )
    assert [getattr(b, "input", None) for b in tool_calls(single)] == [{"path": "a.log"}]
    assert Emulator.of(app).calls[-1].notes == ("dropped 1 parallel tool call(s): disable_parallel_tool_use",)


async def test_a_call_to_an_undeclared_tool_is_a_500_naming_the_policy_and_the_tool() -> None:
    scenario = Scenario([Step(None, Reply([{"type": "tool_use", "name": "read_lgo", "input": {}}]))], name="triage")
    app = create_app({MODEL: scenario})
    with pytest.raises(anthropic.InternalServerError) as caught:
        await async_client(app).messages.create(model=MODEL, max_tokens=500, messages=USER, tools=TOOLS)
    message = str(caught.value.api_message)
    assert "Scenario 'triage'" in message
    assert "'read_lgo', which the request does not declare (declared: web_search, read, record_person)" in message
    assert len(Emulator.of(app).calls) == 1  # not retried
    with pytest.raises(anthropic.InternalServerError, match="tool_choice forces 'record_person'"):
        await async_client(create_app({MODEL: lambda request: READ}), max_retries=0).messages.create(
            model=MODEL,
            max_tokens=500,
            messages=USER,
            tools=TOOLS,
            tool_choice={"type": "tool", "name": "record_person"},
        )


@pytest.mark.parametrize(
    ("fields", "speed", "geo", "factor"),
    [({}, None, "global", 1.0), ({"speed": "fast"}, "fast", "global", 2.0), ({"inference_geo": "us"}, None, "us", 1.1)],
)
async def test_speed_and_inference_geo_reach_usage_and_the_bill(
    fields: dict[str, Any], speed: str | None, geo: str, factor: float
) -> None:
    model = "claude-opus-5"
    app = create_app({model: lambda request: "Done."})
    body = {"model": model, "max_tokens": 50, "messages": USER, "thinking": {"type": "disabled"}, **fields}
    message = await async_client(app).post("/v1/messages", cast_to=anthropic.types.Message, body=body)
    assert (message.usage.speed, message.usage.inference_geo) == (speed, geo)
    usage = Emulator.of(app).calls[-1].usage
    assert usage is not None
    standard = cost(model, usage.__class__(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens))
    assert float(cost(model, usage).total) == pytest.approx(float(standard.total) * factor)


THINK: Any = {"type": "enabled", "budget_tokens": 2048}


async def test_thinking_opens_the_answer_with_a_signed_block_billed_as_output() -> None:
    client = client_for()
    message = await client.messages.create(model=MODEL, max_tokens=4096, messages=USER, thinking=THINK)
    assert [b.type for b in message.content] == ["thinking", "text"]
    thinking = message.content[0]
    assert thinking.type == "thinking"
    assert thinking.thinking
    assert thinking.signature
    details = message.usage.output_tokens_details
    assert details is not None
    assert 0 < details.thinking_tokens < message.usage.output_tokens
    async with client.messages.stream(model=MODEL, max_tokens=4096, messages=USER, thinking=THINK) as stream:
        streamed = await stream.get_final_message()
    assert streamed.content[0].model_dump() == thinking.model_dump()
    assert streamed.usage.output_tokens == message.usage.output_tokens
    assert streamed.usage.output_tokens_details == details


async def test_thinking_display_omitted_is_empty_but_billed() -> None:
    client = client_for()
    shown = await client.messages.create(model=MODEL, max_tokens=4096, messages=USER, thinking=THINK)
    omitted: Any = {**THINK, "display": "omitted"}
    hidden = await client.messages.create(model=MODEL, max_tokens=4096, messages=USER, thinking=omitted)
    assert hidden.content[0].type == "thinking"
    assert hidden.content[0].thinking == ""
    assert hidden.content[0].signature
    assert hidden.usage.output_tokens == shown.usage.output_tokens


async def test_5x_models_think_unless_told_not_to() -> None:
    client = client_for(model="claude-opus-5")
    default = await client.messages.create(model="claude-opus-5", max_tokens=4096, messages=USER)
    assert default.content[0].type == "thinking"
    off = await client.messages.create(
        model="claude-opus-5", max_tokens=4096, messages=USER, thinking={"type": "disabled"}
    )
    assert [b.type for b in off.content] == ["text"]
    assert off.usage.output_tokens_details is None
    plain = await client_for().messages.create(model=MODEL, max_tokens=4096, messages=USER)
    assert [b.type for b in plain.content] == ["text"]  # Sonnet 4.6 does not think by default


async def test_thinking_blocks_must_come_back_unmodified() -> None:
    client = client_for(lambda request: [{"type": "text", "text": "Reading."}, READ])
    first = await client.messages.create(model=MODEL, max_tokens=4096, messages=USER, tools=TOOLS, thinking=THINK)
    assistant = [b.model_dump(exclude_none=True) for b in first.content]
    answer = {"type": "tool_result", "tool_use_id": tool_calls(first)[0].id, "content": "ok"}
    history: Any = [*USER, {"role": "assistant", "content": assistant}, {"role": "user", "content": [answer]}]
    again = await client.messages.create(model=MODEL, max_tokens=4096, messages=history, tools=TOOLS, thinking=THINK)
    assert again.type == "message"
    assistant[0]["thinking"] += " (edited)"
    with pytest.raises(anthropic.BadRequestError, match=r"messages\.1\.content\.0: Invalid `signature` in `thinking`"):
        await client.messages.create(model=MODEL, max_tokens=4096, messages=history, tools=TOOLS, thinking=THINK)


def test_schema_examples_fit_their_schema() -> None:
    defs: Any = {
        "$defs": {"Pet": {"type": "object", "properties": {"n": {"type": "number", "exclusiveMinimum": 0}}}},
        "type": "object",
        "properties": {
            "pet": {"$ref": "#/$defs/Pet"},
            "when": {"type": "string", "format": "date-time"},
            "code": {"type": "string", "minLength": 12},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
            "list": {"type": "array", "items": {"type": "boolean"}, "minItems": 2},
        },
        "required": ["pet", "when", "code", "maybe", "list"],
        "additionalProperties": False,
    }
    value = example_of(defs)
    assert value == {
        "pet": {},
        "when": "2026-01-01T00:00:00Z",
        "code": "examplexxxxx",
        "maybe": None,
        "list": [False] * 2,
    }
    assert fits(value, defs)
    assert not fits({**value, "extra": 1}, defs)
    assert not fits({"pet": {}}, defs)
    assert example_of({}) == {}


async def test_undeclared_tool_calls_can_be_served_to_test_an_agents_defences() -> None:
    client = async_client(create_app({MODEL: lambda request: READ}, undeclared_tools="serve"), max_retries=0)
    message = await client.messages.create(model=MODEL, max_tokens=500, messages=USER)
    assert [b.name for b in tool_calls(message)] == ["read"]
