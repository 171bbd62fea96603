"""Cost: leanloop's default against a loop without caching and against the perfect-cache floor; and the runaway
incident against the naive loop. Everything on the emulator, whose billing is cachesim's (the API's rules).

    .venv/bin/python benchmarks/bench_cost.py              # prints tables, writes benchmarks/results/cost.json

DESIGN.md's numbers:
- a growing history of n iterations costs about (2.5 + 0.1(n-1)) / (n+1) of the uncached loop in input tokens:
  0.48x at 5 iterations, 0.31x at 10, 0.15x at 50;
- leanloop's default run <= 1.05x the perfect-cache floor (every prompt token written once, read thereafter);
- the repeated-failure incident stops after <= 3 identical failures, at <= 5 % of the naive 100-iteration run.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from leanloop import Agent, Budget
from leanloop.demo.run import _incident, perfect_cache_floor  # pyright: ignore[reportPrivateUsage]
from leanloop.demo.snapshot import generate_snapshot
from leanloop.emulator.policies import Reply
from leanloop.testing import FunctionModel, call

OUT = Path(__file__).resolve().parent / "results" / "cost.json"
MODEL = "claude-sonnet-4-6"
UNIT = "Service api-7 answered 200 in 12ms for tenant acme; queue depth 3; cache warm. " * 190  # ~3,000 tokens
SYSTEM = "You read service reports and summarise them. " * 330  # about one UNIT: the history grows one unit a call


def report(part: int) -> str:
    """Read one part of the service report.

    Args:
        part: Which part.
    """
    return f"part {part}: {UNIT}"


def _policy(iterations: int) -> FunctionModel:
    def answer(request: Mapping[str, Any]) -> Reply:
        done = sum(1 for m in request["messages"] if m["role"] == "assistant")
        if done + 1 >= iterations:
            return Reply([{"type": "text", "text": "Everything is healthy."}])
        return Reply([call("report", part=done)])

    return FunctionModel(answer)


def _input_cost(calls: list[Any]) -> Decimal:
    return sum((c.cost.total - c.cost.output for c in calls), Decimal(0))


async def growing_history() -> list[dict[str, Any]]:
    rows = []
    for n in (5, 10, 50):
        cached = await Agent(MODEL, system=SYSTEM, tools=[report], client=_policy(n).client()).run("summarise")
        plain = await Agent(MODEL, system=SYSTEM, tools=[report], client=_policy(n).client(), cache=False).run(
            "summarise"
        )
        floor = perfect_cache_floor(cached.calls)
        rows.append(
            {
                "iterations": n,
                "input_cost_ratio": round(float(_input_cost(cached.calls) / _input_cost(plain.calls)), 3),
                "design_formula": round((2.5 + 0.1 * (n - 1)) / (n + 1), 3),
                "total_cost_ratio": round(float(cached.cost.total / plain.cost.total), 3),
                "cost_vs_floor": round(float(cached.cost.total / floor), 4),
                "leanloop_usd": float(cached.cost.total),
                "uncached_usd": float(plain.cost.total),
                "cache_hit_rate": round(cached.cache_hit_rate, 3),
            }
        )
    return rows


async def incident() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        runs = await _incident(MODEL, generate_snapshot(Path(scratch) / "cluster"))
    naive, guarded = runs["naive"], runs["leanloop"]
    failures = sum(1 for c in guarded.calls for t in c.tool_calls if t.is_error)
    return {
        "naive_iterations": len(naive.calls),
        "naive_usd": float(naive.cost.total),
        "leanloop_iterations": len(guarded.calls),
        "leanloop_failures_run": failures,
        "leanloop_usd": float(guarded.cost.total),
        "ratio": round(float(guarded.cost.total / naive.cost.total), 4),
        "stop": guarded.stop,
    }


async def budget_stop() -> dict[str, Any]:
    """A runaway that never fails, only grows: the USD budget is what stops it, before the call that would cross."""
    endless = FunctionModel(lambda request: Reply([call("report", part=len(request["messages"]))]))
    result = await Agent(MODEL, system=SYSTEM, tools=[report], client=endless.client()).run(
        "summarise", budget=Budget(usd=0.25)
    )
    return {
        "budget_usd": 0.25,
        "spent_usd": float(result.cost.total),
        "iterations": result.iterations,
        "stop": str(result.stop),
    }


async def _main() -> dict[str, Any]:
    return {"growing_history": await growing_history(), "incident": await incident(), "budget": await budget_stop()}


def main() -> int:
    results = asyncio.run(_main())
    print(f"{'iterations':>10} {'input ratio':>11} {'formula':>8} {'total ratio':>11} {'vs floor':>9} {'hit rate':>9}")
    for row in results["growing_history"]:
        print(
            f"{row['iterations']:>10} {row['input_cost_ratio']:>11.3f} {row['design_formula']:>8.3f} "
            f"{row['total_cost_ratio']:>11.3f} {row['cost_vs_floor']:>9.4f} {row['cache_hit_rate']:>9.1%}"
        )
    inc = results["incident"]
    print(
        f"incident: naive {inc['naive_iterations']} iterations ${inc['naive_usd']:.4f}; leanloop "
        f"{inc['leanloop_iterations']} iterations ({inc['leanloop_failures_run']} failures run) "
        f"${inc['leanloop_usd']:.4f} = {inc['ratio']:.2%} of naive; stopped by {inc['stop']}"
    )
    b = results["budget"]
    print(f"budget: ${b['spent_usd']:.4f} spent of ${b['budget_usd']} in {b['iterations']} iterations; {b['stop']}")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
