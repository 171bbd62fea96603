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
