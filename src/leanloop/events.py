"""What a run yields as it goes (``Agent.stream``'s events) and what it returns (``RunResult``, its ``Stop`` and the
``RunState`` that resumes it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from leanloop.errors import BudgetExceeded, RunError
from leanloop.explain import CacheMiss
from leanloop.history import Cut
from leanloop.limits import LoopGuard
from leanloop.pricing import Cost
from leanloop.tools import ToolOutcome, ToolUse
from leanloop.trace import CallRecord
from leanloop.usage import Usage
from leanloop.verify import SentCall

__all__ = [
    "CacheMissed",
    "CallFinished",
    "Compacted",
    "Event",
    "Finished",
    "Notice",
    "RunResult",
    "RunState",
    "Stop",
    "StopReason",
    "TextDelta",
    "ToolFinished",
    "ToolStarted",
    "TurnDiscarded",
]

StopReason = Literal["end_turn", "budget", "max_iterations", "loop_guard", "refused", "error", "cancelled"]


@dataclass(frozen=True, slots=True)
class Stop:
    """Why a run ended: ``reason`` is one of StopReason; ``detail`` says it for a human; ``cap`` names the Budget
    field that stopped it (``usd``, ``max_iterations``, ``max_wall_seconds``, ...) when a limit did."""

    reason: StopReason
    detail: str
    cap: str | None = None

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True)
class RunState:
    """What ``Agent.run(resume=state)`` needs to continue a stopped run. Resuming never changes it (resume it twice
    to branch). ``finished`` is True when the model had given its answer: resuming then needs a new task. The run
    resumes on the model the conversation was on (where its cache is) and with the context windows it learned."""

    run_id: str
    messages: tuple[Mapping[str, Any], ...]
    iterations: int
    guard: LoopGuard | None
    finished: bool = False
    last_call: SentCall | None = field(default=None, repr=False, compare=False)  # for cache verification
    token_scale: float | None = None  # how the API's token counts compared with the estimates, as calibrated
    token_margin: float | None = None  # the budget's margin on content it estimates: 1.3, or more if the API showed it
    model: str | None = None  # the model a route hook moved the conversation to (None: the agent's own)
    windows: Mapping[str, int] = field(default_factory=dict[str, int])  # context windows the API reported, by model


@dataclass(frozen=True)
class RunResult:
    """The outcome of a run: the answer, why it stopped, the transcript, every call, and what it all cost."""

    answer: str
    stop: Stop
    messages: list[Mapping[str, Any]]
    calls: list[CallRecord]
    usage: Usage
    cost: Cost
    tool_calls: int
    wall_s: float
    state: RunState
    notices: list[str] = field(default_factory=list[str])
    cache_misses: list[CacheMiss] = field(default_factory=list[CacheMiss])

    @property
    def ok(self) -> bool:
        return self.stop.reason == "end_turn"

    @property
    def iterations(self) -> int:
        """Calls to the model in the conversation (side calls are in ``calls`` and ``cost``, not counted here)."""
        return sum(1 for c in self.calls if "side_call" not in c.notes)

    @property
    def cache_hit_rate(self) -> float:
        """Share of all input tokens that were read from the cache."""
        total = self.usage.prompt_tokens
        return self.usage.cache_read_tokens / total if total else 0.0

    def raise_for_stop(self) -> RunResult:
        """This result if the model finished its answer; else raise what stopped the run, with this result as the
        exception's ``partial``: ``BudgetExceeded`` (with its ``cap``) for a budget or max_iterations stop,
        ``RunError`` for the others (loop_guard, refused, error)."""
        if self.ok:
            return self
        message = f"the run stopped: {self.stop}"
        if self.stop.reason in ("budget", "max_iterations"):
            raise BudgetExceeded(message, cap=self.stop.cap or self.stop.reason, partial=self)
        raise RunError(message, partial=self)


# ---------------------------------------------------------------------------------------------------------------
# Events of ``Agent.stream``


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Text the model is writing, as it arrives."""

    text: str
    iteration: int


@dataclass(frozen=True, slots=True)
class TurnDiscarded:
    """The turn of ``iteration`` was cut by max_tokens and is asked again with more room: the ``text`` it streamed
    is not part of the answer (a UI should take it back). Its cost stays in the ledger."""

    iteration: int
    text: str


@dataclass(frozen=True, slots=True)
class ToolStarted:
    use: ToolUse
    iteration: int


@dataclass(frozen=True, slots=True)
class ToolFinished:
    """One tool call ended (sent as each one does; the transcript keeps tool_use order)."""

    outcome: ToolOutcome
    iteration: int


@dataclass(frozen=True, slots=True)
class CallFinished:
    """A model call ended; its ledger line."""

    record: CallRecord


@dataclass(frozen=True, slots=True)
class CacheMissed:
    """A call wrote (or sent uncached) what it should have read; ``miss.reason`` says why."""

    iteration: int
    miss: CacheMiss


@dataclass(frozen=True, slots=True)
class Notice:
    """Something worth a warning: volatile content in the prefix, a prompt below the cacheable minimum, a
    compaction, a model switch made or refused, a side call that failed."""

    message: str


@dataclass(frozen=True, slots=True)
class Compacted:
    """The history was compacted before ``iteration``'s call: it neared the context window, or the API said it
    crossed it (``forced``). ``cut`` says what went and what the cache pays; ``summarized_by`` names the model that
    summarised the dropped turns (None: a note stands for them). ``message`` is the line also sent as a Notice."""

    iteration: int
    cut: Cut
    forced: bool
    summarized_by: str | None
    message: str


@dataclass(frozen=True, slots=True)
class Finished:
    result: RunResult


Event = (
    TextDelta | TurnDiscarded | ToolStarted | ToolFinished | CallFinished | CacheMissed | Notice | Compacted | Finished
)
