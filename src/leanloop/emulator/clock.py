"""Emulated time: what the cache's TTLs and the latency model are measured on.

The emulator never reads the wall clock directly. It asks a ``Clock`` for "now" in emulated seconds:

- ``ScaledClock(time_scale)`` (the default) runs at ``1 / time_scale`` of real time, so with ``time_scale=0.01``
  a 5-minute TTL passes in 3 real seconds. With ``time_scale=0`` it stands still and emulated time moves only by
  the modeled durations of the responses (see ``Emulator.now``), which makes every run reproducible.
- ``ManualClock`` moves only when a test calls ``advance``: the way to step past a 5-minute TTL without waiting.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "ScaledClock"]


@runtime_checkable
class Clock(Protocol):
    """Anything with ``now() -> float`` in emulated seconds (monotonic, any origin)."""

    def now(self) -> float: ...


class ScaledClock:
    """Real monotonic time divided by ``time_scale``, starting at 0; frozen at 0 when ``time_scale`` is 0."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale < 0:
            raise ValueError(f"time_scale must be >= 0, got {time_scale}")
        self.time_scale = time_scale
        self._origin = time.monotonic()

    def now(self) -> float:
        if self.time_scale == 0:
            return 0.0
        return (time.monotonic() - self._origin) / self.time_scale


class ManualClock:
    """A clock that tests move by hand.

    >>> clock = ManualClock()
    >>> clock.advance(301)
    >>> clock.now()
    301.0
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock does not run backwards (advance by {seconds})")
        self._now += seconds

    def set(self, now: float) -> None:
        if now < self._now:
            raise ValueError(f"a clock does not run backwards ({self._now} -> {now})")
        self._now = float(now)
