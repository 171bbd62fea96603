"""Conversation state -> the kwargs of ``client.messages.create``, with cache breakpoints placed right.

Same history, same bytes: tools are sent in name order, tool inputs and results with sorted keys, and nothing
volatile is added. Breakpoints (at most 4, counting the caller's own):

1. the end of the newest turn (the rolling breakpoint: each request reads what the previous one wrote);
2. the last system block (tools + system, shared by every run of the agent);
3. an intermediate one when a turn added more than ``intermediate_after`` lookback positions since the previous
   rolling breakpoint (the API looks back only 20 positions for an earlier entry);
4. the last tool definition.

A breakpoint whose prefix is below the model's minimum cacheable length is not placed (the API would silently
ignore it), and the builder says so once. TTLs come from the policy: ``prefix_ttl`` for tools and system, ``ttl``
for the conversation's marks; ``ENABLE_PROMPT_CACHING_1H=1`` makes them all 1h. TTLs are kept non-increasing (1h
before 5m) around the caller's own breakpoints. Top-level automatic caching (``params={"cache_control": ...}``)
takes one of the 4 slots and is the rolling breakpoint: leanloop then marks only the earlier blocks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from leanloop.cachesim import MAX_BREAKPOINTS, TTL, Prompt, PromptBuilder, canonical_json, min_cacheable_tokens
from leanloop.errors import ConfigError, InvalidRequestError
from leanloop.tokens import TokenCounter
from leanloop.tools import Tool, sorted_json

__all__ = ["Built", "CachePolicy", "RequestBuilder", "one_hour_everywhere", "sorted_json"]


_TRUE = ("1", "true", "yes", "on")


def one_hour_everywhere() -> bool:
    """``ENABLE_PROMPT_CACHING_1H`` is set to a true value (as in Claude Code)."""
    return os.environ.get("ENABLE_PROMPT_CACHING_1H", "").strip().lower() in _TRUE


@dataclass(frozen=True)
class CachePolicy:
    """Where leanloop puts breakpoints and for how long. ``enabled=False`` sends none at all.

    ``ttl`` is for the conversation's marks (the rolling one and intermediate ones); ``prefix_ttl`` for the marks
    on tools and system, which every run of the agent shares (None: the same as ``ttl``). ``prefix_ttl="1h",
    ttl="5m"`` keeps the shared prefix warm across gaps between runs while each conversation pays the cheaper 5m
    write; the reverse would put a 1h mark after a 5m one, which the API rejects.
    """

    ttl: TTL = "5m"
    prefix_ttl: TTL | None = None
    tools: bool = True
    system: bool = True
    conversation: bool = True
    intermediate_after: int = 15
    # Place a breakpoint when the estimated prefix reaches this share of the minimum: the estimate can be a few
    # percent low, and a breakpoint below the minimum costs nothing but a slot.
    min_length_margin: float = 0.9
    enabled: bool = True

    def __post_init__(self) -> None:
        for name in ("ttl", "prefix_ttl"):
            value = getattr(self, name)
            if value not in ("5m", "1h") and not (name == "prefix_ttl" and value is None):
                raise ConfigError(f"CachePolicy({name}={value!r}): must be '5m' or '1h'")
        if self.prefix_ttl == "5m" and self.ttl == "1h":
            raise ConfigError(
                "CachePolicy(prefix_ttl='5m', ttl='1h'): 1h breakpoints must come before 5m ones, and tools + system "
                "come first; use prefix_ttl='1h' (or the same TTL for both)"
            )
        if not 1 <= self.intermediate_after <= 20:
            raise ConfigError(f"CachePolicy(intermediate_after={self.intermediate_after}): must be 1..20")

    def effective_ttl(self) -> TTL:
        """The conversation marks' TTL; ``ENABLE_PROMPT_CACHING_1H=1`` (as in Claude Code) makes it 1h."""
        return "1h" if one_hour_everywhere() else self.ttl

    def effective_prefix_ttl(self) -> TTL:
        """The tools and system marks' TTL; ``ENABLE_PROMPT_CACHING_1H=1`` makes it 1h."""
        return "1h" if one_hour_everywhere() else (self.prefix_ttl or self.ttl)

    def effective_ttls(self) -> tuple[TTL, TTL]:
        """``(effective_ttl(), effective_prefix_ttl())``, with the environment read once."""
        return ("1h", "1h") if one_hour_everywhere() else (self.ttl, self.prefix_ttl or self.ttl)


