"""Emulator throughput, and proof that a request's cost does not grow with the number of cached entries.

1. Requests per second (best of 5 rounds) in-process on one core for a 10-block conversation (system + 9 message
   blocks, two cache breakpoints), sequential: through the official SDK (``AsyncAnthropic`` on the in-process
   transport, what a test suite sees) and straight into the ASGI app (the emulator's own cost). Target: >= 500/s
   through the SDK. The same
   with fresh text in every request (no remembered token counts), which is what a real loop sends.
2. The same request timed with 10 and with 100,000 live entries in the cache; the ratio should be ~1.0 because
   lookups are hash lookups.
3. A growing agent loop (a tool call and its result per turn, a rolling cache breakpoint): the cost of one request
   at 10, 100 and 400 turns of history. It grows with the history, as on the real API: every request carries and is
   checked over the whole conversation (a message thread sends less, but the emulator still bills the whole prefix).

Prints the figures and writes benchmarks/results/emulator.json. Run: .venv/bin/python benchmarks/bench_emulator.py
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from leanloop.cachesim import Block, CacheSim, Prompt, block_fingerprint
from leanloop.emulator import Emulator, async_client, create_app

OUT = Path(__file__).resolve().parent / "results" / "emulator.json"
MODEL = "claude-sonnet-4-6"
EPHEMERAL = {"type": "ephemeral"}
SDK_REQUESTS = 1500
ASGI_REQUESTS = 1500
ROUNDS = 5
GROWING_TURNS = 400
WINDOWS = (10, 100, 400)  # history lengths (turns) at which a growing loop's request cost is reported


SYSTEM = [{"type": "text", "text": "You triage incidents from logs. " * 400, "cache_control": EPHEMERAL}]


def conversation(tag: str = "") -> dict[str, Any]:
    """A request of 10 prompt blocks: a cached system prompt and 9 message blocks, the last one cached too."""
    texts = [
        f"Turn {i}{tag}: the worker restarted at 02:{i:02d} after an out-of-memory kill; heap was 3.{i} GB."
        for i in range(9)
    ]
    messages = []
    for i, text in enumerate(texts):
        block: dict[str, Any] = {"type": "text", "text": text}
        if i == len(texts) - 1:
            block["cache_control"] = EPHEMERAL
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": [block]})
    return {"model": MODEL, "max_tokens": 256, "system": SYSTEM, "messages": messages}


async def sdk_rate(requests: int, *, fresh: bool = False) -> float:
    """Sequential requests per second through the SDK, best of ``ROUNDS`` rounds (the machine is shared: the best
    round is the one least disturbed by other work); ``fresh``: new text in every request."""
    app = create_app()
    client = async_client(app, max_retries=0)
    await client.messages.create(**conversation())  # warm: the first call writes the cache, later ones read it
    per_round = requests // ROUNDS
    rates: list[float] = []
    for round_number in range(ROUNDS):
        bodies = [conversation(f" [{round_number}.{i}]" if fresh else "") for i in range(per_round)]
        began = time.perf_counter()
        for body in bodies:
            await client.messages.create(**body)
        rates.append(per_round / (time.perf_counter() - began))
    return max(rates)


async def growing_loop(turns: int) -> dict[int, float]:
    """Microseconds per request at each history length of ``WINDOWS`` (median of the 5 requests up to it)."""
    client = async_client(create_app({MODEL: lambda request: "Reading on."}), max_retries=0)
    tools: Any = [{"name": "read", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]
    messages: list[Any] = [{"role": "user", "content": "The workers keep restarting. Why?"}]
    took: list[float] = []
    for turn in range(turns):
        began = time.perf_counter()
        await client.messages.create(
            model=MODEL, max_tokens=256, system=SYSTEM, tools=tools, messages=messages, cache_control=EPHEMERAL
        )
        took.append(time.perf_counter() - began)
        call_id = f"toolu_01bench{turn:016d}"
        call = {"type": "tool_use", "id": call_id, "name": "read", "input": {"path": f"/var/log/worker-{turn}.log"}}
        result = {"type": "tool_result", "tool_use_id": call_id, "content": f"line {turn}: restarted after OOM " * 5}
        messages += [{"role": "assistant", "content": [call]}, {"role": "user", "content": [result]}]
    return {length: statistics.median(took[length - 5 : length]) * 1e6 for length in WINDOWS}


async def asgi_call(app: Any, raw: bytes) -> int:
    """One POST /v1/messages straight into the ASGI app; returns the status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/messages",
        "raw_path": b"/v1/messages",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"x-api-key", b"bench"), (b"content-type", b"application/json")],
        "server": ("emulator", 80),
        "client": ("127.0.0.1", 1),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def asgi_seconds_per_request(app: Any, requests: int) -> float:
    raw = json.dumps(conversation()).encode()
    assert await asgi_call(app, raw) == 200
    began = time.perf_counter()
    for _ in range(requests):
        await asgi_call(app, raw)
    return (time.perf_counter() - began) / requests


