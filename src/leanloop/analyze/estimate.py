"""``leanloop estimate``: project a workload shape to a monthly bill under four caching strategies.

Nothing here is a separate formula: each strategy's requests are built as synthetic prompts (one block per
system, tools, and each iteration's new history), run through ``cachesim`` with that strategy's breakpoints, and
priced per request with ``pricing``. Runs are simulated back to back at the workload's daily rate, and the second
run is reported: a shared system prompt cached by the previous run is read, as it would be in production.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from leanloop.analyze.prompts import growth_prompts
from leanloop.cachesim import TTL, CacheSim, Prompt, min_cacheable_tokens
from leanloop.commands import checked_number
from leanloop.errors import ConfigError
from leanloop.models import context_window
from leanloop.pricing import Cost, cost, default_pricing
from leanloop.usage import Usage
from leanloop.wording import plural

__all__ = ["PRESETS", "STRATEGIES", "Estimate", "Workload", "estimate", "estimate_command"]

MAX_ITERATIONS = 1000

STRATEGIES: dict[str, str] = {
    "no_cache": "no caching",
    "system_tools": "system+tools cached",
    "rolling_5m": "rolling conversation cache (5m)",
    "rolling_1h": "rolling conversation cache (1h)",
}


@dataclass(frozen=True)
class Workload:
    """One run: ``history_tokens[i]`` conversation tokens sent at iteration i (on top of system and tools),
    ``output_tokens[i]`` generated. ``seconds_per_call`` spaces the calls (TTL matters for long tool calls)."""

    model: str
    system_tokens: int
    tool_tokens: int
    history_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    runs_per_day: float = 1000
    seconds_per_call: float = 10.0

    def __post_init__(self) -> None:
        if not self.history_tokens:
            raise ConfigError("workload: history_tokens needs at least one iteration")
        if len(self.output_tokens) != len(self.history_tokens):
            raise ConfigError(
                f"workload: {len(self.history_tokens)} history values but {len(self.output_tokens)} output values; "
                "give one output per iteration (or a single number for all)"
            )
        counts: dict[str, tuple[object, ...]] = {  # checked as objects: a library caller may pass floats
            "system_tokens": (self.system_tokens,),
            "tool_tokens": (self.tool_tokens,),
            "history_tokens": self.history_tokens,
            "output_tokens": self.output_tokens,
        }
        for name, values in counts.items():
            bad = next((v for v in values if isinstance(v, bool) or not isinstance(v, int) or v < 0), None)
            if bad is not None:
                raise ConfigError(f"workload: {name} must be a whole number >= 0, got {bad!r}")
        if not (math.isfinite(self.runs_per_day) and self.runs_per_day > 0):
            raise ConfigError(f"workload: runs_per_day must be a finite number > 0, got {self.runs_per_day!r}")
        if not (math.isfinite(self.seconds_per_call) and self.seconds_per_call >= 0):
            raise ConfigError(f"workload: seconds_per_call must be a finite number >= 0, got {self.seconds_per_call!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "system_tokens": self.system_tokens,
            "tool_tokens": self.tool_tokens,
            "history_tokens": list(self.history_tokens),
            "output_tokens": list(self.output_tokens),
            "runs_per_day": self.runs_per_day,
        }


PRESETS: dict[str, Workload] = {
    # DESIGN.md's reference: a 5-step run of a small agent on Sonnet 4.6, 1,000 runs a day.
    "five-step": Workload(
        model="claude-sonnet-4-6",
        system_tokens=500,
        tool_tokens=300,
        history_tokens=(100, 600, 1050, 1380, 1680),
        output_tokens=(200, 150, 180, 120, 250),
        runs_per_day=1000,
    ),
}


@dataclass(frozen=True)
class IterationCost:
    iteration: int
    prompt_tokens: int
    usage: Usage
    cost: Cost


@dataclass(frozen=True)
class StrategyResult:
    name: str
    iterations: tuple[IterationCost, ...]

    @property
    def usage(self) -> Usage:
        return sum((i.usage for i in self.iterations), Usage())

    @property
    def cost(self) -> Cost:
        return sum((i.cost for i in self.iterations), Cost())


@dataclass(frozen=True)
class Estimate:
    workload: Workload
    strategies: dict[str, StrategyResult]
    min_cacheable_tokens: int
    pays_from_prefix_tokens: int | None
    notes: list[str] = field(default_factory=list[str])

    def to_dict(self) -> dict[str, Any]:
        per_day = Decimal(str(self.workload.runs_per_day))
        out: dict[str, Any] = {}
        for name, result in self.strategies.items():
            usage, run_cost = result.usage, result.cost.total
            out[name] = {
                "label": STRATEGIES[name],
                "input_tokens": usage.prompt_tokens,
                "uncached_input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_write_tokens": usage.cache_write_tokens,
                "cache_read_tokens": usage.cache_read_tokens,
                "cost_usd": {
                    "run": float(run_cost),
                    "day": float(run_cost * per_day),
                    "month": float(run_cost * per_day * 30),
                },
                "iterations": [
                    {
                        "iteration": it.iteration,
                        "input_tokens": it.prompt_tokens,
                        "output_tokens": it.usage.output_tokens,
                        "cache_write_tokens": it.usage.cache_write_tokens,
                        "cache_read_tokens": it.usage.cache_read_tokens,
                        "cost_usd": float(it.cost.total),
                    }
                    for it in result.iterations
                ],
            }
        return {
            "workload": self.workload.to_dict(),
            "cacheable_prefix_tokens": self.workload.system_tokens + self.workload.tool_tokens,
            "min_cacheable_tokens": self.min_cacheable_tokens,
            "caching_pays_from_prefix_tokens": self.pays_from_prefix_tokens,
            "strategies": out,
            "notes": self.notes,
        }


def _prompts(workload: Workload, strategy: str, run: int) -> list[Prompt]:
    """The synthetic requests of one run (``analyze.prompts``: tools, system, one block per iteration's new history;
    a shrinking history is a rewrite), with the strategy's breakpoints: the system block, and the newest turn."""
    head = ([("tools", workload.tool_tokens)] if workload.tool_tokens else []) + [("system", workload.system_tokens)]
    n = len(workload.history_tokens)
    plain = growth_prompts(
        [workload.model] * n, head, workload.history_tokens, history_salt=f"run{run}.", tail_tokens=0
    )
    if strategy == "no_cache":
        return plain
    ttl: TTL = "1h" if strategy == "rolling_1h" else "5m"
    system = len(head) - 1
    rolling = strategy.startswith("rolling")
    return [p.with_marks({system: ttl, **({len(p.blocks) - 1: ttl} if rolling else {})}) for p in plain]


