"""The ``leanloop`` command. Each command lives beside the code it drives; this module only wires them up.

A mistake of the user's (a bad price file, a bad path) is printed as one line naming it, exit status 2: never a
traceback. Warnings are printed as one line each, without Python's source context.
"""

from __future__ import annotations

import sys
import warnings
from importlib.metadata import version
from typing import Annotated, Any

import typer

from leanloop.analyze import cli as analyze_cli
from leanloop.analyze import estimate
from leanloop.demo import cli as demo_cli
from leanloop.emulator import cli as emulator_cli
from leanloop.errors import UsageError

__all__ = ["app", "main"]

app = typer.Typer(
    name="leanloop",
    help="Cheap, fast, capped Claude agent loops - and where every cent went.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"leanloop {version('leanloop')}")
        raise typer.Exit


@app.callback()
def _options(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Cheap, fast, capped Claude agent loops - and where every cent went."""


app.command("demo")(demo_cli.demo)
app.command("estimate")(estimate.estimate_command)
app.command("report")(analyze_cli.report)
app.command("explain")(analyze_cli.explain)
app.command("whatif")(analyze_cli.whatif)
app.command("emulator")(emulator_cli.emulator)


def _one_line_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    print(f"leanloop: warning: {message}", file=sys.stderr)


def main() -> None:
    warnings.showwarning = _one_line_warning
    try:
        app()
    except UsageError as error:
        print(f"leanloop: {error}", file=sys.stderr)
        sys.exit(2)
