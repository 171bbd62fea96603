"""History compaction and model tiers, priced through the cache simulator and genai-prices (no agent, no network).

    .venv/bin/python benchmarks/bench_history.py      # prints tables, writes benchmarks/results/history.json

Every request is built by leanloop's own RequestBuilder (its breakpoints), billed by cachesim (the API's cache
rules) and priced per request by leanloop.pricing. Calls are 15 s apart, so no 5-minute entry expires.

1. A long tool loop: 150 calls, each adding a 2-4K-token tool result, on Sonnet 4.6 with a 200K window (the window
   of Sonnet 4.5, Haiku 4.5 and Opus 4.5; Sonnet 4.6 itself has 1M, shown as "no compaction, 1M window"):
   - no compaction: the run ends when the prompt no longer fits;
   - a sliding window that trims the oldest turns on every call to stay under 160K (naive truncation);
   - leanloop's compaction, triggered at 160K (the automatic trigger for a 200K window) and at 100K.
2. Tiers: a tool-heavy run whose tool results are 20K tokens each, on Sonnet 4.6 and Opus 4.6: the results kept
   whole, cut to 8K head + tail (leanloop's default), or condensed to ~800 tokens by Haiku 4.5 in side calls
   (whose cost is included).
3. A model switch mid-run (Sonnet 4.6 -> Haiku 4.5 at a 100K prompt): ``switch_estimate``'s predicted break-even
   against the simulated one.
4. The same long run as (1) through the real Agent on the in-process emulator (streamed calls, tools, budget
   checks, cache verification), with its default compaction at the 160K trigger and without compaction; and the
   tiers run of (2) with ``Agent(tiers=Tiers())``, whose side calls go to an emulated Haiku 4.5. Cost is what the
   emulator billed.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from leanloop.agent import Agent, RunResult
from leanloop.cachesim import CacheSim, prompt_from_request
from leanloop.emulator.policies import Reply
from leanloop.history import Compaction, Sizes, apply, plan
from leanloop.limits import Budget
from leanloop.pricing import default_pricing
from leanloop.request import CachePolicy, RequestBuilder
from leanloop.testing import FunctionModel, emulated_client, say
from leanloop.tiers import Tiers, result_summary_request, switch_estimate
from leanloop.tokens import count_text
from leanloop.tools import Tool, cap_text
from leanloop.usage import Usage

OUT = Path(__file__).resolve().parent / "results" / "history.json"
SONNET, HAIKU, OPUS = "claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6"
WINDOW = 200_000
OUTPUT_TOKENS = 150  # each assistant turn: a sentence and a tool call
SUMMARY_TOKENS = 800  # what Haiku writes when it condenses a result
GAP_S = 15.0
SYSTEM = "You are an SRE agent. You read service logs through the read_log tool and find the cause. " * 120
TOOL = Tool(
    {
        "name": "read_log",
        "description": "Read the next part of a service log.",
        "input_schema": {"type": "object", "properties": {"part": {"type": "integer"}}},
    }
)
Messages = list[Mapping[str, Any]]
Transform = Callable[[Messages, RequestBuilder], tuple[Messages, bool]]


def log_text(rng: random.Random, tokens: int) -> str:
    """Log lines until the estimate reaches ``tokens`` (counted a chunk at a time: close enough, and linear)."""
    chunks: list[str] = []
    counted = 0
    while counted < tokens:
        chunk = "\n".join(
            f"2026-12-01T12:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} {rng.choice(('INFO', 'WARN', 'ERROR'))} "
            f"svc-{rng.randint(1, 40)} request {rng.randint(1000, 99999)} "
            f"{rng.choice(('ok', 'timeout', 'retry', 'failed'))} in {rng.randint(1, 900)}ms"
            for _ in range(20)
        )
        chunks.append(chunk)
        counted += count_text(chunk) + 1
    return "\n".join(chunks)


def turns(calls: int, sizes: Callable[[random.Random], int], seed: int = 7) -> list[tuple[dict[str, Any], str]]:
    rng = random.Random(seed)
    uses = [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": f"Reading part {n} of the log next."},
                {"type": "tool_use", "id": f"toolu_{n:04d}", "name": "read_log", "input": {"part": n}},
            ],
        }
        for n in range(calls)
    ]
    return [(use, log_text(rng, sizes(rng))) for use in uses]


def result_message(use: Mapping[str, Any], content: str) -> dict[str, Any]:
    tool_id = use["content"][1]["id"]
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": content}]}


def simulate(
    model: str,
    steps: list[tuple[dict[str, Any], str]],
    *,
    transform: Transform | None = None,
    window: int | None = None,
    shown: Callable[[Mapping[str, Any], str], str] = lambda _use, text: text,
) -> dict[str, Any]:
    """Run the loop: call, then the call's tool_use and its result join the transcript. Returns the totals."""
    pricing = default_pricing()
    builder = RequestBuilder(model=model, system=SYSTEM, tools=[TOOL], cache=CachePolicy())
    sim = CacheSim()
    messages: Messages = [{"role": "user", "content": "Checkout fails since 12:00. Read the logs and find out why."}]
    usage, cost, cuts, largest, calls, stopped = Usage(), Decimal(0), 0, 0, 0, None
    for n, (use, text) in enumerate(steps):
        if transform is not None:
            messages, cut = transform(messages, builder)
            cuts += cut
        built = builder.build(messages, max_tokens=4096)
        if window is not None and built.plain.total_tokens + 4096 > window:
            stopped = n + 1
            break
        call = sim.request(built.prompt, start=n * GAP_S).usage.with_output(OUTPUT_TOKENS)
        usage, cost = usage + call, cost + pricing.cost(model, call).total
        largest, calls = max(largest, built.plain.total_tokens), calls + 1
        messages = [*messages, use, result_message(use, shown(use, text))]
    return {
        "calls": calls,
        "stopped_at_call": stopped,
        "usd": round(float(cost), 4),
        "cache_hit_rate": round(usage.cache_read_tokens / usage.prompt_tokens, 3),
        "cache_write_tokens": usage.cache_write_tokens,
        "cuts": cuts,
        "max_prompt_tokens": largest,
    }


