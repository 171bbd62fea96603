"""The emulator's ASGI app: the Messages API endpoints, wired to the cache simulator, the policies, the latency
model and the fault plan. This is the I/O edge; every decision it carries out is made by a pure module
(``validate``, ``faults``, ``render``, ``latency``, ``wire``, ``leanloop.cachesim``).

One request to ``POST /v1/messages``::

    authenticate -> read body (413) -> number it -> fault before the response? (429/529/500)
    -> validate (400/404) -> policy -> render within max_tokens -> cache: predict, model TTFT, apply
    -> respond (JSON, or SSE paced at the output speed; a mid-stream fault may cut it)

Emulated time (``Emulator.now``) is the clock's time, but never earlier than the modeled end of a response that
already finished: with ``time_scale=0`` nothing sleeps, yet a request sent after another one's response starts
after that response ended, so it reads what that one wrote. Requests in flight together start at the same emulated
time, so identical concurrent requests all pay the cache write (an entry is readable only from its writer's first
token: request start + modeled TTFT). With ``time_scale=0`` "in flight together" means on the event loop at once;
to model concurrency in real time (threads, several processes), give a small ``time_scale`` such as 0.01.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypedDict, Unpack, cast

import anyio
import anyio.lowlevel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from leanloop.cachesim import CacheResult, CacheSim, Prompt, prompt_from_request
from leanloop.emulator.catalog import CATALOG, ModelCard, model_card
from leanloop.emulator.clock import Clock, ScaledClock
from leanloop.emulator.context import clear_tool_uses
from leanloop.emulator.contract import PolicyError, keep_promises
from leanloop.emulator.faults import Fault, FaultRule, Faults
from leanloop.emulator.latency import LatencyModel, Timing
from leanloop.emulator.policies import Policy, call_policy, finisher
from leanloop.emulator.ratelimits import RateLimits
from leanloop.emulator.render import Rendered, render
from leanloop.emulator.thinking import thinking_omitted
from leanloop.emulator.threads import ThreadError, Threads
from leanloop.emulator.validate import (
    MAX_BODY_BYTES,
    check_context_window,
    check_count_tokens_request,
    check_message_request,
    parse_body,
    too_large,
)
from leanloop.emulator.wire import Event, Ids, error_body, error_event, message_body, stream_events, usage_body
from leanloop.errors import ConfigError, InvalidRequestError
from leanloop.pricing import cost
from leanloop.tokens import Estimator, TokenCounter
from leanloop.usage import Usage

__all__ = ["ConnectionDropped", "Emulator", "ServedCall", "create_app"]

_log = logging.getLogger("leanloop.emulator")
_JSON = "application/json"
_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


class ConnectionDropped(Exception):
    """Raised inside the app to close the connection mid-response (the ``disconnect`` fault).

    Servers log it as an application error; ``serve_in_thread`` and the CLI filter those log lines out.
    """


@dataclass
class ServedCall:
    """One ``POST /v1/messages`` as the emulator served it (the log in ``Emulator.calls``).

    Times are emulated seconds. ``usage`` includes output tokens and is None when no response was produced (an
    error or a fault before the response). ``error`` is the exception a policy raised, if any.
    """

    number: int
    request_id: str
    model: str | None
    stream: bool
    start: float
    request: Mapping[str, Any] = field(repr=False)
    status: int = 200
    error_type: str | None = None
    fault: str | None = None
    usage: Usage | None = None
    stop_reason: str | None = None
    message_id: str | None = None
    ttft_s: float | None = None
    duration_s: float | None = None
    cache: CacheResult | None = field(default=None, repr=False)
    retry_count: int | None = None
    betas: tuple[str, ...] = ()
    thread: str | None = None
    context_management: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict[str, str], repr=False)
    error: BaseException | None = field(default=None, repr=False)
    content: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]], repr=False)

    @property
    def end(self) -> float:
        return self.start + (self.duration_s or 0.0)

    def summary(self) -> dict[str, Any]:
        """The call as plain JSON data (a line of ``leanloop emulator --log``): what was served, and ``cost_usd``,
        what the real API would bill for it (None without a response or for a model genai-prices does not know)."""
        priced = cost(self.model, self.usage) if self.usage is not None and self.model is not None else None
        return {
            "number": self.number,
            "request_id": self.request_id,
            "message_id": self.message_id,
            "model": self.model,
            "stream": self.stream,
            "status": self.status,
            "error_type": self.error_type,
            "fault": self.fault,
            "stop_reason": self.stop_reason,
            "usage": self.usage.to_api() if self.usage is not None else None,
            "cost_usd": priced.usd if priced is not None else None,
            "start": self.start,
            "ttft_s": self.ttft_s,
            "duration_s": self.duration_s,
            "thread": self.thread,
            "notes": list(self.notes),
        }


class _Served(Exception):
    """An HTTP error answer, raised from deep in a handler and turned into the API's error body at its top."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message, self.headers = status, error_type, message, headers or {}
        self.details = details


