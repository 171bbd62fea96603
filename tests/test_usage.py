"""usage: the API's shapes in, leanloop's shape out."""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize("bad", [-1, "12", 1.5j, True])
def test_bad_counts_are_named(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"usage\.input_tokens"):
        Usage.from_api({"input_tokens": bad, "output_tokens": 0})


def test_missing_usage_is_an_error() -> None:
    with pytest.raises(ConfigError, match="usage is missing"):
        Usage.from_api(None)


def test_sum() -> None:
    total = Usage(1, 2, 3, 4, 5) + Usage(10, 20, 30, 40, 50, split_estimated=True)
    assert total == Usage(11, 22, 33, 44, 55, split_estimated=True)
