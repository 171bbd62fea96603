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
    ratio = incident["leanloop"]["cost_usd"] / incident["naive"]["cost_usd"]
    assert data["incident_leanloop_vs_naive"] == pytest.approx(ratio)  # both stopped, on purpose: comparable


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


def _one_line_error(*args: str) -> str:
    """``leanloop demo ARGS`` refused before anything ran: exit 2, nothing on stdout, one line on stderr."""
    result = runner.invoke(app, ["demo", *args], env={"COLUMNS": "120"})
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr.strip()


def test_a_budget_too_small_for_one_call_shows_the_stop_and_no_ratio() -> None:
    result = runner.invoke(app, ["demo", "--budget", "0.001"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    comparison = result.output.split("The same task, three ways", 1)[1].split("Runaway incident", 1)[0]
    row = next(line for line in comparison.splitlines() if line.strip().startswith("leanloop default"))
    assert "0.00x" not in row and "0%" not in row
    assert row.split()[2:5] == ["$0.0000", "-", "-"]  # cost, then no ratio and no hit rate
    assert (
        "leanloop default did not finish the task: --budget $0.001 stopped it before its first call (that call "
        "alone could cost more): raise --budget" in comparison
    )
    data = _demo("--budget", "0.001")
    assert data["leanloop_vs_naive"] is None
    runs = data["runs"]
    assert isinstance(runs, dict) and runs["leanloop"]["stop"] == "budget"


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0"])
def test_a_budget_that_is_not_a_positive_finite_number_is_one_line(value: str) -> None:
    assert _one_line_error("--budget", value).startswith("leanloop demo: --budget: must be a finite number > 0")


def test_logs_without_a_log_file_is_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("not a log")
    assert _one_line_error("--logs", str(empty)) == (
        f"leanloop demo: --logs: {empty} holds no log file (a .log, .txt or suffix-less file, in the folder or in "
        "one folder per namespace)"
    )


def test_logs_that_cannot_be_read_as_text_is_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "binary"
    binary.mkdir()
    (binary / "a.log").write_bytes(b"\x00\x01\x02" * 100)
    (binary / "b.log").write_bytes(bytes(range(256)))
    line = _one_line_error("--logs", str(binary))
    assert line == (
        f"leanloop demo: --logs: none of the 2 log files in {binary} can be read as text: "
        f"{binary.name}/a.log is binary, {binary.name}/b.log is binary"
    )


def test_an_empty_logs_path_is_refused_not_taken_for_the_current_directory() -> None:
    assert _one_line_error("--logs", "") == "leanloop demo: --logs: the path is empty"


def test_a_trace_that_cannot_be_written_is_refused_before_anything_is_printed(tmp_path: Path) -> None:
    assert _one_line_error("--trace", str(tmp_path)) == (
        f"leanloop demo: --trace: {tmp_path} is a directory: name a file in it"
    )


def test_a_tiny_budget_is_shown_as_dollars_not_in_exponent_notation() -> None:
    from leanloop.demo.cli import _dollars  # pyright: ignore[reportPrivateUsage]

    assert [_dollars(x) for x in (1e-9, 0.5, 0.001, 2.0, 1234.5)] == [
        "$0.000000001",
        "$0.5",
        "$0.001",
        "$2",
        "$1,234.5",
    ]