def _simulate(workload: Workload, strategy: str) -> StrategyResult:
    sim = CacheSim()
    run_gap = 86400.0 / workload.runs_per_day
    result: list[IterationCost] = []
    for run in (0, 1):  # run 1 follows run 0 at the daily rate: it is the steady state we report
        start = run * run_gap
        result = []
        for i, prompt in enumerate(_prompts(workload, strategy, run)):
            cached = sim.request(prompt, start=start + i * workload.seconds_per_call)
            usage = cached.usage.with_output(workload.output_tokens[i])
            result.append(IterationCost(i + 1, prompt.total_tokens, usage, cost(workload.model, usage)))
    return StrategyResult(strategy, tuple(result))


def _pays_from(workload: Workload) -> int | None:
    """Smallest system+tools prefix (tokens) at which caching it costs less than not caching, by bisection."""

    head = slice(0, 20)  # the threshold shows in the first calls; a long run only makes the search slow

    def pays(prefix: int) -> bool:
        shaped = Workload(
            workload.model,
            prefix,
            0,
            workload.history_tokens[head],
            workload.output_tokens[head],
            workload.runs_per_day,
        )
        return _simulate(shaped, "system_tools").cost.total < _simulate(shaped, "no_cache").cost.total

    low, high = 1, 1_000_000
    if not pays(high):
        return None
    while low < high:
        middle = (low + high) // 2
        if pays(middle):
            high = middle
        else:
            low = middle + 1
    return low


