"""trace: CallRecord round trip, prefix deltas, crash safety, secrets."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leanloop.pricing import Cost, cost
from leanloop.tools import ToolOutcome, ToolUse
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


def _written(path: Path, records: list[CallRecord]) -> list[CallRecord]:
    with TraceWriter(path) as writer:
        for r in records:
            writer.write_call(r)
    return records


def _damage(path: Path, line: int) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[line - 1] = lines[line - 1][:40] + "\x00garbage\n"
    path.write_text("".join(lines))


def test_a_damaged_middle_line_keeps_every_later_call_with_its_cost(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    records = _written(path, [record(i, prints(3 + i)) for i in range(6)])
    _damage(path, 3)
    trace = read_trace(path)
    assert [r.iteration for r in trace.records] == [0, 1, 3, 4, 5]
    assert [r.cost for r in trace.records] == [r.cost for r in records if r.iteration != 2]
    assert [r.usage for r in trace.records] == [r.usage for r in records if r.iteration != 2]
    assert trace.records[:2] == records[:2]
    # the calls after the gap cannot know their prefix fingerprint (it was a delta against the lost line)
    assert all(r.prefix == () for r in trace.records[2:])
    assert [p.line for p in trace.problems] == [3, 4]
    assert "usage and cost are kept" in trace.problems[1].message


def test_the_prefix_is_written_in_full_periodically_so_a_damaged_line_is_recovered_from(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    records = _written(path, [record(i, prints(2 + i)) for i in range(45)])
    kept = [json.loads(line)["prefix_kept"] for line in path.read_text().splitlines()]
    assert kept.count(0) == 3  # calls 1, 21, 41: a full prefix every 20 calls of a run
    _damage(path, 5)
    trace = read_trace(path)
    assert len(trace.records) == 44
    by_iteration = {r.iteration: r for r in trace.records}
    assert all(by_iteration[i].prefix == () for i in range(5, 20))
    assert all(by_iteration[i] == records[i] for i in range(20, 45))


def test_a_damaged_line_of_one_run_leaves_other_runs_whole(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with TraceWriter(path) as writer:
        for i in range(4):
            for run in ("a", "b"):
                writer.write_call(replace(record(i, prints(2 + i)), run_id=run))
    _damage(path, 3)  # run a, iteration 1
    trace = read_trace(path)
    assert all(r.prefix for r in trace.records if r.run_id == "b")
    assert [r.iteration for r in trace.records if r.run_id == "b"] == [0, 1, 2, 3]


def test_a_delta_against_a_longer_prefix_than_known_is_kept_without_prefix(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with TraceWriter(path) as writer:
        for i in range(3):
            writer.write_call(record(i, prints(2 + i)))
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[2])  # the middle line went missing without a trace
    trace = read_trace(path)
    assert [(r.iteration, r.prefix == ()) for r in trace.records] == [(0, False), (2, True)]
    [problem] = trace.problems
    assert problem.line == 2


def test_a_writer_appending_after_a_crash_starts_on_a_new_line(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with TraceWriter(path) as writer:
        writer.write_call(record(0, prints(2)))
        writer.write_call(record(1, prints(3)))
    line = json.dumps(record(2, prints(4)).to_dict())
    with path.open("a") as file:
        file.write(line[: len(line) // 2])  # the process died mid-line
    with TraceWriter(path) as writer:  # the run resumes
        writer.write_call(record(2, prints(4)))
        writer.write_call(record(3, prints(5)))
    trace = read_trace(path)
    assert [r.iteration for r in trace.records] == [0, 1, 2, 3]
    assert all(r.prefix for r in trace.records)
    [problem] = trace.problems
    assert (problem.line, problem.truncated) == (3, True)
    assert "stopped mid-line" in problem.message


# Keys in formats the old patterns did not know: a LiteLLM virtual key (sk- + 22), a gateway token, an Azure key,
# a Google key, a Slack token, a JWT, a GitHub fine-grained token, a password.
ODD_SECRETS = {
    "litellm": "sk-" + "Qw3rTy" * 3 + "Ab12",
    "gateway": "gw_live_" + "9f8e7d6c5b4a" * 3,
    "azure": "0a1b2c3d4e5f" * 3,
    "google": "AIza" + "Sy9-" * 8 + "abc",
    "slack": "xoxb-" + "1234567890-" * 2 + "AbCdEfGhIjKl",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "github": "github_pat_" + "11ABCDEFG0" * 5,
    "password": "correct-horse-battery",
}


def test_credential_named_keys_are_redacted_whatever_their_value_looks_like(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with TraceWriter(path) as writer:
        writer.write_event(
            "event",
            env={"ANTHROPIC_AUTH_TOKEN": ODD_SECRETS["gateway"], "OPENAI_API_KEY": ODD_SECRETS["litellm"]},
            headers_seen={
                "api-key": ODD_SECRETS["azure"],
                "X-Goog-Api-Key": ODD_SECRETS["google"],
                "Cookie": "session=" + ODD_SECRETS["password"],
                "set-cookie": "sid=" + ODD_SECRETS["password"],
                "Proxy-Authorization": "Digest username=u, response=" + ODD_SECRETS["azure"],
            },
            config={"password": ODD_SECRETS["password"], "client_secret": 12345678901234, "token": ["x", "y"]},
            pairs=[("x-api-key", ODD_SECRETS["azure"])],
            usage={"input_tokens": 1234, "max_tokens": 4096},
        )
    text = path.read_text()
    for secret in ("9f8e7d6c5b4a", "Qw3rTy", "0a1b2c3d4e5f", "Sy9-", "correct-horse", "12345678901234", '"x"'):
        assert secret not in text
    line = json.loads(text)
    assert line["usage"] == {"input_tokens": 1234, "max_tokens": 4096}  # token counts are not secrets
    assert line["config"]["password"] == "[REDACTED]"


def test_secrets_in_free_text_and_in_non_string_values_are_redacted(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    text_with_keys = " ".join(f"{name} key {value}." for name, value in ODD_SECRETS.items() if name != "password")
    with TraceWriter(path) as writer:
        writer.write_event(
            "tool_output",
            output=f"auth failed for {text_with_keys}\npassword={ODD_SECRETS['password']} "
            f"Authorization: Bearer {ODD_SECRETS['gateway']}",
            error=RuntimeError(f"bad key {ODD_SECRETS['litellm']}"),
            raw=ODD_SECRETS["jwt"].encode(),
            several={ODD_SECRETS["slack"]},
        )
    written = path.read_text()
    for name, secret in ODD_SECRETS.items():
        assert secret not in written, name
    assert "auth failed for litellm key [REDACTED]" in written


def test_the_processs_anthropic_credentials_are_redacted_wherever_they_appear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "plainlookingvalue42")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "another.plain.value")
    path = tmp_path / "run.jsonl"
    with TraceWriter(path, secrets=["my-gateway-credential"]) as writer:
        writer.write_event("event", detail="configured with plainlookingvalue42 and another.plain.value")
        writer.write_event("event", detail="client key my-gateway-credential")
    text = path.read_text()
    assert "plainlookingvalue42" not in text
    assert "another.plain.value" not in text
    assert "my-gateway-credential" not in text
    assert redact("x plainlookingvalue42 y") == "x [REDACTED] y"


def outcome(arguments: dict[str, object], error: str | None) -> ToolOutcome:
    use = ToolUse("toolu_9", "fetch", arguments)
    return ToolOutcome(use, error or "ok", error is not None, 0.25, error=error)


def test_a_tool_call_keeps_its_arguments_and_error_text_redacted_and_capped() -> None:
    key = "sk-ant-api03-" + "Kk4" * 20
    failed = ToolCall.of(outcome({"url": "https://x.test/a", "password": "hunter2hunter2"}, f"401 for key {key}"))
    assert failed.arguments == '{"password":"[REDACTED]","url":"https://x.test/a"}'
    assert failed.error == "401 for key [REDACTED]"
    assert (failed.name, failed.id, failed.duration_s, failed.is_error) == ("fetch", "toolu_9", 0.25, True)
    fine = ToolCall.of(outcome({"body": "x" * 50_000}, None))
    assert fine.error is None
    assert len(fine.arguments) < ToolCall.MAX_TEXT + 60
    assert fine.arguments.startswith('{"body":"xxx') and fine.arguments.endswith("[... 48,011 more characters]")
    huge_error = ToolCall.of(outcome({}, "E" * 10_000))
    assert huge_error.error is not None and huge_error.error.endswith("[... 8,000 more characters]")


def test_tool_call_arguments_and_errors_round_trip_and_old_traces_still_read(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    calls = (ToolCall.of(outcome({"pod": "api-1"}, "permission denied")), ToolCall.of(outcome({"pod": "b"}, None)))
    with TraceWriter(path) as writer:
        writer.write_call(replace(record(0, prints(1)), tool_calls=calls))
    [read] = read_trace(path).records
    assert read.tool_calls == calls
    old = json.loads(path.read_text())
    for call in old["tool_calls"]:
        del call["arguments"], call["error"]
    path.write_text(json.dumps(old) + "\n")
    [read] = read_trace(path).records
    assert [(c.name, c.arguments, c.error, c.is_error) for c in read.tool_calls] == [
        ("fetch", "", None, True),
        ("fetch", "", None, False),
    ]


@pytest.mark.anyio
async def test_the_agents_trace_says_which_tool_failed_with_what_and_never_shows_a_secret(tmp_path: Path) -> None:
    from leanloop import Agent
    from leanloop.testing import ScriptedModel, call, say

    key = "sk-ant-api03-" + "Qw8" * 20

    def fetch(url: str, token: str) -> str:
        """Fetch a URL.

        Args:
            url: Where.
            token: The credential.
        """
        raise PermissionError(f"403 for {url} with {token}")

    model = ScriptedModel(call("fetch", url="https://x.test/a", token=key), say("cannot"))
    path = tmp_path / "run.jsonl"
    result = await Agent("claude-sonnet-4-6", tools=[fetch], client=model.client(), trace=path).run("go")
    [tools_line] = [json.loads(line) for line in path.read_text().splitlines() if '"kind": "tools"' in line]
    assert tools_line["tool_calls"][0]["arguments"] == '{"token":"[REDACTED]","url":"https://x.test/a"}'
    assert tools_line["tool_calls"][0]["error"] == "403 for https://x.test/a with [REDACTED]"
    assert "Qw8Qw8" not in path.read_text()
    [first, _] = read_trace(path).records
    assert first.tool_calls[0].error == "403 for https://x.test/a with [REDACTED]"
    assert result.calls[0].tool_calls == first.tool_calls


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=5000), max_size=5), st.text(max_size=5000))
@settings(max_examples=50, deadline=None)
def test_a_tool_calls_text_is_bounded_and_never_holds_a_key(arguments: dict[str, str], error: str) -> None:
    key = "sk-ant-api03-" + "Jj7" * 20
    call = ToolCall.of(outcome({**arguments, "note": f"use {key}"}, f"{error} {key}"))
    assert call.error is not None
    for text in (call.arguments, call.error):
        assert len(text) <= ToolCall.MAX_TEXT + len("[... 999,999 more characters]")
        assert "Jj7Jj7" not in text


def test_the_prefix_delta_keeps_equal_blocks_whether_or_not_they_are_the_same_objects() -> None:
    prints = tuple(BlockPrint(f"messages.{i}.content.0", f"{i:016x}", 10) for i in range(6))
    copies = tuple(BlockPrint(p.path, p.hash, p.tokens) for p in prints[:4])  # equal, not identical
    changed = BlockPrint("messages.4.content.0", "ffffffffffffffff", 10)
    record = CallRecord(
        model="claude-sonnet-4-6", usage=Usage(), cost=Cost(), prefix=(*prints[:2], *copies[2:], changed)
    )
    assert record.to_dict(prints)["prefix_kept"] == 4
    assert record.to_dict(())["prefix_kept"] == 0


def test_with_tool_calls_is_replace_for_that_field() -> None:
    record = CallRecord("claude-sonnet-4-6", Usage(input_tokens=3), Cost(), iteration=2, notes={"a": 1})
    calls = (ToolCall("lookup", "toolu_1", 0.01, False, False),)
    assert record.with_tool_calls(calls) == replace(record, tool_calls=calls)
    assert record.tool_calls == ()  # the original is unchanged


def test_a_tool_call_record_cuts_after_the_clients_own_key_is_redacted() -> None:
    key = "gw-" + "k" * 40  # a gateway key: no vendor shape, known only as the client's
    error = "x" * (ToolCall.MAX_TEXT - 10) + f" key={key}"
    outcome = ToolOutcome(ToolUse("t1", "fetch", {"token": key}), "failed", True, 0.1, error=error)
    record = ToolCall.of(outcome, [key])
    assert record.error is not None and "kkkk" not in record.error
    assert "kkkk" not in record.arguments
