"""Context editing (beta ``context-management-2025-06-27``): the server clears old tool results before the model
reads the prompt, so the bill and the cache follow the edited prompt. Pure.

``context_management: {"edits": [{"type": "clear_tool_uses_20250919", ...}]}`` is applied as the API documents it:

- ``trigger``: ``{"type": "input_tokens", "value": N}`` (default 100,000) or ``{"type": "tool_uses", "value": N}``:
  the edit applies once the prompt holds more;
- ``keep``: ``{"type": "tool_uses", "value": K}`` (default 3): the newest K tool uses stay as they are; the older
  ones have their result's content replaced by a short placeholder (the tool_use and tool_result blocks stay, so
  pairing holds);
- ``exclude_tools``: names whose uses are never cleared; ``clear_tool_inputs``: true (or a list of names) also empties
  those calls' inputs;
- ``clear_at_least``: ``{"type": "input_tokens", "value": N}``: the edit applies only if it frees at least N tokens.

The response says what was done: ``context_management.applied_edits`` with ``cleared_tool_uses`` and
``cleared_input_tokens``. Clearing changes the prompt from the first cleared block on, so the cached prefix breaks
there, as on the real API. Other edit types (``clear_thinking_20251015``, compaction) are accepted and not applied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from leanloop.emulator.policies import content_blocks, messages_of

__all__ = ["CLEARED", "CLEAR_TOOL_USES", "Edited", "clear_tool_uses"]

CLEAR_TOOL_USES = "clear_tool_uses_20250919"
CLEARED = "[tool result cleared by context management]"  # the emulator's placeholder
_DEFAULT_TRIGGER = 100_000
_DEFAULT_KEEP = 3

Edited = tuple[dict[str, Any], list[dict[str, Any]]]  # the edited request, and its applied_edits


def _edits(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    config = request.get("context_management")
    edits = cast(Mapping[str, Any], config).get("edits") if isinstance(config, Mapping) else None
    listed = cast(list[Any], edits) if isinstance(edits, list) else []
    edits = [cast(Mapping[str, Any], e) for e in listed if isinstance(e, Mapping)]
    return [e for e in edits if e.get("type") == CLEAR_TOOL_USES]


def _value(edit: Mapping[str, Any], key: str, default: int | None) -> tuple[str | None, int | None]:
    setting = edit.get(key)
    if not isinstance(setting, Mapping):
        return None, default
    setting = cast(Mapping[str, Any], setting)
    value = setting.get("value")
    return str(setting.get("type")), int(value) if isinstance(value, int) else default


def _tool_uses(messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(id, tool name) of every tool call of the conversation, oldest first."""
    return [
        (str(b.get("id")), str(b.get("name")))
        for m in messages
        if m.get("role") == "assistant"
        for b in content_blocks(m)
        if b.get("type") == "tool_use"
    ]


def clear_tool_uses(
    request: Mapping[str, Any], prompt_tokens: int, count: Callable[[Mapping[str, Any]], int]
) -> Edited:
    """``request`` with its ``clear_tool_uses`` edits applied, and the ``applied_edits`` to report.

    ``prompt_tokens`` is the unedited prompt's size; ``count`` gives an edited request's.
    """
    edited: dict[str, Any] = dict(request)
    applied: list[dict[str, Any]] = []
    for edit in _edits(request):
        messages = messages_of(edited)
        uses = _tool_uses(messages)
        trigger_type, trigger = _value(edit, "trigger", _DEFAULT_TRIGGER)
        size = len(uses) if trigger_type == "tool_uses" else prompt_tokens
        _, keep = _value(edit, "keep", _DEFAULT_KEEP)
        excluded = set(cast(Sequence[str], edit.get("exclude_tools") or []))
        chosen = {i for i, name in uses[: max(0, len(uses) - (keep or 0))] if name not in excluded}
        if size <= (trigger or 0) or not chosen:
            continue
        inputs = edit.get("clear_tool_inputs")
        clear_inputs = {
            i for i, name in uses if i in chosen and (inputs is True or (isinstance(inputs, list) and name in inputs))
        }
        candidate = {**edited, "messages": [_cleared(m, chosen, clear_inputs) for m in messages]}
        after = count(candidate)
        _, at_least = _value(edit, "clear_at_least", 0)
        if prompt_tokens - after < (at_least or 0):
            continue
        applied.append(
            {"type": CLEAR_TOOL_USES, "cleared_tool_uses": len(chosen), "cleared_input_tokens": prompt_tokens - after}
        )
        edited, prompt_tokens = candidate, after
    return edited, applied


def _cleared(message: Mapping[str, Any], results: set[str], inputs: set[str]) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    changed = False
    for block in content_blocks(message):
        copy = dict(block)
        if block.get("type") == "tool_result" and block.get("tool_use_id") in results:
            copy["content"], changed = CLEARED, True
        elif block.get("type") == "tool_use" and block.get("id") in inputs:
            copy["input"], changed = {}, True
        blocks.append(copy)
    return {**message, "content": blocks} if changed else dict(message)
