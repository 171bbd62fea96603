"""The models the emulator knows: real ids (so pricing and the cache minimums apply) and their limits.

Ids are the ``Model`` literals of the ``anthropic`` 2.16.0 SDK plus the dated Sonnet 4.5 id (API-FACTS 3.1).
Context windows and release dates are API-FACTS 3.2. Maximum output tokens: 128K where API-FACTS lists it, 64K for
the 200K-context models (Sonnet 4.5, Haiku 4.5, Opus 4.5), 128K otherwise (an assumption for models whose card does
not say). ``GET /v1/models`` serves these; ``max_tokens`` above a model's maximum is a 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CATALOG", "ModelCard", "model_card"]

_1M = 1_000_000
_200K = 200_000
_128K = 128_000
_64K = 64_000
_LINES = ("haiku", "sonnet", "opus", "fable", "mythos")
_EPOCH = "1970-01-01"  # the API's own stand-in for an unknown release date


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What ``GET /v1/models/{id}`` says about a model."""

    id: str
    display_name: str
    created: str = _EPOCH
    max_input_tokens: int = _1M
    max_tokens: int = _128K
    deprecated: bool = False

    def to_api(self) -> dict[str, Any]:
        line = next((name for name in _LINES if f"-{name}-" in f"{self.id}-"), None)
        return {
            "type": "model",
            "id": self.id,
            "display_name": self.display_name,
            "created_at": f"{self.created}T00:00:00Z",
            "lifecycle": "deprecated" if self.deprecated else "active",
            "deprecated_at": None,
            "retires_at": None,
            "line": line,
            "max_input_tokens": self.max_input_tokens,
            "max_tokens": self.max_tokens,
            "capabilities": None,
        }


def _card(model_id: str, name: str, created: str = _EPOCH, **limits: Any) -> ModelCard:
    return ModelCard(model_id, name, created, **limits)


_SMALL = {"max_input_tokens": _200K, "max_tokens": _64K}

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
        _card("claude-mythos-preview", "Claude Mythos Preview", deprecated=True),
        _card("claude-opus-4-6", "Claude Opus 4.6"),
        _card("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17"),
        _card("claude-opus-4-5", "Claude Opus 4.5", "2025-11-01", deprecated=True, **_SMALL),
        _card("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-01", deprecated=True, **_SMALL),
        _card("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-01", **_SMALL),
        _card("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01", **_SMALL),
        _card("claude-sonnet-4-5", "Claude Sonnet 4.5", "2025-09-29", **_SMALL),
        _card("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29", **_SMALL),
    )
}


def model_card(model_id: str) -> ModelCard:
    """The catalog's card, or a generic one (1M context, 128K output) for a model the catalog does not know."""
    return CATALOG.get(model_id) or ModelCard(model_id, model_id)
