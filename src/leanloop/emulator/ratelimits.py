"""The ``anthropic-ratelimit-*`` headers (API-FACTS 6.1), from token buckets that refill on emulated time. Pure.

Clients that throttle ahead of time (routers, Claude Code's usage display) read them on every response:
``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``. ``remaining`` is what
the bucket holds after this request (token counts rounded to the nearest thousand, as the API rounds them);
``reset`` is the RFC 3339 time it will be full again; ``tokens-*`` is the most restrictive of input and output.
Input counts ``input_tokens + cache_creation_input_tokens``, not cache reads; output counts what was generated, not
``max_tokens``. The default limits are a plausible high usage tier (4,000 requests, 2,000,000 input and 400,000
output tokens per minute). The emulator reports them and never refuses a request for them: rate-limit errors come
from the fault plan (``rate_limit``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["RateLimits"]

_MINUTE = 60.0


@dataclass
class _Bucket:
    """Holds up to ``limit``, refilling at ``limit`` per minute; ``level`` was its content at time ``at``."""

    limit: int
    level: float
    at: float = 0.0

    def take(self, amount: int, now: float) -> None:
        self.level = self.available(now) - amount
        self.at = max(self.at, now)

    def available(self, now: float) -> float:
        refilled = self.level + max(0.0, now - self.at) * self.limit / _MINUTE
        return max(0.0, min(float(self.limit), refilled))

    def full_in(self, now: float) -> float:
        """Seconds until the bucket is full again."""
        return (self.limit - self.available(now)) * _MINUTE / self.limit


@dataclass
class RateLimits:
    """Per-minute limits and what is left of them; ``take`` a request, then read its ``headers``."""

    requests_per_minute: int = 4_000
    input_tokens_per_minute: int = 2_000_000
    output_tokens_per_minute: int = 400_000
    _buckets: dict[str, _Bucket] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._buckets = {
            "requests": _Bucket(self.requests_per_minute, self.requests_per_minute),
            "input-tokens": _Bucket(self.input_tokens_per_minute, self.input_tokens_per_minute),
            "output-tokens": _Bucket(self.output_tokens_per_minute, self.output_tokens_per_minute),
        }

    def take(self, now: float, *, requests: int = 0, input_tokens: int = 0, output_tokens: int = 0) -> None:
        """Spend from the buckets at emulated time ``now``."""
        for name, amount in (("requests", requests), ("input-tokens", input_tokens), ("output-tokens", output_tokens)):
            if amount:
                self._buckets[name].take(amount, now)

    def headers(self, now: float, wall: float) -> dict[str, str]:
        """The headers at emulated time ``now``; ``wall`` is the real Unix time they are sent (for ``reset``)."""
        values: dict[str, tuple[int, int, float]] = {}
        for name, bucket in self._buckets.items():
            remaining = int(bucket.available(now))
            if name != "requests":
                remaining = round(remaining, -3)
            values[name] = (bucket.limit, remaining, bucket.full_in(now))
        values["tokens"] = min(values["input-tokens"], values["output-tokens"], key=lambda v: v[1] / v[0])
        headers: dict[str, str] = {}
        for name, (limit, remaining, full_in) in values.items():
            prefix = f"anthropic-ratelimit-{name}"
            headers[f"{prefix}-limit"] = str(limit)
            headers[f"{prefix}-remaining"] = str(remaining)
            headers[f"{prefix}-reset"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall + full_in))  # RFC 3339
        return headers
