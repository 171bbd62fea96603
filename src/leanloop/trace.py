"""The one record type (``CallRecord``) and the JSONL trace it is written to.

A trace is one JSON object per line. ``{"kind": "call", ...}`` lines are CallRecords; other kinds (``run_start``,
``run_end``, ``tool_output``, ``event``) carry what else a run wants to keep. Each line is flushed as it is
written, so a crash leaves every finished call readable; the reader reports a truncated or broken line with its
number and keeps everything else.

The request fingerprint (one short hash per prefix block) is stored as a delta: ``prefix_kept`` blocks equal to
the previous call of the same run, then the new ones. The trace grows with what is new, not with the history.

Nothing secret is written: keys that name credentials are dropped and strings that look like API keys are
replaced by ``[REDACTED]``, whatever the caller puts in a record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, cast

from leanloop.errors import ConfigError
from leanloop.pricing import Cost
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

_SECRET_VALUE = re.compile(
    r"sk-ant-[A-Za-z0-9_\-]{8,}"  # Anthropic
    r"|\bsk-[A-Za-z0-9_\-]{32,}"  # OpenAI-style
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bgh[pousr]_[A-Za-z0-9]{36,}"  # GitHub tokens
    r"|\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]{16,}"
)
_SECRET_KEYS = frozenset({"api_key", "x-api-key", "authorization", "auth_token", "anthropic_api_key", "headers"})


def redact(value: Any) -> Any:
    """A copy of ``value`` with credential-named keys dropped and API-key-looking strings replaced."""
    if isinstance(value, str):
        return _SECRET_VALUE.sub("[REDACTED]", value)
    if isinstance(value, Mapping):
        items = cast(Mapping[Any, Any], value).items()
        return {k: redact(v) for k, v in items if not (isinstance(k, str) and k.lower() in _SECRET_KEYS)}
    if isinstance(value, list | tuple):
        return [redact(v) for v in cast(Sequence[Any], value)]
    return value


@dataclass(frozen=True, slots=True)
class BlockPrint:
    """One prefix block of a request: its API path, a short hash of its bytes, and its token count."""

    path: str
    hash: str
    tokens: int


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    id: str
    duration_s: float
    is_error: bool = False
    truncated: bool = False


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

    def to_dict(self, previous_prefix: Sequence[BlockPrint] = ()) -> dict[str, Any]:
        """The JSON line, with the prefix stored as a delta against ``previous_prefix``."""
        kept = 0
        for old, new in zip(previous_prefix, self.prefix, strict=False):
            if old != new:
                break
            kept += 1
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
            "tool_calls": [
                {
                    "name": t.name,
                    "id": t.id,
                    "duration_s": t.duration_s,
                    "is_error": t.is_error,
                    "truncated": t.truncated,
                }
                for t in self.tool_calls
            ],
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
    def from_dict(cls, data: Mapping[str, Any], previous_prefix: Sequence[BlockPrint] = ()) -> CallRecord:
        kept = int(data.get("prefix_kept", 0))
        if kept > len(previous_prefix):
            raise ValueError(f"prefix_kept={kept} but the previous call of this run had {len(previous_prefix)} blocks")
        prefix = tuple(previous_prefix[:kept]) + tuple(
            BlockPrint(str(p), str(h), int(t)) for p, h, t in data.get("prefix_new", [])
        )
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
    """Appends records to a JSONL file, one flushed line each. Use as a context manager or call ``close()``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] = self.path.open("a", encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"trace file {self.path}: cannot open for writing ({error.strerror})") from None
        self._last_prefix: dict[str, tuple[BlockPrint, ...]] = {}

    def write_call(self, record: CallRecord) -> None:
        self._write_line(record.to_dict(self._last_prefix.get(record.run_id, ())))
        self._last_prefix[record.run_id] = record.prefix

    def write_event(self, kind: str, **data: Any) -> None:
        """Any other line: ``run_start``, ``run_end``, ``tool_output``, ``event``."""
        self._write_line({"kind": kind, **data})

    def _write_line(self, data: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(redact(data), ensure_ascii=False, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class TraceProblem:
    """A line the reader could not use. ``truncated`` marks an unfinished last line (a crash mid-write)."""

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
        )
        for t in items
    )


def iter_trace(path: str | Path) -> Iterator[CallRecord | dict[str, Any] | TraceProblem]:
    """Stream a trace: CallRecords, other lines as dicts, and a TraceProblem for each unusable line.

    A ``tools`` line (the tool calls a call's turn asked for, written once they finished) is merged into the
    CallRecord it belongs to.
    """
    path = Path(path)
    last_prefix: dict[str, tuple[BlockPrint, ...]] = {}
    pending: CallRecord | None = None
    with path.open(encoding="utf-8", errors="replace") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            unfinished = not line.endswith("\n")
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                data = cast(dict[str, Any], data)
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
                record = (
                    CallRecord.from_dict(data, last_prefix.get(str(data.get("run_id", "")), ()))
                    if kind == "call"
                    else None
                )
            except (ValueError, KeyError, TypeError) as error:
                reason = "truncated last line (the writer stopped mid-line)" if unfinished else f"unreadable: {error}"
                yield TraceProblem(str(path), number, reason, truncated=unfinished)
                continue
            if pending is not None:
                yield pending
                pending = None
            if record is None:
                yield data
                continue
            last_prefix[record.run_id] = record.prefix
            pending = record
    if pending is not None:
        yield pending


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
