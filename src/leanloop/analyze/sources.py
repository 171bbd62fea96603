"""Finding trace files, telling their format from their content, and streaming their model calls as CallRecords.

Formats (detected from the first lines, never from the file name):

- ``leanloop``: leanloop's own JSONL trace (``{"kind": "call", ...}`` lines).
- ``claude_code``: a Claude Code session log (``~/.claude/projects/**/*.jsonl``, sub-agent files included).
- ``openhands``: an OpenHands trajectory (a JSON array of events).
- ``recording``: a VCR-style YAML cassette of Messages API traffic.
- ``sse``: a raw streamed Messages API response body.

A path may be a file or a directory (walked recursively). Files of no known format inside a directory are listed
and skipped; a file or directory that cannot be read is noted once, with the reason; a broken or unknown line is
reported with its file and line number. The import goes on in each case.
Claude Code calls are de-duplicated across all files of one import (a resumed session repeats earlier messages),
so they come out after the other formats' calls, once every file has been read.
"""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from leanloop.analyze.claude_code import ClaudeCodeImport, is_claude_code_line
from leanloop.analyze.openhands import OpenHandsImport, is_openhands_event
from leanloop.analyze.reading import Broken, iter_json_array, iter_json_lines
from leanloop.analyze.recordings import Recorded, iter_cassette, iter_sse_file
from leanloop.errors import ConfigError
from leanloop.pricing import Pricing, default_pricing
from leanloop.trace import CallRecord, TraceProblem, iter_trace

__all__ = [
    "FORMATS",
    "Format",
    "ImportLog",
    "SourceFile",
    "count_lines",
    "detect_format",
    "discover",
    "iter_calls",
]

Format = Literal["leanloop", "claude_code", "openhands", "recording", "sse"]
FORMATS: tuple[Format, ...] = ("leanloop", "claude_code", "openhands", "recording", "sse")
_LEANLOOP_KINDS = frozenset({"call", "run_start", "run_end", "tool_output", "event"})
_SNIFF_LINES = 25
_SNIFF_BYTES = 1 << 20
_LINE_LIMIT = 16 << 20
_KEEP_PROBLEMS = 1000
_UNKNOWN_FORMAT = "files of unknown format"


@dataclass
class SourceFile:
    path: Path
    format: Format | None
    size: int
    calls: int = 0
    note: str = ""


@dataclass
class ImportLog:
    """What an import read: files with their format, paths it could not read (with the reason), unusable lines
    (the first 1,000 kept), skipped lines."""

    files: list[SourceFile] = field(default_factory=list[SourceFile])
    unreadable: dict[str, str] = field(default_factory=dict[str, str])
    problems: list[TraceProblem] = field(default_factory=list[TraceProblem])
    problem_count: int = 0
    skipped: Counter[str] = field(default_factory=Counter[str])

    def cannot_read(self, path: Path | str, error: OSError) -> None:
        """Note a file or directory that could not be read; a path noted twice keeps its first reason."""
        self.unreadable.setdefault(str(path), error.strerror or str(error))

    def problem(self, path: Path | str, line: int, message: str, *, truncated: bool = False) -> None:
        self.problem_count += 1
        if len(self.problems) < _KEEP_PROBLEMS:
            self.problems.append(TraceProblem(str(path), line, message, truncated))

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def why_no_calls(self, lines: int) -> str:
        """Why an import that found no model call found none, given how many lines its files hold (one line)."""
        unreadable = _plural(len(self.unreadable), "unreadable path")
        if not self.files:
            return f"nothing readable: {unreadable}" if self.unreadable else "no files"
        kinds = Counter(_kind(source) for source in self.files)
        reasons = [_plural(count, noun) + suffix for (noun, suffix), count in sorted(kinds.items())]
        if self.problem_count:
            reasons.append(_plural(self.problem_count, "unusable line"))
        reasons += [f"{n:,} {reason}" for reason, n in sorted(self.skipped.items()) if reason != _UNKNOWN_FORMAT]
        if self.unreadable:
            reasons.append(unreadable)
        return f"{_plural(lines, 'line')} skipped: {', '.join(reasons)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [
                {"path": str(f.path), "format": f.format, "bytes": f.size, "calls": f.calls, **_note(f.note)}
                for f in self.files
            ],
            "unreadable": [{"path": path, "reason": reason} for path, reason in self.unreadable.items()],
            "problem_count": self.problem_count,
            "problems": [{"path": p.path, "line": p.line, "message": p.message} for p in self.problems],
            "skipped": dict(self.skipped),
        }


