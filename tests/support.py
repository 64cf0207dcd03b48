"""Test support: an in-process server, an in-memory one, and a recording app.

The raw HTTP and WebSocket clients are refserver's own (:mod:`refserver.rawclient`),
re-exported here under the names the tests import. Nothing here sleeps: waits are on
events and are bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from refserver import Config
from refserver.rawclient import (
    TIMEOUT,
    ZERO_MASK,
    HTTPClient,
    Rejected,
    WSClient,
    big_frame,
    close_frame,
    connect,
    frame,
    handshake_request,
    header,
    http_request,
    open_raw,
    read_exactly,
    read_until_eof,
    reset,
)
from refserver.runtime.context import ServerContext
from refserver.runtime.http import HTTPConnection
from refserver.runtime.server import Listening, serve
from refserver.runtime.task_transport import TaskTransport

__all__ = [  # the clients are refserver.rawclient's, re-exported under the names the tests import
    "TIMEOUT",
    "ZERO_MASK",
    "Event",
    "HTTPClient",
    "MemoryByteStream",
    "MemoryServer",
    "Recorder",
    "Rejected",
    "WSClient",
    "big_frame",
    "close_frame",
    "connect",
    "frame",
    "handshake_request",
    "header",
    "http_request",
    "memory_pair",
    "memory_server",
    "open_raw",
    "read_exactly",
    "read_until_eof",
    "refserver_errors",
    "reset",
    "serving",
    "serving_stoppable",
]

Event = dict[str, Any]


@asynccontextmanager
async def serving_stoppable(
    app: Any, stop: anyio.Event | None = None, **options: Any
) -> AsyncIterator[tuple[Listening, anyio.Event]]:
    """Run refserver in-process on a free loopback port for the duration of the block;
    setting the yielded event starts the graceful shutdown earlier."""
    options.setdefault("port", 0)
    options.setdefault("lifespan", "off")
    options.setdefault("shutdown_timeout_s", 2.0)
    options.setdefault("ws_ping_interval_s", 0.0)
    config = Config.from_options(**options)
    stop = stop or anyio.Event()
    async with anyio.create_task_group() as tg:
        listening: Listening = await tg.start(partial(serve, app, config, shutdown_trigger=stop.wait))
        try:
            yield listening, stop
        finally:
            stop.set()


@asynccontextmanager
async def serving(app: Any, **options: Any) -> AsyncIterator[Listening]:
    """Run refserver in-process on a free loopback port for the duration of the block."""
    async with serving_stoppable(app, **options) as (listening, _):
        yield listening


def refserver_errors(caplog: Any) -> list[logging.LogRecord]:
    """Records at ERROR or above from refserver's loggers."""
    return [r for r in caplog.records if r.name.startswith("refserver") and r.levelno >= logging.ERROR]


# ---------------------------------------------------------------- a recording app


class Recorder:
    """Collects what an app saw; tests wait on it instead of sleeping."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self._changed = anyio.Event()

    def add(self, kind: str, value: Any = None) -> None:
        self.items.append((kind, value))
        self._changed.set()
        self._changed = anyio.Event()

    def of(self, kind: str) -> list[Any]:
        return [v for k, v in self.items if k == kind]

    async def wait_for(self, predicate: Callable[[Recorder], bool], timeout: float = TIMEOUT) -> None:
        with anyio.fail_after(timeout):
            while not predicate(self):
                await self._changed.wait()

    async def wait_kind(self, kind: str, count: int = 1, timeout: float = TIMEOUT) -> list[Any]:
        await self.wait_for(lambda r: len(r.of(kind)) >= count, timeout)
        return self.of(kind)


# ---------------------------------------------------------------- in memory


class MemoryByteStream(anyio.abc.ByteStream):
    """One end of an in-memory byte pipe (:func:`memory_pair`). Each write is one item;
    a direction that holds ``capacity`` unread writes makes the next writer wait, as a full
    socket send buffer does. Closing an end is EOF for the other end's reads and makes its
    writes fail."""

    def __init__(self, outgoing: MemoryObjectSendStream[bytes], incoming: MemoryObjectReceiveStream[bytes]) -> None:
        self._outgoing = outgoing
        self._incoming = incoming
        self._pending = b""
        self.taken = 0  # bytes this end's reads have returned so far

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self._pending:
            self._pending = await self._incoming.receive()
        data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        self.taken += len(data)
        return data

    async def send(self, item: bytes) -> None:
        if item:  # an empty item would read as EOF
            await self._outgoing.send(bytes(item))

    async def send_eof(self) -> None:
        await self._outgoing.aclose()

    async def aclose(self) -> None:
        await self._outgoing.aclose()
        await self._incoming.aclose()


def memory_pair(*, to_client: float = math.inf) -> tuple[MemoryByteStream, MemoryByteStream]:
    """(client end, server end). ``to_client`` bounds the unread server writes."""
    to_server_send, to_server_receive = anyio.create_memory_object_stream[bytes](math.inf)
    to_client_send, to_client_receive = anyio.create_memory_object_stream[bytes](to_client)
    return MemoryByteStream(to_server_send, to_client_receive), MemoryByteStream(to_client_send, to_server_receive)


class MemoryServer:
    """refserver's connection handler over in-memory streams: no socket, no listener, no
    kernel. With trio's MockClock only the server's own timers move time along, so a test
    of a timer is exact and instant (see tests/test_ws_timers.py)."""

    def __init__(self, ctx: ServerContext, tg: anyio.abc.TaskGroup) -> None:
        self.ctx = ctx
        self._tg = tg
        self.server_ends: list[MemoryByteStream] = []  # one per connection, in order

    async def open_ws(self, path: str = "/", *, to_client: float = math.inf, **handshake: Any) -> WSClient:
        """Start one connection and return a :class:`WSClient` on its client end (see
        :func:`memory_pair` for ``to_client``); keyword arguments go to the handshake."""
        client, server = memory_pair(to_client=to_client)
        self.server_ends.append(server)
        self._tg.start_soon(self._serve, server)
        return await WSClient.handshake(client, path, **handshake)

    async def _serve(self, stream: MemoryByteStream) -> None:
        handler = HTTPConnection(TaskTransport(stream), self.ctx)
        self.ctx.handlers.add(handler)
        try:
            await handler.run()
        finally:
            self.ctx.remove(handler)

    async def shutdown(self) -> None:
        """What a graceful server shutdown does to each open connection."""
        self.ctx.shutting_down = True
        for handler in list(self.ctx.handlers):
            await handler.shutdown()


@asynccontextmanager
async def memory_server(app: Any, **options: Any) -> AsyncIterator[MemoryServer]:
    """A :class:`MemoryServer` for ``app`` with Config ``options``; the block ends once every
    connection it opened has ended."""
    options.setdefault("lifespan", "off")
    options.setdefault("ws_ping_interval_s", 0.0)
    ctx = ServerContext(app, Config.from_options(**options))
    async with anyio.create_task_group() as tg:
        yield MemoryServer(ctx, tg)
