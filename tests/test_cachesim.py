"""cachesim: one hand-computed scenario per rule, and hypothesis properties."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leanloop import cachesim
from leanloop.analyze.estimate import PRESETS, estimate
from leanloop.cachesim import (
    DEFAULT_MIN_CACHEABLE_TOKENS,
    TTL,
    Block,
    CacheSim,
    Prompt,
    PromptBuilder,
    UnknownMinimumWarning,
    block_fingerprint,
    min_cacheable_tokens,
    prompt_from_request,
    register_min_cacheable_tokens,
)
from leanloop.emulator import Emulator, create_app
from leanloop.errors import ConfigError, InvalidRequestError
from leanloop.pricing import PriceOverrides, default_pricing
from leanloop.request import CachePolicy, RequestBuilder

MODEL = "claude-sonnet-4-6"  # minimum cacheable length 2,048 tokens


def block(name: str, tokens: int, ttl: TTL | None = None, run: str | None = None, message: int | None = None) -> Block:
    return Block(name, block_fingerprint("t", name), tokens, ttl=ttl, run=run, message=message)


def prompt(*blocks: Block, model: str = MODEL, tail: int = 3) -> Prompt:
    return Prompt(model=model, blocks=blocks, tail_tokens=tail)


def test_first_call_writes_second_reads() -> None:
    sim = CacheSim()
    p = prompt(block("system", 3000, "5m"), block("user", 50, "5m"))
    first = sim.request(p, start=0)
    assert first.usage.cache_write_5m_tokens == 3050
    assert first.usage.input_tokens == 3
    assert first.written == ("system", "user")
    second = sim.request(p, start=1)
    assert (second.usage.cache_read_tokens, second.usage.cache_write_tokens, second.usage.input_tokens) == (3050, 0, 3)
    assert second.read_path == "user"


def test_prefix_below_minimum_is_not_cached() -> None:
    sim = CacheSim()
    p = prompt(block("system", 2000, "5m"))
    for start in (0, 1):
        result = sim.request(p, start=start)
        assert result.usage.cache_write_tokens == 0
        assert result.usage.cache_read_tokens == 0
        assert result.usage.input_tokens == 2003
        assert result.skipped_below_minimum == ("system",)


def test_minimum_depends_on_model_and_is_not_monotonic() -> None:
    assert min_cacheable_tokens("claude-opus-5") == 512
    assert min_cacheable_tokens("claude-opus-4-8") == 1024
    assert min_cacheable_tokens("claude-opus-4-7") == 2048
    assert min_cacheable_tokens("claude-opus-4-6") == 4096
    assert min_cacheable_tokens("claude-haiku-4-5-20251001") == 4096
    assert min_cacheable_tokens("claude-sonnet-5-5") == 512
    assert min_cacheable_tokens("claude-sonnet-5") == 1024
    assert min_cacheable_tokens("claude-3-5-sonnet-latest") == 1024  # a suffix that is not a new version


def test_minimum_table_is_extensible() -> None:
    sim = CacheSim(min_tokens={"my-model": 100})
    result = sim.request(prompt(block("system", 150, "5m"), model="my-model"), start=0)
    assert result.usage.cache_write_tokens == 150


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh process-wide table of minimums and warnings for one test."""
    monkeypatch.setattr(cachesim, "_registered", {})
    monkeypatch.setattr(cachesim, "_warned", set())
    cachesim._default_minimum.cache_clear()  # pyright: ignore[reportPrivateUsage]
    yield
    cachesim._default_minimum.cache_clear()  # pyright: ignore[reportPrivateUsage]


def test_every_model_the_emulator_serves_has_a_known_minimum(registry: None) -> None:
    """A served model missing from the table would be assumed 4,096 with a warning, and its bills would be off."""
    from leanloop.emulator.catalog import CATALOG

    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownMinimumWarning)
        minimums = {model: min_cacheable_tokens(model) for model in CATALOG}
    assert minimums["claude-fable-5-1"] == minimums["claude-mythos-5-2"] == 512


def test_an_unknown_model_gets_the_conservative_default_and_one_warning_naming_it(registry: None) -> None:
    with pytest.warns(UnknownMinimumWarning, match=r"'claude-opus-6'.*4,096.*register_min_cacheable_tokens"):
        assert min_cacheable_tokens("claude-opus-6") == DEFAULT_MIN_CACHEABLE_TOKENS == 4096
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert min_cacheable_tokens("claude-opus-6") == 4096  # warned once
        assert CacheSim().min_tokens("claude-opus-6") == 4096
    with pytest.warns(UnknownMinimumWarning, match="claude-opus-4-9"):  # a new minor version is a new model
        min_cacheable_tokens("claude-opus-4-9")


