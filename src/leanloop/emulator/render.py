"""From a policy's ``Reply`` to the content the API would return: ids filled in, output tokens counted, cut at
``max_tokens`` (or where the context window runs out) or at a stop sequence, and split into the fragments a stream
carries. Pure: no I/O, no clock.

Output tokens are counted with ``leanloop.tokens.count_text`` plus the framing the model writes around each part,
fitted to the recorded responses in ``shared/data/anthropic-recordings`` (``tests/test_emulator_output_tokens.py``):

- a text block costs its text; a thinking block its thought; server tool results cost nothing (the server wrote them);
- a tool call costs its name, the JSON of its input, ``TOOL_USE_TOKENS`` and ``TOOL_PARAMETER_TOKENS`` per top-level
  input field (the model writes each parameter in its own tags: that framing is most of a small call's cost);
- a turn that ends by itself adds ``END_OF_TURN_TOKENS`` (a one-word answer is billed 4 tokens, an empty one 3).

Measured against the 7 recorded responses: every one within 7 % (4 parallel tool calls on Haiku 4.5: 208 vs 202,
+3.0 %; a tool-search turn on Sonnet 4.6: 167 vs 175, -4.6 %; markdown-heavy text runs 6-7 % low, the text estimate's
error), all of them together -3.3 %. Before this framing the emulator billed tool calls about half (109 vs 202).

A reply that does not fit in ``max_tokens`` is cut where the budget runs out, in the middle of a text or of a tool
call's JSON, and stops with ``max_tokens`` reporting exactly ``max_tokens`` output tokens, as the API does; when the
context window left by the prompt is the smaller budget the stop reason is ``model_context_window_exceeded``. A
stream then carries the partial JSON (invalid on its own); the non-streaming form holds the input the SDK's stream
accumulator would parse from that partial JSON (complete members kept, a cut-off string, number or literal
dropped), so both forms agree. A stop sequence in a text block ends the turn before it (``stop_reason:
stop_sequence``, the sequence in ``stop_sequence``; its tokens are billed, its text is not returned).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from leanloop.emulator.policies import Reply
from leanloop.emulator.thinking import sign
from leanloop.tokens import count_text

__all__ = [
    "END_OF_TURN_TOKENS",
    "TOOL_PARAMETER_TOKENS",
    "TOOL_USE_TOKENS",
    "Rendered",
    "RenderedBlock",
    "parse_partial_json",
    "render",
]

TOOL_USE_TOKENS = 6  # the wrapper around one call's name and input
TOOL_PARAMETER_TOKENS = 26  # the tags around each top-level input field
END_OF_TURN_TOKENS = 3  # what a turn that ends by itself adds
_TOOL_KINDS = ("tool_use", "server_tool_use", "mcp_tool_use")
_TEXT_ATOM = re.compile(r"\s*\S+|\s+")
# Cut points inside JSON never split an escape sequence, so a cut-off input always parses partially.
_JSON_ATOM = re.compile(r"\\u[0-9a-fA-F]{4}|\\.|\w+|\s+|.", re.DOTALL)
_JSON_FRAGMENT_SIZES = (7, 5, 5, 6, 4, 12, 9)  # characters per input_json_delta, cycled (real ones vary like this)
_TEXT_FRAGMENT_CHARS = 48


@dataclass(frozen=True, slots=True)
class RenderedBlock:
    """One content block: its final form, its ``content_block_start`` shell, and its stream deltas.

    ``delta_tokens[i]`` is the output tokens that delta carries (for pacing the stream).
    """

    block: dict[str, Any]
    start: dict[str, Any]
    deltas: tuple[dict[str, Any], ...]
    delta_tokens: tuple[int, ...]
    tokens: int


@dataclass(frozen=True, slots=True)
class Rendered:
    """The assistant turn as served: blocks, stop reason (and stop sequence), output tokens."""

    blocks: tuple[RenderedBlock, ...]
    stop_reason: str
    output_tokens: int
    stop_sequence: str | None = None

    @property
    def content(self) -> list[dict[str, Any]]:
        return [b.block for b in self.blocks]

    @property
    def thinking_tokens(self) -> int:
        """The share of ``output_tokens`` spent thinking."""
        return sum(b.tokens for b in self.blocks if b.block["type"] == "thinking")

    @property
    def server_tool_use(self) -> dict[str, int] | None:
        """``usage.server_tool_use`` when the turn called a server tool (the API reports it only then)."""
        names = [b.block.get("name", "") for b in self.blocks if b.block["type"] == "server_tool_use"]
        if not names:
            return None
        searches = sum(1 for n in names if str(n).startswith("web_search"))
        fetches = sum(1 for n in names if str(n).startswith("web_fetch"))
        return {"web_search_requests": searches, "web_fetch_requests": fetches}


def render(
    reply: Reply,
    max_tokens: int,
    new_tool_id: Callable[[], str],
    *,
    stop_sequences: Sequence[str] = (),
    context_left: int | None = None,
    omit_thinking: bool = False,
) -> Rendered:
    """Render ``reply`` within ``max_tokens`` output tokens (and the ``context_left`` by the prompt, when given).

    ``new_tool_id`` makes ids for tool_use blocks without; ``omit_thinking`` serves thinking blocks empty (still
    billed), as ``thinking.display: "omitted"`` asks.
    """
    budget = max_tokens if context_left is None else max(0, min(max_tokens, context_left))
    out_of_room = "max_tokens" if budget == max_tokens else "model_context_window_exceeded"
    blocks: list[RenderedBlock] = []
    used = 0
    for raw in reply.content:
        block = _complete(raw, new_tool_id)
        stopped = _stop_sequence(block, stop_sequences)
        if stopped is not None:
            block = {**block, "text": block["text"][: block["text"].index(stopped)]}
        cost = _block_tokens(block)
        if used + cost > budget:
            partial = _cut(block, budget - used)
            if partial is not None:
                blocks.append(_served(partial, omit_thinking))
            return Rendered(tuple(blocks), out_of_room, budget)
        if stopped is None or block["text"]:  # a stop sequence at the very start leaves no block
            blocks.append(_served(_whole(block, cost), omit_thinking))
        used += cost
        if stopped is not None:
            if used + count_text(stopped) > budget:
                return Rendered(tuple(blocks), out_of_room, budget)
            return Rendered(tuple(blocks), "stop_sequence", used + count_text(stopped), stopped)
    if used + END_OF_TURN_TOKENS > budget:  # no room left to end the turn
        return Rendered(tuple(blocks), out_of_room, budget)
    return Rendered(tuple(blocks), reply.resolved_stop_reason, used + END_OF_TURN_TOKENS)


def _stop_sequence(block: Mapping[str, Any], stop_sequences: Sequence[str]) -> str | None:
    """The stop sequence that occurs first in a text block, if any."""
    if block["type"] != "text" or not stop_sequences:
        return None
    text = str(block["text"])
    found = [(text.find(s), s) for s in stop_sequences if s and s in text]
    return min(found)[1] if found else None


# ---------------------------------------------------------------------------------------------------------------
# Blocks


def _complete(raw: Mapping[str, Any], new_tool_id: Callable[[], str]) -> dict[str, Any]:
    block = {k: v for k, v in raw.items() if k != "cache_control"}  # a request-side marker, never in a response
    kind = block.get("type", "text")
    block["type"] = kind
    if kind in _TOOL_KINDS:
        block["id"] = block.get("id") or new_tool_id()
        block["input"] = dict(cast(Mapping[str, Any], block.get("input") or {}))
        if kind == "tool_use":
            block.setdefault("caller", {"type": "direct"})
    elif kind == "text":
        block["text"] = str(block.get("text", ""))
    elif kind == "thinking":
        block["thinking"] = str(block.get("thinking", ""))
        block["signature"] = str(block.get("signature") or "") or sign(block["thinking"])
    return block


def _input_json(block: Mapping[str, Any]) -> str:
    # The API streams tool input with ", " and ": " separators (see the recorded streams).
    return json.dumps(block["input"], ensure_ascii=False)


def _tool_framing(block: Mapping[str, Any]) -> int:
    return count_text(str(block.get("name", ""))) + TOOL_USE_TOKENS


def _tool_input_tokens(json_text: str) -> int:
    """Tokens of a (possibly cut-off) tool input: its JSON plus the tags of each field written so far."""
    return count_text(json_text) + TOOL_PARAMETER_TOKENS * len(parse_partial_json(json_text))


def _block_tokens(block: Mapping[str, Any]) -> int:
    kind = block["type"]
    if kind == "text":
        return count_text(block["text"])
    if kind in _TOOL_KINDS:
        json_text = _input_json(block)
        return _tool_framing(block) + count_text(json_text) + TOOL_PARAMETER_TOKENS * len(block["input"])
    if kind == "thinking":
        return count_text(block["thinking"])
    if str(kind).endswith("_tool_result"):
        return 0  # written by the server, not sampled
    return count_text(json.dumps(block, ensure_ascii=False))


def _whole(block: dict[str, Any], tokens: int) -> RenderedBlock:
    kind = block["type"]
    if kind == "text":
        return _text_block(block["text"], block, tokens)
    if kind in _TOOL_KINDS:
        return _tool_block(block, _input_json(block), block["input"], tokens)
    if kind == "thinking":
        deltas = [{"type": "thinking_delta", "thinking": f} for f in _text_fragments(block["thinking"])]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
        spread = [count_text(d.get("thinking", "")) for d in deltas]
        start = {"type": "thinking", "thinking": "", "signature": ""}
        return RenderedBlock(block, start, tuple(deltas), tuple(spread), tokens)
    return RenderedBlock(block, block, (), (), tokens)


def _served(rendered: RenderedBlock, omit_thinking: bool) -> RenderedBlock:
    """The block as the client gets it: with ``display: "omitted"`` a thinking block is empty (and still billed)."""
    block = rendered.block
    if block["type"] != "thinking" or not omit_thinking:
        return rendered
    signature = sign("") if block["signature"] else ""  # a cut-off thought stays unsigned
    served = {**block, "thinking": "", "signature": signature}
    delta = {"type": "signature_delta", "signature": signature}
    return RenderedBlock(served, rendered.start, (delta,), (rendered.tokens,), rendered.tokens)


def _text_block(text: str, block: dict[str, Any], tokens: int) -> RenderedBlock:
    fragments = _text_fragments(text)
    deltas = tuple({"type": "text_delta", "text": f} for f in fragments)
    final = {**block, "text": text}
    return RenderedBlock(final, {"type": "text", "text": ""}, deltas, _spread(fragments, tokens), tokens)


def _tool_block(block: dict[str, Any], json_text: str, value: dict[str, Any], tokens: int) -> RenderedBlock:
    fragments = ["", *_json_fragments(json_text)]  # the API always opens with an empty fragment
    deltas = tuple({"type": "input_json_delta", "partial_json": f} for f in fragments)
    start: dict[str, Any] = {**block, "input": {}}
    return RenderedBlock({**block, "input": value}, start, deltas, _spread(fragments, tokens), tokens)


def _cut(block: dict[str, Any], budget: int) -> RenderedBlock | None:
    """The part of ``block`` that fits in ``budget`` tokens, or None when nothing of it does."""
    kind = block["type"]
    if budget <= 0:
        return None
    if kind == "text":
        text = _longest_prefix(block["text"], _TEXT_ATOM, budget)
        return _text_block(text, block, count_text(text)) if text else None
    if kind in _TOOL_KINDS:
        framing = _tool_framing(block)
        if budget < framing:
            return None
        json_text = _longest_prefix(_input_json(block), _JSON_ATOM, budget - framing, _tool_input_tokens)
        value = parse_partial_json(json_text)
        return _tool_block(block, json_text, value, framing + _tool_input_tokens(json_text))
    if kind == "thinking":
        thought = _longest_prefix(block["thinking"], _TEXT_ATOM, budget)
        # A thought cut short has no signature: it cannot be sent back (the API does the same).
        return _whole({**block, "thinking": thought, "signature": ""}, count_text(thought)) if thought else None
    return None


def _longest_prefix(text: str, atom: re.Pattern[str], budget: int, cost: Callable[[str], int] = count_text) -> str:
    """The longest prefix of ``text`` ending on an atom boundary whose ``cost`` fits in ``budget``."""
    ends = [m.end() for m in atom.finditer(text)]
    low, high = 0, len(ends)  # invariant: the first `low` atoms fit
    while low < high:
        middle = (low + high + 1) // 2
        if cost(text[: ends[middle - 1]]) <= budget:
            low = middle
        else:
            high = middle - 1
    return text[: ends[low - 1]] if low else ""


# ---------------------------------------------------------------------------------------------------------------
# Stream fragments


def _text_fragments(text: str) -> list[str]:
    """The first word alone (the API's first delta is usually one token), then runs of about 48 characters."""
    atoms = _TEXT_ATOM.findall(text)
    if not atoms:
        return []
    fragments = [atoms[0]]
    current = ""
    for atom in atoms[1:]:
        if current and len(current) + len(atom) > _TEXT_FRAGMENT_CHARS:
            fragments.append(current)
            current = ""
        current += atom
    if current:
        fragments.append(current)
    return fragments


def _json_fragments(json_text: str) -> list[str]:
    fragments: list[str] = []
    current = ""
    size = _JSON_FRAGMENT_SIZES[0]
    for atom in _JSON_ATOM.findall(json_text):
        current += atom
        if len(current) >= size:
            fragments.append(current)
            current = ""
            size = _JSON_FRAGMENT_SIZES[len(fragments) % len(_JSON_FRAGMENT_SIZES)]
    if current:
        fragments.append(current)
    return fragments


def _spread(fragments: Sequence[str], tokens: int) -> tuple[int, ...]:
    """``tokens`` shared out over the fragments by length (for pacing only), summing exactly to ``tokens``."""
    total_chars = sum(len(f) for f in fragments)
    if not fragments:
        return ()
    if total_chars == 0:
        return (tokens, *([0] * (len(fragments) - 1)))
    shares: list[int] = []
    seen = 0
    given = 0
    for fragment in fragments:
        seen += len(fragment)
        upto = tokens * seen // total_chars
        shares.append(upto - given)
        given = upto
    return tuple(shares)


# ---------------------------------------------------------------------------------------------------------------
# Partial JSON, parsed the way the SDK's stream accumulator (jiter, partial mode) does


class _Dropped:
    """A value cut off before it was complete: strings, numbers and literals are dropped, not guessed."""


_DROPPED = _Dropped()
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_SCALAR_RUN = re.compile(r"[-+.\w]+")
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}