def _kind(source: SourceFile) -> tuple[str, str]:
    """What a file without a model call is, as (noun, rest of the phrase)."""
    if source.format is not None:
        return f"{source.format} file", " without a model call"
    return ("empty file", "") if not source.size else ("file", " of no known trace format")


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def count_lines(files: Iterable[SourceFile]) -> int:
    """Lines in ``files`` (a last line without a newline counts); a file that cannot be read counts none."""
    total = 0
    for source in files:
        try:
            with source.path.open("rb") as file:
                last = b"\n"
                while chunk := file.read(1 << 20):
                    total += chunk.count(b"\n")
                    last = chunk[-1:]
                total += last != b"\n"
        except OSError:
            continue
    return total


def _note(note: str) -> dict[str, str]:
    return {"note": note} if note else {}


def discover(paths: Iterable[str | Path], log: ImportLog | None = None) -> list[Path]:
    """Every regular file under ``paths`` (files as given, directories walked in sorted order).

    A path that does not exist is a ``ConfigError``. A file or directory that cannot be read is noted in ``log`` and
    left out (without a log, it is a ``ConfigError`` too).
    """

    def unreadable(error: OSError) -> None:
        if log is None:
            raise ConfigError(f"{error.filename}: {error.strerror}")
        log.cannot_read(error.filename, error)

    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        try:
            mode = path.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            raise ConfigError(f"{path}: no such file or directory") from None
        except OSError as error:
            unreadable(error)
            continue
        if stat.S_ISDIR(mode):
            found.extend(_walk(path, unreadable))
        elif stat.S_ISREG(mode):
            found.append(path)
        else:
            raise ConfigError(f"{path}: not a regular file or a directory")
    return found


def _walk(top: Path, unreadable: Callable[[OSError], None]) -> Iterator[Path]:
    for root, dirs, files in os.walk(top, onerror=unreadable):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            try:
                mode = path.stat().st_mode
            except FileNotFoundError:  # a dangling link, or removed meanwhile
                continue
            except OSError as error:
                unreadable(error)
                continue
            if stat.S_ISREG(mode):
                yield path


def _sniff_json_line(data: Any) -> Format | None:
    if not isinstance(data, Mapping):
        return None
    data = cast(Mapping[str, Any], data)
    if data.get("kind") in _LEANLOOP_KINDS:
        return "leanloop"
    if is_claude_code_line(data):
        return "claude_code"
    return None


def _sniff_array(head: bytes) -> Format | None:
    text = head.decode(errors="replace").lstrip()[1:].lstrip()
    try:
        first, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:  # the first element is longer than the sample: fall back to its keys
        keys = ('"source"', '"action"', '"observation"')
        return "openhands" if keys[0] in text and (keys[1] in text or keys[2] in text) else None
    return "openhands" if is_openhands_event(first) else None


def detect_format(path: Path) -> Format | None:
    """The format of ``path`` from its first lines, or None when it is none of ``FORMATS``."""
    with path.open("rb") as file:
        head = file.read(4096)
        start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if start.startswith(b"["):
            return _sniff_array(head + file.read(_SNIFF_BYTES))
        if start.startswith((b"event:", b"data:")):
            return "sse"
        if start.startswith((b"interactions:", b"---", b"#")):
            return "recording" if b"interactions:" in head and b"request:" in head + file.read(65536) else None
        if not start.startswith(b"{"):
            return None
        file.seek(0)
        read = 0
        for _ in range(_SNIFF_LINES):
            line = file.readline(_LINE_LIMIT)
            if not line or read > _SNIFF_BYTES:
                break
            read += len(line)
            try:
                found = _sniff_json_line(json.loads(line))
            except ValueError:
                continue
            if found is not None:
                return found
    return None


