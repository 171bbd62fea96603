"""Why a prompt cache missed: which block of the prefix changed, and how; and what in a prompt will make it miss.

Three pure tools, shared by the agent (live, after every call) and the analyzer (offline, over traces):

- ``diff_prompts`` / ``diff_prints`` / ``diff_texts`` find the first block of a request that differs from the
  previous request of the same conversation, and ``classify_change`` names the kind of difference: a timestamp,
  a UUID, a random id, key order, tool order, an edit, a removal.
- ``detect_miss`` decides from real usage numbers whether a call wrote what it should have read.
- ``lint_volatile`` finds content that changes on every call (clock times, dates, UUIDs, random ids) in text
  that sits in the cached prefix, before the first call is made.

What the lint flags is a judgment: content that is *likely* to differ between calls. Clock times (``14:35``,
``2:35 pm``, ``12:03:07``), timestamps, Unix times, dates in the usual spellings (``2026-12-03``, ``12/03/2026``,
``3 December 2026``, ``Dec 3, 2026``) and weekdays said as "today" (``Today is Thursday``) are. A bare weekday
("never on Sunday") is not. A 40- or 64-character hex string (a git commit, a sha256 digest) is content that names
a version, so it is not flagged; when one does change between two calls, ``classify_change`` still names it a
random id. Other long hex strings and ``prefix_<random>`` ids (request, session, trace ids) are flagged.

A change is shown as the words that changed, whole, with ``…`` where the text goes on:
``'…12:03:07…' -> '…12:04:15…'``; inside a JSON block, the text of the field that changed, not the JSON.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from leanloop.cachesim import TTL_SECONDS, Prompt
from leanloop.trace import BlockPrint
from leanloop.usage import Usage

__all__ = [
    "CacheMiss",
    "PrefixChange",
    "VolatileFinding",
    "classify_change",
    "detect_miss",
    "diff_prints",
    "diff_prompts",
    "diff_texts",
    "lint_volatile",
]

_EXCERPT_MAX = 60  # a longer changed span is shortened in the middle
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?"
_WEEKDAY = r"(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE_ADVICE = "a date changes daily: the cache is rebuilt once a day (fine if intended)"

# Volatile patterns, most specific first. Each: (kind, regex, advice).
_VOLATILE: list[tuple[str, re.Pattern[str], str]] = [
    (
        "uuid",
        re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
        "a UUID differs per run: move it after the last cache breakpoint (the newest user message)",
    ),
    (
        "timestamp",
        re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"),
        "a timestamp changes on every call: drop it or move it into the newest user message",
    ),
    (
        "timestamp",
        re.compile(
            r"(?<![\d.:])(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?(?:\s?(?:[AaPp][Mm]|[AaPp]\.[Mm]\.)(?![A-Za-z]))?(?![\d:])"
        ),
        "a clock time changes on every call: drop it or move it into the newest user message",
    ),
    (
        "timestamp",
        re.compile(r"(?<!\d)1[5-9]\d{8}(?:\d{3})?(?!\d)"),
        "a Unix timestamp changes on every call: drop it or move it into the newest user message",
    ),
    (
        "random id",
        re.compile(r"\b[a-z]{2,10}_[A-Za-z0-9]{12,}\b|\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{16,}\b"),
        "an id that differs per request or session: keep ids out of the cached prefix",
    ),
    (
        "date",
        re.compile(
            rf"\b{_WEEKDAY},?\s+(?:{_MONTH}\s+{_DAY},?(?:\s+\d{{4}})?|{_DAY}\s+{_MONTH}(?:\s+\d{{4}})?"
            r"|\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4})"
            rf"|(?i:\b(?:today|tomorrow|yesterday)(?:\s+is)?|\bit(?:'s|\s+is)|\bcurrent\s+day(?:\s+is)?:?)\s+{_WEEKDAY}\b"
        ),
        _DATE_ADVICE,
    ),
    (
        "date",
        re.compile(
            r"\b\d{4}[-/]\d{1,2}[-/]\d{1,2}\b|\b\d{1,2}[/.]\d{1,2}[/.]\d{4}\b"
            rf"|\b{_MONTH} {_DAY},? \d{{4}}\b|\b{_DAY} {_MONTH},? \d{{4}}\b"
        ),
        _DATE_ADVICE,
    ),
]
_CONTENT_HASH = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # a git commit, a sha256 digest: content, not volatility


@dataclass(frozen=True, slots=True)
class VolatileFinding:
    where: str
    kind: str
    excerpt: str
    advice: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind} {self.excerpt!r} - {self.advice}"


def lint_volatile(text: str, where: str) -> list[VolatileFinding]:
    """Content in ``text`` (found at ``where``, e.g. ``system.0``) that will change between calls."""
    findings: list[VolatileFinding] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern, advice in _VOLATILE:
        for match in pattern.finditer(text):
            if any(start < match.end() and match.start() < end for start, end in taken):
                continue
            if kind == "random id" and _CONTENT_HASH.fullmatch(match.group(0)):
                continue
            taken.append(match.span())
            findings.append(VolatileFinding(where, kind, match.group(0), advice))
    return findings


_WORD = re.compile(r"[\w:/+\-.]")  # what a changed "word" is made of: ids, times, dates, numbers, paths
_EDGE_PUNCTUATION = ".:/-"  # at the end of a changed word: the sentence goes on


def _excerpts(before: str, after: str) -> tuple[str, str]:
    """The changed words of two versions of a block, whole, with ``…`` where the text goes on."""
    old, new, whole = _changed_texts(before, after)
    if whole and max(len(old), len(new)) <= _EXCERPT_MAX:
        return old, new
    start = _first_difference(old, new)
    common_end = 0
    while common_end < min(len(old), len(new)) - start and old[-1 - common_end] == new[-1 - common_end]:
        common_end += 1
    while start > 0 and _WORD.match(old[start - 1]):
        start -= 1
    while common_end > 0 and _WORD.match(old[len(old) - common_end]):
        common_end -= 1
    while common_end < min(len(old), len(new)) - start and old[len(old) - common_end - 1] in _EDGE_PUNCTUATION:
        common_end += 1
    return _shown(old, start, len(old) - common_end), _shown(new, start, len(new) - common_end)


def _shown(text: str, start: int, end: int) -> str:
    piece = text[start:end]
    if len(piece) > _EXCERPT_MAX:
        half = (_EXCERPT_MAX - 1) // 2
        piece = piece[:half] + "…" + piece[-half:]
    return ("…" if start > 0 else "") + piece + ("…" if end < len(text) else "")


def _changed_texts(before: str, after: str) -> tuple[str, str, bool]:
    """What differs between two JSON blocks, as text: the first differing string field, the keys of an object
    whose keys were reordered, or the smallest JSON value whose shape differs (these two shown whole when short).
    Texts that are not JSON: as they are."""
    try:
        old: Any = json.loads(before)
        new: Any = json.loads(after)
    except ValueError:
        return before, after, False
    depth = 0
    while True:
        if isinstance(old, str) and isinstance(new, str):
            return old, new, False
        if isinstance(old, dict) and isinstance(new, dict) and old == new:  # same object, keys in another order
            return _keys(cast(dict[str, Any], old)), _keys(cast(dict[str, Any], new)), True
        pair = _first_differing_child(old, new)
        if pair is None:
            return (before, after, False) if depth == 0 else (_json_text(old), _json_text(new), True)
        old, new = pair
        depth += 1


def _keys(value: dict[str, Any]) -> str:
    return "keys " + ", ".join(value)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _first_differing_child(old: Any, new: Any) -> tuple[Any, Any] | None:
    """The first differing values at the same key or index of two dicts or two lists (None: other shapes)."""
    if isinstance(old, dict) and isinstance(new, dict):
        old_map, new_map = cast(dict[str, Any], old), cast(dict[str, Any], new)
        if list(old_map) != list(new_map):
            return None
        children = list(zip(old_map.values(), new_map.values(), strict=True))
    elif isinstance(old, list) and isinstance(new, list) and len(cast(list[Any], old)) == len(cast(list[Any], new)):
        children = list(zip(cast(list[Any], old), cast(list[Any], new), strict=True))
    else:
        return None
    return next(((a, b) for a, b in children if a != b), None)


def _first_difference(before: str, after: str) -> int:
    for i, (a, b) in enumerate(zip(before, after, strict=False)):
        if a != b:
            return i
    return min(len(before), len(after))


def _same_json_other_order(before: str, after: str) -> bool:
    try:
        old: Any = json.loads(before)
        new: Any = json.loads(after)
    except ValueError:
        return False
    return old == new


def classify_change(before: str, after: str) -> str:
    """Name the difference between two versions of a block's text.

    Returns ``key order`` (same JSON, keys reordered), ``uuid``, ``timestamp``, ``random id``, ``date`` (the
    first difference falls inside such a value), ``appended`` / ``truncated`` (one is a prefix of the other) or
    ``edited``.
    """
    if before == after:
        return "unchanged"
    if _same_json_other_order(before, after):
        return "key order"
    at = _first_difference(before, after)
    if at == len(before):
        return "appended"
    if at == len(after):
        return "truncated"
    for kind, pattern, _ in _VOLATILE:
        spans = [m.span() for m in pattern.finditer(before)] + [m.span() for m in pattern.finditer(after)]
        if any(start <= at < end for start, end in spans):
            return kind
    return "edited"


@dataclass(frozen=True, slots=True)
class PrefixChange:
    """The first block of a request that differs from the previous request.

    ``section`` is ``model``, ``tools``, ``system``, ``settings`` (tool_choice / thinking) or ``messages``;
    ``before``/``after`` are short excerpts around the first difference when the text is known.
    """

    index: int
    path: str
    section: str
    cause: str
    before: str | None = None
    after: str | None = None

    def describe(self) -> str:
        head = f"{self.path} changed ({self.cause})"
        if self.section == "model":
            return f"model switched from {self.before} to {self.after}: caches are per model, nothing could be read"
        if self.before is not None and self.after is not None:
            return f"{head}: {self.before!r} -> {self.after!r}"
        return head


def _section(path: str) -> str:
    return path.split(".", 1)[0]


def diff_texts(before: Sequence[tuple[str, str]], after: Sequence[tuple[str, str]]) -> PrefixChange | None:
    """First differing block between two requests given as (path, canonical text) in prefix order.

    None when ``after`` only extends ``before`` (the healthy case).
    """
    for index, (old, new) in enumerate(zip(before, after, strict=False)):
        if old == new:
            continue
        section = _section(new[0])
        if section == "tools" and _section(old[0]) == "tools":
            old_tools = Counter(text for path, text in before if _section(path) == "tools")
            new_tools = Counter(text for path, text in after if _section(path) == "tools")
            if old_tools == new_tools:
                return PrefixChange(index, new[0], "tools", "tool order")
        cause = classify_change(old[1], new[1])
        return PrefixChange(index, new[0], section, cause, *_excerpts(old[1], new[1]))
    if len(after) < len(before):
        gone = before[len(after)]
        return PrefixChange(len(after), gone[0], _section(gone[0]), "removed")
    return None


def diff_prompts(before: Prompt, after: Prompt) -> PrefixChange | None:
    """First differing block between two ``cachesim.Prompt``s (which carry their canonical text)."""
    if before.model != after.model:
        return PrefixChange(0, "model", "model", "model switch", before.model, after.model)
    kept = 0
    for old, new in zip(before.blocks, after.blocks, strict=False):
        if old.fingerprint != new.fingerprint:
            break
        kept += 1
    if kept == len(before.blocks):
        return None
    # Only the tools section needs the whole list (tool order); otherwise compare from the first change on.
    start = 0 if _section(before.blocks[kept].path) == "tools" else kept
    change = diff_texts(
        [(b.path, b.canonical) for b in before.blocks[start:]], [(b.path, b.canonical) for b in after.blocks[start:]]
    )
    if change is None:
        return None
    return PrefixChange(change.index + start, change.path, change.section, change.cause, change.before, change.after)


def diff_prints(before: Sequence[BlockPrint], after: Sequence[BlockPrint]) -> PrefixChange | None:
    """First differing block between two recorded fingerprints (hashes only: no before/after text)."""
    change = diff_texts([(b.path, b.hash) for b in before], [(b.path, b.hash) for b in after])
    if change is None:
        return None
    cause = change.cause if change.cause in ("tool order", "removed") else "changed"
    return PrefixChange(change.index, change.path, change.section, cause)


@dataclass(frozen=True, slots=True)
class CacheMiss:
    """A call that wrote (or sent uncached) tokens it should have read.

    ``lost_tokens`` is how many tokens should have been read; ``reason`` is one line a human can act on.
    """

    expected_read_tokens: int
    actual_read_tokens: int
    change: PrefixChange | None
    reason: str

    @property
    def lost_tokens(self) -> int:
        return self.expected_read_tokens - self.actual_read_tokens


def detect_miss(
    previous: Usage,
    current: Usage,
    *,
    gap_s: float,
    ttl: str = "5m",
    change: PrefixChange | None = None,
    tolerance: int = 8,
) -> CacheMiss | None:
    """Did ``current`` fail to read what ``previous`` (the call before, same conversation and model) cached?

    What the previous call read or wrote is cached as of its end, and the next request extends it, so it should
    be read in full unless ``gap_s`` exceeded the TTL. ``change`` (from ``diff_prompts``) names the cause.
    """
    expected = previous.cache_read_tokens + previous.cache_write_tokens
    if expected == 0 or current.cache_read_tokens + tolerance >= expected:
        return None
    if change is not None:
        reason = change.describe()
    elif gap_s >= TTL_SECONDS.get(ttl, 300.0):
        reason = f"the cache expired: {gap_s:.0f} s since the previous call, TTL {ttl}"
    else:
        reason = "the prefix was unchanged and within its TTL: the entry was evicted early or never became readable"
    return CacheMiss(expected, current.cache_read_tokens, change, reason)
