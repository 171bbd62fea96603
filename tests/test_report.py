"""leanloop report: the known numbers in every format, a self-contained html file with its charts, a whole
~/.claude/projects tree, unknown models reported as unknown (never $0), the user's logs never overwritten, tables
that fit 80 columns."""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from leanloop.analyze import cli as analyze_cli
from leanloop.analyze import reading
from leanloop.analyze.claude_code import ClaudeCodeImport
from leanloop.analyze.html import render_html
from leanloop.analyze.render import print_report
from leanloop.analyze.report import CSV_COLUMNS, build_report, cost_text
from leanloop.analyze.sources import ImportLog, iter_calls
from leanloop.cli import app
from leanloop.pricing import Pricing, UnknownModelWarning
from test_importers import assistant_line, fake_claude_projects, session_lines, usage, write_jsonl

runner = CliRunner()
KNOWN = {
    "calls": 4,
    "input_tokens": 54,
    "cache_write_5m_tokens": 0,
    "cache_write_1h_tokens": 17_696,
    "cache_read_tokens": 88_231,
    "output_tokens": 212,
    "cost_usd": 0.2266455,
}


@pytest.fixture
def tool_heavy(shared_data: Path) -> Path:
    return shared_data / "claude-code-sessions" / "tool_heavy_opus46.jsonl"