def iter_calls(
    paths: Iterable[str | Path],
    log: ImportLog,
    *,
    content: bool = False,
    pricing: Pricing | None = None,
    on_bytes: Callable[[int], None] | None = None,
    files: list[Path] | None = None,
) -> Iterator[CallRecord]:
    """Stream the model calls of every trace under ``paths``; ``log`` receives files, problems and skips.

    ``content=True`` makes the Claude Code importer follow message contents (for ``explain`` and ``whatif``).
    ``on_bytes`` is called with byte counts as the files are read (a progress bar). ``files`` short-cuts
    ``discover(paths, log)`` when the caller already has the list.
    """
    claude = ClaudeCodeImport(content=content, pricing=pricing)
    claude_files: list[SourceFile] = []
    for path in files if files is not None else discover(paths, log):
        try:
            source = SourceFile(path, detect_format(path), path.stat().st_size)
        except OSError as error:
            log.cannot_read(path, error)
            continue
        log.files.append(source)
        if source.format is None:
            source.note = "not a trace (unknown format)"
            log.skipped[_UNKNOWN_FORMAT] += 1
            _advance(on_bytes, source.size)
            continue
        if source.format == "claude_code":
            before = len(claude)
            claude.start_file()
            _read_claude_code(path, claude, log, on_bytes)
            source.calls = len(claude) - before
            claude_files.append(source)
            continue
        for record in _read_other(source, log, pricing, on_bytes):
            source.calls += 1
            yield record
    yield from claude.records()
    log.skipped.update(claude.skipped)
    if claude.duplicate_lines:
        log.skipped["repeated lines of an already counted Claude Code message"] += claude.duplicate_lines


def _advance(on_bytes: Callable[[int], None] | None, count: int) -> None:
    if on_bytes is not None and count:
        on_bytes(count)


def _read_claude_code(
    path: Path, claude: ClaudeCodeImport, log: ImportLog, on_bytes: Callable[[int], None] | None
) -> None:
    with path.open("rb") as file:
        for item in iter_json_lines(file, on_bytes):
            if isinstance(item, Broken):
                log.problem(path, item.line, item.message, truncated=item.truncated)
                continue
            number, data = item
            problem = claude.feed(data, path=str(path), line=number)
            if problem is not None:
                log.problem(path, number, problem)


def _repriced(record: CallRecord, pricing: Pricing | None) -> CallRecord:
    """A traced call its writer could not price, priced again (an override file may know the model now)."""
    at = datetime.fromtimestamp(record.started_at, tz=UTC) if record.started_at is not None else None
    return replace(record, cost=(pricing or default_pricing()).cost(record.model, record.usage, at=at))


def _read_other(
    source: SourceFile, log: ImportLog, pricing: Pricing | None, on_bytes: Callable[[int], None] | None
) -> Iterator[CallRecord]:
    path = source.path
    if source.format == "leanloop":
        for item in iter_trace(path):
            if isinstance(item, CallRecord):
                yield item if item.cost.is_known else _repriced(item, pricing)
            elif isinstance(item, TraceProblem):
                log.problem(path, item.line, item.message, truncated=item.truncated)
        _advance(on_bytes, source.size)
    elif source.format == "openhands":
        trajectory = OpenHandsImport(path, pricing)
        with path.open("rb") as file:
            for item in iter_json_array(file, on_bytes):
                if isinstance(item, Broken):
                    log.problem(path, item.line, item.message, truncated=item.truncated)
                    continue
                problem = trajectory.feed(item[1], line=item[0])
                if problem is not None:
                    log.problem(path, item[0], problem)
        if trajectory.duplicates:
            log.skipped["OpenHands events repeating an already counted model response"] += trajectory.duplicates
        yield from trajectory.records()
    elif source.format == "recording":
        found = Recorded()
        yield from iter_cassette(path, found, pricing=pricing)
        for line, message in found.problems:
            log.problem(path, line, message)
        log.skipped.update(found.skipped)
        _advance(on_bytes, source.size)
    else:
        yield from iter_sse_file(path, pricing=pricing)
        _advance(on_bytes, source.size)
