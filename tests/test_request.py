"""request: same history, same bytes; breakpoints placed right, never more than 4, TTLs ordered."""

from __future__ import annotations

import json
from typing import Any

import pytest

from leanloop.errors import ConfigError
from leanloop.request import CachePolicy, RequestBuilder, sorted_json
from leanloop.tools import Tool

MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a log analyst. Use the tools and answer precisely. " * 200  # ~2,400 tokens


def tool(name: str, size: int = 1) -> Tool:
    return Tool(
        {"name": name, "description": "d " * size, "input_schema": {"type": "object", "properties": {}}}, lambda: ""
    )


def builder(**kwargs: Any) -> RequestBuilder:
    defaults: dict[str, Any] = {
        "model": MODEL,
        "system": SYSTEM,
        "tools": [tool("b"), tool("a")],
        "cache": CachePolicy(),
    }
    return RequestBuilder(**{**defaults, **kwargs})


def conversation(turns: int, results_per_turn: int = 1) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "why is checkout failing?"}]
    for t in range(turns):
        uses = [
            {"type": "tool_use", "id": f"t{t}.{k}", "name": "a", "input": {"k": k}} for k in range(results_per_turn)
        ]
        messages.append({"role": "assistant", "content": uses})
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": u["id"], "content": f"result {t}"} for u in uses],
            }
        )
    return messages


def marks(kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for i, t in enumerate(kwargs.get("tools", [])):
        if "cache_control" in t:
            found.append((f"tools.{i}", t["cache_control"].get("ttl", "5m")))
    system = kwargs.get("system")
    for i, b in enumerate(system if isinstance(system, list) else []):
        if "cache_control" in b:
            found.append((f"system.{i}", b["cache_control"].get("ttl", "5m")))
    for m, message in enumerate(kwargs["messages"]):
        content = message["content"]
        for k, b in enumerate(content if isinstance(content, list) else []):
            if "cache_control" in b:
                found.append((f"messages.{m}.content.{k}", b["cache_control"].get("ttl", "5m")))
    return found


def test_same_history_gives_the_same_bytes_and_tools_are_in_name_order() -> None:
    one, two = builder(), builder()
    a = one.build(conversation(3), max_tokens=100).kwargs
    b = two.build(conversation(3), max_tokens=100).kwargs
    assert json.dumps(a) == json.dumps(b)
    assert [t["name"] for t in a["tools"]] == ["a", "b"]


def test_sorted_json_sorts_every_level() -> None:
    value = {"b": [{"z": 1, "a": 2}], "a": {"y": 1, "x": 2}}
    assert json.dumps(sorted_json(value)) == '{"a": {"x": 2, "y": 1}, "b": [{"a": 2, "z": 1}]}'


def test_breakpoints_on_system_and_newest_turn_and_history_untouched() -> None:
    messages = conversation(2)
    snapshot = json.dumps(messages)
    built = builder().build(messages, max_tokens=100)
    assert marks(built.kwargs) == [("system.0", "5m"), ("messages.4.content.0", "5m")]
    assert json.dumps(messages) == snapshot  # the stored history is never modified
    assert dict(built.breakpoints) == {"system.0": "5m", "messages.4.content.0": "5m"}


def test_tools_get_a_breakpoint_when_they_alone_reach_the_minimum() -> None:
    big = builder(tools=[tool("a", 1500), tool("b", 1500)])
    found = marks(big.build(conversation(1), max_tokens=100).kwargs)
    assert ("tools.1", "5m") in found
    assert len(found) == 3


def test_below_minimum_places_nothing_and_warns_once() -> None:
    small = builder(system="Be brief.")
    first = small.build(conversation(0), max_tokens=100)
    second = small.build(conversation(1), max_tokens=100)
    assert marks(first.kwargs) == marks(second.kwargs) == []
    assert len(first.notices) == 1 and "minimum cacheable length" in first.notices[0]
    assert second.notices == ()


def test_one_hour_everywhere_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENABLE_PROMPT_CACHING_1H", "1")
    found = marks(builder().build(conversation(2), max_tokens=100).kwargs)
    assert {ttl for _, ttl in found} == {"1h"}


def test_intermediate_breakpoint_when_a_turn_adds_more_than_fifteen_positions() -> None:
    b = builder()
    messages = conversation(1)
    b.build(messages, max_tokens=100)  # rolling breakpoint at messages.2
    for t in range(9):  # 9 sequential turns = 18 new positions in one go (e.g. after a resume)
        messages.append({"role": "assistant", "content": [{"type": "text", "text": f"thinking {t}"}]})
        messages.append({"role": "user", "content": [{"type": "text", "text": f"more {t}"}]})
    built = b.build(messages, max_tokens=100)
    found = [path for path, _ in marks(built.kwargs)]
    assert len(found) == 3
    middle = found[1]
    assert middle.startswith("messages.") and middle != f"messages.{len(messages) - 1}.content.0"
    positions = dict(zip((blk.path for blk in built.prompt.blocks), built.prompt.positions, strict=True))
    assert positions[middle] - positions["messages.2.content.0"] <= 15


def test_never_more_than_four_counting_the_callers_own() -> None:
    system = [
        {"type": "text", "text": SYSTEM[: len(SYSTEM) // 2], "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "tail", "cache_control": {"type": "ephemeral"}},
    ]
    b = builder(system=system, tools=[tool("a", 3000)])
    built = b.build(conversation(2), max_tokens=100)
    assert len(built.breakpoints) == 4
    assert ("messages.4.content.0", "5m") in built.breakpoints  # the rolling one wins the last slot


def test_ttls_stay_ordered_around_the_callers_own_marks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENABLE_PROMPT_CACHING_1H", "1")
    system = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "5m"}}]
    built = builder(system=system).build(conversation(2), max_tokens=100)
    assert built.breakpoints[-1] == ("messages.4.content.0", "5m")  # lowered: a 1h after a 5m is a 400


