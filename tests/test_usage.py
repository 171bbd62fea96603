"""usage: the API's shapes in, leanloop's shape out."""

from __future__ import annotations

import pytest
from anthropic.types import ServerToolUsage
from anthropic.types import Usage as SdkUsage

from leanloop.errors import ConfigError
from leanloop.usage import Usage


def test_from_api_with_split() -> None:
    usage = Usage.from_api(
        {
            "input_tokens": 13,
            "cache_creation_input_tokens": 3913,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 3913},
            "output_tokens": 4,
        }
    )
    assert (usage.cache_write_1h_tokens, usage.cache_write_5m_tokens, usage.prompt_tokens) == (3913, 0, 3926)
    assert not usage.split_estimated


def test_none_fields_count_as_zero() -> None:
    usage = Usage.from_api({"input_tokens": 5, "output_tokens": 1, "cache_read_input_tokens": None})
    assert usage.cache_read_tokens == 0


def test_round_trips() -> None:
    usage = Usage(1, 2, 3, 4, 5, split_estimated=True, speed="fast", inference_geo="us")
    assert Usage.from_dict(usage.to_dict()) == usage
    assert Usage.from_api(usage.to_api()).prompt_tokens == usage.prompt_tokens


@pytest.mark.parametrize("bad", [-1, "12", 1.5j, True, float("nan"), float("inf"), 1.9, -0.5])
def test_bad_counts_are_named(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"usage\.input_tokens must be a non-negative whole number, got"):
        Usage.from_api({"input_tokens": bad, "output_tokens": 0})


def test_bad_counts_in_a_trace_shape_are_named() -> None:
    with pytest.raises(ConfigError, match=r"usage\.cache_read_tokens"):
        Usage.from_dict({"cache_read_tokens": float("nan")})
    with pytest.raises(ConfigError, match=r"usage\.server_tool_use\.web_search_requests"):
        Usage.from_api({"input_tokens": 1, "server_tool_use": {"web_search_requests": 0.5}})


def test_a_whole_float_is_a_count() -> None:
    assert Usage.from_api({"input_tokens": 12.0}).input_tokens == 12


def test_service_tier_and_web_searches_come_from_sdk_usage_and_dicts() -> None:
    sdk = SdkUsage(
        input_tokens=10,
        output_tokens=5,
        service_tier="batch",
        server_tool_use=ServerToolUsage(web_search_requests=3, web_fetch_requests=1),
    )
    for source in (sdk, sdk.model_dump()):
        usage = Usage.from_api(source)
        assert (usage.service_tier, usage.web_search_requests) == ("batch", 3)
    assert Usage.from_api({"input_tokens": 1, "server_tool_use": None}).web_search_requests == 0
    usage = Usage(1, 0, 0, 0, 1, service_tier="batch", web_search_requests=2)
    assert Usage.from_dict(usage.to_dict()) == usage
    assert Usage.from_api(usage.to_api()).web_search_requests == 2
    assert (usage + usage).web_search_requests == 4
    assert "web_search_requests" not in Usage(1).to_dict()  # traces without searches stay as they were


def test_missing_usage_is_an_error() -> None:
    with pytest.raises(ConfigError, match="usage is missing"):
        Usage.from_api(None)


def test_sum() -> None:
    total = Usage(1, 2, 3, 4, 5) + Usage(10, 20, 30, 40, 50, split_estimated=True)
    assert total == Usage(11, 22, 33, 44, 55, split_estimated=True)
