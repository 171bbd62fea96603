"""tools: schemas from signatures, validation, concurrency, timeouts, caps."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import threading
import time

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leanloop.errors import ConfigError
from leanloop.tools import Tool, ToolUse, as_tool, cap_text, run_tools, tool

pytestmark = pytest.mark.anyio


def read_pod_logs(namespace: str, pod: str, tail_lines: int = 100, grep: str | None = None) -> str:
    """Read the last lines of a pod's log.

    Longer explanation for the model.

    Args:
        namespace: The namespace of the pod.
        pod: The pod name.
        tail_lines: How many lines from the end.
        grep: Only lines containing this text.
    """
    return f"{namespace}/{pod}:{tail_lines}:{grep}"


def test_schema_comes_from_signature_and_docstring() -> None:
    t = as_tool(read_pod_logs)
    assert t.name == "read_pod_logs"
    assert t.definition["description"] == "Read the last lines of a pod's log.\n\nLonger explanation for the model."
    schema = t.definition["input_schema"]
    assert schema["required"] == ["namespace", "pod"]
    assert schema["properties"]["tail_lines"] == {
        "default": 100,
        "description": "How many lines from the end.",
        "type": "integer",
    }
    assert "title" not in str(schema)


def test_bound_methods_and_options() -> None:
    class Logs:
        def list_pods(self, namespace: str) -> list[str]:
            """List pods.

            Args:
                namespace: Where.
            """
            return [namespace]

    t = tool(name="pods", max_result_tokens=10, timeout=1.5)(Logs().list_pods)
    assert t.name == "pods"
    assert list(t.definition["input_schema"]["properties"]) == ["namespace"]
    assert (t.max_result_tokens, t.timeout) == (10, 1.5)


def test_raw_definitions() -> None:
    server = as_tool({"type": "web_search_20250305", "name": "web_search"})
    assert server.handler is None
    pair = as_tool(({"name": "x", "input_schema": {"type": "object"}}, lambda: "ok"))
    assert pair.name == "x"
    with pytest.raises(ConfigError, match="without a handler"):
        as_tool({"name": "x", "input_schema": {}})
    with pytest.raises(ConfigError, match=r"\(definition dict, handler function\)"):
        as_tool(({"name": "x"}, "not callable"))
    with pytest.raises(ConfigError, match="cannot make a tool"):
        as_tool(42)
    with pytest.raises(ConfigError, match="must be 1-64"):
        tool(name="bad name!")(read_pod_logs)


async def test_arguments_are_validated_and_errors_reported() -> None:
    tools = {"read_pod_logs": as_tool(read_pod_logs)}
    outcomes = await run_tools(
        [
            ToolUse("1", "read_pod_logs", {"namespace": "a", "pod": "b", "tail_lines": "20"}),
            ToolUse("2", "read_pod_logs", {"namespace": "a"}),
            ToolUse("3", "read_pod_logs", {"namespace": "a", "pod": "b", "tail_lines": "many"}),
        ],
        tools,
    )
    assert outcomes[0].content == "a/b:20:None"  # "20" coerced to int, as the schema says integer
    assert outcomes[1].is_error and outcomes[1].error == "invalid arguments: pod: Missing required argument"
    assert outcomes[2].is_error and "tail_lines" in outcomes[2].content


async def test_calls_run_concurrently_and_keep_order() -> None:
    async def wait(ms: int) -> int:
        """Sleep.

        Args:
            ms: Milliseconds.
        """
        await asyncio.sleep(ms / 1000)
        return ms

    tools = {"wait": as_tool(wait)}
    uses = [ToolUse(str(i), "wait", {"ms": ms}) for i, ms in enumerate([150, 50, 100, 10])]
    started = time.perf_counter()
    outcomes = await run_tools(uses, tools)
    assert time.perf_counter() - started < 0.3
    assert [o.content for o in outcomes] == ["150", "50", "100", "10"]
    started = time.perf_counter()
    await run_tools(uses, tools, max_concurrency=1)
    assert time.perf_counter() - started >= 0.3


async def test_per_tool_timeout_overrides_the_default() -> None:
    async def slow() -> str:
        """Slow."""
        await asyncio.sleep(1)
        return "late"

    tools = {"slow": tool(timeout=0.05)(slow)}
    [outcome] = await run_tools([ToolUse("1", "slow", {})], tools, seconds=10)
    assert outcome.is_error and outcome.content == "timed out after 0.05 s"


async def test_results_are_text_or_json() -> None:
    def structured() -> dict[str, object]:
        """Structured."""
        return {"b": 1, "a": [1, 2]}

    def nothing() -> None:
        """Nothing."""

    tools = {"structured": as_tool(structured), "nothing": as_tool(nothing)}
    outcomes = await run_tools([ToolUse("1", "structured", {}), ToolUse("2", "nothing", {})], tools)
    assert outcomes[0].content == '{"a":[1,2],"b":1}'
    assert outcomes[1].content == "(no output)"
    assert outcomes[0].to_block() == {"type": "tool_result", "tool_use_id": "1", "content": '{"a":[1,2],"b":1}'}


async def test_server_tool_is_not_run_here() -> None:
    tools = {"web_search": Tool({"type": "web_search_20250305", "name": "web_search"})}
    [outcome] = await run_tools([ToolUse("1", "web_search", {})], tools)
    assert outcome.is_error


@given(st.text(min_size=0, max_size=3000), st.integers(50, 400))
@settings(max_examples=80, deadline=None)
def test_cap_text_keeps_head_and_tail_within_the_cap(text: str, cap: int) -> None:
    shown, cut = cap_text(text, cap)
    if not cut:
        assert shown == text
        return
    assert shown.startswith(text[:10])
    assert shown.endswith(text[-10:])
    assert "tokens cut from the middle" in shown
    assert len(shown) < len(text) + 300


async def test_hung_sync_tools_do_not_starve_later_calls() -> None:
    release = threading.Event()

    def hang(i: int) -> str:
        """Hangs.

        Args:
            i: Which.
        """
        release.wait(10)
        return "late"

    def quick() -> str:
        """Quick."""
        return "fast"

    tools = {"hang": tool(timeout=0.2)(hang), "quick": as_tool(quick)}
    try:
        hung = await run_tools([ToolUse(str(i), "hang", {"i": i}) for i in range(80)], tools, max_concurrency=80)
        assert all(o.is_error and "timed out" in o.content for o in hung)
        [fast] = await run_tools([ToolUse("q", "quick", {})], tools, seconds=1)
        assert fast.content == "fast"  # 80 threads still hang, yet a new call runs at once
    finally:
        release.set()


async def test_the_runs_wall_time_caps_every_tools_own_timeout() -> None:
    async def slow() -> str:
        """Slow."""
        await asyncio.sleep(1)
        return "late"

    tools = {"slow": tool(timeout=30)(slow)}
    started = time.perf_counter()
    [outcome] = await run_tools([ToolUse("1", "slow", {})], tools, seconds=60, max_seconds=0.05)
    assert outcome.is_error and outcome.content == "timed out after 0.05 s"
    assert time.perf_counter() - started < 0.5


async def test_error_results_are_capped_with_the_full_text_kept() -> None:
    def noisy() -> str:
        """Noisy."""
        raise ValueError("SELECT * FROM orders WHERE id = 1;\n" * 5000)

    [outcome] = await run_tools([ToolUse("1", "noisy", {})], {"noisy": as_tool(noisy)}, max_result_tokens=500)
    assert outcome.is_error and outcome.truncated
    assert isinstance(outcome.content, str) and "tokens cut from the middle" in outcome.content
    assert outcome.full_text is not None and outcome.full_text.count("SELECT") == 5000
    assert outcome.error == outcome.full_text  # the loop guard compares the whole error


async def test_content_blocks_are_kept_as_blocks_and_their_text_is_capped() -> None:
    def document() -> list[dict[str, object]]:
        """A document and a note."""
        return [
            {"type": "text", "text": "page " * 20_000},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "hi"}},
        ]

    [outcome] = await run_tools([ToolUse("1", "document", {})], {"document": as_tool(document)}, max_result_tokens=200)
    assert isinstance(outcome.content, list)
    assert [b["type"] for b in outcome.content] == ["text", "document"]
    assert "tokens cut from the middle" in outcome.content[0]["text"]
    assert outcome.truncated and outcome.full_text is not None and outcome.full_text.count("page") == 20_000
    assert outcome.to_block()["content"][1]["source"]["data"] == "hi"


async def test_iter_tools_yields_each_call_as_it_finishes_and_cancels_the_rest_when_closed() -> None:
    from leanloop.tools import iter_tools

    cancelled: list[float] = []

    async def nap(seconds: float) -> str:
        """Nap.

        Args:
            seconds: How long.
        """
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            cancelled.append(seconds)
            raise
        return str(seconds)

    tools = {"nap": as_tool(nap)}
    uses = [ToolUse(str(i), "nap", {"seconds": s}) for i, s in enumerate([0.3, 0.01, 5.0])]
    finished = iter_tools(uses, tools)
    first = await anext(finished)
    assert first[0] == 1 and first[1].content == "0.01"
    second = await anext(finished)
    assert second[0] == 0
    await finished.aclose()
    assert cancelled == [5.0]


def varargs(*names: str) -> str:
    """Var args."""
    return ",".join(names)


def positional_only(a: int, /, b: int) -> int:
    """Positional only."""
    return a + b


def var_keywords(a: int, **rest: int) -> int:
    """Keywords."""
    return a


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (varargs, r"tool 'varargs': parameter \*names"),
        (positional_only, r"tool 'positional_only': parameter a is positional-only"),
        (var_keywords, r"tool 'var_keywords': parameter \*\*rest"),
    ],
)
def test_a_tool_needs_named_parameters_because_its_input_is_a_json_object(function: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message + r".*an object of named parameters"):
        tool(function)  # type: ignore[arg-type]


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (5, r"tool\(5\): not a function \(got int\)"),
        ("lookup", r"tool\('lookup'\): not a function \(got str\)"),
        (Point, r"tool\(Point\): a class, not a function: decorate a function or a method"),
    ],
)
def test_tool_of_something_that_is_not_a_function_says_so(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tool(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": -1}, r"tool\(timeout=-1\): must be a positive number of seconds, or None"),
        ({"timeout": 0}, r"tool\(timeout=0\): must be a positive number"),
        ({"timeout": "5"}, r"tool\(timeout='5'\): must be a positive number"),
        ({"timeout": float("nan")}, r"tool\(timeout=nan\): must be a positive number"),
        ({"max_result_tokens": 0}, r"tool\(max_result_tokens=0\): must be a whole number of at least 1, or None"),
        ({"max_result_tokens": 2.5}, r"tool\(max_result_tokens=2.5\): must be a whole number"),
    ],
)
def test_bad_tool_options_are_named_when_the_tool_is_made(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tool(**options)(read_pod_logs)  # type: ignore[arg-type]


class Pt(pydantic.BaseModel):
    x: int
    y: int = 0


@dataclasses.dataclass
class Pod:
    name: str
    restarts: int


async def test_models_dataclasses_and_other_data_are_sent_as_json() -> None:
    def model() -> Pt:
        """A pydantic model."""
        return Pt(x=1)

    def models() -> list[Pt]:
        """A list of them."""
        return [Pt(x=1), Pt(x=2, y=3)]

    def dataclass() -> Pod:
        """A dataclass."""
        return Pod("api-1", 3)

    def mixed() -> dict[str, object]:
        """Dates and sets."""
        return {"when": datetime.datetime(2026, 1, 1, 9, 30), "ids": {3, 1, 2}, "pod": Pod("a", 0)}

    functions = [model, models, dataclass, mixed]
    tools = {f.__name__: as_tool(f) for f in functions}
    outcomes = await run_tools([ToolUse(str(i), f.__name__, {}) for i, f in enumerate(functions)], tools)
    assert [o.content for o in outcomes] == [
        '{"x":1,"y":0}',
        '[{"x":1,"y":0},{"x":2,"y":3}]',
        '{"name":"api-1","restarts":3}',
        '{"ids":[1,2,3],"pod":{"name":"a","restarts":0},"when":"2026-01-01T09:30:00"}',
    ]


async def test_an_exception_that_cannot_be_shown_is_still_an_error_result() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    def fails() -> str:
        """Fails oddly."""
        raise Unprintable

    [outcome] = await run_tools([ToolUse("1", "fails", {})], {"fails": as_tool(fails)})
    assert outcome.is_error and outcome.error == "Unprintable (its message could not be shown)"
