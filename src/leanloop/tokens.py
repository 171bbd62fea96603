"""Deterministic local token estimates for Messages API requests.

Nothing is downloaded: Claude's tokenizer is not public, so leanloop estimates. The estimator splits text the way
BPE pre-tokenizers do (a word with its leading space, a run of digits, a run of punctuation, a run of whitespace)
and charges each piece by length, then adds the fixed framing the API wraps around messages, blocks and tools.

Calibration against every request in ``shared/data/anthropic-recordings`` whose true ``input_tokens +
cache_creation_input_tokens + cache_read_input_tokens`` was recorded (run ``python benchmarks/bench_tokens.py``):

==========================================  ======  ==========  ======
request                                      real    estimated   error
==========================================  ======  ==========  ======
cache_real_api #1 (sonnet-4-5, long text)    1,114     1,118     +0.4 %
cache_real_api #2 (+ assistant turn)         1,532     1,536     +0.3 %
parallel_tool_calls #1 (haiku-4-5, 1 tool)     423       419     -0.9 %
parallel_tool_calls #2 (+ 4 tool results)      771       763     -1.0 %
==========================================  ======  ==========  ======

The two tool-search requests are left out: their server tool and ``defer_loading`` tools are rendered by the API
in ways a client cannot see. Expect about +-10 % on other text (code and non-English text vary most): good for
budgets and what-if projections, not for billing. Billing always uses the usage the API reports.

Any object with ``count_request(model, request) -> list[int]`` (one count per prefix block, see ``cachesim``)
can replace the estimator, for example one backed by the real ``count_tokens`` endpoint.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

__all__ = [
    "TRAILING_PROMPT_TOKENS",
    "Estimator",
    "TokenCounter",
    "count_text",
]

# Pieces, in the order a BPE pre-tokenizer finds them: a word with its leading space, digits, punctuation, space.
_PIECE = re.compile(r" ?[A-Za-z]+| ?\d{1,3}| ?[^\sA-Za-z\d]+|\s+")
_SHORT_WORD = 10  # common words up to this length are one token
_LONG_WORD_CHARS_PER_TOKEN = 6.0
_RANDOM_CHARS_PER_TOKEN = 2.5  # ids and base64-ish runs (mixed case) split into short pieces
_PUNCT_CHARS_PER_TOKEN = 2.0

# The API ends every prompt with the opening of the assistant turn; it is never cached (the "3" that real
# responses report as input_tokens when everything else was read from the cache).
TRAILING_PROMPT_TOKENS = 3
_MESSAGE_TOKENS = 3  # role header and turn separator
_BLOCK_TOKENS = 1
_TOOL_USE_TOKENS = 17  # tool_use framing around id, name and input
_TOOL_RESULT_TOKENS = 13
_TOOL_DEFINITION_TOKENS = 8
# Tool use switches on a system prompt the API adds before the first tool definition. Calibrated on
# claude-haiku-4-5 (Anthropic's docs list 313-346 tokens depending on tool_choice for Claude 4 models).
_TOOL_PREAMBLE_TOKENS = 258
_NEW_TOKENIZER_FACTOR = 1.3  # Claude 4.7+ tokenizers produce about 30 % more tokens for the same text


class TokenCounter(Protocol):
    """Counts the tokens of each prefix block of a request (tools, system blocks, message blocks, in order)."""

    def count_request(self, model: str, blocks: Sequence[tuple[str, Mapping[str, Any]]]) -> list[int]: ...


def _word_tokens(word: str) -> int:
    if word[1:].islower() or len(word) == 1:  # "word", "Word"
        return 1 if len(word) <= _SHORT_WORD else math.ceil(len(word) / _LONG_WORD_CHARS_PER_TOKEN)
    if word.isupper():  # "USD", "HTTP"
        return 1 if len(word) <= 4 else math.ceil(len(word) / 3)
    return math.ceil(len(word) / _RANDOM_CHARS_PER_TOKEN)  # "cfEnoQaPviGdVXA"


@lru_cache(maxsize=65536)
def _count_text_cached(text: str) -> int:
    total = 0
    for piece in _PIECE.findall(text):
        stripped = piece.lstrip(" ")
        if not stripped:
            total += 1
        elif stripped[0].isascii() and stripped[0].isalpha():
            total += _word_tokens(stripped)
        elif stripped[0].isdigit() or stripped.isspace():
            total += 1
        else:
            ascii_part = sum(1 for ch in stripped if ch.isascii())
            total += math.ceil(ascii_part / _PUNCT_CHARS_PER_TOKEN) + (len(stripped) - ascii_part)
    return total


def count_text(text: str) -> int:
    """Estimated tokens of plain text (no framing)."""
    if len(text) > 4096:  # long texts are not worth caching whole; count them in cached chunks instead
        return sum(_count_text_cached(text[i : i + 4096]) for i in range(0, len(text), 4096))
    return _count_text_cached(text)


def _uses_new_tokenizer(model: str) -> bool:
    """Claude 4.7 and later (Opus 4.7/4.8, every 5.x model, Fable, Mythos) use the larger tokenizer."""
    match = re.search(r"claude-(?:[a-z]+-)?(\d+)(?:-(\d))?", model)
    if match is None:
        return False
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    return major >= 5 or (major == 4 and minor >= 7)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _content_tokens(content: Any) -> int:
    """Tokens of a tool_result's content: a string or a list of text/image blocks."""
    if isinstance(content, str):
        return count_text(content)
    if isinstance(content, list):
        total = 0
        for item in content:  # pyright: ignore[reportUnknownVariableType]
            if isinstance(item, Mapping):
                total += _block_tokens("user", item) + _BLOCK_TOKENS  # pyright: ignore[reportUnknownArgumentType]
        return total
    return 0 if content is None else count_text(_json_text(content))


