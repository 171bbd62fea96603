"""`leanloop emulator`: the Messages API emulator under uvicorn, on loopback by default."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, NoReturn

import typer

from leanloop.commands import checked_number, checked_path
from leanloop.emulator.catalog import CATALOG
from leanloop.emulator.faults import Faults
from leanloop.emulator.latency import LatencyModel
from leanloop.emulator.policies import Policy, finisher
from leanloop.emulator.replay import ReplayPolicy
from leanloop.emulator.scenario import load_scenario
from leanloop.errors import ConfigError

if TYPE_CHECKING:
    from leanloop.emulator.app import ServedCall

__all__ = ["emulator"]


def emulator(
    *,
    host: Annotated[
        str, typer.Option(metavar="HOST", help="Interface to bind. Keep the loopback default unless you mean it.")
    ] = ("127.0.0.1"),
    port: Annotated[
        int, typer.Option(min=0, max=65535, metavar="PORT", help="TCP port (0: any free one, shown on start).")
    ] = 8787,
    scenario: Annotated[
        str | None,  # strings, converted by checked_path: an empty one would be the current directory as a Path
        typer.Option(metavar="FILE", help="YAML/JSON scenario every model plays (format: docs/emulator.md)."),
    ] = None,
    replay: Annotated[
        str | None,
        typer.Option(
            metavar="FILE", help="Recorded trajectory every model replays (conversation, responses, cassette)."
        ),
    ] = None,
    time_scale: Annotated[
        float, typer.Option(metavar="FACTOR", help="1 = real latency, 0.1 = 10x faster, 0 = no wait.")
    ] = 1.0,
    api_key: Annotated[
        str | None, typer.Option(metavar="KEY", help="Accept only this x-api-key (default: any non-empty key).")
    ] = None,
    fault_rate: Annotated[float, typer.Option(metavar="SHARE", help="Share of requests that fail at random.")] = 0.0,
    fault_seed: Annotated[int, typer.Option(metavar="N", help="Seed of the random faults.")] = 0,
    seed: Annotated[
        int | None,
        typer.Option(metavar="N", help="Seed of the message, request and tool_use ids (default: random per run)."),
    ] = None,
    ttft_base: Annotated[
        float | None,
        typer.Option(metavar="SECONDS", help="Seconds before the first token, for every model (default: per model)."),
    ] = None,
    prefill_rate: Annotated[
        float | None, typer.Option(metavar="TOKENS/S", help="Uncached prompt tokens per second (default: 9,100).")
    ] = None,
    output_rate: Annotated[
        float | None,
        typer.Option(metavar="TOKENS/S", help="Output tokens per second, for every model (default: per model)."),
    ] = None,
    min_cache_tokens: Annotated[
        list[str] | None,
        typer.Option(
            metavar="MODEL=TOKENS",
            help="MODEL=TOKENS: a minimum cacheable length to bill by (repeatable), e.g. claude-sonnet-4-6=1024.",
        ),
    ] = None,
    log: Annotated[
        str | None,
        typer.Option(
            metavar="FILE", help="Append one JSON line per served POST /v1/messages (ids, usage, cost) to this file."
        ),
    ] = None,
) -> None:
    """Run the Anthropic Messages API emulator on localhost (point the SDK's base_url at it)."""
    if not host.strip():
        raise typer.BadParameter("the host is empty (it would listen on every interface)", param_hint="--host")
    _check_numbers(time_scale, fault_rate, ttft_base, prefill_rate, output_rate)
    scenario_file, replay_file = checked_path(scenario, "--scenario"), checked_path(replay, "--replay")
    log_file = checked_path(log, "--log")
    try:
        if scenario_file is not None and replay_file is not None:
            raise ConfigError("give --scenario or --replay, not both")
        minimums = _minimums(min_cache_tokens or [])
        policy: Policy = finisher
        faults = None
        if scenario_file is not None:
            played = load_scenario(scenario_file)
            policy, faults = played, played.faults
        if replay_file is not None:
            policy = ReplayPolicy.from_file(replay_file)
        if fault_rate:
            faults = Faults(rules=faults.rules if faults else (), rate=fault_rate, seed=fault_seed)
    except ConfigError as error:
        _fail(str(error))
    source = f"scenario {scenario}" if scenario else f"replay {replay}" if replay else "finisher"
    models: dict[str, Policy] = dict.fromkeys(CATALOG, policy)
    prefill = {} if prefill_rate is None else {"uncached_s_per_token": 1 / prefill_rate}
    latency = LatencyModel(base_s=ttft_base, output_tokens_per_s=output_rate, time_scale=time_scale, **prefill)
    # Imported here: starlette, uvicorn and the SDK load only when the server runs, not for every leanloop command.
    from leanloop.emulator.app import create_app  # noqa: PLC0415
    from leanloop.emulator.serving import bind, serve  # noqa: PLC0415

    with contextlib.ExitStack() as stack:
        on_call = _call_log(stack, log_file) if log_file is not None else None
        app = create_app(
            models,
            latency=latency,
            faults=faults,
            api_key=api_key,
            seed=seed,
            min_cache_tokens=minimums or None,
            log_limit=1000,
            on_call=on_call,
        )
        try:
            sock, url = bind(host, port)
        except OSError as error:
            _fail(f"cannot listen on {host}:{port}: {error.strerror or error}")
        stack.enter_context(sock)
        typer.echo(f"leanloop emulator on {url} ({len(CATALOG)} models, {source}, time scale {time_scale})")
        typer.echo(f'  anthropic.Anthropic(base_url="{url}", api_key="any-key")')
        serve(app, sock)


def _check_numbers(
    time_scale: float, fault_rate: float, ttft_base: float | None, prefill_rate: float | None, output_rate: float | None
) -> None:
    """Finite and in range, or one line naming the option (inf would make every request wait forever)."""
    checked_number(time_scale, "--time-scale", minimum=0)
    checked_number(fault_rate, "--fault-rate", minimum=0, maximum=1)
    checked_number(ttft_base, "--ttft-base", minimum=0)
    checked_number(prefill_rate, "--prefill-rate", minimum=1)
    checked_number(output_rate, "--output-rate", minimum=1)


def _minimums(pairs: list[str]) -> dict[str, int]:
    """``--min-cache-tokens MODEL=TOKENS`` options as a table."""
    table: dict[str, int] = {}
    for pair in pairs:
        model, _, tokens = pair.partition("=")
        if not model or not tokens.isdigit():
            raise ConfigError(f"--min-cache-tokens takes MODEL=TOKENS (e.g. claude-sonnet-4-6=1024), got {pair!r}")
        table[model] = int(tokens)
    return table


def _call_log(stack: contextlib.ExitStack, path: Path) -> Callable[[ServedCall], None]:
    """An ``on_call`` hook appending each call's summary to ``path`` as one JSON line, flushed at once so the file
    can be read while the emulator runs. Appends: what an earlier start wrote stays. ``answered_at`` is the wall
    clock (Unix seconds) when the call was answered: the summary's times are emulated, and ``leanloop report`` dates
    the calls by it."""
    try:
        file: IO[str] = stack.enter_context(path.open("a", encoding="utf-8"))
    except OSError as error:
        _fail(f"cannot write the call log {path}: {error.strerror or error}")

    def write(call: ServedCall) -> None:
        line = {**call.summary(), "answered_at": round(time.time(), 3)}
        file.write(json.dumps(line, ensure_ascii=False) + "\n")
        file.flush()

    return write


def _fail(message: str) -> NoReturn:
    typer.echo(f"leanloop emulator: {message}", err=True)
    raise typer.Exit(code=2)