def test_disabled_cache_sends_no_marks() -> None:
    built = builder(cache=CachePolicy(enabled=False)).build(conversation(2), max_tokens=100)
    assert marks(built.kwargs) == []
    assert builder(cache=None).build(conversation(2), max_tokens=100).breakpoints == ()


def test_bad_input_is_named() -> None:
    with pytest.raises(ConfigError, match="two tools share a name"):
        builder(tools=[tool("a"), tool("a")])
    with pytest.raises(ConfigError, match="ttl"):
        CachePolicy(ttl="24h")  # type: ignore[arg-type]
    bad = [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "2h"}}]
    with pytest.raises(ConfigError, match="would be rejected by the API"):
        builder(system=bad).build(conversation(0), max_tokens=10)


def test_automatic_caching_takes_a_slot_and_the_rolling_place() -> None:
    system = [
        {"type": "text", "text": SYSTEM[: len(SYSTEM) // 2], "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}},
    ]
    auto = {"cache_control": {"type": "ephemeral"}}
    b = builder(system=system, tools=[tool("a", 3000)], params=auto)
    messages = conversation(1)
    b.build(messages, max_tokens=100)
    for t in range(9):  # a turn that would also want an intermediate mark
        messages.append({"role": "assistant", "content": [{"type": "text", "text": f"thinking {t}"}]})
        messages.append({"role": "user", "content": [{"type": "text", "text": f"more {t}"}]})
    built = b.build(messages, max_tokens=100)
    assert len(built.breakpoints) == 4  # two of the caller's, automatic caching's, and one of ours
    ours = [path for path, _ in marks(built.kwargs) if path not in ("system.0", "system.1")]
    assert len(ours) == 1 and ours[0] != f"messages.{len(messages) - 1}.content.0"  # the last block is auto's
    assert built.kwargs["cache_control"] == {"type": "ephemeral"}
    assert built.breakpoints[-1] == (f"messages.{len(messages) - 1}.content.0", "5m")


def test_automatic_caching_with_one_hour_everywhere_does_not_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENABLE_PROMPT_CACHING_1H", "TRUE")
    built = builder(params={"cache_control": {"type": "ephemeral"}}).build(conversation(2), max_tokens=100)
    assert marks(built.kwargs) == [("system.0", "1h")]  # ours 1h, before auto's 5m on the last block
    assert built.breakpoints == (("system.0", "1h"), ("messages.4.content.0", "5m"))
    one_hour_auto = {"cache_control": {"type": "ephemeral", "ttl": "1h"}}
    monkeypatch.delenv("ENABLE_PROMPT_CACHING_1H")
    lifted = builder(params=one_hour_auto).build(conversation(2), max_tokens=100)
    assert lifted.breakpoints == (("system.0", "1h"), ("messages.4.content.0", "1h"))


def test_prefix_and_conversation_can_have_their_own_ttl() -> None:
    built = builder(tools=[tool("a", 3000)], cache=CachePolicy(prefix_ttl="1h", ttl="5m")).build(
        conversation(2), max_tokens=100
    )
    assert marks(built.kwargs) == [("tools.0", "1h"), ("system.0", "1h"), ("messages.4.content.0", "5m")]
    with pytest.raises(ConfigError, match="1h breakpoints must come before 5m ones"):
        CachePolicy(prefix_ttl="5m", ttl="1h")
    with pytest.raises(ConfigError, match="prefix_ttl"):
        CachePolicy(prefix_ttl="2h")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on", " On "])
def test_one_hour_switch_accepts_the_usual_spellings(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ENABLE_PROMPT_CACHING_1H", value)
    assert CachePolicy(prefix_ttl="5m").effective_ttl() == CachePolicy().effective_prefix_ttl() == "1h"
