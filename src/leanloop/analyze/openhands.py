"""OpenHands trajectories as CallRecords: a JSON array of events, the same array wrapped as ``{"trajectory": [...]}``,
or an event store (``sessions/<id>/events/<n>.json``, one event per file).

The model response that produced an action is attached to each event it caused (the action and its observation,
and every action of a response with several tool calls), so one response appears on several events: each response
is counted once, keyed by its id. Usage is LiteLLM's: ``prompt_tokens`` includes cache writes and reads, and the
5m/1h split of cache writes is not recorded (their cost is marked as estimated, priced at the 5m rate).

A trajectory is read element by element (``reading.iter_json_array``), so a large one is never held whole.

Whether anyone waited on the calls: a trajectory in which a user message follows the agent's work, or the agent
stops ``awaiting_user_input``, had a person in the loop (``interactive``); otherwise the log cannot tell.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from leanloop.analyze.claude_code import more_complete
from leanloop.errors import ConfigError
from leanloop.pricing import Pricing, default_pricing
from leanloop.tokens import count_text
from leanloop.trace import CallRecord
from leanloop.usage import Usage

__all__ = ["OpenHandsImport", "is_openhands_event", "usage_from_litellm"]

_TEXT_SAMPLE = 4000


def is_openhands_event(data: Any) -> bool:
    """True for an element of an OpenHands event stream (used to detect the format from content)."""
    if not isinstance(data, Mapping):
        return False
    data = cast(Mapping[str, Any], data)
    return "source" in data and ("action" in data or "observation" in data)


def usage_from_litellm(usage: Mapping[str, Any]) -> Usage:
    """LiteLLM's OpenAI-shaped usage (``prompt_tokens`` includes cached tokens) in Anthropic's terms."""
    prompt = int(usage.get("prompt_tokens") or 0)
    details = usage.get("prompt_tokens_details")
    cached = cast(Mapping[str, Any], details).get("cached_tokens") if isinstance(details, Mapping) else None
    read = int(usage.get("cache_read_input_tokens") or cached or 0)
    write = int(usage.get("cache_creation_input_tokens") or 0)
    uncached = prompt - read - write
    if uncached < 0:  # some LiteLLM versions leave cache writes out of prompt_tokens
        uncached = max(prompt - read, 0)
    return Usage.from_api(
        {
            "input_tokens": uncached,
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": read,
            "output_tokens": int(usage.get("completion_tokens") or 0),
        }
    )


def _model(name: str) -> str:
    """``anthropic/claude-x`` (LiteLLM's provider prefix) -> ``claude-x``."""
    return name.rsplit("/", 1)[-1]


def _event_time(event: Mapping[str, Any]) -> float | None:
    value = event.get("timestamp")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _event_tokens(event: Mapping[str, Any]) -> int:
    text = event.get("content") if "observation" in event else event.get("message")
    if not isinstance(text, str) or not text:
        return 0
    sample = text[:_TEXT_SAMPLE]
    return count_text(sample) * len(text) // len(sample)


@dataclass(slots=True)
class _Response:
    model: str
    usage: Usage
    started_at: float | None
    source: str
    message_tokens: int
    stop_reason: str | None


def _waits_for_a_person(event: Mapping[str, Any], responses: int) -> bool:
    """A user message after the agent has answered, or the agent stopping to await the user's input."""
    if event.get("source") == "user" and event.get("action") == "message" and responses:
        return True
    extras = event.get("extras")
    state = cast(Mapping[str, Any], extras).get("agent_state") if isinstance(extras, Mapping) else None
    return state == "awaiting_user_input"


@dataclass
class OpenHandsImport:
    """Collects the model responses of one trajectory, event by event; ``records()`` yields each once."""

    path: Path
    pricing: Pricing | None = None
    run_id: str = ""
    duplicates: int = 0
    interactive: bool = False
    _responses: dict[str, _Response] = field(default_factory=dict[str, _Response])
    _message_tokens: int = 0

    def feed(self, event: Any, *, line: int, source: str | None = None) -> str | None:
        """Take one event (``source``: where it is, for the report; default ``path:line``); a problem message when
        it is not an event."""
        if not is_openhands_event(event):
            return "not an OpenHands event (needs 'source' and 'action' or 'observation')"
        event = cast(Mapping[str, Any], event)
        self.interactive = self.interactive or _waits_for_a_person(event, len(self._responses))
        metadata = event.get("tool_call_metadata")
        response = cast(Mapping[str, Any], metadata).get("model_response") if isinstance(metadata, Mapping) else None
        problem = None
        if isinstance(response, Mapping):
            problem = self._response(cast(Mapping[str, Any], response), event, source or f"{self.path}:{line}")
        self._message_tokens += _event_tokens(event)
        return problem

    def _response(self, response: Mapping[str, Any], event: Mapping[str, Any], source: str) -> str | None:
        key = response.get("id")
        raw = response.get("usage")
        if not isinstance(key, str) or not isinstance(raw, Mapping):
            return "model response without an id or usage"
        try:
            usage = usage_from_litellm(cast(Mapping[str, Any], raw))
        except (ConfigError, TypeError, ValueError) as error:
            return f"unusable usage: {error}"
        known = self._responses.get(key)
        if known is not None:
            self.duplicates += 1
            if more_complete(usage, known.usage):
                known.usage = usage
            return None
        created = response.get("created")
        started = float(created) if isinstance(created, int | float) else _event_time(event)
        choices = response.get("choices")
        stop = None
        if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
            stop = cast(Mapping[str, Any], choices[0]).get("finish_reason")
        self._responses[key] = _Response(
            model=_model(str(response.get("model", ""))),
            usage=usage,
            started_at=started,
            source=source,
            message_tokens=self._message_tokens,
            stop_reason=stop if isinstance(stop, str) else None,
        )
        return None

    def __len__(self) -> int:
        return len(self._responses)

    def records(self) -> Iterator[CallRecord]:
        pricing = self.pricing or default_pricing()
        for iteration, (key, response) in enumerate(self._responses.items(), 1):
            at = datetime.fromtimestamp(response.started_at, tz=UTC) if response.started_at is not None else None
            yield CallRecord(
                model=response.model,
                usage=response.usage,
                cost=pricing.cost(response.model, response.usage, at=at),
                iteration=iteration,
                run_id=self.run_id or self.path.stem,
                started_at=response.started_at,
                stop_reason=response.stop_reason,
                message_id=key,
                source=response.source,
                notes={
                    "format": "openhands",
                    "message_tokens": response.message_tokens,
                    **({"interactive": True} if self.interactive else {}),
                },
            )
