"""Analyzer throughput and memory on large Claude Code logs, and whatif's cost per call as the log grows.

Generates a realistic session log (assistant messages split into one line per content block with their usage
repeated and growing, progress lines, tool results of varied size, a cache miss from a changed system prompt every
few calls), or measures the logs given with ``--log``. In a fresh process per measurement it runs what ``leanloop
report --format json``, ``leanloop explain --format json`` and ``leanloop whatif`` do, and prints MB/s, calls/s and
peak memory (max RSS, as ``/usr/bin/time -v`` reports it, and its growth over the interpreter's own). Then whatif on
generated logs of 1x, 2x and 4x the calls: the time per call must stay flat (linear in calls). Writes
benchmarks/results/analyze.json.

Run: .venv/bin/python benchmarks/bench_analyze.py [--mb 200] [--log BIG.jsonl ...] [--scale-mb 25]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

from leanloop.analyze.misses import find_misses
from leanloop.analyze.report import build_report, write_json, write_json_listing
from leanloop.analyze.sources import ImportLog, iter_calls
from leanloop.analyze.whatif import whatif

OUT = Path(__file__).resolve().parent / "results" / "analyze.json"
WORDS = ("the", "log", "shows", "a", "timeout", "in", "payment", "service", "after", "deploy", "rollback", "pod")


def _usage(read: int, write: int, output: int) -> dict[str, object]:
    return {
        "input_tokens": 3,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": write},
        "output_tokens": output,
        "service_tier": "standard",
    }


def generate(path: Path, megabytes: int, seed: int = 7) -> int:
    """Write a Claude Code log of about ``megabytes`` MB; returns the number of distinct model calls."""
    rng = random.Random(seed)
    target = megabytes * 1_000_000
    written = calls = 0
    session = "5f0c1f7e-2b1d-4c55-9a0e-6f1b2f3c4d5e"
    parent: str | None = None
    prompt = 18_000
    start = 1_770_000_000.0
    with path.open("w") as file:

        def emit(line: dict[str, object]) -> None:
            nonlocal written
            text = json.dumps(line) + "\n"
            file.write(text)
            written += len(text)

        while written < target:
            calls += 1
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(start + 9 * calls))
            message, request = f"msg_{calls:08d}", f"req_{calls:08d}"
            read = prompt if calls % 4 else int(prompt * 0.7)  # a changed system prompt: only part of it is read
            if calls % 300 == 1:  # a new human prompt now and then; compaction keeps prompts bounded
                prompt = 18_000 if prompt > 150_000 else prompt
                uuid = f"u{calls}"
                emit(
                    {
                        "parentUuid": parent,
                        "isSidechain": False,
                        "sessionId": session,
                        "type": "user",
                        "message": {"role": "user", "content": " ".join(rng.choices(WORDS, k=30))},
                        "uuid": uuid,
                        "timestamp": stamp,
                    }
                )
                parent = uuid
            new = rng.randint(200, 4000)
            usage = _usage(read, new + prompt - read, 1)
            prompt += new
            blocks = [{"type": "text", "text": " ".join(rng.choices(WORDS, k=rng.randint(5, 60)))}]
            blocks += [
                {"type": "tool_use", "id": f"toolu_{calls}_{k}", "name": "Bash", "input": {"command": "grep -n x"}}
                for k in range(rng.randint(1, 2))
            ]
            for k, block in enumerate(blocks):
                if k == len(blocks) - 1:  # the last line of a message has its final, larger usage
                    usage = _usage(read, new + prompt - read, rng.randint(20, 400))
                uuid = f"a{calls}_{k}"
                emit(
                    {
                        "parentUuid": parent,
                        "isSidechain": False,
                        "sessionId": session,
                        "type": "assistant",
                        "requestId": request,
                        "uuid": uuid,
                        "timestamp": stamp,
                        "message": {
                            "model": "claude-opus-4-6",
                            "id": message,
                            "type": "message",
                            "role": "assistant",
                            "content": [block],
                            "stop_reason": None,
                            "usage": usage,
                        },
                    }
                )
                parent = uuid
            emit(
                {
                    "parentUuid": parent,
                    "sessionId": session,
                    "type": "progress",
                    "uuid": f"p{calls}",
                    "data": {"type": "bash_progress"},
                    "timestamp": stamp,
                }
            )
            size = int(rng.lognormvariate(7.5, 1.1))  # a few hundred bytes to tens of kilobytes
            result = "".join(rng.choices("abcdefghij klmnop\n", k=size))
            uuid = f"r{calls}"
            emit(
                {
                    "parentUuid": parent,
                    "sessionId": session,
                    "type": "user",
                    "uuid": uuid,
                    "timestamp": stamp,
                    "message": {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": f"toolu_{calls}_0", "content": result}],
                    },
                }
            )
            parent = uuid
    return calls


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def measure(path: Path, mode: str) -> dict[str, object]:
    """One measurement in this (fresh) process: what the command of that name does, output to /dev/null."""
    warnings.simplefilter("ignore")
    baseline = _rss_mb()
    size_mb = path.stat().st_size / 1e6
    log = ImportLog()
    began = time.perf_counter()
    with open(os.devnull, "w") as sink:
        if mode == "report":
            result = build_report(iter_calls([path], log), log)
            calls = result.totals.calls
            write_json(result, sink)
            extra: dict[str, object] = {"cost_usd": float(result.totals.cost.total)}
        elif mode == "explain":
            misses = find_misses(iter_calls([path], log, content=True))
            calls = misses.calls
            write_json_listing(
                misses.to_dict(listed=False), "calls_that_missed", (m.to_dict() for m in misses.misses), sink
            )
            extra = {"misses": len(misses.misses)}
        else:
            what = whatif(iter_calls([path], log, content=True))
            calls = what.calls
            json.dump(what.to_dict(), sink)
            extra = {"rolling_5m_usd": float(what.strategies["rolling_5m"].cost.total)}
    seconds = time.perf_counter() - began
    return {
        "mode": mode,
        "log": path.name,
        "file_mb": round(size_mb, 1),
        "calls": calls,
        "seconds": round(seconds, 2),
        "mb_per_s": round(size_mb / seconds, 1),
        "calls_per_s": round(calls / seconds),
        "us_per_call": round(1e6 * seconds / max(calls, 1)),
        "peak_rss_mb": round(_rss_mb(), 1),
        "rss_growth_mb": round(_rss_mb() - baseline, 1),
        "problems": log.problem_count,
        **extra,
    }


def _run(path: Path, mode: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, __file__, "--measure", str(path), mode], check=True, capture_output=True, text=True
    )
    row = json.loads(done.stdout)
    print(
        f"{mode:<8} {row['log']:<32} {row['file_mb']:>7} MB {row['calls']:>8,} calls {row['seconds']:>7} s "
        f"{row['mb_per_s']:>6} MB/s {row['us_per_call']:>6} us/call  peak RSS {row['peak_rss_mb']} MB "
        f"(+{row['rss_growth_mb']} MB over the interpreter)"
    )
    return row


def _generated(megabytes: int) -> Path:
    path = Path("/tmp") / f"leanloop-bench-claude-code-{megabytes}mb.jsonl"
    if not path.exists():
        began = time.perf_counter()
        calls = generate(path, megabytes)
        seconds = time.perf_counter() - began
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB, {calls:,} calls) in {seconds:.0f} s")
    return path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200, help="size of the generated log (without --log)")
    parser.add_argument("--log", type=Path, action="append", help="measure these logs instead of a generated one")
    parser.add_argument("--scale-mb", type=int, default=25, help="whatif scaling: logs of 1x, 2x and 4x this size")
    parser.add_argument("--measure", nargs=2, metavar=("PATH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), args.measure[1])))
        return 0
    logs = args.log or [_generated(args.mb)]
    rows = [_run(path, mode) for path in logs for mode in ("report", "explain", "whatif")]
    print("whatif as the log grows (time per call must stay flat):")
    scaling = [_run(_generated(args.scale_mb * k), "whatif") for k in (1, 2, 4)]
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(
        json.dumps({"logs": [str(p) for p in logs], "rows": rows, "whatif_scaling": scaling}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
