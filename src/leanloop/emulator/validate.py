"""The request checks the real API makes before it samples, with its statuses and wording. Pure.

Each check raises ``leanloop.errors.InvalidRequestError`` carrying the HTTP status, the error type and the message
the API puts in ``error.message``, which starts with the path of the field at fault (``messages.1.content.0``):

=====================================================  ======  =====================
what                                                    status  error.type
=====================================================  ======  =====================
body not JSON (a lone surrogate escape included, as
  JS clients write them), or not an object               400    invalid_request_error
a field missing or of the wrong type (``_BODY``,
  ``_BLOCKS``, ``_CUSTOM_TOOL``: messages, content
  blocks, system, tools)                                 400    invalid_request_error
a content block of a type the API does not know          400    invalid_request_error
an empty message, or an empty/whitespace-only text
  block (cache_control on an empty one)                  400    invalid_request_error
duplicate tool names, duplicate ``tool_use`` ids         400    invalid_request_error
unknown model                                            404    not_found_error
``max_tokens`` negative or above the model's maximum     400    invalid_request_error
``max_tokens: 0`` with stream, thinking enabled, a
  forced tool_choice or ``output_config.format``         400    invalid_request_error
``thinking.budget_tokens`` under 1024 or not under
  ``max_tokens``; thinking with a forced tool_choice     400    invalid_request_error
``temperature``/``top_p``/``top_k`` out of range, both
  temperature and top_p, any of them on Opus 4.7+/5.x    400    invalid_request_error
``tool_choice`` of an unknown type or naming a tool
  the request does not have                              400    invalid_request_error
``role: "system"`` on a model that does not take it      400    invalid_request_error
a custom tool whose ``input_schema.type`` is not object  400    invalid_request_error
a prompt over the model's context window                 400    invalid_request_error
a thinking block edited since the emulator signed it     400    invalid_request_error
a tool_use not answered by a tool_result in the next
  user message, or a tool_result answering nothing       400    invalid_request_error
tool_result blocks not first in their message            400    invalid_request_error
bad cache_control (> 4 breakpoints, 1h after 5m, ttl)    400    (raised by ``cachesim``)
body over 32 MB                                          413    request_too_large
=====================================================  ======  =====================

Consecutive messages of the same role are merged, not rejected, as the API does. Blocks nested in a tool_result are
not checked. The wording of each message is the API's where it is known (recorded in issues against the API: "prompt
is too long: N tokens > M maximum", "The request body is not valid JSON: no low surrogate in string: line 1 column N
(char N-1)", "`max_tokens` must be greater than `thinking.budget_tokens`. ...", "Thinking may not be enabled when
tool_choice forces tool use.", "`temperature` is deprecated for this model.", "`temperature` and `top_p` cannot both
be specified for this model. Please use only one."), else it follows the API's "path: what is wrong" style.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from leanloop.emulator.catalog import ModelCard
from leanloop.emulator.policies import content_blocks
from leanloop.emulator.thinking import signature_matches
from leanloop.errors import InvalidRequestError

__all__ = [
    "MAX_BODY_BYTES",
    "check_context_window",
    "check_count_tokens_request",
    "check_message_request",
    "parse_body",
    "too_large",
]

MAX_BODY_BYTES = 32 * 1024 * 1024  # Messages and count_tokens (API-FACTS 6.1)
_ROLES = ("user", "assistant")
_TOOL_CHOICES = ("auto", "any", "tool", "none")
_MIN_THINKING_BUDGET = 1024
_INTERLEAVED_THINKING = "interleaved-thinking-2025-05-14"  # the budget may then exceed max_tokens
# An escaped backslash (skipped) or a UTF-16 surrogate escape; inside JSON strings, where every backslash of a valid
# body is.
_ESCAPE = re.compile(rb"\\\\|\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LOW_SURROGATE = re.compile(rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}")


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
    "thinking": _OBJECT,
    "output_config": _OBJECT,
    "thread": _OBJECT,
    "context_management": _OBJECT,
    "speed": _STRING,
    "inference_geo": _STRING,
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
    except ValueError as error:  # UnicodeDecodeError included
        raise _not_json(str(error)) from None
    if b"\\u" in raw:
        _refuse_lone_surrogates(raw)
    if not isinstance(body, dict):
        raise InvalidRequestError("There was an issue with your request body: the body must be a JSON object")
    return cast(dict[str, Any], body)


def _not_json(reason: str) -> InvalidRequestError:
    return InvalidRequestError(f"The request body is not valid JSON: {reason}")


def _refuse_lone_surrogates(raw: bytes) -> None:
    """Python's parser takes a lone surrogate escape (``"\\ud83d"``); the API's does not, and says where."""
    position = 0
    while (escape := _ESCAPE.search(raw, position)) is not None:
        position = escape.end()
        if escape.group() == b"\\\\":
            continue
        low = _LOW_SURROGATE.match(raw, position)
        if int(escape.group()[2:], 16) < 0xDC00 and low is not None:
            position = low.end()
            continue
        problem = (
            "lone low surrogate in string" if int(escape.group()[2:], 16) >= 0xDC00 else "no low surrogate in string"
        )
        start = escape.start()
        line = raw.count(b"\n", 0, start) + 1
        char = len(raw[:start].decode("utf-8", "replace"))
        column = char - len(raw[: raw.rfind(b"\n", 0, start) + 1].decode("utf-8", "replace")) + 1
        raise _not_json(f"{problem}: line {line} column {column} (char {char})")


def check_context_window(prompt_tokens: int, card: ModelCard) -> None:
    """A prompt over the model's context window is refused before sampling."""
    if prompt_tokens > card.max_input_tokens:
        raise InvalidRequestError(f"prompt is too long: {prompt_tokens} tokens > {card.max_input_tokens} maximum")


