"""emulator.faults: each fault as the official SDK experiences it, retries included."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import anthropic
import httpx2
import pytest

from leanloop.emulator import Emulator, Fault, FaultRule, Faults, async_client, create_app, serve_in_thread
from leanloop.errors import ConfigError

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
USER = [{"role": "user", "content": "Hello"}]
KWARGS: dict[str, Any] = {"model": MODEL, "max_tokens": 100, "messages": USER}


def first(fault: Fault, *numbers: int) -> list[FaultRule]:
    return [FaultRule(fault, nth=frozenset(numbers or (1,)))]


async def drain(client: anthropic.AsyncAnthropic, seen: list[str] | None = None) -> None:
    """Read a whole stream, noting each event type in ``seen``."""
    async with client.messages.stream(**KWARGS) as stream:
        async for event in stream:
            if seen is not None:
                seen.append(event.type)


async def test_rate_limit_is_retried_after_retry_after() -> None:
    app = create_app(faults=first(Fault("rate_limit", retry_after=0.05), 1, 2))
    began = time.monotonic()
    message = await async_client(app, max_retries=2).messages.create(**KWARGS)
    waited = time.monotonic() - began
    assert message.type == "message"
    calls = Emulator.of(app).calls
    assert [(c.status, c.error_type, c.retry_count) for c in calls] == [
        (429, "rate_limit_error", 0),
        (429, "rate_limit_error", 1),
        (200, None, 2),
    ]
    assert 0.1 <= waited < 1.0  # two waits of retry-after, not the SDK's own 0.5 s+ backoff


async def test_rate_limit_error_class_and_header_when_retries_run_out() -> None:
    app = create_app(faults=[FaultRule(Fault("rate_limit", retry_after=0.01))])
    with pytest.raises(anthropic.RateLimitError) as caught:
        await async_client(app, max_retries=1).messages.create(**KWARGS)
    assert caught.value.response.headers["retry-after"] == "0.01"
    assert caught.value.type == "rate_limit_error"
    assert len(Emulator.of(app).calls) == 2


async def test_spend_cap_style_429_has_no_retry_after() -> None:
    app = create_app(faults=[FaultRule(Fault("rate_limit", retry_after=None))])
    with pytest.raises(anthropic.RateLimitError) as caught:
        await async_client(app, max_retries=0).messages.create(**KWARGS)
    assert "retry-after" not in caught.value.response.headers


async def test_overloaded_and_server_error_before_the_response() -> None:
    overloaded = create_app(faults=[FaultRule(Fault("overloaded"))])
    with pytest.raises(anthropic.OverloadedError) as caught:
        await async_client(overloaded, max_retries=0).messages.create(**KWARGS)
    assert caught.value.status_code == 529
    assert caught.value.type == "overloaded_error"
    broken = create_app(faults=[FaultRule(Fault("server_error"))])
    with pytest.raises(anthropic.InternalServerError) as server:
        await async_client(broken, max_retries=0).messages.create(**KWARGS)
    assert server.value.status_code == 500
    assert server.value.type == "api_error"
    retried = create_app(faults=first(Fault("overloaded"), 1))
    assert (await async_client(retried, max_retries=1).messages.create(**KWARGS)).type == "message"


async def test_overloaded_mid_stream_arrives_after_http_200_and_is_not_retried() -> None:
    app = create_app(faults=[FaultRule(Fault("overloaded_midstream", after_events=3))])
    client = async_client(app, max_retries=2)
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        await drain(client, seen)
    assert caught.value.type == "overloaded_error"
    assert caught.value.status_code == 200  # the HTTP status was already 200
    assert seen[0] == "message_start"
    assert len(Emulator.of(app).calls) == 1  # no retry: the SDK retries only the initial request
    assert Emulator.of(app).calls[0].usage is not None  # the response had started: the prompt was processed


async def test_midstream_fault_on_a_non_streaming_request_is_a_529() -> None:
    app = create_app(faults=[FaultRule(Fault("overloaded_midstream"))])
    with pytest.raises(anthropic.OverloadedError):
        await async_client(app, max_retries=0).messages.create(**KWARGS)


async def test_disconnect_mid_stream_and_mid_body() -> None:
    app = create_app(faults=[FaultRule(Fault("disconnect", after_events=4), times=2)])
    client = async_client(app, max_retries=1)
    with pytest.raises(httpx2.RemoteProtocolError):
        await drain(client)
    # Non-streaming: the body is cut half-way, the SDK sees a connection error and retries.
    message = await client.messages.create(**KWARGS)
    assert message.type == "message"
    assert [c.fault for c in Emulator.of(app).calls] == ["disconnect", "disconnect", None]


def test_disconnect_on_a_real_socket() -> None:
    app = create_app(faults=[FaultRule(Fault("disconnect", after_events=2), nth=frozenset({1}))])
    with serve_in_thread(app) as base_url, anthropic.Anthropic(base_url=base_url, api_key="x", max_retries=0) as client:
        with pytest.raises(httpx2.RemoteProtocolError), client.messages.stream(**KWARGS) as stream:
            for _ in stream:
                pass
        assert client.messages.create(**KWARGS).type == "message"


async def test_slow_first_byte_trips_a_client_timeout() -> None:
    app = create_app(faults=first(Fault("slow_first_byte", delay=0.3), 1))
    with pytest.raises(anthropic.APITimeoutError):
        await async_client(app, max_retries=0, timeout=0.05).messages.create(**KWARGS)
    patient = async_client(app, max_retries=0, timeout=1.0)
    assert (await patient.messages.create(**KWARGS)).type == "message"  # the rule fired once
    slow = create_app(faults=first(Fault("slow_first_byte", delay=0.5), 1))
    with (
        serve_in_thread(slow) as base_url,
        anthropic.Anthropic(base_url=base_url, api_key="x", max_retries=0, timeout=0.1) as real,
        pytest.raises(anthropic.APITimeoutError),
    ):
        real.messages.create(**KWARGS)


async def test_rule_on_the_last_message_text() -> None:
    rule = FaultRule(Fault("server_error"), last_message_contains="flaky")
    client = async_client(create_app(faults=[rule]), max_retries=0)
    assert (await client.messages.create(**KWARGS)).type == "message"
    flaky = [{"role": "user", "content": [{"type": "text", "text": "this one is flaky"}]}]
    with pytest.raises(anthropic.InternalServerError):
        await client.messages.create(model=MODEL, max_tokens=10, messages=flaky)


async def test_random_faults_are_seeded() -> None:
    async def outcomes(seed: int) -> list[str | None]:
        app = create_app(faults=Faults(rate=0.5, kinds=("rate_limit", "server_error"), seed=seed))
        client = async_client(app, max_retries=0)
        for _ in range(12):
            with contextlib.suppress(anthropic.APIStatusError):
                await client.messages.create(**KWARGS)
        return [c.fault for c in Emulator.of(app).calls]

    first_run = await outcomes(5)
    assert first_run == await outcomes(5)
    assert first_run != await outcomes(6)
    assert {None, "rate_limit", "server_error"} == set(first_run)


def test_faults_from_a_scenario_section() -> None:
    faults = Faults.from_config(
        {
            "seed": 2,
            "rate": 0.1,
            "rules": [{"kind": "rate_limit", "nth": [2, 3], "retry_after": 0.5}, {"kind": "disconnect", "times": 1}],
        }
    )
    assert faults.rules[0] == FaultRule(Fault("rate_limit", retry_after=0.5), nth=frozenset({2, 3}))
    assert faults.decide(1, {}) == Fault("disconnect")
    assert faults.decide(2, {}) == Fault("rate_limit", retry_after=0.5)
    with pytest.raises(ConfigError, match="unknown fault kind"):
        Faults.from_config([{"kind": "meteor"}])
    with pytest.raises(ConfigError, match="unknown keys"):
        Faults.from_config([{"kind": "overloaded", "when": 3}])


@pytest.mark.parametrize("kind", ["overloaded_midstream", "disconnect"])
async def test_a_midstream_fault_placed_past_the_end_still_fires_before_message_stop(kind: str) -> None:
    app = create_app(faults=[FaultRule(Fault(kind, after_events=500))])  # type: ignore[arg-type]
    seen: list[str] = []
    with pytest.raises((anthropic.APIStatusError, httpx2.RemoteProtocolError)):
        await drain(async_client(app, max_retries=0), seen)
    assert "message_stop" not in seen
    assert seen[0] == "message_start"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"kind": "overloaded", "nth": "13"}, "nth must be a request number or a list of them, got str '13'"),
        ({"kind": "overloaded", "nth": [1, "2"]}, "nth must be a request number or a list of them"),
        ({"kind": "overloaded", "nth": 0}, "nth: request numbers start at 1, got 0"),
        ({"kind": "overloaded", "times": "2"}, "times must be a whole number of at least 1, got str '2'"),
        ({"kind": "overloaded", "times": 0}, "times must be a whole number of at least 1, got int 0"),
        ({"kind": "rate_limit", "retry_after": "soon"}, "retry_after must be a number of seconds or null"),
        ({"kind": "rate_limit", "retry_after": -1}, "retry_after must be a number of seconds or null"),
        ({"kind": "slow_first_byte", "delay": "soon"}, "delay must be a number of seconds, got str 'soon'"),
        ({"kind": "disconnect", "after_events": 1.5}, "after_events must be a whole number of at least 0"),
        ({"kind": "overloaded", "model": 4}, "model must be a string, got int 4"),
        ({"kind": "overloaded", "last_message_contains": 4}, "last_message_contains must be a string, got int 4"),
        ({"kind": 4}, "unknown fault kind 4"),
    ],
)
def test_fault_rule_fields_are_type_checked(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Faults.from_config([rule])
    assert message in str(caught.value)
    assert "fault rule 1" in str(caught.value)


@pytest.mark.parametrize(
    ("kind", "status", "error_class", "retried"),
    [
        ("billing", 402, anthropic.PaymentRequiredError, False),
        ("permission", 403, anthropic.PermissionDeniedError, False),
        ("request_timeout", 408, anthropic.RequestTimeoutError, True),
        ("conflict", 409, anthropic.ConflictError, True),
        ("gateway_timeout", 504, anthropic.GatewayTimeoutError, True),
    ],
)
async def test_more_http_errors_arrive_as_the_sdk_classes(
    kind: str, status: int, error_class: type[anthropic.APIStatusError], retried: bool
) -> None:
    app = create_app(faults=[FaultRule(Fault(kind))])  # type: ignore[arg-type]
    with pytest.raises(error_class) as caught:
        await async_client(app, max_retries=1).messages.create(**KWARGS)
    assert caught.value.status_code == status
    assert len(Emulator.of(app).calls) == (2 if retried else 1)


RATE = "anthropic-ratelimit-"


async def test_rate_limit_headers_count_down_and_reset_in_rfc_3339() -> None:
    from datetime import datetime

    from leanloop.emulator.ratelimits import RateLimits

    assert (
        int(
            (await async_client(create_app()).messages.with_raw_response.create(**KWARGS)).headers[
                f"{RATE}requests-limit"
            ]
        )
        == 4000
    )
    # A small limit, so the bucket visibly drains faster than it refills between sequential requests.
    client = async_client(create_app(rate_limits=RateLimits(requests_per_minute=5)), max_retries=0)
    seen = []
    for _ in range(3):
        raw = await client.messages.with_raw_response.create(**KWARGS)
        seen.append(raw.headers)
    for name in ("requests", "tokens", "input-tokens", "output-tokens"):
        for part in ("limit", "remaining", "reset"):
            assert f"{RATE}{name}-{part}" in seen[0], (name, part)
    remaining = [int(h[f"{RATE}requests-remaining"]) for h in seen]
    assert remaining[0] > remaining[1] > remaining[2]
    assert int(seen[0][f"{RATE}input-tokens-remaining"]) % 1000 == 0  # rounded to the thousand, as the API does
    reset = datetime.fromisoformat(seen[-1][f"{RATE}requests-reset"].replace("Z", "+00:00"))
    assert reset.tzinfo is not None
    async with client.messages.with_streaming_response.create(**KWARGS, stream=True) as streamed:
        assert f"{RATE}requests-remaining" in streamed.headers


async def test_a_429_carries_retry_after_and_the_rate_limit_headers() -> None:
    app = create_app(faults=[FaultRule(Fault("rate_limit", retry_after=2))])
    with pytest.raises(anthropic.RateLimitError) as caught:
        await async_client(app, max_retries=0).messages.create(**KWARGS)
    headers = caught.value.response.headers
    assert headers["retry-after"] == "2"
    assert f"{RATE}requests-remaining" in headers
