"""emulator.validate: the 400s the real API gives for bodies that are not JSON, prompts over the context window, and
parameter combinations it refuses (API-FACTS 1.4, 3.2, 5.2), with its wording; and what it accepts that looks wrong
(``role: "system"`` messages on the models that take them)."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import pytest

from leanloop.emulator import StreamingASGITransport, async_client, create_app

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
USER = [{"role": "user", "content": "Hello"}]
HEADERS = {"x-api-key": "k", "content-type": "application/json"}
PATHS = ["/v1/messages", "/v1/messages/count_tokens"]


def raw_client() -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=StreamingASGITransport(app=create_app()), base_url="http://emulator")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("body", "message"),
    [
        # JS clients (Claude Code) write a lone surrogate as an escape: the API refuses the body.
        (
            b'{"model":"claude-sonnet-4-6","max_tokens":5,"messages":[{"role":"user","content":"ab\\ud83d"}]}',
            "The request body is not valid JSON: no low surrogate in string: line 1 column 85 (char 84)",
        ),
        (
            b'{"model":"claude-sonnet-4-6","max_tokens":5,"messages":[{"role":"user","content":"\\udc00x"}]}',
            "The request body is not valid JSON: lone low surrogate in string: line 1 column 83 (char 82)",
        ),
        (b'{"model": ', "The request body is not valid JSON: Expecting value: line 1 column 11 (char 10)"),
        (b"\xff\xfe", "The request body is not valid JSON: "),
    ],
)
async def test_a_body_that_is_not_json_is_the_apis_400(path: str, body: bytes, message: str) -> None:
    async with raw_client() as client:
        response = await client.post(path, content=body, headers=HEADERS)
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(message)
    assert error["request_id"] == response.headers["request-id"]


@pytest.mark.parametrize("path", PATHS)
async def test_surrogate_pairs_and_escaped_backslashes_are_fine(path: str) -> None:
    text = '"\\ud83d\\ude00 and \\\\ud800 are fine"'  # an emoji as a pair, and a literal backslash before "ud800"
    body = f'{{"model":"{MODEL}","max_tokens":5,"messages":[{{"role":"user","content":{text}}}]}}'
    async with raw_client() as client:
        response = await client.post(path, content=body.encode(), headers=HEADERS)
    assert response.status_code == 200, response.text


async def test_an_emulator_bug_is_an_api_shaped_500_not_a_plain_text_one() -> None:
    # A policy answering text the wire cannot carry (a lone surrogate) must still give the API's error shape.
    app = create_app({MODEL: lambda request: "bad \ud800 text"})
    async with httpx2.AsyncClient(transport=StreamingASGITransport(app=app), base_url="http://emulator") as client:
        response = await client.post(
            "/v1/messages", json={"model": MODEL, "max_tokens": 50, "messages": USER}, headers=HEADERS
        )
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "api_error"
    assert response.headers["x-should-retry"] == "false"


def too_long(tokens: int) -> list[dict[str, Any]]:
    return [{"role": "user", "content": "word " * tokens}]


async def test_a_prompt_over_the_context_window_is_a_400_with_the_apis_wording() -> None:
    client = async_client(create_app(), max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=too_long(200_100))
    assert caught.value.type == "invalid_request_error"
    message = str(caught.value.api_message)
    assert message.startswith("prompt is too long: ")
    assert message.endswith(" tokens > 200000 maximum")
    tokens = int(message.split(": ")[1].split(maxsplit=1)[0])
    counted = await client.messages.count_tokens(model="claude-haiku-4-5", messages=too_long(200_100))
    assert tokens == counted.input_tokens > 200_000
    # Just inside the window is fine.
    fits = await client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=too_long(199_000))
    assert fits.type == "message"


THINKING = {"type": "enabled", "budget_tokens": 2048}
TOOLS = [{"name": "read", "input_schema": {"type": "object", "properties": {}}}]
JSON_FORMAT = {"format": {"type": "json_schema", "schema": {"type": "object", "properties": {}}}}


@pytest.mark.parametrize(
    ("model", "fields", "message"),
    [
        (MODEL, {"max_tokens": 0, "thinking": THINKING}, "max_tokens: must be greater than 0 when thinking"),
        (
            MODEL,
            {"max_tokens": 0, "tools": TOOLS, "tool_choice": {"type": "any"}},
            "max_tokens: must be greater than 0 when tool_choice",
        ),
        (MODEL, {"max_tokens": 0, "output_config": JSON_FORMAT}, "max_tokens: must be greater than 0 when output"),
        (
            MODEL,
            {"max_tokens": 2048, "thinking": THINKING},
            "`max_tokens` must be greater than `thinking.budget_tokens`.",
        ),
        (
            MODEL,
            {"max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 100}},
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        ),
        (
            MODEL,
            {"max_tokens": 4096, "thinking": THINKING, "tools": TOOLS, "tool_choice": {"type": "any"}},
            "Thinking may not be enabled when tool_choice forces tool use.",
        ),
        ("claude-opus-4-7", {"temperature": 0.2}, "`temperature` is deprecated for this model."),
        ("claude-opus-5", {"top_p": 0.9}, "`top_p` is deprecated for this model."),
        ("claude-sonnet-5-5", {"top_k": 5}, "`top_k` is deprecated for this model."),
        (MODEL, {"temperature": 0.5, "top_p": 0.9}, "`temperature` and `top_p` cannot both be specified"),
        (MODEL, {"temperature": 5}, "temperature: Input should be less than or equal to 1"),
        (MODEL, {"temperature": -0.1}, "temperature: Input should be greater than or equal to 0"),
        (MODEL, {"top_p": 1.5}, "top_p: Input should be less than or equal to 1"),
        (MODEL, {"top_k": -1}, "top_k: Input should be greater than or equal to 0"),
        (
            MODEL,
            {"tools": TOOLS, "tool_choice": {"type": "tool", "name": "write"}},
            "tool_choice.name: Tool 'write' not found in the request's tools",
        ),
        (MODEL, {"tool_choice": {"type": "tool", "name": "read"}}, "tool_choice.name: Tool 'read' not found"),
        (MODEL, {"tool_choice": {"type": "maybe"}}, "tool_choice: Input tag 'maybe' found using 'type'"),
        (
            MODEL,
            {"tools": [{"name": "rows", "input_schema": {"type": "array", "items": {"type": "string"}}}]},
            "tools.0.custom.input_schema.type: Input should be 'object'",
        ),
        (
            MODEL,
            {"messages": [{"role": "system", "content": "Be brief."}, *USER]},
            "role 'system' is not supported on this model",
        ),
        (
            "claude-sonnet-5",
            {"messages": [*USER, {"role": "system", "content": "Be brief."}]},
            "role 'system' is not supported on this model",
        ),
    ],
)
async def test_combinations_the_api_refuses_are_400s(model: str, fields: dict[str, Any], message: str) -> None:
    client = async_client(create_app(), max_retries=0)
    body = {"model": model, "max_tokens": 100, "messages": USER, **fields}
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.post("/v1/messages", cast_to=object, body=body)
    assert caught.value.type == "invalid_request_error"
    assert str(caught.value.api_message).startswith(message)


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (MODEL, {"temperature": 0, "top_k": 40}),
        (MODEL, {"temperature": 1.0}),
        ("claude-opus-4-6", {"temperature": 0.3}),
        (MODEL, {"max_tokens": 0}),  # a pre-warm without the settings that refuse it
        (MODEL, {"max_tokens": 4096, "thinking": THINKING, "tools": TOOLS, "tool_choice": {"type": "auto"}}),
        (MODEL, {"tools": TOOLS, "tool_choice": {"type": "tool", "name": "read"}}),
        (MODEL, {"tools": TOOLS, "tool_choice": {"type": "none"}}),
    ],
)
async def test_combinations_the_api_accepts(model: str, fields: dict[str, Any]) -> None:
    client = async_client(create_app(), max_retries=0)
    body = {"model": model, "max_tokens": 100, "messages": USER, **fields}
    message = await client.post("/v1/messages", cast_to=anthropic.types.Message, body=body)
    assert message.type == "message"


@pytest.mark.parametrize(
    "model", ["claude-opus-5", "claude-opus-4-8", "claude-fable-5", "claude-fable-5-1", "claude-mythos-5-1"]
)
async def test_system_messages_are_accepted_on_the_models_that_take_them(model: str) -> None:
    client = async_client(create_app(), max_retries=0)
    messages: Any = [*USER, {"role": "assistant", "content": "Hi."}, {"role": "system", "content": "Now be brief."}]
    messages.append({"role": "user", "content": "And now?"})
    message = await client.messages.create(model=model, max_tokens=100, messages=messages)
    assert message.type == "message"
    counted = await client.messages.count_tokens(model=model, messages=messages)
    assert counted.input_tokens > 0
