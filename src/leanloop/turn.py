"""One model turn, assembled from the SDK's raw stream events, and what the loop should do next.

``TurnBuilder`` is fed the raw events of ``client.messages.create(stream=True)``: answer text is handed back as it
arrives (for the user), tool input JSON is collected per content-block index and parsed at ``content_block_stop``
(empty means ``{}``), and usage is taken from ``message_start`` and then overwritten by each ``message_delta``,
whose counts are cumulative. ``next_step`` is pure: it maps a finished turn to the loop's next move.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from leanloop.tools import ToolUse, sorted_json
from leanloop.usage import Usage

__all__ = ["Compact", "Finish", "Nudge", "Resend", "Retry", "RunTools", "StopRun", "Turn", "TurnBuilder", "next_step"]


@dataclass
class Turn:
    """A finished (or interrupted) assistant turn."""

    content: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    stop_reason: str | None = None
    usage: Usage | None = None
    message_id: str | None = None
    ttft_s: float | None = None
    truncated_tool_ids: list[str] = field(default_factory=list[str])

    @property
    def text(self) -> str:
        return "".join(str(b.get("text", "")) for b in self.content if b.get("type") == "text")

    @property
    def tool_uses(self) -> list[ToolUse]:
        return [
            ToolUse(str(b["id"]), str(b["name"]), b.get("input") or {})
            for b in self.content
            if b.get("type") == "tool_use" and b.get("id") not in self.truncated_tool_ids
        ]

    def without_truncated_tools(self) -> list[dict[str, Any]]:
        return [b for b in self.content if not (b.get("type") == "tool_use" and b.get("id") in self.truncated_tool_ids)]


def _dump(model: Any) -> dict[str, Any]:
    if isinstance(model, dict):
        return dict(model)  # pyright: ignore[reportUnknownArgumentType]
    return model.model_dump(exclude_none=True)


_PLAIN = (str, dict, type(None))  # a tool_use block's field values that are kept as they are


def _start_block(block: Any) -> dict[str, Any]:
    """The dict of a content_block_start's block. The common ones (a text block, a tool call) are read from their
    fields directly, as ``model_dump(exclude_none=True)`` would give them (a tool call's ``caller`` is a model of its
    own: only it is dumped); anything else is dumped."""
    fields: dict[str, Any] | None = getattr(block, "__dict__", None)
    if fields is not None and not getattr(block, "__pydantic_extra__", None):
        kind = fields.get("type")
        if kind == "text" and fields.get("citations") is None and isinstance(fields.get("text"), str):
            return {"type": "text", "text": fields["text"]}
        if kind == "tool_use":
            values = {k: v for k, v in fields.items() if v is not None}
            if "caller" in values:
                values["caller"] = _dump(values["caller"])  # in its place: the keys keep the SDK's order
            if all(isinstance(v, _PLAIN) for v in values.values()):
                return values
    return _dump(block)


class TurnBuilder:
    """Accumulates raw stream events into a ``Turn``. ``add`` returns answer text to show, if the event had any."""

    def __init__(self, started: float) -> None:
        self.turn = Turn()
        self._started = started
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}

    def add(self, event: Any) -> str | None:
        kind = event.type
        if kind == "content_block_delta":  # most events: tested first
            if self.turn.ttft_s is None:
                self.turn.ttft_s = time.perf_counter() - self._started
            return self._delta(event.index, event.delta)
        if kind == "content_block_start":
            block = self._blocks[event.index] = _start_block(event.content_block)
            if block.get("type") in ("tool_use", "server_tool_use"):
                self._json[event.index] = []
        elif kind == "content_block_stop":
            self._close(event.index)
        elif kind == "message_start":
            self.turn.message_id = event.message.id
            self.turn.usage = Usage.from_api(event.message.usage)
        elif kind == "message_delta":
            self.turn.stop_reason = event.delta.stop_reason or self.turn.stop_reason
            self.turn.usage = _merge_usage(self.turn.usage, event.usage)
        return None

    def _delta(self, index: int, delta: Any) -> str | None:
        block = self._blocks.get(index)
        if block is None:  # a delta without its content_block_start: text, as the API's default block
            block = self._blocks[index] = {"type": "text", "text": ""}
        kind = delta.type
        if kind == "text_delta":
            block["text"] = block.get("text", "") + delta.text
            return delta.text
        if kind == "input_json_delta":
            parts = self._json.get(index)
            if parts is None:
                parts = self._json[index] = []
            parts.append(delta.partial_json)
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta.thinking
        elif kind == "signature_delta":
            block["signature"] = delta.signature
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(_dump(delta.citation))
        return None

    def _close(self, index: int) -> None:
        block = self._blocks.get(index)
        if block is None or index not in self._json:
            return
        raw = "".join(self._json.pop(index))
        try:
            block["input"] = sorted_json(json.loads(raw)) if raw.strip() else {}
        except json.JSONDecodeError:
            block["input"] = {}
            self.turn.truncated_tool_ids.append(str(block.get("id")))

    def finish(self) -> Turn:
        """The turn so far; tool calls whose JSON never closed (cut by max_tokens) are marked truncated."""
        for index in list(self._json):
            self._close(index)
        content: list[dict[str, Any]] = []
        for index in sorted(self._blocks):
            block = self._blocks[index]
            block.pop("cache_control", None)
            if block.get("type") == "text" and not block.get("text") and not block.get("citations"):
                continue  # an empty text block is a 400 when sent back
            content.append(block)
        self.turn.content = content
        return self.turn


def _merge_usage(current: Usage | None, delta: Any) -> Usage:
    """message_delta counts are cumulative: present fields overwrite what message_start said."""
    base = current or Usage()
    fresh = getattr(delta, "input_tokens", None)
    read = getattr(delta, "cache_read_input_tokens", None)
    written = getattr(delta, "cache_creation_input_tokens", None)
    write_5m, write_1h, estimated = base.cache_write_5m_tokens, base.cache_write_1h_tokens, base.split_estimated
    if written is not None and written != write_5m + write_1h:
        # The 5m/1h split of message_start no longer matches the new total: keep the total, priced as 5m, flagged.
        write_5m, write_1h, estimated = written, 0, True
    return Usage(
        input_tokens=base.input_tokens if fresh is None else fresh,
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        cache_read_tokens=base.cache_read_tokens if read is None else read,
        output_tokens=delta.output_tokens,
        split_estimated=estimated,
        speed=base.speed,
        inference_geo=base.inference_geo,
        service_tier=base.service_tier,
        web_search_requests=base.web_search_requests,
    )


# ---------------------------------------------------------------------------------------------------------------
# What the loop does after a turn


@dataclass(frozen=True, slots=True)
class Finish:
    answer: str


@dataclass(frozen=True, slots=True)
class RunTools:
    uses: list[ToolUse]


@dataclass(frozen=True, slots=True)
class Retry:
    """Send the same request again with more room: the turn was cut by max_tokens. ``discarded`` is the text the
    cut turn streamed, which is dropped with it."""

    max_tokens: int
    discarded: str = ""


@dataclass(frozen=True, slots=True)
class Compact:
    """The conversation no longer fits the context window: compact the history and send it again. ``discarded`` is
    the text a turn cut by the window streamed (dropped with it); None when the API refused the prompt outright."""

    discarded: str | None = None


@dataclass(frozen=True, slots=True)
class Resend:
    """pause_turn: send the conversation back as it is so the server can continue."""


@dataclass(frozen=True, slots=True)
class Nudge:
    """The model ended its turn with nothing in it: ask it once to continue (resending as is would not help)."""


@dataclass(frozen=True, slots=True)
class StopRun:
    reason: str
    detail: str
    cap: str | None = None


NextStep = Finish | RunTools | Retry | Compact | Resend | Nudge | StopRun


def next_step(  # noqa: PLR0911 - one return per stop reason reads as the table it is
    turn: Turn,
    *,
    max_tokens: int,
    retried: bool,
    lowered_by: str | None,
    pauses: int,
    max_pauses: int,
    model_max_tokens: int,
    nudged: bool = False,
    can_compact: bool = False,
) -> NextStep:
    """Map a finished turn to the loop's next move. Pure. ``can_compact``: a turn cut by the context window may be
    answered with a compaction (it is on, and the call was not already the resend after one)."""
    reason = turn.stop_reason
    if reason in ("end_turn", "stop_sequence", "tool_use"):
        uses = turn.tool_uses if reason == "tool_use" else []
        if uses:
            return RunTools(uses)
        if turn.text.strip():
            return Finish(turn.text)
        if nudged:
            return StopRun("error", "the model ended its turn without an answer twice in a row (an empty end_turn)")
        return Nudge()
    if reason == "max_tokens":
        return _after_max_tokens(turn, max_tokens, retried, lowered_by, model_max_tokens)
    if reason == "pause_turn":
        if pauses >= max_pauses:
            return StopRun("error", f"the server paused the turn {pauses} times in a row")
        return Resend()
    if reason == "refusal":
        return StopRun("refused", "the model refused to continue" + (f": {turn.text}" if turn.text else ""))
    if reason == "model_context_window_exceeded":
        if can_compact:
            return Compact(turn.text)
        return StopRun("error", "the conversation no longer fits the model's context window")
    return StopRun("error", f"unknown stop_reason {reason!r} from the API")


def _after_max_tokens(
    turn: Turn, max_tokens: int, retried: bool, lowered_by: str | None, model_max_tokens: int
) -> Retry | StopRun:
    """A turn cut by max_tokens: stop if a budget cap lowered it, else ask once again with twice the room."""
    if lowered_by is not None:
        detail = f"the turn was cut at max_tokens={max_tokens}, lowered by the {lowered_by} cap"
        return StopRun("budget", detail, lowered_by)
    if not retried and max_tokens < model_max_tokens:
        return Retry(min(max_tokens * 2, model_max_tokens), turn.text)
    return StopRun("error", f"the turn exceeded max_tokens={max_tokens}" + (" twice" if retried else ""))