def test_json_report_has_the_known_numbers_at_the_top(tool_heavy: Path) -> None:
    result = runner.invoke(app, ["report", str(tool_heavy), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {key: data[key] for key in KNOWN} == KNOWN
    assert data["cache_hit_rate"] == pytest.approx(88_231 / (54 + 17_696 + 88_231), abs=1e-4)
    assert data["cost_usd_by_kind"]["cache_write_1h"] == pytest.approx(0.17696)
    (run,) = data["runs"]
    assert (run["calls"], run["cost_usd"]) == (4, 0.2266455)
    assert list(data["by_model"]) == ["claude-opus-4-6"]
    assert data["by_day"]["2026-02-10"]["calls"] == 4
    assert [c["iteration"] for c in data["per_call"]] == [1, 2, 3, 4]
    assert [c["output_tokens"] for c in data["per_call"]] == [27, 1, 11, 173]
    assert data["costliest_calls"][0]["cache_write_1h_tokens"] == 8_490
    assert data["import"]["problem_count"] == 0


def test_csv_has_one_row_per_call_that_adds_up(tool_heavy: Path, tmp_path: Path) -> None:
    out = tmp_path / "calls.csv"
    result = runner.invoke(app, ["report", str(tool_heavy), "--format", "csv", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with out.open() as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == 4
    assert sum(Decimal(r["cost_usd"]) for r in rows) == Decimal("0.2266455")
    assert sum(int(r["cache_read_tokens"]) for r in rows) == 88_231


def test_table_report(tool_heavy: Path) -> None:
    result = runner.invoke(app, ["report", str(tool_heavy)])
    assert result.exit_code == 0, result.output
    for text in ("4 calls in 1 run", "$0.2266", "83.3%", "cache write 1h", "17,696", "opus-4-6", "d6e0bada #3"):
        assert text in result.stdout


def test_html_report_is_one_offline_file_with_three_charts(tool_heavy: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(tool_heavy), "--format", "html", "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert page.count("<svg") == 3
    for title in ("Cost per call, by component", "Cumulative cost", "Cache hit rate per call"):
        assert title in page
    # nothing to fetch: no scripts, no links, no external URLs (the SVG namespace is an identifier, not a fetch)
    assert not re.search(r"<script|<link|src=|href=|url\(|@import", page, re.IGNORECASE)
    assert re.findall(r"https?://[^\s\"'<]+", page) == ["http://www.w3.org/2000/svg"] * 3
    assert page.count('<rect x="') >= 4 * 2  # four calls, several components each
    assert "$0.2266" in page


def test_html_groups_calls_when_there_are_many() -> None:
    lines = [
        assistant_line("s", f"u{i}", None, f"m{i}", {"type": "text", "text": "x"}, usage(5), request_id=f"r{i}")
        for i in range(900)
    ]
    importer = ClaudeCodeImport()
    for number, line in enumerate(lines, 1):
        importer.feed(line, path="x", line=number)
    page = render_html(build_report(importer.records()))
    assert "Cost per group of 3 calls, by component" in page
    assert "calls, in time order (3 per bar)" in page
    assert page.count("<svg") == 3


def test_report_on_a_claude_projects_tree(tmp_path: Path) -> None:
    projects = fake_claude_projects(tmp_path)
    result = runner.invoke(app, ["report", str(projects), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["calls"] == 8
    assert len(data["runs"]) == 4
    assert set(data["by_model"]) == {"claude-opus-4-6", "claude-haiku-4-5-20251001"}
    problems = data["import"]["problems"]
    assert [(Path(p["path"]).name, p["line"]) for p in problems] == [("22222222-aaaa-4bbb-8ccc-000000000002.jsonl", 5)]
    assert "22222222-aaaa-4bbb-8ccc-000000000002.jsonl:5" in result.stderr
    assert "notes.md" in result.stderr
    table = runner.invoke(app, ["report", str(projects)])
    assert table.exit_code == 0 and "8 calls in 4 runs" in table.stdout


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such file or directory" in " ".join(result.output.replace("│", " ").split())


def test_unknown_model_is_unknown_never_zero(tmp_path: Path) -> None:
    line = assistant_line("s", "u", None, "m1", {"type": "text", "text": "x"}, usage(5), model="claude-future-9")
    path = write_jsonl(tmp_path / "s.jsonl", [line])
    log = ImportLog()
    with pytest.warns(UnknownModelWarning, match="claude-future-9"):
        report = build_report(iter_calls([path], log, pricing=Pricing()), log)
    data = report.to_dict()
    assert (data["cost_usd"], data["cost_usd_priced"], data["cost_usd_by_kind"]) == (None, None, None)
    assert (data["unknown_models"], data["unpriced_calls"]) == (["claude-future-9"], 1)
    call = data["per_call"][0]
    assert (call["cost_usd"], call["cost_usd_by_kind"], call["unknown_models"]) == (None, None, ["claude-future-9"])
    assert data["by_model"]["claude-future-9"]["cost_usd_by_kind"] is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = runner.invoke(app, ["report", str(path), "--format", "json"])  # the CLI reports it as a line
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["cost_usd"] is None
    (warning,) = [line for line in result.stderr.splitlines() if "claude-future-9" in line]
    assert warning.startswith("leanloop: warning: no price known for claude-future-9 (1 call)")
    assert "totals exclude" in warning
    (row,) = csv.DictReader(io.StringIO(runner.invoke(app, ["report", str(path), "--format", "csv"]).stdout))
    assert row["unpriced"] == "yes"
    kinds = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")
    assert [row[f"{kind}_usd"] for kind in kinds] + [row["cost_usd"]] == [""] * 6
    table = runner.invoke(app, ["report", str(path)]).stdout
    page = runner.invoke(app, ["report", str(path), "--format", "html"]).stdout
    for text in (table, re.sub(r"<svg.*?</svg>", "", page)):  # (a chart's axis starts at $0)
        assert "unknown" in text
        assert "$0.0000" not in text
    assert "no price known for claude-future-9 (1 call)" in page


def test_totals_over_an_unpriced_call_say_they_exclude_it(tool_heavy: Path, tmp_path: Path) -> None:
    line = assistant_line("s", "u", None, "m1", {"type": "text", "text": "x"}, usage(5), model="claude-foo-9")
    unpriced = write_jsonl(tmp_path / "s.jsonl", [line])
    result = runner.invoke(app, ["report", str(tool_heavy), str(unpriced), "--format", "json"])
    data = json.loads(result.stdout)
    assert (data["cost_usd"], data["cost_usd_priced"], data["unpriced_calls"]) == (None, 0.2266455, 1)
    assert data["unknown_models"] == ["claude-foo-9"]
    table = runner.invoke(app, ["report", str(tool_heavy), str(unpriced)]).stdout
    assert "$0.2266+? (excludes 1 unpriced call: claude-foo-9)" in table
    assert "+?: the cost excludes 1 unpriced call: claude-foo-9" in table


def test_output_that_is_one_of_the_inputs_is_refused(tool_heavy: Path, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "session.jsonl"
    log.parent.mkdir()
    log.write_bytes(tool_heavy.read_bytes())
    for inputs, output in (
        ([log], log),
        ([log.parent], log),
        ([log.parent], tmp_path / "logs" / ".." / "logs" / log.name),
    ):
        for output_format in ("table", "json", "csv", "html"):
            args = ["report", *map(str, inputs), "--format", output_format, "-o", str(output)]
            result = runner.invoke(app, args, env={"COLUMNS": "200"})
            assert result.exit_code == 2, result.output
            assert "is one of the input files" in result.output
            assert log.read_bytes() == tool_heavy.read_bytes()
    elsewhere = tmp_path / "logs" / "report.txt"  # a new file beside the inputs is fine
    assert runner.invoke(app, ["report", str(log.parent), "-o", str(elsewhere)]).exit_code == 0
    assert "4 calls in 1 run" in elsewhere.read_text()


def render_80(print_table: Callable[[Console], None]) -> str:
    console = Console(width=80, record=True, file=io.StringIO())
    print_table(console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text  # nothing cut
    return text


def test_report_tables_fit_80_columns_without_cutting_a_number(shared_data: Path, tmp_path: Path) -> None:
    line = assistant_line("s", "u", None, "m1", {"type": "text", "text": "x"}, usage(5), model="claude-foo-9")
    paths = [
        shared_data / "claude-code-sessions",
        shared_data / "agent-trajectories",
        shared_data / "anthropic-recordings",
    ]
    log = ImportLog()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownModelWarning)
        records = list(iter_calls([*paths, write_jsonl(tmp_path / "s.jsonl", [line])], log))
    report = build_report(records, log)
    text = render_80(lambda console: print_report(report, console, all_calls=True))
    cells = " ".join(text.split())
    for row in report.calls:  # every call's numbers, whole (cost and the tokens of each narrow column)
        usage_ = row.usage
        for number in (usage_.prompt_tokens, usage_.cache_write_tokens, usage_.output_tokens):
            assert f" {number:,} " in cells
        assert f" {cost_text(row.cost)} " in cells
    for run in report.runs.values():
        assert f" {cost_text(run.totals.cost)} " in cells
    assert " unknown " in cells and " $0.7781+? " in cells


def test_the_progress_bar_moves_with_the_bytes_read_and_the_calls_processed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", session_lines("s1", 300))
    monkeypatch.setattr(analyze_cli, "_PROGRESS_BYTES", 1)
    monkeypatch.setattr(analyze_cli, "_REFRESH_S", 0.0)  # draw on every update
    monkeypatch.setattr(analyze_cli, "_CALLS_PER_UPDATE", 10)
    monkeypatch.setattr(reading, "_REPORT_EVERY", 8192)
    for command in ("report", "explain", "whatif"):
        screen = io.StringIO()
        console = Console(file=screen, force_terminal=True, width=150)
        monkeypatch.setattr(analyze_cli, "_stderr", lambda console=console: console)
        result = runner.invoke(app, [command, str(path), "--format", "json"])
        assert result.exit_code == 0, result.output
        drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
        assert "reading 1 file " in drawn
        calls = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) calls", drawn)]
        assert len(set(calls)) >= 5 and calls == sorted(calls), (command, calls)  # it moved, forwards
        done = [float(n) for n in re.findall(r"([\d.]+)/[\d.]+ [kM]B", drawn)]
        assert len(set(done)) >= 5 and done == sorted(done), (command, done)
    quiet = Console(file=io.StringIO())  # not a terminal: no bar
    with analyze_cli._progress([path], quiet) as bar:  # pyright: ignore[reportPrivateUsage]
        assert bar.on_bytes is None


def test_period_cost_per_day_and_run_and_a_30_day_projection(tool_heavy: Path) -> None:
    data = json.loads(runner.invoke(app, ["report", str(tool_heavy), "--format", "json"]).stdout)
    projection = data["projection"]
    assert projection["period"]["days"] == 1 and projection["period"]["runs"] == 1
    assert projection["period"]["first_call_at"] == "2026-02-10T22:57:57Z"
    assert projection["cost_per_day_usd"] == pytest.approx(0.2266455)
    assert projection["projected_30_days_usd"] == pytest.approx(0.2266455 * 30)
    assert "calendar day" in projection["method"] and "rough" in projection["method"]
    volume = runner.invoke(app, ["report", str(tool_heavy), "--format", "json", "--runs-per-day", "40"])
    assert json.loads(volume.stdout)["projection"]["projected_30_days_usd"] == pytest.approx(0.2266455 * 40 * 30)
    table = runner.invoke(app, ["report", str(tool_heavy)], env={"COLUMNS": "150"}).stdout
    assert "Projected 30 days: $6.7994 (1 calendar day observed, first to last call" in " ".join(table.split())
    bad = runner.invoke(app, ["report", str(tool_heavy), "--runs-per-day", "0"])
    assert (bad.exit_code, bad.output) == (2, "leanloop report: --runs-per-day: must be a finite number > 0, got 0\n")


def test_runs_and_costs_per_project(tmp_path: Path) -> None:
    projects = fake_claude_projects(tmp_path)
    data = json.loads(runner.invoke(app, ["report", str(projects), "--format", "json"]).stdout)
    assert set(data["by_project"]) == {"/home/user/project"}  # every fake session ran in one working directory
    other = tmp_path / "other.jsonl"
    write_jsonl(
        other, [{**line, "cwd": "/home/user/lib"} if "cwd" in line else line for line in session_lines("s9", 2)]
    )
    data = json.loads(runner.invoke(app, ["report", str(projects), str(other), "--format", "json"]).stdout)
    assert {p: (v["runs"], v["calls"]) for p, v in data["by_project"].items()} == {
        "/home/user/project": (4, 8),
        "/home/user/lib": (1, 2),
    }
    table = runner.invoke(app, ["report", str(projects), str(other)], env={"COLUMNS": "150"}).stdout
    assert "By project" in table and "/home/user/lib" in table


def test_import_notes_go_to_stderr_in_every_format(tmp_path: Path) -> None:
    lines: list[object] = [*session_lines("s1", 2), "{broken"]
    path = write_jsonl(tmp_path / "s.jsonl", lines)
    for output_format in ("table", "json", "csv", "html"):
        result = runner.invoke(app, ["report", str(path), "--format", output_format])
        assert result.exit_code == 0, result.output
        assert "1 unusable line (skipped" in result.stderr
        assert (
            "unusable line" not in result.stdout
            and "s.jsonl:" + str(len(lines)) not in result.stdout.split("<h2>Import notes")[0]
        )


def test_csv_costs_are_plain_decimals(tool_heavy: Path) -> None:
    text = runner.invoke(app, ["report", str(tool_heavy), "--format", "csv"]).stdout
    assert "e-0" not in text
    (first, *_) = list(csv.DictReader(io.StringIO(text)))
    assert first["input_usd"] == "0.000015"


def test_html_charts_have_ticks_time_order_across_files_and_the_cache_misses(shared_data: Path, tmp_path: Path) -> None:
    sessions = shared_data / "claude-code-sessions"
    out = tmp_path / "r.html"
    # the sub-agent file sorts before the opus session but ran two days later
    args = ["report", str(sessions / "subagent_sonnet45.jsonl"), str(sessions / "tool_heavy_opus46.jsonl")]
    assert runner.invoke(app, [*args, "--format", "html", "-o", str(out)]).exit_code == 0
    page = out.read_text()
    body = page.split("<h2>All calls, in time order</h2>")[1]
    assert body.index("d6e0bada #1") < body.index("4d5611e5/agent-a2898e3 #1")
    charts = re.findall(r"<svg.*?</svg>", page, re.DOTALL)
    assert len(charts) == 3
    for chart in charts:
        ticks = re.findall(r'text-anchor="middle">([^<]+)</text>', chart)
        assert len(ticks) >= 3, ticks  # tick labels and the axis caption
    assert ">16 calls<" not in page and 'text-anchor="middle">10</text>' in charts[0]  # call numbers
    assert ">Feb 11 00:00<" in charts[1] and ">Feb 12 00:00<" in charts[1]  # the cumulative cost against time
    assert "<h2>Cache misses: $0.0759 lost</h2>" in page
    assert "prefix changed" in page and "/mcp ran just before" in page
    assert "projected for 30 days" in page


def test_html_shows_many_calls_over_several_days_per_day() -> None:
    importer = ClaudeCodeImport()
    for i in range(900):
        stamp = f"2026-02-{10 + i // 300:02d}T10:{(i % 300) // 6:02d}:00Z"
        line = assistant_line(
            "s", f"u{i}", None, f"m{i}", {"type": "text"}, usage(5), request_id=f"r{i}", timestamp=stamp
        )
        importer.feed(line, path="x", line=i + 1)
    page = render_html(build_report(importer.records()))
    assert "Cost per day, by component" in page and "Cache hit rate per day" in page
    assert "day (UTC), idle days included" in page
    for day in ("Feb 10", "Feb 11", "Feb 12"):
        assert f">{day}</text>" in page


def web_search_session(tmp_path: Path) -> Path:
    """Two Sonnet 4.6 calls; the first ran 3 web searches ($10 per 1,000: $0.03)."""
    searching = {**usage(40, write=2000, split="5m"), "server_tool_use": {"web_search_requests": 3}}
    calls = [("a1", None, searching, "22:57:57"), ("a2", "a1", usage(20, read=2000), "22:58:00")]
    text = {"type": "text", "text": "x"}
    lines = [
        assistant_line(
            "s-ws",
            uuid,
            parent,
            f"m-{uuid}",
            text,
            use,
            model="claude-sonnet-4-6",
            request_id=f"q-{uuid}",
            timestamp=f"2026-02-10T{at}.000Z",
        )
        for uuid, parent, use, at in calls
    ]
    return write_jsonl(tmp_path / "s.jsonl", lines)


def test_web_searches_are_a_cost_row_so_the_parts_add_up_to_the_total(tmp_path: Path) -> None:
    path = web_search_session(tmp_path)
    data = json.loads(runner.invoke(app, ["report", str(path), "--format", "json"]).stdout)
    assert data["web_search_requests"] == 3
    assert data["cost_usd_by_kind"]["web_search"] == pytest.approx(0.03)
    assert sum(data["cost_usd_by_kind"].values()) == pytest.approx(data["cost_usd"], abs=1e-12)
    for row in data["per_call"]:
        assert sum(row["cost_usd_by_kind"].values()) == pytest.approx(row["cost_usd"], abs=1e-12)
    assert [row["web_search_requests"] for row in data["per_call"]] == [3, 0]
    table = runner.invoke(app, ["report", str(path)]).stdout
    (row,) = [line.split() for line in table.splitlines() if line.lstrip().startswith("web search")]
    assert row[2:] == ["3", "$0.0300", f"{100 * 0.03 / data['cost_usd']:.1f}%"]


def test_web_searches_in_csv_and_html(tmp_path: Path) -> None:
    path = web_search_session(tmp_path)
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, ["report", str(path), "--format", "csv"]).stdout)))
    assert [r["web_search_requests"] for r in rows] == ["3", "0"]
    parts = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output", "web_search")
    for r in rows:
        assert sum(Decimal(r[f"{part}_usd"]) for part in parts) == Decimal(r["cost_usd"])
    page = runner.invoke(app, ["report", str(path), "--format", "html"]).stdout
    assert "<td class=l>web search</td><td>3</td><td>$0.0300</td>" in page


def test_no_web_search_row_without_searches(tool_heavy: Path) -> None:
    assert "web search" not in runner.invoke(app, ["report", str(tool_heavy)]).stdout


def test_a_count_of_one_is_worded_in_the_singular(tmp_path: Path) -> None:
    no_usage = assistant_line("s1", "s1-x", None, "msg_x", {"type": "text", "text": "ok"}, usage(1))
    del no_usage["message"]["usage"]
    path = write_jsonl(tmp_path / "s.jsonl", [*session_lines("s1", 1), no_usage, "{broken"])
    table = runner.invoke(app, ["report", str(path)])
    assert table.exit_code == 0, table.output
    assert "1 unusable line (skipped, the import went on):" in table.stderr
    assert "not model calls: 1 assistant line without usage" in table.stderr
    html = runner.invoke(app, ["report", str(path), "--format", "html"]).stdout
    assert "<li>skipped: 1 assistant line without usage</li>" in html
    data = json.loads(runner.invoke(app, ["report", str(path), "--format", "json"]).stdout)
    assert data["import"]["skipped"]["assistant lines without usage"] == 1  # JSON keys: the plural, as before
