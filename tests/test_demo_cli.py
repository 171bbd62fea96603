"""leanloop demo: the issue's done criteria, end to end on the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leanloop.cli import app

runner = CliRunner()


def _demo(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["demo", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _check(data: dict[str, object]) -> None:
    runs = data["runs"]
    assert isinstance(runs, dict)
    for name in ("naive", "cache_only", "leanloop"):
        run = runs[name]
        assert {"cost_usd", "iterations", "cache_read_tokens", "cache_write_tokens", "calls"} <= set(run)
        for call in run["calls"]:
            assert set(call) >= {
                "model",
                "input_tokens",
                "cache_write_tokens",
                "cache_read_tokens",
                "output_tokens",
                "cost_usd",
            }
    # leanloop within 1.05x of the perfect-cache floor of its own calls
    assert data["cost_vs_floor"] is not None and data["cost_vs_floor"] <= 1.05
    # cache reads on every call after the first one whose prompt reached the minimum (2,048 on Sonnet 4.6)
    calls = runs["leanloop"]["calls"]
    prompts = [c["input_tokens"] + c["cache_write_tokens"] + c["cache_read_tokens"] for c in calls]
    first = next(i for i, p in enumerate(prompts) if p >= 2048)
    assert all(c["cache_read_tokens"] > 0 for c in calls[first + 1 :])
    assert runs["leanloop"]["cost_usd"] < runs["naive"]["cost_usd"]
    incident = data["incident"]
    assert incident["leanloop"]["stop"] == "loop_guard"
    assert incident["leanloop"]["iterations"] <= 5
    assert incident["naive"]["iterations"] == 100
    assert incident["leanloop"]["cost_usd"] <= 0.05 * incident["naive"]["cost_usd"]


def test_demo_on_the_generated_snapshot() -> None:
    data = _demo()
    _check(data)
    assert data["stop"] == {"reason": "end_turn", "detail": "the model finished its answer"}
    assert "payments/ledger-1549" in str(data["answer"])  # the unreadable pod is reported


def test_demo_on_real_server_logs(shared_data: Path) -> None:
    data = _demo("--logs", str(shared_data / "server-logs"))
    _check(data)
    assert "mod_jk child workerEnv in error state 6" in str(data["answer"])


def test_demo_prints_the_ledger_and_comparison(tmp_path: Path) -> None:
    trace = tmp_path / "demo.jsonl"
    result = runner.invoke(app, ["demo", "--trace", str(trace)], env={"COLUMNS": "140"})
    assert result.exit_code == 0, result.output
    for text in (
        "Ledger of the leanloop run",
        "cache write",
        "The same task, three ways",
        "Runaway incident",
        "loop_guard",
        "perfect-cache floor",
    ):
        assert text in result.output
    assert trace.read_text().count('"kind": "call"') >= 5


@pytest.mark.parametrize(
    ("args", "message"), [(["--logs", "/nonexistent/dir"], "is not a directory"), (["--budget", "0"], "budget")]
)
def test_demo_bad_input(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["demo", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_demo_ledger_has_a_model_column() -> None:
    result = runner.invoke(app, ["demo"], env={"COLUMNS": "140"})
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "cache write" in line and "latency" in line)
    assert header.split()[:2] == ["#", "model"]
    assert "claude-sonnet-4-6" in result.output.split("The same task")[0].split("cache write", 1)[1]


def test_demo_trace_into_a_missing_folder_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "deeper" / "t.jsonl"
    result = runner.invoke(app, ["demo", "--trace", str(target)])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "missing").exists()


def test_demo_says_which_input_the_incident_runs_on(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "api.log").write_text("2026-12-03T09:00:00Z ERROR boom\n" * 20)
    data = _demo("--logs", str(logs))
    incident = data["incident"]
    assert isinstance(incident, dict)
    assert "generated cluster snapshot" in incident["source"] and "payments/ledger-1549" in incident["source"]
    text = runner.invoke(app, ["demo", "--logs", str(logs)], env={"COLUMNS": "140"}).output
    assert "on the generated cluster snapshot" in text


def test_demo_unknown_model_says_so() -> None:
    result = runner.invoke(app, ["demo", "--model", "claude-nope-1"])
    assert result.exit_code == 2
    assert "unknown model 'claude-nope-1'" in result.output
