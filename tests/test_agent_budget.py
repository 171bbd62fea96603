"""Budgets as hard ceilings: the worst case priced as it will be billed (fast mode, US data residency), a cache
that misses or a tokenizer that counts more than estimated never takes spend over ``Budget(usd)``, and
``max_wall_seconds`` bounds the model call and the tools too."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest

from leanloop.agent import Agent
from leanloop.emulator import ManualClock, create_app
from leanloop.emulator.faults import Fault, FaultRule
from leanloop.emulator.latency import LatencyModel
from leanloop.emulator.serving import async_client
from leanloop.limits import Budget
from leanloop.pricing import default_pricing
from leanloop.testing import FunctionModel, call, emulated_client, say
from leanloop.tokens import Estimator
from leanloop.usage import Usage

pytestmark = pytest.mark.anyio
MODEL = "claude-sonnet-4-6"
BIG = "You are a meticulous SRE assistant. Follow the runbook exactly. " * 200  # ~2.6K tokens


async def test_the_worst_case_prices_fast_mode_and_us_residency_as_they_are_billed() -> None:
    model = "claude-opus-5-5"
    double = FunctionModel(lambda request: say("ok"))
    params = {"speed": "fast", "inference_geo": "us"}
    agent = Agent(model, client=double.client(model), params=params, max_tokens=4096)
    result = await agent.run("go", budget=Budget(usd=0.05))
    assert result.ok
    sent = double.requests[0]["max_tokens"]
    prompt = result.calls[0].usage.prompt_tokens
    worst = Usage(cache_write_5m_tokens=prompt, output_tokens=sent, speed="fast", inference_geo="us")
    assert default_pricing().cost(model, worst).total <= Decimal("0.05")  # at $44/MTok out, not $20
    assert sent < 4096


def policy_calls(name: str, times: int, **arguments: Any) -> FunctionModel:
    def answer(request: Mapping[str, Any]) -> Any:
        done = sum(1 for m in request["messages"] if m["role"] == "assistant")
        return call(name, **arguments) if done < times else say("done")

    return FunctionModel(answer)


async def test_a_cache_that_expires_between_calls_never_takes_spend_over_the_budget() -> None:
    clock = ManualClock()

    def slow(k: str) -> str:
        """A tool so slow that the cache expires meanwhile.

        Args:
            k: Ignored.
        """
        clock.advance(400)
        return "data " * 2000

    client = emulated_client({MODEL: policy_calls("slow", 6, k="a")}, clock=clock)
    agent = Agent(MODEL, system=BIG, tools=[slow], client=client, max_tokens=200)
    result = await agent.run("go", budget=Budget(usd=0.07))
    assert result.cache_misses  # the agent predicted reads; the API wrote
    assert result.stop.reason == "budget"
    assert result.cost.total <= Decimal("0.07")


class Scaled(Estimator):
    """A tokenizer that counts ``factor`` times what leanloop's estimator says."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def count_request(self, model: str, blocks: Sequence[tuple[str, Mapping[str, Any]]]) -> list[int]:
        return [int(count * self.factor) + 1 for count in super().count_request(model, blocks)]


@pytest.mark.parametrize("usd", [0.034, 0.035, 0.036, 0.04])
async def test_a_tokenizer_counting_more_than_estimated_never_takes_spend_over(usd: float) -> None:
    client = emulated_client({MODEL: lambda request: say("ok " * 10)}, token_counter=Scaled(1.25))
    agent = Agent(MODEL, system=BIG * 4, client=client, max_tokens=100, cache=False)
    result = await agent.run("go", budget=Budget(usd=usd))
    assert result.cost.total <= Decimal(str(usd))


async def test_the_token_margin_is_calibrated_by_the_first_call() -> None:
    client = emulated_client({MODEL: policy_calls("echo", 3, text="x")}, token_counter=Scaled(1.1))

    def echo(text: str) -> str:
        """Echo.

        Args:
            text: Echoed.
        """
        return text * 200

    agent = Agent(MODEL, system=BIG, tools=[echo], client=client, max_tokens=300)
    first = await agent.run("go")
    assert first.state.token_scale is not None and 1.05 < first.state.token_scale < 1.2  # measured, not assumed
    second = await agent.run("again")
    assert second.state.token_scale == pytest.approx(first.state.token_scale, abs=0.02)  # the agent keeps it


async def test_max_wall_seconds_cuts_a_slow_model_call() -> None:
    app = create_app({MODEL: lambda request: say("slow answer")}, faults=[FaultRule(Fault("slow_first_byte", delay=3))])
    started = time.perf_counter()
    result = await Agent(MODEL, client=async_client(app, max_retries=0)).run("go", budget=Budget(max_wall_seconds=0.5))
    assert time.perf_counter() - started < 1.5
    assert result.stop.reason == "budget" and result.stop.cap == "max_wall_seconds"
    assert "max_wall_seconds=0.5" in result.stop.detail
    assert result.calls == []  # nothing was billed: the response never started


async def test_max_wall_seconds_cuts_a_long_stream_and_keeps_what_was_billed() -> None:
    latency = LatencyModel(base_s=0.2, output_tokens_per_s=100.0, time_scale=1.0)  # first byte at ~0.2 s, then ~6 s
    app = create_app({MODEL: lambda request: say("word " * 600)}, latency=latency)
    started = time.perf_counter()
    result = await Agent(MODEL, client=async_client(app, max_retries=0)).run("go", budget=Budget(max_wall_seconds=1.0))
    assert time.perf_counter() - started < 2.0
    assert result.stop.cap == "max_wall_seconds"
    assert len(result.calls) == 1 and result.calls[0].usage.prompt_tokens > 0  # the started call is in the ledger
    assert result.calls[0].stop_reason == "error"
    assert result.messages[-1]["role"] == "user"  # the cut turn is not in the transcript
