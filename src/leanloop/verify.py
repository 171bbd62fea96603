"""Cache verification: did a call read what an earlier call cached? If not, which block changed.

Two comparisons, both pure:

- ``check_next_call``: the previous call of the same conversation (within a run, or the last call of the state a
  run resumes). Everything it read or wrote should be read now, unless the TTL passed.
- ``check_shared_prefix``: the latest call of another run of the same agent, for a run's first call. Only the
  tools + system prefix is shared, and only while it is within its TTL and that call had finished.
- ``check_after_cut``: the first call after the agent compacted the history. The cut rewrote the conversation, so
  writing it again is expected; the tools + system prefix before it should still be read.
"""

from __future__ import annotations

from dataclasses import dataclass

from leanloop.cachesim import TTL_SECONDS, Prompt, min_cacheable_tokens
from leanloop.explain import CacheMiss, detect_miss, diff_prompts
from leanloop.usage import Usage

__all__ = ["SentCall", "check_after_cut", "check_next_call", "check_shared_prefix"]

_TOLERANCE = 8


@dataclass(frozen=True, slots=True)
class SentCall:
    """What verification keeps of a call: the prompt as sent (marks included), its usage, and when it ran."""

    prompt: Prompt
    usage: Usage
    started_at: float
    ended_at: float


def check_next_call(previous: SentCall, current: SentCall, *, ttl: str) -> CacheMiss | None:
    """``current`` continues ``previous``'s conversation: a miss names the first block that changed."""
    miss = detect_miss(previous.usage, current.usage, gap_s=current.started_at - previous.started_at, ttl=ttl)
    if miss is None:
        return None
    change = diff_prompts(previous.prompt, current.prompt)
    if change is None:
        return miss
    return CacheMiss(miss.expected_read_tokens, miss.actual_read_tokens, change, change.describe())


def _shared_prefix(prompt: Prompt) -> tuple[int, float] | None:
    """Tokens of the longest cached tools/system prefix of ``prompt``, and that breakpoint's TTL in seconds."""
    head = next((i for i, b in enumerate(prompt.blocks) if b.path == "settings"), len(prompt.blocks))
    minimum = min_cacheable_tokens(prompt.model)
    cached = [(prompt.prefix_tokens[i], TTL_SECONDS[t]) for i, t in prompt.breakpoints if i < head]
    cached = [(tokens, ttl) for tokens, ttl in cached if tokens >= minimum]
    return max(cached) if cached else None


def check_shared_prefix(previous: SentCall, current: SentCall) -> CacheMiss | None:
    """``current`` opens a new conversation of the agent whose latest call was ``previous``: the tools + system
    prefix ``previous`` cached should be read, if it finished before ``current`` started and the TTL has not passed.
    """
    return _check_prefix(previous, current, "the tools + system prefix was unchanged since the previous run")


def check_after_cut(previous: SentCall, current: SentCall) -> CacheMiss | None:
    """``current`` is the first call after a compaction of ``previous``'s conversation: the rewrite of the
    conversation is expected, but the tools + system prefix should still be read."""
    return _check_prefix(previous, current, "the tools + system prefix was unchanged by the compaction")


def _check_prefix(previous: SentCall, current: SentCall, unchanged: str) -> CacheMiss | None:
    shared = _shared_prefix(previous.prompt)
    if shared is None or previous.usage.cache_read_tokens + previous.usage.cache_write_tokens == 0:
        return None
    expected, ttl_s = shared
    if previous.ended_at > current.started_at or current.started_at - previous.started_at >= ttl_s:
        return None
    if current.usage.cache_read_tokens + _TOLERANCE >= expected:
        return None
    change = diff_prompts(previous.prompt, current.prompt)
    if change is not None and change.section in ("model", "tools", "system"):
        return CacheMiss(expected, current.usage.cache_read_tokens, change, change.describe())
    reason = f"{unchanged} and within its TTL: the entry was evicted early or never became readable"
    return CacheMiss(expected, current.usage.cache_read_tokens, None, reason)
