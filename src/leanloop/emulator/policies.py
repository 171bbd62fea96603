"""What an emulated model answers: a policy is a function of the request body that returns a ``Reply``.

This is the contract between the emulator, ``leanloop.testing`` and the demo's scripted models; extend it, don't
change it. A policy (sync or async) may also return a shorthand, turned into a ``Reply`` by ``as_reply``:

- a ``str``: one text block (``end_turn``);
- a ``dict``: one content block, such as ``{"type": "tool_use", "name": "read", "input": {}}``;
- a ``list`` of such dicts: the blocks in order.

The stop reason is then ``tool_use`` when a block is a tool_use, else ``end_turn``; return a ``Reply`` to set another.

Built in here: ``finisher`` (answers at once). Elsewhere in this package: ``Scenario`` (a scripted model read from
a YAML/JSON file, ``scenario.py``) and ``ReplayPolicy`` (replays a recorded trajectory, ``replay.py``). The helpers
below read a request the way those policies need to: turns so far, the last tool results, their text.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

__all__ = [
    "Policy",
    "PolicyResult",
    "Reply",
    "as_reply",
    "assistant_turns",
    "block_text",
    "call_policy",
    "content_blocks",
    "finisher",
    "messages_of",
    "tool_results",
]


@dataclass(frozen=True)
class Reply:
    """The assistant turn a policy produces.

    ``content`` holds API content blocks: ``{"type": "text", "text": ...}`` and
    ``{"type": "tool_use", "name": ..., "input": {...}}`` (an ``id`` is generated when missing).
    ``stop_reason`` defaults to ``tool_use`` when there is a tool_use block, else ``end_turn``; set it to return
    ``refusal``, ``pause_turn``, ``model_context_window_exceeded`` and the like.
    """

    content: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    stop_reason: str | None = None

    @property
    def resolved_stop_reason(self) -> str:
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if any(b.get("type") == "tool_use" for b in self.content) else "end_turn"


# What a policy returns: a Reply, or a shorthand for one (see the module docstring).
PolicyResult = Reply | str | Mapping[str, Any] | Sequence[Mapping[str, Any]]
# A policy sees the request body exactly as the SDK sent it (model, system, tools, messages, ...).
Policy = Callable[[Mapping[str, Any]], PolicyResult | Awaitable[PolicyResult]]


# ---------------------------------------------------------------------------------------------------------------
# Built-in policy and helpers for writing policies


def finisher(request: Mapping[str, Any]) -> Reply:
    """Answers at once: one short text block, ``end_turn``. The default model behind every id the emulator knows."""
    return Reply([{"type": "text", "text": "Done."}], "end_turn")


async def call_policy(policy: Policy, request: Mapping[str, Any]) -> Reply:
    """Run ``policy`` on ``request``, awaiting it when it is a coroutine function or returns an awaitable."""
    result = policy(request)
    if inspect.isawaitable(result):
        result = await result
    return as_reply(result)


def as_reply(result: object) -> Reply:
    """The ``Reply`` a policy's result stands for (shorthands in the module docstring). Raises ``TypeError``."""
    if isinstance(result, Reply):
        return result
    if isinstance(result, str):
        return Reply([{"type": "text", "text": result}])
    expected = "a policy must return a Reply, a str, a content block dict or a list of them"
    kind = type(result).__name__
    if isinstance(result, Mapping):
        blocks: list[object] = [result]
    elif isinstance(result, list | tuple):
        blocks = list(cast(Sequence[object], result))
    else:
        raise TypeError(f"{expected}, got {kind}")
    strays = [type(b).__name__ for b in blocks if not isinstance(b, Mapping)]
    if strays:
        raise TypeError(f"{expected}, got a {kind} holding a {strays[0]}")
    return Reply([dict(cast(Mapping[str, Any], b)) for b in blocks])


def messages_of(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The request's messages (an empty list when absent or malformed)."""
    messages = request.get("messages")
    if not isinstance(messages, list):
        return []
    return [cast(Mapping[str, Any], m) for m in cast(list[Any], messages) if isinstance(m, Mapping)]


def content_blocks(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A message's content as blocks (a string becomes one text block)."""
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        return []
    return [cast(Mapping[str, Any], b) for b in cast(list[Any], content) if isinstance(b, Mapping)]


def assistant_turns(messages: Sequence[Mapping[str, Any]]) -> int:
    """How many assistant turns a conversation already holds: the index of the turn a policy is asked for."""
    return sum(1 for m in messages if m.get("role") == "assistant")


def tool_results(message: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The tool_result blocks of a (user) message."""
    if message is None:
        return []
    return [b for b in content_blocks(message) if b.get("type") == "tool_result"]


def block_text(block: Mapping[str, Any]) -> str:
    """The text of a text block, or of a tool_result's content (a string or a list of text blocks)."""
    if block.get("type") == "text":
        return str(block.get("text", ""))
    content = block.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(block_text(b) for b in content_blocks({"content": cast(list[Any], content)}))
    return ""
