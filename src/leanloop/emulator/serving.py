"""Reaching the emulator: in-process through the official SDK (no sockets), or on a real port in a thread.

``async_client(app)`` returns an ``anthropic.AsyncAnthropic`` whose HTTP client calls the app directly through
``StreamingASGITransport``: an ``httpx2.ASGITransport`` that hands the response to the client as soon as the app
starts it and streams the body as the app sends it (the stock transport buffers the whole body). So time to first
token is visible in-process, the client's read timeout applies (``httpx2.ReadTimeout``), and a connection the app
drops mid-stream surfaces as ``httpx2.RemoteProtocolError``, exactly as over a socket.

``serve_in_thread(app)`` runs the same app under uvicorn on a loopback port, for the synchronous client and for
anything that wants a real URL. ``bind`` then ``serve`` run it in the foreground, as ``leanloop emulator`` does: the
port is bound first, so its number (even for port 0) is known and a busy port fails before anything is announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Generator, Mapping, MutableMapping
from typing import Any, cast

import anthropic
import httpx2
import uvicorn
from starlette.types import ASGIApp

from leanloop.emulator.app import ConnectionDropped

__all__ = [
    "StreamingASGITransport",
    "async_client",
    "bind",
    "quiet_dropped_connections",
    "serve",
    "serve_in_thread",
]

_END = object()


class _Exchange:
    """One request/response between the client and the app, run as its own task: the app's ``send`` feeds a queue
    the response body reads from, so the client gets the head as soon as the app starts the response."""

    def __init__(self, app: ASGIApp, scope: dict[str, Any], body: bytes) -> None:
        self.app, self.scope, self.body = app, scope, body
        self.started = asyncio.Event()
        self.finished = asyncio.Event()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.error: Exception | None = None
        self._body_sent = False

    async def receive(self) -> dict[str, Any]:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.finished.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status, self.headers = message["status"], list(message.get("headers", []))
            self.started.set()
        elif message["type"] == "http.response.body":
            if message.get("body"):
                self.queue.put_nowait(bytes(message["body"]))
            if not message.get("more_body", False):
                self.queue.put_nowait(_END)
                self.finished.set()

    async def run(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except Exception as error:
            self.error = error
            self.queue.put_nowait(error)
        finally:
            self.finished.set()
            self.started.set()


class _QueueStream(httpx2.AsyncByteStream):
    def __init__(self, queue: asyncio.Queue[Any], task: asyncio.Task[None], read_timeout: float | None) -> None:
        self._queue, self._task, self._read_timeout = queue, task, read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            try:
                item = await asyncio.wait_for(self._queue.get(), self._read_timeout)
            except TimeoutError:
                await self.aclose()
                raise httpx2.ReadTimeout("The read operation timed out") from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise httpx2.RemoteProtocolError(
                    "peer closed connection without sending complete message body (incomplete chunked read)"
                ) from item
            yield item

    async def aclose(self) -> None:
        if self._task.done():
            return
        self._task.cancel()
        try:
            await self._task
        except ConnectionDropped:
            pass
        except asyncio.CancelledError:
            # The app's task ending cancelled is what we asked for; a cancel of the caller itself must go on up.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise


class StreamingASGITransport(httpx2.ASGITransport):
    """An ``httpx2.ASGITransport`` that streams the response body instead of buffering it (see module doc)."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        stream = request.stream
        assert isinstance(stream, httpx2.AsyncByteStream), "an async transport gets an async request body"
        exchange = _Exchange(self.app, self._scope(request), b"".join([chunk async for chunk in stream]))
        task = asyncio.create_task(exchange.run())
        read_timeout = _read_timeout(request)
        try:
            await asyncio.wait_for(exchange.started.wait(), read_timeout)
        except TimeoutError:
            task.cancel()
            raise httpx2.ReadTimeout("The read operation timed out", request=request) from None
        if exchange.status is None:  # the app ended, or raised, before starting a response
            await task
            if exchange.error is not None and not isinstance(exchange.error, ConnectionDropped):
                raise exchange.error
            raise httpx2.RemoteProtocolError("Server disconnected without sending a response.") from exchange.error
        body = _QueueStream(exchange.queue, task, read_timeout)
        return httpx2.Response(exchange.status, headers=exchange.headers, stream=body)

    def _scope(self, request: httpx2.Request) -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for (k, v) in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": self.client,
            "root_path": self.root_path,
        }


def _read_timeout(request: httpx2.Request) -> float | None:
    """The client's read timeout, honoured in-process as a socket would: for the first byte and between chunks."""
    timeouts = request.extensions.get("timeout")
    read = cast(Mapping[str, Any], timeouts).get("read") if isinstance(timeouts, Mapping) else None
    return float(read) if isinstance(read, int | float) else None


def async_client(app: ASGIApp, **kwargs: Any) -> anthropic.AsyncAnthropic:
    """An ``AsyncAnthropic`` that talks to ``app`` in-process. ``kwargs`` go to the client (``max_retries``, ...).

    ``api_key`` defaults to ``"emulator"`` and ``base_url`` to ``http://emulator``.
    """
    kwargs.setdefault("api_key", "emulator")
    kwargs.setdefault("base_url", "http://emulator")
    http_client = httpx2.AsyncClient(transport=StreamingASGITransport(app=app), base_url=kwargs["base_url"])
    return anthropic.AsyncAnthropic(http_client=http_client, **kwargs)


class _DroppedConnectionFilter(logging.Filter):
    """Drops the server's "Exception in ASGI application" line when the exception is a deliberate disconnect."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        while error is not None:
            if isinstance(error, ConnectionDropped):
                return False
            error = error.__cause__ or error.__context__
        return True


_FILTER = _DroppedConnectionFilter()


def quiet_dropped_connections() -> None:
    """Keep uvicorn's error log free of the tracebacks the ``disconnect`` fault causes on purpose."""
    logger = logging.getLogger("uvicorn.error")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


def bind(host: str, port: int) -> tuple[socket.socket, str]:
    """A TCP socket bound to ``host:port`` (port 0: a free one) and its base URL. Raises ``OSError`` (port in use)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not to share a port: Linux refuses a live one
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    shown = f"[{host}]" if ":" in host else host
    return sock, f"http://{shown}:{sock.getsockname()[1]}"


def _server(app: ASGIApp) -> uvicorn.Server:
    quiet_dropped_connections()
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", http="h11", loop="asyncio")
    return uvicorn.Server(config)


def serve(app: ASGIApp, sock: socket.socket) -> None:
    """Serve ``app`` on the bound ``sock`` (see ``bind``) in this thread until interrupted (Ctrl-C, SIGTERM)."""
    with contextlib.suppress(KeyboardInterrupt):
        _server(app).run(sockets=[sock])


@contextlib.contextmanager
def serve_in_thread(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> Generator[str]:
    """Serve ``app`` under uvicorn in a daemon thread; yields the base URL. Port 0 picks a free port."""
    sock, url = bind(host, port)
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="leanloop-emulator", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the emulator server thread stopped before it started")
            time.sleep(0.005)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
