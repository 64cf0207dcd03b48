"""Test support: an in-process server, raw HTTP and WebSocket clients, a recording app.

Clients are built on h11 and wsproto so that tests control every byte; faults (RST via
SO_LINGER(1, 0), half-close, never reading) are explicit. Nothing here sleeps: waits
are on events and are bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import logging
import math
import socket
import struct
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import anyio.abc
import h11
import wsproto
import wsproto.connection
import wsproto.events as wse
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import Opcode

from refserver import Config
from refserver.runtime.context import ServerContext
from refserver.runtime.http import HTTPConnection
from refserver.runtime.server import Listening, serve

Event = dict[str, Any]
TIMEOUT = 5.0


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


# ---------------------------------------------------------------- raw TCP


async def connect(port: int, host: str = "127.0.0.1") -> anyio.abc.SocketStream:
    return await anyio.connect_tcp(host, port)


async def reset(stream: anyio.abc.SocketStream) -> None:
    """Abort the connection with an RST: SO_LINGER(1, 0), then close."""
    sock: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


async def read_until_eof(stream: anyio.abc.ByteStream, limit: int = 1 << 24) -> bytes:
    data = bytearray()
    try:
        while len(data) < limit:
            data += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    return bytes(data)


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
        handler = HTTPConnection(stream, self.ctx)
        self.ctx.add(handler)
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


# ---------------------------------------------------------------- HTTP client


class HTTPClient:
    """An h11 client over one TCP connection (or a TLS stream over one)."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    @classmethod
    @asynccontextmanager
    async def open(cls, port: int) -> AsyncIterator[HTTPClient]:
        stream = await connect(port)
        try:
            yield cls(stream)
        finally:
            await stream.aclose()

    async def send_request(
        self,
        method: str = "GET",
        target: str = "/",
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        end: bool = True,
    ) -> None:
        all_headers = [("host", "127.0.0.1"), *headers]
        if body is not None and not any(n.lower() in ("content-length", "transfer-encoding") for n, _ in headers):
            all_headers.append(("content-length", str(len(body))))
        data = self.conn.send(h11.Request(method=method, target=target, headers=all_headers)) or b""
        if body:
            data += self.conn.send(h11.Data(data=body)) or b""
        if end:
            data += self.conn.send(h11.EndOfMessage()) or b""
        await self.stream.send(data)

    async def next_event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await self.stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    data = b""
                self.conn.receive_data(data)
                continue
            return event

    async def read_response(self) -> tuple[h11.Response, bytes]:
        """The next final response and its whole body (skipping 1xx)."""
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Response):
                break
            if isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("connection closed before a response")
        body = bytearray()
        while True:
            part = await self.next_event()
            if isinstance(part, h11.Data):
                body += part.data
            elif isinstance(part, h11.EndOfMessage):
                break
            elif isinstance(part, h11.ConnectionClosed):
                raise ConnectionError("connection closed mid-body")
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return event, bytes(body)


def header(response: h11.Response | h11.InformationalResponse, name: bytes) -> list[bytes]:
    return [v for n, v in response.headers if n == name]


async def http_request(
    port: int,
    method: str = "GET",
    target: str = "/",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
) -> tuple[h11.Response, bytes]:
    async with HTTPClient.open(port) as client:
        await client.send_request(method, target, headers, body)
        return await client.read_response()