def check_count_tokens_request(body: Mapping[str, Any], card_for: Callable[[str], ModelCard | None]) -> ModelCard:
    """Checks of ``POST /v1/messages/count_tokens``: a known model and a well-formed prompt."""
    _fields("", body, _BODY, required=("model", "messages"))
    card = _model(body, card_for)
    _prompt(body, card)
    return card


def check_message_request(
    body: Mapping[str, Any], card_for: Callable[[str], ModelCard | None], betas: Collection[str] = ()
) -> ModelCard:
    """Checks of ``POST /v1/messages``. ``card_for`` returns the served model's card, or None for an unknown model.

    ``betas`` are the request's ``anthropic-beta`` names.
    """
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
    _sampling(body, card)
    forced = _tool_choice(body)
    _thinking(body, max_tokens, forced, betas)
    if max_tokens == 0:
        _prewarm(body, forced)
    _prompt(body, card)
    return card


def _prewarm(body: Mapping[str, Any], forced: bool) -> None:
    """``max_tokens: 0`` (a cache pre-warm) is refused with anything that needs an answer (API-FACTS 1.4)."""
    output_config = cast(Mapping[str, Any], body.get("output_config") or {})
    refusing = [
        ("streaming", body.get("stream") is True),
        ("thinking is enabled", _thinking_type(body) == "enabled"),
        ("tool_choice forces tool use", forced),
        ("output_config.format is set", output_config.get("format") is not None),
    ]
    for reason, applies in refusing:
        if applies:
            raise InvalidRequestError(f"max_tokens: must be greater than 0 when {reason}")


def _sampling(body: Mapping[str, Any], card: ModelCard) -> None:
    given = [name for name in ("temperature", "top_p", "top_k") if body.get(name) is not None]
    if given and not card.takes_sampling_params:
        raise InvalidRequestError(f"`{given[0]}` is deprecated for this model.")
    for name, upper in (("temperature", 1.0), ("top_p", 1.0), ("top_k", None)):
        value = body.get(name)
        if value is None:
            continue
        if value < 0:
            raise InvalidRequestError(f"{name}: Input should be greater than or equal to 0")
        if upper is not None and value > upper:
            raise InvalidRequestError(f"{name}: Input should be less than or equal to {upper:g}")
    if "temperature" in given and "top_p" in given:
        raise InvalidRequestError(
            "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
        )


def _tool_choice(body: Mapping[str, Any]) -> bool:
    """Checks ``tool_choice``; whether it forces a tool call (``any`` or ``tool``)."""
    choice = cast(Mapping[str, Any], body.get("tool_choice") or {"type": "auto"})
    kind = choice.get("type")
    if kind not in _TOOL_CHOICES:
        expected = ", ".join(f"'{k}'" for k in _TOOL_CHOICES)
        raise InvalidRequestError(
            f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the expected tags: {expected}"
        )
    _fields("tool_choice.", choice, {"disable_parallel_tool_use": _BOOLEAN}, required=())
    if kind == "tool":
        _fields("tool_choice.", choice, {"name": _STRING}, required=("name",))
        tools = body.get("tools")
        listed = cast(list[Any], tools) if isinstance(tools, list) else []
        names = [cast(Mapping[str, Any], t).get("name") for t in listed if isinstance(t, Mapping)]
        if choice["name"] not in names:
            raise InvalidRequestError(f"tool_choice.name: Tool '{choice['name']}' not found in the request's tools")
    return kind in ("any", "tool")