def compaction(policy: Compaction) -> Transform:
    def transform(messages: Messages, builder: RequestBuilder) -> tuple[Messages, bool]:
        built = builder.build(messages, max_tokens=4096)
        cut = plan(messages, Sizes.from_prompt(built.plain, messages=len(messages)), policy, model=builder.model)
        return (apply(messages, cut), True) if cut is not None else (messages, False)

    return transform


def sliding_window(limit: int) -> Transform:
    """Naive truncation: before every call, drop the oldest turns until the prompt is under ``limit``."""

    def transform(messages: Messages, builder: RequestBuilder) -> tuple[Messages, bool]:
        trimmed = False
        while builder.build(messages, max_tokens=4096).plain.total_tokens > limit and len(messages) > 3:
            messages, trimmed = [messages[0], *messages[3:]], True
        return messages, trimmed

    return transform


def long_run() -> dict[str, Any]:
    steps = turns(150, lambda rng: rng.randint(2000, 4000))
    auto = Compaction().trigger_for(HAIKU, 4096)  # what the automatic trigger is for a 200K window
    rows = {
        "no_compaction_200k_window": simulate(SONNET, steps, window=WINDOW),
        "no_compaction_1m_window": simulate(SONNET, steps),
        "sliding_window_160k": simulate(SONNET, steps, transform=sliding_window(auto), window=WINDOW),
        "leanloop_trigger_160k": simulate(
            SONNET, steps, transform=compaction(Compaction(trigger_tokens=auto)), window=WINDOW
        ),
        "leanloop_trigger_100k": simulate(
            SONNET, steps, transform=compaction(Compaction(trigger_tokens=100_000)), window=WINDOW
        ),
        "leanloop_trigger_160k_drop_turns": simulate(
            SONNET, steps, transform=compaction(Compaction(trigger_tokens=auto, strategy="drop_turns")), window=WINDOW
        ),
    }
    return {"calls": len(steps), "model": SONNET, "window": WINDOW, "auto_trigger": auto, "strategies": rows}


def summary_side_call_usd(use: Mapping[str, Any], text: str, tiers: Tiers) -> Decimal:
    """A Haiku side call: its whole prompt is new (nothing worth caching), plus the summary it writes."""
    request = result_summary_request(tiers, tool="read_log", arguments=use["content"][1]["input"], text=text)
    tokens = prompt_from_request(request).total_tokens
    return default_pricing().cost(tiers.cheap, Usage(input_tokens=tokens, output_tokens=SUMMARY_TOKENS)).total


