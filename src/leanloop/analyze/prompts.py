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

__all__ = ["growth_prompts", "iter_growth_prompts", "synthetic_block"]


def synthetic_block(path: str, tokens: int, ttl: TTL | None = None, salt: str = "") -> Block:
    """A block whose bytes are identified by ``salt``, ``path`` and its size: equal arguments, equal prefix."""
    return Block(path=path, fingerprint=block_fingerprint(path, f"{salt}{path}:{tokens}"), tokens=tokens, ttl=ttl)


class _GivenCounts:
    """A ``TokenCounter`` for synthetic blocks, which carry their own size."""

    def count_request(self, model: str, blocks: Sequence[tuple[str, Mapping[str, Any]]]) -> list[int]:
        return [int(block["tokens"]) for _, block in blocks]


def _text(name: str, tokens: int) -> dict[str, Any]:
    return {"type": "text", "text": name, "tokens": tokens}


def _rewritten(blocks: list[dict[str, Any]], unchanged: int, version: str, start: int = 0) -> int:
    """Rename (so re-fingerprint) every block that does not end within ``unchanged`` tokens; returns the running
    token count, so head and history can be treated as one sequence."""
    end = start
    for index, block in enumerate(blocks):
        end += block["tokens"]
        if end > unchanged:
            blocks[index] = _text(block["text"] + version, block["tokens"])
    return end


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
    """One prompt per call, made when asked for: ``head`` blocks ((name, tokens), e.g. tools then system), then
    the history.

    ``history_tokens[i]`` is the conversation size sent by call i (on top of the head); ``models[i]`` its model.
    ``rewrites`` maps a call index to how many leading prompt tokens were unchanged at that call (0: all changed).
    ``tail_tokens`` follow the last block (the opening of the assistant turn, never cached). Block indexes: the
    head's blocks first (``len(head)`` of them), then the settings pseudo-block, then one block per call.
    """
    builder = PromptBuilder(_GivenCounts())
    system = [_text(f"{head_salt}{name}", tokens) for name, tokens in head]
    messages: list[dict[str, Any]] = []
    generation = 0
    previous = 0
    for i, (model, tokens) in enumerate(zip(models, history_tokens, strict=True)):
        if tokens < previous:
            generation += 1
            messages = []
            previous = 0
        if rewrites and i in rewrites and i > 0:
            version = f"/v{i}"
            system = list(system)
            end = _rewritten(system, rewrites[i], version)
            contents = [m["content"][0] for m in messages]
            _rewritten(contents, rewrites[i], version, start=end)
            messages = [
                m if m["content"][0] is c else {"role": "user", "content": [c]}
                for m, c in zip(messages, contents, strict=True)
            ]
        block = _text(f"{history_salt}gen{generation}.{i}", tokens - previous)
        messages.append({"role": "user", "content": [block]})
        previous = tokens
        prompt = builder.build({"model": model, "system": system, "messages": messages})
        if tail_tokens != prompt.tail_tokens:
            prompt = Prompt(prompt.model, prompt.blocks, prompt.auto_ttl, tail_tokens)
        yield prompt


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
