"""Anthropic's prompt cache, as a pure model: which tokens of a request are read, written, or sent fresh.

The rules (API-FACTS section 1, DESIGN "The cache rules"):

- The prompt is a sequence of blocks in prefix order: tools, system, then message content blocks. A cache entry is
  the exact bytes of the prefix up to a block that carried a breakpoint (``cache_control``).
- At most 4 breakpoints per request; top-level automatic caching uses one of them and lands on the last block that
  can carry a marker. A 5th breakpoint, an unknown ttl, or a 1h breakpoint after a 5m one is a 400.
- A breakpoint reads the longest existing entry at its own block or at most ``lookback`` (20) positions before it.
  A run of consecutive tool_use blocks counts as one position, and so does a run of tool_result blocks.
- Each breakpoint after the read point whose prefix reaches the model's minimum cacheable length is written;
  shorter prefixes are silently not cached. The minimums are one process-wide table (``min_cacheable_tokens``;
  change it with ``register_min_cacheable_tokens`` or a price override file); a model it does not know is assumed
  to need ``DEFAULT_MIN_CACHEABLE_TOKENS`` (4,096, the largest), with one warning naming it.
- Entries live 5 minutes or 1 hour from the start of the request that wrote or last read them. A read refreshes
  an entry for its own ttl, whatever the ttl of the breakpoint that read it: a 1h entry read through a 5m
  breakpoint lives another hour, a 5m entry read through a 1h breakpoint another 5 minutes (SKILL-PC, "A cache
  read refreshes the entry's timer at no additional cost, on either TTL"; API-FACTS 1.1).
- Entries are scoped per model. A new entry is readable only once its writer's response has started streaming, so
  concurrent identical requests all pay the write.
- ``input_tokens`` is what follows the last cache point, including the few tokens that open the assistant turn.

Tool choice and thinking settings are folded into a zero-token pseudo-block (``settings``) in front of the messages:
changing them invalidates the messages cache but not tools or system, as on the real API.

Lookups are hash lookups: the cost of a request is linear in its size and independent of how many entries exist.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Any, Literal, cast

from leanloop.errors import ConfigError, InvalidRequestError, UnknownModelWarning
from leanloop.tokens import TRAILING_PROMPT_TOKENS, Estimator, TokenCounter
from leanloop.usage import Usage

__all__ = [
    "DEFAULT_MIN_CACHEABLE_TOKENS",
    "LOOKBACK_POSITIONS",
    "MAX_BREAKPOINTS",
    "MIN_CACHEABLE_TOKENS",
    "TTL",
    "TTL_SECONDS",
    "Block",
    "CacheResult",
    "CacheSim",
    "Plan",
    "Prompt",
    "PromptBuilder",
    "UnknownMinimumWarning",
    "block_fingerprint",
    "canonical_json",
    "min_cacheable_tokens",
    "prompt_from_request",
    "register_min_cacheable_tokens",
]

TTL = Literal["5m", "1h"]
TTL_SECONDS: dict[str, float] = {"5m": 300.0, "1h": 3600.0}
MAX_BREAKPOINTS = 4
LOOKBACK_POSITIONS = 20

# Minimum cacheable prompt length per model (API-FACTS 1.3), as documented. Not monotonic across generations. Keys
# match the model id with any date suffix removed, exactly or as the longest prefix followed by a suffix that is not
# a new version number ("claude-3-5-sonnet-latest" is Claude 3.5 Sonnet; "claude-opus-4-9" is not Opus 4). Change
# or extend it for the whole process with ``register_min_cacheable_tokens`` or a price override file.
MIN_CACHEABLE_TOKENS: Mapping[str, int] = MappingProxyType(
    {
        "claude-opus-5-5": 512,
        "claude-sonnet-5-5": 512,  # secondary sources only
        "claude-haiku-5-5": 512,  # secondary sources only
        "claude-fable-5-2": 512,  # secondary sources only
        "claude-mythos-5-2": 512,  # secondary sources only
        "claude-fable-5-1": 512,
        "claude-mythos-5-1": 512,
        "claude-opus-5": 512,
        "claude-fable-5": 512,
        "claude-mythos-5": 512,
        "claude-sonnet-5": 1024,
        "claude-opus-4-8": 1024,
        "claude-opus-4-7": 2048,
        "claude-opus-4-6": 4096,
        "claude-opus-4-5": 4096,
        "claude-haiku-4-5": 4096,
        # The official skill says 1024; SDK issue #1194 and orq.ai observe caching only from 2048: the safe floor.
        "claude-sonnet-4-6": 2048,
        "claude-sonnet-4-5": 1024,
        "claude-opus-4-1": 1024,
        "claude-opus-4": 1024,
        "claude-sonnet-4": 1024,
        "claude-mythos-preview": 2048,
        "claude-3-7-sonnet": 1024,
        "claude-3-5-sonnet": 1024,
        "claude-3-5-haiku": 2048,
        "claude-3-haiku": 2048,
        "claude-3-opus": 1024,
    }
)
# A model no table knows is assumed to need the largest minimum any Claude model has: leanloop then never counts on
# a cache write the API may not make (budgets and estimates stay on the safe side), at the price of not placing
# breakpoints on shorter prefixes until the model is registered. The first lookup warns, naming the model.
DEFAULT_MIN_CACHEABLE_TOKENS = 4096
_DATE_SUFFIX = re.compile(r"-\d{8}$")
_NEW_VERSION = re.compile(r"\d{1,2}(?:-|$)")
_registered: dict[str, int] = {}  # the process-wide additions and changes, by model key
_warned: set[str] = set()


class UnknownMinimumWarning(UnknownModelWarning):
    """A model's minimum cacheable length is not known: ``DEFAULT_MIN_CACHEABLE_TOKENS`` is assumed."""