def tiers_figure() -> dict[str, Any]:
    steps = turns(30, lambda _rng: 20_000, seed=11)
    tiers = Tiers(cheap=HAIKU, summarize_results_over=8000, result_summary_tokens=SUMMARY_TOKENS)
    side_usd = float(sum(summary_side_call_usd(use, text, tiers) for use, text in steps))
    condensed = "Condensed: " + "finding " * (SUMMARY_TOKENS - 20)  # a summary of the length Haiku was allowed
    rows: dict[str, Any] = {}
    for model in (SONNET, OPUS):
        kept = simulate(model, steps)
        cut = simulate(model, steps, shown=lambda _use, text: cap_text(text, 8000)[0])
        summarised = simulate(model, steps, shown=lambda _use, _text: condensed)
        summarised["side_calls_usd"] = round(side_usd, 4)
        summarised["usd_with_side_calls"] = round(summarised["usd"] + side_usd, 4)
        rows[model] = {
            "kept_whole": kept,
            "cut_head_tail_8k": cut,
            "haiku_summary": summarised,
            "summary_vs_kept": round(summarised["usd_with_side_calls"] / kept["usd"], 3),
            "summary_vs_cut": round(summarised["usd_with_side_calls"] / cut["usd"], 3),
        }
    return {"calls": len(steps), "result_tokens": 20_000, "summary_tokens": SUMMARY_TOKENS, "models": rows}


def switch_figure() -> dict[str, Any]:
    """Switch Sonnet -> Haiku once the prompt is ~100K, and compare the prediction with the simulation."""
    steps = turns(60, lambda _rng: 3000, seed=5)
    pricing = default_pricing()
    stay, move = (RequestBuilder(model=m, system=SYSTEM, tools=[TOOL], cache=CachePolicy()) for m in (SONNET, HAIKU))
    sim = CacheSim()
    messages: Messages = [{"role": "user", "content": "Checkout fails since 12:00. Read the logs and find out why."}]
    switch_at, stayed, moved, predicted, actual = None, Decimal(0), Decimal(0), None, None
    shadow = CacheSim()  # the Haiku lane, fed only after the switch
    for n, (use, text) in enumerate(steps):
        current = stay.build(messages, max_tokens=4096).prompt
        if switch_at is None and current.total_tokens >= 100_000:
            switch_at = n
            candidate = move.build(messages, max_tokens=4096, model=HAIKU).prompt
            estimate = switch_estimate(
                sim, current, candidate, start=n * GAP_S, output_tokens=OUTPUT_TOKENS, growth_tokens=3100
            )
            predicted = {**vars(estimate), "current_usd": float(estimate.current_usd)}
            predicted["candidate_usd"] = float(estimate.candidate_usd)
        if switch_at is not None:
            candidate = move.build(messages, max_tokens=4096, model=HAIKU).prompt
            on_haiku = shadow.request(candidate, start=n * GAP_S).usage.with_output(OUTPUT_TOKENS)
            on_sonnet = sim.request(current, start=n * GAP_S).usage.with_output(OUTPUT_TOKENS)
            moved += pricing.cost(HAIKU, on_haiku).total
            stayed += pricing.cost(SONNET, on_sonnet).total
            if actual is None and moved <= stayed:
                actual = n - switch_at + 1
        else:
            sim.request(current, start=n * GAP_S)
        messages = [*messages, use, result_message(use, text)]
    return {"switch_at_call": switch_at, "predicted": predicted, "simulated_break_even_calls": actual}


