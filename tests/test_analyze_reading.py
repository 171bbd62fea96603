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
    assert out[1].message.startswith("array element 1 is not valid JSON")
    assert out[1].message.endswith("skipped, reading went on at line 4")
    assert out[2] == (4, {"c": 4})  # the next element, found by its indentation
    (only,) = iter_json_array(io.BytesIO(b'{"not": "an array"}'))
    assert isinstance(only, Broken) and only.message == "not a JSON array"
    truncated = list(iter_json_array(io.BytesIO(b'[{"a": 1}, {"a": ')))
    assert truncated[0] == (1, {"a": 1})
    assert isinstance(truncated[1], Broken) and truncated[1].truncated


def test_compact_array_resumes_at_an_element_with_the_first_key() -> None:
    text = b'[{"id": 0, "x": [{"id": 9}]}, {"id": 1 oops, "x": [{"k": 2}, {"k": 3}]}, {"id": 2}, {"id": 3}]'
    out = list(iter_json_array(io.BytesIO(text)))
    read = [item[1] for item in out if not isinstance(item, Broken)]
    assert read == [{"id": 0, "x": [{"id": 9}]}, {"id": 2}, {"id": 3}]
    (broken,) = [item for item in out if isinstance(item, Broken)]
    assert "array element 1 " in broken.message


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.just("id"), st.integers(), min_size=1), min_size=3, max_size=8), st.data())
def test_one_broken_element_loses_only_itself(elements: list[dict[str, int]], data: st.DataObject) -> None:
    bad = data.draw(st.integers(0, len(elements) - 1))
    indent = data.draw(st.sampled_from([None, 2]))
    parts = [json.dumps(e) for e in elements]
    parts[bad] = parts[bad].replace(":", ": @", 1)
    separator = ",\n  " if indent else ", "
    text = ("[\n  " if indent else "[") + separator.join(parts) + ("\n]" if indent else "]")
    out = list(iter_json_array(io.BytesIO(text.encode())))
    assert [item[1] for item in out if not isinstance(item, Broken)] == elements[:bad] + elements[bad + 1 :]


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


def test_a_line_longer_than_the_limit_is_skipped_and_its_head_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "LINE_LIMIT", 1000)
    huge = json.dumps({"type": "user", "uuid": "u1", "parentUuid": None, "message": {"content": "x" * 5000}})
    stream = io.BytesIO(f'{{"a": 1}}\n{huge}\n{{"b": 2}}\n'.encode())
    seen: list[int] = []
    out = list(iter_json_lines(stream, seen.append))
    assert out[0] == (1, {"a": 1}) and out[2] == (3, {"b": 2})
    skipped = out[1]
    assert isinstance(skipped, Broken) and skipped.line == 2 and "longer than" in skipped.message
    assert reading.top_level_scalars(skipped.head.decode()) == {"type": "user", "uuid": "u1", "parentUuid": None}
    assert sum(seen) == len(stream.getvalue())


def test_json_lines_name_bytes_that_are_not_utf8() -> None:
    (broken,) = iter_json_lines(io.BytesIO(b"\x00\x00\x00{\xff}\n"))
    assert isinstance(broken, Broken) and "not UTF-8" in broken.message and "utf-32" not in broken.message
