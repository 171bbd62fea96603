"""explain: which calls missed the cache, why (TTL, model switch, compaction, prefix change, lookback), at what
cost; on synthetic runs, on a Claude Code rewind, on the real logs, and on every file in ../shared/data."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from leanloop.analyze.misses import find_misses
from leanloop.analyze.sources import ImportLog, detect_format, discover, iter_calls
from leanloop.cli import app
from leanloop.pricing import Pricing
from leanloop.trace import BlockPrint, CallRecord, TraceWriter
from leanloop.usage import Usage
from test_importers import assistant_line, usage, user_line, write_jsonl

runner = CliRunner()
PRICING = Pricing()


def call(
    iteration: int,
    *,
    at: float | None = None,
    read: int = 0,
    write_5m: int = 0,
    write_1h: int = 0,
    model: str = "claude-sonnet-4-6",
    prefix: tuple[BlockPrint, ...] = (),
    notes: dict[str, Any] | None = None,
    ttft_s: float | None = None,
) -> CallRecord:
    use = Usage(
        input_tokens=3,
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        cache_read_tokens=read,
        output_tokens=20,
    )
    return CallRecord(
        model=model,
        usage=use,
        cost=PRICING.cost(model, use),
        iteration=iteration,
        run_id="r",
        started_at=at,
        ttft_s=ttft_s,
        prefix=prefix,
        notes=notes or {},
    )


def only_miss(*records: CallRecord) -> Any:
    result = find_misses(records, pricing=PRICING)
    assert len(result.misses) == 1, result.misses
    return result.misses[0]


def test_ttl_expired_names_the_gap_and_prices_the_loss() -> None:
    miss = only_miss(call(1, at=0, write_5m=5000), call(2, at=400, write_5m=5100))
    assert (miss.cause, miss.iteration, miss.lost_tokens) == ("ttl expired", 2, 5000)
    assert "6m40s" in miss.detail and "5m" in miss.detail
    assert miss.lost_usd == Decimal(5000) * (Decimal("3.75") - Decimal("0.30")) / 1_000_000


def test_1h_entries_survive_a_long_gap_but_not_a_longer_one() -> None:
    assert find_misses([call(1, at=0, write_1h=5000), call(2, at=400, read=5000, write_1h=100)]).misses == []
    miss = only_miss(call(1, at=0, write_1h=5000), call(2, at=4000, write_1h=5100))
    assert miss.cause == "ttl expired" and "1h" in miss.detail
    assert miss.lost_usd == Decimal(5000) * (Decimal(6) - Decimal("0.30")) / 1_000_000


def test_model_switch() -> None:
    miss = only_miss(call(1, at=0, write_5m=5000), call(2, at=10, write_5m=5100, model="claude-haiku-4-5"))
    assert miss.cause == "model switch"
    assert "claude-sonnet-4-6 -> claude-haiku-4-5" in miss.detail


def test_compaction_from_a_shrinking_prompt_and_from_a_marker() -> None:
    big = call(1, at=0, read=45_000, write_5m=5000)
    miss = only_miss(big, call(2, at=10, read=2000, write_5m=8000))
    assert miss.cause == "compaction" and "shrank" in miss.detail
    assert miss.lost_tokens == 8000  # at most what the call wrote or sent uncached
    marked = call(2, at=10, read=2000, write_5m=48_000, notes={"events": ["compaction"]})
    assert only_miss(big, marked).cause == "compaction"
    by_agent = call(2, at=10, read=2000, write_5m=48_000, notes={"compacted": {"strategy": "clear_tool_results"}})
    assert only_miss(big, by_agent).cause == "compaction"  # the note leanloop's agent writes on the call after a cut


def test_prefix_change_from_recorded_block_prints() -> None:
    head = (BlockPrint("tools.0", "aa", 2000), BlockPrint("system.0", "bb", 3000))
    first = call(1, at=0, write_5m=5000, prefix=(*head, BlockPrint("messages.0.content.0", "cc", 10)))
    changed = (head[0], BlockPrint("system.0", "b2", 3000), BlockPrint("messages.0.content.0", "cc", 10))
    miss = only_miss(first, call(2, at=5, read=2000, write_5m=3010, prefix=changed))
    assert miss.cause == "prefix changed"
    assert miss.change is not None and miss.change.path == "system.0"
    assert miss.lost_tokens == 3000


def test_lookback_when_too_many_blocks_were_added() -> None:
    head = (BlockPrint("system.0", "bb", 5000),)
    grown = head + tuple(BlockPrint(f"messages.{i}.content.0", f"m{i}", 10) for i in range(25))
    miss = only_miss(call(1, at=0, write_5m=5000, prefix=head), call(2, at=5, read=0, write_5m=5250, prefix=grown))
    assert miss.cause == "lookback"


def test_concurrent_and_unknown() -> None:
    first = call(1, at=0, write_5m=5000, ttft_s=2.0)
    assert only_miss(first, call(2, at=1, write_5m=5000)).cause == "concurrent"
    assert only_miss(call(1, at=0, write_5m=5000), call(2, at=10, write_5m=5000)).cause == "unknown"


def test_small_shortfalls_and_healthy_runs_are_not_misses() -> None:
    healthy = [call(1, at=0, write_5m=5000), call(2, at=5, read=5000, write_5m=300), call(3, at=9, read=5300)]
    assert find_misses(healthy).misses == []
    assert find_misses([call(1, at=0, write_5m=5000), call(2, at=5, read=4700, write_5m=400)]).misses == []


def test_claude_code_rewind_names_the_edited_message(tmp_path: Path) -> None:
    """The user rewinds and re-asks with a new timestamp: the conversation prefix changed at message 0."""
    s = "s1"
    lines = [
        user_line(s, "u0", None, "Deploy now. Current time: 2026-02-10T10:00:00Z"),
        assistant_line(
            s,
            "a0",
            "u0",
            "m0",
            {"type": "text", "text": "ok"},
            usage(5, read=0, write=9000),
            timestamp="2026-02-10T10:00:05Z",
            request_id="q0",
        ),
        user_line(s, "u1", "a0", "and then?"),
        assistant_line(
            s,
            "a1",
            "u1",
            "m1",
            {"type": "text", "text": "done"},
            usage(5, read=9000, write=50),
            timestamp="2026-02-10T10:00:20Z",
            request_id="q1",
        ),
        user_line(s, "u0b", None, "Deploy now. Current time: 2026-02-10T10:01:00Z"),  # the rewind: a new root
        assistant_line(
            s,
            "a2",
            "u0b",
            "m2",
            {"type": "text", "text": "ok"},
            usage(5, read=7000, write=2000),
            timestamp="2026-02-10T10:01:05Z",
            request_id="q2",
        ),
    ]
    log = ImportLog()
    records = list(iter_calls([write_jsonl(tmp_path / "s.jsonl", lines)], log, content=True))
    assert "prefix_change" in records[2].notes
    miss = only_miss(*records)
    assert (miss.iteration, miss.cause) == (3, "prefix changed")
    assert miss.change is not None and miss.change.cause == "timestamp" and miss.change.path == "messages.0"
    assert "10:00:00" in (miss.change.before or "") and "10:01:00" in (miss.change.after or "")


def test_tool_heavy_session_explained(shared_data: Path) -> None:
    log = ImportLog()
    path = shared_data / "claude-code-sessions" / "tool_heavy_opus46.jsonl"
    result = find_misses(iter_calls([path], log, content=True))
    miss = only_miss(*iter_calls([path], ImportLog(), content=True))
    assert (miss.iteration, miss.cause, miss.lost_tokens) == (3, "prefix changed", 26_006 - 18_014)
    assert "/mcp" in miss.detail  # the MCP reconnect just before changed the tool definitions
    assert miss.lost_usd == Decimal(7992) * (Decimal(10) - Decimal("0.5")) / 1_000_000  # 1h write vs read, Opus 4.6
    assert result.by_cause["prefix changed"].lost_tokens == 7992


def test_explain_json_by_cause(shared_data: Path) -> None:
    path = shared_data / "claude-code-sessions" / "tool_heavy_opus46.jsonl"
    result = runner.invoke(app, ["explain", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["misses"] == 1
    assert data["by_cause"]["prefix changed"] == {"calls": 1, "lost_tokens": 7992, "lost_usd": pytest.approx(0.075924)}
    assert data["calls_that_missed"][0]["gap_s"] == pytest.approx(83.167, abs=0.01)


def test_report_explain_and_whatif_run_on_every_shared_file(shared_data: Path) -> None:
    files = discover([shared_data])
    assert len(files) >= 10
    for path in files:
        trace = detect_format(path) is not None
        for command in ("report", "explain", "whatif"):
            for output in ("table", "json"):
                result = runner.invoke(app, [command, str(path), "--format", output])
                if not trace:  # a server log, the README: said in one line, exit 1
                    assert result.exit_code == 1, (command, path, result.output)
                    assert f"no model calls found in {path} (" in result.stderr
                    continue
                assert result.exit_code == 0, (command, path, result.output)
                if output == "json":
                    data = json.loads(result.stdout)
                    assert data["calls"] > 0 and "import" in data
    table = runner.invoke(app, ["explain", str(shared_data)])
    assert table.exit_code == 0 and "of 27 calls" in table.stdout


def session_start(session: str, minute: int, *, read: int, write: int, cwd: str = "/home/user/app") -> list[Any]:
    """The first call of a Claude Code main session (its system prompt + tools are about 20,000 tokens)."""
    stamp = f"2026-02-10T10:{minute:02d}:00Z"
    return [
        user_line(session, f"{session}-u", None, "hello", cwd=cwd, timestamp=stamp),
        assistant_line(
            session,
            f"{session}-a",
            f"{session}-u",
            f"m-{session}",
            {"type": "text", "text": "hi"},
            {**usage(5, read=read, write=write, split="5m"), "input_tokens": 10},
            request_id=f"q-{session}",
            timestamp=stamp,
            cwd=cwd,
        ),
    ]


def test_first_call_of_a_session_checked_against_the_previous_session_of_the_project(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", session_start("s-a", 0, read=0, write=20_000))
    write_jsonl(tmp_path / "b.jsonl", session_start("s-b", 2, read=0, write=20_000))  # 2 min later: it was warm
    write_jsonl(tmp_path / "c.jsonl", session_start("s-c", 4, read=20_000, write=0))  # read it: fine
    write_jsonl(tmp_path / "d.jsonl", session_start("s-d", 5, read=0, write=20_000, cwd="/home/user/other"))
    write_jsonl(tmp_path / "e.jsonl", session_start("s-e", 30, read=0, write=20_000))  # 26 min later: expired
    result = find_misses(iter_calls([tmp_path], ImportLog(), content=True), pricing=PRICING)
    (miss,) = result.misses
    assert (miss.run_id, miss.iteration, miss.cause) == ("s-b", 1, "prefix changed")
    assert "previous session of this project" in miss.detail and "2m00s after run s-a" in miss.detail
    assert miss.lost_tokens == 20_000  # what the previous session left cached (its head: about as big)


def test_first_call_of_a_run_checked_against_an_earlier_run_with_the_same_tools(tmp_path: Path) -> None:
    tools = BlockPrint("tools.0", "aa", 3000)
    first = call(1, at=0, write_5m=5000, prefix=(tools, BlockPrint("system.0", "bb", 2000)))
    second = call(1, at=60, write_5m=5000, prefix=(tools, BlockPrint("system.0", "b2", 2000)))
    second = replace(second, run_id="r2")
    result = find_misses([first, second], pricing=PRICING)
    (miss,) = result.misses
    assert (miss.run_id, miss.cause, miss.lost_tokens) == ("r2", "prefix changed", 5000)
    assert miss.detail.startswith("system.0 changed (the log has its hash, not its text): 1m00s after run r")


def test_explain_names_where_a_leanloop_call_is(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    prints = (BlockPrint("tools.0", "aa" * 8, 3000),)
    with TraceWriter(trace) as writer:
        writer.write_call(call(1, at=0, write_5m=5000, prefix=prints))
        writer.write_call(call(2, at=400, write_5m=5000, prefix=prints))
    result = runner.invoke(app, ["explain", str(trace)], env={"COLUMNS": "150"})
    assert result.exit_code == 0, result.output
    assert "r #2 (run.jsonl:call 2): ttl expired" in result.stdout


FIXTURE = Path(__file__).parent / "fixtures" / "claude_code_e2e" / "projects"


def test_a_resumed_sessions_miss_says_what_the_log_can_tell(tmp_path: Path) -> None:
    """The real e2e --resume: same prefix, the cache lost with the emulator restarted 6.8 s before. The log has no
    system prompt nor tools, so it cannot tell a changed prompt from an eviction; it shows the session was resumed."""
    session = FIXTURE / "-workspace-project" / "c94e9808-c0e8-411c-aaa1-16d149aa3c74.jsonl"
    miss = only_miss(*iter_calls([session], ImportLog(), content=True))
    assert (miss.iteration, miss.cause, miss.lost_tokens) == (5, "resumed", 29_602)
    assert "system prompt or tool definitions changed, or the cache was evicted" in miss.detail
    assert "resumed" in miss.detail and "likely cause" in miss.detail
    assert "the messages only grew, so the system prompt or tool definitions changed;" not in miss.detail


def grown_session(tmp_path: Path, between: list[Any]) -> list[CallRecord]:
    """Two calls of one session; the second reads nothing of what the first cached, ``between`` them."""
    s = "s-grow"
    lines: list[Any] = [
        user_line(s, "u0", None, "fix it", timestamp="2026-02-10T10:00:00Z"),
        assistant_line(
            s,
            "a1",
            "u0",
            "m1",
            {"type": "text", "text": "done"},
            usage(5, write=9000),
            timestamp="2026-02-10T10:00:01Z",
        ),
        *between,
        user_line(s, "u1", "a1", "and the tests?", timestamp="2026-02-10T10:00:30Z"),
        assistant_line(
            s, "a2", "u1", "m2", {"type": "text", "text": "ok"}, usage(5, write=9100), timestamp="2026-02-10T10:00:31Z"
        ),
    ]
    return list(iter_calls([write_jsonl(tmp_path / "s.jsonl", lines)], ImportLog(), content=True))


def test_a_miss_in_one_process_does_not_claim_a_changed_prompt(tmp_path: Path) -> None:
    miss = only_miss(*grown_session(tmp_path, []))
    assert miss.cause == "prefix changed"
    assert miss.detail == (
        "the messages only grew, so the system prompt or tool definitions changed, or the cache was evicted; the log "
        "does not contain them"
    )


def test_session_end_lines_then_a_new_prompt_mark_a_resume(tmp_path: Path) -> None:
    end = [{"type": "last-prompt", "lastPrompt": "fix it", "leafUuid": "a1", "sessionId": "s-grow"}]
    assert only_miss(*grown_session(tmp_path, end)).cause == "resumed"
    mode = [{"type": "mode", "mode": "normal", "sessionId": "s-grow"}]
    assert only_miss(*grown_session(tmp_path, mode)).cause == "resumed"


def test_metadata_re_appended_inside_a_turn_is_not_a_resume(tmp_path: Path) -> None:
    """Claude Code also re-appends its metadata every 32 KB it writes: between a tool call and its result that is
    not a new process."""
    s = "s-grow"
    tool = {"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}
    lines: list[Any] = [
        user_line(s, "u0", None, "fix it", timestamp="2026-02-10T10:00:00Z"),
        assistant_line(s, "a1", "u0", "m1", tool, usage(5, write=9000), timestamp="2026-02-10T10:00:01Z"),
        {"type": "last-prompt", "lastPrompt": "fix it", "leafUuid": "a1", "sessionId": s},
        user_line(s, "r1", "a1", [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]),
        assistant_line(
            s, "a2", "r1", "m2", {"type": "text", "text": "ok"}, usage(5, write=9100), timestamp="2026-02-10T10:00:09Z"
        ),
    ]
    records = list(iter_calls([write_jsonl(tmp_path / "s.jsonl", lines)], ImportLog(), content=True))
    assert only_miss(*records).cause == "prefix changed"


def test_a_cold_session_start_does_not_claim_a_changed_prompt(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", session_start("s-a", 0, read=0, write=20_000))
    write_jsonl(tmp_path / "b.jsonl", session_start("s-b", 2, read=0, write=20_000))
    (miss,) = find_misses(iter_calls([tmp_path], ImportLog(), content=True), pricing=PRICING).misses
    assert "or the cache was evicted" in miss.detail


def test_what_a_miss_lost_leaves_out_the_web_search_fee() -> None:
    first = call(1, at=0, write_5m=9000)
    plain = call(2, at=10, write_5m=9100)
    searched = replace(plain, usage=replace(plain.usage, web_search_requests=4))
    searched = replace(searched, cost=PRICING.cost(searched.model, searched.usage))
    assert only_miss(first, searched).lost_usd == only_miss(first, plain).lost_usd
