"""Finding trace files, telling their format from their content, and streaming their model calls as CallRecords.

Formats (detected from the first lines, never from the file name):

- ``leanloop``: leanloop's own JSONL trace (``{"kind": "call", ...}`` lines).
- ``claude_code``: a Claude Code session log (``~/.claude/projects/**/*.jsonl``, sub-agent files included).
- ``openhands``: an OpenHands trajectory: a JSON array of events, ``{"trajectory": [...]}``, or an event store
  (``sessions/<id>/events/<n>.json``, one event per file: the files of one directory are one trajectory).
- ``recording``: a VCR-style YAML cassette of Messages API traffic.
- ``sse``: a raw streamed Messages API response body.
- ``emulator_log``: the call log of ``leanloop emulator --log`` (one JSON line per answered request).

A path may be a file or a directory (walked recursively). A file named twice (a directory and a file in it, the
same file under two spellings, a link to a file of the tree) is read once. Files of no known format inside a
directory are listed and skipped; a file or directory that cannot be read is noted once, with the reason; a broken
or unknown line is reported with its file and line number. The import goes on in each case.

Calls are streamed file by file (``iter_files``; ``iter_calls`` flattens it): nothing keeps a whole file, and a
consumer that works per run learns where each file ends. Claude Code calls are de-duplicated across all files of one
import (a resumed session repeats earlier messages): the first file that has a call counts it.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple, TypedDict, Unpack, cast

from leanloop.analyze.claude_code import ClaudeCodeImport, agent_labels, is_claude_code_line
from leanloop.analyze.emulator_log import EmulatorLogImport, is_emulator_log_line
from leanloop.analyze.openhands import OpenHandsImport, is_openhands_event
from leanloop.analyze.reading import Broken, iter_json_array, iter_json_lines, top_level_scalars
from leanloop.analyze.recordings import Recorded, iter_cassette, iter_sse_file
from leanloop.errors import ConfigError
from leanloop.pricing import Pricing, default_pricing
from leanloop.trace import CallRecord, TraceProblem, iter_trace
from leanloop.wording import counted, many, plural

__all__ = [
    "FORMATS",
    "UNKNOWN_FORMAT",
    "FileCalls",
    "Format",
    "ImportLog",
    "ImportOptions",
    "SourceFile",
    "count_lines",
    "detect_format",
    "discover",
    "iter_calls",
    "iter_files",
]

Format = Literal["leanloop", "claude_code", "openhands", "recording", "sse", "emulator_log"]
FORMATS: tuple[Format, ...] = ("leanloop", "claude_code", "openhands", "recording", "sse", "emulator_log")
# How an OpenHands file holds its events.
_Layout = Literal["", "array", "wrapped", "event"]
_LEANLOOP_KINDS = frozenset({"call", "run_start", "run_end", "tool_output", "event"})
_SNIFF_LINES = 25
_SNIFF_BYTES = 1 << 20
_SNIFF_SKIP_BYTES = 64 << 20  # lines too long to sniff that detection reads past before it gives up
_WHOLE_OBJECT_BYTES = 4 << 20  # a one-object file (an OpenHands event, pretty-printed) is parsed whole up to this
_SIDECAR_BYTES = 64 << 10  # a Claude Code sub-agent's .meta.json is one short line of JSON
_KEEP_PROBLEMS = 1000
UNKNOWN_FORMAT = "file(s) of unknown format"
_OPENHANDS_SOURCES = frozenset({"agent", "user", "environment"})
_TRAJECTORY = re.compile(rb'"trajectory"\s*:\s*\[')


@dataclass
class SourceFile:
    path: Path
    format: Format | None
    size: int
    calls: int = 0
    note: str = ""
    layout: _Layout = ""
    sidecar: bool = False  # not a trace, but read with one (a Claude Code sub-agent's .meta.json)


@dataclass
class ImportLog:
    """What an import read: files with their format, paths it could not read (with the reason), unusable lines
    (the first 1,000 kept), skipped lines, files named more than once (read once).

    ``skipped`` counts lines (or files) that are not model calls by reason, a phrase whose counted noun is marked
    ``(s)`` (``leanloop.wording``): printed as ``1 assistant line without usage``, a plural key in JSON."""

    files: list[SourceFile] = field(default_factory=list[SourceFile])
    unreadable: dict[str, str] = field(default_factory=dict[str, str])
    problems: list[TraceProblem] = field(default_factory=list[TraceProblem])
    problem_count: int = 0
    skipped: Counter[str] = field(default_factory=Counter[str])
    repeated_paths: int = 0

    def cannot_read(self, path: Path | str, error: OSError) -> None:
        """Note a file or directory that could not be read; a path noted twice keeps its first reason."""
        self.unreadable.setdefault(str(path), error.strerror or str(error))

    def problem(self, path: Path | str, line: int, message: str, *, truncated: bool = False) -> None:
        self.problem_count += 1
        if len(self.problems) < _KEEP_PROBLEMS:
            self.problems.append(TraceProblem(str(path), line, message, truncated))

    def why_no_calls(self, lines: int) -> str:
        """Why an import that found no model call found none, given how many lines its files hold (one line)."""
        unreadable = plural(len(self.unreadable), "unreadable path")
        if not self.files:
            return f"nothing readable: {unreadable}" if self.unreadable else "no files"
        kinds = Counter(_kind(source) for source in self.files)
        reasons = [plural(count, noun) + suffix for (noun, suffix), count in sorted(kinds.items())]
        if self.problem_count:
            reasons.append(plural(self.problem_count, "unusable line"))
        reasons += [counted(n, reason) for reason, n in sorted(self.skipped.items()) if reason != UNKNOWN_FORMAT]
        if self.unreadable:
            reasons.append(unreadable)
        return f"{plural(lines, 'line')} skipped: {', '.join(reasons)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [
                {
                    "path": str(f.path),
                    "format": f.format,
                    "bytes": f.size,
                    "calls": f.calls,
                    **_note(f.note),
                    **({"read_as": _SIDECAR} if f.sidecar else {}),
                }
                for f in self.files
            ],
            "unreadable": [{"path": path, "reason": reason} for path, reason in self.unreadable.items()],
            "problem_count": self.problem_count,
            "problems": [{"path": p.path, "line": p.line, "message": p.message} for p in self.problems],
            "skipped": {many(reason): count for reason, count in self.skipped.items()},
            "repeated_paths": self.repeated_paths,
        }


_SIDECAR = "Claude Code sub-agent metadata"


def _kind(source: SourceFile) -> tuple[str, str]:
    """What a file without a model call is, as (noun, rest of the phrase)."""
    if source.sidecar:
        return f"{_SIDECAR} file", ""
    if source.format is not None:
        return f"{source.format} file", " without a model call"
    return ("empty file", "") if not source.size else ("file", " of no known trace format")


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
    """Every regular file under ``paths`` (files as given, directories walked in sorted order), each once.

    A file reached twice (named twice, inside a directory also named, or through a link) is kept where first found
    (counted in ``log.repeated_paths``). A path that does not exist is a ``ConfigError``. A file or directory that
    cannot be read is noted in ``log`` and left out (without a log, it is a ``ConfigError`` too).
    """

    def unreadable(error: OSError) -> None:
        if log is None:
            raise ConfigError(f"{error.filename}: {error.strerror}")
        log.cannot_read(error.filename, error)

    found: list[Path] = []
    seen: set[tuple[int, int]] = set()

    def keep(path: Path, status: os.stat_result) -> None:
        identity = (status.st_dev, status.st_ino)
        if identity in seen:
            if log is not None:
                log.repeated_paths += 1
            return
        seen.add(identity)
        found.append(path)

    for raw in paths:
        path = Path(raw).expanduser()
        try:
            status = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ConfigError(f"{path}: no such file or directory") from None
        except OSError as error:
            unreadable(error)
            continue
        if stat.S_ISDIR(status.st_mode):
            for child, child_status in _walk(path, unreadable):
                keep(child, child_status)
        elif stat.S_ISREG(status.st_mode):
            keep(path, status)
        else:
            raise ConfigError(f"{path}: not a regular file or a directory")
    return found


def _walk(top: Path, unreadable: Callable[[OSError], None]) -> Iterator[tuple[Path, os.stat_result]]:
    for root, dirs, files in os.walk(top, onerror=unreadable):
        dirs.sort()
        for name in sorted(files, key=_natural):
            path = Path(root, name)
            try:
                status = path.stat()
            except FileNotFoundError:  # a dangling link, or removed meanwhile
                continue
            except OSError as error:
                unreadable(error)
                continue
            if stat.S_ISREG(status.st_mode):
                yield path, status


def _natural(name: str) -> tuple[Any, ...]:
    """Sort key putting ``2.json`` before ``10.json`` (an OpenHands event store names events by number)."""
    stem = name.partition(".")[0]
    return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


# --- format detection ------------------------------------------------------------------------------------------


def _sniff_json_line(data: Any) -> tuple[Format, _Layout] | None:
    if not isinstance(data, Mapping):
        return None
    data = cast(Mapping[str, Any], data)
    if data.get("kind") in _LEANLOOP_KINDS:
        return "leanloop", ""
    if is_claude_code_line(data):
        return "claude_code", ""
    if is_openhands_event(data):
        return "openhands", "event"
    if is_emulator_log_line(data):
        return "emulator_log", ""
    trajectory = data.get("trajectory")
    if isinstance(trajectory, list) and trajectory and is_openhands_event(trajectory[0]):
        return "openhands", "wrapped"
    return None


def _sniff_array(head: bytes) -> bool:
    """Whether ``head`` (the start of a JSON array) starts with an OpenHands event."""
    text = head.decode(errors="replace").lstrip()[1:].lstrip()
    try:
        first, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:  # the first element is longer than the sample: its leading fields tell
        fields = top_level_scalars(text)
        if "action" in fields or "observation" in fields:
            return "source" in fields
        return fields.get("source") in _OPENHANDS_SOURCES and "id" in fields  # the rest follows a long message
    return is_openhands_event(first)


def _trajectory_start(head: bytes) -> int | None:
    """Where the array of a ``{"trajectory": [...]}`` file starts, when ``head`` shows it."""
    match = _TRAJECTORY.search(head)
    return match.end() - 1 if match is not None else None


def detect_format(path: Path) -> Format | None:
    """The format of ``path`` from its first lines, or None when it is none of ``FORMATS``."""
    return _detect(path)[0]


def _detect(path: Path) -> tuple[Format | None, _Layout]:
    with path.open("rb") as file:
        head = file.read(4096)
        start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if start.startswith(b"["):
            return ("openhands", "array") if _sniff_array(head + file.read(_SNIFF_BYTES)) else (None, "")
        if start.startswith((b"event:", b"data:")):
            return "sse", ""
        if start.startswith((b"interactions:", b"---", b"#")):
            cassette = b"interactions:" in head and b"request:" in head + file.read(65536)
            return ("recording", "") if cassette else (None, "")
        if not start.startswith(b"{"):
            return None, ""
        file.seek(0)
        return _sniff_lines(file, path)


def _sniff_lines(file: IO[bytes], path: Path) -> tuple[Format | None, _Layout]:
    """A JSON-lines file from its first lines (a line longer than the sample, from its leading fields), or one JSON
    object (an OpenHands event or wrapped trajectory)."""
    skipped = 0
    for number in range(_SNIFF_LINES):
        line = file.readline(_SNIFF_BYTES)
        if not line:
            break
        if len(line) == _SNIFF_BYTES and not line.endswith(b"\n"):  # longer than the sample
            found = _sniff_json_line(top_level_scalars(line.decode(errors="replace").lstrip("\ufeff")))
            if found is None and number == 0 and (offset := _trajectory_start(line)) is not None:
                return ("openhands", "wrapped") if _sniff_array(line[offset:]) else (None, "")
            if found is not None:
                return found
            skipped += _skip_line(file)
            if skipped > _SNIFF_SKIP_BYTES:
                break
            continue
        try:
            found = _sniff_json_line(json.loads(line.removeprefix(b"\xef\xbb\xbf")))
        except ValueError:
            found = _sniff_object(path) if number == 0 else None
        if found is not None:
            return found
    return None, ""


def _skip_line(file: IO[bytes]) -> int:
    """Read to the end of the current line; returns how many bytes that was."""
    size = 0
    while chunk := file.readline(_SNIFF_BYTES):
        size += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return size


def _sniff_object(path: Path) -> tuple[Format, _Layout] | None:
    """A file whose first line is not a whole JSON value: a pretty-printed object, perhaps."""
    with path.open("rb") as file:
        head = file.read(_WHOLE_OBJECT_BYTES + 1)
    if len(head) <= _WHOLE_OBJECT_BYTES:
        try:
            return _sniff_json_line(json.loads(head.removeprefix(b"\xef\xbb\xbf")))
        except ValueError:
            return None
    offset = _trajectory_start(head[:_SNIFF_BYTES])
    return ("openhands", "wrapped") if offset is not None and _sniff_array(head[offset:]) else None


# --- reading ---------------------------------------------------------------------------------------------------


class FileCalls(NamedTuple):
    """The calls of one file (or of the files of one OpenHands event store), read as ``calls`` is iterated."""

    files: list[SourceFile]
    calls: Iterator[CallRecord]


class ImportOptions(TypedDict, total=False):
    content: bool
    pricing: Pricing | None
    on_bytes: Callable[[int], None] | None
    files: list[Path] | None


def iter_calls(paths: Iterable[str | Path], log: ImportLog, **options: Unpack[ImportOptions]) -> Iterator[CallRecord]:
    """Stream the model calls of every trace under ``paths``; ``log`` receives files, problems and skips.

    Options are ``iter_files``'.
    """
    for unit in iter_files(paths, log, **options):
        yield from unit.calls


def iter_files(
    paths: Iterable[str | Path],
    log: ImportLog,
    *,
    content: bool = False,
    pricing: Pricing | None = None,
    on_bytes: Callable[[int], None] | None = None,
    files: list[Path] | None = None,
) -> Iterator[FileCalls]:
    """The calls of every trace under ``paths``, file by file (each ``FileCalls`` must be read to its end before
    the next is asked for).

    ``content=True`` makes the Claude Code importer follow message contents (for ``explain`` and ``whatif``).
    ``on_bytes`` is called with byte counts as the files are read (a progress bar). ``files`` short-cuts
    ``discover(paths, log)`` when the caller already has the list.
    """
    pricing = pricing or default_pricing()
    claude = ClaudeCodeImport(content=content, pricing=pricing)
    sources = _sources(files if files is not None else discover(paths, log), log, on_bytes)
    for store, group in groupby(sources, key=lambda s: s.path.parent if s.layout == "event" else s.path):
        grouped = list(group)
        if grouped[0].layout == "event":
            yield FileCalls(grouped, _read_event_store(grouped, log, pricing, on_bytes, store))
        elif grouped[0].format == "claude_code":
            yield FileCalls(grouped, _read_claude_code(grouped[0], claude, log, on_bytes))
        else:
            yield FileCalls(grouped, _counted(grouped[0], _read_other(grouped[0], log, pricing, on_bytes)))
    log.skipped.update(claude.skipped)
    if claude.duplicate_lines:
        log.skipped["repeated line(s) of an already counted Claude Code message"] += claude.duplicate_lines


def _sources(paths: Iterable[Path], log: ImportLog, on_bytes: Callable[[int], None] | None) -> Iterator[SourceFile]:
    """Each readable file with its format; files of no known format are noted and passed over."""
    for path in paths:
        try:
            found, layout = _detect(path)
            source = SourceFile(path, found, path.stat().st_size, layout=layout)
        except OSError as error:
            log.cannot_read(path, error)
            continue
        log.files.append(source)
        if source.format is None and _agent_meta(path) is not None:
            source.sidecar = True  # read with its agent's log
            _advance(on_bytes, source.size)
            continue
        if source.format is None:
            source.note = "not a trace (unknown format)"
            log.skipped[UNKNOWN_FORMAT] += 1
            _advance(on_bytes, source.size)
            continue
        yield source


def _counted(source: SourceFile, records: Iterator[CallRecord]) -> Iterator[CallRecord]:
    for record in records:
        source.calls += 1
        yield record


def _advance(on_bytes: Callable[[int], None] | None, count: int) -> None:
    if on_bytes is not None and count:
        on_bytes(count)


def _agent_meta(path: Path) -> dict[str, str] | None:
    """The labels in a Claude Code sub-agent's .meta.json at ``path``, or None when it is not one."""
    try:
        if path.stat().st_size > _SIDECAR_BYTES:
            return None
        return agent_labels(json.loads(path.read_bytes().removeprefix(b"\xef\xbb\xbf")))
    except (OSError, ValueError):
        return None


