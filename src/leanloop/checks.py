"""Arguments of ``Agent`` (and of its ``run``) checked when they are given: a bad one is named there, with what is
wrong, not found as an SDK or Python traceback in the middle of a run."""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import anthropic
import httpx2
from anthropic.resources.messages import AsyncMessages, Messages

from leanloop.errors import ConfigError
from leanloop.history import Compaction
from leanloop.limits import Budget, LoopGuard, Spend
from leanloop.pricing import Pricing
from leanloop.redaction import redact_text
from leanloop.request import CachePolicy
from leanloop.tiers import Tiers
from leanloop.tools import Tool, as_tool

__all__ = ["check_agent_arguments", "check_credentials", "check_run_arguments", "tools_by_name"]

_PARAMS = frozenset(inspect.signature(AsyncMessages.create).parameters) - {"self"}
_OWN_PARAMS = frozenset({"model", "max_tokens", "messages", "system", "tools", "stream"})
_EMULATOR = (
    "or run offline at $0 on the emulator: client=leanloop.testing.emulated_client(...), or `leanloop emulator` "
    "with ANTHROPIC_BASE_URL=http://127.0.0.1:8787 and any ANTHROPIC_API_KEY"
)


def _positive(name: str, value: object, kind: type = float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok or (kind is int and not isinstance(value, int)):
        raise ConfigError(f"Agent({name}={value!r}): must be a positive {'whole number' if kind is int else 'number'}")


def check_agent_arguments(given: Mapping[str, Any]) -> None:
    """Bad arguments are named at construction, not discovered as a traceback in the middle of a run."""
    model, params = given["model"], given["params"]
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"Agent(model={model!r}): a model id is required, e.g. 'claude-sonnet-4-6'")
    _check_system(given["system"])
    _check_client(given["client"])
    for name, kind in (
        ("max_tokens", int),
        ("max_concurrent_tools", int),
        ("tool_result_max_tokens", int),
        ("tool_timeout", float),
        ("max_pause_turns", int),
    ):
        _positive(name, given[name], kind)
    _check_budget("Agent(budget=...)", given["budget"])
    loop_guard = given["loop_guard"]
    if isinstance(loop_guard, bool) or not isinstance(loop_guard, LoopGuard | int | None):
        raise ConfigError(f"Agent(loop_guard={loop_guard!r}): a LoopGuard, a whole number of repeats, or None")
    _check_trace(given["trace"])
    checks = (
        ("cache", CachePolicy | bool),
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


def check_run_arguments(budget: object, spend: object) -> None:
    """``run(budget=..., spend=...)``: a Budget is the caps you write, a Spend what runs have used against one."""
    _check_budget("run(budget=...)", budget)
    if spend is None or isinstance(spend, Spend):
        return
    if isinstance(spend, Budget):
        raise ConfigError("run(spend=...): expected a Spend, got Budget: pass it as budget=, or as spend=Spend(budget)")
    example = f": e.g. spend=Spend(Budget(usd={spend!r}))" if isinstance(spend, int | float) else ""
    raise ConfigError(f"run(spend=...): expected a Spend, got {type(spend).__name__}{example}")


def _check_budget(where: str, budget: object) -> None:
    if budget is None or isinstance(budget, Budget):
        return
    if isinstance(budget, Spend):
        instead = "as spend=" if where.startswith("run") else "to run(spend=...)"
        raise ConfigError(f"{where}: expected a Budget, got Spend: pass it {instead}")
    number = isinstance(budget, int | float) and not isinstance(budget, bool)
    example = f": e.g. Budget(usd={budget!r})" if number else ""
    raise ConfigError(f"{where}: expected a Budget, got {type(budget).__name__}{example}")


def _check_system(system: object) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list | tuple):
        raise ConfigError(f"Agent(system=...): a string or a list of text blocks, got {type(system).__name__}")
    for index, block in enumerate(cast(Sequence[Any], system)):
        kind = type(block).__name__
        fields: Mapping[str, Any] = cast(Mapping[str, Any], block) if isinstance(block, Mapping) else {}
        if fields.get("type") != "text" or not isinstance(fields.get("text"), str):
            shown = repr(dict(fields))[:80] if fields else kind
            example = "{'type': 'text', 'text': ...}"
            raise ConfigError(f"Agent(system=[{index}]): a text block like {example}, got {shown}")


