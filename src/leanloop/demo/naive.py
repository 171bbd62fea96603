"""The loop most tutorials write: the baseline the demo measures leanloop against.

No budget, no loop guard, tools one after another, the whole history re-sent every iteration, stop only when the
model stops or after ``max_iterations``. ``auto_cache=True`` adds the one-line fix the docs suggest (top-level
automatic caching), and nothing else: the "caching only" column of the demo.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anthropic

from leanloop.pricing import Pricing, default_pricing
from leanloop.tools import Tool, as_tool
from leanloop.trace import CallRecord
from leanloop.usage import Usage

__all__ = ["NaiveResult", "naive_loop"]


@dataclass(frozen=True)
class NaiveResult:
    answer: str
    calls: list[CallRecord]
    stop: str
    wall_s: float


async def naive_loop(
    client: anthropic.AsyncAnthropic,
    *,
    model: str,
    system: str,
    tools: list[Callable[..., Any]],
    task: str,
    max_iterations: int = 100,
    auto_cache: bool = False,
    pricing: Pricing | None = None,
) -> NaiveResult:
    pricing = pricing or default_pricing()
    defined: dict[str, Tool] = {t.name: t for t in (as_tool(f) for f in tools)}
    messages: list[Any] = [{"role": "user", "content": task}]
    definitions: list[Any] = [dict(t.definition) for t in defined.values()]
    calls: list[CallRecord] = []
    started = time.perf_counter()
    for iteration in range(1, max_iterations + 1):
        call_started = time.perf_counter()
        response = await client.messages.create(
            model=model,
            max_tokens=4096,
            system=system,
            messages=messages,
            tools=definitions,
            cache_control={"type": "ephemeral"} if auto_cache else anthropic.omit,
        )
        usage = Usage.from_api(response.usage)
        calls.append(
            CallRecord(
                model=model,
                usage=usage,
                cost=pricing.cost(model, usage),
                iteration=iteration,
                latency_s=time.perf_counter() - call_started,
                stop_reason=response.stop_reason,
            )
        )
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in response.content]})
        if response.stop_reason != "tool_use":
            answer = "".join(b.text for b in response.content if b.type == "text")
            return NaiveResult(answer, calls, "end_turn", time.perf_counter() - started)
        results: list[dict[str, Any]] = []
        for block in response.content:
            if block.type == "tool_use":
                results.append(await _run(defined, block.id, block.name, block.input))
        messages.append({"role": "user", "content": results})
    return NaiveResult("", calls, "max_iterations", time.perf_counter() - started)


async def _run(tools: Mapping[str, Tool], use_id: str, name: str, arguments: Any) -> dict[str, Any]:
    try:
        output = await tools[name].invoke(arguments)
    except Exception as error:  # what the tutorials do: hand the error text back and carry on
        return {"type": "tool_result", "tool_use_id": use_id, "content": str(error), "is_error": True}
    text = output if isinstance(output, str) else json.dumps(output)
    return {"type": "tool_result", "tool_use_id": use_id, "content": text}
