"""The request checks the real API makes before it samples, with its statuses and wording. Pure.

Each check raises ``leanloop.errors.InvalidRequestError`` carrying the HTTP status, the error type and the message
the API puts in ``error.message``, which starts with the path of the field at fault (``messages.1.content.0``):

=====================================================  ======  =====================
what                                                    status  error.type
=====================================================  ======  =====================
body not JSON, or not an object                          400    invalid_request_error
a field missing or of the wrong type (``_BODY``,
  ``_BLOCKS``, ``_CUSTOM_TOOL``: messages, content
  blocks, system, tools)                                 400    invalid_request_error
a content block of a type the API does not know          400    invalid_request_error
an empty message, or an empty/whitespace-only text
  block (cache_control on an empty one)                  400    invalid_request_error
duplicate tool names, duplicate ``tool_use`` ids         400    invalid_request_error
unknown model                                            404    not_found_error
``max_tokens`` negative or above the model's maximum     400    invalid_request_error
``max_tokens: 0`` with ``stream: true``                  400    invalid_request_error
a tool_use not answered by a tool_result in the next
  user message, or a tool_result answering nothing       400    invalid_request_error
tool_result blocks not first in their message            400    invalid_request_error
bad cache_control (> 4 breakpoints, 1h after 5m, ttl)    400    (raised by ``cachesim``)
body over 32 MB                                          413    request_too_large
=====================================================  ======  =====================

Consecutive messages of the same role are merged, not rejected, as the API does. Blocks nested in a tool_result are
not checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from leanloop.emulator.catalog import ModelCard
from leanloop.emulator.policies import content_blocks
from leanloop.errors import InvalidRequestError

__all__ = [
    "MAX_BODY_BYTES",
    "check_count_tokens_request",
    "check_message_request",
    "parse_body",
    "too_large",
]

MAX_BODY_BYTES = 32 * 1024 * 1024  # Messages and count_tokens (API-FACTS 6.1)
_ROLES = ("user", "assistant")


@dataclass(frozen=True, slots=True)
class _Kind:
    """A JSON type a field must have, named the way the API's "Input should be ..." message names it."""

    types: tuple[type, ...]
    name: str

    def holds(self, value: Any) -> bool:
        return isinstance(value, self.types) and (bool in self.types or not isinstance(value, bool))


_STRING = _Kind((str,), "a valid string")
_INTEGER = _Kind((int,), "a valid integer")
_NUMBER = _Kind((int, float), "a valid number")
_BOOLEAN = _Kind((bool,), "a valid boolean")
_LIST = _Kind((list,), "a valid list")
_OBJECT = _Kind((Mapping,), "a valid dictionary")
_CONTENT = _Kind((str, list), "a valid string or a list of content blocks")

# The top-level fields the emulator reads, checked when present (null counts as absent).
_BODY: dict[str, _Kind] = {
    "model": _STRING,
    "max_tokens": _INTEGER,
    "messages": _LIST,
    "system": _CONTENT,
    "tools": _LIST,
    "tool_choice": _OBJECT,
    "cache_control": _OBJECT,
    "metadata": _OBJECT,
    "stream": _BOOLEAN,
    "stop_sequences": _LIST,
    "temperature": _NUMBER,
    "top_p": _NUMBER,
    "top_k": _INTEGER,
}
_TOOL_CALL = {"id": _STRING, "name": _STRING, "input": _OBJECT}
# The required fields of each content block type a request may hold (beta types included), in the SDK's order.
_BLOCKS: dict[str, dict[str, _Kind]] = {
    "text": {"text": _STRING},
    "image": {"source": _OBJECT},
    "document": {"source": _OBJECT},
    "search_result": {},
    "thinking": {"thinking": _STRING, "signature": _STRING},
    "redacted_thinking": {"data": _STRING},
    "tool_use": _TOOL_CALL,
    "tool_result": {"tool_use_id": _STRING},
    "server_tool_use": _TOOL_CALL,
    "web_search_tool_result": {},
    "web_fetch_tool_result": {},
    "advisor_tool_result": {},
    "code_execution_tool_result": {},
    "bash_code_execution_tool_result": {},
    "text_editor_code_execution_tool_result": {},
    "tool_search_tool_result": {},
    "mcp_tool_use": {"id": _STRING, "name": _STRING, "server_name": _STRING, "input": _OBJECT},
    "mcp_tool_result": {"tool_use_id": _STRING},
    "container_upload": {},
    "compaction": {},
    "tool_addition": {},
    "tool_removal": {},
    "mcp_tool_listing": {},
    "fallback": {},
}
_CUSTOM_TOOL = {"name": _STRING, "input_schema": _OBJECT}  # a tool without a type, or of type "custom"
_SERVER_TOOL = {"name": _STRING}  # checked when present: an MCP toolset has none