def context_overflow(workload: Workload) -> str | None:
    """What is wrong when an iteration's prompt is larger than the model's context window (None: nothing)."""
    window = context_window(workload.model)
    head = workload.system_tokens + workload.tool_tokens
    for i, history in enumerate(workload.history_tokens, 1):
        if head + history > window:
            return (
                f"iteration {i} sends {head + history:,} tokens (system {workload.system_tokens:,} + tools "
                f"{workload.tool_tokens:,} + history {history:,}), more than {workload.model}'s context window of "
                f"{window:,} tokens: the API would reject it"
            )
    return None


def estimate(workload: Workload) -> Estimate:
    if default_pricing().prices(workload.model) is None:
        raise ConfigError(
            f"no price known for model {workload.model!r}: an estimate needs one. Check the id, or add it to a price "
            "override file named by LEANLOOP_PRICES"
        )
    overflow = context_overflow(workload)
    if overflow is not None:
        raise ConfigError(f"workload: {overflow}")
    strategies = {name: _simulate(workload, name) for name in STRATEGIES}
    minimum = min_cacheable_tokens(workload.model)
    prefix = workload.system_tokens + workload.tool_tokens
    pays_from = _pays_from(workload)
    notes: list[str] = []
    if prefix < minimum:
        notes.append(
            f"The cacheable prefix (system + tools) is {prefix:,} tokens, below {workload.model}'s minimum "
            f"cacheable length of {minimum:,}: the API silently caches nothing there, so "
            f"'{STRATEGIES['system_tools']}' saves nothing on this workload."
        )
    if pays_from is not None:
        notes.append(f"Caching the system + tools prefix starts to pay from a prefix of {pays_from:,} tokens.")
    else:
        notes.append(
            "Caching the system + tools prefix never pays for this shape, whatever its size: the calls are too few, "
            "or too far apart for the cache to live until the next one."
        )
    first_cached = next(
        (it.iteration for it in strategies["rolling_5m"].iterations if it.usage.cache_write_tokens), None
    )
    if first_cached is not None and first_cached > 1:
        notes.append(
            f"The rolling cache starts at iteration {first_cached}, the first whose prompt reaches {minimum:,} tokens."
        )
    return Estimate(workload, strategies, minimum, pays_from, notes)


# ---------------------------------------------------------------------------------------------------------------
# The command


def _numbers(option: str, text: str) -> tuple[int, ...]:
    parts = [v.strip() for v in text.split(",")]
    if not all(parts):
        raise typer.BadParameter(f"an empty value in {text!r}: give comma-separated whole numbers", param_hint=option)
    try:
        values = tuple(int(v.replace("_", "")) for v in parts)
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated whole numbers, got {text!r}", param_hint=option) from None
    if any(v < 0 for v in values):
        raise typer.BadParameter(f"token counts cannot be negative: {text!r}", param_hint=option)
    return values


def _workload_from_options(
    *,
    preset: str | None,
    model: str | None,
    system: int | None,
    tools: int | None,
    history: str | None,
    growth: int | None,
    iterations: int | None,
    output: str | None,
    runs_per_day: float | None,
) -> tuple[Workload, str | None, str | None]:
    """The workload the options describe, on top of the preset (five-step when none is named), with a note to put
    first and one to put last on what was taken from the preset. A shape that could mean two things is refused,
    naming both options."""
    if preset is not None and preset not in PRESETS:
        raise typer.BadParameter(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}", param_hint="--preset")
    name = preset or "five-step"
    base = PRESETS[name]
    hist = _history(base, name, history, growth, iterations)
    out, output_note = _outputs(base, name, output, len(hist))
    checked_number(runs_per_day, "--runs-per-day", minimum=0, above=True)
    if model is not None and not model.strip():
        raise typer.BadParameter("the model id is empty", param_hint="--model")
    if len(hist) > MAX_ITERATIONS:
        raise typer.BadParameter(f"{len(hist)} iterations: at most {MAX_ITERATIONS}", param_hint="--iterations")
    shape = (preset, model, system, tools, history, growth, iterations, output, runs_per_day)
    preset_note = None
    if all(option is None for option in shape):
        preset_note = f"No workload given: this is the {name} preset (see leanloop estimate --help)."
    try:
        workload = Workload(
            model=model or base.model,
            system_tokens=base.system_tokens if system is None else system,
            tool_tokens=base.tool_tokens if tools is None else tools,
            history_tokens=hist,
            output_tokens=out,
            runs_per_day=base.runs_per_day if runs_per_day is None else runs_per_day,
        )
    except ConfigError as error:
        raise typer.BadParameter(str(error)) from None
    return workload, preset_note, output_note