def _read_claude_code(
    source: SourceFile, claude: ClaudeCodeImport, log: ImportLog, on_bytes: Callable[[int], None] | None
) -> Iterator[CallRecord]:
    path = source.path
    meta = path.with_name(path.name.removesuffix(".jsonl") + ".meta.json")  # how Claude Code names it
    claude.start_file(agent=_agent_meta(meta) if path.name.endswith(".jsonl") else None)
    before = len(claude)
    with path.open("rb") as file:
        for item in iter_json_lines(file, on_bytes):
            if isinstance(item, Broken):
                message = item.message
                if item.head:
                    message += f" ({claude.feed_unread(item.head, item.tail, size=item.size)})"
                log.problem(path, item.line, message, truncated=item.truncated)
                continue
            number, data = item
            problem = claude.feed(data, path=str(path), line=number)
            if problem is not None:
                log.problem(path, number, problem)
            yield from claude.ready()
    source.calls = len(claude) - before
    yield from claude.end_file()


def _repriced(record: CallRecord, pricing: Pricing) -> CallRecord:
    """A traced call its writer could not price, priced again (an override file may know the model now)."""
    at = datetime.fromtimestamp(record.started_at, tz=UTC) if record.started_at is not None else None
    return replace(record, cost=pricing.cost(record.model, record.usage, at=at))