def test_a_registered_minimum_is_read_everywhere(registry: None) -> None:
    register_min_cacheable_tokens("claude-opus-6", 1024)
    register_min_cacheable_tokens("claude-sonnet-4-6", 1024)  # measured by the user: overrides the built-in 2,048
    assert min_cacheable_tokens("claude-opus-6-20270101") == 1024
    assert CacheSim().min_tokens("claude-sonnet-4-6") == 1024
    long_system = "You triage incidents from logs and answer precisely. " * 150  # ~1,350 tokens
    request = {"model": "claude-sonnet-4-6", "system": [{"type": "text", "text": long_system}], "messages": []}
    request["system"][0]["cache_control"] = {"type": "ephemeral"}
    written = CacheSim().request(prompt_from_request(request), start=0).usage.cache_write_tokens
    assert written > 1024  # cached now, below the built-in 2,048
    assert estimate(PRESETS["five-step"]).min_cacheable_tokens == 1024  # estimate
    assert Emulator.of(create_app({})).cache.min_tokens("claude-opus-6") == 1024  # the emulator bills with it
    built = RequestBuilder(model="claude-opus-6", system=long_system, tools=[], cache=CachePolicy()).build(
        [{"role": "user", "content": "hi"}], max_tokens=10
    )
    assert built.breakpoints  # the agent's planner places a breakpoint it would not place below 4,096


def test_the_price_override_file_sets_minimums_for_the_process(
    registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text("[claude-sonnet-4-6]\nmin_cacheable_tokens = 1024\n\n[my-model]\ninput = 1\noutput = 2\n")
    monkeypatch.setenv("LEANLOOP_PRICES", str(prices))
    default_pricing.cache_clear()
    try:
        assert min_cacheable_tokens("claude-sonnet-4-6") == 1024  # read before anything was priced
        assert "claude-sonnet-4-6" not in default_pricing().overrides  # no prices given: genai-prices prices it
        assert "my-model" in default_pricing().overrides
    finally:
        default_pricing.cache_clear()
    prices.write_text("[claude-opus-6]\nmin_cacheable_tokens = 0\n")
    with pytest.raises(ConfigError, match=r"prices\.toml: .*'min_cacheable_tokens' is 0: a whole number > 0"):
        PriceOverrides.load(prices)


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "1024"])
def test_a_bad_minimum_is_named(registry: None, bad: object) -> None:
    with pytest.raises(ConfigError, match=r"minimum cacheable length for 'my-model' must be a whole number > 0"):
        register_min_cacheable_tokens("my-model", bad)  # type: ignore[arg-type]


def _conversation(turns: int, *, mark_last: bool = True, run: str | None = None) -> list[Block]:
    blocks = [block("system", 3000, "5m")]
    for i in range(turns):
        blocks.append(block(f"m{i}", 10, run=run, message=1 if run else i))
    if mark_last:
        last = blocks[-1]
        blocks[-1] = Block(last.path, last.fingerprint, last.tokens, ttl="5m", run=last.run, message=last.message)
    return blocks


def test_breakpoint_twenty_positions_after_an_entry_hits_twenty_one_misses() -> None:
    # Entry at m0 (position 1). A breakpoint at position 21 looks back to position 1: hit. At 22: miss.
    for turns, hit in ((21, True), (22, False)):
        sim = CacheSim()
        sim.request(prompt(*_conversation(1)), start=0)
        result = sim.request(prompt(*_conversation(turns)), start=1)
        system_only = 3000
        if hit:
            assert result.read_path == "m0"
            assert result.usage.cache_read_tokens == 3010
        else:
            # the system breakpoint still reads the system entry; the conversation entry is out of reach
            assert result.read_path == "system"
            assert result.usage.cache_read_tokens == system_only
            assert result.usage.cache_write_tokens == turns * 10


