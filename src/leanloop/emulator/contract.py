"""What a request's settings promise about the answer, kept whatever the policy returned. Pure.

A policy (the finisher, a scenario, a replay, your function) writes an answer without reading every setting of the
request. The real API never breaks these promises, so a client that relies on them (LangChain's structured output,
the SDK's tool runner, Claude Code's sub-agents) must not see the emulator break them either:

========================================  =====================================================================
the request says                          the answer
========================================  =====================================================================
``tool_choice: any`` / ``tool``           is a tool call: any text before it is dropped (the API prefills the
                                          call); an answer without one gets one, to the named tool (``tool``) or
                                          the first custom tool (``any``), with the smallest input its
                                          ``input_schema`` accepts (required fields only, type-appropriate values)
``tool_choice: none``                     holds no tool call: the policy's calls are dropped (its text is kept)
``disable_parallel_tool_use: true``       holds at most one tool call: later ones are dropped
``output_config.format`` (json_schema)    is JSON fitting the schema: a text answer that does not fit is replaced
                                          by the smallest value the schema accepts
thinking on (see ``thinking.py``)         opens with a thinking block (the policy's own, or a short one)
========================================  =====================================================================

Each change to what the policy returned is noted (``ServedCall.notes`` and a warning on the ``leanloop.emulator``
logger), so a scenario that disagrees with its client is visible without breaking the client. Two things are a
policy's bug, not the client's, and raise ``PolicyError`` (the app answers 500, not retried): a call to a tool the
request does not declare (a misspelt name in a scenario; ``create_app(undeclared_tools="serve")`` serves it, to test
how an agent copes with a model that calls a tool it does not have), and under ``tool_choice: tool`` a call to
another tool.

Tool_use ids the conversation already holds (a replayed or repeated turn: ``after_last: repeat``, ``next: stay``) are
replaced by fresh ones, since the API's ids are unique and the next request would otherwise be a 400.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from leanloop.emulator.policies import Reply, content_blocks, messages_of
from leanloop.emulator.schema import example_of, fits
from leanloop.emulator.thinking import thinking_enabled, thought_for

__all__ = ["Kept", "PolicyError", "keep_promises"]


class PolicyError(Exception):
    """A policy answered what no request could get from the real API (the message says what and how to fix it)."""


@dataclass(frozen=True, slots=True)
class Kept:
    """The answer as served, and what had to change in the policy's answer to keep the request's promises."""

    reply: Reply
    notes: tuple[str, ...] = field(default=())


def _tool_calls(content: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [b for b in content if b.get("type") == "tool_use"]


def _declared_tools(request: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    tools = request.get("tools")
    listed = cast(list[Any], tools) if isinstance(tools, list) else []
    declared = [cast(Mapping[str, Any], t) for t in listed if isinstance(t, Mapping)]
    return {str(t.get("name")): t for t in declared if "name" in t}


def keep_promises(
    reply: Reply, request: Mapping[str, Any], *, thinks_by_default: bool = False, undeclared_tools: bool = False
) -> Kept:
    """``reply`` changed as little as possible to keep what ``request`` promises (module docstring).

    Raises ``PolicyError`` for a call to another tool than a forced one, and for a call to an undeclared tool unless
    ``undeclared_tools`` (for tests of how an agent handles a model that calls a tool it does not have).
    """
    tools = _declared_tools(request)
    choice = cast(Mapping[str, Any], request.get("tool_choice") or {})
    notes: list[str] = []
    content = [dict(b) for b in reply.content]
    _check_tool_names(content, tools, choice, undeclared_tools)
    kind = choice.get("type", "auto")
    if kind == "none" and _tool_calls(content):
        notes.append(f"dropped {len(_tool_calls(content))} tool call(s): tool_choice is none")
        content = [b for b in content if b.get("type") != "tool_use"] or [{"type": "text", "text": "Done."}]
    if kind in ("any", "tool"):
        content = _forced_call(content, tools, choice, notes)
    if choice.get("disable_parallel_tool_use") is True and len(_tool_calls(content)) > 1:
        notes.append(f"dropped {len(_tool_calls(content)) - 1} parallel tool call(s): disable_parallel_tool_use")
        first = _tool_calls(content)[0]
        content = [b for b in content if b.get("type") != "tool_use" or b is first]
    content = _json_output(content, request, notes)
    if thinking_enabled(request, thinks_by_default) and not any(b.get("type") == "thinking" for b in content):
        content.insert(0, {"type": "thinking", "thinking": thought_for(content)})
    content = _fresh_ids(content, request)
    stop_reason = reply.stop_reason
    calls = bool(_tool_calls(content))
    if (stop_reason == "tool_use" and not calls) or (stop_reason == "end_turn" and calls):
        stop_reason = None  # inferred again from what is left
    return Kept(Reply(content, stop_reason), tuple(notes))


def _check_tool_names(
    content: Sequence[Mapping[str, Any]],
    tools: Mapping[str, Mapping[str, Any]],
    choice: Mapping[str, Any],
    undeclared_tools: bool,
) -> None:
    for call in _tool_calls(content):
        name = str(call.get("name"))
        if name not in tools and not undeclared_tools:
            declared = ", ".join(tools) or "none"
            raise PolicyError(f"it called tool {name!r}, which the request does not declare (declared: {declared})")
        if choice.get("type") == "tool" and name != choice.get("name"):
            raise PolicyError(f"it called tool {name!r}, but tool_choice forces {choice.get('name')!r}")


def _forced_call(
    content: list[dict[str, Any]],
    tools: Mapping[str, Mapping[str, Any]],
    choice: Mapping[str, Any],
    notes: list[str],
) -> list[dict[str, Any]]:
    """The answer under a forced tool_choice: the tool calls only, or one generated call."""
    calls = [b for b in content if b.get("type") == "tool_use"]
    if calls:
        if len(calls) < len(content):
            notes.append("dropped the text before the tool call: tool_choice forces a tool call")
        return calls
    name = choice.get("name") if choice.get("type") == "tool" else _first_custom_tool(tools)
    if name is None:
        return content  # tool_choice any with only server tools: nothing the emulator can call for it
    schema = cast(Mapping[str, Any], tools[str(name)].get("input_schema") or {})
    notes.append(f"answered with a generated call to {name!r}: tool_choice forces a tool call")
    return [{"type": "tool_use", "name": name, "input": example_of(schema)}]


def _first_custom_tool(tools: Mapping[str, Mapping[str, Any]]) -> str | None:
    return next((name for name, tool in tools.items() if tool.get("type", "custom") == "custom"), None)


def _output_schema(request: Mapping[str, Any]) -> Mapping[str, Any] | None:
    config = request.get("output_config")
    output_format = cast(Mapping[str, Any], config).get("format") if isinstance(config, Mapping) else None
    output_format = output_format or request.get("output_format")  # the beta's older top-level field
    if not isinstance(output_format, Mapping):
        return None
    output_format = cast(Mapping[str, Any], output_format)
    schema = output_format.get("schema")
    return cast(Mapping[str, Any], schema) if output_format.get("type") == "json_schema" and schema else None


def _json_output(content: list[dict[str, Any]], request: Mapping[str, Any], notes: list[str]) -> list[dict[str, Any]]:
    """A text answer under a json_schema output format, as JSON that fits the schema."""
    schema = _output_schema(request)
    if schema is None or _tool_calls(content):
        return content
    text = "".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
    try:
        if fits(json.loads(text), schema):
            return content
    except ValueError:
        pass
    notes.append("answered with the smallest JSON the output_config.format schema accepts")
    kept = [b for b in content if b.get("type") not in ("text", "tool_use")]
    return [*kept, {"type": "text", "text": json.dumps(example_of(schema), ensure_ascii=False)}]


def _fresh_ids(content: list[dict[str, Any]], request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``content`` with every tool_use id the conversation (or an earlier block) already holds left out."""
    if not any(b.get("id") for b in content):
        return content  # the usual case: render gives every call a new id anyway
    seen = {
        str(b.get("id"))
        for m in messages_of(request)
        if m.get("role") == "assistant"
        for b in content_blocks(m)
        if b.get("type") in ("tool_use", "server_tool_use")
    }
    fresh: list[dict[str, Any]] = []
    for block in content:
        block_id = block.get("id")
        if block.get("type") not in ("tool_use", "server_tool_use") or not block_id:
            fresh.append(block)
            continue
        repeated = block_id in seen
        seen.add(str(block_id))
        fresh.append({k: v for k, v in block.items() if k != "id"} if repeated else block)  # render gives a new id
    return fresh
