"""The models the emulator knows: real ids (so pricing and the cache minimums apply), their limits, and the per-model
rules the API applies to requests.

Ids are the ``Model`` literals of the ``anthropic`` 2.16.0 SDK plus the dated Sonnet 4.5 id (API-FACTS 3.1).
Context windows and release dates are API-FACTS 3.2. Maximum output tokens: 128K where API-FACTS lists it, 64K for
the 200K-context models (Sonnet 4.5, Haiku 4.5, Opus 4.5), 128K otherwise (an assumption for models whose card does
not say). ``GET /v1/models`` serves these; ``max_tokens`` above a model's maximum is a 400.

Aliases of dated models (``claude-haiku-4-5`` for ``claude-haiku-4-5-20251001``) answer under the dated id, as the
real API does (see the recorded responses); 4.6 and later models have no dated id. Per-model rules, each from
API-FACTS: thinking is on by default on every 5.x model (3.2); ``temperature``/``top_p``/``top_k`` are refused on Opus
4.7 and later and on 5.x (3.2); ``role: "system"`` messages are accepted on Opus 5, Opus 4.8, Fable 5/5.1 and Mythos
5/5.1 only (1.5). ``capabilities`` (always present, as the SDK documents) say what the emulator accepts, plus two
facts from the model guides: Opus 4.7/4.8 and 5.x take ``thinking: adaptive`` rather than ``enabled``, and Fable
refuses ``thinking: disabled``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["CATALOG", "ModelCard", "model_card"]

_1M = 1_000_000
_200K = 200_000
_128K = 128_000
_64K = 64_000
_LINES = ("haiku", "sonnet", "opus", "fable", "mythos")
_EPOCH = "1970-01-01"  # the API's own stand-in for an unknown release date
_VERSION = re.compile(r"claude-([a-z]+)-(\d+)(?:-(\d))?(?:-\d{8})?$")
_SYSTEM_MESSAGES = frozenset(
    {"claude-opus-5", "claude-opus-4-8", "claude-fable-5", "claude-fable-5-1", "claude-mythos-5", "claude-mythos-5-1"}
)


@lru_cache(maxsize=256)
def _version(model_id: str) -> tuple[int, int]:
    match = _VERSION.match(model_id)
    return (int(match.group(2)), int(match.group(3) or 0)) if match else (0, 0)


def _supported(value: bool) -> dict[str, bool]:
    return {"supported": value}


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What ``GET /v1/models/{id}`` says about a model, and the request rules that depend on it."""

    id: str
    display_name: str
    created: str = _EPOCH
    max_input_tokens: int = _1M
    max_tokens: int = _128K
    deprecated: bool = False
    retires: str | None = None
    dated_id: str | None = None  # set on an alias: the id responses carry

    @property
    def served_id(self) -> str:
        """The id responses name (``model``): the dated id of an alias, else the id itself."""
        return self.dated_id or self.id

    @property
    def line(self) -> str | None:
        return next((name for name in _LINES if f"-{name}-" in f"{self.id}-"), None)

    @property
    def version(self) -> tuple[int, int]:
        """(major, minor) of the id, (0, 0) when it has none (``claude-mythos-preview``)."""
        return _version(self.id)

    @property
    def thinks_by_default(self) -> bool:
        """Thinking is on when a request does not say (every 5.x model, API-FACTS 3.2)."""
        return self.version >= (5, 0)

    @property
    def takes_sampling_params(self) -> bool:
        """Whether ``temperature``, ``top_p`` and ``top_k`` are accepted (not on Opus 4.7+ or 5.x)."""
        return not (self.version >= (5, 0) or (self.line == "opus" and self.version >= (4, 7)))

    @property
    def takes_system_messages(self) -> bool:
        """Whether ``role: "system"`` messages are accepted (API-FACTS 1.5)."""
        return self.id in _SYSTEM_MESSAGES

    def to_api(self) -> dict[str, Any]:
        return {
            "type": "model",
            "id": self.served_id,
            "display_name": self.display_name,
            "created_at": f"{self.created}T00:00:00Z",
            "lifecycle": "deprecated" if self.deprecated else "active",
            "deprecated_at": f"{_EPOCH}T00:00:00Z" if self.deprecated else None,  # date unknown: the API's stand-in
            "retires_at": f"{self.retires}T00:00:00Z" if self.retires else None,
            "line": self.line,
            "max_input_tokens": self.max_input_tokens,
            "max_tokens": self.max_tokens,
            "capabilities": self._capabilities(),
        }

    def _capabilities(self) -> dict[str, Any]:
        newer = self.version >= (4, 7)
        adaptive_only = self.version >= (5, 0) or (self.line == "opus" and newer)
        effort = {level: _supported(True) for level in ("low", "medium", "high", "max")}
        return {
            "batch": _supported(True),
            "citations": _supported(True),
            "code_execution": _supported(True),
            "context_management": {
                "supported": True,
                "clear_thinking_20251015": _supported(True),
                "clear_tool_uses_20250919": _supported(True),
                "compact_20260112": _supported(self.version >= (4, 6)),
            },
            "effort": {"supported": True, **effort, "xhigh": _supported(newer)},
            "image_input": _supported(True),
            "pdf_input": _supported(True),
            "server_tools": {"supported": True, "code_execution": _supported(True), "web_search": _supported(True)},
            "structured_outputs": _supported(True),
            "thinking": {
                "supported": True,
                "types": {
                    "adaptive": _supported(self.version >= (4, 6)),
                    "between_tools": _supported(self.version >= (5, 0)),
                    "disabled": _supported(self.line != "fable"),
                    "enabled": _supported(not adaptive_only),
                },
            },
        }