def test_parallel_tool_results_count_as_one_position() -> None:
    sim = CacheSim()
    base = [block("system", 3000, "5m"), block("ask", 10, "5m", message=0)]
    sim.request(prompt(*base), start=0)
    uses = [block(f"use{i}", 10, run="tool_use", message=1) for i in range(30)]
    results = [block(f"result{i}", 10, run="tool_result", message=2) for i in range(30)]
    last = results[-1]
    results[-1] = Block(last.path, last.fingerprint, last.tokens, ttl="5m", run="tool_result", message=2)
    result = sim.request(prompt(*base[:1], block("ask", 10, message=0), *uses, *results), start=1)
    assert result.read_path == "ask"  # 60 blocks but only 2 positions after the entry
    assert result.usage.cache_read_tokens == 3010
    assert result.usage.cache_write_tokens == 600


def test_sequential_tool_results_in_separate_messages_each_count() -> None:
    sim = CacheSim()
    sim.request(prompt(*_conversation(1)), start=0)
    long_turn = [block("system", 3000, "5m"), block("m0", 10, message=0)]
    long_turn += [block(f"r{i}", 10, run="tool_result", message=i + 1) for i in range(25)]
    last = long_turn[-1]
    long_turn[-1] = Block(last.path, last.fingerprint, 10, ttl="5m", run="tool_result", message=last.message)
    result = sim.request(prompt(*long_turn), start=1)
    assert result.read_path == "system"


def test_model_switch_misses() -> None:
    sim = CacheSim()
    p = prompt(block("system", 5000, "5m"))
    sim.request(p, start=0)
    other = sim.request(prompt(block("system", 5000, "5m"), model="claude-opus-4-8"), start=1)
    assert other.usage.cache_read_tokens == 0
    assert other.usage.cache_write_tokens == 5000
    dated = sim.request(prompt(block("system", 5000, "5m"), model="claude-sonnet-4-6-20260101"), start=2)
    assert dated.usage.cache_read_tokens == 5000  # a date suffix names the same model


@pytest.mark.parametrize(("ttl", "seconds"), [("5m", 300.0), ("1h", 3600.0)])
def test_expiry_and_refresh_on_read(ttl: TTL, seconds: float) -> None:
    sim = CacheSim()
    p = prompt(block("system", 5000, ttl))
    sim.request(p, start=0)
    assert sim.request(p, start=seconds - 1).usage.cache_read_tokens == 5000  # refreshes: now lives to 2*s - 1
    assert sim.request(p, start=2 * seconds - 2).usage.cache_read_tokens == 5000
    expired = sim.request(p, start=4 * seconds)
    assert expired.usage.cache_read_tokens == 0
    assert expired.usage.cache_write_tokens == 5000


def test_a_read_refreshes_the_entry_for_its_own_ttl_not_the_readers() -> None:
    # SKILL-PC: "A cache read refreshes the entry's timer at no additional cost, on either TTL."
    sim = CacheSim()
    one_hour, five_minutes = prompt(block("system", 5000, "1h")), prompt(block("system", 5000, "5m"))
    sim.request(one_hour, start=0)
    assert sim.request(five_minutes, start=3000).usage.cache_read_tokens == 5000  # a 5m breakpoint reads the 1h entry
    later = sim.request(one_hour, start=3700)  # 12 minutes after that read: the entry lives to 3000 + 3600
    assert (later.usage.cache_read_tokens, later.usage.cache_write_tokens) == (5000, 0)
    sim = CacheSim()
    sim.request(five_minutes, start=0)
    assert sim.request(one_hour, start=100).usage.cache_read_tokens == 5000  # a 1h breakpoint reads the 5m entry
    expired = sim.request(five_minutes, start=401)  # the 5m entry was refreshed for 5 minutes, not an hour
    assert (expired.usage.cache_read_tokens, expired.usage.cache_write_tokens) == (0, 5000)


def test_entry_expires_exactly_at_ttl_from_request_start() -> None:
    sim = CacheSim()
    p = prompt(block("system", 5000, "5m"))
    sim.request(p, start=10.0, response_start=40.0)  # a slow response does not extend the TTL
    assert sim.predict(p, start=309.9).usage.cache_read_tokens == 5000
    assert sim.predict(p, start=310.0).usage.cache_read_tokens == 0


def test_concurrent_identical_requests_both_pay_the_write() -> None:
    sim = CacheSim()
    p = prompt(block("system", 5000, "5m"))
    first = sim.request(p, start=0.0, response_start=1.5)
    second = sim.request(p, start=0.2, response_start=1.6)  # sent before the first response started streaming
    third = sim.request(p, start=2.0)
    assert first.usage.cache_write_tokens == second.usage.cache_write_tokens == 5000
    assert third.usage.cache_read_tokens == 5000


