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
        (["--history", "2000000"], "--history: iteration 1 sends 2,000,800 tokens (system 500 + tools 300"),
        (["--tools", "99999999999"], "--tools: iteration 1 sends 100,000,000,599 tokens"),
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


def _refused(*args: str) -> str:
    result = runner.invoke(app, ["estimate", *args])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr.strip()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--history", "100,600", "--iterations", "5"],
            "leanloop estimate: --history: 2 values for --iterations 5: give one value per iteration, one value for "
            "all, or a start value with --growth",
        ),
        (
            ["--history", "100,600,900", "--iterations", "2"],
            "leanloop estimate: --history: 3 values for --iterations 2: give one value per iteration, one value for "
            "all, or a start value with --growth",
        ),
        (
            ["--iterations", "3"],
            "leanloop estimate: --iterations: 3, but the five-step preset has 5 iterations: give --history (one value "
            "per iteration, or one for all) or --history START --growth N",
        ),
        (
            ["--history", "100,600", "--growth", "50", "--iterations", "4"],
            "leanloop estimate: --growth: grows from one --history value (the first iteration's), got 2",
        ),
        (
            ["--history", "200", "--growth", "400"],
            "leanloop estimate: --growth: needs --iterations (how many iterations the history grows over)",
        ),
    ],
)
def test_a_history_that_does_not_match_the_iterations_is_refused(args: list[str], message: str) -> None:
    assert _refused(*args) == message


def _workload(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["estimate", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_one_history_value_is_the_same_every_iteration() -> None:
    data = _workload("--history", "800", "--iterations", "3")
    workload = data["workload"]
    assert isinstance(workload, dict)
    assert workload["history_tokens"] == [800, 800, 800]


def test_the_preset_outputs_for_another_number_of_iterations_are_their_mean_and_it_says_so() -> None:
    data = _workload("--history", "100,200,300")
    workload = data["workload"]
    assert isinstance(workload, dict)
    assert workload["output_tokens"] == [180, 180, 180]
    assert "Output: 180 tokens per iteration, the five-step preset's mean (--output sets it)." in data["notes"]


def test_with_no_shape_the_output_says_it_is_the_preset() -> None:
    data = _workload()
    assert "No workload given: this is the five-step preset (see leanloop estimate --help)." in data["notes"]
    assert not any("preset" in note for note in _workload("--preset", "five-step")["notes"])  # type: ignore[union-attr]
