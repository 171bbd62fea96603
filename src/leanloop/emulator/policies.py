"""What an emulated model answers: a policy is a function of the request body that returns a ``Reply``.

This is the contract between the emulator, ``leanloop.testing`` and the demo's scripted models; extend it, don't
change it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Policy", "Reply"]


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


# A policy sees the request body exactly as the SDK sent it (model, system, tools, messages, ...).
Policy = Callable[[Mapping[str, Any]], Reply | Awaitable[Reply]]