def _read_leanloop(path: Path, log: ImportLog, pricing: Pricing) -> Iterator[CallRecord]:
    """A leanloop trace's calls; each names where it is (``trace.jsonl:call 3``) unless the writer said so."""
    number = 0
    for item in iter_trace(path):
        if isinstance(item, CallRecord):
            number += 1
            record = item if item.cost.is_known else _repriced(item, pricing)
            yield record if record.source else replace(record, source=f"{path}:call {number}")
        elif isinstance(item, TraceProblem):
            log.problem(path, item.line, item.message, truncated=item.truncated)


def _read_openhands(
    source: SourceFile, log: ImportLog, pricing: Pricing, on_bytes: Callable[[int], None] | None
) -> Iterator[CallRecord]:
    """Every event of the file is read before the first call comes out: a response is attached to several."""
    path = source.path
    trajectory = OpenHandsImport(path, pricing)
    with path.open("rb") as file:
        if source.layout == "wrapped":
            start = _trajectory_start(file.read(_SNIFF_BYTES)) or 0
            _advance(on_bytes, start)
            file.seek(start)
        for item in iter_json_array(file, on_bytes):
            if isinstance(item, Broken):
                log.problem(path, item.line, item.message, truncated=item.truncated)
                continue
            problem = trajectory.feed(item[1], line=item[0])
            if problem is not None:
                log.problem(path, item[0], problem)
    if trajectory.duplicates:
        log.skipped["OpenHands event(s) repeating an already counted model response"] += trajectory.duplicates
    return trajectory.records()


