"""history: when a cut happens, what it keeps, that the result is a transcript the API accepts, and what it costs
the cache. Properties run on generated transcripts; one test runs on a real Claude Code sub-agent transcript."""

from __future__ import annotations

import doctest
import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import leanloop.history
from leanloop.cachesim import CacheSim
from leanloop.emulator.catalog import model_card
from leanloop.emulator.validate import check_message_request
from leanloop.errors import ConfigError
from leanloop.history import (
    CLEARED_PREFIX,
    NOTE_PREFIX,
    SUMMARY_SYSTEM,
    Compaction,
    Cut,
    Sizes,
    apply,
    context_window,
    plan,
    summary_request,
)
from leanloop.request import CachePolicy, RequestBuilder
from leanloop.tools import Tool

MODEL = "claude-sonnet-4-6"
HEAD = 3000  # tools + system
Messages = list[Mapping[str, Any]]


def check_valid(messages: Sequence[Mapping[str, Any]]) -> None:
    """What the API checks (the emulator's validator), plus: the first message is the user's, and every tool_use
    is answered exactly once."""
    check_message_request({"model": MODEL, "max_tokens": 1, "messages": list(messages)}, model_card)
    assert messages[0]["role"] == "user"
    answers = [
        b["tool_use_id"]
        for m in messages
        if isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_result"
    ]
    assert len(answers) == len(set(answers))


def turn_starts(messages: Sequence[Mapping[str, Any]]) -> list[int]:
    return [
        i
        for i, m in enumerate(messages)
        if m["role"] == "assistant" and (i == 0 or messages[i - 1]["role"] != "assistant")
    ]


def words(n: int) -> str:
    return " ".join(f"line{i % 97} ok" for i in range(n))


def run(turns: int, result_words: int = 1500, *, text_words: int = 0) -> Messages:
    """A tool loop: the task, then per turn an assistant tool_use and the user's tool_result."""
    messages: Messages = [{"role": "user", "content": "Find out why checkout fails."}]
    for n in range(turns):
        content: list[dict[str, Any]] = [{"type": "text", "text": words(text_words)}] if text_words else []
        content.append({"type": "tool_use", "id": f"toolu_{n:03d}", "name": "read_log", "input": {"part": n}})
        messages.append({"role": "assistant", "content": content})
        result = {"type": "tool_result", "tool_use_id": f"toolu_{n:03d}", "content": words(result_words)}
        messages.append({"role": "user", "content": [result]})
    return messages


def longest_summary(policy: Compaction) -> str:
    """A summary of exactly the most tokens the side call may return (one token per word here)."""
    return " ".join(["fact"] * policy.summary_max_tokens)


def measure(messages: Sequence[Mapping[str, Any]]) -> Sizes:
    return Sizes.measure(messages, model=MODEL, head_tokens=HEAD)


def cut_of(messages: Messages, policy: Compaction, **kwargs: Any) -> Cut:
    cut = plan(messages, measure(messages), policy, model=MODEL, **kwargs)
    assert cut is not None
    return cut


def test_docstring_example() -> None:
    failures, tried = doctest.testmod(leanloop.history)
    assert tried > 0
    assert failures == 0


# ---------------------------------------------------------------------------------------------------------------
# When


def test_no_cut_at_or_below_the_trigger() -> None:
    messages = run(20)
    total = measure(messages).total
    assert plan(messages, measure(messages), Compaction(trigger_tokens=total), model=MODEL) is None
    assert plan(messages, measure(messages), Compaction(trigger_tokens=total - 1), model=MODEL) is not None


def test_the_default_never_touches_a_normal_run() -> None:
    messages = run(30)  # ~70K tokens: far below 80 % of Sonnet 4.6's 1M window
    assert plan(messages, measure(messages), Compaction(), model=MODEL, max_tokens=4096) is None


