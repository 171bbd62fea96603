"""History compaction: keep a long run inside the context window without breaking the cache on every call.

Every call re-sends the whole transcript, so a long run grows until it no longer fits the model's context window.
Trimming a little on every call (a sliding window) changes the prefix each time, so every call rewrites the whole
conversation to the cache at 1.25x instead of reading it at 0.1x. Compaction here is rare and big instead:

- nothing happens until the prompt is over the **trigger** (by default 80 % of the model's context window, less the
  room the answer needs), so a normal run is never touched;
- then one cut brings it down to the **target** (by default half the trigger): everything after the cut point is
  written to the cache once, and read again by every later call until the prompt reaches the trigger again;
- the task (the leading user messages) and the newest ``keep_recent_turns`` turns are kept verbatim, as the very same
  objects; a turn is an assistant message and the user message(s) after it, so a ``tool_use`` and its
  ``tool_result`` are always kept or removed together;
- ``clear_tool_results`` (the default) replaces old tool results, oldest first, with a short placeholder saying what
  was removed and how big it was (what Anthropic's server-side ``clear_tool_uses`` edit does, API-FACTS 9). Only
  when clearing every old result cannot reach the target does it also drop the oldest turns. ``drop_turns`` removes
  whole old turns and leaves one note (or a summary) in their place;
- the result is a transcript the API accepts: it starts with the same user message, every kept tool_use is answered
  in the next user message, and no tool_result is left without its tool_use.

The functions are pure; the agent does the I/O (and may ask a cheap model for a summary in between, see
``summary_request``):

>>> messages = [{"role": "user", "content": "Why does checkout fail?"}]
>>> for n in range(40):
...     use = {"type": "tool_use", "id": f"t{n}", "name": "read_log", "input": {"part": n}}
...     result = {"type": "tool_result", "tool_use_id": f"t{n}", "content": "GET /pay 200 12ms " * 400}
...     messages += [{"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}]
>>> sizes = Sizes.measure(messages, model="claude-haiku-4-5", head_tokens=3000)
>>> cut = plan(messages, sizes, Compaction(trigger_tokens=60_000), model="claude-haiku-4-5")
>>> print(cut.describe())
history compacted: 100,972 -> 29,932 tokens, 30 tool results cleared; the next call rewrites ~27K tokens to the cache
>>> messages = apply(messages, cut)
>>> messages[2]["content"][0]["content"][:80]
'[tool result cleared by leanloop to fit the context window: this read_log result'

Context windows come from ``leanloop.models`` (API-FACTS 3.2). A model it does not know is assumed to have 200K, the
smallest window of a current Claude model: compacting a 1M-window run early costs one cache rewrite, while
overflowing a 200K window ends the run. When the API reports the window itself (a 400 "prompt is too long: N tokens
> M maximum"), pass it as ``window=`` and the trigger is never above what that window allows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from leanloop.cachesim import Prompt
from leanloop.errors import ConfigError
from leanloop.models import context_window
from leanloop.tokens import TRAILING_PROMPT_TOKENS, Estimator, TokenCounter, count_text
from leanloop.tools import cap_text

__all__ = [
    "AUTO_TRIGGER_SHARE",
    "CLEARED_PREFIX",
    "NOTE_PREFIX",
    "SUMMARY_SYSTEM",
    "Cleared",
    "Compaction",
    "Cut",
    "Sizes",
    "Strategy",
    "apply",
    "context_window",
    "plan",
    "summary_request",
]

Strategy = Literal["clear_tool_results", "drop_turns"]
_STRATEGIES = ("clear_tool_results", "drop_turns")

AUTO_TRIGGER_SHARE = 0.8  # the automatic trigger: this share of the context window
_MIN_SAVING = 50  # a tool result is cleared only if that saves at least this many tokens

CLEARED_PREFIX = "[tool result cleared by leanloop"
NOTE_PREFIX = "[leanloop compacted this conversation"
SUMMARY_SYSTEM = (
    "You summarise the earlier part of an AI agent's working transcript so that the agent can continue its task "
    "without it. Keep what the agent will need: facts it learned, decisions and their reasons, names, paths, ids "
    "and values it found, what it tried that failed and why, and what is still open. Leave out raw tool output it "
    "has already digested. Write plain, dense prose or short bullet points, in the language of the transcript, "
    "with no preamble."
)
# A summary request caps each tool result in the transcript it renders: the summariser needs the gist, not the
# whole file, and a small request keeps the summary call cheap.
_SUMMARY_RESULT_TOKENS = 2000
_SUMMARY_MARGIN_TOKENS = 2000  # room for the system prompt and framing when capping a summary request


def _check_whole(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"Compaction({name}={value!r}): a whole number, at least 1")


@dataclass(frozen=True)
class Compaction:
    """When and how to compact a run's history.

    ``trigger_tokens`` None is automatic: ``AUTO_TRIGGER_SHARE`` of the model's context window, and never more than
    the window less ``max_tokens`` (the answer has to fit too). A cut brings the prompt down to ``target_ratio`` of
    the trigger. ``keep_recent_turns`` newest turns are never touched. ``summarize_with`` names a (cheap) model
    that summarises the turns a cut drops, in a side call of at most ``summary_max_tokens``; None leaves a note.
    """

    trigger_tokens: int | None = None
    target_ratio: float = 0.5
    keep_recent_turns: int = 4
    strategy: Strategy = "clear_tool_results"
    summarize_with: str | None = None
    summary_max_tokens: int = 1024

    def __post_init__(self) -> None:
        if self.trigger_tokens is not None:
            _check_whole("trigger_tokens", self.trigger_tokens)
        _check_whole("keep_recent_turns", self.keep_recent_turns)
        _check_whole("summary_max_tokens", self.summary_max_tokens)
        ratio = cast(object, self.target_ratio)
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio < 1:
            raise ConfigError(f"Compaction(target_ratio={ratio!r}): a share of the trigger, above 0 and below 1")
        if self.strategy not in _STRATEGIES:
            raise ConfigError(f"Compaction(strategy={self.strategy!r}): one of {', '.join(_STRATEGIES)}")
        model = cast(object, self.summarize_with)
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise ConfigError(f"Compaction(summarize_with={model!r}): a model id, or None")

    def trigger_for(self, model: str, max_tokens: int = 0, *, window: int | None = None) -> int:
        """The prompt size (tokens) above which a cut happens, for ``model`` answering in up to ``max_tokens``.

        ``window`` is the context window as the API reported it: the trigger is then never above the automatic one
        for that window, even when ``trigger_tokens`` is set higher."""
        size = window or context_window(model)
        automatic = max(1, min(math.floor(size * AUTO_TRIGGER_SHARE), size - max_tokens))
        if self.trigger_tokens is None:
            return automatic
        return self.trigger_tokens if window is None else min(self.trigger_tokens, automatic)

    def target_for(self, model: str, max_tokens: int = 0, *, window: int | None = None) -> int:
        """The prompt size a cut aims for."""
        return math.floor(self.trigger_for(model, max_tokens, window=window) * self.target_ratio)


@dataclass(frozen=True)
class Sizes:
    """Token counts of a request: tools + system (``head_tokens``), each content block of each message, and the
    few tokens that open the assistant's turn. ``scale`` converts new blocks' estimates to the same units."""

    head_tokens: int
    blocks: tuple[tuple[int, ...], ...]
    tail_tokens: int = TRAILING_PROMPT_TOKENS
    scale: float = 1.0

    @property
    def total(self) -> int:
        return self.head_tokens + sum(map(sum, self.blocks)) + self.tail_tokens

    def message(self, index: int) -> int:
        return sum(self.blocks[index])

    @classmethod
    def measure(
        cls,
        messages: Sequence[Mapping[str, Any]],
        *,
        model: str,
        head_tokens: int = 0,
        counter: TokenCounter | None = None,
    ) -> Sizes:
        """Estimate every block (``leanloop.tokens``), as the cache simulator and the request builder do."""
        counter = counter or _ESTIMATOR
        return cls(head_tokens, tuple(tuple(_count_message(counter, model, m)) for m in messages))

    @classmethod
    def from_prompt(cls, prompt: Prompt, *, messages: int, scale: float = 1.0) -> Sizes:
        """The counts a request builder already made (``Built.plain``), times ``scale`` (the agent's ratio of real
        to estimated tokens). ``messages`` is the number of messages in the request."""
        per_message: list[list[int]] = [[] for _ in range(messages)]
        head = 0
        for block in prompt.blocks:
            if block.message is None:
                head += block.tokens
            else:
                per_message[block.message].append(block.tokens)

        def scaled(tokens: int) -> int:
            return round(tokens * scale)

        return cls(
            scaled(head),
            tuple(tuple(map(scaled, counts)) for counts in per_message),
            prompt.tail_tokens,
            scale,
        )


@dataclass(frozen=True, slots=True)
class Cleared:
    """One tool result a cut replaces with ``placeholder``: message ``message``, content block ``block``."""

    message: int
    block: int
    tool_use_id: str
    tool: str
    tokens: int
    placeholder: str


@dataclass(frozen=True)
class Cut:
    """What one compaction does, decided by ``plan`` and carried out by ``apply``.

    ``messages[drop_from:drop_to]`` (the oldest turns, and an earlier compaction's note) are replaced by one note
    message when ``drop_to > drop_from``. ``tokens_after`` is the predicted prompt after the cut (with a summary at
    its full ``summary_max_tokens`` when one is planned). The cut changes the transcript from message ``start`` on,
    so the next call writes about ``rewrite_tokens`` to the cache: everything after the tools and system prompt,
    since no live cache entry ends inside the old history.
    """

    strategy: Strategy
    trigger_tokens: int
    target_tokens: int
    tokens_before: int
    tokens_after: int
    start: int
    cleared: tuple[Cleared, ...]
    drop_from: int
    drop_to: int
    dropped_turns: int
    dropped_tokens: int
    dropped_tools: tuple[str, ...]
    summarize_with: str | None
    summary_max_tokens: int
    rewrite_tokens: int

    @property
    def reaches_target(self) -> bool:
        return self.tokens_after <= self.target_tokens

    @property
    def drops(self) -> bool:
        return self.drop_to > self.drop_from

    def note(self, summary: str | None = None) -> str:
        """The text that stands for the dropped turns: what they were, and the summary when there is one."""
        return _note(self.dropped_turns, self.dropped_tokens, self.dropped_tools, summary, self.summarize_with)

    def describe(self) -> str:
        """One line for a Notice: what was removed, and what the cut costs in cache writes."""
        done: list[str] = []
        if self.cleared:
            done.append(f"{len(self.cleared)} tool result{'s' * (len(self.cleared) != 1)} cleared")
        if self.dropped_turns:
            turns = f"{self.dropped_turns} old turn{'s' * (self.dropped_turns != 1)} dropped"
            done.append(turns + (f" (summarised by {self.summarize_with})" if self.summarize_with else ""))
        line = (
            f"history compacted: {self.tokens_before:,} -> {self.tokens_after:,} tokens, {', '.join(done)}; the next "
            f"call rewrites ~{_short(self.rewrite_tokens)} tokens to the cache"
        )
        if not self.reaches_target:
            line += (
                f"; still above the {self.target_tokens:,}-token target: the task and the newest turns alone are "
                "that big"
            )
        return line


# ---------------------------------------------------------------------------------------------------------------
# Planning


@dataclass(frozen=True)
class _Layout:
    """Where the task, the turns and an earlier compaction note are. Turn ``t`` is
    ``messages[starts[t]:starts[t + 1]]``; the last one runs to the end."""

    head_end: int  # the task: messages[:head_end], the user messages before the first assistant message
    note_at: int | None  # an earlier compaction's note, the last message of the head
    starts: tuple[int, ...]
    length: int

    def turn_end(self, turn: int) -> int:
        return self.starts[turn + 1] if turn + 1 < len(self.starts) else self.length


def _layout(messages: Sequence[Mapping[str, Any]]) -> _Layout:
    roles = [m.get("role") for m in messages]
    head_end = next((i for i, role in enumerate(roles) if role == "assistant"), len(roles))
    starts = tuple(
        i for i in range(head_end, len(roles)) if roles[i] == "assistant" and (i == 0 or roles[i - 1] != "assistant")
    )
    last = head_end - 1
    note_at = last if last >= 1 and _is_note(messages[last]) else None
    return _Layout(head_end, note_at, starts, len(messages))


def _blocks(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):  # even an empty one, as the cache simulator counts it
        return [{"type": "text", "text": content}]
    if isinstance(content, Sequence):
        return [cast(Mapping[str, Any], b) for b in cast(Sequence[Any], content) if isinstance(b, Mapping)]
    return []


def _is_note(message: Mapping[str, Any]) -> bool:
    blocks = _blocks(message)
    return (
        message.get("role") == "user"
        and len(blocks) == 1
        and blocks[0].get("type") == "text"
        and str(blocks[0].get("text", "")).startswith(NOTE_PREFIX)
    )


def _is_cleared(block: Mapping[str, Any]) -> bool:
    content = block.get("content")
    return isinstance(content, str) and content.startswith(CLEARED_PREFIX)


def _count_message(counter: TokenCounter, model: str, message: Mapping[str, Any]) -> list[int]:
    role = str(message.get("role", "user"))
    blocks = _blocks(message)
    sections = [role + ("+" if k == 0 else "") for k in range(len(blocks))]
    return counter.count_request(model, list(zip(sections, blocks, strict=True)))


def _tool_names(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {
        str(b.get("id")): str(b.get("name", "a tool"))
        for m in messages
        if m.get("role") == "assistant"
        for b in _blocks(m)
        if b.get("type") == "tool_use"
    }


def _placeholder(tool: str, tokens: int) -> str:
    return (
        f"{CLEARED_PREFIX} to fit the context window: this {tool} result had about {tokens:,} tokens. Call the tool "
        "again if you need it.]"
    )


def _note(turns: int, tokens: int, tools: Sequence[str], summary: str | None, summarizer: str | None) -> str:
    calls = f", {len(tools)} tool call{'s' * (len(tools) != 1)}: {', '.join(sorted(set(tools)))}" if tools else ""
    head = (
        f"{NOTE_PREFIX} to fit the context window: {turns} earlier turn{'s' * (turns != 1)} (about {tokens:,} "
        f"tokens{calls}) were removed."
    )
    if summary is None or not summary.strip():
        return head + " Call a tool again if you need something from them.]"
    return f"{head} A summary of them by {summarizer or 'a model'}:]\n\n{summary.strip()}"


@dataclass(frozen=True, slots=True)
class _Candidate:
    """An old tool result that could be cleared, in turn ``turn``, and what clearing it saves."""

    turn: int
    cleared: Cleared
    saving: int


@dataclass(frozen=True, slots=True)
class _Drop:
    """Dropping the oldest turns: the span replaced by the note, what it held, and what dropping saves."""

    drop_from: int
    drop_to: int
    tokens: int
    tools: tuple[str, ...]
    saving: int


class _Planner:
    """The arithmetic of one plan, in the units of ``sizes``."""

    def __init__(
        self,
        messages: Sequence[Mapping[str, Any]],
        sizes: Sizes,
        policy: Compaction,
        model: str,
        counter: TokenCounter,
    ) -> None:
        self.messages, self.sizes, self.policy, self.model, self.counter = messages, sizes, policy, model, counter
        self.layout = _layout(messages)
        self.old_turns = max(0, len(self.layout.starts) - policy.keep_recent_turns)
        self.names = _tool_names(messages)
        self._candidates: list[_Candidate] | None = None

    def new_block_tokens(self, block: Mapping[str, Any], *, opens_message: bool) -> int:
        section = "user+" if opens_message else "user"
        return round(self.counter.count_request(self.model, [(section, block)])[0] * self.sizes.scale)

    def clearable(self, first_turn: int = 0) -> list[_Candidate]:
        """Old tool results from turn ``first_turn`` on, oldest first."""
        if self._candidates is None:
            self._candidates = [c for turn in range(self.old_turns) for c in self._turn_candidates(turn)]
        return [c for c in self._candidates if c.turn >= first_turn]

    def _turn_candidates(self, turn: int) -> list[_Candidate]:
        found: list[_Candidate] = []
        for index in range(self.layout.starts[turn], self.layout.turn_end(turn)):
            if self.messages[index].get("role") != "user":
                continue
            for position, block in enumerate(_blocks(self.messages[index])):
                if block.get("type") != "tool_result" or _is_cleared(block):
                    continue
                tokens = self.sizes.blocks[index][position]
                use_id = str(block.get("tool_use_id"))
                tool = self.names.get(use_id, "tool")
                text = _placeholder(tool, tokens)
                new = self.new_block_tokens(
                    {"type": "tool_result", "tool_use_id": use_id, "content": text}, opens_message=position == 0
                )
                if tokens - new >= _MIN_SAVING:
                    found.append(_Candidate(turn, Cleared(index, position, use_id, tool, tokens, text), tokens - new))
        return found

    def drop(self, turns: int) -> _Drop:
        """Dropping the oldest ``turns`` turns, and an earlier compaction's note with them."""
        layout = self.layout
        drop_from = layout.note_at if layout.note_at is not None else layout.head_end
        if turns == 0:
            return _Drop(drop_from, drop_from, 0, (), 0)
        drop_to = layout.starts[turns]  # turns <= old_turns < number of turns: a turn is always kept
        removed = sum(self.sizes.message(i) for i in range(drop_from, drop_to))
        span = self.messages[layout.head_end : drop_to]
        tools = tuple(
            self.names[str(b.get("tool_use_id"))] for m in span for b in _blocks(m) if _answers(b, self.names)
        )
        summarizer = self.policy.summarize_with
        turn_tokens = sum(self.sizes.message(i) for i in range(layout.head_end, drop_to))
        if summarizer is not None:  # reserve room for the longest summary the side call may return
            text = _note(turns, turn_tokens, tools, "x", summarizer)
            note = self.new_block_tokens({"type": "text", "text": text}, opens_message=True)
            note += self.policy.summary_max_tokens
        else:
            text = _note(turns, turn_tokens, tools, None, None)
            note = self.new_block_tokens({"type": "text", "text": text}, opens_message=True)
        return _Drop(drop_from, drop_to, turn_tokens, tools, removed - note)

    def turns_needed(self, need: int, *, clear_rest: bool) -> int:
        """The fewest oldest turns to drop for the savings to reach ``need`` (every old turn if nothing is enough)."""
        for turns in range(1, self.old_turns + 1):
            saving = self.drop(turns).saving
            if clear_rest:
                saving += sum(c.saving for c in self.clearable(turns))
            if saving >= need:
                return turns
        return self.old_turns


def _answers(block: Mapping[str, Any], names: Mapping[str, str]) -> bool:
    return block.get("type") == "tool_result" and str(block.get("tool_use_id")) in names


def plan(
    messages: Sequence[Mapping[str, Any]],
    sizes: Sizes,
    policy: Compaction,
    *,
    model: str,
    max_tokens: int = 0,
    force: bool = False,
    window: int | None = None,
    counter: TokenCounter | None = None,
) -> Cut | None:
    """The cut that brings the prompt from over the trigger down to the target, or None when there is nothing to do.

    None when the prompt (``sizes.total``) is not over the trigger, unless ``force`` (after the API said the prompt
    or the answer did not fit: the prompt as it is then counts as the trigger, so the cut brings it down to
    ``target_ratio`` of itself, or lower); and None when nothing can be cut: the task and the newest turns are all
    there is, or nothing left to cut would make the prompt smaller. ``window``: the context window the API
    reported, if it did (see ``Compaction.trigger_for``).
    """
    if len(sizes.blocks) != len(messages):
        raise ConfigError(f"plan: sizes has {len(sizes.blocks)} messages, the transcript {len(messages)}")
    trigger = policy.trigger_for(model, max_tokens, window=window)
    total = sizes.total
    if total <= trigger and not force:
        return None
    planner = _Planner(messages, sizes, policy, model, counter or _ESTIMATOR)
    if planner.old_turns == 0:
        return None
    trigger = min(trigger, total)
    target = math.floor(trigger * policy.target_ratio)
    need = total - target
    cleared: list[_Candidate] = []
    turns = 0
    if policy.strategy == "clear_tool_results":
        cleared = _oldest_reaching(planner.clearable(), need)
        if sum(c.saving for c in cleared) < need:  # clearing everything is not enough: drop the oldest turns too
            turns = planner.turns_needed(need, clear_rest=True)
            cleared = planner.clearable(turns)
    else:
        turns = planner.turns_needed(need, clear_rest=False)
    drop = planner.drop(turns)
    saving = drop.saving + sum(c.saving for c in cleared)
    if saving <= 0:
        return None
    after = total - saving
    return Cut(
        strategy=policy.strategy,
        trigger_tokens=trigger,
        target_tokens=target,
        tokens_before=total,
        tokens_after=after,
        start=drop.drop_from if turns else min(c.cleared.message for c in cleared),
        cleared=tuple(c.cleared for c in cleared),
        drop_from=drop.drop_from,
        drop_to=drop.drop_to,
        dropped_turns=turns,
        dropped_tokens=drop.tokens,
        dropped_tools=drop.tools,
        summarize_with=policy.summarize_with if turns else None,
        summary_max_tokens=policy.summary_max_tokens,
        rewrite_tokens=after - sizes.head_tokens - sizes.tail_tokens,
    )


def _oldest_reaching(candidates: list[_Candidate], need: int) -> list[_Candidate]:
    """The oldest candidates whose savings reach ``need`` (all of them if they cannot)."""
    chosen: list[_Candidate] = []
    saved = 0
    for candidate in candidates:
        if saved >= need:
            break
        chosen.append(candidate)
        saved += candidate.saving
    return chosen


# ---------------------------------------------------------------------------------------------------------------
# Carrying a cut out


def apply(messages: Sequence[Mapping[str, Any]], cut: Cut, *, summary: str | None = None) -> list[Mapping[str, Any]]:
    """The transcript after ``cut``. Messages the cut does not touch are the same objects (the request builder
    re-uses what it computed for them). ``summary`` is the text of the summary side call, if one was made."""
    if max([cut.drop_to, *(c.message + 1 for c in cut.cleared)]) > len(messages):
        raise ConfigError("apply: the cut was planned for a longer transcript")
    out = list(messages)
    by_message: dict[int, list[Cleared]] = {}
    for cleared in cut.cleared:
        by_message.setdefault(cleared.message, []).append(cleared)
    for index, items in by_message.items():
        out[index] = _with_cleared(messages[index], index, items)
    if cut.drops:
        out[cut.drop_from : cut.drop_to] = [{"role": "user", "content": [{"type": "text", "text": cut.note(summary)}]}]
    return out


def _with_cleared(message: Mapping[str, Any], index: int, items: Sequence[Cleared]) -> Mapping[str, Any]:
    content = list(_blocks(message))
    for cleared in items:
        block: Mapping[str, Any] = content[cleared.block] if cleared.block < len(content) else {}
        if block.get("type") != "tool_result" or str(block.get("tool_use_id")) != cleared.tool_use_id:
            raise ConfigError(f"apply: messages.{index}.content.{cleared.block} is not the tool result the cut planned")
        content[cleared.block] = {**block, "content": cleared.placeholder}
    return {**message, "content": content}


# ---------------------------------------------------------------------------------------------------------------
# The summary side call


def _render_block(block: Mapping[str, Any], names: Mapping[str, str]) -> str | None:
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "tool_use":
        arguments = json.dumps(block.get("input", {}), ensure_ascii=False, sort_keys=True)
        return f"[called {block.get('name')} with {arguments}]"
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            parts = [cast(Mapping[str, Any], p) for p in cast(list[Any], content) if isinstance(p, Mapping)]
            text = "\n".join(str(p.get("text", "")) for p in parts)
        else:
            text = "" if content is None else str(content)
        text, _ = cap_text(text, _SUMMARY_RESULT_TOKENS)
        error = " (an error)" if block.get("is_error") else ""
        return f"[{names.get(str(block.get('tool_use_id')), 'tool')} returned{error}:]\n{text}"
    if kind in ("thinking", "redacted_thinking"):
        return None
    return f"[{kind} block]"


def _render(messages: Sequence[Mapping[str, Any]], names: Mapping[str, str]) -> str:
    lines: list[str] = []
    for message in messages:
        parts = [p for p in (_render_block(b, names) for b in _blocks(message)) if p]
        if parts:
            lines.append(f"{str(message.get('role', 'user')).upper()}: " + "\n".join(parts))
    return "\n\n".join(lines)


def summary_request(
    messages: Sequence[Mapping[str, Any]], cut: Cut, *, model: str | None = None, max_tokens: int | None = None
) -> dict[str, Any]:
    """The kwargs of ``client.messages.create`` for the side call that summarises what ``cut`` drops.

    The system prompt is always the same text, and the call carries no tools: it never touches the main
    conversation's cache. The transcript is rendered as text (tool results capped to about 2,000 tokens each, the
    whole to the summariser's window); the task comes first so the summary keeps what matters for it.
    """
    if not cut.drops:
        raise ConfigError("summary_request: this cut drops no turns, so there is nothing to summarise")
    model = model or cut.summarize_with
    if model is None:
        raise ConfigError("summary_request: no summary model (set Compaction(summarize_with=...) or pass model=)")
    max_tokens = max_tokens or cut.summary_max_tokens
    names = _tool_names(messages)
    task = _render(messages[: cut.drop_from], names)  # the task; an earlier note is summarised with the turns
    dropped, _ = cap_text(
        _render(messages[cut.drop_from : cut.drop_to], names),
        max(1, context_window(model) - max_tokens - _SUMMARY_MARGIN_TOKENS - count_text(task)),
    )
    words = max(50, int(max_tokens * 0.6))
    prompt = (
        f"<task>\n{task}\n</task>\n\n<transcript>\n{dropped}\n</transcript>\n\n"
        f"Summarise the transcript above for the agent working on the task, in at most {words} words."
    )
    return {
        "model": model,
        "max_tokens": max_tokens,
        "system": SUMMARY_SYSTEM,
        "messages": [{"role": "user", "content": prompt}],
    }


def _short(tokens: int) -> str:
    return f"{tokens / 1000:,.0f}K" if tokens >= 10_000 else f"{tokens:,}"


_ESTIMATOR = Estimator()
