"""Synthetic prompts for the cache simulator, built from token counts alone (``estimate`` and ``whatif``).

A conversation becomes a fixed head (tool definitions, system prompt) and one message block per call holding what
that call added to the history. When the history shrinks (compaction) its blocks get new fingerprints (a new
"generation"): nothing of it can be read from before. A rewrite (a changed system prompt, an edited message)
keeps the blocks that lie wholly within the part still unchanged and gives every later block a new fingerprint.
Prompts come unmarked; a strategy places its breakpoints with ``Prompt.with_marks``.

The prompts are built with ``cachesim.PromptBuilder``, so the work per call is proportional to what the call added,
not to the whole history (a long run has thousands of calls of hundreds of blocks each).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from leanloop.cachesim import TTL, Block, Prompt, PromptBuilder, block_fingerprint
from leanloop.tokens import TRAILING_PROMPT_TOKENS

__all__ = ["GrowthPrompts", "growth_prompts", "iter_growth_prompts", "synthetic_block"]


def synthetic_block(path: str, tokens: int, ttl: TTL | None = None, salt: str = "") -> Block:
    """A block whose bytes are identified by ``salt``, ``path`` and its size: equal arguments, equal prefix."""
    return Block(path=path, fingerprint=block_fingerprint(path, f"{salt}{path}:{tokens}"), tokens=tokens, ttl=ttl)


class _GivenCounts:
    """A ``TokenCounter`` for synthetic blocks, which carry their own size."""

    def count_request(self, model: str, blocks: Sequence[tuple[str, Mapping[str, Any]]]) -> list[int]:
        return [int(block["tokens"]) for _, block in blocks]


def _text(name: str, tokens: int) -> dict[str, Any]:
    return {"type": "text", "text": name, "tokens": tokens}


class GrowthPrompts:
    """One synthetic conversation, its prompts made one call at a time (``next``): ``head`` blocks ((name,
    tokens), e.g. tools then system), then the history.

    Block indexes: the head's blocks first (``len(head)`` of them), then the settings pseudo-block, then one block
    per call. A rewritten block gets a new name from its original one and the call that rewrote it, so names (and
    the work to fingerprint them) do not grow with the number of rewrites.
    """

    def __init__(
        self,
        head: Sequence[tuple[str, int]],
        *,
        head_salt: str = "",
        history_salt: str = "",
        tail_tokens: int = TRAILING_PROMPT_TOKENS,
    ) -> None:
        self._builder = PromptBuilder(_GivenCounts())
        self._head_names = [f"{head_salt}{name}" for name, _ in head]
        self._system = [_text(name, tokens) for name, (_, tokens) in zip(self._head_names, head, strict=True)]
        self._history_salt = history_salt
        self._tail_tokens = tail_tokens
        self._messages: list[dict[str, Any]] = []
        self._names: list[str] = []  # each history block's original name
        self._generation = 0
        self._previous = 0
        self._calls = 0

    def next(self, model: str, history_tokens: int, *, unchanged: int | None = None) -> Prompt:
        """The prompt of the next call: ``history_tokens`` of conversation on top of the head; ``unchanged`` (a
        rewrite) is how many leading prompt tokens are the same as at the call before."""
        index = self._calls
        self._calls += 1
        if history_tokens < self._previous:  # compacted: a new generation, nothing of the old history is read
            self._generation += 1
            self._messages, self._names = [], []
            self._previous = 0
        if unchanged is not None and index > 0:
            self._rewrite(unchanged, f"/v{index}")
        name = f"{self._history_salt}gen{self._generation}.{index}"
        self._messages.append({"role": "user", "content": [_text(name, history_tokens - self._previous)]})
        self._names.append(name)
        self._previous = history_tokens
        prompt = self._builder.build({"model": model, "system": self._system, "messages": self._messages})
        if self._tail_tokens != prompt.tail_tokens:
            prompt = Prompt(prompt.model, prompt.blocks, prompt.auto_ttl, self._tail_tokens)
        return prompt

    def _rewrite(self, unchanged: int, version: str) -> None:
        """Rename every block that does not end within the first ``unchanged`` tokens."""
        end = 0
        system = list(self._system)
        for index, block in enumerate(system):
            end += block["tokens"]
            if end > unchanged:
                system[index] = _text(self._head_names[index] + version, block["tokens"])
        self._system = system
        for index, message in enumerate(self._messages):
            block = message["content"][0]
            end += block["tokens"]
            if end > unchanged:
                self._messages[index] = {
                    "role": "user",
                    "content": [_text(self._names[index] + version, block["tokens"])],
                }


def iter_growth_prompts(
    models: Sequence[str],
    head: Sequence[tuple[str, int]],
    history_tokens: Sequence[int],
    *,
    head_salt: str = "",
    history_salt: str = "",
    rewrites: Mapping[int, int] | None = None,
    tail_tokens: int = TRAILING_PROMPT_TOKENS,
) -> Iterator[Prompt]:
    """One prompt per call, made when asked for (``GrowthPrompts``).

    ``history_tokens[i]`` is the conversation size sent by call i (on top of the head); ``models[i]`` its model.
    ``rewrites`` maps a call index to how many leading prompt tokens were unchanged at that call (0: all changed).
    ``tail_tokens`` follow the last block (the opening of the assistant turn, never cached).
    """
    prompts = GrowthPrompts(head, head_salt=head_salt, history_salt=history_salt, tail_tokens=tail_tokens)
    rewrites = rewrites or {}
    for i, (model, tokens) in enumerate(zip(models, history_tokens, strict=True)):
        yield prompts.next(model, tokens, unchanged=rewrites.get(i))


def growth_prompts(
    models: Sequence[str],
    head: Sequence[tuple[str, int]],
    history_tokens: Sequence[int],
    *,
    head_salt: str = "",
    history_salt: str = "",
    rewrites: Mapping[int, int] | None = None,
    tail_tokens: int = TRAILING_PROMPT_TOKENS,
) -> list[Prompt]:
    """``iter_growth_prompts`` as a list."""
    prompts = iter_growth_prompts(
        models,
        head,
        history_tokens,
        head_salt=head_salt,
        history_salt=history_salt,
        rewrites=rewrites,
        tail_tokens=tail_tokens,
    )
    return list(prompts)
