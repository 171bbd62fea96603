"""Test doubles for your own agents' tests: scripted and function-driven models, served by the emulator.

They plug in where the real API would, through the official SDK client, so the whole loop runs (streaming, cache
billing, budgets, tools) at $0 and offline:

    model = ScriptedModel(
        call("list_pods", namespace="checkout"),
        say("checkout-7f9 is crash-looping: OOMKilled."),
    )
    agent = Agent("claude-sonnet-4-6", tools=[list_pods], client=model.client())
    result = await agent.run("Why is checkout failing?")
    model.assert_done()

A ``ScriptedModel`` fails loudly: a call after its last step is answered with an API error naming the request
(the run stops with ``stop.reason == "error"``) and ``assert_done`` raises; so does a step that was never used.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any, cast

import anthropic

from leanloop.emulator.app import create_app
from leanloop.emulator.policies import Reply
from leanloop.emulator.serving import async_client

__all__ = ["FunctionModel", "ScriptedModel", "UnexpectedCall", "call", "emulated_client", "say", "turn"]

Step = Reply | str | Mapping[str, Any] | Callable[[Mapping[str, Any]], Reply]
_ids = itertools.count(1)


class UnexpectedCall(AssertionError):
    """A scripted model was called more often than it has steps."""


def say(text: str) -> Reply:
    """A turn that answers with ``text`` and ends."""
    return Reply([{"type": "text", "text": text}])


def call(name: str, /, **arguments: Any) -> dict[str, Any]:
    """A tool_use block: ``call("read_pod_logs", namespace="checkout", pod="api-1")``."""
    return {"type": "tool_use", "id": f"toolu_test{next(_ids):06d}", "name": name, "input": arguments}


def turn(*blocks: Mapping[str, Any] | str, stop_reason: str | None = None) -> Reply:
    """A turn of several blocks: text (str) and tool calls (``call(...)``), e.g. parallel calls in one turn."""
    content = [{"type": "text", "text": b} if isinstance(b, str) else dict(b) for b in blocks]
    return Reply(content, stop_reason)


def _as_reply(step: Step, request: Mapping[str, Any]) -> Reply:
    if isinstance(step, Reply):
        return step
    if isinstance(step, str):
        return say(step)
    if isinstance(step, Mapping):
        return turn(cast(Mapping[str, Any], step))
    return step(request)


def emulated_client(
    models: Mapping[str, Callable[[Mapping[str, Any]], Any]], **kwargs: Any
) -> anthropic.AsyncAnthropic:
    """An ``AsyncAnthropic`` served in-process by an emulator running ``models`` (model id -> policy).

    ``kwargs`` go to ``create_app`` (clock, latency, faults, ...). The SDK does not retry: a test double's
    failure should surface at once.
    """
    return async_client(create_app(models, **kwargs), max_retries=0)


class ScriptedModel:
    """Answers with ``steps`` in order. A step is a ``Reply``, text, a tool call, or a function of the request."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[Mapping[str, Any]] = []
        self.failures: list[str] = []

    def __call__(self, request: Mapping[str, Any]) -> Reply:
        self.requests.append(request)
        if len(self.requests) > len(self.steps):
            messages: list[Any] = list(request.get("messages") or [])
            last: object = messages[-1] if messages else None
            failure = (
                f"unexpected call #{len(self.requests)}: the script has {len(self.steps)} steps; "
                f"the request ended with {str(last)[:300]}"
            )
            self.failures.append(failure)
            raise UnexpectedCall(failure)
        return _as_reply(self.steps[len(self.requests) - 1], request)

    @property
    def unused(self) -> int:
        return max(0, len(self.steps) - len(self.requests))

    def assert_done(self) -> None:
        """Raise if the model was called too often or if some steps were never used."""
        if self.failures:
            raise UnexpectedCall("; ".join(self.failures))
        if self.unused:
            raise AssertionError(f"{self.unused} of {len(self.steps)} scripted steps were never used")

    def client(self, model: str = "claude-sonnet-4-6", **kwargs: Any) -> anthropic.AsyncAnthropic:
        """A client whose ``model`` is this script (``kwargs`` go to ``create_app``)."""
        return emulated_client({model: self}, **kwargs)

    def __enter__(self) -> ScriptedModel:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.assert_done()


class FunctionModel:
    """Answers with ``function(request)``: a ``Reply``, text, or a tool call."""

    def __init__(self, function: Callable[[Mapping[str, Any]], Reply | str | Mapping[str, Any]]) -> None:
        self.function = function
        self.requests: list[Mapping[str, Any]] = []

    def __call__(self, request: Mapping[str, Any]) -> Reply:
        self.requests.append(request)
        return _as_reply(self.function(request), request)

    def client(self, model: str = "claude-sonnet-4-6", **kwargs: Any) -> anthropic.AsyncAnthropic:
        return emulated_client({model: self}, **kwargs)
