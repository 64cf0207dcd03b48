"""One raw HTTP/1.1 and WebSocket client: for the tests, the conformance harness,
the reliability runs and the benchmarks.

Raw means the caller owns every byte. The builders write a request, a WebSocket handshake or a
frame as the RFCs draw them, well-formed or not (any opcode, RSV bits, unmasked, fragmented);
:func:`reset` aborts a connection with an RST. Two clients read what a server sends back:
:class:`HTTPClient` through h11 and :class:`WSClient` through wsproto, so that what they return
is what a conforming client would see. The conformance harness records the server's bytes
itself (``refserver.conformance.client``), because it must describe a server that breaks the
RFCs, where h11 and wsproto would stop at the first fault.

Nothing here sleeps: every wait is on the socket and bounded by ``timeout`` (seconds).
"""

from __future__ import annotations

import math
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import h11
import wsproto
import wsproto.connection
import wsproto.events as wse
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import Opcode

TIMEOUT = 5.0  # seconds any one wait of a client may take, unless told otherwise
HOST = "127.0.0.1"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # the sample nonce of RFC 6455 §1.3
MASK = b"\x01\x02\x03\x04"
ZERO_MASK = b"\x00\x00\x00\x00"
_ENDED = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


# ---------------------------------------------------------------- bytes


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    rsv1: bool = False,
    mask: bytes | None = MASK,
) -> bytes:
    """Build a frame as RFC 6455 §5.2 draws it, masked with ``mask`` unless it is None.

    ``rsv`` holds the three RSV bits as a number (RSV1 is 4); ``rsv1`` sets RSV1 alone, the
    bit permessage-deflate uses.
    """
    rsv |= 4 if rsv1 else 0
    head = bytearray([(0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)])
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
    return bytes(head) + mask + apply_mask(payload, mask)


def apply_mask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the four-byte ``mask`` repeated (RFC 6455 §5.3); masking twice unmasks."""
    if not payload or mask == ZERO_MASK:
        return payload  # masking with zeros changes nothing
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


def big_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame with an all-zero masking key, so that multi-megabyte frames
    cost no masking at all (RFC 6455 §5.3 allows any key)."""
    return frame(opcode, payload, mask=ZERO_MASK)


def close_frame(code: int | None = None, reason: str = "") -> bytes:
    """A masked close frame with ``code`` and ``reason``, or an empty one (RFC 6455 §5.5.1)."""
    payload = b"" if code is None else struct.pack("!H", code) + reason.encode()
    return frame(Opcode.CLOSE, payload)


def handshake_request(
    path: str = "/",
    *,
    key: str | None = KEY,
    extra: Sequence[tuple[str, str]] = (),
    version: str | None = "13",
    host: str = HOST,
) -> bytes:
    """An opening handshake (RFC 6455 §4.1); a ``key`` or ``version`` of None leaves that header out."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade"]
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    lines += [f"{n}: {v}" for n, v in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def request_bytes(
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
    chunked: Sequence[bytes] | None = None,
    end: bool = True,
    host: str = HOST,
) -> bytes:
    """An HTTP/1.1 request (RFC 9112 §3): ``body`` with a Content-Length, or the ``chunked``
    parts with Transfer-Encoding (and, if ``end``, the last chunk); a framing header in
    ``headers`` is kept as given."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    names = {n.lower() for n, _ in headers}
    lines += [f"{n}: {v}" for n, v in headers]
    payload = b""
    if chunked is not None:
        if "transfer-encoding" not in names:
            lines.append("Transfer-Encoding: chunked")
        for part in chunked:
            payload += f"{len(part):x}\r\n".encode() + part + b"\r\n"
        if end:
            payload += b"0\r\n\r\n"
    elif body is not None:
        if "content-length" not in names:
            lines.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + payload


# ---------------------------------------------------------------- raw TCP


async def connect(port: int, host: str = HOST) -> anyio.abc.SocketStream:
    return await anyio.connect_tcp(host, port)


async def reset(stream: anyio.abc.ByteStream) -> None:
    """Abort the connection with an RST: SO_LINGER(1, 0), then close."""
    sock: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


async def read_until_eof(stream: anyio.abc.ByteStream, limit: int = 1 << 24) -> bytes:
    """Everything the server sends until it ends the connection (or ``limit`` bytes)."""
    data = bytearray()
    try:
        while len(data) < limit:
            data += await stream.receive()
    except _ENDED:
        pass
    return bytes(data)


async def read_exactly(stream: anyio.abc.ByteStream, have: bytes, n: int) -> bytes:
    """Read until at least ``n`` bytes are in hand, starting from ``have``."""
    data = have
    with anyio.fail_after(TIMEOUT):
        while len(data) < n:
            data += await stream.receive()
    return data


async def open_raw(port: int, extra: Sequence[tuple[str, str]] = ()) -> tuple[anyio.abc.SocketStream, bytes, bytes]:
    """A raw handshake: the stream, the 101 head and whatever came after it."""
    stream = await connect(port)
    await stream.send(handshake_request("/", extra=extra))
    data = b""
    with anyio.fail_after(TIMEOUT):
        while b"\r\n\r\n" not in data:
            data += await stream.receive()
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101 "):
        await stream.aclose()
        status_line = head.partition(b"\r\n")[0]
        raise ConnectionError(f"the handshake was answered {status_line!r}, not 101")
    return stream, head, rest


