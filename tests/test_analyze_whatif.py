"""whatif: each strategy re-priced through the cache simulator, checked against what the real logs recorded."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from leanloop.analyze import estimate
from leanloop.analyze.prompts import growth_prompts
from leanloop.analyze.render import print_whatif
from leanloop.analyze.report import cost_text, usd_text
from leanloop.analyze.sources import ImportLog, iter_calls
from leanloop.analyze.whatif import STRATEGIES, WhatIfSimulation, whatif
from leanloop.cachesim import CacheSim
from leanloop.cli import app
from leanloop.pricing import Pricing
from leanloop.trace import BlockPrint, CallRecord, TraceWriter
from leanloop.usage import Usage
from test_importers import assistant_line, session_lines, usage, user_line, write_jsonl
from test_report import web_search_session

runner = CliRunner()
PRICING = Pricing()


def records(path: Path) -> list[CallRecord]:
    return list(iter_calls([path], ImportLog(), content=True, pricing=PRICING))


def test_no_cache_is_exact_and_rolling_1h_reproduces_a_1h_session(shared_data: Path) -> None:
    result = whatif(records(shared_data / "claude-code-sessions" / "tool_heavy_opus46.jsonl"), pricing=PRICING)
    none = result.strategies["no_cache"]
    assert none.usage.input_tokens == none.usage.prompt_tokens == 105_981  # every recorded prompt token, uncached
    assert none.cost.total == Decimal(105_981) * 5 / 1_000_000 + Decimal(212) * 25 / 1_000_000
    assert not none.estimated
    recorded = result.strategies["as_recorded"]
    assert recorded.cost.total == Decimal("0.2266455")
    rolling_1h = result.ratio("rolling_1h")
    assert rolling_1h is not None and rolling_1h == pytest.approx(1.0, abs=0.02)  # Claude Code caches 1h
    assert result.strategies["rolling_1h"].estimated  # the system prompt + tools size is an estimate here
    batch = result.strategies["batch"]
    assert batch.cost.total == result.strategies["rolling_1h"].cost.total  # interactive: no batch discount
    assert list(result.strategies) == [name for name in STRATEGIES if name != "truncation"]  # it never cuts here


def test_rolling_5m_reproduces_a_5m_subagent(shared_data: Path) -> None:
    result = whatif(records(shared_data / "claude-code-sessions" / "subagent_sonnet45.jsonl"), pricing=PRICING)
    assert result.ratio("rolling_5m") == pytest.approx(1.0, abs=0.01)
    assert result.ratio("no_cache") == pytest.approx(4.5, abs=0.1)
    rolling_1h, batch = result.strategies["rolling_1h"].cost.total, result.strategies["batch"].cost.total
    assert batch == rolling_1h  # its parent session waits for a sub-agent: nothing can go through the Batch API
    summary = result.strategies["cheaper_summary"]
    assert summary.cost.total != result.strategies["rolling_5m"].cost.total
    assert any("claude-haiku-4-5" in note for note in result.assumptions)


def test_recorded_prefix_blocks_are_used_when_the_log_has_them() -> None:
    head = (BlockPrint("tools.0", "aa" * 8, 3000), BlockPrint("system.0", "bb" * 8, 2000))
    calls: list[CallRecord] = []
    history: tuple[BlockPrint, ...] = ()
    for i in range(4):
        history = (*history, BlockPrint(f"messages.{i}.content.0", f"{i:016x}", 400))
        use = Usage(input_tokens=5000 + 400 * (i + 1) + 3, output_tokens=50)  # blocks + the assistant-turn tail
        cost = PRICING.cost("claude-sonnet-4-6", use)
        calls.append(
            CallRecord("claude-sonnet-4-6", use, cost, i + 1, "r", started_at=100.0 + 20 * i, prefix=(*head, *history))
        )
    result = whatif(calls, pricing=PRICING)
    system_tools = result.strategies["system_tools"]
    assert system_tools.usage.cache_write_tokens == 5000 and system_tools.usage.cache_read_tokens == 3 * 5000
    rolling = result.strategies["rolling_5m"].usage
    assert rolling.cache_read_tokens == 5400 + 5800 + 6200  # each call reads what the previous one sent
    assert not result.strategies["rolling_5m"].estimated
    assert result.ratio("rolling_5m") is not None and (result.ratio("rolling_5m") or 1) < 1


def test_growth_prompts_reproduce_estimate_prompts() -> None:
    """``prompts.growth_prompts`` can replace estimate's own builder: the same requests, the same cache usage."""
    workload = estimate.PRESETS["five-step"]
    head = [("tools.0", workload.tool_tokens), ("system.0", workload.system_tokens)]
    models = [workload.model] * len(workload.history_tokens)
    for strategy in estimate.STRATEGIES:
        theirs = estimate._prompts(workload, strategy, 1)  # pyright: ignore[reportPrivateUsage]
        ours = growth_prompts(models, head, workload.history_tokens, history_salt="run1.", tail_tokens=0)
        their_sim, our_sim = CacheSim(), CacheSim()
        for i, (mine, their) in enumerate(zip(ours, theirs, strict=True)):
            marks = {1 if index == 1 else len(mine.blocks) - 1: b.ttl for index, b in enumerate(their.blocks) if b.ttl}
            assert mine.total_tokens == their.total_tokens
            expected = their_sim.request(their, start=10.0 * i).usage
            assert our_sim.request(mine.with_marks(marks), start=10.0 * i).usage == expected


