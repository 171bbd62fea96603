"""turn: assembling a turn from the SDK's raw stream events, on real recorded streams; and next_step."""

from __future__ import annotations

import time
from pathlib import Path

import anthropic
import httpx2
import pytest
import yaml

from leanloop.turn import Compact, Finish, Nudge, Resend, Retry, RunTools, StopRun, Turn, TurnBuilder, next_step
from leanloop.usage import Usage

pytestmark = pytest.mark.anyio


async def _turn_from_sse(body: str) -> Turn:
    """Feed a recorded SSE body through the official SDK's stream parser into a TurnBuilder."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body.encode())

    client = anthropic.AsyncAnthropic(
        api_key="test",
        base_url="http://recorded",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
    builder = TurnBuilder(time.perf_counter())
    stream = await client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=[], stream=True)
    async for event in stream:
        builder.add(event)
    return builder.finish()


async def test_recorded_tool_search_stream(shared_data: Path) -> None:
    recording = yaml.safe_load(
        (shared_data / "anthropic-recordings/test_anthropic_native_tool_search_streaming.yaml").read_text()
    )
    first = await _turn_from_sse(recording["interactions"][0]["response"]["body"]["string"])
    assert first.stop_reason == "tool_use"
    assert first.usage == Usage(input_tokens=1591, output_tokens=175, inference_geo="global")  # not message_start 702
    kinds = [b["type"] for b in first.content]
    assert kinds[0] == "text" and "server_tool_use" in kinds and kinds[-1] == "tool_use"
    server = next(b for b in first.content if b["type"] == "server_tool_use")
    assert server["input"] == {"query": "USD EUR exchange rate currency conversion"}  # fragments, one empty
    [use] = first.tool_uses
    assert (use.name, dict(use.input)) == ("get_exchange_rate", {"from_currency": "USD", "to_currency": "EUR"})
    assert first.ttft_s is not None
    second = await _turn_from_sse(recording["interactions"][1]["response"]["body"]["string"])
    assert second.text.startswith("The current exchange rate is **1 USD = 0.92 EUR**")
    assert second.usage is not None and second.usage.output_tokens == 59


async def test_recorded_one_hour_write_stream(shared_data: Path) -> None:
    turn = await _turn_from_sse((shared_data / "anthropic-recordings/cache_1h_ttl_streaming.response.sse").read_text())
    assert turn.usage == Usage(input_tokens=13, cache_write_1h_tokens=3913, output_tokens=4, inference_geo="global")
    assert turn.text == "Django"


def test_cut_tool_json_is_marked_truncated_and_never_offered_to_run() -> None:
    class Event:
        def __init__(self, **fields: object) -> None:
            self.__dict__.update(fields)

    builder = TurnBuilder(time.perf_counter())
    builder.add(
        Event(
            type="content_block_start",
            index=0,
            content_block={"type": "tool_use", "id": "t1", "name": "write", "input": {}},
        )
    )
    builder.add(
        Event(type="content_block_delta", index=0, delta=Event(type="input_json_delta", partial_json='{"body": "wor'))
    )
    builder.add(Event(type="message_delta", delta=Event(stop_reason="max_tokens"), usage=Event(output_tokens=100)))
    turn = builder.finish()
    assert turn.truncated_tool_ids == ["t1"]
    assert turn.tool_uses == []
    assert turn.without_truncated_tools() == []


def _turn(stop: str | None, *blocks: dict[str, object]) -> Turn:
    return Turn(content=list(blocks), stop_reason=stop)


def step(turn: Turn, **overrides: object) -> object:
    args: dict[str, object] = {
        "max_tokens": 1000,
        "retried": False,
        "lowered_by": None,
        "pauses": 0,
        "max_pauses": 3,
        "model_max_tokens": 64000,
    }
    return next_step(turn, **{**args, **overrides})  # type: ignore[arg-type]


def test_next_step_table() -> None:
    text = {"type": "text", "text": "hi"}
    use = {"type": "tool_use", "id": "t", "name": "f", "input": {}}
    assert step(_turn("end_turn", text)) == Finish("hi")
    assert step(_turn("stop_sequence", text)) == Finish("hi")
    assert isinstance(step(_turn("tool_use", text, use)), RunTools)
    assert step(_turn("max_tokens", use)) == Retry(2000)
    assert step(_turn("max_tokens", use), max_tokens=50000) == Retry(64000)
    assert isinstance(step(_turn("max_tokens", use), retried=True), StopRun)
    assert step(_turn("max_tokens", use), lowered_by="usd") == StopRun(
        "budget", "the turn was cut at max_tokens=1000, lowered by the usd cap", "usd"
    )
    assert step(_turn("max_tokens", text, use)) == Retry(2000, "hi")  # the text the dropped turn streamed
    assert step(_turn("pause_turn", text)) == Resend()
    assert isinstance(step(_turn("pause_turn", text), pauses=3), StopRun)
    assert step(_turn("refusal", text)).reason == "refused"  # type: ignore[attr-defined]
    assert step(_turn(None, text)).reason == "error"  # type: ignore[attr-defined]


def test_a_turn_that_filled_the_context_window_is_compacted_once() -> None:
    text = {"type": "text", "text": "partial"}
    assert step(_turn("model_context_window_exceeded", text), can_compact=True) == Compact("partial")
    stopped = step(_turn("model_context_window_exceeded", text))  # compaction off, or it was just tried
    assert isinstance(stopped, StopRun) and stopped.reason == "error" and "context window" in stopped.detail


def test_an_empty_end_turn_is_nudged_once_then_stops() -> None:
    assert step(_turn("end_turn")) == Nudge()
    assert step(_turn("end_turn", {"type": "text", "text": "  "})) == Nudge()
    assert step(_turn("tool_use")) == Nudge()  # tool_use with no complete tool call and no text
    stopped = step(_turn("end_turn"), nudged=True)
    assert isinstance(stopped, StopRun) and stopped.reason == "error" and "empty end_turn" in stopped.detail


@pytest.mark.parametrize(
    "block",
    [
        anthropic.types.TextBlock(type="text", text="hi"),
        anthropic.types.ToolUseBlock(type="tool_use", id="toolu_1", name="lookup", input={"k": [1, {"a": None}]}),
        anthropic.types.ToolUseBlock(
            type="tool_use", id="toolu_2", name="lookup", input={}, caller=anthropic.types.DirectCaller(type="direct")
        ),
        anthropic.types.TextBlock(
            type="text",
            text="",
            citations=[
                anthropic.types.CitationCharLocation(
                    type="char_location",
                    cited_text="x",
                    document_index=0,
                    document_title=None,
                    start_char_index=0,
                    end_char_index=1,
                )
            ],
        ),
        anthropic.types.ThinkingBlock(type="thinking", thinking="", signature=""),
    ],
)
def test_a_started_block_is_read_as_the_sdk_would_dump_it(block: object) -> None:
    from leanloop.turn import _start_block  # pyright: ignore[reportPrivateUsage]

    assert _start_block(block) == block.model_dump(exclude_none=True)  # type: ignore[attr-defined]
