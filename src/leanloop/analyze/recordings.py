"""Recorded Messages API traffic as CallRecords: VCR-style YAML cassettes and raw SSE response bodies.

A cassette holds whole requests, so each call gets its real prefix (tools, system, messages) as ``BlockPrint``s and
the change from the previous request of the cassette is named with before/after text (``leanloop.explain``). Block
token counts are estimates (``notes["prefix_estimated"]``); usage is the recorded one.

In a streamed body the final usage is the ``message_delta``'s (cumulative, it overwrites ``message_start``); the
5m/1h split, which only ``message_start`` carries, is kept when the totals still agree.

Cassettes are test fixtures of a few requests: they are parsed whole (YAML has no line-per-record form).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from leanloop.analyze.changes import change_to_dict
from leanloop.cachesim import Prompt, PromptBuilder
from leanloop.errors import LeanloopError
from leanloop.explain import diff_prompts
from leanloop.pricing import Pricing, default_pricing
from leanloop.trace import BlockPrint, CallRecord
from leanloop.usage import Usage

__all__ = [
    "Recorded",
    "StreamedMessage",
    "error_responses",
    "iter_cassette",
    "iter_sse_file",
    "load_cassette",
    "read_sse",
]

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Recorded:
    """What the importer of one file found besides calls: unusable interactions and skipped ones."""

    problems: list[tuple[int, str]] = field(default_factory=list[tuple[int, str]])
    skipped: dict[str, int] = field(default_factory=dict[str, int])

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


@dataclass
class StreamedMessage:
    message: dict[str, Any]
    usage: dict[str, Any]
    stop_reason: str | None
    error: str | None = None


def error_responses(status: object) -> str:
    """The skip reason of an answer with an HTTP error (``(s)``-marked, ``leanloop.wording``): the API bills none."""
    return f"error response(s) (HTTP {status}): not billed"


def read_sse(lines: Iterable[str]) -> StreamedMessage | None:
    """The message of a streamed response body: ``message_start`` updated by every ``message_delta``."""
    message: dict[str, Any] | None = None
    usage: dict[str, Any] = {}
    stop_reason: str | None = None
    error: str | None = None
    for raw in lines:
        line = raw.strip()
        if not line.startswith("data:"):
            continue
        try:
            event = json.loads(line[5:])
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        event = cast(dict[str, Any], event)
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            message = cast(dict[str, Any], event["message"])
            usage = dict(cast(dict[str, Any], message.get("usage") or {}))
        elif kind == "message_delta":
            _merge_delta(usage, cast(dict[str, Any], event.get("usage") or {}))
            delta = cast(dict[str, Any], event.get("delta") or {})
            stop_reason = delta.get("stop_reason") or stop_reason
        elif kind == "error":
            error = str(cast(dict[str, Any], event.get("error") or {}).get("type", "error"))
    if message is None:
        return None
    return StreamedMessage(message, usage, stop_reason, error)


def _merge_delta(usage: dict[str, Any], delta: Mapping[str, Any]) -> None:
    for key, value in delta.items():
        if value is not None:
            usage[key] = value
    split = usage.get("cache_creation")
    if isinstance(split, Mapping) and "cache_creation_input_tokens" in delta:
        split = cast(Mapping[str, Any], split)
        parts = sum(v for v in split.values() if isinstance(v, int))
        if parts != usage["cache_creation_input_tokens"]:
            del usage["cache_creation"]  # the split no longer adds up: Usage marks the writes as estimated


def iter_sse_file(path: Path, *, pricing: Pricing | None = None) -> Iterator[CallRecord]:
    """The one call of a raw SSE response body (for example a ``*.response.sse`` capture)."""
    with path.open(encoding="utf-8", errors="replace") as file:
        streamed = read_sse(file)
    if streamed is None:
        return
    model = str(streamed.message.get("model", ""))
    usage = Usage.from_api(streamed.usage)
    notes: dict[str, Any] = {"format": "sse"}
    if streamed.error:
        notes["stream_error"] = streamed.error
    yield CallRecord(
        model=model,
        usage=usage,
        cost=(pricing or default_pricing()).cost(model, usage),
        iteration=1,
        run_id=path.stem,
        stop_reason=streamed.stop_reason,
        message_id=_str(streamed.message.get("id")),
        source=f"{path}:1",
        notes=notes,
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _body(part: Mapping[str, Any]) -> Any:
    """A cassette's request or response body: ``parsed_body``, or ``body``/``body.string`` as JSON or text."""
    if part.get("parsed_body") is not None:
        return part["parsed_body"]
    body = part.get("body")
    if isinstance(body, Mapping):
        body = cast(Mapping[str, Any], body).get("string")
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return body
    return body