def _history(
    base: Workload, name: str, history: str | None, growth: int | None, iterations: int | None
) -> tuple[int, ...]:
    """History tokens per iteration: one value per iteration, one for all, or a start and a growth."""
    if growth is not None:
        start = _numbers("--history", history) if history else base.history_tokens[:1]
        if len(start) != 1:
            raise typer.BadParameter(
                f"grows from one --history value (the first iteration's), got {len(start)}", param_hint="--growth"
            )
        if iterations is None:
            raise typer.BadParameter(
                "needs --iterations (how many iterations the history grows over)", param_hint="--growth"
            )
        return tuple(start[0] + growth * i for i in range(iterations))
    if history is None:
        if iterations is not None and iterations != len(base.history_tokens):
            raise typer.BadParameter(
                f"{iterations}, but the {name} preset has {len(base.history_tokens)} iterations: give --history (one "
                "value per iteration, or one for all) or --history START --growth N",
                param_hint="--iterations",
            )
        return base.history_tokens
    values = _numbers("--history", history)
    if iterations is None or len(values) == iterations:
        return values
    if len(values) == 1:
        return values * iterations
    raise typer.BadParameter(
        f"{len(values)} values for --iterations {iterations}: give one value per iteration, one value for all, or a "
        "start value with --growth",
        param_hint="--history",
    )


def _outputs(base: Workload, name: str, output: str | None, count: int) -> tuple[tuple[int, ...], str | None]:
    """Output tokens per iteration, and a note when they are the preset's mean (its own are for its own
    iterations)."""
    if output:
        values = _numbers("--output", output)
        if len(values) == 1:
            return values * count, None
        if len(values) != count:
            raise typer.BadParameter(
                f"{len(values)} values for {plural(count, 'iteration')}: give one value, or one per iteration",
                param_hint="--output",
            )
        return values, None
    if len(base.output_tokens) == count:
        return base.output_tokens, None
    mean = round(sum(base.output_tokens) / len(base.output_tokens))
    return (mean,) * count, f"Output: {mean:,} tokens per iteration, the {name} preset's mean (--output sets it)."


def _table(title: str) -> Table:
    """One space between columns and none at the edges: ten columns of exact numbers fit 80 columns."""
    return Table(title=title, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False, show_edge=False)


def _usd(value: Decimal) -> str:
    """A call's cost in at most 8 characters: 5 decimals below $0.10, fewer above."""
    if value < Decimal("0.1"):
        return f"${value:.5f}"
    if value < 10:
        return f"${value:.4f}"
    return f"${value:,.2f}" if value < 1000 else f"${value:,.0f}"


