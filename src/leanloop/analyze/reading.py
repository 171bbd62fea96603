"""Streaming readers for log files: JSON per line, and one big JSON array, element by element.

Both read bytes, so the caller learns exactly how far into the file it is (for a progress bar), and neither holds
more than one line or one array element (plus a read buffer) in memory. A line or element that does not parse
comes back as a ``Broken`` value with its line number; reading goes on:

- a line longer than ``LINE_LIMIT`` (a pasted screenshot or two is tens of MB) is skipped, not loaded: its
  ``Broken`` carries the first ``HEAD_BYTES`` of it, whose top-level fields ``top_level_scalars`` can still read;
- after an array element that does not parse, reading resumes at the next element (found by its indentation in a
  pretty-printed array, by its first key in a compact one).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

__all__ = ["HEAD_BYTES", "LINE_LIMIT", "Broken", "iter_json_array", "iter_json_lines", "top_level_scalars"]

LINE_LIMIT = 64 << 20
HEAD_BYTES = 64 << 10
_CHUNK = 1 << 20
_REPORT_EVERY = 1 << 20
_NEAR_END = 64  # an error this close to the end of the text read so far may be a cut literal ("nul", "12", "\u00")
_DECODER = json.JSONDecoder()
_BOM = b"\xef\xbb\xbf"
_BLANK = " \t\r\n"


@dataclass(frozen=True, slots=True)
class Broken:
    """A line (or array element starting on ``line``) that is not valid JSON, or a line too long to read.

    ``head`` and ``tail`` are the first and last ``HEAD_BYTES`` of a line skipped for its length (empty
    otherwise)."""

    line: int
    message: str
    truncated: bool = False
    head: bytes = b""
    tail: bytes = b""
    size: int = 0


class _Meter:
    """Batches byte counts for a progress callback: one call per megabyte, not per line."""

    def __init__(self, on_bytes: Callable[[int], None] | None) -> None:
        self._on_bytes = on_bytes
        self._pending = 0

    def add(self, count: int) -> None:
        if self._on_bytes is None:
            return
        self._pending += count
        if self._pending >= _REPORT_EVERY:
            self._on_bytes(self._pending)
            self._pending = 0

    def flush(self) -> None:
        if self._on_bytes is not None and self._pending:
            self._on_bytes(self._pending)
            self._pending = 0


def _megabytes(size: int) -> str:
    return f"{size / (1 << 20):,.1f} MB"


def _skip_long_line(file: IO[bytes], start: bytes, meter: _Meter) -> tuple[int, bytes]:
    """Read past the rest of a line whose first ``start`` bytes were read: (its whole length, its last bytes)."""
    size = len(start)
    tail = start[-HEAD_BYTES:]
    while not tail.endswith(b"\n"):
        chunk = file.readline(_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        meter.add(len(chunk))
        tail = (tail + chunk)[-HEAD_BYTES:]
    return size, tail


def iter_json_lines(
    file: IO[bytes], on_bytes: Callable[[int], None] | None = None
) -> Iterator[tuple[int, Any] | Broken]:
    """``(line number, value)`` for every non-blank line of a JSON-lines file, ``Broken`` for the rest."""
    meter = _Meter(on_bytes)
    readline = file.readline
    number = 0
    while line := readline(LINE_LIMIT):
        number += 1
        meter.add(len(line))
        if len(line) == LINE_LIMIT and not line.endswith(b"\n"):
            size, tail = _skip_long_line(file, line, meter)
            message = f"{_megabytes(size)} long, longer than {_megabytes(LINE_LIMIT)}: skipped"
            yield Broken(number, message, head=line[:HEAD_BYTES], tail=tail, size=size)
            continue
        if not line.strip():
            continue
        try:
            yield number, json.loads(line.removeprefix(_BOM).decode() if number == 1 else line.decode())
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
            unfinished = not line.endswith(b"\n")
            message = "truncated last line" if unfinished else f"not valid JSON ({_short(error)})"
            yield Broken(number, message, truncated=unfinished)
    meter.flush()


def _short(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at column {error.colno}"
    if isinstance(error, UnicodeDecodeError):
        byte = error.object[error.start] if error.object else 0
        return f"not UTF-8 text: byte {byte:#04x} at column {error.start + 1}"
    return str(error)[:80]


def top_level_scalars(head: str) -> dict[str, Any]:
    """The leading ``"key": value`` pairs of a JSON object's text, as far as they can be read from ``head`` (the
    start of a line too long to load): stops at the first value that is cut off or is not a string, number,
    boolean or null (a long message object or array ends the scan)."""
    found: dict[str, Any] = {}
    pos = _skip_blank(head, 0)
    if not head.startswith("{", pos):
        return found
    pos += 1
    while True:
        pos = _skip_blank(head, pos)
        if not head.startswith('"', pos):
            return found
        try:
            key, pos = _DECODER.raw_decode(head, pos)
            pos = _skip_blank(head, pos)
            if not isinstance(key, str) or not head.startswith(":", pos):
                return found
            pos = _skip_blank(head, pos + 1)
            if head.startswith(("{", "["), pos):
                return found
            value, pos = _DECODER.raw_decode(head, pos)
        except ValueError:
            return found
        found[key] = value
        pos = _skip_blank(head, pos)
        if not head.startswith(",", pos):
            return found
        pos += 1


def _skip_blank(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _BLANK:
        pos += 1
    return pos


class _ArrayCursor:
    """A text buffer over a binary file, read from ``pos``; tracks the line number of ``pos``."""

    def __init__(self, file: IO[bytes], meter: _Meter) -> None:
        self._file = file
        self._meter = meter
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.pos = 0
        self.line = 1

    def more(self, minimum: int = 0) -> bool:
        """Append at least ``minimum`` bytes' worth of text (dropping what was consumed); False at end of file."""
        chunk = self._file.read(max(minimum, _CHUNK))
        self._meter.add(len(chunk))
        self.text = self.text[self.pos :] + self._decoder.decode(chunk, final=not chunk)
        self.pos = 0
        return bool(chunk)

    def consume(self, count: int) -> None:
        self.line += self.text.count("\n", self.pos, self.pos + count)
        self.pos += count

    def peek(self) -> str:
        """The next non-blank character ("" at end of file), skipping whitespace."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _BLANK:
                self.consume(1)
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def column(self) -> int:
        """How many characters precede ``pos`` on its line."""
        return self.pos - (self.text.rfind("\n", 0, self.pos) + 1)


@dataclass
class _Shape:
    """How the array's first element was laid out, to find the next element after a broken one."""

    indent: int | None  # the column elements start at, when each starts on its own line
    first_key: str | None  # the first key of the first element, when it is an object

    def starts(self) -> re.Pattern[str]:
        if self.indent is not None:
            return re.compile(rf"\n[ \t]{{{self.indent}}}(?=[{{\[])")
        return re.compile(r",\s*(?=[{\[])")

    def fits(self, value: Any) -> bool:
        """Pretty-printed, the indentation is enough; compact, an object must start with the first one's key."""
        if self.indent is not None or self.first_key is None:
            return True
        return isinstance(value, dict) and next(iter(cast(dict[str, Any], value)), None) == self.first_key