def _served(error: InvalidRequestError) -> _Served:
    """The HTTP answer to a request the API refuses (with ``error.details.error_code`` for thread errors)."""
    details = {"error_code": error.error_code} if isinstance(error, ThreadError) else None
    return _Served(error.status, error.error_type, error.message, details=details)


def _fail_before_response(fault: Fault, stream: bool, rate_headers: Mapping[str, str]) -> None:
    """Raise the HTTP error a fault answers with instead of a response, if it does (a 429 with the rate headers)."""
    failure = fault.http_error(stream)
    if failure is not None:
        status, error_type, message = failure
        headers: dict[str, str] = {}
        if status == 429:
            headers.update(rate_headers)
            if fault.retry_after:
                headers["retry-after"] = _seconds(fault.retry_after)
        raise _Served(status, error_type, message, headers)


class _RememberedCounts:
    """A ``TokenCounter`` that remembers the counts of the block groups it has seen (least recently used out).

    An agent loop re-sends its whole history every call, so most of what the emulator counts it counted before;
    hashing a group's JSON is far cheaper than counting its tokens again.
    """

    def __init__(self, counter: TokenCounter, size: int = 16_384) -> None:
        self._counter, self._size = counter, size
        self._counts: OrderedDict[bytes, list[int]] = OrderedDict()

    def count_request(self, model: str, blocks: Sequence[tuple[str, Mapping[str, Any]]]) -> list[int]:
        key = hashlib.blake2b(json.dumps([model, blocks], ensure_ascii=False).encode(), digest_size=16).digest()
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counter.count_request(model, blocks)
            self._counts[key] = counts
            if len(self._counts) > self._size:
                self._counts.popitem(last=False)
        else:
            self._counts.move_to_end(key)
        return list(counts)