def too_large() -> InvalidRequestError:
    return InvalidRequestError(
        "Request exceeds the maximum allowed number of bytes.", status=413, error_type="request_too_large"
    )


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body."""
    if len(raw) > MAX_BODY_BYTES:
        raise too_large()
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise InvalidRequestError(f"There was an issue with your request body: invalid JSON ({error})") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("There was an issue with your request body: the body must be a JSON object")
    return cast(dict[str, Any], body)


def check_count_tokens_request(body: Mapping[str, Any], card_for: Callable[[str], ModelCard | None]) -> ModelCard:
    """Checks of ``POST /v1/messages/count_tokens``: a known model and a well-formed prompt."""
    _fields("", body, _BODY, required=("model", "messages"))
    card = _model(body, card_for)
    _prompt(body)
    return card


def check_message_request(body: Mapping[str, Any], card_for: Callable[[str], ModelCard | None]) -> ModelCard:
    """Checks of ``POST /v1/messages``. ``card_for`` returns the served model's card, or None for an unknown model."""
    _fields("", body, _BODY, required=("model", "messages", "max_tokens"))
    card = _model(body, card_for)
    max_tokens = int(body["max_tokens"])
    if max_tokens < 0:
        raise InvalidRequestError("max_tokens: Input should be greater than or equal to 0")
    if max_tokens > card.max_tokens:
        raise InvalidRequestError(
            f"max_tokens: {max_tokens} > {card.max_tokens}, which is the maximum allowed number of output tokens "
            f"for {card.id}"
        )
    if max_tokens == 0 and body.get("stream") is True:
        raise InvalidRequestError("max_tokens: must be greater than 0 when streaming")
    _prompt(body)
    return card


def _fields(path: str, data: Mapping[str, Any], kinds: Mapping[str, _Kind], required: Collection[str]) -> None:
    """``data``'s fields have their ``kinds``, and the ``required`` ones are there. ``path`` ends with a dot."""
    for name, kind in kinds.items():
        value = data.get(name)
        if name not in data and name in required:
            raise InvalidRequestError(f"{path}{name}: Field required")
        if (value is not None or name in required) and not kind.holds(value):
            raise InvalidRequestError(f"{path}{name}: Input should be {kind.name}")


def _model(body: Mapping[str, Any], card_for: Callable[[str], ModelCard | None]) -> ModelCard:
    model = str(body["model"])
    if not model:
        raise InvalidRequestError("model: String should have at least 1 character")
    card = card_for(model)
    if card is None:
        raise InvalidRequestError(f"model: {model}", status=404, error_type="not_found_error")
    return card


def _prompt(body: Mapping[str, Any]) -> None:
    _tools(cast(list[Any], body.get("tools") or []))
    system = body.get("system")
    if isinstance(system, list):
        for position, block in enumerate(cast(list[Any], system)):
            _block("system", f"system.{position}", block, kinds=("text",))
    _messages(cast(list[Any], body["messages"]))


def _tools(tools: Sequence[Any]) -> None:
    names: list[str] = []
    for index, raw in enumerate(tools):
        path = f"tools.{index}"
        tool = _object(path, raw)
        _fields(f"{path}.", tool, {"type": _STRING}, required=())
        kind = str(tool.get("type") or "custom")
        if kind == "custom":
            _fields(f"{path}.custom.", tool, _CUSTOM_TOOL, required=_CUSTOM_TOOL)
        else:
            _fields(f"{path}.{kind}.", tool, _SERVER_TOOL, required=())
        if "name" in tool:
            names.append(str(tool["name"]))
    if len(set(names)) < len(names):
        raise InvalidRequestError("tools: Tool names must be unique.")


def _messages(items: Sequence[Any]) -> None:
    if not items:
        raise InvalidRequestError("messages: at least one message is required")
    tool_use_ids: set[str] = set()
    for index, raw in enumerate(items):
        path = f"messages.{index}"
        blocks = _message_blocks(path, _object(path, raw), final=index == len(items) - 1)
        for position, block in enumerate(blocks):
            if block["type"] != "tool_use":
                continue
            if block["id"] in tool_use_ids:
                raise InvalidRequestError(f"{path}.content.{position}: `tool_use` ids must be unique")
            tool_use_ids.add(block["id"])
    _tool_pairing(_merged(cast(list[Mapping[str, Any]], items)))


