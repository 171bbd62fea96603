"""The one record type (``CallRecord``) and the JSONL trace it is written to.

A trace is one JSON object per line. ``{"kind": "call", ...}`` lines are CallRecords; other kinds (``run_start``,
``run_end``, ``tool_output``, ``event``) carry what else a run wants to keep. Each line is flushed as it is
written, so a crash leaves every finished call readable; the reader reports a truncated or broken line with its
number and keeps everything else.

The request fingerprint (one short hash per prefix block) is stored as a delta: ``prefix_kept`` blocks equal to
the previous call of the same run, then the new ones. The trace grows with what is new, not with the history,
plus a full prefix on a run's first call in each writer and every ``TraceWriter.FULL_PREFIX_EVERY`` calls: a
damaged line then costs the calls after it their fingerprints until the next full one, never their usage or cost.

Nothing secret is written, whatever the caller puts in a record (``leanloop.redaction``): the value of any key
that names a credential, the process's Anthropic credentials and the writer's ``secrets`` wherever they appear,
and anything shaped like a key or token become ``[REDACTED]``.
"""

from __future__ import annotations

import copy
import json
import operator
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any, ClassVar, cast

from leanloop.errors import ConfigError
from leanloop.pricing import Cost
from leanloop.redaction import redact, redact_text
from leanloop.tools import ToolOutcome
from leanloop.usage import Usage

__all__ = [
    "BlockPrint",
    "CallRecord",
    "ToolCall",
    "TraceProblem",
    "TraceWriter",
    "iter_trace",
    "read_trace",
    "redact",
]