def _card(model_id: str, name: str, created: str = _EPOCH, **limits: Any) -> ModelCard:
    return ModelCard(model_id, name, created, **limits)


_SMALL = {"max_input_tokens": _200K, "max_tokens": _64K}
_OPUS_4_5 = {"deprecated": True, "retires": "2027-01-22", **_SMALL}  # SDK _data/deprecated_models.py

CATALOG: dict[str, ModelCard] = {
    card.id: card
    for card in (
        _card("claude-fable-5-2", "Claude Fable 5.2", "2026-11-09"),
        _card("claude-mythos-5-2", "Claude Mythos 5.2", "2026-11-09"),
        _card("claude-haiku-5-5", "Claude Haiku 5.5", "2026-10-07"),
        _card("claude-opus-5-5", "Claude Opus 5.5", "2026-09-22"),
        _card("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-09-01"),
        _card("claude-fable-5-1", "Claude Fable 5.1", "2026-09-01"),
        _card("claude-mythos-5-1", "Claude Mythos 5.1", "2026-09-01"),
        _card("claude-opus-5", "Claude Opus 5", "2026-07-24"),
        _card("claude-sonnet-5", "Claude Sonnet 5", "2026-06-30"),
        _card("claude-fable-5", "Claude Fable 5", "2026-06-09"),
        _card("claude-mythos-5", "Claude Mythos 5", "2026-06-09"),
        _card("claude-opus-4-8", "Claude Opus 4.8"),
        _card("claude-opus-4-7", "Claude Opus 4.7"),
        _card("claude-mythos-preview", "Claude Mythos Preview", deprecated=True, retires="2026-06-30"),
        _card("claude-opus-4-6", "Claude Opus 4.6"),
        _card("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17"),
        _card("claude-opus-4-5", "Claude Opus 4.5", "2025-11-01", dated_id="claude-opus-4-5-20251101", **_OPUS_4_5),
        _card("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-01", **_OPUS_4_5),
        _card("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-01", dated_id="claude-haiku-4-5-20251001", **_SMALL),
        _card("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01", **_SMALL),
        _card("claude-sonnet-4-5", "Claude Sonnet 4.5", "2025-09-29", dated_id="claude-sonnet-4-5-20250929", **_SMALL),
        _card("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29", **_SMALL),
    )
}


def model_card(model_id: str) -> ModelCard:
    """The catalog's card, or a generic one (1M context, 128K output) for a model the catalog does not know."""
    return CATALOG.get(model_id) or ModelCard(model_id, model_id)