# ---------------------------------------------------------------- WebSocket client


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False, mask: bytes | None = b"\x01\x02\x03\x04"
) -> bytes:
    """A client frame built byte by byte (RFC 6455 §5.2), masked unless ``mask`` is None."""
    head = bytearray([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head.append(mask_bit | n)
    elif n < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", n)
    if mask is None:
        return bytes(head) + payload
    if mask == ZERO_MASK:
        return bytes(head) + mask + payload  # masking with zeros changes nothing
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(head) + mask + masked


ZERO_MASK = b"\x00\x00\x00\x00"


def big_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame with an all-zero masking key, so that multi-megabyte frames
    need no Python-level masking loop (RFC 6455 §5.3 allows any key)."""
    return frame(opcode, payload, mask=ZERO_MASK)


async def open_raw(port: int, extra: Sequence[tuple[str, str]] = ()) -> tuple[anyio.abc.SocketStream, bytes, bytes]:
    """A raw handshake: the stream, the 101 head and whatever came after it."""
    stream = await connect(port)
    await stream.send(handshake_request("/", extra=extra))
    data = b""
    with anyio.fail_after(TIMEOUT):
        while b"\r\n\r\n" not in data:
            data += await stream.receive()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return stream, head, rest


async def read_exactly(stream: anyio.abc.ByteStream, have: bytes, n: int) -> bytes:
    """Read until at least ``n`` bytes are in hand, starting from ``have``."""
    data = have
    with anyio.fail_after(TIMEOUT):
        while len(data) < n:
            data += await stream.receive()
    return data


def close_frame(code: int | None = None, reason: str = "") -> bytes:
    payload = b"" if code is None else struct.pack("!H", code) + reason.encode()
    return frame(Opcode.CLOSE, payload)


def handshake_request(
    path: str = "/",
    *,
    key: str = "dGhlIHNhbXBsZSBub25jZQ==",
    extra: Sequence[tuple[str, str]] = (),
    version: str = "13",
) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        f"Sec-WebSocket-Version: {version}",
    ]
    lines += [f"{n}: {v}" for n, v in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class WSClient:
    """A raw WebSocket client: wsproto parses what the server sends; tests may write any
    bytes with :meth:`send_raw`."""

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        response: h11.InformationalResponse,
        extensions: list[Any],
        trailing: bytes,
    ) -> None:
        self.stream = stream
        self.response = response
        self.wire = wsproto.connection.Connection(wsproto.ConnectionType.CLIENT, extensions, trailing)
        self.eof = False

    @classmethod
    async def connect(
        cls,
        port: int,
        path: str = "/",
        *,
        extra: Sequence[tuple[str, str]] = (),
        deflate: bool = False,
        after_handshake: bytes = b"",
    ) -> WSClient:
        """Open a WebSocket; raise ``Rejected`` carrying the response if it is not a 101."""
        stream = await connect(port)
        return await cls.handshake(stream, path, extra=extra, deflate=deflate, after_handshake=after_handshake)

    @classmethod
    async def handshake(
        cls,
        stream: anyio.abc.ByteStream,
        path: str = "/",
        *,
        extra: Sequence[tuple[str, str]] = (),
        deflate: bool = False,
        after_handshake: bytes = b"",
    ) -> WSClient:
        """The opening handshake over ``stream`` (a socket, or one end of :func:`memory_pair`)."""
        extensions: list[Any] = []
        headers = list(extra)
        if deflate:
            ext = PerMessageDeflate()
            extensions.append(ext)
            headers.append(("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"))
        await stream.send(handshake_request(path, extra=headers) + after_handshake)
        conn = h11.Connection(h11.CLIENT)
        conn.send(
            h11.Request(
                method="GET", target=path, headers=[("host", "x"), ("upgrade", "websocket"), ("connection", "upgrade")]
            )
        )
        conn.send(h11.EndOfMessage())
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(await stream.receive())
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    conn.receive_data(b"")
                continue
            if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                trailing, _ = conn.trailing_data
                for n, v in event.headers:
                    if n == b"sec-websocket-extensions" and deflate:
                        extensions[0].finalize(v.decode())
                return cls(stream, event, [e for e in extensions if e.enabled()], trailing)
            if isinstance(event, h11.Response):
                body = bytearray()
                while True:
                    part = conn.next_event()
                    if part is h11.NEED_DATA:
                        try:
                            conn.receive_data(await stream.receive())
                        except (anyio.EndOfStream, anyio.BrokenResourceError):
                            conn.receive_data(b"")
                        continue
                    if isinstance(part, h11.Data):
                        body += part.data
                        continue
                    break
                await stream.aclose()
                raise Rejected(event, bytes(body))
            raise ConnectionError(f"unexpected handshake event {event!r}")

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send(data)

    async def send_text(self, text: str) -> None:
        await self.stream.send(self.wire.send(wse.TextMessage(data=text)))

    async def send_bytes(self, data: bytes) -> None:
        await self.stream.send(self.wire.send(wse.BytesMessage(data=data)))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.stream.send(self.wire.send(wse.CloseConnection(code=code, reason=reason)))

    async def next_event(self, timeout: float = TIMEOUT) -> Any:
        """The next wsproto event from the server; ``None`` once the TCP connection ended."""
        with anyio.fail_after(timeout):
            while True:
                for event in self.wire.events():
                    return event
                if self.eof:
                    return None
                try:
                    data = await self.stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    self.eof = True
                    continue
                self.wire.receive_data(data)

    async def next_message(self, timeout: float = TIMEOUT) -> str | bytes:
        parts: list[Any] = []
        while True:
            event = await self.next_event(timeout)
            if isinstance(event, wse.Message):
                parts.append(event.data)
                if event.message_finished:
                    return ("" if isinstance(event, wse.TextMessage) else b"").join(parts)
            elif isinstance(event, wse.Ping | wse.Pong):
                continue
            else:
                raise AssertionError(f"expected a message, got {event!r}")

    async def expect_close(self, timeout: float = TIMEOUT) -> wse.CloseConnection:
        """Skip messages and control frames until the server's close frame."""
        while True:
            event = await self.next_event(timeout)
            if isinstance(event, wse.CloseConnection):
                return event
            if event is None:
                raise AssertionError("TCP connection ended without a close frame")

    async def expect_eof(self, timeout: float = TIMEOUT) -> None:
        """Wait until the server closes the TCP connection, ignoring anything else."""
        with anyio.fail_after(timeout):
            while not self.eof:
                try:
                    data = await self.stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    self.eof = True
                    break
                if self.wire.state is not wsproto.connection.ConnectionState.CLOSED:
                    self.wire.receive_data(data)

    async def reset(self) -> None:
        assert isinstance(self.stream, anyio.abc.SocketStream), "an RST needs a TCP socket"
        await reset(self.stream)

    async def aclose(self) -> None:
        await self.stream.aclose()


class Rejected(Exception):
    def __init__(self, response: h11.Response, body: bytes) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.body = body