def test_automatic_trigger_is_a_share_of_the_window_less_the_answer() -> None:
    policy = Compaction()
    assert context_window("claude-sonnet-4-6") == 1_000_000
    assert context_window("claude-haiku-4-5-20251001") == 200_000
    assert policy.trigger_for("claude-sonnet-4-6", 4096) == 800_000
    assert policy.trigger_for("claude-haiku-4-5", 4096) == 160_000
    assert policy.trigger_for("claude-haiku-4-5", 64_000) == 136_000  # the answer must fit too
    assert policy.target_for("claude-haiku-4-5", 4096) == 80_000
    # An unknown model gets the smallest current window: compacting early costs a rewrite, overflowing ends the run.
    assert policy.trigger_for("claude-next-9") == 160_000
    assert Compaction(trigger_tokens=50_000, target_ratio=0.3).target_for("claude-next-9") == 15_000


def test_a_window_the_api_reported_caps_the_trigger() -> None:
    """A 400 "prompt is too long: N tokens > 100000 maximum" outranks the table, and a trigger set too high."""
    assert Compaction().trigger_for(MODEL, 4096, window=100_000) == 80_000
    assert Compaction(trigger_tokens=900_000).trigger_for(MODEL, 4096, window=100_000) == 80_000
    assert Compaction(trigger_tokens=20_000).trigger_for(MODEL, 4096, window=100_000) == 20_000
    assert Compaction().target_for(MODEL, 4096, window=100_000) == 40_000
    messages = run(40)  # ~90K tokens: under Sonnet 4.6's table trigger, over the reported window's
    assert plan(messages, measure(messages), Compaction(), model=MODEL) is None
    cut = cut_of(messages, Compaction(), window=100_000)
    assert cut.trigger_tokens == 80_000 and cut.tokens_after <= 40_000


def test_force_cuts_below_the_trigger() -> None:
    """After the API said the prompt did not fit, whatever our estimate says."""
    messages = run(20)
    policy = Compaction(trigger_tokens=10 * measure(messages).total)
    assert plan(messages, measure(messages), policy, model=MODEL) is None
    cut = cut_of(messages, policy, force=True)  # the prompt as it is counts as over the trigger: cut it in half
    assert cut.trigger_tokens == measure(messages).total
    assert cut.tokens_after <= cut.target_tokens == measure(messages).total // 2
    lower = cut_of(messages, Compaction(trigger_tokens=measure(messages).total // 2), force=True)
    assert lower.tokens_after <= lower.target_tokens == measure(messages).total // 4


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"trigger_tokens": 0}, "trigger_tokens=0"),
        ({"trigger_tokens": 1.5}, "trigger_tokens=1.5"),
        ({"target_ratio": 1}, "target_ratio=1"),
        ({"target_ratio": 0}, "target_ratio=0"),
        ({"keep_recent_turns": 0}, "keep_recent_turns=0"),
        ({"summary_max_tokens": True}, "summary_max_tokens=True"),
        ({"strategy": "truncate"}, "strategy='truncate'"),
        ({"summarize_with": ""}, "summarize_with=''"),
    ],
)
def test_bad_policy_is_named(arguments: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(".", r"\.")):
        Compaction(**arguments)


def test_sizes_must_match_the_transcript() -> None:
    messages = run(5)
    with pytest.raises(ConfigError, match="sizes has 11 messages, the transcript 12"):
        plan([*messages, {"role": "assistant", "content": "ok"}], measure(messages), Compaction(), model=MODEL)


# ---------------------------------------------------------------------------------------------------------------
# What a cut keeps


