"""`leanloop emulator` (to be built: issue 3)."""

import typer


def emulator() -> None:
    """Run the Anthropic Messages API emulator on localhost."""
    raise typer.Exit(code=2)
