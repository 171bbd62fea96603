"""Hard limits: budgets checked *before* the call that would cross them, and a guard against repeated failures.

``Budget`` is the value you write; ``Spend`` counts a run (or several runs sharing one cap) against it. Before each
call the agent hands ``Spend.check_before_call`` the worst case of that call: its prompt priced with the predicted
cache read/write split, plus ``max_tokens`` of output. If that could cross a cap, ``max_tokens`` is lowered to what
is left; if not even a minimal answer fits, the answer is a ``Halt`` and the call is never sent. The worst case is
reserved until the call is recorded, so concurrent runs sharing a ``Spend`` cannot overshoot together.

The guarantee holds against the predicted cache behaviour. ``Budget(strict=True)`` assumes every prompt token is
written instead (nothing read), for a hard ceiling even if the API evicts the cache early.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from leanloop.errors import ConfigError
from leanloop.pricing import Cost
from leanloop.usage import Usage

__all__ = ["Budget", "CallEstimate", "Go", "Halt", "LoopGuard", "Spend"]


@dataclass(frozen=True)
class Budget:
    """Caps for one run. None means no cap. ``max_input_tokens`` counts all input, cached included.

    ``max_iterations`` (model calls) is capped at 50 unless you say otherwise (None lifts it): a loop with no cap at
    all is the runaway this library exists to prevent. ``min_output_tokens`` is the smallest answer worth paying for:
    below it the run stops instead of calling.
    """

    usd: float | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_iterations: int | None = 50
    max_tool_calls: int | None = None
    max_wall_seconds: float | None = None
    min_output_tokens: int = 64
    strict: bool = False

    def __post_init__(self) -> None:
        for name in ("usd", "max_wall_seconds"):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not (number and math.isfinite(value) and value > 0):
                raise ConfigError(f"Budget({name}={value!r}): must be a positive number or None")
        for name in ("max_input_tokens", "max_output_tokens", "max_iterations", "max_tool_calls"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"Budget({name}={value!r}): must be a whole number of at least 1, or None")
        minimum = getattr(self, "min_output_tokens")  # noqa: B009 - typed as int, but callers may pass anything
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
            raise ConfigError(f"Budget(min_output_tokens={minimum!r}): must be a whole number of at least 1")


@dataclass(frozen=True, slots=True)
class CallEstimate:
    """The worst case of the next call, as the agent predicts it."""

    prompt_tokens: int
    prompt_usd: Decimal
    prompt_usd_if_missed: Decimal
    output_usd_per_token: Decimal
    max_tokens: int


@dataclass(frozen=True, slots=True)
class Go:
    """Send the call with this ``max_tokens``. ``lowered_by`` names the cap that lowered it, if any."""

    max_tokens: int
    reserved_usd: Decimal
    lowered_by: str | None = None


@dataclass(frozen=True, slots=True)
class Halt:
    """Do not send the call. ``cap`` is the Budget field that stops it."""

    cap: str
    reason: str


class Spend:
    """What a run has used, against its ``Budget``. Share one ``Spend`` between runs to cap them together."""

    def __init__(self, budget: Budget | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget or Budget()
        self.usage = Usage()
        self.cost = Cost()
        self.iterations = 0
        self.tool_calls = 0
        self._clock = clock
        self._started = clock()
        self._reserved = Decimal(0)

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._started

    def _common_halt(self) -> Halt | None:
        b = self.budget
        if b.max_iterations is not None and self.iterations >= b.max_iterations:
            return Halt("max_iterations", f"reached max_iterations={b.max_iterations}")
        if b.max_wall_seconds is not None and self.elapsed_s >= b.max_wall_seconds:
            return Halt("max_wall_seconds", f"ran {self.elapsed_s:.1f} s of max_wall_seconds={b.max_wall_seconds:g}")
        return None

    def check_before_call(self, estimate: CallEstimate) -> Go | Halt:
        """Decide the next call and reserve its worst case. Pure arithmetic; no I/O."""
        halt = self._common_halt()
        if halt is not None:
            return halt
        b = self.budget
        if b.max_input_tokens is not None and self.usage.prompt_tokens + estimate.prompt_tokens > b.max_input_tokens:
            return Halt(
                "max_input_tokens",
                f"the next prompt ({estimate.prompt_tokens:,} tokens) would bring input to "
                f"{self.usage.prompt_tokens + estimate.prompt_tokens:,} > max_input_tokens={b.max_input_tokens:,}",
            )
        room, lowered_by = estimate.max_tokens, None
        if b.max_output_tokens is not None and b.max_output_tokens - self.usage.output_tokens < room:
            room, lowered_by = max(0, b.max_output_tokens - self.usage.output_tokens), "max_output_tokens"
        prompt_usd = estimate.prompt_usd_if_missed if b.strict else estimate.prompt_usd
        if b.usd is not None:
            left = Decimal(str(b.usd)) - self.cost.total - self._reserved - prompt_usd
            affordable = math.floor(left / estimate.output_usd_per_token) if estimate.output_usd_per_token else room
            if affordable < room:
                room, lowered_by = max(0, affordable), "usd"
        if room < min(b.min_output_tokens, estimate.max_tokens):
            cap = lowered_by or "usd"
            return Halt(cap, self._halt_reason(cap, estimate, prompt_usd))
        reserved = prompt_usd + room * estimate.output_usd_per_token
        self._reserved += reserved
        return Go(room, reserved, lowered_by)

    def _halt_reason(self, cap: str, estimate: CallEstimate, prompt_usd: Decimal) -> str:
        if cap == "max_output_tokens":
            return f"{self.usage.output_tokens:,} of max_output_tokens={self.budget.max_output_tokens:,} used"
        held = f" and ${self._reserved:.4f} held by calls in flight sharing this budget" if self._reserved else ""
        return (
            f"spent ${self.cost.total:.4f}{held} of usd={self.budget.usd:g}; the next call's prompt alone would cost "
            f"${prompt_usd:.4f} ({estimate.prompt_tokens:,} tokens), leaving no room for an answer of "
            f"{self.budget.min_output_tokens} tokens"
        )

    def record_call(self, go: Go | None, usage: Usage, cost: Cost) -> None:
        """Add a finished call and release its reservation (``go`` is None for calls made outside the check)."""
        if go is not None:
            self._reserved -= go.reserved_usd
        self.usage += usage
        self.cost += cost
        self.iterations += 1

    def release(self, go: Go) -> None:
        """Release the reservation of a call that failed before any usage was reported."""
        self._reserved -= go.reserved_usd

    def check_tool_calls(self, count: int) -> Halt | None:
        halt = self._common_halt() if self.budget.max_wall_seconds is not None else None
        if halt is not None and halt.cap == "max_wall_seconds":
            return halt
        cap = self.budget.max_tool_calls
        if cap is not None and self.tool_calls + count > cap:
            return Halt("max_tool_calls", f"{self.tool_calls} + {count} tool calls would exceed max_tool_calls={cap}")
        return None

    def record_tool_calls(self, count: int) -> None:
        self.tool_calls += count

    def remaining_wall_s(self) -> float | None:
        cap = self.budget.max_wall_seconds
        return None if cap is None else max(0.0, cap - self.elapsed_s)


def _call_key(name: str, arguments: Mapping[str, Any]) -> str:
    return name + json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)


@dataclass
class _Failures:
    error: str
    count: int = 0
    warned: bool = False


@dataclass
class LoopGuard:
    """Stops "the same failing call again and again".

    The same tool with the same arguments failing with the same error ``repeats`` times: ``observe`` returns a
    notice to append to that result (the model is told once). If the model asks for that call again,
    ``blocked`` names it and the run stops without running it.
    """

    repeats: int = 3
    _failures: dict[str, _Failures] = field(default_factory=dict[str, _Failures])

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ConfigError(f"LoopGuard(repeats={self.repeats!r}): must be at least 1")

    def observe(self, name: str, arguments: Mapping[str, Any], error: str | None) -> str | None:
        """Record a finished call. Returns the notice for the model when this call has now failed too often."""
        key = _call_key(name, arguments)
        if error is None:
            self._failures.pop(key, None)
            return None
        record = self._failures.get(key)
        if record is None or record.error != error:
            record = self._failures[key] = _Failures(error)
        record.count += 1
        if record.count >= self.repeats and not record.warned:
            record.warned = True
            return (
                f"[leanloop: this exact call has now failed {record.count} times with the same error. Repeating it "
                "will not help: change approach, or finish with what you have.]"
            )
        return None

    def blocked(self, name: str, arguments: Mapping[str, Any]) -> str | None:
        """If this call was already flagged as failing, a description of it (the run must stop)."""
        record = self._failures.get(_call_key(name, arguments))
        if record is None or not record.warned:
            return None
        shown = json.dumps(arguments, sort_keys=True, default=str)
        return f"{name}({shown}) failed {record.count} times with {record.error!r} and the model asked for it again"