def _read_event_store(
    sources: list[SourceFile],
    log: ImportLog,
    pricing: Pricing,
    on_bytes: Callable[[int], None] | None,
    directory: Path,
) -> Iterator[CallRecord]:
    """The files of one OpenHands event store directory, one event each, in event order: one trajectory."""
    session = directory.parent.name if directory.name == "events" else directory.name
    trajectory = OpenHandsImport(directory, pricing, run_id=session)
    counts: Counter[Path] = Counter()
    for source in sources:
        try:
            event = json.loads(source.path.read_bytes().removeprefix(b"\xef\xbb\xbf"))
        except (OSError, ValueError) as error:
            log.problem(source.path, 1, f"not a readable OpenHands event ({error})")
            continue
        finally:
            _advance(on_bytes, source.size)
        before = len(trajectory)
        problem = trajectory.feed(event, line=1, source=f"{source.path}:1")
        if problem is not None:
            log.problem(source.path, 1, problem)
        counts[source.path] += len(trajectory) - before
    for source in sources:
        source.calls = counts[source.path]
    if trajectory.duplicates:
        log.skipped["OpenHands event(s) repeating an already counted model response"] += trajectory.duplicates
    yield from trajectory.records()


def _read_other(
    source: SourceFile, log: ImportLog, pricing: Pricing, on_bytes: Callable[[int], None] | None
) -> Iterator[CallRecord]:
    path = source.path
    if source.format == "leanloop":
        yield from _read_leanloop(path, log, pricing)
        _advance(on_bytes, source.size)
    elif source.format == "openhands":
        yield from _read_openhands(source, log, pricing, on_bytes)
    elif source.format == "recording":
        found = Recorded()
        yield from iter_cassette(path, found, pricing=pricing)
        _take(found, path, log)
        _advance(on_bytes, source.size)
    elif source.format == "emulator_log":
        yield from _read_emulator_log(path, log, pricing, on_bytes)
    else:
        yield from iter_sse_file(path, pricing=pricing)
        _advance(on_bytes, source.size)


def _read_emulator_log(
    path: Path, log: ImportLog, pricing: Pricing, on_bytes: Callable[[int], None] | None
) -> Iterator[CallRecord]:
    found = Recorded()
    calls = EmulatorLogImport(path, pricing, found)
    with path.open("rb") as file:
        for item in iter_json_lines(file, on_bytes):
            if isinstance(item, Broken):
                log.problem(path, item.line, item.message, truncated=item.truncated)
                continue
            record = calls.feed(item[1], item[0])
            if record is not None:
                yield record
            _take(found, path, log)


def _take(found: Recorded, path: Path, log: ImportLog) -> None:
    """Move what an importer found besides calls (problems with their line, skips) to the import's log."""
    for line, message in found.problems:
        log.problem(path, line, message)
    log.skipped.update(found.skipped)
    found.problems.clear()
    found.skipped.clear()
