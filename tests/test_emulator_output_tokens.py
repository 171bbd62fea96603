"""The emulator's output tokens against the real API's, for the same content: every recorded response in
``shared/data/anthropic-recordings`` is served again through the emulator and its bill compared with the recorded
``usage.output_tokens``. Tolerance: each response within 10 %, all of them together within 5 % (measured: the worst is
-6.8 % on markdown-heavy text, tool-call turns are within 5 %, the total is -3.3 %; before the tool framing was
fitted the 4-call turn was billed 109 tokens instead of 202)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from leanloop.emulator import Reply, async_client, create_app
from leanloop.emulator.replay import load_trajectory, replies_from_stream

pytestmark = pytest.mark.anyio

RECORDINGS = [
    "test_multiple_parallel_tool_calls.yaml",
    "test_anthropic_cache_real_api.yaml",
    "test_anthropic_native_tool_search_streaming.yaml",
]


def recorded_output_tokens(path: Path) -> list[int]:
    """``usage.output_tokens`` of each recorded 200 response, JSON or streamed (the final message_delta)."""
    counts: list[int] = []
    for interaction in yaml.safe_load(path.read_text())["interactions"]:
        response = interaction["response"]
        parsed = response.get("parsed_body")
        if parsed and parsed.get("type") == "message":
            counts.append(parsed["usage"]["output_tokens"])
            continue
        deltas = [line for line in response["body"]["string"].splitlines() if '"message_delta"' in line]
        counts.append(json.loads(deltas[-1][len("data:") :])["usage"]["output_tokens"])
    return counts


def recorded(shared_data: Path) -> list[tuple[str, Reply, int]]:
    folder = shared_data / "anthropic-recordings"
    cases = [
        (f"{name} #{i + 1}", reply, real)
        for name in RECORDINGS
        for i, (reply, real) in enumerate(
            zip(load_trajectory(folder / name), recorded_output_tokens(folder / name), strict=True)
        )
    ]
    sse = (folder / "cache_1h_ttl_streaming.response.sse").read_text()
    (reply,) = replies_from_stream(sse)
    real = json.loads([line for line in sse.splitlines() if '"message_delta"' in line][-1][5:])["usage"]
    return [*cases, ("cache_1h_ttl_streaming.response.sse", reply, real["output_tokens"])]


async def billed(reply: Reply) -> int:
    """The output tokens the emulator bills for answering ``reply``, through the SDK."""
    names = dict.fromkeys(str(b["name"]) for b in reply.content if b.get("type") == "tool_use")
    tools: Any = [{"name": name, "input_schema": {"type": "object"}} for name in names]
    client = async_client(create_app({"claude-sonnet-4-6": lambda request: reply}))
    message = await client.messages.create(
        model="claude-sonnet-4-6", max_tokens=8192, messages=[{"role": "user", "content": "-"}], tools=tools
    )
    return message.usage.output_tokens


async def test_output_tokens_match_the_recorded_responses(shared_data: Path) -> None:
    cases = recorded(shared_data)
    assert len(cases) == 7
    measured = [(name, await billed(reply), real) for name, reply, real in cases]
    for name, emulated, real in measured:
        assert abs(emulated - real) <= 0.10 * real, (name, emulated, real)
    total_emulated = sum(e for _, e, _ in measured)
    total_real = sum(r for _, _, r in measured)
    assert abs(total_emulated - total_real) <= 0.05 * total_real, (total_emulated, total_real)


async def test_tool_calls_are_billed_for_their_framing_not_just_their_json(shared_data: Path) -> None:
    # The recorded turn with 4 parallel calls: the real API billed 202 tokens, the JSON alone is a fraction of that.
    name, reply, real = recorded(shared_data)[0]
    assert (name, real) == ("test_multiple_parallel_tool_calls.yaml #1", 202)
    assert abs(await billed(reply) - real) <= 0.05 * real