def _check_client(client: object) -> None:
    if client is None or isinstance(getattr(client, "messages", None), AsyncMessages):
        return
    if isinstance(getattr(client, "messages", None), Messages):
        raise ConfigError(
            f"Agent(client={type(client).__name__}): the sync client; pass anthropic.AsyncAnthropic(...) with the "
            "same arguments (the loop is async; run_sync() runs it from code that is not)"
        )
    shown = repr(client)[:60] if isinstance(client, str) else type(client).__name__
    raise ConfigError(
        f"Agent(client={shown}): expected an anthropic.AsyncAnthropic, e.g. AsyncAnthropic(base_url=..., api_key=...); "
        f"{_EMULATOR}"
    )


def check_credentials(client: object) -> None:
    """Without ``client=``, the Agent makes SDK clients from the environment: check now that the SDK finds credentials
    there (as it would, without opening a connection), rather than at the first call. Never shows a credential."""
    if client is not None:
        return
    offline = httpx2.AsyncClient(transport=httpx2.MockTransport(lambda _: httpx2.Response(500)), trust_env=False)
    try:
        probe = anthropic.AsyncAnthropic(http_client=offline)
    except (anthropic.AnthropicError, ValueError, OSError, TypeError) as error:
        raise ConfigError(
            f"Agent(client=None): the SDK cannot make a client from the environment ({redact_text(str(error))})"
        ) from None
    headers = {key.lower() for key, value in probe.default_headers.items() if isinstance(value, str) and value}
    if probe.api_key or probe.auth_token or probe.credentials is not None or headers & {"x-api-key", "authorization"}:
        return
    raise ConfigError(
        "Agent(client=None): no Anthropic credentials: set ANTHROPIC_API_KEY (export ANTHROPIC_API_KEY=sk-ant-...), "
        f"or pass client=anthropic.AsyncAnthropic(api_key=...), {_EMULATOR}"
    )


def _check_trace(trace: Any) -> None:
    if trace is None:
        return
    if not _is_path(trace):
        raise ConfigError(f"Agent(trace={trace!r}): a file path (str or os.PathLike) to append the JSONL trace to")
    path = Path(trace)
    if path.is_dir():
        raise ConfigError(f"Agent(trace={str(path)!r}): a folder, not a file: name the file, e.g. {path / 'run.jsonl'}")


def _is_path(value: object) -> bool:
    return isinstance(value, str | os.PathLike)


def _is_many(value: object) -> bool:
    """A list (or other iterable) of tools, not one tool or a string."""
    one = callable(value) or isinstance(value, str | bytes | Mapping)
    return not one and isinstance(value, Iterable)


def tools_by_name(tools: Any) -> dict[str, Tool]:
    """``Agent(tools=...)``: a list of functions, ``Tool``s, ``(definition, handler)`` pairs or server-tool dicts."""
    if not _is_many(tools):
        one = isinstance(tools, Tool) or inspect.isroutine(tools)
        what = ("a Tool" if isinstance(tools, Tool) else "a function") if one else type(tools).__name__
        name = getattr(tools, "name", None) or getattr(tools, "__name__", None)
        hint = f": write tools=[{name}]" if one and isinstance(name, str) else ""
        raise ConfigError(f"Agent(tools=...): a list of tools, got {what}{hint}")
    by_name: dict[str, Tool] = {}
    for index, given in enumerate(cast(Iterable[Any], tools)):
        try:
            made = as_tool(given)
        except ConfigError as error:
            raise ConfigError(f"Agent(tools=[{index}]): {error}") from None
        if made.name in by_name:
            raise ConfigError(f"two tools are named {made.name!r}: tool names must be unique")
        by_name[made.name] = made
    return by_name
