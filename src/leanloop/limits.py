"""Hard limits: budgets checked *before* the call that would cross them, and a guard against repeated failures.

``Budget`` is the value you write; ``Spend`` counts a run (or several runs sharing one cap) against it. Before each
call the agent hands ``Spend.check_before_call`` the worst case of that call: the most tokens its prompt may have
(``most_prompt_tokens``: what the previous call of the conversation sent is known from that call's usage, only
what is new since is estimated, with a margin), each priced as if the cache missed (at the write rate of the
request's longest breakpoint TTL; at the input rate when it has no breakpoint), plus ``max_tokens`` of output.
If that could cross a cap, ``max_tokens`` is lowered to what is left; if not even a minimal answer fits, the
answer is a ``Halt`` and the call is never sent. The worst case is reserved
until the call settles, so concurrent runs sharing a ``Spend`` cannot overshoot together; a run whose call only
fits once other runs' calls in flight settle gets ``Wait``, and the agent waits for them instead of stopping.

``Budget(usd=X)`` is a ceiling, not a target: spend never exceeds X, even if the API evicts the cache early or
counts more tokens than estimated. What the guarantee assumes:

- the part of the prompt the conversation's previous call already sent has the tokens that call's usage reports
  (input + cache write + cache read); every other block (the newest turn and tool results, or the whole prompt on
  a run's first call and after a compaction or a model switch) has at most ``margin`` times its estimate, rounded
  up: 1.3x, or the largest real/estimated ratio the agent has seen on such content if higher (the estimator is
  within about 10 % on ordinary text; content a tokenizer counts at more than 1.3x its estimate, the first time
  it appears, can overshoot);
- the prices are those ``leanloop.pricing`` bills with (genai-prices or your override file), for the request as
  sent: its prompt-size tier, ``speed="fast"`` and ``inference_geo="us"`` from ``Agent(params=...)``;
- output never exceeds ``max_tokens`` (the API's guarantee; thinking counts in it);
- nothing is billed outside the usage the API reports: server tools such as web search ($10 per 1,000 searches)
  are not priced or capped, nor are beta features billed apart (compaction iterations).

``Budget(strict=False)`` trusts the predicted cache split instead (prompt tokens the mirror expects to be read are
priced as reads): it uses the last few cents of a budget, but a cache evicted early can take spend over it by up
to one call's prompt written instead of read.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from leanloop.cachesim import Block, Prompt
from leanloop.errors import ConfigError
from leanloop.pricing import Cost, ModelPrices
from leanloop.usage import Usage

__all__ = [
    "TOKEN_MARGIN",
    "Budget",
    "CallEstimate",
    "Go",
    "Halt",
    "LoopGuard",
    "Spend",
    "Wait",
    "estimate_call",
    "most_prompt_tokens",
]

_PER_MTOK = Decimal(1_000_000)
# How far above leanloop's estimate the API's count of content it has not counted yet may be: the estimator is
# within 10 % on ordinary text, and tokenizers of different Claude generations differ by about 30 %.
TOKEN_MARGIN = 1.3


@dataclass(frozen=True)
class Budget:
    """Caps for one run. None means no cap. ``max_input_tokens`` counts all input, cached included.

    ``max_iterations`` (model calls) is capped at 50 unless you say otherwise (None lifts it): a loop with no cap at
    all is the runaway this library exists to prevent. ``min_output_tokens`` is the smallest answer worth paying for:
    below it the run stops instead of calling. ``strict`` (the default) prices each call's prompt as if the cache
    missed, so ``usd`` is a hard ceiling; ``strict=False`` trusts the predicted cache reads (see the module doc).
    """

    usd: float | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_iterations: int | None = 50
    max_tool_calls: int | None = None
    max_wall_seconds: float | None = None
    min_output_tokens: int = 64
    strict: bool = True

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
    """The worst case of the next call, as the agent predicts it: its prompt (tokens, USD with the predicted cache
    split and USD if the cache missed entirely) and what each output token would cost."""

    prompt_tokens: int
    prompt_usd: Decimal
    prompt_usd_if_missed: Decimal
    output_usd_per_token: Decimal
    max_tokens: int

    @classmethod
    def unpriced(cls, prompt_tokens: int, max_tokens: int) -> CallEstimate:
        """A call checked by its tokens only (no USD cap, or no price for the model): it costs nothing here."""
        return cls(prompt_tokens, Decimal(0), Decimal(0), Decimal(0), max_tokens)


def most_prompt_tokens(prompt: Prompt, *, margin: float, sent: tuple[Prompt, int] | None = None) -> int:
    """The most tokens the API may count in ``prompt``.

    ``sent`` is the previous request of the conversation with the prompt tokens the API reported for it: when
    ``prompt`` extends it, that part is known exactly and only the blocks added since are estimated. Each estimated
    block may have ``margin`` times its estimate, rounded up (a tokenizer counts whole tokens, block by block), so
    the work is proportional to what is new.
    """
    if sent is not None:
        earlier, counted = sent
        if counted > 0 and prompt.extends(earlier):
            return counted + _with_margin(prompt.blocks[len(earlier.blocks) :], margin)
    return _with_margin(prompt.blocks, margin) + math.ceil(prompt.tail_tokens * margin)


def _with_margin(blocks: Sequence[Block], margin: float) -> int:
    ceil = math.ceil
    return sum([ceil(block.tokens * margin) for block in blocks])


def estimate_call(
    prompt_tokens: int,
    predicted: Usage,
    prices: ModelPrices,
    *,
    max_tokens: int,
    longest_ttl: str | None = "5m",
) -> CallEstimate:
    """The worst case of a call whose prompt may have up to ``prompt_tokens`` (``most_prompt_tokens``).

    ``predicted`` is the cache simulator's split of the estimated prompt, scaled up to ``prompt_tokens``;
    ``longest_ttl`` the longest TTL among the request's breakpoints (a miss is written at that rate; None: the
    request has no breakpoint, so nothing can be written). ``prices`` must be those of the request as it will be
    billed (tier, batch, fast mode, data residency).
    """
    tokens = prompt_tokens
    estimated = predicted.prompt_tokens
    scale = Decimal(tokens) / estimated if estimated else Decimal(1)
    predicted_usd = (
        predicted.input_tokens * prices.input
        + predicted.cache_write_5m_tokens * prices.cache_write_5m
        + predicted.cache_write_1h_tokens * prices.cache_write_1h
        + predicted.cache_read_tokens * prices.cache_read
    ) * scale
    write_rate = {"5m": prices.cache_write_5m, "1h": prices.cache_write_1h}.get(longest_ttl or "", prices.input)
    worst_rate = max(prices.input, write_rate)
    return CallEstimate(
        prompt_tokens=tokens,
        prompt_usd=predicted_usd / _PER_MTOK,
        prompt_usd_if_missed=tokens * worst_rate / _PER_MTOK,
        output_usd_per_token=prices.output / _PER_MTOK,
        max_tokens=max_tokens,
    )


@dataclass(frozen=True, slots=True)
class Go:
    """Send the call with this ``max_tokens``. ``lowered_by`` names the cap that lowered it, if any. The call's
    worst case stays reserved (``ticket``) until ``Spend.record_call`` or ``Spend.release``. ``side_call``: the
    call is not one of the run's iterations (see ``Spend.check_before_call``)."""

    max_tokens: int
    reserved_usd: Decimal
    lowered_by: str | None = None
    ticket: int = 0
    side_call: bool = False