def agent_run(model: str, steps: list[tuple[dict[str, Any], str]], **kwargs: Any) -> dict[str, Any]:
    """``steps`` through the Agent on the emulator: the model asks for the next part, the tool returns its text."""
    texts = {use["content"][1]["input"]["part"]: text for use, text in steps}

    def read_log(part: int) -> str:
        """Read the next part of a service log.

        Args:
            part: Which part.
        """
        return texts[part]

    def answer(request: Mapping[str, Any]) -> Reply:
        asked = [
            b["input"]["part"]
            for m in request["messages"]
            if m["role"] == "assistant"
            for b in m["content"]
            if b["type"] == "tool_use"
        ]
        done = max(asked) + 1 if asked else 0
        return say("The payment service times out.") if done >= len(steps) else Reply(steps[done][0]["content"])

    cheap = FunctionModel(lambda _request: say("Condensed: " + "finding " * (SUMMARY_TOKENS - 20)))
    client = emulated_client({model: FunctionModel(answer), HAIKU: cheap})
    agent = Agent(model, system=SYSTEM, tools=[read_log], client=client, **kwargs)
    task = "Checkout fails since 12:00. Read the logs and find out why."
    started = time.perf_counter()
    result: RunResult = asyncio.run(agent.run(task, budget=Budget(max_iterations=None)))
    conversation = [c for c in result.calls if "side_call" not in c.notes]
    return {
        "stop": result.stop.reason,
        "calls": result.iterations,
        "side_calls": len(result.calls) - result.iterations,
        "usd": round(float(result.cost.total), 4),
        "cache_hit_rate": round(result.cache_hit_rate, 3),
        "cuts": sum(1 for c in conversation if "compacted" in c.notes),
        "max_prompt_tokens": max(c.usage.prompt_tokens for c in conversation),
        "cache_misses": len(result.cache_misses),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def agent_figure(long_steps: list[tuple[dict[str, Any], str]]) -> dict[str, Any]:
    tiers_steps = turns(30, lambda _rng: 20_000, seed=11)
    tiers = Tiers(cheap=HAIKU, summarize_results_over=8000, result_summary_tokens=SUMMARY_TOKENS)
    return {
        "long_run": {
            "leanloop_trigger_160k": agent_run(SONNET, long_steps, compaction=Compaction(trigger_tokens=160_000)),
            "no_compaction_1m_window": agent_run(SONNET, long_steps, compaction=None),
        },
        "tiers": {
            "cut_head_tail_8k": agent_run(SONNET, tiers_steps),
            "haiku_summary": agent_run(SONNET, tiers_steps, tiers=tiers),
        },
    }


def main() -> int:
    results = {"long_run": long_run(), "tiers": tiers_figure(), "switch": switch_figure()}
    results["agent"] = agent_figure(turns(150, lambda rng: rng.randint(2000, 4000)))
    run = results["long_run"]
    print(f"long run: {run['calls']} calls of 2-4K-token tool results, {run['model']}, {run['window']:,} window")
    print(f"{'strategy':34} {'calls':>5} {'USD':>8} {'hit rate':>8} {'cuts':>5} {'max prompt':>10} {'written':>10}")
    for name, row in run["strategies"].items():
        print(
            f"{name:34} {row['calls']:>5} {row['usd']:>8.2f} {row['cache_hit_rate']:>8.1%} {row['cuts']:>5} "
            f"{row['max_prompt_tokens']:>10,} {row['cache_write_tokens']:>10,}"
        )
    tiers = results["tiers"]
    print(f"\ntiers: {tiers['calls']} calls, 20K-token tool results; Haiku 4.5 summaries of {SUMMARY_TOKENS} tokens")
    for model, row in tiers["models"].items():
        print(
            f"{model:18} kept ${row['kept_whole']['usd']:.2f}   cut to 8K ${row['cut_head_tail_8k']['usd']:.2f}   "
            f"summarised ${row['haiku_summary']['usd_with_side_calls']:.2f} (side calls "
            f"${row['haiku_summary']['side_calls_usd']:.2f}) = {row['summary_vs_kept']:.0%} of kept, "
            f"{row['summary_vs_cut']:.0%} of cut"
        )
    switch = results["switch"]
    predicted = switch["predicted"]
    print(
        f"\nswitch {SONNET} -> {HAIKU} at call {switch['switch_at_call']} (~{predicted['rewrite_tokens']:,} cached "
        f"tokens lost): predicted break-even {predicted['break_even_calls']} calls, simulated "
        f"{switch['simulated_break_even_calls']}"
    )
    print("\nthe Agent on the emulator (billed by the emulator):")
    for part, rows in results["agent"].items():
        for name, row in rows.items():
            print(
                f"  {part:9} {name:30} {row['calls']:>4} calls + {row['side_calls']:>2} side  ${row['usd']:>7.2f}  "
                f"hit {row['cache_hit_rate']:.1%}  cuts {row['cuts']}  max prompt {row['max_prompt_tokens']:>7,}  "
                f"misses {row['cache_misses']}  {row['wall_s']:.1f} s  {row['stop']}"
            )
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