def _model_key(model: str) -> str:
    return _DATE_SUFFIX.sub("", model.strip().lower())


def register_min_cacheable_tokens(model: str, tokens: int) -> None:
    """Set ``model``'s minimum cacheable prefix (tokens) for the whole process: the agent's breakpoint planner,
    its budget mirror, ``estimate``, ``whatif`` and the emulator all read it. Also from a price override file
    (``min_cacheable_tokens = 1024`` in the model's table)."""
    count = cast(object, tokens)  # checked as an object: callers may pass anything
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ConfigError(f"minimum cacheable length for {model!r} must be a whole number > 0, got {tokens!r}")
    if not isinstance(model, str) or not model.strip():  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigError(f"minimum cacheable length: the model id is empty ({model!r})")
    _registered[_model_key(model)] = tokens
    _default_minimum.cache_clear()


def min_cacheable_tokens(model: str, table: Mapping[str, int] | None = None) -> int:
    """The model's minimum cacheable prefix in tokens: from ``table`` if given, else from the registered and
    built-in ones; ``DEFAULT_MIN_CACHEABLE_TOKENS`` (with a warning, once per model) for a model none knows."""
    if table is not None:
        found = _minimum(model, table)
        if found is not None:
            return found
    return _default_minimum(model)


@lru_cache(maxsize=512)
def _default_minimum(model: str) -> int:
    _load_override_file()
    found = _minimum(model, _registered)
    if found is None:
        found = _minimum(model, MIN_CACHEABLE_TOKENS)
    if found is not None:
        return found
    if model not in _warned:
        _warned.add(model)
        warnings.warn(
            f"the minimum cacheable length of model {model!r} is not known: assuming {DEFAULT_MIN_CACHEABLE_TOKENS:,} "
            "tokens, the largest of any Claude model. Set it with leanloop.cachesim.register_min_cacheable_tokens() "
            "or min_cacheable_tokens in a price override file (LEANLOOP_PRICES).",
            UnknownMinimumWarning,
            stacklevel=4,
        )
    return DEFAULT_MIN_CACHEABLE_TOKENS


def _load_override_file() -> None:
    """The price override file (``LEANLOOP_PRICES``) may set minimums; loading the default pricing registers them."""
    from leanloop.pricing import default_pricing  # noqa: PLC0415 - pricing imports this module

    default_pricing()


