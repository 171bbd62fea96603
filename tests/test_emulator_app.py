"""emulator.app: the endpoints through the official SDK, in-process (async) and on a real port (sync).

Every response must parse into the SDK's types, every error must arrive as the SDK's exception class, and every
response carries a request-id header and real-looking ids.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest

import leanloop.emulator as emulator_package
from leanloop.emulator import Emulator, Reply, StreamingASGITransport, async_client, create_app, serve_in_thread
from leanloop.emulator.catalog import CATALOG

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
USER = [{"role": "user", "content": "Hello"}]
READ_TOOL: Any = [{"name": "read", "input_schema": {"type": "object"}}]
ID = r"01[1-9A-HJ-NP-Za-km-z]{22}"


def tool_turn(tool_id: str = "toolu_01abc") -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Read the log"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": tool_id, "name": "read", "input": {}}]},
    ]


@pytest.fixture
def sync_client() -> Iterator[anthropic.Anthropic]:
    with (
        serve_in_thread(create_app()) as base_url,
        anthropic.Anthropic(base_url=base_url, api_key="test-key", max_retries=0) as client,
    ):
        yield client


def test_public_names_are_pinned() -> None:
    assert sorted(emulator_package.__all__) == sorted(
        [
            "CATALOG",
            "EXAMPLE_SCENARIO",
            "Clock",
            "ConnectionDropped",
            "Emulator",
            "Fault",
            "FaultKind",
            "FaultRule",
            "Faults",
            "LatencyModel",
            "ManualClock",
            "ModelCard",
            "Policy",
            "RateLimits",
            "ReplayPolicy",
            "Reply",
            "ScaledClock",
            "Scenario",
            "ScenarioExhausted",
            "ServedCall",
            "StreamingASGITransport",
            "Timing",
            "async_client",
            "create_app",
            "finisher",
            "load_scenario",
            "load_trajectory",
            "serve_in_thread",
        ]
    )
    for name in emulator_package.__all__:
        assert getattr(emulator_package, name) is not None


async def test_message_parses_with_real_looking_ids_and_request_id_header() -> None:
    app = create_app()
    client = async_client(app)
    raw = await client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=USER)
    message = await raw.parse()
    assert re.fullmatch(f"req_{ID}", raw.headers["request-id"])
    assert re.fullmatch(f"msg_{ID}", message.id)
    assert message.model == MODEL
    assert message.role == "assistant"
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    call = Emulator.of(app).calls[-1]
    assert call.request_id == raw.headers["request-id"]
    assert call.message_id == message.id
    assert call.usage is not None
    assert call.usage.output_tokens == message.usage.output_tokens


async def test_policy_tool_use_gets_a_tool_id_and_stop_reason_tool_use() -> None:
    def caller(request: Any) -> Reply:
        return Reply([{"type": "text", "text": "Reading."}, {"type": "tool_use", "name": "read", "input": {"p": 1}}])

    client = async_client(create_app({MODEL: caller}))
    message = await client.messages.create(model=MODEL, max_tokens=100, messages=USER, tools=READ_TOOL)
    assert message.stop_reason == "tool_use"
    block = message.content[1]
    assert block.type == "tool_use"
    assert re.fullmatch(f"toolu_{ID}", block.id)
    assert block.input == {"p": 1}


async def test_async_policy_is_awaited() -> None:
    async def answer(request: Any) -> Reply:
        return Reply([{"type": "text", "text": "from a coroutine"}])

    client = async_client(create_app({MODEL: answer}))
    message = await client.messages.create(model=MODEL, max_tokens=100, messages=USER)
    assert message.content[0].type == "text"
    assert message.content[0].text == "from a coroutine"


READ_CALL = {"type": "tool_use", "name": "read", "input": {"path": "app.log"}}


@pytest.mark.parametrize(
    ("returned", "stop_reason", "types"),
    [
        ("Plain words.", "end_turn", ["text"]),
        ({"type": "text", "text": "One block."}, "end_turn", ["text"]),
        (READ_CALL, "tool_use", ["tool_use"]),
        ([{"type": "text", "text": "Reading."}, READ_CALL], "tool_use", ["text", "tool_use"]),
        ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "end_turn", ["text", "text"]),
    ],
)
@pytest.mark.parametrize("is_async", [False, True])
async def test_a_policy_may_return_a_str_a_block_or_a_list_of_blocks(
    returned: Any, stop_reason: str, types: list[str], is_async: bool
) -> None:
    async def answer_later(request: Any) -> Any:
        return returned

    policy = answer_later if is_async else lambda request: returned
    message = await async_client(create_app({MODEL: policy})).messages.create(
        model=MODEL, max_tokens=100, messages=USER, tools=READ_TOOL
    )
    assert message.stop_reason == stop_reason
    assert [block.type for block in message.content] == types
    if isinstance(returned, str):
        assert message.content[0].type == "text"
        assert message.content[0].text == returned


@pytest.mark.parametrize(
    ("returned", "named"), [(42, "got int"), (["Hi"], "got a list holding a str"), (None, "got NoneType")]
)
async def test_a_policy_returning_something_else_is_a_500_saying_what_it_got(returned: Any, named: str) -> None:
    client = async_client(create_app({MODEL: lambda request: returned}), max_retries=0)
    with pytest.raises(anthropic.InternalServerError, match=named):
        await client.messages.create(model=MODEL, max_tokens=100, messages=USER)


async def test_models_list_and_retrieve() -> None:
    client = async_client(create_app())
    listed = [model.id async for model in client.models.list(limit=5)]
    assert sorted(listed) == sorted({card.served_id for card in CATALOG.values()})  # aliases are not listed
    first_page = await client.models.list(limit=5)
    assert len(first_page.data) == 5
    assert first_page.has_more is True
    info = await client.models.retrieve(MODEL)
    assert info.id == MODEL
    assert info.max_input_tokens == 1_000_000
    assert info.max_tokens == 128_000
    assert info.type == "model"
    haiku = await client.models.retrieve("claude-haiku-4-5")
    assert haiku.max_input_tokens == 200_000
    with pytest.raises(anthropic.NotFoundError):
        await client.models.retrieve("claude-nonexistent-9")


async def test_an_alias_answers_under_its_dated_id_as_the_api_does() -> None:
    # Recorded: a request for claude-haiku-4-5 comes back with model claude-haiku-4-5-20251001.
    client = async_client(create_app())
    message = await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=USER)
    assert message.model == "claude-haiku-4-5-20251001"
    async with client.messages.stream(model="claude-sonnet-4-5", max_tokens=10, messages=USER) as stream:
        assert (await stream.get_final_message()).model == "claude-sonnet-4-5-20250929"
    assert (await client.models.retrieve("claude-haiku-4-5")).id == "claude-haiku-4-5-20251001"
    only_alias = async_client(create_app({"claude-haiku-4-5": lambda request: "Hi."}))
    assert [m.id async for m in only_alias.models.list()] == ["claude-haiku-4-5-20251001"]
    dated = await only_alias.messages.create(model="claude-haiku-4-5-20251001", max_tokens=10, messages=USER)
    assert dated.content[0].type == "text"


async def test_models_carry_capabilities_and_retirement_dates() -> None:
    client = async_client(create_app())
    for model in [m async for m in client.models.list()]:
        assert model.capabilities is not None, model.id
        assert model.capabilities.thinking.supported
    fable = await client.models.retrieve("claude-fable-5")
    assert fable.capabilities is not None
    assert fable.capabilities.thinking.types.disabled.supported is False
    opus = await client.models.retrieve("claude-opus-4-5")
    assert opus.lifecycle == "deprecated"
    assert opus.retires_at is not None
    assert opus.retires_at.date().isoformat() == "2027-01-22"
    assert opus.deprecated_at is not None


async def test_models_are_the_ones_given() -> None:
    client = async_client(create_app({MODEL: lambda request: Reply()}))
    assert [m.id async for m in client.models.list()] == [MODEL]
    with pytest.raises(anthropic.NotFoundError) as caught:
        await client.messages.create(model="claude-opus-4-8", max_tokens=10, messages=USER)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model: claude-opus-4-8"},
        "request_id": caught.value.request_id,
    }


async def test_count_tokens_is_the_estimator_total() -> None:
    client = async_client(create_app())
    system = "You are terse. " * 50
    counted = await client.messages.count_tokens(model=MODEL, system=system, messages=USER)
    message = await client.messages.create(model=MODEL, max_tokens=10, system=system, messages=USER)
    usage = message.usage
    total = usage.input_tokens + (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    assert counted.input_tokens == total > 100


async def test_validation_errors_arrive_as_sdk_classes_with_the_api_body() -> None:
    client = async_client(create_app(), max_retries=0)
    cases: list[tuple[dict[str, Any], type[anthropic.APIStatusError], str]] = [
        ({"model": "claude-nope", "max_tokens": 5, "messages": USER}, anthropic.NotFoundError, "model: claude-nope"),
        ({"model": MODEL, "messages": USER}, anthropic.BadRequestError, "max_tokens: Field required"),
        ({"model": MODEL, "max_tokens": 999_999, "messages": USER}, anthropic.BadRequestError, "maximum allowed"),
        ({"model": MODEL, "max_tokens": 5, "messages": []}, anthropic.BadRequestError, "at least one message"),
        ({"model": MODEL, "max_tokens": 0, "stream": True, "messages": USER}, anthropic.BadRequestError, "streaming"),
        ({"model": MODEL, "max_tokens": "5", "messages": USER}, anthropic.BadRequestError, "valid integer"),
        (
            {"model": MODEL, "max_tokens": 5, "messages": [{"role": "bot", "content": "x"}]},
            anthropic.BadRequestError,
            "role",
        ),
        (
            {"model": MODEL, "max_tokens": 5, "messages": tool_turn()},
            anthropic.BadRequestError,
            "without `tool_result`",
        ),
    ]
    for body, error_class, fragment in cases:
        with pytest.raises(error_class) as caught:
            await client.post("/v1/messages", cast_to=anthropic.types.Message, body=body)
        error = caught.value
        assert fragment in str(error.api_message)
        assert isinstance(error.body, dict)
        assert error.body["type"] == "error"
        assert error.body["request_id"] == error.request_id
        assert re.fullmatch(f"req_{ID}", error.request_id or "")


def with_tool_use(block: dict[str, Any]) -> list[dict[str, Any]]:
    """A conversation whose assistant turn holds ``block`` (answered, when it is a tool_use with an id)."""
    answer = {"type": "tool_result", "tool_use_id": block.get("id", "toolu_01abc")}
    return [
        {"role": "user", "content": "Read the log"},
        {"role": "assistant", "content": [block]},
        {"role": "user", "content": [answer]},
    ]


SCHEMA = {"type": "object"}
TWO_CALLS = [
    {"role": "user", "content": "Read both"},
    {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "toolu_01same", "name": "read", "input": {}},
            {"type": "tool_use", "id": "toolu_01same", "name": "read", "input": {}},
        ],
    },
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01same"}]},
]


def user_block(block: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [block]}]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tools": "x"}, "tools: Input should be a valid list"),
        ({"tools": ["x"]}, "tools.0: Input should be a valid dictionary"),
        ({"tools": [{"name": "read"}]}, "tools.0.custom.input_schema: Field required"),
        ({"tools": [{"input_schema": SCHEMA}]}, "tools.0.custom.name: Field required"),
        (
            {"tools": [{"name": "read", "input_schema": SCHEMA}, {"name": "read", "input_schema": SCHEMA}]},
            "tools: Tool names must be unique.",
        ),
        ({"messages": "Hello"}, "messages: Input should be a valid list"),
        ({"model": 4}, "model: Input should be a valid string"),
        ({"system": 7}, "system: Input should be a valid string or a list of content blocks"),
        ({"system": [{"type": "image"}]}, "system.0: Input tag 'image' found using 'type'"),
        ({"system": [{"type": "text", "text": " "}]}, "system: text content blocks must contain non-whitespace text"),
        ({"max_tokens": "5"}, "max_tokens: Input should be a valid integer"),
        ({"max_tokens": True}, "max_tokens: Input should be a valid integer"),
        ({"max_tokens": -1}, "max_tokens: Input should be greater than or equal to 0"),
        ({"stream": "yes"}, "stream: Input should be a valid boolean"),
        ({"messages": [{"role": "user"}]}, "messages.0.content: Field required"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages.0.content: Input should be a valid string"),
        ({"messages": [{"role": "user", "content": ""}]}, "messages.0: all messages must have non-empty content"),
        ({"messages": [{"role": "user", "content": []}]}, "messages.0: all messages must have non-empty content"),
        (
            {"messages": [{"role": "user", "content": " \n"}]},
            "messages: text content blocks must contain non-whitespace",
        ),
        ({"messages": user_block({"type": "text", "text": ""})}, "messages: text content blocks must be non-empty"),
        (
            {"messages": user_block({"type": "text", "text": "\t"})},
            "messages: text content blocks must contain non-white",
        ),
        ({"messages": user_block({"type": "text"})}, "messages.0.content.0.text.text: Field required"),
        ({"messages": user_block({"type": "text", "text": 5})}, "messages.0.content.0.text.text: Input should be a"),
        ({"messages": user_block("Hello")}, "messages.0.content.0: Input should be a valid dictionary"),
        ({"messages": user_block({"text": "Hello"})}, "messages.0.content.0: Unable to extract tag using"),
        ({"messages": user_block({"type": "txt", "text": "Hello"})}, "messages.0.content.0: Input tag 'txt' found"),
        (
            {"messages": user_block({"type": "text", "text": "", "cache_control": {"type": "ephemeral"}})},
            "messages.0.content.0.text: cache_control cannot be set for empty text blocks",
        ),
        (
            {"messages": with_tool_use({"type": "tool_use", "id": "toolu_01abc", "name": "read", "input": "{}"})},
            "messages.1.content.0.tool_use.input: Input should be a valid dictionary",
        ),
        (
            {"messages": with_tool_use({"type": "tool_use", "name": "read", "input": {}})},
            "messages.1.content.0.tool_use.id: Field required",
        ),
        ({"messages": TWO_CALLS}, "messages.1.content.1: `tool_use` ids must be unique"),
    ],
)
async def test_malformed_requests_are_400s_naming_the_field(fields: dict[str, Any], message: str) -> None:
    client = async_client(create_app(), max_retries=0)
    body = {"model": MODEL, "max_tokens": 5, "messages": USER, **fields}
    paths = (
        ["/v1/messages"] if {"max_tokens", "stream"} & fields.keys() else ["/v1/messages", "/v1/messages/count_tokens"]
    )
    for path in paths:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.post(path, cast_to=object, body=body)
        assert caught.value.type == "invalid_request_error"
        assert str(caught.value.api_message).startswith(message)


async def test_well_formed_edge_cases_are_accepted() -> None:
    client = async_client(create_app(), max_retries=0)
    tools = [{"type": "web_search_20250305", "name": "web_search"}, {"name": "read", "input_schema": SCHEMA}]
    prefill = [*USER, {"role": "assistant", "content": ""}]
    for fields in [{"tools": tools, "system": ""}, {"messages": prefill, "metadata": None}]:
        body = {"model": MODEL, "max_tokens": 5, "messages": USER, **fields}
        message = await client.post("/v1/messages", cast_to=anthropic.types.Message, body=body)
        assert message.type == "message"


async def test_tool_pairing_rules() -> None:
    client = async_client(create_app(), max_retries=0)
    answered = [*tool_turn(), {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01abc"}]}]
    await client.messages.create(model=MODEL, max_tokens=5, messages=answered)  # well-formed: no error
    text_first = [
        *tool_turn(),
        {
            "role": "user",
            "content": [{"type": "text", "text": "here"}, {"type": "tool_result", "tool_use_id": "toolu_01abc"}],
        },
    ]
    with pytest.raises(anthropic.BadRequestError, match="must come first"):
        await client.messages.create(model=MODEL, max_tokens=5, messages=text_first)
    wrong_id = [*tool_turn(), {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01zzz"}]}]
    with pytest.raises(anthropic.BadRequestError, match="unexpected `tool_use_id`"):
        await client.messages.create(model=MODEL, max_tokens=5, messages=wrong_id)
    unanswered = [*tool_turn(), {"role": "user", "content": "go on"}]
    with pytest.raises(anthropic.BadRequestError, match="toolu_01abc"):
        await client.messages.create(model=MODEL, max_tokens=5, messages=unanswered)


async def test_cache_control_errors_from_cachesim() -> None:
    client = async_client(create_app(), max_retries=0)
    mark = {"type": "ephemeral"}
    five = [{"type": "text", "text": f"part {i}", "cache_control": mark} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4 blocks"):
        await client.messages.create(model=MODEL, max_tokens=5, system=five, messages=USER)  # type: ignore[arg-type]
    mixed = [
        {"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "5m"}},
        {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]
    with pytest.raises(anthropic.BadRequestError, match="must not come after"):
        await client.messages.create(model=MODEL, max_tokens=5, system=mixed, messages=USER)  # type: ignore[arg-type]


async def test_authentication() -> None:
    app = create_app(api_key="sk-right")
    with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
        await async_client(app, api_key="sk-wrong").messages.create(model=MODEL, max_tokens=5, messages=USER)
    ok = await async_client(app, api_key="sk-right").messages.create(model=MODEL, max_tokens=5, messages=USER)
    assert ok.type == "message"
    bare = httpx2.AsyncClient(transport=StreamingASGITransport(app=create_app()), base_url="http://emulator")
    response = await bare.post("/v1/messages", json={"model": MODEL, "max_tokens": 5, "messages": USER})
    assert response.status_code == 401
    assert response.json()["error"] == {"type": "authentication_error", "message": "x-api-key header is required"}
    assert response.headers["request-id"] == response.json()["request_id"]
    bearer = await bare.post(
        "/v1/messages/count_tokens",
        json={"model": MODEL, "messages": USER},
        headers={"authorization": "Bearer oauth-token"},
    )
    assert bearer.status_code == 200


async def test_body_over_32_mb_is_413() -> None:
    client = async_client(create_app(), max_retries=0)
    huge = [{"role": "user", "content": "x" * (32 * 1024 * 1024 + 1)}]
    with pytest.raises(anthropic.APIStatusError) as caught:
        await client.messages.create(model=MODEL, max_tokens=5, messages=huge)
    assert caught.value.status_code == 413
    assert isinstance(caught.value, anthropic.ContentTooLargeError)
    assert caught.value.type == "request_too_large"


async def test_a_failing_policy_is_a_500_that_is_not_retried() -> None:
    def broken(request: Any) -> Reply:
        raise LookupError("no step for this call")

    app = create_app({MODEL: broken})
    with pytest.raises(anthropic.InternalServerError, match="LookupError: no step for this call"):
        await async_client(app).messages.create(model=MODEL, max_tokens=5, messages=USER)
    calls = Emulator.of(app).calls
    assert len(calls) == 1  # x-should-retry: false stops the SDK's retries
    assert isinstance(calls[0].error, LookupError)


async def test_unknown_route_is_an_api_shaped_404() -> None:
    client = async_client(create_app())
    with pytest.raises(anthropic.NotFoundError) as caught:
        await client.get("/v1/nothing-here", cast_to=object)
    assert caught.value.type == "not_found_error"
    assert caught.value.request_id is not None


@pytest.mark.parametrize("path", ["/", "/api/hello"])
async def test_claude_codes_connection_preflight_is_answered(path: str) -> None:
    # Claude Code sends `HEAD /` (Bun's fetch, no key) before its first request; a 404 or 405 there reads as
    # "endpoint down" to some of its checks (headroomlabs-ai/headroom#2032). No key, no call logged.
    app = create_app()
    async with httpx2.AsyncClient(transport=StreamingASGITransport(app=app), base_url="http://emulator") as http:
        response = await http.head(path)
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["request-id"].startswith("req_")
    assert Emulator.of(app).calls == []


def test_sync_client_on_a_real_port(sync_client: anthropic.Anthropic) -> None:
    message = sync_client.messages.create(model=MODEL, max_tokens=100, messages=USER)
    assert message.stop_reason == "end_turn"
    with sync_client.messages.stream(model=MODEL, max_tokens=100, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Done."
    assert final.usage.output_tokens == message.usage.output_tokens
    assert sync_client.messages.count_tokens(model=MODEL, messages=USER).input_tokens > 0
    assert sync_client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(anthropic.NotFoundError):
        sync_client.messages.create(model="claude-none", max_tokens=5, messages=USER)
    with pytest.raises(anthropic.BadRequestError):
        sync_client.messages.create(model=MODEL, max_tokens=5, messages=tool_turn())


async def test_on_call_sees_every_request_once_it_is_answered_with_its_bill() -> None:
    seen: list[dict[str, Any]] = []
    app = create_app(
        {MODEL: lambda request: Reply([{"type": "text", "text": "Hi."}])}, on_call=lambda c: seen.append(c.summary())
    )
    client = async_client(app, max_retries=0)
    reply = await client.messages.create(model=MODEL, max_tokens=50, messages=USER)
    async with client.messages.stream(model=MODEL, max_tokens=50, messages=USER) as stream:
        streamed = await stream.get_final_message()
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.create(model="claude-unknown", max_tokens=50, messages=USER)
    assert [s["message_id"] for s in seen] == [reply.id, streamed.id, None]
    assert [s["status"] for s in seen] == [200, 200, 404]
    assert [s["stream"] for s in seen] == [False, True, False]
    assert seen[0]["usage"] == reply.usage.model_dump(include=set(seen[0]["usage"]))
    assert seen[0]["usage"]["input_tokens"] == reply.usage.input_tokens > 0
    assert seen[0]["cost_usd"] > 0
    assert seen[1]["stop_reason"] == "end_turn"
    assert (seen[2]["error_type"], seen[2]["usage"], seen[2]["cost_usd"]) == ("not_found_error", None, None)


async def test_a_failing_on_call_hook_does_not_fail_the_request(caplog: pytest.LogCaptureFixture) -> None:
    def broken(call: Any) -> None:
        raise OSError("disk full")

    client = async_client(create_app(on_call=broken), max_retries=0)
    reply = await client.messages.create(model=MODEL, max_tokens=50, messages=USER)
    assert reply.stop_reason == "end_turn"
    assert "disk full" in caplog.text
