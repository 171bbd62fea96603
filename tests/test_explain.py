"""explain: which block changed, how, and whether a call missed."""

from __future__ import annotations

import pytest

from leanloop.cachesim import prompt_from_request
from leanloop.explain import classify_change, detect_miss, diff_prints, diff_prompts, diff_texts, lint_volatile
from leanloop.trace import BlockPrint
from leanloop.usage import Usage

SYSTEM = "You triage production incidents from logs. " * 60


def request(
    system: str = SYSTEM, messages: list[dict[str, object]] | None = None, **extra: object
) -> dict[str, object]:
    tools = extra.pop(
        "tools", [{"name": "a", "input_schema": {"type": "object"}}, {"name": "b", "input_schema": {"type": "object"}}]
    )
    return {
        "model": "claude-sonnet-4-6",
        "system": system,
        "tools": tools,
        "messages": messages or [{"role": "user", "content": "why?"}],
        **extra,
    }


@pytest.mark.parametrize(
    ("before", "after", "cause"),
    [
        ("Now: 2026-12-03T12:03:07Z.", "Now: 2026-12-03T12:04:15Z.", "timestamp"),
        ("at 09:15:02 today", "at 09:15:44 today", "timestamp"),
        ("id 3f2b1c9e-1234-4abc-9def-0123456789ab", "id 9a2b1c9e-1234-4abc-9def-0123456789ab", "uuid"),
        ("session sess_8fK2mQ9xLp3RtY7w", "session sess_1aB2cD3eF4gH5iJ6", "random id"),
        ('{"pod":"a","ns":"b"}', '{"ns":"b","pod":"a"}', "key order"),
        ("be nice", "be kind", "edited"),
        ("abc", "abcdef", "appended"),
        ("abcdef", "abc", "truncated"),
        ("Today is 2026-12-03.", "Today is 2026-12-04.", "date"),
    ],
)
def test_classify_change(before: str, after: str, cause: str) -> None:
    assert classify_change(before, after) == cause


def test_timestamp_in_system_prompt_is_named_with_before_and_after() -> None:
    a = prompt_from_request(request(SYSTEM + "Time: 12:03:07"))
    b = prompt_from_request(request(SYSTEM + "Time: 12:04:15"))
    change = diff_prompts(a, b)
    assert change is not None
    assert (change.path, change.section, change.cause) == ("system.0", "system", "timestamp")
    assert (change.before, change.after) == ("…12:03:07", "…12:04:15")
    assert change.describe() == "system.0 changed (timestamp): '…12:03:07' -> '…12:04:15'"


@pytest.mark.parametrize(
    ("before", "after", "shown"),
    [
        # the README's example: the changed token whole, no cut digits, no JSON around it
        ("Now: 12:03:07 UTC. Be brief.", "Now: 12:04:15 UTC. Be brief.", ("…12:03:07…", "…12:04:15…")),
        ("Request 1764763387 received", "Request 1764763999 received", ("…1764763387…", "…1764763999…")),
        ("You are careful and be nice to users.", "You are careful and be kind to users.", ("…nice…", "…kind…")),
        ("abc", "abcdef", ("abc", "abcdef")),
        (
            "session sess_8fK2mQ9xLp3RtY7w ok",
            "session sess_1aB2cD3eF4gH5iJ6 ok",
            ("…sess_8fK2mQ9xLp3RtY7w…", "…sess_1aB2cD3eF4gH5iJ6…"),
        ),
    ],
)
def test_the_excerpt_is_the_changed_words(before: str, after: str, shown: tuple[str, str]) -> None:
    change = diff_texts([("system.0", before)], [("system.0", after)])
    assert change is not None
    assert (change.before, change.after) == shown


def test_the_excerpt_of_a_json_block_is_its_text_not_the_json() -> None:
    def block(text: str) -> dict[str, object]:
        return {"role": "user", "content": [{"type": "text", "text": text}, {"type": "text", "text": "tail"}]}

    a = prompt_from_request(request(messages=[block("Deploy 2026-12-03T12:03:07Z done")]))
    b = prompt_from_request(request(messages=[block("Deploy 2026-12-03T12:04:15Z done")]))
    change = diff_prompts(a, b)
    assert change is not None
    assert (change.before, change.after) == ("…2026-12-03T12:03:07Z…", "…2026-12-03T12:04:15Z…")
    assert '"' not in (change.before or "") + (change.after or "")


def test_a_long_edit_is_shortened_in_the_middle() -> None:
    change = diff_texts([("system.0", "a " + "x" * 300)], [("system.0", "a " + "y" * 300)])
    assert change is not None
    assert len(change.before or "") <= 61 and "…" in (change.before or "")


def test_extension_is_not_a_change() -> None:
    a = prompt_from_request(request())
    b = prompt_from_request(
        request(
            messages=[
                {"role": "user", "content": "why?"},
                {"role": "assistant", "content": "because"},
                {"role": "user", "content": "ok"},
            ]
        )
    )
    assert diff_prompts(a, b) is None


