"""leanloop estimate: the reference workload, its notes, and bad input."""

from __future__ import annotations

import json

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
    result = runner.invoke(app, ["estimate", "--preset", "five-step"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    assert "$39.93" in result.output
    assert "2,048" in result.output


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
    ],
)
def test_bad_input_is_named(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["estimate", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_workload_validation() -> None:
    with pytest.raises(ConfigError, match="one output per iteration"):
        Workload("claude-sonnet-4-6", 1, 1, (1, 2), (1,))
