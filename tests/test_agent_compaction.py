"""The agent compacts a long run's history: never in a normal run, before the call that would cross the trigger,
and instead of a dead end when the API says the conversation no longer fits (a turn stopped by
model_context_window_exceeded, or a 400 "prompt is too long"). The cut's rewrite is expected by cache
verification, reported (Notice, Compacted, the next call's notes, a trace line), and the transcript stays valid."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leanloop.agent import Agent, CacheMissed, Compacted, Event, Notice, RunResult, TurnDiscarded
from leanloop.cachesim import prompt_from_request
from leanloop.emulator import ManualClock, create_app
from leanloop.emulator.policies import Reply
from leanloop.emulator.serving import async_client
from leanloop.history import AUTO_TRIGGER_SHARE, CLEARED_PREFIX, NOTE_PREFIX, Compaction
from leanloop.limits import Budget
from leanloop.testing import FunctionModel, call, emulated_client, say
from leanloop.tiers import Tiers
from leanloop.tokens import Estimator
from leanloop.trace import read_trace
from leanloop.transcript import check_history
from test_agent_properties import Scaled

pytestmark = pytest.mark.anyio
MODEL = "claude-sonnet-4-6"
SYSTEM = "You read service logs with the read_log tool and find the cause of the failure. " * 150  # ~2.5K tokens
ASGI = Callable[[dict[str, Any], Callable[[], Any], Callable[[dict[str, Any]], Any]], Any]


def read_log(part: int, lines: int = 50) -> str:
    """Read the next part of the log.

    Args:
        part: Which part.
        lines: How many lines.
    """
    return "\n".join(f"12:{part % 60:02d}:{n % 60:02d} svc-{n % 7} GET /pay 200 in {n}ms ok" for n in range(lines))


def parts_read(request: Mapping[str, Any]) -> int:
    """How many parts the conversation has read (the newest part asked for, plus one: turns may be dropped)."""
    parts = [
        b["input"]["part"]
        for m in request["messages"]
        if m["role"] == "assistant" and isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_use"
    ]
    return max(parts) + 1 if parts else 0


def reader(turns: int, big_at: int | None = None) -> Callable[[Mapping[str, Any]], Reply]:
    """Reads one part of the log per turn (about 1,100 tokens; part ``big_at`` about 6,600), then answers."""

    def answer(request: Mapping[str, Any]) -> Reply:
        done = parts_read(request)
        if done >= turns:
            return say(f"read {done} parts: the payment service times out")
        lines = 300 if done == big_at else 50
        return Reply([{"type": "text", "text": f"Reading part {done}."}, call("read_log", part=done, lines=lines)])

    return answer


def agent_for(model: FunctionModel, **kwargs: Any) -> Agent:
    return Agent(MODEL, system=SYSTEM, tools=[read_log], client=model.client(), **kwargs)


async def events_of(
    agent: Agent, task: str = "Why does checkout fail?", **kwargs: Any
) -> tuple[list[Event], RunResult]:
    events = [event async for event in agent.stream(task, **kwargs)]
    last = events[-1]
    assert hasattr(last, "result")
    return events, last.result  # type: ignore[attr-defined]


def prompt_tokens(request: Mapping[str, Any], counter: Estimator | None = None) -> int:
    return prompt_from_request(request, counter).total_tokens


def assert_valid(messages: list[Mapping[str, Any]]) -> None:
    """The transcript is one the API accepts, and one ``history=`` takes back."""
    check_history(messages)


async def test_the_default_never_changes_a_normal_run() -> None:
    plain = FunctionModel(reader(12))
    compacting = FunctionModel(reader(12))
    off = await agent_for(plain, compaction=None).run("Why does checkout fail?")
    on = await agent_for(compacting).run("Why does checkout fail?")
    assert on.ok and off.ok
    assert [prompt_tokens(r) for r in compacting.requests] == [prompt_tokens(r) for r in plain.requests]
    assert on.cost == off.cost
    assert NOTE_PREFIX not in json.dumps(on.messages) and CLEARED_PREFIX not in json.dumps(on.messages)
    assert not [n for n in on.notices if "compacted" in n]


async def test_a_long_run_is_compacted_before_the_call_that_would_cross_the_trigger(tmp_path: Path) -> None:
    model = FunctionModel(reader(40))
    trigger = 20_000
    agent = agent_for(model, compaction=Compaction(trigger_tokens=trigger), trace=tmp_path / "run.jsonl")
    events, result = await events_of(agent)
    assert result.ok
    sizes = [prompt_tokens(r) for r in model.requests]
    assert max(sizes) <= trigger  # each call was checked before it was sent
    assert sum(1 for a, b in itertools.pairwise(sizes) if b < a) == len([e for e in events if isinstance(e, Compacted)])
    compacted = [e for e in events if isinstance(e, Compacted)]
    assert 1 <= len(compacted) <= 6  # rare and big, not on every call
    assert all(not e.forced and e.cut.tokens_after <= trigger // 2 for e in compacted)
    assert [e.message for e in events if isinstance(e, Notice) and "compacted" in e.message] == [
        e.message for e in compacted
    ]
    after = next(r for r in result.calls if "compacted" in r.notes)
    assert after.iteration == compacted[0].iteration
    assert after.notes["compacted"]["cleared"] == len(compacted[0].cut.cleared)
    first = model.requests[after.iteration - 1]
    assert any(CLEARED_PREFIX in json.dumps(m) for m in first["messages"])
    assert_valid(result.messages)
    lines = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    traced = [line for line in lines if line["kind"] == "compaction"]
    assert [t["iteration"] for t in traced] == [e.iteration for e in compacted]
    assert traced[0]["tokens_before"] > trigger >= traced[0]["tokens_after"]
    assert read_trace(tmp_path / "run.jsonl").records[after.iteration - 1].notes["compacted"]["forced"] is False


async def test_the_rewrite_after_a_cut_is_expected_not_a_cache_miss() -> None:
    model = FunctionModel(reader(30))
    events, result = await events_of(agent_for(model, compaction=Compaction(trigger_tokens=20_000)))
    assert result.ok
    assert not [e for e in events if isinstance(e, CacheMissed)]
    assert result.cache_misses == []
    for record in (r for r in result.calls if "compacted" in r.notes):
        assert record.usage.cache_write_tokens > 5_000  # the conversation after the cut, written again
        assert record.usage.cache_read_tokens >= 2_000  # tools + system, still read


async def test_after_a_cut_the_tools_and_system_prefix_is_still_expected() -> None:
    """The cut's rewrite is expected, but not losing the tools + system prefix: that is still a miss, said so."""
    compaction = Compaction(trigger_tokens=20_000)
    dry = await agent_for(FunctionModel(reader(30)), compaction=compaction).run("Why does checkout fail?")
    cut_at = next(r.iteration for r in dry.calls if "compacted" in r.notes)
    clock = ManualClock()

    def read_slowly(part: int, lines: int = 50) -> str:
        """Read the next part of the log.

        Args:
            part: Which part.
            lines: How many lines.
        """
        if part == cut_at - 2:  # the tool whose result the cut call sends: the whole cache expires meanwhile
            clock.advance(400)
        return read_log(part, lines)

    read_slowly.__name__ = "read_log"
    client = FunctionModel(reader(30)).client(clock=clock)
    agent = Agent(MODEL, system=SYSTEM, tools=[read_slowly], client=client, compaction=compaction)
    result = await agent.run("Why does checkout fail?")
    assert result.ok
    [miss] = result.cache_misses
    assert "unchanged by the compaction" in miss.reason
    assert next(r for r in result.calls if "compacted" in r.notes).iteration == cut_at


