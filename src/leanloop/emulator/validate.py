"""The request checks the real API makes before it samples, with its statuses and wording. Pure.

Each check raises ``leanloop.errors.InvalidRequestError`` carrying the HTTP status, the error type and the message
the API puts in ``error.message``:

=====================================================  ======  =====================
what                                                    status  error.type
=====================================================  ======  =====================
body not JSON, or not an object                          400    invalid_request_error
missing or malformed ``model``/``messages``/``max_tokens``  400  invalid_request_error
unknown model                                            404    not_found_error
``max_tokens`` above the model's maximum                 400    invalid_request_error
``max_tokens: 0`` with ``stream: true``                  400    invalid_request_error
a tool_use not answered by a tool_result in the next
  user message, or a tool_result answering nothing       400    invalid_request_error
tool_result blocks not first in their message            400    invalid_request_error
bad cache_control (> 4 breakpoints, 1h after 5m, ttl)    400    (raised by ``cachesim``)
body over 32 MB                                          413    request_too_large
=====================================================  ======  =====================

Consecutive messages of the same role are merged, not rejected, as the API does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
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
    """Checks of ``POST /v1/messages/count_tokens``: a known model and well-formed messages."""
    card = _model(body, card_for)
    _messages(body)
    return card


def check_message_request(body: Mapping[str, Any], card_for: Callable[[str], ModelCard | None]) -> ModelCard:
    """Checks of ``POST /v1/messages``. ``card_for`` returns the served model's card, or None for an unknown model."""
    card = _model(body, card_for)
    if "max_tokens" not in body:
        raise InvalidRequestError("max_tokens: Field required")
    max_tokens = body["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        raise InvalidRequestError("max_tokens: Input should be a valid integer greater than or equal to 0")
    if max_tokens > card.max_tokens:
        raise InvalidRequestError(
            f"max_tokens: {max_tokens} > {card.max_tokens}, which is the maximum allowed number of output tokens "
            f"for {card.id}"
        )
    if max_tokens == 0 and body.get("stream") is True:
        raise InvalidRequestError("max_tokens: must be greater than 0 when streaming")
    _messages(body)
    return card


def _model(body: Mapping[str, Any], card_for: Callable[[str], ModelCard | None]) -> ModelCard:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("model: Field required")
    card = card_for(model)
    if card is None:
        raise InvalidRequestError(f"model: {model}", status=404, error_type="not_found_error")
    return card


def _messages(body: Mapping[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequestError("messages: Field required")
    items = cast(list[Any], messages)
    if not items:
        raise InvalidRequestError("messages: at least one message is required")
    for index, message in enumerate(items):
        if not isinstance(message, Mapping):
            raise InvalidRequestError(f"messages.{index}: Input should be a valid dictionary")
        role = cast(Mapping[str, Any], message).get("role")
        if role not in _ROLES:
            raise InvalidRequestError(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        content = cast(Mapping[str, Any], message).get("content")
        if not isinstance(content, str | list):
            raise InvalidRequestError(f"messages.{index}.content: Input should be a valid string or list")
    _tool_pairing(_merged(cast(list[Mapping[str, Any]], items)))


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