@dataclass(frozen=True, slots=True)
class BlockPrint:
    """One prefix block of a request: its API path, a short hash of its bytes, and its token count."""

    path: str
    hash: str
    tokens: int


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call of a turn: which tool, how long it ran, whether it failed and whether its result was cut.

    ``arguments`` is the call's input as compact JSON (keys sorted) and ``error`` the error text the model was shown
    when it failed (None when it did not). Both are redacted like every trace line (``leanloop.redaction``) and cut
    to ``MAX_TEXT`` (2,000) characters plus a note saying how many more there were; a trace written before they were
    recorded reads as ``""`` and None.
    """

    name: str
    id: str
    duration_s: float
    is_error: bool = False
    truncated: bool = False
    arguments: str = ""
    error: str | None = None

    MAX_TEXT: ClassVar[int] = 2000

    @classmethod
    def of(cls, outcome: ToolOutcome, secrets: Iterable[str] = ()) -> ToolCall:
        """The record of a finished call: its arguments and error redacted (``secrets``: the client's credentials,
        whatever their shape), then cut, so no part of a credential is left at the cut."""
        use = outcome.use
        secrets = tuple(secrets)
        shown = json.dumps(redact(dict(use.input), secrets), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        arguments = _capped(shown)
        error = None if outcome.error is None else _capped(redact_text(outcome.error, secrets))
        return cls(use.name, use.id, outcome.duration_s, outcome.is_error, outcome.truncated, arguments, error)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _capped(text: str) -> str:
    if len(text) <= ToolCall.MAX_TEXT:
        return text
    return f"{text[: ToolCall.MAX_TEXT]}[... {len(text) - ToolCall.MAX_TEXT:,} more characters]"


def _common_prefix(old: Sequence[BlockPrint], new: Sequence[BlockPrint]) -> int:
    """How many leading BlockPrints ``old`` and ``new`` share. The agent re-uses the objects of unchanged blocks, so
    identity settles most of it at C speed; equal copies after that are compared one by one."""
    same = list(map(operator.is_, old, new))
    kept = same.index(False) if False in same else len(same)
    while kept < len(old) and kept < len(new) and old[kept] == new[kept]:
        kept += 1
    return kept


@dataclass(frozen=True)
class CallRecord:
    """Everything about one model call: what was sent, what it cost, how long it took."""

    model: str
    usage: Usage
    cost: Cost
    iteration: int = 0
    run_id: str = ""
    started_at: float | None = None
    ttft_s: float | None = None
    latency_s: float | None = None
    stop_reason: str | None = None
    prefix: tuple[BlockPrint, ...] = ()
    breakpoints: tuple[tuple[str, str], ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    message_id: str | None = None
    request_id: str | None = None
    predicted: Usage | None = None
    source: str | None = None
    notes: Mapping[str, Any] = field(default_factory=dict[str, Any])

    def with_tool_calls(self, tool_calls: tuple[ToolCall, ...]) -> CallRecord:
        """This record with its turn's tool calls: ``dataclasses.replace`` for that one field, at half its cost (a
        shallow copy; every field is immutable or shared as it is by ``replace``)."""
        record = copy.copy(self)
        object.__setattr__(record, "tool_calls", tool_calls)
        return record

    def to_dict(self, previous_prefix: Sequence[BlockPrint] = ()) -> dict[str, Any]:
        """The JSON line, with the prefix stored as a delta against ``previous_prefix``."""
        kept = _common_prefix(previous_prefix, self.prefix)
        data: dict[str, Any] = {
            "kind": "call",
            "run_id": self.run_id,
            "iteration": self.iteration,
            "model": self.model,
            "started_at": self.started_at,
            "ttft_s": self.ttft_s,
            "latency_s": self.latency_s,
            "stop_reason": self.stop_reason,
            "usage": self.usage.to_dict(),
            "cost": self.cost.to_dict(),
            "prefix_kept": kept,
            "prefix_new": [[b.path, b.hash, b.tokens] for b in self.prefix[kept:]],
            "breakpoints": [list(b) for b in self.breakpoints],
            "tool_calls": [t.to_dict() for t in self.tool_calls],
        }
        optional = {
            "message_id": self.message_id,
            "request_id": self.request_id,
            "predicted": self.predicted.to_dict() if self.predicted else None,
            "source": self.source,
            "notes": dict(self.notes) or None,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], previous_prefix: Sequence[BlockPrint] | None = ()) -> CallRecord:
        """Inverse of ``to_dict``, given the prefix of the previous call of the same run (None: unknown).

        A delta that cannot be resolved (the previous prefix is unknown, or shorter than the line says it keeps)
        gives a record whose ``prefix`` is empty, meaning unknown; everything else on the line is kept.
        """
        kept = int(data.get("prefix_kept", 0))
        new = tuple(BlockPrint(str(p), str(h), int(t)) for p, h, t in data.get("prefix_new", []))
        if kept == 0:
            prefix = new
        elif previous_prefix is None or kept > len(previous_prefix):
            prefix = ()
        else:
            prefix = tuple(previous_prefix[:kept]) + new
        predicted = data.get("predicted")
        return cls(
            model=str(data["model"]),
            usage=Usage.from_dict(data["usage"]),
            cost=Cost.from_dict(data.get("cost") or {}),
            iteration=int(data.get("iteration", 0)),
            run_id=str(data.get("run_id", "")),
            started_at=data.get("started_at"),
            ttft_s=data.get("ttft_s"),
            latency_s=data.get("latency_s"),
            stop_reason=data.get("stop_reason"),
            prefix=prefix,
            breakpoints=tuple((str(p), str(t)) for p, t in data.get("breakpoints", [])),
            tool_calls=_tool_calls(data.get("tool_calls")),
            message_id=data.get("message_id"),
            request_id=data.get("request_id"),
            predicted=Usage.from_dict(predicted) if predicted else None,
            source=data.get("source"),
            notes=data.get("notes") or {},
        )


class TraceWriter:
    """Appends records to a JSONL file, one flushed line each. Use as a context manager or call ``close()``.

    The file's missing parent folders are made: a program that names a file to write wants it written. (The CLI's
    ``--trace`` refuses a missing folder instead, as it does for every file it writes: a folder typed wrong on a
    command line is most often a typo, better named than silently made.)

    The first call of each run a writer writes, and every ``FULL_PREFIX_EVERY``-th after it, carries its whole
    prefix, so one damaged line costs at most that many calls their fingerprints (never their usage or cost). A
    file left with an unfinished last line (a crash mid-write) is continued on a new line.
    """

    FULL_PREFIX_EVERY = 20

    def __init__(self, path: str | Path, *, secrets: Iterable[str] = ()) -> None:
        """``secrets``: literal values to redact besides the process's ``ANTHROPIC_API_KEY`` and
        ``ANTHROPIC_AUTH_TOKEN`` (for example the key a client was configured with)."""
        self.path = Path(path)
        self._secrets = tuple(secrets)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] = self.path.open("a", encoding="utf-8")
            if _ends_mid_line(self.path):
                self._file.write("\n")
        except OSError as error:
            raise ConfigError(f"trace file {self.path}: cannot open for writing ({error.strerror})") from None
        self._last_prefix: dict[str, tuple[BlockPrint, ...]] = {}
        self._since_full: dict[str, int] = {}

    def write_call(self, record: CallRecord) -> None:
        run = record.run_id
        since_full = self._since_full.get(run, self.FULL_PREFIX_EVERY)
        full = since_full >= self.FULL_PREFIX_EVERY
        self._write_line(record.to_dict(() if full else self._last_prefix[run]))
        self._last_prefix[run] = record.prefix
        self._since_full[run] = 1 if full else since_full + 1

    def write_event(self, kind: str, **data: Any) -> None:
        """Any other line: ``run_start``, ``run_end``, ``tool_output``, ``event``."""
        self._write_line({"kind": kind, **data})

    def _write_line(self, data: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(redact(data, self._secrets), ensure_ascii=False, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _ends_mid_line(path: Path) -> bool:
    with path.open("rb") as file:
        if file.seek(0, 2) == 0:
            return False
        file.seek(-1, 2)
        return file.read(1) != b"\n"


@dataclass(frozen=True, slots=True)
class TraceProblem:
    """A line the reader could not (fully) use. ``truncated`` marks an unfinished line (a crash mid-write)."""

    path: str
    line: int
    message: str
    truncated: bool = False

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def _tool_calls(data: Any) -> tuple[ToolCall, ...]:
    items = cast(list[Mapping[str, Any]], data or [])
    return tuple(
        ToolCall(
            name=str(t["name"]),
            id=str(t["id"]),
            duration_s=float(t["duration_s"]),
            is_error=bool(t.get("is_error", False)),
            truncated=bool(t.get("truncated", False)),
            arguments=str(t.get("arguments") or ""),
            error=None if t.get("error") is None else str(t["error"]),
        )
        for t in items
    )


def iter_trace(path: str | Path) -> Iterator[CallRecord | dict[str, Any] | TraceProblem]:
    """Stream a trace: CallRecords, other lines as dicts, and a TraceProblem for each unusable line.

    A ``tools`` line (the tool calls a call's turn asked for, written once they finished) is merged into the
    CallRecord it belongs to. A call whose prefix is a delta against a line that could not be read is kept with
    its usage and cost, and an empty (unknown) prefix until its run's next full one; one problem says so.
    """
    path = Path(path)
    prefixes = _RunPrefixes()
    pending: CallRecord | None = None
    with path.open(encoding="utf-8", errors="replace") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                data = _parse_line(line)
            except ValueError as error:
                prefixes.lose(_run_named_in(line))
                yield _problem(path, number, line, error)
                continue
            kind = data.get("kind")
            if (
                kind == "tools"
                and pending is not None
                and (data.get("run_id"), data.get("iteration"))
                == (
                    pending.run_id,
                    pending.iteration,
                )
            ):
                pending = replace(pending, tool_calls=_tool_calls(data.get("tool_calls")))
                continue
            if pending is not None:
                yield pending
                pending = None
            if kind != "call":
                yield data
                continue
            run = str(data.get("run_id", ""))
            try:
                record = CallRecord.from_dict(data, prefixes.get(run))
            except (ValueError, KeyError, TypeError) as error:
                prefixes.lose(run)
                yield TraceProblem(str(path), number, f"unreadable: {error}")
                continue
            unresolved = bool(data.get("prefix_kept")) and not record.prefix
            if unresolved and prefixes.first_loss_seen(run):
                yield TraceProblem(
                    str(path),
                    number,
                    f"run {run!r}: this call's prefix fingerprint extends a call that could not be read, so it and "
                    "the run's next calls have an unknown prefix until the next full one; their usage and cost are "
                    "kept",
                )
            prefixes.set(run, None if unresolved else record.prefix)
            pending = record
    if pending is not None:
        yield pending


class _RunPrefixes:
    """The last known prefix of each run while reading; None once a line it depends on was lost."""

    def __init__(self) -> None:
        self._prefix: dict[str, tuple[BlockPrint, ...] | None] = {}
        self._reported: set[str] = set()

    def get(self, run: str) -> tuple[BlockPrint, ...] | None:
        return self._prefix.get(run, ())

    def set(self, run: str, prefix: tuple[BlockPrint, ...] | None) -> None:
        self._prefix[run] = prefix
        if prefix is not None:
            self._reported.discard(run)

    def lose(self, run: str | None) -> None:
        """A line of ``run`` (None: of an unknown run, so of any) could not be read."""
        for name in self._prefix if run is None else [run]:
            self._prefix[name] = None
            self._reported.discard(name)

    def first_loss_seen(self, run: str) -> bool:
        """True the first time a call of ``run`` is found without its prefix since the run lost it."""
        first = run not in self._reported
        self._reported.add(run)
        return first


def _parse_line(line: str) -> dict[str, Any]:
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return cast(dict[str, Any], data)


_RUN_ID = re.compile(r'"run_id":\s*("(?:[^"\\]|\\.)*")')


def _run_named_in(line: str) -> str | None:
    """The run id a broken line still shows, if any (call lines write it near their start)."""
    match = _RUN_ID.search(line)
    if match is None:
        return None
    try:
        return str(json.loads(match.group(1)))
    except ValueError:
        return None


def _problem(path: Path, number: int, line: str, error: ValueError) -> TraceProblem:
    body = line.rstrip("\n")
    cut = isinstance(error, json.JSONDecodeError) and (
        error.pos >= len(body.rstrip()) or error.msg.startswith("Unterminated string")
    )
    if not line.endswith("\n"):
        return TraceProblem(str(path), number, "truncated last line (the writer stopped mid-line)", truncated=True)
    if cut:
        return TraceProblem(
            str(path), number, "truncated line (the writer stopped mid-line; a later writer went on)", truncated=True
        )
    return TraceProblem(str(path), number, f"unreadable: {error}")


@dataclass
class TraceFile:
    records: list[CallRecord] = field(default_factory=list[CallRecord])
    events: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    problems: list[TraceProblem] = field(default_factory=list[TraceProblem])


def read_trace(path: str | Path) -> TraceFile:
    """Read a whole trace. Broken lines become ``problems``; everything readable is kept."""
    result = TraceFile()
    for item in iter_trace(path):
        if isinstance(item, CallRecord):
            result.records.append(item)
        elif isinstance(item, TraceProblem):
            result.problems.append(item)
        else:
            result.events.append(item)
    return result
