"""`leanloop report|explain|whatif` (to be built: issue 5)."""

import typer


def report() -> None:
    """Cost and cache report of traces."""
    raise typer.Exit(code=2)


def explain() -> None:
    """Why each cache miss happened."""
    raise typer.Exit(code=2)


def whatif() -> None:
    """Re-price a recorded workload under other strategies."""
    raise typer.Exit(code=2)
