"""Counts in what leanloop prints agree with their noun: ``1 call``, ``2 calls``."""

from __future__ import annotations

import doctest

from hypothesis import given
from hypothesis import strategies as st

import leanloop.wording
from leanloop.wording import counted, many, plural


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(leanloop.wording)
    assert tried > 0 and failures == 0


@given(st.integers(min_value=0, max_value=10**9))
def test_only_one_is_singular(count: int) -> None:
    assert (plural(count, "call") == "1 call") == (count == 1)
    assert counted(count, "error response(s) (HTTP 404): not billed") == (
        "1 error response (HTTP 404): not billed" if count == 1 else f"{count:,} error responses (HTTP 404): not billed"
    )


def test_nouns_ending_in_a_hiss_take_es() -> None:
    assert [plural(2, noun) for noun in ("cache miss", "batch", "box", "run")] == [
        "2 cache misses",
        "2 batches",
        "2 boxes",
        "2 runs",
    ]


def test_a_marked_phrase_has_one_plural_whatever_the_count() -> None:
    assert many("file(s) of unknown format") == "files of unknown format"
    assert counted(3, "unusable line") == "3 unusable lines"  # no mark: the last word is the noun
