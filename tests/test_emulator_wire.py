"""emulator.wire: the emulator's stream has the shape of the real recorded streams, event by event, as read by the
SDK's own SSE parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
import yaml

from leanloop.emulator import Reply, async_client, create_app
from leanloop.emulator.replay import replies_from_stream

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"


def recorded_streams(shared_data: Path) -> list[str]:
    folder = shared_data / "anthropic-recordings"
    cassette = yaml.safe_load((folder / "test_anthropic_native_tool_search_streaming.yaml").read_text())
    bodies = [i["response"]["body"]["string"] for i in cassette["interactions"]]
    return [(folder / "cache_1h_ttl_streaming.response.sse").read_text(), *bodies]


def sdk_events(sse_body: str) -> list[Any]:
    """The raw stream events of ``sse_body`` as the SDK parses them (it drops pings)."""

    def respond(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sse_body.encode())

    http_client = httpx2.Client(transport=httpx2.MockTransport(respond))
    client = anthropic.Anthropic(api_key="x", base_url="http://recorded", http_client=http_client)
    stream = client.messages.create(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "-"}], stream=True
    )
    return list(stream)


def shape(events: list[Any]) -> list[tuple[str, ...]]:
    """Event type with block or delta type; a run of deltas of one kind is one entry (fragmenting differs)."""
    out: list[tuple[str, ...]] = []
    for event in events:
        if event.type == "content_block_start":
            item: tuple[str, ...] = (event.type, event.content_block.type)
        elif event.type == "content_block_delta":
            item = (event.type, event.delta.type)
        elif event.type == "message_delta":
            item = (event.type, *sorted(k for k, v in event.usage.model_dump().items() if v is not None))
        elif event.type == "message_start":
            item = (event.type, *sorted(k for k, v in event.message.usage.model_dump().items() if v is not None))
        else:
            item = (event.type,)
        if not (out and out[-1] == item and event.type == "content_block_delta"):
            out.append(item)
    return out


def raw_names(sse_body: str) -> list[str]:
    names = [line[len("event: ") :] for line in sse_body.splitlines() if line.startswith("event: ")]
    return [n for i, n in enumerate(names) if not (n == "content_block_delta" and names[i - 1] == n)]


def tools_for(reply: Reply) -> list[dict[str, Any]]:
    """A request's declaration of every tool ``reply`` calls."""
    names = dict.fromkeys(str(b["name"]) for b in reply.content if b.get("type") == "tool_use")
    return [{"name": name, "input_schema": {"type": "object"}} for name in names]


async def emulated_stream(reply: Reply) -> tuple[str, list[Any]]:
    """The emulator's SSE body for ``reply`` and the events the async SDK parses from it."""
    app = create_app({MODEL: lambda request: reply})
    client = async_client(app)
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 4096, "messages": [{"role": "user", "content": "-"}]}
    kwargs["tools"] = tools_for(reply)
    raw = await client.messages.with_raw_response.create(stream=True, **kwargs)
    body = (await raw.http_response.aread()).decode()
    return body, sdk_events(body)


async def test_stream_shape_matches_each_recording(shared_data: Path) -> None:
    for recorded in recorded_streams(shared_data):
        (reply,) = replies_from_stream(recorded)
        body, events = await emulated_stream(reply)
        assert shape(events) == shape(sdk_events(recorded))
        assert raw_names(body) == raw_names(recorded)  # including where the ping goes


async def test_tool_input_streams_in_fragments_opening_with_an_empty_one() -> None:
    tool = {"type": "tool_use", "name": "get_rate", "input": {"from_currency": "USD", "to_currency": "EUR"}}
    body, events = await emulated_stream(Reply([tool]))
    fragments = [e.delta.partial_json for e in events if e.type == "content_block_delta"]
    assert fragments[0] == ""
    assert len(fragments) > 3
    assert "".join(fragments) == '{"from_currency": "USD", "to_currency": "EUR"}'
    assert '"caller":{"type":"direct"}' in body


async def test_message_delta_usage_is_cumulative_and_final_usage_wins() -> None:
    _, events = await emulated_stream(Reply([{"type": "text", "text": "A fairly long answer. " * 20}]))
    start = next(e for e in events if e.type == "message_start")
    delta = next(e for e in events if e.type == "message_delta")
    assert start.message.usage.output_tokens == 1
    assert start.message.stop_reason is None
    assert delta.usage.output_tokens > 20
    assert delta.usage.input_tokens == start.message.usage.input_tokens
    assert delta.usage.cache_read_input_tokens == start.message.usage.cache_read_input_tokens
    assert delta.delta.stop_reason == "end_turn"


async def test_stream_helper_accumulates_the_same_message_as_non_streaming() -> None:
    reply = Reply(
        [
            {"type": "thinking", "thinking": "Check the log first.", "signature": "sig"},
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "name": "read", "input": {"path": "/var/log/x", "n": [1, 2.5, None, True]}},
        ]
    )
    client = async_client(create_app({MODEL: lambda request: reply}, seed=1))
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 500, "messages": [{"role": "user", "content": "-"}]}
    kwargs["tools"] = tools_for(reply)
    async with client.messages.stream(**kwargs) as stream:
        streamed = await stream.get_final_message()
    plain = await async_client(create_app({MODEL: lambda request: reply}, seed=1)).messages.create(**kwargs)
    assert [b.model_dump() for b in streamed.content] == [b.model_dump() for b in plain.content]
    assert streamed.usage.output_tokens == plain.usage.output_tokens
    assert streamed.stop_reason == plain.stop_reason == "tool_use"


async def first_ids(**options: Any) -> tuple[str, str, str]:
    """(request id, message id, tool_use id) of the first response of a fresh emulator."""
    reply = Reply([{"type": "tool_use", "name": "read", "input": {}}])
    client = async_client(create_app({MODEL: lambda request: reply}, **options))
    raw = await client.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "-"}], tools=tools_for(reply)
    )
    message = await raw.parse()
    block = message.content[0]
    assert block.type == "tool_use"
    return raw.headers["request-id"], message.id, block.id


async def test_ids_are_random_per_emulator_unless_seeded() -> None:
    # Two emulator runs must not hand out the same ids: leanloop report de-duplicates on (message id, request id).
    assert len({await first_ids() for _ in range(3)}) == 3
    assert await first_ids(seed=5) == await first_ids(seed=5)
    assert await first_ids(seed=5) != await first_ids(seed=6)


def test_every_tool_use_id_costs_the_same_tokens() -> None:
    # Random ids must not make a run's bill random: a tool_use id is part of every later prompt.
    from leanloop.emulator.wire import Ids
    from leanloop.tokens import count_text

    ids = Ids()
    counts = {count_text(ids.tool_use_id()) for _ in range(500)}
    assert len(counts) == 1