def test_one_hour_and_five_minute_writes_are_split() -> None:
    sim = CacheSim()
    result = sim.request(prompt(block("system", 4000, "1h"), block("user", 500, "5m")), start=0)
    assert result.usage.cache_write_1h_tokens == 4000
    assert result.usage.cache_write_5m_tokens == 500


def test_breakpoint_below_minimum_folds_into_the_next_one() -> None:
    sim = CacheSim()
    result = sim.request(prompt(block("tools", 1000, "1h"), block("system", 3000, "5m")), start=0)
    assert result.skipped_below_minimum == ("tools",)
    assert result.usage.cache_write_5m_tokens == 4000


def _request(system: Any, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 100, "system": system, "messages": messages, **extra}


LONG = "You are a careful assistant who reads logs and explains failures. " * 250


def test_timestamp_in_system_prompt_writes_every_call() -> None:
    sim = CacheSim()
    usages = []
    for second in range(3):
        system = [
            {"type": "text", "text": f"{LONG} Current time: 12:00:0{second}.", "cache_control": {"type": "ephemeral"}}
        ]
        p = prompt_from_request(_request(system, [{"role": "user", "content": "hi"}]))
        usages.append(sim.request(p, start=second).usage)
    assert all(u.cache_read_tokens == 0 and u.cache_write_tokens > 2048 for u in usages)


def test_stable_system_prompt_reads_from_the_second_call() -> None:
    sim = CacheSim()
    system = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
    first = sim.request(prompt_from_request(_request(system, [{"role": "user", "content": "a"}])), start=0)
    second = sim.request(prompt_from_request(_request(system, [{"role": "user", "content": "b"}])), start=1)
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens > 2048


