"""A policy that replays a recorded trajectory: the n-th assistant turn of a conversation gets the n-th recorded one.

Like the scenario runner it is a pure function of the request (it counts the assistant turns already in
``messages``), so one replay can serve many conversations at once. Recorded tool_use ids are kept, so the client
answers with the ids the recording used; a turn served again in the same conversation (``after_last="repeat"``) gets
fresh ids, since ids must be unique in a conversation (the emulator renews them: ``contract.py``).

``load_trajectory`` reads:

- a conversation: ``{"messages": [...]}`` or a bare list of ``{"role", "content"}`` messages (JSON or YAML);
- API responses: a list of Messages API message objects (``{"type": "message", ...}``), or JSON Lines of them;
- a VCR cassette (``interactions:``), taking each 200 response, JSON or server-sent events, in order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

from leanloop.emulator.policies import Reply, assistant_turns, content_blocks, finisher, messages_of
from leanloop.emulator.scenario import read_data
from leanloop.errors import ConfigError

__all__ = ["ReplayPolicy", "load_trajectory", "replies_from_stream", "turns_from_messages"]


class ReplayPolicy:
    """Answers turn n of a conversation with ``turns[n]``; past the end: ``after_last`` (finish, repeat or error)."""

    def __init__(self, turns: Sequence[Reply], *, after_last: Literal["finish", "repeat", "error"] = "finish") -> None:
        if not turns:
            raise ConfigError("a replay needs at least one recorded assistant turn")
        self.turns = tuple(turns)
        self.after_last = after_last

    def __call__(self, request: Mapping[str, Any]) -> Reply:
        index = assistant_turns(messages_of(request))
        if index < len(self.turns):
            return self.turns[index]
        if self.after_last == "repeat":
            return self.turns[-1]
        if self.after_last == "error":
            raise ConfigError(f"the replay has {len(self.turns)} recorded turns; turn {index + 1} was asked for")
        return finisher(request)

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> ReplayPolicy:
        return cls(load_trajectory(path), **options)


def turns_from_messages(messages: Sequence[Mapping[str, Any]]) -> list[Reply]:
    """The assistant turns of a conversation, in order."""
    return [Reply([dict(b) for b in content_blocks(m)]) for m in messages if m.get("role") == "assistant"]


def load_trajectory(path: str | Path) -> list[Reply]:
    """The recorded assistant turns in ``path`` (formats in the module docstring)."""
    path = Path(path)
    data = read_data(path, "trajectory")
    try:
        turns = _turns(data)
    except (LookupError, TypeError, ValueError) as error:  # a recording with parts of the wrong shape
        raise ConfigError(f"trajectory {path} is not a recording leanloop can read: {error!r}") from None
    if not turns:
        raise ConfigError(f"no assistant turns found in {path}")
    return turns


def _turns(data: Any) -> list[Reply]:
    if isinstance(data, Mapping):
        mapping = cast(Mapping[str, Any], data)
        if "interactions" in mapping:
            return _from_cassette(cast(list[Any], mapping["interactions"]))
        if "messages" in mapping:
            return turns_from_messages(messages_of(mapping))
        return _turns([mapping])
    if not isinstance(data, list):
        return []
    items = [cast(Mapping[str, Any], i) for i in cast(list[Any], data) if isinstance(i, Mapping)]
    if all(i.get("type") == "message" for i in items):
        return [_from_message(i) for i in items]
    return turns_from_messages(items)


def _from_message(message: Mapping[str, Any]) -> Reply:
    return Reply([dict(b) for b in content_blocks(message)], message.get("stop_reason"))


def _from_cassette(interactions: Sequence[Any]) -> list[Reply]:
    turns: list[Reply] = []
    for interaction in interactions:
        response = _field(interaction, "response")
        if _field(_field(response, "status"), "code") not in (None, 200):
            continue
        parsed = _field(response, "parsed_body")
        if _field(parsed, "type") == "message":
            turns.append(_from_message(cast(Mapping[str, Any], parsed)))
            continue
        body = _field(_field(response, "body"), "string")
        if isinstance(body, str) and "event: message_start" in body:
            turns.extend(replies_from_stream(body))
        elif isinstance(body, str) and body.strip().startswith("{"):
            turns.append(_from_message(json.loads(body)))
    return turns


def _field(value: Any, key: str) -> Any:
    return cast(Mapping[str, Any], value).get(key) if isinstance(value, Mapping) else None


def replies_from_stream(sse: str) -> list[Reply]:
    """Reassemble the message(s) of a recorded server-sent-event body."""
    replies: list[Reply] = []
    blocks: list[dict[str, Any]] = []
    json_parts: dict[int, str] = {}
    stop_reason: str | None = None
    for line in sse.splitlines():
        if not line.startswith("data:"):
            continue
        event: dict[str, Any] = json.loads(line[5:])
        kind = event.get("type")
        if kind == "message_start":
            blocks = []
            json_parts = {}
            stop_reason = None
        elif kind == "content_block_start":
            blocks.append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            index = int(event["index"])
            _apply_delta(blocks[index], event["delta"], json_parts, index)
        elif kind == "content_block_stop" and json_parts.get(int(event["index"])):
            index = int(event["index"])
            blocks[index]["input"] = json.loads(json_parts[index])
        elif kind == "message_delta":
            stop_reason = event["delta"].get("stop_reason")
        elif kind == "message_stop":
            replies.append(Reply(blocks, stop_reason))
    return replies


def _apply_delta(block: dict[str, Any], delta: Mapping[str, Any], json_parts: dict[int, str], index: int) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + delta["text"]
    elif kind == "input_json_delta":
        json_parts[index] = json_parts.get(index, "") + delta["partial_json"]
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + delta["thinking"]
    elif kind == "signature_delta":
        block["signature"] = delta["signature"]