def parse_partial_json(text: str) -> dict[str, Any]:
    """The object a cut-off JSON object text stands for so far (``{}`` when nothing complete is in it)."""
    value, _ = _value(text, _skip(text, 0))
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _value(text: str, i: int) -> tuple[Any, int]:
    if i >= len(text):
        return _DROPPED, i
    char = text[i]
    if char == "{":
        return _object(text, i + 1)
    if char == "[":
        return _array(text, i + 1)
    if char == '"':
        return _string(text, i)
    match = _SCALAR_RUN.match(text, i)
    if match is None:
        return _DROPPED, len(text)
    run = match.group()
    if match.end() == len(text) and not _NUMBER.fullmatch(run) and run not in _LITERALS:
        return _DROPPED, len(text)
    if run in _LITERALS:
        return _LITERALS[run], match.end()
    return json.loads(run), match.end()


def _string(text: str, i: int) -> tuple[Any, int]:
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == '"':
            return json.loads(text[i : j + 1]), j + 1
        j += 1
    return _DROPPED, len(text)


def _object(text: str, i: int) -> tuple[dict[str, Any], int]:
    result: dict[str, Any] = {}
    while True:
        i = _skip(text, i)
        if i >= len(text) or text[i] == "}":
            return result, i + 1
        key, i = _string(text, i)
        i = _skip(text, i)
        if key is _DROPPED or i >= len(text):
            return result, len(text)
        value, i = _value(text, _skip(text, i + 1))  # past the ':'
        if value is _DROPPED:
            return result, len(text)
        result[key] = value
        i = _skip(text, i)
        if i < len(text) and text[i] == ",":
            i += 1


def _array(text: str, i: int) -> tuple[list[Any], int]:
    result: list[Any] = []
    while True:
        i = _skip(text, i)
        if i >= len(text) or text[i] == "]":
            return result, i + 1
        value, i = _value(text, i)
        if value is _DROPPED:
            return result, len(text)
        result.append(value)
        i = _skip(text, i)
        if i < len(text) and text[i] == ",":
            i += 1