def test_clearing_replaces_the_oldest_results_and_keeps_the_task_and_recent_turns() -> None:
    messages = run(40)
    policy = Compaction(trigger_tokens=60_000, keep_recent_turns=4)
    cut = cut_of(messages, policy)
    out = apply(messages, cut)
    check_valid(out)
    assert len(out) == len(messages)  # clearing removes no message
    assert out[0] is messages[0]
    assert all(a is b for a, b in zip(out[-8:], messages[-8:], strict=True))  # the newest 4 turns, untouched
    cleared = [m for m in out if CLEARED_PREFIX in json.dumps(m)]
    assert len(cleared) == len(cut.cleared) > 0
    assert [c.message for c in cut.cleared] == sorted(c.message for c in cut.cleared)  # oldest first
    assert cut.cleared[0].message == 2
    first = out[2]["content"][0]
    assert first["tool_use_id"] == "toolu_000"
    size = measure(messages).blocks[2][0]
    assert f"this read_log result had about {size:,} tokens" in first["content"]  # what was removed, how big
    assert out[1] is messages[1]  # the tool_use itself is kept
    assert cut.tokens_after <= cut.target_tokens == 30_000
    assert measure(out).total == cut.tokens_after
    untouched = [i for i in range(len(out)) if i not in {c.message for c in cut.cleared}]
    assert all(out[i] is messages[i] for i in untouched)


def test_dropping_removes_whole_turns_and_leaves_one_note() -> None:
    messages = run(40)
    cut = cut_of(messages, Compaction(trigger_tokens=60_000, strategy="drop_turns"))
    out = apply(messages, cut)
    check_valid(out)
    assert out[0] is messages[0]
    note = out[1]["content"][0]["text"]
    assert note.startswith(NOTE_PREFIX)
    assert f"{cut.dropped_turns} earlier turns" in note
    assert f"{cut.dropped_turns} tool calls: read_log" in note
    assert out[2]["role"] == "assistant"
    assert len(out) == len(messages) - 2 * cut.dropped_turns + 1
    assert measure(out).total == cut.tokens_after <= cut.target_tokens


def test_clearing_drops_turns_when_clearing_alone_cannot_reach_the_target() -> None:
    """Long assistant texts and short results: clearing saves little, so the oldest turns go as well."""
    messages = run(40, result_words=120, text_words=1500)
    cut = cut_of(messages, Compaction(trigger_tokens=60_000))
    assert cut.dropped_turns > 0
    out = apply(messages, cut)
    check_valid(out)
    assert measure(out).total == cut.tokens_after <= cut.target_tokens


def test_a_cut_that_cannot_reach_the_target_says_so() -> None:
    """The task and the newest turns alone are over the target: everything older goes, and the notice says why."""
    messages = run(8, result_words=6000)
    cut = cut_of(messages, Compaction(trigger_tokens=20_000, keep_recent_turns=4, strategy="drop_turns"))
    assert not cut.reaches_target
    assert cut.dropped_turns == 4
    assert "still above the 10,000-token target" in cut.describe()
    out = apply(messages, cut)
    check_valid(out)
    assert plan(out, measure(out), Compaction(trigger_tokens=20_000, strategy="drop_turns"), model=MODEL) is None


def test_nothing_to_cut_is_none() -> None:
    messages = run(4, result_words=8000)  # all of it is the newest 4 turns
    assert plan(messages, measure(messages), Compaction(trigger_tokens=1000), model=MODEL) is None


def test_a_second_drop_replaces_the_first_note() -> None:
    messages = run(40)
    policy = Compaction(trigger_tokens=60_000, strategy="drop_turns")
    out = apply(messages, cut_of(messages, policy))
    out += run(30)[1:]  # the run goes on: ids differ from the kept ones
    for i, m in enumerate(out[-60:], start=len(out) - 60):
        if m["role"] == "assistant":
            out[i] = {**m, "content": [{**m["content"][0], "id": f"toolu_b{i}"}]}
        else:
            out[i] = {**m, "content": [{**m["content"][0], "tool_use_id": f"toolu_b{i - 1}"}]}
    check_valid(out)
    again = apply(out, cut_of(out, policy))
    check_valid(again)
    assert sum(NOTE_PREFIX in json.dumps(m) for m in again) == 1
    assert again[0] is messages[0]


def test_cleared_results_are_not_cleared_again() -> None:
    messages = run(40)
    policy = Compaction(trigger_tokens=60_000)
    out = apply(messages, cut_of(messages, policy))
    grown = out + run(25)[1:]
    cut = cut_of(grown, policy)
    assert all(CLEARED_PREFIX not in json.dumps(grown[c.message]["content"][c.block]) for c in cut.cleared)