def _minimum(model: str, table: Mapping[str, int]) -> int | None:
    key = _model_key(model)
    if key in table:
        return table[key]
    best = max(
        (k for k in table if key.startswith(k + "-") and not _NEW_VERSION.match(key, len(k) + 1)), key=len, default=None
    )
    return table[best] if best is not None else None


_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # made once: json.dumps makes one per call


def canonical_json(value: Any) -> str:
    """Compact JSON that keeps the caller's key order: reordering keys changes the bytes, as it does on the wire."""
    return _COMPACT_JSON.encode(value)


def block_fingerprint(section: str, canonical: str) -> bytes:
    return hashlib.blake2b(f"{section}\x00{canonical}".encode(), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Block:
    """One prefix block: a tool definition, a system block, a message content block, or a settings pseudo-block.

    ``path`` is the API's own path (``tools.0``, ``system.1``, ``messages.3.content.0``). ``run`` is ``tool_use``
    or ``tool_result`` for blocks that share a lookback position with neighbours of the same run.
    """

    path: str
    fingerprint: bytes
    tokens: int
    ttl: TTL | None = None
    run: str | None = None
    message: int | None = None
    auto_eligible: bool = True
    counts_as_position: bool = True
    canonical: str = field(default="", repr=False, compare=False)

    def with_ttl(self, ttl: TTL | None) -> Block:
        """This block with a breakpoint of ``ttl`` (None: without one)."""
        return Block(
            self.path,
            self.fingerprint,
            self.tokens,
            ttl,
            self.run,
            self.message,
            self.auto_eligible,
            self.counts_as_position,
            self.canonical,
        )


@dataclass(slots=True)
class _Chains:
    """Per block: the hash of the prefix ending there, cumulative tokens, and lookback position."""

    seed: bytes
    hashes: list[bytes] = field(default_factory=list[bytes])
    tokens: list[int] = field(default_factory=list[int])
    positions: list[int] = field(default_factory=list[int])
    last_positional: Block | None = None

    def extend(self, blocks: Iterable[Block]) -> None:
        previous_hash = self.hashes[-1] if self.hashes else self.seed
        total = self.tokens[-1] if self.tokens else 0
        position = self.positions[-1] if self.positions else -1
        if self.last_positional is None:
            position = -1
        for block in blocks:
            previous_hash = hashlib.blake2b(previous_hash + block.fingerprint, digest_size=16).digest()
            total += block.tokens
            last = self.last_positional
            collapses = (
                last is not None
                and block.run is not None
                and (block.run, block.message)
                == (
                    last.run,
                    last.message,
                )
            )
            if block.counts_as_position and not collapses:
                position += 1
            self.hashes.append(previous_hash)
            self.tokens.append(total)
            self.positions.append(max(position, 0))
            if block.counts_as_position:
                self.last_positional = block

    def truncate(self, blocks: Sequence[Block], keep: int) -> None:
        """Keep the chains of ``blocks[:keep]``."""
        del self.hashes[keep:], self.tokens[keep:], self.positions[keep:]
        self.last_positional = next((b for b in reversed(blocks[:keep]) if b.counts_as_position), None)

    def copy(self) -> _Chains:
        return _Chains(self.seed, self.hashes.copy(), self.tokens.copy(), self.positions.copy(), self.last_positional)


@dataclass(frozen=True)
class Prompt:
    """A request as the cache sees it. ``auto_ttl`` is the top-level automatic cache_control, if any."""

    model: str
    blocks: tuple[Block, ...]
    auto_ttl: TTL | None = None
    tail_tokens: int = TRAILING_PROMPT_TOKENS

    @cached_property
    def _chains(self) -> _Chains:
        chains = _Chains(_model_key(self.model).encode())
        chains.extend(self.blocks)
        return chains

    @property
    def prefix_hashes(self) -> list[bytes]:
        return self._chains.hashes

    @property
    def prefix_tokens(self) -> list[int]:
        return self._chains.tokens

    @property
    def positions(self) -> list[int]:
        return self._chains.positions

    @cached_property
    def marked(self) -> tuple[int, ...]:
        """The indexes of the blocks that carry a ``cache_control``, in order (kept as it goes by ``PromptBuilder``
        and ``with_marks``, so that a growing conversation is not scanned again)."""
        return tuple(i for i, b in enumerate(self.blocks) if b.ttl is not None)

    def with_marks(self, marks: Mapping[int, TTL]) -> Prompt:
        """The same prompt with breakpoints on the given block indexes (marks don't change the bytes)."""
        blocks = list(self.blocks)
        for index, ttl in marks.items():
            blocks[index] = blocks[index].with_ttl(ttl)
        marked = Prompt(self.model, tuple(blocks), self.auto_ttl, self.tail_tokens)
        marked.__dict__["_chains"] = self._chains  # shared: fingerprints, tokens and positions are unchanged
        marked.__dict__["marked"] = tuple(sorted({*self.marked, *marks}))
        return marked

    @property
    def total_tokens(self) -> int:
        return (self.prefix_tokens[-1] if self.blocks else 0) + self.tail_tokens

    def extends(self, earlier: Prompt) -> bool:
        """This prompt is ``earlier`` with blocks added at the end (or the same): same model, and every block of
        ``earlier`` byte for byte in the same place. One hash comparison."""
        count = len(earlier.blocks)
        if count > len(self.blocks) or self.model != earlier.model or self.tail_tokens != earlier.tail_tokens:
            return False
        return count == 0 or self.prefix_hashes[count - 1] == earlier.prefix_hashes[count - 1]

    @cached_property
    def breakpoints(self) -> list[tuple[int, TTL]]:
        """(block index, ttl) of every breakpoint in prefix order, automatic one included. Raises if invalid."""
        blocks = self.blocks
        marks = [(i, ttl) for i in self.marked if (ttl := blocks[i].ttl) is not None]
        explicit = len(marks)
        if self.auto_ttl is not None:
            target = next((i for i in range(len(self.blocks) - 1, -1, -1) if self.blocks[i].auto_eligible), None)
            if target is not None:
                own = self.blocks[target].ttl
                if own is None:
                    marks.append((target, self.auto_ttl))
                    marks.sort()
                elif own != self.auto_ttl:
                    raise InvalidRequestError(
                        f"cache_control: the top-level cache_control ttl='{self.auto_ttl}' conflicts with "
                        f"ttl='{own}' on {self.blocks[target].path}, the block it applies to"
                    )
            # It takes a slot even when it lands on a block already marked with its ttl: the API answers 400 "if 4
            # explicit markers already exist" (API-FACTS 1.1; SKILL-PC: "all 4 slots already taken by explicit
            # markers"), whichever block they are on. With fewer, a same-ttl marker there makes it a no-op.
            explicit += 1
        if explicit > MAX_BREAKPOINTS:
            raise InvalidRequestError(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {explicit}."
            )
        seen_5m = False
        for index, ttl in cast(list[tuple[int, TTL]], marks):
            if ttl == "5m":
                seen_5m = True
            elif seen_5m:
                raise InvalidRequestError(
                    f"{self.blocks[index].path}.cache_control.ttl: a ttl='1h' cache_control block must not come "
                    "after a ttl='5m' cache_control block. Note that blocks are processed in the following order: "
                    "`tools`, `system`, `messages`."
                )
        return cast(list[tuple[int, TTL]], marks)


@dataclass(frozen=True, slots=True)
class CacheResult:
    """What the API would report for one request, and why.

    ``read_path`` is the block whose cache entry was read; ``written`` the breakpoints whose entries were created;
    ``skipped_below_minimum`` the breakpoints whose prefix was too short to cache.
    """

    usage: Usage
    read_path: str | None
    written: tuple[str, ...]
    skipped_below_minimum: tuple[str, ...]
    min_tokens: int


@dataclass(slots=True)
class _Entry:
    tokens: int
    ttl: TTL
    expires_at: float
    readable_at: float


@dataclass(slots=True)
class Plan:
    """What a request will do to the cache, decided at ``start``; ``CacheSim.apply`` carries it out.

    ``refreshed`` holds the entries read, each with its own ttl (the one it is refreshed for)."""

    result: CacheResult
    start: float
    refreshed: list[tuple[bytes, TTL]]
    writes: list[tuple[bytes, int, TTL]]


class CacheSim:
    """The cache state of one workspace: entries per model, created, refreshed and expired by the rules above.

    ``request`` applies a request and returns its usage; ``predict`` answers the same without changing anything.
    Times are seconds on any monotonic clock the caller chooses (the emulator's is injectable).
    """

    def __init__(self, *, min_tokens: Mapping[str, int] | None = None, lookback: int = LOOKBACK_POSITIONS) -> None:
        """``min_tokens`` adds or changes minimum cacheable lengths for this cache only, on top of the
        process-wide table (``register_min_cacheable_tokens``)."""
        self._min_tokens = {_model_key(model): tokens for model, tokens in (min_tokens or {}).items()}
        self._lookback = lookback
        self._entries: dict[bytes, _Entry] = {}
        self._purge_at = 1024

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:  # an empty cache is still a cache: ``cache or CacheSim()`` must keep it
        return True

    def min_tokens(self, model: str) -> int:
        return min_cacheable_tokens(model, self._min_tokens) if self._min_tokens else _default_minimum(model)

    def predict(self, prompt: Prompt, *, start: float) -> CacheResult:
        return self.plan(prompt, start=start).result

    def request(self, prompt: Prompt, *, start: float, response_start: float | None = None) -> CacheResult:
        """Apply ``prompt`` sent at ``start`` whose response began streaming at ``response_start``.

        Entries it writes become readable at ``response_start`` (default: immediately).
        """
        return self.apply(self.plan(prompt, start=start), response_start=response_start)

    def apply(self, plan: Plan, *, response_start: float | None = None) -> CacheResult:
        """Carry out a ``plan`` made by ``plan()``: with nothing applied in between, the same as ``request()``."""
        start = plan.start
        readable_at = start if response_start is None else response_start
        for key, ttl in plan.refreshed:
            entry = self._entries[key]
            entry.expires_at = max(entry.expires_at, start + TTL_SECONDS[ttl])
        for key, tokens, ttl in plan.writes:
            old = self._entries.get(key)
            expires = start + TTL_SECONDS[ttl]
            if old is not None and old.expires_at > start:  # written again before it became readable
                old.expires_at = max(old.expires_at, expires)
                old.readable_at = min(old.readable_at, readable_at)
                old.ttl = ttl if TTL_SECONDS[ttl] > TTL_SECONDS[old.ttl] else old.ttl
            else:
                self._entries[key] = _Entry(tokens, ttl, expires, readable_at)
        if len(self._entries) >= self._purge_at:
            self._purge(start)
        return plan.result

    def _purge(self, now: float) -> None:
        self._entries = {k: e for k, e in self._entries.items() if e.expires_at > now}
        self._purge_at = max(1024, 2 * len(self._entries))

    def _live(self, key: bytes, start: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None or entry.expires_at <= start or entry.readable_at > start:
            return None
        return entry

    def _lookup(self, prompt: Prompt, index: int, start: float) -> int | None:
        """The latest block at or up to ``lookback`` positions before ``index`` that has a live entry."""
        hashes, positions = prompt.prefix_hashes, prompt.positions
        floor = positions[index] - self._lookback
        for j in range(index, -1, -1):
            if positions[j] < floor:
                return None
            if self._live(hashes[j], start) is not None:
                return j
        return None

    def plan(self, prompt: Prompt, *, start: float) -> Plan:
        """Decide what ``prompt`` sent at ``start`` reads and writes, without changing anything."""
        breakpoints = prompt.breakpoints
        hashes, tokens = prompt.prefix_hashes, prompt.prefix_tokens
        read_index: int | None = None
        refreshed: list[tuple[bytes, TTL]] = []
        for index, _ in breakpoints:
            hit = self._lookup(prompt, index, start)
            if hit is not None:
                refreshed.append((hashes[hit], self._entries[hashes[hit]].ttl))  # the entry's own ttl
                read_index = hit if read_index is None else max(read_index, hit)
        minimum = self.min_tokens(prompt.model)
        read = tokens[read_index] if read_index is not None else 0
        cut = read
        writes: list[tuple[bytes, int, TTL]] = []
        written: list[str] = []
        by_ttl = {"5m": 0, "1h": 0}
        skipped: list[str] = []
        for index, ttl in breakpoints:
            if read_index is not None and index <= read_index:
                continue
            if tokens[index] < minimum:
                skipped.append(prompt.blocks[index].path)
                continue
            writes.append((hashes[index], tokens[index], ttl))
            written.append(prompt.blocks[index].path)
            by_ttl[ttl] += tokens[index] - cut
            cut = tokens[index]
        usage = Usage(
            input_tokens=prompt.total_tokens - cut,
            cache_write_5m_tokens=by_ttl["5m"],
            cache_write_1h_tokens=by_ttl["1h"],
            cache_read_tokens=read,
        )
        result = CacheResult(
            usage=usage,
            read_path=prompt.blocks[read_index].path if read_index is not None else None,
            written=tuple(written),
            skipped_below_minimum=tuple(skipped),
            min_tokens=minimum,
        )
        return Plan(result, start, refreshed, writes)


# ---------------------------------------------------------------------------------------------------------------
# From an API request to a Prompt


_CACHE_CONTROL_KEYS = frozenset({"type", "ttl"})


def _cache_ttl(where: str, mark: Any) -> TTL | None:
    """The ttl of a ``cache_control`` value found at ``where`` (``system.0.cache_control``, or ``cache_control``
    for the top-level one); None when there is none. Raises the API's 400 for a value it rejects."""
    if mark is None:
        return None
    if not isinstance(mark, Mapping) or mark.get("type") != "ephemeral":  # pyright: ignore[reportUnknownMemberType]
        raise InvalidRequestError(f"{where}.type: Input should be 'ephemeral'")
    mark = cast(Mapping[str, Any], mark)
    extra = next((key for key in mark if key not in _CACHE_CONTROL_KEYS), None)
    if extra is not None:
        raise InvalidRequestError(f"{where}.ephemeral.{extra}: Extra inputs are not permitted")
    ttl = mark.get("ttl", "5m")
    if ttl not in TTL_SECONDS:
        raise InvalidRequestError(f"{where}.ephemeral.ttl: Input should be '5m' or '1h'")
    return cast(TTL, ttl)


def _as_blocks(content: Any) -> list[Mapping[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, Sequence):
        items = cast(Sequence[Any], content)  # dicts, as a rule: checked without the slower ABC test
        return [cast(Mapping[str, Any], b) for b in items if type(b) is dict or isinstance(b, Mapping)]
    raise InvalidRequestError(f"content: Input should be a valid string or list, got {type(content).__name__}")


def _canonical_block(block: Mapping[str, Any]) -> str:
    # The API parses the block: its own fields have no order, but free-form JSON inside (tool input, schemas)
    # is rendered as sent.
    return canonical_json({k: block[k] for k in sorted(block) if k != "cache_control"})


_NO_SETTINGS = canonical_json({"thinking": None, "tool_choice": None})


def _settings(request: Mapping[str, Any]) -> str:
    thinking, tool_choice = request.get("thinking"), request.get("tool_choice")
    if thinking is None and tool_choice is None:  # the usual request: no JSON to write
        return _NO_SETTINGS
    if isinstance(tool_choice, Mapping) and cast(Mapping[str, Any], tool_choice).get("type") == "auto":
        tool_choice = None  # "auto" is the default: sending it explicitly renders the same prompt
    return canonical_json({"thinking": thinking, "tool_choice": tool_choice})


class PromptBuilder:
    """Builds the ``Prompt`` of each request of a growing conversation, re-using what it saw before.

    Messages are remembered by identity: a message object seen at the same index last time is not serialised,
    hashed or counted again, so the work per request is proportional to what is new. Tools, system and settings
    are re-used while they compare equal. ``prompt_from_request`` is the one-shot form.

    In-place edits are caught where user code makes them: the newest ``RECHECKED`` messages and the last 4 messages that
    carried a ``cache_control`` are compared, on each build, with what they were (content replaced or resized, a
    block's field reassigned, its ``cache_control`` added, removed or changed), so moving a breakpoint in place
    works. An in-place change deeper inside an older message (a nested list appended to) needs a new message object.
    """

    RECHECKED = 2

    def __init__(self, counter: TokenCounter | None = None, *, heads: dict[str, Any] | None = None) -> None:
        """``heads`` is a dict that builders share (the runs of one agent): the tools + system blocks each built,
        by model, re-used by the others while the tools, system and settings are the same."""
        self._counter = counter or _ESTIMATOR
        self._heads = heads
        self._model = ""
        self._head_key: tuple[str, ...] | None = None
        self._blocks: list[Block] = []
        self._head_size = 0
        self._seen: list[Mapping[str, Any]] = []  # the message objects already turned into blocks
        self._shapes: list[tuple[Any, ...]] = []  # what each looked like then (``_shape``)
        self._marked: list[int] = []  # the indexes of those that carried a cache_control
        self._ends: list[int] = []  # where each seen message's blocks end
        self._marked_blocks: list[int] = []  # the indexes of the blocks that carry one
        self._chains = _Chains(b"")

    def build(self, request: Mapping[str, Any], *, tools_key: str | None = None) -> Prompt:
        """The Prompt of ``request`` (a Messages API body). Raises ``InvalidRequestError`` for bad cache_control.

        ``tools_key`` is a caller's promise that its tool list has not changed since it computed that key; without
        it the tools are serialised again, since a caller may mutate its lists in place between requests.
        """
        model = str(request.get("model", ""))
        system = request.get("system")
        head_key = (
            model,
            tools_key if tools_key is not None else canonical_json(request.get("tools")),
            system if isinstance(system, str) else canonical_json(system),
            _settings(request),
        )
        if head_key != self._head_key:
            self._model, self._head_key = model, head_key
            self._blocks = self._shared_head(model, request, head_key)
            self._head_size = len(self._blocks)
            self._seen, self._shapes, self._marked, self._ends = [], [], [], []
            self._marked_blocks = [i for i, b in enumerate(self._blocks) if b.ttl is not None]
            self._chains = _Chains(_model_key(model).encode())
            self._chains.extend(self._blocks)
        messages = cast(Sequence[Mapping[str, Any]], request.get("messages") or [])
        same = self._unchanged(messages)
        if same < len(self._seen):
            keep = self._ends[same - 1] if same else self._head_size
            del self._blocks[keep:]
            del self._seen[same:], self._shapes[same:], self._ends[same:]
            self._marked = [i for i in self._marked if i < same]
            self._marked_blocks = [i for i in self._marked_blocks if i < keep]
            self._chains.truncate(self._blocks, keep)
        for index in range(same, len(messages)):
            new = self._message_blocks(model, messages[index], index)
            start = len(self._blocks)
            self._blocks.extend(new)
            self._chains.extend(new)
            self._seen.append(messages[index])
            self._shapes.append(_shape(messages[index]))
            marked = [start + k for k, b in enumerate(new) if b.ttl is not None]
            if marked:
                self._marked.append(index)
                self._marked_blocks += marked
            self._ends.append(len(self._blocks))
        auto_ttl = _cache_ttl("cache_control", request.get("cache_control"))
        prompt = Prompt(model=model, blocks=tuple(self._blocks), auto_ttl=auto_ttl)
        prompt.__dict__["_chains"] = self._chains.copy()
        prompt.__dict__["marked"] = tuple(self._marked_blocks)
        return prompt

    def _unchanged(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """How many leading messages are the ones seen last time, unedited."""
        # Identity, compared at C speed: the first message that is not the object seen at its index last time.
        same_flags = list(map(operator.is_, messages, self._seen))
        same = same_flags.index(False) if False in same_flags else len(same_flags)
        recent = range(max(0, same - self.RECHECKED), same)
        for index in sorted({*self._marked[-MAX_BREAKPOINTS:], *recent}):  # a valid request has at most 4 marks
            if index >= same:
                break
            if _shape(messages[index]) != self._shapes[index]:
                return index
        return same

    def _shared_head(self, model: str, request: Mapping[str, Any], head_key: tuple[str, ...]) -> list[Block]:
        if self._heads is None:
            return self._head_blocks(model, request)
        key = (self._counter, head_key)
        shared = self._heads.get(model)
        if shared is not None and shared[0] == key:
            return list(shared[1])
        blocks = self._head_blocks(model, request)
        self._heads[model] = (key, tuple(blocks))
        return blocks

    def _head_blocks(self, model: str, request: Mapping[str, Any]) -> list[Block]:
        tools = [
            ("tools", f"tools.{i}", t)
            for i, t in enumerate(cast(Sequence[Mapping[str, Any]], request.get("tools") or []))
        ]
        system = [("system", f"system.{i}", b) for i, b in enumerate(_as_blocks(request.get("system")))]
        items = tools + system
        counts = self._counter.count_request(model, [(section, block) for section, _, block in items])
        blocks = [
            _make_block(path, section, block, count, None)
            for (section, path, block), count in zip(items, counts, strict=True)
        ]
        blocks.append(_settings_block(request))
        return blocks

    def _message_blocks(self, model: str, message: Mapping[str, Any], index: int) -> list[Block]:
        role = str(message.get("role", "user"))
        content = _as_blocks(message.get("content"))
        sections = [role + ("+" if k == 0 else "") for k in range(len(content))]
        counts = self._counter.count_request(model, list(zip(sections, content, strict=True)))
        return [
            _make_block(f"messages.{index}.content.{k}", section, block, count, index)
            for k, (section, block, count) in enumerate(zip(sections, content, counts, strict=True))
        ]


def _shape(message: Mapping[str, Any]) -> tuple[Any, ...]:
    """What an in-place edit of ``message`` changes: its role and content object, the content's length, each block
    object with its length and field values, and a copy of its cache_control (edited in place, it is the same
    object). Compared with ``==``, which is an identity check for objects that were not replaced."""
    content = message.get("content")
    shape: list[Any] = [message.get("role"), content]
    if isinstance(content, list):
        blocks = cast(list[Any], content)
        shape.append(len(blocks))
        for block in blocks:
            if type(block) is dict or isinstance(block, Mapping):  # dicts as a rule: no ABC test for them
                fields = cast(Mapping[str, Any], block)
                mark = fields.get("cache_control")
                shape += [fields, len(fields), *fields.values(), _copy(mark)]
            else:
                shape.append(block)
    return tuple(shape)


def _copy(mark: Any) -> Any:
    if mark is None:
        return None
    return dict(cast(Mapping[str, Any], mark)) if isinstance(mark, Mapping) else mark


def _make_block(path: str, section: str, block: Mapping[str, Any], tokens: int, message: int | None) -> Block:
    canonical = _canonical_block(block)
    kind = block.get("type", "text")
    mark = block.get("cache_control")
    return Block(
        path=path,
        fingerprint=block_fingerprint(section, canonical),
        tokens=tokens,
        ttl=None if mark is None else _cache_ttl(f"{path}.cache_control", mark),
        run=kind if kind in ("tool_use", "tool_result") else None,
        message=message,
        auto_eligible=kind not in ("thinking", "redacted_thinking"),
        canonical=canonical,
    )


def prompt_from_request(request: Mapping[str, Any], counter: TokenCounter | None = None) -> Prompt:
    """Build the cache's view of a Messages API request body (the dict the SDK would send).

    Raises ``InvalidRequestError`` for cache_control values the API rejects.
    """
    return PromptBuilder(counter).build(request)


def _settings_block(request: Mapping[str, Any]) -> Block:
    canonical = _settings(request)
    return Block(
        path="settings",
        fingerprint=block_fingerprint("settings", canonical),
        tokens=0,
        auto_eligible=False,
        counts_as_position=False,
        canonical=canonical,
    )


_ESTIMATOR = Estimator()
