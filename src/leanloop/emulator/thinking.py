"""Extended thinking as the emulator serves it: when a request thinks, what the thought says, and its signature.

Thinking is on when a request sends ``thinking: {"type": "enabled" | "adaptive"}``, or leaves ``thinking`` out on a
model that thinks by default (every 5.x model, API-FACTS 3.2). The emulator then opens the answer with a short
thinking block unless the policy wrote its own; its tokens are billed as output (``usage.output_tokens`` and
``output_tokens_details.thinking_tokens``), and with ``display: "omitted"`` the block comes back empty but billed.

Thinking blocks must come back unmodified in later requests (API-FACTS 5.1). The emulator signs the blocks it writes
(a keyed hash of the text as served) and refuses a request whose thinking block carries one of its signatures over
other text. Signatures it did not write (real ones in a replayed recording) are accepted unchecked. Pure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any, cast

__all__ = ["sign", "signature_matches", "thinking_enabled", "thinking_omitted", "thought_for"]

_KEY = b"leanloop emulator thinking v1"  # not a secret: the signature only detects edits
_MARK = b"\x12\x4c\x4c"  # opens every signature the emulator writes


def sign(thinking: str) -> str:
    """The signature of a thinking block whose text (as served) is ``thinking``."""
    digest = hmac.new(_KEY, thinking.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
    return base64.b64encode(_MARK + digest).decode()


def signature_matches(thinking: str, signature: str) -> bool:
    """False only for a signature the emulator wrote over other text: anything else cannot be checked."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except ValueError:
        return True
    if not raw.startswith(_MARK):
        return True
    return hmac.compare_digest(sign(thinking), signature)


def _settings(request: Mapping[str, Any]) -> Mapping[str, Any] | None:
    thinking = request.get("thinking")
    return cast(Mapping[str, Any], thinking) if isinstance(thinking, Mapping) else None


def thinking_enabled(request: Mapping[str, Any], by_default: bool) -> bool:
    """Whether the answer starts with thinking; ``by_default``: the model thinks when the request does not say."""
    settings = _settings(request)
    if settings is None:
        return by_default
    return settings.get("type") in ("enabled", "adaptive")


def thinking_omitted(request: Mapping[str, Any]) -> bool:
    settings = _settings(request)
    return settings is not None and settings.get("display") == "omitted"


def thought_for(content: Sequence[Mapping[str, Any]]) -> str:
    """A short, plausible thought ahead of ``content`` (the answer it leads to)."""
    tools = [str(b.get("name", "")) for b in content if b.get("type") == "tool_use"]
    if tools:
        names = ", ".join(dict.fromkeys(tools))
        return f"I need more information before answering, so I will call {names} and read what comes back."
    return "The request is clear and I have what I need, so I can answer directly and briefly."
