"""From what a log cost to what a month costs: the observed period, cost per day and per run, a 30-day projection.

The observed rate is the cost over the calendar days from the first call to the last (UTC, both counted, idle days
in between included): a month at that rate is 30 of those days. With ``runs_per_day`` the projection is instead
the mean cost per run times that many runs a day, times 30. A log without timestamps has no period: it can only be
projected with ``runs_per_day``. Pure arithmetic: the costs come from pricing, per request, as everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from leanloop.wording import plural

__all__ = ["DAYS_PER_MONTH", "Period", "Projection"]

DAYS_PER_MONTH = 30
_SHORT = 7  # fewer observed days than this: the projection says it is rough


def _day(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, tz=UTC)


@dataclass
class Period:
    """The span of a set of calls, added one at a time."""

    first_at: float | None = None
    last_at: float | None = None
    calls: int = 0
    runs: int = 0

    def add(self, started_at: float | None) -> None:
        self.calls += 1
        if started_at is None:
            return
        self.first_at = started_at if self.first_at is None else min(self.first_at, started_at)
        self.last_at = started_at if self.last_at is None else max(self.last_at, started_at)

    @property
    def days(self) -> int | None:
        """Calendar days (UTC) from the first call to the last, both counted; None without timestamps."""
        if self.first_at is None or self.last_at is None:
            return None
        return (_day(self.last_at).date() - _day(self.first_at).date()).days + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "first_call_at": _iso(self.first_at),
            "last_call_at": _iso(self.last_at),
            "days": self.days,
            "runs": self.runs,
            "calls": self.calls,
        }


def _iso(moment: float | None) -> str | None:
    return _day(moment).isoformat(timespec="seconds").replace("+00:00", "Z") if moment is not None else None


@dataclass(frozen=True)
class Projection:
    """How a cost observed over ``period`` scales to a day and to a 30-day month."""

    period: Period
    runs_per_day: float | None = None

    @property
    def available(self) -> bool:
        return self.runs_per_day is not None or self.period.days is not None

    def per_run(self, cost: Decimal) -> Decimal | None:
        return cost / self.period.runs if self.period.runs else None

    def per_day(self, cost: Decimal) -> Decimal | None:
        if self.runs_per_day is not None:
            per_run = self.per_run(cost)
            return per_run * Decimal(repr(self.runs_per_day)) if per_run is not None else None
        days = self.period.days
        return cost / days if days else None

    def per_month(self, cost: Decimal) -> Decimal | None:
        per_day = self.per_day(cost)
        return per_day * DAYS_PER_MONTH if per_day is not None else None

    @property
    def method(self) -> str:
        """One line saying how the month was projected (or why it was not)."""
        if self.runs_per_day is not None:
            runs = plural(self.period.runs, "run")
            return f"mean cost per run ({runs} observed) x {self.runs_per_day:g} runs a day x {DAYS_PER_MONTH} days"
        days = self.period.days
        if days is None:
            return "the log has no timestamps: no observed rate (give --runs-per-day to project)"
        rough = "; under a week observed: a rough figure" if days < _SHORT else ""
        observed = plural(days, "calendar day")
        return f"{observed} observed, first to last call, idle days counted: cost / {days:,} x {DAYS_PER_MONTH}{rough}"

    def to_dict(self, cost: Decimal | None) -> dict[str, Any]:
        def usd(value: Decimal | None) -> float | None:
            return float(value) if value is not None else None

        return {
            "period": self.period.to_dict(),
            "runs_per_day": self.runs_per_day,
            "cost_per_run_usd": usd(self.per_run(cost)) if cost is not None else None,
            "cost_per_day_usd": usd(self.per_day(cost)) if cost is not None else None,
            "projected_30_days_usd": usd(self.per_month(cost)) if cost is not None else None,
            "method": self.method,
        }