def test_string_and_block_content_are_the_same_prompt() -> None:
    a = prompt_from_request(_request(LONG, [{"role": "user", "content": "hi"}]))
    b = prompt_from_request(
        _request([{"type": "text", "text": LONG}], [{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    )
    assert a.prefix_hashes == b.prefix_hashes


def test_key_order_inside_tool_input_changes_the_prefix() -> None:
    def with_input(tool_input: dict[str, Any]) -> Prompt:
        return prompt_from_request(
            _request(
                LONG,
                [
                    {"role": "user", "content": "go"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": tool_input}],
                    },
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
                ],
            )
        )

    a, b = with_input({"a": 1, "b": 2}), with_input({"b": 2, "a": 1})
    assert a.prefix_hashes[:2] == b.prefix_hashes[:2]
    assert a.prefix_hashes[-1] != b.prefix_hashes[-1]


def test_tool_choice_change_invalidates_messages_not_system() -> None:
    sim = CacheSim()
    system = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
    msgs = [{"role": "user", "content": [{"type": "text", "text": "go " * 50, "cache_control": {"type": "ephemeral"}}]}]
    first = sim.request(prompt_from_request(_request(system, msgs)), start=0)
    same = sim.predict(prompt_from_request(_request(system, msgs, tool_choice={"type": "auto"})), start=1)
    assert same.usage.cache_read_tokens == first.usage.cache_write_tokens
    forced = sim.predict(prompt_from_request(_request(system, msgs, tool_choice={"type": "any"})), start=1)
    assert forced.read_path == "system.0"


def test_automatic_caching_lands_on_last_eligible_block() -> None:
    sim = CacheSim()
    msgs = [{"role": "user", "content": LONG}]
    p = prompt_from_request(_request("sys", msgs, cache_control={"type": "ephemeral"}))
    assert p.breakpoints == [(len(p.blocks) - 1, "5m")]
    first = sim.request(p, start=0)
    assert first.written == ("messages.0.content.0",)
    thinking_last = [
        {"role": "user", "content": LONG},
        {"role": "assistant", "content": [{"type": "text", "text": "x"}, {"type": "thinking", "thinking": "hm"}]},
    ]
    p2 = prompt_from_request(_request("sys", thinking_last, cache_control={"type": "ephemeral", "ttl": "1h"}))
    assert p2.blocks[p2.breakpoints[0][0]].path == "messages.1.content.0"


def _marked(n: int, ttls: list[str] | None = None) -> list[dict[str, Any]]:
    ttls = ttls or ["5m"] * n
    return [
        {"type": "text", "text": f"block {i}", "cache_control": {"type": "ephemeral", "ttl": ttls[i]}} for i in range(n)
    ]


def test_fifth_breakpoint_is_rejected_with_the_api_message() -> None:
    p = prompt_from_request(_request(_marked(5), [{"role": "user", "content": "x"}]))
    with pytest.raises(
        InvalidRequestError, match=r"^A maximum of 4 blocks with cache_control may be provided\. Found 5\.$"
    ):
        _ = p.breakpoints
    auto = prompt_from_request(
        _request(_marked(4), [{"role": "user", "content": "x"}], cache_control={"type": "ephemeral"})
    )
    with pytest.raises(InvalidRequestError, match="Found 5"):
        _ = auto.breakpoints
    marked_last = [{"role": "user", "content": _marked(1)}]
    on_the_same_block = prompt_from_request(_request(_marked(3), marked_last, cache_control={"type": "ephemeral"}))
    with pytest.raises(InvalidRequestError, match="Found 5"):  # 4 explicit markers: no slot left for it
        _ = on_the_same_block.breakpoints
    three = prompt_from_request(_request(_marked(2), marked_last, cache_control={"type": "ephemeral"}))
    assert len(three.breakpoints) == 3  # it merges with the marker on its block


def test_one_hour_after_five_minutes_is_rejected() -> None:
    p = prompt_from_request(_request(_marked(2, ["5m", "1h"]), [{"role": "user", "content": "x"}]))
    with pytest.raises(InvalidRequestError) as caught:
        _ = p.breakpoints
    assert caught.value.message.startswith("system.1.cache_control.ttl: a ttl='1h' cache_control block must not come")
    assert caught.value.status == 400


def test_unknown_ttl_and_type_are_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="Input should be '5m' or '1h'"):
        prompt_from_request(
            _request([{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "24h"}}], [])
        )
    with pytest.raises(InvalidRequestError, match="Input should be 'ephemeral'"):
        prompt_from_request(_request([{"type": "text", "text": "x", "cache_control": {"type": "persistent"}}], []))


def test_top_level_cache_control_errors_name_the_field_once() -> None:
    with pytest.raises(InvalidRequestError, match=r"^cache_control\.ephemeral\.ttl: Input should be '5m' or '1h'$"):
        prompt_from_request(_request("sys", [], cache_control={"type": "ephemeral", "ttl": "2h"}))
    with pytest.raises(InvalidRequestError, match=r"^cache_control\.type: Input should be 'ephemeral'$"):
        prompt_from_request(_request("sys", [], cache_control={"type": "forever"}))


def test_extra_keys_in_cache_control_are_rejected_as_the_api_does() -> None:
    with pytest.raises(
        InvalidRequestError, match=r"^system\.0\.cache_control\.ephemeral\.extra: Extra inputs are not permitted$"
    ):
        prompt_from_request(
            _request([{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "extra": 1}}], [])
        )
    with pytest.raises(InvalidRequestError, match=r"^cache_control\.ephemeral\.scope: Extra inputs"):
        prompt_from_request(_request("sys", [], cache_control={"type": "ephemeral", "ttl": "5m", "scope": "org"}))


def test_custom_token_counter_is_used() -> None:
    class Flat:
        def count_request(self, model: str, blocks: Any) -> list[int]:
            return [100] * len(blocks)

    p = prompt_from_request(_request("sys", [{"role": "user", "content": "hi"}]), counter=Flat())
    assert p.total_tokens == 203


def test_expired_entries_are_purged() -> None:
    sim = CacheSim()
    for i in range(3000):
        sim.request(prompt(block(f"s{i}", 5000, "5m")), start=float(i))
    assert len(sim) < 3000


# ---------------------------------------------------------------------------------------------------------------
# Properties


@st.composite
def conversations(draw: st.DrawFn) -> tuple[str, list[tuple[list[Block], float]]]:
    """A growing conversation: each request extends the previous one, with random breakpoints and gaps."""
    model = draw(st.sampled_from([MODEL, "claude-opus-5", "claude-haiku-4-5"]))
    blocks: list[Block] = []
    requests: list[tuple[list[Block], float]] = []
    now = 0.0
    for turn in range(draw(st.integers(1, 8))):
        for k in range(draw(st.integers(1, 6))):
            run = draw(st.sampled_from([None, "tool_use", "tool_result"]))
            blocks.append(block(f"b{turn}.{k}", draw(st.integers(1, 3000)), run=run, message=turn))
        marks = draw(st.lists(st.integers(0, len(blocks) - 1), max_size=4, unique=True))
        ttl = draw(st.sampled_from(["5m", "1h"]))
        marked = [
            Block(b.path, b.fingerprint, b.tokens, ttl=ttl if i in marks else None, run=b.run, message=b.message)
            for i, b in enumerate(blocks)
        ]
        now += draw(st.floats(0, 900))
        requests.append((marked, now))
    return model, requests


