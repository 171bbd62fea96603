"""Docs that run: every python example in the README, and the doctests in docstrings."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

import leanloop.pricing
import leanloop.tools
import leanloop.usage

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
# an example followed at once by a plain block: that block is what the example prints, and must stay so
PRINTS = dict(re.findall(r"```python\n((?:(?!```).)*)```\n\n```\n(.*?)```", README.read_text(), flags=re.DOTALL))


def test_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 2
    assert PRINTS  # at least one example shows its output


@pytest.mark.parametrize("number", range(len(EXAMPLES)))
def test_readme_example_runs(number: int, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(EXAMPLES[number], f"README.md example {number + 1}", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    if EXAMPLES[number] in PRINTS:
        assert out == PRINTS[EXAMPLES[number]]
    if number == 0:
        assert "end_turn" in out
        assert "payments-db:5432" in out


@pytest.mark.parametrize("module", [leanloop.pricing, leanloop.tools, leanloop.usage])
def test_docstring_examples(module: object) -> None:
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert tried > 0
    assert failures == 0
