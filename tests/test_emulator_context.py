"""emulator.context: clear_tool_uses edits are applied before the model reads the prompt, billed on the edited prompt,
and reported in context_management.applied_edits, through the SDK's beta client."""

from __future__ import annotations

from typing import Any

import pytest

from leanloop.emulator import Emulator, async_client, create_app
from leanloop.emulator.context import CLEARED

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
TOOLS: Any = [
    {"name": "read", "input_schema": {"type": "object"}},
    {"name": "note", "input_schema": {"type": "object"}},
]
BETAS: Any = ["context-management-2025-06-27"]


def history(calls: int, name: str = "read") -> list[Any]:
    """A conversation of ``calls`` tool uses, each result about 1,000 tokens."""
    messages: list[Any] = [{"role": "user", "content": "Read the logs."}]
    for i in range(calls):
        call_id = f"toolu_01ctx{i:017d}"
        tool = name if i % 2 == 0 else "read"
        messages.append(
            {"role": "assistant", "content": [{"type": "tool_use", "id": call_id, "name": tool, "input": {"n": i}}]}
        )
        result = {"type": "tool_result", "tool_use_id": call_id, "content": f"log line {i} worker restarted " * 200}
        messages.append({"role": "user", "content": [result]})
    return messages


def edit(**fields: Any) -> Any:
    return {"edits": [{"type": "clear_tool_uses_20250919", **fields}]}


async def send(app: Any, messages: list[Any], context_management: Any, stream: bool = False) -> Any:
    client = async_client(app, max_retries=0)
    kwargs: Any = {
        "model": MODEL,
        "max_tokens": 100,
        "tools": TOOLS,
        "messages": messages,
        "context_management": context_management,
        "betas": BETAS,
    }
    if stream:
        async with client.beta.messages.stream(**kwargs) as events:
            return await events.get_final_message()
    return await client.beta.messages.create(**kwargs)


def prompt_tokens(usage: Any) -> int:
    return int(usage.input_tokens + (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0))


@pytest.mark.parametrize("stream", [False, True])
async def test_old_tool_results_are_cleared_billed_and_reported(stream: bool) -> None:
    app = create_app({MODEL: lambda request: "Done."})
    whole = await send(app, history(6), None)
    cut = await send(
        app,
        history(6),
        edit(trigger={"type": "input_tokens", "value": 3000}, keep={"type": "tool_uses", "value": 2}),
        stream,
    )
    assert cut.context_management is not None
    (applied,) = cut.context_management.applied_edits
    assert applied.type == "clear_tool_uses_20250919"
    assert applied.cleared_tool_uses == 4
    assert prompt_tokens(whole.usage) - prompt_tokens(cut.usage) == applied.cleared_input_tokens > 3000
    seen = Emulator.of(app).calls[-1].request["messages"]
    results = [
        b["content"]
        for m in seen
        for b in m["content"]
        if isinstance(m["content"], list) and b.get("type") == "tool_result"
    ]
    assert results[:4] == [CLEARED] * 4
    assert all(r != CLEARED for r in results[4:])


async def test_nothing_is_cleared_below_the_trigger_or_when_too_little_would_be_freed() -> None:
    app = create_app({MODEL: lambda request: "Done."})
    below = await send(app, history(6), edit())  # default trigger: 100,000 input tokens
    assert below.context_management is not None
    assert below.context_management.applied_edits == []
    too_little = edit(
        trigger={"type": "tool_uses", "value": 2}, clear_at_least={"type": "input_tokens", "value": 50_000}
    )
    assert (await send(app, history(6), too_little)).context_management.applied_edits == []
    excluded = edit(
        trigger={"type": "tool_uses", "value": 2},
        keep={"type": "tool_uses", "value": 1},
        exclude_tools=["note"],
        clear_tool_inputs=True,
    )
    (applied,) = (await send(app, history(6, name="note"), excluded)).context_management.applied_edits
    assert applied.cleared_tool_uses == 2  # calls 1 and 3 are "read"; 0, 2 and 4 are "note"; 5 is kept
    seen = Emulator.of(app).calls[-1].request["messages"]
    inputs = [b["input"] for m in seen if m["role"] == "assistant" for b in m["content"]]
    assert inputs == [{"n": 0}, {}, {"n": 2}, {}, {"n": 4}, {"n": 5}]
