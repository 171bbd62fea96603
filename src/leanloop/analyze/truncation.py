"""whatif's ``truncation`` strategy: a recorded run's history as leanloop's compaction (``leanloop.history``) would
have kept it, from token counts alone.

A log gives each call's prompt size, not its messages. So a run becomes the task (the first call's history), then
one turn per later call holding what that call added: the previous call's output as the assistant's message, the
rest as a tool result. Each call adds its turn; when the prompt (system prompt + tools, the history, and the few
tokens that open the answer) is over the trigger, ``history.plan`` cuts it as the agent would (old tool results
cleared first, oldest first, then the oldest turns dropped if that is not enough), down to half the trigger, and
``history.apply`` carries the cut out. The calls after a cut send the compacted history plus what they added since.

What the model would have done with a shorter history is not known: each call keeps its recorded output. The
sizes of the placeholders and notes a cut leaves are leanloop's token estimates, and the split of a turn into the
model's message and a tool result is too: the strategy is always an estimate.

The trigger is leanloop's automatic one (80 % of the model's context window) but never above ``DEFAULT_TRIGGER``:
160,000 tokens, 80 % of the smallest window of a current model, which is also below the price tier for prompts
over 200K that some models have. A run that never reaches it is left as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from leanloop.history import Compaction, Sizes, apply, plan
from leanloop.tokens import TRAILING_PROMPT_TOKENS
from leanloop.wording import plural

__all__ = ["DEFAULT_TRIGGER", "Step", "TruncatedHistory", "Truncation", "trigger_for"]

DEFAULT_TRIGGER = 160_000

# Every turn is the same pair of messages: only their sizes (kept beside them) differ. Sharing the objects keeps a
# long run's history small; ``history.apply`` replaces the ones a cut changes with new ones.
_TASK: Mapping[str, Any] = {"role": "user", "content": [{"type": "text", "text": "the task"}]}
_CALL: Mapping[str, Any] = {
    "role": "assistant",
    "content": [{"type": "tool_use", "id": "call", "name": "a tool", "input": {}}],
}
_RESULT: Mapping[str, Any] = {
    "role": "user",
    "content": [{"type": "tool_result", "tool_use_id": "call", "content": "its result"}],
}


def trigger_for(model: str, truncate_at: int | None = None) -> int:
    """The prompt size above which the history of a call to ``model`` is compacted: ``truncate_at`` when given, else
    leanloop's automatic trigger, at most ``DEFAULT_TRIGGER``."""
    if truncate_at is not None:
        return truncate_at
    return min(Compaction().trigger_for(model), DEFAULT_TRIGGER)


@dataclass(frozen=True, slots=True)
class Step:
    """One call under truncation: the history it sends, and whether a cut was made just before it."""

    history_tokens: int
    cut: bool


