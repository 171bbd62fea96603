"""Tools: typed Python functions the model can call, and the executor that runs a turn's calls concurrently.

A tool's JSON schema comes from its signature and its docstring (summary, then an ``Args:`` section), its
arguments are validated before the call, and anything it raises becomes an ``is_error`` result the model can
read. All calls of one turn run at once: async tools on the event loop, sync ones in threads, under a
concurrency limit and a per-tool timeout. Results keep the order of the tool_use blocks. Oversized results are cut
to head + tail with an explicit note; the full text is kept for the trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import datetime
import enum
import functools
import inspect
import json
import math
import queue
import re
import reprlib
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast, overload

import docstring_parser
import pydantic

from leanloop.errors import ConfigError
from leanloop.tokens import count_text

__all__ = [
    "DEFAULT_MAX_RESULT_TOKENS",
    "Tool",
    "ToolContent",
    "ToolOutcome",
    "ToolUse",
    "as_tool",
    "cap_text",
    "iter_tools",
    "run_tools",
    "sorted_json",
    "tool",
]

DEFAULT_MAX_RESULT_TOKENS = 8000


def sorted_json(value: Any) -> Any:
    """``value`` with every dict's keys sorted, recursively: the same data always serialises to the same bytes."""
    if isinstance(value, Mapping):
        items = cast(Mapping[str, Any], value)
        return {k: sorted_json(items[k]) for k in sorted(items)}
    if isinstance(value, list | tuple):
        return [sorted_json(v) for v in cast(Sequence[Any], value)]
    return value


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=_jsonable)


def _jsonable(value: Any) -> Any:
    """What JSON cannot write itself, as data: pydantic models and dataclasses as their fields, dates in ISO 8601,
    sets sorted (the same data gives the same bytes, so it caches), enums as their value; anything else as text."""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(cast(Iterable[Any], value), key=_json)
    if isinstance(value, enum.Enum):
        return value.value
    return str(value)


@dataclass(frozen=True)
class Tool:
    """A tool definition and the function that runs it.

    ``definition`` is what the API sees. ``handler`` is None for server tools (definitions with a ``type``,
    such as web search), which the API runs itself. ``max_result_tokens`` and ``timeout`` override the agent's.
    """

    definition: Mapping[str, Any]
    handler: Callable[..., Any] | None = None
    max_result_tokens: int | None = None
    timeout: float | None = None
    _validated: Callable[..., Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        timeout: Any = self.timeout  # typed, but callers may pass anything
        number = isinstance(timeout, int | float) and not isinstance(timeout, bool)
        if timeout is not None and not (number and math.isfinite(timeout) and timeout > 0):
            raise ConfigError(f"tool(timeout={timeout!r}): must be a positive number of seconds, or None")
        cap: Any = self.max_result_tokens
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ConfigError(f"tool(max_result_tokens={cap!r}): must be a whole number of at least 1, or None")
        if self.handler is not None:
            _check_definition(self.definition)

    @property
    def name(self) -> str:
        return str(self.definition["name"])

    @functools.cached_property
    def _is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)  # asked on every call: about a microsecond each time

    async def invoke(self, arguments: Mapping[str, Any]) -> Any:
        """Validate ``arguments`` against the signature and call the handler (sync handlers in a thread)."""
        if self.handler is None:
            raise ConfigError(f"tool {self.name!r} is a server tool: the API runs it, not leanloop")
        target = self._validated or self.handler
        if self._is_async:
            return await target(**arguments)
        context = contextvars.copy_context()
        result = await _in_thread(functools.partial(context.run, target, **arguments))
        if inspect.isawaitable(result):
            return await result
        return result


