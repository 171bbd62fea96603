"""Importers: real files in ../shared/data give the known numbers; format from content; broken lines reported;
Claude Code messages counted once with their most complete usage, across files; a realistic ~/.claude tree."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leanloop.analyze.claude_code import ClaudeCodeImport
from leanloop.analyze.recordings import read_sse
from leanloop.analyze.sources import ImportLog, count_lines, detect_format, discover, iter_calls
from leanloop.errors import ConfigError
from leanloop.pricing import Cost, Pricing
from leanloop.trace import BlockPrint, CallRecord, TraceWriter
from leanloop.usage import Usage


def load(*paths: Path, content: bool = False) -> tuple[list[CallRecord], ImportLog]:
    log = ImportLog()
    return list(iter_calls(paths, log, content=content)), log


def totals(records: list[CallRecord]) -> tuple[Usage, Cost]:
    return sum((r.usage for r in records), Usage()), sum((r.cost for r in records), Cost())


# --- real files ------------------------------------------------------------------------------------------------


def test_tool_heavy_opus46_known_values(shared_data: Path) -> None:
    records, log = load(shared_data / "claude-code-sessions" / "tool_heavy_opus46.jsonl")
    usage, cost = totals(records)
    assert len(records) == 4
    assert (usage.input_tokens, usage.cache_write_5m_tokens, usage.cache_write_1h_tokens) == (54, 0, 17_696)
    assert (usage.cache_read_tokens, usage.output_tokens) == (88_231, 212)  # not 271 (sum of lines) nor 64 (first)
    assert cost.total == Decimal("0.2266455")
    assert {r.model for r in records} == {"claude-opus-4-6"}
    assert log.problem_count == 0


def test_subagent_sonnet45_known_values_priced_per_call(shared_data: Path) -> None:
    records, _ = load(shared_data / "claude-code-sessions" / "subagent_sonnet45.jsonl")
    usage, cost = totals(records)
    assert len(records) == 12
    assert (usage.input_tokens, usage.cache_write_5m_tokens, usage.cache_write_1h_tokens) == (53, 71_257, 0)
    assert (usage.cache_read_tokens, usage.output_tokens) == (604_156, 136)
    assert cost.total.quantize(Decimal("0.0000001"), ROUND_HALF_UP) == Decimal("0.4506596")  # exact: 0.45065955
    summed = Pricing().cost("claude-sonnet-4-5-20250929", usage)  # pricing the sum crosses the 200K tier: wrong
    assert summed.total > Decimal("1.5") * cost.total
    assert all(r.run_id.endswith("/agent-a2898e3") for r in records)
    # a sub-agent's result is awaited by the session that started it, and that session by its user
    assert all(r.notes["interactive"] is True for r in records)
    assert {r.notes["project"] for r in records} == {"/home/USER/projects/spotter-worktrees/spotter-dov"}


def test_streamed_recording_takes_final_usage_from_message_delta(shared_data: Path) -> None:
    path = shared_data / "anthropic-recordings" / "test_anthropic_native_tool_search_streaming.yaml"
    records, _ = load(path)
    first = records[0]
    assert (first.usage.input_tokens, first.usage.output_tokens) == (1_591, 175)  # message_start said 702 and 1
    assert first.stop_reason == "tool_use"
    assert len(records) == 2


def test_openhands_counts_each_response_once(shared_data: Path) -> None:
    records, log = load(shared_data / "agent-trajectories" / "openhands_basic_gui_mode.json")
    assert len(records) == 4
    assert len({r.message_id for r in records}) == 4
    assert log.skipped["OpenHands event(s) repeating an already counted model response"] == 4
    first = records[0].usage
    # LiteLLM's prompt_tokens (3,439) includes the 3,435 written to the cache
    assert (first.input_tokens, first.cache_write_tokens, first.cache_read_tokens) == (4, 3_435, 0)
    assert first.split_estimated and records[0].cost.estimated


def test_cassette_calls_carry_their_prefix_and_the_change_between_requests(shared_data: Path) -> None:
    records, _ = load(shared_data / "anthropic-recordings" / "test_anthropic_cache_real_api.yaml")
    assert [r.usage.cache_read_tokens for r in records] == [1_111, 1_111]
    assert [r.usage.cache_write_5m_tokens for r in records] == [0, 418]
    assert all(r.prefix for r in records)
    assert records[0].prefix[0].path.startswith(("system", "messages", "tools"))


def test_sse_body_keeps_the_1h_split_from_message_start(shared_data: Path) -> None:
    records, _ = load(shared_data / "anthropic-recordings" / "cache_1h_ttl_streaming.response.sse")
    (record,) = records
    assert (record.usage.cache_write_1h_tokens, record.usage.output_tokens) == (3_913, 4)
    assert not record.usage.split_estimated


def test_sse_split_dropped_when_the_delta_disagrees() -> None:
    start = {
        "type": "message_start",
        "message": {
            "id": "m",
            "model": "claude-sonnet-4-6",
            "usage": {
                "input_tokens": 5,
                "cache_creation_input_tokens": 10,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 10},
                "output_tokens": 1,
            },
        },
    }
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"cache_creation_input_tokens": 30, "output_tokens": 9},
    }
    streamed = read_sse([f"data: {json.dumps(start)}", "event: ping", f"data: {json.dumps(delta)}"])
    assert streamed is not None
    usage = Usage.from_api(streamed.usage)
    assert (usage.cache_write_tokens, usage.output_tokens, usage.split_estimated) == (30, 9, True)


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("claude-code-sessions/tool_heavy_opus46.jsonl", "claude_code"),
        ("agent-trajectories/openhands_basic_gui_mode.json", "openhands"),
        ("anthropic-recordings/test_multiple_parallel_tool_calls.yaml", "recording"),
        ("anthropic-recordings/cache_1h_ttl_streaming.response.sse", "sse"),
        ("server-logs/Apache_2k.log", None),
        ("README.md", None),
    ],
)
def test_format_comes_from_content_not_the_name(
    shared_data: Path, tmp_path: Path, relative: str, expected: str | None
) -> None:
    disguised = tmp_path / "trace.txt"
    shutil.copy(shared_data / relative, disguised)
    assert detect_format(disguised) == expected


# --- Claude Code: lines, dedup, broken input -----------------------------------------------------------------


def usage(output: int, read: int = 1000, write: int = 200, *, split: str | None = "5m") -> dict[str, Any]:
    data: dict[str, Any] = {
        "input_tokens": 3,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "output_tokens": output,
        "service_tier": "standard",
    }
    if split:
        data["cache_creation"] = {
            "ephemeral_5m_input_tokens": write if split == "5m" else 0,
            "ephemeral_1h_input_tokens": write if split == "1h" else 0,
        }
    return data


def user_line(session: str, uuid: str, parent: str | None, text: Any, **extra: Any) -> dict[str, Any]:
    return {
        "parentUuid": parent,
        "isSidechain": False,
        "userType": "external",
        "cwd": "/home/user/project",
        "sessionId": session,
        "version": "2.1.38",
        "type": "user",
        "message": {"role": "user", "content": text},
        "uuid": uuid,
        "timestamp": extra.pop("timestamp", "2026-02-10T22:57:54.684Z"),
        **extra,
    }


def assistant_line(  # noqa: PLR0917 - one positional per field of the line, in the order Claude Code writes them
    session: str,
    uuid: str,
    parent: str | None,
    message_id: str,
    block: dict[str, Any],
    use: dict[str, Any],
    *,
    model: str = "claude-opus-4-6",
    request_id: str | None = "req_1",
    timestamp: str = "2026-02-10T22:57:57.941Z",
    **extra: Any,
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "parentUuid": parent,
        "isSidechain": False,
        "sessionId": session,
        "type": "assistant",
        "message": {
            "model": model,
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "content": [block],
            "stop_reason": None,
            "usage": use,
        },
        "uuid": uuid,
        "timestamp": timestamp,
        **extra,
    }
    if request_id is not None:
        line["requestId"] = request_id
    return line


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def session_lines(session: str, calls: int = 3, *, start_minute: int = 0, tag: str = "") -> list[dict[str, Any]]:
    """A small realistic main session: user prompt, then per call a text line and a tool_use line, tool result."""
    lines: list[dict[str, Any]] = [{"type": "summary", "summary": "x", "leafUuid": "u0"}]
    parent = None
    lines.append(user_line(session, f"{session}-u0", parent, "fix the bug"))
    parent = f"{session}-u0"
    for i in range(calls):
        stamp = f"2026-02-10T22:{start_minute + i:02d}:10.000Z"
        msg = f"msg_{session}{tag}_{i}"
        text = assistant_line(
            session,
            f"{session}-a{i}",
            parent,
            msg,
            {"type": "text", "text": "ok"},
            usage(1),
            request_id=f"req_{session}_{i}",
            timestamp=stamp,
        )
        tool = assistant_line(
            session,
            f"{session}-b{i}",
            f"{session}-a{i}",
            msg,
            {"type": "tool_use", "id": f"t{i}", "name": "Bash", "input": {"command": "ls"}},
            usage(40 + i),
            request_id=f"req_{session}_{i}",
            timestamp=stamp,
        )
        tool_result = [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "a b c"}]
        result = user_line(session, f"{session}-r{i}", f"{session}-b{i}", tool_result, timestamp=stamp)
        lines += [
            text,
            tool,
            {
                "type": "progress",
                "uuid": f"{session}-p{i}",
                "parentUuid": f"{session}-b{i}",
                "sessionId": session,
                "data": {},
            },
            result,
        ]
        parent = f"{session}-r{i}"
    return lines


def test_broken_and_unknown_lines_are_reported_with_file_and_line(tmp_path: Path) -> None:
    lines: list[Any] = session_lines("s1", 2)
    lines.insert(3, '{"type": "assistant", "message": {"id": "x"')  # broken mid-file
    lines.insert(5, {"type": "brand-new-kind", "sessionId": "s1", "uuid": "n1"})
    lines.append('{"type": "user", "mess')  # a crash mid-write: no newline at the end
    path = write_jsonl(tmp_path / "s.jsonl", lines)
    path.write_text(path.read_text().rstrip("\n"))
    records, log = load(path)
    assert len(records) == 2  # the import went on
    where = [(p.line, p.truncated) for p in log.problems]
    assert where == [(4, False), (6, False), (len(lines), True)]
    assert "brand-new-kind" in log.problems[1].message
    assert all(p.path == str(path) for p in log.problems)


def test_synthetic_messages_are_skipped_not_priced(tmp_path: Path) -> None:
    lines = session_lines("s1", 1)
    lines.append(
        assistant_line(
            "s1",
            "z",
            "s1-r0",
            "msg_syn",
            {"type": "text", "text": "No response requested."},
            usage(0, 0, 0),
            model="<synthetic>",
        )
    )
    records, log = load(write_jsonl(tmp_path / "s.jsonl", lines))
    assert len(records) == 1
    assert sum(v for k, v in log.skipped.items() if "synthetic" in k) == 1


def test_resumed_session_copies_count_once_across_files(tmp_path: Path) -> None:
    original = session_lines("s1", 3)
    resumed = [*original, *session_lines("s1", 1, start_minute=30, tag="new")[2:]]  # earlier messages, then new
    write_jsonl(tmp_path / "proj" / "a.jsonl", original)
    write_jsonl(tmp_path / "proj" / "b.jsonl", resumed)
    records, _ = load(tmp_path)
    assert len(records) == 4
    assert sorted(r.usage.output_tokens for r in records) == [40, 40, 41, 42]


def test_request_id_joins_lines_with_and_without_it() -> None:
    importer = ClaudeCodeImport()
    a = assistant_line("s", "a", None, "m1", {"type": "text", "text": "x"}, usage(1), request_id=None)
    b = assistant_line("s", "b", "a", "m1", {"type": "text", "text": "y"}, usage(9), request_id="r1")
    c = assistant_line("s", "c", "b", "m1", {"type": "text", "text": "z"}, usage(5), request_id=None)
    for number, line in enumerate((a, b, c), 1):
        assert importer.feed(line, path="f", line=number) is None
    (record,) = importer.records()
    assert (record.usage.output_tokens, record.request_id) == (9, "r1")


@st.composite
def message_lines(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, int]]:
    count = draw(st.integers(1, 6))
    lines: list[dict[str, Any]] = []
    best: dict[str, int] = {}
    for m in range(count):
        snapshots = sorted(draw(st.lists(st.integers(1, 500), min_size=1, max_size=4)))
        copies = draw(st.lists(st.sampled_from(snapshots), min_size=1, max_size=6))
        best[f"msg_{m}"] = max(copies)
        with_request = draw(st.booleans())
        for k, output in enumerate(copies):
            request = f"req_{m}" if with_request or draw(st.booleans()) else None
            lines.append(
                assistant_line(
                    "s",
                    f"{m}-{k}",
                    None,
                    f"msg_{m}",
                    {"type": "text", "text": "t"},
                    usage(output, read=100 * m),
                    request_id=request,
                )
            )
    order = draw(st.permutations(range(len(lines))))
    return [lines[i] for i in order], best


@settings(max_examples=150, deadline=None)
@given(message_lines())
def test_each_message_counted_once_with_its_largest_usage(case: tuple[list[dict[str, Any]], dict[str, int]]) -> None:
    lines, best = case
    importer = ClaudeCodeImport(pricing=Pricing())
    for number, line in enumerate(lines, 1):
        assert importer.feed(line, path="f", line=number) is None
    records = list(importer.records())
    assert sorted(r.message_id or "" for r in records) == sorted(best)
    assert {r.message_id: r.usage.output_tokens for r in records} == best


# --- a realistic ~/.claude/projects tree ---------------------------------------------------------------------


def fake_claude_projects(root: Path) -> Path:
    """~/.claude/projects: two projects, a main session with a sub-agent directory, a broken line, other files."""
    projects = root / ".claude" / "projects"
    write_jsonl(projects / "-home-user-app" / "11111111-aaaa-4bbb-8ccc-000000000001.jsonl", session_lines("s1", 3))
    broken: list[Any] = session_lines("s2", 2, start_minute=10)
    broken.insert(4, "{not json")
    write_jsonl(projects / "-home-user-app" / "22222222-aaaa-4bbb-8ccc-000000000002.jsonl", broken)
    agent = [
        {**line, "isSidechain": True, "agentId": "a77"}
        for line in session_lines("s2", 2, start_minute=11)
        if line.get("type") != "summary"
    ]
    for line in agent:
        if line.get("type") == "assistant":
            line["message"]["id"] += "_agent"
            line["message"]["model"] = "claude-haiku-4-5-20251001"
    write_jsonl(
        projects / "-home-user-app" / "22222222-aaaa-4bbb-8ccc-000000000002" / "subagents" / "agent-a77.jsonl", agent
    )
    write_jsonl(
        projects / "-home-user-lib" / "nested" / "33333333-aaaa-4bbb-8ccc-000000000003.jsonl",
        session_lines("s3", 1, start_minute=40),
    )
    (projects / "-home-user-lib" / "notes.md").write_text("# not a log\n")
    (projects / "-home-user-lib" / "settings.json").write_text('{"theme": "dark"}\n')
    (projects / "-home-user-lib" / "empty.jsonl").write_text("")
    return projects


def test_report_over_a_claude_projects_tree(tmp_path: Path) -> None:
    projects = fake_claude_projects(tmp_path)
    records, log = load(projects)
    assert len(records) == 3 + 2 + 2 + 1
    runs = {r.run_id for r in records}
    assert runs == {"s1", "s2", "s2/agent-a77", "s3"}
    assert {r.model for r in records if r.run_id == "s2/agent-a77"} == {"claude-haiku-4-5-20251001"}
    assert [(Path(p.path).name, p.line) for p in log.problems] == [("22222222-aaaa-4bbb-8ccc-000000000002.jsonl", 5)]
    skipped = {f.path.name for f in log.files if f.format is None}
    assert skipped == {"notes.md", "settings.json", "empty.jsonl"}
    assert sum(f.calls for f in log.files) == len(records)


# --- paths that cannot be read ----------------------------------------------------------------------------------

AS_ROOT = pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root reads every file whatever its mode (refuse_to_read simulates it in the tests that run as root)",
)


def refuse_to_read(monkeypatch: pytest.MonkeyPatch, *paths: Path) -> None:
    """Make ``paths`` unreadable to this process, as ``chmod 000`` does for a user that is not root."""
    refused = {str(path) for path in paths}

    def denied(path: object) -> PermissionError:
        return PermissionError(errno.EACCES, "Permission denied", str(path))

    real_scandir, real_open = os.scandir, Path.open

    def scandir(path: Any = ".") -> Any:
        if str(path) in refused:
            raise denied(path)
        return real_scandir(path)

    def open_(self: Path, *args: Any, **kwargs: Any) -> Any:
        if str(self) in refused:
            raise denied(self)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(Path, "open", open_)


def projects_with_unreadable_paths(root: Path) -> tuple[Path, Path, Path]:
    """A projects tree (8 calls) plus a sub-directory and a log that cannot be read: (tree, directory, file)."""
    projects = fake_claude_projects(root)
    locked_dir = projects / "-home-user-locked"
    write_jsonl(locked_dir / "44444444-aaaa-4bbb-8ccc-000000000004.jsonl", session_lines("s4", 1))
    locked_file = write_jsonl(projects / "-home-user-app" / "55555555.jsonl", session_lines("s5", 1))
    return projects, locked_dir, locked_file


def test_unreadable_paths_are_noted_once_and_the_rest_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    projects, locked_dir, locked_file = projects_with_unreadable_paths(tmp_path)
    refuse_to_read(monkeypatch, locked_dir, locked_file)
    records, log = load(projects)
    assert len(records) == 8
    assert log.unreadable == {str(locked_dir): "Permission denied", str(locked_file): "Permission denied"}
    assert str(locked_file) not in {p.path for p in log.problems}  # not also an "unusable line"
    assert str(locked_file) not in {str(f.path) for f in log.files}  # nor a "skipped file of unknown format"
    assert log.to_dict()["unreadable"][0] == {"path": str(locked_dir), "reason": "Permission denied"}
    with pytest.raises(ConfigError, match="Permission denied"):  # no log to note it in: an error, not a silent skip
        discover([projects])


def test_nothing_readable_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, locked_dir, locked_file = projects_with_unreadable_paths(tmp_path)
    refuse_to_read(monkeypatch, locked_dir, locked_file)
    records, log = load(locked_dir, locked_file)
    assert records == []
    assert log.why_no_calls(0) == "nothing readable: 2 unreadable paths"


@AS_ROOT
def test_chmod_000_paths_are_noted_once_and_the_rest_imported(tmp_path: Path) -> None:
    projects, locked_dir, locked_file = projects_with_unreadable_paths(tmp_path)
    locked_dir.chmod(0)
    locked_file.chmod(0)
    try:
        records, log = load(projects)
    finally:
        locked_dir.chmod(0o755)
        locked_file.chmod(0o644)
    assert len(records) == 8
    assert set(log.unreadable) == {str(locked_dir), str(locked_file)}
    assert str(locked_file) not in {p.path for p in log.problems}


def test_why_no_calls_counts_the_lines_and_names_the_reasons(tmp_path: Path, shared_data: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "notes.md").write_text("# notes\nno newline at the end")
    write_jsonl(tmp_path / "user-only.jsonl", [user_line("s", "u1", None, "hi"), user_line("s", "u2", "u1", "?")])
    records, log = load(tmp_path, shared_data / "server-logs" / "Apache_2k.log")
    assert records == []
    assert count_lines(log.files) == 0 + 2 + 2 + 2000
    assert log.why_no_calls(2004) == (
        "2,004 lines skipped: 1 claude_code file without a model call, 1 empty file, 2 files of no known trace format"
    )
    assert ImportLog().why_no_calls(0) == "no files"


# --- leanloop's own traces and OpenHands streaming -----------------------------------------------------------


def test_leanloop_trace_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    prints = (BlockPrint("tools.0", "aa" * 8, 900), BlockPrint("system.0", "bb" * 8, 1200))
    use = Usage(input_tokens=3, cache_write_5m_tokens=2100, output_tokens=50)
    with TraceWriter(path) as writer:
        writer.write_event("run_start", run_id="r1")
        writer.write_call(
            CallRecord(
                "claude-sonnet-4-6",
                use,
                Pricing().cost("claude-sonnet-4-6", use),
                1,
                "r1",
                started_at=1000.0,
                prefix=prints,
            )
        )
    with path.open("a") as file:
        file.write('{"kind": "call", "model": "x"\n')
    records, log = load(path)
    assert detect_format(path) == "leanloop"
    assert [r.prefix for r in records] == [prints]
    assert log.problem_count == 1


def test_large_openhands_array_is_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from leanloop.analyze import reading

    monkeypatch.setattr(reading, "_CHUNK", 64)  # many reads per element: the element-by-element path
    events: list[dict[str, Any]] = [{"id": 0, "source": "user", "action": "message", "message": "hi"}]
    for i in range(30):
        response = {
            "id": f"resp-{i}",
            "model": "anthropic/claude-sonnet-4-6",
            "created": 1_737_433_775 + 10 * i,
            "choices": [{"finish_reason": "tool_calls"}],
            "usage": {
                "prompt_tokens": 5000 + i,
                "completion_tokens": 10,
                "cache_read_input_tokens": 4000,
                "cache_creation_input_tokens": 900,
            },
        }
        meta = {"tool_call_metadata": {"model_response": response}}
        events.append({"id": 2 * i + 1, "source": "agent", "action": "run", "message": "ls", **meta})
        events.append({"id": 2 * i + 2, "source": "agent", "observation": "run", "content": "x " * 50, **meta})
    path = tmp_path / "trajectory.json"
    path.write_text(json.dumps(events, indent=2))
    records, log = load(path)
    assert len(records) == 30 and log.problem_count == 0
    assert records[0].model == "claude-sonnet-4-6"
    assert records[0].usage.input_tokens == 100
    path.write_text(json.dumps(events, indent=2)[:-2000])  # truncated file: what was read is kept
    records, log = load(path)
    assert 25 <= len(records) <= 30
    assert log.problem_count == 1 and log.problems[0].truncated


def test_compaction_and_slash_commands_are_noted_on_the_next_call(tmp_path: Path) -> None:
    lines = session_lines("s1", 1)
    lines.append(
        {
            "type": "system",
            "subtype": "compact_boundary",
            "sessionId": "s1",
            "uuid": "c1",
            "parentUuid": None,
            "content": "Conversation compacted",
            "timestamp": "2026-02-10T23:00:00Z",
        }
    )
    lines.append(user_line("s1", "cs", "c1", "This session is being continued...", isCompactSummary=True))
    lines.append(user_line("s1", "cmd", "cs", "<command-name>/model</command-name>"))
    lines.append(
        assistant_line(
            "s1",
            "a9",
            "cmd",
            "msg_after",
            {"type": "text", "text": "ok"},
            usage(3),
            request_id="req_after",
            timestamp="2026-02-10T23:00:10Z",
        )
    )
    records, _ = load(write_jsonl(tmp_path / "s.jsonl", lines), content=True)
    assert records[-1].notes["events"] == ["compaction", "/model"]
    assert "prefix_change" in records[-1].notes  # the chain restarted at the summary
    assert records[-1].notes["message_tokens"] < records[0].notes["message_tokens"] + 50


# --- paths named more than once, one bad element, huge lines, other OpenHands layouts ---------------------------


def demo_trace(path: Path, calls: int = 3) -> Path:
    prints = (BlockPrint("tools.0", "aa" * 8, 900), BlockPrint("system.0", "bb" * 8, 1200))
    with TraceWriter(path) as writer:
        for i in range(calls):
            use = Usage(input_tokens=3, cache_write_5m_tokens=2100, output_tokens=50)
            cost = Pricing().cost("claude-sonnet-4-6", use)
            record = CallRecord("claude-sonnet-4-6", use, cost, i + 1, "r1", started_at=1e9 + i, prefix=prints)
            writer.write_call(record)
    return path


def test_overlapping_paths_are_read_once_whatever_the_format(shared_data: Path, tmp_path: Path) -> None:
    trajectories = shared_data / "agent-trajectories"
    records, log = load(trajectories, trajectories / "openhands_basic_gui_mode.json")
    assert len(records) == 4
    assert [f.path.name for f in log.files] == ["openhands_basic_gui_mode.json"]
    recordings = shared_data / "anthropic-recordings"
    assert len(load(recordings, recordings)[0]) == 7
    trace = demo_trace(tmp_path / "ll" / "demo.jsonl")
    assert len(load(trace, tmp_path / "ll" / ".." / "ll" / "demo.jsonl")[0]) == 3
    (tmp_path / "ll" / "latest.jsonl").symlink_to(trace)  # a link to a file of the same tree
    records, log = load(tmp_path / "ll", trace)
    assert len(records) == 3
    assert log.repeated_paths == 2


def test_one_bad_element_of_an_openhands_array_is_reported_and_the_rest_imported(
    shared_data: Path, tmp_path: Path
) -> None:
    events = json.loads((shared_data / "agent-trajectories" / "openhands_basic_gui_mode.json").read_text())
    lines = json.dumps(events, indent=2).split("\n")
    lines[len(lines) // 3] += " @@@"  # one corrupted line a third of the way in
    path = tmp_path / "trajectory.json"
    path.write_text("\n".join(lines))
    records, log = load(path)
    assert len(records) == 4  # each response is attached to two events: the other copy still counts
    (problem,) = log.problems
    assert problem.path == str(path)
    assert re.search(r"array element \d+ is not valid JSON .*: skipped, reading went on at line \d+", problem.message)
    compact = tmp_path / "compact.json"
    compact.write_text(json.dumps(events).replace('"id": 5,', '"id": 5 oops,', 1))
    records, log = load(compact)
    assert len(records) == 4
    assert "array element 5 " in log.problems[0].message


def huge_first_line_session(shared_data: Path, path: Path, size: int) -> Path:
    """A real session whose first line is a user message with a pasted screenshot of ``size`` bytes."""
    lines = (shared_data / "claude-code-sessions" / "tool_heavy_opus46.jsonl").read_text().splitlines()
    first = json.loads(lines[3])
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * size}}
    first["message"] = {"role": "user", "content": [image]}
    path.write_text(json.dumps(first) + "\n" + "\n".join(lines) + "\n")
    return path


def test_a_huge_first_line_does_not_hide_a_claude_code_session(shared_data: Path, tmp_path: Path) -> None:
    path = huge_first_line_session(shared_data, tmp_path / "s.jsonl", 17_000_000)
    assert detect_format(path) == "claude_code"
    records, log = load(path)
    assert len(records) == 4 and log.problem_count == 0


def test_a_line_over_the_limit_is_skipped_with_a_report(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from leanloop.analyze import reading

    monkeypatch.setattr(reading, "LINE_LIMIT", 64 << 10)
    path = huge_first_line_session(shared_data, tmp_path / "s.jsonl", 200_000)
    records, log = load(path, content=True)
    assert len(records) == 4
    (problem,) = log.problems
    assert problem.line == 1 and "longer than" in problem.message and "skipped" in problem.message


def test_openhands_event_store_and_trajectory_wrapper(shared_data: Path, tmp_path: Path) -> None:
    events = json.loads((shared_data / "agent-trajectories" / "openhands_basic_gui_mode.json").read_text())
    store = tmp_path / "sessions" / "abc" / "events"
    store.mkdir(parents=True)
    for event in events:  # one event per file, named by id (so 10.json sorts before 2.json)
        (store / f"{event['id']}.json").write_text(json.dumps(event))
    records, log = load(tmp_path / "sessions")
    assert len(records) == 4 and log.problem_count == 0
    assert {r.run_id for r in records} == {"abc"}
    assert [r.iteration for r in records] == [1, 2, 3, 4]
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"trajectory": events}, indent=2))
    assert detect_format(wrapped) == "openhands"
    records, log = load(wrapped)
    assert len(records) == 4 and log.problem_count == 0


def test_an_openhands_array_whose_first_event_is_huge(shared_data: Path, tmp_path: Path) -> None:
    events = json.loads((shared_data / "agent-trajectories" / "openhands_basic_gui_mode.json").read_text())
    events[0] = {"id": 0, "timestamp": events[0]["timestamp"], "source": "environment", "message": "x" * 3_000_000}
    events[0]["observation"] = "agent_state_changed"  # after the long message: beyond what detection reads
    path = tmp_path / "trajectory.json"
    path.write_text(json.dumps(events))
    assert detect_format(path) == "openhands"
    assert len(load(path)[0]) == 4


def test_a_long_session_is_followed_in_bounded_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from leanloop.analyze import claude_code

    monkeypatch.setattr(claude_code, "NODE_WINDOW", 40)
    path = write_jsonl(tmp_path / "s.jsonl", session_lines("s1", 400))  # a few thousand lines, never compacted
    importer = ClaudeCodeImport(content=True)
    records: list[CallRecord] = []
    for number, line in enumerate(json.loads(text) for text in path.read_text().splitlines()):
        importer.feed(line, path=str(path), line=number + 1)
        records.extend(importer.ready())
        conversations = importer._conversations  # pyright: ignore[reportPrivateUsage]
        assert len(conversations.nodes) <= 4 * 40 + 10
        assert all(len(chain.uuids) <= 2 * 40 for chain in conversations.chains.values())
    records.extend(importer.end_file())
    assert len(records) == 400
    assert not any("prefix_change" in r.notes for r in records)  # the conversation only grew
    tokens = [r.notes["message_tokens"] for r in records]
    assert tokens == sorted(tokens) and tokens[-1] > tokens[0]  # and is still counted in full


def served_line(number: int, *, status: int = 200, answered_at: float | None = 1_780_000_000.0) -> dict[str, Any]:
    """A line as `leanloop emulator --log` writes it (``ServedCall.summary()`` and ``answered_at``)."""
    usage = {"input_tokens": 10, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 0, "output_tokens": 50}
    return {
        "number": number,
        "request_id": f"req_{number}",
        "message_id": f"msg_{number}" if status == 200 else None,
        "model": "claude-sonnet-4-6",
        "stream": False,
        "status": status,
        "error_type": None if status == 200 else "overloaded_error",
        "fault": None,
        "stop_reason": "end_turn" if status == 200 else None,
        "usage": usage if status == 200 else None,
        "cost_usd": 0.0013 if status == 200 else None,
        "start": 0.0,
        "ttft_s": 0.5,
        "duration_s": 1.5,
        "thread": None,
        "notes": [],
        **({"answered_at": answered_at} if answered_at is not None else {}),
    }


def test_an_emulator_log_is_one_run_per_start_and_reports_what_it_cannot_use(tmp_path: Path) -> None:
    lines: list[Any] = [
        {"kept": "a line from before"},
        served_line(1),
        served_line(2, status=529),
        served_line(3, answered_at=None),
        "{broken",
        served_line(1),  # the emulator started again, appending
        {**served_line(2), "number": "two"},
    ]
    path = write_jsonl(tmp_path / "served.jsonl", lines)
    assert detect_format(path) == "emulator_log"
    log = ImportLog()
    calls = list(iter_calls([path], log))
    assert [(c.run_id, c.iteration, c.message_id) for c in calls] == [
        ("served", 1, "msg_1"),
        ("served", 3, "msg_3"),
        ("served#2", 1, "msg_1"),
    ]
    assert calls[0].started_at == 1_780_000_000.0 and calls[1].started_at is None
    assert (calls[0].ttft_s, calls[0].latency_s, calls[0].source) == (0.5, 1.5, f"{path}:2")
    assert calls[0].cost == Pricing().cost("claude-sonnet-4-6", served_line(1)["usage"])
    assert [(p.line, p.message) for p in log.problems] == [
        (1, "not a line of leanloop emulator --log"),
        (5, "not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
        (7, "'number' is not a call number: 'two'"),
    ]
    assert log.to_dict()["skipped"] == {"error responses (HTTP 529): not billed": 1}