@dataclass(frozen=True, slots=True)
class Halt:
    """Do not send the call. ``cap`` is the Budget field that stops it."""

    cap: str
    reason: str


@dataclass(frozen=True, slots=True)
class Wait:
    """Calls in flight on this shared ``Spend`` hold what the call needs (not spent yet): ``await
    spend.settled(wait.since)`` and check again. Only runs sharing a Spend ever get it."""

    cap: str
    reason: str
    since: int


@dataclass(frozen=True, slots=True)
class _Held:
    """What calls in flight have reserved: their worst case in USD, prompt tokens and output tokens, and how many."""

    usd: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0

    def __add__(self, other: _Held) -> _Held:
        return _Held(
            self.usd + other.usd,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.calls + other.calls,
        )

    def __sub__(self, other: _Held) -> _Held:
        return _Held(
            self.usd - other.usd,
            self.input_tokens - other.input_tokens,
            self.output_tokens - other.output_tokens,
            self.calls - other.calls,
        )


_NOTHING = _Held()


class Spend:
    """What a run has used, against its ``Budget``. Share one ``Spend`` between runs to cap them together: its caps
    are then totals, each call's worst case is held until the call settles, and a run whose call only fits once the
    calls in flight settle gets ``Wait`` instead of ``Halt`` (the agent waits, then checks again).

    Safe to share between threads (each with its own event loop).
    """

    def __init__(self, budget: Budget | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        if budget is not None and not isinstance(budget, Budget):  # pyright: ignore[reportUnnecessaryIsInstance]
            example = f"Budget(usd={budget!r})" if isinstance(budget, int | float) else "Budget(usd=0.50)"
            raise ConfigError(f"Spend(budget={budget!r}): expected a Budget, e.g. Spend({example})")
        self.budget = budget or Budget()
        self.usage = Usage()
        self.cost = Cost()
        self.iterations = 0
        self.tool_calls = 0
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._tickets = itertools.count(1)
        self._held: dict[int, _Held] = {}
        self._in_flight = _NOTHING
        self._settles = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._started

    @property
    def reserved_usd(self) -> Decimal:
        """USD held by calls in flight (their worst case, not spent yet)."""
        return self._in_flight.usd

    def _wall_halt(self) -> Halt | None:
        b = self.budget
        if b.max_wall_seconds is not None and self.elapsed_s >= b.max_wall_seconds:
            return Halt("max_wall_seconds", f"ran {self.elapsed_s:.1f} s of max_wall_seconds={b.max_wall_seconds:g}")
        return None

    def check_before_call(self, estimate: CallEstimate, *, side_call: bool = False) -> Go | Halt | Wait:
        """Decide the next call and reserve its worst case. Pure arithmetic; no I/O.

        A ``side_call`` (work the agent hands a cheap model outside the conversation: a summary) is checked against
        every cap but ``max_iterations``, and is not counted as an iteration when recorded."""
        halt = self._wall_halt()
        if halt is not None:
            return halt
        b = self.budget
        prompt_usd = estimate.prompt_usd_if_missed if b.strict else estimate.prompt_usd
        minimum = min(b.min_output_tokens, estimate.max_tokens)
        with self._lock:
            room, cap = self._fit(estimate, prompt_usd, self._in_flight, side_call)
            if self._held:
                alone = self._fit(estimate, prompt_usd, _NOTHING, side_call)
                if alone != (room, cap) and alone[0] >= minimum:
                    held = f"${self._in_flight.usd:.4f}, {len(self._held)} calls"
                    reason = f"calls in flight on this shared budget hold what the next call needs ({held})"
                    return Wait(cap or "usd", reason, self._settles)
            if room < minimum:
                capped = cap or "usd"
                return Halt(capped, self._halt_reason(capped, estimate, prompt_usd))
            usd = prompt_usd + room * estimate.output_usd_per_token
            held = _Held(usd, estimate.prompt_tokens, room, 0 if side_call else 1)
            ticket = next(self._tickets)
            self._in_flight = self._in_flight + held if self._held else held  # alone: no sum to make
            self._held[ticket] = held
        return Go(room, held.usd, cap, ticket, side_call)

    def _fit(
        self, estimate: CallEstimate, prompt_usd: Decimal, held: _Held, side_call: bool = False
    ) -> tuple[int, str | None]:
        """Output tokens the call may use with ``held`` in flight, and the cap that set that (None: max_tokens)."""
        b = self.budget
        if not side_call and b.max_iterations is not None and self.iterations + held.calls >= b.max_iterations:
            return 0, "max_iterations"
        used_input = self.usage.prompt_tokens + held.input_tokens
        if b.max_input_tokens is not None and used_input + estimate.prompt_tokens > b.max_input_tokens:
            return 0, "max_input_tokens"
        room, cap = estimate.max_tokens, None
        if b.max_output_tokens is not None:
            left = b.max_output_tokens - self.usage.output_tokens - held.output_tokens
            if left < room:
                room, cap = max(0, left), "max_output_tokens"
        if b.usd is not None:
            left_usd = Decimal(str(b.usd)) - self.cost.total - held.usd - prompt_usd
            per_token = estimate.output_usd_per_token
            affordable = math.floor(left_usd / per_token) if per_token else (room if left_usd >= 0 else -1)
            if affordable < room:
                room, cap = max(0, affordable), "usd"
        return room, cap

    def _halt_reason(self, cap: str, estimate: CallEstimate, prompt_usd: Decimal) -> str:
        b = self.budget
        if cap == "max_iterations":
            return f"reached max_iterations={b.max_iterations}"
        if cap == "max_input_tokens":
            total = self.usage.prompt_tokens + self._in_flight.input_tokens + estimate.prompt_tokens
            return (
                f"the next prompt (about {estimate.prompt_tokens:,} tokens) would bring input to {total:,} > "
                f"max_input_tokens={b.max_input_tokens:,}"
            )
        if cap == "max_output_tokens":
            return (
                f"{self.usage.output_tokens:,} of max_output_tokens={b.max_output_tokens:,} used, leaving no room for "
                f"an answer of {b.min_output_tokens} tokens"
            )
        held = f" and ${self._in_flight.usd:.4f} held by calls in flight" if self._held else ""
        worst = "if the cache missed" if b.strict else "with the predicted cache reads"
        reason = (
            f"spent ${self.cost.total:.4f}{held} of usd={b.usd:g}; the next call's prompt alone could cost "
            f"${prompt_usd:.4f} {worst} (about {estimate.prompt_tokens:,} tokens), leaving no room for an answer of "
            f"{b.min_output_tokens} tokens"
        )
        left = Decimal(str(b.usd)) - self.cost.total - self._in_flight.usd - estimate.prompt_usd
        if b.strict and left >= min(b.min_output_tokens, estimate.max_tokens) * estimate.output_usd_per_token:
            reason += (
                f" (with the predicted cache reads it would cost ${estimate.prompt_usd:.4f}: Budget(strict=False) "
                "would send it, and overshoot if the cache was evicted)"
            )
        return reason

    def record_call(self, go: Go | None, usage: Usage, cost: Cost) -> None:
        """Add a finished call and release its reservation (``go`` is None for calls made outside the check). A
        side call's usage and cost count; it is not an iteration."""
        with self._lock:
            self._free(go)
            self.usage += usage
            self.cost += cost
            self.iterations += 0 if go is not None and go.side_call else 1
        self._wake()

    def release(self, go: Go) -> None:
        """Release the reservation of a call that was not billed. Releasing twice, or after ``record_call``, is a
        no-op: a reservation is freed exactly once."""
        with self._lock:
            freed = self._free(go)
        if freed:
            self._wake()

    def _free(self, go: Go | None) -> bool:
        held = self._held.pop(go.ticket, None) if go is not None else None
        if held is None:
            return False
        self._in_flight = self._in_flight - held if self._held else _NOTHING  # the last one: nothing is held
        self._settles += 1
        return True

    def _wake(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            with contextlib.suppress(RuntimeError):  # that run's loop is gone: nobody is waiting any more
                waiter.get_loop().call_soon_threadsafe(_resolve, waiter)

    async def settled(self, since: int) -> None:
        """Return once a call in flight has settled (been recorded or released) after ``Wait.since``."""
        future = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._settles != since or not self._held:
                return
            self._waiters.append(future)
        await future

    def check_tool_calls(self, count: int) -> Halt | None:
        halt = self._wall_halt()
        if halt is not None:
            return halt
        cap = self.budget.max_tool_calls
        if cap is not None and self.tool_calls + count > cap:
            return Halt("max_tool_calls", f"{self.tool_calls} + {count} tool calls would exceed max_tool_calls={cap}")
        return None

    def record_tool_calls(self, count: int) -> None:
        with self._lock:
            self.tool_calls += count

    def remaining_wall_s(self) -> float | None:
        cap = self.budget.max_wall_seconds
        return None if cap is None else max(0.0, cap - self.elapsed_s)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


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
        repeats: Any = self.repeats  # typed as int, but callers may pass anything
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise ConfigError(f"LoopGuard(repeats={repeats!r}): must be a whole number of at least 1")

    def fresh(self) -> LoopGuard:
        """A guard with the same settings and no history: what each new run starts from."""
        return replace(self, _failures={})

    def copy(self) -> LoopGuard:
        """A guard with the same settings and history, that changes independently (a resumed run's)."""
        return replace(self, _failures={key: replace(record) for key, record in self._failures.items()})

    def observe(self, name: str, arguments: Mapping[str, Any], error: str | None) -> str | None:
        """Record a finished call. Returns the notice for the model when this call has now failed too often."""
        if error is None and not self._failures:  # nothing has failed: nothing to forget
            return None
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
        if not self._failures:  # nothing has failed: no JSON key to make
            return None
        record = self._failures.get(_call_key(name, arguments))
        if record is None or not record.warned:
            return None
        shown = json.dumps(arguments, sort_keys=True, default=str)
        return f"{name}({shown}) failed {record.count} times with {record.error!r} and the model asked for it again"
