"""trace: CallRecord round trip, prefix deltas, crash safety, secrets."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from leanloop.pricing import cost
from leanloop.trace import BlockPrint, CallRecord, ToolCall, TraceWriter, iter_trace, read_trace, redact
from leanloop.usage import Usage


def record(iteration: int, prefix: tuple[BlockPrint, ...], **extra: object) -> CallRecord:
    usage = Usage(input_tokens=3, cache_write_5m_tokens=100, cache_read_tokens=2000, output_tokens=50)
    return CallRecord(
        model="claude-sonnet-4-6",
        usage=usage,
        cost=cost("claude-sonnet-4-6", usage),
        iteration=iteration,
        run_id="run-1",
        started_at=1000.0 + iteration,
        ttft_s=0.4,
        latency_s=1.2,
        stop_reason="tool_use",
        prefix=prefix,
        breakpoints=(("system.0", "5m"), (prefix[-1].path, "5m")),
        tool_calls=(ToolCall("read_pod_logs", "toolu_1", 0.05, is_error=True),),
        message_id=f"msg_{iteration}",
        **extra,  # type: ignore[arg-type]
    )


def prints(n: int) -> tuple[BlockPrint, ...]:
    return tuple(BlockPrint(f"messages.{i}.content.0", f"h{i}", 10 * i) for i in range(n))


def test_round_trip_with_prefix_deltas(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    records = [record(i, prints(3 + 2 * i)) for i in range(5)]
    with TraceWriter(path) as writer:
        writer.write_event("run_start", run_id="run-1", model="claude-sonnet-4-6")
        for r in records:
            writer.write_call(r)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    calls = [line for line in lines if line["kind"] == "call"]
    assert [c["prefix_kept"] for c in calls] == [0, 3, 5, 7, 9]
    assert all(len(c["prefix_new"]) == (3 if i == 0 else 2) for i, c in enumerate(calls))
    trace = read_trace(path)
    assert trace.records == records
    assert trace.events == [{"kind": "run_start", "run_id": "run-1", "model": "claude-sonnet-4-6"}]
    assert not trace.problems


def test_each_record_is_flushed_as_written(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    writer = TraceWriter(path)
    writer.write_call(record(0, prints(2)))
    assert len(read_trace(path).records) == 1  # readable while the writer is still open
    writer.close()


def test_truncated_last_line_is_reported_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with TraceWriter(path) as writer:
        for i in range(3):
            writer.write_call(record(i, prints(2 + i)))
    text = path.read_text()
    path.write_text(text + text.splitlines()[0][:57])  # a crash mid-write
    trace = read_trace(path)
    assert len(trace.records) == 3
    [problem] = trace.problems
    assert problem.truncated
    assert problem.line == 4
    assert "truncated" in str(problem)
    assert str(path) in str(problem)


def test_broken_line_in_the_middle_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text('{"kind": "call", "model": "x"}\n[1, 2]\n')
    problems = [item for item in iter_trace(path) if not isinstance(item, CallRecord | dict)]
    assert [p.line for p in problems] == [1, 2]  # a call without usage, then not an object
    assert not any(p.truncated for p in problems)


def test_secrets_never_reach_the_trace(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    key = "sk-ant-api03-" + "a1B2c3D4" * 10
    with TraceWriter(path) as writer:
        writer.write_call(record(0, prints(1), notes={"error": f"bad key {key}", "headers": {"x-api-key": key}}))
        writer.write_event("run_start", api_key=key, config={"Authorization": f"Bearer {key}"}, detail=f"Bearer {key}")
        writer.write_event("tool_output", output="aws AKIAIOSFODNN7EXAMPLE gh ghp_" + "x" * 36 + " oa sk-" + "y" * 40)
    text = path.read_text()
    assert "sk-ant" not in text
    assert "a1B2c3D4" not in text
    assert "AKIAIOSFODNN7EXAMPLE" not in text and "ghp_xxx" not in text and "yyyy" not in text
    assert "[REDACTED]" in text


@given(st.recursive(st.text() | st.integers(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
@settings(max_examples=100, deadline=None)
def test_redact_removes_any_embedded_key(value: object) -> None:
    key = "sk-ant-api03-SECRETSECRET123"
    wrapped = {"payload": value, "note": f"prefix {key} suffix", "api_key": key}
    assert "SECRETSECRET123" not in json.dumps(redact(wrapped))
