"""Which request fails, and how: rules ("the 3rd request", "requests whose last message contains X") and a seeded
random rate. The decision is made here; the app only carries it out.

Kinds of fault, as the client sees them:

=====================  ==========================================================================================
``rate_limit``         429 ``rate_limit_error`` with ``retry-after`` (seconds, may be fractional; None sends no
                       header, like the monthly spend cap). The SDK retries it.
``overloaded``         529 ``overloaded_error`` before the response. The SDK retries it.
``server_error``       500 ``api_error``. The SDK retries it.
``overloaded_midstream`` HTTP 200, then an SSE ``error`` event (``overloaded_error``) after ``after_events`` events
                       (at most all but ``message_stop``). The SDK raises it while iterating and does not retry. A
                       non-streaming request gets a 529.
``disconnect``         the connection closes mid-response: after ``after_events`` SSE events, or half-way through a
                       non-streaming body. The client sees a protocol error (the SDK retries the non-streaming case).
``slow_first_byte``    the response starts ``delay`` real seconds late (not scaled: it is for client timeouts).
``billing``            402 ``billing_error`` (credit balance too low). Not retried.
``permission``         403 ``permission_error``. Not retried.
``request_timeout``    408 ``timeout_error``. The SDK retries it.
``conflict``           409 ``conflict_error``. The SDK retries it.
``gateway_timeout``    504 ``timeout_error`` (the API suggests streaming). The SDK retries it.
=====================  ==========================================================================================

Requests are numbered from 1 in arrival order, counting every ``POST /v1/messages``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from leanloop.emulator.policies import block_text, content_blocks, messages_of
from leanloop.errors import ConfigError

__all__ = ["Fault", "FaultKind", "FaultRule", "Faults"]

FaultKind = Literal[
    "rate_limit",
    "overloaded",
    "server_error",
    "overloaded_midstream",
    "disconnect",
    "slow_first_byte",
    "billing",
    "permission",
    "request_timeout",
    "conflict",
    "gateway_timeout",
]
_KINDS: tuple[str, ...] = get_args(FaultKind)
_BEFORE_RESPONSE = {
    "rate_limit": (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
    "billing": (402, "billing_error", "Your credit balance is too low to access the Anthropic API."),
    "permission": (403, "permission_error", "Your API key does not have permission to use the specified resource."),
    "request_timeout": (408, "timeout_error", "Request timed out"),
    "conflict": (409, "conflict_error", "Conflict: the request could not be completed, retry it"),
    "gateway_timeout": (504, "timeout_error", "Request timed out. Consider streaming for long requests."),
}
_RANDOM_KINDS: tuple[FaultKind, ...] = (
    "rate_limit",
    "overloaded",
    "server_error",
    "overloaded_midstream",
    "disconnect",
)


@dataclass(frozen=True, slots=True)
class Fault:
    """One failure to inject (see the module docstring for each kind)."""

    kind: FaultKind
    retry_after: float | None = 1.0
    delay: float = 1.0
    after_events: int = 3

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ConfigError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(_KINDS)}")
        if self.after_events < 0:
            raise ConfigError(f"after_events must be a whole number of at least 0, got {self.after_events}")

    @property
    def before_response(self) -> bool:
        """Whether the fault replaces the whole response with an HTTP error."""
        return self.kind in _BEFORE_RESPONSE

    @property
    def first_byte_delay(self) -> float:
        """Real seconds the response starts late."""
        return self.delay if self.kind == "slow_first_byte" else 0.0

    @property
    def stream_cut(self) -> int | None:
        """How many SSE events go out before a mid-stream fault strikes (None: it does not cut the stream)."""
        return self.after_events if self.kind in ("overloaded_midstream", "disconnect") else None

    def http_error(self, stream: bool) -> tuple[int, str, str] | None:
        """(status, error type, message) when this fault answers with an HTTP error instead of a response."""
        if self.kind == "overloaded_midstream" and not stream:
            return _BEFORE_RESPONSE["overloaded"]
        return _BEFORE_RESPONSE.get(self.kind)


@dataclass(frozen=True, slots=True)
class FaultRule:
    """A fault for the requests that match every given condition; a rule without conditions matches all.

    ``nth``: request numbers (1-based). ``last_message_contains``: text in the last message (its text blocks and
    tool results). ``model``: the requested model. ``times``: fire at most this many times.
    """

    fault: Fault
    nth: frozenset[int] = frozenset()
    last_message_contains: str | None = None
    model: str | None = None
    times: int | None = None

    def matches(self, number: int, body: Mapping[str, Any]) -> bool:
        if self.nth and number not in self.nth:
            return False
        if self.model is not None and body.get("model") != self.model:
            return False
        if self.last_message_contains is not None:
            messages = messages_of(body)
            last: Mapping[str, Any] = messages[-1] if messages else {}
            text = "\n".join(block_text(b) for b in content_blocks(last))
            if self.last_message_contains not in text:
                return False
        return True


@dataclass
class Faults:
    """The fault plan of one emulator: rules first (in order), then a random fault with probability ``rate``."""

    rules: Sequence[FaultRule] = ()
    rate: float = 0.0
    kinds: Sequence[FaultKind] = _RANDOM_KINDS
    seed: int = 0
    _fired: dict[int, int] = field(default_factory=dict[int, int], init=False, repr=False)
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ConfigError(f"fault rate must be between 0 and 1, got {self.rate}")
        self._random = random.Random(self.seed)

    def decide(self, number: int, body: Mapping[str, Any]) -> Fault | None:
        """The fault for request ``number`` with ``body``, or None. Counts rule firings (``times``)."""
        for index, rule in enumerate(self.rules):
            fired = self._fired.get(index, 0)
            if rule.times is not None and fired >= rule.times:
                continue
            if rule.matches(number, body):
                self._fired[index] = fired + 1
                return rule.fault
        if self.rate and self._random.random() < self.rate:
            return Fault(self._random.choice(list(self.kinds)), retry_after=1.0)
        return None

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Faults:
        """From a scenario file's ``faults:`` section: a list of rules, or ``{rules, rate, kinds, seed}``.

        A rule is ``{kind, nth, last_message_contains, model, times, retry_after, delay, after_events}``; each field is
        checked (a ``ConfigError`` names the rule and the field).
        """
        if isinstance(config, Sequence):
            return cls(rules=[_rule(i, r) for i, r in enumerate(config)])
        kinds = tuple(config.get("kinds") or _RANDOM_KINDS)
        for kind in kinds:
            Fault(kind)  # validates the name
        rules = cast(Sequence[Mapping[str, Any]], config.get("rules") or [])
        return cls(
            rules=[_rule(i, r) for i, r in enumerate(rules)],
            rate=float(config.get("rate", 0.0)),
            kinds=kinds,
            seed=int(config.get("seed", 0)),
        )


_RULE_KEYS = {"kind", "nth", "last_message_contains", "model", "times", "retry_after", "delay", "after_events"}


def _rule(index: int, data: Any) -> FaultRule:
    where = f"fault rule {index + 1}"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    data = cast(Mapping[str, Any], data)
    unknown = set(data) - _RULE_KEYS
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; known: {sorted(_RULE_KEYS)}")
    if "kind" not in data:
        raise ConfigError(f"{where} needs a 'kind': {dict(data)}")
    try:
        return FaultRule(
            Fault(
                kind=data["kind"],
                retry_after=_seconds(data, "retry_after", 1.0, optional=True),
                delay=cast(float, _seconds(data, "delay", 1.0)),
                after_events=_count(data, "after_events", 3, least=0),
            ),
            _request_numbers(data.get("nth", ())),
            _text(data, "last_message_contains"),
            _text(data, "model"),
            _count(data, "times", None, least=1),
        )
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def described(value: Any) -> str:
    """A wrong value as an error message names it: its type, and the value itself when it is short."""
    kind = type(value).__name__
    return f"{kind} {value!r}" if isinstance(value, str | int | float) and len(repr(value)) <= 40 else kind


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _request_numbers(nth: Any) -> frozenset[int]:
    numbers = [nth] if _whole(nth) else nth
    if not isinstance(numbers, list | tuple) or not all(_whole(n) for n in cast(Sequence[Any], numbers)):
        raise ConfigError(f"nth must be a request number or a list of them, got {described(nth)}")
    numbers = cast(Sequence[int], numbers)
    if any(n < 1 for n in numbers):
        raise ConfigError(f"nth: request numbers start at 1, got {min(numbers)}")
    return frozenset(numbers)


def _count(data: Mapping[str, Any], key: str, default: int | None, *, least: int) -> Any:
    value = data.get(key, default)
    if value is not None and (not _whole(value) or value < least):
        raise ConfigError(f"{key} must be a whole number of at least {least}, got {described(value)}")
    return value


def _seconds(data: Mapping[str, Any], key: str, default: float, *, optional: bool = False) -> float | None:
    value = data.get(key, default)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        expected = "a number of seconds or null" if optional else "a number of seconds"
        raise ConfigError(f"{key} must be {expected}, got {described(value)}")
    return float(value)


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {described(value)}")
    return value