async def test_a_cut_that_drops_turns_leaves_a_transcript_history_takes_back() -> None:
    model = FunctionModel(reader(30))
    agent = agent_for(model, compaction=Compaction(trigger_tokens=20_000, strategy="drop_turns"))
    result = await agent.run("Why does checkout fail?")
    assert result.ok
    assert NOTE_PREFIX in json.dumps(result.messages[1])
    assert_valid(result.messages)
    more = FunctionModel(lambda request: say("still the payment service"))
    again = await agent_for(more).run("and now?", history=result.messages)
    assert again.ok


def window_exceeded_once(turns: int) -> Callable[[Mapping[str, Any]], Reply]:
    """Like ``reader``, but the answer overflows the window while the history still holds every result."""
    inner = reader(turns)

    def answer(request: Mapping[str, Any]) -> Reply:
        done = parts_read(request)
        cut = CLEARED_PREFIX in json.dumps(request["messages"]) or NOTE_PREFIX in json.dumps(request["messages"])
        if done >= 8 and not cut:
            return Reply([{"type": "text", "text": "The cause is"}], "model_context_window_exceeded")
        return inner(request)

    return answer


async def test_a_turn_stopped_by_the_context_window_is_compacted_and_asked_again() -> None:
    model = FunctionModel(window_exceeded_once(10))
    events, result = await events_of(agent_for(model))
    assert result.ok, result.stop
    assert result.calls[8].stop_reason == "model_context_window_exceeded"  # billed, and in the ledger
    discarded = [e for e in events if isinstance(e, TurnDiscarded)]
    assert [(d.iteration, d.text) for d in discarded] == [(9, "The cause is")]
    compacted = [e for e in events if isinstance(e, Compacted)]
    assert len(compacted) == 1 and compacted[0].forced and compacted[0].iteration == 10
    assert compacted[0].message.startswith("the API said the prompt did not fit")
    assert "The cause is" not in json.dumps(result.messages)  # the cut turn is not kept
    assert result.cache_misses == []
    assert_valid(result.messages)


