"""Deterministic local token estimates for Messages API requests.

Nothing is downloaded: Claude's tokenizer is not public, so leanloop estimates. The estimator splits text the way
BPE pre-tokenizers do (a word with its leading space, a run of digits, a run of punctuation, a run of whitespace)
and charges each piece by length, then adds the fixed framing the API wraps around messages, blocks and tools.

Calibration, measured by ``python benchmarks/bench_tokens.py`` (figures in ``benchmarks/results/tokens.json``).
Prompts: every request in ``shared/data/anthropic-recordings`` whose whole prompt (input + cache write + cache
read) was recorded. These are in sample: the framing constants below were fitted on them.

===============================================  ======  =========  ======
prompt                                            real    estimated  error
===============================================  ======  =========  ======
cache_real_api #1 (sonnet-4-5, long text)         1,114     1,115    +0.1 %
cache_real_api #2 (+ assistant turn)              1,532     1,508    -1.6 %
parallel_tool_calls #1 (haiku-4-5, 1 tool)          423       423     0.0 %
parallel_tool_calls #2 (+ 4 tool results)           771       773    +0.3 %
tool_search_streaming #1 (not fitted)               702       489   -30.3 %
tool_search_streaming #2 (not fitted)             1,007       751   -25.4 %
===============================================  ======  =========  ======

The tool-search requests are not fitted: the API renders their server tool and ``defer_loading`` tools in ways a
client cannot see, so expect a large under-estimate with server tools. Out of sample, the four model turns of a
real OpenHands trajectory (claude-3-5-sonnet: text and tool calls, against the billed output tokens) come out
at -1.9 %, +3.9 %, +12.1 % and -16.5 %: short turns are dominated by framing, long code arguments by text. Good for
budgets and what-if projections, not for billing: billing always uses the usage the API reports.

Images count their pixels (``image_tokens``: width * height / 750 after the API's resize), read from the PNG,
JPEG, GIF or WebP header in the data; an image given by URL or file id counts as the largest size the model
takes. Text documents count their text; PDFs ``PDF_TOKENS_PER_PAGE`` per page (``UNKNOWN_PDF_PAGES`` pages when
they cannot be counted). Pixels are not text: the newer tokenizer's +30 % applies to text only.

Any object with ``count_request(model, request) -> list[int]`` (one count per prefix block, see ``cachesim``)
can replace the estimator, for example one backed by the real ``count_tokens`` endpoint.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol, cast

__all__ = [
    "PDF_TOKENS_PER_PAGE",
    "TRAILING_PROMPT_TOKENS",
    "UNKNOWN_PDF_PAGES",
    "Estimator",
    "TokenCounter",
    "count_text",
    "image_size",
    "image_tokens",
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

# Images (Anthropic's vision guide): about width * height / 750 tokens, after the API scales an image down, keeping
# its aspect ratio, to the model's largest native size: a long edge of 1,568 px and about 1,600 tokens (1.2 MP)
# before Claude 4.7; 2,576 px and about 3.75 MP from Claude 4.7 on (secondary sources, measured with count_tokens).
_PIXELS_PER_TOKEN = 750
_VISION_LIMITS = {False: (1568, 1_200_000), True: (2576, 3_750_000)}  # by "Claude 4.7 or later": (edge, pixels)
# PDFs: every page is sent as its text and as an image of the page. Anthropic's PDF guide gives 1,500-3,000 tokens
# per page depending on how dense it is; the middle of that range is charged per page.
PDF_TOKENS_PER_PAGE = 2250
UNKNOWN_PDF_PAGES = 5  # a PDF by URL or file id: its pages cannot be counted here (the API's usage will tell)
_HEADER_CHARS = 64 * 1024  # base64 characters decoded to find an image's size (JPEG may need more)


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
    "spaces": "sn",
}
_ONLY = {kind: {ord(c): (c if c in keep else " ") for c in "lUdsnpq"} for kind, keep in _KEEP.items()}
_MAX_SHAPES = 4096  # distinct piece shapes remembered per kind (random ids have many)


def _classes(text: str) -> str:
    classes = text.translate(_CLASSES)
    if not classes.isascii():  # non-ASCII characters pass through the table: classify the distinct ones
        classes = classes.translate({ord(ch): _other_class(ch) for ch in set(classes) if not ch.isascii()})
    return classes


class _ShapeTokens(dict[str, int]):
    """Tokens of a piece by its shape (its class letters), worked out once per shape: looking pieces up with
    ``map(table.__getitem__, pieces)`` runs at C speed, about twice as fast as calling an lru_cache'd function."""

    def __init__(self, tokens: Callable[[str], int]) -> None:
        super().__init__()
        self._tokens = tokens

    def __missing__(self, shape: str) -> int:
        if len(self) >= _MAX_SHAPES:
            self.clear()
        tokens = self[shape] = self._tokens(shape)
        return tokens