def _response_message(response: Mapping[str, Any]) -> StreamedMessage | None:
    body = _body(response)
    if isinstance(body, str):
        return read_sse(body.splitlines())
    if isinstance(body, Mapping) and isinstance(cast(Mapping[str, Any], body).get("usage"), Mapping):
        body = cast(dict[str, Any], body)
        return StreamedMessage(body, dict(body["usage"]), _str(body.get("stop_reason")))
    return None


def _prints(prompt: Prompt) -> tuple[BlockPrint, ...]:
    return tuple(BlockPrint(b.path, b.fingerprint.hex()[:16], b.tokens) for b in prompt.blocks if b.tokens)


def _breakpoints(prompt: Prompt) -> tuple[tuple[str, str], ...]:
    try:
        return tuple((prompt.blocks[index].path, ttl) for index, ttl in prompt.breakpoints)
    except LeanloopError:
        return ()


def load_cassette(path: Path) -> list[Any] | None:
    """The interactions of a VCR cassette, or None when the YAML is not one."""
    with path.open(encoding="utf-8", errors="replace") as file:
        data = yaml.load(file, Loader=_LOADER)
    if not isinstance(data, Mapping) or not isinstance(cast(Mapping[str, Any], data).get("interactions"), list):
        return None
    return cast(list[Any], cast(Mapping[str, Any], data)["interactions"])


def iter_cassette(path: Path, found: Recorded, *, pricing: Pricing | None = None) -> Iterator[CallRecord]:
    """One CallRecord per successful Messages API interaction of a cassette; others are skipped or reported."""
    pricing = pricing or default_pricing()
    interactions = load_cassette(path)
    if interactions is None:
        found.problems.append((1, "YAML without 'interactions': not a VCR cassette"))
        return
    builder = PromptBuilder()
    previous: Prompt | None = None
    iteration = 0
    for number, interaction in enumerate(interactions, 1):
        if not isinstance(interaction, Mapping):
            found.problems.append((number, f"interaction {number} is not a mapping"))
            continue
        interaction = cast(Mapping[str, Any], interaction)
        request = cast(Mapping[str, Any], interaction.get("request") or {})
        response = cast(Mapping[str, Any], interaction.get("response") or {})
        uri = str(request.get("uri", ""))
        if "/v1/messages" not in uri or "count_tokens" in uri or "/batches" in uri:
            found.skip("interaction(s) outside the Messages API")
            continue
        status = cast(Mapping[str, Any], response.get("status") or {}).get("code", 200)
        if status != 200:
            found.skip(error_responses(status))
            continue
        streamed = _response_message(response)
        if streamed is None:
            found.problems.append((number, f"interaction {number}: no usage in the response"))
            continue
        body = _body(request)
        prompt = builder.build(cast(Mapping[str, Any], body)) if isinstance(body, Mapping) else None
        model = str(streamed.message.get("model") or (prompt.model if prompt else ""))
        usage = Usage.from_api(streamed.usage)
        iteration += 1
        notes: dict[str, Any] = {"format": "recording", "interaction": number}
        if prompt is not None:
            notes["prefix_estimated"] = True
            notes["message_tokens"] = sum(b.tokens for b in prompt.blocks if b.message is not None)
            change = diff_prompts(previous, prompt) if previous is not None else None
            if change is not None:
                notes["prefix_change"] = change_to_dict(change)
            previous = prompt
        yield CallRecord(
            model=model,
            usage=usage,
            cost=pricing.cost(model, usage),
            iteration=iteration,
            run_id=path.stem,
            stop_reason=streamed.stop_reason,
            prefix=_prints(prompt) if prompt else (),
            breakpoints=_breakpoints(prompt) if prompt else (),
            message_id=_str(streamed.message.get("id")),
            source=f"{path}:interaction {number}",
            notes=notes,
        )