def _thinking_type(body: Mapping[str, Any]) -> str | None:
    thinking = body.get("thinking")
    return str(cast(Mapping[str, Any], thinking).get("type")) if isinstance(thinking, Mapping) else None


def _thinking(body: Mapping[str, Any], max_tokens: int, forced: bool, betas: Collection[str]) -> None:
    kind = _thinking_type(body)
    if kind in ("enabled", "adaptive") and forced:
        raise InvalidRequestError("Thinking may not be enabled when tool_choice forces tool use.")
    if kind != "enabled":
        return
    thinking = cast(Mapping[str, Any], body["thinking"])
    _fields("thinking.enabled.", thinking, {"budget_tokens": _INTEGER}, required=("budget_tokens",))
    budget = int(thinking["budget_tokens"])
    if budget < _MIN_THINKING_BUDGET:
        raise InvalidRequestError(
            f"thinking.enabled.budget_tokens: Input should be greater than or equal to {_MIN_THINKING_BUDGET}"
        )
    if budget >= max_tokens > 0 and _INTERLEAVED_THINKING not in betas:
        raise InvalidRequestError(
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
            "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
        )


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


def _prompt(body: Mapping[str, Any], card: ModelCard) -> None:
    _tools(cast(list[Any], body.get("tools") or []))
    system = body.get("system")
    if isinstance(system, list):
        for position, block in enumerate(cast(list[Any], system)):
            _block("system", f"system.{position}", block, kinds=("text",))
    _messages(
        cast(list[Any], body["messages"]), ("user", "assistant", "system") if card.takes_system_messages else _ROLES
    )


def _tools(tools: Sequence[Any]) -> None:
    names: list[str] = []
    for index, raw in enumerate(tools):
        path = f"tools.{index}"
        tool = _object(path, raw)
        _fields(f"{path}.", tool, {"type": _STRING}, required=())
        kind = str(tool.get("type") or "custom")
        if kind == "custom":
            _fields(f"{path}.custom.", tool, _CUSTOM_TOOL, required=_CUSTOM_TOOL)
            schema_type = cast(Mapping[str, Any], tool["input_schema"]).get("type")
            if schema_type != "object":  # the API takes named parameters only (a JSON Schema object)
                raise InvalidRequestError(f"{path}.custom.input_schema.type: Input should be 'object'")
        else:
            _fields(f"{path}.{kind}.", tool, _SERVER_TOOL, required=())
        if "name" in tool:
            names.append(str(tool["name"]))
    if len(set(names)) < len(names):
        raise InvalidRequestError("tools: Tool names must be unique.")


def _messages(items: Sequence[Any], roles: Collection[str]) -> None:
    if not items:
        raise InvalidRequestError("messages: at least one message is required")
    tool_use_ids: set[str] = set()
    for index, raw in enumerate(items):
        path = f"messages.{index}"
        blocks = _message_blocks(path, _object(path, raw), roles, final=index == len(items) - 1)
        for position, block in enumerate(blocks):
            if block["type"] != "tool_use":
                continue
            if block["id"] in tool_use_ids:
                raise InvalidRequestError(f"{path}.content.{position}: `tool_use` ids must be unique")
            tool_use_ids.add(block["id"])
    _tool_pairing(_merged(cast(list[Mapping[str, Any]], items)))


def _message_blocks(
    path: str, message: Mapping[str, Any], roles: Collection[str], *, final: bool
) -> list[Mapping[str, Any]]:
    """The checked blocks of the message at ``path`` (a string content is one text block)."""
    role = message.get("role")
    if role == "system" and role not in roles:
        raise InvalidRequestError("role 'system' is not supported on this model")
    if role not in roles:
        raise InvalidRequestError(f"{path}.role: Input should be {' or '.join(repr(r) for r in roles)}")
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
    if kind == "thinking" and not signature_matches(str(block["thinking"]), str(block["signature"])):
        raise InvalidRequestError(f"{path}: Invalid `signature` in `thinking` block")
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