@given(conversations())
@settings(max_examples=150, deadline=None)
def test_tokens_add_up_and_reads_never_exceed_what_was_cached(
    case: tuple[str, list[tuple[list[Block], float]]],
) -> None:
    model, requests = case
    sim = CacheSim()
    cached_so_far = 0
    for blocks, start in requests:
        p = Prompt(model=model, blocks=tuple(blocks))
        usage = sim.request(p, start=start).usage
        assert usage.input_tokens + usage.cache_write_tokens + usage.cache_read_tokens == p.total_tokens
        assert usage.input_tokens >= p.tail_tokens
        assert usage.cache_read_tokens <= cached_so_far
        cached_so_far = max(cached_so_far, usage.cache_read_tokens + usage.cache_write_tokens)


@given(conversations())
@settings(max_examples=100, deadline=None)
def test_predict_matches_request_and_changes_nothing(case: tuple[str, list[tuple[list[Block], float]]]) -> None:
    model, requests = case
    sim = CacheSim()
    for blocks, start in requests:
        p = Prompt(model=model, blocks=tuple(blocks))
        predicted = sim.predict(p, start=start)
        assert sim.predict(p, start=start) == predicted
        assert sim.request(p, start=start) == predicted


# ---------------------------------------------------------------------------------------------------------------
# PromptBuilder: incremental, same answer as building from scratch


def _chains(p: Prompt) -> tuple[list[bytes], list[int], list[int], list[str]]:
    return p.prefix_hashes, p.prefix_tokens, p.positions, [b.path for b in p.blocks]


OPERATIONS = ["user", "tool_turn", "edit_last", "drop_last", "new_system", "move_mark", "grow_last", "retext_last"]


@given(st.lists(st.sampled_from(OPERATIONS), max_size=12))
@settings(max_examples=80, deadline=None)
def test_incremental_builder_matches_a_fresh_build(operations: list[str]) -> None:
    builder = PromptBuilder()
    system = "You are terse. " * 10
    messages: list[dict[str, Any]] = [{"role": "user", "content": "start"}]
    for step, operation in enumerate(operations):
        if operation == "user":
            messages.append({"role": "assistant", "content": f"reply {step}"})
            messages.append({"role": "user", "content": f"question {step}"})
        elif operation == "tool_turn":
            uses = [{"type": "tool_use", "id": f"t{step}{k}", "name": "f", "input": {"k": k}} for k in range(3)]
            results = [{"type": "tool_result", "tool_use_id": f"t{step}{k}", "content": "ok"} for k in range(3)]
            messages += [{"role": "assistant", "content": uses}, {"role": "user", "content": results}]
        elif operation == "edit_last":
            messages[-1] = {**messages[-1], "content": f"edited {step}"}
        elif operation == "drop_last" and len(messages) > 1:
            messages.pop()
        elif operation == "new_system":
            system += " More."
        else:
            _edit_in_place(messages, operation, step)
        request = {
            "model": MODEL,
            "system": system,
            "tools": [{"name": "f", "input_schema": {}}],
            "messages": list(messages),
        }
        built, fresh = builder.build(request), prompt_from_request(request)
        assert _chains(built) == _chains(fresh)
        assert built.breakpoints == fresh.breakpoints
        assert built.marked == tuple(i for i, b in enumerate(built.blocks) if b.ttl is not None)  # kept, not scanned


