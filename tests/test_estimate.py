"""leanloop estimate: the reference workload, its notes, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leanloop.analyze.estimate import PRESETS, Workload, estimate
from leanloop.cli import app
from leanloop.errors import ConfigError

runner = CliRunner()


def test_five_step_preset_json() -> None:
    result = runner.invoke(app, ["estimate", "--preset", "five-step", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    none = data["strategies"]["no_cache"]
    assert (none["input_tokens"], none["output_tokens"]) == (8810, 900)
    assert none["cost_usd"]["run"] == pytest.approx(0.03993, abs=1e-12)
    assert none["cost_usd"]["day"] == pytest.approx(39.93, abs=1e-9)
    assert none["cost_usd"]["month"] == pytest.approx(1197.9, abs=1e-9)
    for strategy in data["strategies"].values():
        assert {"input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens", "cost_usd"} <= set(strategy)
        assert set(strategy["cost_usd"]) == {"run", "day", "month"}
    # 800-token prefix < 2,048 minimum: caching system + tools saves nothing
    assert data["strategies"]["system_tools"]["cost_usd"] == none["cost_usd"]
    assert data["cacheable_prefix_tokens"] == 800
    assert data["min_cacheable_tokens"] == 2048
    assert data["caching_pays_from_prefix_tokens"] == 2048
    assert any("saves nothing" in note for note in data["notes"])


def test_rolling_cache_is_cheaper_once_the_prompt_reaches_the_minimum() -> None:
    result = estimate(PRESETS["five-step"])
    rolling = result.strategies["rolling_5m"]
    assert [it.usage.cache_write_tokens for it in rolling.iterations] == [0, 0, 0, 2180, 300]
    assert [it.usage.cache_read_tokens for it in rolling.iterations] == [0, 0, 0, 0, 2180]
    assert rolling.cost.total < result.strategies["no_cache"].cost.total


def test_shared_system_prompt_is_read_across_runs() -> None:
    big = Workload("claude-sonnet-4-6", 6000, 1000, (200, 700), (100, 100), runs_per_day=1000)
    first_call = estimate(big).strategies["system_tools"].iterations[0]
    assert first_call.usage.cache_read_tokens == 7000  # the previous run, 86 s earlier, cached it


def test_table_output_mentions_the_minimum() -> None:
    result = runner.invoke(app, ["estimate", "--preset", "five-step"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert "$39.93" in result.output
    assert "2,048" in result.output


@pytest.mark.parametrize(
    "shape",
    [
        ["--preset", "five-step"],
        ["--system", "20000", "--tools", "5000", "--history", "150000", "--output", "4000", "--iterations", "12"],
    ],
)
def test_the_tables_are_whole_at_80_columns(shape: list[str]) -> None:
    result = runner.invoke(app, ["estimate", *shape], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output  # nothing cut
    assert max(len(line) for line in result.output.splitlines()) <= 80
    rows = [line.split() for line in result.output.splitlines() if line.strip().split(" ")[0].isdigit()]
    assert len(rows) == (5 if "five-step" in shape else 12)
    if "five-step" in shape:
        assert rows[0] == ["1", "500", "100", "300", "900", "200", "$0.00570", "0", "0", "$0.00570"]
        assert rows[4] == ["5", "500", "1,680", "300", "2,480", "250", "$0.01119", "300", "2,180", "$0.00553"]


def test_custom_shape_with_growth() -> None:
    result = runner.invoke(
        app,
        [
            "estimate",
            "--system",
            "3000",
            "--tools",
            "500",
            "--history",
            "200",
            "--growth",
            "400",
            "--iterations",
            "10",
            "--output",
            "150",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["workload"]["history_tokens"] == [200 + 400 * i for i in range(10)]
    assert data["strategies"]["rolling_5m"]["cost_usd"]["run"] < data["strategies"]["no_cache"]["cost_usd"]["run"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "nope"], "unknown preset"),
        (["--history", "10,abc"], "comma-separated whole numbers"),
        (["--history", "10,-5"], "cannot be negative"),
        (["--history", "10,1.5"], "comma-separated whole numbers"),
        (["--runs-per-day", "inf"], "--runs-per-day"),
        (["--runs-per-day", "nan"], "--runs-per-day"),
        (["--runs-per-day", "-3"], "--runs-per-day"),
        (["--system", "1.5"], "--system"),
        (["--history", "2000000"], "context window of 1,000,000 tokens"),
    ],
)
def test_bad_input_is_named(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["estimate", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_workload_validation() -> None:
    with pytest.raises(ConfigError, match="one output per iteration"):
        Workload("claude-sonnet-4-6", 1, 1, (1, 2), (1,))
    with pytest.raises(ConfigError, match=r"runs_per_day must be a finite number > 0, got inf"):
        Workload("claude-sonnet-4-6", 1, 1, (1,), (1,), runs_per_day=float("inf"))
    with pytest.raises(ConfigError, match=r"seconds_per_call must be a finite number >= 0, got nan"):
        Workload("claude-sonnet-4-6", 1, 1, (1,), (1,), seconds_per_call=float("nan"))
    with pytest.raises(ConfigError, match=r"system_tokens must be a whole number >= 0, got 1.5"):
        Workload("claude-sonnet-4-6", 1.5, 1, (1,), (1,))  # type: ignore[arg-type]


def test_a_shape_where_caching_never_pays_says_so() -> None:
    result = estimate(Workload("claude-sonnet-4-6", 3000, 0, (100,), (100,), runs_per_day=10))
    assert result.pays_from_prefix_tokens is None
    assert any("never pays" in note for note in result.notes)


def test_the_readme_shows_the_real_output() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    shown = readme.split("$ leanloop estimate --preset five-step\n", 1)[1].split("```", 1)[0]
    result = runner.invoke(app, ["estimate", "--preset", "five-step"], env={"COLUMNS": "80"})
    assert [line.rstrip() for line in result.output.splitlines()] == shown.splitlines()
