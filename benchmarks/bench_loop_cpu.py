"""Loop CPU per iteration: leanloop against a bare loop on the official SDK, side by side in one process.

The emulator runs in a separate process (uvicorn on a loopback port), so the CPU measured here is the client's
alone: the SDK (request building, deep copies, SSE parsing) plus, for leanloop, request building with
breakpoints, cache prediction and verification, pricing and the ledger. Both loops stream every call and run the
same tools on the same conversation; runs alternate, round by round. Each row gives the best of the rounds for
each loop and their ratio, and the spread of the per-round ratios (lowest, median, highest): on a shared machine
the spread is the honest figure.

    .venv/bin/python benchmarks/bench_loop_cpu.py          # prints a table, writes benchmarks/results/loop_cpu.json

DESIGN.md's target: leanloop <= 1.2x the bare loop's CPU per iteration at 10, 50 and 200 iterations.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anthropic

MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a careful operator: read the data with the tools, then answer briefly. " * 150
OUT = Path(__file__).resolve().parent / "results" / "loop_cpu.json"
ITERATIONS = (10, 50, 200)
ROUNDS = 7


async def lookup(key: str) -> str:
    """Look up a key (async, as I/O tools usually are: a sync tool adds a thread hop in leanloop, about 0.1-0.3 ms).

    Args:
        key: What to look up.
    """
    return f"{key}: " + "status=ok latency=12ms region=eu-west-1 " * 30


TOOL_DEFINITION: dict[str, Any] = {
    "name": "lookup",
    "description": "Look up a key.",
    "input_schema": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
}


def _policy(turns: int) -> Any:
    from leanloop.emulator.policies import Reply

    def answer(request: Mapping[str, Any]) -> Reply:
        done = sum(1 for m in request["messages"] if m["role"] == "assistant")
        if done + 1 >= turns:
            return Reply([{"type": "text", "text": "All keys are healthy."}])
        return Reply(
            [
                {"type": "text", "text": f"Checking key {done}."},
                {"type": "tool_use", "name": "lookup", "input": {"key": f"k{done}"}},
            ]
        )

    return answer


def _serve(port: int) -> None:
    import uvicorn

    from leanloop.emulator import create_app

    policies = {f"claude-sonnet-4-6-n{n}": _policy(n) for n in ITERATIONS}
    policies.update({MODEL: _policy(10)})
    uvicorn.run(create_app(policies), host="127.0.0.1", port=port, log_level="error")


async def bare_loop(client: anthropic.AsyncAnthropic, model: str) -> int:
    """The simplest correct streaming tool loop on the SDK: no caching, no budget, no ledger."""
    messages: list[Any] = [{"role": "user", "content": "check every key"}]
    calls = 0
    while True:
        stream = await client.messages.create(
            model=model, max_tokens=1024, system=SYSTEM, messages=messages, tools=[TOOL_DEFINITION], stream=True
        )
        content: dict[int, dict[str, Any]] = {}
        partial: dict[int, list[str]] = {}
        stop = None
        async for event in stream:
            if event.type == "content_block_start":
                content[event.index] = event.content_block.model_dump()
                partial[event.index] = []
            elif event.type == "content_block_delta":
                if event.delta.type == "text_delta":
                    content[event.index]["text"] += event.delta.text
                elif event.delta.type == "input_json_delta":
                    partial[event.index].append(event.delta.partial_json)
            elif event.type == "message_delta":
                stop = event.delta.stop_reason
        for index, block in content.items():
            if block["type"] == "tool_use":
                raw = "".join(partial[index])
                block["input"] = json.loads(raw) if raw else {}
        calls += 1
        blocks = [content[i] for i in sorted(content)]
        messages.append({"role": "assistant", "content": blocks})
        if stop != "tool_use":
            return calls
        results = [
            {"type": "tool_result", "tool_use_id": b["id"], "content": await lookup(**b["input"])}
            for b in blocks
            if b["type"] == "tool_use"
        ]
        messages.append({"role": "user", "content": results})


_AGENTS: dict[tuple[int, str], Any] = {}


async def leanloop_loop(client: anthropic.AsyncAnthropic, model: str) -> int:
    """The same loop with leanloop. The Agent is built once per model, as an application would, outside the timing."""
    from leanloop import Agent, Budget

    agent = _AGENTS.get((id(client), model))
    if agent is None:
        agent = _AGENTS[(id(client), model)] = Agent(
            model, system=SYSTEM, tools=[lookup], client=client, max_tokens=1024, budget=Budget(max_iterations=None)
        )
    result = await agent.run("check every key")
    assert result.ok, result.stop
    return result.iterations


async def _measure(base_url: str) -> list[dict[str, Any]]:
    client = anthropic.AsyncAnthropic(base_url=base_url, api_key="bench", max_retries=0)
    await bare_loop(client, f"{MODEL}-n10")  # warm up imports and connections
    await leanloop_loop(client, f"{MODEL}-n10")
    rows = []
    for n in ITERATIONS:
        model = f"{MODEL}-n{n}"
        await leanloop_loop(client, model)  # builds this model's Agent
        best = {"bare": float("inf"), "leanloop": float("inf")}
        ratios: list[float] = []
        for _ in range(ROUNDS):
            this_round: dict[str, float] = {}
            for name, loop in (("bare", bare_loop), ("leanloop", leanloop_loop)):
                started = time.process_time()
                calls = await loop(client, model)
                this_round[name] = (time.process_time() - started) / calls
                best[name] = min(best[name], this_round[name])
            ratios.append(this_round["leanloop"] / this_round["bare"])
        rows.append(
            {
                "iterations": n,
                "bare_ms_per_iteration": round(best["bare"] * 1000, 3),
                "leanloop_ms_per_iteration": round(best["leanloop"] * 1000, 3),
                "ratio": round(best["leanloop"] / best["bare"], 3),
                "round_ratios": {
                    "lowest": round(min(ratios), 3),
                    "median": round(statistics.median(ratios), 3),
                    "highest": round(max(ratios), 3),
                },
            }
        )
    return rows


def main() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,), daemon=True)
    server.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        rows = asyncio.run(_measure(f"http://127.0.0.1:{port}"))
    finally:
        server.terminate()
        server.join(5)
    header = f"{'iterations':>10}  {'bare SDK ms/it':>14}  {'leanloop ms/it':>14}  {'ratio':>6}"
    print(header + "  per round (low / median / high)")
    for row in rows:
        spread = row["round_ratios"]
        print(
            f"{row['iterations']:>10}  {row['bare_ms_per_iteration']:>14.3f}  {row['leanloop_ms_per_iteration']:>14.3f}"
            f"  {row['ratio']:>5.2f}x  {spread['lowest']:.2f} / {spread['median']:.2f} / {spread['highest']:.2f}"
        )
    OUT.parent.mkdir(exist_ok=True)
    load = [round(x, 2) for x in os.getloadavg()]
    OUT.write_text(json.dumps({"rows": rows, "target_ratio": 1.2, "load_average": load}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