async def _feed(conn: h11.Connection, stream: anyio.abc.ByteStream) -> None:
    """Give h11 the next bytes from ``stream``, or the end of it."""
    try:
        conn.receive_data(await stream.receive())
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        conn.receive_data(b"")


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
        all_headers = [("host", HOST), *headers]
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
                await _feed(self.conn, self.stream)
                continue
            return event

    async def read_response(self) -> tuple[h11.Response, bytes]:
        """The next final response and its whole body (skipping 1xx).

        Raises:
            ConnectionError: the connection ended before the response did.
        """
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
    """Every value of the header ``name`` (lower case), in order."""
    return [v for n, v in response.headers if n == name]


async def http_request(
    port: int,
    method: str = "GET",
    target: str = "/",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
) -> tuple[h11.Response, bytes]:
    """One request on a connection of its own: the response and its body."""
    async with HTTPClient.open(port) as client:
        await client.send_request(method, target, headers, body)
        return await client.read_response()


# ---------------------------------------------------------------- WebSocket client


class Rejected(Exception):
    """The server answered the opening handshake with an HTTP response, not a 101."""

    def __init__(self, response: h11.Response, body: bytes) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.body = body


class WSClient:
    """A raw WebSocket client: wsproto parses what the server sends; :meth:`send_raw` writes
    any bytes. With ``answer_pings`` it answers the server's pings while it reads messages,
    as a browser would."""

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        response: h11.InformationalResponse,
        extensions: list[Any],
        trailing: bytes,
        *,
        answer_pings: bool = False,
    ) -> None:
        self.stream = stream
        self.response = response
        self.wire = wsproto.connection.Connection(wsproto.ConnectionType.CLIENT, extensions, trailing)
        self.eof = False
        self.answer_pings = answer_pings
        self.closed_by_server: wse.CloseConnection | None = None  # the server's close frame, once read

    @classmethod
    async def connect(
        cls,
        port: int,
        path: str = "/",
        *,
        extra: Sequence[tuple[str, str]] = (),
        deflate: bool = False,
        after_handshake: bytes = b"",
        answer_pings: bool = False,
        host: str = HOST,
    ) -> WSClient:
        """Open a WebSocket.

        Raises:
            Rejected: the server answered with a response other than 101.
        """
        stream = await connect(port, host)
        try:
            client = await cls.handshake(stream, path, extra=extra, deflate=deflate, after_handshake=after_handshake)
        except BaseException:
            await stream.aclose()
            raise
        client.answer_pings = answer_pings
        return client

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
        """Do the opening handshake over ``stream`` (a socket, or one end of an in-memory pipe).

        Raises:
            Rejected: the server answered with a response other than 101 (``stream`` is closed).
        """
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
                await _feed(conn, stream)
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
                        await _feed(conn, stream)
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
        """Send a close frame; the connection stays open (see :meth:`close_and_wait`)."""
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
                except _ENDED:
                    self.eof = True
                    continue
                self.wire.receive_data(data)

    async def receive_message(self, timeout: float = TIMEOUT) -> str | bytes | None:
        """The next whole message; ``None`` once the server's close frame (kept in
        :attr:`closed_by_server`) or the end of the connection came instead. Pings and pongs
        are skipped, pings answered if :attr:`answer_pings`."""
        parts: list[Any] = []
        while True:
            event = await self.next_event(timeout)
            if isinstance(event, wse.Message):
                parts.append(event.data)
                if event.message_finished:
                    return ("" if isinstance(event, wse.TextMessage) else b"").join(parts)
            elif isinstance(event, wse.Ping):
                if self.answer_pings and self.wire.state is wsproto.connection.ConnectionState.OPEN:
                    await self.stream.send(self.wire.send(event.response()))
            elif isinstance(event, wse.Pong):
                continue
            elif isinstance(event, wse.CloseConnection):
                self.closed_by_server = event
                return None
            elif event is None:
                return None
            else:
                raise AssertionError(f"expected a message, got {event!r}")

    async def next_message(self, timeout: float = TIMEOUT) -> str | bytes:
        """The next whole message, skipping pings and pongs.

        Raises:
            AssertionError: a close frame or the end of the connection came first.
        """
        message = await self.receive_message(timeout)
        if message is None:
            raise AssertionError(f"expected a message, got {self.closed_by_server if not self.eof else None!r}")
        return message

    async def close_and_wait(self, code: int = 1000, timeout: float = math.inf) -> list[str | bytes]:
        """Send a close frame, read until the server's close frame or the end of the
        connection, and close TCP; return the messages that came meanwhile."""
        extra: list[str | bytes] = []
        await self.close(code)
        while (message := await self.receive_message(timeout)) is not None:
            extra.append(message)
        await self.stream.aclose()
        return extra

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
                except _ENDED:
                    self.eof = True
                    break
                if self.wire.state is not wsproto.connection.ConnectionState.CLOSED:
                    self.wire.receive_data(data)

    async def reset(self) -> None:
        """Abort the connection with an RST."""
        if not isinstance(self.stream, anyio.abc.SocketStream):
            raise TypeError("an RST needs a TCP socket")
        await reset(self.stream)

    async def aclose(self) -> None:
        await self.stream.aclose()