def test_apply_refuses_a_cut_planned_for_another_transcript() -> None:
    messages = run(40)
    cut = cut_of(messages, Compaction(trigger_tokens=60_000))
    with pytest.raises(ConfigError, match=r"messages\.2\.content\.0 is not the tool result the cut planned"):
        apply(messages[:1] + messages[3:], cut)
    with pytest.raises(ConfigError, match="planned for a longer transcript"):
        apply(messages[:5], cut)


def test_describe_says_what_went_and_what_the_cache_pays() -> None:
    messages = run(40)
    cut = cut_of(messages, Compaction(trigger_tokens=60_000))
    text = cut.describe()
    assert text.startswith(f"history compacted: {cut.tokens_before:,} -> {cut.tokens_after:,} tokens, ")
    assert f"{len(cut.cleared)} tool results cleared" in text
    assert f"the next call rewrites ~{round(cut.rewrite_tokens / 1000)}K tokens to the cache" in text


# ---------------------------------------------------------------------------------------------------------------
# Summaries


def test_summary_request_is_a_side_call_with_a_stable_prompt() -> None:
    messages = run(40)
    policy = Compaction(trigger_tokens=60_000, strategy="drop_turns", summarize_with="claude-haiku-4-5")
    cut = cut_of(messages, policy)
    request = summary_request(messages, cut)
    assert request["model"] == "claude-haiku-4-5"
    assert request["system"] == SUMMARY_SYSTEM
    assert request["max_tokens"] == policy.summary_max_tokens
    assert "tools" not in request  # nothing shared with the conversation's prefix
    text = request["messages"][0]["content"]
    assert "<task>\nUSER: Find out why checkout fails.\n</task>" in text
    assert '[called read_log with {"part": 0}]' in text
    assert f'[called read_log with {{"part": {cut.dropped_turns}}}]' not in text  # kept turns are not summarised
    again = summary_request(messages, cut_of(run(41), policy))
    assert again["system"] == request["system"]


def test_summary_request_caps_what_it_sends() -> None:
    messages = run(12, result_words=20_000)
    policy = Compaction(trigger_tokens=60_000, strategy="drop_turns", summarize_with="claude-haiku-4-5")
    request = summary_request(messages, cut_of(messages, policy))
    assert "tokens cut from the middle of this result" in request["messages"][0]["content"]
    sent = Sizes.measure(request["messages"], model="claude-haiku-4-5").total
    assert sent < 8 * 2_500


def test_summary_request_needs_a_model_and_dropped_turns() -> None:
    messages = run(40)
    with pytest.raises(ConfigError, match="no summary model"):
        summary_request(messages, cut_of(messages, Compaction(trigger_tokens=60_000, strategy="drop_turns")))
    cleared_only = cut_of(messages, Compaction(trigger_tokens=60_000, summarize_with="claude-haiku-4-5"))
    with pytest.raises(ConfigError, match="drops no turns"):
        summary_request(messages, cleared_only)


def test_the_summary_replaces_the_note_and_fits_the_reserve() -> None:
    messages = run(40)
    policy = Compaction(trigger_tokens=60_000, strategy="drop_turns", summarize_with="claude-haiku-4-5")
    cut = cut_of(messages, policy)
    out = apply(messages, cut, summary="  The log shows a timeout in payments-api at 12:03.  ")
    note = out[1]["content"][0]["text"]
    assert note.startswith(NOTE_PREFIX)
    assert note.endswith("A summary of them by claude-haiku-4-5:]\n\nThe log shows a timeout in payments-api at 12:03.")
    longest = apply(messages, cut, summary=longest_summary(policy))
    assert measure(longest).total <= cut.tokens_after <= cut.target_tokens


# ---------------------------------------------------------------------------------------------------------------
# The cache: one rewrite per cut, reads in between