async def test_the_window_stop_without_compaction_is_still_a_clear_stop() -> None:
    result = await agent_for(FunctionModel(window_exceeded_once(10)), compaction=None).run("go")
    assert result.stop.reason == "error" and "context window" in result.stop.detail


def with_window(
    app: ASGI, window: int, counter: Estimator | None = None, *, wording: str = "prompt"
) -> tuple[ASGI, list[int]]:
    """The emulator behind the API's check of the context window: a prompt over ``window`` tokens is a 400 in the
    real API's words, "prompt is too long: N tokens > M maximum" (``wording="prompt"``) or, counting max_tokens
    too (older models), "input length and `max_tokens` exceed context limit: N + K > M, ..." (``"limit"``).
    Returns the app and the refused sizes."""
    refused: list[int] = []

    async def checked(scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[dict[str, Any]], Any]) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/messages":
            await app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        request = json.loads(body)
        tokens = prompt_tokens(request, counter)
        answer = request["max_tokens"] if wording == "limit" else 0
        if tokens + answer <= window:

            async def replay() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            await app(scope, replay, send)
            return
        refused.append(tokens)
        message = (
            f"input length and `max_tokens` exceed context limit: {tokens} + {answer} > {window}, decrease input "
            "length or `max_tokens` and try again"
            if wording == "limit"
            else f"prompt is too long: {tokens} tokens > {window} maximum"
        )
        error = {"type": "invalid_request_error", "message": message}
        payload = json.dumps({"type": "error", "error": error, "request_id": "req_window"}).encode()
        headers = [(b"content-type", b"application/json"), (b"request-id", b"req_window")]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return checked, refused


