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
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

__all__ = [
    "TRAILING_PROMPT_TOKENS",
    "Estimator",
    "TokenCounter",
    "count_text",
]

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


def _ascii_class(code: int) -> str:
    ch = chr(code)
    if "a" <= ch <= "z":
        return "l"
    if "A" <= ch <= "Z":
        return "U"
    if ch.isdigit():
        return "d"
    if ch == " ":
        return "s"
    return "n" if ch.isspace() else "p"


def _other_class(ch: str) -> str:
    """Classes of non-ASCII characters, as Python's re sees them: \\s, \\d, else punctuation-like."""
    if ch.isspace():
        return "n"
    return "d" if ch.isdecimal() else "q"


# Text is first mapped to one class letter per character (C speed), then each piece kind is found by a split.
_CLASSES = {code: _ascii_class(code) for code in range(128)}
_KEEP = {
    "words": "lU",
    "digits": "d",
    "other": "pq",
}
_ONLY = {kind: {ord(c): (c if c in keep else " ") for c in "lUdsnpq"} for kind, keep in _KEEP.items()}
_SPACES = {ord(c): ("x" if c in "lUdpq" else c) for c in "lUdsnpq"}


def _classes(text: str) -> str:
    classes = text.translate(_CLASSES)
    if not classes.isascii():  # non-ASCII characters pass through the table: classify the distinct ones
        classes = classes.translate({ord(ch): _other_class(ch) for ch in set(classes) if not ch.isascii()})
    return classes


@lru_cache(maxsize=4096)
def _word_shape_tokens(shape: str) -> int:
    return _word_tokens(shape.replace("l", "a").replace("U", "A"))


def _other_tokens(shape: str) -> int:
    return -(-shape.count("p") // 2) + shape.count("q")  # ceil(ascii / _PUNCT_CHARS_PER_TOKEN) + non-ASCII


def count_text(text: str) -> int:
    """Estimated tokens of plain text (no framing). Long texts (system prompts, tool definitions) are remembered."""
    return _count_long(text) if len(text) > 2048 else _count(text)


@lru_cache(maxsize=256)
def _count_long(text: str) -> int:
    return _count(text)


def _count(text: str) -> int:
    """The count itself.

    The pieces are those of a BPE pre-tokenizer: a word (by length and case), a group of up to 3 digits, a
    punctuation run, a whitespace run; a lone space between two pieces belongs to the next one and costs nothing.
    """
    classes = _classes(text)
    words = Counter(classes.translate(_ONLY["words"]).split())
    digits = Counter(classes.translate(_ONLY["digits"]).split())
    other = Counter(classes.translate(_ONLY["other"]).split())
    segments = classes.translate(_SPACES).split("x")
    spaces = Counter(segments)
    joining = spaces["s"] - (segments[-1] == "s")
    return (
        sum(_word_shape_tokens(shape) * n for shape, n in words.items())
        + sum((len(run) + 2) // 3 * n for run, n in digits.items())
        + sum(_other_tokens(shape) * n for shape, n in other.items())
        + (len(segments) - spaces[""])
        - joining
    )


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
        # one pass over "id name input": the separating spaces join the next piece, so the count is the sum's
        text = f"{block.get('id', '')} {block.get('name', '')} {_json_text(block.get('input', {}))}"
        return count_text(text) + _TOOL_USE_TOKENS
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            return count_text(f"{block.get('tool_use_id', '')} {content}") + _TOOL_RESULT_TOKENS
        return count_text(str(block.get("tool_use_id", ""))) + _content_tokens(content) + _TOOL_RESULT_TOKENS
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
