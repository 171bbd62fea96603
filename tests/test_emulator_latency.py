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


@pytest.mark.parametrize(
    ("tokens", "uncached_s", "cached_s"),
    [(10_000, 1.6, 1.1), (100_000, 11.5, 2.4)],  # both points of Anthropic's prompt-caching announcement
)
def test_defaults_reproduce_the_published_caching_latencies(tokens: int, uncached_s: float, cached_s: float) -> None:
    model = LatencyModel(base_s=0.5)  # the announcement's model (Claude 3.5 Sonnet) started at about 0.5 s
    assert model.ttft(Usage(input_tokens=tokens)) == pytest.approx(uncached_s, abs=0.01)
    assert model.ttft(Usage(cache_read_tokens=tokens)) == pytest.approx(cached_s, abs=0.01)
    assert model.ttft(Usage(cache_write_5m_tokens=tokens)) == model.ttft(Usage(input_tokens=tokens))


def test_a_cache_read_is_never_slower_than_prefilling() -> None:
    model = LatencyModel()
    for tokens in (0, 100, 2_000, 4_000, 5_000, 50_000):
        assert model.ttft(Usage(cache_read_tokens=tokens)) <= model.ttft(Usage(input_tokens=tokens))


@pytest.mark.parametrize(
    ("model", "ttft_s", "tokens_per_s"),
    [
        # Measured TTFT for a ~1,000-token prompt and output speed (sources in latency.py).
        ("claude-haiku-4-5", 0.90, 112),
        ("claude-haiku-4-5-20251001", 0.90, 112),
        ("claude-sonnet-4-6", 1.21, 95),
        ("claude-sonnet-4-5", 1.80, 63),
        ("claude-opus-4-6", 2.67, 45),
        ("claude-fable-5", 2.67, 77),
        ("claude-unknown-9", 1.21, 95),  # a model the table does not name: Sonnet's speed
    ],
)
def test_each_family_has_its_measured_speed(model: str, ttft_s: float, tokens_per_s: float) -> None:
    latency = LatencyModel()
    assert latency.ttft(Usage(input_tokens=1000), model) == pytest.approx(ttft_s, abs=0.01)
    assert latency.generation(int(tokens_per_s * 2), model) == pytest.approx(2.0, abs=0.02)
    forced = LatencyModel(base_s=0.2, output_tokens_per_s=50.0)
    assert forced.ttft(Usage(), model) == pytest.approx(0.2)
    assert forced.generation(100, model) == pytest.approx(2.0)


def test_bad_latency_settings() -> None:
    with pytest.raises(ValueError, match="time_scale"):
        LatencyModel(time_scale=-1)
    with pytest.raises(ValueError, match="output_tokens_per_s"):
        LatencyModel(output_tokens_per_s=0)
    with pytest.raises(ValueError, match="must be >= 0"):
        LatencyModel(uncached_s_per_token=-1e-6)


async def test_call_log_reports_modeled_times_in_emulated_seconds() -> None:
    app = create_app({MODEL: lambda request: LONG_ANSWER})
    client = async_client(app)
    began = time.monotonic()
    for _ in range(2):
        await client.messages.create(model=MODEL, max_tokens=500, messages=USER)
    assert time.monotonic() - began < 0.5  # time_scale 0: nothing sleeps
    first, second = Emulator.of(app).calls
    assert first.usage is not None
    expected = LatencyModel().timing(first.usage.with_output(0), first.usage.output_tokens, MODEL)
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
