"""checks: the Agent's arguments (and run()'s) are checked when they are given, each bad one named with what is wrong,
instead of surfacing as an SDK or Python traceback in the middle of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import pytest

from leanloop import Agent, Budget, LoopGuard, Spend, tool
from leanloop.errors import ConfigError
from leanloop.testing import FunctionModel, say

pytestmark = pytest.mark.anyio
MODEL = "claude-sonnet-4-6"


def lookup(key: str) -> str:
    """Look a key up.

    Args:
        key: The key.
    """
    return f"{key} = 42"


def offline() -> anthropic.AsyncAnthropic:
    return FunctionModel(lambda request: say("ok")).client()


@pytest.mark.parametrize(
    ("client", "message"),
    [
        (
            anthropic.Anthropic(api_key="sk-test-not-a-key", base_url="http://127.0.0.1:9"),
            r"Agent\(client=Anthropic\): the sync client; pass anthropic.AsyncAnthropic",
        ),
        ("http://127.0.0.1:8787", r"Agent\(client='http://127.0.0.1:8787'\): expected an anthropic.AsyncAnthropic.*"),
        (object(), r"Agent\(client=object\): expected an anthropic.AsyncAnthropic.*emulated_client"),
    ],
)
def test_a_client_that_is_not_an_async_anthropic_is_refused_when_the_agent_is_made(client: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Agent(MODEL, client=client)


def test_an_async_anthropic_like_client_is_accepted() -> None:
    Agent(MODEL, client=offline())
    Agent(MODEL, client=anthropic.AsyncAnthropic(api_key="sk-test-not-a-key", base_url="http://127.0.0.1:9"))


def test_without_credentials_or_a_client_the_agent_says_how_to_set_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("ANTHROPIC_PROFILE", raising=False)
    monkeypatch.delenv("ANTHROPIC_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no profile on disk either
    with pytest.raises(ConfigError) as raised:
        Agent(MODEL)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("Agent(client=None): no Anthropic credentials")
    assert "ANTHROPIC_API_KEY" in message
    assert "emulator" in message and "client=" in message


def test_broken_credentials_in_the_environment_are_one_error_when_the_agent_is_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_PROFILE", "nope")
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"Agent\(client=None\): the SDK cannot make a client from the environment"):
        Agent(MODEL)


def test_with_a_key_in_the_environment_no_client_is_needed_and_the_key_is_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = "sk-ant-api03-" + "Zx9" * 20
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    agent = Agent(MODEL)
    assert agent.client.api_key == key
    with pytest.raises(ConfigError) as raised:
        Agent(MODEL, system=[1, 2])  # type: ignore[list-item]
    assert "Zx9Zx9" not in str(raised.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"system": [1, 2]}, r"Agent\(system=\[0\]\): a text block like \{'type': 'text', 'text': ...\}, got int"),
        ({"system": [{"type": "image"}]}, r"Agent\(system=\[0\]\): a text block"),
        ({"system": [{"type": "text", "text": 5}]}, r"Agent\(system=\[0\]\): a text block"),
        ({"tools": lookup}, r"Agent\(tools=\.\.\.\): a list of tools, got a function: write tools=\[lookup\]"),
        ({"tools": 5}, r"Agent\(tools=\.\.\.\): a list of tools, got int"),
        ({"tools": "lookup"}, r"Agent\(tools=\.\.\.\): a list of tools, got str"),
        ({"tools": ["lookup"]}, r"Agent\(tools=\[0\]\): cannot make a tool from str"),
        ({"trace": 5}, r"Agent\(trace=5\): a file path \(str or os.PathLike\)"),
        ({"loop_guard": True}, r"Agent\(loop_guard=True\): a LoopGuard, a whole number of repeats, or None"),
        ({"loop_guard": "3"}, r"Agent\(loop_guard='3'\): a LoopGuard"),
        (
            {"budget": Spend(Budget(usd=1))},
            r"Agent\(budget=\.\.\.\): expected a Budget, got Spend.*run\(spend=\.\.\.\)",
        ),
        ({"budget": 0.5}, r"Agent\(budget=\.\.\.\): expected a Budget, got float.*Budget\(usd=0.5\)"),
    ],
)
def test_bad_arguments_are_named_when_the_agent_is_made(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Agent(MODEL, client=offline(), **kwargs)


def test_a_trace_path_that_is_a_folder_is_refused_when_the_agent_is_made(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Agent\(trace=.*\): a folder, not a file"):
        Agent(MODEL, client=offline(), trace=tmp_path)


def test_a_trace_in_a_missing_folder_gets_the_folder_made(tmp_path: Path) -> None:
    """The API makes the folders of the file it was told to write (the CLI refuses a missing folder instead: a path
    typed on a command line with a wrong folder is most often a typo)."""
    path = tmp_path / "runs" / "today" / "run.jsonl"
    result = Agent(MODEL, client=offline(), trace=path).run_sync("go")
    assert result.ok and path.is_file()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budget": Spend(Budget(usd=1))}, r"run\(budget=\.\.\.\): expected a Budget, got Spend: pass it as spend="),
        ({"budget": 0.5}, r"run\(budget=\.\.\.\): expected a Budget, got float.*Budget\(usd=0.5\)"),
        ({"spend": Budget(usd=1)}, r"run\(spend=\.\.\.\): expected a Spend, got Budget: pass it as budget="),
        ({"spend": 0.5}, r"run\(spend=\.\.\.\): expected a Spend, got float.*Spend\(Budget\(usd=0.5\)\)"),
    ],
)
async def test_budget_and_spend_mixed_up_in_run_are_named(kwargs: dict[str, Any], message: str) -> None:
    agent = Agent(MODEL, client=offline())
    with pytest.raises(ConfigError, match=message):
        await agent.run("go", **kwargs)
    with pytest.raises(ConfigError, match=message):
        agent.run_sync("go", **kwargs)


def test_spend_needs_a_budget() -> None:
    with pytest.raises(ConfigError, match=r"Spend\(budget=0.1\): expected a Budget, e.g. Spend\(Budget\(usd=0.1\)\)"):
        Spend(0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize("repeats", ["3", 0, -1, 2.5, True])
def test_loop_guard_repeats_must_be_a_whole_number_of_at_least_one(repeats: Any) -> None:
    with pytest.raises(ConfigError, match=rf"LoopGuard\(repeats={repeats!r}\): must be a whole number of at least 1"):
        LoopGuard(repeats=repeats)


def test_tool_definitions_given_as_pairs_are_checked_when_the_agent_is_made() -> None:
    def handler() -> str:
        return "x"

    cases = [
        ({"name": "x"}, r"tool 'x': its definition needs an 'input_schema'"),
        ({"name": "x", "input_schema": {"type": "array"}}, r"tool 'x': input_schema must be a JSON schema of type"),
        ({"name": "x", "input_schema": {"type": "object"}, "description": 5}, r"tool 'x': description must be"),
        ({"name": "bad name", "input_schema": {"type": "object"}}, r"tool name 'bad name' must be 1-64"),
    ]
    for definition, message in cases:
        with pytest.raises(ConfigError, match=message):
            Agent(MODEL, client=offline(), tools=[(definition, handler)])
    good = {"name": "x", "description": "X.", "input_schema": {"type": "object", "properties": {}}}
    assert Agent(MODEL, client=offline(), tools=[(good, handler)]).tools["x"].handler is handler


def test_a_plain_function_is_a_tool_as_if_decorated() -> None:
    agent = Agent(MODEL, client=offline(), tools=[lookup])
    assert agent.tools["lookup"].definition == tool(lookup).definition