def iter_json_array(
    file: IO[bytes], on_bytes: Callable[[int], None] | None = None
) -> Iterator[tuple[int, Any] | Broken]:
    """``(line number, element)`` for each element of a top-level JSON array, read incrementally.

    An element that does not parse is a ``Broken`` naming its index; reading resumes at the next element.
    """
    meter = _Meter(on_bytes)
    cursor = _ArrayCursor(file, meter)
    try:
        if cursor.peek() != "[":
            yield Broken(cursor.line, "not a JSON array")
            return
        cursor.consume(1)
        yield from _elements(cursor)
    finally:
        meter.flush()


def _elements(cursor: _ArrayCursor) -> Iterator[tuple[int, Any] | Broken]:
    shape: _Shape | None = None
    index = 0
    resumed = False  # at an element found after a broken one: no comma to expect
    while True:
        head = cursor.peek()
        if head == "]":
            return
        if not head:
            yield Broken(cursor.line, "the array is not closed (truncated file)", truncated=True)
            return
        if index and not resumed:
            if head != ",":
                yield Broken(cursor.line, f"expected ',' or ']' after array element {index - 1}, found {head!r}")
                return
            cursor.consume(1)
            if cursor.peek() == "]":  # a trailing comma: tolerated
                return
        resumed = False
        if shape is None:
            shape = _Shape(cursor.column() if "\n" in cursor.text[: cursor.pos] else None, None)
        value = _decode_element(cursor)
        if isinstance(value, Broken):
            if value.truncated or not _resync(cursor, shape):
                message = f"array element {index} {value.message}; the rest of the file is not read"
                yield Broken(value.line, message, truncated=value.truncated)
                return
            yield Broken(
                value.line,
                f"array element {index} {value.message}: skipped, reading went on at line {cursor.line}",
            )
            index += 1
            resumed = True
            continue
        if index == 0 and isinstance(value[1], dict):
            shape.first_key = next(iter(cast(dict[str, Any], value[1])), None)
        index += 1
        yield value


def _resync(cursor: _ArrayCursor, shape: _Shape) -> bool:
    """Move the cursor to the next element that parses and looks like the first one; False when there is none
    before the end of the file."""
    pattern = shape.starts()
    search_from = cursor.pos + 1
    while True:
        match = pattern.search(cursor.text, search_from)
        if match is None:
            keep = max(len(cursor.text) - 256, cursor.pos)  # a start split between two reads is found next time
            cursor.consume(keep - cursor.pos)
            if not cursor.more():
                return False
            search_from = cursor.pos
            continue
        start = match.end()
        try:
            value, end = _DECODER.raw_decode(cursor.text, start)
        except json.JSONDecodeError as error:
            if error.pos >= len(cursor.text) - _NEAR_END and cursor.more():
                search_from = 0
                continue
            search_from = start
            continue
        following = _skip_blank(cursor.text, end)
        if shape.fits(value) and cursor.text[following : following + 1] in (",", "]", ""):
            cursor.consume(start - cursor.pos)
            return True
        search_from = start


def _decode_element(cursor: _ArrayCursor) -> tuple[int, Any] | Broken:
    """Decode one element at the cursor, reading more text while the element is incomplete."""
    size = _CHUNK
    while True:
        try:
            value, end = _DECODER.raw_decode(cursor.text, cursor.pos)
        except json.JSONDecodeError as error:
            # Incomplete (the error is near the end of the text read so far) or broken. Read more geometrically, so
            # one huge element costs O(n log n); a syntax error well inside the text stops at once.
            offset = error.pos - cursor.pos  # ``more`` moves the text: keep the error relative to the element
            unterminated = error.msg.startswith("Unterminated string")
            if (unterminated or error.pos >= len(cursor.text) - _NEAR_END) and cursor.more(size):
                size *= 2
                continue
            truncated = unterminated or cursor.pos + offset >= len(cursor.text) - 1  # cut off at end of file
            line = cursor.line + cursor.text.count("\n", cursor.pos, cursor.pos + offset)
            return Broken(line, f"is not valid JSON ({error.msg})", truncated=truncated)
        line = cursor.line
        cursor.consume(end - cursor.pos)
        return line, value
