"""Streaming readers: JSON lines and JSON arrays read piece by piece, broken input reported with line numbers."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leanloop.analyze import reading
from leanloop.analyze.reading import Broken, iter_json_array, iter_json_lines

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=8), values, max_size=5), max_size=12), st.integers(1, 40))
def test_array_elements_come_back_whatever_the_chunk_size(elements: list[dict[str, object]], chunk: int) -> None:
    original = reading._CHUNK  # pyright: ignore[reportPrivateUsage]
    reading._CHUNK = chunk  # pyright: ignore[reportPrivateUsage]
    try:
        text = json.dumps(elements, indent=1, ensure_ascii=False).encode()
        seen: list[int] = []
        out = list(iter_json_array(io.BytesIO(text), seen.append))
    finally:
        reading._CHUNK = original  # pyright: ignore[reportPrivateUsage]
    assert [item[1] for item in out if not isinstance(item, Broken)] == elements
    assert sum(seen) == len(text)


def test_array_line_numbers_and_broken_elements() -> None:
    text = b'[\n {"a": 1},\n {"a": 2 "b": 3},\n {"c": 4}\n]'
    out = list(iter_json_array(io.BytesIO(text)))
    assert out[0] == (2, {"a": 1})
    assert isinstance(out[1], Broken) and out[1].line == 3 and not out[1].truncated
    assert len(out) == 2  # an array has no safe place to resume after a syntax error
    (only,) = iter_json_array(io.BytesIO(b'{"not": "an array"}'))
    assert isinstance(only, Broken) and only.message == "not a JSON array"
    truncated = list(iter_json_array(io.BytesIO(b'[{"a": 1}, {"a": ')))
    assert truncated[0] == (1, {"a": 1})
    assert isinstance(truncated[1], Broken) and truncated[1].truncated


@pytest.mark.parametrize(("text", "expected"), [(b"[]", []), (b" [ ] ", []), (b"[1,]", [(1, 1)])])
def test_small_arrays(text: bytes, expected: list[object]) -> None:
    assert list(iter_json_array(io.BytesIO(text))) == expected


def test_json_lines_with_blank_broken_and_unfinished_lines() -> None:
    stream = io.BytesIO(b'{"a": 1}\n\n{bad\n\xff\xfe\n{"b": 2}')
    out = list(iter_json_lines(stream))
    assert out[0] == (1, {"a": 1})
    assert [(b.line, b.truncated) for b in out if isinstance(b, Broken)] == [(3, False), (4, False)]
    assert out[-1] == (5, {"b": 2})  # a complete last line without a newline is fine
    (last,) = [b for b in iter_json_lines(io.BytesIO(b'{"a": 1}\n{"b": ')) if isinstance(b, Broken)]
    assert (last.line, last.truncated, last.message) == (2, True, "truncated last line")