@pytest.mark.parametrize("wording", ["prompt", "limit"])
async def test_a_prompt_over_the_window_is_compacted_and_sent_again_not_a_dead_end(wording: str) -> None:
    """Sonnet 4.6 has 1M in the table, but this deployment says 30K: the 400 is one forced cut and a resend, and
    from then on the run compacts before it reaches the window the API named."""
    model = FunctionModel(reader(60))
    app, refused = with_window(create_app({MODEL: model}), 30_000, wording=wording)
    agent = Agent(MODEL, system=SYSTEM, tools=[read_log], client=async_client(app, max_retries=0))
    events, result = await events_of(agent, budget=Budget(max_iterations=80))
    assert result.ok, result.stop
    assert len(refused) == 1  # once: after it, the run knows the window
    assert result.iterations == 61  # the refused request was not billed, nor counted
    compacted = [e for e in events if isinstance(e, Compacted)]
    assert compacted[0].forced and all(not e.forced for e in compacted[1:])
    assert len(compacted) >= 2
    assert max(prompt_tokens(r) for r in model.requests) <= 30_000
    assert_valid(result.messages)


async def test_a_resumed_run_keeps_the_window_the_api_reported() -> None:
    """The 400 taught the run a 30K window; stopped by max_iterations and resumed, it compacts before that window
    again instead of sending a prompt the API refuses."""
    model = FunctionModel(reader(70))
    app, refused = with_window(create_app({MODEL: model}), 30_000)
    agent = Agent(MODEL, system=SYSTEM, tools=[read_log], client=async_client(app, max_retries=0))
    first = await agent.run("Why does checkout fail?", budget=Budget(max_iterations=32))  # the 400 is at call 31
    assert first.stop.reason == "max_iterations" and len(refused) == 1
    assert first.state.windows == {MODEL: 30_000}
    fresh = Agent(MODEL, system=SYSTEM, tools=[read_log], client=async_client(app, max_retries=0))  # no memory
    resumed = await fresh.run(resume=first.state, budget=Budget(max_iterations=80))
    assert resumed.ok, resumed.stop
    assert len(refused) == 1  # the resumed run did not have to learn the window again
    assert resumed.state.windows == {MODEL: 30_000}


async def test_an_agent_keeps_the_window_the_api_reported_for_its_next_runs() -> None:
    """The first run learns the 30K window from a 400; the same Agent's next run (a new task, not a resume)
    compacts before that window instead of sending a prompt the API refuses."""
    app, refused = with_window(create_app({MODEL: FunctionModel(reader(40))}), 30_000)
    agent = Agent(MODEL, system=SYSTEM, tools=[read_log], client=async_client(app, max_retries=0))
    first = await agent.run("Why does checkout fail?")
    assert first.ok and len(refused) == 1
    second = await agent.run("Why does checkout fail again?")
    assert second.ok, second.stop
    assert len(refused) == 1  # the window was known before the second run's prompt grew past it


async def test_a_prompt_over_the_window_with_compaction_off_says_so() -> None:
    app, refused = with_window(create_app({MODEL: FunctionModel(reader(40))}), 20_000)
    agent = Agent(MODEL, system=SYSTEM, tools=[read_log], client=async_client(app, max_retries=0), compaction=None)
    result = await agent.run("Why does checkout fail?")
    assert result.stop.reason == "error"
    assert "does not fit claude-sonnet-4-6's context window (20,000)" in result.stop.detail
    assert "compaction is off" in result.stop.detail
    assert len(refused) == 1
    assert_valid(result.messages)


async def test_a_task_alone_over_the_window_stops_with_the_reason() -> None:
    app, _ = with_window(create_app({MODEL: FunctionModel(reader(1))}), 5_000)
    agent = Agent(MODEL, system=SYSTEM, client=async_client(app, max_retries=0))
    result = await agent.run("Summarise: " + "lorem ipsum " * 3000)
    assert result.stop.reason == "error"
    assert "context window" in result.stop.detail and "task and the newest" in result.stop.detail
    assert result.calls == []  # nothing was billed


async def test_a_prompt_that_is_still_too_long_after_the_cut_stops() -> None:
    """The cut cannot get under the window (the newest turns alone are too big): one resend, then a clear stop."""
    app, refused = with_window(create_app({MODEL: FunctionModel(reader(10, big_at=3))}), 9_000)
    compaction = Compaction(keep_recent_turns=2)
    agent = Agent(
        MODEL, system=SYSTEM, tools=[read_log], client=async_client(app, max_retries=0), compaction=compaction
    )
    result = await agent.run("Why does checkout fail?")
    assert result.stop.reason == "error"
    assert "does not fit claude-sonnet-4-6's context window (9,000): even after a compaction" in result.stop.detail
    assert len(refused) == 2
    assert_valid(result.messages)


