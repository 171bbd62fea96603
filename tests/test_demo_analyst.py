"""The scripted demo models, driven by a tiny agent loop that runs their tool calls against real ``LogTools``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from leanloop.demo import analyst
from leanloop.demo.analyst import (
    SYSTEM_PROMPT,
    TRIAGE_TASK,
    analyst_policy,
    error_signature,
    incident_task,
    line_level,
    read_log_text,
    stubborn_policy,
)
from leanloop.demo.logs import DEFAULT_TAIL_LINES, LogTools
from leanloop.demo.snapshot import SnapshotInfo, generate_snapshot
from leanloop.emulator.policies import Policy, Reply

_POLICIES: tuple[Policy, ...] = (analyst_policy, stubborn_policy)  # both satisfy the emulator's contract
_ROW = re.compile(r"^\| `([^`]+)` \| (\d+) \| (\d+) \| (\d+) \|$", re.MULTILINE)
_TOP = re.compile(r"^\d+\. (\d+)x `(.+)` \((.+)\)$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"<(?:uuid|id|ip|n)>")
_SNAPSHOT_LEVEL = re.compile(r"^\S+ (ERROR|FATAL|WARN|INFO|DEBUG) ")
Serialise = Callable[[Any], Any]


def _json_result(value: Any) -> Any:
    return value if isinstance(value, str) else json.dumps(value)


@dataclass
class Conversation:
    replies: list[Reply]
    messages: list[dict[str, Any]]

    def tool_turns(self) -> list[list[tuple[str, dict[str, Any]]]]:
        return [[(b["name"], b["input"]) for b in r.content if b["type"] == "tool_use"] for r in self.replies]

    @property
    def answer(self) -> str:
        return "\n".join(b["text"] for b in self.replies[-1].content if b["type"] == "text")


def converse(
    policy: Callable[[Mapping[str, Any]], Reply],
    tools: LogTools,
    task: str,
    *,
    max_turns: int = 12,
    serialise: Serialise = _json_result,
    offered: tuple[str, ...] = ("list_namespaces", "list_pods", "read_pod_logs", "search_logs"),
) -> Conversation:
    """Run the tool calls of each reply; all results go back in one user message, in tool_use order."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": task}]
    replies: list[Reply] = []
    counter = 0
    for _ in range(max_turns):
        request = {"model": "claude-sonnet-4-6", "system": SYSTEM_PROMPT, "messages": messages}
        request["tools"] = [{"name": name, "input_schema": {"type": "object"}} for name in offered]
        reply = policy(request)
        replies.append(reply)
        content: list[dict[str, Any]] = []
        for block in reply.content:
            if block["type"] == "tool_use" and "id" not in block:
                counter += 1
                content.append({**block, "id": f"toolu_{counter:04d}"})  # as the emulator does
            else:
                content.append(block)
        messages.append({"role": "assistant", "content": content})
        if reply.resolved_stop_reason != "tool_use":
            break
        results: list[dict[str, Any]] = []
        for block in content:
            if block["type"] != "tool_use":
                continue
            try:
                value = getattr(tools, block["name"])(**block["input"])
                results.append({"type": "tool_result", "tool_use_id": block["id"], "content": serialise(value)})
            except (ValueError, OSError) as error:
                results.append(
                    {"type": "tool_result", "tool_use_id": block["id"], "content": str(error), "is_error": True}
                )
        messages.append({"role": "user", "content": results})
    return Conversation(replies, messages)


@pytest.fixture
def cluster(tmp_path: Path) -> SnapshotInfo:
    return generate_snapshot(tmp_path / "cluster")


