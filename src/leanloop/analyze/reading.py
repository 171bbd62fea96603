"""Streaming readers for log files: JSON per line, and one big JSON array, element by element.

Both read bytes, so the caller learns exactly how far into the file it is (for a progress bar), and neither holds
more than one line or one array element (plus a read buffer) in memory. A line or element that does not parse
comes back as a ``Broken`` value with its line number; reading goes on.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["Broken", "iter_json_array", "iter_json_lines"]

_CHUNK = 1 << 20
_REPORT_EVERY = 1 << 20
_NEAR_END = 64  # an error this close to the end of the text read so far may be a cut literal ("nul", "12", "\u00")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class Broken:
    """A line (or array element starting on ``line``) that is not valid JSON."""

    line: int
    message: str
    truncated: bool = False


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


def iter_json_lines(
    file: IO[bytes], on_bytes: Callable[[int], None] | None = None
) -> Iterator[tuple[int, Any] | Broken]:
    """``(line number, value)`` for every non-blank line of a JSON-lines file, ``Broken`` for the rest."""
    meter = _Meter(on_bytes)
    number = 0
    for number, line in enumerate(file, 1):
        meter.add(len(line))
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
            unfinished = not line.endswith(b"\n")
            message = "truncated last line" if unfinished else f"not valid JSON ({_short(error)})"
            yield Broken(number, message, truncated=unfinished)
    meter.flush()


def _short(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at column {error.colno}"
    return str(error)[:80]


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
            while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
                self.consume(1)
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""


def iter_json_array(
    file: IO[bytes], on_bytes: Callable[[int], None] | None = None
) -> Iterator[tuple[int, Any] | Broken]:
    """``(line number, element)`` for each element of a top-level JSON array, read incrementally.

    An element that does not parse ends the read with a ``Broken`` (a JSON array has no reliable resync point).
    """
    meter = _Meter(on_bytes)
    cursor = _ArrayCursor(file, meter)
    try:
        if cursor.peek() != "[":
            yield Broken(cursor.line, "not a JSON array")
            return
        cursor.consume(1)
        first = True
        while True:
            head = cursor.peek()
            if head == "]":
                return
            if not head:
                yield Broken(cursor.line, "the array is not closed (truncated file)", truncated=True)
                return
            if not first:
                if head != ",":
                    yield Broken(cursor.line, f"expected ',' or ']' between elements, found {head!r}")
                    return
                cursor.consume(1)
                if cursor.peek() == "]":  # a trailing comma: tolerated
                    return
            first = False
            value = _decode_element(cursor)
            yield value
            if isinstance(value, Broken):
                return
    finally:
        meter.flush()


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
            return Broken(line, f"not valid JSON ({error.msg})", truncated=truncated)
        line = cursor.line
        cursor.consume(end - cursor.pos)
        return line, value
