"""Scale: 1,000 concurrent agent runs in one process against one in-process emulator.

Each run is a 4-call tool loop with a cached system prompt; all runs share one emulator cache (one workspace), so
after the first responses start streaming the shared prefix is read by everyone.

    .venv/bin/python benchmarks/bench_scale.py [runs]       # prints figures, writes benchmarks/results/scale.json
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from leanloop import Agent, Budget, Spend
from leanloop.emulator import create_app
from leanloop.emulator.policies import Reply
from leanloop.emulator.serving import async_client
from leanloop.testing import call

OUT = Path(__file__).resolve().parent / "results" / "scale.json"
MODEL = "claude-sonnet-4-6"
SYSTEM = "You check services with the tools and report briefly. " * 250


async def check(service: str) -> str:
    """Check a service.

    Args:
        service: Its name.
    """
    await asyncio.sleep(0.01)
    return f"{service}: healthy, p99 42 ms"


def policy(request: Mapping[str, Any]) -> Reply:
    done = sum(1 for m in request["messages"] if m["role"] == "assistant")
    if done >= 3:
        return Reply([{"type": "text", "text": "All services are healthy."}])
    return Reply([call("check", service=f"svc-{done}-a"), call("check", service=f"svc-{done}-b")])


async def _run(runs: int) -> dict[str, Any]:
    client = async_client(create_app({MODEL: policy}), max_retries=0)
    agent = Agent(MODEL, system=SYSTEM, tools=[check], client=client)
    spend = Spend(Budget(usd=1000, max_iterations=None))  # one shared ledger for all runs: caps are totals
    started = time.perf_counter()
    results = await asyncio.gather(*(agent.run(f"check batch {i}", spend=spend) for i in range(runs)))
    wall = time.perf_counter() - started
    ok = sum(1 for r in results if r.ok)
    calls = sum(r.iterations for r in results)
    return {
        "runs": runs,
        "ok": ok,
        "calls": calls,
        "wall_s": round(wall, 2),
        "runs_per_s": round(runs / wall, 1),
        "calls_per_s": round(calls / wall, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "total_usd": float(spend.cost.total),
        "cache_hit_rate": round(
            sum(r.usage.cache_read_tokens for r in results) / max(1, sum(r.usage.prompt_tokens for r in results)), 3
        ),
    }


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    result = asyncio.run(_run(runs))
    print(
        f"{result['ok']}/{result['runs']} runs ok, {result['calls']} calls in {result['wall_s']} s "
        f"({result['runs_per_s']} runs/s, {result['calls_per_s']} calls/s), peak RSS {result['peak_rss_mb']} MB, "
        f"cache hit rate {result['cache_hit_rate']:.1%}, ${result['total_usd']:.2f} in all"
    )
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["ok"] == runs else 1


if __name__ == "__main__":
    sys.exit(main())
