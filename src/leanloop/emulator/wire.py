"""The Messages API's wire shapes: ids, error bodies, the message object and its server-sent-event stream. Pure.

The stream follows the recorded real ones in ``shared/data/anthropic-recordings``::

    message_start        message with empty content, usage with input and cache fields, output_tokens 1
    content_block_start  index 0
    ping                 (once, after the first block opens)
    content_block_delta  x N   text_delta / input_json_delta (an empty one first) / thinking_delta
    content_block_stop
    ...                  one group per block
    message_delta        stop_reason; cumulative usage: input, cache fields and output
    message_stop
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from leanloop.emulator.render import Rendered
from leanloop.usage import Usage

__all__ = [
    "Event",
    "Ids",
    "encode_event",
    "error_body",
    "error_event",
    "message_body",
    "stream_events",
    "usage_body",
]

_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
# Characters of the API's ids (base58), by class. Every id has the class shape of a real recorded one
# (toolu_01EEe2V5HD1Ac4rKiUR4HD2T): random characters, but the same token estimate for every id, so random ids
# never make the bill of a run random (a tool_use id is part of every later prompt).
_ALPHABET = {"U": "ABCDEFGHJKLMNPQRSTUVWXYZ", "l": "abcdefghijkmnopqrstuvwxyz", "d": "123456789"}
_SHAPE = "UUldUdUUdUldlUlUUdUUdU"
_POSITIONS = [(_ALPHABET[kind], len(_ALPHABET[kind])) for kind in _SHAPE]


class Ids:
    """Real-looking ids (``msg_01`` + 22 base58 characters, likewise ``toolu_`` and ``req_``).

    Random per emulator (two runs never share ids, so logs of both can be analysed together); reproducible with a
    ``seed``.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)  # None: seeded from the OS

    def _new(self, prefix: str) -> str:
        draws = self._random.getrandbits(8 * len(_SHAPE)).to_bytes(len(_SHAPE), "little")
        picked = (chars[byte % size] for (chars, size), byte in zip(_POSITIONS, draws, strict=True))
        return prefix + "01" + "".join(picked)

    def message_id(self) -> str:
        return self._new("msg_")

    def tool_use_id(self) -> str:
        return self._new("toolu_")

    def request_id(self) -> str:
        return self._new("req_")


def error_body(
    error_type: str, message: str, request_id: str | None, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"[, "details"]}, "request_id"}``, the API's error shape.

    ``details`` carries an ``error_code`` the SDK maps to a finer exception class (``ThreadNotFoundError``, ...).
    """
    error: dict[str, Any] = {"type": error_type, "message": message}
    if details is not None:
        error["details"] = dict(details)
    return {"type": "error", "error": error, "request_id": request_id}


def error_event(error_type: str, message: str) -> bytes:
    """An SSE ``error`` event, as the API sends after HTTP 200 (no request_id in it)."""
    return encode_event("error", {"type": "error", "error": {"type": error_type, "message": message}})


def usage_body(usage: Usage, rendered: Rendered | None = None) -> dict[str, Any]:
    """The ``usage`` object of a response: cache fields, output tokens, and what the turn did (``rendered``).

    ``speed`` appears when the request asked for a speed (the recorded responses have none); ``inference_geo`` is the
    request's (default ``global``). Both reach pricing: fast mode and ``us`` inference are billed at their own rates.
    """
    body = usage.to_api()
    if rendered is not None:
        body.update(_turn_usage(rendered))
    body["service_tier"] = "standard"
    body["inference_geo"] = usage.inference_geo or "global"
    if usage.speed is not None:
        body["speed"] = usage.speed
    return body


def _turn_usage(rendered: Rendered) -> dict[str, Any]:
    """The usage fields that come from the answer: output tokens, their thinking share, server tool calls."""
    fields: dict[str, Any] = {"output_tokens": rendered.output_tokens}
    if rendered.thinking_tokens:
        fields["output_tokens_details"] = {"thinking_tokens": rendered.thinking_tokens}
    if rendered.server_tool_use is not None:
        fields["server_tool_use"] = rendered.server_tool_use
    return fields


def message_body(
    message_id: str,
    model: str,
    content: list[dict[str, Any]],
    stop: tuple[str | None, str | None],
    usage: dict[str, Any],
    *,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The message object; ``stop`` is (stop_reason, stop_sequence); ``extra``: fields only some requests get."""
    return {
        "model": model,
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "content": content,
        "stop_reason": stop[0],
        "stop_sequence": stop[1],
        "stop_details": None,
        "usage": usage,
        **(extra or {}),
    }


@dataclass(frozen=True, slots=True)
class Event:
    """One encoded SSE event and the output tokens streamed once it is out (for pacing)."""

    name: str
    data: bytes
    tokens: int


def encode_event(name: str, data: dict[str, Any]) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {payload}\n\n".encode()


def stream_events(
    message_id: str, model: str, rendered: Rendered, usage: Usage, extra: Mapping[str, Any] | None = None
) -> Iterator[Event]:
    """Every event of the stream for ``rendered``, in order; ``extra`` fields go in the message_delta event."""
    start_usage = usage_body(usage.with_output(1))
    yield Event("message_start", encode_event("message_start", _start(message_id, model, start_usage)), 0)
    if not rendered.blocks:
        yield Event("ping", _PING, 0)
    tokens = 0
    for index, block in enumerate(rendered.blocks):
        yield Event("content_block_start", _block_start(index, block.start), tokens)
        if index == 0:
            yield Event("ping", _PING, tokens)
        for delta, delta_tokens in zip(block.deltas, block.delta_tokens, strict=True):
            tokens += delta_tokens
            data = {"type": "content_block_delta", "index": index, "delta": delta}
            yield Event("content_block_delta", encode_event("content_block_delta", data), tokens)
        tokens += block.tokens - sum(block.delta_tokens)
        yield Event("content_block_stop", encode_event("content_block_stop", _block_stop(index)), tokens)
    final_usage: dict[str, Any] = {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        **_turn_usage(rendered),
    }
    stop = {"stop_reason": rendered.stop_reason, "stop_sequence": rendered.stop_sequence, "stop_details": None}
    delta = {"type": "message_delta", "delta": stop, "usage": final_usage, **(extra or {})}
    yield Event("message_delta", encode_event("message_delta", delta), rendered.output_tokens)
    yield Event("message_stop", encode_event("message_stop", {"type": "message_stop"}), rendered.output_tokens)


def _start(message_id: str, model: str, usage: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message_start", "message": message_body(message_id, model, [], (None, None), usage)}


def _block_start(index: int, block: dict[str, Any]) -> bytes:
    return encode_event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})


def _block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}
