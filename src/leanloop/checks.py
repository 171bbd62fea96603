"""Arguments of ``Agent`` checked at construction: a bad one is named there, not found as a traceback mid-run."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import anthropic
from anthropic.resources.messages import AsyncMessages

from leanloop.errors import ConfigError
from leanloop.history import Compaction
from leanloop.limits import Budget, LoopGuard
from leanloop.pricing import Pricing
from leanloop.request import CachePolicy
from leanloop.tiers import Tiers
from leanloop.tools import Tool, as_tool

__all__ = ["check_agent_arguments", "tools_by_name"]

_PARAMS = frozenset(inspect.signature(AsyncMessages.create).parameters) - {"self"}
_OWN_PARAMS = frozenset({"model", "max_tokens", "messages", "system", "tools", "stream"})


def _positive(name: str, value: object, kind: type = float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok or (kind is int and not isinstance(value, int)):
        raise ConfigError(f"Agent({name}={value!r}): must be a positive {'whole number' if kind is int else 'number'}")


def check_agent_arguments(given: Mapping[str, Any]) -> None:
    """Bad arguments are named at construction, not discovered as a traceback in the middle of a run."""
    model, system, params = given["model"], given["system"], given["params"]
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"Agent(model={model!r}): a model id is required, e.g. 'claude-sonnet-4-6'")
    if system is not None and not isinstance(system, str | list | tuple):
        raise ConfigError(f"Agent(system=...): a string or a list of text blocks, got {type(system).__name__}")
    for name, kind in (
        ("max_tokens", int),
        ("max_concurrent_tools", int),
        ("tool_result_max_tokens", int),
        ("tool_timeout", float),
        ("max_pause_turns", int),
    ):
        _positive(name, given[name], kind)
    checks = (
        ("budget", Budget),
        ("cache", CachePolicy | bool),
        ("loop_guard", LoopGuard | int | None),
        ("pricing", Pricing | None),
        ("compaction", Compaction | None),
        ("tiers", Tiers | None),
    )
    for name, expected in checks:
        if given[name] is not None and not isinstance(given[name], expected):
            raise ConfigError(f"Agent({name}=...): expected {expected}, got {type(given[name]).__name__}")
    for key in cast(Mapping[str, Any], params or {}):
        if key in _OWN_PARAMS:
            raise ConfigError(f"Agent(params={{{key!r}: ...}}): set {key} through Agent's own arguments")
        if key not in _PARAMS:
            raise ConfigError(
                f"Agent(params={{{key!r}: ...}}): not a parameter of messages.create in anthropic "
                f"{anthropic.__version__} (it has: {', '.join(sorted(_PARAMS - _OWN_PARAMS))})"
            )


def tools_by_name(tools: Sequence[Any]) -> dict[str, Tool]:
    by_name: dict[str, Tool] = {}
    for made in (as_tool(t) for t in tools):
        if made.name in by_name:
            raise ConfigError(f"two tools are named {made.name!r}: tool names must be unique")
        by_name[made.name] = made
    return by_name
