"""How counts are worded in what leanloop prints: the number and its noun agree (``1 call``, ``2 calls``).

A phrase whose counted noun is not its last word marks that noun with ``(s)``: ``"error response(s) (HTTP 404)"``
reads ``1 error response (HTTP 404)`` and ``2 error responses (HTTP 404)``; ``many`` gives the plural phrase (what
a JSON key holds, whatever the count).
"""

from __future__ import annotations

__all__ = ["counted", "many", "plural"]

_MARK = "(s)"


def plural(count: int, noun: str) -> str:
    """``1 call``, ``2 calls``, ``1,000 cache misses``: the count with thousands separators, the noun agreeing.

    >>> plural(1, "call"), plural(2, "cache miss"), plural(1000, "run")
    ('1 call', '2 cache misses', '1,000 runs')
    """
    if count == 1:
        return f"1 {noun}"
    return f"{count:,} {noun}{'es' if noun.endswith(('s', 'sh', 'ch', 'x')) else 's'}"


def counted(count: int, phrase: str) -> str:
    """``phrase`` after its count, its ``(s)``-marked noun agreeing (a phrase without the mark: ``plural``).

    >>> counted(1, "assistant line(s) without usage"), counted(3, "assistant line(s) without usage")
    ('1 assistant line without usage', '3 assistant lines without usage')
    """
    if _MARK not in phrase:
        return plural(count, phrase)
    return f"{count:,} {phrase.replace(_MARK, '' if count == 1 else 's')}"


def many(phrase: str) -> str:
    """The plural of an ``(s)``-marked phrase: ``"file(s) of unknown format"`` -> ``"files of unknown format"``."""
    return phrase.replace(_MARK, "s")