def _block_tokens(section: str, block: Mapping[str, Any]) -> int:
    kind = block.get("type", "text")
    if section == "tools":
        body = {k: v for k, v in block.items() if k != "cache_control"}
        return count_text(_json_text(body)) + _TOOL_DEFINITION_TOKENS
    if kind == "text":
        return count_text(str(block.get("text", ""))) + _BLOCK_TOKENS
    if kind in ("tool_use", "server_tool_use"):
        named = count_text(str(block.get("id", ""))) + count_text(str(block.get("name", "")))
        return named + count_text(_json_text(block.get("input", {}))) + _TOOL_USE_TOKENS
    if kind == "tool_result":
        return (
            count_text(str(block.get("tool_use_id", ""))) + _content_tokens(block.get("content")) + _TOOL_RESULT_TOKENS
        )
    if kind in ("thinking", "redacted_thinking"):
        return count_text(str(block.get("thinking", block.get("data", "")))) + _BLOCK_TOKENS
    if kind in ("image", "document"):
        # Images are billed by pixels (w*h/750); without decoding we charge a mid-size image.
        return 1600
    body = {k: v for k, v in block.items() if k != "cache_control"}
    return count_text(_json_text(body)) + _BLOCK_TOKENS


class Estimator:
    """The default ``TokenCounter``: deterministic, offline, calibrated as described in the module docstring."""

    def count_request(self, model: str, blocks: Sequence[tuple[str, Mapping[str, Any]]]) -> list[int]:
        """Tokens per prefix block.

        ``blocks`` are ``(section, block)`` pairs in prefix order, as ``cachesim.request_blocks`` yields them:
        section is ``"tools"``, ``"system"``, or a message role, with ``"+"`` appended when the block opens a new
        message (the message framing is charged to that block).
        """
        factor = _NEW_TOKENIZER_FACTOR if _uses_new_tokenizer(model) else 1.0
        counts: list[int] = []
        saw_tool = False
        for section, block in blocks:
            role = section.rstrip("+")
            tokens = _block_tokens(role, block)
            if role == "tools" and not saw_tool and block.get("type", "custom") == "custom":
                tokens += _TOOL_PREAMBLE_TOKENS
                saw_tool = True
            if section.endswith("+"):
                tokens += _MESSAGE_TOKENS
            counts.append(max(1, round(tokens * factor)))
        return counts
