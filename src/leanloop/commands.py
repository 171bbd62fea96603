"""What the ``leanloop`` commands share: checks that turn a bad option value into one line naming the option.

A check raises ``typer.BadParameter`` with the option's name; ``leanloop.cli`` prints it as
``leanloop COMMAND: --option: what is wrong``, exit status 2.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from leanloop.pricing import default_pricing

__all__ = ["checked_model", "checked_number", "checked_path"]


def checked_number(
    value: float | None, option: str, *, minimum: float, maximum: float | None = None, above: bool = False
) -> float | None:
    """``value`` when it is a finite number within the bounds (``above``: strictly greater than ``minimum``)."""
    if value is None:
        return None
    low = f"> {minimum:g}" if above else f">= {minimum:g}"
    wanted = f"a finite number {low}" + (f" and <= {maximum:g}" if maximum is not None else "")
    too_low = value <= minimum if above else value < minimum
    if not math.isfinite(value) or too_low or (maximum is not None and value > maximum):
        raise typer.BadParameter(f"must be {wanted}, got {value:g}", param_hint=option)
    return value


def checked_path(value: str | None, option: str) -> Path | None:
    """``value`` as a path, unless it is empty: ``Path("")`` is the current directory, which nobody means by
    ``--logs "$UNSET"`` (so such options are declared as ``str`` and converted here)."""
    if value is None:
        return None
    if not value.strip():
        raise typer.BadParameter("the path is empty", param_hint=option)
    return Path(value)


def checked_model(model: str, option: str) -> str:
    """``model`` when genai-prices (or the override file) has a price for it: an unknown one is a typo more often
    than a new model, and every figure of the command would be "unknown"."""
    if default_pricing().prices(model) is None:
        raise typer.BadParameter(
            f"unknown model {model!r}: genai-prices has no price for it (a new model can be priced in a file named "
            "by LEANLOOP_PRICES)",
            param_hint=option,
        )
    return model