def test_tool_order_and_model_switch() -> None:
    tools = [{"name": "a", "input_schema": {"type": "object"}}, {"name": "b", "input_schema": {"type": "object"}}]
    a = prompt_from_request(request(tools=tools))
    b = prompt_from_request(request(tools=tools[::-1]))
    change = diff_prompts(a, b)
    assert change is not None
    assert (change.section, change.cause) == ("tools", "tool order")
    switched = prompt_from_request({**request(tools=tools), "model": "claude-haiku-4-5"})
    change = diff_prompts(a, switched)
    assert change is not None
    assert change.cause == "model switch"
    assert "claude-haiku-4-5" in change.describe()


def test_key_order_in_tool_input_is_found_in_the_right_message() -> None:
    def conversation(tool_input: dict[str, object]) -> dict[str, object]:
        return request(
            messages=[
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "a", "input": tool_input}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
            ]
        )

    change = diff_prompts(
        prompt_from_request(conversation({"x": 1, "y": 2})), prompt_from_request(conversation({"y": 2, "x": 1}))
    )
    assert change is not None
    assert (change.path, change.cause) == ("messages.1.content.0", "key order")


def test_removed_blocks_and_hash_only_prints() -> None:
    before = [("messages.0.content.0", "a"), ("messages.1.content.0", "b")]
    change = diff_texts(before, before[:1])
    assert change is not None
    assert (change.path, change.cause) == ("messages.1.content.0", "removed")
    old = [BlockPrint("system.0", "aa", 10), BlockPrint("messages.0.content.0", "bb", 5)]
    new = [BlockPrint("system.0", "cc", 10), BlockPrint("messages.0.content.0", "bb", 5)]
    change = diff_prints(old, new)
    assert change is not None
    assert (change.path, change.cause, change.before) == ("system.0", "changed", None)


def test_detect_miss() -> None:
    previous = Usage(input_tokens=3, cache_write_5m_tokens=500, cache_read_tokens=3000, output_tokens=100)
    healthy = Usage(input_tokens=3, cache_write_5m_tokens=400, cache_read_tokens=3500)
    assert detect_miss(previous, healthy, gap_s=2) is None
    missed = Usage(input_tokens=3, cache_write_5m_tokens=3900)
    miss = detect_miss(previous, missed, gap_s=2)
    assert miss is not None
    assert miss.lost_tokens == 3500
    assert "evicted" in miss.reason
    expired = detect_miss(previous, missed, gap_s=400)
    assert expired is not None
    assert "expired" in expired.reason
    assert detect_miss(Usage(input_tokens=900), missed, gap_s=1) is None  # nothing was cached before


def test_lint_volatile_finds_what_changes() -> None:
    findings = lint_volatile(
        "You are ops-bot. Now 2026-12-03T12:03:07Z. Request req_01ABCdefGHIjkl. "
        "Trace 3f2b1c9e-1234-4abc-9def-0123456789ab. Epoch 1764763387.",
        "system.0",
    )
    assert [f.kind for f in findings] == ["uuid", "timestamp", "timestamp", "random id"]
    assert all(f.where == "system.0" for f in findings)
    assert lint_volatile("You are a careful log analyst. Use the tools; be brief.", "system.0") == []
    assert [f.kind for f in lint_volatile("Knowledge as of 2026-12-03.", "system.0")] == ["date"]


@pytest.mark.parametrize(
    ("text", "kind", "excerpt"),
    [
        ("Today is 12/03/2026, be brief.", "date", "12/03/2026"),
        ("Report for 2026-12-03.", "date", "2026-12-03"),
        ("Report for 2026/12/03.", "date", "2026/12/03"),
        ("Report for 3 December 2026.", "date", "3 December 2026"),
        ("The time is 14:35 now.", "timestamp", "14:35"),
        ("The time is 2:35 pm.", "timestamp", "2:35 pm"),
        ("Today is Thursday.", "date", "Today is Thursday"),
        ("It's Monday, so be brief.", "date", "It's Monday"),
        ("Thursday, December 3 2026 at the office", "date", "Thursday, December 3 2026"),
    ],
)
def test_lint_finds_dates_clock_times_and_weekdays(text: str, kind: str, excerpt: str) -> None:
    findings = lint_volatile(text, "system.0")
    assert [(f.kind, f.excerpt) for f in findings] == [(kind, excerpt)]


@pytest.mark.parametrize(
    "text",
    [
        "Connect to db-primary:5432 and retry.",
        "Use a 16:9 aspect ratio.",
        "Work on weekdays, never on Sunday.",
        "The repo is at commit 3f2b1c9e0d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c.",  # a git SHA is content, not volatile
        "Image digest sha256:" + "a1b2c3d4" * 8,
    ],
)
def test_lint_leaves_stable_content_alone(text: str) -> None:
    assert lint_volatile(text, "system.0") == []


def test_a_git_sha_that_changes_is_still_named() -> None:
    before = "Repo at 3f2b1c9e0d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c."
    after = "Repo at 9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b."
    assert classify_change(before, after) == "random id"