@given(st.lists(st.sampled_from(["same", "new_system", "new_tool", "cache_system", "other_model"]), max_size=8))
@settings(max_examples=60, deadline=None)
def test_builders_sharing_heads_reuse_an_unchanged_head_and_match_a_fresh_build(runs: list[str]) -> None:
    """Each run of an agent has its own builders; they share the tools + system blocks while those are unchanged
    (a run does not serialise and hash a long system prompt again), and build what a fresh builder builds."""
    heads: dict[str, Any] = {}
    system: Any = LONG
    tools = [{"name": "f", "input_schema": {}}]
    model, previous = MODEL, dict[str, Prompt]()
    for step, change in enumerate(["same", *runs]):
        if change == "new_system":
            system = f"{LONG} Run {step}."
        elif change == "new_tool":
            tools = [*tools, {"name": f"g{step}", "input_schema": {}}]
        elif change == "cache_system":
            system = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
        elif change == "other_model":
            model = "claude-haiku-4-5" if model == MODEL else MODEL
        request = {"model": model, "system": system, "tools": tools, "messages": [{"role": "user", "content": "hi"}]}
        built, fresh = PromptBuilder(heads=heads).build(request), prompt_from_request(request)
        assert _chains(built) == _chains(fresh) and built.breakpoints == fresh.breakpoints
        head = len(tools) + 2  # tools, the system block, the settings pseudo-block
        if change == "same" and model in previous:  # the same head as this model's previous run
            assert all(a is b for a, b in zip(built.blocks[:head], previous[model].blocks[:head], strict=True))
        previous[model] = built


def _fresh_and_incremental(builder: PromptBuilder, messages: list[dict[str, Any]]) -> tuple[Prompt, Prompt]:
    request = {"model": MODEL, "system": "You are terse.", "messages": messages}
    return builder.build(request), prompt_from_request(request)


def test_moving_a_breakpoint_in_place_is_seen() -> None:
    builder = PromptBuilder()
    mark = {"type": "ephemeral"}
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": LONG, "cache_control": mark}]}
    ]
    builder.build({"model": MODEL, "system": "You are terse.", "messages": messages})
    del messages[0]["content"][0]["cache_control"]  # naive user code moves the rolling breakpoint in place
    messages.append({"role": "assistant", "content": [{"type": "text", "text": "ok"}]})
    messages.append({"role": "user", "content": [{"type": "text", "text": "and?", "cache_control": mark}]})
    incremental, fresh = _fresh_and_incremental(builder, messages)
    assert incremental.breakpoints == fresh.breakpoints == [(len(fresh.blocks) - 1, "5m")]
    messages[-1]["content"][0]["cache_control"]["ttl"] = "1h"  # the mark itself edited in place
    incremental, fresh = _fresh_and_incremental(builder, messages)
    assert incremental.breakpoints == fresh.breakpoints == [(len(fresh.blocks) - 1, "1h")]


def test_editing_the_last_message_in_place_is_seen() -> None:
    builder = PromptBuilder()
    messages: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "text", "text": LONG}]}]
    builder.build({"model": MODEL, "system": "You are terse.", "messages": messages})
    messages[0]["content"].append({"type": "text", "text": "more " * 500})  # a block appended in place
    incremental, fresh = _fresh_and_incremental(builder, messages)
    assert _chains(incremental) == _chains(fresh)
    messages[0]["content"][1]["text"] = "less"  # a field reassigned in place
    incremental, fresh = _fresh_and_incremental(builder, messages)
    assert _chains(incremental) == _chains(fresh)
    messages[0]["content"] = "a string now"  # the content replaced
    incremental, fresh = _fresh_and_incremental(builder, messages)
    assert _chains(incremental) == _chains(fresh)


def _edit_in_place(messages: list[dict[str, Any]], operation: str, step: int) -> None:
    """What naive user code does to the messages it already sent: the last one's blocks, edited in place."""
    last = messages[-1]
    if isinstance(last["content"], str):
        last["content"] = [{"type": "text", "text": last["content"]}]
    blocks: list[dict[str, Any]] = last["content"]
    if operation == "move_mark":
        for message in messages:
            for block in message["content"] if isinstance(message["content"], list) else []:
                block.pop("cache_control", None)
        blocks[-1]["cache_control"] = {"type": "ephemeral"}
    elif operation == "grow_last" and blocks[-1].get("type") == "text":
        blocks.append({"type": "text", "text": f"more {step}"})
    elif operation == "retext_last" and blocks[-1].get("type") == "text":
        blocks[-1]["text"] = f"retexted {step}"


def test_with_marks_keeps_chains_and_sets_breakpoints() -> None:
    p = prompt_from_request(_request(LONG, [{"role": "user", "content": "hi"}]))
    marked = p.with_marks({0: "1h", len(p.blocks) - 1: "5m"})
    assert marked.prefix_hashes == p.prefix_hashes
    assert marked.breakpoints == [(0, "1h"), (len(p.blocks) - 1, "5m")]
    assert p.breakpoints == []
