"""`leanloop emulator`: the README's way of running it, driven by the synchronous official SDK over a real port."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import pytest
from typer.testing import CliRunner

from leanloop.cli import app as cli_app
from leanloop.emulator import EXAMPLE_SCENARIO

LEANLOOP = Path(sys.executable).with_name("leanloop")
SYSTEM = "You triage production incidents from their logs and name the root cause precisely. " * 140


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the emulator exited: {process.stderr.read() if process.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the emulator did not start listening")


@dataclass
class Running:
    """A `leanloop emulator` process and a client on it; ``out`` and ``err`` are its output once it stopped."""

    client: anthropic.Anthropic
    port: int
    out: str = ""
    err: str = ""


@contextmanager
def running_emulator(*options: str) -> Iterator[Running]:
    """`leanloop emulator --port P --time-scale 0 OPTIONS` in a process, stopped with Ctrl-C afterwards."""
    port = free_port()
    command = [str(LEANLOOP), "emulator", "--port", str(port), "--time-scale", "0", *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(port, process)
        client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="any-key", max_retries=0)
        running = Running(client, port)
        with client:
            yield running
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    running.out, running.err = out, err


def triage(client: anthropic.Anthropic) -> list[Any]:
    """The example scenario's conversation, to its answer, with caching on; then a call to an unknown model."""
    tools: Any = [
        {"name": "read_log", "input_schema": {"type": "object"}},
        {"name": "count_matches", "input_schema": {"type": "object"}},
    ]
    messages: list[Any] = [{"role": "user", "content": "Why is the app down?"}]
    replies: list[Any] = []
    for _ in range(6):
        reply = client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=1024,
            system=SYSTEM,
            tools=tools,
            messages=messages,
            cache_control={"type": "ephemeral"},
        )
        replies.append(reply)
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]})
        if reply.stop_reason != "tool_use":
            break
        results = [
            {"type": "tool_result", "tool_use_id": b.id, "content": "42 lines"}
            for b in reply.content
            if b.type == "tool_use"
        ]
        messages.append({"role": "user", "content": results})
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-unknown", max_tokens=5, messages=messages[:1])
    return replies


def test_cli_serves_a_multi_turn_tool_conversation_with_cache_reads() -> None:
    with running_emulator("--scenario", str(EXAMPLE_SCENARIO)) as running:
        replies = triage(running.client)
    assert [r.stop_reason for r in replies] == ["tool_use", "tool_use", "end_turn"]
    assert replies[0].usage.cache_read_input_tokens == 0
    assert all(r.usage.cache_read_input_tokens for r in replies[1:])
    assert f"http://127.0.0.1:{running.port}" in running.out
    assert "Traceback" not in running.err


def test_port_0_serves_on_a_free_port_and_the_banner_shows_it() -> None:
    command = [str(LEANLOOP), "emulator", "--port", "0", "--time-scale", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline() if process.stdout else ""
        match = re.search(r"http://127\.0\.0\.1:(\d+) ", banner)
        assert match, banner
        port = int(match.group(1))
        assert port != 0
        client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="any-key", max_retries=0)
        reply = client.messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.stop_reason == "end_turn"
        client.close()
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    assert "Traceback" not in err


def run_cli(*arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, ["emulator", *arguments])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_a_busy_port_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = run_cli("--port", str(port))
    assert code == 2
    assert output == f"leanloop emulator: cannot listen on 127.0.0.1:{port}: Address already in use\n"


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_port_out_of_range_is_exit_2(port: str) -> None:
    code, output = run_cli("--port", port)
    assert code == 2
    assert "--port" in output


def test_scenario_and_replay_together_is_exit_2(tmp_path: Path) -> None:
    code, output = run_cli("--scenario", str(EXAMPLE_SCENARIO), "--replay", str(tmp_path / "run.json"))
    assert (code, output) == (2, "leanloop emulator: give --scenario or --replay, not both\n")


