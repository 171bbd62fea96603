"""What leanloop knows about each Claude model's size: its context window and its largest answer.

One table for the whole library: compaction triggers near the window (``leanloop.history``), the agent's retry of a
turn cut by max_tokens asks for at most the model's maximum output, and side calls are capped to the cheap model's
window. Ids are the ``Model`` literals of the ``anthropic`` 2.16.0 SDK plus the dated Sonnet 4.5 id; limits are
API-FACTS 3.2: 1M / 128K for every current model except the 200K-context ones (Sonnet 4.5, Haiku 4.5, Opus 4.5),
which answer in up to 64K. A dated id (``claude-haiku-4-5-20251001``) has the limits of its undated one.

A model the table does not know is assumed to have the smallest current window and output (200K / 64K): compacting
a 1M-window run early costs one cache rewrite, while overflowing a 200K window would end the run. When the API says
otherwise (a 400 "prompt is too long: N tokens > M maximum"), the agent believes the API.

(The emulator's catalog, ``leanloop.emulator.catalog``, holds the same limits with display names and release dates;
it should read them from here.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

__all__ = ["MODELS", "UNKNOWN", "ModelLimits", "context_window", "max_output_tokens", "model_limits"]


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """A model's context window (prompt and answer together, in tokens) and its largest ``max_tokens``."""

    context_window: int
    max_output_tokens: int


_LARGE = ModelLimits(1_000_000, 128_000)
_SMALL = ModelLimits(200_000, 64_000)
UNKNOWN = _SMALL  # what a model missing from the table is assumed to have
_DATE_SUFFIX = re.compile(r"-\d{8}$")

MODELS = MappingProxyType(
    {
        **dict.fromkeys(
            (
                "claude-fable-5-2",
                "claude-mythos-5-2",
                "claude-haiku-5-5",
                "claude-opus-5-5",
                "claude-sonnet-5-5",
                "claude-fable-5-1",
                "claude-mythos-5-1",
                "claude-opus-5",
                "claude-sonnet-5",
                "claude-fable-5",
                "claude-mythos-5",
                "claude-opus-4-8",
                "claude-opus-4-7",
                "claude-mythos-preview",
                "claude-opus-4-6",
                "claude-sonnet-4-6",
            ),
            _LARGE,
        ),
        **dict.fromkeys(("claude-opus-4-5", "claude-haiku-4-5", "claude-sonnet-4-5"), _SMALL),
    }
)


@lru_cache(maxsize=512)  # the table is read-only; asked on every call of a run
def model_limits(model: str) -> ModelLimits:
    """The model's limits; a dated id has its undated id's; a model not in the table gets ``UNKNOWN``."""
    return MODELS.get(model) or MODELS.get(_DATE_SUFFIX.sub("", model)) or UNKNOWN


def context_window(model: str) -> int:
    """The model's context window in tokens (200,000 for a model the table does not know)."""
    return model_limits(model).context_window


def max_output_tokens(model: str) -> int:
    """The largest ``max_tokens`` the model accepts (64,000 for a model the table does not know)."""
    return model_limits(model).max_output_tokens
