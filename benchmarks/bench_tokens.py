"""Token estimator calibration: estimated vs recorded prompt tokens on the real recordings in ../shared/data.

Prints a table and writes benchmarks/results/tokens.json. Run: .venv/bin/python benchmarks/bench_tokens.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from leanloop.cachesim import prompt_from_request

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "anthropic-recordings"
OUT = Path(__file__).resolve().parent / "results" / "tokens.json"
FILES = ["test_anthropic_cache_real_api.yaml", "test_multiple_parallel_tool_calls.yaml"]


def _usage(response: dict) -> dict:
    if "parsed_body" in response:
        return response["parsed_body"]["usage"]
    for line in response["body"]["string"].splitlines():  # streamed: message_start has the prompt counts
        if line.startswith("data: ") and '"message_start"' in line:
            return json.loads(line[6:])["message"]["usage"]
    raise ValueError("no usage in response")


def main() -> int:
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found (the shared recordings are needed)")
        return 0
    rows = []
    for name in FILES:
        recording = yaml.safe_load((DATA / name).read_text())
        for number, interaction in enumerate(recording["interactions"], 1):
            request = interaction["request"]["parsed_body"]
            usage = _usage(interaction["response"])
            real = usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]
            estimated = prompt_from_request(request).total_tokens
            rows.append(
                {
                    "request": f"{name} #{number}",
                    "real": real,
                    "estimated": estimated,
                    "error_pct": round(100 * (estimated - real) / real, 1),
                }
            )
    for row in rows:
        print(f"{row['request']:<45} real {row['real']:>6}  estimated {row['estimated']:>6}  {row['error_pct']:+.1f} %")
    worst = max(abs(r["error_pct"]) for r in rows)
    print(f"worst error: {worst:.1f} %")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"rows": rows, "worst_error_pct": worst}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