async def test_newest_turns_bigger_than_the_target_are_not_compacted_again_on_every_call() -> None:
    """Each turn reads ~6,600 tokens and the newest 4 are kept: no cut can get under the 20K trigger, let alone
    reach the 10K target. One cut makes what room it can; after that a cut that would leave the prompt over the
    trigger is not made (it would rewrite the cache on every call), and the agent says so once."""

    def big_parts(request: Mapping[str, Any]) -> Reply:
        done = parts_read(request)
        if done >= 12:
            return say("the payment service times out")
        return Reply([{"type": "text", "text": f"Reading part {done}."}, call("read_log", part=done, lines=300)])

    agent = agent_for(FunctionModel(big_parts), compaction=Compaction(trigger_tokens=20_000, keep_recent_turns=4))
    events, result = await events_of(agent)
    assert result.ok
    assert len([e for e in events if isinstance(e, Compacted)]) == 1
    waiting = [e.message for e in events if isinstance(e, Notice) and "compaction waits" in e.message]
    assert len(waiting) == 1, waiting
    assert "the task and the newest 4 turns" in waiting[0]
    assert sum("compaction waits" in n for n in result.notices) == 1
    assert_valid(result.messages)


async def test_a_cut_short_of_the_target_that_gets_under_the_trigger_is_made_every_time_it_is_due() -> None:
    """Each turn reads ~3,300 tokens and the newest 4 are kept: no cut reaches the 10K target, but each gets the
    prompt back under the 20K trigger, so the run cuts whenever it is over the trigger again (not on every call)
    and no prompt exceeds the trigger by more than a turn."""

    def parts(request: Mapping[str, Any]) -> Reply:
        done = parts_read(request)
        if done >= 30:
            return say("the payment service times out")
        return Reply([{"type": "text", "text": f"Reading part {done}."}, call("read_log", part=done, lines=150)])

    model = FunctionModel(parts)
    agent = agent_for(model, compaction=Compaction(trigger_tokens=20_000, keep_recent_turns=4))
    events, result = await events_of(agent)
    assert result.ok
    sizes = [prompt_tokens(r) for r in model.requests]
    assert max(sizes) <= 20_000 + 3_500
    compacted = [e for e in events if isinstance(e, Compacted)]
    assert len(compacted) >= 3 and all(not e.cut.reaches_target for e in compacted)
    assert len(compacted) < len(sizes) // 2  # rare: each cut leaves room for a few turns
    assert not [n for n in result.notices if "compaction waits" in n]
    assert_valid(result.messages)


# ---------------------------------------------------------------------------------------------------------------
# Properties: long random runs on the emulator


def fetch(size: int) -> str:
    """Fetch a document.

    Args:
        size: About how many tokens.
    """
    return " ".join(f"w{n % 50}" for n in range(size))


# Turns of 1-2 tool calls (a turn without one would end the run) with results of 100-2,000 tokens: the newest
# turns a cut keeps always fit under the trigger, so a cut can always get the prompt back under it.
long_runs = st.lists(
    st.tuples(st.integers(1, 2), st.integers(100, 2000), st.integers(0, 200)),  # calls, result size, words of text
    min_size=25,
    max_size=45,
)


def scripted(script: list[tuple[int, int, int]]) -> FunctionModel:
    """One scripted turn per request (a request after a compaction or a refusal takes the next one), then answers."""
    served = itertools.count()

    def answer(request: Mapping[str, Any]) -> Reply:
        index = next(served)
        if index >= len(script):
            return say("the answer " * 20)
        calls, size, words = script[index]
        blocks: list[dict[str, Any]] = [{"type": "text", "text": "word " * words}] if words else []
        return Reply(blocks + [call("fetch", size=size) for _ in range(calls)])

    return FunctionModel(answer)


