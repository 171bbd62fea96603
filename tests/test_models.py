"""models: one table of context windows and maximum outputs, which the emulator's catalog agrees with."""

from __future__ import annotations

from leanloop.emulator.catalog import CATALOG
from leanloop.models import MODELS, UNKNOWN, context_window, max_output_tokens, model_limits


def test_windows_and_outputs_from_the_fact_sheet() -> None:
    assert context_window("claude-sonnet-4-6") == 1_000_000
    assert max_output_tokens("claude-sonnet-4-6") == 128_000
    assert context_window("claude-haiku-4-5") == 200_000
    assert max_output_tokens("claude-haiku-4-5") == 64_000


def test_a_dated_id_has_its_undated_limits() -> None:
    assert model_limits("claude-haiku-4-5-20251001") == model_limits("claude-haiku-4-5")
    assert model_limits("claude-sonnet-4-5-20250929") == model_limits("claude-sonnet-4-5")


def test_an_unknown_model_gets_the_smallest_current_limits() -> None:
    assert model_limits("claude-opus-9") == UNKNOWN
    assert (UNKNOWN.context_window, UNKNOWN.max_output_tokens) == (200_000, 64_000)


def test_the_emulator_catalog_agrees() -> None:
    for model_id, card in CATALOG.items():
        limits = model_limits(model_id)
        assert (limits.context_window, limits.max_output_tokens) == (card.max_input_tokens, card.max_tokens), model_id
    assert set(MODELS) <= set(CATALOG)
