"""Parallel tools: a turn of N independent tools of t ms each, leanloop's executor against running them one by one.

    .venv/bin/python benchmarks/bench_tools_latency.py    # prints a table, writes results/tools_latency.json

DESIGN.md's target: the turn finishes in <= 1.1 t + 5 ms, for async tools and for sync (threaded) ones.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from leanloop.tools import ToolUse, as_tool, run_tools

OUT = Path(__file__).resolve().parent / "results" / "tools_latency.json"
T_MS = 50
COUNTS = (1, 4, 16, 64)
ROUNDS = 5


async def wait_async(n: int) -> str:
    """An I/O-bound async tool (an HTTP call, say).

    Args:
        n: Which call.
    """
    await asyncio.sleep(T_MS / 1000)
    return f"done {n}"


def wait_sync(n: int) -> str:
    """An I/O-bound sync tool (a blocking client library).

    Args:
        n: Which call.
    """
    time.sleep(T_MS / 1000)
    return f"done {n}"


async def _turn(kind: str, count: int, *, sequential: bool) -> float:
    tool = as_tool(wait_async if kind == "async" else wait_sync)
    uses = [ToolUse(str(i), tool.name, {"n": i}) for i in range(count)]
    started = time.perf_counter()
    await run_tools(uses, {tool.name: tool}, max_concurrency=1 if sequential else max(count, 1))
    return (time.perf_counter() - started) * 1000


async def _measure() -> list[dict[str, Any]]:
    rows = []
    for kind in ("async", "sync"):
        for count in COUNTS:
            parallel = min([await _turn(kind, count, sequential=False) for _ in range(ROUNDS)])
            sequential = await _turn(kind, count, sequential=True) if count <= 16 else count * T_MS
            rows.append(
                {
                    "kind": kind,
                    "tools": count,
                    "tool_ms": T_MS,
                    "turn_ms": round(parallel, 1),
                    "sequential_ms": round(sequential, 1),
                    "target_ms": round(1.1 * T_MS + 5, 1),
                    "meets_target": parallel <= 1.1 * T_MS + 5,
                }
            )
    return rows


def main() -> int:
    rows = asyncio.run(_measure())
    print(f"{'kind':>5} {'tools':>5} {'turn ms':>8} {'one by one':>10} {'target':>7}")
    for row in rows:
        mark = "ok" if row["meets_target"] else "MISSED"
        print(
            f"{row['kind']:>5} {row['tools']:>5} {row['turn_ms']:>8.1f} {row['sequential_ms']:>10.1f} "
            f"{row['target_ms']:>7.1f}  {mark}"
        )
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
