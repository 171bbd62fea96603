"""whatif's truncation strategy: a recorded run's history under leanloop's compaction, from token counts; and the
whatif row it makes (only where it changes something)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

from leanloop.analyze.render import print_whatif
from leanloop.analyze.sources import ImportLog, iter_calls
from leanloop.analyze.truncation import DEFAULT_TRIGGER, TruncatedHistory, trigger_for
from leanloop.analyze.whatif import WhatIfSimulation, whatif
from leanloop.cli import app
from leanloop.pricing import Pricing
from leanloop.tokens import TRAILING_PROMPT_TOKENS
from leanloop.trace import CallRecord, TraceWriter
from leanloop.usage import Usage

PRICING = Pricing()
FIXTURE = Path(__file__).parent / "fixtures" / "claude_code_e2e" / "projects"
runner = CliRunner()


def sent(history: TruncatedHistory, growth: list[int], *, first: int = 1000, output: int = 300) -> list[int]:
    """The history each call sends, when the recorded one starts at ``first`` and grows by ``growth``."""
    recorded = first
    out = [history.next("claude-sonnet-4-6", recorded, output).history_tokens]
    for step in growth:
        recorded += step
        out.append(history.next("claude-sonnet-4-6", recorded, output).history_tokens)
    return out


def test_the_trigger_is_leanlooops_automatic_one_at_most_160k() -> None:
    assert trigger_for("claude-haiku-4-5") == DEFAULT_TRIGGER == 160_000  # 80 % of 200K
    assert trigger_for("claude-opus-4-8") == 160_000  # 80 % of 1M would be 800K: capped
    assert trigger_for("no-such-model") == 160_000
    assert trigger_for("claude-opus-4-8", 50_000) == 50_000


def test_a_long_run_is_cut_in_big_steps_and_never_sends_more_than_the_trigger() -> None:
    head = 20_000
    history = TruncatedHistory(head)
    sizes = sent(history, [5000] * 80)
    prompts = [head + tokens + TRAILING_PROMPT_TOKENS for tokens in sizes]
    assert max(prompts) <= 160_000
    first_cut = next(i for i, (a, b) in enumerate(pairwise(prompts), 1) if b < a)
    assert prompts[first_cut - 1] + 5000 > 160_000  # cut just before the call that would have crossed it
    assert prompts[first_cut] <= 80_000  # down to half the trigger, the target, in one step
    assert history.cuts == 4  # 400K of growth, ~80K removed per cut: every 17 calls, in big steps


def test_a_run_under_the_trigger_is_left_as_it_is() -> None:
    history = TruncatedHistory(20_000)
    growth = [3000] * 40
    assert sent(history, growth) == [1000 + 3000 * i for i in range(41)]
    assert history.cuts == 0
    assert (history.largest_prompt, history.largest_trigger) == (20_000 + 121_000 + TRAILING_PROMPT_TOKENS, 160_000)


def test_the_task_is_never_cut() -> None:
    """A first prompt of 150K (a resumed session) is the task: only the turns after it can be cut."""
    history = TruncatedHistory(5000)
    sizes = sent(history, [4000] * 10, first=150_000)
    assert history.cuts >= 1
    assert min(sizes[1:]) >= 150_000


def test_the_logs_own_compaction_starts_the_history_again() -> None:
    history = TruncatedHistory(10_000)
    sizes = sent(history, [5000, 5000, -8000, 2000])
    assert sizes == [1000, 6000, 11000, 3000, 5000]


@settings(max_examples=60, deadline=None)
@given(
    head=st.integers(0, 60_000),
    first=st.integers(0, 100_000),
    growth=st.lists(st.integers(-20_000, 30_000), min_size=1, max_size=60),
    trigger=st.integers(20_000, 200_000),
)
def test_compaction_only_ever_removes_tokens(head: int, first: int, growth: list[int], trigger: int) -> None:
    """Whatever the run, a call sends at most its recorded history, and a cut happens only above the trigger."""
    history = TruncatedHistory(head, truncate_at=trigger)
    recorded = first
    for step in [0, *growth]:
        recorded = max(recorded + step, 0)
        before = history.cuts
        tokens = history.next("claude-sonnet-4-6", recorded, 200).history_tokens
        assert 0 <= tokens <= recorded
        if history.cuts > before:
            assert head + recorded + TRAILING_PROMPT_TOKENS > trigger or tokens < recorded


# --- the whatif row ----------------------------------------------------------------------------------------------


def long_session(calls: int = 60, *, head: int = 20_000, growth: int = 5000) -> list[CallRecord]:
    """A Claude Code-like session whose every call reads what the previous one cached and adds ``growth``."""
    records: list[CallRecord] = []
    prompt = head + 1000
    for i in range(calls):
        read = prompt - growth if i else 0
        use = Usage(input_tokens=3, cache_write_5m_tokens=prompt - read - 3, cache_read_tokens=read, output_tokens=300)
        notes = {"format": "claude_code", "interactive": True, "message_tokens": prompt - head}
        at = 1_790_000_000.0 + 20 * i
        records.append(
            CallRecord(
                model="claude-sonnet-4-6",
                usage=use,
                cost=PRICING.cost("claude-sonnet-4-6", use, at=datetime.fromtimestamp(at, tz=UTC)),
                iteration=i + 1,
                run_id="s-long",
                started_at=at,
                stop_reason="tool_use" if i < calls - 1 else "end_turn",
                notes=notes,
            )
        )
        prompt += growth
    return records


def test_truncation_is_a_row_where_it_changes_something() -> None:
    result = whatif(long_session(), pricing=PRICING)
    truncation = result.strategies["truncation"]
    rolling = result.strategies["rolling_5m"]
    assert truncation.estimated
    assert truncation.usage.prompt_tokens < 0.7 * rolling.usage.prompt_tokens
    assert truncation.cost.total < rolling.cost.total
    assert result.ratio("truncation") == pytest.approx(0.81, abs=0.005)  # the README's figure
    assert truncation.usage.output_tokens == rolling.usage.output_tokens  # the answers are taken as recorded
    assert result.truncation.compactions == 2 and result.truncation.runs_compacted == 1  # at calls 29 and 46
    data = result.to_dict()
    assert data["strategies"]["truncation"]["estimated"] is True
    assert data["truncation"] == {
        "triggered": True,
        "trigger_tokens": 160_000,
        "compactions": 2,
        "runs_compacted": 1,
        "max_prompt_tokens": pytest.approx(162_000, abs=1000),  # what the prompt would have been at a cut
    }
    assert any(note.startswith("truncation: ") for note in result.assumptions)


def test_a_run_that_never_triggers_costs_what_rolling_5m_costs() -> None:
    simulation = WhatIfSimulation(pricing=PRICING)
    for record in long_session(20):
        simulation.add(record)
    simulation.end_runs()
    assert simulation.strategies["truncation"].usage == simulation.strategies["rolling_5m"].usage
    assert simulation.strategies["truncation"].cost == simulation.strategies["rolling_5m"].cost


def test_where_it_never_triggers_whatif_says_so_instead_of_a_row() -> None:
    records = list(iter_calls([FIXTURE], ImportLog(), content=True))
    result = whatif(records, pricing=PRICING)
    assert "truncation" not in result.strategies
    (note,) = [n for n in result.assumptions if n.startswith("truncation")]
    assert note.startswith("truncation: never triggers: max prompt 29,")
    assert note.endswith("< trigger 160,000 (--truncate-at sets another)")
    assert result.to_dict()["truncation"]["triggered"] is False
    table = runner.invoke(app, ["whatif", str(FIXTURE)])
    assert table.exit_code == 0, table.output
    assert "truncation: never triggers" in table.stdout


def test_truncate_at_sets_the_trigger(tmp_path: Path) -> None:
    result = whatif(long_session(20), pricing=PRICING, truncate_at=60_000)
    assert result.truncation.trigger_tokens == 60_000 and result.truncation.compactions >= 1
    assert "over 60,000 tokens" in result.strategies["truncation"].label
    trace = tmp_path / "short.jsonl"
    with TraceWriter(trace) as writer:
        for record in long_session(20):
            writer.write_call(record)
    data = json.loads(runner.invoke(app, ["whatif", str(trace), "--truncate-at", "60000", "--format", "json"]).stdout)
    assert data["truncation"]["trigger_tokens"] == 60_000 and data["truncation"]["compactions"] >= 1
    bad = runner.invoke(app, ["whatif", str(FIXTURE), "--truncate-at", "0"])
    assert (bad.exit_code, bad.stderr) == (
        2,
        "leanloop whatif: --truncate-at: input should be greater than or equal to 1\n",
    )


def test_whatif_json_and_table_show_the_row(tmp_path: Path) -> None:
    trace = tmp_path / "long.jsonl"
    with TraceWriter(trace) as writer:
        for record in long_session():
            writer.write_call(record)
    data = json.loads(runner.invoke(app, ["whatif", str(trace), "--format", "json"]).stdout)
    assert data["strategies"]["truncation"]["cost_usd"] < data["strategies"]["rolling_5m"]["cost_usd"]
    table = runner.invoke(app, ["whatif", str(trace)]).stdout
    assert "truncation: rolling 5m + history compaction over 160,000 tokens (estimate)" in table
    narrow = io.StringIO()
    print_whatif(whatif(long_session(), pricing=PRICING), Console(file=narrow, width=80))
    (row,) = [line for line in narrow.getvalue().splitlines() if line.lstrip().startswith("truncation*")]
    assert row.split()[-1] == f"{data['strategies']['truncation']['vs_recorded']:.2f}x"
