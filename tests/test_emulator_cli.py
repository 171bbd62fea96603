"""`leanloop emulator`: the README's way of running it, driven by the synchronous official SDK over a real port."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
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


def test_cli_serves_a_multi_turn_tool_conversation_with_cache_reads() -> None:
    port = free_port()
    command = [str(LEANLOOP), "emulator", "--port", str(port), "--time-scale", "0", "--scenario", str(EXAMPLE_SCENARIO)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(port, process)
        client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="any-key", max_retries=0)
        tools: Any = [
            {"name": "read_log", "input_schema": {"type": "object"}},
            {"name": "count_matches", "input_schema": {"type": "object"}},
        ]
        messages: list[Any] = [{"role": "user", "content": "Why is the app down?"}]
        replies = []
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
        assert [r.stop_reason for r in replies] == ["tool_use", "tool_use", "end_turn"]
        assert replies[0].usage.cache_read_input_tokens == 0
        assert all(r.usage.cache_read_input_tokens for r in replies[1:])
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model="claude-unknown", max_tokens=5, messages=messages[:1])
        client.close()
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert f"http://127.0.0.1:{port}" in out
    assert "Traceback" not in err


def test_cli_rejects_a_bad_scenario(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [{txt: typo}]")
    result = CliRunner().invoke(cli_app, ["emulator", "--scenario", str(bad)])
    assert result.exit_code == 2
    assert "unknown keys" in result.output
