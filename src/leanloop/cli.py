"""The ``leanloop`` command. Each command lives beside the code it drives; this module only wires them up."""

from __future__ import annotations

import typer

from leanloop.analyze import cli as analyze_cli
from leanloop.analyze import estimate
from leanloop.demo import cli as demo_cli
from leanloop.emulator import cli as emulator_cli

app = typer.Typer(
    name="leanloop",
    help="Cheap, fast, capped Claude agent loops - and where every cent went.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("demo")(demo_cli.demo)
app.command("estimate")(estimate.estimate_command)
app.command("report")(analyze_cli.report)
app.command("explain")(analyze_cli.explain)
app.command("whatif")(analyze_cli.whatif)
app.command("emulator")(emulator_cli.emulator)


def main() -> None:
    app()
