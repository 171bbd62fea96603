"""The fast estimator counts exactly what the piece-by-piece definition counts (hypothesis)."""

from __future__ import annotations

import math
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from leanloop.tokens import _word_tokens, count_text  # pyright: ignore[reportPrivateUsage]

# The definition: split like a BPE pre-tokenizer (a word with its leading space, up to 3 digits, a punctuation run,
# a whitespace run) and charge each piece.
_PIECE = re.compile(r" ?[A-Za-z]+| ?\d{1,3}| ?[^\sA-Za-z\d]+|\s+")


def reference(text: str) -> int:
    total = 0
    for piece in _PIECE.findall(text):
        stripped = piece.lstrip(" ")
        if not stripped or stripped.isspace():
            total += 1
        elif stripped[0].isascii() and stripped[0].isalpha():
            total += _word_tokens(stripped)
        elif re.fullmatch(r"\d+", stripped):
            total += 1
        else:
            ascii_part = sum(1 for ch in stripped if ch.isascii())
            total += math.ceil(ascii_part / 2) + (len(stripped) - ascii_part)
    return total


texts = st.text(alphabet=st.sampled_from(list('aZ 9\n\t.,-_{}"é中 xyzABC0123')), max_size=300) | st.text(max_size=200)


@given(texts)
@settings(max_examples=500, deadline=None)
def test_fast_count_matches_the_definition(text: str) -> None:
    assert count_text(text) == reference(text)


# ASCII text made of runs of one kind (lowercase words with a capital only first, digits, punctuation, spaces) of
# any length: the counts by run length, and the fallbacks for runs longer than those, agree with the definition.
runs = st.lists(
    st.tuples(st.sampled_from(["a", "b", "Q", "7", ".", "=", " ", "\n", "\t", "é", "AB"]), st.integers(1, 40)),
    max_size=30,
)


@given(runs)
@settings(max_examples=500, deadline=None)
def test_counts_by_run_length_match_the_definition(pieces: list[tuple[str, int]]) -> None:
    text = "".join(char * length if char != "Q" else "Q" + "x" * (length - 1) for char, length in pieces)
    assert count_text(text) == reference(text)