_WORD_TOKENS = _ShapeTokens(lambda shape: _word_tokens(shape.replace("l", "a").replace("U", "A")))
_DIGIT_TOKENS = _ShapeTokens(lambda run: (len(run) + 2) // 3)
_OTHER_TOKENS = _ShapeTokens(lambda shape: -(-shape.count("p") // 2) + shape.count("q"))  # ceil(ascii / 2) + rest


def count_text(text: str) -> int:
    """Estimated tokens of plain text (no framing). Long texts (system prompts, tool definitions) are remembered."""
    return _count_long(text) if len(text) > 2048 else _count(text)


@lru_cache(maxsize=256)
def _count_long(text: str) -> int:
    return _count(text)


def _count(text: str) -> int:
    """The count itself.

    The pieces are those of a BPE pre-tokenizer: a word (by length and case), a group of up to 3 digits, a
    punctuation run, a whitespace run; a lone space before a piece belongs to that piece and costs nothing.
    Every step runs at C speed (translate, split, count, map over the per-shape tables).
    """
    classes = _classes(text)
    spaces = classes.translate(_ONLY["spaces"]).split()  # the whitespace runs
    joining = spaces.count("s") - (classes.endswith("s") and spaces[-1] == "s")  # lone spaces, but a trailing one
    if "q" in classes:  # non-ASCII: runs mixing it with ASCII punctuation, by shape
        other = sum(map(_OTHER_TOKENS.__getitem__, classes.translate(_ONLY["other"]).split()))
    else:  # a run of L punctuation characters is ceil(L / 2) = L - floor(L / 2) tokens: two counts, no split
        other = classes.count("p") - classes.count("pp")
    return (
        sum(map(_WORD_TOKENS.__getitem__, classes.translate(_ONLY["words"]).split()))
        + sum(map(_DIGIT_TOKENS.__getitem__, classes.translate(_ONLY["digits"]).split()))
        + other
        + len(spaces)
        - joining
    )


@lru_cache(maxsize=256)
def _uses_new_tokenizer(model: str) -> bool:
    """Claude 4.7 and later (Opus 4.7/4.8, every 5.x model, Fable, Mythos) use the larger tokenizer."""
    match = re.search(r"claude-(?:[a-z]+-)?(\d+)(?:-(\d))?", model)
    if match is None:
        return False
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    return major >= 5 or (major == 4 and minor >= 7)


_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # made once: json.dumps makes one per call


def _json_text(value: Any) -> str:
    return _COMPACT_JSON.encode(value)


# ---------------------------------------------------------------------------------------------------------------
# Images and documents


def image_tokens(width: int, height: int, *, model: str) -> int:
    """Tokens of a ``width`` x ``height`` px image sent to ``model``: its pixels over 750, once the API has scaled it
    down to the model's largest native size (the same on every tokenizer: pixels are not text)."""
    edge, pixels = _VISION_LIMITS[_uses_new_tokenizer(model)]
    scale = min(1.0, edge / max(width, height, 1), math.sqrt(pixels / max(width * height, 1)))
    resized_w, resized_h = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    return math.ceil(resized_w * resized_h / _PIXELS_PER_TOKEN)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, GIF or WebP file's header; None if it is none of those or cut short."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + (bits >> 14 & 0x3FFF)
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


_JPEG_FRAMES = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The frame header's size, walking the segments (EXIF and thumbnails come before it)."""
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return None


def _decoded(source: Mapping[str, Any], prefix: int | None = None) -> bytes | None:
    """The bytes of a base64 source (the first ``prefix`` characters' worth if given); None if it has none."""
    data = source.get("data")
    if source.get("type") != "base64" or not isinstance(data, str | bytes):
        return None
    text = data if prefix is None else data[: prefix - prefix % 4]
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError):
        return None


def _image_tokens(block: Mapping[str, Any], model: str) -> int:
    """An image block's tokens from the pixel size in its data; the largest size the model takes when the data
    cannot be read (a URL, a file id, an unknown format)."""
    source = cast(Mapping[str, Any], block.get("source") or {})
    head = _decoded(source, _HEADER_CHARS)
    size = image_size(head) if head is not None else None
    if size is None and head is not None and head.startswith(b"\xff\xd8"):  # a JPEG frame header further on
        whole = _decoded(source)
        size = image_size(whole) if whole is not None else None
    width, height = size if size is not None else (100_000, 100_000)
    return image_tokens(width, height, model=model)


_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
_PDF_COUNT = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b")


def _pdf_pages(data: bytes) -> int:
    """Pages of a PDF: its page objects, or the page tree's count when they sit in compressed object streams."""
    pages = len(_PDF_PAGE.findall(data))
    counts = [int(a or b) for a, b in _PDF_COUNT.findall(data)]
    return max(pages, *counts, 1) if counts else max(pages, 1)


def _document_tokens(block: Mapping[str, Any], model: str) -> tuple[int, int]:
    """(text tokens, page-image tokens) of a document block: a text document by its text, a PDF by its pages."""
    source = cast(Mapping[str, Any], block.get("source") or {})
    text = sum(count_text(str(block[key])) for key in ("title", "context") if block.get(key))
    kind = source.get("type")
    if kind == "text":
        return text + count_text(str(source.get("data", ""))), 0
    if kind == "content":
        inner = _content_tokens(source.get("content"), model)
        return text + inner[0], inner[1]
    data = _decoded(source)
    pages = _pdf_pages(data) if data is not None else UNKNOWN_PDF_PAGES
    return text, pages * PDF_TOKENS_PER_PAGE


# ---------------------------------------------------------------------------------------------------------------
# Blocks: (text tokens, media tokens), so that the newer tokenizer's factor applies to the text only


def _content_tokens(content: Any, model: str) -> tuple[int, int]:
    """Tokens of a tool_result's or a document's content: a string or a list of text/image blocks."""
    if isinstance(content, str):
        return count_text(content), 0
    if isinstance(content, list):
        text = media = 0
        for item in cast(list[Any], content):
            if isinstance(item, Mapping):
                item_text, item_media = _block_tokens("user", cast(Mapping[str, Any], item), model)
                text, media = text + item_text + _BLOCK_TOKENS, media + item_media
        return text, media
    return (0 if content is None else count_text(_json_text(content))), 0


def _block_tokens(section: str, block: Mapping[str, Any], model: str) -> tuple[int, int]:
    kind = block.get("type", "text")
    if section == "tools":
        body = {k: v for k, v in block.items() if k != "cache_control"}
        return count_text(_json_text(body)) + _TOOL_DEFINITION_TOKENS, 0
    if kind == "text":
        return count_text(str(block.get("text", ""))) + _BLOCK_TOKENS, 0
    if kind in ("tool_use", "server_tool_use"):
        # one pass over "id name input": the separating spaces join the next piece, so the count is the sum's
        text = f"{block.get('id', '')} {block.get('name', '')} {_json_text(block.get('input', {}))}"
        return count_text(text) + _TOOL_USE_TOKENS, 0
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            return count_text(f"{block.get('tool_use_id', '')} {content}") + _TOOL_RESULT_TOKENS, 0
        text, media = _content_tokens(content, model)
        return count_text(str(block.get("tool_use_id", ""))) + text + _TOOL_RESULT_TOKENS, media
    if kind in ("thinking", "redacted_thinking"):
        return count_text(str(block.get("thinking", block.get("data", "")))) + _BLOCK_TOKENS, 0
    if kind in ("image", "document"):
        text, media = _document_tokens(block, model) if kind == "document" else (0, _image_tokens(block, model))
        return text + _BLOCK_TOKENS, media
    body = {k: v for k, v in block.items() if k != "cache_control"}
    return count_text(_json_text(body)) + _BLOCK_TOKENS, 0


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
            tokens, media = _block_tokens(role, block, model)
            if role == "tools" and not saw_tool and block.get("type", "custom") == "custom":
                tokens += _TOOL_PREAMBLE_TOKENS
                saw_tool = True
            if section.endswith("+"):
                tokens += _MESSAGE_TOKENS
            counts.append(max(1, round(tokens * factor) + media))
        return counts