class TruncatedHistory:
    """One run's history under compaction, a call at a time (``next``).

    ``head_tokens`` (system prompt + tools) are never cut. Memory is two list entries per call since the last cut
    that dropped turns; planning a cut reads the whole history, and happens only when the prompt is over the
    trigger (at most once every ``keep_recent_turns`` calls when a cut cannot bring it under).
    """

    def __init__(self, head_tokens: int, *, truncate_at: int | None = None) -> None:
        self.head_tokens = head_tokens
        self.truncate_at = truncate_at
        self.cuts = 0
        self.largest_prompt = 0  # the largest prompt before any cut: what the trigger is compared with
        self.largest_trigger = 0  # the trigger of that call's model
        self.trigger = 0  # the latest call's trigger
        self._messages: list[Mapping[str, Any]] = []
        self._sizes: list[tuple[int, ...]] = []
        self._history = 0  # tokens of the history kept
        self._recorded = 0  # tokens of the recorded history at the previous call
        self._wait = 0  # calls before the next plan (after one that could not reach the target)

    def next(self, model: str, history_tokens: int, previous_output: int) -> Step:
        """The call whose recorded history is ``history_tokens`` (after ``previous_output`` tokens of the previous
        call's answer): what it sends under compaction."""
        growth = history_tokens - self._recorded
        if not self._messages or growth < 0:  # the first call, or the log's own compaction: start from it
            self._messages, self._sizes, self._history = [_TASK], [(history_tokens,)], history_tokens
        else:
            answer = min(previous_output, growth)
            self._messages += (_CALL, _RESULT)
            self._sizes += ((answer,), (growth - answer,))
            self._history += growth
        self._recorded = history_tokens
        prompt = self.head_tokens + self._history + TRAILING_PROMPT_TOKENS
        trigger = self.trigger = trigger_for(model, self.truncate_at)
        if not self.largest_trigger or prompt - trigger > self.largest_prompt - self.largest_trigger:
            self.largest_prompt, self.largest_trigger = prompt, trigger
        self._wait -= 1
        if prompt <= trigger or self._wait > 0:
            return Step(self._history, cut=False)
        cut = self._cut(model, trigger)
        return Step(self._history, cut)

    def _cut(self, model: str, trigger: int) -> bool:
        policy = Compaction(trigger_tokens=trigger)
        sizes = Sizes(self.head_tokens, tuple(self._sizes))
        cut = plan(self._messages, sizes, policy, model=model)
        self._wait = policy.keep_recent_turns  # whatever happens, the next few calls add too little to change it
        if cut is None:
            return False
        messages = apply(self._messages, cut)
        kept = list(self._sizes)
        for cleared in cut.cleared:
            kept[cleared.message] = Sizes.measure([messages[cleared.message]], model=model).blocks[0]
        if cut.drops:
            kept[cut.drop_from : cut.drop_to] = [(0,)]
            note = cut.tokens_after - self.head_tokens - TRAILING_PROMPT_TOKENS - sum(map(sum, kept))
            kept[cut.drop_from] = (max(note, 0),)
        self._messages, self._sizes = messages, kept
        self._history = sum(map(sum, kept))
        self.cuts += 1
        if self._history + self.head_tokens + TRAILING_PROMPT_TOKENS < trigger:
            self._wait = 0  # under the trigger again: the next call over it may cut at once
        return True


@dataclass
class Truncation:
    """What the truncation strategy did over a whole log: how many cuts in how many runs, at which trigger, and the
    prompt that came closest to it (the largest, when none was cut)."""

    compactions: int = 0
    runs_compacted: int = 0
    triggers: set[int] = field(default_factory=set[int])
    max_prompt_tokens: int = 0
    max_prompt_trigger: int = 0

    def saw(self, history: TruncatedHistory, *, cut: bool, first: bool) -> None:
        """A call of ``history``'s run was made (``cut``: its history cut just before; ``first``: the run's first)."""
        self.compactions += cut
        self.runs_compacted += first
        self.triggers.add(history.trigger)
        closest = history.largest_prompt - history.largest_trigger
        if not self.max_prompt_trigger or closest > self.max_prompt_tokens - self.max_prompt_trigger:
            self.max_prompt_tokens, self.max_prompt_trigger = history.largest_prompt, history.largest_trigger

    @property
    def triggered(self) -> bool:
        return self.compactions > 0

    @property
    def trigger_tokens(self) -> int | None:
        """The trigger, when every call had the same (it depends on the model's context window)."""
        return next(iter(self.triggers)) if len(self.triggers) == 1 else None

    @property
    def label(self) -> str:
        over = f"{self.trigger_tokens:,} tokens" if self.trigger_tokens else "each model's trigger"
        return f"rolling 5m + history compaction over {over}"

    def note(self) -> str:
        """What the strategy did and assumed, or why it has no row."""
        if not self.triggered:
            return (
                f"truncation: never triggers: max prompt {self.max_prompt_tokens:,} < trigger "
                f"{self.max_prompt_trigger:,} (--truncate-at sets another)"
            )
        runs, cuts = plural(self.runs_compacted, "run"), plural(self.compactions, "compaction")
        return (
            f"truncation: the history compacted as leanloop.history does when a prompt passes the trigger (old tool "
            f"results cleared, oldest first, then the oldest turns dropped), down to half of it: {cuts} in {runs}; "
            "each call's growth taken as the previous answer and a tool result, and every answer as recorded (what "
            "the model would have done with less history is not known)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "triggered": self.triggered,
            "trigger_tokens": self.trigger_tokens,
            "compactions": self.compactions,
            "runs_compacted": self.runs_compacted,
            "max_prompt_tokens": self.max_prompt_tokens,
        }
