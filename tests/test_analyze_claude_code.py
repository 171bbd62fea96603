"""Claude Code's own lines and files, read the way Claude Code writes them (2.1.197): every line type it writes is
known (read quietly, never an "unknown line"), truly unknown types are still reported, and a sub-agent's
``agent-*.meta.json`` labels its run instead of being skipped as "not a trace"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from leanloop.analyze.claude_code import ClaudeCodeImport
from leanloop.analyze.sources import ImportLog, detect_format, iter_calls

FIXTURE = Path(__file__).parent / "fixtures" / "claude_code_e2e" / "projects"
SESSION = "c94e9808-c0e8-411c-aaa1-16d149aa3c74"

# What Claude Code 2.1.197 writes to a session log besides user/assistant lines (its session writer and loader),
# and older types other parsers of its logs have seen (progress, summary, file-history-delta, task-summary, ...).
METADATA_LINES: list[dict[str, Any]] = [
    {"type": "last-prompt", "lastPrompt": "And now?", "leafUuid": "a6265c3f", "sessionId": SESSION},
    {"type": "mode", "mode": "normal", "sessionId": SESSION},
    {"type": "permission-mode", "permissionMode": "default", "sessionId": SESSION},
    {"type": "custom-title", "customTitle": "Fix the build", "sessionId": SESSION},
    {"type": "ai-title", "aiTitle": "Fix the build", "sessionId": SESSION},
    {"type": "tag", "tag": "infra", "sessionId": SESSION},
    {"type": "relocated", "relocatedCwd": "/work/app", "sessionId": SESSION},
    {"type": "agent-name", "agentName": "reviewer", "sessionId": SESSION},
    {"type": "agent-color", "agentColor": "blue", "sessionId": SESSION},
    {"type": "agent-setting", "agentSetting": "reviewer", "sessionId": SESSION},
    {"type": "isolation-latch", "side": "a", "sessionId": SESSION},
    {"type": "worktree-state", "worktreeSession": {"worktreePath": "/w"}, "sessionId": SESSION},
    {"type": "pr-link", "prNumber": 7, "prUrl": "https://x/7", "prRepository": "o/r", "sessionId": SESSION},
    {"type": "bridge-session", "bridgeSessionId": "b1", "lastSequenceNum": 3, "sessionId": SESSION},
    {"type": "file-history-snapshot", "messageId": "m1", "snapshot": {}, "isSnapshotUpdate": False},
    {"type": "attribution-snapshot", "messageId": "m1", "sessionId": SESSION},
    {"type": "content-replacement", "replacements": [], "sessionId": SESSION},
    {"type": "fork-context-ref", "agentId": "a1", "sessionId": SESSION},
    {"type": "marble-origami-commit", "sessionId": SESSION},
    {"type": "marble-origami-snapshot", "sessionId": SESSION},
    {"type": "marble-origami-reset", "reason": "x", "sessionId": SESSION},
    {"type": "speculation-accept", "timestamp": "2026-12-04T02:20:45.629Z", "timeSavedMs": 10},
    {"type": "frame-link", "sessionId": SESSION, "path": "/p", "frameUrl": "https://x"},
    {"type": "queue-operation", "operation": "enqueue", "sessionId": SESSION, "content": "hi"},
    {"type": "summary", "summary": "Fix the build", "leafUuid": "u0"},
    {"type": "progress", "uuid": "p1", "parentUuid": "u0", "sessionId": SESSION, "data": {}},
    {"type": "system", "subtype": "compact_boundary", "uuid": "s1", "sessionId": SESSION},
    {"type": "attachment", "attachment": {"type": "skill_listing"}, "uuid": "t1", "sessionId": SESSION},
    {"type": "file-history-delta", "messageId": "m1", "sessionId": SESSION},
    {"type": "task-summary", "sessionId": SESSION},
    {"type": "atis-latch", "atis": "v1", "sessionId": SESSION},
]


@pytest.mark.parametrize("line", METADATA_LINES, ids=lambda line: str(line["type"]))
def test_every_line_type_claude_code_writes_is_read_quietly(line: dict[str, Any]) -> None:
    importer = ClaudeCodeImport(content=True)
    assert importer.feed(line, path="s.jsonl", line=1) is None
    assert not list(importer.records())


def test_a_truly_unknown_line_type_is_still_reported() -> None:
    importer = ClaudeCodeImport()
    problem = importer.feed({"type": "brand-new-kind", "sessionId": SESSION}, path="s.jsonl", line=1)
    assert problem == "unknown line type 'brand-new-kind' (ignored)"


@pytest.mark.parametrize("first", ["last-prompt", "mode", "permission-mode", "ai-title", "agent-name"])
def test_a_log_of_metadata_lines_only_is_claude_code(first: str, tmp_path: Path) -> None:
    """A session that never reached the model (Claude Code exited at once) holds only its metadata lines."""
    line = next(line for line in METADATA_LINES if line["type"] == first)
    path = tmp_path / f"{SESSION}.jsonl"
    path.write_text(json.dumps(line) + "\n")
    assert detect_format(path) == "claude_code"


def test_real_claude_code_logs_import_without_a_problem() -> None:
    log = ImportLog()
    records = list(iter_calls([FIXTURE], log))
    assert len(records) == 10
    assert [p.message for p in log.problems] == []
    assert [f.path.name for f in log.files if f.format is None and not f.sidecar] == []


# --- sub-agents' .meta.json --------------------------------------------------------------------------------------

AGENT = "5db384f5-71bb-4473-a769-4bb06bdb960a/agent-aa80025f4e0f847c7"


def test_a_sub_agent_meta_file_labels_its_run_and_is_not_a_skipped_file() -> None:
    log = ImportLog()
    records = list(iter_calls([FIXTURE], log))
    (meta,) = [f for f in log.files if f.path.name.endswith(".meta.json")]
    assert meta.sidecar and meta.format is None
    assert "not a trace" not in meta.note
    assert "unknown" not in " ".join(log.skipped)
    agent = [r for r in records if r.run_id == AGENT]
    assert len(agent) == 2
    assert {(r.notes["agent_type"], r.notes["agent_description"]) for r in agent} == {
        ("general-purpose", "Count lines")
    }
    assert not any("agent_type" in r.notes for r in records if r.run_id != AGENT)


def copy_session_with_agent(tmp_path: Path, meta: str) -> Path:
    """The fixture's sub-agent session, with ``meta`` as its agent's .meta.json."""
    source = FIXTURE / "-workspace-project"
    target = tmp_path / "projects" / "-workspace-project"
    session = "5db384f5-71bb-4473-a769-4bb06bdb960a"
    agents = target / session / "subagents"
    agents.mkdir(parents=True)
    (target / f"{session}.jsonl").write_text((source / f"{session}.jsonl").read_text())
    name = "agent-aa80025f4e0f847c7"
    (agents / f"{name}.jsonl").write_text((source / session / "subagents" / f"{name}.jsonl").read_text())
    (agents / f"{name}.meta.json").write_text(meta)
    return tmp_path / "projects"


@pytest.mark.parametrize("meta", ["{not json", "[1, 2]", '{"colour": "blue"}'])
def test_a_meta_file_that_is_not_claude_codes_is_noted_and_the_agent_still_read(meta: str, tmp_path: Path) -> None:
    log = ImportLog()
    records = list(iter_calls([copy_session_with_agent(tmp_path, meta)], log))
    assert len(records) == 4
    assert not any("agent_type" in r.notes for r in records)
    (skipped,) = [f for f in log.files if f.format is None]
    assert not skipped.sidecar and skipped.note == "not a trace (unknown format)"


def test_a_meta_file_with_only_some_fields_labels_with_what_it_has(tmp_path: Path) -> None:
    projects = copy_session_with_agent(tmp_path, '{"agentType": "Explore", "spawnDepth": 2}')
    records = list(iter_calls([projects], ImportLog()))
    labelled = [r for r in records if "agent_type" in r.notes]
    assert len(labelled) == 2 and {r.notes["agent_type"] for r in labelled} == {"Explore"}
    assert not any("agent_description" in r.notes for r in labelled)
