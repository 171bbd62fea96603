"""The ``leanloop`` command. Each command lives beside the code it drives; this module only wires them up.

A mistake of the user's (a bad option, value, path or price file) is one plain line on stderr naming the command
and what is wrong, exit status 2: never a traceback, never a box. ``-h`` and ``--help`` print plain help. Warnings
are printed as one line each, without Python's source context.
"""

from __future__ import annotations

import importlib
import re
import sys
import warnings
from collections.abc import Sequence
from importlib.metadata import version
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from leanloop.analyze import cli as analyze_cli
from leanloop.analyze import estimate
from leanloop.demo import cli as demo_cli
from leanloop.emulator import cli as emulator_cli
from leanloop.errors import UsageError

if TYPE_CHECKING:
    from typer._click import Context
    from typer._click import exceptions as click_errors
else:  # the click typer runs on: its own copy (recent typer) or click itself (older typer)
    click_errors = importlib.import_module(typer.BadParameter.__module__)
    Context = typer.Context

__all__ = ["app", "main"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _Mistake(click_errors.ClickException):
    """A leanloop ``UsageError`` raised while a command ran, carried to the one-line printer with its command."""

    exit_code = 2

    def __init__(self, message: str, ctx: Context) -> None:
        super().__init__(message)
        self.ctx = ctx


class _PlainArgument(TyperArgument):
    """An argument whose help shows its name (``PATH``) without its Python type (``<list[str]>``)."""

    def display_type_rich(self, ctx: Context) -> str | None:
        return None


class _Command(TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument:
                param.__class__ = _PlainArgument

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click_errors.UsageError as error:
            error.ctx = error.ctx or ctx  # click's parser leaves it out ("option '--x' requires an argument")
            raise

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as error:
            raise _Mistake(str(error), ctx) from None


class _Group(TyperGroup):
    """Runs the commands in click's non-standalone mode, so that every error comes here and is printed as one line
    (typer would print a box of usage, hint and message)."""

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> NoReturn:
        extra.pop("standalone_mode", None)
        try:
            code = super().main(args, prog_name or "leanloop", standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as error:
            typer.echo(error.format_message(), err=True)
            sys.exit(2)
        except click_errors.ClickException as error:
            typer.echo(_one_line(error), err=True)
            sys.exit(error.exit_code)
        except UsageError as error:  # raised before any command ran (a subcommand's context is not made yet)
            typer.echo(_one_line(_Mistake(str(error), typer.Context(self, info_name="leanloop"))), err=True)
            sys.exit(2)
        except typer.Abort:
            typer.echo("leanloop: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _one_line(error: click_errors.ClickException) -> str:
    """``leanloop COMMAND: what is wrong``, on one line whatever the paths in it hold."""
    ctx = getattr(error, "ctx", None)
    where = ctx.command_path if ctx is not None else "leanloop"
    if isinstance(error, click_errors.BadParameter) and not isinstance(error, click_errors.MissingParameter):
        hint = _hint(error)
        text = f"{hint}: {_lowered(error.message)}" if hint else error.message
    else:
        text = _lowered(error.format_message()).rstrip(".")
        if isinstance(error, click_errors.UsageError) and not isinstance(error, click_errors.BadOptionUsage):
            text += f" (try '{where} --help')"
    return f"{where}: " + _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


def _hint(error: click_errors.BadParameter) -> str | None:
    """The option (its long name) or argument a bad value was given to."""
    if error.param_hint is not None:
        return error.param_hint if isinstance(error.param_hint, str) else " / ".join(error.param_hint)
    param = error.param
    if param is None:
        return None
    if param.param_type_name == "option":
        return max(param.opts, key=len)
    return param.metavar or (param.name or "").upper()


def _lowered(message: str) -> str:
    """Click's sentences ("No such option: -x") lower-cased to match leanloop's own messages, without the
    validator's "Value error, " in front of a choice it refused."""
    message = message.removeprefix("Value error, ").removeprefix("value error, ")
    if len(message) > 1 and message[0].isupper() and message[1].islower():
        return message[0].lower() + message[1:]
    return message


app = typer.Typer(
    name="leanloop",
    cls=_Group,
    help="Cheap, fast, capped Claude agent loops - and where every cent went.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: no boxes, no <bool> after flags, paragraphs wrapped to the terminal
    context_settings={"help_option_names": ["-h", "--help"]},
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


_COMMANDS = {
    "demo": (demo_cli.demo, "Triage logs with an agent: its cost, naive vs cached, a runaway."),
    "estimate": (estimate.estimate_command, "Project a workload shape to a monthly bill, per strategy."),
    "report": (analyze_cli.report, "Where the money went: per call, run, model and day."),
    "explain": (analyze_cli.explain, "Which calls missed the cache, why, and what it cost."),
    "whatif": (analyze_cli.whatif, "A recorded workload re-priced under other strategies."),
    "emulator": (emulator_cli.emulator, "The Messages API on localhost, billed as the real one."),
}
for _name, (_function, _summary) in _COMMANDS.items():
    app.command(_name, cls=_Command, short_help=_summary)(_function)


def _one_line_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    print(f"leanloop: warning: {message}", file=sys.stderr)


def main() -> None:
    warnings.showwarning = _one_line_warning
    app()