@dataclass(frozen=True)
class Built:
    """One request: SDK kwargs, its cache view (``prompt``, marked; ``plain`` without the marks, sharing its blocks
    by identity with the previous request's), and the breakpoints placed as (path, ttl)."""

    kwargs: dict[str, Any]
    prompt: Prompt
    plain: Prompt
    breakpoints: tuple[tuple[str, str], ...]
    notices: tuple[str, ...] = ()


@dataclass
class _Marks:
    """Breakpoints chosen for one request: block index -> (ttl, ours?)."""

    by_index: dict[int, tuple[TTL, bool]] = field(default_factory=dict[int, tuple[TTL, bool]])

    def ours(self) -> int:
        return sum(1 for _, mine in self.by_index.values() if mine)


class RequestBuilder:
    """Builds every request of one conversation. Keeps what it computed for earlier messages."""

    def __init__(
        self,
        *,
        model: str,
        system: str | Sequence[Mapping[str, Any]] | None,
        tools: Sequence[Tool],
        cache: CachePolicy | None,
        params: Mapping[str, Any] | None = None,
        counter: TokenCounter | None = None,
        heads: dict[str, Any] | None = None,
    ) -> None:
        """``heads``: shared with the builders of the agent's other runs (see ``PromptBuilder``)."""
        self.model = model
        self._system = system
        self._tools = [sorted_json(t.definition) for t in sorted(tools, key=lambda t: t.name)]
        self._tools_key = canonical_json(self._tools)  # this list is ours and never changes
        names = [t["name"] for t in self._tools]
        if len(set(names)) != len(names):
            raise ConfigError(f"two tools share a name: {sorted({n for n in names if names.count(n) > 1})}")
        self.cache = cache if cache is not None and cache.enabled else None
        self._params = dict(params or {})
        self._prompts = PromptBuilder(counter, heads=heads)
        self._last_rolling_position: int | None = None
        self._warned_minimum = False

    def build(self, messages: Sequence[Mapping[str, Any]], *, max_tokens: int, model: str | None = None) -> Built:
        model = model or self.model
        base: dict[str, Any] = {"model": model, "max_tokens": max_tokens, **self._params}
        if self._tools:
            base["tools"] = self._tools
        if self._system is not None:
            base["system"] = self._system
        base["messages"] = messages
        try:
            plain = self._prompts.build(base, tools_key=self._tools_key)
            own: list[tuple[int, TTL | None]] = [(i, plain.blocks[i].ttl) for i in plain.marked]
            marks, notices = self._choose(plain, own, model) if self.cache else (_Marks(), [])
            prompt = plain.with_marks({i: ttl for i, (ttl, mine) in marks.by_index.items() if mine})
            breakpoints = prompt.breakpoints  # validates: 4 at most, 1h before 5m
        except InvalidRequestError as error:
            raise ConfigError(f"the request would be rejected by the API: {error.message}") from None
        kwargs = self._apply(base, plain, marks) if marks.ours() else base
        return Built(kwargs, prompt, plain, tuple((prompt.blocks[i].path, t) for i, t in breakpoints), tuple(notices))

    def _choose(self, prompt: Prompt, own: Sequence[tuple[int, TTL | None]], model: str) -> tuple[_Marks, list[str]]:
        assert self.cache is not None
        rolling_ttl, prefix_ttl = self.cache.effective_ttls()
        minimum = min_cacheable_tokens(model)
        floor = minimum * self.cache.min_length_margin
        tokens, positions, blocks = prompt.prefix_tokens, prompt.positions, prompt.blocks
        marks = _Marks({i: (cast(TTL, t), False) for i, t in own})
        slots = MAX_BREAKPOINTS - len(own)
        notices: list[str] = []
        if prompt.auto_ttl is not None:  # automatic caching takes a slot, on the last block that can carry a mark
            slots -= 1
            target = _last_eligible(prompt, len(blocks) - 1, stop=-1)
            if target is not None:
                marks.by_index.setdefault(target, (prompt.auto_ttl, False))  # for TTL order; never written by us

        def place(index: int | None, ttl: TTL) -> None:
            nonlocal slots
            if index is None or slots <= 0 or index in marks.by_index or tokens[index] < floor:
                return
            marks.by_index[index] = (ttl, True)
            slots -= 1

        head = next(i for i, b in enumerate(blocks) if b.path == "settings")  # tools + system come before it
        last = _last_eligible(prompt, len(blocks) - 1, stop=head)
        if self.cache.conversation and last is not None:
            place(last, rolling_ttl)
            if last not in marks.by_index and tokens[last] < floor and not self._warned_minimum:
                self._warned_minimum = True
                notices.append(
                    f"the prompt (about {tokens[last]:,} tokens) is below {model}'s minimum cacheable length "
                    f"({minimum:,}): nothing is cached until the conversation grows past it"
                )
        if self.cache.system:
            place(next((i for i in range(head - 1, -1, -1) if blocks[i].path.startswith("system.")), None), prefix_ttl)
        previous = self._last_rolling_position
        if last is not None and previous is not None and positions[last] - previous > self.cache.intermediate_after:
            target = previous + self.cache.intermediate_after
            index = last
            while index > head and positions[index] > target:
                index -= 1
            place(_last_eligible(prompt, index, stop=head), rolling_ttl)
        if self.cache.tools:
            place(next((i for i in range(head - 1, -1, -1) if blocks[i].path.startswith("tools.")), None), prefix_ttl)
        if last is not None and last in marks.by_index:
            self._last_rolling_position = positions[last]
        return _ordered(marks), notices

    def _apply(self, base: dict[str, Any], prompt: Prompt, marks: _Marks) -> dict[str, Any]:
        """A copy of ``base`` with cache_control on the chosen blocks; the stored history is never modified."""
        kwargs = dict(base)
        messages = list(cast(Sequence[Mapping[str, Any]], base["messages"]))
        for index, (ttl, mine) in marks.by_index.items():
            if not mine:
                continue
            mark = {"type": "ephemeral", "ttl": ttl}
            path = prompt.blocks[index].path.split(".")
            if path[0] == "tools":
                tools = list(kwargs["tools"])
                tools[int(path[1])] = {**tools[int(path[1])], "cache_control": mark}
                kwargs["tools"] = tools
            elif path[0] == "system":
                system = _as_list(kwargs["system"])
                system[int(path[1])] = {**system[int(path[1])], "cache_control": mark}
                kwargs["system"] = system
            else:
                m, k = int(path[1]), int(path[3])
                content = _as_list(messages[m]["content"])
                content[k] = {**content[k], "cache_control": mark}
                messages[m] = {**messages[m], "content": content}
        kwargs["messages"] = messages
        return kwargs


def _last_eligible(prompt: Prompt, start: int, *, stop: int) -> int | None:
    """The last message block at or before ``start`` (and after ``stop``) that can carry a breakpoint."""
    for index in range(start, stop, -1):
        if prompt.blocks[index].auto_eligible:
            return index
    return None


def _as_list(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [dict(cast(Mapping[str, Any], b)) for b in cast(Sequence[Any], content)]


def _ordered(marks: _Marks) -> _Marks:
    """Keep TTLs non-increasing in prefix order by adjusting only leanloop's own marks.

    A caller's 1h mark after ours lifts ours to 1h; a caller's 5m mark before ours lowers ours to 5m.
    """
    indexes = sorted(marks.by_index)
    result = dict(marks.by_index)
    for position, index in enumerate(indexes):
        ttl, mine = result[index]
        if not mine:
            continue
        later_own_1h = any(result[j] == ("1h", False) for j in indexes[position + 1 :])
        earlier_5m = any(result[j][0] == "5m" for j in indexes[:position])
        if later_own_1h:
            ttl = "1h"
        if earlier_5m:
            ttl = "5m"
        result[index] = (ttl, True)
    return _Marks(result)
