"""The Anthropic Messages API on localhost, with the real cache billing rules.

A client (the official ``anthropic`` SDK and its tool runner, LangChain, Claude Code) cannot tell it from the real
API for what it does, and the bill is the real API's: ``POST /v1/messages`` (JSON and server-sent events),
``POST /v1/messages/count_tokens``, ``GET /v1/models[/{id}]``, the real error shapes and statuses, usage from
``leanloop.cachesim`` (one cache per model, shared by all requests), a latency model and fault injection. Models
answer through policies: functions of the request returning a ``Reply``.

    app = create_app({"claude-sonnet-4-6": load_scenario("triage.yaml")})
    client = async_client(app)                      # in-process, no sockets
    with serve_in_thread(app) as base_url: ...      # or a real loopback port
    Emulator.of(app).calls                          # what was served, with usage and timings

Modules: ``app`` (the ASGI app), ``serving`` (clients and servers), ``policies``/``scenario``/``replay`` (what the
models answer), ``contract`` (what the request's settings promise about the answer) with ``schema`` and
``thinking``, ``render`` (max_tokens cuts, stop sequences, output tokens), ``wire`` (ids, JSON and SSE shapes),
``validate`` (400/404/413 checks), ``threads`` (message threads), ``context`` (context editing), ``ratelimits``
(the rate-limit headers), ``faults``, ``latency``, ``clock``, ``catalog`` (model ids, limits and per-model rules).
Everything a client can rely on, and the file formats: docs/emulator.md.

The names load lazily: ``leanloop``'s CLI imports this package for every command, and the SDK, starlette and uvicorn
should load only when the emulator is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leanloop.emulator.app import ConnectionDropped, Emulator, ServedCall, create_app
    from leanloop.emulator.catalog import CATALOG, ModelCard
    from leanloop.emulator.clock import Clock, ManualClock, ScaledClock
    from leanloop.emulator.faults import Fault, FaultKind, FaultRule, Faults
    from leanloop.emulator.latency import LatencyModel, Timing
    from leanloop.emulator.policies import Policy, Reply, finisher
    from leanloop.emulator.ratelimits import RateLimits
    from leanloop.emulator.replay import ReplayPolicy, load_trajectory
    from leanloop.emulator.scenario import EXAMPLE_SCENARIO, Scenario, ScenarioExhausted, load_scenario
    from leanloop.emulator.serving import StreamingASGITransport, async_client, serve_in_thread

__all__ = [
    "CATALOG",
    "EXAMPLE_SCENARIO",
    "Clock",
    "ConnectionDropped",
    "Emulator",
    "Fault",
    "FaultKind",
    "FaultRule",
    "Faults",
    "LatencyModel",
    "ManualClock",
    "ModelCard",
    "Policy",
    "RateLimits",
    "ReplayPolicy",
    "Reply",
    "ScaledClock",
    "Scenario",
    "ScenarioExhausted",
    "ServedCall",
    "StreamingASGITransport",
    "Timing",
    "async_client",
    "create_app",
    "finisher",
    "load_scenario",
    "load_trajectory",
    "serve_in_thread",
]

_HOMES = {
    "app": ("ConnectionDropped", "Emulator", "ServedCall", "create_app"),
    "catalog": ("CATALOG", "ModelCard"),
    "clock": ("Clock", "ManualClock", "ScaledClock"),
    "faults": ("Fault", "FaultKind", "FaultRule", "Faults"),
    "latency": ("LatencyModel", "Timing"),
    "policies": ("Policy", "Reply", "finisher"),
    "ratelimits": ("RateLimits",),
    "replay": ("ReplayPolicy", "load_trajectory"),
    "scenario": ("EXAMPLE_SCENARIO", "Scenario", "ScenarioExhausted", "load_scenario"),
    "serving": ("StreamingASGITransport", "async_client", "serve_in_thread"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'leanloop.emulator' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"leanloop.emulator.{module}"), name)
    globals()[name] = value
    return value