def _tail(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8", errors="replace").splitlines()[-DEFAULT_TAIL_LINES:]


def _snapshot_tails(info: SnapshotInfo) -> dict[str, list[str]]:
    return {
        pod.key: _tail(info.root / pod.namespace / f"{pod.pod}.log")
        for pod in info.pods
        if pod.readable  # the analyst never saw the unreadable one; neither do we
    }


# -- the analyst ------------------------------------------------------------------------------------------------------


def test_analyst_surveys_reads_in_parallel_retries_once_searches_and_answers(cluster: SnapshotInfo) -> None:
    run = converse(analyst_policy, LogTools(cluster.root), TRIAGE_TASK)
    turns = run.tool_turns()
    unreadable = cluster.unreadable
    assert [[name for name, _ in turn] for turn in turns] == [
        ["list_namespaces"],
        ["list_pods"] * len(cluster.namespaces),
        ["read_pod_logs"] * len(cluster.pods),
        ["read_pod_logs"],
        ["search_logs"],
        [],
    ]
    assert [args["namespace"] for _, args in turns[1]] == list(cluster.namespaces)
    assert sorted(f"{a['namespace']}/{a['pod']}" for _, a in turns[2]) == sorted(p.key for p in cluster.pods)
    assert turns[3] == [("read_pod_logs", {"namespace": unreadable.namespace, "pod": unreadable.pod})]
    assert [r.resolved_stop_reason for r in run.replies] == ["tool_use"] * 5 + ["end_turn"]
    assert all(r.content[0]["type"] == "text" and len(r.content[0]["text"]) > 60 for r in run.replies)

    rows = {key: tuple(map(int, numbers)) for key, *numbers in _ROW.findall(run.answer)}
    expected = {
        pod.key: (min(pod.lines, DEFAULT_TAIL_LINES), pod.tail_errors, pod.tail_warnings)
        for pod in cluster.pods
        if pod.readable
    }
    assert rows == expected
    could_not_read = run.answer.split("### Could not read", 1)[1]
    assert f"`{unreadable.key}`: permission denied: {unreadable.key}.log (2 attempts, retried once" in could_not_read


def test_analyst_top_messages_are_counted_from_the_lines_it_read(cluster: SnapshotInfo) -> None:
    run = converse(analyst_policy, LogTools(cluster.root), TRIAGE_TASK)
    tails = _snapshot_tails(cluster)
    top = _TOP.findall(run.answer)
    assert len(top) == 5
    assert "payments-db-primary.payments.svc:5432 timed out" in top[0][1]
    for count, message, where in top:
        fragment = max(_PLACEHOLDER.split(message), key=len)
        seen = {
            key: sum(1 for line in lines if line.split(" ", 2)[1:2] in (["ERROR"], ["FATAL"]) and fragment in line)
            for key, lines in tails.items()
        }
        assert int(count) == sum(seen.values()), message
        assert where.split(", ") == [key for key, n in seen.items() if n], message


def test_analyst_on_the_real_server_logs(shared_data: Path) -> None:
    run = converse(analyst_policy, LogTools.for_directory(shared_data / "server-logs"), TRIAGE_TASK)
    assert [[name for name, _ in turn] for turn in run.tool_turns()] == [
        ["list_namespaces"],
        ["list_pods"],
        ["read_pod_logs", "read_pod_logs"],
        ["search_logs"],
        [],
    ]
    apache = [re.match(r"^\[[^\]]+\] \[(\w+)\]", line) for line in _tail(shared_data / "server-logs/Apache_2k.log")]
    apache_levels = [m.group(1) for m in apache if m]
    openstack_levels = [line.split()[4] for line in _tail(shared_data / "server-logs/OpenStack_2k.log")]
    rows = {key: tuple(map(int, numbers)) for key, *numbers in _ROW.findall(run.answer)}
    assert rows == {
        "server-logs/Apache_2k": (100, apache_levels.count("error"), apache_levels.count("warn")),
        "server-logs/OpenStack_2k": (
            100,
            openstack_levels.count("ERROR") + openstack_levels.count("CRITICAL"),
            openstack_levels.count("WARNING"),
        ),
    }
    assert "mod_jk child workerEnv in error state 6" in _TOP.findall(run.answer)[0][1]


def test_each_turn_is_a_function_of_the_request_alone(cluster: SnapshotInfo) -> None:
    run = converse(analyst_policy, LogTools(cluster.root), TRIAGE_TASK)
    for index, message in enumerate(run.messages):
        if message["role"] == "assistant":
            replay = analyst_policy({"messages": run.messages[:index]})
            assert replay.content == [{k: v for k, v in b.items() if k != "id"} for b in message["content"]]


def test_analyst_reads_results_given_as_text_blocks_and_plain_lines(cluster: SnapshotInfo) -> None:
    def as_blocks(value: Any) -> Any:
        text = "\n".join(map(str, cast(list[Any], value))) if isinstance(value, list) else str(value)
        return [{"type": "text", "text": text}]

    plain = converse(analyst_policy, LogTools(cluster.root), TRIAGE_TASK, serialise=as_blocks)
    assert plain.answer == converse(analyst_policy, LogTools(cluster.root), TRIAGE_TASK).answer


def test_analyst_skips_search_when_the_tool_is_not_offered(cluster: SnapshotInfo) -> None:
    offered = ("list_namespaces", "list_pods", "read_pod_logs")
    run = converse(analyst_policy, LogTools(cluster.root), TRIAGE_TASK, offered=offered)
    assert all(name != "search_logs" for turn in run.tool_turns() for name, _ in turn)
    assert run.replies[-1].resolved_stop_reason == "end_turn"


def test_analyst_with_nothing_to_read(tmp_path: Path) -> None:
    run = converse(analyst_policy, LogTools(tmp_path), TRIAGE_TASK)
    assert len(run.replies) == 2
    assert "could not find any logs" in run.answer


# -- the stubborn model -----------------------------------------------------------------------------------------------


def test_stubborn_model_never_stops_by_itself(cluster: SnapshotInfo) -> None:
    unreadable = cluster.unreadable
    run = converse(
        stubborn_policy, LogTools(cluster.root), incident_task(unreadable.namespace, unreadable.pod), max_turns=50
    )
    assert len(run.replies) == 50
    assert all(reply.resolved_stop_reason == "tool_use" for reply in run.replies)
    turns = run.tool_turns()
    assert turns[0] == [("list_pods", {"namespace": unreadable.namespace})]
    assert all(
        turn == [("read_pod_logs", {"namespace": unreadable.namespace, "pod": unreadable.pod})] for turn in turns[1:]
    )
    assert len({json.dumps(reply.content) for reply in run.replies[2:]}) == 1  # the same turn, over and over


def test_stubborn_model_ignores_being_told_the_call_keeps_failing(cluster: SnapshotInfo) -> None:
    unreadable = cluster.unreadable
    task = incident_task(unreadable.namespace, unreadable.pod)
    run = converse(stubborn_policy, LogTools(cluster.root), task, max_turns=4)
    notice = "read_pod_logs keeps failing with the same error (3 times). Change your approach instead of repeating it."
    run.messages[-1]["content"].append({"type": "text", "text": notice})
    reply = stubborn_policy({"messages": run.messages})
    assert reply.content[1:] == run.replies[-1].content[1:]
    assert reply.content[0]["text"].startswith("Understood that this call keeps failing")


def test_stubborn_model_without_a_named_pod_fixates_on_the_failed_read(cluster: SnapshotInfo) -> None:
    unreadable = cluster.unreadable
    run = converse(stubborn_policy, LogTools(cluster.root), TRIAGE_TASK, max_turns=8)
    names = [[name for name, _ in turn] for turn in run.tool_turns()]
    assert names[:3] == [["list_namespaces"], ["list_pods"] * 4, ["read_pod_logs"] * len(cluster.pods)]
    target = [("read_pod_logs", {"namespace": unreadable.namespace, "pod": unreadable.pod})]
    assert run.tool_turns()[3:] == [target] * 5


# -- reading log text -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("2025-03-14T01:00:00Z ERROR db connection refused", "error"),
        ("2025-03-14T01:00:00Z INFO http GET /error-page 200", "info"),
        ("2025-03-14T01:00:00Z WARN gc heap nearly full", "warning"),
        ("[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6", "error"),
        ("[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok", "notice"),
        (
            "nova-compute.log.1 2017-05-16 00:00:20.345 2931 WARNING nova.virt.libvirt.imagecache [req-1 - -] x",
            "warning",
        ),
        ("level=fatal msg=boom", "error"),
        ("\tat com.acme.stock.SnapshotLoader.readBatch(SnapshotLoader.java:214)", None),
        ("java.lang.OutOfMemoryError: Java heap space", None),
        ("GET /var/log/error/index.html", None),
    ],
)
def test_line_level(line: str, level: str | None) -> None:
    assert line_level(line) == level