def test_sizes_from_the_request_builder_match_the_estimate() -> None:
    messages = [*run(6), {"role": "assistant", "content": ""}]  # an empty prefill is a block too
    builder = RequestBuilder(model=MODEL, system="You triage logs. " * 200, tools=[], cache=CachePolicy())
    built = builder.build(messages, max_tokens=1024)
    sizes = Sizes.from_prompt(built.plain, messages=len(messages))
    assert sizes.blocks == measure(messages).blocks
    assert sizes.total == built.plain.total_tokens


def test_a_long_run_cuts_rarely_and_each_cut_rewrites_what_it_predicted() -> None:
    """Through the request builder and the cache simulator: between cuts every call reads the previous prefix and
    writes only what is new; a cut call writes ``rewrite_tokens``, once."""
    tool = Tool({"name": "read_log", "description": "Read one part of the log.", "input_schema": {"type": "object"}})
    builder = RequestBuilder(model=MODEL, system="You triage logs. " * 600, tools=[tool], cache=CachePolicy())
    policy = Compaction(trigger_tokens=60_000)
    sim = CacheSim()
    messages = run(0)
    cut_at: list[int] = []
    growth: list[int] = []
    written: list[int] = []
    turns = run(80, result_words=700)[1:]
    for call, (use, result) in enumerate(zip(turns[::2], turns[1::2], strict=True)):
        messages += [use, result]
        built = builder.build(messages, max_tokens=1024)
        cut = plan(messages, Sizes.from_prompt(built.plain, messages=len(messages)), policy, model=MODEL)
        if cut is not None:
            messages = apply(messages, cut)
            cut_at.append(call)
            built = builder.build(messages, max_tokens=1024)
            assert built.plain.total_tokens == cut.tokens_after
        usage = sim.request(built.prompt, start=call * 10.0).usage
        written.append(usage.cache_write_tokens)
        if cut is not None:
            assert usage.cache_write_tokens == cut.rewrite_tokens  # the predicted rewrite, exactly
        elif call:
            growth.append(usage.cache_write_tokens)  # the new turn only
    per_turn = max(growth)
    assert per_turn < 2_500
    assert 3 <= len(cut_at) <= (80 * per_turn - 60_000) // 30_000 + 1  # one cut per 30K of growth, no more
    assert min(b - a for a, b in itertools.pairwise(cut_at)) >= 30_000 // per_turn  # cuts are far apart
    assert sum(written) < 2 * (80 * per_turn + built.plain.total_tokens)  # a sliding window would write ~25x


