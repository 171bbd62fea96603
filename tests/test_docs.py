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


def test_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("number", range(len(EXAMPLES)))
def test_readme_example_runs(number: int, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(EXAMPLES[number], f"README.md example {number + 1}", "exec"), {"__name__": "readme"})
    if number == 0:
        out = capsys.readouterr().out
        assert "end_turn" in out
        assert "payments-db:5432" in out


@pytest.mark.parametrize("module", [leanloop.pricing, leanloop.tools, leanloop.usage])
def test_docstring_examples(module: object) -> None:
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert tried > 0
    assert failures == 0
