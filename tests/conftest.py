"""Shared fixtures. Tests never touch the real network: an autouse fixture refuses every non-loopback connection
unless the test is marked ``network``."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
_LOOPBACK = ("127.0.0.1", "::1", "localhost")

# Locally hypothesis explores new examples on every run (and remembers failures in .hypothesis/); CI runs the same
# examples every time (HYPOTHESIS_PROFILE=ci in .ci/run), so a red CI is a regression, not a new draw.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def shared_data_dir() -> Path:
    return Path(os.environ.get("LEANLOOP_SHARED_DATA") or ROOT.parent / "shared" / "data")


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (real recorded files). Skips when absent, unless LEANLOOP_REQUIRE_DATA=1 (CI), then fails."""
    path = shared_data_dir()
    if not path.is_dir():
        message = f"real recorded data not found at {path} (set LEANLOOP_SHARED_DATA to its location)"
        if os.environ.get("LEANLOOP_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(autouse=True)
def _no_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ENABLE_PROMPT_CACHING_1H", raising=False)
    monkeypatch.delenv("LEANLOOP_PRICES", raising=False)
    if request.node.get_closest_marker("network"):
        yield
        return
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if self.family == socket.AF_UNIX or host in _LOOPBACK:
            real_connect(self, address)
            return
        raise RuntimeError(f"test tried to reach the network ({address!r}); mark it @pytest.mark.network to allow")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    yield


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