def fill(cache: CacheSim, entries: int, start: float) -> None:
    """``entries`` distinct live 1-hour entries, as other conversations would leave behind."""
    for i in range(entries):
        block = Block(f"system.{i}", block_fingerprint("system", f"filler {i}"), 3000, ttl="1h")
        cache.request(Prompt(MODEL, (block,)), start=start)


async def cost_vs_cache_size() -> dict[str, float]:
    timings: dict[int, list[float]] = {10: [], 100_000: []}
    apps: dict[int, Any] = {}
    for size in timings:
        cache = CacheSim()
        apps[size] = create_app(cache=cache)
        fill(cache, size, start=Emulator.of(apps[size]).now())
    for _ in range(ROUNDS):  # interleaved rounds, so drift in the machine hits both alike
        for size, app in apps.items():
            timings[size].append(await asgi_seconds_per_request(app, ASGI_REQUESTS // ROUNDS))
    small, large = statistics.median(timings[10]), statistics.median(timings[100_000])
    emulator = Emulator.of(apps[100_000])
    assert len(emulator.cache) >= 100_000, f"the filler entries must still be live (at {emulator.now():.0f} s)"
    return {
        "us_per_request_10_entries": small * 1e6,
        "us_per_request_100k_entries": large * 1e6,
        "ratio": large / small,
    }


async def run() -> dict[str, Any]:
    sdk = await sdk_rate(SDK_REQUESTS)
    fresh = await sdk_rate(SDK_REQUESTS, fresh=True)
    asgi_app = create_app()
    asgi = max([1 / await asgi_seconds_per_request(asgi_app, ASGI_REQUESTS // ROUNDS) for _ in range(ROUNDS)])
    scaling = await cost_vs_cache_size()
    growing = await growing_loop(GROWING_TURNS)
    return {
        "requests_per_second_sdk_in_process": round(sdk),
        "requests_per_second_sdk_fresh_text": round(fresh),
        "requests_per_second_asgi_direct": round(asgi),
        "target_requests_per_second": 500,
        **{k: round(v, 3) for k, v in scaling.items()},
        **{f"growing_loop_us_per_request_at_{turns}_turns": round(us) for turns, us in growing.items()},
    }


def main() -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    result = asyncio.run(run())
    print("10-block conversation, in-process, one core, sequential:")
    print(f"  through the official SDK : {result['requests_per_second_sdk_in_process']:>6} requests/s (target >= 500)")
    print(f"  fresh text every request : {result['requests_per_second_sdk_fresh_text']:>6} requests/s")
    print(f"  straight into the app    : {result['requests_per_second_asgi_direct']:>6} requests/s")
    print("cost of one request vs entries in the cache:")
    print(f"  10 entries      : {result['us_per_request_10_entries']:>8.1f} us")
    print(f"  100,000 entries : {result['us_per_request_100k_entries']:>8.1f} us")
    print(f"  ratio           : {result['ratio']:>8.3f}  (1.0 = independent of the cache size)")
    print("a growing agent loop (tool call + result per turn), cost of one request through the SDK:")
    for turns in WINDOWS:
        us = result[f"growing_loop_us_per_request_at_{turns}_turns"]
        print(f"  at {turns:>3} turns of history : {us:>8.0f} us  ({1e6 / us:>5.0f} requests/s)")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["requests_per_second_sdk_in_process"] >= 500 else 1


if __name__ == "__main__":
    sys.exit(main())
