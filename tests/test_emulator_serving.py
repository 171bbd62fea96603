"""emulator.serving: the in-process transport streams like a socket and leaves the caller's cancellation alone."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

from leanloop.emulator import StreamingASGITransport

pytestmark = pytest.mark.anyio


async def test_cancelling_a_consumer_while_it_closes_the_stream_propagates() -> None:
    """The app cleans up slowly, so the consumer is still closing the stream when it is cancelled."""
    cleaning_up = asyncio.Event()

    async def slow_to_stop(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cleaning_up.set()
            await asyncio.sleep(60)  # ends only when cancelled a second time
            raise

    client = httpx2.AsyncClient(transport=StreamingASGITransport(app=slow_to_stop), base_url="http://emulator")

    async def consume() -> str:
        async with client.stream("GET", "/") as response:
            async for chunk in response.aiter_bytes():
                assert chunk == b"first"
                break
        return "finished normally"

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(cleaning_up.wait(), 5)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(consumer, 5)
    assert consumer.cancelled()
