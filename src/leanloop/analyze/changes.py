"""Prefix changes as importers store them on a CallRecord (``notes["prefix_change"]``, plain JSON) and back.

The diffing itself is ``leanloop.explain``'s; this module only moves its ``PrefixChange`` through a trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leanloop.explain import PrefixChange, diff_texts

__all__ = ["change_from_dict", "change_to_dict", "text_change"]


def change_to_dict(change: PrefixChange) -> dict[str, Any]:
    data: dict[str, Any] = {
        "index": change.index,
        "path": change.path,
        "section": change.section,
        "cause": change.cause,
    }
    if change.before is not None:
        data["before"] = change.before
    if change.after is not None:
        data["after"] = change.after
    return data


def change_from_dict(data: Mapping[str, Any]) -> PrefixChange | None:
    try:
        return PrefixChange(
            index=int(data["index"]),
            path=str(data["path"]),
            section=str(data["section"]),
            cause=str(data["cause"]),
            before=None if data.get("before") is None else str(data["before"]),
            after=None if data.get("after") is None else str(data["after"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def text_change(
    *, index: int, path: str, section: str, before: str, after: str | None, known: bool = True
) -> dict[str, Any]:
    """The change of one block whose old and new texts are known (``after`` None: the block was removed;
    ``known=False``: the old text is no longer kept, only that it changed)."""
    if after is None:
        return change_to_dict(PrefixChange(index, path, section, "removed"))
    if not known:
        return change_to_dict(PrefixChange(index, path, section, "edited"))
    change = diff_texts([(path, before)], [(path, after)])
    if change is None:  # equal as far as the log keeps the texts (they are truncated): the difference is further on
        return change_to_dict(PrefixChange(index, path, section, "edited"))
    return change_to_dict(PrefixChange(index, path, section, change.cause, change.before, change.after))
