"""The transcript's rules, as plain functions over message lists: what a task or a history given by the caller may
be, how new content joins the transcript, and how a stopped run leaves it valid.

The API's pairing rules (API-FACTS 5.1): every tool_use is answered by a tool_result in the very next message,
results first; the user message after tool results holds them and then any text. Consecutive messages of one role
are merged (the API would merge them too, but the transcript should read as it is billed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from leanloop.errors import ConfigError

__all__ = [
    "answer_pending_tools",
    "append_user",
    "check_history",
    "check_start",
    "check_task",
    "merge_assistant",
    "pending_tool_uses",
]


def _blocks(content: Any) -> list[Mapping[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [cast(Mapping[str, Any], b) for b in cast(Sequence[Any], content or ()) if isinstance(b, Mapping)]


def pending_tool_uses(message: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The tool_use blocks of ``message`` when it is an assistant message (they need results next)."""
    if message is None or message.get("role") != "assistant":
        return []
    return [b for b in _blocks(message.get("content")) if b.get("type") == "tool_use"]


def check_task(task: object) -> None:
    """A task is a non-empty string or a non-empty list of content blocks."""
    if isinstance(task, str):
        if not task.strip():
            raise ConfigError("Agent.run(task=''): the task is empty")
        return
    blocks = cast(list[Any], task) if isinstance(task, list | tuple) else None
    if not blocks or not all(isinstance(b, Mapping) and "type" in b for b in blocks):
        if blocks and all(isinstance(b, Mapping) and "role" in b for b in blocks):
            raise ConfigError(
                "Agent.run(task=[...]): give the user's content blocks, not messages (role/content); "
                "an earlier conversation goes in history=[...]"
            )
        raise ConfigError(
            f"Agent.run(task=...): a string or a non-empty list of content blocks like {{'type': 'text', 'text': ...}},"
            f" got {type(cast(Any, task)).__name__}"
        )


def check_history(history: object) -> list[Mapping[str, Any]]:
    """An earlier conversation given as plain messages, checked as the API would check it.

    The first message is the user's, every other one the user's or the assistant's (consecutive messages of one
    role are merged, as the API merges them: a compacted transcript has the task and then the compaction's note);
    content is a non-empty string or list of blocks; every tool_use is answered by a tool_result with the same id
    in the next message, results first; no result answers nothing.
    """
    if not isinstance(history, list | tuple) or not history:
        raise ConfigError("Agent.run(history=...): a non-empty list of messages like {'role': 'user', 'content': ...}")
    messages = cast(Sequence[Any], history)
    checked: list[Mapping[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"Agent.run(history=...): messages[{index}]"
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise ConfigError(f"{where} must be a dict with 'role' and 'content'")
        message = cast(Mapping[str, Any], message)
        if message["role"] not in (("user",) if index == 0 else ("user", "assistant")):
            raise ConfigError(
                f"{where} has role {message['role']!r}: a message's role is 'user' or 'assistant' (the system "
                "prompt goes in Agent(system=...)), and the conversation starts with a 'user' message"
            )
        content = message["content"]
        if not (isinstance(content, str) and content.strip()) and not (isinstance(content, list | tuple) and content):
            raise ConfigError(f"{where} has empty content: a non-empty string or list of content blocks")
        if isinstance(content, list | tuple) and not all(
            isinstance(b, Mapping) and "type" in b for b in cast(Sequence[Any], content)
        ):
            raise ConfigError(f"{where}: every content block must be a dict with a 'type'")
        _check_results(where, checked[-1] if checked else None, message)
        checked.append(message)
    return checked


def check_start(
    task: object, history: object, resumed: Sequence[Mapping[str, Any]] | None, *, finished: bool = False
) -> None:
    """What a run starts from: a task, a history of plain messages, a resumed run's messages (``finished`` when
    that run ended with the model's answer), or a combination that makes a valid next request."""
    if resumed is not None and history is not None:
        raise ConfigError("Agent.run: give history= (plain messages) or resume= (a RunState), not both")
    if history is not None and pending_tool_uses(check_history(history)[-1]):
        raise ConfigError("Agent.run(history=...): the last message asks for tools; add their tool_result blocks")
    if task is not None:
        check_task(task)
        return
    if resumed is None and history is None:
        raise ConfigError("Agent.run: give a task, a history=, or resume= a RunState from an earlier result")
    if finished:
        raise ConfigError("Agent.run(resume=...): that run finished with the model's answer; give a new task to go on")
    if history is not None and cast(Sequence[Mapping[str, Any]], history)[-1]["role"] != "user":
        raise ConfigError("Agent.run(history=...): the conversation ends with the model's answer; give a task")


def _check_results(where: str, previous: Mapping[str, Any] | None, message: Mapping[str, Any]) -> None:
    asked = [str(b.get("id")) for b in pending_tool_uses(previous)]
    blocks = _blocks(message.get("content")) if message.get("role") == "user" else []
    kinds = [b.get("type") for b in blocks]
    answered = [str(b.get("tool_use_id")) for b in blocks if b.get("type") == "tool_result"]
    if sorted(answered) != sorted(asked):
        missing, extra = sorted(set(asked) - set(answered)), sorted(set(answered) - set(asked))
        detail = f"no tool_result for {missing}" if missing else f"tool_result for unknown tool_use ids {extra}"
        raise ConfigError(f"{where}: {detail} (each tool_use is answered in the next message)")
    if answered and kinds[: len(answered)] != ["tool_result"] * len(answered):
        raise ConfigError(f"{where}: tool_result blocks must come first in the message, before any text")


def append_user(messages: list[Mapping[str, Any]], content: str | Sequence[Mapping[str, Any]]) -> None:
    """Add user content: a new message, or merged after what the last user message holds (tool results first)."""
    last = messages[-1] if messages else None
    if last is None or last.get("role") != "user":
        messages.append({"role": "user", "content": content if isinstance(content, str) else list(content)})
        return
    messages[-1] = {**last, "content": [*_blocks(last.get("content")), *_blocks(content)]}


def merge_assistant(messages: list[Mapping[str, Any]], content: list[dict[str, Any]]) -> None:
    """Add an assistant turn; a continuation of a paused turn joins it (one message, as the API sees it)."""
    last = messages[-1] if messages else None
    if last is not None and last.get("role") == "assistant":
        messages[-1] = {**last, "content": [*_blocks(last.get("content")), *content]}
    else:
        messages.append({"role": "assistant", "content": content})


def answer_pending_tools(messages: list[Mapping[str, Any]], note: str) -> None:
    """Never leave a tool_use unanswered: the API rejects such a transcript, and resume needs a valid one."""
    pending = pending_tool_uses(messages[-1] if messages else None)
    if pending:
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": b["id"], "content": note, "is_error": True} for b in pending
                ],
            }
        )