@pytest.mark.parametrize(
    ("option", "name", "content", "fragment"),
    [
        ("--scenario", "typo.yaml", b"steps: [{txt: typo}]", "unknown keys"),
        ("--scenario", "binary.yaml", b"\xff\xfe\x00\x01binary", "is not UTF-8 text"),
        ("--scenario", "broken.yaml", b"steps: [unclosed\n  - x: {", "is not valid YAML"),
        ("--scenario", "broken.json", b'{"steps": [', "is not valid JSON"),
        ("--scenario", "list.yaml", b"- text: hi", "must hold a mapping with 'steps'"),
        ("--scenario", "content.yaml", b"steps: [{text: hi, content: x}]", "content must be a list, got str"),
        ("--scenario", "input.yaml", b"steps: [{tool_calls: [{name: a, input: [1]}]}]", "input must be a mapping"),
        ("--scenario", "branches.yaml", b"steps: [{text: a, branches: 5}]", "branches must be a list, got int"),
        ("--scenario", "faults.yaml", b"steps: [{text: a}]\nfaults: [{kind: overloaded, delay: soon}]", "soon"),
        ("--replay", "run.jsonl", b"\xff", "is not UTF-8 text"),
        ("--replay", "run.yaml", b"interactions: 5", "not a recording"),
    ],
)
def test_a_bad_file_is_one_line_naming_it_and_exit_2(
    tmp_path: Path, option: str, name: str, content: bytes, fragment: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    code, output = run_cli(option, str(path))
    assert code == 2
    assert len(output.splitlines()) == 1
    assert str(path) in output
    assert fragment in output


def app_built_by_cli(monkeypatch: pytest.MonkeyPatch, *arguments: str) -> Any:
    """The app `leanloop emulator ARGUMENTS` would serve (serving itself is skipped)."""
    from leanloop.emulator import serving

    built: list[Any] = []
    monkeypatch.setattr(serving, "serve", lambda app, sock: built.append(app))
    code, output = run_cli("--port", "0", *arguments)
    assert code == 0, output
    return built[0]


def test_seed_makes_the_ids_reproducible_and_the_fault_seed_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    from leanloop.emulator import Emulator

    def first_id(*arguments: str) -> str:
        return Emulator.of(app_built_by_cli(monkeypatch, *arguments)).ids.message_id()

    assert first_id("--seed", "4") == first_id("--seed", "4")
    assert first_id("--fault-seed", "4") != first_id("--fault-seed", "4")


def test_latency_and_cache_minimum_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    from leanloop.emulator import Emulator

    knobs = ["--ttft-base", "0.3", "--prefill-rate", "20000", "--output-rate", "40"]
    emulated = Emulator.of(app_built_by_cli(monkeypatch, *knobs, "--min-cache-tokens", "claude-sonnet-4-6=1024"))
    speed = emulated.latency.speed("claude-opus-4-6")
    assert (speed.base_s, speed.output_tokens_per_s) == (0.3, 40.0)
    assert emulated.latency.uncached_s_per_token == pytest.approx(1 / 20_000)
    assert emulated.cache.min_tokens("claude-sonnet-4-6") == 1024
    assert emulated.cache.min_tokens("claude-haiku-4-5") == 4096
    default = Emulator.of(app_built_by_cli(monkeypatch)).latency.speed("claude-opus-4-6")
    assert default.output_tokens_per_s == 45.0


def test_a_bad_cache_minimum_is_one_line_and_exit_2() -> None:
    code, output = run_cli("--min-cache-tokens", "claude-sonnet-4-6:1024")
    assert code == 2
    assert output == (
        "leanloop emulator: --min-cache-tokens takes MODEL=TOKENS (e.g. claude-sonnet-4-6=1024), "
        "got 'claude-sonnet-4-6:1024'\n"
    )


def test_log_writes_one_json_line_per_served_call_as_it_is_answered(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    log.write_text('{"kept": "a line from an earlier start"}\n')
    before = time.time()
    with running_emulator("--log", str(log)) as running:
        reply = running.client.messages.create(
            model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
        lines = log.read_text().splitlines()  # written while the server runs, not at exit
    assert json.loads(lines[0]) == {"kept": "a line from an earlier start"}
    served = json.loads(lines[1])
    assert (served["message_id"], served["model"], served["status"]) == (reply.id, "claude-haiku-4-5", 200)
    assert served["usage"]["output_tokens"] == reply.usage.output_tokens
    assert served["cost_usd"] > 0
    assert before <= served["answered_at"] <= time.time()  # wall clock: the other times are emulated


def test_report_explain_and_whatif_read_the_log_one_run_per_emulator_start(tmp_path: Path) -> None:
    log = tmp_path / "served.jsonl"
    with running_emulator("--scenario", str(EXAMPLE_SCENARIO), "--log", str(log)) as running:
        replies = triage(running.client)
    with running_emulator("--log", str(log)) as running:  # a second start appends to the same file
        replies.append(
            running.client.messages.create(
                model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
            )
        )
    served = [json.loads(line) for line in log.read_text().splitlines()]
    billed = [line for line in served if line["status"] == 200]
    assert (len(served), len(billed)) == (5, 4)  # the unknown model's 404 is logged, and bills nothing

    result = CliRunner().invoke(cli_app, ["report", str(log), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["calls"] == 4
    assert report["cost_usd"] == pytest.approx(sum(line["cost_usd"] for line in billed), abs=1e-9)
    for kind, field in [("cache_read", "cache_read_input_tokens"), ("output", "output_tokens")]:
        assert report[f"{kind}_tokens"] == sum(line["usage"][field] for line in billed)
    assert report["cache_read_tokens"] == sum(reply.usage.cache_read_input_tokens for reply in replies) > 0
    assert [run["calls"] for run in report["runs"]] == [3, 1]
    assert [run["models"] for run in report["runs"]] == [["claude-sonnet-4-6"], ["claude-haiku-4-5"]]
    assert report["import"]["files"][0]["format"] == "emulator_log"
    assert report["import"]["skipped"] == {"error responses (HTTP 404): not billed": 1}

    table = CliRunner().invoke(cli_app, ["report", str(log)], env={"COLUMNS": "160"})
    assert table.exit_code == 0, table.output
    assert "4 calls in 2 runs from 1 file (emulator_log)" in table.stdout
    assert table.stderr.splitlines() == ["not model calls: 1 error response (HTTP 404): not billed"]
    for command in ("explain", "whatif"):
        other = CliRunner().invoke(cli_app, [command, str(log), "--format", "json"])
        assert other.exit_code == 0, other.output
        assert json.loads(other.stdout)["calls"] == 4


def test_a_log_that_cannot_be_opened_is_one_line_and_exit_2(tmp_path: Path) -> None:
    code, output = run_cli("--log", str(tmp_path / "missing" / "calls.jsonl"))
    assert code == 2
    assert output.startswith(f"leanloop emulator: cannot write the call log {tmp_path / 'missing' / 'calls.jsonl'}: ")
    assert len(output.splitlines()) == 1
