"""emulator.threads: message threads as the SDK's own tool runner uses them by default, billed like the same
conversation sent whole, with the API's errors (thread_not_found after 5 minutes, thread_already_continued, ...)."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic import beta_async_tool
from anthropic.types import ThreadAlreadyContinuedError, ThreadFingerprintMismatchError, ThreadNotFoundError

from leanloop.emulator import Emulator, Fault, FaultRule, ManualClock, Reply, async_client, create_app
from leanloop.emulator.threads import THREADS_BETA

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
SYSTEM = "You answer questions about the weather, briefly and precisely. " * 220  # above the 2,048-token minimum
BETAS: Any = [THREADS_BETA]


@beta_async_tool
async def get_weather(city: str) -> str:
    """Get the weather.

    Args:
        city: The city.
    """
    return f"sunny in {city}"


def weather_policy(request: Any) -> Any:
    """Calls get_weather for each of two cities in turn, then answers."""
    asked = sum(1 for m in request["messages"] if m["role"] == "assistant")
    if asked < 2:
        return Reply([{"type": "tool_use", "name": "get_weather", "input": {"city": ["Paris", "Oslo"][asked]}}])
    return "Sunny in both."


async def run_tool_runner(**options: Any) -> tuple[Any, list[Any]]:
    app = create_app({MODEL: weather_policy})
    runner = async_client(app, max_retries=0).beta.messages.tool_runner(
        model=MODEL,
        max_tokens=500,
        system=SYSTEM,
        tools=[get_weather],
        messages=[{"role": "user", "content": "Weather in Paris and Oslo?"}],
        cache_control={"type": "ephemeral"},
        **options,
    )
    final = await runner.until_done()
    return final, Emulator.of(app).calls


async def test_the_sdk_tool_runner_runs_over_a_thread_by_default() -> None:
    final, calls = await run_tool_runner()
    assert final.stop_reason == "end_turn"
    assert final.content[0].type == "text"
    assert [c.thread for c in calls] == ["create", "continue", "continue"]
    assert all(c.status == 200 for c in calls)
    # The policy saw, and the cache billed, the whole conversation: tools, system and every turn.
    assert [len(c.request["messages"]) for c in calls] == [1, 3, 5]
    assert all(c.request["system"] == SYSTEM and c.request["tools"] for c in calls)
    assert all("thread" not in c.request for c in calls)


async def test_a_thread_is_billed_like_the_same_conversation_sent_whole() -> None:
    _, threaded = await run_tool_runner()
    _, whole = await run_tool_runner(thread=False)
    assert [c.thread for c in whole] == [None, None, None]
    assert [c.usage for c in threaded] == [c.usage for c in whole]
    assert all(c.usage is not None and c.usage.cache_read_tokens > 0 for c in threaded[1:])


def first_turn() -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 100,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": "Hello"}],
        "thread": {"type": "create"},
        "betas": BETAS,
    }


def next_turn(previous: str, **changes: Any) -> dict[str, Any]:
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "And now?"}],
        "thread": {"type": "continue", "previous_message_id": previous},
        "betas": BETAS,
    }
    return {**body, **changes}


async def test_a_thread_expires_five_minutes_after_its_last_request() -> None:
    clock = ManualClock()
    client = async_client(create_app(clock=clock), max_retries=0)
    first = await client.beta.messages.create(**first_turn())
    clock.advance(299)
    second = await client.beta.messages.create(**next_turn(first.id))  # each stored reply restarts the 5 minutes
    clock.advance(299)
    third = await client.beta.messages.create(**next_turn(second.id))
    clock.advance(301)
    with pytest.raises(ThreadNotFoundError) as caught:
        await client.beta.messages.create(**next_turn(third.id))
    assert caught.value.status_code == 404
    assert caught.value.error_code == "thread_not_found"
    with pytest.raises(ThreadNotFoundError):
        await client.beta.messages.create(**next_turn("msg_01NoSuchMessageAnywhere1"))


async def test_each_reply_can_be_continued_once() -> None:
    client = async_client(create_app(), max_retries=0)
    first = await client.beta.messages.create(**first_turn())
    await client.beta.messages.create(**next_turn(first.id))
    with pytest.raises(ThreadAlreadyContinuedError) as caught:
        await client.beta.messages.create(**next_turn(first.id))
    assert caught.value.error_code == "thread_already_continued"


async def test_a_failed_continue_leaves_the_reply_continuable() -> None:
    app = create_app(faults=[FaultRule(Fault("overloaded"), nth=frozenset({2}))])
    client = async_client(app, max_retries=0)
    first = await client.beta.messages.create(**first_turn())
    with pytest.raises(anthropic.APIStatusError):
        await client.beta.messages.create(**next_turn(first.id))
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        await client.beta.messages.create(**next_turn(first.id, max_tokens=-1))
    second = await client.beta.messages.create(**next_turn(first.id))
    assert second.type == "message"


async def test_a_reply_cut_mid_stream_is_not_stored() -> None:
    app = create_app(faults=[FaultRule(Fault("overloaded_midstream", after_events=2), nth=frozenset({2}))])
    client = async_client(app, max_retries=0)
    first = await client.beta.messages.create(**first_turn())
    stream = await client.beta.messages.create(**next_turn(first.id), stream=True)
    with pytest.raises(anthropic.APIStatusError):
        async for _ in stream:
            pass
    cut = Emulator.of(app).calls[-1].message_id
    assert cut is not None
    with pytest.raises(ThreadNotFoundError):
        await client.beta.messages.create(**next_turn(cut))
    assert (await client.beta.messages.create(**next_turn(first.id))).type == "message"


@pytest.mark.parametrize(
    ("changes", "error", "fragment"),
    [
        ({"system": "Be terse."}, anthropic.BadRequestError, "system: leave it out of a `continue` request"),
        ({"tools": [{"name": "x", "input_schema": {"type": "object"}}]}, anthropic.BadRequestError, "tools: leave"),
        ({"model": "claude-opus-4-6"}, ThreadFingerprintMismatchError, "model: the thread was created with"),
        ({"betas": []}, anthropic.BadRequestError, f"thread: requires the anthropic-beta header {THREADS_BETA}"),
        ({"thread": {"type": "resume"}}, anthropic.BadRequestError, "thread: Input tag 'resume'"),
        ({"thread": {"type": "continue"}}, anthropic.BadRequestError, "previous_message_id: Field required"),
    ],
)
async def test_malformed_thread_requests_are_400s(
    changes: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    client = async_client(create_app(), max_retries=0)
    first = await client.beta.messages.create(**first_turn())
    with pytest.raises(error) as caught:
        await client.beta.messages.create(**next_turn(first.id, **changes))
    assert fragment in str(caught.value)