@given(
    script=long_runs,
    trigger=st.integers(28_000, 40_000),
    keep=st.integers(1, 3),
    strategy=st.sampled_from(["clear_tool_results", "drop_turns"]),
    window=st.booleans(),
    tiers=st.booleans(),
    factor=st.sampled_from([0.9, 1.0, 1.2]),
    usd=st.decimals("0.05", "2.00", places=2),
)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_long_runs_stay_valid_near_the_trigger_and_under_budget(
    *,
    script: list[tuple[int, int, int]],
    trigger: int,
    keep: int,
    strategy: str,
    window: bool,
    tiers: bool,
    factor: float,
    usd: Decimal,
) -> None:
    """With compaction on, whether the trigger is set or learnt from the API's 400 (a window of trigger / 0.8): every
    request is one the API accepts, no prompt exceeds the trigger by more than one turn, spend never exceeds the
    budget (side calls included), and a run that outgrows the window completes instead of stopping."""
    model = scripted(script)
    cheap = FunctionModel(lambda request: say("condensed: " + "fact " * 60))
    app = create_app({MODEL: model, "claude-haiku-4-5": cheap}, token_counter=Scaled(factor))
    refused: list[int] = []
    if window:
        app, refused = with_window(app, math.ceil(trigger / AUTO_TRIGGER_SHARE), Scaled(factor))
    compaction = Compaction(None if window else trigger, keep_recent_turns=keep, strategy=strategy)  # type: ignore[arg-type]
    agent = Agent(
        MODEL,
        system=SYSTEM,
        tools=[fetch],
        client=async_client(app, max_retries=0),
        compaction=compaction,
        tiers=Tiers(summarize_results_over=2000) if tiers else None,
    )
    result = asyncio.run(
        agent.run("Read what you need, then answer.", budget=Budget(usd=float(usd), max_iterations=80))
    )
    assert result.stop.reason in ("end_turn", "budget"), result.stop
    assert result.cost.total <= usd
    assert_valid(result.messages)
    for request in model.requests:
        check_history(request["messages"])
    biggest_turn = max(words + calls * (size + 60) for calls, size, words in script) * factor + 200
    calls = [r for r in result.calls if "side_call" not in r.notes]
    forced = next((r.iteration for r in calls if r.notes.get("compacted", {}).get("forced")), None)
    for record in calls:  # until the API names the window, only the window bounds the prompt
        if not window or (forced is not None and record.iteration >= forced):
            assert record.usage.prompt_tokens <= trigger + biggest_turn
    assert len(refused) <= 1  # once the API has named the window, the run compacts before it
    assert (forced is not None) == bool(refused)


async def test_on_the_emulator_a_run_past_haikus_window_completes() -> None:
    """The emulator refuses a prompt over the model's window as the API does; the run compacts and goes on."""
    validate = pytest.importorskip("leanloop.emulator.validate")
    if not hasattr(validate, "check_context_window"):
        pytest.skip("this emulator does not check the context window yet")
    model = FunctionModel(reader(40))
    client = emulated_client({"claude-haiku-4-5": model})
    never = Compaction(trigger_tokens=1_000_000)  # over the window: only the API's 400 can start a cut

    def dump(part: int, lines: int = 50) -> str:
        """Read a big part of the log.

        Args:
            part: Which part.
            lines: Ignored: every part is about 7,000 tokens.
        """
        return read_log(part, 320)

    dump.__name__ = "read_log"
    agent = Agent("claude-haiku-4-5", system=SYSTEM, tools=[dump], client=client, compaction=never)
    events, result = await events_of(agent)
    assert result.ok, result.stop
    forced = [e for e in events if isinstance(e, Compacted) and e.forced]
    assert len(forced) == 1
    assert max(r.usage.prompt_tokens for r in result.calls) <= 200_000
