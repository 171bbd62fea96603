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

A ``ScriptedModel`` fails loudly: a call after its last step, or a step whose own check fails, is answered with an
API error naming the request (the run stops with ``stop.reason == "error"``) and ``assert_done`` raises; so does a
step that was never used. A ``FunctionModel`` records its function's failures the same way.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import anthropic

from leanloop.emulator.app import create_app
from leanloop.emulator.catalog import CATALOG
from leanloop.emulator.policies import Reply
from leanloop.emulator.serving import async_client

__all__ = ["FunctionModel", "ScriptedModel", "UnexpectedCall", "call", "emulated_client", "say", "turn"]

Answer = Reply | str | Mapping[str, Any] | Sequence[Mapping[str, Any] | str | Reply]
Step = Answer | Callable[[Mapping[str, Any]], Answer]
_ids = itertools.count(1)


class UnexpectedCall(AssertionError):
    """A scripted model was called more often than it has steps."""


def say(text: str) -> Reply:
    """A turn that answers with ``text`` and ends."""
    return Reply([{"type": "text", "text": text}])


def call(name: str, /, **arguments: Any) -> dict[str, Any]:
    """A tool_use block: ``call("read_pod_logs", namespace="checkout", pod="api-1")``."""
    return {"type": "tool_use", "id": f"toolu_test{next(_ids):06d}", "name": name, "input": arguments}


def turn(*blocks: Mapping[str, Any] | str | Reply, stop_reason: str | None = None) -> Reply:
    """A turn of several blocks: text (str or ``say(...)``) and tool calls (``call(...)``), e.g. parallel calls."""
    content: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, Reply):
            content += [dict(b) for b in block.content]
        elif isinstance(block, str):
            content.append({"type": "text", "text": block})
        elif isinstance(block, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance] - callers pass anything
            content.append(dict(block))
        else:
            raise TypeError(f"turn(): a block is text, say(...) or call(...), got {type(block).__name__}")
    return Reply(content, stop_reason)


def _as_reply(step: Step, request: Mapping[str, Any]) -> Reply:
    if isinstance(step, Reply):
        return step
    if isinstance(step, str):
        return say(step)
    if isinstance(step, Mapping):
        return turn(cast(Mapping[str, Any], step))
    if isinstance(step, list | tuple):  # several blocks in one turn, as turn(*blocks)
        return turn(*cast(Sequence[Mapping[str, Any] | str | Reply], step))
    if not callable(step):
        raise TypeError(
            "a model double's step must return a Reply, text, a block, or a list of blocks (say(), call(), turn()), "
            f"got {type(step).__name__}"
        )
    return _as_reply(step(request), request)


def emulated_client(
    models: Mapping[str, Callable[[Mapping[str, Any]], Any]], **kwargs: Any
) -> anthropic.AsyncAnthropic:
    """An ``AsyncAnthropic`` served in-process by an emulator running ``models`` (model id -> policy).

    ``kwargs`` go to ``create_app`` (clock, latency, faults, ...). The SDK does not retry: a test double's
    failure should surface at once.
    """
    return async_client(create_app(models, **kwargs), max_retries=0)


def _ending(request: Mapping[str, Any]) -> str:
    messages: list[Any] = list(request.get("messages") or [])
    return str(messages[-1] if messages else None)[:300]


class _Recorder:
    """Requests seen and failures, shared by both doubles: a failure is answered with an API error (the run stops
    with ``stop.reason == "error"``) and kept, so ``assert_done`` fails even when the run's result is not checked."""

    def __init__(self) -> None:
        self.requests: list[Mapping[str, Any]] = []
        self.failures: list[str] = []

    def __call__(self, request: Mapping[str, Any]) -> Reply:  # pragma: no cover - each double defines it
        raise NotImplementedError

    def _answer(self, request: Mapping[str, Any], step: Step) -> Reply:
        try:
            return _as_reply(step, request)
        except Exception as error:
            self.failures.append(
                f"request #{len(self.requests)} failed in the model double: {type(error).__name__}: {error} "
                f"(the request ended with {_ending(request)})"
            )
            raise

    def assert_done(self) -> None:
        """Raise if a request failed inside the double (an assertion or exception of a step or function)."""
        if self.failures:
            kind = UnexpectedCall if any("unexpected call" in f for f in self.failures) else AssertionError
            raise kind("; ".join(self.failures))

    def client(self, model: str | None = None, **kwargs: Any) -> anthropic.AsyncAnthropic:
        """A client on which every Claude model the emulator knows is this double, or only ``model`` when given (as
        the API, an id it does not serve is a 404; name a model id of your own here). With ``Tiers``, the cheap
        model's side calls come here too: give it a double of its own with ``emulated_client({model: double,
        cheap: other})``. ``kwargs`` go to ``create_app``."""
        models = dict.fromkeys(CATALOG, self) if model is None else {model: self}
        return emulated_client(models, **kwargs)


class ScriptedModel(_Recorder):
    """Answers with ``steps`` in order. A step is a ``Reply``, text, a tool call, a list of them (one turn), or a
    function of the request."""

    def __init__(self, *steps: Step) -> None:
        super().__init__()
        self.steps = list(steps)

    def __call__(self, request: Mapping[str, Any]) -> Reply:
        self.requests.append(request)
        if len(self.requests) > len(self.steps):
            failure = (
                f"unexpected call #{len(self.requests)}: the script has {len(self.steps)} steps; "
                f"the request ended with {_ending(request)}"
            )
            self.failures.append(failure)
            raise UnexpectedCall(failure)
        return self._answer(request, self.steps[len(self.requests) - 1])

    @property
    def unused(self) -> int:
        return max(0, len(self.steps) - len(self.requests))

    def assert_done(self) -> None:
        """Raise if the model was called too often, if a step failed, or if some steps were never used."""
        super().assert_done()
        if self.unused:
            raise AssertionError(f"{self.unused} of {len(self.steps)} scripted steps were never used")

    def __enter__(self) -> ScriptedModel:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.assert_done()


class FunctionModel(_Recorder):
    """Answers with ``function(request)``: a ``Reply``, text, a tool call, or a list of them (one turn of several
    blocks, e.g. parallel tool calls). ``assert_done`` raises if the function failed on some request."""

    def __init__(self, function: Callable[[Mapping[str, Any]], Answer]) -> None:
        super().__init__()
        self.function = function

    def __call__(self, request: Mapping[str, Any]) -> Reply:
        self.requests.append(request)
        return self._answer(request, self.function)
