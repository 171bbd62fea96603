"""whatif: each strategy re-priced through the cache simulator, checked against what the real logs recorded."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from leanloop.analyze import estimate
from leanloop.analyze.prompts import growth_prompts
from leanloop.analyze.render import print_whatif
from leanloop.analyze.report import cost_text
from leanloop.analyze.sources import ImportLog, iter_calls
from leanloop.analyze.whatif import STRATEGIES, whatif
from leanloop.cachesim import CacheSim
from leanloop.cli import app
from leanloop.pricing import Pricing
from leanloop.trace import BlockPrint, CallRecord
from leanloop.usage import Usage
from test_importers import assistant_line, usage, write_jsonl

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
    assert list(result.strategies) == list(STRATEGIES)


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
    assert set(data["strategies"]) == set(STRATEGIES)
    recorded = data["strategies"]["as_recorded"]
    assert (recorded["cost_usd"], recorded["vs_recorded"]) == (pytest.approx(0.45065955), 1.0)
    assert data["strategies"]["rolling_5m"]["estimated"] is True
    assert data["strategies"]["no_cache"]["estimated"] is False
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
        numbers = [f"{n:,}" for n in (usage.cache_write_tokens, usage.cache_read_tokens, usage.output_tokens)]
        ratio = result.ratio(name)
        assert f" {name} " in cells
        assert " ".join([*numbers, cost_text(strategy.cost), f"{ratio:.2f}x"]) in cells


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