def _message_blocks(path: str, message: Mapping[str, Any], *, final: bool) -> list[Mapping[str, Any]]:
    """The checked blocks of the message at ``path`` (a string content is one text block)."""
    if message.get("role") not in _ROLES:
        raise InvalidRequestError(f"{path}.role: Input should be 'user' or 'assistant'")
    _fields(f"{path}.", message, {"content": _CONTENT}, required=("content",))
    content = message["content"]
    if not content and not (final and message["role"] == "assistant"):  # an empty final turn is a prefill
        raise InvalidRequestError(
            f"{path}: all messages must have non-empty content except for the optional final assistant message"
        )
    raw_blocks = [{"type": "text", "text": content}] if isinstance(content, str) and content else content
    return [
        _block("messages", f"{path}.content.{position}", raw, kinds=_BLOCKS)
        for position, raw in enumerate(cast(list[Any], raw_blocks))
    ]


def _object(path: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidRequestError(f"{path}: Input should be a valid dictionary or object to extract fields from")
    return cast(Mapping[str, Any], value)


def _block(field: str, path: str, value: Any, kinds: Collection[str]) -> Mapping[str, Any]:
    """One content block at ``path`` of ``field`` (messages or system), whose type must be one of ``kinds``."""
    block = _object(path, value)
    kind = block.get("type")
    if kind is None:
        raise InvalidRequestError(f"{path}: Unable to extract tag using discriminator 'type'")
    if not isinstance(kind, str) or kind not in kinds:
        expected = ", ".join(f"'{k}'" for k in kinds)
        raise InvalidRequestError(
            f"{path}: Input tag '{kind}' found using 'type' does not match any of the expected tags: {expected}"
        )
    _fields(f"{path}.{kind}.", block, _BLOCKS[kind], required=_BLOCKS[kind])
    if kind != "text":
        return block
    text = str(block["text"])
    if not text and block.get("cache_control") is not None:
        raise InvalidRequestError(f"{path}.text: cache_control cannot be set for empty text blocks")
    if not text:
        raise InvalidRequestError(f"{field}: text content blocks must be non-empty")
    if not text.strip():
        raise InvalidRequestError(f"{field}: text content blocks must contain non-whitespace text")
    return block


def _merged(messages: Sequence[Mapping[str, Any]]) -> list[tuple[int, str, list[Mapping[str, Any]]]]:
    """(index of the first merged message, role, blocks): consecutive same-role messages are one turn."""
    turns: list[tuple[int, str, list[Mapping[str, Any]]]] = []
    for index, message in enumerate(messages):
        role = str(message["role"])
        if turns and turns[-1][1] == role:
            turns[-1][2].extend(content_blocks(message))
        else:
            turns.append((index, role, content_blocks(message)))
    return turns


def _tool_pairing(turns: Sequence[tuple[int, str, list[Mapping[str, Any]]]]) -> None:
    """Every tool_use is answered in the very next user turn, whose tool_result blocks come first."""
    asked: list[str] = []
    asked_at = 0
    for index, role, blocks in turns:
        if role == "assistant":
            asked = [str(b.get("id")) for b in blocks if b.get("type") == "tool_use"]
            asked_at = index
            continue
        answered = _check_results_first(index, blocks)
        unexpected = [tool_id for tool_id in answered if tool_id not in asked]
        if unexpected:
            raise InvalidRequestError(
                f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(unexpected)}. Each `tool_result` block must have a corresponding `tool_use` block in "
                "the previous message."
            )
        _raise_unanswered(asked_at, [tool_id for tool_id in asked if tool_id not in answered])
        asked = []
    _raise_unanswered(asked_at, asked)


def _check_results_first(index: int, blocks: Sequence[Mapping[str, Any]]) -> list[str]:
    answered: list[str] = []
    seen_other = False
    for position, block in enumerate(blocks):
        if block.get("type") != "tool_result":
            seen_other = True
            continue
        if seen_other:
            raise InvalidRequestError(
                f"messages.{index}.content.{position}: `tool_result` blocks must come first in the content of a "
                "user message: any text must come after all tool results."
            )
        answered.append(str(block.get("tool_use_id")))
    return answered


def _raise_unanswered(index: int, missing: Sequence[str]) -> None:
    if missing:
        raise InvalidRequestError(
            f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: "
            f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the next "
            "message."
        )