class Emulator:
    """The state behind one app: policies per model, one ``CacheSim``, the clock, faults, and the call log."""

    def __init__(self, models: Mapping[str, Policy] | None = None, **options: Unpack[EmulatorOptions]) -> None:
        latency, cache, faults = options.get("latency"), options.get("cache"), options.get("faults")
        min_cache_tokens = options.get("min_cache_tokens")
        if cache is not None and min_cache_tokens is not None:
            raise ConfigError("give cache= or min_cache_tokens=, not both (a CacheSim has its own minimums)")
        policies: dict[str, Policy] = dict(models) if models is not None else dict.fromkeys(CATALOG, finisher)
        for model in list(policies):  # an alias answers under its dated id, so the dated id is served too
            dated = model_card(model).dated_id
            if dated is not None:
                policies.setdefault(dated, policies[model])
        self.policies = policies
        self.cards: dict[str, ModelCard] = {model: model_card(model) for model in policies}
        self.latency = latency or LatencyModel()
        self.clock: Clock = options.get("clock") or ScaledClock(self.latency.time_scale)
        self.faults = faults if isinstance(faults, Faults) or faults is None else Faults(rules=faults)
        self.api_key = options.get("api_key")
        # An empty CacheSim is falsy (it has a length): test for None.
        self.cache = cache if cache is not None else CacheSim(min_tokens=min_cache_tokens)
        self.token_counter: TokenCounter = _RememberedCounts(options.get("token_counter") or Estimator())
        self.ids = Ids(options.get("seed"))
        self.undeclared_tools = options.get("undeclared_tools", "error")
        self.threads = Threads()
        self.rate_limits = options.get("rate_limits") or RateLimits()
        self.calls: list[ServedCall] = []
        self.log_limit = options.get("log_limit")
        self.on_call = options.get("on_call")
        self._received = 0
        self._horizon = 0.0

    @staticmethod
    def of(app: Starlette) -> Emulator:
        """The emulator behind an app made by ``create_app``."""
        return cast(Emulator, app.state.emulator)

    def now(self) -> float:
        """Emulated time: the clock, but never before the end of a response that already finished."""
        return max(self.clock.now(), self._horizon)

    def _log(self, call: ServedCall) -> None:
        self.calls.append(call)
        if self.log_limit is not None and len(self.calls) >= 2 * self.log_limit:
            del self.calls[: -self.log_limit]  # trimmed in batches, so appending stays O(1) amortised

    def _answered(self, call: ServedCall) -> None:
        """Hand the answered call to ``on_call``; a failing hook is logged, never the client's error."""
        if self.on_call is None:
            return
        try:
            self.on_call(call)
        except Exception:
            _log.exception("on_call failed for request %s", call.request_id)

    def finished(self, call: ServedCall) -> None:
        """Note that ``call``'s response has ended: later requests start no earlier than its modeled end."""
        self._horizon = max(self._horizon, call.end)

    # -----------------------------------------------------------------------------------------------------------
    # Endpoints

    async def create_message(self, request: Request) -> Response:
        request_id = self.ids.request_id()
        call: ServedCall | None = None
        try:
            self._authenticate(request)
            body = await self._read_body(request)
            self._received += 1
            model = body.get("model")
            call = ServedCall(
                number=self._received,
                request_id=request_id,
                model=model if isinstance(model, str) else None,
                stream=body.get("stream") is True,
                start=self.now(),
                request=body,
                retry_count=_int_header(request, "x-stainless-retry-count"),
                betas=_betas(request),
            )
            self._log(call)
            self.rate_limits.take(call.start, requests=1)
            fault = self.faults.decide(call.number, body) if self.faults is not None else None
            return await self._respond(call, body, fault)
        except _Served as served:
            if call is not None:
                call.status, call.error_type = served.status, served.error_type
            return _error(served, request_id)
        except Exception as error:  # the emulator's own bug: still the API's error shape, and not retried
            _log.exception("request %s failed inside the emulator", request_id)
            if call is not None:
                call.status, call.error_type, call.error = 500, "api_error", error
            message = f"Internal server error (emulator: {type(error).__name__}: {error})"
            return _error(_Served(500, "api_error", message, {"x-should-retry": "false"}), request_id)
        finally:
            if call is not None:
                self._answered(call)

    async def count_tokens(self, request: Request) -> Response:
        request_id = self.ids.request_id()
        try:
            self._authenticate(request)
            body = await self._read_body(request)
            try:
                check_count_tokens_request(body, self.cards.get)
                prompt = self._prompt(body)
            except InvalidRequestError as error:
                raise _served(error) from None
        except _Served as served:
            return _error(served, request_id)
        return _json({"input_tokens": prompt.total_tokens}, request_id)

    async def preflight(self, request: Request) -> Response:
        """``HEAD /`` and ``HEAD /api/hello``: Claude Code's connection check before its first request (no key)."""
        return Response(headers={"request-id": self.ids.request_id()})

    async def list_models(self, request: Request) -> Response:
        request_id = self.ids.request_id()
        try:
            self._authenticate(request)
            limit = _int_param(request, "limit", 20)
            if not 1 <= limit <= 1000:
                raise _Served(400, "invalid_request_error", "limit: Input should be between 1 and 1000")
        except _Served as served:
            return _error(served, request_id)
        served = {card.served_id: self.cards.get(card.served_id, card) for card in self.cards.values()}
        cards = sorted(served.values(), key=lambda c: (c.created, c.id), reverse=True)
        ids = [c.id for c in cards]
        after, before = request.query_params.get("after_id"), request.query_params.get("before_id")
        if before in ids:
            end = ids.index(before)
            chosen, more = cards[max(0, end - limit) : end], end - limit > 0
        else:
            begin = ids.index(after) + 1 if after in ids else 0
            chosen, more = cards[begin : begin + limit], begin + limit < len(cards)
        data = [c.to_api() for c in chosen]
        page = {
            "data": data,
            "has_more": more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
        return _json(page, request_id)

    async def retrieve_model(self, request: Request) -> Response:
        request_id = self.ids.request_id()
        model_id = str(request.path_params["model_id"])
        try:
            self._authenticate(request)
            card = self.cards.get(model_id)
            if card is None:
                raise _Served(404, "not_found_error", f"model: {model_id}")
        except _Served as served:
            return _error(served, request_id)
        return _json(card.to_api(), request_id)

    # -----------------------------------------------------------------------------------------------------------
    # Steps of a request

    def _authenticate(self, request: Request) -> None:
        key = request.headers.get("x-api-key")
        if not key:
            authorization = request.headers.get("authorization", "")
            key = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None
        if not key:
            raise _Served(401, "authentication_error", "x-api-key header is required")
        if self.api_key is not None and key != self.api_key:
            raise _Served(401, "authentication_error", "invalid x-api-key")

    async def _read_body(self, request: Request) -> dict[str, Any]:
        declared = _int_header(request, "content-length")
        if declared is not None and declared > MAX_BODY_BYTES:
            raise _served(too_large())
        try:
            return parse_body(await request.body())
        except InvalidRequestError as error:
            raise _served(error) from None

    def _prompt(self, body: Mapping[str, Any]) -> Prompt:
        prompt = prompt_from_request(body, self.token_counter)
        _ = prompt.breakpoints  # raises for more than 4 breakpoints or a 1h mark after a 5m one
        return prompt

    async def _respond(self, call: ServedCall, body: dict[str, Any], fault: Fault | None) -> Response:
        if fault is not None:
            call.fault = fault.kind
            _fail_before_response(fault, call.stream, self._rate_headers())
        try:
            resolved = self.threads.resolve(body, call.betas, call.start)
        except InvalidRequestError as error:
            raise _served(error) from None
        call.request, call.thread = resolved.body, resolved.kind
        try:
            card, prompt, seen = self._checked(call, resolved.body)  # seen: the request as the model reads it
            rendered = await self._answer(call, card, prompt, seen)
            timing = self._serve(call, prompt, rendered, seen)
            usage = call.usage or Usage()
            self.rate_limits.take(
                call.start,
                input_tokens=usage.input_tokens + usage.cache_write_tokens,
                output_tokens=usage.output_tokens,
            )
            call.headers = self._rate_headers()
        except BaseException:
            self.threads.release(resolved)
            raise
        if fault is None or (fault.stream_cut is None and fault.kind != "disconnect"):
            self.threads.store(call.message_id or "", resolved, rendered.content, call.start)
        else:
            self.threads.release(resolved)  # a reply cut short is not stored: the thread stays where it was
        if call.stream:
            extra = _extra_fields(call)
            events = list(stream_events(call.message_id or "", card.served_id, rendered, call.usage or Usage(), extra))
            return _EventStream(self, call, events, timing, fault)
        return await self._message(call, card, rendered, timing, fault)

    def _rate_headers(self) -> dict[str, str]:
        return self.rate_limits.headers(self.now(), time.time())

    def _checked(self, call: ServedCall, body: Mapping[str, Any]) -> tuple[ModelCard, Prompt, Mapping[str, Any]]:
        """The request checked as the API checks it (400/404), with its context edits applied: (card, prompt, body)."""
        try:
            card = check_message_request(body, self.cards.get, call.betas)
            prompt = self._prompt(body)
            if body.get("context_management") is not None:
                edited, applied = clear_tool_uses(body, prompt.total_tokens, lambda b: self._prompt(b).total_tokens)
                call.context_management = {"applied_edits": applied}
                if applied:
                    body, prompt = edited, self._prompt(edited)
                    call.request = edited
            check_context_window(prompt.total_tokens, card)
        except InvalidRequestError as error:
            raise _served(error) from None
        return card, prompt, body

    async def _answer(self, call: ServedCall, card: ModelCard, prompt: Prompt, body: Mapping[str, Any]) -> Rendered:
        """The policy's answer, keeping the request's promises, rendered within its limits."""
        policy = self.policies[card.id]
        try:
            reply = await call_policy(policy, body)
            kept = keep_promises(
                reply, body, thinks_by_default=card.thinks_by_default, undeclared_tools=self.undeclared_tools == "serve"
            )
        except PolicyError as error:
            call.error = error
            message = f"the policy for {card.id} ({_policy_name(policy)}) answered what the API never would: {error}"
            raise _Served(500, "api_error", message, {"x-should-retry": "false"}) from None
        except Exception as error:  # a policy's bug or a scripted model's "unexpected call": report it, don't retry
            call.error = error
            message = f"the policy for {card.id} raised {type(error).__name__}: {error}"
            raise _Served(500, "api_error", message, {"x-should-retry": "false"}) from None
        call.notes = kept.notes
        for note in kept.notes:
            _log.warning("request %s, policy for %s (%s): %s", call.request_id, card.id, _policy_name(policy), note)
        return render(
            kept.reply,
            int(body["max_tokens"]),
            self.ids.tool_use_id,
            stop_sequences=[s for s in cast(list[Any], body.get("stop_sequences") or []) if isinstance(s, str)],
            context_left=card.max_input_tokens - prompt.total_tokens,
            omit_thinking=thinking_omitted(body),
        )

    def _serve(self, call: ServedCall, prompt: Prompt, rendered: Rendered, body: Mapping[str, Any]) -> Timing:
        """Apply the request to the cache, with its entries readable from the modeled first token on."""
        predicted = self.cache.predict(prompt, start=call.start)
        timing = self.latency.timing(predicted.usage, rendered.output_tokens, prompt.model)
        result = self.cache.request(prompt, start=call.start, response_start=call.start + timing.ttft_s)
        call.cache = result
        speed, geo = body.get("speed"), body.get("inference_geo")
        call.usage = replace(
            result.usage.with_output(rendered.output_tokens),
            speed=speed if isinstance(speed, str) else None,
            inference_geo=geo if isinstance(geo, str) else None,
        )
        call.stop_reason = rendered.stop_reason
        call.message_id = self.ids.message_id()
        call.ttft_s, call.duration_s = timing.ttft_s, timing.total_s
        call.content = rendered.content
        return timing

    async def _message(
        self, call: ServedCall, card: ModelCard, rendered: Rendered, timing: Timing, fault: Fault | None
    ) -> Response:
        usage = usage_body(call.usage or Usage(), rendered)
        stop = (rendered.stop_reason, rendered.stop_sequence)
        body = message_body(
            call.message_id or "", card.served_id, rendered.content, stop, usage, extra=_extra_fields(call)
        )
        encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        delay = self.latency.real(timing.total_s) + (fault.first_byte_delay if fault else 0.0)
        if delay > 0:
            await anyio.sleep(delay)
        else:
            # Let requests that arrived together start before this one ends (see the module docstring).
            await anyio.lowlevel.checkpoint()
        self.finished(call)
        if fault is not None and fault.kind == "disconnect":
            return _DroppedBody(encoded, call.request_id)
        return Response(encoded, headers={"request-id": call.request_id, **call.headers}, media_type=_JSON)


class _EventStream(Response):
    """The SSE body, paced by the latency model and cut short by a mid-stream fault."""

    def __init__(self, emulator: Emulator, call: ServedCall, events: list[Event], timing: Timing, fault: Fault | None):
        super().__init__(status_code=200)
        self._emulator, self._call, self._events, self._timing, self._fault = emulator, call, events, timing, fault

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        latency, fault = self._emulator.latency, self._fault
        extra = [(name.encode(), value.encode()) for name, value in self._call.headers.items()]
        headers = [*_SSE_HEADERS, (b"request-id", self._call.request_id.encode()), *extra]
        first_byte = latency.real(self._timing.ttft_s) + (fault.first_byte_delay if fault else 0.0)
        started = anyio.current_time()
        slept = first_byte > 0
        if slept:
            await anyio.sleep(first_byte)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        cut = fault.stream_cut if fault else None
        if cut is not None:
            cut = min(cut, len(self._events) - 1)  # placed past the end, a fault still strikes before message_stop
        pending: list[bytes] = []
        try:
            for index, event in enumerate(self._events):
                if index == cut:
                    break
                due = started + first_byte + latency.real(event.tokens / self._timing.output_tokens_per_s)
                if due > anyio.current_time() + 0.001:
                    await _flush(send, pending)
                    await anyio.sleep(due - anyio.current_time())
                    slept = True
                pending.append(event.data)
            if not slept:
                await anyio.lowlevel.checkpoint()  # see Emulator._message
            if cut is not None and fault is not None and fault.kind == "disconnect":
                await _flush(send, pending)
                raise ConnectionDropped(f"request {self._call.request_id}: connection closed mid-stream (fault)")
            if cut is not None:
                pending.append(error_event("overloaded_error", "Overloaded"))
            await send({"type": "http.response.body", "body": b"".join(pending), "more_body": False})
        finally:
            self._emulator.finished(self._call)


class _DroppedBody(Response):
    """A non-streaming response whose connection closes half-way through the body."""

    def __init__(self, body: bytes, request_id: str) -> None:
        super().__init__(body, headers={"request-id": request_id}, media_type=_JSON)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        half = bytes(self.body[: len(self.body) // 2])
        await send({"type": "http.response.body", "body": half, "more_body": True})
        raise ConnectionDropped("connection closed half-way through the response body (fault)")


async def _flush(send: Send, pending: list[bytes]) -> None:
    if pending:
        await send({"type": "http.response.body", "body": b"".join(pending), "more_body": True})
        pending.clear()


def _json(data: Any, request_id: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    encoded = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(
        encoded, status_code=status, headers={"request-id": request_id, **(headers or {})}, media_type=_JSON
    )


def _error(served: _Served, request_id: str) -> Response:
    body = error_body(served.error_type, served.message, request_id, served.details)
    return _json(body, request_id, served.status, served.headers)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _extra_fields(call: ServedCall) -> dict[str, Any]:
    """Response fields only some requests get: ``context_management`` when the request asked for edits."""
    return {} if call.context_management is None else {"context_management": call.context_management}


def _policy_name(policy: Policy) -> str:
    """How a policy is named in messages: a scenario by its name, a function by its own."""
    name = getattr(policy, "name", None)
    if isinstance(name, str):
        return f"{type(policy).__name__} {name!r}"
    return str(getattr(policy, "__qualname__", None) or type(policy).__name__)


def _betas(request: Request) -> tuple[str, ...]:
    """The ``anthropic-beta`` names of a request (the SDK sends one comma-separated header)."""
    values = request.headers.getlist("anthropic-beta")
    return tuple(name.strip() for value in values for name in value.split(",") if name.strip())


def _int_header(request: Request, name: str) -> int | None:
    value = request.headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _int_param(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise _Served(400, "invalid_request_error", f"{name}: Input should be a valid integer") from None


class EmulatorOptions(TypedDict, total=False):
    """The settings of an emulator (``create_app``'s keyword arguments)."""

    clock: Clock | None
    latency: LatencyModel | None
    faults: Faults | Sequence[FaultRule] | None
    api_key: str | None
    cache: CacheSim | None
    min_cache_tokens: Mapping[str, int] | None
    token_counter: TokenCounter | None
    seed: int | None
    undeclared_tools: Literal["error", "serve"]
    rate_limits: RateLimits | None
    log_limit: int | None
    on_call: Callable[[ServedCall], None] | None


def create_app(models: Mapping[str, Policy] | None = None, **options: Unpack[EmulatorOptions]) -> Starlette:
    """The emulator as an ASGI app; its state is ``Emulator.of(app)`` (also ``app.state.emulator``).

    ``models`` maps real model ids to policies (None: every model in the catalog answers with ``finisher``).

    - ``latency``: the latency model (default: the documented per-model one with ``time_scale=0``, no sleeping);
      ``clock``: emulated time (default: a clock running at ``1 / time_scale`` of real time).
    - ``faults``: a ``Faults`` plan or a list of ``FaultRule``.
    - ``api_key``: the only key accepted (None: any non-empty key).
    - ``cache``: the ``CacheSim`` to bill with; or ``min_cache_tokens``: per-model minimum cacheable lengths that
      override ``cachesim.MIN_CACHEABLE_TOKENS`` (``{"claude-sonnet-4-6": 1024}`` bills by the official 1,024
      instead of the observed 2,048 floor).
    - ``token_counter``: counts prompt tokens (default: ``leanloop.tokens.Estimator``).
    - ``seed``: makes the ids reproducible (default: random per app, so two runs never share one).
    - ``rate_limits``: the limits the ``anthropic-ratelimit-*`` headers report (default: ``RateLimits()``).
    - ``undeclared_tools``: ``"error"`` (default) answers a policy's call to a tool the request does not declare
      with a 500 naming the policy and the tool; ``"serve"`` serves it.
    - ``log_limit``: keep at least the last that many calls in ``Emulator.calls`` and at most twice that (default
      10,000; None: keep every call).
    - ``on_call``: called with each ``POST /v1/messages``'s ``ServedCall`` once it is answered (its usage and stop
      reason known; a stream's body may still be on its way), refused ones included. ``leanloop emulator --log``
      writes ``call.summary()`` with it. An exception it raises is logged, not sent to the client.
    """
    options.setdefault("log_limit", 10_000)
    emulator = Emulator(models, **options)

    async def http_error(request: Request, error: Exception) -> Response:
        status = cast(HTTPException, error).status_code
        error_type = "not_found_error" if status == 404 else "invalid_request_error"
        message = "Not Found" if status == 404 else f"{request.method} is not allowed on {request.url.path}"
        return _error(_Served(status, error_type, message), emulator.ids.request_id())

    routes = [
        Route("/v1/messages", emulator.create_message, methods=["POST"]),
        Route("/v1/messages/count_tokens", emulator.count_tokens, methods=["POST"]),
        Route("/v1/models", emulator.list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", emulator.retrieve_model, methods=["GET"]),
        Route("/", emulator.preflight, methods=["HEAD"]),
        Route("/api/hello", emulator.preflight, methods=["HEAD"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.emulator = emulator
    return app
