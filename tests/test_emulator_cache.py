"""emulator + cachesim: usage on the wire is exactly what CacheSim says, per model, over emulated time."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import anthropic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leanloop.cachesim import CacheSim, prompt_from_request
from leanloop.emulator import Emulator, LatencyModel, ManualClock, async_client, create_app
from leanloop.usage import Usage

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"  # cachesim's minimum for it is 2,048 tokens
EPHEMERAL = {"type": "ephemeral"}
# About 2,400 tokens: above Sonnet 4.6's 2,048-token minimum, so it is cached.
SYSTEM_TEXT = "You are a log analyst. Read the logs, find the first error, and name its root cause. " * 140


def system(ttl: str | None = None) -> list[dict[str, Any]]:
    mark = {"type": "ephemeral", "ttl": ttl} if ttl else EPHEMERAL
    return [{"type": "text", "text": SYSTEM_TEXT, "cache_control": mark}]


def usage_of(message: anthropic.types.Message) -> Usage:
    """The usage as leanloop reads it; the emulator reports inference_geo "global" like the real API, cachesim none."""
    return replace(Usage.from_api(message.usage), inference_geo=None)


async def create(client: anthropic.AsyncAnthropic, messages: list[dict[str, Any]], **extra: Any) -> Any:
    kwargs: dict[str, Any] = {"system": system(), **extra}
    return await client.messages.create(model=MODEL, max_tokens=200, messages=messages, **kwargs)


async def test_two_call_conversation_writes_then_reads_what_cachesim_predicts() -> None:
    app = create_app()
    client = async_client(app)
    messages: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "text", "text": "Why did it fail?"}]}]
    first = await create(client, messages)
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "text", "text": "And the fix?", "cache_control": EPHEMERAL}]},
    ]
    second = await create(client, messages)

    reference = CacheSim()
    served = Emulator.of(app).calls
    expected = [
        reference.request(
            prompt_from_request(call.request), start=call.start, response_start=call.start + (call.ttft_s or 0)
        )
        for call in served
    ]
    assert usage_of(first) == expected[0].usage.with_output(first.usage.output_tokens)
    assert usage_of(second) == expected[1].usage.with_output(second.usage.output_tokens)
    assert first.usage.cache_creation_input_tokens is not None
    assert first.usage.cache_creation_input_tokens > 2048
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens  # the rolling breakpoint on the new user turn is written
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == first.usage.cache_creation_input_tokens


async def test_below_the_minimum_nothing_is_cached() -> None:
    client = async_client(create_app())
    short = [{"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}]
    for _ in range(2):
        message = await create(client, [{"role": "user", "content": "hi"}], system=short)
        assert message.usage.cache_creation_input_tokens == 0
        assert message.usage.cache_read_input_tokens == 0


async def test_caches_are_per_model() -> None:
    client = async_client(create_app())
    user = [{"role": "user", "content": "hi"}]
    await create(client, user)
    other = await client.messages.create(model="claude-opus-4-8", max_tokens=50, system=system(), messages=user)  # type: ignore[arg-type]
    assert other.usage.cache_read_input_tokens == 0
    assert other.usage.cache_creation_input_tokens


async def test_streamed_and_non_streamed_usage_agree() -> None:
    user = [{"role": "user", "content": "hi"}]

    async def run(stream: bool) -> list[tuple[Usage, Usage | None]]:
        client = async_client(create_app(seed=7))
        seen: list[tuple[Usage, Usage | None]] = []
        for _ in range(2):
            if not stream:
                seen.append((usage_of(await create(client, user)), None))
                continue
            async with client.messages.stream(model=MODEL, max_tokens=200, system=system(), messages=user) as s:  # type: ignore[arg-type]
                started: Usage | None = None
                async for event in s:
                    if event.type == "message_start":
                        started = replace(Usage.from_api(event.message.usage), inference_geo=None)
                final = await s.get_final_message()
            seen.append((usage_of(final), started))
        return seen

    plain, streamed = await run(stream=False), await run(stream=True)
    assert [u for u, _ in plain] == [u for u, _ in streamed]
    for final, started in streamed:
        assert started == final.with_output(1)  # message_start: same input and cache counts, output_tokens 1


async def test_entries_expire_after_five_minutes_on_a_manual_clock() -> None:
    clock = ManualClock()
    app = create_app(clock=clock)
    client = async_client(app)
    user = [{"role": "user", "content": "hi"}]
    written = (await create(client, user)).usage.cache_creation_input_tokens
    clock.set(299)
    assert (await create(client, user)).usage.cache_read_input_tokens == written  # read at 299 s: refreshed
    clock.set(299 + 299)
    assert (await create(client, user)).usage.cache_read_input_tokens == written  # refreshed by the last read
    clock.set(299 + 299 + 301)
    late = await create(client, user)
    assert late.usage.cache_read_input_tokens == 0
    assert late.usage.cache_creation_input_tokens == written
    assert [round(c.start) for c in Emulator.of(app).calls] == [0, 299, 598, 899]


async def test_one_hour_entries_outlive_five_minutes() -> None:
    clock = ManualClock()
    client = async_client(create_app(clock=clock))
    user = [{"role": "user", "content": "hi"}]
    first = await create(client, user, system=system("1h"))
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == first.usage.cache_creation_input_tokens
    clock.set(3599)
    assert (await create(client, user, system=system("1h"))).usage.cache_read_input_tokens
    clock.set(3599 + 3601)
    assert (await create(client, user, system=system("1h"))).usage.cache_read_input_tokens == 0


async def test_concurrent_identical_requests_all_pay_the_write() -> None:
    client = async_client(create_app())
    await client.models.list()  # the SDK's first request resolves platform headers in a thread; do it up front
    user = [{"role": "user", "content": "hi"}]
    together = await asyncio.gather(*(create(client, user) for _ in range(3)))
    writes = {m.usage.cache_creation_input_tokens for m in together}
    assert len(writes) == 1
    assert writes.pop()
    assert all(m.usage.cache_read_input_tokens == 0 for m in together)
    after = await create(client, user)
    assert after.usage.cache_read_input_tokens == together[0].usage.cache_creation_input_tokens


async def test_overlap_in_real_time_with_a_time_scale() -> None:
    app = create_app(latency=LatencyModel(time_scale=0.02))
    client = async_client(app)
    await client.models.list()
    user = [{"role": "user", "content": "hi"}]
    together = await asyncio.gather(create(client, user), create(client, user))
    assert all(m.usage.cache_read_input_tokens == 0 for m in together)
    # Fan-out after the first token: a request sent once the writer's stream has started reads the entry.
    fresh = [{"role": "user", "content": "a new question"}]
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 200, "system": system(), "messages": fresh}
    fresh_system = [{"type": "text", "text": SYSTEM_TEXT + " Extra.", "cache_control": EPHEMERAL}]
    kwargs["system"] = fresh_system
    async with client.messages.stream(**kwargs) as writer:
        async for event in writer:
            if event.type == "message_start":
                follower = await client.messages.create(**kwargs)
                break
    assert follower.usage.cache_read_input_tokens
    assert follower.usage.cache_creation_input_tokens == 0


# The API rejects text blocks that are empty or only whitespace.
non_blank = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=400).filter(str.strip)
conversation_texts = st.lists(non_blank, min_size=1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=conversation_texts, marks=st.lists(st.integers(min_value=0, max_value=30), max_size=3))
def test_input_plus_write_plus_read_is_count_tokens(texts: list[str], marks: list[int]) -> None:
    messages: list[dict[str, Any]] = []
    for index, text in enumerate(texts[:8]):
        block: dict[str, Any] = {"type": "text", "text": text}
        if index in marks:
            block["cache_control"] = EPHEMERAL
        messages.append({"role": "user" if index % 2 == 0 else "assistant", "content": [block]})
    if messages[-1]["role"] == "assistant":
        messages.append({"role": "user", "content": "go on"})

    async def check() -> None:
        client = async_client(create_app())
        for _ in range(2):  # a write, then a read
            counted = await client.messages.count_tokens(model=MODEL, system=system(), messages=messages)  # type: ignore[arg-type]
            usage = usage_of(await create(client, messages))
            assert usage.prompt_tokens == counted.input_tokens

    asyncio.run(check())


async def test_the_cache_passed_in_is_the_one_billed_from() -> None:
    cache = CacheSim()  # empty, hence falsy: it must still be used
    app = create_app(cache=cache, log_limit=2)
    client = async_client(app)
    user = [{"role": "user", "content": "hi"}]
    first = await create(client, user)
    assert Emulator.of(app).cache is cache
    assert len(cache) == 1
    call = Emulator.of(app).calls[-1]
    predicted = cache.predict(prompt_from_request(call.request), start=call.end)
    assert predicted.usage.cache_read_tokens == first.usage.cache_creation_input_tokens
    for _ in range(5):
        await create(client, user)
    assert 2 <= len(Emulator.of(app).calls) < 4
    assert Emulator.of(app).calls[-1].number == 6


async def test_the_minimum_cacheable_length_can_be_overridden_per_model() -> None:
    # Sonnet 4.6 bills by the conservative observed floor (2,048 tokens, API-FACTS 1.3); the official one is 1,024.
    short: Any = [{"type": "text", "text": "Policy line. " * 400, "cache_control": EPHEMERAL}]  # ~1,200 tokens
    kwargs: Any = {"model": MODEL, "max_tokens": 10, "system": short, "messages": [{"role": "user", "content": "?"}]}
    default = await async_client(create_app()).messages.create(**kwargs)
    assert default.usage.cache_creation_input_tokens == 0
    official = await async_client(create_app(min_cache_tokens={MODEL: 1024})).messages.create(**kwargs)
    written = official.usage.cache_creation_input_tokens or 0
    assert written + official.usage.input_tokens == default.usage.input_tokens
    assert 1024 < written < 2048
    with pytest.raises(ValueError, match="not both"):
        create_app(cache=CacheSim(), min_cache_tokens={MODEL: 1024})