def test_real_claude_code_transcript_compacts_to_a_valid_one(shared_data: Path) -> None:
    """A real sub-agent transcript (parallel tool calls, text between tool calls): every cut of it stays valid."""
    messages = _claude_code_messages(shared_data / "claude-code-sessions" / "subagent_sonnet45.jsonl")
    check_valid(messages)
    sizes = measure(messages)
    for strategy in ("clear_tool_results", "drop_turns"):
        for keep in (1, 2, 4, 8):
            policy = Compaction(trigger_tokens=sizes.total // 2, keep_recent_turns=keep, strategy=strategy)
            cut = plan(messages, sizes, policy, model=MODEL)
            assert cut is not None
            out = apply(messages, cut)
            check_valid(out)
            assert measure(out).total == cut.tokens_after < sizes.total
            assert plan(out, measure(out), policy, model=MODEL) is None


def _claude_code_messages(path: Path) -> Messages:
    """The API transcript inside a Claude Code log: user and assistant lines, consecutive ones of a role merged."""
    messages: list[dict[str, Any]] = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row.get("type") not in ("user", "assistant"):
            continue
        role, content = row["message"]["role"], row["message"]["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        blocks = [{k: v for k, v in b.items() if k != "caller"} for b in blocks]
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += blocks
        else:
            messages.append({"role": role, "content": blocks})
    return list(messages)


# ---------------------------------------------------------------------------------------------------------------
# Properties


@st.composite
def transcripts(draw: st.DrawFn) -> Messages:
    """Valid tool-loop transcripts: parallel calls, errors, list contents, text after results, follow-up user
    messages (consecutive user messages, which the API merges), runs that end on an answer."""
    ids = itertools.count()
    task = draw(st.sampled_from(["Fix the failing test.", [{"type": "text", "text": "Look at the logs."}]]))
    messages: Messages = [{"role": "user", "content": task}]
    for turn in range(draw(st.integers(0, 30))):
        calls = draw(st.integers(0, 3))
        content: list[dict[str, Any]] = []
        if calls == 0 or draw(st.booleans()):
            content.append({"type": "text", "text": words(draw(st.sampled_from([3, 40, 900])))})
        uses = [f"toolu_{next(ids)}" for _ in range(calls)]
        content += [{"type": "tool_use", "id": u, "name": f"tool{turn % 3}", "input": {"turn": turn}} for u in uses]
        messages.append({"role": "assistant", "content": content})
        if uses:
            results: list[dict[str, Any]] = []
            for u in uses:
                size = draw(st.sampled_from([2, 60, 700, 2500]))
                body: Any = words(size) if draw(st.booleans()) else [{"type": "text", "text": words(size)}]
                result = {"type": "tool_result", "tool_use_id": u, "content": body}
                if draw(st.integers(0, 5)) == 0:
                    result["is_error"] = True
                results.append(result)
            if draw(st.integers(0, 4)) == 0:
                results.append({"type": "text", "text": "Keep going."})
            messages.append({"role": "user", "content": results})
        if not uses or draw(st.integers(0, 6)) == 0:
            messages.append({"role": "user", "content": "What next?"})
    if draw(st.booleans()) and messages[-1]["role"] == "user":
        messages.append({"role": "assistant", "content": [{"type": "text", "text": "Done."}]})
    return messages


@st.composite
def policies(draw: st.DrawFn, total: int) -> Compaction:
    return Compaction(
        trigger_tokens=max(1, int(total * draw(st.floats(0.05, 1.2)))),
        target_ratio=draw(st.floats(0.05, 0.95)),
        keep_recent_turns=draw(st.integers(1, 5)),
        strategy=draw(st.sampled_from(["clear_tool_results", "drop_turns"])),
        summarize_with=draw(st.sampled_from([None, "claude-haiku-4-5"])),
        summary_max_tokens=draw(st.sampled_from([64, 1024])),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_cut_is_valid_keeps_what_it_must_and_is_not_repeated(data: st.DataObject) -> None:
    messages = data.draw(transcripts())
    check_valid(messages)
    sizes = measure(messages)
    policy = data.draw(policies(sizes.total))
    cut = plan(messages, sizes, policy, model=MODEL)
    trigger = policy.trigger_tokens
    assert trigger is not None
    starts = turn_starts(messages)
    old = max(0, len(starts) - policy.keep_recent_turns)
    if sizes.total <= trigger:
        assert cut is None  # never below the trigger
        return
    if cut is None:  # only when there is nothing worth cutting: what could go is no bigger than what replaces it
        droppable = sum(sizes.message(i) for i in range(1, starts[old])) if old else 0
        summary = policy.summary_max_tokens if policy.summarize_with else 0
        assert old == 0 or droppable < 400 + summary
        return
    out = apply(messages, cut)
    check_valid(out)
    assert out[0] is messages[0]
    recent = messages[starts[old] :]
    assert all(a is b for a, b in zip(out[len(out) - len(recent) :], recent, strict=True))
    after = measure(out).total
    assert after < sizes.total
    if policy.summarize_with is None or not cut.drops:
        assert after == cut.tokens_after
    else:  # the note without a summary is shorter than the room reserved for one
        assert after <= cut.tokens_after
        summarised = measure(apply(messages, cut, summary=longest_summary(policy))).total
        assert summarised <= cut.tokens_after
    if cut.reaches_target:
        assert after <= cut.target_tokens
    else:  # the target was out of reach: every old turn went
        assert cut.dropped_turns == old
    assert plan(out, measure(out), policy, model=MODEL) is None  # no growth, no second cut
