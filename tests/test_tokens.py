"""tokens: the offline estimator, calibrated on real recordings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from leanloop.cachesim import prompt_from_request
from leanloop.tokens import TRAILING_PROMPT_TOKENS, Estimator, count_text


def _recorded(shared_data: Path, name: str) -> list[tuple[dict[str, Any], int]]:
    recording = yaml.safe_load((shared_data / "anthropic-recordings" / name).read_text())
    out = []
    for interaction in recording["interactions"]:
        usage = interaction["response"]["parsed_body"]["usage"]
        total = usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]
        out.append((interaction["request"]["parsed_body"], total))
    return out


def test_estimates_match_real_prompt_counts_within_two_percent(shared_data: Path) -> None:
    cases = _recorded(shared_data, "test_anthropic_cache_real_api.yaml")
    cases += _recorded(shared_data, "test_multiple_parallel_tool_calls.yaml")
    assert len(cases) == 4
    for request, real in cases:
        estimated = prompt_from_request(request).total_tokens
        assert abs(estimated - real) / real < 0.02, (estimated, real)


def test_estimates_are_deterministic_and_monotonic() -> None:
    text = "The checkout service failed to reach db-primary:5432 after 3 retries (timeout=30s)."
    assert count_text(text) == count_text(text)
    assert count_text(text + " More words here.") > count_text(text)
    assert count_text("") == 0
    assert count_text("x" * 100_000) > count_text("x" * 10_000)


def test_random_ids_cost_more_than_words() -> None:
    assert count_text("toolu_01XFyAjstT3966qvRynZyVPo") > count_text("information about people")


def test_newer_tokenizer_counts_about_thirty_percent_more() -> None:
    blocks = [("user+", {"type": "text", "text": "A sentence about logs and errors. " * 200})]
    old = Estimator().count_request("claude-sonnet-4-6", blocks)[0]
    new = Estimator().count_request("claude-opus-4-7", blocks)[0]
    assert 1.25 < new / old < 1.35
    assert Estimator().count_request("claude-opus-5-5", blocks)[0] == new


def test_prompt_ends_with_uncacheable_assistant_opening() -> None:
    p = prompt_from_request({"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]})
    assert p.total_tokens == sum(b.tokens for b in p.blocks) + TRAILING_PROMPT_TOKENS
