"""emulator.scenario: scripted models from YAML/JSON, played through the official SDK like a real agent loop."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import anthropic
import pytest

from leanloop.emulator import (
    EXAMPLE_SCENARIO,
    Emulator,
    Reply,
    Scenario,
    ScenarioExhausted,
    async_client,
    create_app,
    load_scenario,
)
from leanloop.emulator.scenario import Branch, Condition, Step
from leanloop.errors import ConfigError

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
SYSTEM = "You triage production incidents from their logs. Be precise and name the root cause. " * 150
TOOLS: list[Any] = [
    {"name": "read_log", "description": "Read a log file.", "input_schema": {"type": "object", "properties": {}}},
    {"name": "count_matches", "description": "Count lines.", "input_schema": {"type": "object", "properties": {}}},
]


def run_tool(name: str, tool_input: dict[str, Any], failures: dict[str, int]) -> tuple[str, bool]:
    """A fake tool box: the database log fails as many times as ``failures`` says."""
    path = str(tool_input.get("path", ""))
    if name == "read_log" and "db" in path and failures.get(path, 0) > 0:
        failures[path] -= 1
        return "permission denied", True
    return f"{name} ok: 42 lines", False


async def agent_loop(client: anthropic.AsyncAnthropic, failures: dict[str, int]) -> list[anthropic.types.Message]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "The app is down. Why?"}]
    replies: list[anthropic.types.Message] = []
    for _ in range(10):
        reply = await client.messages.create(
            model=MODEL,
            max_tokens=1024,
            system=SYSTEM,
            tools=TOOLS,
            messages=messages,  # type: ignore[arg-type]
            cache_control={"type": "ephemeral"},  # automatic caching: the breakpoint moves with the conversation
        )
        replies.append(reply)
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]})
        if reply.stop_reason != "tool_use":
            return replies
        results = []
        for block in reply.content:
            if block.type == "tool_use":
                output, failed = run_tool(block.name, dict(block.input), failures)
                results.append({"type": "tool_result", "tool_use_id": block.id, "content": output, "is_error": failed})
        messages.append({"role": "user", "content": results})
    raise AssertionError("the scenario never finished")


async def test_example_scenario_runs_a_multi_turn_tool_conversation_with_cache_reads() -> None:
    app = create_app({MODEL: load_scenario(EXAMPLE_SCENARIO)})
    replies = await agent_loop(async_client(app), failures={"/var/log/db/postgres.log": 2})
    calls = [[b.name for b in r.content if b.type == "tool_use"] for r in replies]
    assert calls == [["read_log", "read_log"], ["read_log"], ["read_log"], ["count_matches"], []]
    assert replies[-1].stop_reason == "end_turn"
    final = replies[-1].content[0]
    assert final.type == "text"
    assert "max_connections" in final.text
    reads = [r.usage.cache_read_input_tokens or 0 for r in replies]
    assert reads[0] == 0
    assert all(later > earlier for earlier, later in itertools.pairwise(reads))  # reads from call 2 on
    assert [c.stop_reason for c in Emulator.of(app).calls] == ["tool_use"] * 4 + ["end_turn"]


async def test_without_failures_the_retry_step_is_skipped() -> None:
    app = create_app({MODEL: load_scenario(EXAMPLE_SCENARIO)})
    replies = await agent_loop(async_client(app), failures={})
    assert [len([b for b in r.content if b.type == "tool_use"]) for r in replies] == [2, 1, 0]


def conversation(*turns: tuple[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": role, "content": content} for role, content in turns]}


def test_position_replays_branches_over_the_history() -> None:
    retry = Branch(Condition(tool_error=True), Reply([{"type": "text", "text": "again"}]), next="stay")
    scenario = Scenario(
        [
            Step("a", Reply([{"type": "text", "text": "first"}])),
            Step("b", None, (retry,)),
            Step("c", Reply([{"type": "text", "text": "last"}])),
        ],
        after_last="error",
    )
    error = [{"type": "tool_result", "tool_use_id": "t", "content": "boom", "is_error": True}]
    fine = [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]
    history = [("user", "go"), ("assistant", "first"), ("user", error), ("assistant", "again"), ("user", error)]
    assert scenario(conversation(*history)).content[0]["text"] == "again"
    assert scenario(conversation(*history[:-1], ("user", fine))).content[0]["text"] == "last"
    done = [*history[:-1], ("user", fine), ("assistant", "last"), ("user", "more?")]
    with pytest.raises(ScenarioExhausted):
        scenario(conversation(*done))


def test_conditions_on_result_and_user_text() -> None:
    scenario = Scenario.from_mapping(
        {
            "after_last": "repeat",
            "steps": [
                {
                    "branches": [
                        {"when": {"result_contains": "denied"}, "text": "no access"},
                        {"when": {"user_contains": "hello"}, "text": "hi!"},
                    ],
                    "text": "default",
                }
            ],
        }
    )
    denied = [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "access denied"}]}]
    assert scenario(conversation(("user", denied))).content[0]["text"] == "no access"
    assert scenario(conversation(("user", "hello there"))).content[0]["text"] == "hi!"
    assert scenario(conversation(("user", "what?"))).content[0]["text"] == "default"
    repeated = conversation(("user", "x"), ("assistant", "default"), ("user", "hello"))
    assert scenario(repeated).content[0]["text"] == "hi!"  # after_last: repeat plays the last step again


async def test_after_last_finish_says_done() -> None:
    scenario = Scenario.from_mapping({"steps": [{"text": "only step"}]})
    client = async_client(create_app({MODEL: scenario}))
    messages: list[Any] = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "only step"}]
    messages.append({"role": "user", "content": "b"})
    reply = await client.messages.create(model=MODEL, max_tokens=50, messages=messages)
    assert reply.content[0].type == "text"
    assert reply.content[0].text == "Done."


async def test_after_last_error_is_a_500_naming_the_scenario() -> None:
    scenario = Scenario.from_mapping({"name": "short", "after_last": "error", "steps": [{"text": "x"}]})
    client = async_client(create_app({MODEL: scenario}))
    messages: list[Any] = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "x"}]
    messages.append({"role": "user", "content": "b"})
    with pytest.raises(anthropic.InternalServerError, match="scenario 'short' has no step left"):
        await client.messages.create(model=MODEL, max_tokens=50, messages=messages)


def test_json_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    steps = [{"tool_calls": [{"name": "a", "input": {"x": 1}}, {"name": "b", "id": "toolu_01fixed"}]}]
    path.write_text(json.dumps({"steps": steps}))
    reply = load_scenario(path)(conversation(("user", "go")))
    assert [b["name"] for b in reply.content] == ["a", "b"]
    assert reply.content[1]["id"] == "toolu_01fixed"
    assert reply.resolved_stop_reason == "tool_use"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"steps": []}, "has no steps"),
        ({"steps": [{"txt": "typo"}]}, "unknown keys"),
        ({"steps": [{"text": "a", "next": "nowhere"}]}, "names no step"),
        ({"steps": [{"branches": [{"when": {"tool_eror": True}, "text": "x"}]}]}, "unknown keys"),
        ({"steps": [{"tool_calls": [{"input": {}}]}]}, "needs a name"),
        ({"steps": [{"text": "a"}], "after_last": "loop"}, "after_last"),
    ],
)
def test_bad_scenarios_say_what_is_wrong(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Scenario.from_mapping(data)


def test_unreadable_scenario_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("steps: [unclosed")
    with pytest.raises(ConfigError, match="not valid"):
        load_scenario(broken)


def test_example_scenario_declares_no_faults() -> None:
    assert load_scenario(EXAMPLE_SCENARIO).faults is None
    with_faults = Scenario.from_mapping({"steps": [{"text": "a"}], "faults": [{"kind": "overloaded", "nth": 2}]})
    assert with_faults.faults is not None
    assert with_faults.faults.rules[0].nth == frozenset({2})


async def test_a_step_that_stays_gets_fresh_ids_for_its_fixed_ids() -> None:
    data = {"steps": [{"tool_calls": [{"name": "read_log", "id": "toolu_01fixedFixedFixedFixed1"}], "next": "stay"}]}
    client = async_client(create_app({MODEL: Scenario.from_mapping(data)}), max_retries=0)
    messages: list[Any] = [{"role": "user", "content": "go"}]
    ids = []
    for _ in range(3):
        reply = await client.messages.create(model=MODEL, max_tokens=200, tools=TOOLS, messages=messages)
        (call,) = [b for b in reply.content if b.type == "tool_use"]
        ids.append(call.id)
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id}]})
    assert ids[0] == "toolu_01fixedFixedFixedFixed1"
    assert len(set(ids)) == 3


def test_conditions_look_at_the_whole_user_turn() -> None:
    # Tool results followed by a separate user message: the API merges them into one turn, so does the scenario.
    retry = {"branches": [{"when": {"tool_error": True}, "text": "retrying"}], "text": "all good"}
    scenario = Scenario.from_mapping({"steps": [{"text": "reading"}, retry]})
    failed = [{"type": "tool_result", "tool_use_id": "t", "content": "boom", "is_error": True}]
    history = conversation(("user", "go"), ("assistant", "reading"), ("user", failed), ("user", "Please continue."))
    assert scenario(history).content[0]["text"] == "retrying"


def test_conditions_see_the_user_turn_through_a_trailing_system_message() -> None:
    # Claude Code on Opus 4.8 ends its request with a role "system" message after the user's prompt: the branch
    # must still see the prompt and the tool results, as the model would.
    spawn = {"when": {"user_contains": "SPAWN"}, "text": "spawning"}
    failed = {"when": {"tool_error": True}, "text": "retrying"}
    scenario = Scenario.from_mapping({"steps": [{"branches": [spawn], "text": "plain"}, {"branches": [failed]}]})
    first = conversation(("user", "SPAWN a helper"), ("system", "Available agent types: ..."))
    assert scenario(first).content[0]["text"] == "spawning"
    result = [{"type": "tool_result", "tool_use_id": "t", "content": "boom", "is_error": True}]
    later = conversation(("user", "SPAWN"), ("assistant", "spawning"), ("user", result), ("system", "reminder"))
    assert scenario(later).content[0]["text"] == "retrying"


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ({"tool_error": "true"}, "step 1, branch 1: when.tool_error must be true or false, got str 'true'"),
        ({"result_contains": 42}, "step 1, branch 1: when.result_contains must be a string, got int 42"),
        ({"user_contains": ["a"]}, "step 1, branch 1: when.user_contains must be a string, got list"),
    ],
)
def test_condition_values_are_type_checked_at_load(tmp_path: Path, when: dict[str, Any], message: str) -> None:
    path = tmp_path / "bad_when.json"
    path.write_text(json.dumps({"name": "s", "steps": [{"branches": [{"when": when, "text": "x"}], "text": "y"}]}))
    with pytest.raises(ConfigError) as caught:
        load_scenario(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_the_scenario_format_in_the_docs_loads(tmp_path: Path) -> None:
    import re

    docs = Path(__file__).resolve().parents[1] / "docs" / "emulator.md"
    blocks = re.findall(r"```yaml\n# scenario\n(.*?)```", docs.read_text(), flags=re.DOTALL)
    assert blocks
    for number, block in enumerate(blocks):
        path = tmp_path / f"docs_{number}.yaml"
        path.write_text(block)
        scenario = load_scenario(path)
        assert scenario.steps
        assert scenario.faults is not None
