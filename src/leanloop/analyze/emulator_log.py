"""The call log ``leanloop emulator --log FILE`` writes: one JSON line per ``POST /v1/messages`` it answered
(``ServedCall.summary()``: ids, model, status, usage in the API's shape, ``cost_usd``, emulated timings).

Each answer with a usage is a call, priced again from that usage (so an override file prices it as it prices the
rest). An error answer has no usage and bills nothing: it is counted as skipped. The log holds no run identity, but
``number`` restarts at 1 each time the emulator starts (the file is appended to), so each start is one run:
``served`` for the first, ``served#2`` for the next. ``answered_at`` (the wall clock when the call was answered,
within the call's latency of its start) dates a call; a log written before that field existed has undated calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from leanloop.analyze.recordings import Recorded, error_responses
from leanloop.errors import ConfigError
from leanloop.pricing import Pricing
from leanloop.trace import CallRecord
from leanloop.usage import Usage

__all__ = ["EmulatorLogImport", "is_emulator_log_line"]

_FIELDS = frozenset({"number", "request_id", "status", "usage", "cost_usd"})


def is_emulator_log_line(data: Mapping[str, Any]) -> bool:
    """Whether a JSON line is one of ``leanloop emulator --log``'s."""
    return data.keys() >= _FIELDS


@dataclass
class EmulatorLogImport:
    """Reads one log's lines in order (``feed``), telling the emulator's starts apart."""

    path: Path
    pricing: Pricing
    found: Recorded
    _start: int = 0
    _last_number: int = 0

    def feed(self, data: Any, line: int) -> CallRecord | None:
        """The call on a line, or None (a skipped error answer, or a problem noted in ``found``)."""
        if not isinstance(data, Mapping) or not is_emulator_log_line(cast(Mapping[str, Any], data)):
            self.found.problems.append((line, "not a line of leanloop emulator --log"))
            return None
        data = cast(Mapping[str, Any], data)
        number = data["number"]
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            self.found.problems.append((line, f"'number' is not a call number: {number!r}"))
            return None
        if number <= self._last_number or not self._start:
            self._start += 1  # the emulator started again: its numbers restart
        self._last_number = number
        if data["usage"] is None:
            self.found.skip(error_responses(data["status"]))
            return None
        return self._record(data, number, line)

    def _record(self, data: Mapping[str, Any], number: int, line: int) -> CallRecord | None:
        model = data.get("model")
        if not isinstance(model, str) or not model:
            self.found.problems.append((line, "a call without a model"))
            return None
        try:
            usage = Usage.from_api(data["usage"])
        except (ConfigError, TypeError, ValueError) as error:
            self.found.problems.append((line, f"unusable usage: {error}"))
            return None
        started = _seconds(data.get("answered_at"))
        at = datetime.fromtimestamp(started, tz=UTC) if started is not None else None
        notes: dict[str, Any] = {"format": "emulator_log", "number": number}
        if data.get("fault"):
            notes["fault"] = data["fault"]
        return CallRecord(
            model=model,
            usage=usage,
            cost=self.pricing.cost(model, usage, at=at),
            iteration=number,
            run_id=self.path.stem if self._start == 1 else f"{self.path.stem}#{self._start}",
            started_at=started,
            ttft_s=_seconds(data.get("ttft_s")),
            latency_s=_seconds(data.get("duration_s")),
            stop_reason=_text(data.get("stop_reason")),
            message_id=_text(data.get("message_id")),
            request_id=_text(data.get("request_id")),
            source=f"{self.path}:{line}",
            notes=notes,
        )


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