class _Workers:
    """Daemon threads for sync tools: idle ones are reused, and a new one starts whenever none is idle.

    Not a fixed pool: a tool that hangs past its timeout keeps its thread (Python cannot stop a thread), and in a
    fixed pool hung tools would end up holding every worker, starving all later calls. Daemon threads also never
    hold up the interpreter's exit.
    """

    max_idle = 64

    def __init__(self) -> None:
        self._idle: list[queue.SimpleQueue[Callable[[], None]]] = []
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = queue.SimpleQueue[Callable[[], None]]()
            threading.Thread(target=self._work, args=(inbox,), name="leanloop-tool", daemon=True).start()
        inbox.put(job)

    def _work(self, inbox: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            inbox.get()()
            with self._lock:
                if len(self._idle) >= self.max_idle:
                    return
                self._idle.append(inbox)


_WORKERS = _Workers()


async def _in_thread(call: Callable[[], Any]) -> Any:
    """Run a sync tool on a worker thread and await its result."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # cancelled or timed out while the thread ran
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def job() -> None:
        try:
            outcome: tuple[Any, BaseException | None] = (call(), None)
        except BaseException as error:  # handed to the awaiting task, which reports it to the model
            outcome = (None, error)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting any more
            loop.call_soon_threadsafe(settle, *outcome)

    _WORKERS.submit(job)
    return await future


_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _check_definition(definition: Mapping[str, Any]) -> None:
    """A custom tool's definition as the API requires it: a name, an optional text description, and an input schema
    of type object (the model's input is always an object of named parameters)."""
    name = definition.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise ConfigError(f"tool name {name!r} must be 1-64 letters, digits, '_' or '-'")
    description = definition.get("description")
    if description is not None and not isinstance(description, str):
        raise ConfigError(f"tool {name!r}: description must be a string, got {type(description).__name__}")
    schema = definition.get("input_schema")
    if schema is None:
        raise ConfigError(f"tool {name!r}: its definition needs an 'input_schema' (a JSON schema of type 'object')")
    kind = cast(Mapping[str, Any], schema).get("type") if isinstance(schema, Mapping) else type(schema).__name__
    if kind != "object":
        raise ConfigError(
            f"tool {name!r}: input_schema must be a JSON schema of type 'object' (the model's input is an object "
            f"of named parameters), got {kind!r}"
        )


def _check_parameters(function: Callable[..., Any], name: str) -> None:
    """Every parameter must be passable by name: the model's input is a JSON object of named parameters."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError) as error:
        raise ConfigError(f"tool {name!r}: cannot read its signature ({error})") from None
    problems = {
        inspect.Parameter.VAR_POSITIONAL: "*{} takes positional values",
        inspect.Parameter.POSITIONAL_ONLY: "{} is positional-only",
        inspect.Parameter.VAR_KEYWORD: "**{} takes any keywords",
    }
    for parameter in parameters:
        problem = problems.get(parameter.kind)
        if problem is not None:
            raise ConfigError(
                f"tool {name!r}: parameter {problem.format(parameter.name)}, but a tool's input is an object of named "
                "parameters: give each one a name (and a type)"
            )


def _schema(function: Callable[..., Any], docs: docstring_parser.Docstring) -> dict[str, Any]:
    try:
        validated: Any = pydantic.validate_call(function)  # TypeAdapter accepts a callable; its stubs say types only
        adapter = pydantic.TypeAdapter[Any](validated)
        schema: dict[str, Any] = adapter.json_schema()
    except pydantic.PydanticUserError as error:
        raise ConfigError(
            f"tool {function.__name__!r}: cannot derive a JSON schema from its signature ({error})"
        ) from None
    described = {p.arg_name: p.description for p in docs.params if p.description}
    for name, prop in schema.get("properties", {}).items():
        if name in described and isinstance(prop, dict):
            cast(dict[str, Any], prop).setdefault("description", described[name])
    schema.pop("additionalProperties", None)
    return _without_titles(schema)


def _without_titles(schema: Any) -> Any:
    """Drop pydantic's generated ``title`` strings: the model gains nothing from them and they cost tokens on every
    call. (A parameter named ``title`` is a key of ``properties`` whose value is a dict, so it is kept.)"""
    if isinstance(schema, dict):
        items = cast(dict[str, Any], schema).items()
        return {k: _without_titles(v) for k, v in items if not (k == "title" and isinstance(v, str))}
    if isinstance(schema, list):
        return [_without_titles(v) for v in cast(list[Any], schema)]
    return schema


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    max_result_tokens: int | None = None,
    timeout: float | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    max_result_tokens: int | None = None,
    timeout: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a tool from a typed function (sync or async), bare (``@tool``) or with options (``@tool(timeout=5)``).

    >>> @tool
    ... def add(a: int, b: int = 1) -> int:
    ...     '''Add two numbers.
    ...
    ...     Args:
    ...         a: The first number.
    ...     '''
    ...     return a + b
    >>> add.definition["input_schema"]["properties"]["a"]
    {'type': 'integer', 'description': 'The first number.'}
    """

    def make(fn: Callable[..., Any]) -> Tool:
        if isinstance(fn, type):
            raise ConfigError(f"tool({fn.__name__}): a class, not a function: decorate a function or a method")
        if not callable(fn):
            raise ConfigError(f"tool({reprlib.repr(fn)}): not a function (got {type(fn).__name__})")
        docs = docstring_parser.parse(fn.__doc__ or "")
        summary = description or "\n\n".join(p for p in (docs.short_description, docs.long_description) if p)
        tool_name = name or getattr(fn, "__name__", "")
        _check_parameters(fn, tool_name)
        definition = {"name": tool_name, "description": summary.strip(), "input_schema": _schema(fn, docs)}
        return Tool(definition, fn, max_result_tokens, timeout, _validated=pydantic.validate_call(fn))

    return make(function) if function is not None else make


def as_tool(value: object) -> Tool:
    """A ``Tool`` from a function, a ``Tool``, a server-tool dict (``{"type": ..., "name": ...}``) or a
    ``(definition dict, handler)`` pair."""
    if isinstance(value, Tool):
        return value
    if isinstance(value, tuple):
        return _from_pair(cast(tuple[object, ...], value))
    if isinstance(value, Mapping):
        definition = cast(Mapping[str, Any], value)
        if "type" in definition and "name" in definition:
            return Tool(definition)
        raise ConfigError(
            f"tool {definition.get('name', definition)!r} is a plain definition without a handler: pass "
            "(definition, handler) or decorate the function with @tool"
        )
    if callable(value):
        return tool(value)
    raise ConfigError(f"cannot make a tool from {type(value).__name__}: pass a function, a Tool or a definition")


def _from_pair(pair: tuple[object, ...]) -> Tool:
    definition, handler = pair if len(pair) == 2 else (None, None)
    if not isinstance(definition, Mapping) or not callable(handler):
        raise ConfigError("a tool given as a tuple must be (definition dict, handler function)")
    return Tool(cast(Mapping[str, Any], definition), handler)


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A tool_use block the model produced."""

    id: str
    name: str
    input: Mapping[str, Any]


ToolContent = str | list[dict[str, Any]]
_BLOCK_TYPES = frozenset({"text", "image", "document", "search_result"})


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What one call produced. ``content`` is what the model sees: text, or content blocks (text, image, document,
    search_result) when the tool returned a list of them. ``full_text`` is the uncut output when it was cut;
    ``error`` the error text when the call failed (the loop guard compares it)."""

    use: ToolUse
    content: ToolContent
    is_error: bool
    duration_s: float
    error: str | None = None
    full_text: str | None = None

    @property
    def truncated(self) -> bool:
        return self.full_text is not None

    def to_block(self) -> dict[str, Any]:
        content = self.content if isinstance(self.content, str) else [dict(b) for b in self.content]
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": self.use.id, "content": content}
        if self.is_error:
            block["is_error"] = True
        return block


def cap_text(text: str, max_tokens: int) -> tuple[str, bool]:
    """``text`` cut to about ``max_tokens`` (head and tail kept, a note in the middle); and whether it was cut."""
    if len(text) <= max_tokens:  # a token is at least one character: no need to count
        return text, False
    tokens = count_text(text)
    if tokens <= max_tokens:
        return text, False
    chars_per_token = len(text) / tokens
    keep = int(max_tokens * chars_per_token / 2)
    head, tail = text[:keep], text[len(text) - keep :]
    cut = tokens - max_tokens
    note = (
        f"\n\n[... about {cut:,} tokens cut from the middle of this result ({tokens:,} in all). Ask for a narrower "
        "range if you need the missing part ...]\n\n"
    )
    return head + note + tail, True


def _content_blocks(value: Any) -> list[dict[str, Any]] | None:
    """``value`` as tool_result content blocks, if it is a non-empty list of them (else None: it is data)."""
    if not isinstance(value, list) or not value:
        return None
    items = cast(list[Any], value)
    if not all(isinstance(b, Mapping) and cast(Mapping[str, Any], b).get("type") in _BLOCK_TYPES for b in items):
        return None
    return [cast(dict[str, Any], sorted_json(b)) for b in items]


def _cap_content(value: Any, max_tokens: int) -> tuple[ToolContent, str | None]:
    """What the model sees of a tool's return value, and the full text when it had to be cut."""
    blocks = _content_blocks(value)
    if blocks is None:
        text = _as_text(value)
        shown, cut = cap_text(text, max_tokens)
        return shown, text if cut else None
    texts = [b for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str)]
    share = max(1, max_tokens // max(1, len(texts)))
    cut_any = False
    for block in texts:
        block["text"], cut = cap_text(block["text"], share)
        cut_any = cut_any or cut
    return blocks, _json(value) if cut_any else None


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "(no output)"
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return _json(value)


def _describe_error(error: BaseException) -> str:
    if isinstance(error, pydantic.ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in error.errors(include_url=False)
        )
        return f"invalid arguments: {problems}"
    if isinstance(error, TimeoutError):
        return "timed out"
    try:
        text = str(error) or type(error).__name__
    except Exception:  # a broken __str__ must not take the run down with it
        return f"{type(error).__name__} (its message could not be shown)"
    return text if isinstance(error, PermissionError | ValueError | LookupError) else f"{type(error).__name__}: {text}"


async def _run_one(
    use: ToolUse,
    tools: Mapping[str, Tool],
    *,
    limit: asyncio.Semaphore,
    seconds: float,
    max_tokens: int,
    max_seconds: float | None,
) -> ToolOutcome:
    started = time.perf_counter()
    found = tools.get(use.name)
    if found is None or found.handler is None:
        known = ", ".join(sorted(n for n, t in tools.items() if t.handler is not None))
        error = f"unknown tool {use.name!r}; available: {known}"
        return ToolOutcome(use, error, True, 0.0, error=error)
    timeout = found.timeout or seconds
    if max_seconds is not None:  # the run's wall-time cap wins over any tool's own timeout
        timeout = max(0.001, min(timeout, max_seconds))
    cap = found.max_result_tokens or max_tokens
    async with limit:
        try:
            async with asyncio.timeout(timeout):
                value = await found.invoke(use.input)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            message = f"timed out after {timeout:g} s" if isinstance(error, TimeoutError) else _describe_error(error)
            shown, cut = cap_text(message, cap)  # stack traces and echoed bodies can be as big as any output
            duration = time.perf_counter() - started
            return ToolOutcome(use, shown, True, duration, error=message, full_text=message if cut else None)
    content, full = _cap_content(value, cap)
    return ToolOutcome(use, content, False, time.perf_counter() - started, full_text=full)


async def iter_tools(
    uses: Sequence[ToolUse],
    tools: Mapping[str, Tool],
    *,
    max_concurrency: int = 16,
    seconds: float = 60.0,
    max_result_tokens: int = DEFAULT_MAX_RESULT_TOKENS,
    max_seconds: float | None = None,
) -> AsyncGenerator[tuple[int, ToolOutcome]]:
    """Run every call at once and yield ``(index in uses, outcome)`` as each one finishes.

    Each call gets ``seconds`` (or its tool's own timeout), never more than ``max_seconds``. Closing the iterator,
    or cancelling its consumer, cancels every call still running.
    """
    limits: dict[str, Any] = {
        "limit": asyncio.Semaphore(max_concurrency),
        "seconds": seconds,
        "max_tokens": max_result_tokens,
        "max_seconds": max_seconds,
    }
    if len(uses) == 1:  # the common turn: no task needed (and cancellation reaches the call directly)
        yield 0, await _run_one(uses[0], tools, **limits)
        return
    tasks = {asyncio.ensure_future(_run_one(u, tools, **limits)): index for index, u in enumerate(uses)}
    pending = set(tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=tasks.__getitem__):
                yield tasks[task], task.result()
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


async def run_tools(
    uses: Sequence[ToolUse],
    tools: Mapping[str, Tool],
    *,
    max_concurrency: int = 16,
    seconds: float = 60.0,
    max_result_tokens: int = DEFAULT_MAX_RESULT_TOKENS,
    max_seconds: float | None = None,
) -> list[ToolOutcome]:
    """Run every call at once (up to ``max_concurrency``, each within ``seconds``); results in ``uses`` order.

    Cancelling the caller cancels every call still running.
    """
    outcomes: dict[int, ToolOutcome] = {}
    finished = iter_tools(
        uses,
        tools,
        max_concurrency=max_concurrency,
        seconds=seconds,
        max_result_tokens=max_result_tokens,
        max_seconds=max_seconds,
    )
    async with contextlib.aclosing(finished):
        async for index, outcome in finished:
            outcomes[index] = outcome
    return [outcomes[index] for index in range(len(uses))]
