"""`leanloop report` on logs written by real Claude Code (tests/fixtures/claude_code_e2e, made by `make e2e-fixture`
from a run of e2e/claude_code.py): every invocation, and every session with its sub-agent, costs exactly what Claude
Code itself reported as total_cost_usd, and every model call the emulator served is counted once.

The fixture's two sessions: Sonnet 4.6 with three tool turns, then a --resume and a --continue of it on a restarted
emulator (one file, calls from two emulator starts); and Claude Code's default model (Opus 4.8) handing a task to a
sub-agent (a subagents/ file beside the session, and its .meta.json).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from leanloop import cli

FIXTURE = Path(__file__).parent / "fixtures" / "claude_code_e2e"
MICRO_USD = 5e-7


@pytest.fixture(scope="module")
def costs() -> dict[str, Any]:
    return json.loads((FIXTURE / "claude_code_costs.json").read_text())


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    result = CliRunner().invoke(cli.app, ["report", str(FIXTURE / "projects"), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_each_session_costs_what_claude_code_reported(costs: dict[str, Any], report: dict[str, Any]) -> None:
    assert len(costs["sessions"]) == 2
    for session, expected in costs["sessions"].items():
        runs = [r for r in report["runs"] if r["run_id"] == session or r["run_id"].startswith(f"{session}/")]
        assert sum(r["calls"] for r in runs) == expected["calls"]
        assert sum(r["cost_usd"] for r in runs) == pytest.approx(expected["total_cost_usd"], abs=MICRO_USD)
    claude_code_total = sum(s["total_cost_usd"] for s in costs["sessions"].values())
    assert report["cost_usd"] == pytest.approx(claude_code_total, abs=MICRO_USD)


def test_each_invocation_costs_what_claude_code_reported(costs: dict[str, Any], report: dict[str, Any]) -> None:
    by_id = {c["message_id"]: c for c in report["per_call"]}
    invocations = [i for s in costs["sessions"].values() for i in s["invocations"]]
    assert [i["name"] for i in invocations] == ["sonnet-tools", "resume", "continue", "subagent"]
    for invocation in invocations:
        cost = sum(by_id[message_id]["cost_usd"] for message_id in invocation["message_ids"])
        assert cost == pytest.approx(invocation["total_cost_usd"], abs=MICRO_USD), invocation["name"]


def test_every_served_call_is_counted_once(costs: dict[str, Any], report: dict[str, Any]) -> None:
    served = [m for s in costs["sessions"].values() for i in s["invocations"] for m in i["message_ids"]]
    counted = [c["message_id"] for c in report["per_call"]]
    assert sorted(counted) == sorted(served)
    assert report["calls"] == len(served) == 10
    assert any("/agent-" in r["run_id"] for r in report["runs"])  # the sub-agent's file is read


def test_the_fixture_holds_no_key() -> None:
    for path in FIXTURE.rglob("*"):
        if path.is_file():
            assert not re.search(r"sk-ant-(?!REDACTED)", path.read_text()), path


@pytest.mark.parametrize("command", ["report", "explain", "whatif"])
def test_claude_codes_own_lines_and_files_make_no_noise(command: str) -> None:
    """last-prompt and mode lines, and the sub-agent's .meta.json, are Claude Code's: nothing to report."""
    result = CliRunner().invoke(cli.app, [command, str(FIXTURE / "projects")])
    assert result.exit_code == 0, result.output
    assert "unusable" not in result.stderr and "skipped" not in result.stderr, result.stderr


def test_the_sub_agent_run_is_labelled_from_its_meta_file(report: dict[str, Any]) -> None:
    (agent,) = [r for r in report["runs"] if "/agent-" in r["run_id"]]
    assert (agent["agent_type"], agent["agent_description"]) == ("general-purpose", "Count lines")
    table = CliRunner().invoke(cli.app, ["report", str(FIXTURE / "projects")]).stdout
    assert "general-purpose: Count lines" in table


def test_each_session_with_its_sub_agents_costs_what_claude_code_showed(
    costs: dict[str, Any], report: dict[str, Any]
) -> None:
    """Claude Code's total_cost_usd for an invocation includes its sub-agents: report's per-session total does too."""
    sessions = {s["session_id"]: s for s in report["sessions"]}
    assert sorted(sessions) == sorted(costs["sessions"])
    for session, expected in costs["sessions"].items():
        assert sessions[session]["calls"] == expected["calls"]
        assert sessions[session]["cost_usd"] == pytest.approx(expected["total_cost_usd"], abs=MICRO_USD)
    spawner = sessions["5db384f5-71bb-4473-a769-4bb06bdb960a"]
    assert spawner["runs"] == [
        "5db384f5-71bb-4473-a769-4bb06bdb960a",
        "5db384f5-71bb-4473-a769-4bb06bdb960a/agent-aa80025f4e0f847c7",
    ]
    assert spawner["sub_agents"] == 1


def test_the_table_shows_each_session_with_its_sub_agents() -> None:
    table = CliRunner().invoke(cli.app, ["report", str(FIXTURE / "projects")]).stdout
    section = table[table.index("Sessions with their sub-agents") :].splitlines()
    row = next(line for line in section if line.lstrip().startswith("5db384f5"))
    assert row.split()[1:3] == ["2", "4"]  # 2 runs (the session and its sub-agent), 4 calls
    assert row.split()[-1] == "$0.3134"  # Claude Code's total_cost_usd for that invocation: $0.3133735