def _print(result: Estimate, console: Console) -> None:
    w = result.workload
    console.print(
        f"[bold]{w.model}[/], {plural(len(w.history_tokens), 'iteration')} per run, {w.runs_per_day:,.0f} runs/day"
    )
    console.print(
        f"system prompt {w.system_tokens:,} tokens, tool definitions {w.tool_tokens:,} tokens", highlight=False
    )
    table = _table("Per iteration: no caching, then the rolling 5m cache (leanloop's default)")
    for column in ("#", "system", "history", "tools", "input", "output", "cost", "write", "read", "cost 5m"):
        table.add_column(column, justify="right", no_wrap=True)
    none, rolling = result.strategies["no_cache"], result.strategies["rolling_5m"]
    for plain, cached, hist in zip(none.iterations, rolling.iterations, w.history_tokens, strict=True):
        table.add_row(
            str(plain.iteration),
            f"{w.system_tokens:,}",
            f"{hist:,}",
            f"{w.tool_tokens:,}",
            f"{plain.prompt_tokens:,}",
            f"{plain.usage.output_tokens:,}",
            _usd(plain.cost.total),
            f"{cached.usage.cache_write_tokens:,}",
            f"{cached.usage.cache_read_tokens:,}",
            _usd(cached.cost.total),
        )
    console.print()
    console.print(table)
    console.print()
    usage = none.usage
    console.print(
        f"Per run: {usage.prompt_tokens:,} input and {usage.output_tokens:,} output tokens, whatever the strategy",
        highlight=False,
    )
    summary = _table("Per run, day and month, by strategy")
    for column in ("strategy", "write", "read", "$/run", "$/day", "$/month", "vs none"):
        summary.add_column(column, justify="left" if column == "strategy" else "right", no_wrap=True)
    base = none.cost.total
    per_day = Decimal(str(w.runs_per_day))
    for name, strategy in result.strategies.items():
        run = strategy.cost.total
        summary.add_row(
            name,
            f"{strategy.usage.cache_write_tokens:,}",
            f"{strategy.usage.cache_read_tokens:,}",
            _usd(run),
            f"${run * per_day:,.2f}",
            f"${run * per_day * 30:,.2f}",
            f"{run / base:.2f}x" if base else "-",
        )
    console.print()
    console.print(summary)
    console.print()
    for note in result.notes:
        wrapped = textwrap.fill(note, width=max(console.width, 40), initial_indent="- ", subsequent_indent="  ")
        console.print(wrapped, highlight=False)


def estimate_command(
    *,
    preset: Annotated[str | None, typer.Option(metavar="NAME", help="A reference workload: five-step.")] = None,
    model: Annotated[str | None, typer.Option(metavar="MODEL", help="Model id, e.g. claude-sonnet-4-6.")] = None,
    system: Annotated[
        int | None, typer.Option("--system", min=0, metavar="TOKENS", help="System prompt tokens.")
    ] = None,
    tools: Annotated[
        int | None, typer.Option("--tools", min=0, metavar="TOKENS", help="Tool definition tokens.")
    ] = None,
    history: Annotated[
        str | None,
        typer.Option(
            metavar="TOKENS,...",
            help="History tokens per iteration: one per iteration (comma-separated), one for all, or a start (with "
            "--growth).",
        ),
    ] = None,
    growth: Annotated[
        int | None, typer.Option(min=0, metavar="TOKENS", help="History growth per iteration (with --history start).")
    ] = None,
    iterations: Annotated[int | None, typer.Option(min=1, metavar="N", help="Iterations per run.")] = None,
    output: Annotated[
        str | None,
        typer.Option(metavar="TOKENS,...", help="Output tokens per iteration, comma-separated or one value."),
    ] = None,
    runs_per_day: Annotated[float | None, typer.Option(metavar="N", help="Runs per day.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Project a workload shape to cost per run, per day and per month under four caching strategies."""
    workload, preset_note, output_note = _workload_from_options(
        preset=preset,
        model=model,
        system=system,
        tools=tools,
        history=history,
        growth=growth,
        iterations=iterations,
        output=output,
        runs_per_day=runs_per_day,
    )
    default_pricing()  # a broken price override file is the file's error, not the model's
    overflow = context_overflow(workload)
    if overflow is not None:
        parts = {"--system": workload.system_tokens, "--tools": workload.tool_tokens}
        parts["--history"] = max(workload.history_tokens, default=0)
        raise typer.BadParameter(overflow, param_hint=max(parts, key=parts.__getitem__))  # the option that overflows
    try:
        result = estimate(workload)
    except ConfigError as error:
        raise typer.BadParameter(str(error), param_hint="--model") from None
    result.notes[:] = [note for note in (preset_note, *result.notes, output_note) if note]
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print(result, Console())
