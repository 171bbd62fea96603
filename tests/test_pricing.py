"""pricing: known values, per-request tiers, 5m/1h split, unknown models, overrides, batch."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest
import yaml
from anthropic.types import CacheCreation
from anthropic.types import Usage as SdkUsage
from hypothesis import given, settings
from hypothesis import strategies as st

from leanloop.errors import ConfigError, UnknownPriceError
from leanloop.pricing import Cost, ModelPrices, PriceOverrides, Pricing, UnknownModelWarning, cost
from leanloop.usage import Usage


def test_five_step_workload_without_cache() -> None:
    assert cost("claude-sonnet-4-6", {"input_tokens": 8810, "output_tokens": 900}).total == Decimal("0.03993")


def test_one_hour_write_read_and_output() -> None:
    usage = {
        "input_tokens": 50,
        "cache_creation_input_tokens": 1000,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1000},
        "cache_read_input_tokens": 100_000,
        "output_tokens": 500,
    }
    result = cost("claude-sonnet-4-6", usage)
    assert result.total == Decimal("0.04365")
    assert result.cache_write_1h == Decimal("0.006")  # 2x input
    assert result.cache_read == Decimal("0.03")  # 0.1x input
    assert not result.estimated


def test_recorded_call_from_the_real_api(shared_data: Path) -> None:
    recording = yaml.safe_load((shared_data / "anthropic-recordings/test_anthropic_cache_real_api.yaml").read_text())
    body = recording["interactions"][1]["response"]["parsed_body"]
    assert cost(body["model"], body["usage"]).total == Decimal("0.0024048")


def test_sdk_usage_object_is_accepted() -> None:
    usage = SdkUsage(
        input_tokens=3,
        output_tokens=33,
        cache_creation_input_tokens=418,
        cache_read_input_tokens=1111,
        cache_creation=CacheCreation(ephemeral_5m_input_tokens=418, ephemeral_1h_input_tokens=0),
    )
    assert cost("claude-sonnet-4-5", usage).total == Decimal("0.0024048")


def test_missing_split_is_priced_as_5m_and_marked_estimated() -> None:
    result = cost("claude-sonnet-4-6", {"input_tokens": 0, "cache_creation_input_tokens": 1000, "output_tokens": 0})
    assert result.cache_write_5m == Decimal("0.00375")
    assert result.estimated
    assert "(est.)" in str(result)


def test_each_request_is_priced_on_its_own_tier() -> None:
    one = {"input_tokens": 150_000, "output_tokens": 1000}
    separately = cost("claude-sonnet-4-5", one).total * 2
    summed = cost("claude-sonnet-4-5", {"input_tokens": 300_000, "output_tokens": 2000}).total
    assert separately == Decimal("0.93")  # 2 x (150K x $3 + 1K x $15) per MTok
    assert summed > separately  # the >200K tier would wrongly apply to the whole sum


def test_cache_read_multiplier_comes_from_the_model() -> None:
    read = {"input_tokens": 0, "cache_read_input_tokens": 1_000_000, "output_tokens": 0}
    assert cost("claude-opus-5-5", read).total == Decimal("0.2")  # 0.05x of $4
    assert cost("claude-fable-5-1", read).total == Decimal("0.25")  # 0.025x of $10
    assert cost("claude-sonnet-4-6", read).total == Decimal("0.3")  # 0.1x of $3


def test_batch_is_half_price() -> None:
    usage = {"input_tokens": 1000, "output_tokens": 1000}
    assert cost("claude-opus-5-5", usage).total == Decimal("0.024")
    assert cost("claude-opus-5-5", usage, batch=True).total == Decimal("0.012")


def test_batch_before_the_price_data_knew_batch_rates_is_still_half() -> None:
    usage = {"input_tokens": 1000, "output_tokens": 1000}
    early = datetime(2026, 1, 5, tzinfo=UTC)
    assert (
        cost("claude-sonnet-4-6", usage, batch=True, at=early).total
        == cost("claude-sonnet-4-6", usage, at=early).total / 2
    )


def test_batch_results_are_priced_as_batch_from_their_service_tier() -> None:
    usage = {"input_tokens": 1000, "output_tokens": 1000, "service_tier": "batch"}
    assert cost("claude-opus-5-5", usage).total == Decimal("0.012")
    assert cost("claude-sonnet-4-6", {"input_tokens": 1000, "service_tier": "batch"}).total == Decimal("0.0015")
    assert cost("claude-opus-5-5", {**usage, "service_tier": "standard"}).total == Decimal("0.024")


def test_fast_mode_in_batch_is_priced_at_the_batch_rate_as_genai_prices_resolves_it() -> None:
    # The Batch API has no fast mode (API-FACTS 3.2); genai-prices resolves batch + fast to the batch prices.
    fast = {"input_tokens": 1000, "output_tokens": 1000, "speed": "fast"}
    assert cost("claude-opus-5-5", fast, batch=True).total == Decimal("0.012")
    assert cost("claude-opus-5-5", {**fast, "service_tier": "batch"}).total == Decimal("0.012")
    theirs = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1000, output_tokens=1000),
        "claude-opus-5-5",
        provider_id="anthropic",
        price_context={"processing": "batch", "speed": "fast"},
    )
    assert theirs.total_price == Decimal("0.012")


def test_web_searches_are_billed_per_request_from_genai_prices() -> None:
    usage = {"input_tokens": 1000, "output_tokens": 100, "server_tool_use": {"web_search_requests": 3}}
    result = cost("claude-sonnet-4-6", usage)
    assert result.web_search == Decimal("0.03")  # $10 per 1,000 searches
    assert result.total == Decimal("0.003") + Decimal("0.0015") + Decimal("0.03")
    assert cost("claude-sonnet-4-6", usage, batch=True).web_search == Decimal("0.03")  # no batch rate for searches
    assert Cost.from_dict(result.to_dict()) == result
    assert (result + result).web_search == Decimal("0.06")
    assert "web_search_usd" not in cost("claude-sonnet-4-6", {"input_tokens": 1}).to_dict()


def test_web_searches_on_a_model_only_the_override_file_knows_use_the_published_fee() -> None:
    pricing = Pricing(PriceOverrides.from_mapping({"my-model": {"input": 1, "output": 2}}))
    result = pricing.cost("my-model", {"input_tokens": 0, "server_tool_use": {"web_search_requests": 100}})
    assert result.web_search == Decimal("1")


def test_fast_mode_and_us_geo() -> None:
    usage = {"input_tokens": 1000, "output_tokens": 1000}
    assert cost("claude-opus-5-5", {**usage, "speed": "fast"}).total == Decimal("0.048")
    assert cost("claude-opus-5-5", {**usage, "inference_geo": "us"}).total == Decimal("0.0264")


def test_unknown_model_is_unknown_never_zero() -> None:
    pricing = Pricing()
    with pytest.warns(UnknownModelWarning, match="'claude-nonexistent-9'"):
        result = pricing.cost("claude-nonexistent-9", {"input_tokens": 10, "output_tokens": 10})
    assert not result.is_known
    assert result.usd is None
    assert "unknown (claude-nonexistent-9)" in str(result)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pricing.cost("claude-nonexistent-9", {"input_tokens": 1, "output_tokens": 1})  # warned once per model
    combined = result + cost("claude-sonnet-4-6", {"input_tokens": 1000, "output_tokens": 0})
    assert combined.priced_total == Decimal("0.003")
    assert combined.unknown_models == {"claude-nonexistent-9"}
    with pytest.raises(UnknownPriceError, match=r"claude-nonexistent-9.*priced part is \$0\.0030"):
        _ = combined.total  # an unknown cost is never $0: asking for its total is an error, not a zero


def test_overrides_win_and_fill_cache_prices_from_multipliers() -> None:
    pricing = Pricing(PriceOverrides.from_mapping({"claude-sonnet-4-6": {"input": 1, "output": 2}}))
    usage = {
        "input_tokens": 1_000_000,
        "cache_creation_input_tokens": 1_000_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1_000_000},
        "cache_read_input_tokens": 1_000_000,
        "output_tokens": 1_000_000,
    }
    result = pricing.cost("claude-sonnet-4-6-20260101", usage)
    assert (result.input, result.cache_write_1h, result.cache_read, result.output) == (1, 2, Decimal("0.1"), 2)
    assert pricing.cost("claude-sonnet-4-6", usage, batch=True).total == result.total / 2


def test_overrides_load_from_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "prices.toml"
    toml.write_text("[my-model]\ninput = 2\noutput = 8\ncache_read = 0.5\n")
    data = tmp_path / "prices.json"
    data.write_text(json.dumps({"my-model": {"input": 2, "output": 8, "cache_read": 0.5}}))
    for path in (toml, data):
        prices = PriceOverrides.load(path)["my-model"]
        assert prices == ModelPrices(Decimal(2), Decimal(8), Decimal("2.5"), Decimal(4), Decimal("0.5"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[m]\noutput = 1\n", "needs 'input'"),
        ("[m]\ninput = 'x'\noutput = 1\n", "not a number"),
        ("[m]\ninput = 1\noutput = 1\ncolour = 2\n", "unknown keys"),
        ("[m]\ninput = -1\noutput = 1\n", "'input' is -1: prices must be finite numbers >= 0"),
        ("[m]\ninput = nan\noutput = 1\n", "'input' is nan: prices must be finite numbers >= 0"),
        ("[m]\ninput = 1\noutput = inf\n", "'output' is inf: prices must be finite"),
        ("[m]\ninput = 1\noutput = 1\ncache_read = -inf\n", "'cache_read' is -inf"),
        ("[m]\ninput = true\noutput = 1\n", "'input' is True: prices must be"),
        ("not toml [", "not valid"),
        ("m = 3\n", "a table per model id"),
    ],
)
def test_bad_override_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        PriceOverrides.load(path)


def test_override_file_format_comes_from_its_extension_in_any_case(tmp_path: Path) -> None:
    upper = tmp_path / "PRICES.JSON"
    upper.write_text(json.dumps({"my-model": {"input": 2, "output": 8}}))
    assert PriceOverrides.load(upper)["my-model"].input == 2
    yaml_file = tmp_path / "prices.yaml"
    yaml_file.write_text("my-model:\n  input: 2\n")
    with pytest.raises(ConfigError, match=r"prices\.yaml: YAML is not supported: use TOML \(\.toml\) or JSON"):
        PriceOverrides.load(yaml_file)


def test_missing_override_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        PriceOverrides.load(tmp_path / "nope.toml")


def test_cost_round_trips_through_dict() -> None:
    original = cost("claude-sonnet-4-6", {"input_tokens": 123, "cache_creation_input_tokens": 7, "output_tokens": 9})
    assert Cost.from_dict(original.to_dict()).total == original.total


MODELS = ["claude-sonnet-4-6", "claude-sonnet-4-5", "claude-opus-5-5", "claude-haiku-5-5", "claude-fable-5-1"]


@given(
    model=st.sampled_from(MODELS),
    tokens=st.tuples(*(st.integers(0, 300_000) for _ in range(5))),
)
@settings(max_examples=200, deadline=None)
def test_components_add_up_to_genai_prices_total(model: str, tokens: tuple[int, int, int, int, int]) -> None:
    fresh, write_5m, write_1h, read, output = tokens
    usage = Usage(fresh, write_5m, write_1h, read, output)
    ours = cost(model, usage).total
    theirs = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.prompt_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cache_write_1h_tokens=write_1h,
            cache_read_tokens=read,
            output_tokens=output,
        ),
        model,
        provider_id="anthropic",
    ).total_price
    assert ours == theirs


@pytest.mark.parametrize("usage", ["x", 5, [], {}, {"foo": 1}, ("input_tokens", 5)])
def test_something_that_is_not_a_usage_is_refused_not_priced_at_zero(usage: object) -> None:
    with pytest.raises(ConfigError, match="is not a Messages API usage"):
        cost("claude-sonnet-4-6", usage)


@pytest.mark.parametrize("model", [5, "", None])
def test_a_model_that_is_not_an_id_is_refused(model: object) -> None:
    with pytest.raises(ConfigError, match="a model id is required"):
        cost(model, {"input_tokens": 1})  # pyright: ignore[reportArgumentType]
