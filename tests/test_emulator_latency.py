"""emulator.latency and emulator.clock: modeled TTFT and output speed, real sleeping by time_scale, emulated time."""

from __future__ import annotations

import doctest
import time
from typing import Any

import anyio
import pytest

from leanloop.emulator import Emulator, LatencyModel, ManualClock, Reply, ScaledClock, async_client, create_app
from leanloop.usage import Usage

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
USER = [{"role": "user", "content": "Hello"}]
LONG_ANSWER = Reply([{"type": "text", "text": "word " * 60}])


def test_defaults_reproduce_the_published_caching_latencies() -> None:
    model = LatencyModel()
    # Anthropic's prompt-caching announcement: a 100,000-token prompt, 11.5 s uncached, 2.4 s cached.
    assert model.ttft(Usage(input_tokens=100_000)) == pytest.approx(11.5, abs=0.05)
    assert model.ttft(Usage(cache_read_tokens=100_000)) == pytest.approx(2.4, abs=0.05)
    assert model.ttft(Usage(cache_write_5m_tokens=100_000)) == model.ttft(Usage(input_tokens=100_000))
    assert model.generation(63) == pytest.approx(1.0)
    timing = model.timing(Usage(input_tokens=1000), 126)
    assert timing.total_s == pytest.approx(timing.ttft_s + 2.0)
    with pytest.raises(ValueError, match="time_scale"):
        LatencyModel(time_scale=-1)


async def test_call_log_reports_modeled_times_in_emulated_seconds() -> None:
    app = create_app({MODEL: lambda request: LONG_ANSWER})
    client = async_client(app)
    began = time.monotonic()
    for _ in range(2):
        await client.messages.create(model=MODEL, max_tokens=500, messages=USER)
    assert time.monotonic() - began < 0.5  # time_scale 0: nothing sleeps
    first, second = Emulator.of(app).calls
    assert first.usage is not None
    expected = LatencyModel().timing(first.usage.with_output(0), first.usage.output_tokens)
    assert first.ttft_s == pytest.approx(expected.ttft_s)
    assert first.duration_s == pytest.approx(expected.total_s)
    assert second.start == pytest.approx(first.end)  # a sequential request starts when the previous one ended


async def test_time_scale_turns_modeled_time_into_real_waiting() -> None:
    scale = 0.05
    app = create_app({MODEL: lambda request: LONG_ANSWER}, latency=LatencyModel(time_scale=scale))
    client = async_client(app)
    await client.models.list()
    began = time.monotonic()
    await client.messages.create(model=MODEL, max_tokens=500, messages=USER)
    plain_elapsed = time.monotonic() - began
    modeled = Emulator.of(app).calls[-1]
    assert modeled.duration_s is not None
    assert modeled.ttft_s is not None
    assert plain_elapsed >= modeled.duration_s * scale * 0.95

    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 500, "messages": USER}
    began = time.monotonic()
    first_text: float | None = None
    async with client.messages.stream(**kwargs) as stream:
        async for event in stream:
            if event.type == "text" and first_text is None:
                first_text = time.monotonic() - began
    total = time.monotonic() - began
    streamed = Emulator.of(app).calls[-1]
    assert streamed.ttft_s is not None
    assert streamed.duration_s is not None
    assert first_text is not None
    assert streamed.ttft_s * scale * 0.95 <= first_text < total  # the first token arrives before the last
    assert total >= streamed.duration_s * scale * 0.95


async def test_scaled_clock_makes_ttl_pass_in_scaled_real_time() -> None:
    system: Any = [{"type": "text", "text": "Policy text. " * 900, "cache_control": {"type": "ephemeral"}}]
    app = create_app(latency=LatencyModel(time_scale=0.001))  # 300 emulated seconds = 0.3 real seconds
    client = async_client(app)
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 10, "system": system, "messages": USER}
    written = (await client.messages.create(**kwargs)).usage.cache_creation_input_tokens
    assert written
    assert (await client.messages.create(**kwargs)).usage.cache_read_input_tokens == written
    await anyio.sleep(0.35)
    assert (await client.messages.create(**kwargs)).usage.cache_creation_input_tokens == written


def test_clock_docstring_examples_run() -> None:
    import leanloop.emulator.clock

    assert doctest.testmod(leanloop.emulator.clock).failed == 0


def test_clocks() -> None:
    clock = ManualClock(start=10)
    clock.advance(5)
    assert clock.now() == 15
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(3)
    assert ScaledClock(0).now() == 0.0
    fast = ScaledClock(0.001)
    time.sleep(0.002)
    assert fast.now() >= 2.0
    with pytest.raises(ValueError, match="time_scale"):
        ScaledClock(-0.5)