@pytest.mark.parametrize(
    ("line", "signature"),
    [
        (
            "2025-03-14T01:00:00Z ERROR http POST /api/v1/checkout 502 req=4a5ad687: "
            "upstream payments-gateway returned 503",
            "http POST /api/v1/checkout 502 req=<id>: upstream payments-gateway returned 503",
        ),
        (
            "2025-03-14T01:00:00Z ERROR kubelet container stock-sync terminated: reason=OOMKilled exit code 137 "
            "restartCount=13",
            "kubelet container stock-sync terminated: reason=OOMKilled exit code 137 restartCount=<n>",
        ),
        (
            "[Sun Dec 04 04:47:44 2005] [error] jk2_init() Can't find child 5622 in scoreboard",
            "jk2_init() Can't find child <n> in scoreboard",
        ),
        (
            "[Mon Dec 05 10:45:52 2005] [error] [client 218.76.139.20] "
            "Directory index forbidden by rule: /var/www/html/",
            "[client <ip>] Directory index forbidden by rule: /var/www/html/",
        ),
        (
            "n.log 2017-05-16 00:00:04.500 25746 ERROR nova.api [req-9bc36dd9-2096-447d-96ea-a692162415ae a b] "
            "Instance 127e769a-4fe6-4548-93b1-6e4b7e9a1d8b not found at 10.11.10.1:8774",
            "nova.api Instance <uuid> not found at <ip>",
        ),
    ],
)
def test_error_signature_groups_lines_that_say_the_same_thing(line: str, signature: str) -> None:
    assert error_signature(line) == signature


def test_read_log_text_skips_the_header() -> None:
    reading = read_log_text("ns/pod", "==> ns/pod: lines 1-3 of 3 <==\nx ERROR a 1234567\nx WARN b\nx ERROR a 7654321")
    assert (reading.lines, reading.errors, reading.warnings) == (3, 2, 1)
    assert dict(reading.error_messages) == {"a <n>": 2}


def test_public_names() -> None:
    assert sorted(analyst.__all__) == sorted(
        [
            "SYSTEM_PROMPT",
            "TRIAGE_TASK",
            "PodReading",
            "analyst_policy",
            "error_signature",
            "incident_task",
            "line_level",
            "read_log_text",
            "stubborn_policy",
        ]
    )