def test_growth_prompts_rewrite_keeps_only_the_unchanged_part() -> None:
    prompts = growth_prompts(["m"] * 3, [("head.cached", 1000), ("head", 500)], [100, 200, 300], rewrites={2: 1200})
    first, second, third = prompts
    assert [b.tokens for b in third.blocks] == [1000, 500, 0, 100, 100, 100]  # head, settings, one block per call
    assert first.prefix_hashes[0] == third.prefix_hashes[0]  # within the 1,200 unchanged tokens
    assert first.prefix_hashes[1] != third.prefix_hashes[1]  # ends at 1,500: rewritten
    assert second.prefix_hashes[3] == first.prefix_hashes[3]  # before the rewrite the history only grew
    assert second.prefix_hashes[3] != third.prefix_hashes[3]


def test_whatif_json(shared_data: Path) -> None:
    path = shared_data / "claude-code-sessions" / "subagent_sonnet45.jsonl"
    result = runner.invoke(app, ["whatif", str(path), "--format", "json", "--summary-model", "claude-haiku-4-5"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["strategies"]) == set(STRATEGIES) - {"truncation"}  # it never cuts here
    recorded = data["strategies"]["as_recorded"]
    assert (recorded["cost_usd"], recorded["vs_recorded"]) == (pytest.approx(0.45065955), 1.0)
    assert data["strategies"]["rolling_5m"]["estimated"] is True
    assert data["strategies"]["no_cache"]["estimated"] is False
    for strategy in data["strategies"].values():  # one day observed: 30 of them
        assert strategy["usd_per_month"] == pytest.approx(strategy["cost_usd"] * 30)
    assert data["projection"]["period"]["days"] == 1
    assert data["assumptions"]
    table = runner.invoke(app, ["whatif", str(path)])
    assert table.exit_code == 0 and "rolling cache 5m (leanloop default)" in table.stdout


def test_whatif_table_fits_80_columns_without_cutting_a_number(shared_data: Path) -> None:
    result = whatif(records(shared_data / "claude-code-sessions" / "subagent_sonnet45.jsonl"))
    console = Console(width=80, record=True, file=io.StringIO())
    print_whatif(result, console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    cells = " ".join(text.split())
    for name, strategy in result.strategies.items():
        usage = strategy.usage
        numbers = [f"{n:,}" for n in (usage.cache_write_tokens, usage.cache_read_tokens)]
        ratio = result.ratio(name)
        month = result.per_month(name)
        assert f" {name}{'*' if strategy.estimated and name != 'as_recorded' else ''} " in cells
        assert month is not None  # one day observed: the month at that rate
        assert " ".join([*numbers, cost_text(strategy.cost), usd_text(month), f"{ratio:.2f}x"]) in cells


def test_an_unpriced_model_is_unknown_and_named(tmp_path: Path) -> None:
    line = assistant_line("s", "u", None, "m1", {"type": "text", "text": "x"}, usage(5), model="claude-foo-9")
    path = write_jsonl(tmp_path / "s.jsonl", [line])
    result = runner.invoke(app, ["whatif", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    recorded = json.loads(result.stdout)["strategies"]["as_recorded"]
    assert (recorded["cost_usd"], recorded["unknown_models"]) == (None, ["claude-foo-9"])
    (warning,) = [line for line in result.stderr.splitlines() if "claude-foo-9" in line]
    assert warning.startswith("leanloop: warning: no price known for claude-foo-9")
    table = runner.invoke(app, ["whatif", str(path)]).stdout
    (row,) = [line for line in table.splitlines() if line.lstrip().startswith("as_recorded")]
    assert row.split()[-2:] == ["unknown", "-"]


def test_rewritten_blocks_keep_short_names_however_many_rewrites() -> None:
    """A rewrite renames blocks from their original name: the work per call does not grow with earlier rewrites."""
    calls = 300
    rewrites = dict.fromkeys(range(1, calls), 0)  # every call rewrote everything (a system prompt with a clock)
    prompts = growth_prompts(["m"] * calls, [("tools", 3000), ("system", 2000)], [100] * calls, rewrites=rewrites)
    assert max(len(block.canonical) for prompt in prompts for block in prompt.blocks) < 60
    assert prompts[-1].prefix_hashes[0] != prompts[-2].prefix_hashes[0]  # still a new version each time


def two_calls_after_a_gap(tmp_path: Path, gap_minutes: int) -> Path:
    """A session whose first call found 20,000 tokens cached, then a second call ``gap_minutes`` later."""
    lines = [
        user_line("s", "u0", None, "go"),
        assistant_line(
            "s", "a0", "u0", "m0", {"type": "text", "text": "x"}, usage(5, read=20_000, write=500, split="1h"),
            request_id="r0", timestamp="2026-02-10T10:00:00Z",
        ),
        user_line("s", "u1", "a0", "more", timestamp="2026-02-10T10:00:30Z"),
        assistant_line(
            "s", "a1", "u1", "m1", {"type": "text", "text": "y"}, usage(5, read=20_500, write=300, split="1h"),
            request_id="r1", timestamp=f"2026-02-10T10:{gap_minutes:02d}:00Z",
        ),
    ]  # fmt: skip
    return write_jsonl(tmp_path / "s.jsonl", lines)


def test_the_warm_start_lives_under_each_strategys_own_ttl(tmp_path: Path) -> None:
    result = whatif(records(two_calls_after_a_gap(tmp_path, 20)), pricing=PRICING)
    five, hour = result.strategies["rolling_5m"].usage, result.strategies["rolling_1h"].usage
    assert hour.cache_read_tokens >= 2 * 20_000  # read at both calls
    assert five.cache_read_tokens < 20_000 + 1000  # 20 minutes later the 5m entries are gone


def test_batch_only_where_nobody_waited_and_said_to_be_an_upper_bound(shared_data: Path, tmp_path: Path) -> None:
    for path in (
        shared_data / "claude-code-sessions" / "tool_heavy_opus46.jsonl",
        shared_data / "agent-trajectories" / "openhands_basic_gui_mode.json",  # a GUI session awaiting its user
    ):
        result = whatif(records(path), pricing=PRICING)
        assert result.batch_calls == 0
        assert result.strategies["batch"].cost.total == result.strategies["rolling_1h"].cost.total
        assert any("does not apply" in note for note in result.assumptions)
    trace = tmp_path / "run.jsonl"
    calls = trace_calls(4)
    with TraceWriter(trace) as writer:
        for call in calls:
            writer.write_call(call)
    out = runner.invoke(app, ["whatif", str(trace), "--format", "json"])
    data = json.loads(out.stdout)
    batch = data["strategies"]["batch"]
    assert (batch["upper_bound"], batch["batch_calls"]) == (True, 4)
    assert batch["cost_usd"] == pytest.approx(data["strategies"]["rolling_1h"]["cost_usd"] / 2)
    assert any("upper bound, not a recommendation" in note for note in data["assumptions"])
    table = runner.invoke(app, ["whatif", str(trace)], env={"COLUMNS": "150"}).stdout
    assert "upper bound" in table


def trace_calls(count: int, *, start: float = 1_770_000_000.0, stop: str = "end_turn") -> list[CallRecord]:
    head = (BlockPrint("tools.0", "aa" * 8, 3000), BlockPrint("system.0", "bb" * 8, 2000))
    out: list[CallRecord] = []
    history: tuple[BlockPrint, ...] = ()
    for i in range(count):
        history = (*history, BlockPrint(f"messages.{i}.content.0", f"{i:016x}", 400))
        use = Usage(input_tokens=5000 + 400 * (i + 1) + 3, output_tokens=50)
        cost = PRICING.cost("claude-sonnet-4-6", use)
        reason = stop if i == count - 1 else "tool_use"
        out.append(
            CallRecord("claude-sonnet-4-6", use, cost, i + 1, "r", started_at=start + 20 * i, stop_reason=reason,
                       prefix=(*head, *history))
        )  # fmt: skip
    return out


def test_cheaper_summary_only_moves_a_final_answer_after_earlier_calls() -> None:
    one = whatif(trace_calls(1), pricing=PRICING)
    assert one.strategies["cheaper_summary"].cost.total == one.strategies["rolling_5m"].cost.total
    cut = whatif(trace_calls(3, stop="tool_use"), pricing=PRICING)  # stopped on a tool call: not a summary
    assert cut.strategies["cheaper_summary"].cost.total == cut.strategies["rolling_5m"].cost.total
    done = whatif(trace_calls(3), pricing=PRICING)
    assert done.strategies["cheaper_summary"].cost.total != done.strategies["rolling_5m"].cost.total


def test_monthly_cost_per_strategy_at_the_observed_rate_and_at_a_given_volume() -> None:
    calls = trace_calls(3) + [
        replace(c, run_id="r2", started_at=(c.started_at or 0) + 9 * 86_400) for c in trace_calls(3)
    ]
    result = whatif(calls, pricing=PRICING)  # two runs, ten calendar days apart (first and last day counted)
    assert result.projection.period.days == 10
    for name, strategy in result.strategies.items():
        assert result.per_month(name) == strategy.cost.total / 10 * 30
    volume = whatif(calls, pricing=PRICING, runs_per_day=100)
    assert volume.per_month("no_cache") == volume.strategies["no_cache"].cost.total / 2 * 100 * 30


def test_a_log_of_many_sessions_keeps_only_the_sessions_still_going() -> None:
    simulation = WhatIfSimulation(pricing=PRICING)
    hours = 3 * 3600.0
    for k in range(1200):  # 1,200 runs of two calls, one starting every 3 hours, all in one stream
        for call in trace_calls(2, start=1_770_000_000.0 + hours * k):
            simulation.add(replace(call, run_id=f"r{k}"))
    assert simulation.open_runs <= 600  # closed as they go idle, not all kept to the end
    again = replace(trace_calls(1, start=1_770_000_000.0 + hours * 1300)[0], run_id="r0")  # r0 comes back
    simulation.add(again)
    result = simulation.result()
    assert (result.runs, result.calls) == (1200, 2401)  # r0 is still one run


def test_web_searches_are_paid_for_under_every_strategy(tmp_path: Path) -> None:
    """A search is a search whatever the caching: every strategy pays its fee ($10 per 1,000 on Sonnet 4.6)."""
    result = whatif(records(web_search_session(tmp_path)), pricing=PRICING)
    for name, strategy in result.strategies.items():
        assert (name, strategy.usage.web_search_requests, strategy.cost.web_search) == (name, 3, Decimal("0.03"))
    none = result.strategies["no_cache"]
    prompt = none.usage.prompt_tokens
    assert none.cost.total == (Decimal(prompt) * 3 + Decimal(60) * 15) / 1_000_000 + Decimal("0.03")


def test_fast_mode_and_the_region_are_kept_under_every_strategy() -> None:
    """How a call was served (fast mode, US inference) is not a caching choice: every strategy is billed for it."""
    use = Usage(input_tokens=3, cache_write_5m_tokens=5000, output_tokens=100, speed="fast", inference_geo="us")
    record = CallRecord(model="claude-opus-4-6", usage=use, cost=PRICING.cost("claude-opus-4-6", use), run_id="r")
    result = whatif([record], pricing=PRICING)
    plain = Usage(input_tokens=5003, output_tokens=100, speed="fast", inference_geo="us")
    assert result.strategies["no_cache"].cost == PRICING.cost("claude-opus-4-6", plain)
    assert result.strategies["rolling_5m"].cost == result.strategies["as_recorded"].cost


def test_the_notes_on_one_run_of_one_call_are_in_the_singular(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", session_lines("s1", 1))
    result = runner.invoke(app, ["whatif", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    notes = json.loads(result.stdout)["assumptions"]
    assert any(note.startswith("1 run found 1,000 tokens already cached by their first call") for note in notes)
    assert any(note.startswith("batch: someone waited on the only call (") for note in notes)
    assert not any("(s)" in note or "1 calls" in note for note in notes)
