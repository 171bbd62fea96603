"""Credentials out of everything leanloop writes down (traces, their events, the errors they carry).

Three nets, each catching what the others miss:

- **Structure**: the value of a mapping key that names a credential (``api_key``, ``x-api-key``, ``api-key``,
  ``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``, ``password``, ``ANTHROPIC_AUTH_TOKEN``,
  any name with the word ``token``, ``secret`` or ``password`` in it, ...) is redacted whatever it looks like, and
  so is the value of a ``(name, value)`` pair such as a header tuple. ``headers`` is redacted as a whole.
- **Value**: the process's ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_AUTH_TOKEN``, and any literal the caller names
  (the key a client was configured with), wherever they appear.
- **Shape**: keys of known vendors (Anthropic, OpenAI-style ``sk-`` keys of any vendor including LiteLLM virtual
  keys, AWS, GitHub, Slack, Google, Stripe), JWTs, ``Bearer``/``Basic``/``Digest`` credentials, the value after
  ``password=``, ``api_key:``, ``token=``, ..., and a long random token after the word ``key``, ``token`` or
  ``secret``.

Values that are not JSON (bytes, exceptions, sets, arbitrary objects) are turned into text first, so nothing
bypasses the patterns on its way to ``json.dumps``. Numbers are left alone: token counts are not secrets.

Finding shapes is one scan of the text for cheap trigger words (``sk-``, ``key``, ``bearer``, ...), then an exact
pattern at each hit, so a long tool output costs a few milliseconds per megabyte.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

__all__ = ["REDACTED", "names_secret", "redact", "redact_text"]

REDACTED = "[REDACTED]"

_SECRET_NAMES = frozenset(
    {"authorization", "proxy_authorization", "cookie", "set_cookie", "headers", "apikey", "auth", "credentials"}
)
_SECRET_WORDS = frozenset({"token", "secret", "password", "passwd", "pwd", "credential", "cookie", "authorization"})
_SECRET_ENDINGS = ("api_key", "access_key", "private_key", "secret_key", "signing_key", "subscription_key")
_SECRET_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
_MIN_LITERAL = 8  # a shorter configured value ("test", "x") would redact ordinary words


@lru_cache(maxsize=2048)
def names_secret(key: str) -> bool:
    """Does this mapping key or header name name a credential?"""
    name = key.strip().lower().replace("-", "_")
    return (
        name in _SECRET_NAMES
        or not _SECRET_WORDS.isdisjoint(re.split(r"[_.\s]+", name))
        or name.endswith(_SECRET_ENDINGS)
    )


@dataclass(frozen=True, slots=True)
class _Shape:
    """A credential shape: found by ``trigger`` (lower-case) in the lowered text, matched by ``pattern`` from
    ``back`` characters before it. The ``value`` group, or the whole match, is what gets redacted."""

    trigger: str
    pattern: re.Pattern[str]
    back: int = 0


_CHARS = r"[A-Za-z0-9._~+/=\-]"
# After a name that can only mean a credential: any value. After "key", "token", "auth": a random-looking one
# (a digit and a letter, 16+ characters), so "key: user_id" or "token budget" stay readable.
_ANY_VALUE = r"(?P<value>(?!\d{1,9}\b)[^\s\"',;&]{6,})"
_RANDOM_VALUE = r"(?P<value>(?=[\w\-./+=]*\d)(?=[\w\-./+=]*[A-Za-z])[\w\-./+=]{16,})"
# An HTTP credential: base64-ish, with a digit, "=", or a lower-case letter followed by an upper-case one.
_CREDENTIAL = rf"(?P<value>(?={_CHARS}*(?:\d|=|[a-z]{_CHARS}*[A-Z])){_CHARS}{{8,}})"
_SEPARATOR = r"[\"']?\s*[:=]\s*[\"']?"
_STRONG_NAMES = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "credential",
    *(f"{a}{sep}{b}" for a, b in (("api", "key"), ("access", "key"), ("private", "key")) for sep in ("_", "-", "")),
    *(f"{a}{sep}token" for a in ("auth", "access", "refresh", "session", "api", "bearer") for sep in ("_", "-")),
)


def _shapes() -> list[_Shape]:
    exact = [
        ("sk-", r"(?<![\w-])sk-(?:ant-[\w\-%]{8,}|[\w\-%]{16,})", 0),  # Anthropic; OpenAI-style keys of any vendor
        ("k_live_", r"(?<!\w)[rs]k_live_[A-Za-z0-9]{16,}", 1),  # Stripe
        ("k_test_", r"(?<!\w)[rs]k_test_[A-Za-z0-9]{16,}", 1),
        ("akia", r"(?<!\w)AKIA[0-9A-Z]{16}(?!\w)", 0),  # AWS access key ids
        ("asia", r"(?<!\w)ASIA[0-9A-Z]{16}(?!\w)", 0),
        *((f"gh{kind}_", rf"(?<!\w)gh{kind}_[A-Za-z0-9]{{20,}}", 0) for kind in "pousr"),  # GitHub
        ("github_pat_", r"github_pat_\w{20,}", 0),
        ("xox", r"(?<!\w)xox[abposr]-[A-Za-z0-9\-]{10,}", 0),  # Slack
        ("hooks.slack.com/", r"https://hooks\.slack\.com/services/\S+", 8),
        ("aiza", r"(?<![\w-])AIza[\w\-]{30,}", 0),  # Google
        ("eyj", r"(?<![\w-])eyJ[\w\-]{8,}\.[\w\-]{8,}\.[\w\-]*", 0),  # JWT
        ("bearer", rf"(?i:bearer)\s+(?P<value>{_CHARS}{{8,}})", 0),
        ("basic", rf"(?i:basic)\s+{_CREDENTIAL}", 0),
        ("digest", rf"(?i:digest)\s+{_CREDENTIAL}", 0),
        *((name, rf"(?i:{re.escape(name)})s?{_SEPARATOR}{_ANY_VALUE}", 0) for name in _STRONG_NAMES),
        *((word, rf"(?i:{word})s?(?:{_SEPARATOR}|\s+){_RANDOM_VALUE}", 0) for word in ("key", "token", "auth")),
    ]
    return [_Shape(trigger, re.compile(pattern), back) for trigger, pattern, back in exact]


_SHAPES = _shapes()
_BY_TRIGGER: dict[str, list[_Shape]] = {}
for _shape in _SHAPES:
    _BY_TRIGGER.setdefault(_shape.trigger, []).append(_shape)
_TRIGGERS = re.compile("|".join(re.escape(t) for t in sorted(_BY_TRIGGER, key=len, reverse=True)))
_ASCII_LOWER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}
_SHORTEST_SECRET = 8


def _secret_spans(text: str) -> list[tuple[int, int]]:
    # lower-case ASCII only, so every index in ``lowered`` is the same index in ``text``
    lowered = text.lower() if text.isascii() else text.translate(_ASCII_LOWER)
    spans: list[tuple[int, int]] = []
    for hit in _TRIGGERS.finditer(lowered):
        for shape in _BY_TRIGGER[hit.group(0)]:
            match = shape.pattern.match(text, max(hit.start() - shape.back, 0))
            if match is not None:
                spans.append(match.span("value" if "value" in shape.pattern.groupindex else 0))
                break
    return spans


def _replace_spans(text: str, spans: list[tuple[int, int]]) -> str:
    pieces: list[str] = []
    cursor = 0
    for start, end in sorted(spans):
        if end <= cursor:
            continue
        if start >= cursor:
            pieces += [text[cursor:start], REDACTED]
        cursor = end
    return "".join([*pieces, text[cursor:]])


def redact_text(text: str, literals: Iterable[str] = ()) -> str:
    """``text`` with every credential it shows (by value or by shape) replaced by ``[REDACTED]``."""
    for literal in literals:
        if literal in text:
            text = text.replace(literal, REDACTED)
    if len(text) < _SHORTEST_SECRET:
        return text
    spans = _secret_spans(text)
    return _replace_spans(text, spans) if spans else text


def _literals(extra: Iterable[str]) -> tuple[str, ...]:
    values = [os.environ.get(name, "").strip() for name in _SECRET_ENV] + [v.strip() for v in extra]
    return tuple(sorted({v for v in values if len(v) >= _MIN_LITERAL}, key=len, reverse=True))


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A JSON-ready copy of ``value`` with every credential replaced by ``[REDACTED]`` (see the module docstring).

    ``secrets`` are literal values to redact besides the process's ``ANTHROPIC_API_KEY``/``ANTHROPIC_AUTH_TOKEN``.
    """
    return _redact(value, _literals(secrets))


def _redact(value: Any, literals: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return redact_text(value, literals)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        items = cast(Mapping[Any, Any], value).items()
        return {
            redact_text(str(k), literals): REDACTED if names_secret(str(k)) else _redact(v, literals) for k, v in items
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = list(cast(Iterable[Any], value))
        if len(items) == 2 and isinstance(items[0], str) and names_secret(items[0]):
            return [items[0], REDACTED]
        return [_redact(v, literals) for v in items]
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", "replace"), literals)
    return redact_text(str(value), literals)
